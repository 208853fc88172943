//! The session's deadlines, carried out by the driver's timer: connect timeouts while
//! opening and while waiting for CONNACK, and keep-alive pings.

use std::net::TcpListener;
use std::time::Duration;

use fleet_client::{BrokerUrl, Client, ClientEvent, DisconnectReason, TlsFiles};

use crate::roundtrip::options;
use crate::support::{Certs, Listener, Mosquitto, TempDir, free_port, wait_for};

/// Against a socket that accepts connections (the kernel completes the TCP handshake) and
/// never says a word.
async fn times_out(url: &str, tls: Option<TlsFiles>) {
    let mut opts = options("impatient");
    opts.connect_timeout_ms = 300;
    let (client, mut events) = Client::spawn(opts, BrokerUrl::parse(url).unwrap(), tls, 8).unwrap();
    for _ in 0..2 {
        let (reason, retry) = wait_for(&mut events, "a connect timeout", |e| match e {
            ClientEvent::Disconnected {
                reason,
                reconnect_in,
            } => Some((reason.clone(), *reconnect_in)),
            _ => None,
        })
        .await;
        assert_eq!(reason, DisconnectReason::ConnectTimeout);
        assert!(retry.is_some());
    }
    client.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_silent_broker_times_out_waiting_for_connack() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    times_out(&format!("mqtt://127.0.0.1:{port}"), None).await;
}

#[tokio::test]
async fn a_silent_broker_times_out_during_the_tls_handshake() {
    let dir = TempDir::new();
    let certs = Certs::generate(&dir);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    times_out(
        &format!("mqtts://127.0.0.1:{port}"),
        Some(certs.client_files()),
    )
    .await;
}

#[tokio::test]
async fn keep_alive_pings_hold_an_idle_connection_open() {
    let dir = TempDir::new();
    let port = free_port();
    let _broker = Mosquitto::start(&dir, &[Listener::Tcp(port)], None, false);
    let mut opts = options("idle");
    opts.keep_alive_s = 1;
    let url = BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let (client, mut events) = Client::spawn(opts, url, None, 9).unwrap();
    client.connected().await.unwrap();
    let connected = client.stats();
    // mosquitto drops a client silent for 1.5 × keep-alive; three periods without pings
    // would lose the connection.
    let quiet = tokio::time::timeout(Duration::from_millis(3_200), async {
        wait_for(&mut events, "any disconnect", |e| {
            matches!(e, ClientEvent::Disconnected { .. }).then_some(())
        })
        .await
    })
    .await;
    assert!(quiet.is_err(), "the connection dropped while idle");
    let stats = client.stats();
    // CONNACK is 4 bytes; each PINGRESP adds 2.
    assert!(stats.bytes_in >= connected.bytes_in + 4, "{stats:?}");
    assert_eq!(stats.reconnects, 0);
    client.disconnect().await.unwrap();
}

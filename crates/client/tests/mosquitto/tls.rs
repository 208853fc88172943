//! Mutual TLS, as AWS IoT Core and the local stack's 8883 listener use it.

use fleet_client::{BrokerUrl, Client, ClientEvent, DisconnectReason, Status, TlsFiles};

use crate::roundtrip::{exchange, options};
use crate::support::{Certs, Listener, Mosquitto, TempDir, free_port, wait_for};

#[tokio::test]
async fn publishes_and_receives_over_mutual_tls() {
    let dir = TempDir::new();
    let certs = Certs::generate(&dir);
    let port = free_port();
    let _broker = Mosquitto::start(&dir, &[Listener::Mtls(port)], Some(&certs), false);
    // By IP: rustls checks the certificate's IP address SAN.
    exchange(
        &format!("mqtts://127.0.0.1:{port}"),
        Some(certs.client_files()),
    )
    .await;
}

#[tokio::test]
async fn server_name_comes_from_the_host() {
    let dir = TempDir::new();
    let certs = Certs::generate(&dir);
    let port = free_port();
    let _broker = Mosquitto::start(&dir, &[Listener::Mtls(port)], Some(&certs), false);
    // By name: SNI and the DNS SAN `localhost`.
    exchange(
        &format!("mqtts://localhost:{port}"),
        Some(certs.client_files()),
    )
    .await;
}

/// Waits for two failed attempts and returns the first reason.
async fn two_failures(url: &str, tls: TlsFiles) -> String {
    let url = BrokerUrl::parse(url).unwrap();
    let (client, mut events) = Client::spawn(options("tls-fail"), url, Some(tls), 4).unwrap();
    let mut reasons = Vec::new();
    while reasons.len() < 2 {
        let (reason, retry) = wait_for(&mut events, "a failed attempt", |e| match e {
            ClientEvent::Disconnected {
                reason,
                reconnect_in,
            } => Some((reason.clone(), *reconnect_in)),
            ClientEvent::Connected { .. } => panic!("connected despite the bad TLS setup"),
            _ => None,
        })
        .await;
        assert!(retry.is_some(), "the client keeps retrying");
        let DisconnectReason::TransportError(text) = reason else {
            panic!("expected a transport error, got {reason:?}");
        };
        reasons.push(text);
    }
    assert_ne!(client.status(), Status::Stopped);
    assert!(client.stats().failed_attempts >= 2);
    client.disconnect().await.unwrap();
    reasons.swap_remove(0)
}

#[tokio::test]
async fn wrong_ca_gives_a_clear_tls_error_and_keeps_retrying() {
    let dir = TempDir::new();
    let certs = Certs::generate(&dir);
    let port = free_port();
    let _broker = Mosquitto::start(&dir, &[Listener::Mtls(port)], Some(&certs), false);
    let tls = TlsFiles::new(&certs.other_ca).with_identity(&certs.client_cert, &certs.client_key);
    let reason = two_failures(&format!("mqtts://127.0.0.1:{port}"), tls).await;
    assert_eq!(
        reason,
        format!(
            "TLS handshake with 127.0.0.1:{port} failed: TLS: unknown issuer: the broker's \
             certificate is not signed by the configured CA certificate"
        )
    );
}

#[tokio::test]
async fn missing_client_certificate_is_reported_as_rejected() {
    let dir = TempDir::new();
    let certs = Certs::generate(&dir);
    let port = free_port();
    let _broker = Mosquitto::start(&dir, &[Listener::Mtls(port)], Some(&certs), false);
    let reason = two_failures(
        &format!("mqtts://127.0.0.1:{port}"),
        TlsFiles::new(&certs.ca),
    )
    .await;
    assert!(
        reason.contains("TLS: the broker rejected the connection"),
        "unexpected reason: {reason}"
    );
}

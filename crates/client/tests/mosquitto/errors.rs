//! Bad settings fail at start with words a user understands; an absent broker is
//! reported per attempt while the client keeps trying.

use fleet_client::{
    BrokerUrl, Client, ClientError, ClientEvent, DisconnectReason, QoS, TlsFiles, UrlError,
};

use crate::roundtrip::options;
use crate::support::{Certs, TempDir, free_port, wait_for};

fn url(text: &str) -> BrokerUrl {
    BrokerUrl::parse(text).unwrap()
}

#[test]
fn unsupported_schemes_are_refused() {
    let err = BrokerUrl::parse("amqp://127.0.0.1:5672").unwrap_err();
    assert_eq!(err, UrlError::UnsupportedScheme("amqp".into()));
    assert_eq!(
        err.to_string(),
        "unsupported scheme \"amqp\": use mqtt://, mqtts:// or ws://"
    );
    assert_eq!(
        BrokerUrl::parse("mqtt://host:").unwrap_err(),
        UrlError::EmptyPort
    );
}

#[test]
fn starting_outside_a_runtime_is_an_error() {
    let err = Client::spawn(options("x"), url("mqtt://127.0.0.1:1"), None, 0).unwrap_err();
    assert!(matches!(err, ClientError::NoRuntime), "{err}");
}

#[tokio::test]
async fn tls_settings_are_checked_at_start() {
    let dir = TempDir::new();
    let certs = Certs::generate(&dir);
    let spawn = |u: &str, tls: Option<TlsFiles>| Client::spawn(options("x"), url(u), tls, 0);

    let err = spawn("mqtts://127.0.0.1:8883", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mqtts://127.0.0.1:8883 needs TLS files (at least the CA certificate)"
    );
    let err = spawn("mqtt://127.0.0.1:1883", Some(certs.client_files())).unwrap_err();
    assert!(matches!(err, ClientError::TlsNotUsed(_)), "{err}");

    let missing = dir.path().join("nope.pem");
    let err = spawn("mqtts://h", Some(TlsFiles::new(&missing))).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot read certificate file {}: ",
            missing.display()
        )),
        "{text}"
    );
    // A key file given as the CA: PEM, but no certificate in it.
    let err = spawn("mqtts://h", Some(TlsFiles::new(&certs.client_key))).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no certificate found in {}", certs.client_key.display())
    );
    let tls = TlsFiles::new(&certs.ca).with_identity(&certs.client_cert, &certs.server_key);
    let err = spawn("mqtts://h", Some(tls)).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "cannot use the client certificate {} with the key {}: ",
            certs.client_cert.display(),
            certs.server_key.display()
        )),
        "{err}"
    );
    let tls = TlsFiles::new(&certs.ca).with_identity(&certs.client_cert, &certs.ca);
    let err = spawn("mqtts://h", Some(tls)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no private key found in {}", certs.ca.display())
    );
}

#[tokio::test]
async fn bad_options_are_refused_at_start() {
    let mut opts = options("x");
    opts.max_inflight = 0;
    let err = Client::spawn(opts, url("mqtt://127.0.0.1:1883"), None, 0).unwrap_err();
    assert!(matches!(err, ClientError::Options(_)), "{err}");
}

#[tokio::test]
async fn refused_connections_are_reported_and_retried() {
    let port = free_port();
    let (client, mut events) = Client::spawn(
        options("nobody-home"),
        url(&format!("mqtt://127.0.0.1:{port}")),
        None,
        5,
    )
    .unwrap();
    for _ in 0..2 {
        let (reason, retry) = wait_for(&mut events, "a refused attempt", |e| match e {
            ClientEvent::Disconnected {
                reason,
                reconnect_in,
            } => Some((reason.clone(), *reconnect_in)),
            _ => None,
        })
        .await;
        assert_eq!(
            reason.to_string(),
            format!("connection error: connection refused by 127.0.0.1:{port}")
        );
        assert!(retry.is_some_and(|d| d.as_millis() <= 500));
    }
    // QoS 1 is queued while offline; QoS 0 is refused at once.
    assert!(
        client
            .publish("t", "x", QoS::AtLeastOnce)
            .await
            .unwrap()
            .is_some()
    );
    let err = client.publish("t", "x", QoS::AtMostOnce).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "publish refused: not connected: QoS 0 messages are not queued"
    );
    assert_eq!(client.snapshot().queued, 1);

    client.disconnect().await.unwrap();
    assert!(client.is_closed());
    let err = client
        .publish("t", "x", QoS::AtLeastOnce)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Closed), "{err}");
    // Attempts that failed before the disconnect may come first.
    let retry = wait_for(&mut events, "the final Disconnected", |e| match e {
        ClientEvent::Disconnected {
            reason: DisconnectReason::Requested,
            reconnect_in,
        } => Some(*reconnect_in),
        _ => None,
    })
    .await;
    assert_eq!(retry, None);
}

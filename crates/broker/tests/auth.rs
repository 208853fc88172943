//! Authorization and delivery guarantees of the broker over real sockets on 127.0.0.1:
//! refusals as IoT Core and MQTT 3.1.1 make them (CONNACK 5, SUBACK 0x80, a closed
//! connection), nothing refused reaching anyone, every refusal counted by reason, pages of
//! other origins kept off the WebSocket, and slow QoS 1 subscribers disconnected rather
//! than silently starved.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

use std::sync::Arc;
use std::time::Duration;

use fleet_broker::{
    Authenticator, Broker, BrokerConfig, BrokerHandle, ConnectRequest, IngestConfig, Ingested,
    ListenerKind,
};
use fleet_core::access::{Action, Identity, Namespace, Reason};
use fleet_core::{DeviceId, Publisher};
use fleet_mqtt::QoS;
use fleet_mqtt::packet::{ConnectReturnCode, SubscribeReturn};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

mod support;
use support::{In, Raw};

/// Users for the tests: `device:ID` / `page:NS` / `observer`, password `ok`.
struct TestUsers;

impl Authenticator for TestUsers {
    fn identify(&self, r: &ConnectRequest<'_>) -> Result<Identity, Reason> {
        let Some(user) = r.username else {
            return Err(Reason::NoCredentials);
        };
        if r.password != Some(b"ok".as_slice()) {
            return Err(Reason::BadCredentials);
        }
        match user.split_once(':') {
            Some(("device", id)) => Ok(Identity::Device(DeviceId::try_from(id).unwrap())),
            Some(("page", ns)) => Ok(Identity::Page(Namespace::new(ns).unwrap())),
            None if user == "observer" => Ok(Identity::Observer),
            _ => Err(Reason::BadCredentials),
        }
    }
}

async fn start(outbound_queue: usize) -> (BrokerHandle, mpsc::Receiver<Ingested>) {
    let config = BrokerConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        ws: Some("127.0.0.1:0".parse().unwrap()),
        connect_timeout: Duration::from_secs(2),
        outbound_queue,
        ingest: Some(IngestConfig {
            filters: vec!["dt/monitoring/+/+/telemetry".into()],
            queue: 100,
        }),
        authenticator: Some(Arc::new(TestUsers)),
        allowed_origins: Some(Arc::from(vec!["http://127.0.0.1:8080".to_owned()])),
        ..BrokerConfig::default()
    };
    let (b, rx) = Broker::start(config).await.unwrap();
    (b, rx.unwrap())
}

async fn login(b: &BrokerHandle, client_id: &str, user: &str) -> Raw {
    let addr = b.local_addr(ListenerKind::Tcp).unwrap();
    let (raw, code) = Raw::connect_as(addr, client_id, Some(user), Some(b"ok")).await;
    assert_eq!(code, ConnectReturnCode::Accepted, "{user} as {client_id}");
    raw
}

fn refused(b: &BrokerHandle, reason: Reason) -> u64 {
    b.publisher()
        .refusals()
        .into_iter()
        .find(|(_, r, _)| *r == reason)
        .map_or(0, |(_, _, n)| n)
}

#[tokio::test]
async fn refused_connects_answer_connack_5_and_are_counted() {
    let (b, _rx) = start(100).await;
    let addr = b.local_addr(ListenerKind::Tcp).unwrap();
    // (client id, user, password, why refused)
    let cases = [
        ("d-1", None, None, Reason::NoCredentials),
        (
            "d-1",
            Some("device:d-1"),
            Some("wrong"),
            Reason::BadCredentials,
        ),
        (
            "d-2",
            Some("device:d-1"),
            Some("ok"),
            Reason::ClientIdNotAllowed,
        ),
    ];
    for (client_id, user, password, reason) in cases {
        let password = password.map(str::as_bytes);
        let (mut raw, code) = Raw::connect_as(addr, client_id, user, password).await;
        assert_eq!(code, ConnectReturnCode::NotAuthorized, "{reason:?}");
        assert!(raw.closed().await, "{reason:?}: the connection is closed");
        assert_eq!(refused(&b, reason), 1, "{reason:?}");
    }
    assert_eq!(b.stats().connections, 0);
}

#[tokio::test]
async fn a_refused_publish_closes_the_connection_and_reaches_nobody() {
    let (b, mut ingest) = start(100).await;
    let mut observer = login(&b, "dashboard", "observer").await;
    observer.subscribe(&[("#", QoS::AtLeastOnce)]).await;
    let mut device = login(&b, "d-1", "device:d-1").await;
    for (topic, reason) in [
        ("cmd/monitoring/1/d-2/remediation", Reason::CommandTopic),
        ("dt/monitoring/alarms", Reason::AlarmTopic),
        ("dt/monitoring/1/d-2/telemetry", Reason::OtherDevice),
    ] {
        device.publish(topic, b"spoof", Some(7)).await;
        assert!(device.closed().await, "{topic}: connection closed");
        assert_eq!(refused(&b, reason), 1, "{topic}");
        device = login(&b, "d-1", "device:d-1").await;
    }
    // The device's own telemetry goes through, carrying who published it.
    device
        .publish("dt/monitoring/1/d-1/telemetry", b"mine", Some(1))
        .await;
    let m = timeout(Duration::from_secs(5), ingest.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload, b"mine");
    assert_eq!(
        *m.publisher,
        Publisher::Device(DeviceId::try_from("d-1").unwrap())
    );
    // The observer saw that reading and none of the spoofed messages.
    match observer.recv().await {
        In::Publish { topic, payload, .. } => {
            assert_eq!(
                (topic.as_str(), payload.as_slice()),
                ("dt/monitoring/1/d-1/telemetry", &b"mine"[..])
            );
        }
        other => panic!("{other:?}"),
    }
    observer.quiet().await;
    // An observer may not publish at all.
    observer
        .publish("dt/monitoring/1/d-1/telemetry", b"x", None)
        .await;
    assert!(observer.closed().await);
    assert_eq!(refused(&b, Reason::ReadOnly), 1);
}

#[tokio::test]
async fn subscriptions_outside_a_clients_topics_get_0x80() {
    let (b, _rx) = start(100).await;
    let mut device = login(&b, "d-1", "device:d-1").await;
    let returns = device
        .subscribe_returns(&[
            ("cmd/monitoring/1/d-1/remediation", QoS::AtLeastOnce),
            ("cmd/monitoring/1/d-2/remediation", QoS::AtLeastOnce),
            ("#", QoS::AtMostOnce),
        ])
        .await;
    assert_eq!(
        returns,
        [
            SubscribeReturn::Success(QoS::AtLeastOnce),
            SubscribeReturn::Failure,
            SubscribeReturn::Failure
        ]
    );
    assert_eq!(refused(&b, Reason::NotOwnTopic), 2);
    // The refused filters deliver nothing; the granted one does.
    b.publish("cmd/monitoring/1/d-2/remediation", b"x", QoS::AtLeastOnce);
    b.publish("cmd/monitoring/1/d-1/remediation", b"y", QoS::AtLeastOnce);
    match device.recv().await {
        In::Publish { payload, .. } => assert_eq!(payload, b"y"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_page_hears_only_its_own_devices_through_a_wildcard() {
    let (b, _rx) = start(100).await;
    let mut page = login(&b, "w1.gw0", "page:w1").await;
    page.subscribe(&[("cmd/monitoring/1/+/remediation", QoS::AtLeastOnce)])
        .await;
    b.publish(
        "cmd/monitoring/1/d-0001/remediation",
        b"other",
        QoS::AtLeastOnce,
    );
    b.publish(
        "cmd/monitoring/1/w1-0001/remediation",
        b"mine",
        QoS::AtLeastOnce,
    );
    match page.recv().await {
        In::Publish { payload, .. } => assert_eq!(payload, b"mine"),
        other => panic!("{other:?}"),
    }
    page.quiet().await;
}

#[tokio::test]
async fn another_identity_cannot_take_over_a_client_id() {
    let (b, _rx) = start(100).await;
    let addr = b.local_addr(ListenerKind::Tcp).unwrap();
    let mut device = login(&b, "monitoring-device", "device:d-1").await;
    // Another device's certificate on the shared legacy client id: refused, and the first
    // connection keeps working.
    let (_, code) =
        Raw::connect_as(addr, "monitoring-device", Some("device:d-2"), Some(b"ok")).await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
    assert_eq!(refused(&b, Reason::ClientIdInUse), 1);
    device.send(&[fleet_mqtt::packet::Packet::PingReq]).await;
    assert_eq!(device.recv().await, In::PingResp);
    // The same identity reconnecting takes over, as MQTT says.
    let _again = login(&b, "monitoring-device", "device:d-1").await;
    assert!(device.closed().await);
}

#[tokio::test]
async fn pages_of_other_origins_cannot_open_the_websocket() {
    let (b, _rx) = start(100).await;
    let addr = b.local_addr(ListenerKind::WebSocket).unwrap();
    let upgrade = |origin: Option<&'static str>| async move {
        let mut request = format!("ws://{addr}/mqtt").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
        if let Some(o) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_static(o));
        }
        tokio_tungstenite::connect_async(request).await
    };
    assert!(upgrade(Some("http://127.0.0.1:8080")).await.is_ok());
    // Not a browser (no Origin): the upgrade is judged by the credentials that follow.
    assert!(upgrade(None).await.is_ok());
    match upgrade(Some("http://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("expected 403, got {:?}", other.map(|_| "an open socket")),
    }
    assert_eq!(refused(&b, Reason::OriginNotAllowed), 1);
    let actions: Vec<Action> = b
        .publisher()
        .refusals()
        .iter()
        .map(|(a, _, _)| *a)
        .collect();
    assert!(actions.contains(&Action::Connect));
}

#[tokio::test]
async fn a_subscriber_too_slow_for_qos1_is_disconnected_and_counted() {
    // A tiny queue; the subscriber never reads, so its socket and then its queue fill.
    let (b, _rx) = start(4).await;
    let mut slow = login(&b, "dashboard", "observer").await;
    slow.subscribe(&[("dt/monitoring/alarms", QoS::AtLeastOnce)])
        .await;
    let payload = vec![b'x'; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while b.stats().slow_consumers == 0 {
        b.publish("dt/monitoring/alarms", &payload, QoS::AtLeastOnce);
        assert!(
            tokio::time::Instant::now() < deadline,
            "never disconnected: {:?}",
            b.stats()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(b.stats().connected, 0, "the slow subscriber is gone");
    assert_eq!(
        b.stats().dropped,
        0,
        "no QoS 1 message was dropped silently"
    );
}

#[tokio::test]
async fn a_full_queue_drops_qos0_and_keeps_the_subscriber() {
    let (b, _rx) = start(4).await;
    let mut slow = login(&b, "dashboard", "observer").await;
    slow.subscribe(&[("dt/monitoring/alarms", QoS::AtMostOnce)])
        .await;
    let payload = vec![b'x'; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while b.stats().dropped == 0 {
        b.publish("dt/monitoring/alarms", &payload, QoS::AtMostOnce);
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dropped: {:?}",
            b.stats()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(b.stats().slow_consumers, 0);
    assert_eq!(
        b.stats().connected,
        1,
        "QoS 0 may be lost; the subscriber stays"
    );
}

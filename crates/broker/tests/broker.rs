//! The broker over real sockets on 127.0.0.1, driven by a scripted raw client so every
//! byte and every ordering is checked.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

use std::net::SocketAddr;
use std::time::Duration;

use fleet_broker::{
    BindError, Broker, BrokerConfig, BrokerHandle, IngestConfig, Ingested, ListenerKind,
};
use fleet_mqtt::QoS;
use fleet_mqtt::codec::{decode, encode};
use fleet_mqtt::packet::{Connect, ConnectReturnCode, Packet, Publish, Subscribe, Will};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

mod support;
use support::{In, Raw};

const TELEMETRY: &str = "dt/monitoring/1/d-1/telemetry";

async fn start(ingest: bool) -> (BrokerHandle, Option<mpsc::Receiver<Ingested>>) {
    let config = BrokerConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        ws: Some("127.0.0.1:0".parse().unwrap()),
        connect_timeout: Duration::from_secs(2),
        ingest: ingest.then(|| IngestConfig {
            filters: vec![
                "dt/monitoring/+/+/telemetry".into(),
                "monitoring-device/+".into(),
            ],
            queue: 100,
        }),
        ..BrokerConfig::default()
    };
    Broker::start(config).await.unwrap()
}

fn tcp(b: &BrokerHandle) -> SocketAddr {
    b.local_addr(ListenerKind::Tcp).unwrap()
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_once_and_plain_qos1_is_acked_at_once() {
    let (b, _) = start(false).await;
    let mut sub = Raw::connect(tcp(&b), "sub").await;
    sub.subscribe(&[
        ("a/+", QoS::AtLeastOnce),
        ("a/b", QoS::AtMostOnce),
        ("#", QoS::AtMostOnce),
    ])
    .await;
    let mut publisher = Raw::connect(tcp(&b), "pub").await;
    publisher.publish("a/b", b"hello", Some(7)).await;
    assert_eq!(publisher.recv().await, In::PubAck(7));
    assert_eq!(
        sub.recv().await,
        In::Publish {
            topic: "a/b".into(),
            payload: b"hello".to_vec(),
            qos: QoS::AtLeastOnce
        }
    );
    sub.quiet().await;
    assert_eq!(b.stats().received, 1);
}

#[tokio::test]
async fn telemetry_is_acked_only_after_the_application_completes_it_in_publish_order() {
    let (b, rx) = start(true).await;
    let mut rx = rx.unwrap();
    let mut device = Raw::connect(tcp(&b), "d-1").await;
    device.publish(TELEMETRY, b"t1", Some(1)).await;
    device.publish("other/topic", b"n", Some(2)).await;
    device.publish(TELEMETRY, b"t2", Some(3)).await;
    device.publish(TELEMETRY, b"t0", None).await;
    let t1 = rx.recv().await.unwrap();
    let t2 = rx.recv().await.unwrap();
    let t0 = rx.recv().await.unwrap();
    assert_eq!(
        (t1.payload.as_slice(), t2.payload.as_slice()),
        (&b"t1"[..], &b"t2"[..])
    );
    assert!(t0.ack.is_none(), "QoS 0 has nothing to ack");
    assert_eq!(&*t1.client_id, "d-1");
    assert_ne!(t1.source_id, t2.source_id);
    // Nothing is acked yet: not even pkid 2, which must wait behind pkid 1.
    device.quiet().await;
    t2.ack.unwrap().complete();
    device.quiet().await;
    t1.ack.unwrap().complete();
    assert_eq!(device.recv().await, In::PubAck(1));
    assert_eq!(device.recv().await, In::PubAck(2));
    assert_eq!(device.recv().await, In::PubAck(3));
}

#[tokio::test]
async fn a_dropped_ack_closes_the_connection_so_the_device_resends() {
    let (b, rx) = start(true).await;
    let mut rx = rx.unwrap();
    let mut device = Raw::connect(tcp(&b), "d-1").await;
    device.publish(TELEMETRY, b"t1", Some(1)).await;
    let message = rx.recv().await.unwrap();
    drop(message); // the store failed
    assert!(device.closed().await);
}

#[tokio::test]
async fn the_will_is_published_on_a_broken_connection_but_not_after_disconnect() {
    let (b, _) = start(false).await;
    let mut watcher = Raw::connect(tcp(&b), "watcher").await;
    watcher.subscribe(&[("wills/#", QoS::AtMostOnce)]).await;
    let will = |topic| {
        Some(Will {
            topic,
            payload: b"gone",
            qos: QoS::AtMostOnce,
            retain: false,
        })
    };
    let polite = Raw::connect_with(tcp(&b), "polite", 60, will("wills/polite")).await;
    let mut polite = polite;
    polite.send(&[Packet::Disconnect]).await;
    let rude = Raw::connect_with(tcp(&b), "rude", 60, will("wills/rude")).await;
    drop(rude);
    assert_eq!(
        watcher.recv().await,
        In::Publish {
            topic: "wills/rude".into(),
            payload: b"gone".to_vec(),
            qos: QoS::AtMostOnce
        }
    );
    watcher.quiet().await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_one_and_a_half_keepalives() {
    let (b, _) = start(false).await;
    let mut quiet = Raw::connect_with(tcp(&b), "quiet", 1, None).await;
    let mut pinging = Raw::connect_with(tcp(&b), "pinging", 1, None).await;
    let started = std::time::Instant::now();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        pinging.send(&[Packet::PingReq]).await;
        assert_eq!(pinging.recv().await, In::PingResp);
    }
    assert!(quiet.closed().await);
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(b.client_count(), 1, "only the pinging client is left");
}

#[tokio::test]
async fn a_second_connection_with_the_same_client_id_takes_over() {
    let (b, _) = start(false).await;
    let mut first = Raw::connect(tcp(&b), "dev").await;
    let _second = Raw::connect(tcp(&b), "dev").await;
    assert!(first.closed().await);
    assert_eq!(b.client_count(), 1);
}

#[tokio::test]
async fn protocol_violations_are_refused() {
    let (b, _) = start(false).await;
    // A PUBLISH before CONNECT.
    let mut raw = Raw::open(tcp(&b)).await;
    raw.publish("a", b"x", None).await;
    assert!(raw.closed().await);
    // MQTT 5 (protocol level 5): CONNACK with return code 1, then close.
    let mut raw = Raw::open(tcp(&b)).await;
    let mut connect = Vec::new();
    encode(
        &Packet::Connect(Connect {
            client_id: "v5",
            keep_alive_s: 0,
            clean_session: true,
            will: None,
            username: None,
            password: None,
        }),
        &mut connect,
    )
    .unwrap();
    connect[8] = 5;
    raw.stream.write_all(&connect).await.unwrap();
    assert_eq!(
        raw.recv().await,
        In::ConnAck(ConnectReturnCode::UnacceptableProtocolVersion)
    );
    assert!(raw.closed().await);
    // QoS 2 and garbage close the connection; the broker keeps serving others.
    let mut raw = Raw::connect(tcp(&b), "q2").await;
    raw.send(&[Packet::Publish(Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: "a",
        pkid: Some(1),
        payload: b"",
    })])
    .await;
    assert!(raw.closed().await);
    let mut raw = Raw::connect(tcp(&b), "junk").await;
    raw.stream.write_all(&[0xf0, 0x00]).await.unwrap();
    assert!(raw.closed().await);
    let mut ok = Raw::connect(tcp(&b), "still-fine").await;
    ok.send(&[Packet::PingReq]).await;
    assert_eq!(ok.recv().await, In::PingResp);
    assert!(b.stats().errors >= 2);
}

#[tokio::test]
async fn oversized_publishes_close_the_connection() {
    let (b, _) = start(false).await;
    let mut raw = Raw::connect(tcp(&b), "big").await;
    let big = vec![b'x'; 200 * 1024];
    raw.publish("a", &big, None).await;
    assert!(raw.closed().await);
}

#[tokio::test]
async fn websocket_clients_speak_mqtt_in_binary_frames_at_slash_mqtt() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (b, _) = start(false).await;
    let addr = b.local_addr(ListenerKind::WebSocket).unwrap();
    let mut request = format!("ws://{addr}/mqtt").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "mqtt"
    );
    // CONNECT and SUBSCRIBE in one frame; then a PUBLISH split over two frames.
    let mut frame = Vec::new();
    encode(
        &Packet::Connect(Connect {
            client_id: "browser",
            keep_alive_s: 30,
            clean_session: true,
            will: None,
            username: None,
            password: None,
        }),
        &mut frame,
    )
    .unwrap();
    encode(
        &Packet::Subscribe(Subscribe {
            pkid: 9,
            filters: vec![("echo", QoS::AtMostOnce)],
        }),
        &mut frame,
    )
    .unwrap();
    ws.send(Message::binary(frame)).await.unwrap();
    let mut publish = Vec::new();
    encode(
        &Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "echo",
            pkid: None,
            payload: b"round trip",
        }),
        &mut publish,
    )
    .unwrap();
    let (a, c) = publish.split_at(5);
    ws.send(Message::binary(a.to_vec())).await.unwrap();
    ws.send(Message::binary(c.to_vec())).await.unwrap();
    let mut received = Vec::new();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let Message::Binary(data) = ws.next().await.unwrap().unwrap() else {
            continue;
        };
        received.extend_from_slice(&data);
        while let Some((p, used)) = decode(&received, usize::MAX).unwrap() {
            seen.push(p.name());
            if let Packet::Publish(p) = &p {
                assert_eq!(p.payload, b"round trip");
            }
            received.drain(..used);
        }
    }
    assert_eq!(seen, ["CONNACK", "SUBACK", "PUBLISH"]);
    // Any other path is not MQTT.
    let wrong = format!("ws://{addr}/other").into_client_request().unwrap();
    assert!(tokio_tungstenite::connect_async(wrong).await.is_err());
}

#[tokio::test]
async fn a_busy_port_is_a_clear_error() {
    let (b, _) = start(false).await;
    let taken = tcp(&b);
    let err = Broker::start(BrokerConfig {
        tcp: Some(taken),
        ..BrokerConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, BindError::InUse { .. }));
    assert!(err.to_string().contains("already in use"), "{err}");
}

#[tokio::test]
async fn shutdown_closes_every_connection() {
    let (b, _) = start(false).await;
    let addr = tcp(&b);
    let mut a = Raw::connect(addr, "a").await;
    let mut c = Raw::connect(addr, "c").await;
    b.shutdown(Duration::from_secs(2)).await;
    assert!(a.closed().await && c.closed().await);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn application_publishes_reach_exact_and_wildcard_subscribers() {
    let (b, _) = start(false).await;
    let mut device = Raw::connect(tcp(&b), "d-1").await;
    device
        .subscribe(&[("cmd/monitoring/1/d-1/remediation", QoS::AtLeastOnce)])
        .await;
    let mut ui = Raw::connect(tcp(&b), "ui").await;
    ui.subscribe(&[("dt/monitoring/alarms", QoS::AtMostOnce)])
        .await;
    assert_eq!(
        b.publish(
            "cmd/monitoring/1/d-1/remediation",
            b"cool",
            QoS::AtLeastOnce
        ),
        1
    );
    assert_eq!(
        b.publish("dt/monitoring/alarms", b"alarm", QoS::AtMostOnce),
        1
    );
    assert_eq!(
        b.publish(
            "cmd/monitoring/1/d-2/remediation",
            b"cool",
            QoS::AtLeastOnce
        ),
        0
    );
    assert!(matches!(
        device.recv().await,
        In::Publish {
            qos: QoS::AtLeastOnce,
            ..
        }
    ));
    assert!(matches!(ui.recv().await, In::Publish { .. }));
}

#[tokio::test]
async fn after_shutdown_the_ingest_stream_drains_and_ends() {
    let (b, rx) = start(true).await;
    let mut rx = rx.unwrap();
    let mut device = Raw::connect(tcp(&b), "d-1").await;
    device.publish(TELEMETRY, b"t1", Some(1)).await;
    device.publish(TELEMETRY, b"t2", Some(2)).await;
    // Wait until the broker queued both, then stop it.
    while b.stats().ingested < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.shutdown(Duration::from_secs(2)).await;
    let mut payloads = Vec::new();
    while let Some(m) = timeout(Duration::from_secs(2), rx.recv()).await.unwrap() {
        payloads.push(m.payload);
    }
    assert_eq!(
        payloads,
        [b"t1".to_vec(), b"t2".to_vec()],
        "queued messages are not lost"
    );
}

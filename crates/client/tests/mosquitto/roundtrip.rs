//! Publish and receive our own messages over each transport.

use fleet_client::{
    Backoff, BrokerUrl, Client, ClientEvent, Options, QoS, Status, SubscribeReturn, TlsFiles,
};

use crate::support::{Listener, Mosquitto, TempDir, free_port, wait_for};

pub fn options(client_id: &str) -> Options {
    let mut options = Options::new(client_id);
    options.backoff = Backoff {
        initial_ms: 100,
        max_ms: 500,
    };
    options
}

/// Subscribes, publishes one QoS 0 and one QoS 1 message to itself, and checks the
/// SUBACK, the PUBACK and both deliveries.
pub async fn exchange(url: &str, tls: Option<TlsFiles>) {
    let url = BrokerUrl::parse(url).unwrap();
    let (client, mut events) = Client::spawn(options("roundtrip"), url, tls, 1).unwrap();
    client
        .subscribe(&[("fleet/test/#", QoS::AtLeastOnce)])
        .await
        .unwrap();
    let granted = wait_for(&mut events, "SUBACK", |e| match e {
        ClientEvent::Subscribed { results } => Some(results.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        granted,
        vec![(
            "fleet/test/#".to_owned(),
            SubscribeReturn::Success(QoS::AtLeastOnce)
        )]
    );
    assert_eq!(client.status(), Status::Connected);

    let none = client
        .publish("fleet/test/zero", "qos 0", QoS::AtMostOnce)
        .await
        .unwrap();
    assert_eq!(none, None);
    let pkid = client
        .publish("fleet/test/one", b"qos 1".to_vec(), QoS::AtLeastOnce)
        .await
        .unwrap()
        .expect("a QoS 1 publish has a packet identifier");

    let mut acked = false;
    let mut received = Vec::new();
    while !acked || received.len() < 2 {
        let event = wait_for(&mut events, "the ack and both messages", |e| match e {
            ClientEvent::Acked { .. } | ClientEvent::Message(_) => Some(e.clone()),
            _ => None,
        })
        .await;
        match event {
            ClientEvent::Acked { pkid: p, .. } => {
                assert_eq!(p, pkid);
                acked = true;
            }
            ClientEvent::Message(m) => received.push((m.topic, m.payload, m.qos)),
            _ => unreachable!(),
        }
    }
    received.sort();
    assert_eq!(
        received,
        vec![
            (
                "fleet/test/one".to_owned(),
                b"qos 1".to_vec(),
                QoS::AtLeastOnce
            ),
            (
                "fleet/test/zero".to_owned(),
                b"qos 0".to_vec(),
                QoS::AtMostOnce
            ),
        ]
    );
    let stats = client.stats();
    assert_eq!((stats.published, stats.acked, stats.received), (2, 1, 2));

    client.unsubscribe(&["fleet/test/#"]).await.unwrap();
    let removed = wait_for(&mut events, "UNSUBACK", |e| match e {
        ClientEvent::Unsubscribed { filters } => Some(filters.clone()),
        _ => None,
    })
    .await;
    assert_eq!(removed, ["fleet/test/#"]);

    client.disconnect().await.unwrap();
    let reason = wait_for(&mut events, "the final Disconnected", |e| match e {
        ClientEvent::Disconnected {
            reason,
            reconnect_in,
        } => Some((reason.clone(), *reconnect_in)),
        _ => None,
    })
    .await;
    assert_eq!(reason, (fleet_client::DisconnectReason::Requested, None));
    assert!(
        events.recv().await.is_none(),
        "the task ends after disconnect"
    );
}

#[tokio::test]
async fn publishes_and_receives_over_tcp() {
    let dir = TempDir::new();
    let port = free_port();
    let _broker = Mosquitto::start(&dir, &[Listener::Tcp(port)], None, false);
    exchange(&format!("mqtt://127.0.0.1:{port}"), None).await;
}

#[tokio::test]
async fn publishes_and_receives_over_websocket() {
    let dir = TempDir::new();
    let port = free_port();
    let _broker = Mosquitto::start(&dir, &[Listener::Ws(port)], None, false);
    exchange(&format!("ws://127.0.0.1:{port}/mqtt"), None).await;
}

/// Thousands of fire-and-forget publishes: all acknowledged, all delivered, in order.
#[tokio::test]
async fn many_nowait_publishes_are_all_acked_and_delivered_in_order() {
    const COUNT: usize = 5_000;
    let dir = TempDir::new();
    let tcp = free_port();
    let ws = free_port();
    let _broker = Mosquitto::start(&dir, &[Listener::Tcp(tcp), Listener::Ws(ws)], None, false);
    let url = |s: &str| BrokerUrl::parse(s).unwrap();

    let (subscriber, mut inbox) = Client::spawn(
        options("bulk-sub"),
        url(&format!("mqtt://127.0.0.1:{tcp}")),
        None,
        2,
    )
    .unwrap();
    subscriber
        .subscribe(&[("bulk/#", QoS::AtLeastOnce)])
        .await
        .unwrap();
    wait_for(&mut inbox, "SUBACK", |e| {
        matches!(e, ClientEvent::Subscribed { .. }).then_some(())
    })
    .await;

    // Over WebSocket, where batching matters most: many packets per frame.
    let (publisher, mut events) = Client::spawn(
        options("bulk-pub"),
        url(&format!("ws://127.0.0.1:{ws}")),
        None,
        3,
    )
    .unwrap();
    publisher.connected().await.unwrap();
    // Both event streams are drained at once: a client whose events are not read stops
    // reading from the broker, by design.
    let collector = tokio::spawn(async move {
        let mut payloads = Vec::with_capacity(COUNT);
        while payloads.len() < COUNT {
            let payload = wait_for(&mut inbox, "bulk messages", |e| match e {
                ClientEvent::Message(m) => Some(m.payload.clone()),
                _ => None,
            })
            .await;
            payloads.push(String::from_utf8(payload).unwrap());
        }
        payloads
    });
    let sender = publisher.clone();
    tokio::spawn(async move {
        // Every other one with a tag, which its acknowledgement brings back.
        for i in 0..COUNT {
            let payload = i.to_string();
            if i % 2 == 0 {
                let tag = i as u64;
                sender
                    .publish_tagged("bulk/data", payload, QoS::AtLeastOnce, tag)
                    .await
                    .unwrap();
            } else {
                sender
                    .publish_nowait("bulk/data", payload, QoS::AtLeastOnce)
                    .await
                    .unwrap();
            }
        }
    });

    let mut acks = 0;
    let mut tags = Vec::new();
    while acks < COUNT {
        let tag = wait_for(&mut events, "acks", |e| match e {
            ClientEvent::Acked { tag, .. } => Some(*tag),
            ClientEvent::PublishRejected { error, .. } => panic!("rejected: {error}"),
            _ => None,
        })
        .await;
        tags.extend(tag);
        acks += 1;
    }
    tags.sort_unstable();
    let even: Vec<u64> = (0..COUNT as u64).step_by(2).collect();
    assert_eq!(tags, even, "each tagged publish's ack carries its tag");
    let payloads = collector.await.unwrap();
    let expected: Vec<String> = (0..COUNT).map(|i| i.to_string()).collect();
    assert_eq!(payloads, expected);
    let stats = publisher.stats();
    assert_eq!(stats.acked, COUNT as u64);
    assert!(
        stats.bytes_out > 0 && publisher.snapshot().inflight == 0,
        "{:?}",
        publisher.snapshot()
    );
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
}

/// Two connections sharing one event channel (`Client::start_shared`): each event comes
/// tagged with the connection it belongs to.
#[tokio::test]
async fn connections_sharing_an_event_channel_tag_their_events() {
    let dir = TempDir::new();
    let port = free_port();
    let _broker = Mosquitto::start(&dir, &[Listener::Tcp(port)], None, false);
    let url = BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let (tx, mut events) = tokio::sync::mpsc::channel(64);
    let a = Client::new(options("shared-a"), url.clone())
        .start_shared(7, tx.clone())
        .unwrap();
    let b = Client::new(options("shared-b"), url)
        .start_shared(9, tx)
        .unwrap();
    for (client, topic) in [(&a, "fleet/shared/a"), (&b, "fleet/shared/b")] {
        client
            .subscribe(&[(topic, QoS::AtLeastOnce)])
            .await
            .unwrap();
    }
    let mut subscribed = Vec::new();
    while subscribed.len() < 2 {
        let (tag, event) = tokio::time::timeout(std::time::Duration::from_secs(20), events.recv())
            .await
            .expect("both SUBACKs within 20 s")
            .expect("the channel stays open");
        if let ClientEvent::Subscribed { results } = event {
            subscribed.push((tag, results[0].0.clone()));
        }
    }
    subscribed.sort();
    assert_eq!(
        subscribed,
        [
            (7, "fleet/shared/a".to_owned()),
            (9, "fleet/shared/b".to_owned())
        ]
    );
    // Each publishes to the other: the message arrives tagged with the receiver, the ack
    // with the sender.
    a.publish("fleet/shared/b", "from a", QoS::AtLeastOnce)
        .await
        .unwrap();
    b.publish("fleet/shared/a", "from b", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (mut received, mut acked) = (Vec::new(), Vec::new());
    while received.len() < 2 || acked.len() < 2 {
        let (tag, event) = tokio::time::timeout(std::time::Duration::from_secs(20), events.recv())
            .await
            .expect("both messages and both acks within 20 s")
            .expect("the channel stays open");
        match event {
            ClientEvent::Message(m) => received.push((tag, m.topic, m.payload)),
            ClientEvent::Acked { .. } => acked.push(tag),
            _ => {}
        }
    }
    received.sort();
    acked.sort_unstable();
    assert_eq!(
        received,
        [
            (7, "fleet/shared/a".to_owned(), b"from b".to_vec()),
            (9, "fleet/shared/b".to_owned(), b"from a".to_vec()),
        ]
    );
    assert_eq!(acked, [7, 9]);
    a.disconnect().await.unwrap();
    b.disconnect().await.unwrap();
}

//! Broker restarts: the client reconnects with backoff, and QoS 1 messages published
//! while the broker was down are delivered afterwards.

use std::collections::BTreeSet;

use fleet_client::{BrokerUrl, Client, ClientEvent, DisconnectReason, QoS, Status};

use crate::roundtrip::options;
use crate::support::{Listener, Mosquitto, TempDir, free_port, wait_for};

const BEFORE: u32 = 50;
const DURING: u32 = 50;

fn is_ack(e: &ClientEvent) -> Option<u16> {
    match e {
        ClientEvent::Acked { pkid, .. } => Some(*pkid),
        _ => None,
    }
}

#[tokio::test]
async fn qos1_messages_published_during_a_broker_restart_are_delivered() {
    let dir = TempDir::new();
    let port = free_port();
    // Persistent, so the subscriber's session and its queue survive the restart: then the
    // check does not depend on which client reconnects first.
    let mut broker = Mosquitto::start(&dir, &[Listener::Tcp(port)], None, true);
    let url = BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();

    let mut sub_options = options("restart-sub");
    sub_options.clean_session = false;
    let (subscriber, mut inbox) = Client::spawn(sub_options, url.clone(), None, 6).unwrap();
    subscriber
        .subscribe(&[("restart/#", QoS::AtLeastOnce)])
        .await
        .unwrap();
    wait_for(&mut inbox, "SUBACK", |e| {
        matches!(e, ClientEvent::Subscribed { .. }).then_some(())
    })
    .await;
    let collector = tokio::spawn(async move {
        let mut payloads = BTreeSet::new();
        let mut resumed = Vec::new();
        while payloads.len() < (BEFORE + DURING) as usize {
            let event = wait_for(&mut inbox, "restart messages", |e| match e {
                ClientEvent::Message(_) | ClientEvent::Connected { .. } => Some(e.clone()),
                _ => None,
            })
            .await;
            match event {
                // At least once: a message in flight at the stop may come twice.
                ClientEvent::Message(m) => {
                    payloads.insert(String::from_utf8(m.payload).unwrap());
                }
                ClientEvent::Connected { session_present } => resumed.push(session_present),
                _ => unreachable!(),
            }
        }
        (payloads, resumed)
    });

    let (publisher, mut events) = Client::spawn(options("restart-pub"), url, None, 7).unwrap();
    publisher.connected().await.unwrap();
    for i in 0..BEFORE {
        publisher
            .publish(format!("restart/{i}"), i.to_string(), QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    for _ in 0..BEFORE {
        wait_for(&mut events, "acks before the restart", is_ack).await;
    }

    broker.stop();
    let retry = wait_for(&mut events, "the lost connection", |e| match e {
        ClientEvent::Disconnected { reconnect_in, .. } => Some(*reconnect_in),
        _ => None,
    })
    .await;
    assert!(retry.is_some(), "the client plans a new attempt");

    let mut pkids = BTreeSet::new();
    for i in BEFORE..BEFORE + DURING {
        let pkid = publisher
            .publish(format!("restart/{i}"), i.to_string(), QoS::AtLeastOnce)
            .await
            .unwrap()
            .expect("QoS 1 messages are queued while offline");
        pkids.insert(pkid);
    }
    assert_eq!(publisher.snapshot().queued, DURING as usize);
    // At least one attempt fails while the broker is down: backoff, not a busy loop.
    let reason = wait_for(&mut events, "a refused attempt", |e| match e {
        ClientEvent::Disconnected { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(&reason, DisconnectReason::TransportError(t) if t.contains("connection refused")),
        "{reason:?}"
    );

    broker.restart();
    wait_for(&mut events, "the reconnect", |e| {
        matches!(e, ClientEvent::Connected { .. }).then_some(())
    })
    .await;
    while !pkids.is_empty() {
        let pkid = wait_for(&mut events, "acks after the restart", is_ack).await;
        pkids.remove(&pkid);
    }

    let (payloads, resumed) = collector.await.unwrap();
    assert_eq!(resumed, [true], "the broker kept the subscriber's session");
    let expected: BTreeSet<String> = (0..BEFORE + DURING).map(|i| i.to_string()).collect();
    assert_eq!(payloads, expected, "no message is missing");

    let stats = publisher.stats();
    assert_eq!(stats.reconnects, 1);
    assert!(stats.failed_attempts >= 1);
    assert_eq!(stats.acked, u64::from(BEFORE + DURING));
    assert_eq!(publisher.status(), Status::Connected);
    assert_eq!(subscriber.stats().reconnects, 1);
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
}

/// With the queue full, publishers wait (back-pressure) instead of failing, and go on
/// once a broker appears and acknowledges.
#[tokio::test]
async fn a_full_queue_makes_publishers_wait_until_the_broker_is_back() {
    const COUNT: usize = 30;
    let port = free_port();
    let mut opts = options("patient");
    opts.max_queued = 10;
    let url = BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let (client, mut events) = Client::spawn(opts, url, None, 10).unwrap();
    let publisher = client.clone();
    let publishing = tokio::spawn(async move {
        let mut pkids = BTreeSet::new();
        for i in 0..COUNT {
            let pkid = publisher
                .publish("wait/here", i.to_string(), QoS::AtLeastOnce)
                .await;
            pkids.insert(pkid.unwrap().unwrap());
        }
        pkids
    });
    // Nobody listens on the port yet: the attempts fail, the queue fills up.
    for _ in 0..2 {
        wait_for(&mut events, "a refused attempt", |e| {
            matches!(e, ClientEvent::Disconnected { .. }).then_some(())
        })
        .await;
    }
    assert_eq!(client.snapshot().queued, 10);
    assert!(!publishing.is_finished(), "the publisher waits for room");

    let dir = TempDir::new();
    let _broker = Mosquitto::start(&dir, &[Listener::Tcp(port)], None, false);
    let mut pkids = publishing.await.unwrap();
    assert_eq!(pkids.len(), COUNT);
    while !pkids.is_empty() {
        let pkid = wait_for(&mut events, "acks", is_ack).await;
        pkids.remove(&pkid);
    }
    assert_eq!(client.stats().acked, COUNT as u64);
    client.disconnect().await.unwrap();
}

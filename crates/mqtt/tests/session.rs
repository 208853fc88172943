//! Scripted session tests: a fake broker feeds exact packet sequences, including the faults
//! a real network produces (lost acks, mid-flight closes, refusals, silence, odd framing).

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

use fleet_mqtt::codec::{decode, encode};
use fleet_mqtt::packet::{ConnAck, Packet, Publish, SubAck};
use fleet_mqtt::{
    ConnectReturnCode, DisconnectReason, Event, Options, PublishError, QoS, Session, Status,
    SubscribeReturn, TransportAction,
};

/// What the client sent, owned so tests can compare it.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Connect {
        client_id: String,
        keep_alive_s: u16,
        clean: bool,
    },
    Publish {
        topic: String,
        pkid: Option<u16>,
        dup: bool,
        payload: Vec<u8>,
    },
    PubAck(u16),
    Subscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
}

fn owned(p: Packet<'_>) -> Out {
    match p {
        Packet::Connect(c) => Out::Connect {
            client_id: c.client_id.into(),
            keep_alive_s: c.keep_alive_s,
            clean: c.clean_session,
        },
        Packet::Publish(p) => Out::Publish {
            topic: p.topic.into(),
            pkid: p.pkid,
            dup: p.dup,
            payload: p.payload.to_vec(),
        },
        Packet::PubAck(id) => Out::PubAck(id),
        Packet::Subscribe(s) => Out::Subscribe {
            pkid: s.pkid,
            filters: s.filters.iter().map(|(f, _)| f.to_string()).collect(),
        },
        Packet::Unsubscribe(u) => Out::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters.iter().map(|f| f.to_string()).collect(),
        },
        Packet::PingReq => Out::PingReq,
        Packet::Disconnect => Out::Disconnect,
        other => panic!("a client never sends {}", other.name()),
    }
}

fn bytes(packets: &[Packet<'_>]) -> Vec<u8> {
    let mut buf = Vec::new();
    for p in packets {
        encode(p, &mut buf).unwrap();
    }
    buf
}

fn connack(code: ConnectReturnCode, session_present: bool) -> Packet<'static> {
    Packet::ConnAck(ConnAck {
        session_present,
        code,
    })
}

fn publish_to_client<'a>(topic: &'a str, payload: &'a [u8], pkid: Option<u16>) -> Packet<'a> {
    Packet::Publish(Publish {
        dup: false,
        qos: if pkid.is_some() {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        },
        retain: false,
        topic,
        pkid,
        payload,
    })
}

struct Harness {
    s: Session,
    now: u64,
}

impl Harness {
    fn with(options: Options) -> Harness {
        Harness {
            s: Session::new(options, 42).unwrap(),
            now: 1_000,
        }
    }

    fn new() -> Harness {
        let mut options = Options::new("d-0001");
        options.keep_alive_s = 30;
        Harness::with(options)
    }

    /// Drives the session through transport open and an accepted CONNACK.
    fn connected(options: Options) -> Harness {
        let mut h = Harness::with(options);
        h.open();
        h.feed(&[connack(ConnectReturnCode::Accepted, false)]);
        assert_eq!(
            h.events(),
            [Event::Connected {
                session_present: false
            }]
        );
        h
    }

    fn open(&mut self) -> Vec<Out> {
        assert_eq!(self.s.poll_transport(self.now), TransportAction::Open);
        self.s.transport_opened(self.now);
        let sent = self.sent();
        assert!(matches!(sent[0], Out::Connect { .. }), "{sent:?}");
        sent
    }

    fn sent(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        let tx = self.s.transmit().to_vec();
        let mut rest = &tx[..];
        while let Some((p, used)) = decode(rest, usize::MAX).unwrap() {
            out.push(owned(p));
            rest = &rest[used..];
        }
        assert!(rest.is_empty(), "the session wrote a partial packet");
        self.s.consume_transmit(tx.len());
        out
    }

    fn feed(&mut self, packets: &[Packet<'_>]) {
        self.s.handle_input(self.now, &bytes(packets));
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }

    fn advance_to(&mut self, now: u64) {
        self.now = now;
        self.s.handle_timeout(now);
    }

    /// Waits out the backoff and reconnects; returns what went out after CONNACK.
    fn reconnect(&mut self, session_present: bool) -> Vec<Out> {
        let at = self.s.poll_timeout().expect("a reconnect is scheduled");
        assert!(at > self.now, "backoff must delay the reconnect");
        assert_eq!(self.s.poll_transport(at - 1), TransportAction::None);
        self.now = at;
        self.open();
        self.feed(&[connack(ConnectReturnCode::Accepted, session_present)]);
        self.sent()
    }
}

#[test]
fn connect_sends_the_options_and_reports_connected() {
    let mut h = Harness::new();
    let sent = h.open();
    assert_eq!(
        sent,
        [Out::Connect {
            client_id: "d-0001".into(),
            keep_alive_s: 30,
            clean: true
        }]
    );
    assert_eq!(h.s.status(), Status::Connecting);
    h.feed(&[connack(ConnectReturnCode::Accepted, false)]);
    assert_eq!(
        h.events(),
        [Event::Connected {
            session_present: false
        }]
    );
    assert!(h.s.is_connected());
}

#[test]
fn every_connack_refusal_is_a_clear_error_followed_by_a_backoff() {
    let refusals = [
        (
            ConnectReturnCode::UnacceptableProtocolVersion,
            "unacceptable protocol version",
        ),
        (
            ConnectReturnCode::IdentifierRejected,
            "rejected the client id",
        ),
        (ConnectReturnCode::ServerUnavailable, "unavailable"),
        (
            ConnectReturnCode::BadUserNameOrPassword,
            "user name or password",
        ),
        (ConnectReturnCode::NotAuthorized, "not authorized"),
    ];
    for (code, words) in refusals {
        let mut h = Harness::new();
        h.open();
        h.feed(&[connack(code, false)]);
        let events = h.events();
        let [
            Event::Disconnected {
                reason,
                reconnect_at_ms: Some(at),
            },
        ] = &events[..]
        else {
            panic!("{events:?}");
        };
        assert_eq!(reason, &DisconnectReason::Refused(code));
        assert!(
            reason.to_string().contains(words),
            "{reason} should mention {words:?}"
        );
        assert!(*at > h.now);
        assert_eq!(h.s.poll_transport(h.now), TransportAction::Close);
        assert_eq!(h.s.status(), Status::Waiting);
        assert_eq!(h.s.stats().failed_attempts, 1);
    }
}

#[test]
fn lost_puback_is_resent_with_dup_after_reconnect() {
    let mut h = Harness::connected(Options::new("d-1"));
    let pkid = h.s.publish(
        h.now,
        "dt/monitoring/1/d-1/telemetry",
        b"r1",
        QoS::AtLeastOnce,
        false,
    );
    let pkid = pkid.unwrap().unwrap();
    assert_eq!(
        h.sent(),
        [Out::Publish {
            topic: "dt/monitoring/1/d-1/telemetry".into(),
            pkid: Some(pkid),
            dup: false,
            payload: b"r1".to_vec()
        }]
    );
    // The PUBACK never comes; the broker drops the connection.
    h.now += 5;
    h.s.transport_closed(h.now, None);
    assert!(matches!(
        &h.events()[..],
        [Event::Disconnected {
            reason: DisconnectReason::TransportClosed,
            reconnect_at_ms: Some(_)
        }]
    ));
    assert_eq!(h.s.inflight(), 0);
    assert_eq!(h.s.queued(), 1, "the message is kept, not lost");
    let resent = h.reconnect(false);
    assert_eq!(
        resent,
        [Out::Publish {
            topic: "dt/monitoring/1/d-1/telemetry".into(),
            pkid: Some(pkid),
            dup: true,
            payload: b"r1".to_vec()
        }]
    );
    h.feed(&[Packet::PubAck(pkid)]);
    let events = h.events();
    assert_eq!(events.last(), Some(&Event::Acked { pkid }));
    assert_eq!((h.s.inflight(), h.s.queued()), (0, 0));
    assert_eq!(h.s.stats().resent, 1);
    assert_eq!(h.s.stats().reconnects, 1);
}

#[test]
fn broker_closing_mid_flight_resends_in_flight_first_then_the_queue() {
    let mut options = Options::new("d-1");
    options.max_inflight = 3;
    let mut h = Harness::connected(options);
    for i in 0..5u8 {
        h.s.publish(h.now, "t", &[i], QoS::AtLeastOnce, false)
            .unwrap();
    }
    let first = h.sent();
    assert_eq!(first.len(), 3, "the window holds three");
    h.feed(&[Packet::PubAck(1)]);
    assert_eq!(h.sent().len(), 1, "one ack opens one slot");
    // In flight now: 2, 3, 4. Queued: 5. The broker vanishes mid-flight.
    h.s.transport_closed(h.now, Some("connection reset".into()));
    h.s.publish(h.now, "t", &[9], QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(h.s.queued(), 5);
    let resent = h.reconnect(false);
    let summary: Vec<(Option<u16>, bool)> = resent
        .iter()
        .map(|o| match o {
            Out::Publish { pkid, dup, .. } => (*pkid, *dup),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(summary, [(Some(2), true), (Some(3), true), (Some(4), true)]);
    h.feed(&[Packet::PubAck(2), Packet::PubAck(3), Packet::PubAck(4)]);
    let next: Vec<Option<u16>> = h
        .sent()
        .into_iter()
        .map(|o| match o {
            Out::Publish {
                pkid, dup: false, ..
            } => pkid,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        next,
        [Some(5), Some(6)],
        "queued messages go out after resends, without DUP"
    );
}

#[test]
fn the_inflight_window_never_exceeds_100() {
    let mut h = Harness::connected(Options::new("d-1"));
    for _ in 0..150 {
        h.s.publish(h.now, "t", b"x", QoS::AtLeastOnce, false)
            .unwrap();
    }
    assert_eq!(h.sent().len(), 100);
    assert_eq!((h.s.inflight(), h.s.queued()), (100, 50));
    h.feed(&[Packet::PubAck(1), Packet::PubAck(2)]);
    assert_eq!(h.sent().len(), 2);
    assert_eq!(h.s.inflight(), 100);
}

#[test]
fn qos1_is_queued_while_offline_and_qos0_is_refused() {
    let mut h = Harness::new();
    assert_eq!(
        h.s.publish(h.now, "t", b"x", QoS::AtMostOnce, false),
        Err(PublishError::NotConnected)
    );
    let pkid =
        h.s.publish(h.now, "t", b"x", QoS::AtLeastOnce, false)
            .unwrap();
    assert_eq!(pkid, Some(1));
    h.open();
    h.feed(&[connack(ConnectReturnCode::Accepted, false)]);
    assert_eq!(
        h.sent(),
        [Out::Publish {
            topic: "t".into(),
            pkid: Some(1),
            dup: false,
            payload: b"x".to_vec()
        }]
    );
}

#[test]
fn outbox_capacity_is_enforced() {
    let mut options = Options::new("d");
    options.max_inflight = 1;
    options.max_queued = 2;
    let mut h = Harness::with(options);
    for _ in 0..3 {
        h.s.publish(h.now, "t", b"x", QoS::AtLeastOnce, false)
            .unwrap();
    }
    assert_eq!(
        h.s.publish(h.now, "t", b"x", QoS::AtLeastOnce, false),
        Err(PublishError::QueueFull(3))
    );
}

#[test]
fn keepalive_pings_when_idle_and_pingresp_keeps_the_connection() {
    let mut h = Harness::connected(Options::new("d-1")); // keep-alive 60 s
    let start = h.now;
    assert_eq!(h.s.poll_timeout(), Some(start + 60_000));
    h.advance_to(start + 59_999);
    assert_eq!(h.sent(), []);
    h.advance_to(start + 60_000);
    assert_eq!(h.sent(), [Out::PingReq]);
    h.now = start + 60_050;
    h.feed(&[Packet::PingResp]);
    // The next ping is due a keep-alive after the last time we sent something.
    assert_eq!(h.s.poll_timeout(), Some(start + 120_000));
    h.advance_to(start + 120_000);
    assert_eq!(h.sent(), [Out::PingReq]);
    assert!(h.s.is_connected());
}

#[test]
fn a_silent_broker_is_declared_dead_at_one_and_a_half_keepalives() {
    let mut h = Harness::connected(Options::new("d-1"));
    let start = h.now;
    // The device keeps publishing QoS 0, so it is never idle on its side...
    for t in (0..90_000).step_by(2_000) {
        h.now = start + t;
        h.s.publish(h.now, "t", b"x", QoS::AtMostOnce, false)
            .unwrap();
        h.s.handle_timeout(h.now);
    }
    // ...but the broker said nothing, so a ping went out at 60 s.
    let pings = h.sent().iter().filter(|o| **o == Out::PingReq).count();
    assert_eq!(pings, 1);
    assert_eq!(h.s.poll_timeout(), Some(start + 90_000));
    h.advance_to(start + 90_000);
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [Event::Disconnected {
                reason: DisconnectReason::PingTimeout,
                reconnect_at_ms: Some(_)
            }]
        ),
        "{events:?}"
    );
    assert_eq!(h.s.poll_transport(h.now), TransportAction::Close);
}

#[test]
fn packets_split_across_frames_and_packed_into_one_frame_give_the_same_events() {
    let script = bytes(&[
        connack(ConnectReturnCode::Accepted, false),
        publish_to_client(
            "cmd/monitoring/1/d-1/remediation",
            b"{\"action\":\"cool\"}",
            Some(7),
        ),
        publish_to_client("dt/monitoring/alarms", b"alarm", None),
        Packet::PingResp,
    ]);
    let run = |chunks: Vec<&[u8]>| {
        let mut h = Harness::new();
        h.open();
        for chunk in chunks {
            h.s.handle_input(h.now, chunk);
        }
        (h.events(), h.sent())
    };
    let whole = run(vec![&script[..]]);
    assert_eq!(whole.0.len(), 3, "{:?}", whole.0);
    assert_eq!(whole.1, [Out::PubAck(7)]);
    let bytewise = run(script.chunks(1).collect());
    assert_eq!(bytewise, whole);
    for cut in 1..script.len() {
        let (a, b) = script.split_at(cut);
        assert_eq!(run(vec![a, b]), whole, "split at {cut}");
    }
}

#[test]
fn subscriptions_are_acked_refused_and_restored_after_reconnect() {
    let mut h = Harness::connected(Options::new("d-1"));
    h.s.subscribe(
        h.now,
        &[
            ("cmd/monitoring/1/d-1/remediation", QoS::AtLeastOnce),
            ("forbidden/#", QoS::AtMostOnce),
        ],
    )
    .unwrap();
    let sent = h.sent();
    let [Out::Subscribe { pkid, filters }] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(filters.len(), 2);
    h.feed(&[Packet::SubAck(SubAck {
        pkid: *pkid,
        returns: vec![
            SubscribeReturn::Success(QoS::AtLeastOnce),
            SubscribeReturn::Failure,
        ],
    })]);
    assert_eq!(
        h.events(),
        [Event::Subscribed {
            results: vec![
                (
                    "cmd/monitoring/1/d-1/remediation".into(),
                    SubscribeReturn::Success(QoS::AtLeastOnce)
                ),
                ("forbidden/#".into(), SubscribeReturn::Failure),
            ]
        }]
    );
    // A new connection without a stored session: only the granted filter comes back.
    h.s.transport_closed(h.now, None);
    let again = h.reconnect(false);
    let [Out::Subscribe { filters, .. }] = &again[..] else {
        panic!("{again:?}")
    };
    assert_eq!(filters, &["cmd/monitoring/1/d-1/remediation"]);
}

#[test]
fn a_resumed_session_is_not_subscribed_twice() {
    let mut options = Options::new("d-1");
    options.clean_session = false;
    let mut h = Harness::connected(options);
    h.s.subscribe(h.now, &[("a/b", QoS::AtMostOnce)]).unwrap();
    let sent = h.sent();
    let [Out::Subscribe { pkid, .. }] = &sent[..] else {
        panic!("{sent:?}")
    };
    h.feed(&[Packet::SubAck(SubAck {
        pkid: *pkid,
        returns: vec![SubscribeReturn::Success(QoS::AtMostOnce)],
    })]);
    h.s.transport_closed(h.now, None);
    assert_eq!(h.reconnect(true), [], "the broker kept the subscription");
}

#[test]
fn subscribe_made_offline_goes_out_on_connect_in_chunks_of_eight() {
    let mut h = Harness::new();
    let filters: Vec<String> = (0..10)
        .map(|i| format!("cmd/monitoring/1/d-{i}/remediation"))
        .collect();
    let list: Vec<(&str, QoS)> = filters
        .iter()
        .map(|f| (f.as_str(), QoS::AtLeastOnce))
        .collect();
    h.s.subscribe(h.now, &list).unwrap();
    h.open();
    h.feed(&[connack(ConnectReturnCode::Accepted, false)]);
    let sent = h.sent();
    let sizes: Vec<usize> = sent
        .iter()
        .map(|o| match o {
            Out::Subscribe { filters, .. } => filters.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sizes,
        [8, 2],
        "IoT Core takes at most 8 filters per SUBSCRIBE"
    );
}

#[test]
fn unsubscribe_is_acked_and_not_restored() {
    let mut h = Harness::connected(Options::new("d-1"));
    h.s.subscribe(h.now, &[("a/+", QoS::AtMostOnce)]).unwrap();
    h.sent();
    h.s.unsubscribe(h.now, &["a/+"]).unwrap();
    let sent = h.sent();
    let [Out::Unsubscribe { pkid, filters }] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(filters, &["a/+"]);
    h.feed(&[Packet::UnsubAck(*pkid)]);
    assert_eq!(
        h.events(),
        [Event::Unsubscribed {
            filters: vec!["a/+".into()]
        }]
    );
    h.s.transport_closed(h.now, None);
    assert_eq!(h.reconnect(false), []);
}

#[test]
fn disconnect_sends_disconnect_closes_and_stays_down() {
    let mut h = Harness::connected(Options::new("d-1"));
    h.s.publish(h.now, "t", b"unacked", QoS::AtLeastOnce, false)
        .unwrap();
    h.sent();
    h.s.disconnect(h.now);
    assert_eq!(h.sent(), [Out::Disconnect]);
    assert_eq!(
        h.events(),
        [Event::Disconnected {
            reason: DisconnectReason::Requested,
            reconnect_at_ms: None
        }]
    );
    assert_eq!(h.s.poll_transport(h.now), TransportAction::Close);
    assert_eq!(h.s.status(), Status::Stopped);
    assert_eq!(h.s.poll_timeout(), None);
    assert_eq!(h.s.poll_transport(h.now + 3_600_000), TransportAction::None);
    assert_eq!(
        h.s.publish(h.now, "t", b"x", QoS::AtLeastOnce, false),
        Err(PublishError::Stopped)
    );
    // Reconnecting later delivers what was not acknowledged.
    h.s.reconnect(h.now);
    h.open();
    h.feed(&[connack(ConnectReturnCode::Accepted, false)]);
    assert!(matches!(&h.sent()[..], [Out::Publish { dup: true, .. }]));
}

#[test]
fn connect_timeout_covers_transport_and_connack() {
    let mut h = Harness::new();
    assert_eq!(h.s.poll_transport(h.now), TransportAction::Open);
    // The transport never opens.
    assert_eq!(h.s.poll_timeout(), Some(h.now + 10_000));
    h.advance_to(h.now + 10_000);
    assert!(matches!(
        &h.events()[..],
        [Event::Disconnected {
            reason: DisconnectReason::ConnectTimeout,
            ..
        }]
    ));
    assert_eq!(h.s.poll_transport(h.now), TransportAction::Close);
    // Next attempt: the transport opens, the CONNACK never comes.
    let at = h.s.poll_timeout().unwrap();
    h.now = at;
    h.open();
    h.advance_to(at + 10_000);
    assert!(matches!(
        &h.events()[..],
        [Event::Disconnected {
            reason: DisconnectReason::ConnectTimeout,
            ..
        }]
    ));
    assert_eq!(h.s.stats().failed_attempts, 2);
}

#[test]
fn backoff_grows_with_failures_and_resets_after_a_good_connection() {
    let mut h = Harness::new();
    let mut delays = Vec::new();
    for _ in 0..6 {
        assert_eq!(h.s.poll_transport(h.now), TransportAction::Open);
        h.s.transport_closed(h.now, Some("connection refused".into()));
        let at = h.s.poll_timeout().unwrap();
        delays.push(at - h.now);
        h.now = at;
    }
    // Equal jitter: attempt n waits between cap/2 and cap, cap = 500 ms · 2ⁿ.
    for (n, d) in delays.iter().enumerate() {
        let cap = 500u64 << n;
        assert!((cap / 2..=cap).contains(d), "attempt {n}: {d} ms");
    }
    h.open();
    h.feed(&[connack(ConnectReturnCode::Accepted, false)]);
    h.events();
    h.s.transport_closed(h.now, None);
    let first_after_success = h.s.poll_timeout().unwrap() - h.now;
    assert!(
        first_after_success <= 500,
        "backoff reset: {first_after_success} ms"
    );
}

#[test]
fn the_same_seed_gives_the_same_reconnect_schedule() {
    let schedule = |seed| {
        let mut s = Session::new(Options::new("d"), seed).unwrap();
        let mut now = 0;
        let mut out = Vec::new();
        for _ in 0..5 {
            s.poll_transport(now);
            s.transport_closed(now, Some("down".into()));
            now = s.poll_timeout().unwrap();
            out.push(now);
        }
        out
    };
    assert_eq!(schedule(1), schedule(1));
    assert_ne!(schedule(1), schedule(2));
}

#[test]
fn protocol_violations_close_the_connection() {
    // A PUBLISH before CONNACK.
    let mut h = Harness::new();
    h.open();
    h.feed(&[publish_to_client("t", b"x", None)]);
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [Event::Disconnected {
                reason: DisconnectReason::Protocol(_),
                ..
            }]
        ),
        "{events:?}"
    );
    assert_eq!(h.s.poll_transport(h.now), TransportAction::Close);

    // QoS 2 traffic.
    let mut h = Harness::connected(Options::new("d"));
    h.feed(&[Packet::PubRec(3)]);
    assert!(matches!(
        &h.events()[..],
        [Event::Disconnected {
            reason: DisconnectReason::Protocol(_),
            ..
        }]
    ));

    // Garbage bytes.
    let mut h = Harness::connected(Options::new("d"));
    h.s.handle_input(h.now, &[0xf0, 0x00]);
    assert!(matches!(
        &h.events()[..],
        [Event::Disconnected {
            reason: DisconnectReason::Malformed(_),
            ..
        }]
    ));
}

#[test]
fn oversized_packets_are_refused_both_ways() {
    let mut h = Harness::connected(Options::new("d"));
    let big = vec![0u8; 128 * 1024 + 1];
    assert_eq!(
        h.s.publish(h.now, "t", &big, QoS::AtLeastOnce, false),
        Err(PublishError::PayloadTooLarge {
            size: big.len(),
            max: 128 * 1024
        })
    );
    assert_eq!(h.s.queued(), 0, "nothing was queued");
    // 128 KiB exactly is fine.
    assert!(
        h.s.publish(h.now, "t", &big[1..], QoS::AtMostOnce, false)
            .is_ok()
    );
    // From the broker: a header announcing 2 MB is enough to refuse it.
    h.s.handle_input(h.now, &[0x30, 0x80, 0x80, 0x80, 0x01]);
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [Event::Disconnected {
                reason: DisconnectReason::Malformed(fleet_mqtt::CodecError::TooLarge { .. }),
                ..
            }]
        ),
        "{events:?}"
    );
}

#[test]
fn received_messages_are_acked_and_delivered() {
    let mut h = Harness::connected(Options::new("d"));
    h.feed(&[
        publish_to_client("cmd/monitoring/1/d/remediation", b"cool", Some(300)),
        publish_to_client("dt/monitoring/alarms", b"a", None),
    ]);
    assert_eq!(h.sent(), [Out::PubAck(300)]);
    let events = h.events();
    let topics: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::Message(m) => m.topic.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        topics,
        ["cmd/monitoring/1/d/remediation", "dt/monitoring/alarms"]
    );
    assert_eq!(h.s.stats().received, 2);
}

#[test]
fn unknown_acks_are_counted_and_ignored() {
    let mut h = Harness::connected(Options::new("d"));
    h.feed(&[Packet::PubAck(77)]);
    assert_eq!(h.events(), []);
    assert_eq!(h.s.stats().unknown_acks, 1);
    assert!(h.s.is_connected());
}

#[test]
fn invalid_requests_are_refused_without_side_effects() {
    let mut h = Harness::connected(Options::new("d"));
    assert!(matches!(
        h.s.publish(h.now, "a/+", b"x", QoS::AtMostOnce, false),
        Err(PublishError::BadTopic(_))
    ));
    assert_eq!(
        h.s.publish(h.now, "a", b"x", QoS::ExactlyOnce, false),
        Err(PublishError::QoS2)
    );
    assert!(h.s.subscribe(h.now, &[("a/#/b", QoS::AtMostOnce)]).is_err());
    assert!(h.s.subscribe(h.now, &[]).is_err());
    assert_eq!(h.sent(), []);
    let mut bad = Options::new("d");
    bad.max_inflight = 101;
    assert!(Session::new(bad, 0).is_err());
}

//! Property tests for the codec: every packet round-trips, any split of a byte stream
//! decodes to the same packets, and no input makes the decoder panic.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

use fleet_mqtt::codec::{decode, encode};
use fleet_mqtt::packet::{ConnAck, Connect, Packet, Publish, SubAck, Subscribe, Unsubscribe, Will};
use fleet_mqtt::{ConnectReturnCode, QoS, SubscribeReturn};
use proptest::prelude::*;

/// Owned inputs from which a borrowed [`Packet`] is built.
#[derive(Debug, Clone)]
enum Spec {
    Connect {
        client_id: String,
        keep_alive_s: u16,
        clean: bool,
        will: Option<(String, Vec<u8>, QoS, bool)>,
        user: Option<(String, Option<Vec<u8>>)>,
    },
    ConnAck(bool, u8),
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos1: Option<(u16, bool)>,
        retain: bool,
    },
    Ack(u8, u16),
    Subscribe(u16, Vec<(String, QoS)>),
    SubAck(u16, Vec<Option<QoS>>),
    Unsubscribe(u16, Vec<String>),
    Bare(u8),
}

fn topic_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_ -]{0,8}(/[a-zA-Z0-9_é-]{0,8}){0,4}".prop_filter("non-empty", |s| !s.is_empty())
}

fn topic_filter() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop_oneof!["[a-z0-9]{1,6}", Just("+".to_string())], 1..5),
        any::<bool>(),
    )
        .prop_map(|(levels, hash)| {
            let mut f = levels.join("/");
            if hash {
                f.push_str("/#");
            }
            f
        })
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let pkid = 1..=u16::MAX;
    prop_oneof![
        (
            "[a-zA-Z0-9-]{0,23}",
            any::<u16>(),
            any::<bool>(),
            prop::option::of((
                topic_name(),
                prop::collection::vec(any::<u8>(), 0..40),
                qos(),
                any::<bool>()
            )),
            prop::option::of((
                "[a-z]{0,10}",
                prop::option::of(prop::collection::vec(any::<u8>(), 0..20))
            )),
        )
            .prop_map(
                |(client_id, keep_alive_s, clean, will, user)| Spec::Connect {
                    client_id,
                    keep_alive_s,
                    clean,
                    will,
                    user
                }
            ),
        (any::<bool>(), 0u8..=5).prop_map(|(sp, code)| Spec::ConnAck(sp, code)),
        (
            topic_name(),
            prop::collection::vec(any::<u8>(), 0..300),
            prop::option::of((pkid.clone(), any::<bool>())),
            any::<bool>()
        )
            .prop_map(|(topic, payload, qos1, retain)| Spec::Publish {
                topic,
                payload,
                qos1,
                retain
            }),
        (0u8..4, pkid.clone()).prop_map(|(kind, id)| Spec::Ack(kind, id)),
        (
            pkid.clone(),
            prop::collection::vec((topic_filter(), qos()), 1..6)
        )
            .prop_map(|(id, f)| Spec::Subscribe(id, f)),
        (
            pkid.clone(),
            prop::collection::vec(prop::option::of(qos()), 0..6)
        )
            .prop_map(|(id, r)| Spec::SubAck(id, r)),
        (pkid, prop::collection::vec(topic_filter(), 1..6))
            .prop_map(|(id, f)| Spec::Unsubscribe(id, f)),
        (0u8..3).prop_map(Spec::Bare),
    ]
}

fn packet(spec: &Spec) -> Packet<'_> {
    match spec {
        Spec::Connect {
            client_id,
            keep_alive_s,
            clean,
            will,
            user,
        } => Packet::Connect(Connect {
            client_id,
            keep_alive_s: *keep_alive_s,
            clean_session: *clean,
            will: will.as_ref().map(|(topic, payload, qos, retain)| Will {
                topic,
                payload,
                qos: *qos,
                retain: *retain,
            }),
            username: user.as_ref().map(|(u, _)| u.as_str()),
            password: user.as_ref().and_then(|(_, p)| p.as_deref()),
        }),
        Spec::ConnAck(session_present, code) => Packet::ConnAck(ConnAck {
            session_present: *session_present,
            code: ConnectReturnCode::from_byte(*code).unwrap(),
        }),
        Spec::Publish {
            topic,
            payload,
            qos1,
            retain,
        } => Packet::Publish(Publish {
            dup: qos1.is_some_and(|(_, dup)| dup),
            qos: if qos1.is_some() {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            },
            retain: *retain,
            topic,
            pkid: qos1.map(|(id, _)| id),
            payload,
        }),
        Spec::Ack(kind, id) => match kind {
            0 => Packet::PubAck(*id),
            1 => Packet::PubRec(*id),
            2 => Packet::PubRel(*id),
            _ => Packet::UnsubAck(*id),
        },
        Spec::Subscribe(pkid, filters) => Packet::Subscribe(Subscribe {
            pkid: *pkid,
            filters: filters.iter().map(|(f, q)| (f.as_str(), *q)).collect(),
        }),
        Spec::SubAck(pkid, returns) => Packet::SubAck(SubAck {
            pkid: *pkid,
            returns: returns
                .iter()
                .map(|r| r.map_or(SubscribeReturn::Failure, SubscribeReturn::Success))
                .collect(),
        }),
        Spec::Unsubscribe(pkid, filters) => Packet::Unsubscribe(Unsubscribe {
            pkid: *pkid,
            filters: filters.iter().map(String::as_str).collect(),
        }),
        Spec::Bare(kind) => match kind {
            0 => Packet::PingReq,
            1 => Packet::PingResp,
            _ => Packet::Disconnect,
        },
    }
}

proptest! {
    #[test]
    fn every_packet_roundtrips(spec in spec()) {
        let p = packet(&spec);
        let mut buf = Vec::new();
        encode(&p, &mut buf).unwrap();
        let (decoded, used) = decode(&buf, usize::MAX).unwrap().unwrap();
        prop_assert_eq!(used, buf.len());
        prop_assert_eq!(decoded, p);
        // Every strict prefix is "incomplete", never an error.
        for cut in 0..buf.len() {
            prop_assert_eq!(decode(&buf[..cut], usize::MAX), Ok(None));
        }
    }

    #[test]
    fn any_split_of_a_stream_decodes_to_the_same_packets(
        specs in prop::collection::vec(spec(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut stream = Vec::new();
        for s in &specs {
            encode(&packet(s), &mut stream).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        // Feed the chunks into a reassembly buffer the way a session does.
        let mut buffer = Vec::new();
        let mut decoded = Vec::new();
        let mut from = 0;
        for to in points {
            buffer.extend_from_slice(&stream[from..to]);
            from = to;
            let mut used = 0;
            while let Some((p, n)) = decode(&buffer[used..], usize::MAX).unwrap() {
                decoded.push(format!("{p:?}"));
                used += n;
            }
            buffer.drain(..used);
        }
        let expected: Vec<String> = specs.iter().map(|s| format!("{:?}", packet(s))).collect();
        prop_assert_eq!(decoded, expected);
        prop_assert!(buffer.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_overrun(bytes in prop::collection::vec(any::<u8>(), 0..512), max in 0usize..600) {
        if let Ok(Some((_, used))) = decode(&bytes, max) {
            prop_assert!(used <= bytes.len() && used <= max && used >= 2);
        }
    }
}

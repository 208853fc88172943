//! Model-based property test: whatever the network does, every QoS 1 message is delivered
//! to the broker at least once, acknowledged to the application exactly once, and the
//! window never holds more than `max_inflight` unacknowledged messages.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

use std::collections::{BTreeMap, BTreeSet};

use fleet_mqtt::codec::{decode, encode};
use fleet_mqtt::packet::{ConnAck, Packet};
use fleet_mqtt::{ConnectReturnCode, Event, Options, QoS, Session, TransportAction};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Publish,
    /// The broker acknowledges up to n of the messages it holds unacked, in order.
    Ack(usize),
    /// The connection drops (acks not yet sent are lost).
    Drop,
    /// Time passes and the driver runs the session's timers and transport requests.
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Publish),
        3 => (1usize..20).prop_map(Op::Ack),
        1 => Just(Op::Drop),
        2 => (1u64..5_000).prop_map(Op::Wait),
    ]
}

/// A broker that records what it received and acks in order.
struct Broker {
    connected: bool,
    /// Packet ids received on this connection and not yet acked, in order.
    unacked: Vec<u16>,
    /// Payloads received (at least once).
    received: BTreeSet<Vec<u8>>,
}

fn pump(
    s: &mut Session,
    b: &mut Broker,
    now: u64,
    max_inflight: usize,
) -> Result<(), TestCaseError> {
    match s.poll_transport(now) {
        TransportAction::Open => {
            s.transport_opened(now);
            b.connected = true;
            b.unacked.clear();
        }
        TransportAction::Close => b.connected = false,
        TransportAction::None => {}
    }
    let tx = s.transmit().to_vec();
    s.consume_transmit(tx.len());
    if !b.connected {
        return Ok(());
    }
    let mut rest = &tx[..];
    let mut replies = Vec::new();
    while let Some((p, n)) = decode(rest, usize::MAX).unwrap() {
        rest = &rest[n..];
        match p {
            Packet::Connect(_) => encode(
                &Packet::ConnAck(ConnAck {
                    session_present: false,
                    code: ConnectReturnCode::Accepted,
                }),
                &mut replies,
            )
            .unwrap(),
            Packet::Publish(p) => {
                b.received.insert(p.payload.to_vec());
                b.unacked.push(p.pkid.unwrap());
                prop_assert!(
                    b.unacked.len() <= max_inflight,
                    "window overrun: {}",
                    b.unacked.len()
                );
            }
            Packet::PingReq => encode(&Packet::PingResp, &mut replies).unwrap(),
            _ => {}
        }
    }
    if !replies.is_empty() {
        s.handle_input(now, &replies);
        // Answering CONNACK may release queued messages: pump once more.
        return pump(s, b, now, max_inflight);
    }
    Ok(())
}

/// What the application published and saw acknowledged.
#[derive(Default)]
struct Model {
    /// Messages published and not yet acknowledged, by packet id.
    published: BTreeMap<u16, Vec<u8>>,
    acked: Vec<u16>,
    counter: u32,
}

impl Model {
    fn run(
        &mut self,
        op: &Op,
        s: &mut Session,
        b: &mut Broker,
        now: &mut u64,
        max_inflight: usize,
    ) -> Result<(), TestCaseError> {
        match op {
            Op::Publish => {
                self.counter += 1;
                let payload = self.counter.to_be_bytes().to_vec();
                let pkid = s
                    .publish(*now, "t", &payload, QoS::AtLeastOnce, false)
                    .unwrap()
                    .unwrap();
                prop_assert!(
                    self.published.insert(pkid, payload).is_none(),
                    "pkid {} reused while pending",
                    pkid
                );
            }
            Op::Ack(n) if b.connected => {
                let n = (*n).min(b.unacked.len());
                let mut acks = Vec::new();
                for id in b.unacked.drain(..n) {
                    encode(&Packet::PubAck(id), &mut acks).unwrap();
                }
                s.handle_input(*now, &acks);
            }
            Op::Ack(_) => {}
            Op::Drop => {
                if b.connected {
                    b.connected = false;
                    s.transport_closed(*now, None);
                }
            }
            Op::Wait(ms) => {
                *now += ms;
                s.handle_timeout(*now);
            }
        }
        pump(s, b, *now, max_inflight)?;
        while let Some(e) = s.poll_event() {
            if let Event::Acked { pkid } = e {
                self.acked.push(pkid);
                self.published.remove(&pkid);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn qos1_messages_survive_any_sequence_of_faults(ops in prop::collection::vec(op(), 1..120)) {
        let max_inflight = 5;
        let mut options = Options::new("d");
        options.max_inflight = max_inflight as u16;
        options.keep_alive_s = 10;
        let mut s = Session::new(options, 3).unwrap();
        let mut b = Broker { connected: false, unacked: Vec::new(), received: BTreeSet::new() };
        let mut now = 0u64;
        let mut m = Model::default();
        for op in &ops {
            m.run(op, &mut s, &mut b, &mut now, max_inflight)?;
        }
        // Heal the network and let everything drain.
        for _ in 0..200 {
            if m.published.is_empty() {
                break;
            }
            m.run(&Op::Wait(40_000), &mut s, &mut b, &mut now, max_inflight)?;
            m.run(&Op::Ack(100), &mut s, &mut b, &mut now, max_inflight)?;
        }
        let Model { published, acked, counter } = m;
        prop_assert!(published.is_empty(), "never acknowledged: {:?}", published);
        prop_assert_eq!(acked.len(), counter as usize, "each message acked exactly once");
        prop_assert_eq!(b.received.len(), counter as usize, "each message reached the broker");
    }
}

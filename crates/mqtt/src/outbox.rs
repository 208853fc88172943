//! The QoS 1 outbox: messages waiting for a window slot, and messages in flight.
//!
//! Packet identifiers are handed out in sequence and messages are sent in that order, so
//! the outbox is one queue in which entry `i` always has identifier `front + i`: an ack
//! finds its entry by subtraction, in O(1), with no map. Brokers acknowledge QoS 1
//! messages in the order they received them (MQTT 3.1.1 §4.6), so acks arrive at the front
//! and the window is simply the first `max_inflight` entries.
//!
//! Each entry keeps its encoded PUBLISH, so a resend after a reconnect only flips the DUP
//! bit (§3.3.1.1) instead of re-encoding. Buffers of acknowledged messages are kept for
//! reuse, so a steady stream of QoS 1 publishes does not allocate.

use std::collections::VecDeque;

use crate::codec::{self, CodecError};
use crate::packet::{Publish, QoS};

/// Publishes use identifiers `1..=PUBLISH_ID_MAX`; SUBSCRIBE and UNSUBSCRIBE use the ids
/// above it, so control packets never break the publish sequence the outbox relies on.
pub(crate) const PUBLISH_ID_MAX: u16 = 60_000;

/// The DUP flag in the first byte of a PUBLISH.
const DUP: u8 = 0b1000;

#[derive(Debug)]
struct Entry {
    pkid: u16,
    packet: Vec<u8>,
    acked: bool,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    entries: VecDeque<Entry>,
    /// `entries[..sent]` have been written to the current transport.
    sent: usize,
    next_pkid: u16,
    max_inflight: usize,
    capacity: usize,
    pool: Vec<Vec<u8>>,
}

/// What [`Outbox::ack`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ack {
    /// The message left the window.
    Done,
    /// No message in flight has this identifier (a late duplicate ack).
    Unknown,
}

impl Outbox {
    pub(crate) fn new(max_inflight: usize, max_queued: usize) -> Outbox {
        Outbox {
            entries: VecDeque::new(),
            sent: 0,
            next_pkid: 1,
            max_inflight,
            capacity: max_inflight + max_queued,
            pool: Vec::new(),
        }
    }

    /// Messages sent and not yet acknowledged.
    pub(crate) fn inflight(&self) -> usize {
        self.entries
            .iter()
            .take(self.sent)
            .filter(|e| !e.acked)
            .count()
    }

    /// Messages waiting for a window slot or for a connection.
    pub(crate) fn queued(&self) -> usize {
        self.entries.len() - self.sent
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity
    }

    /// Encodes and queues a QoS 1 message; returns its packet identifier.
    pub(crate) fn push(
        &mut self,
        topic: &str,
        payload: &[u8],
        retain: bool,
    ) -> Result<u16, CodecError> {
        let pkid = self.next_pkid;
        let mut packet = self.pool.pop().unwrap_or_default();
        packet.clear();
        let publish = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain,
            topic,
            pkid: Some(pkid),
            payload,
        };
        if let Err(e) = codec::encode_publish(&mut packet, &publish) {
            self.pool.push(packet);
            return Err(e);
        }
        self.next_pkid = if pkid == PUBLISH_ID_MAX { 1 } else { pkid + 1 };
        self.entries.push_back(Entry {
            pkid,
            packet,
            acked: false,
        });
        Ok(pkid)
    }

    /// Appends to `out` every message the window has room for; returns how many were
    /// first sends and how many were resends.
    pub(crate) fn send_ready(&mut self, out: &mut Vec<u8>) -> (u64, u64) {
        let (mut first, mut again) = (0, 0);
        while self.sent < self.entries.len() && self.sent < self.max_inflight {
            let entry = &self.entries[self.sent];
            if entry.packet[0] & DUP != 0 {
                again += 1;
            } else {
                first += 1;
            }
            out.extend_from_slice(&entry.packet);
            self.sent += 1;
        }
        (first, again)
    }

    /// Records a PUBACK.
    pub(crate) fn ack(&mut self, pkid: u16) -> Ack {
        let Some(front) = self.entries.front().map(|e| e.pkid) else {
            return Ack::Unknown;
        };
        let span = usize::from(PUBLISH_ID_MAX);
        let index = (usize::from(pkid) + span - usize::from(front)) % span;
        match self.entries.get_mut(index) {
            Some(entry) if index < self.sent && entry.pkid == pkid && !entry.acked => {
                entry.acked = true;
            }
            _ => return Ack::Unknown,
        }
        while self.entries.front().is_some_and(|e| e.acked) {
            if let Some(done) = self.entries.pop_front() {
                self.pool.push(done.packet);
                self.sent -= 1;
            }
        }
        Ack::Done
    }

    /// The connection is gone: everything in flight goes out again, marked DUP, on the
    /// next connection, before anything that was only queued.
    pub(crate) fn connection_lost(&mut self) {
        for entry in self.entries.iter_mut().take(self.sent) {
            entry.packet[0] |= DUP;
        }
        self.sent = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode;
    use crate::packet::Packet;

    fn decode_all(mut buf: &[u8]) -> Vec<(u16, bool)> {
        let mut out = Vec::new();
        while let Some((Packet::Publish(p), used)) = decode(buf, usize::MAX).unwrap() {
            out.push((p.pkid.unwrap(), p.dup));
            buf = &buf[used..];
        }
        out
    }

    #[test]
    fn window_limits_what_is_sent_and_acks_open_it() {
        let mut ob = Outbox::new(2, 10);
        for _ in 0..3 {
            ob.push("t", b"x", false).unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(ob.send_ready(&mut out), (2, 0));
        assert_eq!(decode_all(&out), [(1, false), (2, false)]);
        assert_eq!((ob.inflight(), ob.queued()), (2, 1));
        assert_eq!(ob.ack(1), Ack::Done);
        assert_eq!(
            ob.ack(1),
            Ack::Unknown,
            "a second ack for the same id is a duplicate"
        );
        out.clear();
        assert_eq!(ob.send_ready(&mut out), (1, 0));
        assert_eq!(decode_all(&out), [(3, false)]);
    }

    #[test]
    fn out_of_order_acks_release_the_front_only_when_it_is_acked() {
        let mut ob = Outbox::new(3, 0);
        for _ in 0..3 {
            ob.push("t", b"x", false).unwrap();
        }
        ob.send_ready(&mut Vec::new());
        assert_eq!(ob.ack(2), Ack::Done);
        assert_eq!(ob.inflight(), 2);
        assert!(ob.is_full(), "entry 1 still holds the window");
        assert_eq!(ob.ack(1), Ack::Done);
        assert_eq!(ob.inflight(), 1);
        assert_eq!(ob.queued(), 0);
        assert!(!ob.is_full());
    }

    #[test]
    fn resends_after_loss_carry_dup_and_queued_ones_do_not() {
        let mut ob = Outbox::new(2, 10);
        for _ in 0..3 {
            ob.push("t", b"x", false).unwrap();
        }
        ob.send_ready(&mut Vec::new());
        ob.connection_lost();
        let mut out = Vec::new();
        assert_eq!(ob.send_ready(&mut out), (0, 2));
        ob.ack(1);
        ob.send_ready(&mut out);
        assert_eq!(decode_all(&out), [(1, true), (2, true), (3, false)]);
    }

    #[test]
    fn ids_wrap_around_and_skip_zero() {
        let mut ob = Outbox::new(1, 0);
        let mut out = Vec::new();
        for expected in (1..=PUBLISH_ID_MAX).chain(1..=3) {
            assert_eq!(ob.push("t", b"", false).unwrap(), expected);
            ob.send_ready(&mut out);
            out.clear();
            assert_eq!(ob.ack(expected), Ack::Done);
        }
        assert_eq!(ob.pool.len(), 1, "one buffer was reused for every message");
    }
}

//! Encoding and decoding of MQTT 3.1.1 packets (spec §2–§3).
//!
//! [`decode`] tells "not enough bytes yet" (`Ok(None)`) apart from "these bytes are wrong"
//! (`Err`), so that a caller can reassemble packets split across WebSocket frames or TCP
//! reads (§6 allows both) and close the connection only on a real error. The size limit is
//! checked as soon as the fixed header is read, before the body is buffered, so an oversized
//! packet costs nothing to reject.
//!
//! Decoded packets borrow topics and payloads from the input buffer; encoding appends to a
//! caller-owned `Vec<u8>`, so a steady stream of packets allocates nothing.

use crate::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, Publish, QoS, SubAck, Subscribe, SubscribeReturn,
    Unsubscribe, Will,
};
use crate::topic::{self, TopicError};

/// The largest remaining length the four-byte variable integer can carry (§2.2.3).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Why bytes could not be decoded into a packet, or a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Packet types 0 and 15 are reserved in MQTT 3.1.1.
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    /// The low nibble of the first byte is fixed for every type but PUBLISH (§2.2.2).
    #[error("{packet} with invalid fixed-header flags {flags:#06b}")]
    BadFlags {
        /// Packet name.
        packet: &'static str,
        /// The four flag bits received.
        flags: u8,
    },
    /// The remaining-length field ran past four bytes (§2.2.3).
    #[error("malformed remaining length (more than 4 bytes)")]
    BadRemainingLength,
    /// The packet is bigger than the configured maximum.
    #[error("packet of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Size of the whole packet in bytes.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// The remaining length ends before the packet's fields do.
    #[error("{0} is truncated: its fields run past its remaining length")]
    Truncated(&'static str),
    /// The remaining length is longer than the packet's fields.
    #[error("{0} has unexpected trailing bytes")]
    TrailingBytes(&'static str),
    /// A string field is not valid UTF-8 or holds U+0000 (§1.5.3).
    #[error("{0} holds a string that is not valid MQTT UTF-8")]
    BadString(&'static str),
    /// CONNECT for a protocol other than "MQTT" level 4.
    #[error("unsupported protocol {name:?} level {level} (only MQTT 3.1.1, level 4)")]
    UnsupportedProtocol {
        /// Protocol name received.
        name: String,
        /// Protocol level received.
        level: u8,
    },
    /// CONNECT flags that break §3.1.2 (reserved bit, will or password rules).
    #[error("invalid CONNECT flags {0:#010b}")]
    BadConnectFlags(u8),
    /// CONNACK acknowledge flags with reserved bits set (§3.2.2.1).
    #[error("invalid CONNACK flags {0:#010b}")]
    BadConnAckFlags(u8),
    /// CONNACK return code outside 0..=5.
    #[error("reserved CONNACK return code {0}")]
    BadReturnCode(u8),
    /// SUBACK return code other than 0, 1, 2 or 0x80.
    #[error("invalid SUBACK return code {0:#04x}")]
    BadSubAckCode(u8),
    /// QoS bits set to the reserved value 3.
    #[error("{0} with reserved QoS 3")]
    BadQoS(&'static str),
    /// A packet identifier of 0 (§2.3.1).
    #[error("{0} with packet identifier 0")]
    ZeroPacketId(&'static str),
    /// DUP set on a QoS 0 PUBLISH (§3.3.1.1).
    #[error("PUBLISH with DUP set at QoS 0")]
    DupAtQoS0,
    /// A topic name or filter that breaks §4.7.
    #[error("{packet}: {source}")]
    BadTopic {
        /// Packet name.
        packet: &'static str,
        /// What is wrong with the topic.
        source: TopicError,
    },
    /// SUBSCRIBE or UNSUBSCRIBE with no filter (§3.8.3, §3.10.3).
    #[error("{0} with no topic filter")]
    NoFilters(&'static str),
    /// A string or binary field longer than 65,535 bytes cannot be encoded.
    #[error("field of {0} bytes is longer than 65535")]
    FieldTooLong(usize),
    /// A password needs a user name in MQTT 3.1.1 (§3.1.2.9).
    #[error("a password needs a user name in MQTT 3.1.1")]
    PasswordWithoutUsername,
}

/// Decodes one packet from the front of `buf`.
///
/// Returns `Ok(None)` if `buf` holds only part of a packet, and otherwise the packet and the
/// number of bytes it used. Packets larger than `max_packet_size` are rejected as soon as
/// their header is read.
pub fn decode(
    buf: &[u8],
    max_packet_size: usize,
) -> Result<Option<(Packet<'_>, usize)>, CodecError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let kind = first >> 4;
    if kind == 0 || kind == 15 {
        return Err(CodecError::ReservedPacketType(kind));
    }
    let Some((remaining, header_len)) = read_remaining_length(&buf[1..])? else {
        return Ok(None);
    };
    let size = 1 + header_len + remaining;
    if size > max_packet_size {
        return Err(CodecError::TooLarge {
            size,
            max: max_packet_size,
        });
    }
    let Some(body) = buf.get(1 + header_len..size) else {
        return Ok(None);
    };
    let packet = decode_body(first, body)?;
    Ok(Some((packet, size)))
}

/// Reads the variable-length remaining length; `None` if more bytes are needed.
fn read_remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, CodecError> {
    let mut value = 0usize;
    for (i, &byte) in buf.iter().enumerate().take(4) {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(CodecError::BadRemainingLength)
    } else {
        Ok(None)
    }
}

fn decode_body(first: u8, body: &[u8]) -> Result<Packet<'_>, CodecError> {
    let flags = first & 0x0f;
    let kind = first >> 4;
    let name = packet_name(kind);
    let expect_flags = |expected: u8| {
        if flags == expected {
            Ok(())
        } else {
            Err(CodecError::BadFlags {
                packet: name,
                flags,
            })
        }
    };
    let mut r = Reader {
        buf: body,
        packet: name,
    };
    let packet = match kind {
        1 => {
            expect_flags(0)?;
            Packet::Connect(decode_connect(&mut r)?)
        }
        2 => {
            expect_flags(0)?;
            let ack_flags = r.u8()?;
            if ack_flags & !1 != 0 {
                return Err(CodecError::BadConnAckFlags(ack_flags));
            }
            let code = r.u8()?;
            let code = ConnectReturnCode::from_byte(code).ok_or(CodecError::BadReturnCode(code))?;
            Packet::ConnAck(ConnAck {
                session_present: ack_flags & 1 == 1,
                code,
            })
        }
        3 => Packet::Publish(decode_publish(flags, &mut r)?),
        4 => {
            expect_flags(0)?;
            Packet::PubAck(r.pkid()?)
        }
        5 => {
            expect_flags(0)?;
            Packet::PubRec(r.pkid()?)
        }
        6 => {
            expect_flags(0b0010)?;
            Packet::PubRel(r.pkid()?)
        }
        7 => {
            expect_flags(0)?;
            Packet::PubComp(r.pkid()?)
        }
        8 => {
            expect_flags(0b0010)?;
            let pkid = r.pkid()?;
            let mut filters = Vec::new();
            while !r.is_empty() {
                let filter = r.str()?;
                topic::validate_filter(filter).map_err(|source| CodecError::BadTopic {
                    packet: name,
                    source,
                })?;
                let options = r.u8()?;
                // Bits 2..7 of the requested-QoS byte are reserved (§3.8.3.1).
                let qos = (options & !0b11 == 0)
                    .then(|| QoS::from_bits(options))
                    .flatten()
                    .ok_or(CodecError::BadQoS(name))?;
                filters.push((filter, qos));
            }
            if filters.is_empty() {
                return Err(CodecError::NoFilters(name));
            }
            Packet::Subscribe(Subscribe { pkid, filters })
        }
        9 => {
            expect_flags(0)?;
            let pkid = r.pkid()?;
            let returns = r
                .rest()
                .iter()
                .map(|&code| match code {
                    0x80 => Ok(SubscribeReturn::Failure),
                    _ => QoS::from_bits(code)
                        .map(SubscribeReturn::Success)
                        .ok_or(CodecError::BadSubAckCode(code)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Packet::SubAck(SubAck { pkid, returns })
        }
        10 => {
            expect_flags(0b0010)?;
            let pkid = r.pkid()?;
            let mut filters = Vec::new();
            while !r.is_empty() {
                let filter = r.str()?;
                topic::validate_filter(filter).map_err(|source| CodecError::BadTopic {
                    packet: name,
                    source,
                })?;
                filters.push(filter);
            }
            if filters.is_empty() {
                return Err(CodecError::NoFilters(name));
            }
            Packet::Unsubscribe(Unsubscribe { pkid, filters })
        }
        11 => {
            expect_flags(0)?;
            Packet::UnsubAck(r.pkid()?)
        }
        12 => {
            expect_flags(0)?;
            Packet::PingReq
        }
        13 => {
            expect_flags(0)?;
            Packet::PingResp
        }
        14 => {
            expect_flags(0)?;
            Packet::Disconnect
        }
        _ => return Err(CodecError::ReservedPacketType(kind)),
    };
    r.finish()?;
    Ok(packet)
}

fn decode_connect<'a>(r: &mut Reader<'a>) -> Result<Connect<'a>, CodecError> {
    let protocol = r.str()?;
    let level = r.u8()?;
    if protocol != "MQTT" || level != 4 {
        return Err(CodecError::UnsupportedProtocol {
            name: protocol.to_owned(),
            level,
        });
    }
    let flags = r.u8()?;
    let will_flag = flags & 0b0000_0100 != 0;
    let will_qos_bits = (flags >> 3) & 0b11;
    let will_retain = flags & 0b0010_0000 != 0;
    let has_password = flags & 0b0100_0000 != 0;
    let has_username = flags & 0b1000_0000 != 0;
    let valid = flags & 1 == 0 // reserved bit (§3.1.2.3)
        && (will_flag || (will_qos_bits == 0 && !will_retain)) // §3.1.2.9-11
        && will_qos_bits != 3
        && (has_username || !has_password); // §3.1.2.9
    if !valid {
        return Err(CodecError::BadConnectFlags(flags));
    }
    let keep_alive_s = r.u16()?;
    let client_id = r.str()?;
    let will = if will_flag {
        let topic = r.str()?;
        topic::validate_name(topic).map_err(|source| CodecError::BadTopic {
            packet: "CONNECT",
            source,
        })?;
        let payload = r.binary()?;
        let qos = QoS::from_bits(will_qos_bits).ok_or(CodecError::BadQoS("CONNECT"))?;
        Some(Will {
            topic,
            payload,
            qos,
            retain: will_retain,
        })
    } else {
        None
    };
    let username = if has_username { Some(r.str()?) } else { None };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        client_id,
        keep_alive_s,
        clean_session: flags & 0b10 != 0,
        will,
        username,
        password,
    })
}

fn decode_publish<'a>(flags: u8, r: &mut Reader<'a>) -> Result<Publish<'a>, CodecError> {
    let dup = flags & 0b1000 != 0;
    let qos = QoS::from_bits((flags >> 1) & 0b11).ok_or(CodecError::BadQoS("PUBLISH"))?;
    let retain = flags & 1 != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(CodecError::DupAtQoS0);
    }
    let topic = r.str()?;
    topic::validate_name(topic).map_err(|source| CodecError::BadTopic {
        packet: "PUBLISH",
        source,
    })?;
    let pkid = match qos {
        QoS::AtMostOnce => None,
        _ => Some(r.pkid()?),
    };
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        pkid,
        payload: r.rest(),
    })
}

fn packet_name(kind: u8) -> &'static str {
    match kind {
        1 => "CONNECT",
        2 => "CONNACK",
        3 => "PUBLISH",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        9 => "SUBACK",
        10 => "UNSUBSCRIBE",
        11 => "UNSUBACK",
        12 => "PINGREQ",
        13 => "PINGRESP",
        14 => "DISCONNECT",
        _ => "reserved",
    }
}

/// A cursor over one packet's body; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    packet: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Truncated(self.packet));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn pkid(&mut self) -> Result<u16, CodecError> {
        match self.u16()? {
            0 => Err(CodecError::ZeroPacketId(self.packet)),
            id => Ok(id),
        }
    }

    fn binary(&mut self) -> Result<&'a [u8], CodecError> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }

    fn str(&mut self) -> Result<&'a str, CodecError> {
        let bytes = self.binary()?;
        let s = core::str::from_utf8(bytes).map_err(|_| CodecError::BadString(self.packet))?;
        if s.contains('\0') {
            return Err(CodecError::BadString(self.packet));
        }
        Ok(s)
    }

    fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn finish(&self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes(self.packet))
        }
    }
}

/// Appends the encoding of `packet` to `out`.
///
/// On error nothing is appended. The encoder checks what the wire format cannot carry
/// (field and packet lengths); protocol rules such as topic syntax are the caller's, so
/// tests can produce bad packets on purpose.
pub fn encode(packet: &Packet<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
    match packet {
        Packet::Connect(c) => encode_connect(c, out),
        Packet::ConnAck(ack) => {
            put_header(out, 0x20, 2)?;
            out.push(u8::from(ack.session_present));
            out.push(ack.code.to_byte());
            Ok(())
        }
        Packet::Publish(p) => encode_publish(out, p),
        Packet::PubAck(id) => put_id_only(out, 0x40, *id),
        Packet::PubRec(id) => put_id_only(out, 0x50, *id),
        Packet::PubRel(id) => put_id_only(out, 0x62, *id),
        Packet::PubComp(id) => put_id_only(out, 0x70, *id),
        Packet::Subscribe(s) => {
            let len = 2 + s
                .filters
                .iter()
                .map(|(f, _)| 2 + f.len() + 1)
                .sum::<usize>();
            check_fields(s.filters.iter().map(|(f, _)| f.len()))?;
            put_header(out, 0x82, len)?;
            out.extend_from_slice(&s.pkid.to_be_bytes());
            for (filter, qos) in &s.filters {
                put_str(out, filter)?;
                out.push(*qos as u8);
            }
            Ok(())
        }
        Packet::SubAck(ack) => {
            put_header(out, 0x90, 2 + ack.returns.len())?;
            out.extend_from_slice(&ack.pkid.to_be_bytes());
            out.extend(ack.returns.iter().map(|r| match r {
                SubscribeReturn::Success(qos) => *qos as u8,
                SubscribeReturn::Failure => 0x80,
            }));
            Ok(())
        }
        Packet::Unsubscribe(u) => {
            let len = 2 + u.filters.iter().map(|f| 2 + f.len()).sum::<usize>();
            check_fields(u.filters.iter().map(|f| f.len()))?;
            put_header(out, 0xa2, len)?;
            out.extend_from_slice(&u.pkid.to_be_bytes());
            for filter in &u.filters {
                put_str(out, filter)?;
            }
            Ok(())
        }
        Packet::UnsubAck(id) => put_id_only(out, 0xb0, *id),
        Packet::PingReq => put_header(out, 0xc0, 0),
        Packet::PingResp => put_header(out, 0xd0, 0),
        Packet::Disconnect => put_header(out, 0xe0, 0),
    }
}

/// Appends a PUBLISH: the hot path of every device, so it writes straight into `out`.
pub fn encode_publish(out: &mut Vec<u8>, p: &Publish<'_>) -> Result<(), CodecError> {
    check_fields([p.topic.len()])?;
    let id_len = if p.pkid.is_some() { 2 } else { 0 };
    let len = 2 + p.topic.len() + id_len + p.payload.len();
    let first = 0x30 | (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain);
    put_header(out, first, len)?;
    put_str(out, p.topic)?;
    if let Some(id) = p.pkid {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(p.payload);
    Ok(())
}

fn encode_connect(c: &Connect<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
    if c.password.is_some() && c.username.is_none() {
        return Err(CodecError::PasswordWithoutUsername);
    }
    let mut flags = 0u8;
    let mut len = 6 + 1 + 1 + 2 + 2 + c.client_id.len();
    let mut fields = vec![c.client_id.len()];
    if c.clean_session {
        flags |= 0b10;
    }
    if let Some(will) = &c.will {
        flags |= 0b100 | ((will.qos as u8) << 3) | (u8::from(will.retain) << 5);
        len += 2 + will.topic.len() + 2 + will.payload.len();
        fields.extend([will.topic.len(), will.payload.len()]);
    }
    if let Some(user) = c.username {
        flags |= 0b1000_0000;
        len += 2 + user.len();
        fields.push(user.len());
    }
    if let Some(pass) = c.password {
        flags |= 0b0100_0000;
        len += 2 + pass.len();
        fields.push(pass.len());
    }
    check_fields(fields)?;
    put_header(out, 0x10, len)?;
    put_str(out, "MQTT")?;
    out.push(4);
    out.push(flags);
    out.extend_from_slice(&c.keep_alive_s.to_be_bytes());
    put_str(out, c.client_id)?;
    if let Some(will) = &c.will {
        put_str(out, will.topic)?;
        put_binary(out, will.payload)?;
    }
    if let Some(user) = c.username {
        put_str(out, user)?;
    }
    if let Some(pass) = c.password {
        put_binary(out, pass)?;
    }
    Ok(())
}

/// Fails before anything is written if a length-prefixed field cannot be encoded.
fn check_fields(lens: impl IntoIterator<Item = usize>) -> Result<(), CodecError> {
    match lens.into_iter().find(|&len| len > usize::from(u16::MAX)) {
        Some(len) => Err(CodecError::FieldTooLong(len)),
        None => Ok(()),
    }
}

fn put_header(out: &mut Vec<u8>, first: u8, remaining: usize) -> Result<(), CodecError> {
    if remaining > MAX_REMAINING_LENGTH {
        return Err(CodecError::TooLarge {
            size: remaining,
            max: MAX_REMAINING_LENGTH,
        });
    }
    out.reserve(5 + remaining);
    out.push(first);
    let mut value = remaining;
    loop {
        // Seven bits per byte, least significant first; the top bit says "more follows".
        let mut byte = (value & 0x7f) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return Ok(());
        }
    }
}

fn put_id_only(out: &mut Vec<u8>, first: u8, id: u16) -> Result<(), CodecError> {
    put_header(out, first, 2)?;
    out.extend_from_slice(&id.to_be_bytes());
    Ok(())
}

fn put_binary(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), CodecError> {
    let len = u16::try_from(bytes.len()).map_err(|_| CodecError::FieldTooLong(bytes.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), CodecError> {
    put_binary(out, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn roundtrip(packet: Packet<'_>) {
        let mut buf = Vec::new();
        encode(&packet, &mut buf).unwrap();
        let (decoded, used) = decode(&buf, MAX).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(decoded, packet);
    }

    #[test]
    fn every_packet_type_roundtrips() {
        roundtrip(Packet::Connect(Connect {
            client_id: "d-0001",
            keep_alive_s: 30,
            clean_session: true,
            will: Some(Will {
                topic: "dt/monitoring/alarms",
                payload: b"gone",
                qos: QoS::AtLeastOnce,
                retain: true,
            }),
            username: Some("user"),
            password: Some(b"secret"),
        }));
        roundtrip(Packet::ConnAck(ConnAck {
            session_present: true,
            code: ConnectReturnCode::NotAuthorized,
        }));
        roundtrip(Packet::Publish(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "dt/monitoring/1/d-0001/telemetry",
            pkid: Some(7),
            payload: b"{\"seq\":1}",
        }));
        roundtrip(Packet::PubAck(65535));
        roundtrip(Packet::PubRec(2));
        roundtrip(Packet::PubRel(3));
        roundtrip(Packet::PubComp(4));
        roundtrip(Packet::Subscribe(Subscribe {
            pkid: 9,
            filters: vec![
                ("cmd/monitoring/+/d-1/#", QoS::AtLeastOnce),
                ("a", QoS::AtMostOnce),
            ],
        }));
        roundtrip(Packet::SubAck(SubAck {
            pkid: 9,
            returns: vec![
                SubscribeReturn::Success(QoS::AtLeastOnce),
                SubscribeReturn::Failure,
            ],
        }));
        roundtrip(Packet::Unsubscribe(Unsubscribe {
            pkid: 10,
            filters: vec!["a/b", "c/#"],
        }));
        roundtrip(Packet::UnsubAck(10));
        roundtrip(Packet::PingReq);
        roundtrip(Packet::PingResp);
        roundtrip(Packet::Disconnect);
    }

    #[test]
    fn remaining_length_boundaries_use_the_right_number_of_bytes() {
        // §2.2.3 table: 127 | 16383 | 2097151 are the largest 1-, 2- and 3-byte lengths.
        for (len, header) in [
            (0, 2),
            (127, 2),
            (128, 3),
            (16_383, 3),
            (16_384, 4),
            (2_097_152, 5),
        ] {
            let payload = vec![0u8; len];
            let mut buf = Vec::new();
            // PUBLISH with a one-byte topic: remaining = 3 + payload.
            let payload = &payload[..len.saturating_sub(3)];
            encode_publish(
                &mut buf,
                &Publish {
                    dup: false,
                    qos: QoS::AtMostOnce,
                    retain: false,
                    topic: "t",
                    pkid: None,
                    payload,
                },
            )
            .unwrap();
            let remaining = 3 + payload.len();
            assert_eq!(buf.len() - remaining, header, "length {len}");
            let (p, used) = decode(&buf, usize::MAX).unwrap().unwrap();
            assert_eq!(used, buf.len());
            assert!(matches!(p, Packet::Publish(p) if p.payload.len() == payload.len()));
        }
    }

    #[test]
    fn incomplete_is_not_an_error() {
        let mut buf = Vec::new();
        encode(
            &Packet::SubAck(SubAck {
                pkid: 1,
                returns: vec![SubscribeReturn::Failure],
            }),
            &mut buf,
        )
        .unwrap();
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut], MAX), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn oversized_packets_are_refused_from_their_header() {
        // Only the first three bytes are present: the header alone condemns it.
        let header = [0x30, 0xff, 0x7f];
        assert_eq!(
            decode(&header, 1000),
            Err(CodecError::TooLarge {
                size: 1 + 2 + 16_383,
                max: 1000
            })
        );
    }

    #[test]
    fn malformed_packets_have_specific_errors() {
        let cases: &[(&[u8], CodecError)] = &[
            (&[0x00, 0x00], CodecError::ReservedPacketType(0)),
            (&[0xf0, 0x00], CodecError::ReservedPacketType(15)),
            (
                &[0xc1, 0x00],
                CodecError::BadFlags {
                    packet: "PINGREQ",
                    flags: 1,
                },
            ),
            (
                &[0x80, 0x02, 0x00, 0x01],
                CodecError::BadFlags {
                    packet: "SUBSCRIBE",
                    flags: 0,
                },
            ),
            (
                &[0xd0, 0xff, 0xff, 0xff, 0xff],
                CodecError::BadRemainingLength,
            ),
            (&[0x20, 0x02, 0x02, 0x00], CodecError::BadConnAckFlags(2)),
            (&[0x20, 0x02, 0x00, 0x06], CodecError::BadReturnCode(6)),
            (&[0x20, 0x01, 0x00], CodecError::Truncated("CONNACK")),
            (
                &[0x40, 0x03, 0x00, 0x01, 0x00],
                CodecError::TrailingBytes("PUBACK"),
            ),
            (
                &[0x40, 0x02, 0x00, 0x00],
                CodecError::ZeroPacketId("PUBACK"),
            ),
            (
                &[0x90, 0x03, 0x00, 0x01, 0x03],
                CodecError::BadSubAckCode(3),
            ),
            (
                &[0x36, 0x03, 0x00, 0x01, b't'],
                CodecError::BadQoS("PUBLISH"),
            ),
            (&[0x38, 0x03, 0x00, 0x01, b't'], CodecError::DupAtQoS0),
            (
                &[0x30, 0x03, 0x00, 0x01, 0xff],
                CodecError::BadString("PUBLISH"),
            ),
            (
                &[0x30, 0x03, 0x00, 0x01, 0x00],
                CodecError::BadString("PUBLISH"),
            ),
            (
                &[0x82, 0x02, 0x00, 0x01],
                CodecError::NoFilters("SUBSCRIBE"),
            ),
            (
                &[0xa2, 0x02, 0x00, 0x01],
                CodecError::NoFilters("UNSUBSCRIBE"),
            ),
            (
                &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04],
                CodecError::BadQoS("SUBSCRIBE"),
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                decode(bytes, MAX).as_ref().map(|_| ()),
                Err(expected),
                "{bytes:02x?}"
            );
        }
        let mut buf = Vec::new();
        put_header(&mut buf, 0x30, 4).unwrap();
        put_str(&mut buf, "a+").unwrap();
        assert!(matches!(
            decode(&buf, MAX),
            Err(CodecError::BadTopic {
                packet: "PUBLISH",
                ..
            })
        ));
    }

    #[test]
    fn connect_rejects_other_protocols_and_bad_flags() {
        let mut buf = Vec::new();
        encode(
            &Packet::Connect(Connect {
                client_id: "c",
                keep_alive_s: 0,
                clean_session: true,
                will: None,
                username: None,
                password: None,
            }),
            &mut buf,
        )
        .unwrap();
        let mut v5 = buf.clone();
        v5[8] = 5; // protocol level byte
        assert_eq!(
            decode(&v5, MAX),
            Err(CodecError::UnsupportedProtocol {
                name: "MQTT".into(),
                level: 5
            })
        );
        let mut reserved = buf.clone();
        reserved[9] |= 1; // reserved connect flag
        assert_eq!(
            decode(&reserved, MAX),
            Err(CodecError::BadConnectFlags(0b11))
        );
        let mut password_only = buf;
        password_only[9] |= 0b0100_0000;
        assert_eq!(
            decode(&password_only, MAX),
            Err(CodecError::BadConnectFlags(0b0100_0010))
        );
    }

    #[test]
    fn encoder_refuses_what_the_wire_cannot_carry() {
        let long = "x".repeat(70_000);
        let mut out = vec![1, 2, 3];
        let err = encode(
            &Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: &long,
                pkid: None,
                payload: b"",
            }),
            &mut out,
        );
        assert_eq!(err, Err(CodecError::FieldTooLong(70_000)));
        assert_eq!(out, [1, 2, 3], "nothing appended on error");
        let err = encode(
            &Packet::Connect(Connect {
                client_id: "c",
                keep_alive_s: 0,
                clean_session: true,
                will: None,
                username: None,
                password: Some(b"p"),
            }),
            &mut out,
        );
        assert_eq!(err, Err(CodecError::PasswordWithoutUsername));
    }
}

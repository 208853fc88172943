//! MQTT 3.1.1 control packets, borrowed from the bytes they were decoded from.
//!
//! Only what a 3.1.1 client and a test broker need. QoS 2 flow packets (PUBREC, PUBREL,
//! PUBCOMP) are decoded so that a broker sending them gets a clear "unsupported" error
//! rather than a malformed-packet one; AWS IoT Core does not support QoS 2 either.

use core::fmt;

/// Quality of service of a PUBLISH or a subscription (MQTT 3.1.1 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    /// Fire and forget.
    AtMostOnce = 0,
    /// Acknowledged by PUBACK; may be delivered more than once.
    AtLeastOnce = 1,
    /// Four-step handshake. Decoded for clear errors; the session never uses it.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for its two-bit wire value, or `None` for the reserved value 3.
    pub fn from_bits(bits: u8) -> Option<QoS> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// CONNACK return codes (MQTT 3.1.1 §3.2.2.3). Every refusal has its own message, because
/// "connection refused" alone does not tell a user which setting to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectReturnCode {
    /// 0x00: connection accepted.
    Accepted,
    /// 0x01: the broker does not speak protocol level 4 (MQTT 3.1.1).
    UnacceptableProtocolVersion,
    /// 0x02: the client id is well-formed UTF-8 but not allowed by the broker.
    IdentifierRejected,
    /// 0x03: the network connection is up but the MQTT service is not available.
    ServerUnavailable,
    /// 0x04: the user name or password is malformed.
    BadUserNameOrPassword,
    /// 0x05: the client is not authorized to connect.
    NotAuthorized,
}

impl ConnectReturnCode {
    /// Wire value of the code.
    pub fn to_byte(self) -> u8 {
        match self {
            ConnectReturnCode::Accepted => 0,
            ConnectReturnCode::UnacceptableProtocolVersion => 1,
            ConnectReturnCode::IdentifierRejected => 2,
            ConnectReturnCode::ServerUnavailable => 3,
            ConnectReturnCode::BadUserNameOrPassword => 4,
            ConnectReturnCode::NotAuthorized => 5,
        }
    }

    /// The code for a wire value; 6..=255 are reserved by the spec.
    pub fn from_byte(byte: u8) -> Option<ConnectReturnCode> {
        Some(match byte {
            0 => ConnectReturnCode::Accepted,
            1 => ConnectReturnCode::UnacceptableProtocolVersion,
            2 => ConnectReturnCode::IdentifierRejected,
            3 => ConnectReturnCode::ServerUnavailable,
            4 => ConnectReturnCode::BadUserNameOrPassword,
            5 => ConnectReturnCode::NotAuthorized,
            _ => return None,
        })
    }
}

impl fmt::Display for ConnectReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectReturnCode::Accepted => "connection accepted",
            ConnectReturnCode::UnacceptableProtocolVersion => {
                "the broker refused MQTT 3.1.1 (unacceptable protocol version)"
            }
            ConnectReturnCode::IdentifierRejected => {
                "the broker rejected the client id (is it empty, too long, or already in use?)"
            }
            ConnectReturnCode::ServerUnavailable => "the broker's MQTT service is unavailable",
            ConnectReturnCode::BadUserNameOrPassword => "the user name or password is malformed",
            ConnectReturnCode::NotAuthorized => {
                "the client is not authorized to connect (check its credentials or policy)"
            }
        })
    }
}

/// A will message the broker publishes if the client disappears without DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will<'a> {
    /// Topic of the will message.
    pub topic: &'a str,
    /// Payload of the will message.
    pub payload: &'a [u8],
    /// QoS of the will message.
    pub qos: QoS,
    /// Whether the broker retains the will message.
    pub retain: bool,
}

/// CONNECT (§3.1). Only protocol level 4 ("MQTT", 3.1.1) is encoded or accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    /// Client identifier; IoT Core uses it as the thing name in policies.
    pub client_id: &'a str,
    /// Keep-alive interval in seconds; 0 disables it.
    pub keep_alive_s: u16,
    /// Start a new session (true) or resume the stored one (false).
    pub clean_session: bool,
    /// Optional will message.
    pub will: Option<Will<'a>>,
    /// Optional user name.
    pub username: Option<&'a str>,
    /// Optional password (only allowed with a user name, §3.1.2.9).
    pub password: Option<&'a [u8]>,
}

/// CONNACK (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the broker resumed a stored session.
    pub session_present: bool,
    /// Accepted, or why not.
    pub code: ConnectReturnCode,
}

/// PUBLISH (§3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    /// Set on re-delivery of a QoS 1/2 message.
    pub dup: bool,
    /// Delivery guarantee.
    pub qos: QoS,
    /// Whether the broker retains the message.
    pub retain: bool,
    /// Topic name (no wildcards).
    pub topic: &'a str,
    /// Packet identifier; present only for QoS 1 and 2.
    pub pkid: Option<u16>,
    /// Application payload.
    pub payload: &'a [u8],
}

/// The result for one filter of a SUBSCRIBE (§3.9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeReturn {
    /// Granted at this maximum QoS.
    Success(QoS),
    /// 0x80: the broker refused this filter (IoT Core: the policy denies it).
    Failure,
}

/// SUBSCRIBE (§3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// Packet identifier.
    pub pkid: u16,
    /// Topic filters with their requested QoS; never empty on the wire.
    pub filters: Vec<(&'a str, QoS)>,
}

/// SUBACK (§3.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE it answers.
    pub pkid: u16,
    /// One result per filter, in order.
    pub returns: Vec<SubscribeReturn>,
}

/// UNSUBSCRIBE (§3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    /// Packet identifier.
    pub pkid: u16,
    /// Topic filters to remove; never empty on the wire.
    pub filters: Vec<&'a str>,
}

/// One MQTT 3.1.1 control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Client → broker: open a session.
    Connect(Connect<'a>),
    /// Broker → client: answer to CONNECT.
    ConnAck(ConnAck),
    /// Either direction: an application message.
    Publish(Publish<'a>),
    /// Acknowledges a QoS 1 PUBLISH.
    PubAck(u16),
    /// QoS 2 step 2 (unsupported by the session).
    PubRec(u16),
    /// QoS 2 step 3 (unsupported by the session).
    PubRel(u16),
    /// QoS 2 step 4 (unsupported by the session).
    PubComp(u16),
    /// Client → broker: add subscriptions.
    Subscribe(Subscribe<'a>),
    /// Broker → client: answer to SUBSCRIBE.
    SubAck(SubAck),
    /// Client → broker: remove subscriptions.
    Unsubscribe(Unsubscribe<'a>),
    /// Broker → client: answer to UNSUBSCRIBE.
    UnsubAck(u16),
    /// Client → broker: keep-alive probe.
    PingReq,
    /// Broker → client: keep-alive answer.
    PingResp,
    /// Client → broker: clean close.
    Disconnect,
}

impl Packet<'_> {
    /// The packet's name as the spec writes it, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect => "DISCONNECT",
        }
    }
}

//! The client session: MQTT 3.1.1 state with no I/O and no clock.
//!
//! A driver (a tokio task, a browser WebSocket, a test script) owns the transport and the
//! timer. It feeds the session what happened and carries out what the session asks:
//!
//! ```text
//! loop {
//!     match session.poll_transport(now) { Open => open it, Close => close it, None => {} }
//!     transport opened?   session.transport_opened(now)
//!     bytes arrived?      session.handle_input(now, &bytes)
//!     transport closed?   session.transport_closed(now, error)
//!     timer fired?        session.handle_timeout(now)
//!     write session.transmit(), then session.consume_transmit(n)
//!     while let Some(event) = session.poll_event() { ... }
//!     sleep until I/O or session.poll_timeout()
//! }
//! ```
//!
//! All packets produced between two writes land in one buffer, so a driver that writes once
//! per tick sends them as one WebSocket frame (several packets per frame: MQTT 3.1.1 §6).

use std::collections::VecDeque;
use std::fmt;

use crate::backoff::{Backoff, Jitter};
use crate::codec::{self, CodecError};
use crate::outbox::{Ack, Outbox, PUBLISH_ID_MAX};
use crate::packet::{
    Connect, ConnectReturnCode, Packet, Publish, QoS, Subscribe, SubscribeReturn, Unsubscribe, Will,
};
use crate::topic::{self, TopicError};

/// AWS IoT Core's limit on unacknowledged QoS 1 publishes per connection, and ours.
pub const MAX_INFLIGHT: u16 = 100;
/// AWS IoT Core's limit on a message payload (128 KB).
pub const MAX_PAYLOAD_SIZE: usize = 128 * 1024;
/// AWS IoT Core accepts at most 8 filters in one SUBSCRIBE.
const FILTERS_PER_SUBSCRIBE: usize = 8;
/// The most QoS 1 messages the outbox may hold, in flight and queued together. It keeps
/// the publish identifiers of all of them distinct.
pub const MAX_QUEUED: usize = 50_000;

/// A will message, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Topic of the will message.
    pub topic: String,
    /// Payload of the will message.
    pub payload: Vec<u8>,
    /// QoS 0 or 1.
    pub qos: QoS,
    /// Whether the broker retains it.
    pub retain: bool,
}

/// Session settings. [`Options::new`] gives the defaults; change fields as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Client identifier (IoT Core: at most 128 bytes, and the policy may require a prefix).
    pub client_id: String,
    /// Keep-alive in seconds; 0 disables it. IoT Core accepts 30..=1200. Default 60.
    pub keep_alive_s: u16,
    /// Start with a clean session. Default true.
    pub clean_session: bool,
    /// Optional user name.
    pub username: Option<String>,
    /// Optional password (needs a user name).
    pub password: Option<Vec<u8>>,
    /// Optional will message.
    pub will: Option<LastWill>,
    /// QoS 1 messages in flight at once, 1..=100. Default 100.
    pub max_inflight: u16,
    /// QoS 1 messages held back while the window is full or the connection is down.
    /// Default 10,000; at most [`MAX_QUEUED`] minus `max_inflight`.
    pub max_queued: usize,
    /// Largest payload accepted by [`Session::publish`]. Default 128 KiB (IoT Core).
    /// Incoming packets may be up to this plus 1 KiB of topic and header.
    pub max_payload_size: usize,
    /// How long to wait for the transport and then the CONNACK. Default 10 s.
    pub connect_timeout_ms: u64,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// QoS 0 publishes fail with [`PublishError::WouldBlock`] while more than this many
    /// bytes wait for the transport, so a stalled connection cannot grow memory without
    /// bound. Default 1 MiB.
    pub max_transmit_buffer: usize,
}

impl Options {
    /// Defaults for a client with this id.
    pub fn new(client_id: impl Into<String>) -> Options {
        Options {
            client_id: client_id.into(),
            keep_alive_s: 60,
            clean_session: true,
            username: None,
            password: None,
            will: None,
            max_inflight: MAX_INFLIGHT,
            max_queued: 10_000,
            max_payload_size: MAX_PAYLOAD_SIZE,
            connect_timeout_ms: 10_000,
            backoff: Backoff::default(),
            max_transmit_buffer: 1 << 20,
        }
    }

    fn validate(&self) -> Result<(), OptionsError> {
        if self.client_id.len() > usize::from(u16::MAX) || self.client_id.contains('\0') {
            return Err(OptionsError::ClientId);
        }
        if !(1..=MAX_INFLIGHT).contains(&self.max_inflight) {
            return Err(OptionsError::MaxInflight(self.max_inflight));
        }
        if self.max_queued + usize::from(self.max_inflight) > MAX_QUEUED {
            return Err(OptionsError::MaxQueued(self.max_queued));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(OptionsError::PasswordWithoutUsername);
        }
        if let Some(will) = &self.will {
            topic::validate_name(&will.topic).map_err(OptionsError::WillTopic)?;
            if will.qos == QoS::ExactlyOnce {
                return Err(OptionsError::QoS2);
            }
        }
        Ok(())
    }
}

/// Settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// The client id is longer than 65,535 bytes or holds NUL.
    #[error("the client id must be at most 65535 bytes of UTF-8 without NUL")]
    ClientId,
    /// `max_inflight` outside 1..=100.
    #[error("max_inflight must be between 1 and {MAX_INFLIGHT}, not {0}")]
    MaxInflight(u16),
    /// `max_queued` too large.
    #[error("max_queued {0} plus max_inflight exceeds {MAX_QUEUED}")]
    MaxQueued(usize),
    /// MQTT 3.1.1 needs a user name to send a password.
    #[error("a password needs a user name in MQTT 3.1.1")]
    PasswordWithoutUsername,
    /// The will topic is not a valid topic name.
    #[error("invalid will topic: {0}")]
    WillTopic(TopicError),
    /// QoS 2 is not supported (nor by IoT Core).
    #[error("QoS 2 is not supported")]
    QoS2,
}

/// Why a publish was not accepted. Nothing is queued when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// QoS 0 messages are not queued while disconnected.
    #[error("not connected: QoS 0 messages are not queued")]
    NotConnected,
    /// The session was stopped with [`Session::disconnect`].
    #[error("the session is stopped")]
    Stopped,
    /// The QoS 1 outbox is full.
    #[error("the outbox is full ({0} messages waiting)")]
    QueueFull(usize),
    /// Too many bytes already wait for the transport.
    #[error("the transport is not keeping up ({0} bytes waiting)")]
    WouldBlock(usize),
    /// The payload exceeds `max_payload_size`.
    #[error("payload of {size} bytes exceeds the {max}-byte limit")]
    PayloadTooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The topic is not a valid topic name.
    #[error("invalid topic: {0}")]
    BadTopic(#[from] TopicError),
    /// QoS 2 is not supported (nor by IoT Core).
    #[error("QoS 2 is not supported")]
    QoS2,
}

/// Why a subscribe or unsubscribe request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// A filter breaks §4.7.
    #[error("invalid topic filter {filter:?}: {source}")]
    BadFilter {
        /// The filter.
        filter: String,
        /// What is wrong with it.
        source: TopicError,
    },
    /// An empty list of filters.
    #[error("no topic filter given")]
    NoFilters,
    /// QoS 2 is not supported.
    #[error("QoS 2 is not supported")]
    QoS2,
}

/// The broker broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A packet that this state does not allow (e.g. PUBLISH before CONNACK).
    #[error("unexpected {packet} while {state}")]
    Unexpected {
        /// Packet name.
        packet: &'static str,
        /// What the session was doing.
        state: &'static str,
    },
    /// The broker sent QoS 2 traffic, which this client never asks for.
    #[error("the broker sent {0}, but this client supports QoS 0 and 1 only")]
    QoS2(&'static str),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The broker answered CONNACK with a refusal.
    Refused(ConnectReturnCode),
    /// No transport or no CONNACK within `connect_timeout_ms`.
    ConnectTimeout,
    /// Nothing heard from the broker for 1.5 × keep-alive.
    PingTimeout,
    /// The broker broke the protocol.
    Protocol(ProtocolError),
    /// The broker sent bytes that are not valid MQTT (or an oversized packet).
    Malformed(CodecError),
    /// The transport was closed by the other side.
    TransportClosed,
    /// The transport failed, as the driver reported it.
    TransportError(String),
    /// [`Session::disconnect`] was called.
    Requested,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Refused(code) => write!(f, "connection refused: {code}"),
            DisconnectReason::ConnectTimeout => f.write_str("the broker did not answer in time"),
            DisconnectReason::PingTimeout => {
                f.write_str("the broker stopped answering (keep-alive timeout)")
            }
            DisconnectReason::Protocol(e) => write!(f, "protocol error: {e}"),
            DisconnectReason::Malformed(e) => write!(f, "malformed data from the broker: {e}"),
            DisconnectReason::TransportClosed => f.write_str("the connection was closed"),
            DisconnectReason::TransportError(e) => write!(f, "connection error: {e}"),
            DisconnectReason::Requested => f.write_str("disconnected on request"),
        }
    }
}

/// An application message received from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS it was delivered with.
    pub qos: QoS,
    /// Whether it is a retained message.
    pub retain: bool,
    /// Whether the broker flagged it as a possible duplicate.
    pub dup: bool,
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// CONNACK accepted.
    Connected {
        /// Whether the broker resumed a stored session.
        session_present: bool,
    },
    /// The connection ended (or an attempt failed).
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// When the next attempt starts, if any (`None` after [`Session::disconnect`]).
        reconnect_at_ms: Option<u64>,
    },
    /// A message arrived on a subscribed topic.
    Message(Message),
    /// A QoS 1 publish was acknowledged by the broker.
    Acked {
        /// The identifier [`Session::publish`] returned.
        pkid: u16,
    },
    /// The broker answered a SUBSCRIBE. Refused filters are dropped from the session and
    /// not retried on reconnect.
    Subscribed {
        /// Each filter with its granted QoS or its refusal.
        results: Vec<(String, SubscribeReturn)>,
    },
    /// The broker answered an UNSUBSCRIBE.
    Unsubscribed {
        /// The filters removed.
        filters: Vec<String>,
    },
}

/// What the driver should do with its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportAction {
    /// Nothing to do.
    None,
    /// Open a transport (TCP, TLS, WebSocket) and call [`Session::transport_opened`] or
    /// [`Session::transport_closed`].
    Open,
    /// Write what [`Session::transmit`] holds, if anything, then close the transport.
    Close,
}

/// The session's connection state, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting before the next connection attempt.
    Waiting,
    /// Opening the transport or waiting for CONNACK.
    Connecting,
    /// CONNACK accepted.
    Connected,
    /// Asked the driver to close the transport.
    Closing,
    /// Stopped by [`Session::disconnect`].
    Stopped,
}

/// Counters for dashboards; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// PUBLISH packets sent the first time (QoS 0 and 1).
    pub published: u64,
    /// QoS 1 PUBLISH packets sent again, with DUP, after a reconnect.
    pub resent: u64,
    /// QoS 1 publishes acknowledged.
    pub acked: u64,
    /// PUBACKs for no message in flight (late duplicates), ignored.
    pub unknown_acks: u64,
    /// Application messages received.
    pub received: u64,
    /// Accepted connections after the first one.
    pub reconnects: u64,
    /// Connection attempts that ended before or at CONNACK.
    pub failed_attempts: u64,
    /// Bytes received from the transport.
    pub bytes_in: u64,
    /// Bytes handed to the transport.
    pub bytes_out: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting { at_ms: u64 },
    Opening { since_ms: u64 },
    Handshake { since_ms: u64 },
    Connected,
    Closing { reconnect_at_ms: Option<u64> },
    Stopped,
}

#[derive(Debug)]
struct Subscription {
    filter: String,
    qos: QoS,
    /// The broker holds it in the current session.
    acked: bool,
}

#[derive(Debug)]
enum Request {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
}

/// A sans-IO MQTT 3.1.1 client session. See the module docs for the driver loop.
#[derive(Debug)]
pub struct Session {
    options: Options,
    state: State,
    jitter: Jitter,
    /// Failed attempts since the last accepted connection.
    attempt: u32,
    ever_connected: bool,
    rx: Vec<u8>,
    tx: Vec<u8>,
    events: VecDeque<Event>,
    outbox: Outbox,
    subscriptions: Vec<Subscription>,
    /// Unsubscribes to send on the next connection (made while offline, or not acked).
    unsubscribes: Vec<String>,
    /// SUBSCRIBE/UNSUBSCRIBE sent and not yet answered, by packet identifier.
    requests: Vec<(u16, Request)>,
    next_control_id: u16,
    last_rx_ms: u64,
    last_tx_ms: u64,
    ping_outstanding: bool,
    stats: Stats,
}

impl Session {
    /// A session that will ask to connect at once. `seed` drives the reconnect jitter.
    pub fn new(options: Options, seed: u64) -> Result<Session, OptionsError> {
        options.validate()?;
        let outbox = Outbox::new(usize::from(options.max_inflight), options.max_queued);
        Ok(Session {
            options,
            state: State::Waiting { at_ms: 0 },
            jitter: Jitter::new(seed),
            attempt: 0,
            ever_connected: false,
            rx: Vec::new(),
            tx: Vec::new(),
            events: VecDeque::new(),
            outbox,
            subscriptions: Vec::new(),
            unsubscribes: Vec::new(),
            requests: Vec::new(),
            next_control_id: PUBLISH_ID_MAX + 1,
            last_rx_ms: 0,
            last_tx_ms: 0,
            ping_outstanding: false,
            stats: Stats::default(),
        })
    }

    /// The settings this session runs with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Connection state, for display.
    pub fn status(&self) -> Status {
        match self.state {
            State::Waiting { .. } => Status::Waiting,
            State::Opening { .. } | State::Handshake { .. } => Status::Connecting,
            State::Connected => Status::Connected,
            State::Closing { .. } => Status::Closing,
            State::Stopped => Status::Stopped,
        }
    }

    /// Whether CONNACK was accepted and the connection is up.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// QoS 1 messages sent and not yet acknowledged.
    pub fn inflight(&self) -> usize {
        self.outbox.inflight()
    }

    /// QoS 1 messages waiting for a window slot or a connection.
    pub fn queued(&self) -> usize {
        self.outbox.queued()
    }

    /// Tells the driver whether to open or close its transport. Call it after every input.
    pub fn poll_transport(&mut self, now_ms: u64) -> TransportAction {
        match self.state {
            State::Waiting { at_ms } if now_ms >= at_ms => {
                self.state = State::Opening { since_ms: now_ms };
                TransportAction::Open
            }
            State::Closing { reconnect_at_ms } => {
                self.state = match reconnect_at_ms {
                    Some(at_ms) => State::Waiting { at_ms },
                    None => State::Stopped,
                };
                TransportAction::Close
            }
            _ => TransportAction::None,
        }
    }

    /// The transport is open: the session sends CONNECT.
    pub fn transport_opened(&mut self, now_ms: u64) {
        if !matches!(self.state, State::Opening { .. } | State::Waiting { .. }) {
            return;
        }
        self.rx.clear();
        self.tx.clear();
        let will = self.options.will.as_ref().map(|w| Will {
            topic: &w.topic,
            payload: &w.payload,
            qos: w.qos,
            retain: w.retain,
        });
        let connect = Packet::Connect(Connect {
            client_id: &self.options.client_id,
            keep_alive_s: self.options.keep_alive_s,
            clean_session: self.options.clean_session,
            will,
            username: self.options.username.as_deref(),
            password: self.options.password.as_deref(),
        });
        // The fields were validated in `Options::validate`, so only a will payload over
        // 64 KiB can fail here; report it as a failed attempt rather than panic.
        if let Err(e) = codec::encode(&connect, &mut self.tx) {
            self.lose(now_ms, DisconnectReason::Malformed(e), true);
            return;
        }
        self.state = State::Handshake { since_ms: now_ms };
        self.last_rx_ms = now_ms;
        self.last_tx_ms = now_ms;
        self.ping_outstanding = false;
    }

    /// The transport closed or failed to open. `error` is the driver's description of a
    /// failure, `None` for an orderly close by the peer.
    pub fn transport_closed(&mut self, now_ms: u64, error: Option<String>) {
        if matches!(
            self.state,
            State::Opening { .. } | State::Handshake { .. } | State::Connected
        ) {
            let reason = match error {
                Some(e) => DisconnectReason::TransportError(e),
                None => DisconnectReason::TransportClosed,
            };
            self.lose(now_ms, reason, false);
        }
    }

    /// Bytes from the transport, in any split: a part of a packet, several packets, or both.
    pub fn handle_input(&mut self, now_ms: u64, data: &[u8]) {
        if !matches!(self.state, State::Handshake { .. } | State::Connected) {
            return;
        }
        self.stats.bytes_in += data.len() as u64;
        self.last_rx_ms = now_ms;
        let max = self.options.max_payload_size + 1024;
        // Decode straight from `data` when nothing is buffered (the common case), so whole
        // packets are never copied; only a trailing partial packet is kept.
        let mut buffered = std::mem::take(&mut self.rx);
        let input: &[u8] = if buffered.is_empty() {
            data
        } else {
            buffered.extend_from_slice(data);
            &buffered
        };
        let mut used = 0;
        let mut failure = None;
        while self.state_accepts_input() {
            match codec::decode(&input[used..], max) {
                Ok(Some((packet, n))) => {
                    used += n;
                    if let Err(e) = self.on_packet(now_ms, packet) {
                        failure = Some(DisconnectReason::Protocol(e));
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(DisconnectReason::Malformed(e));
                    break;
                }
            }
        }
        if let Some(reason) = failure {
            self.lose(now_ms, reason, true);
            return;
        }
        if self.state_accepts_input() {
            let rest = &input[used..];
            if buffered.is_empty() {
                self.rx.extend_from_slice(rest);
            } else {
                buffered.drain(..used);
                self.rx = buffered;
            }
        }
    }

    fn state_accepts_input(&self) -> bool {
        matches!(self.state, State::Handshake { .. } | State::Connected)
    }

    /// The next instant at which [`Session::handle_timeout`] (or, while waiting to
    /// reconnect, [`Session::poll_transport`]) has work to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            State::Waiting { at_ms } => Some(at_ms),
            State::Opening { since_ms } | State::Handshake { since_ms } => {
                Some(since_ms.saturating_add(self.options.connect_timeout_ms))
            }
            State::Connected if self.options.keep_alive_s > 0 => {
                let ka = self.keep_alive_ms();
                let dead = self.last_rx_ms.saturating_add(ka + ka / 2);
                if self.ping_outstanding {
                    Some(dead)
                } else {
                    Some(
                        self.last_rx_ms
                            .min(self.last_tx_ms)
                            .saturating_add(ka)
                            .min(dead),
                    )
                }
            }
            _ => None,
        }
    }

    /// Runs the timers: connect timeout, keep-alive pings and the dead-connection check.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        match self.state {
            State::Opening { since_ms } | State::Handshake { since_ms }
                if now_ms >= since_ms.saturating_add(self.options.connect_timeout_ms) =>
            {
                self.lose(now_ms, DisconnectReason::ConnectTimeout, true);
            }
            State::Connected if self.options.keep_alive_s > 0 => {
                let ka = self.keep_alive_ms();
                // Nothing at all from the broker for 1.5 × keep-alive: the broker itself
                // gives up on a client at that point (§3.1.2.10), so the link is dead.
                if now_ms >= self.last_rx_ms.saturating_add(ka + ka / 2) {
                    self.lose(now_ms, DisconnectReason::PingTimeout, true);
                    return;
                }
                // Ping when we have been silent (the broker needs to hear from us) or the
                // broker has (we need to hear from it, even while we publish QoS 0).
                let quiet_since = self.last_rx_ms.min(self.last_tx_ms);
                if !self.ping_outstanding && now_ms >= quiet_since.saturating_add(ka) {
                    self.write(&Packet::PingReq, now_ms);
                    self.ping_outstanding = true;
                }
            }
            _ => {}
        }
    }

    fn keep_alive_ms(&self) -> u64 {
        u64::from(self.options.keep_alive_s) * 1000
    }

    /// Bytes waiting for the transport. Write them (in one frame, for WebSocket), then call
    /// [`Session::consume_transmit`] with how many were written.
    pub fn transmit(&self) -> &[u8] {
        &self.tx
    }

    /// Drops the first `n` bytes of [`Session::transmit`] after the driver wrote them.
    pub fn consume_transmit(&mut self, n: usize) {
        let n = n.min(self.tx.len());
        self.stats.bytes_out += n as u64;
        if n == self.tx.len() {
            self.tx.clear();
        } else {
            self.tx.drain(..n);
        }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Publishes a message. QoS 1 messages get a packet identifier (reported again in
    /// [`Event::Acked`]) and are queued while the window is full or the connection is down;
    /// QoS 0 messages go out only while connected.
    pub fn publish(
        &mut self,
        now_ms: u64,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Option<u16>, PublishError> {
        topic::validate_name(topic)?;
        if payload.len() > self.options.max_payload_size {
            return Err(PublishError::PayloadTooLarge {
                size: payload.len(),
                max: self.options.max_payload_size,
            });
        }
        if self.state == State::Stopped {
            return Err(PublishError::Stopped);
        }
        match qos {
            QoS::AtMostOnce => {
                if self.state != State::Connected {
                    return Err(PublishError::NotConnected);
                }
                if self.tx.len() > self.options.max_transmit_buffer {
                    return Err(PublishError::WouldBlock(self.tx.len()));
                }
                let publish = Publish {
                    dup: false,
                    qos,
                    retain,
                    topic,
                    pkid: None,
                    payload,
                };
                // Cannot fail: the topic and payload sizes were checked above.
                if codec::encode_publish(&mut self.tx, &publish).is_ok() {
                    self.stats.published += 1;
                    self.last_tx_ms = now_ms;
                }
                Ok(None)
            }
            QoS::AtLeastOnce => {
                if self.outbox.is_full() {
                    return Err(PublishError::QueueFull(self.outbox.queued()));
                }
                let pkid = self.outbox.push(topic, payload, retain).map_err(|_| {
                    PublishError::PayloadTooLarge {
                        size: payload.len(),
                        max: self.options.max_payload_size,
                    }
                })?;
                if self.state == State::Connected {
                    self.flush_outbox(now_ms);
                }
                Ok(Some(pkid))
            }
            QoS::ExactlyOnce => Err(PublishError::QoS2),
        }
    }

    /// Subscribes to filters. The session remembers them and subscribes again after a
    /// reconnect whenever the broker did not keep the session.
    pub fn subscribe(
        &mut self,
        now_ms: u64,
        filters: &[(&str, QoS)],
    ) -> Result<(), SubscribeError> {
        if filters.is_empty() {
            return Err(SubscribeError::NoFilters);
        }
        for (filter, qos) in filters {
            topic::validate_filter(filter).map_err(|source| SubscribeError::BadFilter {
                filter: (*filter).to_owned(),
                source,
            })?;
            if *qos == QoS::ExactlyOnce {
                return Err(SubscribeError::QoS2);
            }
        }
        for (filter, qos) in filters {
            self.unsubscribes.retain(|f| f != filter);
            match self.subscriptions.iter_mut().find(|s| s.filter == *filter) {
                Some(sub) => {
                    sub.qos = *qos;
                    sub.acked = false;
                }
                None => self.subscriptions.push(Subscription {
                    filter: (*filter).to_owned(),
                    qos: *qos,
                    acked: false,
                }),
            }
        }
        if self.state == State::Connected {
            self.send_subscriptions(now_ms);
        }
        Ok(())
    }

    /// Unsubscribes from filters (sent now, or on the next connection).
    pub fn unsubscribe(&mut self, now_ms: u64, filters: &[&str]) -> Result<(), SubscribeError> {
        if filters.is_empty() {
            return Err(SubscribeError::NoFilters);
        }
        for filter in filters {
            topic::validate_filter(filter).map_err(|source| SubscribeError::BadFilter {
                filter: (*filter).to_owned(),
                source,
            })?;
        }
        self.subscriptions
            .retain(|s| !filters.contains(&s.filter.as_str()));
        for filter in filters {
            if !self.unsubscribes.iter().any(|f| f == filter) {
                self.unsubscribes.push((*filter).to_owned());
            }
        }
        if self.state == State::Connected {
            self.send_unsubscribes(now_ms);
        }
        Ok(())
    }

    /// Ends the session: sends DISCONNECT if connected, then asks the driver to close the
    /// transport, and stops reconnecting. QoS 1 messages not yet acknowledged are kept and
    /// go out again after [`Session::reconnect`].
    pub fn disconnect(&mut self, now_ms: u64) {
        match self.state {
            State::Connected => {
                self.write(&Packet::Disconnect, now_ms);
                self.stop_connection(now_ms);
            }
            State::Opening { .. } | State::Handshake { .. } => {
                self.tx.clear();
                self.stop_connection(now_ms);
            }
            State::Waiting { .. } => {
                self.state = State::Stopped;
                self.events.push_back(Event::Disconnected {
                    reason: DisconnectReason::Requested,
                    reconnect_at_ms: None,
                });
            }
            State::Closing { .. } => {
                self.state = State::Closing {
                    reconnect_at_ms: None,
                }
            }
            State::Stopped => {}
        }
    }

    /// Starts connecting again after [`Session::disconnect`]; resets the backoff.
    pub fn reconnect(&mut self, now_ms: u64) {
        self.attempt = 0;
        match self.state {
            State::Stopped => self.state = State::Waiting { at_ms: now_ms },
            State::Waiting { .. } => self.state = State::Waiting { at_ms: now_ms },
            State::Closing { .. } => {
                self.state = State::Closing {
                    reconnect_at_ms: Some(now_ms),
                }
            }
            _ => {}
        }
    }

    /// Common part of a requested stop, keeping the DISCONNECT bytes for the driver.
    fn stop_connection(&mut self, _now_ms: u64) {
        self.reset_connection_state();
        self.state = State::Closing {
            reconnect_at_ms: None,
        };
        self.events.push_back(Event::Disconnected {
            reason: DisconnectReason::Requested,
            reconnect_at_ms: None,
        });
    }

    /// The connection is gone (or must go): plan the next attempt and tell the application.
    fn lose(&mut self, now_ms: u64, reason: DisconnectReason, close_transport: bool) {
        if !matches!(self.state, State::Connected) {
            self.stats.failed_attempts += 1;
        }
        self.tx.clear();
        self.reset_connection_state();
        let delay = self.jitter.delay_ms(&self.options.backoff, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let at_ms = now_ms.saturating_add(delay);
        self.state = if close_transport {
            State::Closing {
                reconnect_at_ms: Some(at_ms),
            }
        } else {
            State::Waiting { at_ms }
        };
        self.events.push_back(Event::Disconnected {
            reason,
            reconnect_at_ms: Some(at_ms),
        });
    }

    fn reset_connection_state(&mut self) {
        self.rx.clear();
        self.outbox.connection_lost();
        self.ping_outstanding = false;
        // Requests in flight died with the connection: subscriptions stay un-acked and are
        // sent again; unsubscribes go back to the to-do list.
        for (_, request) in self.requests.drain(..) {
            if let Request::Unsubscribe(filters) = request {
                for f in filters {
                    if !self.unsubscribes.contains(&f) {
                        self.unsubscribes.push(f);
                    }
                }
            }
        }
    }

    fn on_packet(&mut self, now_ms: u64, packet: Packet<'_>) -> Result<(), ProtocolError> {
        if let State::Handshake { .. } = self.state {
            return match packet {
                Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Accepted => {
                    self.on_connected(now_ms, ack.session_present);
                    Ok(())
                }
                Packet::ConnAck(ack) => {
                    self.lose(now_ms, DisconnectReason::Refused(ack.code), true);
                    Ok(())
                }
                other => Err(ProtocolError::Unexpected {
                    packet: other.name(),
                    state: "waiting for CONNACK",
                }),
            };
        }
        match packet {
            Packet::Publish(p) => {
                if p.qos == QoS::ExactlyOnce {
                    return Err(ProtocolError::QoS2("a QoS 2 PUBLISH"));
                }
                if let (QoS::AtLeastOnce, Some(id)) = (p.qos, p.pkid) {
                    self.write(&Packet::PubAck(id), now_ms);
                }
                self.stats.received += 1;
                self.events.push_back(Event::Message(Message {
                    topic: p.topic.to_owned(),
                    payload: p.payload.to_vec(),
                    qos: p.qos,
                    retain: p.retain,
                    dup: p.dup,
                }));
            }
            Packet::PubAck(pkid) => match self.outbox.ack(pkid) {
                Ack::Done => {
                    self.stats.acked += 1;
                    self.events.push_back(Event::Acked { pkid });
                    self.flush_outbox(now_ms);
                }
                Ack::Unknown => self.stats.unknown_acks += 1,
            },
            Packet::SubAck(ack) => {
                if let Some(Request::Subscribe(filters)) = self.take_request(ack.pkid) {
                    let results: Vec<(String, SubscribeReturn)> =
                        filters.into_iter().zip(ack.returns).collect();
                    for (filter, result) in &results {
                        match result {
                            SubscribeReturn::Success(_) => {
                                if let Some(s) =
                                    self.subscriptions.iter_mut().find(|s| &s.filter == filter)
                                {
                                    s.acked = true;
                                }
                            }
                            SubscribeReturn::Failure => {
                                self.subscriptions.retain(|s| &s.filter != filter)
                            }
                        }
                    }
                    self.events.push_back(Event::Subscribed { results });
                }
            }
            Packet::UnsubAck(pkid) => {
                if let Some(Request::Unsubscribe(filters)) = self.take_request(pkid) {
                    self.events.push_back(Event::Unsubscribed { filters });
                }
            }
            Packet::PingResp => self.ping_outstanding = false,
            Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {
                return Err(ProtocolError::QoS2(packet.name()));
            }
            other => {
                return Err(ProtocolError::Unexpected {
                    packet: other.name(),
                    state: "connected",
                });
            }
        }
        Ok(())
    }

    fn on_connected(&mut self, now_ms: u64, session_present: bool) {
        self.state = State::Connected;
        self.attempt = 0;
        if self.ever_connected {
            self.stats.reconnects += 1;
        }
        self.ever_connected = true;
        if !session_present {
            for sub in &mut self.subscriptions {
                sub.acked = false;
            }
        }
        self.events.push_back(Event::Connected { session_present });
        // Order matters: subscriptions first, so commands sent in answer to our publishes
        // find a subscription; then resends, then new messages (§4.6 ordering).
        self.send_subscriptions(now_ms);
        self.send_unsubscribes(now_ms);
        self.flush_outbox(now_ms);
    }

    fn take_request(&mut self, pkid: u16) -> Option<Request> {
        let index = self.requests.iter().position(|(id, _)| *id == pkid)?;
        Some(self.requests.swap_remove(index).1)
    }

    fn control_id(&mut self) -> u16 {
        let id = self.next_control_id;
        self.next_control_id = if id == u16::MAX {
            PUBLISH_ID_MAX + 1
        } else {
            id + 1
        };
        id
    }

    fn send_subscriptions(&mut self, now_ms: u64) {
        let pending: Vec<(String, QoS)> = self
            .subscriptions
            .iter()
            .filter(|s| !s.acked)
            .filter(|s| {
                !self
                    .requests
                    .iter()
                    .any(|(_, r)| matches!(r, Request::Subscribe(fs) if fs.contains(&s.filter)))
            })
            .map(|s| (s.filter.clone(), s.qos))
            .collect();
        for chunk in pending.chunks(FILTERS_PER_SUBSCRIBE) {
            let pkid = self.control_id();
            let filters = chunk.iter().map(|(f, q)| (f.as_str(), *q)).collect();
            self.write(&Packet::Subscribe(Subscribe { pkid, filters }), now_ms);
            let names = chunk.iter().map(|(f, _)| f.clone()).collect();
            self.requests.push((pkid, Request::Subscribe(names)));
        }
    }

    fn send_unsubscribes(&mut self, now_ms: u64) {
        let pending = std::mem::take(&mut self.unsubscribes);
        for chunk in pending.chunks(FILTERS_PER_SUBSCRIBE) {
            let pkid = self.control_id();
            let filters = chunk.iter().map(String::as_str).collect();
            self.write(&Packet::Unsubscribe(Unsubscribe { pkid, filters }), now_ms);
            self.requests
                .push((pkid, Request::Unsubscribe(chunk.to_vec())));
        }
    }

    fn flush_outbox(&mut self, now_ms: u64) {
        let (first, again) = self.outbox.send_ready(&mut self.tx);
        if first + again > 0 {
            self.stats.published += first;
            self.stats.resent += again;
            self.last_tx_ms = now_ms;
        }
    }

    /// Encodes a control packet the session built itself.
    fn write(&mut self, packet: &Packet<'_>, now_ms: u64) {
        // Control packets are built from validated filters and ids; encoding cannot fail.
        if codec::encode(packet, &mut self.tx).is_ok() {
            self.last_tx_ms = now_ms;
        }
    }
}

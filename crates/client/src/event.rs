//! What the client reports to the application.

use std::time::Duration;

use fleet_mqtt::{DisconnectReason, Event, Message, PublishError, SubscribeReturn};

/// Something that happened on the connection, in the order it happened.
///
/// It mirrors [`fleet_mqtt::Event`], with the session's millisecond clock turned into a
/// delay, plus the failures of [`ClientHandle::publish_nowait`](crate::ClientHandle::publish_nowait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The broker accepted the connection (CONNACK).
    Connected {
        /// Whether the broker resumed a stored session.
        session_present: bool,
    },
    /// The connection ended, or an attempt failed.
    Disconnected {
        /// Why, in words via `Display` (e.g. "connection error: connection refused by
        /// 127.0.0.1:1883").
        reason: DisconnectReason,
        /// How long until the next attempt; `None` once the client is stopping.
        reconnect_in: Option<Duration>,
    },
    /// A message arrived on a subscribed topic.
    Message(Message),
    /// The broker acknowledged the QoS 1 publish with this packet identifier.
    Acked {
        /// The identifier the publish returned.
        pkid: u16,
        /// The tag it was published with
        /// ([`publish_tagged`](crate::ClientHandle::publish_tagged)).
        tag: Option<u64>,
    },
    /// The broker answered a subscribe.
    Subscribed {
        /// Each filter with its granted QoS or its refusal.
        results: Vec<(String, SubscribeReturn)>,
    },
    /// The broker answered an unsubscribe.
    Unsubscribed {
        /// The filters removed.
        filters: Vec<String>,
    },
    /// A [`publish_nowait`](crate::ClientHandle::publish_nowait) was refused; nothing was
    /// queued for it.
    PublishRejected {
        /// Its topic.
        topic: String,
        /// Why.
        error: PublishError,
        /// Its tag, if it had one.
        tag: Option<u64>,
    },
}

impl ClientEvent {
    /// Converts a session event; `now_ms` is the session clock at the time, `tag` the tag of
    /// the publish an `Acked` is for.
    pub(crate) fn from_session(event: Event, now_ms: u64, tag: Option<u64>) -> ClientEvent {
        match event {
            Event::Connected { session_present } => ClientEvent::Connected { session_present },
            Event::Disconnected {
                reason,
                reconnect_at_ms,
            } => ClientEvent::Disconnected {
                reason,
                reconnect_in: reconnect_at_ms
                    .map(|at| Duration::from_millis(at.saturating_sub(now_ms))),
            },
            Event::Message(message) => ClientEvent::Message(message),
            Event::Acked { pkid } => ClientEvent::Acked { pkid, tag },
            Event::Subscribed { results } => ClientEvent::Subscribed { results },
            Event::Unsubscribed { filters } => ClientEvent::Unsubscribed { filters },
        }
    }
}

//! Why a client was refused: a stable code per reason, for logs and metric labels.

use std::fmt;

/// What the client tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Connect (or, on a WebSocket, upgrade): answered with CONNACK 5 or HTTP 403.
    Connect,
    /// Publish: the connection is closed (MQTT 3.1.1 has no negative PUBACK; IoT Core closes
    /// too).
    Publish,
    /// Subscribe: SUBACK 0x80 for that filter.
    Subscribe,
}

impl Action {
    /// Every action, in a fixed order.
    pub const ALL: [Action; 3] = [Action::Connect, Action::Publish, Action::Subscribe];

    /// A stable lowercase code, a metric label.
    pub fn code(self) -> &'static str {
        match self {
            Action::Connect => "connect",
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why an action was refused (§4.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The listener needs a credential and the client presented none.
    NoCredentials,
    /// The credential (user name and password, certificate) is not one the stack issued.
    BadCredentials,
    /// The client id is not one the identity may use (a device connects as itself).
    ClientIdNotAllowed,
    /// Another identity holds the client id (no takeover by someone else).
    ClientIdInUse,
    /// The will message's topic is one the client may not publish to.
    WillNotAllowed,
    /// A WebSocket upgrade from a web page whose origin is not allowed.
    OriginNotAllowed,
    /// A publish to a command topic: only the pipeline commands.
    CommandTopic,
    /// A publish to the alarm topic: only the pipeline raises alarms.
    AlarmTopic,
    /// A publish of another device's telemetry.
    OtherDevice,
    /// A publish by a read-only client (an observer, a client id that names no device).
    ReadOnly,
    /// A publish to a topic that is none of the fleet's (or has invalid ids in it).
    UnknownTopic,
    /// A subscription outside the client's own topics.
    NotOwnTopic,
}

impl Reason {
    /// Every reason, in a fixed order (to pre-register counters).
    pub const ALL: [Reason; 12] = [
        Reason::NoCredentials,
        Reason::BadCredentials,
        Reason::ClientIdNotAllowed,
        Reason::ClientIdInUse,
        Reason::WillNotAllowed,
        Reason::OriginNotAllowed,
        Reason::CommandTopic,
        Reason::AlarmTopic,
        Reason::OtherDevice,
        Reason::ReadOnly,
        Reason::UnknownTopic,
        Reason::NotOwnTopic,
    ];

    /// A stable snake_case code, a metric label of bounded cardinality.
    pub fn code(self) -> &'static str {
        match self {
            Reason::NoCredentials => "no_credentials",
            Reason::BadCredentials => "bad_credentials",
            Reason::ClientIdNotAllowed => "client_id_not_allowed",
            Reason::ClientIdInUse => "client_id_in_use",
            Reason::WillNotAllowed => "will_not_allowed",
            Reason::OriginNotAllowed => "origin_not_allowed",
            Reason::CommandTopic => "command_topic",
            Reason::AlarmTopic => "alarm_topic",
            Reason::OtherDevice => "other_device",
            Reason::ReadOnly => "read_only",
            Reason::UnknownTopic => "unknown_topic",
            Reason::NotOwnTopic => "not_own_topic",
        }
    }

    /// The action this reason refuses.
    pub fn action(self) -> Action {
        match self {
            Reason::NoCredentials
            | Reason::BadCredentials
            | Reason::ClientIdNotAllowed
            | Reason::ClientIdInUse
            | Reason::WillNotAllowed
            | Reason::OriginNotAllowed => Action::Connect,
            Reason::CommandTopic
            | Reason::AlarmTopic
            | Reason::OtherDevice
            | Reason::ReadOnly
            | Reason::UnknownTopic => Action::Publish,
            Reason::NotOwnTopic => Action::Subscribe,
        }
    }

    /// The reason in plain words.
    pub fn message(self) -> &'static str {
        match self {
            Reason::NoCredentials => "this listener needs a credential (user name and password)",
            Reason::BadCredentials => "the credential is not one this stack issued",
            Reason::ClientIdNotAllowed => "the client id is not one this identity may use",
            Reason::ClientIdInUse => "another identity is connected with this client id",
            Reason::WillNotAllowed => "the will message's topic is not the client's own",
            Reason::OriginNotAllowed => "the page's origin is not allowed to reach this stack",
            Reason::CommandTopic => "only the pipeline publishes commands",
            Reason::AlarmTopic => "only the pipeline publishes alarms",
            Reason::OtherDevice => {
                "a device publishes only its own telemetry (a gateway its buildings')"
            }
            Reason::ReadOnly => "this client may only subscribe",
            Reason::UnknownTopic => "the topic is not one of the fleet's",
            Reason::NotOwnTopic => {
                "a device subscribes only to its own command topic (a gateway its buildings')"
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_every_action_has_reasons() {
        let codes: BTreeSet<_> = Reason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Reason::ALL.len());
        for c in codes {
            assert!(
                c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
        }
        for action in Action::ALL {
            assert!(Reason::ALL.iter().any(|r| r.action() == action), "{action}");
        }
    }
}

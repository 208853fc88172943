//! Who may say what (ARCHITECTURE §4.8): the one place that decides whether an MQTT client
//! may connect with a client id, publish on a topic, subscribe to a filter and receive a
//! message, and whether a reading may be stored under the identity that published it.
//!
//! # Key decision: identity first, then one table of rules
//! Adapters only establish *who* a client is (an [`Identity`]: a certificate's name, a
//! credential the stack issued, or, on loopback in development mode, nothing but its
//! client id). Everything after that is decided here, the same for every listener:
//! [`connect`] binds the identity to its client id and returns a [`Grant`], which answers
//! every later publish, subscribe and delivery. The pipeline (worker, remediation, alarms)
//! is not a client at all: it publishes through the broker's own handle, so no identity
//! here can publish a command or an alarm.
//!
//! | identity | client id | may publish | may subscribe / receive |
//! |---|---|---|---|
//! | [`Identity::Device`] (certificate, device credential) | its id, or [`LEGACY_CLIENT_ID`] | its own telemetry topic; the legacy telemetry topics (the worker checks `body.device`) | its own command topic; the legacy remediation topics |
//! | [`Identity::Fleet`] (the fleet token: a simulator) | any one device id per connection, or [`LEGACY_CLIENT_ID`] | as that device (legacy: any `body.device`) | as that device |
//! | [`Identity::Page`] (a page's credential) | `{namespace}.{suffix}` | telemetry of `{namespace}-…` devices | their command topics (a `+` device receives only theirs), alarms |
//! | [`Identity::Gateway`] (a gateway's credential, for named buildings) | `gateway:{some of its buildings}` | telemetry in those buildings (any device id) | those buildings' command topics (`cmd/monitoring/{b}/+/remediation`) |
//! | [`Identity::Observer`] (the read credential) | any | nothing | anything |
//! | [`Identity::Development`] (loopback, no credential) | any; a device id names the device, `gateway:{buildings}` a gateway | that device's telemetry, or the gateway's | anything (read-only observers are loopback's) |
//!
//! A client id is held by one identity at a time: another connection may take it over
//! only if it is the same identity, or a stronger kind (a device beats the fleet token,
//! pages and gateways, which beat development mode), see [`Holder`].
//!
//! A gateway's client id names the buildings that connection speaks for, a subset of its
//! credential's: each connection may do only what its own buildings need, and a log line
//! or refusal names them.
//!
//! # Layout
//! - [`Identity`], [`connect`], [`Grant`], [`Holder`]: the rules (this file).
//! - [`Publisher`]: whose readings a client may publish, also built from an AWS client id.
//! - [`Namespace`]: a page's devices and client ids.
//! - [`Buildings`]: a gateway's buildings and client ids.
//! - [`Reason`], [`Action`]: why something was refused, as stable codes.

mod gateway;
mod namespace;
mod publisher;
mod refusal;
mod shape;

use std::fmt;

pub use gateway::{Buildings, BuildingsError, GATEWAY_CLIENT_ID_PREFIX};
pub use namespace::Namespace;
pub use publisher::Publisher;
pub use refusal::{Action, Reason};
use shape::{Seg, Shape, classify};

use crate::id::DeviceId;

/// The original stack's fixed client id (§6): its devices all connect with it.
pub const LEGACY_CLIENT_ID: &str = "monitoring-device";

/// Who a client is, once its credential was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A device, proven by its certificate or by a credential issued for it.
    Device(DeviceId),
    /// The holder of the fleet token (a simulator): any one device per connection, named by
    /// the client id.
    Fleet,
    /// A browser page, proven by the credential its same-origin `config.json` gave it.
    Page(Namespace),
    /// A gateway for named buildings (a credential the stack issued for them): it publishes
    /// for every device of those buildings and hears their commands.
    Gateway(Buildings),
    /// A read-only client (dashboards, `mosquitto_sub`).
    Observer,
    /// No credential, on a loopback listener in development mode: the client id is taken
    /// at its word.
    Development,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Device(id) => write!(f, "device {id}"),
            Identity::Fleet => f.write_str("fleet token"),
            Identity::Page(ns) => write!(f, "page {ns}"),
            Identity::Gateway(b) => write!(f, "gateway of buildings {b}"),
            Identity::Observer => f.write_str("observer"),
            Identity::Development => f.write_str("development mode (client id)"),
        }
    }
}

/// Who holds a client id, to decide whether a new connection may take it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Development and observers 1, the fleet token, pages and gateways 2, devices 3.
    strength: u8,
    /// The identity, e.g. `device:d-0001`.
    key: String,
}

impl Holder {
    /// Whether a connection held by `self` may take over a client id held by `current`
    /// (MQTT 3.1.1 §3.1.4-2 takeover): the same identity reconnecting, or a stronger kind
    /// of proof. So a device with its certificate can evict an impostor that took its
    /// client id in development mode, and nobody can evict a device with another device's
    /// credential.
    pub fn may_take_over(&self, current: &Holder) -> bool {
        self.strength > current.strength || self.key == current.key
    }
}

/// What a subscription receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receive {
    /// Every message that matches the filter.
    All,
    /// Only the messages [`Grant::receive`] allows (a page's `+` device: its own devices'
    /// commands only, as IoT Core's `iot:Receive` does).
    Checked,
}

/// What one connection may do, decided at CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    publisher: Publisher,
    reads_all: bool,
    holder: Holder,
}

/// Decides a CONNECT: binds `identity` to `client_id` and checks the will topic.
pub fn connect(
    identity: &Identity,
    client_id: &str,
    will_topic: Option<&str>,
) -> Result<Grant, Reason> {
    let holder = |strength: u8, key: String| Holder { strength, key };
    let grant = match identity {
        Identity::Device(id) => {
            if client_id != id.as_str() && client_id != LEGACY_CLIENT_ID {
                return Err(Reason::ClientIdNotAllowed);
            }
            Grant {
                publisher: Publisher::Device(id.clone()),
                reads_all: false,
                holder: holder(3, format!("device:{id}")),
            }
        }
        Identity::Fleet => {
            let publisher = if client_id == LEGACY_CLIENT_ID {
                Publisher::Unbound
            } else {
                DeviceId::try_from(client_id)
                    .map(Publisher::Device)
                    .map_err(|_| Reason::ClientIdNotAllowed)?
            };
            Grant {
                publisher,
                reads_all: false,
                holder: holder(2, String::from("fleet")),
            }
        }
        Identity::Page(ns) => {
            if !ns.is_client_id(client_id) {
                return Err(Reason::ClientIdNotAllowed);
            }
            Grant {
                publisher: Publisher::Namespace(ns.clone()),
                reads_all: false,
                holder: holder(2, format!("page:{ns}")),
            }
        }
        Identity::Gateway(buildings) => {
            let own = Buildings::of_client_id(client_id)
                .filter(|own| buildings.includes(own))
                .ok_or(Reason::ClientIdNotAllowed)?;
            Grant {
                publisher: Publisher::Buildings(own),
                reads_all: false,
                holder: holder(2, format!("gateway:{buildings}")),
            }
        }
        Identity::Observer => Grant {
            publisher: Publisher::Nobody,
            reads_all: true,
            holder: holder(1, String::from("observer")),
        },
        Identity::Development => {
            let publisher = if client_id == LEGACY_CLIENT_ID {
                Publisher::Unbound
            } else if let Some(buildings) = Buildings::of_client_id(client_id) {
                Publisher::Buildings(buildings)
            } else {
                DeviceId::try_from(client_id).map_or(Publisher::Nobody, Publisher::Device)
            };
            Grant {
                publisher,
                reads_all: true,
                holder: holder(1, format!("dev:{client_id}")),
            }
        }
    };
    if let Some(topic) = will_topic {
        grant.publish(topic).map_err(|_| Reason::WillNotAllowed)?;
    }
    Ok(grant)
}

impl Grant {
    /// Whose readings this client may publish.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Who holds the client id.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Decides a PUBLISH to `topic`.
    pub fn publish(&self, topic: &str) -> Result<(), Reason> {
        let nobody = self.publisher == Publisher::Nobody;
        match classify(topic, false) {
            // Spoofing attempts are named as such, whoever tries.
            Shape::Command { .. } | Shape::LegacyRemediation => Err(Reason::CommandTopic),
            Shape::Alarms => Err(Reason::AlarmTopic),
            _ if nobody => Err(Reason::ReadOnly),
            Shape::Telemetry {
                building: Seg::Id(building),
                device: Seg::Id(device),
            } if self.publisher.may_report(building, device) => Ok(()),
            Shape::Telemetry { .. } => Err(Reason::OtherDevice),
            // Legacy topics name no device; the worker checks `body.device` against the
            // publisher. Pages and gateways never speak the legacy protocol.
            Shape::LegacyTelemetry => match self.publisher {
                Publisher::Device(_) | Publisher::Unbound => Ok(()),
                _ => Err(Reason::OtherDevice),
            },
            Shape::Other => Err(Reason::UnknownTopic),
        }
    }

    /// Decides a subscription to `filter`.
    pub fn subscribe(&self, filter: &str) -> Result<Receive, Reason> {
        if self.reads_all {
            return Ok(Receive::All);
        }
        match (classify(filter, true), &self.publisher) {
            (
                Shape::Command {
                    device: Seg::Id(device),
                    ..
                },
                Publisher::Device(me),
            ) if me.as_str() == device => Ok(Receive::All),
            (
                Shape::Command {
                    device: Seg::Id(device),
                    ..
                },
                Publisher::Namespace(ns),
            ) if ns.owns(device) => Ok(Receive::All),
            (
                Shape::Command {
                    device: Seg::Any, ..
                },
                Publisher::Namespace(_),
            ) => Ok(Receive::Checked),
            // A gateway hears every device of its own buildings, by wildcard or one by one.
            (
                Shape::Command {
                    building: Seg::Id(building),
                    ..
                },
                Publisher::Buildings(buildings),
            ) if buildings.contains(building) => Ok(Receive::All),
            (Shape::Alarms, Publisher::Namespace(_)) => Ok(Receive::All),
            // The legacy command topic is per building and names no device: every legacy
            // device of the building hears every command and keeps its own (§4.3).
            (Shape::LegacyRemediation, Publisher::Device(_) | Publisher::Unbound) => {
                Ok(Receive::All)
            }
            _ => Err(Reason::NotOwnTopic),
        }
    }

    /// Whether a message on `topic` may be delivered through a [`Receive::Checked`]
    /// subscription.
    pub fn receive(&self, topic: &str) -> bool {
        match (&self.publisher, classify(topic, false)) {
            (
                Publisher::Namespace(ns),
                Shape::Command {
                    device: Seg::Id(device),
                    ..
                },
            ) => ns.owns(device),
            (Publisher::Namespace(_), Shape::Alarms) => true,
            (Publisher::Namespace(_), _) => false,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests;

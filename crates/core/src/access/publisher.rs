//! Whose readings a client may publish: the broker checks topics against it, the worker
//! checks each reading's device against it.

use std::fmt;

use super::LEGACY_CLIENT_ID;
use super::gateway::Buildings;
use super::namespace::Namespace;
use crate::id::DeviceId;

/// Whose readings a client may publish (§4.8: only a device speaks for itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Publisher {
    /// One device: its own readings.
    Device(DeviceId),
    /// A browser page: the readings of its namespace's devices.
    Namespace(Namespace),
    /// A gateway: the readings of the devices in its buildings.
    Buildings(Buildings),
    /// Any device's, taken at their word: a client whose identity binds no device id
    /// (the loopback development mode, or the fleet token on the legacy client id, whose
    /// topics name no device).
    Unbound,
    /// No device's: an observer, or a client id that names no identity.
    Nobody,
}

impl Publisher {
    /// Whether a reading of `device` in `building` may come from this publisher.
    pub fn may_report(&self, building: &str, device: &str) -> bool {
        match self {
            Publisher::Device(id) => id.as_str() == device,
            Publisher::Namespace(ns) => ns.owns(device),
            Publisher::Buildings(buildings) => buildings.contains(building),
            Publisher::Unbound => true,
            Publisher::Nobody => false,
        }
    }

    /// The publisher an AWS IoT client id stands for, as the worker sees it through the
    /// rule's `clientid()`. IoT Core has already bound the client id to its credential (the
    /// device policy: client id = thing name; the guest role: client ids
    /// `{identity id}.{suffix}`), so the client id is the identity:
    /// - [`LEGACY_CLIENT_ID`]: the original device, whose thing speaks for `legacy_device`;
    /// - `{base}.{suffix}`: a page, for the devices of [`Namespace::of_client_id`];
    /// - a valid device id: that device;
    /// - anything else (gateways too: no IoT policy in the template binds a gateway's client
    ///   id to its buildings yet, see docs/security.md): [`Publisher::Nobody`].
    pub fn of_client_id(client_id: &str, legacy_device: Option<&DeviceId>) -> Publisher {
        if client_id == LEGACY_CLIENT_ID {
            return legacy_device.map_or(Publisher::Nobody, |d| Publisher::Device(d.clone()));
        }
        if let Some(ns) = Namespace::of_client_id(client_id) {
            return Publisher::Namespace(ns);
        }
        DeviceId::try_from(client_id).map_or(Publisher::Nobody, Publisher::Device)
    }
}

impl fmt::Display for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Publisher::Device(id) => write!(f, "device {id}"),
            Publisher::Namespace(ns) => write!(f, "namespace {ns}"),
            Publisher::Buildings(b) => write!(f, "gateway of buildings {b}"),
            Publisher::Unbound => f.write_str("any device (unbound)"),
            Publisher::Nobody => f.write_str("no device"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::try_from(s).unwrap()
    }

    #[test]
    fn an_aws_client_id_names_its_publisher() {
        let legacy = id("381938912");
        let p = |c: &str| Publisher::of_client_id(c, Some(&legacy));
        assert_eq!(p("d-0001"), Publisher::Device(id("d-0001")));
        assert_eq!(p("monitoring-device"), Publisher::Device(legacy.clone()));
        assert_eq!(
            Publisher::of_client_id("monitoring-device", None),
            Publisher::Nobody
        );
        let guest = p("eu-west-1:7d7c5d4e-0a1b-4c2d-8e3f-1234567890ab.gw0");
        assert!(guest.may_report("b", "g7d7c5d4e0a1b4c2d8e3f1234567890ab-0001"));
        assert!(!guest.may_report("b", "d-0001"));
        assert_eq!(p("gateway:1,2"), Publisher::Nobody);
        assert_eq!(
            p("w1a2.gw0"),
            Publisher::Namespace(Namespace::new("w1a2").unwrap())
        );
        for nobody in ["", "a b", "x:y", "a/b", ".gw0"] {
            assert_eq!(p(nobody), Publisher::Nobody, "{nobody}");
        }
    }

    #[test]
    fn readings_are_checked_against_the_publisher() {
        assert!(Publisher::Device(id("d-1")).may_report("1", "d-1"));
        assert!(!Publisher::Device(id("d-1")).may_report("1", "d-2"));
        assert!(Publisher::Unbound.may_report("1", "d-2"));
        assert!(!Publisher::Nobody.may_report("1", "d-2"));
        let gateway = Publisher::Buildings(Buildings::parse("1,2").unwrap());
        assert!(gateway.may_report("2", "d-9"));
        assert!(!gateway.may_report("3", "d-9"));
    }
}

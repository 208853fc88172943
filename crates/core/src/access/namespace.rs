//! Namespaces: the devices a browser page may speak for.

use std::fmt;

use crate::id::{DeviceId, IdError, validate_id};

/// A browser page's namespace: it speaks for the devices `{namespace}-…` and connects with
/// client ids `{base}.{suffix}` (§4.8).
///
/// `[A-Za-z0-9_]{1,40}`: no `-`, so a namespace can never be the prefix of another one
/// (`w1` would otherwise own `w1-a-0001`, a device of `w1-a`), and short enough that its
/// devices' ids stay within 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Longest namespace, in bytes.
    pub const MAX_LEN: usize = 40;

    /// A namespace, validated.
    pub fn new(s: &str) -> Result<Namespace, IdError> {
        validate_id(s)?;
        if let Some(at) = s.find('-') {
            return Err(IdError::BadChar { ch: '-', at });
        }
        if s.len() > Self::MAX_LEN {
            return Err(IdError::TooLong { len: s.len() });
        }
        Ok(Namespace(s.to_owned()))
    }

    /// The namespace as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `device` is one of this namespace's devices: `{namespace}-{something}`.
    pub fn owns(&self, device: &str) -> bool {
        device
            .strip_prefix(self.0.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|suffix| !suffix.is_empty())
    }

    /// The device `{namespace}-{suffix}`.
    pub fn device(&self, suffix: &str) -> Result<DeviceId, IdError> {
        DeviceId::try_from(format!("{}-{suffix}", self.0))
    }

    /// The namespace of a Cognito identity id (`{region}:{uuid}`, e.g.
    /// `eu-west-1:7d7c5d4e-…`): `g` and the uuid's 32 hex digits. IAM can bind a guest's
    /// client ids to its identity id, but that id holds a `:`, which no device id may, so its
    /// devices are named after the uuid instead (`g7d7c5d4e…-0001`).
    pub fn of_cognito_identity(identity: &str) -> Option<Namespace> {
        let (region, uuid) = identity.split_once(':')?;
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let groups: Vec<&str> = uuid.split('-').collect();
        let uuid_ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups
                .iter()
                .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
        if !(region_ok && uuid_ok) {
            return None;
        }
        let hex: String = groups.concat().to_ascii_lowercase();
        Some(Namespace(format!("g{hex}")))
    }

    /// The namespace a client id `{base}.{suffix}` speaks for: a Cognito identity's
    /// ([`Namespace::of_cognito_identity`]) or the base itself. `None` for a client id
    /// without a `.` or whose base is neither.
    pub fn of_client_id(client_id: &str) -> Option<Namespace> {
        let (base, suffix) = client_id.split_once('.')?;
        if suffix.is_empty() {
            return None;
        }
        Namespace::of_cognito_identity(base).or_else(|| Namespace::new(base).ok())
    }

    /// Whether `client_id` is one of this namespace's client ids, `{namespace}.{suffix}`.
    pub fn is_client_id(&self, client_id: &str) -> bool {
        client_id
            .strip_prefix(self.0.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|suffix| !suffix.is_empty())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_owns_its_devices_and_no_others() {
        let ns = Namespace::new("w1a2").unwrap();
        assert!(ns.owns("w1a2-0001"));
        for other in [
            "w1a2",
            "w1a2-",
            "w1a20-0001",
            "w1a-0001",
            "d-0001",
            "xw1a2-0001",
        ] {
            assert!(!ns.owns(other), "{other}");
        }
        assert_eq!(ns.device("0007").unwrap().as_str(), "w1a2-0007");
        assert!(ns.is_client_id("w1a2.gw0"));
        assert!(!ns.is_client_id("w1a2."));
        assert!(!ns.is_client_id("w1a2-0001"));
    }

    #[test]
    fn namespaces_hold_no_dash_and_are_short() {
        assert!(Namespace::new("w1-a").is_err());
        assert!(Namespace::new("").is_err());
        assert!(Namespace::new(&"a".repeat(41)).is_err());
        assert!(Namespace::new(&"a".repeat(40)).is_ok());
        assert!(Namespace::new("a.b").is_err());
    }

    #[test]
    fn a_cognito_identity_names_a_namespace_of_its_uuid() {
        let id = "eu-west-1:7D7C5D4E-0A1B-4C2D-8E3F-1234567890AB";
        let ns = Namespace::of_cognito_identity(id).unwrap();
        assert_eq!(ns.as_str(), "g7d7c5d4e0a1b4c2d8e3f1234567890ab");
        // Its devices stay within the 64-byte id limit.
        assert!(ns.device("00001").is_ok());
        for bad in [
            "eu-west-1",
            ":7d7c5d4e-0a1b-4c2d-8e3f-1234567890ab",
            "eu-west-1:7d7c5d4e-0a1b-4c2d-8e3f-1234567890a",
            "eu-west-1:7d7c5d4e-0a1b-4c2d-8e3f-1234567890ag",
            "EU:7d7c5d4e-0a1b-4c2d-8e3f-1234567890ab",
        ] {
            assert_eq!(Namespace::of_cognito_identity(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_client_id_names_its_namespace_by_its_base() {
        let ns = |c: &str| Namespace::of_client_id(c).map(|n| n.to_string());
        assert_eq!(
            ns("eu-west-1:7d7c5d4e-0a1b-4c2d-8e3f-1234567890ab.gw0").as_deref(),
            Some("g7d7c5d4e0a1b4c2d8e3f1234567890ab")
        );
        assert_eq!(ns("w1a2.alarms").as_deref(), Some("w1a2"));
        assert_eq!(ns("d-0001"), None);
        assert_eq!(ns("w1a2."), None);
        assert_eq!(ns("w-1.x"), None);
    }
}

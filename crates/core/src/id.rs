//! Validated identifiers for devices and buildings (§4.2).
//!
//! Ids end up in MQTT topics, table keys and archive paths, so they are checked once, at the
//! edge, and carried as types afterwards: code holding a [`DeviceId`] never re-validates it
//! and can put it in a key or a path without escaping.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest id accepted, in bytes (all accepted characters are one byte long).
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a valid id (`[A-Za-z0-9_-]{1,64}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("id is empty")]
    Empty,
    /// The string is longer than [`MAX_ID_LEN`].
    #[error("id is {len} bytes long, at most {MAX_ID_LEN} allowed")]
    TooLong {
        /// Length of the rejected string, in bytes.
        len: usize,
    },
    /// The string holds a character outside `[A-Za-z0-9_-]`.
    #[error("id has {ch:?} at byte {at}; only A-Z, a-z, 0-9, '_' and '-' are allowed")]
    BadChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the string.
        at: usize,
    },
}

/// Checks `s` against `[A-Za-z0-9_-]{1,64}` without building an id (for checks on every
/// message, e.g. `access`).
pub fn validate_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    // Report the first bad character before the length: it is the more useful message when
    // someone pastes a whole topic or URL where an id belongs.
    if let Some((at, ch)) = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(IdError::BadChar { ch, at });
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: s.len() });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as a string slice (always `[A-Za-z0-9_-]{1,64}`).
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a string the caller has built from valid parts (e.g. `d-0001`).
            #[allow(dead_code)] // Not every id type is built from parts.
            pub(crate) fn from_valid(s: String) -> Self {
                debug_assert!(validate_id(&s).is_ok(), "invalid id built: {s:?}");
                Self(s)
            }

            /// Consumes the id and returns the inner string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(s: &str) -> Result<Self, IdError> {
                validate_id(s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(s: String) -> Result<Self, IdError> {
                validate_id(&s)?;
                Ok(Self(s))
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::try_from(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        // Deserializing validates, so a stored or received value can never smuggle in a bad id.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                Self::try_from(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type! {
    /// A device's identity: MQTT client id, table partition key, topic segment.
    ///
    /// ```
    /// use fleet_core::DeviceId;
    /// let id: DeviceId = "d-0001".parse().unwrap();
    /// assert_eq!(id.as_str(), "d-0001");
    /// assert!("d/0001".parse::<DeviceId>().is_err());
    /// ```
    DeviceId
}

id_type! {
    /// A building's identity: groups devices in topics and in the fleet metrics.
    BuildingId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_full_charset_up_to_64() {
        let s = "AZaz09_-".repeat(8);
        assert_eq!(DeviceId::try_from(s.as_str()).unwrap().as_str(), s);
        assert!(BuildingId::try_from("1").is_ok());
    }

    #[test]
    fn rejects_with_a_typed_reason() {
        assert_eq!(DeviceId::try_from(""), Err(IdError::Empty));
        assert_eq!(
            DeviceId::try_from("a".repeat(65).as_str()),
            Err(IdError::TooLong { len: 65 })
        );
        assert_eq!(
            DeviceId::try_from("ab+c"),
            Err(IdError::BadChar { ch: '+', at: 2 })
        );
        assert_eq!(
            BuildingId::try_from("é"),
            Err(IdError::BadChar { ch: 'é', at: 0 })
        );
    }

    #[test]
    fn serde_round_trips_and_deserialize_validates() {
        let id = DeviceId::try_from("d-0001").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"d-0001\"");
        assert_eq!(serde_json::from_str::<DeviceId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<DeviceId>("\"a/b\"").is_err());
        assert!(serde_json::from_str::<BuildingId>("\"\"").is_err());
    }

    #[test]
    fn displays_as_the_raw_id() {
        assert_eq!(BuildingId::try_from("b_7").unwrap().to_string(), "b_7");
    }
}

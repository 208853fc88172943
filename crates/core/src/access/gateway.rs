//! Gateways: one connection that speaks for every device of some named buildings (a
//! simulator past its process's file limit, as the page's gateway mode; a building's
//! gateway on a real site).

use std::fmt;

use crate::id::{BuildingId, IdError, validate_id};

/// The client id prefix of a gateway connection: `gateway:{buildings}`, or
/// `gateway:{buildings}.{suffix}` where several connections speak for the same buildings
/// (shards of one fleet whose id ranges meet inside a building): without the suffix they
/// would share a client id and take each other's session over. `:` is in no device id or
/// namespace, so a gateway's client id can never be a device's (and so never hold a
/// device's client id against it); `.` is in no building id.
pub const GATEWAY_CLIENT_ID_PREFIX: &str = "gateway:";

/// The buildings a gateway speaks for: a non-empty set of building ids, at most
/// [`Buildings::MAX`], written `B1,B2,…` (sorted, without repeats).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Buildings(Vec<BuildingId>);

/// Why a list of buildings is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildingsError {
    /// No building at all.
    #[error("a gateway needs at least one building")]
    Empty,
    /// More than [`Buildings::MAX`].
    #[error("a gateway speaks for at most {max} buildings, not {0}", max = Buildings::MAX)]
    TooMany(usize),
    /// One entry is not a building id.
    #[error("building {0:?}: {1}")]
    Building(String, IdError),
}

impl Buildings {
    /// Most buildings per gateway: IoT Core allows 50 subscriptions per connection, and a
    /// gateway subscribes to one command filter per building.
    pub const MAX: usize = 50;

    /// A set of buildings, checked.
    pub fn new<I>(buildings: I) -> Result<Buildings, BuildingsError>
    where
        I: IntoIterator<Item = BuildingId>,
    {
        let mut list: Vec<BuildingId> = buildings.into_iter().collect();
        list.sort();
        list.dedup();
        match list.len() {
            0 => Err(BuildingsError::Empty),
            n if n > Self::MAX => Err(BuildingsError::TooMany(n)),
            _ => Ok(Buildings(list)),
        }
    }

    /// Parses `B1,B2,…`.
    pub fn parse(s: &str) -> Result<Buildings, BuildingsError> {
        let ids = s
            .split(',')
            .map(|b| {
                BuildingId::try_from(b.trim()).map_err(|e| BuildingsError::Building(b.into(), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Buildings::new(ids)
    }

    /// The buildings a gateway client id `gateway:B1,B2,…[.suffix]` names, if it is one.
    pub fn of_client_id(client_id: &str) -> Option<Buildings> {
        let rest = client_id.strip_prefix(GATEWAY_CLIENT_ID_PREFIX)?;
        let list = match rest.split_once('.') {
            Some((list, suffix)) => {
                validate_id(suffix).ok()?;
                list
            }
            None => rest,
        };
        Buildings::parse(list).ok()
    }

    /// The gateway client id for these buildings, `gateway:B1,B2,…`.
    pub fn client_id(&self) -> String {
        format!("{GATEWAY_CLIENT_ID_PREFIX}{self}")
    }

    /// The gateway client id for these buildings with a suffix that tells apart
    /// connections speaking for the same buildings, `gateway:B1,B2,….{suffix}` (a valid id).
    pub fn client_id_with(&self, suffix: &str) -> String {
        format!("{GATEWAY_CLIENT_ID_PREFIX}{self}.{suffix}")
    }

    /// Whether `building` is one of them.
    pub fn contains(&self, building: &str) -> bool {
        self.0
            .binary_search_by(|b| b.as_str().cmp(building))
            .is_ok()
    }

    /// Whether every one of `other` is one of these.
    pub fn includes(&self, other: &Buildings) -> bool {
        other.0.iter().all(|b| self.contains(b.as_str()))
    }

    /// The buildings, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &BuildingId> {
        self.0.iter()
    }
}

impl fmt::Display for Buildings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(b.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildings_parse_sorted_without_repeats_and_name_their_client_id() {
        let b = Buildings::parse("3,1,3").unwrap();
        assert_eq!(b.to_string(), "1,3");
        assert_eq!(b.client_id(), "gateway:1,3");
        assert!(b.contains("1") && b.contains("3") && !b.contains("2"));
        assert_eq!(Buildings::of_client_id("gateway:3,1"), Some(b.clone()));
        assert_eq!(b.client_id_with("s2"), "gateway:1,3.s2");
        assert_eq!(Buildings::of_client_id("gateway:1,3.s2"), Some(b.clone()));
        assert!(b.includes(&Buildings::parse("3").unwrap()));
        assert!(!b.includes(&Buildings::parse("2,3").unwrap()));
        for bad in [
            "d-0001",
            "gateway:",
            "gateway:1,",
            "gateway:a b",
            "1,3",
            "gateway:1,3.",
            "gateway:1,3.s/2",
            "gateway:.s2",
        ] {
            assert_eq!(Buildings::of_client_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_lists_are_refused_with_a_reason() {
        assert!(matches!(
            Buildings::parse(""),
            Err(BuildingsError::Building(..))
        ));
        assert_eq!(Buildings::new([]), Err(BuildingsError::Empty));
        let many: Vec<String> = (0..=Buildings::MAX).map(|i| i.to_string()).collect();
        assert_eq!(
            Buildings::parse(&many.join(",")),
            Err(BuildingsError::TooMany(Buildings::MAX + 1))
        );
        assert!(Buildings::parse("1,x/y").is_err());
    }
}

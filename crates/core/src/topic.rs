//! MQTT topic names (§4.2): parsing, formatting and the subscription filters.
//!
//! Topics follow AWS's "Designing MQTT Topics for AWS IoT Core" convention
//! (`dt/…` for data, `cmd/…` for commands); the original stack's single-device topics are
//! kept as the legacy variants so its devices work unchanged.

use std::fmt;

use crate::id::{BuildingId, DeviceId, IdError};

/// Filter matching every device's telemetry: `dt/monitoring/{building}/{device}/telemetry`.
pub const TELEMETRY_FILTER: &str = "dt/monitoring/+/+/telemetry";
/// Filter matching every device's command topic: `cmd/monitoring/{building}/{device}/remediation`.
pub const COMMAND_FILTER: &str = "cmd/monitoring/+/+/remediation";
/// Filter matching the original stack's topics, both `building-{n}` and `remediation-{n}`.
///
/// Subscribers interested in telemetry only must still parse each topic and keep
/// [`Topic::LegacyTelemetry`]: MQTT has no filter for "segment starting with `building-`".
pub const LEGACY_FILTER: &str = "monitoring-device/+";
/// The alarms topic (cloud → UI), a single fixed topic.
pub const ALARMS_TOPIC: &str = "dt/monitoring/alarms";

const LEGACY_ROOT: &str = "monitoring-device";
const LEGACY_TELEMETRY_PREFIX: &str = "building-";
const LEGACY_REMEDIATION_PREFIX: &str = "remediation-";

/// A parsed topic. `Display` gives back the exact topic string, so parse ∘ display is the
/// identity on valid topics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `dt/monitoring/{building}/{device}/telemetry`: readings from a device.
    Telemetry {
        /// Building segment.
        building: BuildingId,
        /// Device segment.
        device: DeviceId,
    },
    /// `cmd/monitoring/{building}/{device}/remediation`: commands to a device.
    Command {
        /// Building segment.
        building: BuildingId,
        /// Device segment.
        device: DeviceId,
    },
    /// `dt/monitoring/alarms`: alarm state changes for the UI.
    Alarms,
    /// `monitoring-device/building-{n}`: the original device's telemetry topic.
    LegacyTelemetry {
        /// The `{n}` of the topic.
        building: BuildingId,
    },
    /// `monitoring-device/remediation-{n}`: the original device's command topic.
    LegacyRemediation {
        /// The `{n}` of the topic.
        building: BuildingId,
    },
}

/// Which part of a topic an id error was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    /// The `{building}` (or legacy `{n}`) segment.
    Building,
    /// The `{device}` segment.
    Device,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Segment::Building => "building",
            Segment::Device => "device",
        })
    }
}

/// Why a string is not one of the fleet's topics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic is the empty string.
    #[error("topic is empty")]
    Empty,
    /// The first segments are none of `dt/monitoring`, `cmd/monitoring`, `monitoring-device`.
    #[error(
        "topic does not start with a known prefix (dt/monitoring, cmd/monitoring, monitoring-device)"
    )]
    WrongPrefix,
    /// The prefix is known but the number of `/`-separated segments is not.
    #[error("topic has {found} segments, expected {expected}")]
    SegmentCount {
        /// Segments the topic's prefix calls for.
        expected: usize,
        /// Segments found.
        found: usize,
    },
    /// The last segment is not the kind the prefix calls for (e.g. `…/telemetry`).
    #[error("topic ends in an unknown segment")]
    WrongSuffix,
    /// A building or device segment is not a valid id.
    #[error("topic's {segment} segment is invalid")]
    BadId {
        /// Which segment.
        segment: Segment,
        /// Why the id is invalid.
        #[source]
        source: IdError,
    },
}

impl Topic {
    /// Parses a concrete topic name (wildcards are rejected as bad ids).
    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        if topic.is_empty() {
            return Err(TopicError::Empty);
        }
        let segments: Vec<&str> = topic.split('/').collect();
        match segments.as_slice() {
            ["dt", "monitoring", rest @ ..] => match rest {
                ["alarms"] => Ok(Topic::Alarms),
                [building, device, "telemetry"] => Ok(Topic::Telemetry {
                    building: building_id(building)?,
                    device: device_id(device)?,
                }),
                [_, _, _] => Err(TopicError::WrongSuffix),
                _ => Err(TopicError::SegmentCount {
                    expected: 5,
                    found: segments.len(),
                }),
            },
            ["cmd", "monitoring", rest @ ..] => match rest {
                [building, device, "remediation"] => Ok(Topic::Command {
                    building: building_id(building)?,
                    device: device_id(device)?,
                }),
                [_, _, _] => Err(TopicError::WrongSuffix),
                _ => Err(TopicError::SegmentCount {
                    expected: 5,
                    found: segments.len(),
                }),
            },
            [LEGACY_ROOT, last] => {
                if let Some(n) = last.strip_prefix(LEGACY_TELEMETRY_PREFIX) {
                    Ok(Topic::LegacyTelemetry {
                        building: building_id(n)?,
                    })
                } else if let Some(n) = last.strip_prefix(LEGACY_REMEDIATION_PREFIX) {
                    Ok(Topic::LegacyRemediation {
                        building: building_id(n)?,
                    })
                } else {
                    Err(TopicError::WrongSuffix)
                }
            }
            [LEGACY_ROOT, ..] => Err(TopicError::SegmentCount {
                expected: 2,
                found: segments.len(),
            }),
            _ => Err(TopicError::WrongPrefix),
        }
    }

    /// The telemetry topic of a device.
    pub fn telemetry(building: BuildingId, device: DeviceId) -> Topic {
        Topic::Telemetry { building, device }
    }

    /// The command topic of a device.
    pub fn command(building: BuildingId, device: DeviceId) -> Topic {
        Topic::Command { building, device }
    }

    /// Where commands go for a device publishing on this topic: the command topic for a
    /// telemetry topic, the legacy remediation topic for a legacy telemetry topic; `None`
    /// for topics that are not telemetry.
    pub fn command_topic(&self) -> Option<Topic> {
        match self {
            Topic::Telemetry { building, device } => Some(Topic::Command {
                building: building.clone(),
                device: device.clone(),
            }),
            Topic::LegacyTelemetry { building } => Some(Topic::LegacyRemediation {
                building: building.clone(),
            }),
            Topic::Command { .. } | Topic::Alarms | Topic::LegacyRemediation { .. } => None,
        }
    }

    /// The building named by the topic, if any.
    pub fn building(&self) -> Option<&BuildingId> {
        match self {
            Topic::Telemetry { building, .. }
            | Topic::Command { building, .. }
            | Topic::LegacyTelemetry { building }
            | Topic::LegacyRemediation { building } => Some(building),
            Topic::Alarms => None,
        }
    }

    /// The device named by the topic, if any (legacy topics name none).
    pub fn device(&self) -> Option<&DeviceId> {
        match self {
            Topic::Telemetry { device, .. } | Topic::Command { device, .. } => Some(device),
            Topic::Alarms | Topic::LegacyTelemetry { .. } | Topic::LegacyRemediation { .. } => None,
        }
    }

    /// Whether this is a telemetry topic, current or legacy.
    pub fn is_telemetry(&self) -> bool {
        matches!(
            self,
            Topic::Telemetry { .. } | Topic::LegacyTelemetry { .. }
        )
    }

    /// Whether this is one of the original stack's topics.
    pub fn is_legacy(&self) -> bool {
        matches!(
            self,
            Topic::LegacyTelemetry { .. } | Topic::LegacyRemediation { .. }
        )
    }
}

fn building_id(s: &str) -> Result<BuildingId, TopicError> {
    BuildingId::try_from(s).map_err(|source| TopicError::BadId {
        segment: Segment::Building,
        source,
    })
}

fn device_id(s: &str) -> Result<DeviceId, TopicError> {
    DeviceId::try_from(s).map_err(|source| TopicError::BadId {
        segment: Segment::Device,
        source,
    })
}

impl std::str::FromStr for Topic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Topic, TopicError> {
        Topic::parse(s)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Telemetry { building, device } => {
                write!(f, "dt/monitoring/{building}/{device}/telemetry")
            }
            Topic::Command { building, device } => {
                write!(f, "cmd/monitoring/{building}/{device}/remediation")
            }
            Topic::Alarms => f.write_str(ALARMS_TOPIC),
            Topic::LegacyTelemetry { building } => {
                write!(f, "{LEGACY_ROOT}/{LEGACY_TELEMETRY_PREFIX}{building}")
            }
            Topic::LegacyRemediation { building } => {
                write!(f, "{LEGACY_ROOT}/{LEGACY_REMEDIATION_PREFIX}{building}")
            }
        }
    }
}

/// AWS IoT Basic Ingest: a message published to `$aws/rules/<rule>/<topic>` goes straight
/// to the rule, with no messaging charge, and the rule sees `<topic>`.
pub mod basic_ingest {
    /// The topic prefix of Basic Ingest topics.
    pub const ROOT: &str = "$aws/rules/";

    /// The prefix for `rule` (`$aws/rules/<rule>/`), or why `rule` is no IoT rule name
    /// (1 to 128 letters, digits or `_`).
    pub fn prefix(rule: &str) -> Result<String, &'static str> {
        if rule.is_empty()
            || rule.len() > 128
            || !rule.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err("an IoT rule name is 1 to 128 letters, digits or _");
        }
        Ok(format!("{ROOT}{rule}/"))
    }

    /// The rule named by a prefix such as `$aws/rules/fleet_telemetry/`.
    pub fn rule(prefix: &str) -> Option<&str> {
        let rule = prefix.strip_prefix(ROOT)?.trim_end_matches('/');
        self::prefix(rule).ok().map(|_| rule)
    }

    /// The topic after a Basic Ingest prefix, if `topic` has one.
    pub fn strip(topic: &str) -> Option<&str> {
        let (rule, rest) = topic.strip_prefix(ROOT)?.split_once('/')?;
        (!rule.is_empty() && !rest.is_empty()).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> BuildingId {
        BuildingId::try_from(s).unwrap()
    }

    fn d(s: &str) -> DeviceId {
        DeviceId::try_from(s).unwrap()
    }

    #[test]
    fn parses_every_kind_and_round_trips() {
        let cases = [
            (
                "dt/monitoring/1/d-0001/telemetry",
                Topic::telemetry(b("1"), d("d-0001")),
            ),
            (
                "cmd/monitoring/1/d-0001/remediation",
                Topic::command(b("1"), d("d-0001")),
            ),
            ("dt/monitoring/alarms", Topic::Alarms),
            (
                "monitoring-device/building-1",
                Topic::LegacyTelemetry { building: b("1") },
            ),
            (
                "monitoring-device/remediation-12",
                Topic::LegacyRemediation { building: b("12") },
            ),
        ];
        for (text, topic) in cases {
            assert_eq!(Topic::parse(text).unwrap(), topic, "{text}");
            assert_eq!(topic.to_string(), text);
        }
    }

    #[test]
    fn command_topic_mirrors_the_telemetry_topic() {
        let t = Topic::parse("dt/monitoring/b1/dev_9/telemetry").unwrap();
        assert_eq!(
            t.command_topic().unwrap().to_string(),
            "cmd/monitoring/b1/dev_9/remediation"
        );
        let legacy = Topic::parse("monitoring-device/building-1").unwrap();
        assert_eq!(
            legacy.command_topic().unwrap().to_string(),
            "monitoring-device/remediation-1"
        );
        assert_eq!(Topic::Alarms.command_topic(), None);
    }

    #[test]
    fn rejects_with_typed_errors() {
        assert_eq!(Topic::parse(""), Err(TopicError::Empty));
        assert_eq!(Topic::parse("foo/bar"), Err(TopicError::WrongPrefix));
        assert_eq!(
            Topic::parse("dt/monitoring/1/telemetry"),
            Err(TopicError::SegmentCount {
                expected: 5,
                found: 4
            })
        );
        assert_eq!(
            Topic::parse("dt/monitoring/1/d/status"),
            Err(TopicError::WrongSuffix)
        );
        assert_eq!(
            Topic::parse("monitoring-device/floor-1"),
            Err(TopicError::WrongSuffix)
        );
        assert_eq!(
            Topic::parse("monitoring-device/building-1/x"),
            Err(TopicError::SegmentCount {
                expected: 2,
                found: 3
            })
        );
        assert!(matches!(
            Topic::parse("dt/monitoring/+/d/telemetry"),
            Err(TopicError::BadId {
                segment: Segment::Building,
                source: IdError::BadChar { ch: '+', .. }
            })
        ));
        assert!(matches!(
            Topic::parse("cmd/monitoring/1//remediation"),
            Err(TopicError::BadId {
                segment: Segment::Device,
                source: IdError::Empty
            })
        ));
        assert!(matches!(
            Topic::parse("monitoring-device/building-"),
            Err(TopicError::BadId { .. })
        ));
    }

    #[test]
    fn filters_are_consistent_with_display() {
        let t = Topic::telemetry(b("x"), d("y")).to_string();
        assert!(t.starts_with("dt/monitoring/") && t.ends_with("/telemetry"));
        assert_eq!(Topic::Alarms.to_string(), ALARMS_TOPIC);
        assert!(TELEMETRY_FILTER.split('/').count() == 5);
        assert!(COMMAND_FILTER.ends_with("/remediation"));
        assert!(LEGACY_FILTER.starts_with(LEGACY_ROOT));
    }

    #[test]
    fn basic_ingest_prefixes_rules_and_topics() {
        use super::basic_ingest::{prefix, rule, strip};
        assert_eq!(
            prefix("fleet_telemetry").unwrap(),
            "$aws/rules/fleet_telemetry/"
        );
        for bad in ["", "fleet-telemetry", "a/b", &"x".repeat(129)] {
            assert!(prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(rule("$aws/rules/fleet_telemetry/"), Some("fleet_telemetry"));
        assert_eq!(rule("$aws/rules/fleet-telemetry/"), None);
        assert_eq!(rule("dt/monitoring"), None);
        assert_eq!(
            strip("$aws/rules/fleet_telemetry/dt/monitoring/1/d-1/telemetry"),
            Some("dt/monitoring/1/d-1/telemetry")
        );
        for t in [
            "$aws/rules/fleet_telemetry",
            "$aws/rules//dt/x",
            "dt/monitoring/1/d/telemetry",
        ] {
            assert_eq!(strip(t), None, "{t}");
        }
    }
}

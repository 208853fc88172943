//! Topics and filters as the access rules see them: which of the fleet's topics, and for
//! which device. Borrowed and allocation-free, as it runs on every publish.

use crate::id::validate_id;

/// One building or device segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seg<'t> {
    /// A valid id.
    Id(&'t str),
    /// `+` (filters only).
    Any,
}

/// Which of the fleet's topics (§4.2) a topic or filter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape<'t> {
    /// `dt/monitoring/{building}/{device}/telemetry`.
    Telemetry { building: Seg<'t>, device: Seg<'t> },
    /// `cmd/monitoring/{building}/{device}/remediation`.
    Command { building: Seg<'t>, device: Seg<'t> },
    /// `dt/monitoring/alarms`.
    Alarms,
    /// `monitoring-device/building-{n}`.
    LegacyTelemetry,
    /// `monitoring-device/remediation-{n}`.
    LegacyRemediation,
    /// Anything else: other topics, `#`, invalid ids, a `+` where the fleet's topics have
    /// a fixed word.
    Other,
}

/// Classifies a topic name (`wildcards == false`) or a subscription filter.
pub(crate) fn classify(s: &str, wildcards: bool) -> Shape<'_> {
    fn seg(x: &str, wildcards: bool) -> Option<Seg<'_>> {
        if wildcards && x == "+" {
            Some(Seg::Any)
        } else {
            validate_id(x).ok().map(|()| Seg::Id(x))
        }
    }
    let seg = |x| seg(x, wildcards);
    let mut parts = s.split('/');
    let mut next = || parts.next();
    let shape = match (next(), next(), next(), next(), next(), next()) {
        (Some("dt"), Some("monitoring"), Some("alarms"), None, None, None) => Some(Shape::Alarms),
        (Some("dt"), Some("monitoring"), Some(b), Some(d), Some("telemetry"), None) => seg(b)
            .zip(seg(d))
            .map(|(building, device)| Shape::Telemetry { building, device }),
        (Some("cmd"), Some("monitoring"), Some(b), Some(d), Some("remediation"), None) => seg(b)
            .zip(seg(d))
            .map(|(building, device)| Shape::Command { building, device }),
        (Some("monitoring-device"), Some(last), None, None, None, None) => {
            let legacy = |prefix: &str, shape: Shape<'static>| {
                last.strip_prefix(prefix)
                    .and_then(|n| validate_id(n).ok())
                    .map(|()| shape)
            };
            legacy("building-", Shape::LegacyTelemetry)
                .or_else(|| legacy("remediation-", Shape::LegacyRemediation))
        }
        _ => None,
    };
    shape.unwrap_or(Shape::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_filters_are_classified() {
        let t = |s| classify(s, false);
        let f = |s| classify(s, true);
        assert_eq!(
            t("dt/monitoring/1/d-1/telemetry"),
            Shape::Telemetry {
                building: Seg::Id("1"),
                device: Seg::Id("d-1")
            }
        );
        assert_eq!(
            t("cmd/monitoring/1/d-1/remediation"),
            Shape::Command {
                building: Seg::Id("1"),
                device: Seg::Id("d-1")
            }
        );
        assert_eq!(t("dt/monitoring/alarms"), Shape::Alarms);
        assert_eq!(t("monitoring-device/building-1"), Shape::LegacyTelemetry);
        assert_eq!(
            t("monitoring-device/remediation-1"),
            Shape::LegacyRemediation
        );
        for other in [
            "",
            "dt/monitoring/1/d$1/telemetry",
            "dt/monitoring/1/d-1/telemetry/x",
            "dt/monitoring/+/+/telemetry",
            "monitoring-device/building-",
            "monitoring-device/+",
            "$aws/rules/r/dt/monitoring/1/d-1/telemetry",
        ] {
            assert_eq!(t(other), Shape::Other, "{other}");
        }
        assert_eq!(
            f("cmd/monitoring/+/+/remediation"),
            Shape::Command {
                building: Seg::Any,
                device: Seg::Any
            }
        );
        assert_eq!(
            f("cmd/monitoring/+/d-1/remediation"),
            Shape::Command {
                building: Seg::Any,
                device: Seg::Id("d-1")
            }
        );
        for other in ["#", "cmd/#", "cmd/monitoring/+/+/+", "monitoring-device/+"] {
            assert_eq!(f(other), Shape::Other, "{other}");
        }
    }
}

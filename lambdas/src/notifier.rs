//! The notifier (§4.6): CloudWatch alarm state changes, delivered by SNS, forwarded to
//! `dt/monitoring/alarms` as the [`AlarmNotice`] JSON the UI already reads from the local
//! stack and the in-page mode.
//!
//! CloudWatch's message names the alarm, its states and reason, and a `Trigger` with the
//! metric, its dimensions, the comparison and the threshold. The notice's kind follows from
//! them: a fleet aggregate (`OutOfBand`, `Readings`, `Rejected`, or a `Building` dimension
//! only) is `FleetOutOfBand`; otherwise "greater" is `TemperatureHigh` and "less"
//! `TemperatureLow` (an anomaly band's two-sided comparison is told apart by its reason).

use aws_lambda_events::event::sns::SnsEvent;
use chrono::DateTime;
use fleet_core::{AlarmKind, AlarmNotice, AlarmState, BuildingId, DeviceId};
use serde::Deserialize;
use tracing::{error, info};

use crate::ports::Publisher;

/// A message that is not a CloudWatch alarm state change.
#[derive(Debug, thiserror::Error)]
pub enum AlarmMessageError {
    /// Not the JSON CloudWatch sends.
    #[error("not a CloudWatch alarm message: {0}")]
    NotAlarm(#[from] serde_json::Error),
    /// A state is none of `OK`, `ALARM`, `INSUFFICIENT_DATA`.
    #[error("unknown alarm state {0:?}")]
    State(String),
}

/// The parts of CloudWatch's alarm message used here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CloudWatchAlarm {
    alarm_name: String,
    new_state_value: String,
    old_state_value: String,
    #[serde(default)]
    new_state_reason: String,
    #[serde(default)]
    state_change_time: Option<String>,
    #[serde(default)]
    trigger: Trigger,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Trigger {
    #[serde(default)]
    metric_name: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    #[serde(default)]
    comparison_operator: Option<String>,
    #[serde(default)]
    threshold: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Dimension {
    name: String,
    value: String,
}

fn state(s: &str) -> Result<AlarmState, AlarmMessageError> {
    match s {
        "OK" => Ok(AlarmState::Ok),
        "ALARM" => Ok(AlarmState::Alarm),
        "INSUFFICIENT_DATA" => Ok(AlarmState::InsufficientData),
        other => Err(AlarmMessageError::State(other.to_owned())),
    }
}

/// The first number inside `[...]` of CloudWatch's reason, e.g. `[28.4 (27/11/25 08:00:00)]`:
/// the datapoint that changed the state.
fn datapoint(reason: &str) -> Option<f64> {
    let after = reason.split_once('[')?.1;
    let end = after
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'E' | 'e' | '+')))
        .unwrap_or(after.len());
    after
        .get(..end)?
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
}

/// The notice for a CloudWatch alarm message; `fallback_ms` is used when its
/// `StateChangeTime` is missing or unreadable (the SNS timestamp).
pub fn notice_from_message(
    message: &str,
    fallback_ms: u64,
) -> Result<AlarmNotice, AlarmMessageError> {
    let a: CloudWatchAlarm = serde_json::from_str(message)?;
    let new = state(&a.new_state_value)?;
    let previous = state(&a.old_state_value)?;
    let dimension = |name: &str| {
        a.trigger
            .dimensions
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
            .map(|d| d.value.as_str())
    };
    // The template names alarms `<stack>/<device>/<Kind>` and `<stack>/fleet/<Kind>`: the
    // surest source, since anomaly-band and metric-math alarms describe their metrics under
    // `Trigger.Metrics` and carry no `MetricName` or dimensions.
    let mut name = a.alarm_name.rsplit('/');
    let (named_kind, named_scope) = (name.next(), name.next());
    let device = dimension("Device")
        .or(named_scope.filter(|s| *s != "fleet"))
        .and_then(|v| DeviceId::try_from(v).ok());
    let building = dimension("Building").and_then(|v| BuildingId::try_from(v).ok());
    let metric = a.trigger.metric_name.as_deref().unwrap_or_default();
    let op = a.trigger.comparison_operator.as_deref().unwrap_or_default();
    let reason_lower = a.new_state_reason.to_ascii_lowercase();
    let below = reason_lower.contains("less than");
    let kind = match named_kind {
        Some("TemperatureHigh") => Some(AlarmKind::TemperatureHigh),
        Some("TemperatureLow") => Some(AlarmKind::TemperatureLow),
        Some("FleetOutOfBand") => Some(AlarmKind::FleetOutOfBand),
        Some("TemperatureAnomaly") if below => Some(AlarmKind::TemperatureLow),
        Some("TemperatureAnomaly") => Some(AlarmKind::TemperatureHigh),
        _ => None,
    };
    let kind = if let Some(kind) = kind {
        kind
    } else if matches!(metric, "OutOfBand" | "Readings" | "Rejected")
        || (device.is_none() && building.is_some())
    {
        AlarmKind::FleetOutOfBand
    } else if op == "LessThanLowerOrGreaterThanUpperThreshold" {
        if below {
            AlarmKind::TemperatureLow
        } else {
            AlarmKind::TemperatureHigh
        }
    } else if op.starts_with("LessThan") {
        AlarmKind::TemperatureLow
    } else {
        AlarmKind::TemperatureHigh
    };
    let threshold = a.trigger.threshold.filter(|t| t.is_finite());
    let at_ms = a
        .state_change_time
        .as_deref()
        .and_then(|t| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z").ok())
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .unwrap_or(fallback_ms);
    Ok(AlarmNotice {
        alarm: a.alarm_name,
        kind,
        device,
        building,
        state: new,
        previous,
        // The notice's numbers must be finite JSON: without a datapoint, the threshold.
        value: datapoint(&a.new_state_reason).or(threshold).unwrap_or(0.0),
        threshold: threshold.unwrap_or(0.0),
        at_ms,
        reason: a.new_state_reason,
    })
}

/// What one SNS event came to.
#[derive(Debug, Default)]
pub struct NotifyReport {
    /// The notices published.
    pub published: Vec<AlarmNotice>,
    /// Messages rejected as not alarm state changes (logged).
    pub rejected: usize,
}

/// The notifier: forwards alarm notices to `topic`.
#[derive(Debug)]
pub struct Notifier<P> {
    /// The alarms topic.
    pub topic: String,
    /// IoT Core.
    pub publisher: P,
}

/// A publish failed: the invoke fails, so SNS's retries deliver the event again.
#[derive(Debug, thiserror::Error)]
#[error("publishing alarm {alarm} failed: {source}")]
pub struct NotifyError {
    /// The alarm.
    pub alarm: String,
    /// Why.
    #[source]
    pub source: fleet_pipeline::StoreError,
}

impl<P: Publisher> Notifier<P> {
    /// Publishes a notice per alarm message; bad messages are logged and skipped (a retry
    /// would not make them good), a failed publish fails the invoke.
    pub async fn handle(&self, event: SnsEvent) -> Result<NotifyReport, NotifyError> {
        let mut report = NotifyReport::default();
        for record in event.records {
            let sns = record.sns;
            let fallback = u64::try_from(sns.timestamp.timestamp_millis()).unwrap_or(0);
            let notice = match notice_from_message(&sns.message, fallback) {
                Ok(n) => n,
                Err(e) => {
                    error!(error = %e, message_id = %sns.message_id, topic_arn = %sns.topic_arn, "rejected SNS message");
                    report.rejected += 1;
                    continue;
                }
            };
            self.publisher
                .publish(&self.topic, notice.to_json().as_bytes())
                .await
                .map_err(|source| NotifyError {
                    alarm: notice.alarm.clone(),
                    source,
                })?;
            info!(alarm = %notice.alarm, state = %notice.state, previous = %notice.previous, "alarm forwarded");
            report.published.push(notice);
        }
        Ok(report)
    }
}

/// Lambda's error report for a failed invoke.
impl From<NotifyError> for lambda_runtime::Diagnostic {
    fn from(e: NotifyError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "NotifyError".to_owned(),
            error_message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datapoints_are_read_from_the_reason() {
        let r = "Threshold Crossed: 1 out of the last 1 datapoints [28.4 (27/11/25 08:00:00)] was greater than the threshold (28.0).";
        assert_eq!(datapoint(r), Some(28.4));
        assert_eq!(datapoint("no data"), None);
        assert_eq!(datapoint("[-3.5E1 (x)]"), Some(-35.0));
    }

    #[test]
    fn bad_messages_are_errors() {
        assert!(matches!(
            notice_from_message("hello", 0),
            Err(AlarmMessageError::NotAlarm(_))
        ));
        let odd = r#"{"AlarmName":"a","NewStateValue":"RED","OldStateValue":"OK"}"#;
        assert!(matches!(
            notice_from_message(odd, 0),
            Err(AlarmMessageError::State(_))
        ));
    }

    #[test]
    fn fleet_and_low_alarms() {
        let m = r#"{"AlarmName":"fleet-b1","NewStateValue":"ALARM","OldStateValue":"OK",
            "NewStateReason":"x [7.0 (y)]","Trigger":{"MetricName":"OutOfBand",
            "Dimensions":[{"name":"Building","value":"1"}],"ComparisonOperator":"GreaterThanThreshold","Threshold":5}}"#;
        let n = notice_from_message(m, 9).unwrap();
        assert_eq!(
            (n.kind, n.value, n.threshold, n.at_ms),
            (AlarmKind::FleetOutOfBand, 7.0, 5.0, 9)
        );
        let m = r#"{"AlarmName":"low","NewStateValue":"OK","OldStateValue":"ALARM",
            "Trigger":{"MetricName":"Temperature","Dimensions":[{"name":"Device","value":"d-1"}],
            "ComparisonOperator":"LessThanThreshold","Threshold":26}}"#;
        let n = notice_from_message(m, 9).unwrap();
        assert_eq!(
            (n.kind, n.state, n.value),
            (AlarmKind::TemperatureLow, AlarmState::Ok, 26.0)
        );
        assert_eq!(n.device.map(|d| d.to_string()), Some("d-1".to_owned()));
    }

    #[test]
    fn the_templates_alarm_names_give_kind_and_device_when_the_trigger_does_not() {
        // An anomaly-band alarm: CloudWatch describes it under `Trigger.Metrics`.
        let m = r#"{"AlarmName":"fleet-prod/d-0007/TemperatureAnomaly","NewStateValue":"ALARM",
            "OldStateValue":"OK","NewStateReason":"Thresholds Crossed: 1 datapoint [25.1 (27/11/26 08:00:00)] was less than the lower thresholds [25.9]",
            "Trigger":{"Metrics":[{"Id":"m1"},{"Id":"ad1","Expression":"ANOMALY_DETECTION_BAND(m1, 2)"}],
            "ComparisonOperator":"LessThanLowerOrGreaterThanUpperThreshold","ThresholdMetricId":"ad1"}}"#;
        let n = notice_from_message(m, 9).unwrap();
        assert_eq!(n.kind, AlarmKind::TemperatureLow);
        assert_eq!(n.device.map(|d| d.to_string()), Some("d-0007".to_owned()));
        assert_eq!(n.value, 25.1);
        // A metric-math fleet alarm.
        let m = r#"{"AlarmName":"fleet-prod/fleet/FleetOutOfBand","NewStateValue":"ALARM",
            "OldStateValue":"OK","NewStateReason":"x [40.0 (y)]","Trigger":{"Metrics":[{"Id":"q"}],
            "ComparisonOperator":"GreaterThanOrEqualToThreshold","Threshold":20}}"#;
        let n = notice_from_message(m, 9).unwrap();
        assert_eq!((n.kind, n.device), (AlarmKind::FleetOutOfBand, None));
    }
}

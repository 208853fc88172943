//! Prometheus metrics of the local stack, served at `/metrics`.
//!
//! The Lambdas report the same facts as EMF log lines; locally they are counters that a
//! Prometheus server (or `curl`) can read. Labels are bounded: rejection codes, actions,
//! reasons and alarm states come from fixed sets in the core.
//!
//! Units: *messages* are MQTT publishes on the telemetry topics, what the broker
//! acknowledges (after their batch is committed); *readings* are what they carry: one per
//! message, or N for a batch message of N readings (§4.3). A message rejected whole counts
//! as one reading. `readings_received = readings_stored + readings_duplicate +
//! sum(readings_rejected)`; without batch messages `messages_received = readings_received`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use fleet_broker::BrokerStats;
use fleet_core::access::{Action, Reason};
use fleet_pipeline::Outcome;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Ingest totals since the stack started (see the module doc for the units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestTotals {
    /// Telemetry messages handled (each acknowledged once its batch was committed).
    pub messages: u64,
    /// Of those, messages that carried a batch of readings.
    pub batch_messages: u64,
    /// Readings those messages carried.
    pub readings: u64,
    /// Readings newly stored.
    pub stored: u64,
    /// Readings already stored (redeliveries, repeats), ignored.
    pub duplicates: u64,
    /// Readings rejected (a message rejected whole counts once).
    pub rejected: u64,
}

/// The stack's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: Counter,
    batch_messages: Counter,
    received: Counter,
    stored: Counter,
    duplicates: Counter,
    rejected: Family<Labels, Counter>,
    /// The sum of `rejected` over its labels, for [`Metrics::totals`].
    rejected_total: AtomicU64,
    decisions: Family<Labels, Counter>,
    commands: Family<Labels, Counter>,
    alarm_changes: Family<Labels, Counter>,
    devices_in_alarm: Gauge,
    store_failures: Counter,
    http_refusals: Family<Labels, Counter>,
    archive_failures: Counter,
    batch_seconds: Histogram,
    batch_size: Histogram,
    mqtt_connected: Gauge,
    mqtt: Family<Labels, Counter>,
    /// Broker totals already added to `mqtt`, to add only the difference at each scrape.
    mqtt_seen: [AtomicU64; 7],
    refusals: Family<Labels, Counter>,
    /// Refusal totals already added to `refusals`, per [`Reason::ALL`] index.
    refusals_seen: [AtomicU64; Reason::ALL.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fleet");
        let m = Metrics {
            messages: Counter::default(),
            batch_messages: Counter::default(),
            received: Counter::default(),
            stored: Counter::default(),
            duplicates: Counter::default(),
            rejected: Family::default(),
            rejected_total: AtomicU64::new(0),
            decisions: Family::default(),
            commands: Family::default(),
            alarm_changes: Family::default(),
            devices_in_alarm: Gauge::default(),
            store_failures: Counter::default(),
            archive_failures: Counter::default(),
            http_refusals: Family::default(),
            // 100 µs … ~3 s.
            batch_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            mqtt_connected: Gauge::default(),
            mqtt: Family::default(),
            mqtt_seen: Default::default(),
            refusals: Family::default(),
            refusals_seen: Default::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "messages_received",
            "Telemetry messages received (MQTT publishes, acknowledged once stored)",
            m.messages.clone(),
        );
        r.register(
            "batch_messages_received",
            "Telemetry messages that carried a batch of readings (a JSON array)",
            m.batch_messages.clone(),
        );
        r.register(
            "readings_received",
            "Readings received (one per message, N per batch message of N)",
            m.received.clone(),
        );
        r.register(
            "readings_stored",
            "Readings stored (new rows)",
            m.stored.clone(),
        );
        r.register(
            "readings_duplicate",
            "Readings already stored (redeliveries), ignored",
            m.duplicates.clone(),
        );
        r.register(
            "readings_rejected",
            "Readings rejected (a message rejected whole counts once), by reason",
            m.rejected.clone(),
        );
        r.register(
            "decisions",
            "Remediation decisions, by reason",
            m.decisions.clone(),
        );
        r.register(
            "commands_sent",
            "Commands published, by action",
            m.commands.clone(),
        );
        r.register(
            "alarm_changes",
            "Alarm state changes, by alarm kind and state",
            m.alarm_changes.clone(),
        );
        r.register(
            "devices_in_alarm",
            "Devices in a band alarm now",
            m.devices_in_alarm.clone(),
        );
        r.register(
            "store_failures",
            "Batches the database refused (retried by the devices)",
            m.store_failures.clone(),
        );
        r.register(
            "archive_failures",
            "Archive objects that could not be written",
            m.archive_failures.clone(),
        );
        r.register(
            "batch_seconds",
            "Time to store and decide one batch",
            m.batch_seconds.clone(),
        );
        r.register(
            "batch_size",
            "Messages per stored batch",
            m.batch_size.clone(),
        );
        r.register(
            "mqtt_connected",
            "MQTT clients connected now",
            m.mqtt_connected.clone(),
        );
        r.register("mqtt", "Broker counters, by event", m.mqtt.clone());
        r.register(
            "http_refusals",
            "HTTP requests refused: for a name that is not this stack's (host), from another \
             machine without the access key (access_key)",
            m.http_refusals.clone(),
        );
        for reason in ["host", "access_key"] {
            drop(
                m.http_refusals
                    .get_or_create(&vec![("reason", reason.to_owned())]),
            );
        }
        r.register(
            "mqtt_refusals",
            "Refused MQTT actions (connect: CONNACK 5 or HTTP 403; publish: connection closed; \
             subscribe: SUBACK 0x80), by action and reason",
            m.refusals.clone(),
        );
        // Every reason shows from the start, at 0: an alert on a rate needs the series.
        for reason in Reason::ALL {
            drop(
                m.refusals
                    .get_or_create(&refusal_labels(reason.action(), reason)),
            );
        }
        Metrics { registry, ..m }
    }

    /// Counts one batch's outcome.
    pub fn record_batch(&self, outcome: &Outcome, seconds: f64, devices_in_alarm: usize) {
        self.messages.inc_by(outcome.summary.received as u64);
        self.batch_messages.inc_by(outcome.summary.batches as u64);
        self.received.inc_by(outcome.summary.readings as u64);
        self.stored.inc_by(outcome.stored.len() as u64);
        self.duplicates.inc_by(outcome.duplicates as u64);
        self.rejected_total
            .fetch_add(outcome.summary.rejected as u64, Relaxed);
        for (code, n) in &outcome.summary.rejected_by_code {
            self.rejected
                .get_or_create(&vec![("reason", (*code).to_owned())])
                .inc_by(*n);
        }
        for d in &outcome.decisions {
            self.decisions
                .get_or_create(&vec![("reason", d.reason.code().to_owned())])
                .inc();
            if let Some(c) = &d.command {
                self.commands
                    .get_or_create(&vec![("action", c.action.as_str().to_owned())])
                    .inc();
            }
        }
        for a in &outcome.alarms {
            self.alarm_changes
                .get_or_create(&vec![
                    ("kind", format!("{:?}", a.kind)),
                    ("state", a.state.as_str().to_owned()),
                ])
                .inc();
        }
        self.archive_failures
            .inc_by(outcome.archive_errors.len() as u64);
        self.devices_in_alarm.set(devices_in_alarm as i64);
        self.batch_seconds.observe(seconds);
        self.batch_size.observe(outcome.summary.received as f64);
    }

    /// Totals since start, for `/api/stats`.
    pub fn totals(&self) -> IngestTotals {
        let rejected = self.rejected_total.load(Relaxed);
        IngestTotals {
            messages: self.messages.get(),
            batch_messages: self.batch_messages.get(),
            readings: self.received.get(),
            stored: self.stored.get(),
            duplicates: self.duplicates.get(),
            rejected,
        }
    }

    /// Counts an archive write that failed outside a batch (a buffered flush).
    pub fn record_archive_failure(&self) {
        self.archive_failures.inc();
    }

    /// Counts an HTTP request refused by the access guard (`host`: not one of the stack's
    /// names; `access_key`: a remote browser without the key).
    pub fn record_http_refusal(&self, reason: &'static str) {
        self.http_refusals
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }

    /// Counts a batch the database refused.
    pub fn record_store_failure(&self) {
        self.store_failures.inc();
    }

    /// Renders the Prometheus text format, with the broker's counters and refusals
    /// (`fleet_broker::Publisher::refusals`) as of now.
    pub fn render(&self, broker: &BrokerStats, refusals: &[(Action, Reason, u64)]) -> String {
        self.mqtt_connected.set(broker.connected as i64);
        let totals = [
            ("connections", broker.connections),
            ("received", broker.received),
            ("ingested", broker.ingested),
            ("sent", broker.sent),
            ("dropped", broker.dropped),
            ("slow_consumers_disconnected", broker.slow_consumers),
            ("errors", broker.errors),
        ];
        for &(action, reason, total) in refusals {
            let Some(i) = Reason::ALL.iter().position(|r| *r == reason) else {
                continue;
            };
            let before = self.refusals_seen[i].swap(total, Relaxed);
            self.refusals
                .get_or_create(&refusal_labels(action, reason))
                .inc_by(total.saturating_sub(before));
        }
        for (i, (event, total)) in totals.into_iter().enumerate() {
            let before = self.mqtt_seen[i].swap(total, Relaxed);
            self.mqtt
                .get_or_create(&vec![("event", event.to_owned())])
                .inc_by(total.saturating_sub(before));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

fn refusal_labels(action: Action, reason: Reason) -> Labels {
    vec![
        ("action", action.code().to_owned()),
        ("reason", reason.code().to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_names_every_metric_with_the_fleet_prefix() {
        let m = Metrics::new();
        let mut outcome = Outcome::default();
        outcome.summary.received = 3;
        outcome.summary.batches = 1;
        outcome.summary.readings = 12;
        outcome.summary.rejected = 2;
        outcome.summary.rejected_by_code.insert("syntax", 2);
        m.record_batch(&outcome, 0.001, 0);
        assert_eq!(
            m.totals(),
            IngestTotals {
                messages: 3,
                batch_messages: 1,
                readings: 12,
                rejected: 2,
                ..IngestTotals::default()
            }
        );
        let refusals = [(Action::Publish, Reason::CommandTopic, 3)];
        let text = m.render(
            &BrokerStats {
                connected: 2,
                received: 5,
                slow_consumers: 1,
                ..BrokerStats::default()
            },
            &refusals,
        );
        assert!(
            text.contains(
                r#"fleet_mqtt_refusals_total{action="publish",reason="command_topic"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"fleet_mqtt_refusals_total{action="connect",reason="origin_not_allowed"} 0"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"fleet_mqtt_total{event="slow_consumers_disconnected"} 1"#),
            "{text}"
        );
        assert!(text.contains("fleet_messages_received_total 3"), "{text}");
        assert!(
            text.contains("fleet_batch_messages_received_total 1"),
            "{text}"
        );
        assert!(text.contains("fleet_readings_received_total 12"), "{text}");
        assert!(
            text.contains(r#"fleet_readings_rejected_total{reason="syntax"} 2"#),
            "{text}"
        );
        assert!(text.contains("fleet_mqtt_connected 2"), "{text}");
        assert!(
            text.contains(r#"fleet_mqtt_total{event="received"} 5"#),
            "{text}"
        );
        // A second scrape adds only what changed.
        let text = m.render(
            &BrokerStats {
                received: 7,
                ..BrokerStats::default()
            },
            &[(Action::Publish, Reason::CommandTopic, 4)],
        );
        assert!(
            text.contains(
                r#"fleet_mqtt_refusals_total{action="publish",reason="command_topic"} 4"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"fleet_mqtt_total{event="received"} 7"#),
            "{text}"
        );
    }
}

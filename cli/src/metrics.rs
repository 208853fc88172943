//! What a `fleet sim` run counts and measures, for its summary, its JSON report
//! (`--report`) and its Prometheus endpoint (`--metrics ADDR`).
//!
//! One [`Recorder`] takes every event once. It keeps the exact numbers (counters and HDR
//! histograms, µs) that the report carries and `fleet report merge` adds up, and, with
//! `--metrics`, mirrors them into `prometheus-client` counters and histograms (seconds, the
//! Prometheus convention), which a small HTTP server renders at `/metrics` as `fleet local`
//! renders its own. Prometheus histograms have fixed buckets and cannot give exact
//! percentiles; they are for dashboards and alerts while the run goes, the report is for
//! the numbers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use hdrhistogram::Histogram;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram as PromHistogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::report::latency_histogram;

/// The counters of a run (readings unless said otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Devices started.
    pub devices: u64,
    /// Connections started (one per device, or gateways for whole buildings).
    pub connections: u64,
    /// Readings published (handed to their connection).
    pub sent: u64,
    /// Readings acknowledged (their message was).
    pub acked: u64,
    /// Messages published (a batch message carries several readings).
    pub messages: u64,
    /// Commands carried out, by action.
    pub commands: BTreeMap<&'static str, u64>,
    /// Reconnections after a device's first connection.
    pub reconnects: u64,
    /// Readings in messages the broker refused.
    pub refused: u64,
    /// Readings whose publish failed before reaching a connection.
    pub not_sent: u64,
    /// Acknowledgements and commands whose latency is not in the histograms: their reading
    /// was published longer ago than the window of publish times kept, or (a legacy
    /// command) does not say which reading it answers.
    pub latency_unsampled: u64,
}

impl Counts {
    /// Commands carried out, all actions.
    pub fn commands_total(&self) -> u64 {
        self.commands.values().sum()
    }

    /// The counters by name, as the report lists them.
    pub fn by_name(&self) -> BTreeMap<String, u64> {
        [
            ("devices", self.devices),
            ("connections", self.connections),
            ("sent", self.sent),
            ("acked", self.acked),
            ("messages", self.messages),
            ("commands", self.commands_total()),
            ("reconnects", self.reconnects),
            ("refused", self.refused),
            ("not_sent", self.not_sent),
            ("latency_unsampled", self.latency_unsampled),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// Every count and latency of a run, and its Prometheus mirror when served.
#[derive(Debug)]
pub struct Recorder {
    /// The exact counters.
    pub counts: Counts,
    /// Publish of a reading → the command that answers it, µs.
    pub round_trip_us: Histogram<u64>,
    /// Publish of a message → its acknowledgement, µs.
    pub ack_us: Histogram<u64>,
    prom: Option<Arc<Prom>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            counts: Counts::default(),
            round_trip_us: latency_histogram(),
            ack_us: latency_histogram(),
            prom: None,
        }
    }
}

impl Recorder {
    /// A recorder that also feeds the Prometheus registry `prom`.
    pub fn with_prometheus(prom: Arc<Prom>) -> Recorder {
        Recorder {
            prom: Some(prom),
            ..Recorder::default()
        }
    }

    /// A connection was started.
    pub fn connection_started(&mut self) {
        self.counts.connections += 1;
        if let Some(p) = &self.prom {
            p.connections.set(self.counts.connections as i64);
        }
    }

    /// A device was started.
    pub fn device_started(&mut self) {
        self.counts.devices += 1;
        if let Some(p) = &self.prom {
            p.devices.set(self.counts.devices as i64);
        }
    }

    /// A message of `readings` readings was handed to its connection.
    pub fn sent(&mut self, readings: u64) {
        self.counts.sent += readings;
        self.counts.messages += 1;
        if let Some(p) = &self.prom {
            p.sent.inc_by(readings);
            p.messages.inc();
        }
    }

    /// A message of `readings` readings could not be handed to its connection.
    pub fn not_sent(&mut self, readings: u64) {
        self.counts.not_sent += readings;
        if let Some(p) = &self.prom {
            p.not_sent.inc_by(readings);
        }
    }

    /// The broker refused a message that had been counted as sent.
    pub fn refused(&mut self, readings: u64) {
        self.counts.sent = self.counts.sent.saturating_sub(readings);
        self.counts.messages = self.counts.messages.saturating_sub(1);
        self.counts.refused += readings;
        if let Some(p) = &self.prom {
            p.refused.inc_by(readings);
        }
    }

    /// A message of `readings` readings was acknowledged, `latency_us` after its publish
    /// (when known).
    pub fn acked(&mut self, readings: u64, latency_us: Option<u64>) {
        self.counts.acked += readings;
        match latency_us {
            Some(us) => self.ack_us.saturating_record(us.max(1)),
            None => self.counts.latency_unsampled += 1,
        }
        if let Some(p) = &self.prom {
            p.acked.inc_by(readings);
            if let Some(us) = latency_us {
                p.ack_seconds.observe(us as f64 / 1e6);
            }
        }
    }

    /// A device carried out a command, `round_trip_us` after publishing the reading it
    /// answers (when known).
    pub fn command(&mut self, action: &'static str, round_trip_us: Option<u64>) {
        *self.counts.commands.entry(action).or_default() += 1;
        match round_trip_us {
            Some(us) => self.round_trip_us.saturating_record(us.max(1)),
            None => self.counts.latency_unsampled += 1,
        }
        if let Some(p) = &self.prom {
            p.commands
                .get_or_create(&vec![("action", action.to_owned())])
                .inc();
            if let Some(us) = round_trip_us {
                p.round_trip_seconds.observe(us as f64 / 1e6);
            }
        }
    }

    /// A device connected again after its first connection.
    pub fn reconnected(&mut self) {
        self.counts.reconnects += 1;
        if let Some(p) = &self.prom {
            p.reconnects.inc();
        }
    }
}

/// The Prometheus registry of a run (`--metrics`).
#[derive(Debug)]
pub struct Prom {
    registry: Registry,
    devices: Gauge,
    connections: Gauge,
    sent: Counter,
    acked: Counter,
    messages: Counter,
    commands: Family<Vec<(&'static str, String)>, Counter>,
    reconnects: Counter,
    refused: Counter,
    not_sent: Counter,
    round_trip_seconds: PromHistogram,
    ack_seconds: PromHistogram,
}

impl Prom {
    /// Registers every metric, labelled with the shard (`I/N`) so that one Prometheus can
    /// scrape every shard of a fleet and sum them.
    pub fn new(shard: &str) -> Prom {
        let mut root = Registry::with_prefix_and_labels(
            "fleet_sim",
            [(
                std::borrow::Cow::Borrowed("shard"),
                std::borrow::Cow::Owned(shard.to_owned()),
            )]
            .into_iter(),
        );
        // 0.5 ms … ~16 s.
        let buckets = || exponential_buckets(0.0005, 2.0, 16);
        let p = Prom {
            registry: Registry::default(),
            devices: Gauge::default(),
            connections: Gauge::default(),
            sent: Counter::default(),
            acked: Counter::default(),
            messages: Counter::default(),
            commands: Family::default(),
            reconnects: Counter::default(),
            refused: Counter::default(),
            not_sent: Counter::default(),
            round_trip_seconds: PromHistogram::new(buckets()),
            ack_seconds: PromHistogram::new(buckets()),
        };
        let r = &mut root;
        r.register("devices", "Devices started", p.devices.clone());
        r.register(
            "connections",
            "Connections started: one per device, or gateways for whole buildings",
            p.connections.clone(),
        );
        r.register(
            "readings_sent",
            "Readings published (handed to their connection)",
            p.sent.clone(),
        );
        r.register(
            "readings_acked",
            "Readings acknowledged by the broker",
            p.acked.clone(),
        );
        r.register(
            "messages_sent",
            "Messages published (a batch message carries several readings)",
            p.messages.clone(),
        );
        r.register(
            "commands",
            "Commands carried out, by action",
            p.commands.clone(),
        );
        r.register(
            "reconnects",
            "Reconnections after a device's first connection",
            p.reconnects.clone(),
        );
        r.register(
            "readings_refused",
            "Readings in messages the broker refused",
            p.refused.clone(),
        );
        r.register(
            "readings_not_sent",
            "Readings whose publish failed before reaching a connection",
            p.not_sent.clone(),
        );
        r.register(
            "round_trip_seconds",
            "From publishing a reading to the command that answers it",
            p.round_trip_seconds.clone(),
        );
        r.register(
            "ack_seconds",
            "From publishing a message to its acknowledgement",
            p.ack_seconds.clone(),
        );
        Prom {
            registry: root,
            ..p
        }
    }

    /// The Prometheus text format, as of now.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Binds `addr` (an error names it if it cannot) and serves `/metrics` until `stop` turns
/// true.
pub async fn serve(
    addr: SocketAddr,
    prom: Arc<Prom>,
    mut stop: watch::Receiver<bool>,
) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics {addr}: cannot listen there"))?;
    let local = listener.local_addr().context("--metrics address")?;
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(prom);
    tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        });
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "the metrics server stopped");
        }
    });
    Ok(local)
}

async fn render(State(prom): State<Arc<Prom>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        prom.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_counted_once_in_the_report_and_the_exposition() {
        let prom = Arc::new(Prom::new("2/4"));
        let mut r = Recorder::with_prometheus(prom.clone());
        r.device_started();
        r.connection_started();
        r.sent(3);
        r.sent(1);
        r.refused(1);
        r.not_sent(2);
        r.acked(3, Some(1_500));
        r.command("cool", Some(250_000));
        r.command("cool", None);
        r.reconnected();
        assert_eq!(
            r.counts.by_name(),
            BTreeMap::from(
                [
                    ("devices", 1),
                    ("connections", 1),
                    ("sent", 3),
                    ("acked", 3),
                    ("messages", 1),
                    ("commands", 2),
                    ("reconnects", 1),
                    ("refused", 1),
                    ("not_sent", 2),
                    ("latency_unsampled", 1)
                ]
                .map(|(k, v)| (k.to_owned(), v))
            )
        );
        assert_eq!((r.ack_us.len(), r.round_trip_us.len()), (1, 1));
        let text = prom.render();
        for line in [
            r#"fleet_sim_readings_sent_total{shard="2/4"} 4"#,
            r#"fleet_sim_connections{shard="2/4"} 1"#,
            r#"fleet_sim_readings_acked_total{shard="2/4"} 3"#,
            r#"fleet_sim_readings_refused_total{shard="2/4"} 1"#,
            r#"fleet_sim_commands_total{shard="2/4",action="cool"} 2"#,
            r#"fleet_sim_reconnects_total{shard="2/4"} 1"#,
            r#"fleet_sim_round_trip_seconds_count{shard="2/4"} 1"#,
            r#"fleet_sim_ack_seconds_bucket{shard="2/4",le="0.002"} 1"#,
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

//! The ingest thread: the broker's telemetry → pipeline batches → SQLite → acks, commands
//! and alarms back through the broker.
//!
//! One thread owns the database connection, so SQLite never waits on a lock, and batches
//! form by themselves: the thread takes everything that queued while it was writing the
//! previous batch (up to a maximum), so light load gets low latency and heavy load gets
//! large, cheap transactions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use fleet_broker::{Ingested, Publisher};
use fleet_core::Incoming;
use fleet_core::topic::ALARMS_TOPIC;
use fleet_mqtt::QoS;
use fleet_pipeline::Pipeline;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::emf::EmfLog;
use crate::metrics::Metrics;
use crate::store::LocalStore;

/// What the ingest thread needs.
pub(crate) struct IngestThread {
    pub(crate) rx: mpsc::Receiver<Ingested>,
    pub(crate) store: LocalStore,
    pub(crate) pipeline: Pipeline,
    pub(crate) publisher: Publisher,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) emf: EmfLog,
    pub(crate) batch_max: usize,
    pub(crate) retention: Retention,
    pub(crate) alive: Arc<AtomicBool>,
    /// Dropped when the thread ends, however it ends: wakes [`crate::LocalStack::failed`].
    pub(crate) _running: tokio::sync::watch::Sender<()>,
    /// To wait on the broker's channel with a timeout from this plain thread.
    pub(crate) runtime: tokio::runtime::Handle,
}

/// Clears the health flag when the ingest thread ends, by return or by panic.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
        if std::thread::panicking() {
            error!("the ingest thread crashed: readings are no longer stored");
        }
    }
}

/// How long data is kept (the bucket lifecycle and table TTL stand-ins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Archive partitions and EMF log files older than this many days are deleted.
    pub archive_days: u32,
    /// Decisions older than this are deleted (readings expire by their own TTL).
    pub decisions: Duration,
    /// How often to sweep.
    pub every: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            archive_days: 7,
            decisions: Duration::from_secs(7 * 86_400),
            every: Duration::from_secs(3600),
        }
    }
}

/// Totals for the periodic progress line.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    /// Telemetry messages (MQTT publishes) handled.
    received: u64,
    /// Readings they carried (more than `received` when devices batch).
    readings: u64,
    stored: u64,
    rejected: u64,
    commands: u64,
}

impl IngestThread {
    /// Runs until the broker's ingest stream ends (after shutdown), storing what is left.
    pub(crate) fn run(mut self) {
        // Marks the stack unhealthy even if this thread panics.
        let _alive = AliveGuard(self.alive.clone());
        let mut batch: Vec<Ingested> = Vec::with_capacity(self.batch_max);
        let mut last_sweep = Instant::now();
        let mut last_report = Instant::now();
        let mut progress = Progress::default();
        let mut reported = Progress::default();
        // Expired data from before a restart goes first.
        self.sweep();
        loop {
            // Wait for telemetry, or until the buffered archive is due.
            let first = match self.store.archive_due_in() {
                None => self.rx.blocking_recv(),
                // The timer must be made inside the runtime's context, hence the async block.
                Some(wait) => match self
                    .runtime
                    .block_on(async { tokio::time::timeout(wait, self.rx.recv()).await })
                {
                    Ok(message) => message,
                    Err(_) => {
                        self.flush_archive(false);
                        continue;
                    }
                },
            };
            let Some(first) = first else { break };
            batch.push(first);
            while batch.len() < self.batch_max {
                match self.rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            self.store_batch(&mut batch, &mut progress);
            self.flush_archive(false);
            if last_sweep.elapsed() >= self.retention.every {
                self.sweep();
                last_sweep = Instant::now();
            }
            if last_report.elapsed() >= Duration::from_secs(10) {
                let secs = last_report.elapsed().as_secs_f64();
                info!(
                    stored_per_s =
                        format!("{:.0}", (progress.stored - reported.stored) as f64 / secs),
                    received = progress.received,
                    readings = progress.readings,
                    stored = progress.stored,
                    rejected = progress.rejected,
                    commands = progress.commands,
                    mqtt_clients = self.publisher.stats().connected,
                    "progress"
                );
                reported = progress;
                last_report = Instant::now();
            }
        }
        self.alive.store(false, Relaxed);
        info!(
            stored = progress.stored,
            "ingest stopped: every queued message was handled"
        );
    }

    fn store_batch(&mut self, batch: &mut Vec<Ingested>, progress: &mut Progress) {
        let now = crate::now_ms();
        let incoming: Vec<Incoming<'_>> = batch
            .iter()
            .map(|m| Incoming {
                topic: &m.topic,
                payload: &m.payload,
                received_ms: m.received_ms,
                source_id: &m.source_id,
                publisher: &m.publisher,
            })
            .collect();
        let started = Instant::now();
        let result = self.pipeline.ingest(&mut self.store, &incoming, now);
        drop(incoming);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                // Dropping the acks closes those connections; the devices send the
                // messages again after reconnecting, and keys make that idempotent.
                error!(error = %e, messages = batch.len(), "could not store a batch; devices will resend");
                self.metrics.record_store_failure();
                batch.clear();
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
        };
        // Counted before the acks: whoever sees an ack and then reads /metrics must find
        // the message counted.
        self.metrics.record_batch(
            &outcome,
            started.elapsed().as_secs_f64(),
            self.pipeline.alarms().devices_in_alarm(),
        );
        // Stored, duplicate or rejected, every message is handled: ack them all. A rejected
        // message (or batch element) would be rejected again, so a resend would not help.
        // Acks are per MQTT message: one ack covers all the readings of a batch message.
        for message in batch.drain(..) {
            if let Some(ack) = message.ack {
                ack.complete();
            }
        }
        for command in &outcome.commands {
            self.publisher.publish(
                &command.topic.to_string(),
                command.payload.as_bytes(),
                QoS::AtLeastOnce,
            );
        }
        for notice in &outcome.alarms {
            info!(alarm = %notice.alarm, state = %notice.state, reason = %notice.reason, "alarm");
            self.publisher
                .publish(ALARMS_TOPIC, notice.to_json().as_bytes(), QoS::AtLeastOnce);
        }
        for rejected in &outcome.rejected {
            warn!(
                source_id = %rejected.source_id,
                element = rejected.element,
                reference = %rejected.reference(),
                topic = %rejected.topic,
                code = rejected.reason.code(),
                reason = %rejected.reason,
                "rejected"
            );
        }
        for e in &outcome.archive_errors {
            error!(error = %e, "archive write failed; the readings are stored");
        }
        if let Err(e) = self.emf.write(now, &outcome.emf) {
            error!(error = %e, "could not write the EMF log");
        }
        progress.received += outcome.summary.received as u64;
        progress.readings += outcome.summary.readings as u64;
        progress.stored += outcome.stored.len() as u64;
        progress.rejected += outcome.rejected.len() as u64;
        progress.commands += outcome.commands.len() as u64;
    }

    fn flush_archive(&mut self, force: bool) {
        if let Err(e) = self.store.flush_archive(force) {
            error!(error = %e, "archive write failed; the readings are stored");
            self.metrics.record_archive_failure();
        }
    }

    fn sweep(&mut self) {
        let now = crate::now_ms();
        let r = self.retention;
        match self.store.db.sweep(now, r.decisions.as_millis() as u64) {
            Ok(report) => info!(
                readings = report.readings,
                decisions = report.decisions,
                "swept expired rows"
            ),
            Err(e) => error!(error = %e, "sweeping the database failed"),
        }
        match self.store.archive.sweep(now, r.archive_days) {
            Ok(n) => info!(partitions = n, "swept old archive partitions"),
            Err(e) => error!(error = %e, "sweeping the archive failed"),
        }
        if let Err(e) = self.emf.sweep(now, r.archive_days) {
            error!(error = %e, "sweeping the EMF logs failed");
        }
    }
}

//! Remediation (§4.5): the readings table's stream → the core policy → commands through the
//! IoT data plane, and the decision log.
//!
//! A batch takes three steps whatever its size: read the states of all its devices at once;
//! per device (concurrently), run [`decide`] on each new reading in stream order and publish
//! the commands in order; then record, at once, the decisions and next states of every
//! device whose commands all went out (decisions before states: a state marks readings
//! seen). The round trips are per batch, not per device, and so is the table connection at
//! a cold start.
//!
//! Commands go out *before* the state is recorded: if recording fails, the records are
//! redelivered and the same commands (same ids: receivers deduplicate) go out again; the
//! other order could record a command that never left. A failure (state unread, publish or
//! record failed) fails only that device's records (`batchItemFailures` with their sequence
//! numbers); other devices go on.
//!
//! Only `INSERT` records are readings: a redelivered message overwrites its row (`MODIFY`)
//! and the template filters those out; here they are skipped too, as a second line.

use std::collections::BTreeMap;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use fleet_core::{
    BuildingId, Decision, DeviceId, DeviceState, PolicyConfig, Publication, ReadingRow, Reason,
    decide,
};
use fleet_pipeline::StoreError;
use futures_util::StreamExt;
use serde::Deserialize;
use tracing::{debug, error, info, warn};

use crate::ports::{DecisionRecord, DecisionTable, DeviceRecords, Publisher};

/// How many devices of a batch are handled at once.
pub const DEVICE_CONCURRENCY: usize = 16;

/// The remediation handler.
#[derive(Debug)]
pub struct Remediation<D, P> {
    /// The policy (band, hysteresis, hold, and `REMEDIATION_LOGIC` as `enabled`).
    pub policy: PolicyConfig,
    /// Device states and decisions.
    pub table: D,
    /// Where commands go.
    pub publisher: P,
    /// Whether routine decisions ([`Decision::is_routine`]: in band, or a remediation going
    /// on, no command) are stored too. Off by default: they are most decisions and each is a
    /// table write; they are counted in the batch log.
    pub record_routine: bool,
}

/// One new reading from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamReading {
    /// The record's sequence number: its id in partial batch failures.
    pub sequence_number: Option<String>,
    /// The row, from the record's new image.
    pub row: ReadingRow,
}

/// What one batch came to.
#[derive(Debug, Default)]
pub struct RemediationReport {
    /// Sequence numbers of the records to redeliver.
    pub failed: Vec<String>,
    /// Every decision made, by device then stream order.
    pub decisions: Vec<Decision>,
    /// Commands published.
    pub published: Vec<Publication>,
    /// Decisions written to the table.
    pub recorded: usize,
}

/// A stream image is not a reading row.
#[derive(Debug, thiserror::Error)]
#[error("the new image is not a reading: {0}")]
pub struct ImageError(#[from] serde_dynamo::Error);

/// The readings table's item, as the stream shows it.
#[derive(Deserialize)]
struct Image {
    device: DeviceId,
    sk: String,
    building: BuildingId,
    seq: Option<u64>,
    ts: Option<u64>,
    received_ms: u64,
    temperature: f64,
    humidity: f64,
    #[serde(default)]
    legacy: bool,
    ttl: u64,
    #[serde(default)]
    source_id: String,
}

/// The reading row in a stream record's image (attributes as the worker writes them).
pub fn row_from_image(image: serde_dynamo::Item) -> Result<ReadingRow, ImageError> {
    let i: Image = serde_dynamo::from_item(image)?;
    Ok(ReadingRow {
        device: i.device,
        sort_key: i.sk,
        building: i.building,
        seq: i.seq,
        ts: i.ts,
        received_ms: i.received_ms,
        temperature: i.temperature,
        humidity: i.humidity,
        legacy: i.legacy,
        ttl: i.ttl,
        source_id: i.source_id,
    })
}

/// The new readings of a stream event: `INSERT` records whose image is a reading. Others
/// are logged and acknowledged (a bad image would be bad on every retry).
pub fn readings(event: Event) -> Vec<StreamReading> {
    event.records.into_iter().filter_map(reading).collect()
}

fn reading(record: EventRecord) -> Option<StreamReading> {
    let sequence_number = record.change.sequence_number;
    if record.event_name != "INSERT" {
        debug!(event = %record.event_name, sequence_number, "not a new reading; skipped");
        return None;
    }
    match row_from_image(record.change.new_image) {
        Ok(row) => Some(StreamReading {
            sequence_number,
            row,
        }),
        Err(e) => {
            error!(error = %e, sequence_number, event_id = %record.event_id, "bad stream record; skipped");
            None
        }
    }
}

impl<D: DecisionTable, P: Publisher> Remediation<D, P> {
    /// Decides, publishes and records for every reading; returns what happened.
    pub async fn handle(&self, readings: Vec<StreamReading>, now_ms: u64) -> RemediationReport {
        let mut by_device: BTreeMap<DeviceId, Vec<StreamReading>> = BTreeMap::new();
        for r in readings {
            by_device.entry(r.row.device.clone()).or_default().push(r);
        }
        let devices: Vec<DeviceId> = by_device.keys().cloned().collect();
        // One answer per device; should a table give fewer, the devices left over fail
        // (and are redelivered) instead of dropping out of the batch unseen.
        let states =
            self.table
                .device_states(&devices)
                .await
                .into_iter()
                .chain(std::iter::repeat_with(|| {
                    Err(StoreError::new(
                        "read device states",
                        "no answer for the device",
                    ))
                }));
        let outcomes: Vec<Outcome> = futures_util::stream::iter(by_device.into_iter().zip(states))
            .map(|((device, readings), state)| async move {
                let result = match state {
                    Ok(state) => {
                        self.decide_and_publish(&device, &readings, state, now_ms)
                            .await
                    }
                    Err(e) => Err((e, Vec::new())),
                };
                Outcome {
                    device,
                    readings,
                    result,
                }
            })
            .buffer_unordered(DEVICE_CONCURRENCY)
            .collect()
            .await;
        let not_recorded = self.record(&outcomes, now_ms).await;

        let mut report = RemediationReport::default();
        let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
        for o in outcomes {
            let result = match (o.result, not_recorded.get(&o.device)) {
                (Ok(done), Some(e)) => Err((
                    StoreError::new("record decisions", e.clone()),
                    done.published,
                )),
                (result, _) => result,
            };
            match result {
                Ok(done) => {
                    for d in &done.decisions {
                        *reasons.entry(d.reason.code()).or_default() += 1;
                    }
                    report.recorded += done
                        .decisions
                        .iter()
                        .filter(|d| self.worth_recording(d))
                        .count();
                    report.decisions.extend(done.decisions);
                    report.published.extend(done.published);
                }
                Err((e, published)) => {
                    error!(device = %o.device, error = %e, records = o.readings.len(), "remediation failed; the device's records will be redelivered");
                    report.published.extend(published);
                    report
                        .failed
                        .extend(o.readings.into_iter().filter_map(|r| r.sequence_number));
                }
            }
        }
        info!(
            decisions = report.decisions.len(),
            recorded = report.recorded,
            published = report.published.len(),
            failed = report.failed.len(),
            reasons = ?reasons,
            "batch"
        );
        report
    }

    /// One device's readings through the policy from `state`, and its commands published
    /// in order (stopping at the first that fails).
    async fn decide_and_publish(
        &self,
        device: &DeviceId,
        readings: &[StreamReading],
        mut state: DeviceState,
        now_ms: u64,
    ) -> Result<Decided, (StoreError, Vec<Publication>)> {
        let mut decisions = Vec::with_capacity(readings.len());
        for r in readings {
            let (next, decision) = decide(&self.policy, &state, &r.row.reading(), now_ms);
            state = next;
            decisions.push(decision);
        }
        let mut published = Vec::new();
        for p in decisions.iter().filter_map(Decision::publication) {
            let topic = p.topic.to_string();
            if let Err(e) = self.publisher.publish(&topic, p.payload.as_bytes()).await {
                return Err((e, published));
            }
            info!(%device, %topic, command = %p.payload, "command published");
            published.push(p);
        }
        for d in decisions.iter().filter(|d| d.reason == Reason::Stale) {
            warn!(%device, ts = d.reading_ts, seq = d.reading_seq, "reading older than the last one; ignored");
        }
        Ok(Decided {
            decisions,
            published,
            next: state,
        })
    }

    /// Records, in one table call, the decisions and next state of every device whose
    /// commands all went out. Returns the devices not recorded, with why.
    async fn record(&self, outcomes: &[Outcome], now_ms: u64) -> BTreeMap<DeviceId, String> {
        let devices: Vec<DeviceRecords<'_>> = outcomes
            .iter()
            .filter_map(|o| {
                let done = o.result.as_ref().ok()?;
                Some(DeviceRecords {
                    device: &o.device,
                    decisions: o
                        .readings
                        .iter()
                        .zip(&done.decisions)
                        .filter(|(_, d)| self.worth_recording(d))
                        .map(|(r, decision)| DecisionRecord {
                            reading_sk: &r.row.sort_key,
                            decision,
                        })
                        .collect(),
                    next: &done.next,
                })
            })
            .collect();
        match self.table.record(&devices, now_ms).await {
            Ok(()) => BTreeMap::new(),
            Err(e) => {
                let why = e.source.to_string();
                e.failed
                    .iter()
                    .filter_map(|&i| devices.get(i))
                    .map(|d| (d.device.clone(), why.clone()))
                    .collect()
            }
        }
    }

    /// Ignored readings are never recorded: a duplicate or stale one is mostly a
    /// redelivered record whose first decision is stored under the same key, which must not
    /// be overwritten (stale ones are logged). Routine decisions only when asked.
    fn worth_recording(&self, d: &Decision) -> bool {
        if d.reason.is_ignored() {
            false
        } else {
            self.record_routine || !d.is_routine()
        }
    }

    /// A stream event in, the partial batch response out.
    pub async fn handle_event(
        &self,
        event: Event,
        now_ms: u64,
    ) -> (DynamoDbEventResponse, RemediationReport) {
        let report = self.handle(readings(event), now_ms).await;
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = report
            .failed
            .iter()
            .map(|id| {
                let mut f = DynamoDbBatchItemFailure::default();
                f.item_identifier = Some(id.clone());
                f
            })
            .collect();
        (response, report)
    }
}

/// One device of a batch after its decisions and publishes.
struct Outcome {
    device: DeviceId,
    readings: Vec<StreamReading>,
    /// What was decided and sent, or what failed and what had been sent by then.
    result: Result<Decided, (StoreError, Vec<Publication>)>,
}

/// A device's decisions, the commands sent for them, and the state they lead to.
struct Decided {
    decisions: Vec<Decision>,
    published: Vec<Publication>,
    next: DeviceState,
}

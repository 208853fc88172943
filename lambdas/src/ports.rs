//! The narrow traits the handlers need: one per capability, so each function (and its IAM
//! policy in the template) asks only for what it uses. Errors are fleet-pipeline's
//! [`StoreError`], which keeps the adapter's error as its source.
//!
//! | function | ports |
//! |---|---|
//! | worker | [`ReadingTable`], [`Archive`], [`MetricLog`] |
//! | remediation | [`DecisionTable`], [`Publisher`] |
//! | notifier | [`Publisher`] |

use std::collections::BTreeSet;
use std::future::Future;

use fleet_core::{ArchiveObject, Decision, DeviceId, DeviceState, ReadingRow};
use fleet_pipeline::StoreError;

/// Some rows (or devices' records) of a batch write could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{} row(s) not written: {source}", failed.len())]
pub struct RowsFailed {
    /// Indexes (into the rows, or devices, given) of those not written.
    pub failed: BTreeSet<usize>,
    /// The (first) error behind it.
    #[source]
    pub source: StoreError,
}

/// The readings table.
pub trait ReadingTable: Sync {
    /// Writes the rows. A row already stored under the same key is overwritten with equal
    /// content (a redelivery), which keeps writes idempotent. On failure, says which rows
    /// were not written; the others were.
    fn put_rows(&self, rows: &[ReadingRow]) -> impl Future<Output = Result<(), RowsFailed>> + Send;
}

/// The archive bucket.
pub trait Archive: Sync {
    /// Writes an object, replacing one with the same key.
    fn put_object(
        &self,
        object: &ArchiveObject,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One decision to record, with the sort key of the reading it is about.
#[derive(Debug, Clone, Copy)]
pub struct DecisionRecord<'a> {
    /// The reading's sort key (`{ts:013}#{seq:010}`): decisions are keyed by it, so a
    /// redelivered reading's decision overwrites instead of duplicating.
    pub reading_sk: &'a str,
    /// The decision.
    pub decision: &'a Decision,
}

/// One device's part of a batch to record: its decisions and its next state.
#[derive(Debug, Clone)]
pub struct DeviceRecords<'a> {
    /// The device.
    pub device: &'a DeviceId,
    /// Its decisions worth keeping (possibly none).
    pub decisions: Vec<DecisionRecord<'a>>,
    /// Its state after the batch's readings.
    pub next: &'a DeviceState,
}

/// Per-device remediation state and the decision log (the original's remediation table).
///
/// Both calls take a whole batch's devices at once, so a batch costs the same few table
/// round trips however many devices it holds (on DynamoDB: one `BatchGetItem`, then
/// `BatchWriteItem` for the decisions and, after them, the states; one connection at a
/// cold start instead of one per device), and both answer per device.
pub trait DecisionTable: Sync {
    /// The states of `devices` (distinct), in the same order: the default state for a
    /// device never seen, an error for one whose state could not be read.
    fn device_states(
        &self,
        devices: &[DeviceId],
    ) -> impl Future<Output = Vec<Result<DeviceState, StoreError>>> + Send;

    /// Records each device's decisions and next state, after its commands went out. On
    /// failure, `failed` holds the indexes (into `devices`) of the devices not fully
    /// recorded; the others were.
    fn record(
        &self,
        devices: &[DeviceRecords<'_>],
        now_ms: u64,
    ) -> impl Future<Output = Result<(), RowsFailed>> + Send;
}

/// MQTT publishing through IoT Core.
pub trait Publisher: Sync {
    /// Publishes `payload` on `topic` (QoS 1).
    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where EMF metric lines go (stdout in Lambda: CloudWatch Logs extracts the metrics).
pub trait MetricLog: Sync {
    /// Emits the lines, one JSON document each.
    fn emit(&self, lines: &[String]);
}

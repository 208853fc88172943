//! The store traits: one per capability, so each adapter implements only what it backs.

use fleet_core::{ArchiveObject, Decision, DeviceId, DeviceState, ReadingRow};

/// A store operation failed. Keeps the adapter's error as its source.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {source}")]
pub struct StoreError {
    /// What was being done, e.g. "insert readings".
    pub operation: &'static str,
    /// The adapter's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// Wraps an adapter error.
    pub fn new(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError {
            operation,
            source: source.into(),
        }
    }
}

/// The readings table.
pub trait ReadingStore {
    /// Stores each row unless a row with the same `(device, sort_key)` exists, all or
    /// nothing. Returns, per row, whether it was new: only new rows go on to remediation.
    fn insert_new(&mut self, rows: &[ReadingRow]) -> Result<Vec<bool>, StoreError>;
}

/// Per-device remediation state and the decision log (the original's remediation table).
pub trait RemediationStore {
    /// The device's state; the default state for a device never seen.
    fn device_state(&mut self, device: &DeviceId) -> Result<DeviceState, StoreError>;

    /// Records a decision and the device's next state, together.
    fn record_decision(
        &mut self,
        decision: &Decision,
        next: &DeviceState,
    ) -> Result<(), StoreError>;
}

/// The raw archive (the S3 bucket).
pub trait ArchiveStore {
    /// Writes an object, replacing one with the same key.
    fn put_object(&mut self, object: &ArchiveObject) -> Result<(), StoreError>;
}

/// Stores that make one batch's writes atomic (a database transaction). The pipeline opens a
/// batch before storing readings and commits it after the last decision, so a crash leaves
/// either the whole batch or none of it, and a caller acking messages after
/// [`Pipeline::ingest`](crate::Pipeline::ingest) returns never acks what was not stored.
pub trait Batch {
    /// Starts a batch.
    fn begin(&mut self) -> Result<(), StoreError>;
    /// Makes the batch's writes durable.
    fn commit(&mut self) -> Result<(), StoreError>;
    /// Drops the batch's writes (after an error).
    fn rollback(&mut self);
}

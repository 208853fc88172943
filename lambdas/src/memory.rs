//! The ports in memory: fleet-pipeline's [`MemoryStore`] behind the readings and archive
//! ports, a map for device states and decisions, and recorders for publishes and metric
//! lines. For handler tests, the bench and trying handlers without AWS.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use fleet_core::{ArchiveObject, Decision, DeviceId, DeviceState, ReadingRow};
use fleet_pipeline::{ArchiveStore, MemoryStore, ReadingStore, StoreError};

use crate::ports::{
    Archive, DecisionTable, DeviceRecords, MetricLog, Publisher, ReadingTable, RowsFailed,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep using it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fleet-pipeline store (e.g. [`MemoryStore`]) as the worker's table and archive.
#[derive(Debug, Default)]
pub struct SharedStore<S = MemoryStore>(pub Mutex<S>);

impl<S> SharedStore<S> {
    /// Wraps a store.
    pub fn new(store: S) -> SharedStore<S> {
        SharedStore(Mutex::new(store))
    }

    /// The store, locked.
    pub fn store(&self) -> MutexGuard<'_, S> {
        lock(&self.0)
    }
}

impl<S: ReadingStore + Send> ReadingTable for SharedStore<S> {
    async fn put_rows(&self, rows: &[ReadingRow]) -> Result<(), RowsFailed> {
        lock(&self.0)
            .insert_new(rows)
            .map(|_| ())
            .map_err(|source| RowsFailed {
                failed: (0..rows.len()).collect(),
                source,
            })
    }
}

impl<S: ArchiveStore + Send> Archive for SharedStore<S> {
    async fn put_object(&self, object: &ArchiveObject) -> Result<(), StoreError> {
        lock(&self.0).put_object(object)
    }
}

/// Device states and recorded decisions in memory.
#[derive(Debug, Default)]
pub struct MemoryDecisions {
    inner: Mutex<Decisions>,
}

/// States by device, and `(reading sort key, decision)` in order.
type Decisions = (HashMap<DeviceId, DeviceState>, Vec<(String, Decision)>);

impl MemoryDecisions {
    /// A device's state.
    pub fn state(&self, device: &DeviceId) -> Option<DeviceState> {
        lock(&self.inner).0.get(device).cloned()
    }

    /// Recorded decisions with their reading sort keys, in order.
    pub fn decisions(&self) -> Vec<(String, Decision)> {
        lock(&self.inner).1.clone()
    }
}

impl DecisionTable for MemoryDecisions {
    async fn device_states(&self, devices: &[DeviceId]) -> Vec<Result<DeviceState, StoreError>> {
        let inner = lock(&self.inner);
        devices
            .iter()
            .map(|d| Ok(inner.0.get(d).cloned().unwrap_or_default()))
            .collect()
    }

    async fn record(&self, devices: &[DeviceRecords<'_>], _now_ms: u64) -> Result<(), RowsFailed> {
        let mut inner = lock(&self.inner);
        for d in devices {
            inner.0.insert(d.device.clone(), d.next.clone());
            inner.1.extend(
                d.decisions
                    .iter()
                    .map(|r| (r.reading_sk.to_owned(), r.decision.clone())),
            );
        }
        Ok(())
    }
}

/// A publisher that sends nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Publisher for Discard {
    async fn publish(&self, _topic: &str, _payload: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Records what it is asked to publish, then passes it on to `inner` (e.g. the real IoT
/// adapter: IoT Core's publishes cannot be read back, so tests assert on this record).
#[derive(Debug, Default)]
pub struct Recorder<P = Discard> {
    /// Where publishes go after being recorded.
    pub inner: P,
    sent: Mutex<Vec<(String, String)>>,
}

impl<P> Recorder<P> {
    /// A recorder in front of `inner`.
    pub fn new(inner: P) -> Recorder<P> {
        Recorder {
            inner,
            sent: Mutex::new(Vec::new()),
        }
    }

    /// `(topic, payload)` of every publish that succeeded, in order.
    pub fn sent(&self) -> Vec<(String, String)> {
        lock(&self.sent).clone()
    }
}

impl<P: Publisher> Publisher for Recorder<P> {
    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), StoreError> {
        self.inner.publish(topic, payload).await?;
        lock(&self.sent).push((
            topic.to_owned(),
            String::from_utf8_lossy(payload).into_owned(),
        ));
        Ok(())
    }
}

/// Keeps EMF lines instead of printing them.
#[derive(Debug, Default)]
pub struct CapturedMetrics(Mutex<Vec<String>>);

impl CapturedMetrics {
    /// The lines emitted so far.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.0).clone()
    }
}

impl MetricLog for CapturedMetrics {
    fn emit(&self, lines: &[String]) {
        lock(&self.0).extend_from_slice(lines);
    }
}

//! An in-memory store for the browser's in-page mode, the headless demo and tests.
//!
//! Memory is bounded: each device keeps its newest readings up to a cap, and the decision
//! log and archive keep their newest entries, so a tab can run a fleet for hours. Totals
//! still count everything.

use std::collections::{BTreeMap, HashMap, VecDeque};

use fleet_core::{ArchiveObject, Decision, DeviceId, DeviceState, ReadingRow};

use crate::store::{ArchiveStore, Batch, ReadingStore, RemediationStore, StoreError};

/// Limits of a [`MemoryStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Readings kept per device (the newest by sort key).
    pub readings_per_device: usize,
    /// Decisions kept.
    pub decisions: usize,
    /// Archive objects kept.
    pub archive_objects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            readings_per_device: 2_000,
            decisions: 10_000,
            archive_objects: 100,
        }
    }
}

/// Readings, device states, decisions and archive objects in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    limits: Limits,
    readings: HashMap<DeviceId, BTreeMap<String, ReadingRow>>,
    states: HashMap<DeviceId, DeviceState>,
    decisions: VecDeque<Decision>,
    archive: VecDeque<ArchiveObject>,
    readings_total: u64,
    decisions_total: u64,
    archive_total: u64,
}

impl MemoryStore {
    /// An empty store with the default limits.
    pub fn new() -> MemoryStore {
        MemoryStore::with_limits(Limits::default())
    }

    /// An empty store with these limits.
    pub fn with_limits(limits: Limits) -> MemoryStore {
        MemoryStore {
            limits,
            ..MemoryStore::default()
        }
    }

    /// A device's kept readings, oldest first.
    pub fn readings(&self, device: &DeviceId) -> impl Iterator<Item = &ReadingRow> {
        self.readings
            .get(device)
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// Readings stored since creation (including those since evicted).
    pub fn readings_total(&self) -> u64 {
        self.readings_total
    }

    /// The kept decisions, oldest first.
    pub fn decisions(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter()
    }

    /// Decisions recorded since creation.
    pub fn decisions_total(&self) -> u64 {
        self.decisions_total
    }

    /// The kept archive objects, oldest first.
    pub fn archive(&self) -> impl Iterator<Item = &ArchiveObject> {
        self.archive.iter()
    }

    /// Archive objects written since creation.
    pub fn archive_total(&self) -> u64 {
        self.archive_total
    }

    /// A device's remediation state, if it was ever recorded.
    pub fn state(&self, device: &DeviceId) -> Option<&DeviceState> {
        self.states.get(device)
    }
}

impl ReadingStore for MemoryStore {
    fn insert_new(&mut self, rows: &[ReadingRow]) -> Result<Vec<bool>, StoreError> {
        let cap = self.limits.readings_per_device.max(1);
        let mut fresh = Vec::with_capacity(rows.len());
        for row in rows {
            let kept = self.readings.entry(row.device.clone()).or_default();
            let new = !kept.contains_key(&row.sort_key);
            if new {
                kept.insert(row.sort_key.clone(), row.clone());
                self.readings_total += 1;
                while kept.len() > cap {
                    kept.pop_first();
                }
            }
            fresh.push(new);
        }
        Ok(fresh)
    }
}

impl RemediationStore for MemoryStore {
    fn device_state(&mut self, device: &DeviceId) -> Result<DeviceState, StoreError> {
        Ok(self.states.get(device).cloned().unwrap_or_default())
    }

    fn record_decision(
        &mut self,
        decision: &Decision,
        next: &DeviceState,
    ) -> Result<(), StoreError> {
        self.states.insert(decision.device.clone(), next.clone());
        push_bounded(&mut self.decisions, decision.clone(), self.limits.decisions);
        self.decisions_total += 1;
        Ok(())
    }
}

impl ArchiveStore for MemoryStore {
    fn put_object(&mut self, object: &ArchiveObject) -> Result<(), StoreError> {
        self.archive.retain(|o| o.key != object.key);
        push_bounded(
            &mut self.archive,
            object.clone(),
            self.limits.archive_objects,
        );
        self.archive_total += 1;
        Ok(())
    }
}

/// Memory writes cannot fail halfway, so a batch needs no bookkeeping.
impl Batch for MemoryStore {
    fn begin(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn rollback(&mut self) {}
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, cap: usize) {
    queue.push_back(item);
    while queue.len() > cap.max(1) {
        queue.pop_front();
    }
}

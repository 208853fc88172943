//! The transactional cache of device states.
//!
//! Remediation reads a device's state for every reading. Going to SQLite each time (a
//! B-tree lookup plus JSON parsing) would cost as much as the inserts, so states are cached
//! in memory: loaded from `device_state` on first use, then kept. One small entry per
//! device ever seen: the fleet is bounded, so the cache is too.
//!
//! The cache must never be ahead of the database. States recorded inside a batch are
//! *pending*: reads see them (the next reading of the same device in the batch needs
//! them), but they reach the committed map only when the transaction commits, and a
//! rollback drops them, so a retried batch decides from the state the database holds.

use std::collections::HashMap;

use fleet_core::{DeviceId, DeviceState};

/// A state recorded in the open batch.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// The device's next state.
    pub(crate) state: DeviceState,
    /// When it was recorded (the decision's `at_ms`).
    pub(crate) updated_ms: u64,
}

/// Committed and pending device states.
#[derive(Debug, Default)]
pub(crate) struct StateCache {
    committed: HashMap<DeviceId, DeviceState>,
    pending: HashMap<DeviceId, Pending>,
}

impl StateCache {
    /// The device's newest known state: pending, else committed; `None` if not cached.
    pub(crate) fn get(&self, device: &DeviceId) -> Option<&DeviceState> {
        self.pending
            .get(device)
            .map(|p| &p.state)
            .or_else(|| self.committed.get(device))
    }

    /// Caches a state read from the database (hence committed).
    pub(crate) fn load(&mut self, device: DeviceId, state: DeviceState) {
        self.committed.insert(device, state);
    }

    /// Records a state in the open batch.
    pub(crate) fn stage(&mut self, device: &DeviceId, state: &DeviceState, updated_ms: u64) {
        // `get_mut` first: the same devices come back batch after batch, and this avoids
        // cloning the id for each of their readings.
        if let Some(p) = self.pending.get_mut(device) {
            p.state.clone_from(state);
            p.updated_ms = updated_ms;
        } else {
            let pending = Pending {
                state: state.clone(),
                updated_ms,
            };
            self.pending.insert(device.clone(), pending);
        }
    }

    /// The states recorded in the open batch, one per device (the last one recorded).
    pub(crate) fn pending(&self) -> impl ExactSizeIterator<Item = (&DeviceId, &Pending)> {
        self.pending.iter()
    }

    /// The batch committed: its states become the committed ones.
    pub(crate) fn commit(&mut self) {
        for (device, p) in self.pending.drain() {
            self.committed.insert(device, p.state);
        }
    }

    /// The batch rolled back: its states are forgotten.
    pub(crate) fn discard(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use fleet_core::policy::LastReading;

    use super::*;

    fn state(ts: u64) -> DeviceState {
        DeviceState {
            last: Some(LastReading {
                ts,
                seq: Some(ts),
                temperature: 27.0,
            }),
            active: None,
        }
    }

    #[test]
    fn pending_states_are_seen_and_applied_only_on_commit() {
        let d: DeviceId = "d-1".parse().unwrap();
        let mut c = StateCache::default();
        c.load(d.clone(), state(1));
        c.stage(&d, &state(2), 10);
        c.stage(&d, &state(3), 11);
        assert_eq!(c.get(&d), Some(&state(3)));
        assert_eq!(c.pending().len(), 1);
        c.discard();
        assert_eq!(c.get(&d), Some(&state(1)));
        c.stage(&d, &state(4), 12);
        c.commit();
        assert_eq!(c.pending().len(), 0);
        assert_eq!(c.get(&d), Some(&state(4)));
    }
}

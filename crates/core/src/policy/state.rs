//! What the policy remembers per device between readings.

use serde::{Deserialize, Serialize};

use crate::payload::Action;

/// The policy's memory of one device. Adapters store it (serialized) between invocations;
/// a missing state is [`DeviceState::default`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// The last reading accepted in order.
    pub last: Option<LastReading>,
    /// The remediation the policy believes active on the device.
    pub active: Option<Active>,
}

/// The parts of a reading the policy compares the next one with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LastReading {
    /// Reading time, ms (device clock; arrival time for legacy readings).
    pub ts: u64,
    /// Reading counter (`None` for legacy readings).
    pub seq: Option<u64>,
    /// Temperature, °C.
    pub temperature: f64,
}

/// A remediation the policy started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    /// `Cool` or `Heat`.
    pub action: Action,
    /// When the command was issued (the policy's `now_ms`).
    pub since_ms: u64,
    /// The command's id.
    pub command_id: String,
}

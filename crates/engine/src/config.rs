//! How a fleet runs: its parameters, when its devices start, what happens to readings missed
//! while the caller was away, and how readings are packed into messages.

use fleet_core::payload::MAX_BATCH;
use fleet_core::{BuildingId, DeviceId};
use fleet_core::{DeviceParams, FleetVariation, Shape};
use fleet_mqtt::QoS;

/// One device of a fleet, as its front end names it.
///
/// The ids come from the caller, never from the engine: who may speak for which device is
/// the broker's rule (ARCHITECTURE §4.8), and only the front end knows its identity (the
/// page's namespace `NS-0001`, the CLI's `d-0001` or the original `381938912`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSpec {
    /// Its id: the telemetry's `device`, its topics' `{device}`.
    pub id: DeviceId,
    /// Its building.
    pub building: BuildingId,
    /// Its phase and noise (`FleetVariation::NONE`: the original curve).
    pub variation: FleetVariation,
    /// The wire shape it speaks: current, or the original stack's legacy topics and payloads.
    pub shape: Shape,
}

/// When each device takes its first reading, once started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At once: every device started at the same time reads at the same time (`fleet demo`,
    /// `fleet sim`, whose ramp-up spreads them).
    Together,
    /// Device `i` of `n` a fraction `i / n` of a period after the engine's origin (in whole
    /// milliseconds), so every tick steps a share of the fleet instead of all of it at once
    /// (the page, `fleet bench`).
    Spread,
}

/// What a device does about readings it missed because the caller ticked late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Takes one reading now and the next a period later: a tab that was hidden does not
    /// replay the minutes it missed, and a busy process does not burst.
    Skip,
    /// Takes every reading it missed, now: the offered load stays what was asked
    /// (`fleet bench`'s readings per second), as tokio's `MissedTickBehavior::Burst`.
    Burst,
}

/// Settings of an [`Engine`](crate::Engine).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// The device parameters, fleet-wide (a device may be given its own later).
    pub params: DeviceParams,
    /// When devices take their first reading.
    pub start: Start,
    /// Devices started per second (the ramp-up: device `i` starts `i / ramp_per_s` seconds
    /// after the origin); 0 starts them all at once.
    pub ramp_per_s: f64,
    /// Missed readings.
    pub catch_up: CatchUp,
    /// Readings per message, `1..=MAX_BATCH`: 1 sends each reading as its own JSON object;
    /// more buffer a device's readings and send them as one JSON array (§4.3, current shape
    /// only).
    pub batch: usize,
    /// Put before every telemetry topic: IoT Core's Basic Ingest prefix
    /// (`$aws/rules/{rule}/`), or nothing.
    pub topic_prefix: String,
    /// The QoS of telemetry messages.
    pub qos: QoS,
    /// Readings per device whose send time is kept, to measure a command's round trip from
    /// the reading it answers (rounded up to a power of two). A command answering an older
    /// reading has no round trip.
    pub round_trip_window: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            params: DeviceParams::default(),
            start: Start::Together,
            ramp_per_s: 0.0,
            catch_up: CatchUp::Skip,
            batch: 1,
            topic_prefix: String::new(),
            qos: QoS::AtLeastOnce,
            round_trip_window: 64,
        }
    }
}

/// Why an engine cannot be built, or a setting cannot be changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// Device parameters or a variation out of range.
    #[error("device parameters: {0}")]
    Params(#[from] fleet_core::device::ParamsError),
    /// The batch size is outside `1..=MAX_BATCH`.
    #[error("readings per message must be 1 to {MAX_BATCH}, not {0}")]
    Batch(usize),
    /// A legacy device cannot batch: the original's payload carries one reading.
    #[error("device {0} speaks the legacy shape, which carries one reading per message")]
    LegacyBatch(String),
    /// The ramp-up rate is negative or not a number.
    #[error("the ramp-up rate must be a finite number ≥ 0, not {0}")]
    Ramp(f64),
    /// Two devices share an id.
    #[error("device {0} is in the fleet twice")]
    Duplicate(String),
    /// More devices than an index of 32 bits holds.
    #[error("{0} devices are more than one engine holds")]
    TooMany(usize),
}

impl EngineConfig {
    /// Checks the settings that do not depend on the devices.
    pub(crate) fn validate(&self) -> Result<(), EngineError> {
        self.params.validate()?;
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return Err(EngineError::Batch(self.batch));
        }
        if !(self.ramp_per_s.is_finite() && self.ramp_per_s >= 0.0) {
            return Err(EngineError::Ramp(self.ramp_per_s));
        }
        Ok(())
    }
}

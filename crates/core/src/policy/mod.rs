//! Remediation (§4.5): a pure per-device state machine deciding, reading by reading,
//! whether to send `cool`, `heat` or `release`.
//!
//! [`decide`] takes the device's stored [`DeviceState`], the new reading and the clock, and
//! returns the next state and a [`Decision`] to record (and maybe publish). Rules, in order:
//!
//! 1. A reading not newer than the last one (by `ts`, then `seq`) is ignored: `Duplicate`
//!    if equal (a redelivery), `Stale` if older. The state is unchanged.
//! 2. A remediation older than the device-side hold has ended on the device: forgotten.
//! 3. Disabled: no command (`Disabled`), the reading is still taken into the state.
//! 4. No remediation: above the band and rising (or no previous reading) → `cool`; above
//!    but falling → nothing (`AboveBandReturning`); mirrored below the band with `heat`.
//! 5. Remediation active, minimum hold elapsed: inside the release band → `release`; out of
//!    the band on the opposite side → the opposite command (`Overshoot`). Otherwise no
//!    repeated command (`AlreadyActive`): no command storms.
//!
//! Command ids are built from the device, the reading's `ts` and `seq`, and the action, so a
//! redelivered stream record yields the same id and receivers can deduplicate.

mod config;
mod decision;
mod state;

use std::cmp::Ordering;

use crate::id::{BuildingId, DeviceId};
use crate::payload::{Action, Command, Telemetry};

pub use config::{PolicyConfig, PolicyConfigError};
pub use decision::{Decision, Publication, Reason};
pub use state::{Active, DeviceState, LastReading};

/// The reading the policy decides on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading<'a> {
    /// The device.
    pub device: &'a DeviceId,
    /// Its building, when known.
    pub building: Option<&'a BuildingId>,
    /// Reading counter (`None` for legacy readings).
    pub seq: Option<u64>,
    /// Reading time, ms: the device clock, or the arrival time for legacy readings.
    pub ts: u64,
    /// Temperature, °C.
    pub temperature: f64,
    /// Humidity, %.
    pub humidity: f64,
    /// Whether the device speaks the original protocol.
    pub legacy: bool,
}

impl<'a> Reading<'a> {
    /// The reading of a parsed telemetry message that arrived at `received_ms` (used as the
    /// time of legacy readings, which carry none) on a topic naming `building`.
    pub fn from_telemetry(
        t: &'a Telemetry,
        building: Option<&'a BuildingId>,
        received_ms: u64,
        legacy: bool,
    ) -> Self {
        Reading {
            device: &t.device,
            building: t.building.as_ref().or(building),
            seq: t.seq,
            ts: t.ts.unwrap_or(received_ms),
            temperature: t.temperature,
            humidity: t.humidity,
            legacy,
        }
    }
}

/// Decides what to do about `reading`, given the device's `state` and the clock `now_ms`.
/// Returns the device's next state and the decision to record. See the module doc for the
/// rules.
pub fn decide(
    cfg: &PolicyConfig,
    state: &DeviceState,
    reading: &Reading<'_>,
    now_ms: u64,
) -> (DeviceState, Decision) {
    let previous = state.last.map(|l| l.temperature);
    let decision = |command: Option<Command>, reason: Reason| Decision {
        device: reading.device.clone(),
        building: reading.building.cloned(),
        reading_seq: reading.seq,
        reading_ts: reading.ts,
        at_ms: now_ms,
        temperature: reading.temperature,
        humidity: reading.humidity,
        previous_temperature: previous,
        legacy: reading.legacy,
        command,
        reason,
    };

    if let Some(last) = &state.last {
        // Legacy readings have no seq; their time alone orders them.
        let order = (reading.ts, reading.seq.unwrap_or(0)).cmp(&(last.ts, last.seq.unwrap_or(0)));
        match order {
            Ordering::Less => return (state.clone(), decision(None, Reason::Stale)),
            Ordering::Equal => return (state.clone(), decision(None, Reason::Duplicate)),
            Ordering::Greater => {}
        }
    }

    let mut next = DeviceState {
        last: Some(LastReading {
            ts: reading.ts,
            seq: reading.seq,
            temperature: reading.temperature,
        }),
        active: state.active.clone(),
    };

    let hold_ms = u64::from(cfg.hold_s) * 1000;
    let expired = next
        .active
        .as_ref()
        .is_some_and(|a| cfg.hold_s > 0 && now_ms.saturating_sub(a.since_ms) > hold_ms);
    if expired {
        next.active = None;
    }

    if !cfg.enabled {
        return (next, decision(None, Reason::Disabled));
    }

    let t = reading.temperature;
    let (action, reason) = match &next.active {
        None => {
            let (action, reason) = if t > cfg.band_max {
                if previous.is_none_or(|p| t > p) {
                    (Some(Action::Cool), Reason::AboveBandRising)
                } else {
                    (None, Reason::AboveBandReturning)
                }
            } else if t < cfg.band_min {
                if previous.is_none_or(|p| t < p) {
                    (Some(Action::Heat), Reason::BelowBandFalling)
                } else {
                    (None, Reason::BelowBandReturning)
                }
            } else {
                (None, Reason::InBand)
            };
            match (action, expired) {
                (None, true) => (None, Reason::HoldExpired),
                _ => (action, reason),
            }
        }
        Some(active) => {
            let held = now_ms.saturating_sub(active.since_ms) >= cfg.min_hold_ms;
            if !held {
                (None, Reason::AlreadyActive)
            } else if cfg.in_release_band(t) {
                (Some(Action::Release), Reason::BackInBand)
            } else if (active.action == Action::Cool && t < cfg.band_min)
                || (active.action == Action::Heat && t > cfg.band_max)
            {
                (Some(active.action.opposite()), Reason::Overshoot)
            } else {
                (None, Reason::AlreadyActive)
            }
        }
    };

    let command = action.map(|action| {
        let command = build_command(cfg, reading, action, now_ms);
        next.active = match action {
            Action::Release => None,
            Action::Cool | Action::Heat => Some(Active {
                action,
                since_ms: now_ms,
                command_id: command.id.clone(),
            }),
        };
        command
    });
    (next, decision(command, reason))
}

fn build_command(
    cfg: &PolicyConfig,
    reading: &Reading<'_>,
    action: Action,
    now_ms: u64,
) -> Command {
    let seq = reading
        .seq
        .map_or_else(|| String::from("L"), |s| s.to_string());
    Command {
        id: format!("{}-{}-{seq}-{action}", reading.device, reading.ts),
        device: reading.device.clone(),
        action,
        reference_temperature: cfg.reference_temperature(),
        hold_s: match action {
            Action::Release => 0,
            Action::Cool | Action::Heat => cfg.hold_s,
        },
        issued_at: now_ms,
        reading_seq: reading.seq,
    }
}

#[cfg(test)]
mod tests;

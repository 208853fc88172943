//! Alarms (§4.6) evaluated in-process: per-device band alarms and a fleet alarm.
//!
//! In AWS, CloudWatch alarms on the worker's metrics do this and a notifier forwards their
//! state changes to `dt/monitoring/alarms`. The local stack and the in-page mode run the same
//! rules here, reading by reading, and publish the same [`AlarmNotice`] shape, so the UI
//! does not care where an alarm came from.
//!
//! Rules, per accepted reading (in arrival order):
//! - `TemperatureHigh` for a device: ALARM while its last reading is above `band_max`, OK
//!   again at the first reading at or below it (the original's "maximum > 28").
//! - `TemperatureLow`: the same below `band_min` (the original's "minimum < 26").
//! - `FleetOutOfBand`: ALARM while at least [`AlarmConfig::fleet_threshold`] devices are in
//!   a band alarm, a fleet aggregate the original did not have.
//!
//! Only changes are reported, never a repeated state, so a device sitting above the band
//! produces one notice, not one per reading.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::id::{BuildingId, DeviceId};

/// Alarm thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlarmConfig {
    /// Readings below this raise `TemperatureLow` (°C; the original's 26).
    pub band_min: f64,
    /// Readings above this raise `TemperatureHigh` (°C; the original's 28).
    pub band_max: f64,
    /// Share of the known devices that must be in a band alarm to raise `FleetOutOfBand`.
    pub fleet_fraction: f64,
    /// Never raise `FleetOutOfBand` for fewer devices than this.
    pub fleet_min_devices: usize,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            band_min: 26.0,
            band_max: 28.0,
            fleet_fraction: 0.25,
            fleet_min_devices: 2,
        }
    }
}

impl AlarmConfig {
    /// Devices in a band alarm needed for `FleetOutOfBand`, given `known` devices.
    pub fn fleet_threshold(&self, known: usize) -> usize {
        let share = (self.fleet_fraction.clamp(0.0, 1.0) * known as f64).ceil() as usize;
        share.max(self.fleet_min_devices).max(1)
    }
}

/// Which alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlarmKind {
    /// A device's temperature is above the band.
    TemperatureHigh,
    /// A device's temperature is below the band.
    TemperatureLow,
    /// Too many devices are out of the band at once.
    FleetOutOfBand,
}

/// CloudWatch's alarm states (`INSUFFICIENT_DATA` is never produced here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    /// Within thresholds.
    Ok,
    /// Threshold breached.
    Alarm,
    /// Not enough data (CloudWatch's initial state; only the notifier reports it).
    InsufficientData,
}

impl AlarmState {
    /// CloudWatch's spelling: `OK`, `ALARM`, `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

impl std::fmt::Display for AlarmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alarm state change, as published on `dt/monitoring/alarms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmNotice {
    /// Alarm name: `{device}/{kind}` or `fleet/FleetOutOfBand` locally; the CloudWatch alarm
    /// name in AWS.
    pub alarm: String,
    /// Which alarm.
    pub kind: AlarmKind,
    /// The device, for device alarms.
    pub device: Option<DeviceId>,
    /// The device's building, when known.
    pub building: Option<BuildingId>,
    /// New state.
    pub state: AlarmState,
    /// Previous state.
    pub previous: AlarmState,
    /// The value that changed it: °C for device alarms, a device count for the fleet alarm.
    pub value: f64,
    /// The threshold it was compared with.
    pub threshold: f64,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Why, in plain words.
    pub reason: String,
}

impl AlarmNotice {
    /// The notice as JSON (infallible: every field is a plain value).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a notice; the UI uses it on `dt/monitoring/alarms` messages.
    pub fn from_json(bytes: &[u8]) -> Result<AlarmNotice, serde_json::Error> {
        // Read as `&str`, not with `from_slice`: every other JSON reader in the web app
        // reads `&str`, and a second reader type instantiates serde_json's whole parser
        // again (about 6 KB of the page's download).
        let text =
            std::str::from_utf8(bytes).map_err(<serde_json::Error as serde::de::Error>::custom)?;
        serde_json::from_str(text)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct DeviceAlarms {
    high: bool,
    low: bool,
}

/// Alarm state for a fleet; feed it every accepted reading with [`Alarms::observe`].
#[derive(Debug, Clone, Default)]
pub struct Alarms {
    config: AlarmConfig,
    devices: HashMap<DeviceId, DeviceAlarms>,
    /// Devices with `high` or `low` set.
    in_alarm: usize,
    fleet: bool,
}

impl Alarms {
    /// No device known, every alarm OK.
    pub fn new(config: AlarmConfig) -> Alarms {
        Alarms {
            config,
            ..Alarms::default()
        }
    }

    /// The thresholds in use.
    pub fn config(&self) -> &AlarmConfig {
        &self.config
    }

    /// Devices currently in a band alarm.
    pub fn devices_in_alarm(&self) -> usize {
        self.in_alarm
    }

    /// Whether the fleet alarm is raised.
    pub fn fleet_alarm(&self) -> bool {
        self.fleet
    }

    /// Evaluates one accepted reading and returns the state changes it caused.
    pub fn observe(
        &mut self,
        device: &DeviceId,
        building: Option<&BuildingId>,
        temperature: f64,
        at_ms: u64,
    ) -> Vec<AlarmNotice> {
        let cfg = self.config;
        let state = self.devices.entry(device.clone()).or_default();
        let was_in_alarm = state.high || state.low;
        let mut notices = Vec::new();
        let change = |kind, raised: bool, threshold: f64, reason: String| AlarmNotice {
            alarm: format!("{device}/{kind:?}"),
            kind,
            device: Some(device.clone()),
            building: building.cloned(),
            state: if raised {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            },
            previous: if raised {
                AlarmState::Ok
            } else {
                AlarmState::Alarm
            },
            value: temperature,
            threshold,
            at_ms,
            reason,
        };
        let high = temperature > cfg.band_max;
        if high != state.high {
            state.high = high;
            let words = if high { "above" } else { "back at or below" };
            notices.push(change(
                AlarmKind::TemperatureHigh,
                high,
                cfg.band_max,
                format!(
                    "temperature {temperature:.2} °C is {words} {:.1} °C",
                    cfg.band_max
                ),
            ));
        }
        let low = temperature < cfg.band_min;
        if low != state.low {
            state.low = low;
            let words = if low { "below" } else { "back at or above" };
            notices.push(change(
                AlarmKind::TemperatureLow,
                low,
                cfg.band_min,
                format!(
                    "temperature {temperature:.2} °C is {words} {:.1} °C",
                    cfg.band_min
                ),
            ));
        }
        let is_in_alarm = state.high || state.low;
        match (was_in_alarm, is_in_alarm) {
            (false, true) => self.in_alarm += 1,
            (true, false) => self.in_alarm -= 1,
            _ => {}
        }
        let threshold = cfg.fleet_threshold(self.devices.len());
        let fleet = self.in_alarm >= threshold;
        if fleet != self.fleet {
            self.fleet = fleet;
            let words = if fleet { "at least" } else { "fewer than" };
            notices.push(AlarmNotice {
                alarm: String::from("fleet/FleetOutOfBand"),
                kind: AlarmKind::FleetOutOfBand,
                device: None,
                building: None,
                state: if fleet {
                    AlarmState::Alarm
                } else {
                    AlarmState::Ok
                },
                previous: if fleet {
                    AlarmState::Ok
                } else {
                    AlarmState::Alarm
                },
                value: self.in_alarm as f64,
                threshold: threshold as f64,
                at_ms,
                reason: format!(
                    "{} of {} devices out of band: {words} {threshold}",
                    self.in_alarm,
                    self.devices.len()
                ),
            });
        }
        notices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::try_from(s).unwrap()
    }

    fn kinds(notices: &[AlarmNotice]) -> Vec<(AlarmKind, AlarmState)> {
        notices.iter().map(|n| (n.kind, n.state)).collect()
    }

    #[test]
    fn a_device_alarm_is_raised_once_and_cleared_once() {
        let mut a = Alarms::new(AlarmConfig {
            fleet_min_devices: 10,
            ..AlarmConfig::default()
        });
        let d = id("d-0001");
        assert!(a.observe(&d, None, 27.0, 1).is_empty());
        let raised = a.observe(&d, None, 28.1, 2);
        assert_eq!(
            kinds(&raised),
            [(AlarmKind::TemperatureHigh, AlarmState::Alarm)]
        );
        assert_eq!(raised[0].alarm, "d-0001/TemperatureHigh");
        assert_eq!(raised[0].previous, AlarmState::Ok);
        assert!(
            a.observe(&d, None, 28.5, 3).is_empty(),
            "no repeated notice"
        );
        assert_eq!(
            kinds(&a.observe(&d, None, 28.0, 4)),
            [(AlarmKind::TemperatureHigh, AlarmState::Ok)],
            "28.0 is not above 28.0"
        );
        // Straight from high to low: both alarms change in one reading.
        a.observe(&d, None, 29.0, 5);
        assert_eq!(
            kinds(&a.observe(&d, None, 25.0, 6)),
            [
                (AlarmKind::TemperatureHigh, AlarmState::Ok),
                (AlarmKind::TemperatureLow, AlarmState::Alarm)
            ]
        );
        assert_eq!(a.devices_in_alarm(), 1);
    }

    #[test]
    fn the_fleet_alarm_follows_the_count_of_devices_in_alarm() {
        let cfg = AlarmConfig {
            fleet_fraction: 0.5,
            fleet_min_devices: 2,
            ..AlarmConfig::default()
        };
        let mut a = Alarms::new(cfg);
        let devices: Vec<DeviceId> = (1..=4).map(|i| id(&format!("d-{i}"))).collect();
        for d in &devices {
            a.observe(d, None, 27.0, 0);
        }
        assert_eq!(cfg.fleet_threshold(4), 2);
        a.observe(&devices[0], None, 29.0, 1);
        assert!(!a.fleet_alarm());
        let n = a.observe(&devices[1], None, 25.0, 2);
        assert_eq!(
            kinds(&n),
            [
                (AlarmKind::TemperatureLow, AlarmState::Alarm),
                (AlarmKind::FleetOutOfBand, AlarmState::Alarm)
            ]
        );
        assert_eq!(n[1].value, 2.0);
        let n = a.observe(&devices[0], None, 27.0, 3);
        assert_eq!(
            kinds(&n),
            [
                (AlarmKind::TemperatureHigh, AlarmState::Ok),
                (AlarmKind::FleetOutOfBand, AlarmState::Ok)
            ]
        );
    }

    #[test]
    fn thresholds_never_drop_below_the_minimum() {
        let cfg = AlarmConfig::default();
        assert_eq!(cfg.fleet_threshold(0), 2);
        assert_eq!(cfg.fleet_threshold(4), 2);
        assert_eq!(cfg.fleet_threshold(100), 25);
        let one = AlarmConfig {
            fleet_min_devices: 0,
            fleet_fraction: 0.0,
            ..cfg
        };
        assert_eq!(one.fleet_threshold(10), 1);
    }

    #[test]
    fn notices_round_trip_as_json() {
        let mut a = Alarms::new(AlarmConfig::default());
        let b = BuildingId::try_from("1").unwrap();
        let n = a.observe(&id("d-0001"), Some(&b), 28.25, 99).remove(0);
        let json = n.to_json();
        assert!(json.contains(r#""state":"ALARM""#), "{json}");
        assert!(json.contains(r#""kind":"TemperatureHigh""#), "{json}");
        assert_eq!(AlarmNotice::from_json(json.as_bytes()).unwrap(), n);
        assert!(AlarmNotice::from_json(b"{\"alarm\":1}").is_err());
        let mut bad_utf8 = json.clone().into_bytes();
        bad_utf8.insert(1, 0xff);
        let err = AlarmNotice::from_json(&bad_utf8).unwrap_err();
        assert!(err.to_string().contains("utf-8"), "{err}");
    }
}

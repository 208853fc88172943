//! What the UI shows, copied out of the [`Engine`] a few times a second: plain data, so
//! the components never borrow the engine and the copy is testable natively.

use fleet_core::payload::Action;

use crate::engine::{Engine, EngineStats};

/// Cards drawn at most; the overview strip still shows every device.
pub const MAX_CARDS: usize = 48;

/// Remediation and alarm lines kept for the cloud panel.
pub const LOG_LINES: usize = 8;

/// Where a temperature stands against the band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// No reading yet.
    Unknown,
    /// Below the band.
    Cold,
    /// Within the band.
    InBand,
    /// Above the band.
    Hot,
}

impl Level {
    /// Classifies `temperature` against `[min, max]`.
    pub fn of(temperature: Option<f64>, min: f64, max: f64) -> Level {
        match temperature {
            None => Level::Unknown,
            Some(t) if t < min => Level::Cold,
            Some(t) if t > max => Level::Hot,
            Some(_) => Level::InBand,
        }
    }

    /// The CSS class of a tile at this level.
    pub fn class(self) -> &'static str {
        match self {
            Level::Unknown => "tile unknown",
            Level::Cold => "tile cold",
            Level::InBand => "tile ok",
            Level::Hot => "tile hot",
        }
    }
}

/// One device, as its tile and card show it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSnap {
    /// Device id.
    pub id: String,
    /// Commands received.
    pub commands: u64,
    /// Latest temperature, °C.
    pub temperature: Option<f64>,
    /// `(seq, temperature, counterfactual)`, oldest first.
    pub points: Vec<(u64, f64, f64)>,
    /// `(seq, action)` of the commands within the points' range.
    pub markers: Vec<(u64, Action)>,
    /// `(seq, relative humidity %)`, oldest first.
    pub humidity: Vec<(u64, f64)>,
}

/// One line of the cloud panel's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// `"remediation"` or `"alarm"` (also the line's CSS class).
    pub kind: &'static str,
    /// The line.
    pub text: String,
}

/// Everything the UI draws at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Lower band edge, °C.
    pub band_min: f64,
    /// Upper band edge, °C.
    pub band_max: f64,
    /// Every device, in id order.
    pub devices: Vec<DeviceSnap>,
    /// Cloud counters.
    pub stats: EngineStats,
    /// Latest remediations and alarm changes, newest first.
    pub log: Vec<LogLine>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            band_min: 26.0,
            band_max: 28.0,
            devices: Vec::new(),
            stats: EngineStats::default(),
            log: Vec::new(),
        }
    }
}

impl Snapshot {
    /// Copies what the UI shows out of `engine`, with the band `[band_min, band_max]`.
    pub fn of(engine: &Engine, band_min: f64, band_max: f64) -> Snapshot {
        let devices = engine
            .devices()
            .iter()
            .map(|d| DeviceSnap {
                id: d.device.id().to_string(),
                commands: d.commands,
                temperature: d.series.last().map(|p| p.temperature),
                points: d
                    .series
                    .points()
                    .map(|p| (p.seq, p.temperature, p.counterfactual))
                    .collect(),
                markers: d.series.markers().map(|m| (m.seq, m.action)).collect(),
                humidity: d.series.points().map(|p| (p.seq, p.humidity)).collect(),
            })
            .collect();
        let mut log: Vec<LogLine> = engine
            .remediations()
            .rev()
            .take(LOG_LINES)
            .map(|d| LogLine {
                at_ms: d.at_ms,
                kind: "remediation",
                text: format!(
                    "{} {} ({}, {:.2} °C)",
                    d.device,
                    d.command.as_ref().map_or("none", |c| c.action.as_str()),
                    d.reason.code(),
                    d.temperature
                ),
            })
            .chain(engine.alarms().rev().take(LOG_LINES).map(|a| LogLine {
                at_ms: a.at_ms,
                kind: "alarm",
                text: format!("{} {} → {} ({:.2})", a.alarm, a.previous, a.state, a.value),
            }))
            .collect();
        log.sort_by_key(|l| std::cmp::Reverse(l.at_ms));
        log.truncate(LOG_LINES);
        Snapshot {
            band_min,
            band_max,
            devices,
            stats: engine.stats(),
            log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;

    const T0: u64 = 1_764_230_400_000;

    #[test]
    fn levels_follow_the_band() {
        assert_eq!(Level::of(None, 26.0, 28.0), Level::Unknown);
        assert_eq!(Level::of(Some(25.9), 26.0, 28.0), Level::Cold);
        assert_eq!(Level::of(Some(27.0), 26.0, 28.0), Level::InBand);
        assert_eq!(Level::of(Some(28.1), 26.0, 28.0), Level::Hot);
    }

    #[test]
    fn a_snapshot_copies_devices_stats_and_a_short_newest_first_log() {
        let mut engine = Engine::new(EngineConfig::default(), T0).unwrap();
        let mut now = T0;
        while now <= T0 + 300_000 {
            engine.tick(now);
            now += 50;
        }
        let snap = Snapshot::of(&engine, 26.0, 28.0);
        assert_eq!(snap.devices.len(), 12);
        assert_eq!(snap.stats, engine.stats());
        assert!(snap.devices.iter().all(|d| !d.points.is_empty()));
        assert!(snap.devices.iter().any(|d| !d.markers.is_empty()));
        assert!(!snap.log.is_empty() && snap.log.len() <= LOG_LINES);
        assert!(snap.log.windows(2).all(|w| w[0].at_ms >= w[1].at_ms));
    }
}

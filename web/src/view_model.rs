//! What the UI shows, copied out of the [`Engine`] a few times a second: plain data, so
//! the components never borrow the engine and the copy is testable natively.

use fleet_core::payload::Action;

use std::ops::Range;

use crate::engine::{Engine, EngineStats, LogEntry};
use crate::transport::LinkState;

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

/// One device, as its tile and card show it. The curves are only copied for the cards on
/// screen (see [`Snapshot::of`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSnap {
    /// Device id.
    pub id: String,
    /// Commands received.
    pub commands: u64,
    /// Latest temperature, °C.
    pub temperature: Option<f64>,
    /// Its connection.
    pub link: LinkState,
    /// Whether it runs with its own parameters.
    pub custom_params: bool,
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
    /// `"command"` or `"alarm"` (also the line's CSS class).
    pub kind: &'static str,
    /// The line.
    pub text: String,
}

impl LogLine {
    fn of(entry: &LogEntry) -> LogLine {
        match entry {
            LogEntry::Command {
                at_ms,
                device,
                action,
                temperature,
                rtt_ms,
            } => {
                let mut text = format!("{device} {action}", action = action.as_str());
                if let Some(t) = temperature {
                    text.push_str(&format!(" at {t:.2} °C"));
                }
                if let Some(rtt) = rtt_ms {
                    text.push_str(&format!(", {rtt} ms"));
                }
                LogLine {
                    at_ms: *at_ms,
                    kind: "command",
                    text,
                }
            }
            LogEntry::Alarm(a) => LogLine {
                at_ms: a.at_ms,
                kind: "alarm",
                text: format!("{} {} → {} ({:.2})", a.alarm, a.previous, a.state, a.value),
            },
        }
    }
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
    /// Counters.
    pub stats: EngineStats,
    /// Publish → command round trip, p50 and p99, ms.
    pub rtt: Option<(u32, u32)>,
    /// The latest connection problem, in plain words.
    pub problem: Option<String>,
    /// Latest commands and alarm changes, newest first.
    pub log: Vec<LogLine>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            band_min: 26.0,
            band_max: 28.0,
            devices: Vec::new(),
            stats: EngineStats::default(),
            rtt: None,
            problem: None,
            log: Vec::new(),
        }
    }
}

impl Snapshot {
    /// Copies what the UI shows out of `engine`, with the band `[band_min, band_max]`; the
    /// curves only of the devices in `visible` (the cards on screen).
    // Never inlined: the page takes snapshots from several closures, and a copy of this
    // body in each cost kilobytes of wasm.
    #[inline(never)]
    pub fn of(engine: &Engine, band_min: f64, band_max: f64, visible: Range<usize>) -> Snapshot {
        let devices = engine
            .devices()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let drawn = visible.contains(&i);
                DeviceSnap {
                    id: d.device.id().to_string(),
                    commands: d.commands,
                    temperature: d.series.last().map(|p| p.temperature),
                    link: engine.link(i),
                    custom_params: d.custom_params,
                    points: if drawn {
                        d.series
                            .points()
                            .map(|p| (p.seq, p.temperature, p.counterfactual))
                            .collect()
                    } else {
                        Vec::new()
                    },
                    markers: if drawn {
                        d.series.markers().map(|m| (m.seq, m.action)).collect()
                    } else {
                        Vec::new()
                    },
                    humidity: if drawn {
                        d.series.points().map(|p| (p.seq, p.humidity)).collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        let mut log: Vec<LogLine> = engine
            .log()
            .rev()
            .take(LOG_LINES)
            .map(LogLine::of)
            .collect();
        log.sort_by_key(|l| std::cmp::Reverse(l.at_ms));
        Snapshot {
            band_min,
            band_max,
            devices,
            stats: engine.stats(),
            rtt: engine.rtt_percentiles(),
            problem: engine.problem(),
            log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use fleet_pipeline::PipelineConfig;

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
        let mut engine =
            Engine::in_page(EngineConfig::default(), PipelineConfig::default(), T0).unwrap();
        let mut now = T0;
        while now <= T0 + 300_000 {
            engine.tick(now);
            now += 50;
        }
        let snap = Snapshot::of(&engine, 26.0, 28.0, 0..4);
        assert_eq!(snap.devices.len(), 12);
        assert_eq!(snap.stats, engine.stats());
        // Curves only for the cards on screen; the tiles' fields for every device.
        assert!(snap.devices[..4].iter().all(|d| !d.points.is_empty()));
        assert!(snap.devices[4..].iter().all(|d| d.points.is_empty()));
        assert!(snap.devices.iter().all(|d| d.temperature.is_some()));
        assert!(snap.devices.iter().all(|d| d.link == LinkState::Up));
        assert!(snap.devices[..4].iter().any(|d| !d.markers.is_empty()));
        assert_eq!(snap.rtt, Some((0, 0)));
        assert!(!snap.log.is_empty() && snap.log.len() <= LOG_LINES);
        assert!(snap.log.windows(2).all(|w| w[0].at_ms >= w[1].at_ms));
    }
}

//! What the UI shows, copied out of the [`Engine`] a few times a second: plain data, so
//! the components never borrow the engine and the copy is testable natively.

use fleet_core::payload::Action;

use std::ops::Range;
use std::sync::Arc;

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
    /// Device id (shared: a refresh copies no id).
    pub id: Arc<str>,
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
    pub fn of(engine: &Engine, band_min: f64, band_max: f64, visible: Range<usize>) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.refresh(engine, band_min, band_max, visible);
        snapshot
    }

    /// [`Snapshot::of`] in place: 25,000 devices four times a second cost no allocation
    /// (ids are kept while they match, curve buffers are reused), only a pass over the
    /// fleet's latest values.
    // Never inlined: the page takes snapshots from several closures, and a copy of this
    // body in each cost kilobytes of wasm.
    #[inline(never)]
    pub fn refresh(
        &mut self,
        engine: &Engine,
        band_min: f64,
        band_max: f64,
        visible: Range<usize>,
    ) {
        let all = engine.devices();
        self.devices.truncate(all.len());
        for (i, d) in all.iter().enumerate() {
            let id = engine.id(i);
            if i == self.devices.len() {
                self.devices.push(DeviceSnap {
                    id: Arc::from(id),
                    commands: 0,
                    temperature: None,
                    link: LinkState::Idle,
                    custom_params: false,
                    points: Vec::new(),
                    markers: Vec::new(),
                    humidity: Vec::new(),
                });
            }
            let snap = &mut self.devices[i];
            if &*snap.id != id {
                snap.id = Arc::from(id);
            }
            snap.commands = d.commands;
            snap.temperature = d.series.last().map(|p| p.temperature);
            snap.link = engine.link(i);
            snap.custom_params = d.custom_params;
            if visible.contains(&i) {
                snap.points.clear();
                snap.points.extend(
                    d.series
                        .points()
                        .map(|p| (p.seq, p.temperature, p.counterfactual)),
                );
                snap.markers.clear();
                snap.markers
                    .extend(d.series.markers().map(|m| (m.seq, m.action)));
                snap.humidity.clear();
                snap.humidity
                    .extend(d.series.points().map(|p| (p.seq, p.humidity)));
            } else if snap.points.capacity() > 0 {
                // Scrolled away: give the memory back.
                snap.points = Vec::new();
                snap.markers = Vec::new();
                snap.humidity = Vec::new();
            }
        }
        self.log.clear();
        self.log
            .extend(engine.log().rev().take(LOG_LINES).map(LogLine::of));
        // Newest first, stable: an insertion sort of at most LOG_LINES lines (a library
        // sort instantiated for them cost 1 KB of the page's transfer budget).
        for i in 1..self.log.len() {
            let mut j = i;
            while j > 0 && self.log[j - 1].at_ms < self.log[j].at_ms {
                self.log.swap(j - 1, j);
                j -= 1;
            }
        }
        self.band_min = band_min;
        self.band_max = band_max;
        self.stats = engine.stats();
        self.rtt = engine.rtt_percentiles();
        self.problem = engine.problem();
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

    #[test]
    fn a_refresh_in_place_reuses_ids_and_buffers_and_equals_a_fresh_copy() {
        let mut engine =
            Engine::in_page(EngineConfig::default(), PipelineConfig::default(), T0).unwrap();
        let mut now = T0;
        let mut step = |engine: &mut Engine, until: u64| {
            while now <= until {
                engine.tick(now);
                now += 50;
            }
        };
        // Full rings (300 points every 2 s), so the curve buffers need not grow.
        step(&mut engine, T0 + 620_000);
        let mut snap = Snapshot::of(&engine, 26.0, 28.0, 2..4);
        let id = Arc::clone(&snap.devices[3].id);
        let points = snap.devices[3].points.as_ptr();
        step(&mut engine, T0 + 630_000);
        snap.refresh(&engine, 26.0, 28.0, 2..4);
        assert_eq!(snap, Snapshot::of(&engine, 26.0, 28.0, 2..4));
        // The same id, not a copy; the same curve buffer (its capacity sufficed).
        assert!(Arc::ptr_eq(&snap.devices[3].id, &id));
        assert_eq!(snap.devices[3].points.as_ptr(), points);
        // Scrolled away: the curves go, and their memory with them.
        snap.refresh(&engine, 26.0, 28.0, 5..6);
        assert_eq!(snap.devices[3].points.capacity(), 0);
        assert_eq!(snap, Snapshot::of(&engine, 26.0, 28.0, 5..6));
    }
}

//! The fleet in the page: the shared fleet engine (`fleet-engine`) driven per animation
//! frame, talking to a cloud through a [`Transport`] (in-page, or MQTT per device or per
//! gateway), with what the cards draw.
//!
//! No timer per device: [`Engine::advance`] per animation frame ticks the fleet engine,
//! which starts the devices the ramp-up has reached and steps the devices whose reading is
//! due; this driver opens their connections, hands the messages to the transport, keeps
//! each device's curve and counterfactual for its card, and routes what came back:
//! commands through the fleet engine to their devices (with the round trip it measures),
//! alarm notices to the cloud panel's log. A tab that was hidden does not replay the
//! readings it missed: each device resumes one period later.
//!
//! # Key decision: a budget of readings at a time, and the lag reported
//! A frame steps at most [`CHUNK`] readings between two looks at its time budget, so a big
//! fleet never turns a frame into a long task; when the budget runs out with readings still
//! due, the fleet is behind real time, and [`EngineStats::lag_ms`] says by how much (the
//! age of its oldest reading due and not taken) instead of hiding it.

use std::collections::VecDeque;

use fleet_core::device::{DEFAULT_NOISE_AMPLITUDE, ParamsError};
use fleet_core::payload::{Action, Shape};
use fleet_core::policy::PolicyConfigError;
use fleet_core::{AlarmNotice, BuildingId, DeviceId, DeviceParams, Fleet, FleetVariation, Topic};
use fleet_engine::{Applied, CatchUp, DeviceSpec, Received, Start, Via};
use fleet_pipeline::PipelineConfig;

use crate::series::{Marker, Point, Series};
use crate::transport::in_page::InPage;
use crate::transport::{Inbound, LinkState, Sent, Transport, TransportStats};

/// Settings of a fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Number of devices.
    pub devices: usize,
    /// Buildings they are spread over.
    pub buildings: usize,
    /// Seed of phases and noise.
    pub seed: u64,
    /// The original device parameters, fleet-wide.
    pub params: DeviceParams,
    /// Devices started per second by the ramp-up; 0 starts them all at once.
    pub ramp_per_s: u32,
    /// Points kept per device for its chart (see [`series_capacity`] for big fleets).
    pub series_capacity: usize,
    /// Commands and alarm notices kept for the cloud panel.
    pub log_capacity: usize,
    /// Device ids are this plus a 4-digit number. `d-` (the default) gives the ids every
    /// simulator of the project uses; the page gives its fleets on a shared broker a prefix
    /// of its own, so they never report under another simulator's (or tab's) ids.
    pub id_prefix: String,
    /// Every device in this building, when the broker confines the page to one (a Cognito
    /// guest on AWS: the template's browser building); `None` spreads them over
    /// `buildings`.
    pub building: Option<BuildingId>,
    /// Put before every telemetry topic: IoT Core's Basic Ingest prefix
    /// (`$aws/rules/<rule>/`), or nothing.
    pub topic_prefix: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            devices: 12,
            buildings: 3,
            seed: 1,
            params: DeviceParams::default(),
            ramp_per_s: 0,
            series_capacity: 300,
            log_capacity: 200,
            id_prefix: "d-".to_owned(),
            building: None,
            topic_prefix: String::new(),
        }
    }
}

/// Chart points kept for the whole fleet: 1.5 M points of 40 bytes, 60 MB.
pub const POINT_BUDGET: usize = 1_500_000;

/// Points a device keeps at most (and at least, however big the fleet).
pub const MAX_SERIES: usize = 300;
/// See [`MAX_SERIES`].
pub const MIN_SERIES: usize = 60;

/// Points kept per device in a fleet of `devices`: [`MAX_SERIES`] up to 5,000 devices,
/// then the [`POINT_BUDGET`] shared out, but never fewer than [`MIN_SERIES`] (25,000
/// devices keep 60 points each).
pub fn series_capacity(devices: usize) -> usize {
    (POINT_BUDGET / devices.max(1)).clamp(MIN_SERIES, MAX_SERIES)
}

/// Readings an in-page warm-up may simulate: what 1,000 devices at one reading a second
/// send in the default 300 s.
pub const WARMUP_READINGS: u64 = 300_000;

/// The in-page warm-up, in simulated seconds, for `requested_s` asked for: no more than the
/// charts hold (`capacity` points every `period_s`), nor than [`WARMUP_READINGS`] over the
/// fleet (25,000 devices at 1 reading/s warm up for 12 s).
pub fn warmup_s(requested_s: u64, devices: usize, period_s: f64, capacity: usize) -> u64 {
    let period_s = period_s.max(0.001);
    let chart_s = (capacity as f64 * period_s) as u64;
    let budget_s = (WARMUP_READINGS as f64 * period_s / devices.max(1) as f64) as u64;
    requested_s.min(chart_s).min(budget_s)
}

/// Why an engine could not be built, or a setting not changed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Device parameters out of range.
    #[error("device parameters: {0}")]
    Params(#[from] ParamsError),
    /// A fleet the page's settings cannot make (its ids are unique, one reading a message,
    /// a ramp-up rate from a whole number): kept short, so the fleet engine's messages for
    /// its other front ends stay out of the page's download.
    #[error("the fleet engine refused this fleet")]
    Refused,
    /// A device id the prefix makes is not a valid id.
    #[error("device id: {0}")]
    Id(#[from] fleet_core::IdError),
    /// Remediation settings out of range.
    #[error("remediation settings: {0}")]
    Policy(#[from] PolicyConfigError),
    /// The transport could not be set up.
    #[error("{0}")]
    Transport(String),
}

/// What a device's card shows, beyond what the fleet engine holds.
#[derive(Debug, Clone)]
pub struct DeviceView {
    /// Its recent curves and commands.
    pub series: Series,
    /// Commands it received.
    pub commands: u64,
    /// Whether its parameters differ from the fleet's.
    pub custom_params: bool,
}

/// Readings per device whose send time the fleet engine keeps for the round trip: a command
/// answers within a few readings (in page, in the same frame).
const ROUND_TRIP_WINDOW: usize = 8;

/// Readings stepped between two looks at the frame's time budget: small enough that one
/// chunk never overruns it much, big enough that the in-page cloud ingests in batches.
pub const CHUNK: usize = 256;

/// Round trips kept for the percentiles.
const RTT_WINDOW: usize = 2048;

/// Counters for the cloud panel.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStats {
    /// Readings published.
    pub published: u64,
    /// Readings published per second (simulated time), over the last second or so.
    pub publish_rate: f64,
    /// Commands delivered to devices.
    pub commands: u64,
    /// Alarm notices received.
    pub alarm_changes: u64,
    /// Messages that arrived and could not be read (logged, not applied).
    pub unreadable: u64,
    /// Devices started by the ramp-up so far.
    pub started: usize,
    /// How far the fleet was behind the clock it was asked to reach, at the latest
    /// [`advance`](Engine::advance), simulated ms: the age of its oldest reading due and
    /// not taken (0: keeping up).
    pub lag_ms: u64,
    /// The transport's counters.
    pub transport: TransportStats,
}

/// A line of the cloud panel's log.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEntry {
    /// A command reached a device.
    Command {
        /// When, ms.
        at_ms: u64,
        /// The device.
        device: String,
        /// What it asked.
        action: Action,
        /// The device's temperature when it arrived, °C.
        temperature: Option<f64>,
        /// Publish → command round trip, ms, when the reading is known.
        rtt_ms: Option<u64>,
    },
    /// An alarm changed state.
    Alarm(AlarmNotice),
}

impl LogEntry {
    /// When it happened, ms.
    pub fn at_ms(&self) -> u64 {
        match self {
            LogEntry::Command { at_ms, .. } => *at_ms,
            LogEntry::Alarm(a) => a.at_ms,
        }
    }
}

impl From<fleet_engine::EngineError> for EngineError {
    fn from(e: fleet_engine::EngineError) -> EngineError {
        match e {
            fleet_engine::EngineError::Params(p) => EngineError::Params(p),
            _ => EngineError::Refused,
        }
    }
}

/// What builds a fleet's transport for its `(building, device)` list.
type TransportBuilder<'a> =
    dyn FnOnce(&[(BuildingId, DeviceId)]) -> Result<Box<dyn Transport>, String> + 'a;

/// The fleet and its link to the cloud.
pub struct Engine {
    fleet: fleet_engine::Engine,
    views: Vec<DeviceView>,
    transport: Box<dyn Transport>,
    stats: EngineStats,
    rate_window: (u64, u64),
    rtts: VecDeque<u32>,
    log: VecDeque<LogEntry>,
    log_capacity: usize,
    inbound: Vec<Inbound>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("devices", &self.views.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The fleet's devices: `{prefix}0001`, `{prefix}0002`, … with the seeded phases and noise
/// of a [`Fleet`] of the same seed, over `buildings` round-robin or all in `building`. The
/// ids are the page's (its namespace, ARCHITECTURE §4.8), never made up here.
fn specs(config: &EngineConfig) -> Result<Vec<DeviceSpec>, EngineError> {
    let mut id = String::with_capacity(config.id_prefix.len() + 8);
    Fleet::variations(config.seed, DEFAULT_NOISE_AMPLITUDE)
        .take(config.devices)
        .enumerate()
        .map(|(i, variation): (usize, FleetVariation)| {
            use std::fmt::Write;
            id.clear();
            id.push_str(&config.id_prefix);
            let _ = write!(id, "{:04}", i + 1);
            Ok(DeviceSpec {
                id: DeviceId::try_from(id.as_str())?,
                building: match &config.building {
                    Some(b) => b.clone(),
                    None => Fleet::building(i, config.buildings),
                },
                variation,
                shape: Shape::Current,
            })
        })
        .collect()
}

impl Engine {
    /// A fleet whose ramp-up starts at `now_ms`, talking through the transport that
    /// `transport` builds for its `(building, device)` list.
    pub fn new(
        config: EngineConfig,
        now_ms: u64,
        transport: impl FnOnce(&[(BuildingId, DeviceId)]) -> Result<Box<dyn Transport>, String>,
    ) -> Result<Engine, EngineError> {
        // One body for every kind of transport: the page builds three, and a copy of this
        // per closure type cost kilobytes of its download.
        Engine::build(config, now_ms, Box::new(transport))
    }

    fn build(
        config: EngineConfig,
        now_ms: u64,
        transport: Box<TransportBuilder<'_>>,
    ) -> Result<Engine, EngineError> {
        let specs = specs(&config)?;
        let fleet = fleet_engine::Engine::new(
            fleet_engine::EngineConfig {
                params: config.params,
                // Spread over a period, so a frame steps a share of the fleet, not all of it.
                start: Start::Spread,
                ramp_per_s: f64::from(config.ramp_per_s),
                catch_up: CatchUp::Skip,
                batch: 1,
                topic_prefix: config.topic_prefix,
                round_trip_window: ROUND_TRIP_WINDOW,
                ..fleet_engine::EngineConfig::default()
            },
            &specs,
            now_ms * 1000,
        )?;
        let ids: Vec<(BuildingId, DeviceId)> =
            specs.into_iter().map(|s| (s.building, s.id)).collect();
        let transport = transport(&ids).map_err(EngineError::Transport)?;
        drop(ids);
        let mut views = Vec::with_capacity(fleet.len());
        // Built in place, not cloned: a clone of a series is code the page need not carry.
        views.resize_with(fleet.len(), || DeviceView {
            series: Series::new(config.series_capacity),
            commands: 0,
            custom_params: false,
        });
        Ok(Engine {
            views,
            fleet,
            transport,
            stats: EngineStats::default(),
            rate_window: (now_ms, 0),
            rtts: VecDeque::with_capacity(RTT_WINDOW),
            log: VecDeque::new(),
            log_capacity: config.log_capacity.max(1),
            inbound: Vec::new(),
        })
    }

    /// A fleet with the cloud in the page.
    pub fn in_page(
        config: EngineConfig,
        pipeline: PipelineConfig,
        now_ms: u64,
    ) -> Result<Engine, EngineError> {
        // Built once, before the fleet: a bad setting is said before any device exists.
        let transport = InPage::new(pipeline, config.devices)?;
        Engine::new(config, now_ms, move |_| {
            Ok(Box::new(transport) as Box<dyn Transport>)
        })
    }

    /// What the devices' cards show, in id order.
    pub fn devices(&self) -> &[DeviceView] {
        &self.views
    }

    /// Device `i`'s id.
    pub fn id(&self, i: usize) -> &str {
        self.fleet.id(i)
    }

    /// Device `i`'s building.
    pub fn building(&self, i: usize) -> &BuildingId {
        self.fleet.building(i)
    }

    /// Device `i`'s parameters (`None` past the fleet).
    pub fn device_params(&self, i: usize) -> Option<DeviceParams> {
        (i < self.fleet.len()).then(|| *self.fleet.model(i).params())
    }

    /// Device `i`'s telemetry topic.
    pub fn telemetry_topic(&self, i: usize) -> String {
        self.fleet.telemetry_topic(i)
    }

    /// A device's connection state.
    pub fn link(&self, device: usize) -> LinkState {
        self.transport.link(device)
    }

    /// The fleet-wide parameters.
    pub fn params(&self) -> &DeviceParams {
        &self.fleet.config().params
    }

    /// Counters since start.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            transport: self.transport.stats(),
            started: self.fleet.started(),
            ..self.stats
        }
    }

    /// The latest connection problem, in plain words.
    pub fn problem(&self) -> Option<String> {
        self.transport.problem()
    }

    /// Recent commands and alarm changes, oldest first.
    pub fn log(&self) -> impl DoubleEndedIterator<Item = &LogEntry> + ExactSizeIterator {
        self.log.iter()
    }

    /// The publish → command round trip's 50th and 99th percentiles over the recent
    /// commands, ms.
    pub fn rtt_percentiles(&self) -> Option<(u32, u32)> {
        if self.rtts.is_empty() {
            return None;
        }
        // Sorted as `i32`, the type plotters sorts: one sort in the wasm, not two (3 KB).
        let mut sorted: Vec<i32> = self
            .rtts
            .iter()
            .map(|&ms| i32::try_from(ms).unwrap_or(i32::MAX))
            .collect();
        sorted.sort_unstable();
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize].unsigned_abs();
        Some((at(0.5), at(0.99)))
    }

    /// Sets the parameters of one device, or (`None`) of the whole fleet, overriding every
    /// per-device setting.
    pub fn set_params(
        &mut self,
        device: Option<usize>,
        params: DeviceParams,
    ) -> Result<(), EngineError> {
        self.fleet.set_params(device, params)?;
        match device {
            Some(i) => {
                let fleet_wide = self.fleet.config().params;
                if let Some(view) = self.views.get_mut(i) {
                    view.custom_params = params != fleet_wide;
                }
            }
            None => self.views.iter_mut().for_each(|v| v.custom_params = false),
        }
        Ok(())
    }

    /// Closes every connection now (Stop). The fleet's readings stay, for its cards and
    /// exports; it publishes nothing more, so its rate is 0.
    pub fn close(&mut self, now_ms: u64) {
        self.transport.close(now_ms);
        self.stats.publish_rate = 0.0;
        self.rate_window = (now_ms, self.stats.published);
    }

    /// Only the I/O: connections, acknowledgements, commands (while paused).
    pub fn poll(&mut self, now_ms: u64) {
        self.transport.poll(now_ms, &mut self.inbound);
        self.route_inbound(now_ms);
    }

    /// The clock of the latest tick.
    pub fn now_ms(&self) -> u64 {
        self.fleet.now_us() / 1000
    }

    /// Whether readings (or ramp-up starts) are due at or before `at_ms` and not taken.
    fn due_by(&self, at_ms: u64) -> bool {
        self.fleet
            .next_deadline()
            .is_some_and(|due| due <= at_ms.saturating_mul(1000))
    }

    /// Catches up with `target_ms` in ticks of `step_ms` (so a warm-up, or a frame at a high
    /// speed-up, steps devices as often as their period asks), [`CHUNK`] readings at a time,
    /// while `budget` says there is time left in this frame (one chunk is always taken, so
    /// the fleet moves on however busy the page). Returns the clock reached: `target_ms`, or
    /// less when the budget ran out, in which case the next call goes on from there, and
    /// [`EngineStats::lag_ms`] says how far behind `target_ms` the fleet is.
    pub fn advance(
        &mut self,
        target_ms: u64,
        step_ms: u64,
        mut budget: impl FnMut() -> bool,
    ) -> u64 {
        let step = step_ms.max(1);
        let mut first = true;
        loop {
            let now = self.now_ms();
            let at = if now.saturating_add(step) < target_ms {
                now + step
            } else {
                target_ms
            };
            if at <= now && !self.due_by(at) {
                break;
            }
            if !first && !budget() {
                break;
            }
            first = false;
            self.chunk(at);
        }
        self.stats.lag_ms = self.fleet.lag_us(target_ms.saturating_mul(1000)) / 1000;
        self.now_ms()
    }

    /// Steps every device due at `now_ms` (the ramp-up's starts too), with no budget, and
    /// handles what came back. Returns how many readings were published.
    pub fn tick(&mut self, now_ms: u64) -> usize {
        let before = self.stats.published;
        self.chunk(now_ms);
        while self.due_by(now_ms) {
            self.chunk(now_ms);
        }
        self.stats.lag_ms = 0;
        (self.stats.published - before) as usize
    }

    /// One tick of at most [`CHUNK`] readings at `now_ms`: opens the connections of the
    /// devices the ramp-up started, keeps the readings for the cards, publishes the
    /// messages, and handles what came back.
    fn chunk(&mut self, now_ms: u64) {
        let now_ms = now_ms.max(self.now_ms());
        let tick = self.fleet.tick_at_most(now_ms * 1000, CHUNK);
        for i in tick.started {
            self.transport.open(now_ms, i);
        }
        for r in self.fleet.readings() {
            let s = &r.sample;
            self.views[r.device].series.push(Point {
                seq: s.seq,
                ts: s.ts,
                temperature: s.temperature,
                counterfactual: s.counterfactual_temperature,
                humidity: s.humidity,
            });
        }
        let mut published = 0;
        for m in self.fleet.messages() {
            if self.transport.publish(now_ms, m.device, m.topic, m.payload) == Sent::Queued {
                published += 1;
            }
        }
        self.stats.published += published;
        self.poll(now_ms);
        self.measure_rate(now_ms);
    }

    fn measure_rate(&mut self, now_ms: u64) {
        let (since, at_start) = self.rate_window;
        let elapsed = now_ms.saturating_sub(since);
        if elapsed >= 1000 {
            self.stats.publish_rate =
                (self.stats.published - at_start) as f64 * 1000.0 / elapsed as f64;
            self.rate_window = (now_ms, self.stats.published);
        }
    }

    fn route_inbound(&mut self, now_ms: u64) {
        let mut inbound = std::mem::take(&mut self.inbound);
        for message in inbound.drain(..) {
            match Topic::parse(&message.topic) {
                // The page's devices speak the current shape only: the fleet engine's legacy
                // path is never linked into the page.
                Ok(Topic::Command { device, .. }) => {
                    match self.fleet.receive_command(
                        now_ms * 1000,
                        Via::Any,
                        device.as_str(),
                        &message.payload,
                    ) {
                        Received::Applied(applied) => self.applied(applied, now_ms),
                        _ => self.stats.unreadable += 1,
                    }
                }
                Ok(Topic::Alarms) => match AlarmNotice::from_json(&message.payload) {
                    Ok(notice) => {
                        self.stats.alarm_changes += 1;
                        self.push_log(LogEntry::Alarm(notice));
                    }
                    Err(_) => self.stats.unreadable += 1,
                },
                _ => self.stats.unreadable += 1,
            }
        }
        self.inbound = inbound;
    }

    /// What the card and the log show of a command a device carried out.
    fn applied(&mut self, applied: Applied, now_ms: u64) {
        let i = applied.device;
        let view = &mut self.views[i];
        view.series.mark(Marker {
            at_ms: now_ms,
            seq: self.fleet.model(i).next_seq(),
            action: applied.action,
        });
        view.commands += 1;
        let rtt_ms = applied.round_trip_us.map(|us| us / 1000);
        let entry = LogEntry::Command {
            at_ms: now_ms,
            device: self.fleet.id(i).to_owned(),
            action: applied.action,
            temperature: view.series.last().map(|p| p.temperature),
            rtt_ms,
        };
        self.stats.commands += 1;
        if let Some(rtt) = rtt_ms {
            if self.rtts.len() == RTT_WINDOW {
                self.rtts.pop_front();
            }
            self.rtts.push_back(u32::try_from(rtt).unwrap_or(u32::MAX));
        }
        self.push_log(entry);
    }

    fn push_log(&mut self, entry: LogEntry) {
        if self.log.len() == self.log_capacity {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-11-27T08:00:00Z: readings need a plausible clock (ts 0 is rejected).
    const T0: u64 = 1_764_230_400_000;

    fn in_page(config: EngineConfig, now: u64) -> Engine {
        Engine::in_page(config, PipelineConfig::default(), now).unwrap()
    }

    fn run(engine: &mut Engine, from: u64, until: u64, step: u64) {
        let mut now = T0 + from;
        while now <= T0 + until {
            engine.tick(now);
            now += step;
        }
    }

    #[test]
    fn a_fleet_in_page_publishes_gets_remediated_and_diverges_from_its_counterfactual() {
        let config = EngineConfig {
            devices: 20,
            ..EngineConfig::default()
        };
        let mut engine = in_page(config, T0);
        // Ten simulated minutes at 60 frames a second.
        run(&mut engine, 0, 600_000, 16);
        let stats = engine.stats();
        // One reading every 2 s for 600 s: 300 or 301 per device, depending on its offset.
        assert!(
            (20 * 300..=20 * 301).contains(&stats.published),
            "{}",
            stats.published
        );
        assert_eq!(stats.transport.acked, stats.published);
        assert_eq!(stats.transport.unacked, 0);
        assert_eq!(stats.unreadable, 0);
        assert!(stats.commands >= 20, "only {} commands", stats.commands);
        assert!(stats.alarm_changes > 0);
        // Commands come back in the same frame in page: a round trip of 0 ms.
        assert_eq!(engine.rtt_percentiles(), Some((0, 0)));
        assert!(stats.publish_rate > 9.0 && stats.publish_rate < 11.0);
        // A remediated device's curve departs from the one it would have had.
        let diverged = engine.devices().iter().any(|d| {
            d.series
                .points()
                .any(|p| (p.temperature - p.counterfactual).abs() > 0.5)
        });
        assert!(diverged);
        assert!(engine.devices().iter().all(|d| d.commands > 0));
        assert!(engine.log().any(|e| matches!(
            e,
            LogEntry::Command {
                rtt_ms: Some(0),
                ..
            }
        )));
        assert!(engine.log().any(|e| matches!(e, LogEntry::Alarm(_))));
    }

    #[test]
    fn a_prefix_renames_the_devices_and_keeps_their_series() {
        let mut plain = in_page(EngineConfig::default(), T0);
        let mut named = in_page(
            EngineConfig {
                id_prefix: "w1a2b-".to_owned(),
                ..EngineConfig::default()
            },
            T0,
        );
        assert_eq!(named.id(0), "w1a2b-0001");
        assert_eq!(named.id(11), "w1a2b-0012");
        assert_eq!(plain.id(11), "d-0012");
        // The same phases and noise: the same first readings, in the same buildings.
        plain.tick(T0 + 2_000);
        named.tick(T0 + 2_000);
        for i in 0..12 {
            assert_eq!(plain.building(i), named.building(i));
            let first = |e: &Engine| e.devices()[i].series.points().next().copied();
            assert!(first(&plain).is_some());
            assert_eq!(first(&plain), first(&named));
        }
        let bad = Engine::in_page(
            EngineConfig {
                id_prefix: "no spaces ".to_owned(),
                ..EngineConfig::default()
            },
            PipelineConfig::default(),
            T0,
        );
        assert!(matches!(bad, Err(EngineError::Id(_))), "{bad:?}");
    }

    #[test]
    fn a_building_puts_every_device_in_it_and_its_topics() {
        let building = BuildingId::try_from("browser").unwrap();
        let mut engine = in_page(
            EngineConfig {
                buildings: 3,
                id_prefix: "w1a2b-".to_owned(),
                building: Some(building.clone()),
                ..EngineConfig::default()
            },
            T0,
        );
        assert!((0..12).all(|i| engine.building(i) == &building));
        assert_eq!(
            engine.telemetry_topic(0),
            "dt/monitoring/browser/w1a2b-0001/telemetry"
        );
        // The in-page cloud takes their readings and remediates them as any others.
        run(&mut engine, 0, 120_000, 100);
        assert!(engine.stats().published > 0);
        assert_eq!(engine.stats().unreadable, 0);
    }

    #[test]
    fn a_paused_tab_resumes_without_a_burst() {
        let mut engine = in_page(
            EngineConfig {
                devices: 5,
                ..EngineConfig::default()
            },
            T0,
        );
        run(&mut engine, 0, 10_000, 100);
        let before = engine.stats().published;
        // Hidden for a minute: the next frame steps each device once, not 30 times.
        assert_eq!(engine.tick(T0 + 70_000), 5);
        assert_eq!(engine.stats().published, before + 5);
        assert_eq!(engine.tick(T0 + 70_001), 0);
    }

    #[test]
    fn devices_are_spread_over_a_period() {
        let mut engine = in_page(
            EngineConfig {
                devices: 100,
                ..EngineConfig::default()
            },
            T0,
        );
        let first_frame = engine.tick(T0 + 16);
        assert!(
            first_frame < 10,
            "{first_frame} of 100 devices in the first frame"
        );
    }

    #[test]
    fn the_ramp_up_starts_devices_at_its_pace() {
        let mut engine = in_page(
            EngineConfig {
                devices: 10,
                ramp_per_s: 4,
                ..EngineConfig::default()
            },
            T0,
        );
        engine.tick(T0);
        assert_eq!(engine.stats().started, 1);
        assert_eq!(engine.link(0), LinkState::Up);
        assert_eq!(engine.link(1), LinkState::Idle);
        engine.tick(T0 + 1000);
        assert_eq!(engine.stats().started, 5);
        run(&mut engine, 1000, 10_000, 50);
        assert_eq!(engine.stats().started, 10);
        // Devices publish only once started: the last one started at 2.25 s.
        assert!(engine.devices()[9].series.len() <= 4);
        assert!(engine.devices()[0].series.len() >= 5);
    }

    #[test]
    fn parameters_change_fleet_wide_or_per_device_and_bad_ones_are_refused() {
        let mut engine = in_page(EngineConfig::default(), T0);
        let fast = DeviceParams {
            update_frequency_s: 1.0,
            ..DeviceParams::default()
        };
        engine.set_params(Some(3), fast).unwrap();
        assert!(engine.devices()[3].custom_params);
        assert!(!engine.devices()[2].custom_params);
        run(&mut engine, 0, 20_000, 50);
        let n3 = engine.devices()[3].series.len();
        let n2 = engine.devices()[2].series.len();
        assert!(n3 >= 2 * n2 - 2, "{n3} vs {n2}");
        let bad = DeviceParams {
            update_frequency_s: f64::NAN,
            ..DeviceParams::default()
        };
        assert!(engine.set_params(None, bad).is_err());
        engine.set_params(None, fast).unwrap();
        assert!(engine.devices().iter().all(|d| !d.custom_params));
        assert_eq!(engine.params().update_frequency_s, 1.0);
    }

    #[test]
    fn advance_catches_up_in_steps_and_stops_when_the_budget_runs_out() {
        let mut engine = in_page(EngineConfig::default(), T0);
        // A budget of 100 steps of 50 ms after the first, which is always taken: 5.05 s of
        // the 60 s asked for.
        let mut left = 100;
        let reached = engine.advance(T0 + 60_000, 50, || {
            left -= 1;
            left >= 0
        });
        assert_eq!(reached, T0 + 5_050);
        assert_eq!(engine.now_ms(), reached);
        let early = engine.stats().published;
        // 12 devices, every 2 s, for 5 s: two or three readings each.
        assert!((24..=36).contains(&early), "{early}");
        // Behind by the age of the oldest reading due: at most a period past what was reached.
        let lag = engine.stats().lag_ms;
        assert!(
            (60_000 - 5_050 - 2_000..=60_000 - 5_050).contains(&lag),
            "{lag}"
        );
        // The rest, with no limit: every device stepped as its period asks, no burst.
        assert_eq!(engine.advance(T0 + 60_000, 50, || true), T0 + 60_000);
        assert_eq!(engine.stats().lag_ms, 0);
        let all = engine.stats().published;
        assert!((12 * 30..=12 * 31).contains(&all), "{all}");
        // Asking for the past does nothing.
        assert_eq!(engine.advance(T0, 50, || true), T0 + 60_000);
        assert_eq!(engine.stats().published, all);
    }

    #[test]
    fn a_big_fleet_steps_a_chunk_per_look_at_the_budget_and_reports_its_lag() {
        let mut engine = in_page(
            EngineConfig {
                devices: 1_000,
                series_capacity: 4,
                ..EngineConfig::default()
            },
            T0,
        );
        // Spread over 2 s (device i due at 2i ms), each device reads once by T0 + 2 s.
        assert_eq!(engine.tick(T0), 1);
        // A frame out of time takes one chunk.
        assert_eq!(engine.advance(T0 + 1_999, u64::MAX, || false), T0 + 1_999);
        assert_eq!(engine.stats().published, 1 + CHUNK as u64);
        // Device 257 was due at 514 ms: the fleet is that far behind.
        assert_eq!(engine.stats().lag_ms, 1_999 - 514);
        // Each look at the budget that says yes takes one more chunk.
        let mut looks = 0;
        engine.advance(T0 + 1_999, u64::MAX, || {
            looks += 1;
            looks <= 1
        });
        assert_eq!(engine.stats().published, 1 + 3 * CHUNK as u64);
        assert_eq!(engine.stats().lag_ms, 1_999 - 2 * 769);
        // Time enough: caught up, every reading taken once, none skipped or doubled.
        engine.advance(T0 + 1_999, u64::MAX, || true);
        assert_eq!(engine.stats().lag_ms, 0);
        assert_eq!(engine.stats().published, 1_000);
        assert!(engine.devices().iter().all(|d| d.series.len() == 1));
        assert_eq!(engine.stats().transport.acked, 1_000);
    }

    #[test]
    fn big_fleets_keep_fewer_points_within_the_budget() {
        assert_eq!(series_capacity(12), MAX_SERIES);
        assert_eq!(series_capacity(5_000), MAX_SERIES);
        assert_eq!(series_capacity(10_000), 150);
        assert_eq!(series_capacity(25_000), MIN_SERIES);
        assert_eq!(series_capacity(0), MAX_SERIES);
        for n in [1, 999, 5_001, 7_777, 25_000] {
            assert!(n * series_capacity(n) <= POINT_BUDGET, "{n}");
        }
        // Past the budget the floor wins: a chart still needs a minute of points.
        assert_eq!(series_capacity(100_000), MIN_SERIES);
    }

    #[test]
    fn the_warm_up_is_capped_by_the_charts_and_a_readings_budget() {
        // Up to 1,000 devices, the default 300 s as asked.
        assert_eq!(warmup_s(300, 12, 2.0, 300), 300);
        assert_eq!(warmup_s(300, 1_000, 1.0, 300), 300);
        // No longer than the charts hold.
        assert_eq!(warmup_s(3_600, 12, 2.0, 300), 600);
        // 25,000 devices at 1 reading/s: 12 s, 300,000 readings.
        assert_eq!(warmup_s(300, 25_000, 1.0, series_capacity(25_000)), 12);
        assert_eq!(warmup_s(300, 25_000, 2.0, series_capacity(25_000)), 24);
        assert_eq!(warmup_s(0, 5, 1.0, 300), 0);
        for (n, period) in [(5_000, 1.0), (10_000, 0.5), (25_000, 10.0)] {
            let w = warmup_s(300, n, period, series_capacity(n));
            assert!(
                w as f64 * n as f64 / period <= WARMUP_READINGS as f64,
                "{n}"
            );
        }
    }

    /// Remembers where each publish's topic and payload live, and the topics published to.
    #[derive(Default)]
    struct Recorder {
        topics: Vec<Option<usize>>,
        payloads: Vec<usize>,
        capacity_seen: usize,
        names: std::collections::BTreeSet<String>,
    }

    impl Transport for std::rc::Rc<std::cell::RefCell<Recorder>> {
        fn open(&mut self, _: u64, _: usize) {}
        fn publish(&mut self, _: u64, device: usize, topic: &str, payload: &[u8]) -> Sent {
            let mut r = self.borrow_mut();
            let at = topic.as_ptr() as usize;
            let known = r.topics[device].get_or_insert(at);
            assert_eq!(*known, at, "device {device}'s topic was rebuilt");
            r.payloads.push(payload.as_ptr() as usize);
            r.capacity_seen = r.capacity_seen.max(payload.len());
            if !r.names.contains(topic) {
                r.names.insert(topic.to_owned());
            }
            Sent::Queued
        }
        fn poll(&mut self, _: u64, _: &mut Vec<Inbound>) {}
        fn link(&self, _: usize) -> LinkState {
            LinkState::Up
        }
        fn stats(&self) -> TransportStats {
            TransportStats::default()
        }
        fn problem(&self) -> Option<String> {
            None
        }
        fn close(&mut self, _: u64) {}
    }

    #[test]
    fn readings_go_out_from_one_reused_buffer_and_cached_topics() {
        let recorder = std::rc::Rc::new(std::cell::RefCell::new(Recorder {
            topics: vec![None; 50],
            ..Recorder::default()
        }));
        let shared = recorder.clone();
        let config = EngineConfig {
            devices: 50,
            series_capacity: 10,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(config, T0, move |_| {
            Ok(Box::new(shared) as Box<dyn Transport>)
        })
        .unwrap();
        run(&mut engine, 0, 60_000, 16);
        let r = recorder.borrow();
        assert_eq!(r.payloads.len() as u64, engine.stats().published);
        assert!(r.payloads.len() >= 50 * 30);
        // Every payload was encoded into the same buffer: it never had to grow or move.
        assert!(r.payloads.iter().all(|&p| p == r.payloads[0]));
        assert!(r.capacity_seen <= 160, "{}", r.capacity_seen);
        // The series rings stay at their capacity.
        assert!(engine.devices().iter().all(|d| d.series.len() == 10));
    }

    #[test]
    fn a_basic_ingest_prefix_goes_before_every_telemetry_topic() {
        let recorder = std::rc::Rc::new(std::cell::RefCell::new(Recorder {
            topics: vec![None; 6],
            ..Recorder::default()
        }));
        let shared = recorder.clone();
        let config = EngineConfig {
            devices: 6,
            buildings: 2,
            topic_prefix: "$aws/rules/fleet_telemetry/".to_owned(),
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(config, T0, move |_| {
            Ok(Box::new(shared) as Box<dyn Transport>)
        })
        .unwrap();
        run(&mut engine, 0, 10_000, 50);
        let r = recorder.borrow();
        assert!(r.payloads.len() >= 6 * 4, "{}", r.payloads.len());
        let mut devices = std::collections::BTreeSet::new();
        for t in &r.names {
            let rest = t.strip_prefix("$aws/rules/fleet_telemetry/").unwrap();
            match Topic::parse(rest).unwrap() {
                Topic::Telemetry { device, .. } => devices.insert(device),
                other => panic!("{other:?}"),
            };
        }
        assert_eq!(devices.len(), 6);
    }

    #[test]
    fn after_close_nothing_is_sent_and_links_are_idle() {
        let mut engine = in_page(EngineConfig::default(), T0);
        run(&mut engine, 0, 5000, 50);
        engine.close(T0 + 5000);
        assert_eq!(engine.link(0), LinkState::Idle);
        let before = engine.stats().published;
        run(&mut engine, 5050, 10_000, 50);
        assert_eq!(engine.stats().published, before);
        assert!(engine.stats().transport.dropped > 0);
    }
}

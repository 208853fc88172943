//! The fleet in the page: every virtual device, stepped by the caller's clock, talking to a
//! cloud through a [`Transport`] (in-page, or MQTT per device).
//!
//! No timer per device: one [`Engine::tick`] per animation frame starts the devices the
//! ramp-up has reached, steps every device whose reading is due, hands the readings to the
//! transport, and applies what came back: commands to their devices (with the round trip
//! measured from the reading's `seq`), alarm notices to the cloud panel's log. A tab that
//! was hidden does not replay the readings it missed: each device resumes one period later.

use std::collections::{HashMap, VecDeque};

use fleet_core::device::ParamsError;
use fleet_core::payload::{Action, Shape, Telemetry, encode_telemetry_into};
use fleet_core::policy::PolicyConfigError;
use fleet_core::{
    AlarmNotice, BuildingId, Device, DeviceId, DeviceParams, Fleet, ParseContext, Topic,
    parse_command,
};
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

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Device parameters out of range.
    #[error("device parameters: {0}")]
    Params(#[from] ParamsError),
    /// Remediation settings out of range.
    #[error("remediation settings: {0}")]
    Policy(#[from] PolicyConfigError),
    /// The transport could not be set up.
    #[error("{0}")]
    Transport(String),
}

/// One device with what its card shows.
#[derive(Debug, Clone)]
pub struct DeviceView {
    /// The simulated device.
    pub device: Device,
    /// Its recent curves and commands.
    pub series: Series,
    /// Commands it received.
    pub commands: u64,
    /// Whether its parameters differ from the fleet's.
    pub custom_params: bool,
    next_due_ms: u64,
    /// Send time of recent readings by `seq % SENT_RING`, for the round trip.
    sent: [(u64, u64); SENT_RING],
    /// Its telemetry topic, built once.
    topic: String,
    /// Its latest reading as sent, updated in place (the ids are cloned once, not per
    /// reading).
    reading: Telemetry,
}

/// Readings per device whose send time is kept to measure a command's round trip.
const SENT_RING: usize = 64;

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

/// The fleet and its link to the cloud.
pub struct Engine {
    devices: Vec<DeviceView>,
    index: HashMap<DeviceId, usize>,
    transport: Box<dyn Transport>,
    origin_ms: u64,
    ramp_per_s: u32,
    started: usize,
    stats: EngineStats,
    rate_window: (u64, u64),
    rtts: VecDeque<u32>,
    log: VecDeque<LogEntry>,
    log_capacity: usize,
    inbound: Vec<Inbound>,
    params: DeviceParams,
    last_tick_ms: u64,
    /// The payload being sent, reused reading after reading.
    payload: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("devices", &self.devices.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A fleet whose ramp-up starts at `now_ms`, talking through the transport that
    /// `transport` builds for its `(building, device)` list.
    pub fn new(
        config: EngineConfig,
        now_ms: u64,
        transport: impl FnOnce(&[(BuildingId, DeviceId)]) -> Result<Box<dyn Transport>, String>,
    ) -> Result<Engine, EngineError> {
        let mut fleet = Fleet::new(config.seed, config.devices, config.buildings, config.params)?
            .into_devices();
        if config.id_prefix != "d-" || config.building.is_some() {
            fleet = renamed(fleet, &config.id_prefix, config.building.as_ref())?;
        }
        let ids: Vec<(BuildingId, DeviceId)> = fleet
            .iter()
            .map(|d| (d.building().clone(), d.id().clone()))
            .collect();
        let transport = transport(&ids).map_err(EngineError::Transport)?;
        let period_ms = config.params.update_period_ms();
        let n = fleet.len().max(1) as u64;
        let devices: Vec<DeviceView> = fleet
            .into_iter()
            .enumerate()
            .map(|(i, device)| DeviceView {
                topic: format!(
                    "{}{}",
                    config.topic_prefix,
                    device.telemetry_topic(Shape::Current)
                ),
                reading: Telemetry::current(
                    device.id().clone(),
                    device.building().clone(),
                    0,
                    0,
                    0.0,
                    0.0,
                ),
                device,
                series: Series::new(config.series_capacity),
                commands: 0,
                custom_params: false,
                // Spread over a period, so a frame steps a share of the fleet, not all of it.
                next_due_ms: now_ms + period_ms * i as u64 / n,
                sent: [(u64::MAX, 0); SENT_RING],
            })
            .collect();
        let index = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.device.id().clone(), i))
            .collect();
        Ok(Engine {
            devices,
            index,
            transport,
            origin_ms: now_ms,
            ramp_per_s: config.ramp_per_s,
            started: 0,
            stats: EngineStats::default(),
            rate_window: (now_ms, 0),
            rtts: VecDeque::with_capacity(RTT_WINDOW),
            log: VecDeque::new(),
            log_capacity: config.log_capacity.max(1),
            inbound: Vec::new(),
            params: config.params,
            last_tick_ms: now_ms,
            payload: String::with_capacity(160),
        })
    }

    /// A fleet with the cloud in the page.
    pub fn in_page(
        config: EngineConfig,
        pipeline: PipelineConfig,
        now_ms: u64,
    ) -> Result<Engine, EngineError> {
        InPage::new(pipeline.clone(), config.devices)?;
        Engine::new(config, now_ms, move |ids| {
            InPage::new(pipeline, ids.len())
                .map(|t| Box::new(t) as Box<dyn Transport>)
                .map_err(|e| e.to_string())
        })
    }

    /// The devices, in id order.
    pub fn devices(&self) -> &[DeviceView] {
        &self.devices
    }

    /// A device's connection state.
    pub fn link(&self, device: usize) -> LinkState {
        self.transport.link(device)
    }

    /// The fleet-wide parameters.
    pub fn params(&self) -> &DeviceParams {
        &self.params
    }

    /// Counters since start.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            transport: self.transport.stats(),
            started: self.started,
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
    ) -> Result<(), ParamsError> {
        params.validate()?;
        match device {
            Some(i) => {
                if let Some(view) = self.devices.get_mut(i) {
                    view.device.set_params(params)?;
                    view.custom_params = params != self.params;
                }
            }
            None => {
                self.params = params;
                for view in &mut self.devices {
                    view.device.set_params(params)?;
                    view.custom_params = false;
                }
            }
        }
        Ok(())
    }

    /// Closes every connection now (Stop).
    pub fn close(&mut self, now_ms: u64) {
        self.transport.close(now_ms);
    }

    /// Only the I/O: connections, acknowledgements, commands (while paused).
    pub fn poll(&mut self, now_ms: u64) {
        self.transport.poll(now_ms, &mut self.inbound);
        self.route_inbound(now_ms);
    }

    /// The clock of the latest [`tick`](Engine::tick).
    pub fn now_ms(&self) -> u64 {
        self.last_tick_ms
    }

    /// Catches up with `target_ms` in ticks of `step_ms` (so a warm-up, or a frame at a high
    /// speed-up, steps devices as often as their period asks), while `budget` says there is
    /// time left in this frame. Returns the clock reached: `target_ms`, or less when the
    /// budget ran out, in which case the next call goes on from there.
    pub fn advance(
        &mut self,
        target_ms: u64,
        step_ms: u64,
        mut budget: impl FnMut() -> bool,
    ) -> u64 {
        let step = step_ms.max(1);
        while self.last_tick_ms.saturating_add(step) < target_ms {
            if !budget() {
                return self.last_tick_ms;
            }
            self.tick(self.last_tick_ms + step);
        }
        if target_ms > self.last_tick_ms {
            self.tick(target_ms);
        }
        self.last_tick_ms
    }

    /// Starts the devices the ramp-up has reached, steps every started device whose reading
    /// is due at `now_ms`, and handles what came back. Returns how many devices published.
    pub fn tick(&mut self, now_ms: u64) -> usize {
        self.last_tick_ms = self.last_tick_ms.max(now_ms);
        self.ramp(now_ms);
        let mut published = 0;
        for i in 0..self.started {
            let view = &mut self.devices[i];
            if view.next_due_ms > now_ms {
                continue;
            }
            let sample = view.device.step(now_ms);
            view.series.push(Point {
                seq: sample.seq,
                ts: sample.ts,
                temperature: sample.temperature,
                counterfactual: sample.counterfactual_temperature,
                humidity: sample.humidity,
            });
            view.sent[(sample.seq % SENT_RING as u64) as usize] = (sample.seq, now_ms);
            let period = view.device.params().update_period_ms();
            // Due again one period later; after a pause, a period from now rather than a burst
            // of the readings missed.
            let next = view.next_due_ms + period;
            view.next_due_ms = if next <= now_ms {
                now_ms + period
            } else {
                next
            };
            // No allocation per reading: the topic was built once, the reading is updated in
            // place and encoded into the engine's buffer.
            let reading = &mut view.reading;
            reading.seq = Some(sample.seq);
            reading.ts = Some(sample.ts);
            reading.temperature = sample.temperature;
            reading.humidity = sample.humidity;
            encode_telemetry_into(reading, &mut self.payload);
            if self
                .transport
                .publish(now_ms, i, &view.topic, self.payload.as_bytes())
                == Sent::Queued
            {
                published += 1;
            }
        }
        self.stats.published += published as u64;
        self.poll(now_ms);
        self.measure_rate(now_ms);
        published
    }

    fn ramp(&mut self, now_ms: u64) {
        let n = self.devices.len();
        while self.started < n {
            let due = match self.ramp_per_s {
                0 => self.origin_ms,
                rate => self.origin_ms + self.started as u64 * 1000 / u64::from(rate),
            };
            if due > now_ms {
                break;
            }
            let i = self.started;
            self.transport.open(now_ms, i);
            let view = &mut self.devices[i];
            view.next_due_ms = view.next_due_ms.max(now_ms);
            self.started += 1;
        }
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
                Ok(Topic::Command { device, .. }) => {
                    self.deliver(&device, &message.payload, now_ms)
                }
                Ok(Topic::Alarms) => match AlarmNotice::from_json(&message.payload) {
                    Ok(notice) => {
                        self.stats.alarm_changes += 1;
                        self.push_log(LogEntry::Alarm(notice));
                    }
                    Err(_) => self.stats.unreadable += 1,
                },
                // Legacy commands have no taker here: the page's devices speak the current
                // protocol.
                _ => self.stats.unreadable += 1,
            }
        }
        self.inbound = inbound;
    }

    /// What a subscribed device does with a message on its command topic.
    fn deliver(&mut self, device: &DeviceId, payload: &[u8], now_ms: u64) {
        let ctx = ParseContext::new(now_ms);
        let (Some(&i), Ok(command)) = (self.index.get(device), parse_command(payload, &ctx)) else {
            self.stats.unreadable += 1;
            return;
        };
        let view = &mut self.devices[i];
        view.device.apply(&command, now_ms);
        view.series.mark(Marker {
            at_ms: now_ms,
            seq: view.device.next_seq(),
            action: command.action,
        });
        view.commands += 1;
        let rtt_ms = command.reading_seq.and_then(|seq| {
            let (sent_seq, sent_at) = view.sent[(seq % SENT_RING as u64) as usize];
            (sent_seq == seq).then(|| now_ms.saturating_sub(sent_at))
        });
        let entry = LogEntry::Command {
            at_ms: now_ms,
            device: device.to_string(),
            action: command.action,
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

/// The same devices (phases, noise) with ids `{prefix}0001`, `{prefix}0002`, …, in their
/// own buildings or all in `building`.
fn renamed(
    fleet: Vec<Device>,
    prefix: &str,
    building: Option<&BuildingId>,
) -> Result<Vec<Device>, EngineError> {
    fleet
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let id = DeviceId::try_from(format!("{prefix}{:04}", i + 1).as_str())
                .map_err(|e| EngineError::Transport(e.to_string()))?;
            Ok(Device::new(
                id,
                building.unwrap_or(d.building()).clone(),
                *d.params(),
                *d.variation(),
            )?)
        })
        .collect()
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
        let plain = in_page(EngineConfig::default(), T0);
        let named = in_page(
            EngineConfig {
                id_prefix: "w1a2b-".to_owned(),
                ..EngineConfig::default()
            },
            T0,
        );
        let ids: Vec<String> = named
            .devices()
            .iter()
            .map(|d| d.device.id().to_string())
            .collect();
        assert_eq!(ids[0], "w1a2b-0001");
        assert_eq!(ids[11], "w1a2b-0012");
        for (a, b) in plain.devices().iter().zip(named.devices()) {
            assert_eq!(a.device.variation(), b.device.variation());
            assert_eq!(a.device.building(), b.device.building());
        }
        let bad = Engine::in_page(
            EngineConfig {
                id_prefix: "no spaces ".to_owned(),
                ..EngineConfig::default()
            },
            PipelineConfig::default(),
            T0,
        );
        assert!(matches!(bad, Err(EngineError::Transport(_))));
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
        assert!(
            engine
                .devices()
                .iter()
                .all(|d| d.device.building() == &building)
        );
        assert_eq!(
            engine.devices()[0].topic,
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
        // A budget of 100 steps of 50 ms: 5 s of the 60 s asked for.
        let mut left = 100;
        let reached = engine.advance(T0 + 60_000, 50, || {
            left -= 1;
            left >= 0
        });
        assert_eq!(reached, T0 + 5_000);
        assert_eq!(engine.now_ms(), reached);
        let early = engine.stats().published;
        // 12 devices, every 2 s, for 5 s: two or three readings each.
        assert!((24..=36).contains(&early), "{early}");
        // The rest, with no limit: every device stepped as its period asks, no burst.
        assert_eq!(engine.advance(T0 + 60_000, 50, || true), T0 + 60_000);
        let all = engine.stats().published;
        assert!((12 * 30..=12 * 31).contains(&all), "{all}");
        // Asking for the past does nothing.
        assert_eq!(engine.advance(T0, 50, || true), T0 + 60_000);
        assert_eq!(engine.stats().published, all);
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

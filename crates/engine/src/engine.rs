//! The engine: the fleet's state, stepped by the caller's clock.

use std::ops::Range;

use fleet_core::payload::{ReadingRef, append_reading, parse_legacy_command};
use fleet_core::{
    Action, BuildingId, DeviceModel, DeviceParams, ParseContext, Rejection, Sample, Shape, Topic,
    parse_command,
};
use fleet_mqtt::QoS;

use crate::config::{DeviceSpec, EngineConfig, EngineError};
use crate::roster::Roster;
use crate::schedule::Schedule;

/// One reading taken by a [`tick`](Engine::tick), with what the device would have read
/// without remediation.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The device's index.
    pub device: usize,
    /// The reading (`ts` in ms).
    pub sample: Sample,
}

/// A message for the caller to publish: one reading, or a batch of one device's readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The device's index: whose connection publishes it (or whose gateway).
    pub device: usize,
    /// The telemetry topic, with the configured prefix.
    pub topic: &'a str,
    /// The JSON payload (§4.3).
    pub payload: &'a [u8],
    /// Its QoS.
    pub qos: QoS,
    /// The readings it carries, by `seq` (consecutive; the legacy shape sends no `seq`, but
    /// its readings are counted the same way).
    pub seqs: Range<u64>,
}

/// Through which subscription a message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Device `i`'s own connection: only device `i` may act on it (every legacy device of a
    /// building subscribes to the same legacy topic, so each hears every command there).
    Device(usize),
    /// A connection (or an in-process bus) shared by the fleet: the topic and payload say
    /// which device it is for.
    Any,
}

/// A command a device carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The device's index.
    pub device: usize,
    /// What it does now (a legacy command becomes `Cool` or `Heat`, as the original device
    /// decided).
    pub action: Action,
    /// Whether it came in the legacy shape.
    pub legacy: bool,
    /// The reading the command answers, when it says.
    pub reading_seq: Option<u64>,
    /// From publishing that reading to now, µs, while the reading is among the
    /// [`round_trip_window`](EngineConfig::round_trip_window) latest.
    pub round_trip_us: Option<u64>,
}

/// What became of a message that arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A device carried out the command.
    Applied(Applied),
    /// A command, for no device of this engine (or not for the one whose subscription it
    /// came through): ignored, as the device it is for would take it.
    NotOurs,
    /// On a command topic, but not a command a device can read: ignored, with the reason.
    Unreadable(Rejection),
    /// Not a command topic (alarms, anything else): the caller's to handle.
    NotACommand,
}

/// What a [`tick`](Engine::tick) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Devices the ramp-up started in this tick: the caller opens their connections.
    pub started: Range<usize>,
    /// Readings taken ([`Engine::readings`]).
    pub readings: usize,
    /// Messages to publish ([`Engine::messages`]).
    pub messages: usize,
}

/// Counts since the engine was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Readings taken.
    pub readings: u64,
    /// Messages handed out to publish.
    pub messages: u64,
    /// Commands carried out.
    pub applied: u64,
    /// Commands for other devices.
    pub not_ours: u64,
    /// Messages on command topics that could not be read.
    pub unreadable: u64,
}

/// A reading waiting in a device's batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Buffered {
    ts_ms: u64,
    temperature: f64,
    humidity: f64,
}

/// Where a message of the latest tick lies in the output buffer.
#[derive(Debug, Clone)]
struct Slot {
    device: u32,
    topic: Range<usize>,
    payload: Range<usize>,
    seqs: Range<u64>,
}

/// Every device of a fleet, sans IO: [`tick`](Engine::tick) with the time steps the devices
/// that are due and hands out their messages; [`receive`](Engine::receive) applies a
/// command that arrived. See the crate documentation for who drives it and how.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    roster: Roster,
    /// Device `i`'s curve and remediation.
    models: Vec<DeviceModel>,
    schedule: Schedule,
    /// Send times, µs (0: not sent), of device `i`'s readings by `seq % ring`, at
    /// `i * ring..(i + 1) * ring`.
    sent_us: Vec<u64>,
    ring: usize,
    /// With batches: device `i`'s buffered readings at `i * batch..`, `pending_len[i]` of
    /// them.
    pending: Vec<Buffered>,
    pending_len: Vec<u8>,
    /// The latest tick's readings.
    readings: Vec<Reading>,
    /// The latest tick's topics and payloads, one after the other.
    out: String,
    slots: Vec<Slot>,
    stats: EngineStats,
    now_us: u64,
}

impl Engine {
    /// A fleet of `devices` whose clock starts at `now_us` (µs since the Unix epoch): the
    /// ramp-up and the spread count from there.
    pub fn new(
        config: EngineConfig,
        devices: &[DeviceSpec],
        now_us: u64,
    ) -> Result<Engine, EngineError> {
        config.validate()?;
        let roster = Roster::new(devices)?;
        let mut models = Vec::with_capacity(devices.len());
        for spec in devices {
            models.push(DeviceModel::new(config.params, spec.variation)?);
        }
        let n = roster.len();
        if config.batch > 1
            && let Some(i) = (0..n).find(|&i| roster.shape(i) == Shape::Legacy)
        {
            return Err(EngineError::LegacyBatch(roster.id(i).to_owned()));
        }
        let ring = config.round_trip_window.max(1).next_power_of_two();
        let batched = if config.batch > 1 { n } else { 0 };
        Ok(Engine {
            schedule: Schedule::new(now_us, n, config.ramp_per_s, config.start, config.catch_up),
            sent_us: vec![0; n * ring],
            ring,
            pending: vec![Buffered::default(); batched * config.batch],
            pending_len: vec![0; batched],
            readings: Vec::new(),
            out: String::new(),
            slots: Vec::new(),
            stats: EngineStats::default(),
            now_us,
            models,
            roster,
            config,
        })
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.roster.len()
    }

    /// Whether the fleet has no device.
    pub fn is_empty(&self) -> bool {
        self.roster.len() == 0
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Device `i`'s id.
    pub fn id(&self, i: usize) -> &str {
        self.roster.id(i)
    }

    /// Device `i`'s building.
    pub fn building(&self, i: usize) -> &BuildingId {
        self.roster.building(i)
    }

    /// The wire shape device `i` speaks.
    pub fn shape(&self, i: usize) -> Shape {
        self.roster.shape(i)
    }

    /// Device `i`'s curve, parameters and remediation.
    pub fn model(&self, i: usize) -> &DeviceModel {
        &self.models[i]
    }

    /// The device with this id.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.roster.find(id)
    }

    /// Device `i`'s telemetry topic (with the configured prefix).
    pub fn telemetry_topic(&self, i: usize) -> String {
        let mut topic = String::new();
        self.roster
            .write_telemetry_topic(i, &self.config.topic_prefix, &mut topic);
        topic
    }

    /// Device `i`'s command topic: what its connection subscribes to.
    pub fn command_topic(&self, i: usize) -> String {
        self.roster.command_topic(i)
    }

    /// Devices the ramp-up has started: `0..started()`.
    pub fn started(&self) -> usize {
        self.schedule.started()
    }

    /// Counts since the engine was built.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The clock of the latest [`tick`](Engine::tick), µs.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// When the next device is due or the ramp-up starts the next one, µs: tick then. `None`
    /// for a fleet with nothing left to do.
    pub fn next_deadline(&self) -> Option<u64> {
        self.schedule.next_deadline()
    }

    /// Sets the parameters of device `i`, or (`None`) of every device, overriding every
    /// per-device setting. The step counter and the next deadline are kept; the next period
    /// is the new one's.
    pub fn set_params(
        &mut self,
        device: Option<usize>,
        params: DeviceParams,
    ) -> Result<(), EngineError> {
        params.validate()?;
        match device {
            Some(i) => {
                if let Some(model) = self.models.get_mut(i) {
                    model.set_params(params)?;
                }
            }
            None => {
                self.config.params = params;
                for model in &mut self.models {
                    model.set_params(params)?;
                }
            }
        }
        Ok(())
    }

    /// Advances the clock to `now_us` (µs since the Unix epoch; time never goes back, an
    /// earlier `now_us` counts as the latest): starts the devices the ramp-up has reached,
    /// and steps every started device whose reading is due, encoding what is to be sent.
    /// The readings and messages stay readable ([`readings`](Engine::readings),
    /// [`messages`](Engine::messages)) until the next tick or flush.
    pub fn tick(&mut self, now_us: u64) -> Tick {
        let now_us = now_us.max(self.now_us);
        self.now_us = now_us;
        self.readings.clear();
        self.out.clear();
        self.slots.clear();
        let started = self.schedule.ramp(now_us, period_us(&self.config.params));
        let now_ms = now_us / 1000;
        while let Some((due, i)) = self.schedule.pop_due(now_us) {
            let model = &mut self.models[i];
            let sample = model.step(now_ms);
            let period = period_us(model.params());
            self.sent_us[i * self.ring + (sample.seq as usize & (self.ring - 1))] = 0;
            if self.config.batch == 1 {
                let reading = Buffered {
                    ts_ms: sample.ts,
                    temperature: sample.temperature,
                    humidity: sample.humidity,
                };
                self.push_message(i, sample.seq, &[reading]);
            } else {
                let at = i * self.config.batch;
                let len = usize::from(self.pending_len[i]);
                self.pending[at + len] = Buffered {
                    ts_ms: sample.ts,
                    temperature: sample.temperature,
                    humidity: sample.humidity,
                };
                self.pending_len[i] += 1;
                if len + 1 == self.config.batch {
                    self.flush_device(i, sample.seq + 1);
                }
            }
            self.readings.push(Reading { device: i, sample });
            self.schedule.reschedule(i, due, now_us, period);
        }
        self.stats.readings += self.readings.len() as u64;
        self.stats.messages += self.slots.len() as u64;
        Tick {
            started,
            readings: self.readings.len(),
            messages: self.slots.len(),
        }
    }

    /// Publishes what devices hold in their batches (a stop sends what is buffered, so
    /// stopping loses nothing): their messages replace the latest tick's.
    pub fn flush(&mut self, now_us: u64) -> usize {
        self.now_us = now_us.max(self.now_us);
        self.readings.clear();
        self.out.clear();
        self.slots.clear();
        for i in 0..self.pending_len.len() {
            if self.pending_len[i] > 0 {
                let next = self.models[i].next_seq();
                self.flush_device(i, next);
            }
        }
        self.stats.messages += self.slots.len() as u64;
        self.slots.len()
    }

    /// The readings of the latest tick, in the order taken.
    pub fn readings(&self) -> &[Reading] {
        &self.readings
    }

    /// The messages of the latest tick (or flush), in the order to publish them.
    pub fn messages(&self) -> impl ExactSizeIterator<Item = Message<'_>> + '_ {
        self.slots.iter().map(|slot| Message {
            device: slot.device as usize,
            topic: &self.out[slot.topic.clone()],
            payload: self.out[slot.payload.clone()].as_bytes(),
            qos: self.config.qos,
            seqs: slot.seqs.clone(),
        })
    }

    /// Handles a message that arrived at `now_us` on `topic` through `via`: a command is
    /// parsed (current or legacy, by its topic) and carried out by its device.
    pub fn receive(&mut self, now_us: u64, via: Via, topic: &str, payload: &[u8]) -> Received {
        match Topic::parse(topic) {
            Ok(Topic::Command { device, .. }) => {
                self.receive_command(now_us, via, device.as_str(), payload)
            }
            Ok(Topic::LegacyRemediation { building }) => {
                self.receive_legacy(now_us, via, &building, payload)
            }
            _ => Received::NotACommand,
        }
    }

    /// A command in the current shape that arrived on `device`'s command topic
    /// (`cmd/monitoring/{building}/{device}/remediation`): for a caller that has parsed the
    /// topic itself, and whose devices speak only the current shape (the page, which so
    /// carries no legacy code).
    pub fn receive_command(
        &mut self,
        now_us: u64,
        via: Via,
        device: &str,
        payload: &[u8],
    ) -> Received {
        let received = self.command(now_us, via, device, payload);
        self.count(received)
    }

    /// A command in the original stack's shape that arrived on `building`'s legacy topic
    /// (`monitoring-device/remediation-{building}`): every legacy device of the building
    /// hears it, only the one its body names acts.
    pub fn receive_legacy(
        &mut self,
        now_us: u64,
        via: Via,
        building: &BuildingId,
        payload: &[u8],
    ) -> Received {
        let received = self.legacy_command(now_us, via, building, payload);
        self.count(received)
    }

    fn count(&mut self, received: Received) -> Received {
        match &received {
            Received::Applied(_) => self.stats.applied += 1,
            Received::NotOurs => self.stats.not_ours += 1,
            Received::Unreadable(_) => self.stats.unreadable += 1,
            Received::NotACommand => {}
        }
        received
    }

    fn command(&mut self, now_us: u64, via: Via, device: &str, payload: &[u8]) -> Received {
        let now_ms = now_us / 1000;
        let target = match via {
            Via::Device(i) if i < self.roster.len() => i,
            Via::Device(_) => return Received::NotOurs,
            Via::Any => match self.roster.find(device) {
                Some(i) => i,
                None => return Received::NotOurs,
            },
        };
        let command = match parse_command(payload, &ParseContext::new(now_ms)) {
            Ok(command) => command,
            Err(rejection) => return Received::Unreadable(rejection),
        };
        if command.device.as_str() != self.roster.id(target) {
            return Received::NotOurs;
        }
        self.models[target].apply(command.action, command.hold_s, now_ms);
        let round_trip_us = command.reading_seq.and_then(|seq| {
            self.sent_at(target, seq)
                .map(|sent| now_us.saturating_sub(sent))
        });
        Received::Applied(Applied {
            device: target,
            action: command.action,
            legacy: false,
            reading_seq: command.reading_seq,
            round_trip_us,
        })
    }

    fn legacy_command(
        &mut self,
        now_us: u64,
        via: Via,
        building: &BuildingId,
        payload: &[u8],
    ) -> Received {
        let now_ms = now_us / 1000;
        let command = match parse_legacy_command(payload, &ParseContext::new(now_ms)) {
            Ok(command) => command,
            Err(rejection) => return Received::Unreadable(rejection),
        };
        let named = self.roster.find(command.device.as_str());
        let target = match (via, named) {
            (Via::Device(i), Some(named)) if i == named => named,
            (Via::Any, Some(named)) => named,
            _ => return Received::NotOurs,
        };
        if self.roster.building(target) != building {
            return Received::NotOurs;
        }
        let action = self.models[target].apply_legacy(command.temperature, now_ms);
        Received::Applied(Applied {
            device: target,
            action,
            legacy: true,
            reading_seq: None,
            round_trip_us: None,
        })
    }

    /// When device `i`'s reading `seq` was handed out to publish (µs), if it is among the
    /// [`round_trip_window`](EngineConfig::round_trip_window) latest: for the caller's own
    /// latencies (publish → acknowledgement).
    pub fn sent_at(&self, i: usize, seq: u64) -> Option<u64> {
        let next = self.models[i].next_seq();
        let recent = seq < next && next - seq <= self.ring as u64;
        let sent = self.sent_us[i * self.ring + (seq as usize & (self.ring - 1))];
        (recent && sent != 0).then_some(sent)
    }

    /// Sends device `i`'s buffered readings, the latest of which is `next_seq - 1`.
    fn flush_device(&mut self, i: usize, next_seq: u64) {
        let at = i * self.config.batch;
        let len = usize::from(self.pending_len[i]);
        self.pending_len[i] = 0;
        // Moved out and back so `push_message` may borrow the engine.
        let batch = std::mem::take(&mut self.pending);
        self.push_message(i, next_seq - len as u64, &batch[at..at + len]);
        self.pending = batch;
    }

    /// Encodes device `i`'s readings `first_seq..` as one message: a lone reading as an
    /// object when the engine sends readings one by one, else as an array (§4.3).
    fn push_message(&mut self, i: usize, first_seq: u64, readings: &[Buffered]) {
        let topic_start = self.out.len();
        self.roster
            .write_telemetry_topic(i, &self.config.topic_prefix, &mut self.out);
        let payload_start = self.out.len();
        let array = self.config.batch > 1;
        if array {
            self.out.push('[');
        }
        for (k, r) in readings.iter().enumerate() {
            if k > 0 {
                self.out.push(',');
            }
            let reading = ReadingRef {
                device: self.roster.id(i),
                building: self.roster.building(i).as_str(),
                seq: first_seq + k as u64,
                ts: r.ts_ms,
                temperature: r.temperature,
                humidity: r.humidity,
                shape: self.roster.shape(i),
            };
            append_reading(&reading, &mut self.out);
        }
        if array {
            self.out.push(']');
        }
        let seqs = first_seq..first_seq + readings.len() as u64;
        for seq in seqs.clone() {
            self.sent_us[i * self.ring + (seq as usize & (self.ring - 1))] = self.now_us.max(1);
        }
        self.slots.push(Slot {
            device: i as u32,
            topic: topic_start..payload_start,
            payload: payload_start..self.out.len(),
            seqs,
        });
    }
}

/// A device's period in µs (at least 1).
fn period_us(params: &DeviceParams) -> u64 {
    // Float-to-int `as` saturates, and validation keeps the value finite and positive.
    ((params.update_frequency_s * 1e6).round() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use fleet_core::{DeviceId, Fleet, FleetVariation};

    use super::*;
    use crate::config::{CatchUp, Start};

    /// 2025-11-27T08:00:00Z, µs.
    const T0: u64 = 1_764_230_400_000_000;
    const S: u64 = 1_000_000;

    fn fleet(n: usize) -> Vec<DeviceSpec> {
        Fleet::variations(1, 0.05)
            .take(n)
            .enumerate()
            .map(|(i, variation)| DeviceSpec {
                id: Fleet::device_id(i),
                building: Fleet::building(i, 3),
                variation,
                shape: Shape::Current,
            })
            .collect()
    }

    fn engine(n: usize, config: EngineConfig) -> Engine {
        Engine::new(config, &fleet(n), T0).unwrap()
    }

    #[test]
    fn together_every_device_reads_once_per_period_in_id_order() {
        let mut e = engine(4, EngineConfig::default());
        assert_eq!(e.next_deadline(), Some(T0));
        let tick = e.tick(T0);
        assert_eq!((tick.started, tick.readings, tick.messages), (0..4, 4, 4));
        let devices: Vec<usize> = e.messages().map(|m| m.device).collect();
        assert_eq!(devices, [0, 1, 2, 3]);
        let first = e.messages().next().unwrap();
        assert_eq!(first.topic, "dt/monitoring/1/d-0001/telemetry");
        assert_eq!(first.qos, QoS::AtLeastOnce);
        assert_eq!(first.seqs, 0..1);
        let text = std::str::from_utf8(first.payload).unwrap();
        assert!(
            text.starts_with(r#"{"device":"d-0001","building":"1","seq":0,"ts":1764230400000,"#),
            "{text}"
        );
        assert_eq!(e.next_deadline(), Some(T0 + 2 * S));
        assert_eq!(e.tick(T0 + 2 * S - 1).readings, 0);
        assert_eq!(
            e.messages().len(),
            0,
            "the previous tick's messages are gone"
        );
        assert_eq!(e.tick(T0 + 2 * S).readings, 4);
        assert_eq!(e.stats().readings, 8);
        assert_eq!(e.stats().messages, 8);
    }

    #[test]
    fn a_tick_encodes_into_one_reused_buffer() {
        let mut e = engine(50, EngineConfig::default());
        e.tick(T0);
        let start = |e: &Engine| e.messages().next().map(|m| m.topic.as_ptr());
        let first = start(&e);
        for k in 1..20 {
            e.tick(T0 + k * 2 * S);
            assert_eq!(e.messages().len(), 50);
            // Every topic and payload is a slice of one buffer, which never had to move.
            assert_eq!(start(&e), first);
            let end = e.messages().last().map(|m| m.payload.as_ptr_range().end);
            let span = end.unwrap() as usize - first.unwrap() as usize;
            let bytes: usize = e.messages().map(|m| m.topic.len() + m.payload.len()).sum();
            assert_eq!(span, bytes);
        }
    }

    #[test]
    fn burst_replays_missed_readings_and_skip_does_not() {
        for (catch_up, readings) in [(CatchUp::Burst, 11), (CatchUp::Skip, 1)] {
            let config = EngineConfig {
                catch_up,
                ..EngineConfig::default()
            };
            let mut e = engine(1, config);
            e.tick(T0);
            // 20 s late: ten periods.
            let tick = e.tick(T0 + 22 * S);
            assert_eq!(tick.readings, readings, "{catch_up:?}");
            let seqs: Vec<u64> = e.readings().iter().map(|r| r.sample.seq).collect();
            assert_eq!(seqs, (1..=readings as u64).collect::<Vec<_>>());
            assert_eq!(e.next_deadline(), Some(T0 + 24 * S));
        }
    }

    #[test]
    fn the_ramp_up_reports_whom_it_started() {
        let config = EngineConfig {
            ramp_per_s: 2.0,
            ..EngineConfig::default()
        };
        let mut e = engine(5, config);
        assert_eq!(e.tick(T0).started, 0..1);
        assert_eq!(e.next_deadline(), Some(T0 + S / 2));
        let tick = e.tick(T0 + S + 1);
        assert_eq!(tick.started, 1..3);
        assert_eq!(tick.readings, 2, "started devices read at once");
        assert_eq!(e.started(), 3);
        assert_eq!(e.tick(T0 + 10 * S).started, 3..5);
        assert_eq!(e.next_deadline(), Some(T0 + 12 * S));
    }

    #[test]
    fn spread_devices_read_a_share_of_a_period_apart() {
        let config = EngineConfig {
            start: Start::Spread,
            ..EngineConfig::default()
        };
        let mut e = engine(4, config);
        assert_eq!(e.tick(T0).readings, 1);
        assert_eq!(e.tick(T0 + S / 2).readings, 1);
        assert_eq!(e.tick(T0 + 2 * S - 1).readings, 2);
        assert_eq!(e.tick(T0 + 2 * S).readings, 1);
    }

    #[test]
    fn batches_carry_consecutive_readings_and_a_flush_sends_the_rest() {
        let config = EngineConfig {
            batch: 3,
            ..EngineConfig::default()
        };
        let mut e = engine(2, config);
        let mut messages = Vec::new();
        for k in 0..7 {
            e.tick(T0 + k * 2 * S);
            messages.extend(e.messages().map(|m| (m.device, m.seqs, m.payload.to_vec())));
        }
        let seqs: Vec<(usize, Range<u64>)> =
            messages.iter().map(|(d, s, _)| (*d, s.clone())).collect();
        assert_eq!(seqs, [(0, 0..3), (1, 0..3), (0, 3..6), (1, 3..6)]);
        // Three objects in one array.
        let batch = &messages[2].2;
        assert!(batch.starts_with(b"[{") && batch.ends_with(b"}]"));
        assert_eq!(batch.windows(3).filter(|w| w == b"},{").count(), 2);
        assert_eq!(e.flush(T0 + 14 * S), 2);
        let rest: Vec<(usize, Range<u64>)> = e.messages().map(|m| (m.device, m.seqs)).collect();
        assert_eq!(rest, [(0, 6..7), (1, 6..7)]);
        let one = e.messages().next().unwrap();
        assert!(one.payload.starts_with(b"[{") && one.payload.ends_with(b"}]"));
        assert_eq!(e.flush(T0 + 15 * S), 0, "nothing left");
    }

    #[test]
    fn legacy_devices_cannot_batch_and_bad_settings_are_refused() {
        let mut specs = fleet(2);
        specs[1].shape = Shape::Legacy;
        let batched = EngineConfig {
            batch: 2,
            ..EngineConfig::default()
        };
        assert_eq!(
            Engine::new(batched, &specs, T0).unwrap_err(),
            EngineError::LegacyBatch("d-0002".into())
        );
        for config in [
            EngineConfig {
                batch: 0,
                ..EngineConfig::default()
            },
            EngineConfig {
                batch: 101,
                ..EngineConfig::default()
            },
            EngineConfig {
                ramp_per_s: f64::NAN,
                ..EngineConfig::default()
            },
            EngineConfig {
                params: DeviceParams {
                    update_frequency_s: 0.0,
                    ..DeviceParams::default()
                },
                ..EngineConfig::default()
            },
        ] {
            assert!(Engine::new(config, &specs, T0).is_err());
        }
        let mut bad = fleet(1);
        bad[0].variation = FleetVariation {
            noise_amplitude: -1.0,
            ..FleetVariation::NONE
        };
        assert!(Engine::new(EngineConfig::default(), &bad, T0).is_err());
        // A legacy device alone sends the original's payload on the original's topic.
        let mut e = Engine::new(EngineConfig::default(), &specs, T0).unwrap();
        e.tick(T0);
        let legacy = e.messages().nth(1).unwrap();
        assert_eq!(legacy.topic, "monitoring-device/building-2");
        assert!(
            legacy
                .payload
                .starts_with(br#"{"body":{"device":"d-0002","temperature":"#)
        );
        assert_eq!(e.command_topic(1), "monitoring-device/remediation-2");
    }

    #[test]
    fn parameters_change_per_device_or_fleet_wide() {
        let mut e = engine(2, EngineConfig::default());
        let fast = DeviceParams {
            update_frequency_s: 1.0,
            ..DeviceParams::default()
        };
        e.set_params(Some(1), fast).unwrap();
        let mut counts = [0; 2];
        for k in 0..=20 {
            e.tick(T0 + k * S / 2);
            for r in e.readings() {
                counts[r.device] += 1;
            }
        }
        // 10 s: every 2 s (6 readings) and, after its first, every second (11).
        assert_eq!(counts, [6, 11]);
        let bad = DeviceParams {
            velocity: f64::INFINITY,
            ..DeviceParams::default()
        };
        assert!(e.set_params(None, bad).is_err());
        e.set_params(None, fast).unwrap();
        assert_eq!(e.config().params, fast);
        assert_eq!(e.model(0).params(), &fast);
    }

    #[test]
    fn time_never_goes_back_and_ids_are_the_callers() {
        let specs = ["NS-0001", "NS-0002"].map(|id| DeviceSpec {
            id: DeviceId::try_from(id).unwrap(),
            building: BuildingId::try_from("browser").unwrap(),
            variation: FleetVariation::NONE,
            shape: Shape::Current,
        });
        let mut e = Engine::new(EngineConfig::default(), &specs, T0).unwrap();
        e.tick(T0 + S);
        e.tick(T0);
        assert_eq!(e.now_us(), T0 + S);
        assert_eq!(e.id(1), "NS-0002");
        assert_eq!(e.find("NS-0001"), Some(0));
        assert_eq!(e.building(0).as_str(), "browser");
        assert_eq!(
            e.telemetry_topic(1),
            "dt/monitoring/browser/NS-0002/telemetry"
        );
        assert_eq!(
            e.command_topic(0),
            "cmd/monitoring/browser/NS-0001/remediation"
        );
        assert_eq!((e.len(), e.is_empty()), (2, false));
        let none = Engine::new(EngineConfig::default(), &[], T0).unwrap();
        assert!(none.is_empty());
        assert_eq!(none.next_deadline(), None);
    }
}

//! The in-page mode's engine: a fleet on an in-page bus, with the same worker, remediation
//! and alarm logic as the local stack and the Lambdas (`fleet-pipeline` on a
//! [`MemoryStore`]), driven by the caller's clock.
//!
//! No timer per device: one [`Engine::tick`] per animation frame steps every device whose
//! reading is due, runs the whole batch through the pipeline, and hands the commands back
//! to their devices through their payloads, as a broker would. A tab that was hidden does
//! not replay the readings it missed: each device resumes one period later.

use std::collections::{HashMap, VecDeque};

use fleet_core::device::ParamsError;
use fleet_core::payload::{Shape, parse_legacy_command};
use fleet_core::policy::PolicyConfigError;
use fleet_core::{
    AlarmNotice, Decision, Device, DeviceId, DeviceParams, Fleet, Incoming, ParseContext, Topic,
    encode_telemetry, parse_command,
};
use fleet_pipeline::{MemoryStore, Pipeline, PipelineConfig};

use crate::series::{Marker, Point, Series};

/// Settings of an in-page fleet.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Number of devices.
    pub devices: usize,
    /// Buildings they are spread over.
    pub buildings: usize,
    /// Seed of phases and noise.
    pub seed: u64,
    /// The original device parameters, fleet-wide.
    pub params: DeviceParams,
    /// Worker, remediation and alarm settings.
    pub pipeline: PipelineConfig,
    /// Points kept per device for its chart.
    pub series_capacity: usize,
    /// Alarm notices and remediation decisions kept for the cloud panel.
    pub log_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            devices: 12,
            buildings: 3,
            seed: 1,
            params: DeviceParams::default(),
            pipeline: PipelineConfig::default(),
            series_capacity: 300,
            log_capacity: 200,
        }
    }
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
    next_due_ms: u64,
}

/// Counters for the cloud panel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Readings published.
    pub published: u64,
    /// Readings stored.
    pub stored: u64,
    /// Messages rejected.
    pub rejected: u64,
    /// Commands delivered to devices.
    pub commands: u64,
    /// Alarm state changes.
    pub alarm_changes: u64,
    /// Batches the store refused (never with the in-memory store; counted, not hidden).
    pub store_failures: u64,
}

/// The in-page fleet and its cloud.
#[derive(Debug)]
pub struct Engine {
    devices: Vec<DeviceView>,
    index: HashMap<DeviceId, usize>,
    pipeline: Pipeline,
    store: MemoryStore,
    period_ms: u64,
    next_message: u64,
    stats: EngineStats,
    alarms: VecDeque<AlarmNotice>,
    remediations: VecDeque<Decision>,
    log_capacity: usize,
}

impl Engine {
    /// A fleet whose first readings are due at `now_ms`, spread over one period.
    pub fn new(config: EngineConfig, now_ms: u64) -> Result<Engine, EngineError> {
        let fleet = Fleet::new(config.seed, config.devices, config.buildings, config.params)?;
        let pipeline = Pipeline::new(config.pipeline)?;
        let period_ms = config.params.update_period_ms();
        let n = fleet.len().max(1) as u64;
        let devices: Vec<DeviceView> = fleet
            .into_devices()
            .into_iter()
            .enumerate()
            .map(|(i, device)| DeviceView {
                device,
                series: Series::new(config.series_capacity),
                commands: 0,
                // Spread over a period, so a frame steps a share of the fleet, not all of it.
                next_due_ms: now_ms + period_ms * i as u64 / n,
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
            pipeline,
            store: MemoryStore::new(),
            period_ms,
            next_message: 0,
            stats: EngineStats::default(),
            alarms: VecDeque::new(),
            remediations: VecDeque::new(),
            log_capacity: config.log_capacity.max(1),
        })
    }

    /// The devices, in id order.
    pub fn devices(&self) -> &[DeviceView] {
        &self.devices
    }

    /// Counters since start.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Recent alarm changes, oldest first.
    pub fn alarms(&self) -> impl DoubleEndedIterator<Item = &AlarmNotice> + ExactSizeIterator {
        self.alarms.iter()
    }

    /// Recent decisions that sent a command, oldest first.
    pub fn remediations(&self) -> impl DoubleEndedIterator<Item = &Decision> + ExactSizeIterator {
        self.remediations.iter()
    }

    /// Steps every device whose reading is due at `now_ms`, runs their readings through the
    /// worker, remediation and alarms, and delivers the commands. Returns how many devices
    /// published.
    pub fn tick(&mut self, now_ms: u64) -> usize {
        let mut messages: Vec<(String, String, String)> = Vec::new();
        for view in &mut self.devices {
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
            let payload = encode_telemetry(&view.device.telemetry(&sample, Shape::Current));
            self.next_message += 1;
            messages.push((
                view.device.telemetry_topic(Shape::Current).to_string(),
                payload,
                format!("page-{}", self.next_message),
            ));
            // Due again one period later; after a pause, a period from now rather than a burst
            // of the readings missed.
            let next = view.next_due_ms + self.period_ms;
            view.next_due_ms = if next <= now_ms {
                now_ms + self.period_ms
            } else {
                next
            };
        }
        if messages.is_empty() {
            return 0;
        }
        self.stats.published += messages.len() as u64;
        let batch: Vec<Incoming<'_>> = messages
            .iter()
            .map(|(topic, payload, id)| Incoming {
                topic,
                payload: payload.as_bytes(),
                received_ms: now_ms,
                source_id: id,
            })
            .collect();
        let outcome = match self.pipeline.ingest(&mut self.store, &batch, now_ms) {
            Ok(outcome) => outcome,
            Err(_) => {
                self.stats.store_failures += 1;
                return messages.len();
            }
        };
        self.stats.stored += outcome.stored.len() as u64;
        self.stats.rejected += outcome.rejected.len() as u64;
        self.stats.alarm_changes += outcome.alarms.len() as u64;
        for notice in outcome.alarms {
            push_bounded(&mut self.alarms, notice, self.log_capacity);
        }
        for decision in outcome
            .decisions
            .into_iter()
            .filter(|d| d.command.is_some())
        {
            push_bounded(&mut self.remediations, decision, self.log_capacity);
        }
        for publication in &outcome.commands {
            self.deliver(&publication.topic, publication.payload.as_bytes(), now_ms);
        }
        messages.len()
    }

    /// What a subscribed device does with a message on its command topic.
    fn deliver(&mut self, topic: &Topic, payload: &[u8], now_ms: u64) {
        let ctx = ParseContext::new(now_ms);
        let Topic::Command { device, .. } = topic else {
            // In-page devices speak the current protocol; a legacy command has no taker.
            let _ = parse_legacy_command(payload, &ctx);
            return;
        };
        let (Some(&i), Ok(command)) = (self.index.get(device), parse_command(payload, &ctx)) else {
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
        self.stats.commands += 1;
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, cap: usize) {
    if queue.len() == cap {
        queue.pop_front();
    }
    queue.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-11-27T08:00:00Z: readings need a plausible clock (ts 0 is rejected).
    const T0: u64 = 1_764_230_400_000;

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
        let mut engine = Engine::new(config, T0).unwrap();
        // Ten simulated minutes at 60 frames a second.
        run(&mut engine, 0, 600_000, 16);
        let stats = engine.stats();
        // One reading every 2 s for 600 s: 300 or 301 per device, depending on its offset.
        assert!(
            (20 * 300..=20 * 301).contains(&stats.published),
            "{}",
            stats.published
        );
        assert_eq!(stats.stored, stats.published);
        assert_eq!(stats.rejected, 0);
        assert!(stats.commands >= 20, "only {} commands", stats.commands);
        assert!(engine.remediations().count() > 0 && engine.alarms().count() > 0);
        // A remediated device's curve departs from the one it would have had.
        let diverged = engine.devices().iter().any(|d| {
            d.series
                .points()
                .any(|p| (p.temperature - p.counterfactual).abs() > 0.5)
        });
        assert!(diverged);
        assert!(engine.devices().iter().all(|d| d.commands > 0));
    }

    #[test]
    fn a_paused_tab_resumes_without_a_burst() {
        let mut engine = Engine::new(
            EngineConfig {
                devices: 5,
                ..EngineConfig::default()
            },
            0,
        )
        .unwrap();
        run(&mut engine, 0, 10_000, 100);
        let before = engine.stats().published;
        // Hidden for a minute: the next frame steps each device once, not 30 times.
        assert_eq!(engine.tick(T0 + 70_000), 5);
        assert_eq!(engine.stats().published, before + 5);
        assert_eq!(engine.tick(T0 + 70_001), 0);
    }

    #[test]
    fn devices_are_spread_over_a_period() {
        let mut engine = Engine::new(
            EngineConfig {
                devices: 100,
                ..EngineConfig::default()
            },
            0,
        )
        .unwrap();
        let first_frame = engine.tick(16);
        assert!(
            first_frame < 10,
            "{first_frame} of 100 devices in the first frame"
        );
    }
}

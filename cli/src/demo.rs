//! `fleet demo`: the whole loop in one process, on a simulated (or real-time) clock.
//!
//! Devices → telemetry payloads → worker plan → store → remediation → command payloads →
//! devices, all through the same functions and wire formats the local stack and the
//! Lambdas use, with the MQTT broker replaced by direct delivery. The devices are the fleet
//! engine's (`fleet-engine`), ticked once per period on a simulated clock; the commands go
//! back into it at the same instant.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use fleet_core::device::DEFAULT_NOISE_AMPLITUDE;
use fleet_core::payload::{Action, Shape};
use fleet_core::{Decision, Fleet, Incoming};
use fleet_engine::{DeviceSpec, Engine, EngineConfig, Received, Via};
use fleet_pipeline::{MemoryStore, Outcome, Pipeline, PipelineConfig};

use crate::args::DeviceArgs;

/// Flags of `fleet demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of devices.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub devices: u32,
    /// Number of buildings the devices are spread over.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub buildings: u32,
    /// Seed of the fleet's phases and noise: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated minutes to run.
    #[arg(long, default_value_t = 60.0)]
    pub minutes: f64,
    /// Pace the run on the wall clock (one reading per device every update-frequency
    /// seconds), as real devices would, instead of as fast as possible.
    #[arg(long)]
    pub realtime: bool,
    /// How many of the devices speak the original stack's legacy topics and payloads.
    #[arg(long, default_value_t = 0)]
    pub legacy_devices: u32,
    /// Inject a malformed message every N readings (0: never), to watch rejections.
    #[arg(long, default_value_t = 0)]
    pub bad_every: u64,
    /// Disable remediation (the original's REMEDIATION_LOGIC=false): decisions are still
    /// recorded, no command is sent.
    #[arg(long)]
    pub no_remediation: bool,
    /// Print every reading, not only commands, alarms and rejections.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// What happened to one device over the run.
#[derive(Debug, Default)]
struct DeviceReport {
    readings: u64,
    commands: BTreeMap<&'static str, u64>,
    remediated_steps: u64,
    max: f64,
    max_without: f64,
    min: f64,
    min_without: f64,
}

/// A malformed payload from `device` in `building`, of the `kind`-th sort (they cycle),
/// each rejected for its own reason.
fn bad_payload(kind: u64, device: &str, building: &str) -> String {
    let reading = |temperature: &str| {
        format!(
            r#"{{"device":"{device}","building":"{building}","seq":1,"ts":1,{temperature}"humidity":60}}"#
        )
    };
    match kind % 6 {
        0 => String::from("not json at all"),
        1 => reading(r#""temperature":"hot","#),
        2 => reading(r#""temperature":1e999,"#),
        3 => reading(""),
        4 => reading(r#""temperature":-300,"#),
        _ => format!(r#"{{"device":"{device}!","temperature":27,"humidity":60}}"#),
    }
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let params = args.device.params().context("invalid device parameters")?;
    if !(args.minutes.is_finite() && args.minutes > 0.0) {
        bail!("--minutes must be a positive number, not {}", args.minutes);
    }
    let mut config = PipelineConfig::default();
    config.policy.enabled = !args.no_remediation;
    let policy = config.policy.clone();
    let mut pipeline = Pipeline::new(config).context("invalid remediation settings")?;
    let mut store = MemoryStore::new();

    let legacy = args.legacy_devices.min(args.devices) as usize;
    // Devices d-0001… over buildings 1…, the first `legacy` of them speaking the original's
    // topics and payloads.
    let devices = Fleet::variations(args.seed, DEFAULT_NOISE_AMPLITUDE)
        .take(args.devices as usize)
        .enumerate()
        .map(|(i, variation)| DeviceSpec {
            id: Fleet::device_id(i),
            building: Fleet::building(i, args.buildings as usize),
            variation,
            shape: if i < legacy {
                Shape::Legacy
            } else {
                Shape::Current
            },
        })
        .collect::<Vec<_>>();
    // The simulated clock starts at the wall clock (readings need a plausible time), in
    // whole milliseconds, and moves one period per step.
    let start_ms = fleet_clock::now_ms();
    let engine_config = EngineConfig {
        params,
        ..EngineConfig::default()
    };
    let mut engine =
        Engine::new(engine_config, &devices, start_ms * 1000).context("invalid fleet")?;
    let period_us = (params.update_frequency_s * 1e6).round().max(1.0) as u64;
    let steps = (args.minutes * 60e6 / period_us as f64).ceil() as u64;
    println!(
        "Fleet demo: {} devices ({legacy} legacy) in {} buildings, seed {}, {} minutes {}, one \
         reading every {:.1} s",
        args.devices,
        args.buildings,
        args.seed,
        args.minutes,
        if args.realtime {
            "in real time"
        } else {
            "simulated"
        },
        params.update_frequency_s,
    );
    println!(
        "band {:.1}–{:.1} °C, velocity {}, remediation factor {}, remediation {}, min hold {} s, \
         device hold {} s\n",
        policy.band_min,
        policy.band_max,
        params.velocity,
        params.remediation_factor,
        if policy.enabled { "on" } else { "off" },
        policy.min_hold_ms / 1000,
        policy.hold_s,
    );

    let mut reports: Vec<DeviceReport> = (0..engine.len())
        .map(|_| DeviceReport {
            max: f64::MIN,
            max_without: f64::MIN,
            min: f64::MAX,
            min_without: f64::MAX,
            ..DeviceReport::default()
        })
        .collect();
    let mut totals = Totals::default();
    let mut message_id = 0u64;
    let mut readings = 0u64;

    for step in 0..steps {
        let now_us = start_ms * 1000 + step * period_us;
        let now = now_us / 1000;
        let clock = Clock { start_ms, now };
        engine.tick(now_us);
        let mut messages: Vec<(String, String, String)> = Vec::with_capacity(engine.len() + 1);
        // One message per reading (no batches), in device order.
        for (reading, message) in engine.readings().iter().zip(engine.messages()) {
            let (i, sample) = (reading.device, &reading.sample);
            let report = &mut reports[i];
            report.readings += 1;
            report.remediated_steps += u64::from(sample.remediation.is_some());
            report.max = report.max.max(sample.temperature);
            report.min = report.min.min(sample.temperature);
            report.max_without = report.max_without.max(sample.counterfactual_temperature);
            report.min_without = report.min_without.min(sample.counterfactual_temperature);
            if args.verbose {
                println!(
                    "{clock}  {:<8} b{:<3} {:>6.2} °C  {:>5.1} %  (without remediation {:.2} °C)",
                    engine.id(i),
                    engine.building(i),
                    sample.temperature,
                    sample.humidity,
                    sample.counterfactual_temperature,
                );
            }
            message_id += 1;
            messages.push((
                message.topic.to_owned(),
                String::from_utf8_lossy(message.payload).into_owned(),
                format!("m{message_id}"),
            ));
            readings += 1;
            if args.bad_every > 0 && readings.is_multiple_of(args.bad_every) {
                let bad = bad_payload(
                    readings / args.bad_every,
                    engine.id(i),
                    engine.building(i).as_str(),
                );
                message_id += 1;
                messages.push((
                    format!(
                        "dt/monitoring/{}/{}/telemetry",
                        engine.building(i),
                        engine.id(i)
                    ),
                    bad,
                    format!("m{message_id}"),
                ));
            }
        }
        let batch: Vec<Incoming<'_>> = messages
            .iter()
            .map(|(topic, payload, id)| Incoming {
                topic,
                payload: payload.as_bytes(),
                received_ms: now,
                source_id: id,
                // One process simulates both sides: no identities to check.
                publisher: &fleet_core::Publisher::Unbound,
            })
            .collect();
        let outcome = pipeline
            .ingest(&mut store, &batch, now)
            .context("storing readings")?;

        for decision in outcome.decisions.iter().filter(|d| d.command.is_some()) {
            print_decision(&clock, decision);
        }
        for notice in &outcome.alarms {
            println!(
                "{clock}  alarm     {:<28} {} → {}: {}",
                notice.alarm, notice.previous, notice.state, notice.reason
            );
        }
        for rejected in &outcome.rejected {
            println!(
                "{clock}  rejected  {} on {}: {} ({})",
                rejected.source_id,
                rejected.topic,
                rejected.reason,
                rejected.reason.code()
            );
        }
        deliver(&mut engine, &outcome, now_us, &mut reports)?;
        totals.add(&outcome);

        if args.realtime && step + 1 < steps {
            std::thread::sleep(Duration::from_micros(period_us));
        }
    }

    print_summary(&engine, &reports, &totals, &store, steps, period_us);
    Ok(())
}

/// Delivers each command to the devices subscribed to its topic, through its payload, as
/// the broker would: a device parses the bytes it receives (a legacy command reaches every
/// legacy device of its building; only the one it names acts).
fn deliver(
    engine: &mut Engine,
    outcome: &Outcome,
    now_us: u64,
    reports: &mut [DeviceReport],
) -> Result<()> {
    for publication in &outcome.commands {
        let topic = publication.topic.to_string();
        match engine.receive(now_us, Via::Any, &topic, publication.payload.as_bytes()) {
            Received::Applied(applied) => {
                *reports[applied.device]
                    .commands
                    .entry(applied.action.as_str())
                    .or_default() += 1;
            }
            Received::NotOurs => {}
            Received::Unreadable(rejection) => {
                bail!("the pipeline produced a command the device cannot parse: {rejection}")
            }
            Received::NotACommand => bail!("the pipeline published a command on {topic}"),
        }
    }
    Ok(())
}

/// Counts over the whole run.
#[derive(Debug, Default)]
struct Totals {
    received: usize,
    stored: usize,
    /// Decisions that change something (not [`Decision::is_routine`]): what the cloud's
    /// remediation stores.
    notable: usize,
    commands: usize,
    duplicates: usize,
    rejected: BTreeMap<&'static str, u64>,
    emf_lines: usize,
    alarms: usize,
}

impl Totals {
    fn add(&mut self, outcome: &Outcome) {
        self.received += outcome.summary.received;
        self.stored += outcome.stored.len();
        self.notable += outcome.decisions.iter().filter(|d| !d.is_routine()).count();
        self.commands += outcome.commands.len();
        self.duplicates += outcome.duplicates;
        for (code, n) in &outcome.summary.rejected_by_code {
            *self.rejected.entry(code).or_default() += n;
        }
        self.emf_lines += outcome.emf.len();
        self.alarms += outcome.alarms.len();
    }
}

struct Clock {
    start_ms: u64,
    now: u64,
}

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = (self.now - self.start_ms) / 1000;
        write!(f, "+{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

fn print_decision(clock: &Clock, d: &Decision) {
    let Some(command) = &d.command else { return };
    let trend = match d.previous_temperature {
        Some(p) if d.temperature > p => "↑",
        Some(p) if d.temperature < p => "↓",
        _ => " ",
    };
    let action = match command.action {
        Action::Cool => "COOL",
        Action::Heat => "HEAT",
        Action::Release => "RELEASE",
    };
    println!(
        "{clock}  {:<8} b{:<3} {:>6.2} °C {trend}  {action:<8} {}{}",
        d.device,
        d.building.as_ref().map_or("?", |b| b.as_str()),
        d.temperature,
        d.reason.code(),
        if d.legacy { "  (legacy)" } else { "" },
    );
}

fn print_summary(
    engine: &Engine,
    reports: &[DeviceReport],
    totals: &Totals,
    store: &MemoryStore,
    steps: u64,
    period_us: u64,
) {
    let minutes = steps * period_us / 60_000_000;
    println!("\nSummary after {minutes} minutes ({steps} readings per device)\n");
    println!(
        "{:<8} {:>4} {:>8} {:>5} {:>5} {:>7} {:>10}  {:>14}  {:>14}",
        "device",
        "bldg",
        "readings",
        "cool",
        "heat",
        "release",
        "remediated",
        "max °C (w/o)",
        "min °C (w/o)"
    );
    for (i, r) in reports.iter().enumerate() {
        let count = |a: &str| r.commands.get(a).copied().unwrap_or(0);
        println!(
            "{:<8} {:>4} {:>8} {:>5} {:>5} {:>7} {:>9.0}%  {:>6.2} ({:>5.2})  {:>6.2} ({:>5.2})",
            engine.id(i),
            engine.building(i),
            r.readings,
            count("cool"),
            count("heat"),
            count("release"),
            100.0 * r.remediated_steps as f64 / r.readings.max(1) as f64,
            r.max,
            r.max_without,
            r.min,
            r.min_without,
        );
    }
    let rejected: Vec<String> = totals
        .rejected
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    println!(
        "\nmessages {}: stored {}, duplicates {}, rejected {}{}",
        totals.received,
        totals.stored,
        totals.duplicates,
        totals.rejected.values().sum::<u64>(),
        if rejected.is_empty() {
            String::new()
        } else {
            format!(" ({})", rejected.join(", "))
        },
    );
    println!(
        "table rows {}, decisions {}, archive objects {}, EMF metric lines {}, alarm changes {}",
        store.readings_total(),
        store.decisions_total(),
        store.archive_total(),
        totals.emf_lines,
        totals.alarms,
    );
    // The shares the cloud's cost depends on (docs/cost.md).
    let per_mille = |n: usize| 1000.0 * n as f64 / totals.stored.max(1) as f64;
    println!(
        "per 1,000 readings: {:.1} decisions worth storing (not routine), {:.1} commands",
        per_mille(totals.notable),
        per_mille(totals.commands),
    );
}

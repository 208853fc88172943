//! Model-based: the engine against the loop every front end used to write by hand.
//!
//! The reference is that loop, one [`fleet_core::Device`] per device: step it when it is
//! due, build its [`Telemetry`] in its shape, encode it alone or in a batch, publish on its
//! topic; parse a command in its shape and apply it. Random fleets (current and legacy
//! devices, batches, a Basic Ingest prefix), random ticks and random commands (good, for
//! another device, malformed, legacy) go through both; the readings, the messages and the
//! commands carried out must be the same.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;

use fleet_core::payload::{encode_legacy_command, parse_legacy_command};
use fleet_core::{
    Action, BuildingId, Command, Device, DeviceId, DeviceParams, Fleet, LegacyCommand,
    ParseContext, Shape, Telemetry, encode_command, encode_telemetry, encode_telemetry_batch,
    parse_command,
};
use fleet_engine::{CatchUp, DeviceSpec, Engine, EngineConfig, Received, Start, Via};
use proptest::prelude::*;

/// 2025-11-27T08:00:00Z, µs.
const T0: u64 = 1_764_230_400_000_000;

/// One device of the old loops.
struct OldDevice {
    device: Device,
    shape: Shape,
    topic: String,
    buffer: Vec<Telemetry>,
}

/// What the old loops did, for a fleet of [`OldDevice`]s.
struct Reference {
    devices: Vec<OldDevice>,
    batch: usize,
}

impl Reference {
    /// A reading, as `fleet sim`'s device loop took it: step, telemetry in the device's
    /// shape, buffer, and the message when the buffer is full.
    fn step(&mut self, i: usize, now_ms: u64) -> (fleet_core::Sample, Option<(String, String)>) {
        let d = &mut self.devices[i];
        let sample = d.device.step(now_ms);
        d.buffer.push(d.device.telemetry(&sample, d.shape));
        let message = (d.buffer.len() >= self.batch)
            .then(|| self.flush(i))
            .flatten();
        (sample, message)
    }

    fn flush(&mut self, i: usize) -> Option<(String, String)> {
        let d = &mut self.devices[i];
        let payload = match d.buffer.as_slice() {
            [] => return None,
            [one] if self.batch == 1 => encode_telemetry(one),
            readings => encode_telemetry_batch(readings),
        };
        d.buffer.clear();
        Some((d.topic.clone(), payload))
    }

    /// A command on device `i`'s subscription, as the old loops applied it: parsed in the
    /// device's shape, carried out if it names the device.
    fn command(&mut self, i: usize, payload: &[u8], now_ms: u64) -> Option<Action> {
        let ctx = ParseContext::new(now_ms);
        let d = &mut self.devices[i];
        match d.shape {
            Shape::Current => {
                let command = parse_command(payload, &ctx).ok()?;
                (command.device == *d.device.id()).then(|| {
                    d.device.apply(&command, now_ms);
                    command.action
                })
            }
            Shape::Legacy => {
                let command = parse_legacy_command(payload, &ctx).ok()?;
                d.device.apply_legacy_command(&command, now_ms)
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Event {
    /// Advance the clock by this many ms and tick.
    Tick(u64),
    /// A command to device `device % n`, current or legacy as the device speaks.
    Command {
        device: usize,
        action: Action,
        hold_s: u32,
        /// Name another device in the payload.
        other: bool,
        /// Ask for a round trip from the reading this many readings back.
        back: Option<u64>,
    },
    /// Garbage on device `device % n`'s command topic.
    Garbage(usize),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (1u64..3_000).prop_map(Event::Tick),
        2 => (
            any::<usize>(),
            prop_oneof![Just(Action::Cool), Just(Action::Heat), Just(Action::Release)],
            prop_oneof![Just(0u32), 1u32..30],
            prop::bool::weighted(0.2),
            prop::option::of(0u64..80),
        )
            .prop_map(|(device, action, hold_s, other, back)| Event::Command {
                device,
                action,
                hold_s,
                other,
                back,
            }),
        1 => any::<usize>().prop_map(Event::Garbage),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    devices: usize,
    /// Devices `0..legacy` speak the legacy shape (only without batches).
    legacy: usize,
    batch: usize,
    prefix: bool,
    update_frequency_s: f64,
    events: Vec<Event>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        1usize..6,
        0usize..3,
        prop_oneof![3 => Just(1usize), 1 => 2usize..6],
        any::<bool>(),
        prop_oneof![Just(2.0), Just(0.5), Just(1.3)],
        prop::collection::vec(event(), 1..120),
    )
        .prop_map(
            |(seed, devices, legacy, batch, prefix, update_frequency_s, events)| Case {
                seed,
                devices,
                legacy: if batch == 1 { legacy.min(devices) } else { 0 },
                batch,
                prefix: prefix && legacy == 0,
                update_frequency_s,
                events,
            },
        )
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    let params = DeviceParams {
        update_frequency_s: case.update_frequency_s,
        ..DeviceParams::default()
    };
    let prefix = if case.prefix { "$aws/rules/r1/" } else { "" };
    let specs: Vec<DeviceSpec> = Fleet::variations(case.seed, 0.05)
        .take(case.devices)
        .enumerate()
        .map(|(i, variation)| DeviceSpec {
            id: Fleet::device_id(i),
            building: Fleet::building(i, 2),
            variation,
            shape: if i < case.legacy {
                Shape::Legacy
            } else {
                Shape::Current
            },
        })
        .collect();
    let mut reference = Reference {
        batch: case.batch,
        devices: specs
            .iter()
            .map(|s| {
                let device =
                    Device::new(s.id.clone(), s.building.clone(), params, s.variation).unwrap();
                let topic = format!("{prefix}{}", device.telemetry_topic(s.shape));
                OldDevice {
                    device,
                    shape: s.shape,
                    topic,
                    buffer: Vec::new(),
                }
            })
            .collect(),
    };
    let config = EngineConfig {
        params,
        batch: case.batch,
        topic_prefix: prefix.to_owned(),
        start: Start::Spread,
        catch_up: CatchUp::Skip,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config, &specs, T0).unwrap();
    let n = case.devices;
    let mut now = T0;
    // Per device: the times of its readings, to check the cadence.
    let mut times: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for event in &case.events {
        match event {
            Event::Tick(ms) => {
                now += ms * 1000;
                engine.tick(now);
                let messages: Vec<(usize, String, String)> = engine
                    .messages()
                    .map(|m| {
                        (
                            m.device,
                            m.topic.to_owned(),
                            String::from_utf8(m.payload.to_vec()).unwrap(),
                        )
                    })
                    .collect();
                let mut expected = Vec::new();
                for r in engine.readings() {
                    let (sample, message) = reference.step(r.device, now / 1000);
                    prop_assert_eq!(&r.sample, &sample, "device {}", r.device);
                    if let Some((topic, payload)) = message {
                        expected.push((r.device, topic, payload));
                    }
                    times.entry(r.device).or_default().push(now);
                }
                prop_assert_eq!(messages, expected);
            }
            Event::Command {
                device,
                action,
                hold_s,
                other,
                back,
            } => {
                let i = device % n;
                let named = if *other { (i + 1) % (n + 1) } else { i };
                let named = Fleet::device_id(named);
                let next = engine.model(i).next_seq();
                let reading_seq = back.and_then(|b| next.checked_sub(b + 1));
                let (topic, payload) = match specs[i].shape {
                    Shape::Current => (
                        engine.command_topic(i),
                        encode_command(&Command {
                            id: "c".into(),
                            device: named,
                            action: *action,
                            reference_temperature: 27.0,
                            hold_s: *hold_s,
                            issued_at: now / 1000,
                            reading_seq,
                        }),
                    ),
                    Shape::Legacy => (
                        engine.command_topic(i),
                        encode_legacy_command(&LegacyCommand {
                            device: named,
                            temperature: 26.0 + f64::from(*hold_s) / 10.0,
                            humidity: 60.0,
                        }),
                    ),
                };
                let expected = reference.command(i, payload.as_bytes(), now / 1000);
                let got = engine.receive(now, Via::Device(i), &topic, payload.as_bytes());
                match (expected, &got) {
                    (Some(action), Received::Applied(applied)) => {
                        prop_assert_eq!(applied.device, i);
                        prop_assert_eq!(applied.action, action);
                        prop_assert_eq!(applied.legacy, specs[i].shape == Shape::Legacy);
                        // A reading just published has its round trip (all are sent at
                        // once without batches).
                        if case.batch == 1
                            && specs[i].shape == Shape::Current
                            && back.is_some_and(|b| b < 64)
                            && reading_seq.is_some()
                        {
                            prop_assert!(applied.round_trip_us.is_some(), "{applied:?}");
                        }
                    }
                    (None, Received::NotOurs) => {}
                    (expected, got) => prop_assert!(false, "{expected:?} vs {got:?}"),
                }
                // A shared connection finds the same device by the topic and payload.
                prop_assert_eq!(engine.model(i), reference.devices[i].device.model());
            }
            Event::Garbage(device) => {
                let i = device % n;
                let topic = engine.command_topic(i);
                let got = engine.receive(now, Via::Any, &topic, b"{\"device\":42}");
                prop_assert!(matches!(got, Received::Unreadable(_)), "{got:?}");
            }
        }
        for (i, d) in reference.devices.iter().enumerate() {
            prop_assert_eq!(engine.model(i), d.device.model());
        }
    }
    // A stop sends what the batches hold, as the old loop did.
    engine.flush(now + 1);
    let flushed: Vec<(usize, String, String)> = engine
        .messages()
        .map(|m| {
            (
                m.device,
                m.topic.to_owned(),
                String::from_utf8(m.payload.to_vec()).unwrap(),
            )
        })
        .collect();
    let expected: Vec<(usize, String, String)> = (0..n)
        .filter_map(|i| reference.flush(i).map(|(t, p)| (i, t, p)))
        .collect();
    prop_assert_eq!(flushed, expected);
    // The cadence: never two readings of a device in one tick (no burst after a late tick),
    // and none missed but those the gap between two ticks (< 3 s) hides.
    let period = (case.update_frequency_s * 1e6) as u64;
    for ts in times.values() {
        for w in ts.windows(2) {
            prop_assert!(w[1] > w[0] && w[1] - w[0] < period + 3_000_000, "{ts:?}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_engine_reads_publishes_and_obeys_as_the_old_device_loop(case in case()) {
        run(&case)?;
    }
}

#[test]
fn a_shared_connection_routes_commands_by_topic_and_payload() {
    let specs = [
        ("d-0001", "1", Shape::Current),
        ("d-0002", "1", Shape::Legacy),
        ("d-0003", "2", Shape::Legacy),
    ]
    .map(|(id, building, shape)| DeviceSpec {
        id: DeviceId::try_from(id).unwrap(),
        building: BuildingId::try_from(building).unwrap(),
        variation: fleet_core::FleetVariation::NONE,
        shape,
    });
    let mut engine = Engine::new(EngineConfig::default(), &specs, T0).unwrap();
    engine.tick(T0);
    let command = |device: &str, action| {
        encode_command(&Command {
            id: "c".into(),
            device: DeviceId::try_from(device).unwrap(),
            action,
            reference_temperature: 27.0,
            hold_s: 0,
            issued_at: T0 / 1000,
            reading_seq: Some(0),
        })
    };
    let legacy = |device: &str, t: f64| {
        encode_legacy_command(&LegacyCommand {
            device: DeviceId::try_from(device).unwrap(),
            temperature: t,
            humidity: 60.0,
        })
    };
    let at = T0 + 1_500;
    let topic = "cmd/monitoring/1/d-0001/remediation";
    match engine.receive(
        at,
        Via::Any,
        topic,
        command("d-0001", Action::Cool).as_bytes(),
    ) {
        Received::Applied(a) => {
            assert_eq!((a.device, a.action, a.legacy), (0, Action::Cool, false));
            assert_eq!(
                a.round_trip_us,
                Some(1_500),
                "from the tick that sent seq 0"
            );
        }
        other => panic!("{other:?}"),
    }
    // The topic names one device, the payload another: nobody acts.
    let wrong = command("d-0002", Action::Heat);
    assert_eq!(
        engine.receive(at, Via::Any, topic, wrong.as_bytes()),
        Received::NotOurs
    );
    // Unknown devices are someone else's.
    let topic9 = "cmd/monitoring/1/d-0009/remediation";
    let other = command("d-0009", Action::Heat);
    assert_eq!(
        engine.receive(at, Via::Any, topic9, other.as_bytes()),
        Received::NotOurs
    );
    // Legacy: the building's topic, the device in the body; only in its own building.
    let legacy1 = "monitoring-device/remediation-1";
    match engine.receive(at, Via::Any, legacy1, legacy("d-0002", 0.0).as_bytes()) {
        Received::Applied(a) => assert_eq!((a.device, a.action, a.legacy), (1, Action::Cool, true)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        engine.receive(at, Via::Any, legacy1, legacy("d-0003", 0.0).as_bytes()),
        Received::NotOurs,
        "d-0003 is in building 2"
    );
    // On device 2's own subscription, a command naming device 1 is not its own.
    let legacy2 = "monitoring-device/remediation-2";
    assert_eq!(
        engine.receive(
            at,
            Via::Device(2),
            legacy2,
            legacy("d-0002", 0.0).as_bytes()
        ),
        Received::NotOurs
    );
    // Not commands: the caller's.
    assert_eq!(
        engine.receive(at, Via::Any, "dt/monitoring/alarms", b"{}"),
        Received::NotACommand
    );
    let stats = engine.stats();
    assert_eq!((stats.applied, stats.not_ours, stats.unreadable), (2, 4, 0));
}

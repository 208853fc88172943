//! One simulated hour: a default device driven at 2 s steps, its readings fed to the
//! policy, the commands applied back at once (§4.5's "small, bounded number of commands").

// Helpers outside #[test] fns are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use fleet_core::device::FleetVariation;
use fleet_core::policy::Reading;
use fleet_core::{
    Action, BuildingId, Device, DeviceId, DeviceParams, DeviceState, PolicyConfig, decide,
};

const T0: u64 = 1_764_230_400_000;

struct Run {
    commands: Vec<Action>,
    first_command_at: Option<usize>,
    actual: Vec<f64>,
    counterfactual: Vec<f64>,
}

fn run_one_hour(cfg: &PolicyConfig) -> Run {
    let id = DeviceId::try_from("d-0001").unwrap();
    let building = BuildingId::try_from("1").unwrap();
    let mut device = Device::new(
        id.clone(),
        building.clone(),
        DeviceParams::default(),
        FleetVariation::NONE,
    )
    .unwrap();
    let mut state = DeviceState::default();
    let mut run = Run {
        commands: Vec::new(),
        first_command_at: None,
        actual: Vec::new(),
        counterfactual: Vec::new(),
    };
    let period_ms = DeviceParams::default().update_period_ms();
    let steps = 3600 * 1000 / period_ms;
    for i in 0..steps {
        let now = T0 + i * period_ms;
        let sample = device.step(now);
        run.actual.push(sample.temperature);
        run.counterfactual.push(sample.counterfactual_temperature);
        let reading = Reading {
            device: &id,
            building: Some(&building),
            seq: Some(sample.seq),
            ts: sample.ts,
            temperature: sample.temperature,
            humidity: sample.humidity,
            legacy: false,
        };
        let (next, decision) = decide(cfg, &state, &reading, now);
        state = next;
        if let Some(command) = decision.command {
            device.apply(&command, now);
            run.commands.push(command.action);
            run.first_command_at.get_or_insert(i as usize);
        }
    }
    run
}

#[test]
fn an_hour_with_defaults_gives_few_commands_without_storms() {
    let run = run_one_hour(&PolicyConfig::default());
    let n = run.commands.len();
    assert!(
        n > 0,
        "the default curve leaves the band, so something must happen"
    );
    assert!(n <= 40, "{n} commands in an hour: {:?}", run.commands);
    for pair in run.commands.windows(2) {
        assert_ne!(pair[0], pair[1], "repeated command in {:?}", run.commands);
    }
    // Every remediation is released again: episodes, not one flat line.
    assert!(run.commands.contains(&Action::Cool));
    assert!(run.commands.contains(&Action::Heat));
    assert!(run.commands.contains(&Action::Release));
}

#[test]
fn remediation_keeps_the_device_cooler_than_without() {
    let run = run_one_hour(&PolicyConfig::default());
    let from = run.first_command_at.unwrap() + 1;
    let max = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
    let min = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    assert!(max(&run.actual[from..]) < max(&run.counterfactual[from..]));
    assert!(min(&run.actual[from..]) > min(&run.counterfactual[from..]));
}

#[test]
fn a_disabled_policy_never_commands() {
    let cfg = PolicyConfig {
        enabled: false,
        ..PolicyConfig::default()
    };
    let run = run_one_hour(&cfg);
    assert!(run.commands.is_empty());
    assert_eq!(run.actual, run.counterfactual);
}

#[test]
fn a_noisy_fleet_stays_bounded_per_device() {
    use fleet_core::Fleet;

    let cfg = PolicyConfig::default();
    let mut fleet = Fleet::new(7, 20, 3, DeviceParams::default()).unwrap();
    for device in fleet.devices_mut() {
        let (id, building) = (device.id().clone(), device.building().clone());
        let mut state = DeviceState::default();
        let mut commands = Vec::new();
        for i in 0..1800u64 {
            let now = T0 + i * 2000;
            let s = device.step(now);
            let reading = Reading {
                device: &id,
                building: Some(&building),
                seq: Some(s.seq),
                ts: s.ts,
                temperature: s.temperature,
                humidity: s.humidity,
                legacy: false,
            };
            let (next, decision) = decide(&cfg, &state, &reading, now);
            state = next;
            if let Some(c) = decision.command {
                device.apply(&c, now);
                commands.push(c.action);
            }
        }
        assert!((1..=40).contains(&commands.len()), "{id}: {commands:?}");
        assert!(
            commands.windows(2).all(|w| w[0] != w[1]),
            "{id}: {commands:?}"
        );
    }
}

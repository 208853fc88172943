//! Properties of the device model: determinism and the original formula.

// Helpers outside #[test] fns are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use fleet_core::device::{DeviceParams, Fleet, FleetVariation, environment};
use fleet_core::{BuildingId, Device, DeviceId, Sample};
use proptest::prelude::*;

fn series(fleet: &mut Fleet, steps: u64) -> Vec<Vec<Sample>> {
    fleet
        .devices_mut()
        .iter_mut()
        .map(|d| (0..steps).map(|i| d.step(i * 2000)).collect())
        .collect()
}

proptest! {
    #[test]
    fn same_seed_same_series(seed: u64, n in 1usize..8, buildings in 0usize..4) {
        let mut a = Fleet::new(seed, n, buildings, DeviceParams::default()).unwrap();
        let mut b = Fleet::new(seed, n, buildings, DeviceParams::default()).unwrap();
        prop_assert_eq!(series(&mut a, 50), series(&mut b, 50));
    }

    #[test]
    fn different_seeds_differ(seed: u64) {
        let mut a = Fleet::new(seed, 2, 1, DeviceParams::default()).unwrap();
        let mut b = Fleet::new(seed.wrapping_add(1), 2, 1, DeviceParams::default()).unwrap();
        prop_assert_ne!(series(&mut a, 5), series(&mut b, 5));
    }

    #[test]
    fn zero_variation_is_the_formula(
        velocity in 0.0..5.0f64,
        min_temp in -20.0..40.0f64,
        min_hum in 0.0..90.0f64,
        steps in 1u64..300,
    ) {
        let params = DeviceParams { velocity, min_temp, min_hum, ..DeviceParams::default() };
        let mut d = Device::new(
            DeviceId::try_from("d").unwrap(),
            BuildingId::try_from("b").unwrap(),
            params,
            FleetVariation::NONE,
        ).unwrap();
        for x in 0..steps {
            let s = d.step(x);
            prop_assert_eq!(s.temperature, min_temp + velocity * (x as f64 / 40.0).sin());
            prop_assert_eq!(s.humidity, min_hum + environment(velocity, x as f64));
        }
    }

    #[test]
    fn noise_is_shared_by_actual_and_counterfactual(seed: u64, steps in 1u64..100) {
        let mut fleet = Fleet::new(seed, 1, 1, DeviceParams::default()).unwrap();
        let d = &mut fleet.devices_mut()[0];
        for x in 0..steps {
            let s = d.step(x * 2000);
            // Without remediation the two curves are the same curve, noise included.
            prop_assert_eq!(s.temperature, s.counterfactual_temperature);
            prop_assert_eq!(s.humidity, s.counterfactual_humidity);
            let phase = x as f64 + d.variation().phase_steps;
            prop_assert!((s.temperature - 27.0 - environment(1.1, phase)).abs() <= 0.05);
        }
    }
}

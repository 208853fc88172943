//! A seeded fleet of devices.

use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use crate::device::params::{DeviceParams, ParamsError};
use crate::device::variation::{FleetVariation, unit};
use crate::device::{Device, STEPS_PER_RADIAN};
use crate::id::{BuildingId, DeviceId};

/// Default noise half-width: ±0.05 °C on temperature, ±0.05 % on humidity.
pub const DEFAULT_NOISE_AMPLITUDE: f64 = 0.05;

/// Devices `d-0001`, `d-0002`, … spread over buildings `1`..`k`, each with a seeded phase
/// and noise. The same seed gives the same fleet, hence the same series.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    devices: Vec<Device>,
}

impl Fleet {
    /// `n_devices` devices over `buildings` buildings with [`DEFAULT_NOISE_AMPLITUDE`].
    ///
    /// Buildings are assigned round-robin (`d-0001` → `1`, `d-0002` → `2`, …) so every
    /// building gets devices even in small fleets; `buildings == 0` counts as 1.
    pub fn new(
        seed: u64,
        n_devices: usize,
        buildings: usize,
        params: DeviceParams,
    ) -> Result<Fleet, ParamsError> {
        Fleet::with_noise(seed, n_devices, buildings, params, DEFAULT_NOISE_AMPLITUDE)
    }

    /// As [`Fleet::new`], with another noise half-width (`0.0`: phase offsets only).
    pub fn with_noise(
        seed: u64,
        n_devices: usize,
        buildings: usize,
        params: DeviceParams,
        noise_amplitude: f64,
    ) -> Result<Fleet, ParamsError> {
        let devices = Fleet::variations(seed, noise_amplitude)
            .take(n_devices)
            .enumerate()
            .map(|(i, variation)| {
                Device::new(
                    Fleet::device_id(i),
                    Fleet::building(i, buildings),
                    params,
                    variation,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Fleet { devices })
    }

    /// The variations of a fleet's devices, in id order: the `i`-th is device `i`'s in a
    /// [`Fleet::with_noise`] of the same seed and amplitude, whatever its size. For callers
    /// that name and keep their devices themselves (a fleet engine).
    pub fn variations(seed: u64, noise_amplitude: f64) -> impl Iterator<Item = FleetVariation> {
        // Draws are sequential, so device i's variation depends only on the seed and i:
        // growing a fleet keeps the existing devices' series.
        let mut rng = Pcg64::seed_from_u64(seed);
        let period_steps = std::f64::consts::TAU * STEPS_PER_RADIAN;
        std::iter::from_fn(move || {
            Some(FleetVariation {
                phase_steps: unit(rng.next_u64()) * period_steps,
                noise_amplitude,
                seed: rng.next_u64(),
            })
        })
    }

    /// The building of the device at `index` in a fleet over `buildings` buildings:
    /// round-robin, `1` for index 0, `2` for 1, … (`buildings == 0` counts as 1).
    pub fn building(index: usize, buildings: usize) -> BuildingId {
        BuildingId::from_valid((index % buildings.max(1) + 1).to_string())
    }

    /// The id of the device at `index` (0-based): `d-0001` for 0.
    pub fn device_id(index: usize) -> DeviceId {
        DeviceId::from_valid(format!("d-{:04}", index.saturating_add(1)))
    }

    /// The devices, in id order.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The devices, mutably: to step them, apply commands, or override parameters.
    pub fn devices_mut(&mut self) -> &mut [Device] {
        &mut self.devices
    }

    /// The device with this id.
    pub fn device(&self, id: &DeviceId) -> Option<&Device> {
        self.devices.iter().find(|d| d.id() == id)
    }

    /// The device with this id, mutably.
    pub fn device_mut(&mut self, id: &DeviceId) -> Option<&mut Device> {
        self.devices.iter_mut().find(|d| d.id() == id)
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether the fleet has no devices.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The devices, by value.
    pub fn into_devices(self) -> Vec<Device> {
        self.devices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_buildings_round_robin() {
        let f = Fleet::new(1, 5, 2, DeviceParams::default()).unwrap();
        let got: Vec<(String, String)> = f
            .devices()
            .iter()
            .map(|d| (d.id().to_string(), d.building().to_string()))
            .collect();
        let want = [
            ("d-0001", "1"),
            ("d-0002", "2"),
            ("d-0003", "1"),
            ("d-0004", "2"),
            ("d-0005", "1"),
        ];
        assert_eq!(
            got,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
        assert_eq!(
            Fleet::new(1, 1, 0, DeviceParams::default())
                .unwrap()
                .devices()[0]
                .building(),
            "1"
        );
    }

    #[test]
    fn phases_cover_a_period_and_noise_is_small() {
        let f = Fleet::new(42, 200, 3, DeviceParams::default()).unwrap();
        let period = std::f64::consts::TAU * 40.0;
        let phases: Vec<f64> = f
            .devices()
            .iter()
            .map(|d| d.variation().phase_steps)
            .collect();
        assert!(phases.iter().all(|p| (0.0..period).contains(p)));
        assert!(phases.iter().any(|&p| p < period / 4.0));
        assert!(phases.iter().any(|&p| p > 3.0 * period / 4.0));
        let mut f = f;
        for d in f.devices_mut() {
            let s = d.step(0);
            let diff =
                s.temperature - (27.0 + crate::device::environment(1.1, d.variation().phase_steps));
            assert!(diff.abs() <= DEFAULT_NOISE_AMPLITUDE);
            assert_eq!(s.temperature - s.counterfactual_temperature, 0.0);
        }
    }

    #[test]
    fn growing_a_fleet_keeps_existing_devices() {
        let small = Fleet::new(9, 3, 1, DeviceParams::default()).unwrap();
        let big = Fleet::new(9, 10, 1, DeviceParams::default()).unwrap();
        assert_eq!(small.devices(), &big.devices()[..3]);
    }

    #[test]
    fn per_device_overrides() {
        let mut f = Fleet::new(1, 2, 1, DeviceParams::default()).unwrap();
        let id = Fleet::device_id(1);
        let d = f.device_mut(&id).unwrap();
        d.set_params(DeviceParams {
            min_temp: 30.0,
            ..DeviceParams::default()
        })
        .unwrap();
        assert_eq!(f.device(&id).unwrap().params().min_temp, 30.0);
        assert_eq!(f.devices()[0].params().min_temp, 27.0);
    }

    #[test]
    fn bad_params_fail_the_fleet() {
        let p = DeviceParams {
            update_frequency_s: -1.0,
            ..DeviceParams::default()
        };
        assert!(Fleet::new(1, 2, 1, p).is_err());
        assert!(Fleet::with_noise(1, 2, 1, DeviceParams::default(), f64::NAN).is_err());
        assert!(
            Fleet::new(1, 0, 1, p).is_ok(),
            "no device, nothing to validate"
        );
    }
}

//! The virtual device (§4.1): the original stack's sine curve, its reaction to commands,
//! and a seeded [`Fleet`] of such devices.
//!
//! A device is a state machine driven by its caller's clock: [`Device::step`] produces the
//! next [`Sample`], [`Device::apply`] reacts to a command. [`DeviceModel`] is the same state
//! machine without the device's id and building: plain data, for engines that keep the ids
//! of a whole fleet elsewhere. Each sample carries both the curve the device has and the
//! counterfactual it would have had without remediation, so a UI can draw both.

mod fleet;
mod params;
mod variation;

use serde::{Deserialize, Serialize};

use crate::id::{BuildingId, DeviceId};
use crate::payload::{Action, Command, LegacyCommand, Shape, Telemetry};
use crate::topic::Topic;

pub use fleet::{DEFAULT_NOISE_AMPLITUDE, Fleet};
pub use params::{DeviceParams, ParamsError};
use variation::Channel;
pub use variation::FleetVariation;

/// The original device's id (`DEVICE_ID`).
pub const DEFAULT_DEVICE_ID: &str = "381938912";

/// Steps per radian of the environment's sine: `x / 40` in the original.
const STEPS_PER_RADIAN: f64 = 40.0;

/// The original's `move(a, x) = a · sin(x / 40)`: the environment's pull at step `x`.
pub fn environment(a: f64, x: f64) -> f64 {
    a * (x / STEPS_PER_RADIAN).sin()
}

/// One reading of a device, with its counterfactual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The step `x` (0, 1, 2, …), sent as the telemetry's `seq`.
    pub seq: u64,
    /// When the sample was taken (the caller's `now_ms`).
    pub ts: u64,
    /// Temperature, °C.
    pub temperature: f64,
    /// Relative humidity, %.
    pub humidity: f64,
    /// Temperature without remediation, °C.
    pub counterfactual_temperature: f64,
    /// Humidity without remediation, %.
    pub counterfactual_humidity: f64,
    /// The remediation active at this step, if any (`Cool` or `Heat`).
    pub remediation: Option<Action>,
}

/// An active remediation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    /// `Cool` or `Heat`.
    pub action: Action,
    /// When it started (the caller's `now_ms`).
    pub since_ms: u64,
    /// When it ends by itself; `None` = only on release.
    pub until_ms: Option<u64>,
}

/// What [`Device::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A remediation started (or restarted, with a new hold).
    Started(Action),
    /// The remediation ended (or there was none to end: release is idempotent).
    Released,
    /// The command is for another device and was ignored.
    NotForThisDevice,
}

/// A virtual device without its identity: its parameters, variation, step counter and
/// remediation. Plain data (no heap), so a fleet engine keeps one per device in a flat array;
/// [`Device`] is this plus the device's id and building.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceModel {
    params: DeviceParams,
    variation: FleetVariation,
    /// The next step.
    x: u64,
    remediation: Option<Remediation>,
    last_temperature: Option<f64>,
    legacy_hold_s: Option<u32>,
}

impl DeviceModel {
    /// A model at step 0, with no remediation.
    pub fn new(
        params: DeviceParams,
        variation: FleetVariation,
    ) -> Result<DeviceModel, ParamsError> {
        params.validate()?;
        variation.validate()?;
        Ok(DeviceModel {
            params,
            variation,
            x: 0,
            remediation: None,
            last_temperature: None,
            legacy_hold_s: None,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &DeviceParams {
        &self.params
    }

    /// Replaces the parameters (a per-device override); the step counter is kept.
    pub fn set_params(&mut self, params: DeviceParams) -> Result<(), ParamsError> {
        params.validate()?;
        self.params = params;
        Ok(())
    }

    /// The variation.
    pub fn variation(&self) -> &FleetVariation {
        &self.variation
    }

    /// The step the next [`step`](DeviceModel::step) will produce.
    pub fn next_seq(&self) -> u64 {
        self.x
    }

    /// The active remediation, as of the last step or command.
    pub fn remediation(&self) -> Option<Remediation> {
        self.remediation
    }

    /// How long a legacy command's remediation lasts. `None` (the default) keeps it until the
    /// next command, as the original device did, which never ended one.
    pub fn set_legacy_hold(&mut self, hold_s: Option<u32>) {
        self.legacy_hold_s = hold_s;
    }

    /// Takes the next sample at `now_ms`, ending first a remediation whose hold ran out.
    pub fn step(&mut self, now_ms: u64) -> Sample {
        if self
            .remediation
            .and_then(|r| r.until_ms)
            .is_some_and(|until| now_ms >= until)
        {
            self.remediation = None;
        }
        let x = self.x;
        self.x = self.x.saturating_add(1);

        let p = &self.params;
        let phase = x as f64 + self.variation.phase_steps;
        let noise_t = self.variation.noise(x, Channel::Temperature);
        let noise_h = self.variation.noise(x, Channel::Humidity);
        let amplitude = match self.remediation {
            Some(_) => p.remediation_factor,
            None => p.velocity,
        };
        // The original moves temperature and humidity by the same amount; so do we.
        let moved = environment(amplitude, phase);
        let free = environment(p.velocity, phase);
        let sample = Sample {
            seq: x,
            ts: now_ms,
            temperature: p.min_temp + moved + noise_t,
            humidity: p.min_hum + moved + noise_h,
            counterfactual_temperature: p.min_temp + free + noise_t,
            counterfactual_humidity: p.min_hum + free + noise_h,
            remediation: self.remediation.map(|r| r.action),
        };
        self.last_temperature = Some(sample.temperature);
        sample
    }

    /// Carries out a command's action received at `now_ms` (the caller checked that the
    /// command is this device's): `cool`/`heat` start a remediation lasting `hold_s` from
    /// now (`0`: until released); `release` ends it.
    pub fn apply(&mut self, action: Action, hold_s: u32, now_ms: u64) -> Effect {
        match action {
            Action::Release => {
                self.remediation = None;
                Effect::Released
            }
            action @ (Action::Cool | Action::Heat) => {
                self.start(action, now_ms, Some(hold_s).filter(|&h| h > 0));
                Effect::Started(action)
            }
        }
    }

    /// Carries out a command in the original's shape, as the original device did: it cools
    /// when `reference_temperature` is below the last reading and warms otherwise (both damp
    /// the curve the same way). The remediation lasts until the next command unless a hold is
    /// set with [`set_legacy_hold`](DeviceModel::set_legacy_hold). Returns the direction
    /// chosen.
    pub fn apply_legacy(&mut self, reference_temperature: f64, now_ms: u64) -> Action {
        let last = self.last_temperature.unwrap_or(self.params.min_temp);
        let action = if reference_temperature < last {
            Action::Cool
        } else {
            Action::Heat
        };
        self.start(action, now_ms, self.legacy_hold_s.filter(|&h| h > 0));
        action
    }

    fn start(&mut self, action: Action, now_ms: u64, hold_s: Option<u32>) {
        self.remediation = Some(Remediation {
            action,
            since_ms: now_ms,
            until_ms: hold_s.map(|h| now_ms.saturating_add(u64::from(h) * 1000)),
        });
    }
}

/// A virtual device: a [`DeviceModel`] with its id and building.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    id: DeviceId,
    building: BuildingId,
    model: DeviceModel,
}

impl Device {
    /// A device at step 0, with no remediation.
    pub fn new(
        id: DeviceId,
        building: BuildingId,
        params: DeviceParams,
        variation: FleetVariation,
    ) -> Result<Device, ParamsError> {
        Ok(Device {
            id,
            building,
            model: DeviceModel::new(params, variation)?,
        })
    }

    /// The device's id.
    pub fn id(&self) -> &DeviceId {
        &self.id
    }

    /// The device's building.
    pub fn building(&self) -> &BuildingId {
        &self.building
    }

    /// The device without its identity.
    pub fn model(&self) -> &DeviceModel {
        &self.model
    }

    /// The device's parameters.
    pub fn params(&self) -> &DeviceParams {
        self.model.params()
    }

    /// Replaces the parameters (a per-device override); the step counter is kept.
    pub fn set_params(&mut self, params: DeviceParams) -> Result<(), ParamsError> {
        self.model.set_params(params)
    }

    /// The device's variation.
    pub fn variation(&self) -> &FleetVariation {
        self.model.variation()
    }

    /// The step the next [`step`](Device::step) will produce.
    pub fn next_seq(&self) -> u64 {
        self.model.next_seq()
    }

    /// The active remediation, as of the last step or command.
    pub fn remediation(&self) -> Option<Remediation> {
        self.model.remediation()
    }

    /// How long a legacy command's remediation lasts. `None` (the default) keeps it until the
    /// next command, as the original device did, which never ended one.
    pub fn set_legacy_hold(&mut self, hold_s: Option<u32>) {
        self.model.set_legacy_hold(hold_s);
    }

    /// Takes the next sample at `now_ms`, ending first a remediation whose hold ran out.
    pub fn step(&mut self, now_ms: u64) -> Sample {
        self.model.step(now_ms)
    }

    /// Applies a command received at `now_ms`.
    ///
    /// `cool`/`heat` start a remediation lasting `hold_s` from now (`0`: until released);
    /// `release` ends it.
    pub fn apply(&mut self, command: &Command, now_ms: u64) -> Effect {
        if command.device != self.id {
            return Effect::NotForThisDevice;
        }
        self.model.apply(command.action, command.hold_s, now_ms)
    }

    /// Applies a command in the original's shape: see [`DeviceModel::apply_legacy`].
    pub fn apply_legacy(&mut self, reference_temperature: f64, now_ms: u64) -> Action {
        self.model.apply_legacy(reference_temperature, now_ms)
    }

    /// [`apply_legacy`](Device::apply_legacy) for a parsed legacy command; `None` when it is
    /// for another device.
    pub fn apply_legacy_command(&mut self, command: &LegacyCommand, now_ms: u64) -> Option<Action> {
        (command.device == self.id).then(|| self.apply_legacy(command.temperature, now_ms))
    }

    /// The telemetry message for `sample` in the given shape.
    pub fn telemetry(&self, sample: &Sample, shape: Shape) -> Telemetry {
        match shape {
            Shape::Current => Telemetry::current(
                self.id.clone(),
                self.building.clone(),
                sample.seq,
                sample.ts,
                sample.temperature,
                sample.humidity,
            ),
            Shape::Legacy => {
                Telemetry::legacy(self.id.clone(), sample.temperature, sample.humidity)
            }
        }
    }

    /// Where this device publishes telemetry when speaking `shape`.
    pub fn telemetry_topic(&self, shape: Shape) -> Topic {
        match shape {
            Shape::Current => Topic::telemetry(self.building.clone(), self.id.clone()),
            Shape::Legacy => Topic::LegacyTelemetry {
                building: self.building.clone(),
            },
        }
    }

    /// Where this device receives commands when speaking `shape`.
    pub fn command_topic(&self, shape: Shape) -> Topic {
        match shape {
            Shape::Current => Topic::command(self.building.clone(), self.id.clone()),
            Shape::Legacy => Topic::LegacyRemediation {
                building: self.building.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::new(
            DeviceId::try_from(DEFAULT_DEVICE_ID).unwrap(),
            BuildingId::try_from("1").unwrap(),
            DeviceParams::default(),
            FleetVariation::NONE,
        )
        .unwrap()
    }

    fn command(action: Action, hold_s: u32) -> Command {
        Command {
            id: "c".into(),
            device: DeviceId::try_from(DEFAULT_DEVICE_ID).unwrap(),
            action,
            reference_temperature: 27.0,
            hold_s,
            issued_at: 0,
            reading_seq: None,
        }
    }

    #[test]
    fn zero_variation_is_the_original_formula_exactly() {
        let mut d = device();
        for x in 0..100u64 {
            let s = d.step(x * 2000);
            let xf = x as f64;
            assert_eq!(s.seq, x);
            assert_eq!(s.ts, x * 2000);
            assert_eq!(s.temperature, 27.0 + 1.1 * (xf / 40.0).sin());
            assert_eq!(s.humidity, 60.0 + 1.1 * (xf / 40.0).sin());
            assert_eq!(s.counterfactual_temperature, s.temperature);
            assert_eq!(s.remediation, None);
        }
    }

    #[test]
    fn remediation_damps_the_curve_but_not_the_counterfactual() {
        let mut d = device();
        d.step(0);
        assert_eq!(
            d.apply(&command(Action::Cool, 60), 1000),
            Effect::Started(Action::Cool)
        );
        for x in 1..20u64 {
            let s = d.step(x * 2000);
            let sin = (x as f64 / 40.0).sin();
            assert_eq!(s.temperature, 27.0 + 0.3 * sin);
            assert_eq!(s.humidity, 60.0 + 0.3 * sin);
            assert_eq!(s.counterfactual_temperature, 27.0 + 1.1 * sin);
            assert_eq!(s.counterfactual_humidity, 60.0 + 1.1 * sin);
            assert_eq!(s.remediation, Some(Action::Cool));
        }
    }

    #[test]
    fn hold_expiry_ends_the_remediation() {
        let mut d = device();
        d.apply(&command(Action::Heat, 10), 0);
        assert_eq!(d.step(9_999).remediation, Some(Action::Heat));
        let s = d.step(10_000);
        assert_eq!(s.remediation, None);
        assert_eq!(s.temperature, 27.0 + 1.1 * (1.0f64 / 40.0).sin());
        assert_eq!(d.remediation(), None);
    }

    #[test]
    fn release_ends_the_remediation_and_is_idempotent() {
        let mut d = device();
        d.apply(&command(Action::Cool, 0), 0);
        assert_eq!(d.step(1_000_000_000).remediation, Some(Action::Cool));
        assert_eq!(d.apply(&command(Action::Release, 0), 5), Effect::Released);
        assert_eq!(d.step(2_000_000_000).remediation, None);
        assert_eq!(d.apply(&command(Action::Release, 0), 6), Effect::Released);
    }

    #[test]
    fn commands_for_others_are_ignored() {
        let mut d = device();
        let mut c = command(Action::Cool, 10);
        c.device = DeviceId::try_from("other").unwrap();
        assert_eq!(d.apply(&c, 0), Effect::NotForThisDevice);
        assert_eq!(d.remediation(), None);
    }

    #[test]
    fn legacy_direction_follows_the_original_rule() {
        let mut d = device();
        for x in 0..40 {
            d.step(x);
        } // rising, last ≈ 27.0 + 1.1·sin(39/40) ≈ 27.91
        assert_eq!(d.apply_legacy(27.0, 100), Action::Cool);
        assert_eq!(d.apply_legacy(28.5, 100), Action::Heat);
        // Without a hold it never ends by itself, as in the original.
        assert_eq!(d.step(u64::MAX).remediation, Some(Action::Heat));
        d.set_legacy_hold(Some(1));
        d.apply_legacy(0.0, 0);
        assert_eq!(d.step(1000).remediation, None);
    }

    #[test]
    fn telemetry_and_topics_follow_the_shape() {
        let mut d = device();
        let s = d.step(5);
        let t = d.telemetry(&s, Shape::Current);
        assert_eq!((t.seq, t.ts), (Some(0), Some(5)));
        assert_eq!(d.telemetry(&s, Shape::Legacy).seq, None);
        assert_eq!(
            d.telemetry_topic(Shape::Legacy).to_string(),
            "monitoring-device/building-1"
        );
        assert_eq!(
            d.command_topic(Shape::Current).to_string(),
            "cmd/monitoring/1/381938912/remediation"
        );
    }

    #[test]
    fn rejects_bad_params() {
        let p = DeviceParams {
            velocity: f64::NAN,
            ..DeviceParams::default()
        };
        assert!(
            Device::new(
                DeviceId::try_from("a").unwrap(),
                BuildingId::try_from("b").unwrap(),
                p,
                FleetVariation::NONE
            )
            .is_err()
        );
        let mut d = device();
        assert!(d.set_params(p).is_err());
        assert_eq!(d.params(), &DeviceParams::default());
    }
}

//! Unit tests: one per rule of [`decide`].

use super::*;

const T0: u64 = 1_764_230_400_000;

struct Fixture {
    device: DeviceId,
    building: BuildingId,
    cfg: PolicyConfig,
    state: DeviceState,
    seq: u64,
    now: u64,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            device: DeviceId::try_from("d-0001").unwrap(),
            building: BuildingId::try_from("1").unwrap(),
            cfg: PolicyConfig::default(),
            state: DeviceState::default(),
            seq: 0,
            now: T0,
        }
    }

    /// Feeds the next reading, 2 s after the previous one.
    fn feed(&mut self, temperature: f64) -> Decision {
        self.seq += 1;
        self.now += 2000;
        self.feed_at(self.seq, self.now, temperature)
    }

    fn feed_at(&mut self, seq: u64, ts: u64, temperature: f64) -> Decision {
        let reading = Reading {
            device: &self.device,
            building: Some(&self.building),
            seq: Some(seq),
            ts,
            temperature,
            humidity: 60.0,
            legacy: false,
        };
        let (state, decision) = decide(&self.cfg, &self.state, &reading, self.now);
        self.state = state;
        decision
    }

    fn wait(&mut self, ms: u64) {
        self.now += ms;
    }

    fn action(d: &Decision) -> Option<Action> {
        d.command.as_ref().map(|c| c.action)
    }
}

#[test]
fn first_reading_above_band_cools() {
    let mut f = Fixture::new();
    let d = f.feed(28.2);
    assert_eq!(Fixture::action(&d), Some(Action::Cool));
    assert_eq!(d.reason, Reason::AboveBandRising);
    let c = d.command.unwrap();
    assert_eq!(c.reference_temperature, 27.0);
    assert_eq!(c.hold_s, 300);
    assert_eq!(c.reading_seq, Some(1));
    assert_eq!(c.issued_at, f.now);
    assert_eq!(f.state.active.as_ref().unwrap().command_id, c.id);
}

#[test]
fn above_band_rising_cools_falling_waits() {
    let mut f = Fixture::new();
    assert_eq!(f.feed(28.5).reason, Reason::AboveBandRising);
    let mut f = Fixture::new();
    f.feed(27.9);
    assert_eq!(f.feed(28.1).reason, Reason::AboveBandRising);
    let mut f = Fixture::new();
    f.cfg.enabled = false;
    f.feed(28.5);
    f.cfg.enabled = true;
    let d = f.feed(28.4);
    assert_eq!((d.reason, d.command), (Reason::AboveBandReturning, None));
}

#[test]
fn below_band_falling_heats_rising_waits() {
    let mut f = Fixture::new();
    f.feed(26.1);
    let d = f.feed(25.9);
    assert_eq!(Fixture::action(&d), Some(Action::Heat));
    assert_eq!(d.reason, Reason::BelowBandFalling);
    let mut f = Fixture::new();
    f.cfg.enabled = false;
    f.feed(25.5);
    f.cfg.enabled = true;
    let d = f.feed(25.6);
    assert_eq!((d.reason, d.command), (Reason::BelowBandReturning, None));
}

#[test]
fn inside_band_does_nothing() {
    let mut f = Fixture::new();
    let d = f.feed(27.0);
    assert_eq!((d.reason, d.command), (Reason::InBand, None));
    assert_eq!(d.previous_temperature, None);
    assert_eq!(f.feed(26.0).previous_temperature, Some(27.0));
}

#[test]
fn active_does_not_repeat_and_releases_after_min_hold_inside_hysteresis() {
    let mut f = Fixture::new();
    f.feed(28.2);
    // Inside the release band, but the minimum hold has not elapsed.
    let d = f.feed(27.0);
    assert_eq!((d.reason, d.command), (Reason::AlreadyActive, None));
    // Still above the band: no second cool.
    assert_eq!(f.feed(28.5).reason, Reason::AlreadyActive);
    f.wait(120_000);
    // Held long enough but between the band edge and the hysteresis edge: keep holding.
    assert_eq!(f.feed(27.7).reason, Reason::AlreadyActive);
    let d = f.feed(27.2);
    assert_eq!(Fixture::action(&d), Some(Action::Release));
    assert_eq!(d.reason, Reason::BackInBand);
    assert_eq!(d.command.unwrap().hold_s, 0);
    assert_eq!(f.state.active, None);
}

#[test]
fn overshoot_after_min_hold_sends_the_opposite() {
    let mut f = Fixture::new();
    f.feed(28.2);
    f.feed(25.0); // overshoot, but too early to react
    assert_eq!(f.state.active.as_ref().unwrap().action, Action::Cool);
    f.wait(120_000);
    let d = f.feed(25.5);
    assert_eq!(Fixture::action(&d), Some(Action::Heat));
    assert_eq!(d.reason, Reason::Overshoot);
    assert_eq!(f.state.active.as_ref().unwrap().action, Action::Heat);
    f.wait(120_000);
    assert_eq!(Fixture::action(&f.feed(28.5)), Some(Action::Cool));
}

#[test]
fn hold_expiry_means_the_device_self_released() {
    let mut f = Fixture::new();
    f.feed(28.2);
    f.wait(300_001);
    let d = f.feed(27.8);
    assert_eq!((d.reason, d.command), (Reason::HoldExpired, None));
    assert_eq!(f.state.active, None);
    // Idle again, so a new excursion gets a new command.
    assert_eq!(Fixture::action(&f.feed(28.3)), Some(Action::Cool));
}

#[test]
fn expiry_then_out_of_band_starts_again() {
    let mut f = Fixture::new();
    f.feed(28.2);
    f.wait(400_000);
    let d = f.feed(28.4);
    assert_eq!(Fixture::action(&d), Some(Action::Cool));
    assert_eq!(d.reason, Reason::AboveBandRising);
}

#[test]
fn disabled_records_but_never_commands() {
    let mut f = Fixture::new();
    f.cfg.enabled = false;
    for t in [28.5, 29.0, 25.0, 24.0] {
        let d = f.feed(t);
        assert_eq!((d.reason, d.command), (Reason::Disabled, None));
    }
    assert_eq!(f.state.last.unwrap().temperature, 24.0);
    assert_eq!(f.state.active, None);
}

#[test]
fn stale_and_duplicate_readings_are_ignored() {
    let mut f = Fixture::new();
    f.feed_at(10, T0 + 10_000, 27.0);
    let before = f.state.clone();
    let d = f.feed_at(10, T0 + 10_000, 29.0);
    assert_eq!((d.reason, d.command), (Reason::Duplicate, None));
    let d = f.feed_at(9, T0 + 8_000, 29.0);
    assert_eq!((d.reason, d.command), (Reason::Stale, None));
    let d = f.feed_at(11, T0 + 9_000, 29.0);
    assert_eq!(d.reason, Reason::Stale, "ts orders before seq");
    assert!(d.reason.is_ignored());
    assert_eq!(f.state, before);
    // Same ts, newer seq: accepted.
    assert_eq!(
        f.feed_at(11, T0 + 10_000, 29.0).reason,
        Reason::AboveBandRising
    );
}

#[test]
fn command_ids_are_deterministic_for_redeliveries() {
    let mut a = Fixture::new();
    let mut b = Fixture::new();
    b.now += 5000; // processed later
    let ca = a.feed_at(42, T0, 28.5).command.unwrap();
    let cb = b.feed_at(42, T0, 28.5).command.unwrap();
    assert_eq!(ca.id, cb.id);
    assert_eq!(ca.id, format!("d-0001-{T0}-42-cool"));
}

#[test]
fn legacy_decisions_publish_the_legacy_shape() {
    let device = DeviceId::try_from("381938912").unwrap();
    let building = BuildingId::try_from("1").unwrap();
    let t = Telemetry::legacy(device, 28.5, 61.0);
    let reading = Reading::from_telemetry(&t, Some(&building), T0, true);
    assert_eq!(reading.ts, T0);
    let (_, d) = decide(
        &PolicyConfig::default(),
        &DeviceState::default(),
        &reading,
        T0,
    );
    assert_eq!(
        d.command.as_ref().unwrap().id,
        format!("381938912-{T0}-L-cool")
    );
    let p = d.publication().unwrap();
    assert_eq!(p.topic.to_string(), "monitoring-device/remediation-1");
    assert_eq!(
        p.payload,
        r#"{"body":{"device":"381938912","temperature":27.0,"humidity":61.0,"action":"Remediate"}}"#
    );
}

#[test]
fn current_decisions_publish_on_the_command_topic() {
    let mut f = Fixture::new();
    let d = f.feed(28.5);
    let p = d.publication().unwrap();
    assert_eq!(p.topic.to_string(), "cmd/monitoring/1/d-0001/remediation");
    assert!(p.payload.contains("\"action\":\"cool\""));
    assert_eq!(f.feed(27.0).publication(), None);
}

#[test]
fn state_round_trips_through_json() {
    let mut f = Fixture::new();
    f.feed(28.5);
    let json = serde_json::to_string(&f.state).unwrap();
    assert_eq!(serde_json::from_str::<DeviceState>(&json).unwrap(), f.state);
    let d = f.feed(28.6);
    let json = serde_json::to_string(&d).unwrap();
    assert!(json.contains("\"reason\":\"already_active\""));
    assert_eq!(d.reason.code(), "already_active");
}

//! Property: whatever the readings (values, order, timing), the policy never storms.

// Helpers outside #[test] fns are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use fleet_core::policy::Reading;
use fleet_core::{Action, BuildingId, DeviceId, DeviceState, PolicyConfig, Reason, decide};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Step {
    temperature: f64,
    /// Time since the previous step, ms.
    gap_ms: u64,
    /// Moves the reading's ts back (out of order / redelivery).
    ts_back_ms: u64,
    seq_back: u64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![20.0..34.0f64, 25.5..28.5f64],
        prop_oneof![Just(2000u64), 0..400_000u64],
        prop_oneof![3 => Just(0u64), 1 => 0..10_000u64],
        prop_oneof![3 => Just(0u64), 1 => 0..5u64],
    )
        .prop_map(|(temperature, gap_ms, ts_back_ms, seq_back)| Step {
            temperature,
            gap_ms,
            ts_back_ms,
            seq_back,
        })
}

proptest! {
    #[test]
    fn never_repeats_and_never_reverses_before_min_hold(
        steps in prop::collection::vec(step(), 1..300),
        enabled in prop::bool::weighted(0.9),
    ) {
        let cfg = PolicyConfig { enabled, ..PolicyConfig::default() };
        let device = DeviceId::try_from("d-1").unwrap();
        let building = BuildingId::try_from("b").unwrap();
        let mut state = DeviceState::default();
        let mut now = 1_000_000_000u64;
        let mut seq = 100u64;
        for s in steps {
            now += s.gap_ms;
            seq += 1;
            let reading = Reading {
                device: &device,
                building: Some(&building),
                seq: Some(seq - s.seq_back),
                ts: now - s.ts_back_ms,
                temperature: s.temperature,
                humidity: 50.0,
                legacy: false,
            };
            let (next, decision) = decide(&cfg, &state, &reading, now);
            if let Some(command) = &decision.command {
                prop_assert!(cfg.enabled);
                prop_assert!(!decision.reason.is_ignored());
                if let Some(active) = &state.active {
                    let expired = now - active.since_ms > u64::from(cfg.hold_s) * 1000;
                    if !expired {
                        // While one is active: never the same command again, and nothing
                        // at all before the minimum hold.
                        prop_assert_ne!(command.action, active.action);
                        prop_assert!(now - active.since_ms >= cfg.min_hold_ms);
                    }
                } else {
                    prop_assert_ne!(command.action, Action::Release, "release with nothing active");
                }
            }
            if decision.reason.is_ignored() {
                prop_assert_eq!(&next, &state);
            }
            if decision.reason == Reason::Disabled {
                prop_assert!(decision.command.is_none());
            }
            state = next;
        }
    }
}

//! Reconnect delays: capped exponential backoff with jitter.
//!
//! Jitter matters more than the curve: after a broker restart every device of a fleet loses
//! its connection in the same instant, and without jitter they would all come back in the
//! same instant too, every time. The random source is seeded by the caller, so a test (or a
//! simulated fleet) gets the same delays for the same seed.

use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg32;

/// Backoff settings. The delay before attempt `n` (0-based) is drawn uniformly from
/// `[cap/2, cap]` with `cap = min(max_ms, initial_ms · 2ⁿ)` ("equal jitter"): never shorter
/// than half the cap, so a flapping broker is not hammered, and spread over the other half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Cap for the first retry, in milliseconds.
    pub initial_ms: u64,
    /// Largest cap, in milliseconds.
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 500,
            max_ms: 30_000,
        }
    }
}

impl Backoff {
    /// The cap for attempt `attempt` (before jitter).
    pub fn cap_ms(&self, attempt: u32) -> u64 {
        let factor = 1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX);
        self.initial_ms.saturating_mul(factor).min(self.max_ms)
    }
}

/// A seeded jitter source for one session.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(Pcg32);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Jitter {
        Jitter(Pcg32::seed_from_u64(seed))
    }

    /// The delay before attempt `attempt`, in `[cap/2, cap]`.
    pub(crate) fn delay_ms(&mut self, backoff: &Backoff, attempt: u32) -> u64 {
        let cap = backoff.cap_ms(attempt);
        let half = cap / 2;
        let spread = cap - half;
        half + if spread == 0 {
            0
        } else {
            self.0.next_u64() % (spread + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_double_until_the_maximum() {
        let b = Backoff {
            initial_ms: 500,
            max_ms: 30_000,
        };
        let caps: Vec<u64> = (0..9).map(|n| b.cap_ms(n)).collect();
        assert_eq!(
            caps,
            [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(
            b.cap_ms(u32::MAX),
            30_000,
            "no overflow for absurd attempt counts"
        );
    }

    #[test]
    fn delays_stay_within_half_cap_and_cap_and_are_seeded() {
        let b = Backoff::default();
        let mut a = Jitter::new(7);
        let mut same = Jitter::new(7);
        let mut other = Jitter::new(8);
        let mut differs = false;
        for attempt in 0..20 {
            let d = a.delay_ms(&b, attempt);
            let cap = b.cap_ms(attempt);
            assert!(
                (cap / 2..=cap).contains(&d),
                "attempt {attempt}: {d} not in [{}, {cap}]",
                cap / 2
            );
            assert_eq!(d, same.delay_ms(&b, attempt));
            differs |= d != other.delay_ms(&b, attempt);
        }
        assert!(differs, "two seeds should not give the same delays");
    }

    #[test]
    fn jitter_spreads_a_fleet() {
        // 1,000 devices that lost the broker at once should not all retry in the same 10 ms.
        let b = Backoff::default();
        let mut delays: Vec<u64> = (0..1000)
            .map(|seed| Jitter::new(seed).delay_ms(&b, 3))
            .collect();
        delays.sort_unstable();
        delays.dedup_by(|x, y| *x / 10 == *y / 10);
        assert!(
            delays.len() > 150,
            "only {} distinct 10 ms slots",
            delays.len()
        );
    }
}

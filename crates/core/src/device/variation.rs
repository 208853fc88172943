//! Per-device variation in a fleet: a phase offset and seeded noise (§4.1).

use serde::{Deserialize, Serialize};

use crate::device::params::{ParamsError, finite, non_negative};

/// How one device departs from the original formula so a fleet does not move in lockstep.
///
/// [`FleetVariation::NONE`] gives exactly the original device's curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FleetVariation {
    /// Offset added to the step before the sine, in steps (one period is 2π·40 ≈ 251 steps).
    pub phase_steps: f64,
    /// Half-width of the uniform noise added to temperature and humidity (°C and %).
    pub noise_amplitude: f64,
    /// Seed of this device's noise.
    pub seed: u64,
}

/// Which reading a noise value is for: temperature and humidity get independent noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    Temperature,
    Humidity,
}

impl FleetVariation {
    /// No variation: the original formula, exactly.
    pub const NONE: FleetVariation = FleetVariation {
        phase_steps: 0.0,
        noise_amplitude: 0.0,
        seed: 0,
    };

    /// Checks that the offset and amplitude are finite and the amplitude not negative.
    pub fn validate(&self) -> Result<(), ParamsError> {
        finite("phase_steps", self.phase_steps)?;
        finite("noise_amplitude", self.noise_amplitude)?;
        non_negative("noise_amplitude", self.noise_amplitude)
    }

    /// The noise at step `x`, uniform in `[-noise_amplitude, noise_amplitude)`.
    ///
    /// Counter-based (a hash of seed, channel and step) rather than drawn from a stream: the
    /// value at step `x` does not depend on what was drawn before, so the actual and the
    /// counterfactual curves share it, and a replay from any step gives the same series.
    pub(crate) fn noise(&self, x: u64, channel: Channel) -> f64 {
        if self.noise_amplitude == 0.0 {
            return 0.0;
        }
        let key = mix(self.seed.wrapping_add(match channel {
            Channel::Temperature => 0x7445_4d50, // "tEMP"
            Channel::Humidity => 0x6855_4d44,    // "hUMD"
        }));
        self.noise_amplitude * (2.0 * unit(mix(key ^ x)) - 1.0)
    }
}

impl Default for FleetVariation {
    fn default() -> Self {
        FleetVariation::NONE
    }
}

/// SplitMix64's finalizer: a bijective mix of 64 bits, so distinct steps get distinct hashes.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps 64 random bits to `[0, 1)` using the top 53 (a double's precision).
pub(crate) fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_variation_means_no_noise() {
        for x in 0..100 {
            assert_eq!(FleetVariation::NONE.noise(x, Channel::Temperature), 0.0);
        }
    }

    #[test]
    fn noise_is_bounded_deterministic_and_per_channel() {
        let v = FleetVariation {
            phase_steps: 0.0,
            noise_amplitude: 0.05,
            seed: 7,
        };
        let mut differs = false;
        for x in 0..1000 {
            let t = v.noise(x, Channel::Temperature);
            assert!((-0.05..0.05).contains(&t));
            assert_eq!(t, v.noise(x, Channel::Temperature));
            differs |= t != v.noise(x, Channel::Humidity);
        }
        assert!(differs);
    }

    #[test]
    fn validates() {
        let mut v = FleetVariation::NONE;
        v.noise_amplitude = -1.0;
        assert!(v.validate().is_err());
        v.noise_amplitude = 0.1;
        v.phase_steps = f64::NAN;
        assert!(v.validate().is_err());
    }
}

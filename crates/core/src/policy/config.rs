//! The remediation policy's settings (§4.5).

use serde::{Deserialize, Serialize};

/// Settings of the remediation policy.
///
/// Why hysteresis and a minimum hold: with the defaults a device exceeds the band only near
/// its sine's peaks, and a remediated device (amplitude 0.3 around 27 °C) is inside the band
/// at once. "Release when inside" would therefore release on the next reading and cool again
/// on the one after: a command every reading. So a release needs both the minimum hold to
/// have elapsed and the reading to be inside the narrower band
/// `[band_min + hysteresis, band_max - hysteresis]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyConfig {
    /// Lower edge of the band, °C (26.0: the original's "minimum < 26" alarm).
    pub band_min: f64,
    /// Upper edge of the band, °C (28.0: the original's "maximum > 28" alarm).
    pub band_max: f64,
    /// How far inside the band a reading must be to release, °C (0.5).
    pub hysteresis: f64,
    /// Shortest remediation before a release or a reversal, ms (120 000 = 2 min).
    pub min_hold_ms: u64,
    /// The hold sent with `cool`/`heat`, s (300): the device ends the remediation by itself
    /// after it, in case the `release` is lost. The policy then knows the device
    /// self-released once `now - since > hold_s` and goes idle without sending anything.
    /// `0` means no device-side expiry.
    pub hold_s: u32,
    /// Whether commands are sent (the original's `REMEDIATION_LOGIC`). Disabled, every
    /// reading still gets a recorded decision, with reason `Disabled`.
    pub enabled: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            band_min: 26.0,
            band_max: 28.0,
            hysteresis: 0.5,
            min_hold_ms: 120_000,
            hold_s: 300,
            enabled: true,
        }
    }
}

/// Why a [`PolicyConfig`] is unusable.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum PolicyConfigError {
    /// A setting is NaN or infinite.
    #[error("{param} must be a finite number")]
    NotFinite {
        /// The setting's name.
        param: &'static str,
    },
    /// `band_min` is not below `band_max`.
    #[error("band_min ({band_min}) must be below band_max ({band_max})")]
    EmptyBand {
        /// Lower edge.
        band_min: f64,
        /// Upper edge.
        band_max: f64,
    },
    /// The hysteresis is negative or leaves no room to release in.
    #[error("hysteresis {hysteresis} must be in 0..={max}")]
    Hysteresis {
        /// The hysteresis given.
        hysteresis: f64,
        /// Half the band's width.
        max: f64,
    },
}

impl PolicyConfig {
    /// Checks that the band is a real interval and the release band inside it is not empty.
    pub fn validate(&self) -> Result<(), PolicyConfigError> {
        for (param, v) in [
            ("band_min", self.band_min),
            ("band_max", self.band_max),
            ("hysteresis", self.hysteresis),
        ] {
            if !v.is_finite() {
                return Err(PolicyConfigError::NotFinite { param });
            }
        }
        if self.band_min >= self.band_max {
            return Err(PolicyConfigError::EmptyBand {
                band_min: self.band_min,
                band_max: self.band_max,
            });
        }
        let max = (self.band_max - self.band_min) / 2.0;
        if !(0.0..=max).contains(&self.hysteresis) {
            return Err(PolicyConfigError::Hysteresis {
                hysteresis: self.hysteresis,
                max,
            });
        }
        Ok(())
    }

    /// The band's midpoint: every command's `reference_temperature`. A legacy device,
    /// which cools when the reference is below its reading, thus cools above it and warms
    /// below it.
    pub fn reference_temperature(&self) -> f64 {
        (self.band_min + self.band_max) / 2.0
    }

    /// Whether `t` is inside the release band `[band_min + h, band_max - h]`.
    pub fn in_release_band(&self, t: f64) -> bool {
        (self.band_min + self.hysteresis..=self.band_max - self.hysteresis).contains(&t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = PolicyConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.reference_temperature(), 27.0);
        assert!(c.in_release_band(26.5) && c.in_release_band(27.5));
        assert!(!c.in_release_band(27.6) && !c.in_release_band(26.4));
    }

    #[test]
    fn rejects_bad_bands() {
        let with = |f: fn(&mut PolicyConfig)| {
            let mut c = PolicyConfig::default();
            f(&mut c);
            c.validate()
        };
        assert!(matches!(
            with(|c| c.band_min = 28.0),
            Err(PolicyConfigError::EmptyBand { .. })
        ));
        assert!(matches!(
            with(|c| c.hysteresis = 1.5),
            Err(PolicyConfigError::Hysteresis { .. })
        ));
        assert!(matches!(
            with(|c| c.hysteresis = -0.1),
            Err(PolicyConfigError::Hysteresis { .. })
        ));
        assert!(matches!(
            with(|c| c.band_max = f64::NAN),
            Err(PolicyConfigError::NotFinite { param: "band_max" })
        ));
    }
}

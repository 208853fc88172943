//! The device's parameters (§4.1), with the original stack's defaults.

use serde::{Deserialize, Serialize};

/// Parameters of the device's curve. The defaults are the original device's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceParams {
    /// Amplitude of the environment's sine (`VELOCITY`, 1.1).
    pub velocity: f64,
    /// Seconds between readings (`UPDATE_FREQUENCY`, 2).
    pub update_frequency_s: f64,
    /// Amplitude while a remediation is active (`REMEDIATION_FACTOR`, 0.3).
    pub remediation_factor: f64,
    /// Baseline temperature, °C (`MIN_TEMP`, 27.0).
    pub min_temp: f64,
    /// Baseline relative humidity, % (`MIN_HUM`, 60.0).
    pub min_hum: f64,
}

impl Default for DeviceParams {
    fn default() -> Self {
        DeviceParams {
            velocity: 1.1,
            update_frequency_s: 2.0,
            remediation_factor: 0.3,
            min_temp: 27.0,
            min_hum: 60.0,
        }
    }
}

/// Why device parameters (or a fleet variation) are unusable.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// A parameter is NaN or infinite.
    #[error("{param} must be a finite number")]
    NotFinite {
        /// The parameter's name.
        param: &'static str,
    },
    /// An amplitude is negative (a sign flip nobody means).
    #[error("{param} must not be negative, got {value}")]
    Negative {
        /// The parameter's name.
        param: &'static str,
        /// The value given.
        value: f64,
    },
    /// The update frequency is zero or negative: the device would never, or always, publish.
    #[error("update_frequency_s must be positive, got {value}")]
    UpdateFrequency {
        /// The value given.
        value: f64,
    },
}

impl DeviceParams {
    /// Checks that every parameter is finite, amplitudes are not negative and the update
    /// frequency is positive.
    pub fn validate(&self) -> Result<(), ParamsError> {
        finite("velocity", self.velocity)?;
        finite("update_frequency_s", self.update_frequency_s)?;
        finite("remediation_factor", self.remediation_factor)?;
        finite("min_temp", self.min_temp)?;
        finite("min_hum", self.min_hum)?;
        non_negative("velocity", self.velocity)?;
        non_negative("remediation_factor", self.remediation_factor)?;
        if self.update_frequency_s <= 0.0 {
            return Err(ParamsError::UpdateFrequency {
                value: self.update_frequency_s,
            });
        }
        Ok(())
    }

    /// Milliseconds between readings (at least 1).
    pub fn update_period_ms(&self) -> u64 {
        // Float-to-int `as` saturates, and validation keeps the value finite and positive.
        ((self.update_frequency_s * 1000.0).round() as u64).max(1)
    }
}

pub(crate) fn finite(param: &'static str, value: f64) -> Result<(), ParamsError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(ParamsError::NotFinite { param })
    }
}

pub(crate) fn non_negative(param: &'static str, value: f64) -> Result<(), ParamsError> {
    if value < 0.0 {
        Err(ParamsError::Negative { param, value })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals() {
        let p = DeviceParams::default();
        assert_eq!(
            (
                p.velocity,
                p.update_frequency_s,
                p.remediation_factor,
                p.min_temp,
                p.min_hum
            ),
            (1.1, 2.0, 0.3, 27.0, 60.0)
        );
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.update_period_ms(), 2000);
    }

    #[test]
    fn rejects_unusable_values() {
        let bad = |f: fn(&mut DeviceParams)| {
            let mut p = DeviceParams::default();
            f(&mut p);
            p.validate().unwrap_err()
        };
        assert_eq!(
            bad(|p| p.velocity = f64::NAN),
            ParamsError::NotFinite { param: "velocity" }
        );
        assert_eq!(
            bad(|p| p.min_hum = f64::INFINITY),
            ParamsError::NotFinite { param: "min_hum" }
        );
        assert_eq!(
            bad(|p| p.update_frequency_s = 0.0),
            ParamsError::UpdateFrequency { value: 0.0 }
        );
        assert_eq!(
            bad(|p| p.remediation_factor = -0.1),
            ParamsError::Negative {
                param: "remediation_factor",
                value: -0.1
            }
        );
    }

    #[test]
    fn partial_json_fills_defaults() {
        let p: DeviceParams = serde_json::from_str(r#"{"velocity":2.0}"#).unwrap();
        assert_eq!(p.velocity, 2.0);
        assert_eq!(p.min_temp, 27.0);
    }
}

//! Flags shared by the subcommands that simulate devices.

use clap::Args;
use fleet_core::DeviceParams;

/// The original `monitoring` CLI's device parameters: same flags, same environment
/// variables, same defaults (ARCHITECTURE §4.1).
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// Amplitude of the environment's sine.
    #[arg(long, env = "VELOCITY", default_value_t = 1.1)]
    pub velocity: f64,
    /// Seconds between readings.
    #[arg(long, env = "UPDATE_FREQUENCY", default_value_t = 2.0)]
    pub update_frequency: f64,
    /// Amplitude of the sine while a remediation is active.
    #[arg(long, env = "REMEDIATION_FACTOR", default_value_t = 0.3)]
    pub remediation_factor: f64,
    /// Baseline temperature, °C.
    #[arg(long, env = "MIN_TEMP", default_value_t = 27.0)]
    pub min_temp: f64,
    /// Baseline relative humidity, %.
    #[arg(long, env = "MIN_HUM", default_value_t = 60.0)]
    pub min_hum: f64,
}

impl DeviceArgs {
    /// The parameters, validated.
    pub fn params(&self) -> Result<DeviceParams, fleet_core::device::ParamsError> {
        let params = DeviceParams {
            velocity: self.velocity,
            update_frequency_s: self.update_frequency,
            remediation_factor: self.remediation_factor,
            min_temp: self.min_temp,
            min_hum: self.min_hum,
        };
        params.validate()?;
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        device: DeviceArgs,
    }

    #[test]
    fn defaults_are_the_originals() {
        let p = Probe::try_parse_from(["probe"]).unwrap();
        assert_eq!(p.device.params().unwrap(), DeviceParams::default());
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let p = Probe::try_parse_from(["probe", "--update-frequency", "0"]).unwrap();
        let err = p.device.params().unwrap_err().to_string();
        assert!(err.contains("update_frequency"), "{err}");
        assert!(Probe::try_parse_from(["probe", "--velocity", "fast"]).is_err());
    }
}

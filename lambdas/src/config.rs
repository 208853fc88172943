//! Each function's settings, from environment variables read once at init.
//!
//! A missing or invalid variable fails the start with its name, so a wrong template shows
//! in the first log line instead of as odd behaviour later.

use std::collections::BTreeSet;

use fleet_core::device::DEFAULT_DEVICE_ID;
use fleet_core::plan::{OTHER_BUILDING, UNKNOWN_BUILDING};
use fleet_core::{AlarmConfig, BuildingId, DeviceId, PolicyConfig, WorkerConfig};
use fleet_pipeline::PipelineConfig;

/// A variable is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set (or empty).
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {name} is invalid ({value:?}): {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why it is unusable.
        reason: String,
    },
}

/// Where variables come from: the process environment, or a map in tests.
pub trait Env {
    /// The variable's value, `None` if unset.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

fn required(env: &impl Env, name: &'static str) -> Result<String, ConfigError> {
    optional(env, name).ok_or(ConfigError::Missing(name))
}

fn optional(env: &impl Env, name: &'static str) -> Option<String> {
    env.var(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn parsed<T>(env: &impl Env, name: &'static str) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let value = required(env, name)?;
    value.parse().map_err(|e: T::Err| ConfigError::Invalid {
        name,
        reason: e.to_string(),
        value,
    })
}

fn invalid(name: &'static str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.into(),
        reason: reason.into(),
    }
}

/// `TLS_ROOTS`: which root certificates the AWS clients trust, `amazon` (the default:
/// Amazon Trust Services only, compiled in) or `platform` (the system's store too).
pub fn trust_roots(env: &impl Env) -> Result<crate::aws::TrustRoots, ConfigError> {
    use crate::aws::TrustRoots;
    match optional(env, "TLS_ROOTS").as_deref() {
        None | Some("amazon") => Ok(TrustRoots::Amazon),
        Some("platform") => Ok(TrustRoots::Platform),
        Some(other) => Err(invalid(
            "TLS_ROOTS",
            other,
            "expected `amazon` (the default) or `platform`",
        )),
    }
}

/// `BAND_MIN` and `BAND_MAX` into every part of a [`PipelineConfig`], validated.
fn pipeline(env: &impl Env) -> Result<PipelineConfig, ConfigError> {
    let band_min: f64 = parsed(env, "BAND_MIN")?;
    let band_max: f64 = parsed(env, "BAND_MAX")?;
    let policy = PolicyConfig {
        band_min,
        band_max,
        ..PolicyConfig::default()
    };
    policy
        .validate()
        .map_err(|e| invalid("BAND_MIN", band_min.to_string(), e.to_string()))?;
    Ok(PipelineConfig {
        worker: WorkerConfig {
            band_min,
            band_max,
            ..WorkerConfig::default()
        },
        policy,
        alarms: AlarmConfig {
            band_min,
            band_max,
            ..AlarmConfig::default()
        },
    })
}

/// The worker's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSettings {
    /// `READINGS_TABLE`: the readings table's name.
    pub readings_table: String,
    /// `ARCHIVE_BUCKET`: the archive bucket's name.
    pub archive_bucket: String,
    /// The core's worker plan settings: `TTL_SECONDS`, `BAND_MIN`, `BAND_MAX`,
    /// `METRIC_DEVICES` (optional, comma-separated device ids with per-device metrics) and
    /// `METRIC_BUILDINGS` (optional, comma-separated building ids with a `Building`
    /// dimension of their own; default `1`..`10`, the others are counted as `other`).
    pub worker: WorkerConfig,
    /// `LEGACY_DEVICE_ID` (optional, default `381938912`): the device the original stack's
    /// client id `monitoring-device` speaks for.
    pub legacy_device: DeviceId,
}

/// A comma-separated list of ids (`METRIC_DEVICES`, `METRIC_BUILDINGS`): blanks around
/// items and empty items are ignored; a bad item names the variable, the list and the item.
fn id_list<T>(name: &'static str, list: &str) -> Result<BTreeSet<T>, ConfigError>
where
    T: for<'s> TryFrom<&'s str, Error = fleet_core::IdError> + Ord,
{
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|id| T::try_from(id).map_err(|e| invalid(name, list, format!("{id:?}: {e}"))))
        .collect()
}

impl WorkerSettings {
    /// Reads the worker's variables.
    pub fn from_env(env: &impl Env) -> Result<WorkerSettings, ConfigError> {
        let readings_table = required(env, "READINGS_TABLE")?;
        let archive_bucket = required(env, "ARCHIVE_BUCKET")?;
        let ttl_s: u64 = parsed(env, "TTL_SECONDS")?;
        if ttl_s == 0 {
            return Err(invalid("TTL_SECONDS", "0", "must be at least 1"));
        }
        let metric_devices = match optional(env, "METRIC_DEVICES") {
            Some(list) => id_list::<DeviceId>("METRIC_DEVICES", &list)?,
            None => BTreeSet::new(),
        };
        // Unset keeps the core's default; set, it must name at least one building (an
        // empty list would fold every building into `other`, which is never what a
        // template meant).
        let metric_buildings = match optional(env, "METRIC_BUILDINGS") {
            Some(list) => {
                let buildings = id_list::<BuildingId>("METRIC_BUILDINGS", &list)?;
                if let Some(reserved) = buildings
                    .iter()
                    .find(|b| [OTHER_BUILDING, UNKNOWN_BUILDING].contains(&b.as_str()))
                {
                    return Err(invalid(
                        "METRIC_BUILDINGS",
                        list.clone(),
                        format!(
                            "{:?} is the dimension value of the buildings not listed",
                            reserved.as_str()
                        ),
                    ));
                }
                if buildings.is_empty() {
                    return Err(invalid(
                        "METRIC_BUILDINGS",
                        list,
                        "lists no building id (unset it for the default 1..10)",
                    ));
                }
                buildings
            }
            None => WorkerConfig::default_metric_buildings(),
        };
        let legacy = optional(env, "LEGACY_DEVICE_ID");
        let legacy_device = DeviceId::try_from(legacy.as_deref().unwrap_or(DEFAULT_DEVICE_ID))
            .map_err(|e| {
                invalid(
                    "LEGACY_DEVICE_ID",
                    legacy.clone().unwrap_or_default(),
                    e.to_string(),
                )
            })?;
        let worker = WorkerConfig {
            ttl_s,
            metric_devices,
            metric_buildings,
            ..pipeline(env)?.worker
        };
        Ok(WorkerSettings {
            readings_table,
            archive_bucket,
            worker,
            legacy_device,
        })
    }
}

/// The remediation function's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RemediationSettings {
    /// `DECISIONS_TABLE`: decisions and device states.
    pub decisions_table: String,
    /// `IOT_ENDPOINT` as an endpoint URL (`https://` added to a bare host).
    pub iot_endpoint: String,
    /// The policy: `BAND_MIN`, `BAND_MAX`, and `REMEDIATION_LOGIC` as `enabled`.
    pub policy: PolicyConfig,
}

impl RemediationSettings {
    /// Reads the remediation function's variables.
    pub fn from_env(env: &impl Env) -> Result<RemediationSettings, ConfigError> {
        let decisions_table = required(env, "DECISIONS_TABLE")?;
        let iot_endpoint = iot_endpoint(env)?;
        let flag = required(env, "REMEDIATION_LOGIC")?;
        let enabled = match flag.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(invalid("REMEDIATION_LOGIC", flag, "expected true or false")),
        };
        let policy = PolicyConfig {
            enabled,
            ..pipeline(env)?.policy
        };
        Ok(RemediationSettings {
            decisions_table,
            iot_endpoint,
            policy,
        })
    }
}

/// The notifier's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierSettings {
    /// `IOT_ENDPOINT` as an endpoint URL.
    pub iot_endpoint: String,
    /// `ALARMS_TOPIC` (default `dt/monitoring/alarms`).
    pub alarms_topic: String,
}

impl NotifierSettings {
    /// Reads the notifier's variables.
    pub fn from_env(env: &impl Env) -> Result<NotifierSettings, ConfigError> {
        let iot_endpoint = iot_endpoint(env)?;
        let alarms_topic = optional(env, "ALARMS_TOPIC")
            .unwrap_or_else(|| fleet_core::topic::ALARMS_TOPIC.to_owned());
        if alarms_topic.contains(['+', '#']) {
            return Err(invalid(
                "ALARMS_TOPIC",
                alarms_topic,
                "wildcards cannot be published to",
            ));
        }
        Ok(NotifierSettings {
            iot_endpoint,
            alarms_topic,
        })
    }
}

/// `IOT_ENDPOINT`: the account's `xxxx-ats.iot.REGION.amazonaws.com` host, or a URL.
fn iot_endpoint(env: &impl Env) -> Result<String, ConfigError> {
    let value = required(env, "IOT_ENDPOINT")?;
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(value.trim_end_matches('/').to_owned())
    } else if value.contains(['/', ' ', ':']) {
        Err(invalid(
            "IOT_ENDPOINT",
            value,
            "expected a host name or an https:// URL",
        ))
    } else {
        Ok(format!("https://{value}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Env {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    const WORKER: [(&str, &str); 6] = [
        ("READINGS_TABLE", "readings"),
        ("ARCHIVE_BUCKET", "archive"),
        ("TTL_SECONDS", "86400"),
        ("BAND_MIN", "26"),
        ("BAND_MAX", "28"),
        ("METRIC_DEVICES", "d-0001, 381938912"),
    ];

    #[test]
    fn worker_settings_read_every_variable() {
        let s = WorkerSettings::from_env(&env(&WORKER)).unwrap();
        assert_eq!(s.readings_table, "readings");
        assert_eq!(s.worker.ttl_s, 86_400);
        assert_eq!(s.worker.metric_devices.len(), 2);
        assert_eq!((s.worker.band_min, s.worker.band_max), (26.0, 28.0));
        // Unset: the original device's id and the core's buildings.
        assert_eq!(s.legacy_device.as_str(), "381938912");
        assert_eq!(
            s.worker.metric_buildings,
            WorkerConfig::default_metric_buildings()
        );
    }

    #[test]
    fn the_legacy_device_and_the_metric_buildings_are_read_and_validated() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = WORKER.to_vec();
            pairs.extend_from_slice(extra);
            WorkerSettings::from_env(&env(&pairs))
        };
        let s = with(&[
            ("LEGACY_DEVICE_ID", " lab-7 "),
            ("METRIC_BUILDINGS", "1, hq ,,browser"),
        ])
        .unwrap();
        assert_eq!(s.legacy_device.as_str(), "lab-7");
        let buildings: Vec<&str> = s
            .worker
            .metric_buildings
            .iter()
            .map(|b| b.as_str())
            .collect();
        assert_eq!(buildings, ["1", "browser", "hq"]);

        for (name, value, says) in [
            ("LEGACY_DEVICE_ID", "monitoring device", "' '"),
            ("METRIC_BUILDINGS", "1,b/2", "\"b/2\""),
            ("METRIC_BUILDINGS", ",,", "no building"),
            ("METRIC_BUILDINGS", "1,other", "\"other\""),
            ("METRIC_BUILDINGS", "unknown", "\"unknown\""),
        ] {
            let err = with(&[(name, value)]).unwrap_err().to_string();
            assert!(
                err.contains(name) && err.contains(value) && err.contains(says),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn a_missing_or_bad_variable_is_named() {
        for name in [
            "READINGS_TABLE",
            "ARCHIVE_BUCKET",
            "TTL_SECONDS",
            "BAND_MIN",
            "BAND_MAX",
        ] {
            let pairs: Vec<_> = WORKER.iter().copied().filter(|(k, _)| *k != name).collect();
            let err = WorkerSettings::from_env(&env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
        let mut pairs = WORKER.to_vec();
        pairs[2] = ("TTL_SECONDS", "a day");
        let err = WorkerSettings::from_env(&env(&pairs))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TTL_SECONDS") && err.contains("a day"),
            "{err}"
        );
        pairs[2] = ("TTL_SECONDS", "60");
        pairs[5] = ("METRIC_DEVICES", "d-1,bad id");
        let err = WorkerSettings::from_env(&env(&pairs))
            .unwrap_err()
            .to_string();
        assert!(err.contains("METRIC_DEVICES"), "{err}");
        pairs[5] = ("BAND_MAX", "20");
        let err = WorkerSettings::from_env(&env(&pairs))
            .unwrap_err()
            .to_string();
        assert!(err.contains("BAND_MIN"), "{err}");
    }

    #[test]
    fn remediation_and_notifier_settings() {
        let base = [
            ("DECISIONS_TABLE", "decisions"),
            ("IOT_ENDPOINT", "abc-ats.iot.eu-west-1.amazonaws.com"),
            ("REMEDIATION_LOGIC", "false"),
            ("BAND_MIN", "26"),
            ("BAND_MAX", "28"),
        ];
        let s = RemediationSettings::from_env(&env(&base)).unwrap();
        assert!(!s.policy.enabled);
        assert_eq!(
            s.iot_endpoint,
            "https://abc-ats.iot.eu-west-1.amazonaws.com"
        );
        let mut bad = base;
        bad[2] = ("REMEDIATION_LOGIC", "maybe");
        let err = RemediationSettings::from_env(&env(&bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains("REMEDIATION_LOGIC"), "{err}");

        let n = NotifierSettings::from_env(&env(&[("IOT_ENDPOINT", "http://127.0.0.1:5000/")]))
            .unwrap();
        assert_eq!(n.iot_endpoint, "http://127.0.0.1:5000");
        assert_eq!(n.alarms_topic, "dt/monitoring/alarms");
        let err = NotifierSettings::from_env(&env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("IOT_ENDPOINT"), "{err}");
    }

    #[test]
    fn trust_roots_default_to_amazons_and_name_a_bad_value() {
        use crate::aws::TrustRoots;
        assert_eq!(trust_roots(&env(&[])).unwrap(), TrustRoots::Amazon);
        assert_eq!(
            trust_roots(&env(&[("TLS_ROOTS", " platform ")])).unwrap(),
            TrustRoots::Platform
        );
        let err = trust_roots(&env(&[("TLS_ROOTS", "system")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TLS_ROOTS") && err.contains("system"), "{err}");
    }
}

//! `fleet-devices.json`: what `fleet aws provision` created, so that `fleet aws deprovision`
//! removes exactly that.
//!
//! One object: the account, region, data endpoint and policy of the run, and per device (keyed by
//! its id, which is also its thing name) each step AWS confirmed: the thing's ARN, the
//! certificate's id and ARN, whether its files were written, and the two attachments. A
//! device that failed halfway shows exactly how far it got. The file is replaced atomically
//! (written beside, then renamed), so a crash leaves the previous version, never half of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The manifest's file name inside the certificate directory.
pub const FILE_NAME: &str = "fleet-devices.json";

/// The format version this build writes and reads.
const FORMAT: u32 = 1;

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version (1).
    pub format: u32,
    /// The AWS account the things live in.
    pub account: String,
    /// The AWS region the things live in.
    pub region: String,
    /// The account's `iot:Data-ATS` endpoint (devices connect there, port 8883).
    pub endpoint: String,
    /// The AWS-compatible server used instead of AWS, if any (`--endpoint-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The IoT policy attached to every certificate.
    pub policy: String,
    /// Whether `provision` wrote the root CA file (false: it was there before, and stays).
    pub root_ca_written: bool,
    /// Whether `provision` created the directory (removed again when empty).
    pub created_dir: bool,
    /// Per device id (= thing name), what exists.
    pub devices: BTreeMap<String, DeviceRecord>,
}

/// What exists for one device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The thing's ARN, once created (its name is the device id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thing_arn: Option<String>,
    /// The certificate, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
    /// Whether `{id}.cert.pem` and `{id}.private.key` were written.
    #[serde(default)]
    pub files: bool,
    /// Whether the policy is attached to the certificate.
    #[serde(default)]
    pub policy_attached: bool,
    /// Whether the certificate is attached to the thing.
    #[serde(default)]
    pub thing_attached: bool,
}

/// A certificate's identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// Certificate id.
    pub id: String,
    /// Certificate ARN.
    pub arn: String,
}

impl DeviceRecord {
    /// Every step done: the device can connect.
    pub fn is_complete(&self) -> bool {
        self.thing_arn.is_some()
            && self.certificate.is_some()
            && self.files
            && self.policy_attached
            && self.thing_attached
    }

    /// Anything exists on AWS for it.
    pub fn created_anything(&self) -> bool {
        self.thing_arn.is_some() || self.certificate.is_some()
    }
}

impl Manifest {
    /// The manifest's path in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Reads the manifest in `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<Manifest>> {
        let path = Manifest::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a fleet device manifest", path.display()))?;
        if manifest.format != FORMAT {
            bail!(
                "{} has format {}; this fleet reads format {FORMAT}",
                path.display(),
                manifest.format
            );
        }
        Ok(Some(manifest))
    }

    /// A new, empty manifest.
    pub fn new(account: String, region: String, endpoint: String, policy: String) -> Manifest {
        Manifest {
            format: FORMAT,
            account,
            region,
            endpoint,
            endpoint_url: None,
            policy,
            root_ca_written: false,
            created_dir: false,
            devices: BTreeMap::new(),
        }
    }

    /// Writes the manifest into `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Manifest::path(dir);
        let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            serde_json::to_writer_pretty(&mut file, self)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().with_context(|| format!("writing {}", path.display()))
    }

    /// Removes the manifest from `dir` (gone already is fine).
    pub fn remove(dir: &Path) -> Result<bool> {
        let path = Manifest::path(dir);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_survives_a_round_trip_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), None);
        let mut m = Manifest::new(
            "123456789012".into(),
            "eu-west-1".into(),
            "x-ats.iot".into(),
            "P".into(),
        );
        m.devices.insert(
            "d-0001".into(),
            DeviceRecord {
                thing_arn: Some("arn:thing".into()),
                certificate: Some(Certificate {
                    id: "abc".into(),
                    arn: "arn:cert".into(),
                }),
                files: true,
                policy_attached: true,
                thing_attached: false,
            },
        );
        m.save(dir.path()).unwrap();
        let back = Manifest::load(dir.path()).unwrap().unwrap();
        assert_eq!(back, m);
        assert!(!back.devices["d-0001"].is_complete());
        assert!(back.devices["d-0001"].created_anything());
        assert!(Manifest::remove(dir.path()).unwrap());
        assert!(!Manifest::remove(dir.path()).unwrap());
    }

    #[test]
    fn a_foreign_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "{\"hello\": 1}").unwrap();
        let err = format!("{:#}", Manifest::load(dir.path()).unwrap_err());
        assert!(
            err.contains("fleet-devices.json is not a fleet device manifest"),
            "{err}"
        );
    }
}

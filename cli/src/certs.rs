//! Per-device certificate files in one directory: the layout `fleet aws provision` writes
//! and `fleet sim --cert-dir` reads.
//!
//! `DIR/{id}.cert.pem` and `DIR/{id}.private.key` for each device (the names `fleet local
//! cert` also uses, under `DATA/certs/devices/`), and `DIR/AmazonRootCA1.pem`, the original
//! CLI's name for the CA that signed the broker's certificate. One home for these names, so
//! the writer and the reader cannot drift apart.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fleet_client::TlsFiles;
use fleet_core::DeviceId;

/// A directory of per-device certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCertDir {
    dir: PathBuf,
}

impl DeviceCertDir {
    /// File name of the root CA inside the directory (the original CLI's).
    pub const ROOT_CA: &'static str = "AmazonRootCA1.pem";

    /// The certificates under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> DeviceCertDir {
        DeviceCertDir { dir: dir.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A device's certificate, PEM.
    pub fn cert(&self, id: &DeviceId) -> PathBuf {
        self.dir.join(format!("{id}.cert.pem"))
    }

    /// A device's private key, PEM (mode 0600 when `fleet` writes it).
    pub fn key(&self, id: &DeviceId) -> PathBuf {
        self.dir.join(format!("{id}.private.key"))
    }

    /// The root CA in the directory.
    pub fn root_ca(&self) -> PathBuf {
        self.dir.join(Self::ROOT_CA)
    }
}

/// Where each simulated device gets its TLS files from.
#[derive(Debug, Clone)]
pub enum DeviceTls {
    /// Every device uses the same files (`--root-ca/--cert/--key`).
    Shared(TlsFiles),
    /// Each device uses its own certificate and key from a directory (`--cert-dir`).
    PerDevice {
        /// The directory.
        dir: DeviceCertDir,
        /// The CA every device trusts.
        root_ca: PathBuf,
    },
}

impl DeviceTls {
    /// The files device `id` connects with.
    pub fn for_device(&self, id: &DeviceId) -> TlsFiles {
        match self {
            DeviceTls::Shared(files) => files.clone(),
            DeviceTls::PerDevice { dir, root_ca } => {
                TlsFiles::new(root_ca).with_identity(dir.cert(id), dir.key(id))
            }
        }
    }

    /// Reads every device's files once, so that a missing or unusable file stops the
    /// fleet before its first connection, naming the file (instead of the fleet half
    /// started when device 500 of 1000 finds nothing).
    pub fn check<'a>(&self, ids: impl IntoIterator<Item = &'a DeviceId>) -> Result<()> {
        match self {
            DeviceTls::Shared(files) => {
                files.load().context("TLS files")?;
            }
            DeviceTls::PerDevice { dir, root_ca } => {
                if !root_ca.is_file() {
                    bail!(
                        "missing root CA file {} (give --root-ca for another one)",
                        root_ca.display()
                    );
                }
                for id in ids {
                    for (what, path) in
                        [("certificate", dir.cert(id)), ("private key", dir.key(id))]
                    {
                        if !path.is_file() {
                            bail!(
                                "missing {what} file for device {id}: {} (`fleet aws provision` \
                                 writes it on AWS; for the local stack, `fleet local cert --device {id}`)",
                                path.display()
                            );
                        }
                    }
                    self.for_device(id)
                        .load()
                        .with_context(|| format!("device {id}"))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::try_from(s).unwrap()
    }

    #[test]
    fn file_names_follow_the_device_id() {
        let dir = DeviceCertDir::new("certs");
        assert_eq!(dir.cert(&id("d-0001")), Path::new("certs/d-0001.cert.pem"));
        assert_eq!(
            dir.key(&id("d-0001")),
            Path::new("certs/d-0001.private.key")
        );
        assert_eq!(dir.root_ca(), Path::new("certs/AmazonRootCA1.pem"));
    }

    #[test]
    fn a_missing_file_is_named_with_its_device() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("ca.pem"), "").unwrap();
        let tls = DeviceTls::PerDevice {
            dir: DeviceCertDir::new(tmp.path()),
            root_ca: tmp.path().join("ca.pem"),
        };
        let err = tls.check([&id("d-0002")]).unwrap_err().to_string();
        assert!(err.contains("certificate file for device d-0002"), "{err}");
        assert!(err.contains("d-0002.cert.pem"), "{err}");

        let tls = DeviceTls::PerDevice {
            dir: DeviceCertDir::new(tmp.path()),
            root_ca: tmp.path().join("nope.pem"),
        };
        let err = tls.check([&id("d-0002")]).unwrap_err().to_string();
        assert!(err.contains("missing root CA file"), "{err}");
        assert!(err.contains("nope.pem"), "{err}");
    }

    #[test]
    fn per_device_files_are_the_devices_own() {
        let tls = DeviceTls::PerDevice {
            dir: DeviceCertDir::new("/c"),
            root_ca: PathBuf::from("/ca.pem"),
        };
        let files = tls.for_device(&id("d-0007"));
        assert_eq!(files.ca, Path::new("/ca.pem"));
        let identity = files.identity.unwrap();
        assert_eq!(identity.cert, Path::new("/c/d-0007.cert.pem"));
        assert_eq!(identity.key, Path::new("/c/d-0007.private.key"));
    }
}

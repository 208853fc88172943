//! A local certificate authority for mutual TLS, as AWS IoT Core does it: the broker presents
//! a server certificate, and every device presents its own certificate signed by a CA the
//! broker trusts.
//!
//! Files (under `DATA/certs/`), named like the original stack's device files:
//! - `ca.pem`, `ca.private.key`: the CA (a device's `--root-ca`);
//! - `server.cert.pem`, `server.private.key`, `server.names`: the broker's certificate and
//!   the names it was issued for (it is re-issued when `--tls-name` changes);
//! - `devices/{id}.cert.pem`, `devices/{id}.private.key`: one pair per device
//!   (`--cert`/`--key`), from `fleet local cert --device ID`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fleet_core::DeviceId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Certificates could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Generating or signing failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file is not what it should be.
    #[error("{path}: not a valid PEM {what}: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
        /// Why.
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A device id that cannot name a file.
    #[error("invalid device id {0:?}: {1}")]
    DeviceId(String, fleet_core::IdError),
}

/// The local CA's directory and files.
#[derive(Debug, Clone)]
pub struct CertDir {
    dir: PathBuf,
}

/// Paths of one device's certificate files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFiles {
    /// The CA certificate (`--root-ca`).
    pub root_ca: PathBuf,
    /// The device certificate (`--cert`).
    pub cert: PathBuf,
    /// The device's private key (`--key`).
    pub key: PathBuf,
}

const CA_NAME: &str = "Fleet local CA";

impl CertDir {
    /// The certificates under `dir` (created on demand).
    pub fn new(dir: impl Into<PathBuf>) -> CertDir {
        CertDir { dir: dir.into() }
    }

    /// The CA certificate file.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.private.key")
    }

    fn server_cert(&self) -> PathBuf {
        self.dir.join("server.cert.pem")
    }

    fn server_key(&self) -> PathBuf {
        self.dir.join("server.private.key")
    }

    fn server_names(&self) -> PathBuf {
        self.dir.join("server.names")
    }

    /// The files of a device.
    pub fn device_files(&self, device: &DeviceId) -> DeviceFiles {
        let devices = self.dir.join("devices");
        DeviceFiles {
            root_ca: self.ca_cert(),
            cert: devices.join(format!("{device}.cert.pem")),
            key: devices.join(format!("{device}.private.key")),
        }
    }

    /// The CA's issuer, created (with its files) on first use.
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, CertError> {
        let key_path = self.ca_key();
        // The issuer needs only the CA's name, key and usages, all fixed here, so the CA
        // certificate never has to be parsed back.
        let params = ca_params()?;
        if key_path.exists() && self.ca_cert().exists() {
            let key = KeyPair::from_pem(&read(&key_path)?)?;
            return Ok(Issuer::new(params, key));
        }
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write(&self.ca_cert(), cert.pem().as_bytes(), false)?;
        write(&key_path, key.serialize_pem().as_bytes(), true)?;
        Ok(Issuer::new(params, key))
    }

    /// Makes sure the CA and a server certificate for `names` exist; re-issues the server
    /// certificate when the names changed. Returns whether anything was created.
    pub fn ensure_server(&self, names: &[String]) -> Result<bool, CertError> {
        let wanted = names.join("\n");
        let current = fs::read_to_string(self.server_names()).ok();
        let ca_existed = self.ca_cert().exists();
        if ca_existed
            && current.as_deref() == Some(wanted.as_str())
            && self.server_cert().exists()
            && self.server_key().exists()
        {
            return Ok(false);
        }
        let issuer = self.issuer()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = name(names.first().map_or("fleet-local", String::as_str));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        write(&self.server_cert(), cert.pem().as_bytes(), false)?;
        write(&self.server_key(), key.serialize_pem().as_bytes(), true)?;
        write(&self.server_names(), wanted.as_bytes(), false)?;
        Ok(true)
    }

    /// Issues (or re-issues) a client certificate for a device.
    pub fn issue_device(&self, device: &str) -> Result<DeviceFiles, CertError> {
        let id =
            DeviceId::try_from(device).map_err(|e| CertError::DeviceId(device.to_owned(), e))?;
        let issuer = self.issuer()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(id.as_str());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let files = self.device_files(&id);
        write(&files.cert, cert.pem().as_bytes(), false)?;
        write(&files.key, key.serialize_pem().as_bytes(), true)?;
        Ok(files)
    }

    /// The broker's TLS configuration: its server certificate, and client certificates
    /// required and verified against the CA (mutual TLS).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in load_certs(&self.ca_cert())? {
            roots.add(ca)?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()?;
        let chain = load_certs(&self.server_cert())?;
        let key_path = self.server_key();
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|source| CertError::Pem {
            path: key_path.clone(),
            what: "private key",
            source,
        })?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        Ok(Arc::new(config))
    }
}

fn ca_params() -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name(CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let pem_error = |source| CertError::Pem {
        path: path.to_owned(),
        what: "certificate",
        source,
    };
    CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)
}

fn read(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes a file, private keys readable by the owner only.
fn write(path: &Path, contents: &[u8], private: bool) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_server_and_device_files_are_created_once_and_reissued_on_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let certs = CertDir::new(dir.path());
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        assert!(certs.ensure_server(&names).unwrap());
        assert!(
            !certs.ensure_server(&names).unwrap(),
            "nothing to do the second time"
        );
        let ca_before = fs::read(certs.ca_cert()).unwrap();
        assert!(certs.ensure_server(&["fleet.test".to_string()]).unwrap());
        assert_eq!(
            fs::read(certs.ca_cert()).unwrap(),
            ca_before,
            "the CA is kept"
        );
        let files = certs.issue_device("d-0001").unwrap();
        assert!(files.cert.ends_with("devices/d-0001.cert.pem"));
        assert!(
            fs::read_to_string(&files.key)
                .unwrap()
                .contains("PRIVATE KEY")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&files.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "private keys are not readable by others");
        }
        assert!(certs.server_config().is_ok());
    }

    #[test]
    fn device_ids_that_could_escape_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let certs = CertDir::new(dir.path());
        assert!(matches!(
            certs.issue_device("../x"),
            Err(CertError::DeviceId(..))
        ));
    }

    #[test]
    fn a_missing_certificate_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = CertDir::new(dir.path())
            .server_config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("ca.pem"), "{err}");
    }
}

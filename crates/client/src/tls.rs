//! TLS settings from PEM files, as AWS IoT Core hands them out: a root CA, a device
//! certificate and its private key (mutual TLS on port 8883).
//!
//! The files are read once, when the client is spawned, so a typo in a path fails at once
//! with the path in the message instead of at every reconnect.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::ring;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file with the CA certificate(s) that signed the broker's certificate
    /// (for IoT Core: `AmazonRootCA1.pem`).
    pub ca: PathBuf,
    /// The client certificate and key, for mutual TLS.
    pub identity: Option<Identity>,
}

/// A client certificate and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// PEM file with the client certificate, optionally followed by intermediates.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Server authentication only: trust the CA certificates in `ca`.
    pub fn new(ca: impl Into<PathBuf>) -> TlsFiles {
        TlsFiles {
            ca: ca.into(),
            identity: None,
        }
    }

    /// Adds a client certificate and key (mutual TLS).
    pub fn with_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some(Identity {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Reads the files and builds the rustls configuration.
    pub fn load(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in read_certs(&self.ca)? {
            roots.add(cert).map_err(|source| TlsError::BadCertificate {
                path: self.ca.clone(),
                source,
            })?;
        }
        // Name the provider instead of relying on the process default: the build enables
        // ring only, and an explicit provider keeps working if another crate in the same
        // binary enables a second one.
        let builder =
            rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(TlsError::Config)?
                .with_root_certificates(roots);
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let chain = read_certs(&identity.cert)?;
                let key = read_key(&identity.key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| TlsError::BadIdentity {
                        cert: identity.cert.clone(),
                        key: identity.key.clone(),
                        source,
                    })?
            }
        };
        Ok(Arc::new(config))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::ReadCertificate {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::NoKey(path.to_owned()),
        source => TlsError::ReadKey {
            path: path.to_owned(),
            source,
        },
    })
}

/// Bad TLS material or settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate file is missing, unreadable or not PEM.
    #[error("cannot read certificate file {}: {source}", path.display())]
    ReadCertificate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: pem::Error,
    },
    /// A PEM file without any `CERTIFICATE` block.
    #[error("no certificate found in {}", .0.display())]
    NoCertificate(PathBuf),
    /// A CA certificate that rustls cannot use as a trust anchor.
    #[error("cannot use the CA certificate in {}: {source}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The private key file is missing, unreadable or not PEM.
    #[error("cannot read private key file {}: {source}", path.display())]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: pem::Error,
    },
    /// A PEM file without a private key block.
    #[error("no private key found in {}", .0.display())]
    NoKey(PathBuf),
    /// The client certificate cannot be parsed (e.g. an X.509 v1 certificate, which
    /// webpki refuses), the key does not match it, or the key type is not supported.
    #[error(
        "cannot use the client certificate {} with the key {}: {source}",
        cert.display(),
        key.display()
    )]
    BadIdentity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// rustls refused the protocol settings.
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

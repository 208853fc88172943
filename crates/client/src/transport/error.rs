//! Transport failures, worded for the person reading the log.
//!
//! rustls reports problems as enum values wrapped in `io::Error`s; printed as they are they
//! read like `invalid peer certificate: UnknownIssuer`. The common ones are rewritten here
//! to say what is wrong and what to check; the source error is kept for callers.

use std::io;

use rustls::{AlertDescription, CertificateError};
use tokio_tungstenite::tungstenite;

/// Why a transport could not be opened, or failed while open.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Nothing listens on the broker's port.
    #[error("connection refused by {addr}")]
    Refused {
        /// `host:port`.
        addr: String,
        /// The socket error.
        source: io::Error,
    },
    /// The TCP connection could not be made (DNS, routing, ...).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The socket error.
        source: io::Error,
    },
    /// The host is not usable as a TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    /// `mqtts://` without TLS settings.
    #[error("mqtts:// needs TLS settings (at least a CA certificate file)")]
    NoTlsConfig,
    /// The TLS handshake failed.
    #[error("TLS handshake with {addr} failed: {}", describe(source))]
    TlsHandshake {
        /// `host:port`.
        addr: String,
        /// The error from rustls, wrapped in `io::Error`.
        source: io::Error,
    },
    /// The WebSocket upgrade failed.
    #[error("WebSocket handshake with {url} failed: {source}")]
    WsHandshake {
        /// The request URL.
        url: String,
        /// The error from tungstenite.
        source: Box<tungstenite::Error>,
    },
    /// Reading or writing failed on an open transport.
    #[error("{}", describe(.0))]
    Io(#[from] io::Error),
    /// The WebSocket failed on an open transport.
    #[error("WebSocket: {0}")]
    WebSocket(Box<tungstenite::Error>),
    /// MQTT over WebSocket uses binary frames only (MQTT 3.1.1 §6).
    #[error("the broker sent a WebSocket text frame; MQTT uses binary frames only")]
    TextFrame,
}

impl From<tungstenite::Error> for TransportError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Io(e) => TransportError::Io(e),
            e => TransportError::WebSocket(Box::new(e)),
        }
    }
}

/// An I/O error in plain words, with TLS errors spelled out.
fn describe(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => describe_tls(tls),
        None => e.to_string(),
    }
}

fn describe_tls(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "TLS: unknown issuer: the broker's certificate \
                is not signed by the configured CA certificate"
                .to_owned(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "TLS: the broker's certificate is not valid for this host name".to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: the broker's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS: the broker's certificate is not valid yet (check the clock)".to_owned()
            }
            other => format!("TLS: the broker's certificate is invalid: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::BadCertificate
            | AlertDescription::CertificateRequired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied
            | AlertDescription::HandshakeFailure => format!(
                "TLS: the broker rejected the connection (alert {alert:?}); check the client \
                 certificate and key, and that the broker trusts their CA"
            ),
            other => format!("TLS: the broker sent alert {other:?}"),
        },
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_io(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn tls_errors_read_plainly() {
        let e = TransportError::TlsHandshake {
            addr: "127.0.0.1:8883".into(),
            source: tls_io(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        };
        assert!(
            e.to_string()
                .starts_with("TLS handshake with 127.0.0.1:8883 failed: TLS: unknown issuer")
        );
        let e = TransportError::Io(tls_io(rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired,
        )));
        assert!(
            e.to_string()
                .contains("rejected the connection (alert CertificateRequired)")
        );
        let e = TransportError::Io(io::Error::new(io::ErrorKind::BrokenPipe, "broken pipe"));
        assert_eq!(e.to_string(), "broken pipe");
    }
}

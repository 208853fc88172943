//! Errors returned to callers of the client API.

use fleet_mqtt::{OptionsError, PublishError, SubscribeError};

use crate::tls::TlsError;
use crate::url::UrlError;

/// Why a client could not start, or a request was refused.
///
/// Connection failures are not errors of the API: the client reconnects by itself and
/// reports them as [`ClientEvent::Disconnected`](crate::ClientEvent::Disconnected).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker URL is not usable.
    #[error("invalid broker URL: {0}")]
    Url(#[from] UrlError),
    /// The MQTT options are not usable.
    #[error("invalid MQTT options: {0}")]
    Options(#[from] OptionsError),
    /// The TLS files are not usable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `mqtts://` without TLS files.
    #[error("{0} needs TLS files (at least the CA certificate)")]
    TlsRequired(String),
    /// TLS files for a URL that does not use TLS.
    #[error("TLS files were given but {0} does not use TLS (use mqtts://)")]
    TlsNotUsed(String),
    /// The client was started outside a tokio runtime.
    #[error("the client must be started from within a tokio runtime")]
    NoRuntime,
    /// The session refused the publish.
    #[error("publish refused: {0}")]
    Publish(#[from] PublishError),
    /// The session refused the subscribe or unsubscribe.
    #[error("subscribe refused: {0}")]
    Subscribe(#[from] SubscribeError),
    /// The client task has ended (after `disconnect`, or when the runtime shut down).
    #[error("the client has stopped")]
    Closed,
}

//! Authorization at the broker: who a client is (the application's [`Authenticator`]) and
//! what it may do (`fleet_core::access`), enforced on CONNECT, PUBLISH, SUBSCRIBE and every
//! delivery, with every refusal logged and counted by reason.
//!
//! The broker establishes nothing about identities itself: it hands what the client
//! presented (listener, peer address, client id, user name and password, the verified
//! certificate's common name) to the [`Authenticator`], which the application implements
//! (the local stack: its issued credentials and the loopback development mode). The rules
//! after that are `fleet_core::access`'s, the same table the AWS policies follow.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use fleet_core::access::{Action, Identity, Reason};

use crate::broker::ListenerKind;

/// What a client presented when it connected.
#[derive(Debug, Clone, Copy)]
pub struct ConnectRequest<'a> {
    /// The listener it came in on.
    pub listener: ListenerKind,
    /// Its address.
    pub peer: SocketAddr,
    /// The CONNECT's client id (an empty one is replaced by a generated id first).
    pub client_id: &'a str,
    /// The CONNECT's user name.
    pub username: Option<&'a str>,
    /// The CONNECT's password.
    pub password: Option<&'a [u8]>,
    /// On the TLS listener, the common name of the client certificate the handshake
    /// verified against the CA.
    pub certificate_name: Option<&'a str>,
}

/// Establishes who a connecting client is. Implemented by the application.
pub trait Authenticator: Send + Sync + 'static {
    /// The client's identity, or why it is refused (`NoCredentials`, `BadCredentials`).
    fn identify(&self, request: &ConnectRequest<'_>) -> Result<Identity, Reason>;
}

/// Refusals since start, per reason.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    counts: [AtomicU64; Reason::ALL.len()],
}

impl Refusals {
    pub(crate) fn count(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.counts[i].fetch_add(1, Relaxed);
        }
    }

    /// `(action, reason, count)` for every reason, zeros included.
    pub(crate) fn snapshot(&self) -> Vec<(Action, Reason, u64)> {
        Reason::ALL
            .iter()
            .zip(&self.counts)
            .map(|(r, c)| (r.action(), *r, c.load(Relaxed)))
            .collect()
    }
}

/// The subject common name of a DER certificate, if it has one that is UTF-8.
pub(crate) fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Whether a WebSocket upgrade's `Origin` may reach the broker: a request without one is
/// not from a web page (browsers always send it), so it is judged by its credentials
/// alone; a page must come from an allowed origin, because browsers do not apply CORS to
/// WebSockets and any site the user visits could otherwise open one to a loopback broker.
pub(crate) fn origin_allowed(origin: Option<&str>, allowed: &[String]) -> bool {
    match origin {
        None => true,
        Some(origin) => allowed.iter().any(|a| {
            a.trim_end_matches('/')
                .eq_ignore_ascii_case(origin.trim_end_matches('/'))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_matched_exactly_and_a_missing_one_is_no_page() {
        let allowed = vec!["http://127.0.0.1:8080".to_owned()];
        assert!(origin_allowed(None, &allowed));
        assert!(origin_allowed(Some("http://127.0.0.1:8080"), &allowed));
        assert!(origin_allowed(Some("HTTP://127.0.0.1:8080/"), &allowed));
        for bad in [
            "http://evil.example",
            "http://127.0.0.1:8081",
            "http://127.0.0.1:80800",
            "null",
            "",
        ] {
            assert!(!origin_allowed(Some(bad), &allowed), "{bad}");
        }
    }

    #[test]
    fn refusals_are_counted_per_reason() {
        let r = Refusals::default();
        r.count(Reason::CommandTopic);
        r.count(Reason::CommandTopic);
        r.count(Reason::OriginNotAllowed);
        let snap = r.snapshot();
        assert_eq!(snap.len(), Reason::ALL.len());
        let get = |reason| snap.iter().find(|(_, r, _)| *r == reason).unwrap().2;
        assert_eq!(get(Reason::CommandTopic), 2);
        assert_eq!(get(Reason::OriginNotAllowed), 1);
        assert_eq!(get(Reason::NotOwnTopic), 0);
    }
}

//! Broker addresses: `mqtt://host:port`, `mqtts://host:port`, `ws://host:port/path`.
//!
//! A hand-written parser rather than the `url` crate: the accepted grammar is tiny, and
//! the errors can then say exactly what is wrong in the user's terms.

use std::fmt;
use std::str::FromStr;

/// How to reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// MQTT over plain TCP (`mqtt://`, default port 1883).
    Mqtt,
    /// MQTT over TLS, optionally with a client certificate (`mqtts://`, default port 8883).
    Mqtts,
    /// MQTT over a WebSocket, subprotocol `mqtt` (`ws://`, default port 80).
    Ws,
}

impl Scheme {
    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Mqtt => 1883,
            Scheme::Mqtts => 8883,
            Scheme::Ws => 80,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Mqtt => "mqtt",
            Scheme::Mqtts => "mqtts",
            Scheme::Ws => "ws",
        }
    }
}

/// The WebSocket path used when a `ws://` URL names none: the one AWS IoT Core,
/// mosquitto's examples and the local stack use.
pub const DEFAULT_WS_PATH: &str = "/mqtt";

/// A parsed broker address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    path: String,
}

impl BrokerUrl {
    /// Parses `scheme://host[:port][/path]`. A path is allowed for `ws://` only.
    pub fn parse(text: &str) -> Result<BrokerUrl, UrlError> {
        let text = text.trim();
        let (scheme, rest) = text.split_once("://").ok_or(UrlError::NoScheme)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => Scheme::Mqtt,
            "mqtts" | "ssl" | "tls" => Scheme::Mqtts,
            "ws" => Scheme::Ws,
            other => return Err(UrlError::UnsupportedScheme(other.to_owned())),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            None => scheme.default_port(),
            Some("") => return Err(UrlError::EmptyPort),
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(UrlError::BadPort(p.to_owned())),
                Ok(n) => n,
            },
        };
        let path = match scheme {
            Scheme::Ws if path.is_empty() || path == "/" => DEFAULT_WS_PATH.to_owned(),
            Scheme::Ws if path.starts_with('/') => path.to_owned(),
            Scheme::Ws => format!("/{path}"),
            _ if path.is_empty() || path == "/" => String::new(),
            _ => return Err(UrlError::PathNotAllowed(path.to_owned())),
        };
        Ok(BrokerUrl {
            scheme,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host name or IP address, without IPv6 brackets. It is also the TLS server name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The WebSocket request path (empty for the other schemes).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Splits `host[:port]`, with `[v6]` brackets allowed around the host.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), UrlError> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or(UrlError::BadHost)?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or(UrlError::BadHost)?),
            ),
        }
    } else if authority.matches(':').count() > 1 {
        return Err(UrlError::BadHost);
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    if host.contains(['[', ']', ' ', '/']) {
        return Err(UrlError::BadHost);
    }
    Ok((host, port))
}

impl FromStr for BrokerUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BrokerUrl::parse(s)
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.path
        )
    }
}

/// Why a broker URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `scheme://` prefix.
    #[error(
        "the broker URL needs a scheme: mqtt://host:port, mqtts://host:port or ws://host:port/mqtt"
    )]
    NoScheme,
    /// A scheme this client does not speak.
    #[error("unsupported scheme {0:?}: use mqtt://, mqtts:// or ws://")]
    UnsupportedScheme(String),
    /// `user:password@host`: credentials belong in the MQTT options.
    #[error("put the user name and password in the MQTT options, not in the broker URL")]
    Credentials,
    /// Nothing between `://` and the port or path.
    #[error("the broker URL has no host")]
    NoHost,
    /// A host that cannot be parsed (e.g. an IPv6 address without brackets).
    #[error("the broker URL has an invalid host (write IPv6 addresses as [::1])")]
    BadHost,
    /// `host:` with nothing after the colon.
    #[error("the broker URL has ':' but no port after it")]
    EmptyPort,
    /// A port that is not 1..=65535.
    #[error("invalid port {0:?}: expected a number from 1 to 65535")]
    BadPort(String),
    /// A path on a scheme that has none.
    #[error("a path ({0:?}) is only allowed for ws:// URLs")]
    PathNotAllowed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme_with_default_ports() {
        let u = BrokerUrl::parse("mqtt://broker.local").unwrap();
        assert_eq!(
            (u.scheme(), u.host(), u.port()),
            (Scheme::Mqtt, "broker.local", 1883)
        );
        let u = BrokerUrl::parse("mqtts://abc-ats.iot.eu-west-1.amazonaws.com").unwrap();
        assert_eq!((u.scheme(), u.port()), (Scheme::Mqtts, 8883));
        let u = BrokerUrl::parse("ws://localhost").unwrap();
        assert_eq!((u.scheme(), u.port(), u.path()), (Scheme::Ws, 80, "/mqtt"));
    }

    #[test]
    fn parses_ports_paths_and_ipv6() {
        let u = BrokerUrl::parse("ws://127.0.0.1:8080/custom?x=1").unwrap();
        assert_eq!((u.port(), u.path()), (8080, "/custom?x=1"));
        let u = BrokerUrl::parse("mqtt://[::1]:1884/").unwrap();
        assert_eq!((u.host(), u.port()), ("::1", 1884));
        assert_eq!(u.to_string(), "mqtt://[::1]:1884");
        assert_eq!(u.authority(), "[::1]:1884");
        let u: BrokerUrl = "MQTTS://h:1".parse().unwrap();
        assert_eq!(u.to_string(), "mqtts://h:1");
    }

    #[test]
    fn rejects_bad_urls_with_clear_errors() {
        let err = |s: &str| BrokerUrl::parse(s).unwrap_err();
        assert_eq!(
            err("wss://h/mqtt"),
            UrlError::UnsupportedScheme("wss".into())
        );
        assert!(
            err("http://h")
                .to_string()
                .contains("use mqtt://, mqtts:// or ws://")
        );
        assert_eq!(err("localhost:1883"), UrlError::NoScheme);
        assert_eq!(err("mqtt://h:"), UrlError::EmptyPort);
        assert_eq!(err("mqtt://h:0"), UrlError::BadPort("0".into()));
        assert_eq!(err("mqtt://h:99999"), UrlError::BadPort("99999".into()));
        assert_eq!(err("mqtt://:1883"), UrlError::NoHost);
        assert_eq!(err("mqtt://u:p@h"), UrlError::Credentials);
        assert_eq!(err("mqtt://::1"), UrlError::BadHost);
        assert_eq!(
            err("mqtt://h/topic"),
            UrlError::PathNotAllowed("/topic".into())
        );
    }
}

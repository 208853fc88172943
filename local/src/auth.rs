//! The credentials the local stack issues, and who a connecting client is: the broker's
//! [`Authenticator`] (ARCHITECTURE §4.8; the rules themselves are `fleet_core::access`).
//!
//! # Key decision: one secret, credentials derived from it
//! `DATA/auth/secret` holds 32 random bytes (owner-only). Every credential is
//! `HMAC-SHA256(secret, subject)` in base64url, where the subject is what the credential
//! stands for: `device:d-0001`, `fleet`, `observer`, `page:w1a2b3c4d5`, `gateway:1,2` (a
//! gateway for buildings 1 and 2), or `http` (the
//! access key for remote browsers). So the stack keeps no table of issued tokens, a
//! credential survives restarts, `fleet local token` can print one without a running
//! stack, and deleting the secret revokes them all at once. The MQTT user name is the
//! subject (`device:d-0001`), the password the credential.
//!
//! Who a client is, by listener:
//! - mutual TLS: its certificate's common name, a device id (the CA signed it);
//! - TCP and WebSocket: the subject of a valid credential;
//! - TCP only, without a credential, from a loopback address, in development mode (the
//!   default for plain TCP): [`Identity::Development`], its client id taken at its word.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fleet_broker::{Authenticator, ConnectRequest, ListenerKind};
use fleet_core::DeviceId;
use fleet_core::access::{Buildings, Identity, Namespace, Reason};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// What a credential stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// One device.
    Device(DeviceId),
    /// The fleet token: a simulator, any one device per connection.
    Fleet,
    /// Read-only access.
    Observer,
    /// A browser page's namespace (issued by `/config.json`).
    Page(Namespace),
    /// A gateway for these buildings (`fleet local token --gateway 1,2`).
    Gateway(Buildings),
    /// The HTTP access key that remote browsers need (not an MQTT credential).
    Http,
}

impl Subject {
    /// The subject as signed, and as the MQTT user name: `device:d-0001`, `fleet`, …
    pub fn name(&self) -> String {
        match self {
            Subject::Device(id) => format!("device:{id}"),
            Subject::Fleet => String::from("fleet"),
            Subject::Observer => String::from("observer"),
            Subject::Page(ns) => format!("page:{ns}"),
            Subject::Gateway(b) => format!("gateway:{b}"),
            Subject::Http => String::from("http"),
        }
    }

    /// The MQTT subject a user name names (never [`Subject::Http`]).
    pub fn from_username(username: &str) -> Option<Subject> {
        match username.split_once(':') {
            None if username == "fleet" => Some(Subject::Fleet),
            None if username == "observer" => Some(Subject::Observer),
            Some(("device", id)) => DeviceId::try_from(id).ok().map(Subject::Device),
            Some(("page", ns)) => Namespace::new(ns).ok().map(Subject::Page),
            // Only the canonical spelling (sorted, no repeats) is the signed subject.
            Some(("gateway", list)) => Buildings::parse(list)
                .ok()
                .filter(|b| b.to_string() == list)
                .map(Subject::Gateway),
            _ => None,
        }
    }
}

/// The credentials could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The secret file is not 32 bytes.
    #[error("{} is not a secret this stack wrote (delete it to make a new one; every issued credential then stops working)", .0.display())]
    BadSecret(PathBuf),
    /// The system's random source failed.
    #[error("the system's random source failed")]
    Random,
}

/// The stack's secret, and the credentials derived from it.
#[derive(Debug)]
pub struct Keys {
    key: hmac::Key,
    rng: SystemRandom,
    dir: PathBuf,
}

const SECRET_LEN: usize = 32;

impl Keys {
    /// The secret in `dir` (`DATA/auth`), created on first use, and the fleet and observer
    /// tokens written next to it (`fleet.token`, `observer.token`) for the tools on this
    /// machine to read.
    pub fn open(dir: &Path) -> Result<Keys, AuthError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| AuthError::Io { path, source }
        };
        let secret_path = dir.join("secret");
        let rng = SystemRandom::new();
        let secret = match fs::read(&secret_path) {
            Ok(bytes) if bytes.len() == SECRET_LEN => bytes,
            Ok(_) => return Err(AuthError::BadSecret(secret_path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = vec![0; SECRET_LEN];
                rng.fill(&mut bytes).map_err(|_| AuthError::Random)?;
                write_private(&secret_path, &bytes).map_err(io(&secret_path))?;
                bytes
            }
            Err(e) => return Err(io(&secret_path)(e)),
        };
        let keys = Keys {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            rng,
            dir: dir.to_owned(),
        };
        for (file, subject) in [
            ("fleet.token", Subject::Fleet),
            ("observer.token", Subject::Observer),
        ] {
            let path = dir.join(file);
            let token = keys.token(&subject);
            if fs::read_to_string(&path).ok().as_deref() != Some(token.as_str()) {
                write_private(&path, token.as_bytes()).map_err(io(&path))?;
            }
        }
        Ok(keys)
    }

    /// Where the secret and the token files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The credential for a subject.
    pub fn token(&self, subject: &Subject) -> String {
        let tag = hmac::sign(&self.key, subject.name().as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `token` is the credential for `subject` (in constant time).
    pub fn verify(&self, subject: &Subject, token: &[u8]) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        hmac::verify(&self.key, subject.name().as_bytes(), &tag).is_ok()
    }

    /// A fresh namespace for a page: `w` and 10 random hex digits.
    pub fn new_namespace(&self) -> Result<Namespace, AuthError> {
        let mut bytes = [0_u8; 5];
        self.rng.fill(&mut bytes).map_err(|_| AuthError::Random)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Namespace::new(&format!("w{hex}")).map_err(|_| AuthError::Random)
    }
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents)
}

/// Who a client is, for the local stack's broker.
#[derive(Debug)]
pub struct LocalAuthenticator {
    keys: std::sync::Arc<Keys>,
    /// Plain TCP lets loopback clients in without a credential.
    development: bool,
}

impl LocalAuthenticator {
    /// `development`: plain TCP accepts loopback clients without a credential, their client
    /// id taken as their identity.
    pub fn new(keys: std::sync::Arc<Keys>, development: bool) -> LocalAuthenticator {
        LocalAuthenticator { keys, development }
    }
}

impl Authenticator for LocalAuthenticator {
    fn identify(&self, request: &ConnectRequest<'_>) -> Result<Identity, Reason> {
        if request.listener == ListenerKind::Tls {
            // The handshake verified the chain; the leaf's name is the device.
            return request
                .certificate_name
                .and_then(|name| DeviceId::try_from(name).ok())
                .map(Identity::Device)
                .ok_or(Reason::BadCredentials);
        }
        let Some(username) = request.username else {
            let development = self.development
                && request.listener == ListenerKind::Tcp
                && request.peer.ip().is_loopback();
            return if development {
                Ok(Identity::Development)
            } else {
                Err(Reason::NoCredentials)
            };
        };
        let subject = Subject::from_username(username).ok_or(Reason::BadCredentials)?;
        let password = request.password.unwrap_or_default();
        if !self.keys.verify(&subject, password) {
            return Err(Reason::BadCredentials);
        }
        Ok(match subject {
            Subject::Device(id) => Identity::Device(id),
            Subject::Fleet => Identity::Fleet,
            Subject::Observer => Identity::Observer,
            Subject::Page(ns) => Identity::Page(ns),
            Subject::Gateway(b) => Identity::Gateway(b),
            Subject::Http => return Err(Reason::BadCredentials),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use super::*;

    fn request<'a>(
        listener: ListenerKind,
        peer: &str,
        username: Option<&'a str>,
        password: Option<&'a [u8]>,
        certificate_name: Option<&'a str>,
    ) -> ConnectRequest<'a> {
        ConnectRequest {
            listener,
            peer: peer.parse::<SocketAddr>().unwrap(),
            client_id: "c",
            username,
            password,
            certificate_name,
        }
    }

    #[test]
    fn credentials_are_derived_verified_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(dir.path()).unwrap();
        let device = Subject::Device(DeviceId::try_from("d-0001").unwrap());
        let token = keys.token(&device);
        assert!(keys.verify(&device, token.as_bytes()));
        assert!(!keys.verify(
            &Subject::Device(DeviceId::try_from("d-0002").unwrap()),
            token.as_bytes()
        ));
        assert!(!keys.verify(&Subject::Fleet, token.as_bytes()));
        assert!(!keys.verify(&device, b"not base64 !"));
        assert_eq!(
            fs::read_to_string(dir.path().join("fleet.token")).unwrap(),
            keys.token(&Subject::Fleet)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["secret", "fleet.token", "observer.token"] {
                let mode = fs::metadata(dir.path().join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o077, 0, "{f} is private");
            }
        }
        // The same secret after a restart: the same credentials.
        let again = Keys::open(dir.path()).unwrap();
        assert!(again.verify(&device, token.as_bytes()));
        // Another stack's secret: none of them.
        let other = tempfile::tempdir().unwrap();
        assert!(
            !Keys::open(other.path())
                .unwrap()
                .verify(&device, token.as_bytes())
        );
        // A damaged secret is a clear error, not a silent new one.
        fs::write(dir.path().join("secret"), b"short").unwrap();
        assert!(matches!(
            Keys::open(dir.path()),
            Err(AuthError::BadSecret(_))
        ));
    }

    #[test]
    fn user_names_name_subjects() {
        assert_eq!(Subject::from_username("fleet"), Some(Subject::Fleet));
        assert_eq!(Subject::from_username("observer"), Some(Subject::Observer));
        assert_eq!(
            Subject::from_username("device:d-1"),
            Some(Subject::Device(DeviceId::try_from("d-1").unwrap()))
        );
        for bad in [
            "http",
            "device:",
            "device:a/b",
            "page:w-1",
            "d-1",
            "",
            "fleet:x",
        ] {
            assert_eq!(Subject::from_username(bad), None, "{bad}");
        }
        let ns = Namespace::new("w1").unwrap();
        assert_eq!(
            Subject::from_username(&Subject::Page(ns.clone()).name()),
            Some(Subject::Page(ns))
        );
    }

    #[test]
    fn each_listener_identifies_clients_its_own_way() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(Keys::open(dir.path()).unwrap());
        let auth = LocalAuthenticator::new(keys.clone(), true);
        let fleet = keys.token(&Subject::Fleet);
        let id = |r: ConnectRequest<'_>| auth.identify(&r);
        use ListenerKind::{Tcp, Tls, WebSocket};
        // TCP without a credential: development mode, loopback only.
        assert_eq!(
            id(request(Tcp, "127.0.0.1:5000", None, None, None)),
            Ok(Identity::Development)
        );
        assert_eq!(
            id(request(Tcp, "[::1]:5000", None, None, None)),
            Ok(Identity::Development)
        );
        assert_eq!(
            id(request(Tcp, "10.0.0.7:5000", None, None, None)),
            Err(Reason::NoCredentials)
        );
        // WebSocket never: a page must present the credential its config.json gave it.
        assert_eq!(
            id(request(WebSocket, "127.0.0.1:5000", None, None, None)),
            Err(Reason::NoCredentials)
        );
        // Development mode off: credentials everywhere.
        let strict = LocalAuthenticator::new(keys.clone(), false);
        assert_eq!(
            strict.identify(&request(Tcp, "127.0.0.1:5000", None, None, None)),
            Err(Reason::NoCredentials)
        );
        // Credentials, on any listener but TLS.
        for listener in [Tcp, WebSocket] {
            assert_eq!(
                id(request(
                    listener,
                    "127.0.0.1:5000",
                    Some("fleet"),
                    Some(fleet.as_bytes()),
                    None
                )),
                Ok(Identity::Fleet)
            );
            assert_eq!(
                id(request(
                    listener,
                    "127.0.0.1:5000",
                    Some("observer"),
                    Some(fleet.as_bytes()),
                    None
                )),
                Err(Reason::BadCredentials)
            );
            assert_eq!(
                id(request(
                    listener,
                    "127.0.0.1:5000",
                    Some("fleet"),
                    None,
                    None
                )),
                Err(Reason::BadCredentials)
            );
            assert_eq!(
                id(request(
                    listener,
                    "127.0.0.1:5000",
                    Some("root"),
                    Some(b"x"),
                    None
                )),
                Err(Reason::BadCredentials)
            );
        }
        // A gateway's credential names its buildings; it is valid for exactly those, in
        // their one spelling.
        let gateway = keys.token(&Subject::Gateway(Buildings::parse("1,2").unwrap()));
        assert_eq!(
            id(request(
                Tcp,
                "127.0.0.1:5000",
                Some("gateway:1,2"),
                Some(gateway.as_bytes()),
                None
            )),
            Ok(Identity::Gateway(Buildings::parse("1,2").unwrap()))
        );
        for other in ["gateway:1", "gateway:1,2,3", "gateway:2,1", "gateway:1,1,2"] {
            assert_eq!(
                id(request(
                    Tcp,
                    "127.0.0.1:5000",
                    Some(other),
                    Some(gateway.as_bytes()),
                    None
                )),
                Err(Reason::BadCredentials),
                "{other}"
            );
        }
        // TLS: the certificate's name, whatever the CONNECT says.
        assert_eq!(
            id(request(
                Tls,
                "127.0.0.1:5000",
                Some("fleet"),
                Some(fleet.as_bytes()),
                Some("d-0007")
            )),
            Ok(Identity::Device(DeviceId::try_from("d-0007").unwrap()))
        );
        assert_eq!(
            id(request(Tls, "127.0.0.1:5000", None, None, Some("a b"))),
            Err(Reason::BadCredentials)
        );
        assert_eq!(
            id(request(Tls, "127.0.0.1:5000", None, None, None)),
            Err(Reason::BadCredentials)
        );
    }

    #[test]
    fn page_namespaces_are_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(dir.path()).unwrap();
        let a = keys.new_namespace().unwrap();
        let b = keys.new_namespace().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 11);
        assert!(a.as_str().starts_with('w'));
    }
}

//! A real mosquitto broker per test, on free loopback ports, with certificates made by
//! rcgen, plus helpers to wait for client events.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fleet_client::{ClientEvent, TlsFiles};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::sync::mpsc;

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "fleet-client-test-{}-{n}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        fs::create_dir_all(&path).unwrap();
        // mosquitto started as root drops to the `mosquitto` user, which must still be
        // able to write its persistence file here.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One listener of the broker.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Tcp(u16),
    Ws(u16),
    /// TLS that requires a client certificate signed by the test CA.
    Mtls(u16),
}

/// A mosquitto process, killed when dropped.
pub struct Mosquitto {
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    ports: Vec<u16>,
}

fn mosquitto_binary() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join("mosquitto");
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "mosquitto is not installed. These tests run against a real broker: run \
         scripts/setup.sh (it installs the Debian packages mosquitto and mosquitto-clients), \
         or `apt-get install -y mosquitto mosquitto-clients`"
    );
}

impl Mosquitto {
    /// Starts a broker with these listeners. `certs` is needed for [`Listener::Mtls`];
    /// `persistent` keeps sessions and queued messages across a restart.
    pub fn start(
        dir: &TempDir,
        listeners: &[Listener],
        certs: Option<&Certs>,
        persistent: bool,
    ) -> Mosquitto {
        // No per-client queue limit: mosquitto drops QoS 1 messages beyond it (default
        // 1000), which would make the "nothing lost" checks flaky for no client fault.
        let mut config = String::from(
            "per_listener_settings false\nallow_anonymous true\nmax_queued_messages 0\n",
        );
        config += "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n";
        if persistent {
            config += &format!(
                "persistence true\npersistence_location {}/\n",
                dir.path().display()
            );
        } else {
            config += "persistence false\n";
        }
        let mut ports = Vec::new();
        for listener in listeners {
            match *listener {
                Listener::Tcp(port) => config += &format!("listener {port} 127.0.0.1\n"),
                // For WebSocket listeners mosquitto reads the address as an interface name;
                // an IP there would bind every interface (TOOLCHAIN.md).
                Listener::Ws(port) => {
                    config += &format!("listener {port} lo\nprotocol websockets\n")
                }
                Listener::Mtls(port) => {
                    let certs = certs.expect("an mTLS listener needs certificates");
                    config += &format!(
                        "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
                         require_certificate true\n",
                        certs.ca.display(),
                        certs.server_cert.display(),
                        certs.server_key.display()
                    );
                }
            }
            ports.push(match *listener {
                Listener::Tcp(p) | Listener::Ws(p) | Listener::Mtls(p) => p,
            });
        }
        if listeners.iter().all(|l| matches!(l, Listener::Ws(_))) {
            // mosquitto 2.0.11 exits with "Unable to start any listening sockets" when all
            // its listeners are WebSocket ones: it only counts the others.
            let port = free_port();
            config += &format!("listener {port} 127.0.0.1\n");
            ports.push(port);
        }
        let path = dir.path().join("mosquitto.conf");
        fs::write(&path, config).unwrap();
        let mut broker = Mosquitto {
            child: None,
            config: path,
            log: dir.path().join("mosquitto.log"),
            ports,
        };
        broker.run();
        broker
    }

    fn run(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        for &port in &self.ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("mosquitto exited with {status}:\n{}", self.log_text());
                }
                assert!(
                    Instant::now() < deadline,
                    "mosquitto did not listen on port {port}:\n{}",
                    self.log_text()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stops the broker gracefully (SIGTERM), so a persistent broker saves its state.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
            child.wait().unwrap();
        }
    }

    /// Starts the stopped broker again, same config, same ports.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the broker first");
        self.run();
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// PEM files for a test PKI: a CA, a server certificate for 127.0.0.1 and localhost, a
/// client certificate, and a second CA that signed nothing.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
}

impl Certs {
    pub fn generate(dir: &TempDir) -> Certs {
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            fs::write(&path, pem).unwrap();
            path
        };
        let (ca_pem, ca) = certificate_authority("Fleet test CA");
        let (other_ca_pem, _) = certificate_authority("Some other CA");
        let (server_pem, server_key) = leaf(
            &ca,
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_pem, client_key) = leaf(&ca, vec![], ExtendedKeyUsagePurpose::ClientAuth);
        Certs {
            ca: write("ca.pem", ca_pem),
            server_cert: write("server.pem", server_pem),
            server_key: write("server.key", server_key),
            client_cert: write("client.pem", client_pem),
            client_key: write("client.key", client_key),
            other_ca: write("other-ca.pem", other_ca_pem),
        }
    }

    /// The client's TLS files: the right CA and the client certificate.
    pub fn client_files(&self) -> TlsFiles {
        TlsFiles::new(&self.ca).with_identity(&self.client_cert, &self.client_key)
    }
}

fn certificate_authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(
    ca: &Issuer<'static, KeyPair>,
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "fleet test");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Waits for the first event that `pick` maps to `Some`, discarding the others.
pub async fn wait_for<T>(
    events: &mut mpsc::Receiver<ClientEvent>,
    what: &str,
    mut pick: impl FnMut(&ClientEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                if let Some(found) = pick(&event) {
                    return found;
                }
                if seen.len() < 20 {
                    seen.push(event);
                }
            }
            Ok(None) => panic!("the event channel closed while waiting for {what}; saw {seen:#?}"),
            Err(_) => panic!("timed out waiting for {what}; saw {seen:#?}"),
        }
    }
}

//! Running `fleet local` and `fleet sim` as a user would: real processes, real sockets on
//! 127.0.0.1, real files.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod moto;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fleet_local::SqliteStore;

pub fn fleet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleet"));
    for var in [
        "VELOCITY",
        "UPDATE_FREQUENCY",
        "REMEDIATION_FACTOR",
        "MIN_TEMP",
        "MIN_HUM",
        "LOG_LEVEL",
        "DEVICE_ID",
        "IOT_CORE_ENDPOINT",
        "FLEET_DATA",
        "REMEDIATION_LOGIC",
        "TTL_DYNAMO",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c
}

/// Listener addresses of a running stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs {
    pub mqtt: SocketAddr,
    pub ws: SocketAddr,
    pub mqtts: SocketAddr,
    pub http: SocketAddr,
}

/// A `fleet local` process, stopped (SIGTERM) when dropped.
pub struct Stack {
    pub child: Child,
    pub addrs: Addrs,
    pub data: PathBuf,
    pub log: PathBuf,
}

impl Stack {
    /// Starts a stack on free ports.
    pub fn start(data: &Path) -> Stack {
        Stack::start_at(data, None)
    }

    /// Starts a stack on free ports with extra `fleet local` arguments.
    pub fn start_with(data: &Path, extra: &[&std::ffi::OsStr]) -> Stack {
        Stack::launch(data, None, extra)
    }

    /// Starts a stack on the given ports (to restart one where it was).
    pub fn start_at(data: &Path, addrs: Option<Addrs>) -> Stack {
        Stack::launch(data, addrs, &[])
    }

    fn launch(data: &Path, addrs: Option<Addrs>, extra: &[&std::ffi::OsStr]) -> Stack {
        let any = "127.0.0.1:0".to_string();
        let [mqtt, ws, mqtts, http] = match addrs {
            Some(a) => [a.mqtt, a.ws, a.mqtts, a.http].map(|a| a.to_string()),
            None => [any.clone(), any.clone(), any.clone(), any],
        };
        let log = data.with_extension(format!("log-{}", std::process::id()));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = fleet()
            .args(["local", "--data"])
            .arg(data)
            .args([
                "--mqtt", &mqtt, "--ws", &ws, "--mqtts", &mqtts, "--http", &http,
            ])
            .args(["--log-format", "json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut found = [None; 4];
        for line in lines.by_ref() {
            let line = line.unwrap();
            let addr_of = |prefix: &str| {
                let rest = line.trim().strip_prefix(prefix)?.trim();
                let url = rest.split_whitespace().next()?;
                let hostport = url
                    .split("://")
                    .nth(1)?
                    .trim_end_matches('/')
                    .trim_end_matches("/mqtt");
                hostport.parse::<SocketAddr>().ok()
            };
            for (i, prefix) in ["MQTT", "WebSocket", "mTLS", "Web app"].iter().enumerate() {
                if let Some(a) = addr_of(prefix) {
                    found[i] = Some(a);
                }
            }
            if line.starts_with("Stop with Ctrl-C") {
                break;
            }
        }
        let [Some(mqtt), Some(ws), Some(mqtts), Some(http)] = found else {
            let _ = child.kill();
            panic!(
                "fleet local did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        // Keep draining stdout so the stack never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Stack {
            child,
            addrs: Addrs {
                mqtt,
                ws,
                mqtts,
                http,
            },
            data: data.to_owned(),
            log,
        }
    }

    pub fn mqtt_url(&self) -> String {
        format!("mqtt://{}", self.addrs.mqtt)
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = wait_timeout(&mut self.child, Duration::from_secs(20));
        std::mem::forget(self);
        status
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::forget(self);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = wait_timeout(&mut self.child, Duration::from_secs(10));
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            return child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `fleet sim` to completion.
pub fn sim(args: &[&str]) -> Output {
    let out = fleet()
        .arg("sim")
        .args(args)
        .args(["--log-format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fleet sim failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The "sent N, acked M" numbers of a sim's summary.
pub fn sent_acked(out: &Output) -> (u64, u64) {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("sent "))
        .expect("summary line");
    let number = |word: &str| -> u64 {
        line.split(',')
            .find_map(|part| {
                part.trim()
                    .strip_prefix(word)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap()
    };
    (number("sent"), number("acked"))
}

/// (device, seq) of every line of an acked file.
pub fn acked(path: &Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["device"].as_str().unwrap().to_owned(),
                v["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// (device, seq) of every reading in the stack's database.
pub fn stored(data: &Path) -> Vec<(String, u64)> {
    let db = SqliteStore::open(&data.join(fleet_local::LocalStore::DB_FILE)).unwrap();
    db.reading_keys()
        .unwrap()
        .into_iter()
        .map(|(device, sk)| {
            let seq = sk.rsplit('#').next().unwrap().parse().unwrap();
            (device, seq)
        })
        .collect()
}

/// A mosquitto client (Debian's mosquitto-clients), or a clear failure if it is missing.
pub fn mosquitto(tool: &str) -> Command {
    let found = Command::new("which")
        .arg(tool)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is missing: run scripts/setup.sh (Debian package mosquitto-clients)"
    );
    Command::new(tool)
}

pub fn set<T: Ord + Clone>(v: &[T]) -> BTreeSet<T> {
    v.iter().cloned().collect()
}

/// GET over plain HTTP/1.0 (no client library needed for a loopback check).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(body)
}

/// An HTTP response as it came off the wire: status, headers (names lowercase), body bytes
/// as sent (still compressed, when a `content-encoding` says so).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// GET with extra request headers, over plain HTTP/1.0 (the server closes after the body).
pub fn http_request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// `fleet local token --data DATA ARGS…` lines, as (user name, password).
pub fn tokens(data: &Path, args: &[&str]) -> Vec<(String, String)> {
    let out = fleet()
        .args(["local", "token", "--data"])
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (u, p) = l.split_once(' ').unwrap();
            (u.to_owned(), p.to_owned())
        })
        .collect()
}

/// The value of the Prometheus sample line that starts with `series ` (name and labels).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The sum of every sample of the metric `name`, whatever its labels.
pub fn sum_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

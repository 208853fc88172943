//! `fleet local`: the local stack, and `fleet local cert` for device certificates.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use fleet_core::{BuildingId, Buildings, DeviceId, Namespace};
use fleet_local::{CertDir, Keys, LocalConfig, LocalStack, PageConfig, Subject};

use crate::logging::{self, LogFormat, LogLevel};

/// Flags of `fleet local`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LocalArgs {
    #[command(subcommand)]
    pub action: Option<LocalAction>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `fleet local` subcommands.
#[derive(Debug, Subcommand)]
pub enum LocalAction {
    /// Issue client certificates for devices (mutual TLS on the MQTT/TLS listener), and the
    /// local CA if it does not exist yet. Prints the --root-ca/--cert/--key to use.
    Cert {
        /// Device id, e.g. d-0001 (repeat for several).
        #[arg(long, required = true)]
        device: Vec<String>,
        /// Data directory of the stack.
        #[arg(long, env = "FLEET_DATA", default_value = "data")]
        data: PathBuf,
    },
    /// Print credentials for MQTT over TCP or WebSocket (and the HTTP access key), one line
    /// each: `USERNAME PASSWORD` (e.g. `mosquitto_pub -u USERNAME -P PASSWORD`). They are
    /// derived from the stack's secret in DATA/auth (made on first use), keep working
    /// across restarts, and all stop working if that secret is deleted.
    Token {
        /// A device's credential: it may publish only its own telemetry and read only its
        /// own commands (repeat for several).
        #[arg(long)]
        device: Vec<String>,
        /// The fleet token, for simulators (`fleet sim --username fleet --password-file
        /// DATA/auth/fleet.token`): any one device per connection, as that device.
        #[arg(long)]
        fleet: bool,
        /// The read-only credential, for dashboards and `mosquitto_sub`.
        #[arg(long)]
        observer: bool,
        /// A browser page's credential for the devices NS-… (what /config.json hands a page).
        #[arg(long, value_name = "NS")]
        page: Vec<String>,
        /// A gateway's credential for buildings B1,B2,… (`fleet sim --connections N
        /// --username gateway:B1,B2 --password …`): it may publish telemetry for any device
        /// of those buildings and read their commands, nothing else. Its connections use
        /// client ids `gateway:{some of those buildings}`. Repeat for several gateways.
        #[arg(long, value_name = "B1,B2,…")]
        gateway: Vec<String>,
        /// The access key that browsers on other machines need (`http://HOST:PORT/?key=KEY`).
        #[arg(long)]
        http: bool,
        /// Data directory of the stack.
        #[arg(long, env = "FLEET_DATA", default_value = "data")]
        data: PathBuf,
    },
}

/// Who may connect over plain TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MqttAuth {
    /// Loopback clients without a credential are taken at their client id (a device id
    /// names the device); credentials work too. Loopback only.
    Dev,
    /// Every client needs a credential (`fleet local token`).
    Credentials,
}

/// A listener address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(Option<SocketAddr>);

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Listen(None));
        }
        s.parse()
            .map(|a| Listen(Some(a)))
            .map_err(|_| format!("{s:?} is not an address like 127.0.0.1:1883 (or `off`)"))
    }
}

/// How the stack runs.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Data directory: database, archive, EMF logs, certificates.
    #[arg(long, env = "FLEET_DATA", default_value = "data")]
    pub data: PathBuf,
    /// MQTT over TCP listener (`off` to disable).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub mqtt: Listen,
    /// MQTT over WebSocket listener, served at /mqtt (`off` to disable).
    #[arg(long, default_value = "127.0.0.1:8083")]
    pub ws: Listen,
    /// MQTT over mutual TLS listener (`off` to disable).
    #[arg(long, default_value = "127.0.0.1:8883")]
    pub mqtts: Listen,
    /// HTTP listener: web app, /config.json, /healthz, /metrics (`off` to disable).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: Listen,
    /// Who may connect over plain TCP: `dev` takes loopback clients without a credential
    /// at their client id (development); `credentials` needs `fleet local token`'s.
    #[arg(long, value_enum, default_value = "dev")]
    pub mqtt_auth: MqttAuth,
    /// Allow listeners on addresses other than loopback. Each one must authenticate: the
    /// TLS listener by certificate, the WebSocket listener by credential, plain TCP only
    /// with --mqtt-auth credentials, HTTP with the access key the banner prints.
    #[arg(long)]
    pub allow_remote: bool,
    /// A web origin (http://host:port) whose pages may use this stack, besides its own
    /// HTTP origin (repeatable): e.g. the web app served by `trunk serve`, or the name
    /// other machines reach this stack by.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// A name the TLS server certificate is issued for (repeatable).
    #[arg(long = "tls-name", default_values = ["localhost", "127.0.0.1"])]
    pub tls_names: Vec<String>,
    /// The built web app to serve.
    #[arg(long, default_value = "dist")]
    pub dist: PathBuf,
    /// Remediation on or off (the original's REMEDIATION_LOGIC).
    #[arg(long, env = "REMEDIATION_LOGIC", default_value_t = true, action = clap::ArgAction::Set)]
    pub remediation_logic: bool,
    /// Lower edge of the band, °C.
    #[arg(long, default_value_t = 26.0)]
    pub band_min: f64,
    /// Upper edge of the band, °C.
    #[arg(long, default_value_t = 28.0)]
    pub band_max: f64,
    /// Seconds a reading stays in the table (the original's TTL_DYNAMO).
    #[arg(long, env = "TTL_DYNAMO", default_value_t = 86_400)]
    pub ttl: u64,
    /// A device that gets per-device Temperature and Humidity EMF metrics (repeatable).
    #[arg(long = "metric-device")]
    pub metric_devices: Vec<String>,
    /// A building that gets its own Building dimension in the EMF metrics (repeatable;
    /// default 1 to 10). Others are counted together as `other`: building names come from
    /// the devices, and each dimension value is a metric CloudWatch bills for.
    #[arg(long = "metric-building")]
    pub metric_buildings: Vec<String>,
    /// Days the archive and EMF logs are kept.
    #[arg(long, default_value_t = 7)]
    pub archive_retention_days: u32,
    /// Log level (ERROR, WARNING, INFO, DEBUG).
    #[arg(long, env = "LOG_LEVEL", default_value = "INFO")]
    pub log_level: LogLevel,
    /// Log format.
    #[arg(long, default_value = "text")]
    pub log_format: LogFormat,
}

pub fn run(args: LocalArgs) -> Result<()> {
    match args.action {
        Some(LocalAction::Cert { device, data }) => issue(&device, &data),
        Some(LocalAction::Token {
            device,
            fleet,
            observer,
            page,
            gateway,
            http,
            data,
        }) => {
            let mut subjects = Vec::new();
            for d in &device {
                let id =
                    DeviceId::try_from(d.as_str()).with_context(|| format!("--device {d:?}"))?;
                subjects.push(Subject::Device(id));
            }
            for ns in &page {
                let ns = Namespace::new(ns).with_context(|| {
                    format!("--page {ns:?} (a namespace is [A-Za-z0-9_]{{1,40}}, no '-')")
                })?;
                subjects.push(Subject::Page(ns));
            }
            for list in &gateway {
                let buildings = Buildings::parse(list).with_context(|| {
                    format!("--gateway {list:?} (building ids separated by commas)")
                })?;
                subjects.push(Subject::Gateway(buildings));
            }
            if fleet {
                subjects.push(Subject::Fleet);
            }
            if observer {
                subjects.push(Subject::Observer);
            }
            if http {
                subjects.push(Subject::Http);
            }
            if subjects.is_empty() {
                bail!(
                    "say which credential: --device ID, --fleet, --observer, --page NS, --gateway B1,B2 or --http"
                );
            }
            tokens(&subjects, &data)
        }
        None => serve(args.run),
    }
}

fn tokens(subjects: &[Subject], data: &std::path::Path) -> Result<()> {
    let keys = Keys::open(&data.join("auth")).context("the stack's credentials")?;
    for subject in subjects {
        let token = keys.token(subject);
        match subject {
            Subject::Http => println!("key {token}"),
            _ => println!("{} {token}", subject.name()),
        }
    }
    Ok(())
}

fn issue(devices: &[String], data: &std::path::Path) -> Result<()> {
    let certs = CertDir::new(data.join("certs"));
    for device in devices {
        let files = certs
            .issue_device(device)
            .with_context(|| format!("device {device}"))?;
        println!(
            "{device}: --root-ca {} --cert {} --key {}",
            files.root_ca.display(),
            files.cert.display(),
            files.key.display()
        );
    }
    Ok(())
}

fn config(args: &RunArgs) -> Result<LocalConfig> {
    let listeners = [
        ("--mqtt", args.mqtt),
        ("--ws", args.ws),
        ("--mqtts", args.mqtts),
        ("--http", args.http),
    ];
    for (flag, Listen(addr)) in listeners {
        let Some(addr) = addr.filter(|a| !a.ip().is_loopback()) else {
            continue;
        };
        if !args.allow_remote {
            bail!("{flag} {addr} is not a loopback address; add --allow-remote to listen there");
        }
        // Every listener reachable from elsewhere authenticates (§4.8); plain TCP in
        // development mode would take any client at its word.
        if flag == "--mqtt" && args.mqtt_auth == MqttAuth::Dev {
            bail!(
                "--mqtt {addr} would accept clients without credentials from other machines; \
                 add --mqtt-auth credentials (devices then use `fleet local token`'s)"
            );
        }
    }
    let mut config = LocalConfig::new(&args.data);
    config.mqtt = args.mqtt.0;
    config.ws = args.ws.0;
    config.mqtts = args.mqtts.0;
    config.http = args.http.0;
    config.tls_names = args.tls_names.clone();
    config.development_mode = args.mqtt_auth == MqttAuth::Dev;
    config.allowed_origins = args.allowed_origins.clone();
    config.dist = Some(args.dist.clone());
    config.pipeline.policy.enabled = args.remediation_logic;
    config.pipeline.policy.band_min = args.band_min;
    config.pipeline.policy.band_max = args.band_max;
    config.pipeline.alarms.band_min = args.band_min;
    config.pipeline.alarms.band_max = args.band_max;
    config.pipeline.worker.band_min = args.band_min;
    config.pipeline.worker.band_max = args.band_max;
    config.pipeline.worker.ttl_s = args.ttl;
    config.pipeline.worker.metric_devices = args
        .metric_devices
        .iter()
        .map(|d| DeviceId::try_from(d.as_str()).with_context(|| format!("--metric-device {d:?}")))
        .collect::<Result<BTreeSet<_>>>()?;
    if !args.metric_buildings.is_empty() {
        config.pipeline.worker.metric_buildings = args
            .metric_buildings
            .iter()
            .map(|b| {
                BuildingId::try_from(b.as_str()).with_context(|| format!("--metric-building {b:?}"))
            })
            .collect::<Result<BTreeSet<_>>>()?;
    }
    config.retention.archive_days = args.archive_retention_days;
    Ok(config)
}

fn serve(args: RunArgs) -> Result<()> {
    logging::init(args.log_level, args.log_format);
    let config = config(&args)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let stack = LocalStack::start(config)
            .await
            .context("cannot start the local stack")?;
        print_banner(&stack);
        let crashed = tokio::select! {
            signal = wait_for_signal() => { signal?; false }
            () = stack.failed() => true,
        };
        eprintln!("fleet local: stopping (storing what is queued)…");
        stack.shutdown().await;
        if crashed {
            bail!("the ingest thread stopped, so readings could no longer be stored (see the log above)");
        }
        Ok::<_, anyhow::Error>(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

fn print_banner(stack: &LocalStack) {
    let data = stack.data_dir().display();
    println!("Fleet local stack is running (data in {data}).");
    if let Some(a) = stack.mqtt_addr() {
        println!("  MQTT       mqtt://{a}");
    }
    if let Some(a) = stack.ws_addr() {
        println!("  WebSocket  ws://{a}/mqtt");
    }
    if let Some(a) = stack.mqtts_addr() {
        println!(
            "  mTLS       mqtts://{a}  (CA {data}/certs/ca.pem; device certs: fleet local cert --device ID)"
        );
    }
    if let Some(a) = stack.http_addr() {
        println!("  Web app    http://{a}/   (metrics http://{a}/metrics)");
        if let PageConfig::File(file) = stack.page_config() {
            println!(
                "             config.json: {} as it is (mode {}; pages get no credential from this stack)",
                file.path.display(),
                file.mode
            );
        }
        if !a.ip().is_loopback() {
            println!(
                "             from other machines: http://HOST:{}/?key={}",
                a.port(),
                stack.keys().token(&Subject::Http)
            );
        }
    }
    let auth = stack.keys().dir().display();
    println!(
        "Credentials (ARCHITECTURE §4.8): fleet token {auth}/fleet.token, read-only {auth}/observer.token,"
    );
    println!("  a device's: fleet local token --device ID; mTLS: fleet local cert --device ID.");
    println!("Stop with Ctrl-C.");
}

async fn wait_for_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

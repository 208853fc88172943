//! `fleet sim`: a fleet of native devices over real MQTT, the original Go `monitoring` CLI
//! grown to fleets.
//!
//! The devices are one fleet engine (`fleet-engine`), driven by one task on tokio's timer:
//! it sleeps until the engine's next deadline, ticks it, starts a `fleet-client`
//! connection for each device the ramp-up (`--connect-rate`) reached (if its connection is
//! not up yet), and publishes each message (QoS 1 telemetry) on its device's connection.
//! Acknowledgements come back tagged with the device and the readings they cover, so every
//! acknowledged reading is counted (and listed with `--acked-file`).
//!
//! Connections (`--connections`, see `links`): one per device, subscribed to the device's
//! command topic, whose commands go back into the engine through that device; or gateways,
//! each publishing for whole buildings with client id `gateway:{buildings}` and subscribed
//! to their command wildcards, whose commands the engine routes by the device they name
//! ([`Via::Any`]). `auto` uses one per device while the process can hold them (its file
//! limit, the ephemeral ports of its `--bind` addresses), gateways beyond.
//!
//! With `--batch N` a device buffers N readings and publishes them as one message (a JSON
//! array, §4.3): on AWS a message costs the same whatever it holds, so this divides the
//! per-message part of the bill by N, and a command can come up to N readings later. What
//! is buffered is published at shutdown, so stopping loses nothing.
//!
//! With `--shard I/N` the process runs its part of the `--devices` fleet (`shard`); with
//! `--metrics ADDR` it serves Prometheus metrics while it runs, and with `--report FILE` it
//! writes a JSON report when it stops (`metrics`, `report`), also on Ctrl-C or SIGTERM, as
//! Kubernetes and ECS stop a container.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use fleet_client::{BrokerUrl, Client, ClientEvent, ClientHandle, Scheme, TlsFiles};
use fleet_core::access::LEGACY_CLIENT_ID;
use fleet_core::device::DEFAULT_DEVICE_ID;
use fleet_core::payload::Shape;
use fleet_core::{BuildingId, DeviceId, Fleet, FleetVariation, MAX_BATCH};
use fleet_engine::{DeviceSpec, Engine, EngineConfig, Received, Via};
use fleet_mqtt::{Backoff, Options, QoS};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

use crate::args::DeviceArgs;
use crate::certs::{DeviceCertDir, DeviceTls};
use crate::links::{self, ConnectionSetting, Limits, Plan};
use crate::logging::{self, LogFormat, LogLevel};
use crate::metrics::{Prom, Recorder};
use crate::report::{self, FleetKey, Latency, Report};
use crate::shard::Shard;

/// Flags of `fleet sim`.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Device id of a single device (with --devices 1); fleets use d-0001, d-0002, …
    #[arg(long, env = "DEVICE_ID", default_value = DEFAULT_DEVICE_ID)]
    pub device_id: String,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Log level: ERROR, WARNING, INFO, DEBUG.
    #[arg(long, env = "LOG_LEVEL", default_value = "INFO")]
    pub log_level: LogLevel,
    /// Log format (JSON, as the original CLI's logrus).
    #[arg(long, default_value = "json")]
    pub log_format: LogFormat,
    /// AWS IoT Core endpoint (ATS); connects with mutual TLS to port 8883 unless --broker
    /// is given.
    #[arg(long, env = "IOT_CORE_ENDPOINT")]
    pub iot_endpoint: Option<String>,
    /// Broker URL: mqtt://host:port, mqtts://host:port (mutual TLS) or ws://host:port/mqtt.
    /// Default: mqtts://IOT_ENDPOINT:8883 with --iot-endpoint, else the local stack.
    #[arg(long)]
    pub broker: Option<String>,
    /// CA certificate for mqtts (default: the original's ./certs/AmazonRootCA1.pem; with
    /// --cert-dir, DIR/AmazonRootCA1.pem).
    #[arg(long)]
    pub root_ca: Option<PathBuf>,
    /// Device certificate for mqtts.
    #[arg(long, default_value = "./certs/monitoring-device.cert.pem")]
    pub cert: PathBuf,
    /// Device private key for mqtts.
    #[arg(long, default_value = "./certs/monitoring-device.private.key")]
    pub key: PathBuf,
    /// MQTT user name, e.g. `fleet` with the local stack's fleet token, or `device:ID` with
    /// a device's credential (`fleet local token`).
    #[arg(long, env = "MQTT_USERNAME")]
    pub username: Option<String>,
    /// MQTT password (prefer --password-file: a command line is visible to other users).
    #[arg(
        long,
        env = "MQTT_PASSWORD",
        hide_env_values = true,
        conflicts_with = "password_file"
    )]
    pub password: Option<String>,
    /// A file holding the MQTT password, e.g. the local stack's DATA/auth/fleet.token.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Per-device certificates for mqtts: each device connects with its own
    /// DIR/{id}.cert.pem and DIR/{id}.private.key (as `fleet aws provision` writes them, or
    /// `fleet local cert` under DATA/certs/devices). Every file is checked before the first
    /// connection.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["cert", "key"])]
    pub cert_dir: Option<PathBuf>,
    /// Number of devices: the whole fleet's, also with --shard (each shard runs its part).
    /// At most 100,000 in one process.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_FLEET))]
    pub devices: u32,
    /// Run shard I of N (I from 0, as a Kubernetes Indexed Job's JOB_COMPLETION_INDEX): the
    /// devices at indexes devices·I/N up to devices·(I+1)/N, with the fleet's ids and
    /// curves. Shards of one fleet give the same --devices and --seed.
    #[arg(long, env = "FLEET_SHARD", value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Serve Prometheus metrics at http://ADDR/metrics while running (counters and latency
    /// histograms, labelled with the shard), e.g. 127.0.0.1:9464. Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Write a JSON report here when the run stops (also on Ctrl-C or SIGTERM): the shard
    /// and its id range, the counters, and the latencies as HDR histograms with their
    /// percentiles. `fleet report merge` combines the shards' reports.
    #[arg(long, env = "FLEET_REPORT", value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Building of the devices (the original used 1).
    #[arg(long, default_value = "1")]
    pub building: String,
    /// Spread the devices over this many buildings, 1 to N, in blocks of consecutive
    /// devices (instead of all in --building). Gateways serve whole buildings, so a fleet
    /// needs at least as many buildings as gateway connections.
    #[arg(long, conflicts_with = "building", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub buildings: Option<u32>,
    /// Connections to the broker: `per-device` (each device its own, with its id as client
    /// id), `N` (N gateway connections, each publishing for whole buildings as
    /// `gateway:{buildings}` and subscribed to their command topics; a gateway credential,
    /// `fleet local token --gateway`, or loopback development mode), or `auto`: per device
    /// while the process's file limit and ephemeral ports allow, gateways beyond.
    #[arg(long, default_value = "auto")]
    pub connections: ConnectionSetting,
    /// Local addresses to connect from, spread over the connections (e.g.
    /// 127.0.0.2,127.0.0.3 against a loopback broker): each address has its own ~28,000
    /// ephemeral ports to one broker.
    #[arg(long, value_delimiter = ',', value_name = "ADDR,…")]
    pub bind: Vec<IpAddr>,
    /// Seed of the fleet's phases and noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Noise half-width, °C (0: the exact original curve).
    #[arg(long, default_value_t = fleet_core::device::DEFAULT_NOISE_AMPLITUDE)]
    pub noise: f64,
    /// Speak the original stack's topics and payloads (monitoring-device/building-N).
    #[arg(long)]
    pub legacy: bool,
    /// New connections per second across the fleet (IoT Core also allows 1 per second per
    /// client id, which the reconnect backoff respects).
    #[arg(long, default_value_t = 50.0)]
    pub connect_rate: f64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// On stop, wait this long for outstanding acknowledgements.
    #[arg(long, default_value_t = 10.0)]
    pub drain_timeout: f64,
    /// Append every acknowledged reading to this file as NDJSON ({"device","seq"}).
    #[arg(long)]
    pub acked_file: Option<PathBuf>,
    /// MQTT keep-alive, seconds (IoT Core: 30..=1200).
    #[arg(long, default_value_t = 60)]
    pub keep_alive: u16,
    /// Readings per message (1..=100): each device buffers this many and publishes them as
    /// one JSON array. 1 (the default) sends each reading as it is taken, as the original
    /// CLI did. On AWS, ≤ 38–40 keeps a message within one 5 KB metering step.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=(MAX_BATCH as i64)))]
    pub batch: u16,
    /// Publish telemetry through this AWS IoT rule's Basic Ingest topic,
    /// `$aws/rules/RULE/dt/monitoring/…` (the template's `TelemetryRuleName` output): the
    /// rule gets the readings, IoT Core charges no message for them. AWS only: a broker has
    /// no rules.
    #[arg(long, value_name = "RULE")]
    pub basic_ingest: Option<String>,
}

/// The largest fleet `--devices` takes (sharded over processes).
const MAX_FLEET: i64 = 10_000_000;

/// The most devices one process runs (one shard).
const MAX_PER_PROCESS: usize = 100_000;

pub fn run(args: SimArgs) -> Result<()> {
    logging::init(args.log_level, args.log_format);
    let params = args.device.params().context("invalid device parameters")?;
    let url = broker_url(&args)?;
    if args.cert_dir.is_some() && url.scheme() != Scheme::Mqtts {
        bail!("--cert-dir needs mutual TLS: an mqtts:// --broker, or --iot-endpoint");
    }
    let tls = (url.scheme() == Scheme::Mqtts).then(|| device_tls(&args));
    let building = BuildingId::try_from(args.building.as_str())
        .with_context(|| format!("--building {:?}", args.building))?;
    if !(args.connect_rate.is_finite() && args.connect_rate > 0.0) {
        bail!("--connect-rate must be a positive number");
    }
    check_batch(&args)?;
    let topic_prefix = basic_ingest_prefix(&args)?;
    let range = shard_range(&args)?;
    let devices = build_fleet(&args, &building, range.clone())?;
    let plan = connection_plan(&args, &url, &devices)?;
    if let Some(tls) = &tls {
        tls.check(devices.iter().map(|d| &d.id))?;
    }
    let config = EngineConfig {
        params,
        ramp_per_s: args.connect_rate,
        batch: usize::from(args.batch),
        topic_prefix,
        qos: QoS::AtLeastOnce,
        round_trip_window: latency_window(params.update_frequency_s, args.batch),
        ..EngineConfig::default()
    };
    // Checked before the setup is printed: a bad fleet fails without starting.
    let engine =
        Engine::new(config, &devices, fleet_clock::now_us()).context("invalid fleet settings")?;
    let shard = args.shard.unwrap_or(Shard::WHOLE).to_string();
    let key = FleetKey {
        devices: args.devices,
        seed: args.seed,
        building: args.building.clone(),
        legacy: args.legacy,
        batch: args.batch,
        update_frequency_s: params.update_frequency_s,
        broker: url.to_string(),
    };
    print_setup(&args, &url, &plan, engine.len());

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let started_ms = fleet_clock::now_ms();
    let (recorder, interrupted) = runtime.block_on(async {
        let (stop_metrics, stopped) = tokio::sync::watch::channel(false);
        let recorder = match args.metrics {
            Some(addr) => {
                let prom = Arc::new(Prom::new(&shard));
                let local = crate::metrics::serve(addr, prom.clone(), stopped).await?;
                info!(metrics = %format!("http://{local}/metrics"), "serving Prometheus metrics");
                Recorder::with_prometheus(prom)
            }
            None => Recorder::default(),
        };
        let mut sim = Sim::new(&args, url, tls, engine, plan, recorder)?;
        let interrupted = sim.run().await?;
        let _ = stop_metrics.send(true);
        Ok::<_, anyhow::Error>((sim.recorder, interrupted))
    })?;
    print_summary(&args, &recorder);
    if let Some(path) = &args.report {
        let report = Report {
            format: report::FORMAT.to_owned(),
            fleet: key,
            ranges: vec![report::id_range(&shard, &range)],
            started_ms,
            ended_ms: fleet_clock::now_ms(),
            interrupted,
            counters: recorder.counts.by_name(),
            commands_by_action: recorder
                .counts
                .commands
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            latency: [
                (
                    "round_trip".to_owned(),
                    Latency::of(&recorder.round_trip_us)?,
                ),
                ("ack".to_owned(), Latency::of(&recorder.ack_us)?),
            ]
            .into(),
        };
        report.write(path)?;
        info!(report = %path.display(), "report written");
    }
    Ok(())
}

/// Which connection each device uses (`--connections`), within what the process can hold.
fn connection_plan(args: &SimArgs, url: &BrokerUrl, devices: &[DeviceSpec]) -> Result<Plan> {
    let limits = Limits::of_process(args.bind.len());
    let buildings: Vec<BuildingId> = devices.iter().map(|d| d.building.clone()).collect();
    let messages_per_s =
        devices.len() as f64 / args.device.update_frequency.max(1e-3) / f64::from(args.batch);
    // IoT Core allows 100 publishes per second per connection; our own brokers have no
    // such limit.
    let per_gateway = if args.iot_endpoint.is_some() || url.host().ends_with(".amazonaws.com") {
        links::IOT_CORE_GATEWAY_PUBLISH_RATE
    } else {
        links::LOCAL_GATEWAY_PUBLISH_RATE
    };
    let plan = links::plan(
        args.connections,
        &buildings,
        &limits,
        messages_per_s,
        per_gateway,
    )?;
    if let Plan::Gateways { gateways, .. } = &plan {
        if args.legacy {
            bail!(
                "gateway connections speak the current topics; --legacy devices each need their own connection (--connections per-device)"
            );
        }
        if url.scheme() == Scheme::Mqtts {
            bail!(
                "gateway connections need a gateway credential, which mutual TLS does not carry yet (a certificate names one device): \
                 use mqtt:// or ws:// with `fleet local token --gateway`, or --connections per-device"
            );
        }
        if let ConnectionSetting::Gateways(asked) = args.connections
            && asked > gateways.len()
        {
            warn!(
                asked,
                gateways = gateways.len(),
                "fewer gateway connections than asked: the devices of a building share one, so there are at most as many as buildings (--buildings)"
            );
        }
        if args.connections == ConnectionSetting::Auto {
            info!(
                devices = devices.len(),
                room = limits.connections(),
                file_limit = limits.file_limit,
                gateways = gateways.len(),
                "more devices than this process can hold connections: gateway connections"
            );
        }
    }
    Ok(plan)
}

/// Readings per device whose publish time the engine keeps, to time their acknowledgement
/// and the command answering them: two minutes of readings at the period, at least 16 and 3
/// batches, at most 256. A latency longer than the window is not sampled and is counted as
/// such (`latency_unsampled`). It is memory per device: 256 as before cost 2 KiB of each
/// device's 20 KiB budget (issue 16) where 64 cover two minutes at the default period.
fn latency_window(period_s: f64, batch: u16) -> usize {
    let readings = (120.0 / period_s.max(1e-3)).ceil().min(256.0) as usize;
    readings
        .max(16)
        .max(3 * usize::from(batch))
        .min(256.max(3 * usize::from(batch)))
}

/// The device indexes this process runs: the whole fleet, or its `--shard`.
fn shard_range(args: &SimArgs) -> Result<Range<usize>> {
    let range = match args.shard {
        None => 0..args.devices as usize,
        Some(_) if args.devices == 1 => bail!(
            "--shard splits a fleet (--devices N, ids d-0001…); a single device (--devices 1, \
             its own --device-id{}) is not split",
            if args.legacy {
                ", the original's client id with --legacy"
            } else {
                ""
            }
        ),
        Some(shard) => shard
            .range(args.devices)
            .with_context(|| format!("--shard {shard}"))?,
    };
    if range.len() > MAX_PER_PROCESS {
        bail!(
            "{} devices in one process (the most is {MAX_PER_PROCESS}): split the fleet with \
             --shard I/N over {} processes or more",
            range.len(),
            range.len().div_ceil(MAX_PER_PROCESS)
        );
    }
    Ok(range)
}

/// The devices' TLS files: their own under `--cert-dir`, else the one `--cert/--key` pair.
fn device_tls(args: &SimArgs) -> DeviceTls {
    match &args.cert_dir {
        Some(dir) => {
            let dir = DeviceCertDir::new(dir);
            let root_ca = args.root_ca.clone().unwrap_or_else(|| dir.root_ca());
            DeviceTls::PerDevice { dir, root_ca }
        }
        None => {
            let root_ca = args
                .root_ca
                .clone()
                .unwrap_or_else(|| PathBuf::from("./certs/AmazonRootCA1.pem"));
            DeviceTls::Shared(TlsFiles::new(root_ca).with_identity(&args.cert, &args.key))
        }
    }
}

/// `$aws/rules/RULE/` for `--basic-ingest RULE`, or nothing.
fn basic_ingest_prefix(args: &SimArgs) -> Result<String> {
    let Some(rule) = &args.basic_ingest else {
        return Ok(String::new());
    };
    // IoT rule names: letters, digits and _, at most 128.
    if rule.is_empty()
        || rule.len() > 128
        || !rule.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        bail!("--basic-ingest {rule:?}: an IoT rule name is 1 to 128 letters, digits or _");
    }
    if args.legacy {
        bail!(
            "--basic-ingest goes with the current topics; --legacy devices use the legacy rule's topics"
        );
    }
    Ok(format!("$aws/rules/{rule}/"))
}

/// Batches are current-shape only: the original's devices (and the legacy topic) carry one
/// `{"body":…}` reading per message, and the stack rejects an array there.
fn check_batch(args: &SimArgs) -> Result<()> {
    if args.legacy && args.batch > 1 {
        bail!(
            "--batch {} needs the current payload shape: --legacy devices send one reading per message",
            args.batch
        );
    }
    Ok(())
}

fn broker_url(args: &SimArgs) -> Result<BrokerUrl> {
    let text = match (&args.broker, &args.iot_endpoint) {
        (Some(b), _) => b.clone(),
        (None, Some(endpoint)) if endpoint != "CHANGE_ME" => format!("mqtts://{endpoint}:8883"),
        _ => String::from("mqtt://127.0.0.1:1883"),
    };
    BrokerUrl::parse(&text).with_context(|| format!("broker URL {text:?}"))
}

/// The devices: `d-0001`… in `--building` (or spread over `--buildings N`, `1`…`N`), or the
/// one `--device-id` (with no variation at `--noise 0`: the original curve exactly), all
/// speaking the legacy shape with `--legacy`. With `--shard`, only the devices in `range`,
/// with the ids, buildings and variations they have in the whole fleet.
fn build_fleet(
    args: &SimArgs,
    building: &BuildingId,
    range: Range<usize>,
) -> Result<Vec<DeviceSpec>> {
    let shape = if args.legacy {
        Shape::Legacy
    } else {
        Shape::Current
    };
    let single = args.devices == 1;
    let spread = args.buildings.unwrap_or(1).min(args.devices) as usize;
    let buildings: Vec<BuildingId> = if spread > 1 {
        (1..=spread)
            .map(|b| BuildingId::try_from(b.to_string()).context("building id"))
            .collect::<Result<_>>()?
    } else {
        vec![building.clone()]
    };
    let total = args.devices as usize;
    Fleet::variations(args.seed, args.noise)
        .enumerate()
        .skip(range.start)
        .take(range.len())
        .map(|(i, variation)| {
            // One device keeps the original's id; a fleet numbers its devices.
            let id = if single {
                DeviceId::try_from(args.device_id.as_str())
                    .with_context(|| format!("--device-id {:?}", args.device_id))?
            } else {
                Fleet::device_id(i)
            };
            let variation = if single && args.noise == 0.0 {
                FleetVariation::NONE
            } else {
                variation
            };
            variation.validate().context("invalid fleet settings")?;
            Ok(DeviceSpec {
                id,
                building: buildings[i * buildings.len() / total].clone(),
                variation,
                shape,
            })
        })
        .collect()
}

fn print_setup(args: &SimArgs, url: &BrokerUrl, plan: &Plan, devices: usize) {
    let endpoint = args.iot_endpoint.as_deref().unwrap_or("-");
    // The original masks the endpoint but its last characters.
    let masked = match endpoint.len() {
        n if n > 6 => format!("**********{}", &endpoint[n - 6..]),
        _ => endpoint.to_owned(),
    };
    let p = &args.device;
    println!("Setup given:\n");
    println!("\tiot-endpoint: {masked}");
    println!("\tbroker: {url}");
    println!(
        "\tdevice-id: {:>13}",
        if args.devices == 1 {
            args.device_id.as_str()
        } else {
            "d-0001…"
        }
    );
    println!("\tdevices: {:>15}", args.devices);
    if let Some(shard) = args.shard {
        println!("\tshard: {shard:>17}");
    }
    match args.buildings {
        Some(n) if n > 1 => println!("\tbuildings: {:>13}", format!("1..{n}")),
        _ => println!("\tbuilding: {:>14}", args.building),
    }
    let connections = match plan {
        Plan::PerDevice => format!("{devices} (per device)"),
        Plan::Gateways { gateways, .. } => format!("{} gateways", gateways.len()),
    };
    println!("\tconnections: {connections:>11}");
    println!("\tmin-temp: {:>11.2} C°", p.min_temp);
    println!("\tmin-hum: {:>13.2} %", p.min_hum);
    println!("\tvelocity: {:>14.1}", p.velocity);
    println!("\tupdate-frequency: {:>5.1}s", p.update_frequency);
    println!("\tremediation-factor: {:>4.2}", p.remediation_factor);
    println!("\tlegacy: {:>16}", args.legacy);
    println!("\tbatch: {:>17}", args.batch);
    println!(
        "\tlog-level: {:>13}\n\nStarting simulation...",
        format!("{:?}", args.log_level).to_uppercase()
    );
}

/// The MQTT user name and password from the flags (a password file is read once, its
/// surrounding whitespace dropped).
fn credentials(args: &SimArgs) -> Result<Option<(String, Option<Vec<u8>>)>> {
    let password = match (&args.password, &args.password_file) {
        (Some(p), _) => Some(p.as_bytes().to_vec()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--password-file {}", path.display()))?;
            Some(text.trim().as_bytes().to_vec())
        }
        (None, None) => None,
    };
    match (&args.username, password) {
        (Some(user), password) => Ok(Some((user.clone(), password))),
        (None, Some(_)) => bail!("a password needs --username (MQTT 3.1.1 sends none without one)"),
        (None, None) => Ok(None),
    }
}

/// Events every connection may have waiting for the simulator, together. One channel for
/// all connections, not one each: a channel's first buffer cost each per-device connection
/// about 3 KiB (issue 16). Large, because a connection whose event finds it full stops
/// reading from the broker until there is room, and the simulator can spend a second
/// publishing a tick's readings while acknowledgements arrive; buffers are allocated only as
/// events wait.
const EVENT_CAPACITY: usize = 1 << 20;

/// Bits of a tag: the device (24, more than `--devices` allows), the readings' count (7,
/// more than `MAX_BATCH`), the first `seq` (33: 8.6 billion readings per device).
const TAG_COUNT_SHIFT: u32 = 33;
const TAG_DEVICE_SHIFT: u32 = 40;
const _: () = assert!(MAX_BATCH < 1 << (TAG_DEVICE_SHIFT - TAG_COUNT_SHIFT));

/// A message's device and readings as the tag its acknowledgement comes back with (a
/// gateway's acknowledgements are for many devices).
fn tag(device: usize, seqs: &std::ops::Range<u64>) -> u64 {
    (device as u64) << TAG_DEVICE_SHIFT
        | (seqs.end - seqs.start) << TAG_COUNT_SHIFT
        | (seqs.start & ((1 << TAG_COUNT_SHIFT) - 1))
}

fn untag(tag: u64) -> (usize, std::ops::Range<u64>) {
    let device = (tag >> TAG_DEVICE_SHIFT) as usize;
    let count = (tag >> TAG_COUNT_SHIFT) & ((1 << (TAG_DEVICE_SHIFT - TAG_COUNT_SHIFT)) - 1);
    let first = tag & ((1 << TAG_COUNT_SHIFT) - 1);
    (device, first..first + count)
}

/// The fleet and its connections: the one task that runs them.
struct Sim<'a> {
    args: &'a SimArgs,
    url: BrokerUrl,
    tls: Option<DeviceTls>,
    credentials: Option<(String, Option<Vec<u8>>)>,
    engine: Engine,
    /// Which connection each device uses.
    plan: Plan,
    /// Connection `l`, once the ramp-up reached its first device.
    links: Vec<Option<ClientHandle>>,
    /// Every connection's events, tagged with the connection.
    events: mpsc::Receiver<(usize, ClientEvent)>,
    /// What each connection sends its events with.
    events_tx: mpsc::Sender<(usize, ClientEvent)>,
    /// Readings of device `i` published and not yet acknowledged.
    outstanding: Vec<u32>,
    /// Whether connection `l` was up before (so its next connect is a reconnect).
    connected_once: Vec<bool>,
    acked: Option<mpsc::UnboundedSender<(String, u64)>>,
    writer: Option<tokio::task::JoinHandle<Result<()>>>,
    recorder: Recorder,
    last_progress: Instant,
}

impl<'a> Sim<'a> {
    fn new(
        args: &'a SimArgs,
        url: BrokerUrl,
        tls: Option<DeviceTls>,
        engine: Engine,
        plan: Plan,
        recorder: Recorder,
    ) -> Result<Sim<'a>> {
        let (acked, writer) = match args.acked_file.clone() {
            Some(path) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let writer = tokio::task::spawn_blocking(move || write_acked(&path, rx));
                (Some(tx), Some(writer))
            }
            None => (None, None),
        };
        let n = engine.len();
        let links = plan.connections(n);
        let (events_tx, events) = mpsc::channel(EVENT_CAPACITY);
        Ok(Sim {
            credentials: credentials(args)?,
            args,
            url,
            tls,
            plan,
            links: (0..links).map(|_| None).collect(),
            events,
            events_tx,
            outstanding: vec![0; n],
            connected_once: vec![false; links],
            acked,
            writer,
            recorder,
            last_progress: Instant::now(),
            engine,
        })
    }

    /// Runs the fleet until `--duration`, Ctrl-C or SIGTERM, then stops it without losing
    /// what was buffered or is waiting for an acknowledgement (within `--drain-timeout`).
    /// True if a signal stopped it.
    async fn run(&mut self) -> Result<bool> {
        let duration = self.args.duration;
        let stop = async move {
            match duration {
                Some(d) => tokio::time::sleep(Duration::from_secs_f64(d.max(0.0))).await,
                None => std::future::pending().await,
            }
        };
        let interrupt = tokio::signal::ctrl_c();
        let terminate = terminated();
        tokio::pin!(stop, interrupt, terminate);
        let mut interrupted = false;
        let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep(Duration::ZERO));
        let mut armed: Option<u64> = None;
        loop {
            // The engine's deadlines are on the wall clock; tokio's timer runs on its own.
            let deadline = self.engine.next_deadline();
            if deadline != armed {
                if let Some(at) = deadline {
                    let wait = at.saturating_sub(fleet_clock::now_us());
                    timer
                        .as_mut()
                        .reset(Instant::now() + Duration::from_micros(wait));
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                () = &mut stop => break,
                r = &mut interrupt => { r.context("waiting for Ctrl-C")?; interrupted = true; break; }
                r = &mut terminate => { r?; interrupted = true; break; }
                Some((i, event)) = self.events.recv() => {
                    self.on_event(i, event);
                }
                () = &mut timer, if armed.is_some() => {
                    armed = None;
                    let tick = self.engine.tick(fleet_clock::now_us());
                    for i in tick.started {
                        self.start_device(i).await?;
                    }
                    self.publish().await;
                }
            }
        }
        self.stop().await?;
        Ok(interrupted)
    }

    /// Device `i` started: its connection comes up if it is not up yet.
    async fn start_device(&mut self, i: usize) -> Result<()> {
        self.recorder.device_started();
        let link = self.plan.link(i);
        if self.links[link].is_none() {
            self.connect(link).await?;
        }
        let total = self.engine.len();
        if self.last_progress.elapsed() >= Duration::from_secs(1) || i + 1 == total {
            info!(
                started = i + 1,
                total,
                connections = self.recorder.counts.connections,
                "ramp-up"
            );
            self.last_progress = Instant::now();
        }
        Ok(())
    }

    /// Connection `link`'s client id: its device's (the original device's fixed one), or
    /// its gateway's `gateway:{buildings}`, with the shard's index (`gateway:{buildings}.s{I}`)
    /// when the fleet is sharded: shards whose id ranges meet inside a building both speak
    /// for it, and one client id would have them take each other's session over.
    fn client_id(&self, link: usize) -> String {
        match &self.plan {
            Plan::PerDevice if self.args.legacy && self.engine.len() == 1 => {
                LEGACY_CLIENT_ID.to_owned()
            }
            Plan::PerDevice => self.engine.id(link).to_owned(),
            Plan::Gateways { gateways, .. } => match self.args.shard {
                Some(shard) if shard.count > 1 => {
                    gateways[link].client_id_with(&format!("s{}", shard.index))
                }
                _ => gateways[link].client_id(),
            },
        }
    }

    /// Starts connection `link` and subscribes it to its commands: its device's command
    /// topic, or its buildings' command wildcards.
    async fn connect(&mut self, link: usize) -> Result<()> {
        // A fleet's devices each connect with their own id (a broker binds the client id
        // to the device, §4.8), a gateway with the buildings it speaks for.
        let client_id = self.client_id(link);
        let mut options = Options::new(&client_id);
        if let Some((username, password)) = &self.credentials {
            options.username = Some(username.clone());
            options.password = password.clone();
        }
        options.keep_alive_s = self.args.keep_alive;
        // A first retry no sooner than 1 s: IoT Core allows one CONNECT per second per
        // client id.
        options.backoff = Backoff {
            initial_ms: 2_000,
            max_ms: 60_000,
        };
        let mut client = Client::new(options, self.url.clone())
            .seed(self.args.seed ^ (link as u64).wrapping_mul(0x9E37));
        if !self.args.bind.is_empty() {
            client = client.bind(self.args.bind[link % self.args.bind.len()]);
        }
        let filters = match &self.plan {
            Plan::PerDevice => {
                let id = DeviceId::try_from(self.engine.id(link)).context("device id")?;
                if let Some(files) = &self.tls {
                    client = client.tls(files.for_device(&id));
                }
                vec![self.engine.command_topic(link)]
            }
            Plan::Gateways { gateways, .. } => gateways[link]
                .iter()
                .map(|b| format!("cmd/monitoring/{b}/+/remediation"))
                .collect(),
        };
        let handle = client
            .start_shared(link, self.events_tx.clone())
            .with_context(|| format!("connection {client_id}"))?;
        let filters: Vec<(&str, QoS)> = filters
            .iter()
            .map(|f| (f.as_str(), QoS::AtLeastOnce))
            .collect();
        if let Err(e) = handle.subscribe(&filters).await {
            warn!(client_id, error = %e, "cannot subscribe to commands");
        }
        self.links[link] = Some(handle);
        self.recorder.connection_started();
        Ok(())
    }

    /// Publishes the messages of the latest tick (or flush), each on its device's
    /// connection.
    async fn publish(&mut self) {
        let log_each = self.engine.len() == 1;
        if log_each {
            for r in self.engine.readings() {
                let s = &r.sample;
                info!(device = %self.engine.id(r.device), temperature = s.temperature, humidity = s.humidity, remediation = ?s.remediation, "Sending update");
            }
        }
        for m in self.engine.messages() {
            let count = m.seqs.end - m.seqs.start;
            let Some(link) = &self.links[self.plan.link(m.device)] else {
                // Every device with a message was started, and started its connection.
                warn!(device = %self.engine.id(m.device), readings = count, "readings not sent: no connection");
                continue;
            };
            let sent = link
                .publish_tagged(m.topic, m.payload, m.qos, tag(m.device, &m.seqs))
                .await;
            match sent {
                Ok(()) => {
                    self.recorder.sent(count);
                    self.outstanding[m.device] += count as u32;
                }
                Err(e) => {
                    self.recorder.not_sent(count);
                    warn!(device = %self.engine.id(m.device), error = %e, readings = count, "readings not sent")
                }
            }
        }
    }

    fn on_event(&mut self, link: usize, event: ClientEvent) {
        match event {
            ClientEvent::Acked { tag: Some(tag), .. } => {
                // One ack covers every reading of the message.
                let (i, seqs) = untag(tag);
                let count = seqs.end - seqs.start;
                let latency = self
                    .engine
                    .sent_at(i, seqs.start)
                    .map(|sent| fleet_clock::now_us().saturating_sub(sent));
                self.recorder.acked(count, latency);
                self.outstanding[i] = self.outstanding[i].saturating_sub(count as u32);
                // Legacy payloads carry no `seq` to list them by.
                if let Some(acked) = &self.acked
                    && self.engine.shape(i) == Shape::Current
                {
                    for seq in seqs {
                        let _ = acked.send((self.engine.id(i).to_owned(), seq));
                    }
                }
            }
            ClientEvent::Acked { tag: None, .. } => {}
            ClientEvent::Message(m) => {
                let now = fleet_clock::now_us();
                // A device's own connection carries its commands; a gateway's, those of
                // every device of its buildings, named by the topic.
                let via = match self.plan {
                    Plan::PerDevice => Via::Device(link),
                    Plan::Gateways { .. } => Via::Any,
                };
                match self.engine.receive(now, via, &m.topic, &m.payload) {
                    Received::Applied(applied) => {
                        let action = applied.action.as_str();
                        info!(device = %self.engine.id(applied.device), action, seq = applied.reading_seq, "Remediation command received");
                        self.recorder.command(action, applied.round_trip_us);
                    }
                    Received::Unreadable(e) => {
                        warn!(client_id = %self.client_id(link), topic = %m.topic, code = e.code(), reason = %e, "bad command")
                    }
                    Received::NotOurs | Received::NotACommand => {
                        debug!(client_id = %self.client_id(link), topic = %m.topic, "not a command for this fleet's devices")
                    }
                }
            }
            ClientEvent::Connected { .. } => {
                if self.connected_once[link] {
                    self.recorder.reconnected();
                }
                self.connected_once[link] = true;
                debug!(client_id = %self.client_id(link), "connected");
            }
            ClientEvent::Disconnected {
                reason,
                reconnect_in,
            } => {
                warn!(client_id = %self.client_id(link), reason = %reason, retry_in_ms = reconnect_in.map(|d| d.as_millis() as u64), "disconnected");
            }
            ClientEvent::Subscribed { results } => {
                debug!(client_id = %self.client_id(link), ?results, "subscribed")
            }
            ClientEvent::Unsubscribed { .. } => {}
            ClientEvent::PublishRejected { topic, error, tag } => {
                let (i, count) = tag.map_or((None, 0), |t| {
                    let (i, seqs) = untag(t);
                    (Some(i), seqs.end - seqs.start)
                });
                warn!(client_id = %self.client_id(link), %topic, %error, readings = count, "readings not sent");
                if let Some(i) = i {
                    self.recorder.refused(count);
                    self.outstanding[i] = self.outstanding[i].saturating_sub(count as u32);
                }
            }
        }
    }

    async fn stop(&mut self) -> Result<()> {
        info!("stopping: waiting for outstanding acknowledgements");
        // Readings still buffered go out before the drain, so a stop loses none of them.
        self.engine.flush(fleet_clock::now_us());
        self.publish().await;
        // Drain: outstanding acks, then a clean disconnect.
        let drain = Duration::from_secs_f64(self.args.drain_timeout.max(0.0));
        let until = Instant::now() + drain;
        while self.outstanding.iter().any(|&n| n > 0) && self.links.iter().any(Option::is_some) {
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some((l, event))) => self.on_event(l, event),
                Ok(None) | Err(_) => break,
            }
        }
        for (i, &unacked) in self.outstanding.iter().enumerate() {
            if unacked > 0 {
                warn!(device = %self.engine.id(i), unacked, "stopping with readings not acknowledged");
            }
        }
        futures_util::future::join_all(self.links.iter().flatten().map(ClientHandle::disconnect))
            .await;
        self.acked = None;
        if let Some(writer) = self.writer.take() {
            writer.await.context("the acked-file writer failed")??;
        }
        Ok(())
    }
}

fn write_acked(
    path: &std::path::Path,
    mut rx: mpsc::UnboundedReceiver<(String, u64)>,
) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    while let Some((device, seq)) = rx.blocking_recv() {
        writeln!(out, r#"{{"device":"{device}","seq":{seq}}}"#)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// SIGTERM (how Kubernetes and ECS stop a container), or never where there is none.
async fn terminated() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        term.recv().await;
        Ok(())
    }
    #[cfg(not(unix))]
    std::future::pending().await
}

fn print_summary(args: &SimArgs, recorder: &Recorder) {
    let c = &recorder.counts;
    let (devices, sent, acked, messages, reconnects) =
        (c.devices, c.sent, c.acked, c.messages, c.reconnects);
    let received = c.commands_total();
    let by_action: Vec<String> = c.commands.iter().map(|(a, n)| format!("{a} {n}")).collect();
    println!(
        "\nSummary: {devices} devices on {} connections",
        c.connections
    );
    println!(
        "  sent {sent}, acked {acked}, unacked {}, commands received {received}{}, reconnects {reconnects}",
        sent - acked.min(sent),
        if by_action.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_action.join(", "))
        },
    );
    // Counts above are readings; with --batch several share one message (and one ack).
    if args.batch > 1 {
        println!("  messages {messages} (up to {} readings each)", args.batch);
    }
    let rtt = &recorder.round_trip_us;
    if !rtt.is_empty() {
        println!(
            "  remediation round trip (publish → command): p50 {:.1} ms, p99 {:.1} ms over {} commands",
            rtt.value_at_quantile(0.50) as f64 / 1000.0,
            rtt.value_at_quantile(0.99) as f64 / 1000.0,
            rtt.len()
        );
    }
    if c.latency_unsampled > 0 {
        println!(
            "  {} acknowledgements or commands came too late to time (or answer a legacy reading): not in the latencies",
            c.latency_unsampled
        );
    }
    info!(
        devices,
        sent,
        acked,
        messages,
        batch = args.batch,
        commands = received,
        reconnects,
        refused = c.refused,
        not_sent = c.not_sent,
        latency_unsampled = c.latency_unsampled,
        legacy = args.legacy,
        shard = args.shard.map(|s| s.to_string()),
        "summary"
    );
}

#[cfg(test)]
mod latency_window_tests {
    use super::latency_window;

    #[test]
    fn the_window_covers_two_minutes_of_readings_within_its_bounds() {
        assert_eq!(latency_window(2.0, 1), 60);
        assert_eq!(latency_window(60.0, 1), 16);
        assert_eq!(latency_window(0.1, 1), 256);
        assert_eq!(latency_window(2.0, 100), 300);
    }
}

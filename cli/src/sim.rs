//! `fleet sim`: a fleet of native devices over real MQTT, the original Go `monitoring` CLI
//! grown to fleets.
//!
//! Each device is a `fleet-core` [`Device`] driven by its own `fleet-client` connection:
//! QoS 1 telemetry on its topic, a subscription to its command topic, commands applied to
//! its curve as they arrive.
//!
//! With `--batch N` a device buffers N readings and publishes them as one message (a JSON
//! array, §4.3): on AWS a message costs the same whatever it holds, so this divides the
//! per-message part of the bill by N, and a command can come up to N readings later. What
//! is buffered is published at shutdown, so stopping loses nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use fleet_client::{BrokerUrl, Client, ClientEvent, ClientHandle, Scheme, TlsFiles};
use fleet_core::access::LEGACY_CLIENT_ID;
use fleet_core::device::DEFAULT_DEVICE_ID;
use fleet_core::payload::{Shape, parse_legacy_command};
use fleet_core::{
    BuildingId, Device, DeviceId, Fleet, FleetVariation, MAX_BATCH, ParseContext, Telemetry,
    encode_telemetry, encode_telemetry_batch, parse_command,
};
use fleet_mqtt::{Backoff, Options, QoS};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::args::DeviceArgs;
use crate::certs::{DeviceCertDir, DeviceTls};
use crate::logging::{self, LogFormat, LogLevel};

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
    /// Number of devices.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub devices: u32,
    /// Building of the devices (the original used 1).
    #[arg(long, default_value = "1")]
    pub building: String,
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

/// What one device did.
#[derive(Debug, Default, Clone)]
struct DeviceReport {
    /// Readings published (in `messages` messages).
    sent: u64,
    /// Readings acknowledged (their message was).
    acked: u64,
    /// Messages published.
    messages: u64,
    commands: BTreeMap<&'static str, u64>,
    reconnects: u64,
    round_trips_ms: Vec<f64>,
}

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
    let devices = build_fleet(&args, params, &building)?;
    if let Some(tls) = &tls {
        tls.check(devices.iter().map(Device::id))?;
    }
    print_setup(&args, &url);

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let reports = runtime.block_on(simulate(&args, url, tls, devices, &topic_prefix))?;
    print_summary(&args, &reports);
    Ok(())
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

fn build_fleet(
    args: &SimArgs,
    params: fleet_core::DeviceParams,
    building: &BuildingId,
) -> Result<Vec<Device>> {
    let fleet = Fleet::with_noise(args.seed, args.devices as usize, 1, params, args.noise)
        .context("invalid fleet settings")?;
    fleet
        .into_devices()
        .into_iter()
        .map(|d| {
            // One device keeps the original's id; a fleet numbers its devices.
            let id = if args.devices == 1 {
                DeviceId::try_from(args.device_id.as_str())
                    .with_context(|| format!("--device-id {:?}", args.device_id))?
            } else {
                d.id().clone()
            };
            let variation = if args.devices == 1 && args.noise == 0.0 {
                FleetVariation::NONE
            } else {
                *d.variation()
            };
            Ok(Device::new(id, building.clone(), params, variation)?)
        })
        .collect()
}

fn print_setup(args: &SimArgs, url: &BrokerUrl) {
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
    println!("\tbuilding: {:>14}", args.building);
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn simulate(
    args: &SimArgs,
    url: BrokerUrl,
    tls: Option<DeviceTls>,
    devices: Vec<Device>,
    topic_prefix: &str,
) -> Result<Vec<DeviceReport>> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (acked_tx, acked_rx) = mpsc::unbounded_channel::<(DeviceId, u64)>();
    let writer = args
        .acked_file
        .clone()
        .map(|path| tokio::task::spawn_blocking(move || write_acked(&path, acked_rx)));
    let shape = if args.legacy {
        Shape::Legacy
    } else {
        Shape::Current
    };
    let period = Duration::from_secs_f64(args.device.update_frequency);
    let total = devices.len();
    let pace = Duration::from_secs_f64(1.0 / args.connect_rate);
    let started = Instant::now();
    let deadline = args
        .duration
        .map(|d| started + Duration::from_secs_f64(d.max(0.0)));
    let drain = Duration::from_secs_f64(args.drain_timeout.max(0.0));

    let credentials = credentials(args)?;
    let mut tasks = Vec::with_capacity(total);
    let mut last_progress = Instant::now();
    for (i, device) in devices.into_iter().enumerate() {
        if *stop_rx.borrow() {
            break;
        }
        // The original device connects with its fixed client id; a fleet's devices each
        // with their own id (a broker binds the client id to the device, §4.8).
        let client_id = if args.legacy && total == 1 {
            LEGACY_CLIENT_ID
        } else {
            device.id().as_str()
        };
        let mut options = Options::new(client_id);
        if let Some((username, password)) = &credentials {
            options.username = Some(username.clone());
            options.password = password.clone();
        }
        options.keep_alive_s = args.keep_alive;
        // A first retry no sooner than 1 s: IoT Core allows one CONNECT per second per
        // client id.
        options.backoff = Backoff {
            initial_ms: 2_000,
            max_ms: 60_000,
        };
        let mut client =
            Client::new(options, url.clone()).seed(args.seed ^ (i as u64).wrapping_mul(0x9E37));
        if let Some(files) = &tls {
            client = client.tls(files.for_device(device.id()));
        }
        let (handle, events) = client
            .start()
            .with_context(|| format!("device {}", device.id()))?;
        let run = DeviceRun {
            device,
            handle,
            events,
            shape,
            period,
            batch: usize::from(args.batch),
            topic_prefix: topic_prefix.to_owned(),
            stop: stop_rx.clone(),
            acked: acked_tx.clone(),
            drain,
            log_each: total == 1,
        };
        tasks.push(tokio::spawn(run.run()));
        if last_progress.elapsed() >= Duration::from_secs(1) || i + 1 == total {
            info!(started = i + 1, total, "ramp-up");
            last_progress = Instant::now();
        }
        if i + 1 < total {
            tokio::time::sleep(pace).await;
        }
    }
    drop(acked_tx);

    tokio::select! {
        _ = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        } => {}
        r = tokio::signal::ctrl_c() => { r.context("waiting for Ctrl-C")?; }
    }
    info!("stopping: waiting for outstanding acknowledgements");
    let _ = stop_tx.send(true);
    let mut reports = Vec::with_capacity(tasks.len());
    for task in tasks {
        reports.push(task.await.context("a device task failed")?);
    }
    if let Some(writer) = writer {
        writer.await.context("the acked-file writer failed")??;
    }
    Ok(reports)
}

fn write_acked(
    path: &std::path::Path,
    mut rx: mpsc::UnboundedReceiver<(DeviceId, u64)>,
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

/// One device's loop.
struct DeviceRun {
    device: Device,
    handle: ClientHandle,
    events: mpsc::Receiver<ClientEvent>,
    shape: Shape,
    period: Duration,
    /// Readings per message.
    batch: usize,
    /// Before the telemetry topic: Basic Ingest's `$aws/rules/RULE/`, or nothing.
    topic_prefix: String,
    stop: watch::Receiver<bool>,
    acked: mpsc::UnboundedSender<(DeviceId, u64)>,
    drain: Duration,
    log_each: bool,
}

impl DeviceRun {
    async fn run(mut self) -> DeviceReport {
        let mut report = DeviceReport::default();
        let topic = format!(
            "{}{}",
            self.topic_prefix,
            self.device.telemetry_topic(self.shape)
        );
        let command_topic = self.device.command_topic(self.shape).to_string();
        if let Err(e) = self
            .handle
            .subscribe(&[(&command_topic, QoS::AtLeastOnce)])
            .await
        {
            warn!(device = %self.device.id(), error = %e, "cannot subscribe to commands");
        }
        // Packet id → the seqs of its readings, for acks; reading seq → publish time, for
        // round trips.
        let mut pending: HashMap<u16, Vec<u64>> = HashMap::new();
        let mut sent_at: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut buffer: Vec<Telemetry> = Vec::with_capacity(self.batch);
        let mut tick = tokio::time::interval(self.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut connected_once = false;
        loop {
            tokio::select! {
                _ = self.stop.changed() => break,
                _ = tick.tick() => {
                    let sample = self.device.step(now_ms());
                    if self.log_each {
                        info!(device = %self.device.id(), temperature = sample.temperature, humidity = sample.humidity, remediation = ?sample.remediation, "Sending update");
                    }
                    buffer.push(self.device.telemetry(&sample, self.shape));
                    if buffer.len() >= self.batch {
                        self.publish(&topic, &mut buffer, &mut pending, &mut sent_at, &mut report).await;
                    }
                }
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(event, &mut pending, &sent_at, &mut report, &mut connected_once),
                    None => break,
                },
            }
        }
        // Readings still buffered go out before the drain, so a stop loses none of them.
        if !buffer.is_empty() {
            self.publish(&topic, &mut buffer, &mut pending, &mut sent_at, &mut report)
                .await;
        }
        // Drain: outstanding acks, then a clean disconnect.
        let until = tokio::time::Instant::now() + self.drain;
        while !pending.is_empty() {
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some(event)) => self.on_event(
                    event,
                    &mut pending,
                    &sent_at,
                    &mut report,
                    &mut connected_once,
                ),
                Ok(None) | Err(_) => break,
            }
        }
        if !pending.is_empty() {
            let unacked: usize = pending.values().map(Vec::len).sum();
            warn!(device = %self.device.id(), unacked, "stopping with readings not acknowledged");
        }
        let _ = self.handle.disconnect().await;
        report
    }

    /// Publishes the buffered readings as one message (QoS 1) and empties the buffer: a
    /// lone reading with `--batch 1` as the usual object, anything else as a JSON array.
    async fn publish(
        &mut self,
        topic: &str,
        buffer: &mut Vec<Telemetry>,
        pending: &mut HashMap<u16, Vec<u64>>,
        sent_at: &mut VecDeque<(u64, Instant)>,
        report: &mut DeviceReport,
    ) {
        let payload = match buffer.as_slice() {
            [one] if self.batch == 1 => encode_telemetry(one),
            readings => encode_telemetry_batch(readings),
        };
        let seqs: Vec<u64> = buffer.drain(..).filter_map(|t| t.seq).collect();
        let count = seqs.len() as u64;
        match self.handle.publish(topic, payload, QoS::AtLeastOnce).await {
            Ok(Some(pkid)) => {
                let now = Instant::now();
                for &seq in &seqs {
                    sent_at.push_back((seq, now));
                }
                while sent_at.len() > 256.max(3 * self.batch) {
                    sent_at.pop_front();
                }
                pending.insert(pkid, seqs);
                report.sent += count;
                report.messages += 1;
            }
            Ok(None) => {
                report.sent += count;
                report.messages += 1;
            }
            Err(e) => {
                warn!(device = %self.device.id(), error = %e, readings = count, "readings not sent")
            }
        }
    }

    fn on_event(
        &mut self,
        event: ClientEvent,
        pending: &mut HashMap<u16, Vec<u64>>,
        sent_at: &VecDeque<(u64, Instant)>,
        report: &mut DeviceReport,
        connected_once: &mut bool,
    ) {
        let id = self.device.id().clone();
        match event {
            ClientEvent::Acked { pkid } => {
                // One ack covers every reading of the message.
                if let Some(seqs) = pending.remove(&pkid) {
                    report.acked += seqs.len() as u64;
                    for seq in seqs {
                        let _ = self.acked.send((id.clone(), seq));
                    }
                }
            }
            ClientEvent::Message(m) => {
                let now = now_ms();
                let ctx = ParseContext::new(now);
                let applied = match self.shape {
                    Shape::Current => match parse_command(&m.payload, &ctx) {
                        Ok(command) => {
                            self.device.apply(&command, now);
                            if let Some(t) = command
                                .reading_seq
                                .and_then(|seq| sent_at.iter().find(|(s, _)| *s == seq))
                            {
                                report
                                    .round_trips_ms
                                    .push(t.1.elapsed().as_secs_f64() * 1000.0);
                            }
                            Some(command.action.as_str())
                        }
                        Err(e) => {
                            warn!(device = %id, topic = %m.topic, code = e.code(), reason = %e, "bad command");
                            None
                        }
                    },
                    Shape::Legacy => match parse_legacy_command(&m.payload, &ctx) {
                        Ok(command) => self
                            .device
                            .apply_legacy_command(&command, now)
                            .map(|a| a.as_str()),
                        Err(e) => {
                            warn!(device = %id, topic = %m.topic, code = e.code(), reason = %e, "bad command");
                            None
                        }
                    },
                };
                if let Some(action) = applied {
                    info!(device = %id, action, "Remediation command received");
                    *report.commands.entry(action).or_default() += 1;
                }
            }
            ClientEvent::Connected { .. } => {
                if *connected_once {
                    report.reconnects += 1;
                }
                *connected_once = true;
                debug!(device = %id, "connected");
            }
            ClientEvent::Disconnected {
                reason,
                reconnect_in,
            } => {
                warn!(device = %id, reason = %reason, retry_in_ms = reconnect_in.map(|d| d.as_millis() as u64), "disconnected");
            }
            ClientEvent::Subscribed { results } => debug!(device = %id, ?results, "subscribed"),
            ClientEvent::Unsubscribed { .. } => {}
            ClientEvent::PublishRejected { topic, error } => {
                warn!(device = %id, %topic, %error, "publish refused")
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn print_summary(args: &SimArgs, reports: &[DeviceReport]) {
    let sent: u64 = reports.iter().map(|r| r.sent).sum();
    let messages: u64 = reports.iter().map(|r| r.messages).sum();
    let acked: u64 = reports.iter().map(|r| r.acked).sum();
    let reconnects: u64 = reports.iter().map(|r| r.reconnects).sum();
    let mut commands: BTreeMap<&str, u64> = BTreeMap::new();
    for r in reports {
        for (a, n) in &r.commands {
            *commands.entry(a).or_default() += n;
        }
    }
    let mut rtt: Vec<f64> = reports
        .iter()
        .flat_map(|r| r.round_trips_ms.iter().copied())
        .collect();
    rtt.sort_by(f64::total_cmp);
    let received: u64 = commands.values().sum();
    let by_action: Vec<String> = commands.iter().map(|(a, n)| format!("{a} {n}")).collect();
    println!("\nSummary: {} devices", reports.len());
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
    if !rtt.is_empty() {
        println!(
            "  remediation round trip (publish → command): p50 {:.1} ms, p99 {:.1} ms over {} commands",
            percentile(&rtt, 50.0),
            percentile(&rtt, 99.0),
            rtt.len()
        );
    }
    info!(
        devices = reports.len(),
        sent,
        acked,
        messages,
        batch = args.batch,
        commands = received,
        reconnects,
        legacy = args.legacy,
        "summary"
    );
}

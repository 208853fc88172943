//! `fleet bench`: drives N devices at a given total rate through `fleet local` and reports
//! what the stack really stored (counted in its database), the remediation round trip, the
//! stack's peak memory, and losses.
//!
//! The stack runs as its own process (this binary's `fleet local`, on free loopback ports
//! and a scratch data directory), so its memory is measured apart from the load generator.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use fleet_client::{BrokerUrl, Client, ClientEvent, ClientHandle};
use fleet_core::{DeviceParams, Fleet, ParseContext, encode_telemetry, parse_command};
use fleet_local::{LocalStore, SqliteStore};
use fleet_mqtt::{Options, QoS};
use hdrhistogram::Histogram;
use tokio::sync::{Mutex, watch};

/// Flags of `fleet bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Devices, one MQTT connection each.
    #[arg(long, default_value_t = 500)]
    pub devices: u32,
    /// Total readings per second across all devices.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Benchmark a stack that is already running at this MQTT URL (its database is then
    /// not counted; use --data to point at it).
    #[arg(long)]
    pub broker: Option<String>,
    /// Data directory of the stack (default: a fresh temporary one).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Print the result as one JSON line too.
    #[arg(long)]
    pub json: bool,
}

/// Round trips, in µs: all of them, and those of commands answering a device's second or
/// later reading. Every device sends its first reading in the same 1/rate-wide window,
/// so the first ones measure the stack's cold start (empty WAL and caches) under a
/// fleet-wide burst; both are printed, the first is the headline.
#[derive(Debug, Clone)]
struct RoundTrips {
    all: Histogram<u64>,
    after_first: Histogram<u64>,
}

impl RoundTrips {
    fn new() -> Result<RoundTrips> {
        Ok(RoundTrips {
            all: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            after_first: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        })
    }
}

fn describe(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return String::from("no command received");
    }
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} commands",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        h.len()
    )
}

/// Shared counters of the load generator.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    commands: AtomicU64,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if !(args.rate.is_finite() && args.rate > 0.0 && args.duration > 0.0 && args.devices > 0) {
        bail!("--rate, --duration and --devices must be positive");
    }
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| scratch.path().join("data"));
    let mut stack = match &args.broker {
        Some(_) => None,
        None => Some(StackProcess::start(&data)?),
    };
    let url = match (&args.broker, &stack) {
        (Some(b), _) => b.clone(),
        (None, Some(s)) => format!("mqtt://{}", s.mqtt),
        (None, None) => bail!("no broker"),
    };
    let url = BrokerUrl::parse(&url).with_context(|| format!("broker URL {url:?}"))?;
    let before = count_readings(&data)?;

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let counters = Arc::new(Counters::default());
    let rtt = Arc::new(Mutex::new(RoundTrips::new()?));
    let started = Instant::now();
    let (load_secs, peak_rss_kb) = runtime.block_on(drive(
        &args,
        url,
        counters.clone(),
        rtt.clone(),
        stack.as_ref(),
    ))?;
    let stack_peak = stack
        .as_mut()
        .map(|s| s.peak_rss_kb())
        .unwrap_or(peak_rss_kb);
    if let Some(s) = stack.take() {
        s.stop()?;
    }
    let stored = count_readings(&data)?.saturating_sub(before);
    let sent = counters.sent.load(Relaxed);
    let acked = counters.acked.load(Relaxed);
    let rtt = runtime.block_on(async { rtt.lock().await.clone() });
    let wall = started.elapsed().as_secs_f64();
    let per_s = stored as f64 / load_secs;
    println!(
        "fleet bench: {} devices, target {:.0} readings/s for {:.0} s",
        args.devices, args.rate, args.duration
    );
    println!("  sent {sent}, acked {acked}, stored {stored} (counted in the database)");
    println!("  stored/s {per_s:.0} over the {load_secs:.1} s from first publish to last ack");
    println!(
        "  lost {} (sent but not stored)",
        sent.saturating_sub(stored)
    );
    println!("  remediation round trip: {}", describe(&rtt.all));
    println!(
        "    of which after each device's first reading: {}",
        describe(&rtt.after_first)
    );
    println!(
        "  peak RSS of the stack {:.1} MiB; total wall time {wall:.1} s",
        stack_peak as f64 / 1024.0
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "devices": args.devices, "rate": args.rate, "duration_s": args.duration,
                "sent": sent, "acked": acked, "stored": stored, "stored_per_s": per_s,
                "lost": sent.saturating_sub(stored),
                "rtt_p50_ms": rtt.all.value_at_quantile(0.5) as f64 / 1000.0,
                "rtt_p99_ms": rtt.all.value_at_quantile(0.99) as f64 / 1000.0,
                "commands": rtt.all.len(),
                "rtt_after_first_p99_ms": rtt.after_first.value_at_quantile(0.99) as f64 / 1000.0,
                "stack_peak_rss_kib": stack_peak,
            })
        );
    }
    Ok(())
}

/// Readings in the stack's database (0 before it exists).
fn count_readings(data: &Path) -> Result<u64> {
    let path = data.join(LocalStore::DB_FILE);
    if !path.exists() {
        return Ok(0);
    }
    let db = SqliteStore::open(&path).with_context(|| format!("opening {}", path.display()))?;
    db.reading_count()
        .with_context(|| format!("counting readings in {}", path.display()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the load; returns the seconds from the first publish to the last ack, and the
/// bench's own peak RSS.
async fn drive(
    args: &BenchArgs,
    url: BrokerUrl,
    counters: Arc<Counters>,
    rtt: Arc<Mutex<RoundTrips>>,
    _stack: Option<&StackProcess>,
) -> Result<(f64, u64)> {
    let n = args.devices as usize;
    let fleet = Fleet::new(7, n, 10, DeviceParams::default()).context("fleet")?;
    let per_device = Duration::from_secs_f64(n as f64 / args.rate);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut handles = Vec::with_capacity(n);
    for (i, device) in fleet.into_devices().into_iter().enumerate() {
        let mut options = Options::new(device.id().as_str());
        options.max_queued = 20_000;
        let (handle, events) = Client::new(options, url.clone())
            .seed(i as u64)
            .start()
            .with_context(|| format!("client {}", device.id()))?;
        handles.push((device, handle, events));
    }
    // Wait until every device is connected before the clock starts.
    for (_, handle, _) in &handles {
        tokio::time::timeout(Duration::from_secs(30), handle.connected())
            .await
            .context("devices did not connect within 30 s")?
            .context("a device stopped")?;
    }
    let started = Instant::now();
    let last_ack = Arc::new(Mutex::new(started));
    let mut tasks = Vec::with_capacity(n);
    for (i, (device, handle, events)) in handles.into_iter().enumerate() {
        let phase = per_device.mul_f64(i as f64 / n as f64);
        tasks.push(tokio::spawn(device_loop(
            device,
            handle,
            events,
            per_device,
            phase,
            stop_rx.clone(),
            counters.clone(),
            rtt.clone(),
            last_ack.clone(),
        )));
    }
    let mut progress = tokio::time::interval(Duration::from_secs(5));
    progress.tick().await;
    let load = tokio::time::sleep(Duration::from_secs_f64(args.duration));
    tokio::pin!(load);
    loop {
        tokio::select! {
            _ = &mut load => break,
            _ = progress.tick() => eprintln!(
                "  … {:.0} s: sent {}, acked {}",
                started.elapsed().as_secs_f64(),
                counters.sent.load(Relaxed),
                counters.acked.load(Relaxed)
            ),
        }
    }
    let _ = stop_tx.send(true);
    for task in tasks {
        task.await.context("a device task failed")?;
    }
    let secs = last_ack.lock().await.duration_since(started).as_secs_f64();
    Ok((secs.max(1e-3), own_peak_rss_kb()))
}

#[allow(clippy::too_many_arguments)] // One device's whole world; a struct would only rename it.
async fn device_loop(
    mut device: fleet_core::Device,
    handle: ClientHandle,
    mut events: tokio::sync::mpsc::Receiver<ClientEvent>,
    period: Duration,
    phase: Duration,
    mut stop: watch::Receiver<bool>,
    counters: Arc<Counters>,
    rtt: Arc<Mutex<RoundTrips>>,
    last_ack: Arc<Mutex<Instant>>,
) {
    let command_topic = device
        .command_topic(fleet_core::payload::Shape::Current)
        .to_string();
    let topic = device
        .telemetry_topic(fleet_core::payload::Shape::Current)
        .to_string();
    let _ = handle
        .subscribe(&[(&command_topic, QoS::AtLeastOnce)])
        .await;
    tokio::time::sleep(phase).await;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent_at: VecDeque<(u64, Instant)> = VecDeque::with_capacity(512);
    let mut outstanding = 0u64;
    let mut stopping = false;
    // After the load, acks get a minute to arrive; what is still missing then is lost.
    let drain = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(drain);
    loop {
        if stopping && outstanding == 0 {
            break;
        }
        tokio::select! {
            _ = stop.changed(), if !stopping => {
                stopping = true;
                drain.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(60));
            }
            () = &mut drain, if stopping => break,
            _ = tick.tick(), if !stopping => {
                let sample = device.step(now_ms());
                let payload = encode_telemetry(&device.telemetry(&sample, fleet_core::payload::Shape::Current));
                if handle.publish_nowait(topic.as_str(), payload, QoS::AtLeastOnce).await.is_ok() {
                    outstanding += 1;
                    counters.sent.fetch_add(1, Relaxed);
                    if sent_at.len() == 512 {
                        sent_at.pop_front();
                    }
                    sent_at.push_back((sample.seq, Instant::now()));
                }
            }
            event = events.recv() => match event {
                Some(ClientEvent::Acked { .. }) => {
                    outstanding = outstanding.saturating_sub(1);
                    counters.acked.fetch_add(1, Relaxed);
                    *last_ack.lock().await = Instant::now();
                }
                Some(ClientEvent::Message(m)) => {
                    let now = now_ms();
                    if let Ok(command) = parse_command(&m.payload, &ParseContext::new(now)) {
                        device.apply(&command, now);
                        counters.commands.fetch_add(1, Relaxed);
                        if let Some((seq, at)) = command.reading_seq.and_then(|s| sent_at.iter().find(|(q, _)| *q == s)) {
                            let micros = at.elapsed().as_micros().max(1) as u64;
                            let mut rtt = rtt.lock().await;
                            let _ = rtt.all.record(micros);
                            if *seq > 0 {
                                let _ = rtt.after_first.record(micros);
                            }
                        }
                    }
                }
                Some(ClientEvent::PublishRejected { .. }) => outstanding = outstanding.saturating_sub(1),
                Some(_) => {}
                None => break,
            },
        }
    }
    let _ = handle.disconnect().await;
}

fn own_peak_rss_kb() -> u64 {
    peak_rss_kb_of("self")
}

/// VmHWM from /proc: the peak resident set size, in KiB (0 where /proc is unavailable).
fn peak_rss_kb_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `fleet local` as a child process on free ports; stopped when dropped, so a bench that
/// fails (or whose output pipe closes) leaves no stack behind.
struct StackProcess {
    child: Child,
    mqtt: std::net::SocketAddr,
    stopped: bool,
}

impl Drop for StackProcess {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl StackProcess {
    fn start(data: &Path) -> Result<StackProcess> {
        let exe = std::env::current_exe().context("finding this program")?;
        let mut child = Command::new(exe)
            .args(["local", "--data"])
            .arg(data)
            .args([
                "--mqtt",
                "127.0.0.1:0",
                "--ws",
                "off",
                "--mqtts",
                "off",
                "--http",
                "off",
            ])
            .args(["--log-level", "WARNING"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting fleet local")?;
        let stdout = child.stdout.take().context("fleet local's output")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut mqtt = None;
        for line in lines.by_ref() {
            let line = line.context("reading fleet local's output")?;
            if let Some(rest) = line.trim().strip_prefix("MQTT") {
                mqtt = rest
                    .trim()
                    .strip_prefix("mqtt://")
                    .and_then(|a| a.parse().ok());
            }
            if line.starts_with("Stop with Ctrl-C") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        match mqtt {
            Some(mqtt) => Ok(StackProcess {
                child,
                mqtt,
                stopped: false,
            }),
            None => {
                let _ = child.kill();
                bail!("fleet local did not start (see its log above)")
            }
        }
    }

    fn peak_rss_kb(&mut self) -> u64 {
        peak_rss_kb_of(&self.child.id().to_string())
    }

    fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("stopping fleet local")?;
        let status = self.child.wait().context("waiting for fleet local")?;
        self.stopped = true;
        if !status.success() {
            bail!("fleet local exited with {status}");
        }
        Ok(())
    }
}

//! `fleet bench`: drives N devices at a given total rate through `fleet local` and reports
//! what the stack really stored (counted in its database), the remediation round trip, the
//! stack's peak memory, and losses.
//!
//! The stack runs as its own process (this binary's `fleet local`, on free loopback ports
//! and a scratch data directory), so its memory is measured apart from the load generator.
//!
//! The load is a fleet engine (`fleet-engine`) ticked by one task on tokio's timer: each
//! device reads once per `devices / rate` seconds, spread over that period, and catches up
//! on readings a late tick missed (so the offered load is the rate asked for). A reading's
//! round trip counts from the tick that took it, before it is handed to the client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use fleet_client::{BrokerUrl, Client, ClientEvent, ClientHandle};
use fleet_core::device::DEFAULT_NOISE_AMPLITUDE;
use fleet_core::{DeviceParams, Fleet, Shape};
use fleet_engine::{CatchUp, DeviceSpec, Engine, EngineConfig, Received, Start, Via};
use fleet_local::{LocalStore, SqliteStore};
use fleet_mqtt::{Options, QoS};
use futures_util::stream::{SelectAll, Stream, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

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

/// Counters of the load generator.
#[derive(Debug, Default)]
struct Counters {
    sent: u64,
    acked: u64,
    commands: u64,
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
    let started = Instant::now();
    let load = runtime.block_on(drive(&args, url))?;
    let (counters, rtt, load_secs, peak_rss_kb) =
        (load.counters, load.rtt, load.secs, load.peak_rss_kb);
    // The stack's memory is known only when this bench started it: with `--broker` the
    // stack is someone else's process, and the bench's own RSS is not the stack's.
    let stack_peak = stack.as_mut().map(|s| s.peak_rss_kb());
    if let Some(s) = stack.take() {
        s.stop()?;
    }
    let stored = count_readings(&data)?.saturating_sub(before);
    let (sent, acked) = (counters.sent, counters.acked);
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
    match stack_peak {
        Some(kb) => println!("  peak RSS of the stack {:.1} MiB", kb as f64 / 1024.0),
        None => println!("  peak RSS of the stack: not measured (--broker: not started here)"),
    }
    println!(
        "  peak RSS of the load generator {:.1} MiB; total wall time {wall:.1} s",
        peak_rss_kb as f64 / 1024.0
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
                "load_peak_rss_kib": peak_rss_kb,
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

/// What the load did.
struct Load {
    counters: Counters,
    rtt: RoundTrips,
    /// From the first publish to the last ack.
    secs: f64,
    /// The bench's own peak RSS, KiB.
    peak_rss_kb: u64,
}

/// One device's connection events, tagged with the device.
type Events = Pin<Box<dyn Stream<Item = (usize, ClientEvent)> + Send>>;

fn events_of(device: usize, mut rx: mpsc::Receiver<ClientEvent>) -> Events {
    Box::pin(futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|event| event.map(|e| (device, e)))
    }))
}

/// Runs the load: connects every device, then ticks the engine for `--duration` and waits
/// (up to a minute) for the last acknowledgements.
async fn drive(args: &BenchArgs, url: BrokerUrl) -> Result<Load> {
    let n = args.devices as usize;
    let devices: Vec<DeviceSpec> = Fleet::variations(7, DEFAULT_NOISE_AMPLITUDE)
        .take(n)
        .enumerate()
        .map(|(i, variation)| DeviceSpec {
            id: Fleet::device_id(i),
            building: Fleet::building(i, 10),
            variation,
            shape: Shape::Current,
        })
        .collect();
    let mut handles: Vec<ClientHandle> = Vec::with_capacity(n);
    let mut events: SelectAll<Events> = SelectAll::new();
    for (i, device) in devices.iter().enumerate() {
        let mut options = Options::new(device.id.as_str());
        options.max_queued = 20_000;
        let (handle, device_events) = Client::new(options, url.clone())
            .seed(i as u64)
            .start()
            .with_context(|| format!("client {}", device.id))?;
        handles.push(handle);
        events.push(events_of(i, device_events));
    }
    // Wait until every device is connected before the clock starts.
    for handle in &handles {
        tokio::time::timeout(Duration::from_secs(30), handle.connected())
            .await
            .context("devices did not connect within 30 s")?
            .context("a device stopped")?;
    }
    // Each device reads once per n / rate seconds: the fleet reads `rate` times a second.
    let params = DeviceParams {
        update_frequency_s: n as f64 / args.rate,
        ..DeviceParams::default()
    };
    let config = EngineConfig {
        params,
        start: Start::Spread,
        catch_up: CatchUp::Burst,
        round_trip_window: 512,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config.clone(), &devices, fleet_clock::now_us())
        .context("the bench's fleet")?;
    for (i, handle) in handles.iter().enumerate() {
        let _ = handle
            .subscribe(&[(&engine.command_topic(i), QoS::AtLeastOnce)])
            .await;
    }
    // The clock starts once every device listens: an engine made before the subscriptions
    // would find the first readings of the whole fleet overdue and send them in one burst,
    // and the round trips of that burst (most first readings get a command) would be the
    // queue, not the pipeline.
    let mut engine =
        Engine::new(config, &devices, fleet_clock::now_us()).context("the bench's fleet")?;
    let mut counters = Counters::default();
    let mut rtt = RoundTrips::new()?;
    let started = Instant::now();
    let mut last_ack = started;
    let mut outstanding = vec![0u64; n];
    let load = tokio::time::sleep(Duration::from_secs_f64(args.duration));
    tokio::pin!(load);
    let mut progress = tokio::time::interval(Duration::from_secs(5));
    progress.tick().await;
    let mut timer = Box::pin(tokio::time::sleep(Duration::ZERO));
    let mut armed: Option<u64> = None;
    let mut loading = true;
    // After the load, acks get a minute to arrive; what is still missing then is lost.
    let drain = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(drain);
    loop {
        if !loading && outstanding.iter().all(|&o| o == 0) {
            break;
        }
        let deadline = engine.next_deadline().filter(|_| loading);
        if deadline != armed {
            if let Some(at) = deadline {
                let wait = at.saturating_sub(fleet_clock::now_us());
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + Duration::from_micros(wait));
            }
            armed = deadline;
        }
        tokio::select! {
            () = &mut load, if loading => {
                loading = false;
                drain.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(60));
            }
            () = &mut drain, if !loading => break,
            _ = progress.tick() => eprintln!(
                "  … {:.0} s: sent {}, acked {}",
                started.elapsed().as_secs_f64(),
                counters.sent,
                counters.acked
            ),
            () = &mut timer, if armed.is_some() => {
                armed = None;
                engine.tick(fleet_clock::now_us());
                for m in engine.messages() {
                    if handles[m.device].publish_nowait(m.topic, m.payload, m.qos).await.is_ok() {
                        outstanding[m.device] += 1;
                        counters.sent += 1;
                    }
                }
            }
            Some((i, event)) = events.next() => match event {
                ClientEvent::Acked { .. } => {
                    outstanding[i] = outstanding[i].saturating_sub(1);
                    counters.acked += 1;
                    last_ack = Instant::now();
                }
                ClientEvent::Message(m) => {
                    let now = fleet_clock::now_us();
                    if let Received::Applied(applied) = engine.receive(now, Via::Device(i), &m.topic, &m.payload) {
                        counters.commands += 1;
                        if let Some(us) = applied.round_trip_us {
                            let micros = us.max(1);
                            let _ = rtt.all.record(micros);
                            if applied.reading_seq.is_some_and(|seq| seq > 0) {
                                let _ = rtt.after_first.record(micros);
                            }
                        }
                    }
                }
                ClientEvent::PublishRejected { .. } => outstanding[i] = outstanding[i].saturating_sub(1),
                _ => {}
            },
        }
    }
    futures_util::future::join_all(handles.iter().map(ClientHandle::disconnect)).await;
    let secs = last_ack.duration_since(started).as_secs_f64();
    Ok(Load {
        counters,
        rtt,
        secs: secs.max(1e-3),
        peak_rss_kb: own_peak_rss_kb(),
    })
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

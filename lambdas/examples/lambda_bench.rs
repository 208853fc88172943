//! How fast the Lambdas are:
//! - (a) cold start: each real binary (`worker`, `remediation`, `notifier`) against a small
//!   Lambda Runtime API emulator on 127.0.0.1 that hands it one fixture from
//!   `tests/fixtures/`, with its AWS endpoints on a `moto_server`; then again through a
//!   timing relay in front of moto, to split the first event's time into moto's answers and
//!   the function's own path;
//! - (b) CPU per reading of the worker's path (event JSON as the binary reads it →
//!   envelopes → the core plan → DynamoDB items, NDJSON, EMF) over large SQS batches, and
//!   of the remediation path (stream event JSON → readings → `Remediation::handle` on the
//!   in-memory ports) over large stream batches;
//! - (c) the same paths through the real AWS adapters: to a keep-alive sink on 127.0.0.1
//!   (AWS's connection behaviour) and to moto, counting this thread's CPU only.
//!
//! ```sh
//! cargo build --release -p fleet-lambdas --bins --examples
//! target/release/examples/lambda_bench   # ROUNDS=20 READINGS=10000 to change
//! ```
//! `moto_server` comes from `scripts/setup.sh aws` (or PATH); `COLD=0` needs none and skips
//! (a) and (c) on moto.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use fleet_core::device::DEFAULT_DEVICE_ID;
use fleet_core::{
    ArchiveObject, DeviceId, PolicyConfig, ReadingRow, Telemetry, WorkerConfig, encode_telemetry,
};
use fleet_lambdas::aws;
use fleet_lambdas::aws::dynamodb::{BatchWriter, DynamoDecisions, DynamoReadings, reading_item};
use fleet_lambdas::aws::iot::IotPublisher;
use fleet_lambdas::aws::s3::S3Archive;
use fleet_lambdas::envelope::{Envelope, Message};
use fleet_lambdas::memory::{Discard, MemoryDecisions};
use fleet_lambdas::ports::{Archive, MetricLog, ReadingTable, RowsFailed};
use fleet_lambdas::remediation::{Remediation, readings as stream_readings};
use fleet_lambdas::worker::{SqsRecord, Worker, WorkerEvent};
use fleet_pipeline::StoreError;
use serde_json::Value;

type Error = Box<dyn std::error::Error>;

/// Cold starts per function.
const COLD_RUNS: usize = 10;

/// Batches of the CPU paths run through the AWS adapters on moto (each a few seconds).
const SDK_ROUNDS: usize = 3;

/// The clock the CPU benches run at (after the synthetic readings).
const NOW_MS: u64 = 1_764_230_500_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn moto() -> Result<(Guard, u16), Error> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = std::iter::once(home.join(".cache/fleet/venv/bin/moto_server")).chain(
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.join("moto_server")),
    );
    let bin = candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or("moto_server not found: run scripts/setup.sh aws")?;
    let port = free_port()?;
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("moto_server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((guard, port))
}

/// A TCP relay in front of moto that times it: per HTTP exchange, from the moment the
/// request's last bytes reach the relay to its answer's first bytes coming back. Those
/// spans are moto's work (one Python process: 3–4 ms per request), which a function under
/// test waits on; what is left of its cold start is its own path.
struct Relay {
    url: String,
    spans: Arc<Mutex<Vec<(Instant, Instant)>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn relay(upstream: u16) -> Result<Relay, Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let spans = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&spans);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (Ok(client_out), Ok(server_in)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            // When the request now waiting on moto was last written on; taken by its answer.
            let sent: Arc<Mutex<Option<Instant>>> = Arc::default();
            let answered = Arc::clone(&sent);
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                pump(client, server, |at| *lock(&sent) = Some(at));
            });
            std::thread::spawn(move || {
                pump(server_in, client_out, |at| {
                    if let Some(from) = lock(&answered).take() {
                        lock(&log).push((from, at));
                    }
                });
            });
        }
    });
    Ok(Relay { url, spans })
}

/// Copies `from` to `to`, calling `seen` with the time of each read before passing it on;
/// at the end, closes `to` for writing.
fn pump(mut from: TcpStream, mut to: TcpStream, mut seen: impl FnMut(Instant)) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        seen(Instant::now());
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// How much of `start..end` at least one of `spans` covers.
fn covered(spans: &[(Instant, Instant)], start: Instant, end: Instant) -> Duration {
    let mut clipped: Vec<(Instant, Instant)> = spans
        .iter()
        .map(|&(a, b)| (a.max(start), b.min(end)))
        .filter(|(a, b)| a < b)
        .collect();
    clipped.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (a, b) in clipped {
        current = match current {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    total + current.map_or(Duration::ZERO, |(a, b)| b - a)
}

/// The worker's readings table in moto.
const READINGS_TABLE: &str = "bench-readings";

/// The remediation function's decisions table for cold start `run` (direct runs, then
/// relayed runs): one per run, so every run decides on the fixture from scratch (as its first delivery) instead of seeing the
/// previous run's device states and skipping the readings as duplicates.
fn decisions_table(run: usize) -> String {
    format!("bench-decisions-{run}")
}

/// Creates a table keyed like the Lambdas' tables (`device` S, `sk` S).
async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), Error> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    ddb.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("device")?)
        .attribute_definitions(attr("sk")?)
        .key_schema(key("device", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .send()
        .await?;
    Ok(())
}

/// The SDK's config for moto at `url`, as the functions build theirs.
async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    fleet_lambdas::aws::loader(fleet_lambdas::aws::TrustRoots::Amazon)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .endpoint_url(url)
        .load()
        .await
}

/// Creates the tables and bucket through moto's REST API with the SDK, and wakes its IoT
/// data plane.
async fn prepare(url: &str) -> Result<(), Error> {
    let config = sdk_config(url).await;
    let ddb = fleet_lambdas::aws::dynamodb_client(&config, None);
    create_table(&ddb, READINGS_TABLE).await?;
    for run in 0..2 * COLD_RUNS + SDK_ROUNDS {
        create_table(&ddb, &decisions_table(run)).await?;
    }
    fleet_lambdas::aws::s3_client(&config, None)
        .create_bucket()
        .bucket("bench-archive")
        .send()
        .await?;
    // moto sets a service up on its first request (~150 ms for the IoT data plane), which
    // would land on the first cold start: do it now.
    fleet_lambdas::aws::iot_client(&config, url, None)
        .publish()
        .topic("bench/warm-up")
        .send()
        .await?;
    Ok(())
}

/// One function under test: its binary, the event it gets, its variables and what a good
/// response is.
struct Function {
    /// The binary, next to this example's directory.
    name: &'static str,
    /// In front of its output lines (none for the worker, whose lines are quoted as they are).
    label: &'static str,
    /// The AWS calls its first event makes, for the output.
    calls: &'static str,
    /// The event, from `tests/fixtures/`.
    fixture: &'static str,
    /// Its own variables for cold start `run` with moto at `url` (the AWS ones are common).
    vars: fn(run: usize, url: &str) -> Vec<(&'static str, String)>,
    /// Whether the response says the event was handled in full.
    ok: fn(&Value) -> bool,
}

/// No `batchItemFailures`: every record of the batch succeeded.
fn no_batch_item_failures(response: &Value) -> bool {
    response["batchItemFailures"]
        .as_array()
        .is_some_and(Vec::is_empty)
}

/// `vars` and the band (`BAND_MIN`, `BAND_MAX`).
fn with_band(mut vars: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    vars.extend([("BAND_MIN", "26".to_owned()), ("BAND_MAX", "28".to_owned())]);
    vars
}

fn functions() -> [Function; 3] {
    [
        Function {
            name: "worker",
            label: "",
            calls: "S3 + DynamoDB",
            fixture: include_str!("../tests/fixtures/sqs_batch.json"),
            vars: |_, _| {
                with_band(vec![
                    ("READINGS_TABLE", READINGS_TABLE.to_owned()),
                    ("ARCHIVE_BUCKET", "bench-archive".to_owned()),
                    ("TTL_SECONDS", "86400".to_owned()),
                    ("METRIC_DEVICES", "d-0001".to_owned()),
                ])
            },
            ok: no_batch_item_failures,
        },
        Function {
            name: "remediation",
            label: "remediation ",
            calls: "DynamoDB + IoT data",
            fixture: include_str!("../tests/fixtures/dynamodb_stream.json"),
            vars: |run, url| {
                with_band(vec![
                    ("DECISIONS_TABLE", decisions_table(run)),
                    ("IOT_ENDPOINT", url.to_owned()),
                    ("REMEDIATION_LOGIC", "true".to_owned()),
                ])
            },
            ok: no_batch_item_failures,
        },
        Function {
            name: "notifier",
            label: "notifier ",
            calls: "IoT data",
            fixture: include_str!("../tests/fixtures/sns_cloudwatch_alarm.json"),
            vars: |_, url| vec![("IOT_ENDPOINT", url.to_owned())],
            // The fixture has one alarm (and one console test message, rejected).
            ok: |response| response["published"].as_u64() == Some(1),
        },
    ]
}

/// What the emulator saw of one cold start.
struct ColdStart {
    /// Process start → first `GET …/invocation/next` (Lambda's "Init Duration").
    init: Duration,
    /// Process start → the first event's response (or error) posted.
    first_event: Duration,
    /// Whether the runtime posted an error instead of a response.
    error: bool,
    /// CPU time the function's process (all its threads) had used by then: its own cost,
    /// without the time it waited on moto or the emulator.
    cpu: Duration,
    /// The response (or error) body.
    response: String,
    /// When the response arrived.
    ended: Instant,
    /// When the process was started (set by [`cold_start`]).
    started: Instant,
}

/// An HTTP/1.1 sink on 127.0.0.1 that answers every AWS call the functions make with
/// success at once and keeps its connections open, as AWS's endpoints do (moto closes
/// each one, so through moto every call also pays a new connection). Only for measuring
/// the functions' own CPU per reading: their AWS behaviour is tested against moto.
fn sink() -> Result<String, Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let Ok(clone) = stream.try_clone() else {
                    return;
                };
                let mut reader = BufReader::new(clone);
                let mut writer = stream;
                while let Ok(Some((method, _, _))) = read_request(&mut reader) {
                    // S3's PutObject answers with no body; DynamoDB's batch calls and IoT's
                    // Publish with JSON (nothing unprocessed).
                    let body = if method == "PUT" {
                        ""
                    } else {
                        r#"{"UnprocessedItems":{},"UnprocessedKeys":{},"Responses":{}}"#
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n\
                         ETag: \"0\"\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if respond(&mut writer, &head, body).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(url)
}

/// Writes an HTTP response: its head (status line and headers, blank line included), then
/// its body.
fn respond(writer: &mut TcpStream, head: &str, body: &str) -> std::io::Result<()> {
    writer.write_all(head.as_bytes())?;
    writer.write_all(body.as_bytes())
}

fn read_request(
    reader: &mut BufReader<TcpStream>,
) -> Result<Option<(String, String, Vec<u8>)>, Error> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some((method, path, body)))
}

/// A Lambda Runtime API with one event: `GET /2018-06-01/runtime/invocation/next` gives
/// `fixture` once (later calls wait forever, as a frozen sandbox), `POST …/response` (or
/// `…/error`) takes the answer.
fn serve(
    listener: TcpListener,
    started: Instant,
    function: &str,
    fixture: &str,
    done: mpsc::Sender<ColdStart>,
) {
    let mut first_next: Option<Duration> = None;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { return };
        let Ok(clone) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(clone);
        let mut writer = stream;
        while let Ok(Some((method, path, body))) = read_request(&mut reader) {
            if method == "GET" && path.ends_with("/runtime/invocation/next") {
                if first_next.is_some() {
                    // The one event was handed out: park the runtime.
                    std::thread::sleep(Duration::from_secs(3600));
                    return;
                }
                first_next = Some(started.elapsed());
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() + 30_000);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Lambda-Runtime-Aws-Request-Id: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\r\n\
                     Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                     Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:fleet-{function}\r\n\
                     Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n\
                     Content-Length: {}\r\n\r\n",
                    fixture.len()
                );
                if respond(&mut writer, &head, fixture).is_err() {
                    return;
                }
            } else {
                let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}");
                let error = path.ends_with("/error");
                if error || (method == "POST" && path.ends_with("/response")) {
                    let _ = done.send(ColdStart {
                        init: first_next.unwrap_or_default(),
                        first_event: started.elapsed(),
                        error,
                        cpu: Duration::ZERO,
                        response: String::from_utf8_lossy(&body).into_owned(),
                        ended: Instant::now(),
                        started,
                    });
                }
            }
        }
    }
}

fn cold_start(bin: &Path, f: &Function, run: usize, moto_url: &str) -> Result<ColdStart, Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let api = listener.local_addr()?;
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let child = Command::new(bin)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", format!("fleet-{}", f.name))
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/fleet-{}", f.name),
        )
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", moto_url)
        .envs((f.vars)(run, moto_url))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let _guard = Guard(child);
    let (name, fixture) = (f.name, f.fixture);
    std::thread::spawn(move || serve(listener, started, name, fixture, tx));
    let mut c = rx.recv_timeout(Duration::from_secs(30))?;
    // The runtime is parked on its next `/next` by now: its CPU time stays put.
    c.cpu = cpu_time(pid)?;
    Ok(c)
}

/// CPU time of every thread of `pid` so far, from `/proc/<pid>/task/*/schedstat` (first
/// field: nanoseconds on a CPU; `/proc/<pid>/stat` counts only in 10 ms ticks).
fn cpu_time(pid: u32) -> Result<Duration, Error> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        ns += stat
            .split_whitespace()
            .next()
            .ok_or("empty schedstat")?
            .parse::<u64>()?;
    }
    Ok(Duration::from_nanos(ns))
}

/// Checks a cold start's answer: a response (not an error) that `f` calls a success.
fn check(f: &Function, run: usize, c: &ColdStart) -> Result<(), Error> {
    let good = !c.error && serde_json::from_str(&c.response).is_ok_and(|v| (f.ok)(&v));
    if good {
        return Ok(());
    }
    let what = if c.error { "an error" } else { "a failure" };
    Err(format!("{} run {run} reported {what}: {}", f.name, c.response).into())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median and the largest of `d`.
fn median_max(mut d: Vec<Duration>) -> (f64, f64) {
    d.sort();
    let at = |i: usize| d.get(i).copied().map_or(f64::NAN, ms);
    (at(d.len() / 2), at(d.len().saturating_sub(1)))
}

/// `COLD_RUNS` cold starts of `f` straight on moto, then `COLD_RUNS` through `relay` to
/// split the first event's time into moto's answers and the function's own path. Prints
/// its first response and the timings, and fails if a response is an error or a failure.
fn cold_starts(dir: &Path, f: &Function, moto_url: &str, relay: &Relay) -> Result<(), Error> {
    let bin = dir.join(f.name);
    let mut init = Vec::new();
    let mut first = Vec::new();
    let mut cpu = Vec::new();
    for run in 0..COLD_RUNS {
        let c = cold_start(&bin, f, run, moto_url)?;
        if run == 0 {
            println!("{}first response: {}", f.label, c.response);
        }
        check(f, run, &c)?;
        init.push(c.init);
        first.push(c.first_event);
        cpu.push(c.cpu);
    }
    let (init, init_max) = median_max(init);
    let (first, first_max) = median_max(first);
    println!(
        "{}cold start ({COLD_RUNS} runs): process start → first /next (init) median {init:.2} ms, \
         max {init_max:.2} ms; → first event handled (incl. {} calls to moto) median {first:.2} ms, \
         max {first_max:.2} ms, of which on CPU (all threads) median {:.2} ms",
        f.label,
        f.calls,
        median_max(cpu).0,
    );

    let mut relayed = Vec::new();
    let mut moto = Vec::new();
    let mut own = Vec::new();
    for run in COLD_RUNS..2 * COLD_RUNS {
        lock(&relay.spans).clear();
        let c = cold_start(&bin, f, run, &relay.url)?;
        check(f, run, &c)?;
        let answering = covered(&lock(&relay.spans), c.started, c.ended);
        relayed.push(c.first_event);
        moto.push(answering);
        own.push(c.first_event.saturating_sub(answering));
    }
    let (own, own_max) = median_max(own);
    println!(
        "{}through a timing relay ({COLD_RUNS} runs): first event handled median {:.2} ms, \
         moto answering median {:.2} ms of it; the rest, the function's own path (start, init, \
         its work, loopback hops) median {own:.2} ms, max {own_max:.2} ms",
        f.label,
        median_max(relayed).0,
        median_max(moto).0,
    );
    Ok(())
}

/// Sinks that do the encoding work of the real adapters and drop the result.
struct Encode;

impl ReadingTable for Encode {
    async fn put_rows(&self, rows: &[ReadingRow]) -> Result<(), RowsFailed> {
        let items: Vec<_> = rows.iter().map(reading_item).collect();
        std::hint::black_box(items);
        Ok(())
    }
}

impl Archive for Encode {
    async fn put_object(&self, object: &ArchiveObject) -> Result<(), StoreError> {
        std::hint::black_box(object.body.len());
        Ok(())
    }
}

impl MetricLog for Encode {
    fn emit(&self, lines: &[String]) {
        std::hint::black_box(lines.len());
    }
}

/// This process's user and system CPU time (from /proc, in clock ticks of 10 ms).
fn cpu_times() -> Result<(Duration, Duration), Error> {
    stat_times("/proc/self/stat")
}

/// The calling thread's user and system CPU time (ticks of 10 ms).
fn thread_cpu_times() -> Result<(Duration, Duration), Error> {
    stat_times("/proc/thread-self/stat")
}

fn stat_times(path: &str) -> Result<(Duration, Duration), Error> {
    let stat = std::fs::read_to_string(path)?;
    let after = stat.rsplit_once(')').ok_or("odd stat file")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| -> Result<Duration, Error> {
        let t: u64 = fields.get(i).ok_or("short stat file")?.parse()?;
        Ok(Duration::from_millis(t * 10))
    };
    // After the command name: state is field 0, utime 11, stime 12.
    Ok((tick(11)?, tick(12)?))
}

/// Like [`per_reading`], through the real AWS adapters to `what`: this thread's CPU time
/// only (the path, the SDK's serialization and signing, HTTP on a current-thread runtime:
/// everything the function does per reading but wait), not the server's.
fn per_reading_through(
    path: &str,
    what: &str,
    rounds: usize,
    readings: usize,
    mut round: impl FnMut(usize) -> Result<(), Error>,
) -> Result<(), Error> {
    let (u0, s0) = thread_cpu_times()?;
    let wall = Instant::now();
    let mut per_round = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let before = Instant::now();
        round(r)?;
        per_round.push(before.elapsed());
    }
    let wall = wall.elapsed();
    let (u1, s1) = thread_cpu_times()?;
    let n = (rounds * readings) as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
    let (median, _) = median_max(per_round);
    println!(
        "{path} path through the AWS adapters to {what}, {rounds} batches of {readings} readings: \
         CPU {:.2} µs/reading (user {:.2}, system {:.2}; the server's not counted), wall {:.2} \
         µs/reading; per round, wall median {:.2} µs/reading",
        us((u1 - u0) + (s1 - s0)),
        us(u1 - u0),
        us(s1 - s0),
        us(wall),
        median * 1e3 / readings as f64,
    );
    Ok(())
}

/// Runs `round` `rounds` times, each over a batch of `readings` readings, and prints the
/// CPU time per reading of `path` over all rounds, user and system apart (from
/// `/proc/self/stat`), and the wall time per round: median, min and max. The path runs on
/// this one thread and never waits, so a round's wall time bounds its CPU time from above,
/// to the nanosecond (this kernel counts a thread's CPU time in 4 ms ticks), and the median
/// round is robust to this VM's jumps of ±20% from run to run.
fn per_reading(
    path: &str,
    rounds: usize,
    readings: usize,
    mut round: impl FnMut() -> Result<(), Error>,
) -> Result<(), Error> {
    let (u0, s0) = cpu_times()?;
    let wall = Instant::now();
    let mut per_round = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let before = Instant::now();
        round()?;
        per_round.push(before.elapsed());
    }
    let wall = wall.elapsed();
    let (u1, s1) = cpu_times()?;
    let n = (rounds * readings) as f64;
    let us = |d: Duration, n: f64| d.as_secs_f64() * 1e6 / n;
    per_round.sort();
    let one = |i: usize| {
        per_round
            .get(i)
            .map_or(f64::NAN, |d| us(*d, readings as f64))
    };
    println!(
        "{path} path, {rounds} batches of {readings} readings: user CPU {:.2} µs/reading, \
         system {:.2} µs/reading, wall {:.2} µs/reading; per round, wall median {:.2} µs/reading \
         (min {:.2}, max {:.2})",
        us(u1 - u0, n),
        us(s1 - s0, n),
        us(wall, n),
        one(rounds / 2),
        one(0),
        one(rounds.saturating_sub(1)),
    );
    Ok(())
}

/// Reading `i` of a synthetic fleet: 100 devices of building 1, each reading every 2 s,
/// temperatures 27 ± `swing` °C.
struct Synthetic {
    device: String,
    seq: u64,
    ts: u64,
    temperature: f64,
}

fn synthetic(i: u64, swing: f64) -> Synthetic {
    let seq = i / 100;
    let temperature = 27.0 + swing * ((seq as f64) / 8.0 + (i % 100) as f64).sin();
    Synthetic {
        device: format!("d-{:04}", i % 100 + 1),
        seq,
        ts: 1_764_230_400_000 + seq * 2_000,
        temperature: (temperature * 100.0).round() / 100.0,
    }
}

/// An SQS event of `n` readings as the IoT Rule delivers them (in band: 27 ± 1 °C).
fn big_batch(n: usize) -> String {
    let records: Vec<Value> = (0..n as u64)
        .map(|i| {
            let Synthetic { device, seq, ts, temperature } = synthetic(i, 1.0);
            let (Ok(d), Ok(b)) = (device.as_str().try_into(), "1".try_into()) else {
                return Value::Null;
            };
            let t = Telemetry::current(d, b, seq, ts, temperature, 55.0);
            let topic = format!("dt/monitoring/1/{device}/telemetry");
            serde_json::json!({
                "messageId": format!("0e6bd4f6-{i:04x}-4b46-8e34-{i:012x}"),
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                // Published by the device itself: the client id its thing binds.
                "body": Envelope::encode(&topic, &device, encode_telemetry(&t).as_bytes(), ts + 40),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": (ts + 45).to_string()},
                "messageAttributes": {}, "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fleet-ingest", "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

/// Checks that the worker stores every reading of `body`: the bench measures the path of a
/// stored reading, and a rejected one (say, a client id that is not its device's) costs
/// less, which would flatter the numbers.
fn all_accepted<T: ReadingTable, A: Archive, M: MetricLog>(
    w: &Worker<T, A, M>,
    rt: &tokio::runtime::Runtime,
    body: &str,
    readings: usize,
) -> Result<(), Error> {
    let WorkerEvent::Sqs(records) = serde_json::from_str(body)? else {
        return Err("the synthetic batch is not an SQS event".into());
    };
    let messages: Vec<Message> = records
        .into_iter()
        .map(|r: SqsRecord| {
            let body = r.body.unwrap_or_default();
            let id = r.message_id.unwrap_or_default();
            Message::from_body(id, body.as_bytes(), NOW_MS, &w.legacy_device)
        })
        .collect();
    let summary = rt.block_on(w.handle_messages(&messages)).summary;
    if summary.accepted != readings {
        return Err(format!(
            "the worker stored {} of {readings} synthetic readings: {:?}",
            summary.accepted, summary.rejected_by_code
        )
        .into());
    }
    Ok(())
}

/// A readings table stream event of `n` INSERTs (27 ± 1.5 °C: every device leaves the band
/// and gets a command, 1 decision in 100 at the default size).
fn big_stream(n: usize) -> String {
    let records: Vec<Value> = (0..n as u64)
        .map(|i| {
            let Synthetic { device, seq, ts, temperature } = synthetic(i, 1.5);
            let sk = format!("{ts}#{seq:010}");
            let image = serde_json::json!({
                "device": {"S": device}, "sk": {"S": sk}, "building": {"S": "1"},
                "seq": {"N": seq.to_string()}, "ts": {"N": ts.to_string()},
                "received_ms": {"N": (ts + 40).to_string()},
                "temperature": {"N": temperature.to_string()}, "humidity": {"N": "55"},
                "legacy": {"BOOL": false}, "ttl": {"N": (ts / 1000 + 86_400).to_string()},
                "source_id": {"S": format!("0e6bd4f6-{i:04x}-4b46-8e34-{i:012x}")}
            });
            serde_json::json!({
                "eventID": format!("{i:032x}"), "eventName": "INSERT", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": (ts / 1000) as f64,
                    "Keys": {"device": {"S": device}, "sk": {"S": sk}},
                    "NewImage": image, "SequenceNumber": format!("{:021}", i + 1),
                    "SizeBytes": 212, "StreamViewType": "NEW_AND_OLD_IMAGES"
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/fleet-readings/stream/x"
            })
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

/// The worker and remediation paths through the real AWS adapters to `url` (`what`):
/// this thread's CPU per reading. `tables`: on moto, the first of the decisions tables to
/// use, a fresh one per round so that every round decides on new readings (the sink keeps
/// no state).
fn through_adapters(
    url: &str,
    what: &str,
    tables: Option<usize>,
    rounds: usize,
    readings: usize,
    body: &str,
    stream: &str,
) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let config = rt.block_on(sdk_config(url));
    let w = Worker {
        config: WorkerConfig::default(),
        legacy_device: DeviceId::try_from(DEFAULT_DEVICE_ID)?,
        table: DynamoReadings {
            writer: BatchWriter::new(aws::dynamodb_client(&config, None), READINGS_TABLE),
        },
        archive: S3Archive {
            client: aws::s3_client(&config, None),
            bucket: "bench-archive".into(),
        },
        metrics: Encode,
    };
    per_reading_through("worker", what, rounds, readings, |_| {
        let event: WorkerEvent = serde_json::from_slice(body.as_bytes())?;
        let response = rt.block_on(w.handle_event(event, "bench", NOW_MS))?;
        if !response.batch_item_failures.is_empty() {
            return Err(format!("the worker failed records on {what}").into());
        }
        Ok(())
    })?;
    per_reading_through("remediation", what, rounds, readings, |round| {
        let table = tables.map_or_else(
            || "bench-decisions".to_owned(),
            |t| decisions_table(t + round),
        );
        let r = Remediation {
            policy: PolicyConfig::default(),
            table: DynamoDecisions {
                writer: BatchWriter::new(aws::dynamodb_client(&config, None), table),
            },
            publisher: IotPublisher {
                client: aws::iot_client(&config, url, None),
            },
            record_routine: false,
        };
        let event: StreamEvent = serde_json::from_str(stream)?;
        let report = rt.block_on(r.handle(stream_readings(event), NOW_MS));
        if !report.failed.is_empty() {
            return Err(format!("{} stream records failed on {what}", report.failed.len()).into());
        }
        Ok(())
    })
}

fn main() -> Result<(), Error> {
    let rounds = env_or("ROUNDS", 20);
    let readings = env_or("READINGS", 10_000);

    // (a) Cold start (`COLD=0` skips it, to profile the CPU paths alone).
    let cold = std::env::var("COLD").map_or(true, |v| v != "0");
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("odd executable path")?;
    let functions = functions();
    if let Some(missing) = functions
        .iter()
        .map(|f| dir.join(f.name))
        .find(|bin| !bin.is_file())
    {
        return Err(format!(
            "{} missing: cargo build --release -p fleet-lambdas --bins",
            missing.display()
        )
        .into());
    }
    let moto = if cold {
        let (guard, port) = moto()?;
        let url = format!("http://127.0.0.1:{port}");
        let relay = relay(port)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(prepare(&url))?;
        for f in &functions {
            cold_starts(dir, f, &url, &relay)?;
        }
        Some((guard, url))
    } else {
        None
    };

    // (b) CPU per reading.
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let body = big_batch(readings);
    let w = Worker {
        config: WorkerConfig::default(),
        legacy_device: DeviceId::try_from(DEFAULT_DEVICE_ID)?,
        table: Encode,
        archive: Encode,
        metrics: Encode,
    };
    all_accepted(&w, &rt, &body, readings)?;
    per_reading("worker", rounds, readings, || {
        // As the binary: the event as Lambda's runtime deserializes it, then the handler.
        let event: WorkerEvent = serde_json::from_slice(body.as_bytes())?;
        let response = rt.block_on(w.handle_event(event, "bench", NOW_MS))?;
        std::hint::black_box(response);
        Ok(())
    })?;

    let stream = big_stream(readings);
    let parsed = stream_readings(serde_json::from_str::<StreamEvent>(&stream)?).len();
    if parsed != readings {
        return Err(format!("the stream event gave {parsed} readings, not {readings}").into());
    }
    per_reading("remediation", rounds, readings, || {
        // Fresh states each round, so every round decides on new readings.
        let r = Remediation {
            policy: PolicyConfig::default(),
            table: MemoryDecisions::default(),
            publisher: Discard,
            record_routine: false,
        };
        let event: StreamEvent = serde_json::from_str(&stream)?;
        let report = rt.block_on(r.handle(stream_readings(event), NOW_MS));
        if !report.failed.is_empty() {
            return Err(format!("{} stream records failed", report.failed.len()).into());
        }
        std::hint::black_box(report);
        Ok(())
    })?;

    // (c) The same paths through the real AWS adapters: to a keep-alive sink, and on moto.
    let sink = sink()?;
    through_adapters(
        &sink,
        "a keep-alive sink",
        None,
        rounds,
        readings,
        &body,
        &stream,
    )?;
    if let Some((_guard, url)) = &moto {
        through_adapters(
            url,
            "moto",
            Some(2 * COLD_RUNS),
            SDK_ROUNDS,
            readings,
            &body,
            &stream,
        )?;
    }
    Ok(())
}

//! How fast the worker Lambda is: (a) cold start, the real `worker` binary against a small
//! Lambda Runtime API emulator on 127.0.0.1 with its AWS endpoint on a `moto_server`, and
//! (b) CPU per reading of the worker's path (event JSON → envelopes → the core plan →
//! DynamoDB items and NDJSON) over large SQS batches.
//!
//! ```sh
//! cargo build --release -p fleet-lambdas --bins --examples
//! target/release/examples/lambda_bench            # ROUNDS=20 READINGS=10000 to change
//! ```
//! `moto_server` comes from `scripts/setup.sh aws` (or PATH).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use fleet_core::{ArchiveObject, ReadingRow, Telemetry, WorkerConfig, encode_telemetry};
use fleet_lambdas::aws::dynamodb::reading_item;
use fleet_lambdas::envelope::Envelope;
use fleet_lambdas::ports::{Archive, MetricLog, ReadingTable, RowsFailed};
use fleet_lambdas::worker::Worker;
use fleet_pipeline::StoreError;

const FIXTURE: &str = include_str!("../tests/fixtures/sqs_batch.json");

type Error = Box<dyn std::error::Error>;

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

fn moto() -> Result<(Guard, String), Error> {
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
    Ok((guard, format!("http://127.0.0.1:{port}")))
}

/// Creates the table and bucket through moto's REST API with the SDK.
async fn prepare(url: &str) -> Result<(), Error> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let config = fleet_lambdas::aws::loader()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .endpoint_url(url)
        .load()
        .await;
    let ddb = fleet_lambdas::aws::dynamodb_client(&config, None);
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
        .table_name("bench-readings")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("device")?)
        .attribute_definitions(attr("sk")?)
        .key_schema(key("device", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .send()
        .await?;
    fleet_lambdas::aws::s3_client(&config, None)
        .create_bucket()
        .bucket("bench-archive")
        .send()
        .await?;
    Ok(())
}

/// What the emulator saw of one cold start.
struct ColdStart {
    /// Process start → first `GET …/invocation/next` (Lambda's "Init Duration").
    init: Duration,
    /// Process start → the first event's response posted.
    first_event: Duration,
    /// The response body.
    response: String,
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

/// A Lambda Runtime API with one event: `GET /2018-06-01/runtime/invocation/next` gives the
/// fixture once (later calls wait forever, as a frozen sandbox), `POST …/response` takes the
/// answer.
fn serve(listener: TcpListener, started: Instant, done: mpsc::Sender<ColdStart>) {
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
                     Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:fleet-worker\r\n\
                     Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n\
                     Content-Length: {}\r\n\r\n",
                    FIXTURE.len()
                );
                if writer
                    .write_all(head.as_bytes())
                    .and_then(|()| writer.write_all(FIXTURE.as_bytes()))
                    .is_err()
                {
                    return;
                }
            } else {
                let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}");
                if method == "POST" && path.ends_with("/response") {
                    let _ = done.send(ColdStart {
                        init: first_next.unwrap_or_default(),
                        first_event: started.elapsed(),
                        response: String::from_utf8_lossy(&body).into_owned(),
                    });
                } else if path.ends_with("/error") {
                    eprintln!(
                        "the worker reported an error: {}",
                        String::from_utf8_lossy(&body)
                    );
                    let _ = done.send(ColdStart {
                        init: first_next.unwrap_or_default(),
                        first_event: started.elapsed(),
                        response: String::from_utf8_lossy(&body).into_owned(),
                    });
                }
            }
        }
    }
}

fn cold_start(worker: &PathBuf, moto_url: &str) -> Result<ColdStart, Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let api = listener.local_addr()?;
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let child = Command::new(worker)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "fleet-worker")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/fleet-worker")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", moto_url)
        .env("READINGS_TABLE", "bench-readings")
        .env("ARCHIVE_BUCKET", "bench-archive")
        .env("TTL_SECONDS", "86400")
        .env("BAND_MIN", "26")
        .env("BAND_MAX", "28")
        .env("METRIC_DEVICES", "d-0001")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _guard = Guard(child);
    std::thread::spawn(move || serve(listener, started, tx));
    Ok(rx.recv_timeout(Duration::from_secs(30))?)
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
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rsplit_once(')').ok_or("odd /proc/self/stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| -> Result<Duration, Error> {
        let t: u64 = fields.get(i).ok_or("short /proc/self/stat")?.parse()?;
        Ok(Duration::from_millis(t * 10))
    };
    // After the command name: state is field 0, utime 11, stime 12.
    Ok((tick(11)?, tick(12)?))
}

fn big_batch(n: usize) -> String {
    let t0 = 1_764_230_400_000u64;
    let records: Vec<serde_json::Value> = (0..n as u64)
        .map(|i| {
            let device = format!("d-{:04}", i % 100 + 1);
            let seq = i / 100;
            let ts = t0 + seq * 2_000;
            let temperature = 27.0 + ((seq as f64) / 8.0 + (i % 100) as f64).sin();
            let (Ok(d), Ok(b)) = (device.as_str().try_into(), "1".try_into()) else {
                return serde_json::Value::Null;
            };
            let t = Telemetry::current(d, b, seq, ts, (temperature * 100.0).round() / 100.0, 55.0);
            let topic = format!("dt/monitoring/1/{device}/telemetry");
            serde_json::json!({
                "messageId": format!("0e6bd4f6-{i:04x}-4b46-8e34-{i:012x}"),
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                "body": Envelope::encode(&topic, encode_telemetry(&t).as_bytes(), ts + 40),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": (ts + 45).to_string()},
                "messageAttributes": {}, "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fleet-ingest", "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

fn main() -> Result<(), Error> {
    let rounds = env_or("ROUNDS", 20);
    let readings = env_or("READINGS", 10_000);

    // (a) Cold start.
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("odd executable path")?;
    let worker = dir.join("worker");
    if !worker.is_file() {
        return Err(format!(
            "{} missing: cargo build --release -p fleet-lambdas --bins",
            worker.display()
        )
        .into());
    }
    let (_moto, url) = moto()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(prepare(&url))?;
    let mut init = Vec::new();
    let mut first = Vec::new();
    for i in 0..10 {
        let c = cold_start(&worker, &url)?;
        if i == 0 {
            println!("first response: {}", c.response);
        }
        init.push(c.init);
        first.push(c.first_event);
    }
    init.sort();
    first.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "cold start (10 runs): process start → first /next (init) median {:.2} ms, min {:.2} ms; \
         → first event handled (incl. S3 + DynamoDB calls to moto) median {:.2} ms, min {:.2} ms",
        ms(init[5]),
        ms(init[0]),
        ms(first[5]),
        ms(first[0])
    );

    // (b) CPU per reading.
    let body = big_batch(readings);
    let w = Worker {
        config: WorkerConfig::default(),
        table: Encode,
        archive: Encode,
        metrics: Encode,
    };
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let (u0, s0) = cpu_times()?;
    let wall = Instant::now();
    for _ in 0..rounds {
        let event: SqsEvent = serde_json::from_str(&body)?;
        let response = rt.block_on(w.handle_sqs(event, 1_764_230_500_000))?;
        std::hint::black_box(response);
    }
    let wall = wall.elapsed();
    let (u1, s1) = cpu_times()?;
    let n = (rounds * readings) as f64;
    println!(
        "worker path, {rounds} batches of {readings} readings: user CPU {:.2} µs/reading, system {:.2} µs/reading, wall {:.2} µs/reading",
        (u1 - u0).as_secs_f64() * 1e6 / n,
        (s1 - s0).as_secs_f64() * 1e6 / n,
        wall.as_secs_f64() * 1e6 / n
    );
    Ok(())
}

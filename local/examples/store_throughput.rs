//! Measures end-to-end ingest throughput on [`LocalStore`]: by default 200,000 readings
//! from 1,000 devices through `Pipeline::ingest` in batches of 500, on a temporary
//! directory.
//!
//! `cargo run --release -p fleet-local --example store_throughput [READINGS] [BATCH] [DEVICES]`
//!
//! The same messages also run through a `MemoryStore` and through SQLite in memory (with
//! the file archive), so the cost of each layer is the difference between two lines. On a
//! shared machine wall time is noisy; on Linux the CPU time is printed too.

use std::error::Error;
use std::time::{Duration, Instant};

use fleet_core::{BuildingId, DeviceId, Incoming, Telemetry, Topic, encode_telemetry};
use fleet_local::{FileArchive, LocalStore, SqliteStore};
use fleet_pipeline::{
    ArchiveStore, Batch, MemoryStore, Pipeline, PipelineConfig, ReadingStore, RemediationStore,
};

/// 2025-11-27T08:00:00Z
const T0: u64 = 1_764_230_400_000;

/// One pre-encoded message.
struct Message {
    topic: String,
    payload: String,
    received_ms: u64,
    id: String,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let batch: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let devices: u64 = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let messages = messages(total, devices.max(1))?;
    println!("{total} readings, {devices} devices, batches of {batch}");

    run("MemoryStore", &mut MemoryStore::new(), &messages, batch)?;

    let dir = tempfile::tempdir()?;
    let mut in_memory = LocalStore::new(
        SqliteStore::open_in_memory()?,
        FileArchive::new(dir.path().join("archive-1")),
    );
    run("SQLite in memory + files", &mut in_memory, &messages, batch)?;

    let mut local = LocalStore::open(&dir.path().join("data"))?;
    run("LocalStore (SQLite file)", &mut local, &messages, batch)?;
    println!(
        "stored {} readings, {} decisions, {} archive objects",
        local.db.reading_count()?,
        local.db.decision_count()?,
        local.archive.keys()?.len()
    );
    Ok(())
}

fn run<S>(
    what: &str,
    store: &mut S,
    messages: &[Message],
    batch: usize,
) -> Result<(), Box<dyn Error>>
where
    S: ReadingStore + RemediationStore + ArchiveStore + Batch,
{
    let mut pipeline = Pipeline::new(PipelineConfig::default())?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut stored = 0;
    for chunk in messages.chunks(batch.max(1)) {
        let now = chunk.last().map_or(T0, |m| m.received_ms);
        let out = pipeline.ingest(store, &incoming(chunk), now)?;
        if let Some(e) = out.archive_errors.first() {
            return Err(format!("archive failed: {e}").into());
        }
        stored += out.stored.len();
    }
    report(what, stored, started.elapsed(), cpu_before, cpu_seconds());
    Ok(())
}

fn report(what: &str, n: usize, took: Duration, cpu_before: Option<f64>, cpu: Option<f64>) {
    let n = n as f64;
    let wall = n / took.as_secs_f64();
    print!("{what:>26}: {took:>8.2?} wall = {wall:>7.0} readings/s");
    match cpu_before.zip(cpu).map(|(a, b)| b - a) {
        Some(cpu) if cpu > 0.0 => println!("; {cpu:.2} s CPU = {:>7.0} per CPU-second", n / cpu),
        _ => println!(),
    }
}

/// This process's user + system CPU time, from `/proc/self/stat` (fields 14 and 15, in
/// clock ticks, 100 per second on Linux); `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; count fields after its `)`.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / 100.0)
}

fn incoming(chunk: &[Message]) -> Vec<Incoming<'_>> {
    chunk
        .iter()
        .map(|m| Incoming {
            topic: &m.topic,
            payload: m.payload.as_bytes(),
            received_ms: m.received_ms,
            source_id: &m.id,
            publisher: &fleet_core::Publisher::Unbound,
        })
        .collect()
}

/// Every device publishes every 2 s, interleaved as they would arrive; temperatures follow
/// a sine across the default band, so commands and releases happen too.
fn messages(total: u64, devices: u64) -> Result<Vec<Message>, Box<dyn Error>> {
    let building: BuildingId = "1".parse()?;
    let ids: Vec<DeviceId> = (0..devices)
        .map(|d| format!("d-{d:05}").parse())
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (i, device) in (0..total).zip(ids.iter().cycle()) {
        let seq = i / devices;
        let ts = T0 + seq * 2_000 + i % devices;
        let temperature = 27.0 + 1.5 * (seq as f64 / 10.0 + (i % devices) as f64).sin();
        let t = Telemetry::current(device.clone(), building.clone(), seq, ts, temperature, 60.0);
        out.push(Message {
            topic: Topic::telemetry(building.clone(), device.clone()).to_string(),
            payload: encode_telemetry(&t),
            received_ms: ts + 3,
            id: format!("m-{i}"),
        });
    }
    Ok(out)
}

//! The worker (§4.4) as a pure function: a batch of raw messages in, a [`Plan`] out.
//!
//! The plan lists everything the worker must write: table rows, one archive object for the
//! accepted readings and one for the rejected messages, and metric log lines. Adapters
//! (Lambda with DynamoDB, S3 and CloudWatch; the local stack with SQLite and files; the
//! in-page stores) run the sinks concurrently and report each failure. Every message ends
//! up accepted, rejected (with its reason, counted and archived raw) or a duplicate, and a
//! bad message never affects the good ones around it.

mod archive;
mod emf;
mod row;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::id::{BuildingId, DeviceId};
use crate::payload::{DEFAULT_MAX_BYTES, ParseContext, Rejection, json_object, parse_telemetry};
use crate::topic::Topic;

pub use archive::{ArchiveObject, NDJSON_CONTENT_TYPE};
pub use row::ReadingRow;

/// Building under which rejected messages are counted when their topic names none.
pub const UNKNOWN_BUILDING: &str = "unknown";
/// How much of a rejected payload is kept, in bytes: enough to diagnose, bounded so a flood
/// of 128 KiB garbage does not flood the logs and the archive.
pub const RAW_EXCERPT_BYTES: usize = 4096;
/// How much of a rejected message's topic is kept, in bytes (IoT Core allows 256).
const TOPIC_EXCERPT_BYTES: usize = 256;

/// One message as received, borrowed from the adapter's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming<'a> {
    /// MQTT topic it was published on.
    pub topic: &'a str,
    /// Raw payload.
    pub payload: &'a [u8],
    /// Arrival time at the broker or queue, ms since the Unix epoch.
    pub received_ms: u64,
    /// Its id in the transport (SQS message id, MQTT arrival counter): identifies it in
    /// rejections and partial-failure reports.
    pub source_id: &'a str,
}

/// Worker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// Seconds a row lives in the table after arrival. The original used `TTL_DYNAMO=60`,
    /// which expired readings before anyone could look at them; a day is the default here.
    pub ttl_s: u64,
    /// Devices that get per-device Temperature and Humidity metrics (CloudWatch charges per
    /// metric, so not all of them: the original's dashboard showed one device).
    pub metric_devices: BTreeSet<DeviceId>,
    /// Metric namespace (the original's `Device/Monitoring`).
    pub namespace: String,
    /// Largest accepted payload, bytes.
    pub max_bytes: usize,
    /// Band for the OutOfBand count: readings below it, °C.
    pub band_min: f64,
    /// Band for the OutOfBand count: readings above it, °C.
    pub band_max: f64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            ttl_s: 86_400,
            metric_devices: BTreeSet::new(),
            namespace: String::from("Device/Monitoring"),
            max_bytes: DEFAULT_MAX_BYTES,
            band_min: 26.0,
            band_max: 28.0,
        }
    }
}

/// A message that was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Its transport id.
    pub source_id: String,
    /// Its topic (truncated to 256 bytes).
    pub topic: String,
    /// Its arrival time, ms.
    pub received_ms: u64,
    /// Why it was rejected.
    pub reason: Rejection,
    /// The payload, lossily decoded and truncated to [`RAW_EXCERPT_BYTES`].
    pub raw: String,
}

impl Rejected {
    /// The rejection as one JSON line (for logs and the NDJSON archive).
    pub fn to_json_line(&self) -> String {
        json_object(&[
            ("source_id", Value::from(self.source_id.as_str())),
            ("topic", Value::from(self.topic.as_str())),
            ("received_ms", Value::from(self.received_ms)),
            ("code", Value::from(self.reason.code())),
            ("message", Value::from(self.reason.to_string())),
            ("raw", Value::from(self.raw.as_str())),
        ])
    }
}

/// Per-building counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildingCounts {
    /// Accepted readings (duplicates excluded).
    pub readings: u64,
    /// Accepted readings outside the band.
    pub out_of_band: u64,
    /// Rejected messages.
    pub rejected: u64,
}

/// Counts for a batch, e.g. for Prometheus-style counters in the local stack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanSummary {
    /// Messages in the batch (`accepted + duplicates + rejected`).
    pub received: usize,
    /// Messages accepted as rows.
    pub accepted: usize,
    /// Messages repeating a reading already in the batch (same device and sort key).
    pub duplicates: usize,
    /// Messages rejected.
    pub rejected: usize,
    /// Rejected messages per [`Rejection::code`].
    pub rejected_by_code: BTreeMap<&'static str, u64>,
    /// Counts per building ([`UNKNOWN_BUILDING`] for rejections with no building).
    pub per_building: BTreeMap<String, BuildingCounts>,
}

/// Everything the worker must write for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Table rows, in batch order, without in-batch duplicates. Adapters put them "if
    /// absent", which makes duplicates across batches harmless too.
    pub rows: Vec<ReadingRow>,
    /// Rejected messages, in batch order.
    pub rejected: Vec<Rejected>,
    /// Source ids of in-batch duplicates (accounted for, not written again).
    pub duplicates: Vec<String>,
    /// EMF log lines to print, one JSON document each.
    pub emf: Vec<String>,
    /// The batch's accepted readings as one NDJSON object (`None` if there are none).
    pub archive: Option<ArchiveObject>,
    /// The batch's rejected messages as one NDJSON object (`None` if there are none).
    pub rejected_archive: Option<ArchiveObject>,
    /// Counts.
    pub summary: PlanSummary,
}

/// Plans the work for a batch. Pure: the same batch gives the same plan.
pub fn plan(cfg: &WorkerConfig, batch: &[Incoming<'_>]) -> Plan {
    let mut rows: Vec<ReadingRow> = Vec::new();
    let mut rejected = Vec::new();
    let mut duplicates = Vec::new();
    let mut seen: BTreeSet<(DeviceId, String)> = BTreeSet::new();
    let mut summary = PlanSummary {
        received: batch.len(),
        ..PlanSummary::default()
    };

    for msg in batch {
        match accept(cfg, msg) {
            Ok(row) => {
                if !seen.insert((row.device.clone(), row.sort_key.clone())) {
                    duplicates.push(msg.source_id.to_owned());
                    continue;
                }
                let counts = summary
                    .per_building
                    .entry(row.building.to_string())
                    .or_default();
                counts.readings += 1;
                if row.temperature < cfg.band_min || row.temperature > cfg.band_max {
                    counts.out_of_band += 1;
                }
                rows.push(row);
            }
            Err((reason, building)) => {
                let building =
                    building.map_or_else(|| UNKNOWN_BUILDING.to_owned(), |b| b.to_string());
                summary.per_building.entry(building).or_default().rejected += 1;
                *summary.rejected_by_code.entry(reason.code()).or_default() += 1;
                rejected.push(Rejected {
                    source_id: msg.source_id.to_owned(),
                    topic: lossy_prefix(msg.topic.as_bytes(), TOPIC_EXCERPT_BYTES),
                    received_ms: msg.received_ms,
                    reason,
                    raw: lossy_prefix(msg.payload, RAW_EXCERPT_BYTES),
                });
            }
        }
    }
    summary.accepted = rows.len();
    summary.duplicates = duplicates.len();
    summary.rejected = rejected.len();

    let first_received_ms = batch.first().map_or(0, |m| m.received_ms);
    let source_ids: Vec<&str> = batch.iter().map(|m| m.source_id).collect();
    let archive_of = |prefix: &str, body: String| ArchiveObject {
        key: archive::key(prefix, first_received_ms, &source_ids),
        body,
    };
    let archive = (!rows.is_empty()).then(|| {
        archive_of(
            "readings",
            archive::ndjson(rows.iter().map(ReadingRow::to_json_line)),
        )
    });
    let rejected_archive = (!rejected.is_empty()).then(|| {
        archive_of(
            "rejected",
            archive::ndjson(rejected.iter().map(Rejected::to_json_line)),
        )
    });
    let emf = emf_lines(cfg, &rows, &summary, first_received_ms);

    Plan {
        rows,
        rejected,
        duplicates,
        emf,
        archive,
        rejected_archive,
        summary,
    }
}

/// Parses one message into a row, or says why not and which building it belongs to.
fn accept(
    cfg: &WorkerConfig,
    msg: &Incoming<'_>,
) -> Result<ReadingRow, (Rejection, Option<BuildingId>)> {
    let topic = Topic::parse(msg.topic).map_err(|source| (Rejection::BadTopic { source }, None))?;
    let topic_building = topic.building().cloned();
    if !topic.is_telemetry() {
        return Err((Rejection::NotTelemetryTopic, topic_building));
    }
    let ctx = ParseContext::for_topic(&topic, msg.received_ms).with_max_bytes(cfg.max_bytes);
    let t = parse_telemetry(msg.payload, &ctx).map_err(|r| (r, topic_building.clone()))?;
    // Telemetry topics always name a building, so this only guards the type.
    let Some(building) = t.building.or(topic_building) else {
        return Err((Rejection::NotTelemetryTopic, None));
    };
    Ok(ReadingRow {
        sort_key: ReadingRow::sort_key(t.seq, t.ts, msg.received_ms, msg.source_id),
        device: t.device,
        building,
        seq: t.seq,
        ts: t.ts,
        received_ms: msg.received_ms,
        temperature: t.temperature,
        humidity: t.humidity,
        legacy: topic.is_legacy(),
        ttl: (msg.received_ms / 1000).saturating_add(cfg.ttl_s),
        source_id: msg.source_id.to_owned(),
    })
}

/// Per listed device, Temperature and Humidity values (chunked by EMF's 100-value limit);
/// per building, the Readings, OutOfBand and Rejected counts.
fn emf_lines(
    cfg: &WorkerConfig,
    rows: &[ReadingRow],
    summary: &PlanSummary,
    first_received_ms: u64,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut per_device: BTreeMap<&DeviceId, Vec<&ReadingRow>> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| cfg.metric_devices.contains(&r.device))
    {
        per_device.entry(&row.device).or_default().push(row);
    }
    for (device, device_rows) in per_device {
        for chunk in device_rows.chunks(emf::MAX_VALUES) {
            let Some(first) = chunk.first() else { continue };
            let temperatures: Vec<f64> = chunk.iter().map(|r| r.temperature).collect();
            let humidities: Vec<f64> = chunk.iter().map(|r| r.humidity).collect();
            lines.push(emf::line(
                &cfg.namespace,
                first.received_ms,
                "Device",
                device.as_str(),
                vec![
                    // CloudWatch has no Celsius unit.
                    ("Temperature", "None", Value::from(temperatures)),
                    ("Humidity", "Percent", Value::from(humidities)),
                ],
            ));
        }
    }
    for (building, counts) in &summary.per_building {
        lines.push(emf::line(
            &cfg.namespace,
            first_received_ms,
            "Building",
            building,
            vec![
                ("Readings", "Count", Value::from(counts.readings)),
                ("OutOfBand", "Count", Value::from(counts.out_of_band)),
                ("Rejected", "Count", Value::from(counts.rejected)),
            ],
        ));
    }
    lines
}

/// At most `max` bytes of `bytes` as text, invalid UTF-8 replaced.
fn lossy_prefix(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(bytes.get(..max).unwrap_or(bytes)).into_owned()
}

#[cfg(test)]
mod tests;

//! The worker (§4.4) as a pure function: a batch of raw messages in, a [`Plan`] out.
//!
//! The plan lists everything the worker must write: table rows, one archive object for the
//! accepted readings and one for the rejected messages, and metric log lines. Adapters
//! (Lambda with DynamoDB, S3 and CloudWatch; the local stack with SQLite and files; the
//! in-page stores) run the sinks concurrently and report each failure. Every reading ends
//! up accepted, rejected (with its reason, counted and archived raw) or a duplicate, and a
//! bad message never affects the good ones around it. A message may carry a batch of
//! readings of its device (a JSON array, `payload::parse_telemetry_batch`): it yields one
//! row per good element, and each bad element is rejected on its own, with its index.

mod archive;
mod emf;
mod row;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::access::Publisher;
use crate::id::{BuildingId, DeviceId};
use crate::payload::{
    DEFAULT_MAX_BYTES, ParseContext, Rejection, Telemetry, TelemetryMessage, json_object,
    parse_telemetry_batch,
};
use crate::topic::Topic;

pub use archive::{ArchiveObject, NDJSON_CONTENT_TYPE, utc};
pub use row::ReadingRow;

/// Building under which rejected messages are counted when their topic names none.
pub const UNKNOWN_BUILDING: &str = "unknown";
/// Building under which the metrics count the buildings not in
/// [`WorkerConfig::metric_buildings`].
pub const OTHER_BUILDING: &str = "other";
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
    /// Who published it: each reading's device must be one it speaks for (§4.8), or the
    /// reading is rejected (`device_not_publisher`). The local broker gives the
    /// connection's identity, the Lambda the rule's `clientid()`, the in-page bus
    /// [`Publisher::Unbound`] (the page's devices and pipeline are one program).
    pub publisher: &'a Publisher,
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
    /// Buildings that get their own `Building` metric dimension; the others are counted
    /// together under [`OTHER_BUILDING`]. Building names come from the devices, and every
    /// new dimension value is a new custom metric on CloudWatch (§4.8): an allow-list keeps
    /// that bill bounded whatever a device calls its building.
    pub metric_buildings: BTreeSet<BuildingId>,
}

impl WorkerConfig {
    /// The buildings of [`WorkerConfig::metric_buildings`] by default: `1` to `10`, the
    /// ones `fleet sim` and the web app name their buildings with.
    pub fn default_metric_buildings() -> BTreeSet<BuildingId> {
        // Inserted one by one: `collect` into a `BTreeSet` stable-sorts its input first,
        // which linked a sort (2 KB gzip) into the web app for these ten names.
        let mut buildings = BTreeSet::new();
        for n in 1..=10 {
            buildings.insert(BuildingId::from_valid(n.to_string()));
        }
        buildings
    }

    /// The `Building` dimension value under which a building is counted.
    fn metric_building<'b>(&self, building: &'b str) -> &'b str {
        let listed = self.metric_buildings.iter().any(|b| b.as_str() == building);
        if listed || building == UNKNOWN_BUILDING {
            building
        } else {
            OTHER_BUILDING
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            ttl_s: 86_400,
            metric_devices: BTreeSet::new(),
            metric_buildings: WorkerConfig::default_metric_buildings(),
            namespace: String::from("Device/Monitoring"),
            max_bytes: DEFAULT_MAX_BYTES,
            band_min: 26.0,
            band_max: 28.0,
        }
    }
}

/// A message, or one element of a batch message, that was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Its message's transport id (for a batch element, the whole message's).
    pub source_id: String,
    /// For an element of a batch message, its 0-based index in the array; `None` when the
    /// whole message was rejected.
    pub element: Option<usize>,
    /// Its topic (truncated to 256 bytes).
    pub topic: String,
    /// Its arrival time, ms.
    pub received_ms: u64,
    /// Why it was rejected.
    pub reason: Rejection,
    /// The payload (for a batch element, the element's JSON text), lossily decoded and
    /// truncated to [`RAW_EXCERPT_BYTES`].
    pub raw: String,
}

impl Rejected {
    /// Names what was rejected in logs: the source id, with `#{element}` for a batch
    /// element (`5f1a…#3`).
    pub fn reference(&self) -> String {
        match self.element {
            Some(i) => format!("{}#{i}", self.source_id),
            None => self.source_id.clone(),
        }
    }

    /// The rejection as one JSON line (for logs and the NDJSON archive). `element` is
    /// `null` for a message rejected whole.
    pub fn to_json_line(&self) -> String {
        json_object(&[
            ("source_id", Value::from(self.source_id.as_str())),
            ("element", self.element.map_or(Value::Null, Value::from)),
            ("topic", Value::from(self.topic.as_str())),
            ("received_ms", Value::from(self.received_ms)),
            ("code", Value::from(self.reason.code())),
            ("message", Value::from(self.reason.to_string())),
            ("raw", Value::from(self.raw.as_str())),
        ])
    }
}

/// Per-building counts, in readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildingCounts {
    /// Accepted readings (duplicates excluded).
    pub readings: u64,
    /// Accepted readings outside the band.
    pub out_of_band: u64,
    /// Rejections: messages rejected whole, and rejected elements of batch messages.
    pub rejected: u64,
}

/// Counts for a batch, e.g. for Prometheus-style counters in the local stack.
///
/// Two units: *messages* (what the transport carried and acknowledges: MQTT publishes, SQS
/// messages) and *readings*. A single-reading message is one of each; a batch message of
/// N elements is one message and N readings; a message rejected whole (bad JSON, wrong
/// topic, empty or too long batch…) counts as one reading, the one it failed to carry.
/// So `accepted + duplicates + rejected == readings`, and with no batch messages
/// `readings == received`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanSummary {
    /// Messages in the batch.
    pub received: usize,
    /// Of those, messages that were batches (JSON arrays) and could be read as such.
    pub batches: usize,
    /// Readings in the batch (`accepted + duplicates + rejected`, see above).
    pub readings: usize,
    /// Readings accepted as rows.
    pub accepted: usize,
    /// Readings repeating one already in the batch (same device and sort key).
    pub duplicates: usize,
    /// Rejections: messages rejected whole plus rejected batch elements (`Plan::rejected`).
    pub rejected: usize,
    /// Messages rejected whole (`element == None`).
    pub rejected_messages: usize,
    /// Rejections per [`Rejection::code`].
    pub rejected_by_code: BTreeMap<&'static str, u64>,
    /// Counts per building, as the metrics name it: a building of
    /// [`WorkerConfig::metric_buildings`], [`OTHER_BUILDING`] for the others, or
    /// [`UNKNOWN_BUILDING`] for rejections with no building.
    pub per_building: BTreeMap<String, BuildingCounts>,
}

/// Everything the worker must write for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Table rows, in batch order (a batch message's in element order), without in-batch
    /// duplicates. Each row carries its message's `source_id`, so a failed write names the
    /// message to redeliver. Adapters put them "if absent", which makes duplicates across
    /// batches harmless too.
    pub rows: Vec<ReadingRow>,
    /// Rejected messages and batch elements, in batch order.
    pub rejected: Vec<Rejected>,
    /// Source ids of in-batch duplicate readings (accounted for, not written again); a
    /// batch message appears once per duplicate reading it carried.
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
    let mut tally = Tally {
        cfg,
        rows: Vec::new(),
        rejected: Vec::new(),
        duplicates: Vec::new(),
        seen: BTreeSet::new(),
        summary: PlanSummary {
            received: batch.len(),
            ..PlanSummary::default()
        },
    };
    for msg in batch {
        match read(cfg, msg) {
            Err((reason, building)) => {
                tally.summary.rejected_messages += 1;
                tally.reject(msg, None, building.as_ref(), reason, msg.payload);
            }
            Ok((topic, TelemetryMessage::One(t))) => {
                tally.reading(msg, &topic, None, Ok(t), msg.payload);
            }
            Ok((topic, TelemetryMessage::Batch(elements))) => {
                tally.summary.batches += 1;
                for (i, e) in elements.into_iter().enumerate() {
                    tally.reading(msg, &topic, Some(i), e.reading, e.raw.as_bytes());
                }
            }
        }
    }
    let Tally {
        rows,
        rejected,
        duplicates,
        mut summary,
        ..
    } = tally;
    summary.accepted = rows.len();
    summary.duplicates = duplicates.len();
    summary.rejected = rejected.len();
    summary.readings = summary.accepted + summary.duplicates + summary.rejected;

    let first_received_ms = batch.first().map_or(0, |m| m.received_ms);
    let source_ids: Vec<&str> = batch.iter().map(|m| m.source_id).collect();
    let archive_of = |prefix: &str, body: String| ArchiveObject {
        key: archive::key(prefix, first_received_ms, &source_ids),
        body,
    };
    let archive = (!rows.is_empty()).then(|| {
        archive_of(
            "readings",
            archive::ndjson_of(rows.iter().map(ReadingRow::archive_line)),
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

/// The plan under construction: rows, rejections and duplicates, with their counts.
struct Tally<'c> {
    cfg: &'c WorkerConfig,
    rows: Vec<ReadingRow>,
    rejected: Vec<Rejected>,
    duplicates: Vec<String>,
    /// (device, sort key) of the rows so far: a reading repeated within the batch, in
    /// another message or in the same batch message, is written once.
    seen: BTreeSet<(DeviceId, String)>,
    summary: PlanSummary,
}

impl Tally<'_> {
    /// One reading of `msg` (element `element` of a batch, or the whole message).
    fn reading(
        &mut self,
        msg: &Incoming<'_>,
        topic: &Topic,
        element: Option<usize>,
        reading: Result<Telemetry, Rejection>,
        raw: &[u8],
    ) {
        let row = reading.and_then(|t| row(self.cfg, msg, topic, t));
        let row = match row {
            Ok(row) => row,
            Err(reason) => return self.reject(msg, element, topic.building(), reason, raw),
        };
        if !self.seen.insert((row.device.clone(), row.sort_key.clone())) {
            self.duplicates.push(msg.source_id.to_owned());
            return;
        }
        let counts = self
            .summary
            .per_building
            .entry(self.cfg.metric_building(row.building.as_str()).to_owned())
            .or_default();
        counts.readings += 1;
        if row.temperature < self.cfg.band_min || row.temperature > self.cfg.band_max {
            counts.out_of_band += 1;
        }
        self.rows.push(row);
    }

    fn reject(
        &mut self,
        msg: &Incoming<'_>,
        element: Option<usize>,
        building: Option<&BuildingId>,
        reason: Rejection,
        raw: &[u8],
    ) {
        let building = building.map_or(UNKNOWN_BUILDING, BuildingId::as_str);
        let building = self.cfg.metric_building(building).to_owned();
        self.summary
            .per_building
            .entry(building)
            .or_default()
            .rejected += 1;
        *self
            .summary
            .rejected_by_code
            .entry(reason.code())
            .or_default() += 1;
        self.rejected.push(Rejected {
            source_id: msg.source_id.to_owned(),
            element,
            topic: lossy_prefix(msg.topic.as_bytes(), TOPIC_EXCERPT_BYTES),
            received_ms: msg.received_ms,
            reason,
            raw: lossy_prefix(raw, RAW_EXCERPT_BYTES),
        });
    }
}

/// Checks a message's topic and parses its payload (one reading or a batch), or says why
/// the whole message is rejected and which building it belongs to.
fn read<'a>(
    cfg: &WorkerConfig,
    msg: &Incoming<'a>,
) -> Result<(Topic, TelemetryMessage<'a>), (Rejection, Option<BuildingId>)> {
    let topic = Topic::parse(msg.topic).map_err(|source| (Rejection::BadTopic { source }, None))?;
    if !topic.is_telemetry() {
        return Err((Rejection::NotTelemetryTopic, topic.building().cloned()));
    }
    let ctx = ParseContext::for_topic(&topic, msg.received_ms).with_max_bytes(cfg.max_bytes);
    // A batch is accepted only where the context names a device: on a device's own
    // telemetry topic, never on a legacy one.
    match parse_telemetry_batch(msg.payload, &ctx) {
        Ok(parsed) => Ok((topic, parsed)),
        Err(reason) => Err((reason, topic.building().cloned())),
    }
}

/// The table row of one accepted reading of `msg`.
fn row(
    cfg: &WorkerConfig,
    msg: &Incoming<'_>,
    topic: &Topic,
    t: Telemetry,
) -> Result<ReadingRow, Rejection> {
    // Telemetry topics always name a building, so this only guards the type.
    let Some(building) = t.building.or_else(|| topic.building().cloned()) else {
        return Err(Rejection::NotTelemetryTopic);
    };
    if !msg
        .publisher
        .may_report(building.as_str(), t.device.as_str())
    {
        return Err(Rejection::NotPublisher {
            device: t.device.into_string(),
            publisher: msg.publisher.to_string(),
        });
    }
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

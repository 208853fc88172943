//! The readings and decisions tables on DynamoDB.
//!
//! Writes go through [`BatchWriter`]: `BatchWriteItem` with 25 items per call (DynamoDB's
//! limit), chunks in parallel, `UnprocessedItems` retried with exponential backoff and full
//! jitter for a bounded number of attempts. Device states are read the same way, a batch's
//! devices at once: `BatchGetItem` (100 keys per call, strongly consistent), with
//! `UnprocessedKeys` retried. A chunk refused whole by a validation error is
//! retried item by item (`PutItem`), so one bad item fails only its own record.
//!
//! Items: a reading is [`reading_item`] (partition `device`, sort `sk` =
//! `{ts:013}#{seq:010}`, TTL `ttl`, as fleet-core's [`ReadingRow`]); the decisions table holds
//! decision items (sort key `d#` + the reading's sort key) and one state item per device
//! (sort key [`STATE_SK`], the core's [`DeviceState`] as JSON, as the local stack stores it).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use fleet_core::{BuildingId, DeviceId, DeviceState, ReadingRow};
use fleet_pipeline::StoreError;
use futures_util::StreamExt;

use super::{DisplayErrorContext, store_error};
use crate::ports::{DecisionRecord, DecisionTable, DeviceRecords, ReadingTable, RowsFailed};

/// An item as the SDK takes it.
pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's limit of items per `BatchWriteItem`.
pub const BATCH_LIMIT: usize = 25;
/// DynamoDB's limit of keys per `BatchGetItem`.
pub const GET_LIMIT: usize = 100;
/// Sort key of a device's state item in the decisions table.
pub const STATE_SK: &str = "state";
/// How long decisions are kept (the local stack's retention): 7 days.
pub const DECISION_TTL_S: u64 = 7 * 86_400;
/// How long an idle device's state is kept: 30 days.
pub const STATE_TTL_S: u64 = 30 * 86_400;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The readings table item of a row.
pub fn reading_item(row: &ReadingRow) -> Item {
    let mut item = HashMap::with_capacity(11);
    item.insert("device".to_owned(), s(row.device.as_str()));
    item.insert("sk".to_owned(), s(&row.sort_key));
    item.insert("building".to_owned(), s(row.building.as_str()));
    if let Some(seq) = row.seq {
        item.insert("seq".to_owned(), n(seq));
    }
    if let Some(ts) = row.ts {
        item.insert("ts".to_owned(), n(ts));
    }
    item.insert("received_ms".to_owned(), n(row.received_ms));
    item.insert("temperature".to_owned(), n(row.temperature));
    item.insert("humidity".to_owned(), n(row.humidity));
    item.insert("legacy".to_owned(), AttributeValue::Bool(row.legacy));
    item.insert("ttl".to_owned(), n(row.ttl));
    item.insert("source_id".to_owned(), s(&row.source_id));
    item
}

/// An item is not what this crate writes.
#[derive(Debug, thiserror::Error)]
#[error("attribute `{attribute}` is missing or malformed")]
pub struct ItemError {
    /// The attribute.
    pub attribute: &'static str,
}

fn get_s<'a>(item: &'a Item, attribute: &'static str) -> Result<&'a str, ItemError> {
    match item.get(attribute) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(ItemError { attribute }),
    }
}

fn get_n<T: std::str::FromStr>(
    item: &Item,
    attribute: &'static str,
) -> Result<Option<T>, ItemError> {
    match item.get(attribute) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|_| ItemError { attribute }),
        Some(_) => Err(ItemError { attribute }),
    }
}

fn req_n<T: std::str::FromStr>(item: &Item, attribute: &'static str) -> Result<T, ItemError> {
    get_n(item, attribute)?.ok_or(ItemError { attribute })
}

/// A readings table item back as a row.
pub fn row_from_item(item: &Item) -> Result<ReadingRow, ItemError> {
    let id = |attribute| get_s(item, attribute).map(str::to_owned);
    Ok(ReadingRow {
        device: DeviceId::try_from(id("device")?).map_err(|_| ItemError {
            attribute: "device",
        })?,
        sort_key: id("sk")?,
        building: BuildingId::try_from(id("building")?).map_err(|_| ItemError {
            attribute: "building",
        })?,
        seq: get_n(item, "seq")?,
        ts: get_n(item, "ts")?,
        received_ms: req_n(item, "received_ms")?,
        temperature: req_n(item, "temperature")?,
        humidity: req_n(item, "humidity")?,
        legacy: matches!(item.get("legacy"), Some(AttributeValue::Bool(true))),
        ttl: req_n(item, "ttl")?,
        source_id: id("source_id").unwrap_or_default(),
    })
}

/// The decisions table item of a decision.
pub fn decision_item(record: &DecisionRecord<'_>) -> Item {
    let d = record.decision;
    let mut item = HashMap::with_capacity(14);
    item.insert("device".to_owned(), s(d.device.as_str()));
    item.insert("sk".to_owned(), s(&format!("d#{}", record.reading_sk)));
    if let Some(b) = &d.building {
        item.insert("building".to_owned(), s(b.as_str()));
    }
    item.insert("at_ms".to_owned(), n(d.at_ms));
    if let Some(seq) = d.reading_seq {
        item.insert("reading_seq".to_owned(), n(seq));
    }
    item.insert("reading_ts".to_owned(), n(d.reading_ts));
    item.insert("temperature".to_owned(), n(d.temperature));
    item.insert("humidity".to_owned(), n(d.humidity));
    if let Some(p) = d.previous_temperature {
        item.insert("previous_temperature".to_owned(), n(p));
    }
    item.insert("reason".to_owned(), s(d.reason.code()));
    if let Some(c) = &d.command {
        item.insert("action".to_owned(), s(c.action.as_str()));
        // Serializing plain values cannot fail; an empty string would only lose the copy.
        item.insert(
            "command".to_owned(),
            s(&serde_json::to_string(c).unwrap_or_default()),
        );
    }
    item.insert("legacy".to_owned(), AttributeValue::Bool(d.legacy));
    item.insert("ttl".to_owned(), n(d.at_ms / 1000 + DECISION_TTL_S));
    item
}

/// The state item of a device.
pub fn state_item(
    device: &DeviceId,
    state: &DeviceState,
    now_ms: u64,
) -> Result<Item, serde_json::Error> {
    let mut item = HashMap::with_capacity(5);
    item.insert("device".to_owned(), s(device.as_str()));
    item.insert("sk".to_owned(), s(STATE_SK));
    item.insert("state".to_owned(), s(&serde_json::to_string(state)?));
    item.insert("updated_ms".to_owned(), n(now_ms));
    item.insert("ttl".to_owned(), n(now_ms / 1000 + STATE_TTL_S));
    Ok(item)
}

/// `BatchWriteItem` with bounded, jittered retries of unprocessed items.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    /// The client.
    pub client: Client,
    /// The table.
    pub table: String,
    /// Calls per chunk at most, the first included (5).
    pub max_attempts: u32,
    /// Backoff before the second call; doubles each time, capped at 1 s (25 ms).
    pub base_delay: Duration,
    /// Chunks written at once (8).
    pub concurrency: usize,
}

/// Per-write jitter from a counter and the clock: no RNG dependency for one number.
fn jitter(max: Duration) -> Duration {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ u64::from(nanos);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(x % max_ns)
}

fn key_of(item: &Item) -> Option<(String, String)> {
    match (item.get("device"), item.get("sk")) {
        (Some(AttributeValue::S(d)), Some(AttributeValue::S(k))) => Some((d.clone(), k.clone())),
        _ => None,
    }
}

impl BatchWriter {
    /// A writer with the default retry settings.
    pub fn new(client: Client, table: impl Into<String>) -> BatchWriter {
        BatchWriter {
            client,
            table: table.into(),
            max_attempts: 5,
            base_delay: Duration::from_millis(25),
            concurrency: 8,
        }
    }

    /// The cap of the jittered wait after failed `attempt` (1, 2, …): doubling from
    /// `base_delay`, at most 1 s.
    fn backoff(&self, attempt: u32) -> Duration {
        self.base_delay
            .saturating_mul(1 << attempt.min(10))
            .min(Duration::from_secs(1))
    }

    /// Writes the items (each copied once into its request: prefer
    /// [`BatchWriter::write_with`] on a hot path); on failure, the indexes of the items not
    /// written.
    pub async fn write(&self, items: Vec<Item>) -> Result<(), RowsFailed> {
        self.write_with(items.len(), |i| items.get(i).cloned().unwrap_or_default())
            .await
    }

    /// Writes items `0..count`, built by `item(i)`: once each on the way out (moved into
    /// the request, never copied), and again only on a failure path (to find an
    /// unprocessed item's index, or to write a refused chunk item by item). On failure,
    /// the indexes of the items not written.
    pub async fn write_with<F>(&self, count: usize, item: F) -> Result<(), RowsFailed>
    where
        F: Fn(usize) -> Item + Sync,
    {
        let chunks: Vec<std::ops::Range<usize>> = (0..count)
            .step_by(BATCH_LIMIT)
            .map(|start| start..(start + BATCH_LIMIT).min(count))
            .collect();
        let item = &item;
        let results: Vec<Result<(), RowsFailed>> = futures_util::stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk, item))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut failed = BTreeSet::new();
        let mut first = None;
        for r in results {
            if let Err(e) = r {
                failed.extend(e.failed);
                first.get_or_insert(e.source);
            }
        }
        match first {
            None => Ok(()),
            Some(source) => Err(RowsFailed { failed, source }),
        }
    }

    async fn write_chunk<F>(
        &self,
        chunk: std::ops::Range<usize>,
        item: &F,
    ) -> Result<(), RowsFailed>
    where
        F: Fn(usize) -> Item + Sync,
    {
        let put = |i: usize| {
            PutRequest::builder()
                .set_item(Some(item(i)))
                .build()
                .map(|p| WriteRequest::builder().put_request(p).build())
                .map_err(|e| RowsFailed {
                    failed: BTreeSet::from([i]),
                    source: store_error("build put request", e),
                })
        };
        let mut pending = chunk.clone().map(put).collect::<Result<Vec<_>, _>>()?;
        // The indexes of the items in `pending`: the chunk at first, then those DynamoDB
        // handed back unprocessed (found by key, from items rebuilt for the purpose: a
        // failure path).
        let mut in_flight: Vec<usize> = chunk.clone().collect();
        let indexes_of = |requests: &[WriteRequest]| -> Vec<usize> {
            let by_key: HashMap<(String, String), usize> = chunk
                .clone()
                .filter_map(|i| key_of(&item(i)).map(|k| (k, i)))
                .collect();
            let mut found: Vec<usize> = requests
                .iter()
                .filter_map(|r| r.put_request().and_then(|p| key_of(p.item())))
                .filter_map(|k| by_key.get(&k).copied())
                .collect();
            found.sort_unstable();
            found
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .batch_write_item()
                .request_items(&self.table, std::mem::take(&mut pending))
                .send()
                .await;
            match result {
                Ok(out) => {
                    pending = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&self.table))
                        .unwrap_or_default();
                    if pending.is_empty() {
                        return Ok(());
                    }
                    in_flight = indexes_of(&pending);
                    if attempt >= self.max_attempts {
                        return Err(RowsFailed {
                            failed: in_flight.into_iter().collect(),
                            source: StoreError::new(
                                "write items",
                                format!(
                                    "{} item(s) still unprocessed after {attempt} attempts",
                                    pending.len()
                                ),
                            ),
                        });
                    }
                    tokio::time::sleep(jitter(self.backoff(attempt))).await;
                }
                // The request was refused whole (one bad item refuses all): write its
                // items one by one, so only the bad ones fail.
                Err(e) if e.code() == Some("ValidationException") && in_flight.len() > 1 => {
                    return self.isolate(&in_flight, item).await;
                }
                Err(e) => {
                    return Err(RowsFailed {
                        failed: in_flight.into_iter().collect(),
                        source: store_error("write items", e),
                    });
                }
            }
        }
    }

    /// Writes items one by one (`PutItem`), so only the bad ones fail.
    async fn isolate<F>(&self, indexes: &[usize], item: &F) -> Result<(), RowsFailed>
    where
        F: Fn(usize) -> Item + Sync,
    {
        let mut failed = BTreeSet::new();
        let mut first = None;
        for &i in indexes {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item(i)))
                .send()
                .await;
            if let Err(e) = result {
                failed.insert(i);
                first.get_or_insert_with(|| store_error("write item", e));
            }
        }
        match first {
            None => Ok(()),
            Some(source) => Err(RowsFailed { failed, source }),
        }
    }
}

/// The readings table.
#[derive(Debug, Clone)]
pub struct DynamoReadings {
    /// Its writer.
    pub writer: BatchWriter,
}

impl ReadingTable for DynamoReadings {
    async fn put_rows(&self, rows: &[ReadingRow]) -> Result<(), RowsFailed> {
        self.writer
            .write_with(rows.len(), |i| {
                rows.get(i).map(reading_item).unwrap_or_default()
            })
            .await
    }
}

/// The decisions table: decision items and device states.
#[derive(Debug, Clone)]
pub struct DynamoDecisions {
    /// Its writer (and client).
    pub writer: BatchWriter,
}

impl DynamoDecisions {
    /// Writes one pass of [`DecisionTable::record`]: `items` and the device (index) each
    /// belongs to; adds the devices of items not written to `failed`.
    async fn write_pass(
        &self,
        (items, owner): (Vec<Item>, Vec<usize>),
        failed: &mut BTreeSet<usize>,
        first: &mut Option<StoreError>,
    ) {
        if items.is_empty() {
            return;
        }
        if let Err(e) = self.writer.write(items).await {
            failed.extend(e.failed.iter().filter_map(|&item| owner.get(item).copied()));
            first.get_or_insert(e.source);
        }
    }

    /// One `BatchGetItem` chunk of state keys (`(index, device)`), `UnprocessedKeys` retried
    /// like the writer's unprocessed items. Answers per device of the chunk.
    async fn read_states(
        &self,
        chunk: Vec<(usize, DeviceId)>,
    ) -> Vec<(usize, Result<DeviceState, StoreError>)> {
        let w = &self.writer;
        let key = |device: &DeviceId| {
            HashMap::from([
                ("device".to_owned(), s(device.as_str())),
                ("sk".to_owned(), s(STATE_SK)),
            ])
        };
        let mut pending: Vec<Item> = chunk.iter().map(|(_, d)| key(d)).collect();
        let mut found: HashMap<String, Item> = HashMap::with_capacity(chunk.len());
        // Why the keys still pending were not read, once reading stops.
        let mut failure: Option<String> = None;
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let result = match KeysAndAttributes::builder()
                .set_keys(Some(pending.clone()))
                .consistent_read(true)
                .build()
            {
                Ok(keys) => w
                    .client
                    .batch_get_item()
                    .request_items(&w.table, keys)
                    .send()
                    .await
                    .map_err(|e| DisplayErrorContext(e).to_string()),
                Err(e) => Err(e.to_string()),
            };
            let out = match result {
                Ok(out) => out,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            for item in out
                .responses
                .and_then(|mut r| r.remove(&w.table))
                .unwrap_or_default()
            {
                if let Ok(device) = get_s(&item, "device") {
                    found.insert(device.to_owned(), item);
                }
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&w.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if !pending.is_empty() && attempt >= w.max_attempts {
                failure = Some(format!(
                    "{} key(s) still unprocessed after {attempt} attempts",
                    pending.len()
                ));
                break;
            }
            if !pending.is_empty() {
                tokio::time::sleep(jitter(w.backoff(attempt))).await;
            }
        }
        let unread: std::collections::HashSet<&str> = pending
            .iter()
            .filter_map(|k| get_s(k, "device").ok())
            .collect();
        chunk
            .into_iter()
            .map(|(i, device)| {
                let state = match (found.get(device.as_str()), &failure) {
                    (Some(item), _) => state_of(item),
                    (None, Some(e)) if unread.contains(device.as_str()) => {
                        Err(StoreError::new("read device states", e.clone()))
                    }
                    (None, _) => Ok(DeviceState::default()),
                };
                (i, state)
            })
            .collect()
    }
}

/// The state in a state item.
fn state_of(item: &Item) -> Result<DeviceState, StoreError> {
    let json = get_s(item, "state").map_err(|e| StoreError::new("read device state", e))?;
    serde_json::from_str(json).map_err(|e| StoreError::new("read device state", e))
}

impl DecisionTable for DynamoDecisions {
    async fn device_states(&self, devices: &[DeviceId]) -> Vec<Result<DeviceState, StoreError>> {
        let mut chunks = Vec::new();
        let mut it = devices.iter().cloned().enumerate().peekable();
        while it.peek().is_some() {
            chunks.push(it.by_ref().take(GET_LIMIT).collect::<Vec<_>>());
        }
        let mut answers: Vec<(usize, Result<DeviceState, StoreError>)> =
            futures_util::stream::iter(chunks)
                .map(|chunk| self.read_states(chunk))
                .buffer_unordered(self.writer.concurrency.max(1))
                .flat_map(futures_util::stream::iter)
                .collect()
                .await;
        answers.sort_by_key(|(i, _)| *i);
        answers.into_iter().map(|(_, state)| state).collect()
    }

    /// Two passes when some device has decisions to keep: first every decision item (and
    /// the state of devices with none), then the states of the devices whose decisions were
    /// all written. A state marks its readings seen, so it must not land before their
    /// decisions: `BatchWriteItem` is not atomic, and a redelivery would skip readings
    /// already marked seen, losing their decision rows.
    async fn record(&self, devices: &[DeviceRecords<'_>], now_ms: u64) -> Result<(), RowsFailed> {
        let mut failed = BTreeSet::new();
        let mut first = None;
        // Items of a pass, and the device (index) each belongs to, to answer per device.
        let mut first_pass: (Vec<Item>, Vec<usize>) = (Vec::new(), Vec::new());
        let mut states_after: Vec<(usize, Item)> = Vec::new();
        for (i, d) in devices.iter().enumerate() {
            let state = match state_item(d.device, d.next, now_ms) {
                Ok(state) => state,
                Err(e) => {
                    failed.insert(i);
                    first.get_or_insert(StoreError::new("record decisions", e));
                    continue;
                }
            };
            if d.decisions.is_empty() {
                first_pass.0.push(state);
            } else {
                first_pass.0.extend(d.decisions.iter().map(decision_item));
                states_after.push((i, state));
            }
            first_pass.1.resize(first_pass.0.len(), i);
        }
        self.write_pass(first_pass, &mut failed, &mut first).await;
        let held_back = states_after
            .into_iter()
            .filter(|(i, _)| !failed.contains(i))
            .map(|(i, state)| (state, i))
            .unzip();
        self.write_pass(held_back, &mut failed, &mut first).await;
        match first {
            None => Ok(()),
            Some(source) => Err(RowsFailed { failed, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_items_round_trip() {
        let row = ReadingRow {
            device: "d-1".try_into().unwrap(),
            sort_key: ReadingRow::sort_key(Some(7), Some(1_764_230_400_123), 1, "m"),
            building: "1".try_into().unwrap(),
            seq: Some(7),
            ts: Some(1_764_230_400_123),
            received_ms: 1_764_230_400_200,
            temperature: 27.35,
            humidity: 61.0,
            legacy: false,
            ttl: 1_764_316_800,
            source_id: "m".into(),
        };
        let item = reading_item(&row);
        assert_eq!(item.get("sk"), Some(&s("1764230400123#0000000007")));
        assert_eq!(row_from_item(&item).unwrap(), row);
    }

    #[test]
    fn jitter_stays_below_its_cap() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(3)) < Duration::from_millis(3));
        }
    }
}

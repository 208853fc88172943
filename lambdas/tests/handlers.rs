//! The handlers on real event shapes (`tests/fixtures/`), with fleet-pipeline's in-memory
//! store behind the ports: rejections, partial batch failures, the direct invoke, the
//! stream, the notifier, and parity with the local stack's pipeline.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

use std::collections::BTreeSet;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use fleet_core::{
    AlarmKind, AlarmNotice, AlarmState, ArchiveObject, DeviceId, DeviceState, PolicyConfig,
    ReadingRow, Reason, WorkerConfig,
};
use fleet_lambdas::envelope::Message;
use fleet_lambdas::memory::{CapturedMetrics, Discard, MemoryDecisions, Recorder, SharedStore};
use fleet_lambdas::notifier::Notifier;
use fleet_lambdas::ports::{
    Archive, DecisionTable, DeviceRecords, Publisher, ReadingTable, RowsFailed,
};
use fleet_lambdas::remediation::{Remediation, StreamReading, readings};
use fleet_lambdas::worker::{SqsRecord, Worker, WorkerEvent};
use fleet_pipeline::{MemoryStore, Pipeline, PipelineConfig, StoreError};
use serde_json::Value;

const SQS: &str = include_str!("fixtures/sqs_batch.json");
const DIRECT: &str = include_str!("fixtures/iot_direct.json");
const STREAM: &str = include_str!("fixtures/dynamodb_stream.json");
const SNS: &str = include_str!("fixtures/sns_cloudwatch_alarm.json");
/// Records carrying batches of readings (JSON arrays): 10 readings of d-0001, 5 of d-0002
/// (the third out of range), a single reading of d-0003, an array on a legacy topic and an
/// empty array.
const SQS_BATCHED: &str = include_str!("fixtures/sqs_batched_readings.json");
/// A direct invoke carrying a batch of 3 readings of d-0001.
const DIRECT_BATCH: &str = include_str!("fixtures/iot_direct_batch.json");
/// A little after the fixtures' readings (2025-11-27T08:00:01Z).
const NOW: u64 = 1_764_230_401_000;

/// The device the original stack's client id `monitoring-device` speaks for.
fn legacy() -> DeviceId {
    DeviceId::try_from("381938912").unwrap()
}

fn id(n: u32) -> String {
    format!("5f1a0c1e-{n:04}-4a8e-9d2b-{n:012}")
}

type MemWorker<T = SharedStore, A = SharedStore> = Worker<T, A, CapturedMetrics>;

fn worker() -> MemWorker {
    Worker {
        config: WorkerConfig::default(),
        legacy_device: legacy(),
        table: SharedStore::default(),
        archive: SharedStore::default(),
        metrics: CapturedMetrics::default(),
    }
}

fn mem() -> SharedStore {
    SharedStore::default()
}

fn sqs() -> SqsEvent {
    serde_json::from_str(SQS).unwrap()
}

fn stored(store: &SharedStore) -> Vec<ReadingRow> {
    rows_of(store, &["d-0001", "d-0002", "381938912"])
}

/// The rows of `devices`, device by device.
fn rows_of(store: &SharedStore, devices: &[&str]) -> Vec<ReadingRow> {
    let s = store.store();
    devices
        .iter()
        .flat_map(|d| {
            s.readings(&DeviceId::try_from(*d).unwrap())
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect()
}

fn archive(store: &SharedStore) -> Vec<ArchiveObject> {
    store.store().archive().cloned().collect()
}

#[tokio::test]
async fn an_sqs_batch_stores_the_good_and_rejects_the_bad_without_failing_them() {
    let w = worker();
    let response = w.handle_sqs(sqs(), NOW).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let rows = stored(&w.table);
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let sks: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.device.as_str() == "d-0001")
        .map(|r| r.sort_key.as_str())
        .collect();
    assert_eq!(
        sks,
        BTreeSet::from(["1764230400100#0000000001", "1764230400600#0000000002"]),
        "same second, both kept"
    );
    let legacy = rows.iter().find(|r| r.legacy).unwrap();
    assert_eq!(
        (legacy.device.as_str(), legacy.building.as_str()),
        ("381938912", "1")
    );
    assert_eq!(legacy.ttl, 1_764_230_400 + 86_400);

    let objects = archive(&w.archive);
    assert_eq!(
        objects.len(),
        2,
        "one readings object and one rejected object per batch"
    );
    let readings = objects
        .iter()
        .find(|o| o.key.starts_with("readings/"))
        .unwrap();
    assert!(
        readings
            .key
            .starts_with("readings/dt=2025-11-27/hour=08/1764230400150-"),
        "{}",
        readings.key
    );
    assert_eq!(readings.body.lines().count(), 4);
    let rejected = objects
        .iter()
        .find(|o| o.key.starts_with("rejected/"))
        .unwrap();
    let codes: Vec<String> = rejected
        .body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(codes, ["syntax", "topic_invalid", "topic_invalid"]);
    assert!(
        rejected.body.contains("hello from the console"),
        "the raw body is archived"
    );

    let emf: Vec<Value> = w
        .metrics
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let total = |metric: &str| emf.iter().filter_map(|v| v[metric].as_u64()).sum::<u64>();
    assert_eq!(
        (total("Readings"), total("Rejected"), total("OutOfBand")),
        (4, 3, 3)
    );
    assert!(
        emf.iter()
            .all(|v| v["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Device/Monitoring")
    );
}

/// Fails the rows of one device, as a throttled or refused write would.
struct FailDevice<T>(T, &'static str);

impl<T: ReadingTable> ReadingTable for FailDevice<T> {
    async fn put_rows(&self, rows: &[ReadingRow]) -> Result<(), RowsFailed> {
        let (bad, good): (Vec<_>, Vec<_>) = rows
            .iter()
            .enumerate()
            .partition(|(_, r)| r.device.as_str() == self.1);
        let good: Vec<ReadingRow> = good.into_iter().map(|(_, r)| r.clone()).collect();
        self.0.put_rows(&good).await?;
        if bad.is_empty() {
            return Ok(());
        }
        Err(RowsFailed {
            failed: bad.into_iter().map(|(i, _)| i).collect(),
            source: StoreError::new("write items", "ProvisionedThroughputExceededException"),
        })
    }
}

/// Fails objects under a prefix.
struct FailPrefix<A>(A, &'static str);

impl<A: Archive> Archive for FailPrefix<A> {
    async fn put_object(&self, object: &ArchiveObject) -> Result<(), StoreError> {
        if object.key.starts_with(self.1) {
            return Err(StoreError::new("put archive object", "SlowDown"));
        }
        self.0.put_object(object).await
    }
}

#[tokio::test]
async fn a_failed_row_fails_exactly_its_message() {
    let w = Worker {
        config: WorkerConfig::default(),
        legacy_device: legacy(),
        table: FailDevice(mem(), "d-0002"),
        archive: mem(),
        metrics: CapturedMetrics::default(),
    };
    let response = w.handle_sqs(sqs(), NOW).await.unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, [id(6)]);
    assert_eq!(stored(&w.table.0).len(), 3);
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": id(6)}]})
    );
}

#[tokio::test]
async fn a_failed_archive_fails_the_messages_it_holds() {
    let w = Worker {
        config: WorkerConfig::default(),
        legacy_device: legacy(),
        table: mem(),
        archive: FailPrefix(mem(), "rejected/"),
        metrics: CapturedMetrics::default(),
    };
    let response = w.handle_sqs(sqs(), NOW).await.unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        [id(3), id(4), id(7)],
        "the rejected messages, to be archived on redelivery"
    );

    let w = Worker {
        config: WorkerConfig::default(),
        legacy_device: legacy(),
        table: mem(),
        archive: FailPrefix(mem(), "readings/"),
        metrics: CapturedMetrics::default(),
    };
    let response = w.handle_sqs(sqs(), NOW).await.unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, [id(1), id(2), id(5), id(6)]);
}

/// The binary reads its event straight into `WorkerEvent`: the same records as
/// `aws_lambda_events`' full SQS shape, and a clear error for an event that is no object.
#[test]
fn the_worker_event_reads_what_the_sqs_shape_holds() {
    let WorkerEvent::Sqs(lean) = serde_json::from_str(SQS).unwrap() else {
        panic!("an SQS event");
    };
    let full: Vec<SqsRecord> = sqs().records.into_iter().map(SqsRecord::from).collect();
    assert_eq!(lean, full);
    assert!(lean.iter().all(|r| r.sent_timestamp.is_some()));
    let err = serde_json::from_str::<WorkerEvent>("[1, 2]").unwrap_err();
    assert!(err.to_string().contains("a JSON object"), "{err}");
    let err = serde_json::from_str::<WorkerEvent>(r#"{"Records": 5}"#).unwrap_err();
    assert!(err.to_string().contains("sequence"), "{err}");
}

#[tokio::test]
async fn a_direct_invoke_is_one_message_named_by_the_request() {
    let w = worker();
    let event: WorkerEvent = serde_json::from_str(DIRECT).unwrap();
    assert!(matches!(event, WorkerEvent::Direct(_)));
    let response = w.handle_event(event, "req-1", NOW).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let rows = stored(&w.table);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].seq, rows[0].source_id.as_str(), rows[0].received_ms),
        (Some(3), "req-1", 1_764_230_402_150)
    );

    let failing = Worker {
        config: WorkerConfig::default(),
        legacy_device: legacy(),
        table: FailDevice(mem(), "d-0001"),
        archive: mem(),
        metrics: CapturedMetrics::default(),
    };
    let err = failing
        .handle_event(serde_json::from_str(DIRECT).unwrap(), "req-2", NOW)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("ProvisionedThroughputExceeded"),
        "{err}"
    );
    // A rejected direct message is not an error: a retry would reject it again.
    let bad = serde_json::json!({"payload": "e30=", "topic": "dt/monitoring/1/d-1/telemetry", "received_at": NOW});
    let bad: WorkerEvent = serde_json::from_value(bad).unwrap();
    assert!(worker().handle_event(bad, "req-3", NOW).await.is_ok());
}

/// An envelope from a rule that does not select `clientid()` names no publisher: its
/// reading is rejected (`device_not_publisher`) and archived, and the invoke succeeds (a
/// retry would only reject it again). The same envelope with the client id is stored.
#[tokio::test]
async fn an_envelope_without_a_client_id_is_rejected_not_failed() {
    let mut old_rule: Value = serde_json::from_str(DIRECT).unwrap();
    assert_eq!(old_rule["client_id"], "d-0001");
    old_rule.as_object_mut().unwrap().remove("client_id");
    let w = worker();
    w.handle_event(serde_json::from_value(old_rule).unwrap(), "req-old", NOW)
        .await
        .unwrap();
    assert!(stored(&w.table).is_empty());
    let objects = archive(&w.archive);
    let [rejected] = objects.as_slice() else {
        panic!("one rejected object: {objects:?}");
    };
    assert!(rejected.key.starts_with("rejected/"), "{}", rejected.key);
    let line: Value = serde_json::from_str(rejected.body.trim()).unwrap();
    assert_eq!(
        (line["source_id"].as_str(), line["code"].as_str()),
        (Some("req-old"), Some("device_not_publisher"))
    );

    let w = worker();
    w.handle_event(serde_json::from_str(DIRECT).unwrap(), "req-new", NOW)
        .await
        .unwrap();
    assert_eq!(stored(&w.table).len(), 1);
}

fn remediation<P: Publisher>(publisher: P, enabled: bool) -> Remediation<MemoryDecisions, P> {
    remediation_on(MemoryDecisions::default(), publisher, enabled)
}

fn remediation_on<D: DecisionTable, P: Publisher>(
    table: D,
    publisher: P,
    enabled: bool,
) -> Remediation<D, P> {
    Remediation {
        policy: PolicyConfig {
            enabled,
            ..PolicyConfig::default()
        },
        table,
        publisher,
        record_routine: false,
    }
}

fn stream() -> StreamEvent {
    serde_json::from_str(STREAM).unwrap()
}

#[tokio::test]
async fn new_readings_on_the_stream_become_decisions_and_commands() {
    let r = remediation(Recorder::new(Discard), true);
    let (response, report) = r.handle_event(stream(), NOW).await;
    assert!(response.batch_item_failures.is_empty());
    // INSERTs only: the MODIFY (a redelivery) and the REMOVE (TTL) are skipped.
    assert_eq!(report.decisions.len(), 4);
    let sent = r.publisher.sent();
    let topics: Vec<&str> = sent.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        [
            "monitoring-device/remediation-1",
            "cmd/monitoring/1/d-0001/remediation",
            "cmd/monitoring/2/d-0002/remediation"
        ]
    );
    let legacy: Value = serde_json::from_str(&sent[0].1).unwrap();
    assert_eq!(legacy["body"]["action"], "Remediate");
    let cool: Value = serde_json::from_str(&sent[1].1).unwrap();
    assert_eq!(
        (cool["action"].as_str(), cool["id"].as_str()),
        (Some("cool"), Some("d-0001-1764230400600-2-cool"))
    );
    let heat: Value = serde_json::from_str(&sent[2].1).unwrap();
    assert_eq!(heat["action"], "heat");

    // The in-band first reading of d-0001 is counted, not stored; the rest are.
    let recorded = r.table.decisions();
    let reasons: Vec<(&str, Reason)> = recorded
        .iter()
        .map(|(sk, d)| (sk.as_str(), d.reason))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.contains(&("1764230400600#0000000002", Reason::AboveBandRising)));
    let state = r
        .table
        .state(&DeviceId::try_from("d-0001").unwrap())
        .unwrap();
    assert_eq!(state.last.map(|l| l.seq), Some(Some(2)));
    assert!(state.active.is_some());

    // The same batch again (a retry): nothing new is sent or recorded.
    let (_, again) = r.handle_event(stream(), NOW + 1_000).await;
    assert!(again.published.is_empty());
    assert_eq!(
        again.recorded,
        0,
        "{:?}",
        again
            .decisions
            .iter()
            .map(|d| (d.device.to_string(), d.reason))
            .collect::<Vec<_>>()
    );
    assert!(again.decisions.iter().all(|d| d.reason.is_ignored()));
}

/// Fails publishes to one topic.
struct FailTopic(&'static str);

impl Publisher for FailTopic {
    async fn publish(&self, topic: &str, _payload: &[u8]) -> Result<(), StoreError> {
        if topic == self.0 {
            Err(StoreError::new("iot publish", "ThrottlingException"))
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn a_failed_publish_fails_that_devices_records_only() {
    let r = remediation(
        Recorder::new(FailTopic("cmd/monitoring/1/d-0001/remediation")),
        true,
    );
    let (response, _) = r.handle_event(stream(), NOW).await;
    let failed: Vec<Option<&str>> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_deref())
        .collect();
    assert_eq!(
        failed,
        [Some("100000000000000000001"), Some("100000000000000000002")]
    );
    assert_eq!(
        r.publisher.sent().len(),
        2,
        "the other devices' commands went out"
    );
    assert!(
        r.table
            .state(&DeviceId::try_from("d-0001").unwrap())
            .is_none(),
        "nothing recorded for the failed device"
    );
}

/// The in-memory table, failing one device's state read or its record, or answering for
/// only the first `answers` devices.
#[derive(Default)]
struct FlakyDecisions {
    inner: MemoryDecisions,
    read: Option<&'static str>,
    record: Option<&'static str>,
    answers: Option<usize>,
}

impl DecisionTable for FlakyDecisions {
    async fn device_states(&self, devices: &[DeviceId]) -> Vec<Result<DeviceState, StoreError>> {
        let mut states = self.inner.device_states(devices).await;
        for (d, s) in devices.iter().zip(&mut states) {
            if Some(d.as_str()) == self.read {
                *s = Err(StoreError::new(
                    "read device states",
                    "ProvisionedThroughputExceeded",
                ));
            }
        }
        states.truncate(self.answers.unwrap_or(usize::MAX));
        states
    }

    async fn record(&self, devices: &[DeviceRecords<'_>], now_ms: u64) -> Result<(), RowsFailed> {
        let (bad, good): (Vec<_>, Vec<_>) = devices
            .iter()
            .enumerate()
            .partition(|(_, d)| Some(d.device.as_str()) == self.record);
        let good: Vec<DeviceRecords<'_>> = good.into_iter().map(|(_, d)| d.clone()).collect();
        self.inner.record(&good, now_ms).await?;
        if bad.is_empty() {
            return Ok(());
        }
        Err(RowsFailed {
            failed: bad.into_iter().map(|(i, _)| i).collect(),
            source: StoreError::new("write items", "1 item(s) still unprocessed"),
        })
    }
}

fn failed_ids(response: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.as_deref())
        .collect()
}

#[tokio::test]
async fn an_unread_state_fails_that_devices_records_and_sends_nothing_for_it() {
    let table = FlakyDecisions {
        read: Some("d-0001"),
        ..FlakyDecisions::default()
    };
    let r = remediation_on(table, Recorder::new(Discard), true);
    let (response, report) = r.handle_event(stream(), NOW).await;
    assert_eq!(
        failed_ids(&response),
        ["100000000000000000001", "100000000000000000002"]
    );
    let topics: Vec<String> = r.publisher.sent().into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        topics,
        [
            "monitoring-device/remediation-1",
            "cmd/monitoring/2/d-0002/remediation"
        ]
    );
    assert!(r.table.inner.state(&"d-0001".try_into().unwrap()).is_none());
    assert!(r.table.inner.state(&"d-0002".try_into().unwrap()).is_some());
    assert_eq!(report.decisions.len(), 2, "the other devices were decided");
}

#[tokio::test]
async fn devices_a_table_gives_no_state_for_fail_instead_of_vanishing() {
    // Devices in key order: "381938912", "d-0001", "d-0002"; the table answers for one.
    let table = FlakyDecisions {
        answers: Some(1),
        ..FlakyDecisions::default()
    };
    let r = remediation_on(table, Recorder::new(Discard), true);
    let (response, report) = r.handle_event(stream(), NOW).await;
    assert_eq!(
        failed_ids(&response),
        [
            "100000000000000000001",
            "100000000000000000002",
            "100000000000000000004"
        ]
    );
    let topics: Vec<String> = r.publisher.sent().into_iter().map(|(t, _)| t).collect();
    assert_eq!(topics, ["monitoring-device/remediation-1"]);
    assert_eq!(report.decisions.len(), 1);
}

#[tokio::test]
async fn an_unrecorded_device_fails_its_records_after_its_commands_went_out() {
    let table = FlakyDecisions {
        record: Some("d-0002"),
        ..FlakyDecisions::default()
    };
    let r = remediation_on(table, Recorder::new(Discard), true);
    let (response, report) = r.handle_event(stream(), NOW).await;
    assert_eq!(failed_ids(&response), ["100000000000000000004"]);
    // Its command left (and is reported); redelivery sends it again with the same id.
    assert!(
        report
            .published
            .iter()
            .any(|p| p.topic.to_string() == "cmd/monitoring/2/d-0002/remediation")
    );
    assert!(r.table.inner.state(&"d-0002".try_into().unwrap()).is_none());
    assert!(r.table.inner.state(&"d-0001".try_into().unwrap()).is_some());
    assert_eq!(
        report.recorded, 2,
        "d-0001's cool and the legacy device's remediate"
    );
}

#[tokio::test]
async fn remediation_logic_off_decides_and_records_but_publishes_nothing() {
    let r = remediation(Recorder::new(Discard), false);
    let (_, report) = r.handle_event(stream(), NOW).await;
    assert!(r.publisher.sent().is_empty());
    assert!(
        report
            .decisions
            .iter()
            .all(|d| d.reason == Reason::Disabled)
    );
    assert_eq!(r.table.decisions().len(), 4);
}

#[tokio::test]
async fn the_notifier_forwards_alarm_changes_and_rejects_other_messages() {
    let n = Notifier {
        topic: "dt/monitoring/alarms".into(),
        publisher: Recorder::new(Discard),
    };
    let event: SnsEvent = serde_json::from_str(SNS).unwrap();
    let report = n.handle(event).await.unwrap();
    assert_eq!(report.rejected, 1);
    let sent = n.publisher.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "dt/monitoring/alarms");
    let notice = AlarmNotice::from_json(sent[0].1.as_bytes()).unwrap();
    assert_eq!(notice.alarm, "fleet-d-0001-temperature-high");
    assert_eq!(
        (notice.kind, notice.state, notice.previous),
        (
            AlarmKind::TemperatureHigh,
            AlarmState::Alarm,
            AlarmState::Ok
        )
    );
    assert_eq!(
        notice.device.map(|d| d.to_string()).as_deref(),
        Some("d-0001")
    );
    assert_eq!(
        (notice.value, notice.threshold, notice.at_ms),
        (28.4, 28.0, 1_764_230_460_123)
    );
}

/// What the cloud path (worker → table → stream → remediation) and the local stack's
/// in-process pipeline sent for the same SQS event, sorted, with their decision counts.
struct Parity {
    cloud: Vec<(String, String)>,
    local: Vec<(String, String)>,
    cloud_decisions: usize,
    local_decisions: usize,
}

async fn cloud_and_local(event: SqsEvent, rows: fn(&SharedStore) -> Vec<ReadingRow>) -> Parity {
    let messages: Vec<Message> = event
        .records
        .iter()
        .map(|r| {
            Message::from_body(
                r.message_id.clone().unwrap(),
                r.body.as_deref().unwrap().as_bytes(),
                NOW,
                &legacy(),
            )
        })
        .collect();
    let incoming: Vec<_> = messages.iter().map(Message::incoming).collect();
    let mut pipeline = Pipeline::new(PipelineConfig::default()).unwrap();
    let mut local = MemoryStore::new();
    let outcome = pipeline.ingest(&mut local, &incoming, NOW).unwrap();

    let w = worker();
    w.handle_sqs(event, NOW).await.unwrap();
    // The stream delivers each new item in write order.
    let new_items: Vec<StreamReading> = rows(&w.table)
        .into_iter()
        .map(|row| StreamReading {
            sequence_number: Some(row.sort_key.clone()),
            row,
        })
        .collect();
    let r = remediation(Recorder::new(Discard), true);
    let report = r.handle(new_items, NOW).await;
    let mut cloud: Vec<(String, String)> = r.publisher.sent();
    let mut here: Vec<(String, String)> = outcome
        .commands
        .iter()
        .map(|c| (c.topic.to_string(), c.payload.clone()))
        .collect();
    cloud.sort();
    here.sort();
    Parity {
        cloud,
        local: here,
        cloud_decisions: report.decisions.len(),
        local_decisions: outcome.decisions.len(),
    }
}

/// The cloud path sends the same commands as the local stack for the same messages.
#[tokio::test]
async fn the_lambdas_send_what_the_local_pipeline_sends() {
    let p = cloud_and_local(sqs(), stored).await;
    assert!(
        !p.local.is_empty(),
        "the fixture's readings lead to commands"
    );
    assert_eq!(p.cloud, p.local);
    assert_eq!(p.cloud_decisions, p.local_decisions);
    assert_eq!(readings(stream()).len(), 4);
}

fn batched_id(n: u32) -> String {
    format!("7b2d0c1e-{n:04}-4a8e-9d2b-{n:012}")
}

fn all_rows(store: &SharedStore) -> Vec<ReadingRow> {
    rows_of(
        store,
        &["d-0001", "d-0002", "d-0003", "d-0004", "381938912"],
    )
}

#[tokio::test]
async fn records_carrying_batches_store_every_good_reading() {
    let w = worker();
    let event: SqsEvent = serde_json::from_str(SQS_BATCHED).unwrap();
    let response = w.handle_sqs(event, NOW).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let rows = all_rows(&w.table);
    let per_message = |n: u32| rows.iter().filter(|r| r.source_id == batched_id(n)).count();
    assert_eq!(
        (per_message(1), per_message(2), per_message(3)),
        (10, 4, 1),
        "every good element is a row naming its record"
    );
    assert_eq!(rows.len(), 15);
    let d2: BTreeSet<Option<u64>> = rows
        .iter()
        .filter(|r| r.device.as_str() == "d-0002")
        .map(|r| r.seq)
        .collect();
    assert_eq!(d2, BTreeSet::from([Some(1), Some(2), Some(4), Some(5)]));

    // One readings object for the whole invoke, one rejected object.
    let objects = archive(&w.archive);
    assert_eq!(objects.len(), 2);
    let readings = objects
        .iter()
        .find(|o| o.key.starts_with("readings/"))
        .unwrap();
    assert_eq!(readings.body.lines().count(), 15);
    let rejected = objects
        .iter()
        .find(|o| o.key.starts_with("rejected/"))
        .unwrap();
    let lines: Vec<Value> = rejected
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(String, Value, String)> = lines
        .iter()
        .map(|l| {
            (
                l["source_id"].as_str().unwrap().to_owned(),
                l["element"].clone(),
                l["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                batched_id(2),
                Value::from(2),
                "temperature_out_of_range".to_owned()
            ),
            (batched_id(4), Value::Null, "batch_not_allowed".to_owned()),
            (batched_id(5), Value::Null, "batch_empty".to_owned()),
        ]
    );
    assert!(lines[0]["raw"].as_str().unwrap().contains("298.5"));

    let emf: Vec<Value> = w
        .metrics
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let total = |metric: &str| emf.iter().filter_map(|v| v[metric].as_u64()).sum::<u64>();
    assert_eq!((total("Readings"), total("Rejected")), (15, 3));
}

/// Fails the rows of one reading (device and seq), as a throttled item would.
struct FailReading<T>(T, &'static str, u64);

impl<T: ReadingTable> ReadingTable for FailReading<T> {
    async fn put_rows(&self, rows: &[ReadingRow]) -> Result<(), RowsFailed> {
        let bad = |r: &ReadingRow| r.device.as_str() == self.1 && r.seq == Some(self.2);
        let good: Vec<ReadingRow> = rows.iter().filter(|r| !bad(r)).cloned().collect();
        self.0.put_rows(&good).await?;
        let failed: BTreeSet<usize> = (0..rows.len()).filter(|&i| bad(&rows[i])).collect();
        if failed.is_empty() {
            return Ok(());
        }
        Err(RowsFailed {
            failed,
            source: StoreError::new("write items", "ProvisionedThroughputExceededException"),
        })
    }
}

#[tokio::test]
async fn one_failed_row_of_a_batch_fails_its_record_and_no_neighbour() {
    let w = Worker {
        config: WorkerConfig::default(),
        legacy_device: legacy(),
        table: FailReading(mem(), "d-0001", 7),
        archive: mem(),
        metrics: CapturedMetrics::default(),
    };
    let event: SqsEvent = serde_json::from_str(SQS_BATCHED).unwrap();
    let response = w.handle_sqs(event, NOW).await.unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, [batched_id(1)], "the record holding seq 7, once");
    // Its other nine rows were written (a redelivery rewrites them, idempotently); the
    // neighbours' rows are all there.
    assert_eq!(all_rows(&w.table.0).len(), 14);

    // The redelivery of that record alone, once the table accepts it, completes it.
    let retry = worker();
    let mut event: SqsEvent = serde_json::from_str(SQS_BATCHED).unwrap();
    event.records.truncate(1);
    let response = retry.handle_sqs(event, NOW + 1_000).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(all_rows(&retry.table).len(), 10);
}

#[tokio::test]
async fn a_direct_invoke_may_carry_a_batch() {
    let w = worker();
    let event: WorkerEvent = serde_json::from_str(DIRECT_BATCH).unwrap();
    w.handle_event(event, "req-b", NOW).await.unwrap();
    let rows = all_rows(&w.table);
    let seqs: Vec<Option<u64>> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [Some(20), Some(21), Some(22)]);
    assert!(rows.iter().all(|r| r.source_id == "req-b"));

    // A failed row fails the invoke, so Lambda retries the whole envelope.
    let failing = Worker {
        config: WorkerConfig::default(),
        legacy_device: legacy(),
        table: FailReading(mem(), "d-0001", 21),
        archive: mem(),
        metrics: CapturedMetrics::default(),
    };
    let err = failing
        .handle_event(serde_json::from_str(DIRECT_BATCH).unwrap(), "req-c", NOW)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1 message(s)"), "{err}");
}

/// Batched and single records give the cloud path the same commands as the local pipeline.
#[tokio::test]
async fn batched_records_send_what_the_local_pipeline_sends() {
    let event: SqsEvent = serde_json::from_str(SQS_BATCHED).unwrap();
    let p = cloud_and_local(event, all_rows).await;
    assert!(
        !p.local.is_empty(),
        "d-0001 crosses the band inside its batch"
    );
    assert_eq!(p.cloud, p.local);
    assert_eq!(p.cloud_decisions, 15);
    assert_eq!(p.local_decisions, 15);
}

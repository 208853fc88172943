//! The AWS adapters with the real SDK against `moto_server` on 127.0.0.1: the archive
//! object, the table items, the stream → decisions → commands path, partial batch failures
//! named exactly, and the API calls each path makes (kept for `docs/cost.md`).
//!
//! The test starts moto itself on a free port and stops it when done. moto comes from
//! `scripts/setup.sh aws` (`$HOME/.cache/fleet/venv/bin/moto_server`) or PATH; without it
//! the test fails, saying so.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

use std::collections::{BTreeMap, HashMap};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::Region;
use aws_credential_types::Credentials;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use fleet_core::{
    DeviceId, PolicyConfig, Telemetry, Topic, WorkerConfig, encode_telemetry,
    encode_telemetry_batch,
};
use fleet_lambdas::aws::calls::CallCounter;
use fleet_lambdas::aws::dynamodb::{
    BatchWriter, DynamoDecisions, DynamoReadings, Item, row_from_item,
};
use fleet_lambdas::aws::iot::IotPublisher;
use fleet_lambdas::aws::s3::S3Archive;
use fleet_lambdas::aws::{self, SdkConfig};
use fleet_lambdas::config::WorkerSettings;
use fleet_lambdas::envelope::Envelope;
use fleet_lambdas::memory::{CapturedMetrics, Discard, Recorder};
use fleet_lambdas::notifier::Notifier;
use fleet_lambdas::remediation::Remediation;
use fleet_lambdas::worker::Worker;
use serde_json::{Value, json};

const SQS: &str = include_str!("fixtures/sqs_batch.json");
const NOW: u64 = 1_764_230_401_000;
const READINGS: &str = "fleet-readings";
const DECISIONS: &str = "fleet-decisions";
const BUCKET: &str = "fleet-archive";

/// A moto server, killed when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let venv = home.map(|h| h.join(".cache/fleet/venv/bin/moto_server"));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("moto_server"));
    venv.into_iter().chain(on_path).find(|p| p.is_file())
}

fn start_moto() -> Moto {
    let Some(bin) = moto_binary() else {
        panic!(
            "moto_server not found on PATH or at ~/.cache/fleet/venv/bin/moto_server: \
             install it with `scripts/setup.sh aws` (pip: 'moto[server]>=5,<6')"
        );
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    moto
}

async fn sdk(moto: &Moto) -> SdkConfig {
    aws::loader(aws::TrustRoots::Amazon)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .endpoint_url(&moto.url)
        .load()
        .await
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("device"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("device", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn scan(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// An SDK item as a stream image (DynamoDB JSON).
fn image(item: &Item) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let map: serde_json::Map<String, Value> = item
        .iter()
        .map(|(k, v)| {
            let v = match v {
                A::S(s) => json!({ "S": s }),
                A::N(n) => json!({ "N": n }),
                A::Bool(b) => json!({ "BOOL": b }),
                other => panic!("unexpected attribute {other:?}"),
            };
            (k.clone(), v)
        })
        .collect();
    Value::Object(map)
}

/// The stream event the table's items would give as INSERTs, per device in key order (the
/// order the stream keeps per partition key).
fn insert_event(mut items: Vec<Item>) -> StreamEvent {
    let key = |i: &Item| {
        let r = row_from_item(i).unwrap();
        (r.device.to_string(), r.sort_key)
    };
    items.sort_by_key(key);
    let records: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            json!({
                "eventID": format!("e{n}"), "eventName": "INSERT", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1764230401.0,
                    "Keys": { "device": image(item)["device"], "sk": image(item)["sk"] },
                    "NewImage": image(item),
                    "SequenceNumber": format!("{:021}", n + 1),
                    "SizeBytes": 200, "StreamViewType": "NEW_AND_OLD_IMAGES"
                },
                "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{READINGS}/stream/x")
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

struct Stack {
    _moto: Moto,
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    counter: CallCounter,
    worker: Worker<DynamoReadings, S3Archive, CapturedMetrics>,
    remediation: Remediation<DynamoDecisions, Recorder<IotPublisher>>,
}

async fn stack() -> Stack {
    let moto = start_moto();
    let config = sdk(&moto).await;
    let dynamodb = aws::dynamodb_client(&config, None);
    let s3 = aws::s3_client(&config, None);
    create_table(&dynamodb, READINGS).await;
    create_table(&dynamodb, DECISIONS).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let counter = CallCounter::new();
    let counted = aws::dynamodb_client(&config, Some(&counter));
    let worker = Worker {
        config: WorkerConfig::default(),
        legacy_device: DeviceId::try_from("381938912").unwrap(),
        table: DynamoReadings {
            writer: BatchWriter::new(counted.clone(), READINGS),
        },
        archive: S3Archive {
            client: aws::s3_client(&config, Some(&counter)),
            bucket: BUCKET.into(),
        },
        metrics: CapturedMetrics::default(),
    };
    let remediation = Remediation {
        policy: PolicyConfig::default(),
        table: DynamoDecisions {
            writer: BatchWriter::new(counted, DECISIONS),
        },
        publisher: Recorder::new(IotPublisher {
            client: aws::iot_client(&config, &moto.url, Some(&counter)),
        }),
        record_routine: false,
    };
    Stack {
        _moto: moto,
        dynamodb,
        s3,
        counter,
        worker,
        remediation,
    }
}

fn failures(ids: &[aws_lambda_events::event::sqs::BatchItemFailure]) -> Vec<&str> {
    ids.iter().map(|f| f.item_identifier.as_str()).collect()
}

/// The stream records remediation asks to redeliver, in sequence order.
fn stream_failures(response: &DynamoDbEventResponse) -> Vec<&str> {
    let mut ids: Vec<&str> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.as_deref())
        .collect();
    ids.sort_unstable();
    ids
}

/// A string attribute of an item.
fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The sequence numbers of `device`'s records in a stream event.
fn sequence_numbers(event: &StreamEvent, device: &str) -> Vec<String> {
    event
        .records
        .iter()
        .filter(|r| {
            fleet_lambdas::remediation::row_from_image(r.change.new_image.clone())
                .is_ok_and(|row| row.device.as_str() == device)
        })
        .filter_map(|r| r.change.sequence_number.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapters_store_archive_decide_and_publish_on_moto() {
    let s = stack().await;

    // Worker: the fixture batch, plus a record whose key DynamoDB refuses (a legacy
    // reading's sort key carries its message id; over 1024 bytes is invalid).
    let mut event: SqsEvent = serde_json::from_str(SQS).unwrap();
    let mut bad = event.records[4].clone();
    let long_id = "x".repeat(1100);
    bad.message_id = Some(long_id.clone());
    event.records.push(bad);
    let response = s.worker.handle_sqs(event, NOW).await.unwrap();
    assert_eq!(
        failures(&response.batch_item_failures),
        [long_id.as_str()],
        "exactly the refused record"
    );
    let worker_calls = s.counter.counts();
    s.counter.reset();

    // The archive: one readings object and one rejected object, NDJSON.
    let listed = s.s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let key = keys.iter().find(|k| k.starts_with("readings/")).unwrap();
    assert!(
        key.starts_with("readings/dt=2025-11-27/hour=08/1764230400150-")
            && key.ends_with(".ndjson"),
        "{key}"
    );
    let object =
        s.s3.get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
    assert_eq!(object.content_type(), Some("application/x-ndjson"));
    let body = String::from_utf8(object.body.collect().await.unwrap().to_vec()).unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{body}");
    assert_eq!(
        (lines[0]["device"].as_str(), lines[0]["seq"].as_u64()),
        (Some("d-0001"), Some(1))
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("rejected/dt=2025-11-27/hour=08/"))
    );

    // The table: both readings of d-0001 in the same second, with their keys and TTL.
    let items = scan(&s.dynamodb, READINGS).await;
    assert_eq!(items.len(), 4);
    let rows: Vec<_> = items.iter().map(|i| row_from_item(i).unwrap()).collect();
    let mut d1: Vec<&str> = rows
        .iter()
        .filter(|r| r.device.as_str() == "d-0001")
        .map(|r| r.sort_key.as_str())
        .collect();
    d1.sort_unstable();
    assert_eq!(d1, ["1764230400100#0000000001", "1764230400600#0000000002"]);
    assert!(rows.iter().all(|r| r.ttl == r.received_ms / 1000 + 86_400));

    // Remediation: the stream's INSERTs → decisions, states and commands.
    let (response, report) = s.remediation.handle_event(insert_event(items), NOW).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(report.decisions.len(), 4);
    let sent = s.remediation.publisher.sent();
    let topics: Vec<&str> = sent.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics.len(), 3, "{topics:?}");
    assert!(topics.contains(&"cmd/monitoring/1/d-0001/remediation"));
    assert!(topics.contains(&"monitoring-device/remediation-1"));
    let decisions = scan(&s.dynamodb, DECISIONS).await;
    let cool = decisions
        .iter()
        .find(|i| attr(i, "sk") == Some("d#1764230400600#0000000002"))
        .expect("the cool decision");
    assert_eq!(attr(cool, "reason"), Some("above_band_rising"));
    assert_eq!(attr(cool, "action"), Some("cool"));
    assert_eq!(
        decisions
            .iter()
            .filter(|i| attr(i, "sk") == Some("state"))
            .count(),
        3,
        "one state item per device"
    );
    let remediation_calls = s.counter.counts();
    // The batch's three devices cost one state read and two write calls (the decisions,
    // then the states held back behind them), not some each.
    assert_eq!(remediation_calls.get("DynamoDB.BatchGetItem"), Some(&1));
    assert_eq!(remediation_calls.get("DynamoDB.GetItem"), None);
    assert_eq!(remediation_calls.get("DynamoDB.BatchWriteItem"), Some(&2));
    assert_eq!(
        s.counter.items().get("DynamoDB.BatchWriteItem"),
        Some(&(report.recorded as u64 + 3)),
        "the recorded decisions and one state item per device"
    );

    eprintln!(
        "API calls, fixture batch: worker {worker_calls:?}, remediation {remediation_calls:?}"
    );
    // The refused record's chunk was written item by item.
    assert!(worker_calls.contains_key("DynamoDB.PutItem"));
    assert_granted("worker", &worker_calls);
    assert_granted("remediation", &remediation_calls);
    assert_eq!(worker_calls.get("S3.PutObject"), Some(&2));
}

/// A counted call (`DynamoDB.BatchWriteItem`) as its IAM action (`dynamodb:BatchWriteItem`).
fn iam_action(call: &str) -> String {
    let (service, operation) = call.split_once('.').unwrap();
    let prefix = match service {
        "DynamoDB" => "dynamodb",
        "S3" => "s3",
        "IoT Data Plane" => "iot",
        other => panic!("no IAM prefix known for {other}"),
    };
    format!("{prefix}:{operation}")
}

/// Every call `function` made is an action `lambdas/iam.json` lists for it (and so, by
/// `scripts/template-lint.sh`, one its role in the template grants).
fn assert_granted(function: &str, calls: &BTreeMap<String, u64>) {
    let listed: Value = serde_json::from_str(include_str!("../iam.json")).unwrap();
    let listed: Vec<&str> = listed[function]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(!calls.is_empty());
    for call in calls.keys() {
        let action = iam_action(call);
        assert!(
            listed.contains(&action.as_str()),
            "{function} calls {action}, which lambdas/iam.json (and its role) does not grant"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifier_publishes_alarms_on_moto() {
    let moto = start_moto();
    let config = sdk(&moto).await;
    let counter = CallCounter::new();
    let notifier = Notifier {
        topic: "dt/monitoring/alarms".into(),
        publisher: Recorder::new(IotPublisher {
            client: aws::iot_client(&config, &moto.url, Some(&counter)),
        }),
    };
    let event: SnsEvent =
        serde_json::from_str(include_str!("fixtures/sns_cloudwatch_alarm.json")).unwrap();
    let report = notifier.handle(event).await.unwrap();
    assert_eq!(report.published.len(), 1);
    let sent = notifier.publisher.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "dt/monitoring/alarms");
    assert_eq!(counter.counts().get("IoT Data Plane.Publish"), Some(&1));
    assert_granted("notifier", &counter.counts());
}

/// The batch's states come from one `BatchGetItem`: a device whose stored state is
/// unreadable fails alone (nothing sent for it), and a table that cannot be read fails
/// every device, with nothing sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_states_fail_their_devices_on_moto() {
    let s = stack().await;
    let event: SqsEvent = serde_json::from_str(SQS).unwrap();
    s.worker.handle_sqs(event, NOW).await.unwrap();
    let items = scan(&s.dynamodb, READINGS).await;
    let bad_state = HashMap::from([
        ("device".to_owned(), AttributeValue::S("d-0002".into())),
        ("sk".to_owned(), AttributeValue::S("state".into())),
        ("state".to_owned(), AttributeValue::S("not json".into())),
    ]);
    s.dynamodb
        .put_item()
        .table_name(DECISIONS)
        .set_item(Some(bad_state))
        .send()
        .await
        .unwrap();
    let event = insert_event(items.clone());
    let d2 = sequence_numbers(&event, "d-0002");
    assert_eq!(d2.len(), 1);
    s.counter.reset();
    let (response, report) = s.remediation.handle_event(event, NOW).await;
    assert_eq!(stream_failures(&response), [d2[0].as_str()]);
    assert!(
        report
            .published
            .iter()
            .all(|p| !p.topic.to_string().contains("d-0002"))
    );
    assert_eq!(s.counter.counts().get("DynamoDB.BatchGetItem"), Some(&1));
    let states = scan(&s.dynamodb, DECISIONS).await;
    let state_of = |device: &str| {
        states
            .iter()
            .find(|i| attr(i, "device") == Some(device) && attr(i, "sk") == Some("state"))
            .and_then(|i| attr(i, "state"))
    };
    assert_eq!(state_of("d-0002"), Some("not json"), "left for a person");
    assert!(state_of("d-0001").is_some_and(|j| j.contains("\"active\"")));

    // No such table: every device fails, nothing is sent.
    let missing = Remediation {
        policy: PolicyConfig::default(),
        table: DynamoDecisions {
            writer: BatchWriter::new(s.dynamodb.clone(), "no-such-table"),
        },
        publisher: Recorder::new(Discard),
        record_routine: false,
    };
    let event = insert_event(items);
    let records = event.records.len();
    let (response, report) = missing.handle_event(event, NOW).await;
    assert_eq!(response.batch_item_failures.len(), records);
    assert!(report.published.is_empty() && missing.publisher.sent().is_empty());
}

/// A device's state is written only after its decisions: when a decision item is refused
/// (here its key is over DynamoDB's 1024 bytes), the device fails, its state stays unwritten
/// (a redelivery decides again instead of skipping its readings as seen), and the other
/// devices are recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_never_lands_before_its_decisions_on_moto() {
    let s = stack().await;
    let event: SqsEvent = serde_json::from_str(SQS).unwrap();
    s.worker.handle_sqs(event, NOW).await.unwrap();
    let mut items = scan(&s.dynamodb, READINGS).await;
    // d-0001's second reading, whose decision (cool) is kept: give it a key its decision
    // item cannot have.
    let long_sk = format!("1764230400600#{}", "9".repeat(1100));
    let cooled = items
        .iter_mut()
        .find(|i| attr(i, "sk") == Some("1764230400600#0000000002"))
        .expect("d-0001's second reading");
    cooled.insert("sk".to_owned(), AttributeValue::S(long_sk));
    let event = insert_event(items);
    let d1 = sequence_numbers(&event, "d-0001");
    let (response, report) = s.remediation.handle_event(event, NOW).await;
    assert_eq!(stream_failures(&response), d1);
    // Its command went out before recording (a redelivery sends it again, same id).
    assert!(
        report
            .published
            .iter()
            .any(|p| p.topic.to_string() == "cmd/monitoring/1/d-0001/remediation")
    );
    let decisions = scan(&s.dynamodb, DECISIONS).await;
    let states: Vec<&str> = decisions
        .iter()
        .filter(|i| attr(i, "sk") == Some("state"))
        .filter_map(|i| attr(i, "device"))
        .collect();
    assert!(!states.contains(&"d-0001"), "{states:?}");
    assert!(
        states.contains(&"d-0002") && states.contains(&"381938912"),
        "{states:?}"
    );
}

/// What one scenario of [`api_calls_per_thousand_readings`] came to.
struct Calls {
    summary: Value,
    worker: BTreeMap<String, u64>,
    remediation: BTreeMap<String, u64>,
    /// The items the remediation's DynamoDB calls carried (keys read, items written).
    remediation_items: BTreeMap<String, u64>,
    /// The items the worker's DynamoDB calls wrote.
    worker_items: BTreeMap<String, u64>,
}

/// 1,000 readings from 10 devices (100 each, a sine around 27 °C that crosses the band's
/// edges now and then) as one SQS batch of records of `per_message` readings each (1: one
/// reading per record; more: a JSON array per record), then their stream records, on a
/// fresh moto. Checks every reading is a row and the batch is one archive object.
async fn calls_for(per_message: u64) -> Calls {
    const N: u64 = 1_000;
    const DEVICES: u64 = 10;
    let s = stack().await;
    let t0 = 1_764_230_400_000;
    let reading = |device: u64, seq: u64| {
        let id = format!("d-{:04}", device + 1);
        let ts = t0 + seq * 2_000;
        let temperature = 27.0 + 1.6 * ((seq as f64) / 8.0 + device as f64).sin();
        Telemetry::current(
            id.as_str().try_into().unwrap(),
            "1".try_into().unwrap(),
            seq,
            ts,
            (temperature * 100.0).round() / 100.0,
            55.0,
        )
    };
    // Records in time order, devices interleaved, as the rule would queue them.
    let per_device = N / DEVICES;
    let mut records = Vec::new();
    for first in (0..per_device).step_by(per_message as usize) {
        for device in 0..DEVICES {
            let readings: Vec<Telemetry> = (first..(first + per_message).min(per_device))
                .map(|seq| reading(device, seq))
                .collect();
            let last = readings.last().unwrap();
            let payload = if per_message == 1 {
                encode_telemetry(last)
            } else {
                encode_telemetry_batch(&readings)
            };
            let topic = Topic::telemetry(last.building.clone().unwrap(), last.device.clone());
            records.push(json!({
                "messageId": format!("m-{:06}", records.len()),
                "body": Envelope::encode(&topic.to_string(), last.device.as_str(), payload.as_bytes(), last.ts.unwrap() + 30),
                "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fleet-ingest", "awsRegion": "us-east-1"
            }));
        }
    }
    let messages = records.len();
    assert_eq!(messages as u64, N / per_message);
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    let response = s.worker.handle_sqs(event, t0 + 200_000).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let worker = s.counter.counts();
    let worker_items = s.counter.items();
    s.counter.reset();

    let listed = s.s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert_eq!(listed.contents().len(), 1, "one archive object per batch");
    let items = scan(&s.dynamodb, READINGS).await;
    assert_eq!(items.len() as u64, N, "every reading is a row");
    // The stream as Lambda would batch it: 100 records per invoke.
    let mut event = insert_event(items);
    let mut commands = 0;
    let mut recorded = 0;
    let mut invokes = 0;
    let mut device_invokes = 0;
    while !event.records.is_empty() {
        let rest = event.records.split_off(event.records.len().min(100));
        device_invokes += fleet_lambdas::remediation::readings(event.clone())
            .iter()
            .map(|r| r.row.device.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let (response, report) = s
            .remediation
            .handle_event(event, t0 + 200_000 + invokes * 1_000)
            .await;
        assert!(response.batch_item_failures.is_empty());
        commands += report.published.len();
        recorded += report.recorded;
        invokes += 1;
        event = StreamEvent::default();
        event.records = rest;
    }
    let remediation = s.counter.counts();
    let remediation_items = s.counter.items();
    let summary = json!({
        "readings": N,
        "messages": messages,
        "readings_per_message": per_message,
        "worker_invokes": 1,
        "worker_calls": worker,
        "remediation_invokes": invokes,
        "remediation_device_invokes": device_invokes,
        "remediation_calls": remediation,
        "remediation_items": remediation_items,
        "commands": commands,
        "decisions_recorded": recorded,
    });
    Calls {
        summary,
        worker,
        remediation,
        remediation_items,
        worker_items,
    }
}

/// The calls each path makes per 1,000 readings, one reading per message and 10 per
/// message, written to `$CARGO_TARGET_TMPDIR/lambda-api-calls.json` for the cost table (the
/// batched scenario under `batched`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_per_thousand_readings() {
    let single = calls_for(1).await;
    assert_eq!(
        single.worker.get("S3.PutObject"),
        Some(&1),
        "one archive object per batch"
    );
    assert_eq!(
        single.worker.get("DynamoDB.BatchWriteItem"),
        Some(&40),
        "25 rows per call"
    );
    // Batching cuts the per-message costs (IoT, rule, SQS), not the per-reading ones: the
    // Lambdas make the same calls for the same readings.
    let batched = calls_for(10).await;
    assert_eq!(batched.summary["messages"], 100);
    assert_eq!(batched.worker, single.worker);
    assert_eq!(batched.remediation, single.remediation);
    assert_eq!(batched.summary["commands"], single.summary["commands"]);

    let costs = cost_tables(&single);
    let mut summary = single.summary;
    summary["batched"] = batched.summary;
    eprintln!("API calls per 1,000 readings: {summary:#}");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(dir.join("lambda-api-calls.json"), format!("{summary:#}\n")).unwrap();
    eprintln!("{costs}");
    std::fs::write(dir.join("lambda-cost.md"), costs).unwrap();
}

/// The cost tables of `docs/cost.md`: the model of `fleet_lambdas::cost` fed with what this
/// scenario counted. Checks the template's recommended set-up (Basic Ingest, devices
/// sending 10 readings per message) stays within the $1.5 per million target, so a change
/// that adds calls per reading shows here.
fn cost_tables(calls: &Calls) -> String {
    use fleet_lambdas::cost::{
        Measured, Prices, Workload, fleet_per_million, markdown, original_per_million, total,
    };
    let count = |map: &BTreeMap<String, u64>, call: &str| *map.get(call).unwrap_or(&0) as f64;
    let s = &calls.summary;
    let number = |key: &str| s[key].as_f64().unwrap();
    let device_invokes = number("remediation_device_invokes");
    // A batch's states are read in one call and written with its decisions.
    assert_eq!(
        count(&calls.remediation, "DynamoDB.BatchGetItem"),
        number("remediation_invokes")
    );
    let written = count(&calls.remediation_items, "DynamoDB.BatchWriteItem");
    let measured = Measured {
        objects_per_worker_invoke: count(&calls.worker, "S3.PutObject") / number("worker_invokes"),
        items_per_reading: count(&calls.worker_items, "DynamoDB.BatchWriteItem")
            / number("readings"),
        state_reads_per_device_invoke: count(&calls.remediation_items, "DynamoDB.BatchGetItem")
            / device_invokes,
        state_writes_per_device_invoke: (written - number("decisions_recorded")) / device_invokes,
        publishes_per_command: count(&calls.remediation, "IoT Data Plane.Publish")
            / number("commands"),
    };
    let prices = Prices::US_EAST_1;
    let mut out = String::new();
    let mut totals = Vec::new();
    for (title, n, basic) in [
        ("one reading per message, through the broker", 1.0, false),
        ("one reading per message, Basic Ingest", 1.0, true),
        (
            "10 readings per message, Basic Ingest (recommended)",
            10.0,
            true,
        ),
        ("40 readings per message, Basic Ingest", 40.0, true),
    ] {
        let lines = fleet_per_million(&prices, &Workload::fleet(n, basic), &measured);
        totals.push(total(&lines));
        out.push_str(&markdown(&format!("Fleet: {title}"), &lines));
        out.push('\n');
    }
    let original = original_per_million(&prices);
    out.push_str(&markdown("The original design", &original));
    assert!(
        totals[2] <= 1.5,
        "recommended set-up: ${:.2} per million",
        totals[2]
    );
    assert!(totals.windows(2).all(|w| w[1] <= w[0]), "{totals:?}");
    assert!(total(&original) > 10.0 * totals[2]);
    out
}

/// A Cognito guest's client id (`{identity id}.{suffix}`, as the guest role allows) and the
/// namespace of its devices (`g` and the identity's uuid, `fleet_core::Namespace`).
const GUEST: &str = "eu-west-1:7d7c5d4e-0a1b-4c2d-8e3f-1234567890ab.gw0";
const GUEST_DEVICE: &str = "g7d7c5d4e0a1b4c2d8e3f1234567890ab-0001";

/// An SQS record of the rule's envelope: `payload` published by `client_id` (`None`: an
/// envelope from a rule that did not select `clientid()`) on `topic`, arriving at `at`.
fn record(n: usize, topic: &str, client_id: Option<&str>, payload: &str, at: u64) -> Value {
    use base64::Engine;
    let mut envelope = json!({
        "payload": base64::engine::general_purpose::STANDARD.encode(payload),
        "topic": topic,
        "received_at": at,
    });
    if let Some(c) = client_id {
        envelope["client_id"] = Value::from(c);
        // The envelope the rule makes is the one the tests and the bench encode.
        assert_eq!(
            envelope,
            serde_json::from_str::<Value>(&Envelope::encode(topic, c, payload.as_bytes(), at))
                .unwrap()
        );
    }
    json!({
        "messageId": format!("p-{n:02}"), "body": envelope.to_string(),
        "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fleet-ingest", "awsRegion": "us-east-1"
    })
}

fn reading(device: &str, building: &str, seq: u64, ts: u64) -> String {
    encode_telemetry(&Telemetry::current(
        device.try_into().unwrap(),
        building.try_into().unwrap(),
        seq,
        ts,
        27.0,
        55.0,
    ))
}

/// Only a device speaks for itself (ARCHITECTURE §4.8), through the real SDK on moto and the
/// worker built from its environment as the binary builds it: the rule's `clientid()` names
/// the publisher, and a reading of any other device is rejected (`device_not_publisher`),
/// as is one stamped more than 5 minutes ahead (`ts_out_of_range`). Rejections are
/// acknowledged, archived under `rejected/` and counted in the `Rejected` metric like any
/// other; the right publishers' readings in the same batch are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_device_speaks_for_itself_on_moto() {
    let s = stack().await;
    // As `src/bin/worker.rs`: LEGACY_DEVICE_ID unset (the original device, 381938912);
    // METRIC_BUILDINGS without the browser building, which is then counted as `other`.
    let vars = HashMap::from([
        ("READINGS_TABLE", READINGS),
        ("ARCHIVE_BUCKET", BUCKET),
        ("TTL_SECONDS", "86400"),
        ("BAND_MIN", "26"),
        ("BAND_MAX", "28"),
        ("METRIC_BUILDINGS", "1,2"),
    ]);
    let env = |name: &str| vars.get(name).map(|v| (*v).to_owned());
    let settings = WorkerSettings::from_env(&env).unwrap();
    let worker = Worker {
        config: settings.worker,
        legacy_device: settings.legacy_device,
        table: DynamoReadings {
            writer: BatchWriter::new(s.dynamodb.clone(), READINGS),
        },
        archive: S3Archive {
            client: s.s3.clone(),
            bucket: BUCKET.into(),
        },
        metrics: CapturedMetrics::default(),
    };

    let t = 1_764_230_400_000;
    let at = t + 30;
    let five_minutes = fleet_core::payload::MAX_FUTURE_SKEW_MS;
    let d1 = "dt/monitoring/1/d-0001/telemetry";
    let legacy = "monitoring-device/building-1";
    let legacy_of =
        |device: &str| encode_telemetry(&Telemetry::legacy(device.try_into().unwrap(), 27.0, 55.0));
    let browser = |device: &str| format!("dt/monitoring/browser/{device}/telemetry");
    let records = vec![
        // 0: the device itself.
        record(0, d1, Some("d-0001"), &reading("d-0001", "1", 1, t), at),
        // 1: another device's certificate (its client id is its thing) speaking for d-0001.
        record(1, d1, Some("d-0002"), &reading("d-0001", "1", 2, t + 1), at),
        // 2: a guest, for a device of its own namespace in the browser building.
        record(
            2,
            &browser(GUEST_DEVICE),
            Some(GUEST),
            &reading(GUEST_DEVICE, "browser", 1, t),
            at,
        ),
        // 3: the same guest naming a certificate device (the only building IAM lets it
        // publish in is the browser building).
        record(
            3,
            &browser("d-0001"),
            Some(GUEST),
            &reading("d-0001", "browser", 3, t + 2),
            at,
        ),
        // 4: the original device, on its legacy topic with its fixed client id.
        record(
            4,
            legacy,
            Some("monitoring-device"),
            &legacy_of("381938912"),
            at,
        ),
        // 5: the original device's client id speaking for another device.
        record(
            5,
            legacy,
            Some("monitoring-device"),
            &legacy_of("d-0001"),
            at + 1,
        ),
        // 6: an envelope from a rule that predates `clientid()`.
        record(6, d1, None, &reading("d-0001", "1", 4, t + 3), at),
        // 7, 8: the device itself, stamped 5 minutes ahead (accepted) and a millisecond more
        // (rejected: it would make every later real reading look stale).
        record(
            7,
            d1,
            Some("d-0001"),
            &reading("d-0001", "1", 5, at + five_minutes),
            at,
        ),
        record(
            8,
            d1,
            Some("d-0001"),
            &reading("d-0001", "1", 6, at + five_minutes + 1),
            at,
        ),
    ];
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    let response = worker.handle_sqs(event, at).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "rejections are acknowledged, not retried: {response:?}"
    );

    // Stored: exactly the readings whose publisher may report their device.
    let mut stored: Vec<(String, Option<u64>)> = scan(&s.dynamodb, READINGS)
        .await
        .iter()
        .map(|i| {
            let r = row_from_item(i).unwrap();
            (r.device.to_string(), r.seq)
        })
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("381938912".to_owned(), None),
            ("d-0001".to_owned(), Some(1)),
            ("d-0001".to_owned(), Some(5)),
            (GUEST_DEVICE.to_owned(), Some(1)),
        ]
    );

    // Archived under rejected/ with their codes, as every rejection is.
    let listed =
        s.s3.list_objects_v2()
            .bucket(BUCKET)
            .prefix("rejected/")
            .send()
            .await
            .unwrap();
    let [object] = listed.contents() else {
        panic!("one rejected object per batch: {listed:?}");
    };
    let body =
        s.s3.get_object()
            .bucket(BUCKET)
            .key(object.key().unwrap())
            .send()
            .await
            .unwrap();
    let body = String::from_utf8(body.body.collect().await.unwrap().to_vec()).unwrap();
    let rejected: Vec<(String, String)> = body
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["source_id"].as_str().unwrap().to_owned(),
                v["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("p-01", "device_not_publisher"),
        ("p-03", "device_not_publisher"),
        ("p-05", "device_not_publisher"),
        ("p-06", "device_not_publisher"),
        ("p-08", "ts_out_of_range"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(rejected, expected, "{body}");

    // Counted in the Rejected metric, per building as the allow-list names it: the browser
    // building is `other`, never a dimension of its own.
    let per_building: BTreeMap<String, (u64, u64)> = worker
        .metrics
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|v| {
            let building = v["Building"].as_str()?.to_owned();
            Some((building, (v["Readings"].as_u64()?, v["Rejected"].as_u64()?)))
        })
        .collect();
    assert_eq!(
        per_building,
        BTreeMap::from([("1".to_owned(), (3, 4)), ("other".to_owned(), (1, 1))]),
    );
}

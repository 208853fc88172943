//! Tests of [`plan`]: good and bad records together, EMF structure, archive keys, TTL.

use super::*;

const T0: u64 = 1_764_230_400_123; // 2025-11-27T08:00:00.123Z

fn current(device: &str, building: &str, seq: u64, ts: u64, t: f64) -> String {
    format!(
        r#"{{"device":"{device}","building":"{building}","seq":{seq},"ts":{ts},"temperature":{t},"humidity":60.5}}"#
    )
}

fn legacy(device: &str, t: f64) -> String {
    format!(
        r#"{{"body":{{"device":"{device}","temperature":{t},"humidity":61.0,"action":"Monitor"}}}}"#
    )
}

struct Batch {
    msgs: Vec<(String, Vec<u8>, u64, String)>,
    publisher: crate::Publisher,
}

impl Batch {
    fn new() -> Self {
        Batch {
            msgs: Vec::new(),
            publisher: crate::Publisher::Unbound,
        }
    }

    /// The same messages, all published by `publisher`.
    fn by(self, publisher: crate::Publisher) -> Self {
        Batch { publisher, ..self }
    }

    fn push(mut self, topic: &str, payload: impl Into<Vec<u8>>, received_ms: u64) -> Self {
        let id = format!("m{}", self.msgs.len());
        self.msgs
            .push((topic.to_owned(), payload.into(), received_ms, id));
        self
    }

    fn plan(&self, cfg: &WorkerConfig) -> Plan {
        let incoming: Vec<Incoming<'_>> = self
            .msgs
            .iter()
            .map(|(topic, payload, received_ms, id)| Incoming {
                topic,
                payload,
                received_ms: *received_ms,
                source_id: id,
                publisher: &self.publisher,
            })
            .collect();
        plan(cfg, &incoming)
    }
}

fn mixed() -> Batch {
    Batch::new()
        .push(
            "dt/monitoring/1/d-0001/telemetry",
            current("d-0001", "1", 1, T0, 27.1),
            T0 + 5,
        )
        .push("dt/monitoring/1/d-0001/telemetry", "not json", T0 + 6)
        .push(
            "dt/monitoring/2/d-0002/telemetry",
            current("d-0002", "2", 7, T0, 28.4),
            T0 + 7,
        )
        .push("bogus/topic", current("d-0003", "1", 1, T0, 27.0), T0 + 8)
        .push(
            "dt/monitoring/1/d-0001/telemetry",
            current("d-0009", "1", 2, T0, 27.0),
            T0 + 9,
        )
        .push(
            "monitoring-device/building-1",
            legacy("381938912", 25.0),
            T0 + 10,
        )
        .push(
            "dt/monitoring/1/d-0001/telemetry",
            current("d-0001", "1", 1, T0, 27.1),
            T0 + 11,
        )
        .push("cmd/monitoring/1/d-0001/remediation", "{}", T0 + 12)
}

#[test]
fn bad_records_never_affect_good_ones() {
    let plan = mixed().plan(&WorkerConfig::default());
    let devices: Vec<&str> = plan.rows.iter().map(|r| r.device.as_str()).collect();
    assert_eq!(devices, ["d-0001", "d-0002", "381938912"]);
    let codes: Vec<&str> = plan.rejected.iter().map(|r| r.reason.code()).collect();
    assert_eq!(
        codes,
        [
            "syntax",
            "topic_invalid",
            "device_topic_mismatch",
            "topic_not_telemetry"
        ]
    );
    assert_eq!(plan.duplicates, ["m6"]);
    let s = &plan.summary;
    assert_eq!(
        (s.received, s.accepted, s.duplicates, s.rejected),
        (8, 3, 1, 4)
    );
    assert_eq!(s.accepted + s.duplicates + s.rejected, s.received);
    assert_eq!(s.rejected_by_code.get("syntax"), Some(&1));
    assert_eq!(
        s.per_building.get("1"),
        Some(&BuildingCounts {
            readings: 2,
            out_of_band: 1,
            rejected: 3
        })
    );
    assert_eq!(
        s.per_building.get("2"),
        Some(&BuildingCounts {
            readings: 1,
            out_of_band: 1,
            rejected: 0
        })
    );
    assert_eq!(s.per_building.get(UNKNOWN_BUILDING).unwrap().rejected, 1);
    let bad = &plan.rejected[0];
    assert_eq!(
        (bad.source_id.as_str(), bad.raw.as_str()),
        ("m1", "not json")
    );
}

#[test]
fn rows_are_normalized() {
    let plan = mixed().plan(&WorkerConfig::default());
    let r = &plan.rows[0];
    assert_eq!(r.sort_key, format!("{T0}#0000000001"));
    assert_eq!((r.seq, r.ts, r.received_ms), (Some(1), Some(T0), T0 + 5));
    assert_eq!(r.building.as_str(), "1");
    assert!(!r.legacy);
    let l = &plan.rows[2];
    assert!(l.legacy);
    assert_eq!(l.building.as_str(), "1");
    assert_eq!((l.seq, l.ts), (None, None));
    assert_eq!(l.sort_key, format!("{}#Lm5", T0 + 10));
    assert_eq!(l.reading().ts, T0 + 10);
}

#[test]
fn ttl_counts_from_arrival() {
    let plan = mixed().plan(&WorkerConfig::default());
    assert_eq!(plan.rows[0].ttl, (T0 + 5) / 1000 + 86_400);
    let cfg = WorkerConfig {
        ttl_s: 60,
        ..WorkerConfig::default()
    };
    assert_eq!(mixed().plan(&cfg).rows[0].ttl, (T0 + 5) / 1000 + 60);
}

#[test]
fn readings_in_the_same_second_get_different_keys() {
    let topic = "dt/monitoring/1/d-0001/telemetry";
    let legacy_topic = "monitoring-device/building-1";
    let plan = Batch::new()
        .push(topic, current("d-0001", "1", 1, T0, 27.0), T0)
        .push(topic, current("d-0001", "1", 2, T0 + 1, 27.0), T0)
        .push(topic, current("d-0001", "1", 3, T0 + 1, 27.0), T0)
        .push(legacy_topic, legacy("381938912", 27.0), T0)
        .push(legacy_topic, legacy("381938912", 27.0), T0)
        .plan(&WorkerConfig::default());
    assert_eq!(plan.rows.len(), 5);
    let keys: BTreeSet<(&str, &str)> = plan
        .rows
        .iter()
        .map(|r| (r.device.as_str(), r.sort_key.as_str()))
        .collect();
    assert_eq!(keys.len(), 5);
}

#[test]
fn archive_is_one_ndjson_object_per_batch() {
    let plan = mixed().plan(&WorkerConfig::default());
    let archive = plan.archive.unwrap();
    assert!(
        archive
            .key
            .starts_with(&format!("readings/dt=2025-11-27/hour=08/{}-", T0 + 5)),
        "{}",
        archive.key
    );
    assert!(archive.key.ends_with(".ndjson"));
    let lines: Vec<Value> = archive
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["device"], "d-0001");
    assert_eq!(lines[0]["temperature"], 27.1);
    assert_eq!(lines[2]["seq"], Value::Null);

    let rejected = plan.rejected_archive.unwrap();
    assert!(rejected.key.starts_with("rejected/dt=2025-11-27/hour=08/"));
    let lines: Vec<Value> = rejected
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["code"], "syntax");
    assert_eq!(lines[0]["raw"], "not json");
    assert_eq!(lines[1]["topic"], "bogus/topic");
    // The same batch gives the same keys: a redelivery overwrites, never duplicates.
    let again = mixed().plan(&WorkerConfig::default());
    assert_eq!(again.archive.unwrap().key, archive.key);
}

#[test]
fn empty_batch_plans_nothing() {
    let plan = Batch::new().plan(&WorkerConfig::default());
    assert!(plan.rows.is_empty() && plan.emf.is_empty());
    assert_eq!((plan.archive, plan.rejected_archive), (None, None));
}

#[test]
fn emf_lines_have_the_right_structure() {
    let cfg = WorkerConfig {
        metric_devices: [DeviceId::try_from("d-0001").unwrap()].into(),
        ..WorkerConfig::default()
    };
    let mut batch = Batch::new();
    for seq in 0..150u64 {
        batch = batch.push(
            "dt/monitoring/1/d-0001/telemetry",
            current("d-0001", "1", seq, T0 + seq, 27.0 + seq as f64 / 100.0),
            T0 + 100 + seq,
        );
    }
    batch = batch
        .push(
            "dt/monitoring/2/d-0002/telemetry",
            current("d-0002", "2", 1, T0, 27.0),
            T0,
        )
        .push("nope", "x", T0);
    let plan = batch.plan(&cfg);
    let docs: Vec<Value> = plan
        .emf
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // d-0001: 150 values in chunks of 100 and 50; buildings 1, 2 and unknown. d-0002 is
    // not listed, so it gets no per-device line.
    assert_eq!(docs.len(), 2 + 3);
    for doc in &docs {
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Device/Monitoring");
        assert!(doc["_aws"]["Timestamp"].is_u64());
        let dimension = directive["Dimensions"][0][0].as_str().unwrap();
        assert!(doc[dimension].is_string());
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(metric["Unit"].is_string());
            assert!(!doc[name].is_null(), "{name} has a value");
        }
    }
    assert_eq!(docs[0]["Device"], "d-0001");
    assert_eq!(docs[0]["Temperature"].as_array().unwrap().len(), 100);
    assert_eq!(docs[1]["Humidity"].as_array().unwrap().len(), 50);
    assert_eq!(docs[0]["_aws"]["Timestamp"], T0 + 100);
    assert_eq!(docs[1]["_aws"]["Timestamp"], T0 + 200);
    assert_eq!(docs[2]["Building"], "1");
    assert_eq!(docs[2]["Readings"], 150);
    assert_eq!(docs[2]["OutOfBand"], 49); // 28.01 ..= 28.49
    assert_eq!(docs[3]["Building"], "2");
    assert_eq!(docs[4]["Building"], UNKNOWN_BUILDING);
    assert_eq!(docs[4]["Rejected"], 1);
}

#[test]
fn raw_excerpts_are_bounded_and_lossy() {
    let mut big = vec![b'x'; RAW_EXCERPT_BYTES * 3];
    big[0] = 0xff;
    let cfg = WorkerConfig::default();
    let plan = Batch::new()
        .push("dt/monitoring/1/d/telemetry", big, T0)
        .plan(&cfg);
    let r = &plan.rejected[0];
    assert_eq!(r.reason.code(), "not_utf8");
    assert!(r.raw.starts_with('\u{fffd}'));
    assert!(r.raw.len() <= RAW_EXCERPT_BYTES + 3);
    let too_big = WorkerConfig {
        max_bytes: 10,
        ..WorkerConfig::default()
    };
    let plan = Batch::new()
        .push(
            "dt/monitoring/1/d/telemetry",
            current("d", "1", 1, T0, 27.0),
            T0,
        )
        .plan(&too_big);
    assert_eq!(plan.rejected[0].reason.code(), "too_large");
}

fn batch_of(elements: &[String]) -> String {
    format!("[{}]", elements.join(","))
}

/// A batch message with good, bad and repeated elements, next to single messages.
fn with_batches() -> Batch {
    let topic = "dt/monitoring/1/d-0001/telemetry";
    Batch::new()
        .push(topic, current("d-0001", "1", 1, T0, 27.1), T0 + 1)
        .push(
            topic,
            batch_of(&[
                current("d-0001", "1", 2, T0 + 2_000, 27.2),
                // A reading of another device on this device's topic.
                current("d-0002", "1", 3, T0 + 4_000, 27.3),
                // The single message above, again.
                current("d-0001", "1", 1, T0, 27.1),
                r#"{"device":"d-0001","building":"1","seq":4,"ts":1,"temperature":300,"humidity":60}"#
                    .to_owned(),
                current("d-0001", "1", 5, T0 + 8_000, 28.5),
                // The same reading twice in one batch.
                current("d-0001", "1", 5, T0 + 8_000, 28.5),
                "[]".to_owned(),
            ]),
            T0 + 2,
        )
        .push(topic, "[]", T0 + 3)
        .push(
            "monitoring-device/building-1",
            batch_of(&[legacy("381938912", 27.0)]),
            T0 + 4,
        )
        .push(
            "dt/monitoring/2/d-0003/telemetry",
            batch_of(&[current("d-0003", "2", 1, T0, 26.0)]),
            T0 + 5,
        )
}

#[test]
fn a_batch_message_yields_a_row_per_good_element_and_rejects_bad_ones_alone() {
    let plan = with_batches().plan(&WorkerConfig::default());
    let rows: Vec<(&str, Option<u64>, &str)> = plan
        .rows
        .iter()
        .map(|r| (r.device.as_str(), r.seq, r.source_id.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("d-0001", Some(1), "m0"),
            ("d-0001", Some(2), "m1"),
            ("d-0001", Some(5), "m1"),
            ("d-0003", Some(1), "m4"),
        ]
    );
    let rejected: Vec<(&str, Option<usize>, &str)> = plan
        .rejected
        .iter()
        .map(|r| (r.source_id.as_str(), r.element, r.reason.code()))
        .collect();
    assert_eq!(
        rejected,
        [
            ("m1", Some(1), "device_topic_mismatch"),
            ("m1", Some(3), "temperature_out_of_range"),
            ("m1", Some(6), "batch_element_not_object"),
            ("m2", None, "batch_empty"),
            ("m3", None, "batch_not_allowed"),
        ]
    );
    assert_eq!(plan.rejected[0].reference(), "m1#1");
    assert_eq!(plan.rejected[3].reference(), "m2");
    // The excerpt of a rejected element is the element, not the whole message.
    assert!(
        plan.rejected[1]
            .raw
            .starts_with(r#"{"device":"d-0001","building":"1","seq":4"#)
    );
    assert!(!plan.rejected[1].raw.contains("d-0002"));
    assert_eq!(plan.rejected[2].raw, "[]");
    assert_eq!(plan.duplicates, ["m1", "m1"]);

    let s = &plan.summary;
    assert_eq!(
        (s.received, s.batches, s.readings, s.rejected_messages),
        (5, 2, 1 + 7 + 1 + 1 + 1, 2)
    );
    assert_eq!((s.accepted, s.duplicates, s.rejected), (4, 2, 5));
    assert_eq!(s.accepted + s.duplicates + s.rejected, s.readings);
    assert_eq!(s.rejected_by_code.values().sum::<u64>(), s.rejected as u64);
    assert_eq!(
        s.per_building.get("1"),
        Some(&BuildingCounts {
            readings: 3,
            out_of_band: 1,
            rejected: 5
        })
    );
    assert_eq!(s.per_building.get("2").map(|c| c.readings), Some(1));
}

#[test]
fn rejected_elements_are_archived_with_their_index() {
    let plan = with_batches().plan(&WorkerConfig::default());
    let lines: Vec<Value> = plan
        .rejected_archive
        .unwrap()
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        (
            &lines[0]["source_id"],
            &lines[0]["element"],
            &lines[0]["code"]
        ),
        (
            &Value::from("m1"),
            &Value::from(1),
            &Value::from("device_topic_mismatch")
        )
    );
    assert_eq!(lines[3]["element"], Value::Null);
    assert_eq!(lines[3]["raw"], "[]");
    let readings = plan.archive.unwrap().body.lines().count();
    assert_eq!(readings, 4);
}

#[test]
fn a_batch_equal_to_single_messages_plans_the_same_rows() {
    let topic = "dt/monitoring/1/d-0001/telemetry";
    let readings: Vec<String> = (0..40)
        .map(|i| current("d-0001", "1", i, T0 + i * 2_000, 27.0 + i as f64 / 10.0))
        .collect();
    let mut singles = Batch::new();
    for r in &readings {
        singles = singles.push(topic, r.clone(), T0 + 100_000);
    }
    let batched = Batch::new()
        .push(topic, batch_of(&readings[..25]), T0 + 100_000)
        .push(topic, batch_of(&readings[25..]), T0 + 100_000);
    let cfg = WorkerConfig::default();
    let (a, b) = (singles.plan(&cfg), batched.plan(&cfg));
    let key = |p: &Plan| {
        p.rows
            .iter()
            .map(|r| (r.sort_key.clone(), r.temperature.to_bits(), r.ttl))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&a), key(&b));
    assert_eq!((a.summary.received, b.summary.received), (40, 2));
    assert_eq!((a.summary.readings, b.summary.readings), (40, 40));
    // Same readings, same metrics, whatever the packaging.
    assert_eq!(a.summary.per_building, b.summary.per_building);
}

#[test]
fn a_reading_is_stored_only_under_its_publishers_identity() {
    use crate::{Namespace, Publisher};
    let device = |s: &str| Publisher::Device(DeviceId::try_from(s).unwrap());
    let mixed = || {
        Batch::new()
            .push(
                "dt/monitoring/1/d-0001/telemetry",
                current("d-0001", "1", 1, T0, 27.0),
                T0,
            )
            .push(
                "dt/monitoring/1/d-0002/telemetry",
                current("d-0002", "1", 1, T0, 27.0),
                T0,
            )
            .push("monitoring-device/building-1", legacy("d-0001", 27.0), T0)
            .push(
                "monitoring-device/building-1",
                legacy("381938912", 27.0),
                T0,
            )
    };
    let stored = |p: Plan| -> Vec<String> { p.rows.iter().map(|r| r.device.to_string()).collect() };

    let p = mixed().by(device("d-0001")).plan(&WorkerConfig::default());
    assert_eq!(stored(p.clone()), ["d-0001", "d-0001"]);
    assert_eq!(p.rejected.len(), 2);
    for r in &p.rejected {
        assert_eq!(r.reason.code(), "device_not_publisher");
        assert!(
            r.reason.to_string().contains("device d-0001"),
            "{}",
            r.reason
        );
    }
    assert_eq!(p.summary.rejected_by_code["device_not_publisher"], 2);

    // The original device's thing speaks for its body.device only.
    let p = mixed()
        .by(device("381938912"))
        .plan(&WorkerConfig::default());
    assert_eq!(stored(p), ["381938912"]);
    // A client that names no identity stores nothing.
    let p = mixed().by(Publisher::Nobody).plan(&WorkerConfig::default());
    assert!(p.rows.is_empty());
    assert_eq!(p.summary.rejected, 4);
    // A page speaks for its namespace, in a batch message too.
    let ns = Namespace::new("w1a2").unwrap();
    let batch = batch_of(&[
        current("w1a2-0001", "1", 1, T0, 27.0),
        current("w1a2-0001", "1", 2, T0, 27.0),
    ]);
    let p = Batch::new()
        .push("dt/monitoring/1/w1a2-0001/telemetry", batch.clone(), T0)
        .push(
            "dt/monitoring/1/w1a3-0001/telemetry",
            current("w1a3-0001", "1", 1, T0, 27.0),
            T0,
        )
        .by(Publisher::Namespace(ns))
        .plan(&WorkerConfig::default());
    assert_eq!(stored(p.clone()), ["w1a2-0001", "w1a2-0001"]);
    assert_eq!(p.rejected.len(), 1);
    assert_eq!(p.rejected[0].reason.code(), "device_not_publisher");
}

#[test]
fn buildings_outside_the_allow_list_share_one_metric_dimension() {
    let mut b = Batch::new();
    for (i, building) in ["1", "7", "x-1", "y-2", "10"].iter().enumerate() {
        let device = format!("d-{i}");
        b = b.push(
            &format!("dt/monitoring/{building}/{device}/telemetry"),
            current(&device, building, 1, T0, 30.0),
            T0,
        );
    }
    let b = b.push("dt/monitoring/zzz/d-9/telemetry", "{not json", T0);
    let p = b.plan(&WorkerConfig::default());
    let dims: Vec<&str> = p.summary.per_building.keys().map(String::as_str).collect();
    assert_eq!(dims, ["1", "10", "7", "other"]);
    assert_eq!(p.summary.per_building["other"].readings, 2);
    assert_eq!(p.summary.per_building["other"].rejected, 1);
    // The rows keep their real building; only the metric dimension is folded.
    assert!(p.rows.iter().any(|r| r.building.as_str() == "x-1"));
    let emf_buildings: Vec<String> = p
        .emf
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|v| v["Building"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(emf_buildings, ["1", "10", "7", "other"]);
}

#[test]
fn a_reading_more_than_five_minutes_ahead_is_rejected() {
    let ahead = |ms: u64| {
        Batch::new()
            .push(
                "dt/monitoring/1/d-1/telemetry",
                current("d-1", "1", 1, T0 + ms, 27.0),
                T0,
            )
            .plan(&WorkerConfig::default())
    };
    assert_eq!(ahead(5 * 60 * 1000).rows.len(), 1);
    let p = ahead(5 * 60 * 1000 + 1);
    assert!(p.rows.is_empty());
    assert_eq!(p.rejected[0].reason.code(), "ts_out_of_range");
}

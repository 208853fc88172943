//! The local stack end to end: `fleet local` and `fleet sim` as processes, third-party MQTT
//! clients (Debian's mosquitto-clients), mutual TLS, and a `kill -9` in the middle.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

mod support;

use std::process::Stdio;
use std::time::Duration;

use fleet_clock::now_ms;
use fleet_local::SqliteStore;
use support::{Stack, acked, http_get, mosquitto, sent_acked, set, sim, stored};

#[test]
fn a_sim_fleet_stores_exactly_what_was_acked_and_commands_bend_the_curves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    let acked_file = dir.path().join("acked.ndjson");
    let out = sim(&[
        "--broker",
        &stack.mqtt_url(),
        "--devices",
        "50",
        "--duration",
        "20",
        "--update-frequency",
        "1",
        "--connect-rate",
        "500",
        "--acked-file",
        acked_file.to_str().unwrap(),
    ]);
    let (sent, acked_count) = sent_acked(&out);
    assert!(sent >= 50 * 15, "sent only {sent}");
    assert_eq!(sent, acked_count, "every reading acknowledged");
    assert!(stack.stop().success());

    let acked = acked(&acked_file);
    let stored = stored(&data);
    assert_eq!(acked.len() as u64, acked_count);
    assert_eq!(stored.len(), set(&stored).len(), "no reading stored twice");
    assert_eq!(
        set(&stored),
        set(&acked),
        "the database holds exactly the acknowledged readings"
    );

    // Devices that went out of the band got commands, and their later readings follow the
    // remediated amplitude (0.3 around 27 °C, plus ±0.05 noise) instead of 1.1.
    let db = SqliteStore::open(&data.join(fleet_local::LocalStore::DB_FILE)).unwrap();
    let decisions = db.recent_decisions(100_000).unwrap();
    let remediated: Vec<_> = decisions
        .iter()
        .map(|r| &r.decision)
        .filter(|d| {
            d.command
                .as_ref()
                .is_some_and(|c| c.action != fleet_core::payload::Action::Release)
        })
        .collect();
    assert!(
        remediated.len() >= 3,
        "only {} commands in 20 s for 50 devices",
        remediated.len()
    );
    for d in remediated {
        let device = d.device.clone();
        let seq = d.reading_seq.unwrap();
        let after: Vec<f64> = db
            .readings_of(&device, 10_000)
            .unwrap()
            .into_iter()
            .filter(|r| r.seq.is_some_and(|s| s > seq + 1))
            .map(|r| r.temperature)
            .collect();
        for t in &after {
            assert!(
                (t - 27.0).abs() <= 0.3 + 0.05 + 1e-9,
                "{device}: {t} °C after a command at seq {seq}"
            );
        }
    }
}

#[test]
fn third_party_clients_are_served_and_bad_input_is_rejected_counted_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    let port = stack.addrs.mqtt.port().to_string();
    // Plain TCP from loopback, development mode: the client id names the device.
    let publish = |topic: &str, payload: &str| {
        mosquitto("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-i", "d-0042", "-q", "1"])
            .args(["-t", topic, "-m", payload])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let ts = now_ms();
    let reading = |seq: u64| {
        format!(
            r#"{{"device":"d-0042","building":"1","seq":{seq},"ts":{ts},"temperature":27.1,"humidity":60.2}}"#
        )
    };
    assert!(publish("dt/monitoring/1/d-0042/telemetry", &reading(1)));
    // Acknowledged (handled), rejected by the worker.
    assert!(publish("dt/monitoring/1/d-0042/telemetry", "{not json"));
    // Not one of the device's topics: the broker refuses it (connection closed).
    assert!(!publish("dt/monitoring/1/d$0042/telemetry", &reading(2)));
    // After the bad ones: the stack still serves, and two readings with the same timestamp
    // (same second, same millisecond) are both kept.
    assert!(publish("dt/monitoring/1/d-0042/telemetry", &reading(3)));
    assert!(publish("dt/monitoring/1/d-0042/telemetry", &reading(4)));

    let metrics = http_get(stack.addrs.http, "/metrics");
    assert!(
        metrics.contains("fleet_readings_stored_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"fleet_readings_rejected_total{reason="syntax"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"fleet_mqtt_refusals_total{action="publish",reason="unknown_topic"} 1"#),
        "{metrics}"
    );
    let log = stack.log();
    assert!(log.contains("rejected") && log.contains("syntax"), "{log}");
    assert!(
        log.contains("refused") && log.contains("unknown_topic"),
        "{log}"
    );
    assert!(stack.stop().success());
    let stored = stored(&data);
    assert_eq!(
        set(&stored),
        set(&[
            ("d-0042".to_string(), 1),
            ("d-0042".to_string(), 3),
            ("d-0042".to_string(), 4)
        ])
    );
}

#[test]
fn kill_9_loses_no_acknowledged_reading_and_stores_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    let addrs = stack.addrs;
    let acked_file = dir.path().join("acked.ndjson");
    let sim = support::fleet()
        .arg("sim")
        .args([
            "--broker",
            &stack.mqtt_url(),
            "--devices",
            "20",
            "--duration",
            "25",
        ])
        .args([
            "--update-frequency",
            "0.1",
            "--connect-rate",
            "500",
            "--drain-timeout",
            "30",
        ])
        .arg("--acked-file")
        .arg(&acked_file)
        .args(["--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(8));
    stack.kill9();
    std::thread::sleep(Duration::from_secs(1));
    let stack = Stack::start_at(&data, Some(addrs));
    let out = sim.wait_with_output().unwrap();
    assert!(out.status.success());
    let (sent, acked_count) = sent_acked(&out);
    assert_eq!(
        sent, acked_count,
        "after the restart every reading was acknowledged"
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        !summary.contains("reconnects 0"),
        "the devices should have reconnected: {summary}"
    );
    assert!(stack.stop().success());

    let acked = acked(&acked_file);
    let stored = stored(&data);
    assert_eq!(stored.len(), set(&stored).len(), "no reading stored twice");
    let missing: Vec<_> = set(&acked).difference(&set(&stored)).cloned().collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    assert!(
        acked.len() > 20 * 30,
        "only {} readings acknowledged",
        acked.len()
    );
}

#[test]
fn a_batching_sim_fleet_stores_every_reading_and_flushes_its_buffers_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    let acked_file = dir.path().join("acked.ndjson");
    let out = sim(&[
        "--broker",
        &stack.mqtt_url(),
        "--devices",
        "5",
        "--batch",
        "7",
        "--duration",
        "4",
        "--update-frequency",
        "0.1",
        "--connect-rate",
        "500",
        "--acked-file",
        acked_file.to_str().unwrap(),
    ]);
    let (sent, acked_count) = sent_acked(&out);
    assert!(sent >= 5 * 20, "sent only {sent}");
    assert_eq!(sent, acked_count, "every reading acknowledged");
    let messages = messages_line(&out);

    // The stack counts both units: messages (what it acknowledged) and the readings in them.
    let stats: serde_json::Value =
        serde_json::from_str(&http_get(stack.addrs.http, "/api/stats")).unwrap();
    assert_eq!(
        stats["ingest"]["messages"].as_u64(),
        Some(messages),
        "{stats}"
    );
    assert_eq!(stats["ingest"]["batch_messages"].as_u64(), Some(messages));
    assert_eq!(stats["ingest"]["readings"].as_u64(), Some(sent), "{stats}");
    assert_eq!(stats["ingest"]["stored"].as_u64(), Some(sent));
    assert_eq!(
        stats["readings"].as_u64(),
        Some(sent),
        "one row per reading"
    );
    assert_eq!(
        stats["decisions"].as_u64(),
        Some(sent),
        "one decision per reading"
    );
    let metrics = http_get(stack.addrs.http, "/metrics");
    assert!(
        metrics.contains(&format!("fleet_messages_received_total {messages}")),
        "{metrics}"
    );
    assert!(stack.stop().success());

    let acked = acked(&acked_file);
    let stored = stored(&data);
    assert_eq!(
        set(&stored),
        set(&acked),
        "exactly the acknowledged readings"
    );
    assert_eq!(stored.len(), set(&stored).len(), "no reading stored twice");
    // Per device: every seq from the first to the last (nothing left in a buffer), sent as
    // full messages of 7 but the last, which the stop flushed: ⌈n / 7⌉ messages.
    let mut per_device: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for (device, seq) in &acked {
        per_device.entry(device.clone()).or_default().push(*seq);
    }
    assert_eq!(per_device.len(), 5);
    let mut expected_messages = 0;
    for (device, mut seqs) in per_device {
        seqs.sort_unstable();
        let (first, last) = (seqs[0], seqs[seqs.len() - 1]);
        assert_eq!(seqs, (first..=last).collect::<Vec<_>>(), "{device}: a gap");
        expected_messages += (seqs.len() as u64).div_ceil(7);
    }
    assert_eq!(messages, expected_messages);
    assert!(
        messages < sent / 5,
        "{messages} messages for {sent} readings"
    );
}

/// The N of a sim run's `messages N` summary line (messages published).
fn messages_line(out: &std::process::Output) -> u64 {
    let summary = String::from_utf8_lossy(&out.stdout);
    summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("messages "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no messages line: {summary}"))
}

#[test]
fn a_buffer_that_never_fills_is_published_at_stop() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    let acked_file = dir.path().join("acked.ndjson");
    // About 20 readings per device, a batch of 100: only the stop sends them.
    let out = sim(&[
        "--broker",
        &stack.mqtt_url(),
        "--devices",
        "3",
        "--batch",
        "100",
        "--duration",
        "2",
        "--update-frequency",
        "0.1",
        "--acked-file",
        acked_file.to_str().unwrap(),
    ]);
    let (sent, acked_count) = sent_acked(&out);
    assert!(sent >= 3 * 10, "sent only {sent}");
    assert_eq!(sent, acked_count);
    assert_eq!(messages_line(&out), 3, "one flushed message per device");
    assert!(stack.stop().success());
    assert_eq!(set(&stored(&data)), set(&acked(&acked_file)));
}

#[test]
fn sim_batch_sizes_and_basic_ingest_rules_are_validated() {
    for (args, needle) in [
        (&["--batch", "0"][..], "0 is not in 1..=100"),
        (&["--batch", "101"][..], "101 is not in 1..=100"),
        (
            &["--batch", "5", "--legacy"][..],
            "--legacy devices send one reading per message",
        ),
        (
            &["--basic-ingest", "fleet-telemetry"][..],
            "an IoT rule name is 1 to 128 letters, digits or _",
        ),
        (
            &["--basic-ingest", "fleet_telemetry", "--legacy"][..],
            "--legacy devices use the legacy rule's topics",
        ),
    ] {
        let out = support::fleet()
            .arg("sim")
            .args(args)
            .args(["--broker", "mqtt://127.0.0.1:1", "--duration", "0"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

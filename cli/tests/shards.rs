//! A fleet split over processes (issue 16, test 3): four `fleet sim --shard I/4` processes
//! against one `fleet local`, their reports merged with `fleet report merge`, checked
//! against the stack's database and its broker's counters.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};

use support::{Stack, fleet, http_get, sample, set, stored, sum_of};

const DEVICES: u32 = 40;
const SHARDS: u32 = 4;

fn shard(stack: &Stack, i: u32, report: &std::path::Path, metrics: bool) -> Child {
    let mut c = fleet();
    c.arg("sim")
        .args(["--broker", &stack.mqtt_url()])
        .args(["--devices", &DEVICES.to_string()])
        .args(["--shard", &format!("{i}/{SHARDS}")])
        .args(["--duration", "12", "--update-frequency", "0.5"])
        .args(["--connect-rate", "500", "--log-format", "json"])
        .arg("--report")
        .arg(report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if metrics {
        c.args(["--metrics", "127.0.0.1:0"]);
    }
    c.spawn().unwrap()
}

#[test]
fn four_shards_merge_into_exactly_what_the_stack_stored_without_a_client_id_collision() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    let reports: Vec<_> = (0..SHARDS)
        .map(|i| dir.path().join(format!("shard-{i}.json")))
        .collect();
    let mut children: Vec<Child> = (0..SHARDS)
        .map(|i| shard(&stack, i, &reports[i as usize], i == 0))
        .collect();

    // Shard 0 serves its metrics while it runs: the address is in its log.
    let stderr = children[0].stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let logger = std::thread::spawn(move || {
        let mut sent = false;
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(at) = line.find("http://") {
                let url = &line[at + "http://".len()..];
                let addr: SocketAddr = url[..url.find('/').unwrap()].parse().unwrap();
                tx.send(addr).unwrap();
                sent = true;
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let metrics_addr = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("shard 0 logs its metrics address");
    // Wait for the first acknowledgements, then scrape.
    let mut live = String::new();
    for _ in 0..100 {
        live = http_get(metrics_addr, "/metrics");
        if sample(&live, r#"fleet_sim_readings_acked_total{shard="0/4"}"#).is_some_and(|v| v > 0.0)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        sample(&live, r#"fleet_sim_readings_acked_total{shard="0/4"}"#).is_some_and(|v| v > 0.0),
        "{live}"
    );
    assert!(
        live.contains(r#"fleet_sim_ack_seconds_count{shard="0/4"}"#),
        "{live}"
    );

    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "shard {i} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shard0_log = logger.join().unwrap();

    // The broker accepted one connection per device and ended none on a takeover: no two
    // shards shared a client id (a second CONNECT with the same id would have taken the
    // first one's session, and its device would have reconnected).
    let broker = http_get(stack.addrs.http, "/metrics");
    assert_eq!(
        sample(&broker, r#"fleet_mqtt_total{event="connections"}"#),
        Some(f64::from(DEVICES)),
        "{broker}"
    );
    assert_eq!(
        sample(&broker, r#"fleet_mqtt_total{event="errors"}"#),
        Some(0.0),
        "{broker}"
    );
    let commands_sent = sum_of(&broker, "fleet_commands_sent_total");
    assert!(stack.stop().success());
    assert!(!shard0_log.contains("took over"), "{shard0_log}");

    let merged_path = dir.path().join("merged.json");
    let out = fleet()
        .args(["report", "merge"])
        .args(&reports)
        .arg("--out")
        .arg(&merged_path)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{summary}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(summary.contains("4 shard(s), the whole fleet"), "{summary}");
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged_path).unwrap()).unwrap();
    let counter = |name: &str| merged["counters"][name].as_u64().unwrap();

    // Each shard ran its own devices; together, the fleet.
    let ranges: Vec<(u64, u64)> = merged["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["start"].as_u64().unwrap(), r["end"].as_u64().unwrap()))
        .collect();
    assert_eq!(ranges, [(0, 10), (10, 20), (20, 30), (30, 40)]);
    assert_eq!(counter("devices"), u64::from(DEVICES));
    assert_eq!(counter("reconnects"), 0, "no device lost its connection");

    // The merged counts are the database's.
    let stored = stored(&data);
    assert_eq!(stored.len(), set(&stored).len(), "no reading stored twice");
    assert!(counter("sent") >= u64::from(DEVICES) * 15, "{merged}");
    assert_eq!(
        counter("acked"),
        counter("sent"),
        "every reading acknowledged"
    );
    assert_eq!(
        counter("acked"),
        stored.len() as u64,
        "the merged report counts exactly the readings the stack stored"
    );
    let devices: BTreeSet<String> = stored.iter().map(|(d, _)| d.clone()).collect();
    let fleet_ids: BTreeSet<String> = (1..=DEVICES).map(|n| format!("d-{n:04}")).collect();
    assert_eq!(
        devices, fleet_ids,
        "every device of the fleet, and no other"
    );
    assert!(counter("commands") as f64 <= commands_sent);

    // The merged latency histograms hold every shard's samples.
    let per_shard: u64 = reports
        .iter()
        .map(|p| {
            let r: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            r["latency"]["ack"]["count"].as_u64().unwrap()
        })
        .sum();
    assert!(per_shard > 0);
    assert_eq!(merged["latency"]["ack"]["count"].as_u64(), Some(per_shard));
    assert!(merged["latency"]["ack"]["p99_ms"].as_f64().is_some());

    // A shard's report given twice overlaps itself: refused, with the reason.
    let out = fleet()
        .args(["report", "merge"])
        .args([&reports[0], &reports[1], &reports[0]])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("overlap") && err.contains("d-0001"), "{err}");
}

#[test]
fn bad_shards_are_refused_before_anything_starts() {
    let refused = |args: &[&str], says: &str| {
        let out = fleet()
            .arg("sim")
            .args(["--broker", "mqtt://127.0.0.1:9", "--duration", "1"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(says), "{args:?}: {err}");
    };
    refused(&["--devices", "10", "--shard", "4/4"], "does not exist");
    refused(&["--devices", "10", "--shard", "1-4"], "is not I/N");
    refused(&["--devices", "10", "--shard", "0/0"], "at least 1 shard");
    refused(&["--devices", "3", "--shard", "0/4"], "whole fleet's size");
    refused(&["--devices", "1", "--shard", "0/2"], "is not split");
    refused(
        &["--devices", "1", "--legacy", "--shard", "0/1"],
        "the original's client id",
    );
    refused(&["--devices", "200000"], "split the fleet with --shard");
    // A metrics address that is taken: named, and nothing runs.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    refused(
        &["--devices", "2", "--metrics", &addr],
        &format!("--metrics {addr}: cannot listen there"),
    );
    refused(&["--metrics", "localhost"], "--metrics");
}

#[test]
fn sigterm_stops_a_shard_like_ctrl_c_and_its_report_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    let report = dir.path().join("shard.json");
    // No --duration: it runs until a signal, as a pod or task does until it is stopped.
    let child = fleet()
        .arg("sim")
        .args([
            "--broker",
            &stack.mqtt_url(),
            "--devices",
            "8",
            "--shard",
            "1/2",
        ])
        .args(["--update-frequency", "0.2", "--connect-rate", "500"])
        .args(["--log-format", "json"])
        .env("FLEET_REPORT", &report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until the stack has stored something from every device of the shard.
    for _ in 0..300 {
        let broker = http_get(stack.addrs.http, "/metrics");
        if sample(&broker, "fleet_readings_stored_total").is_some_and(|v| v >= 8.0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stack.stop().success());

    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["ranges"][0]["shard"], "1/2");
    assert_eq!(r["ranges"][0]["first"], "d-0005");
    assert_eq!(r["ranges"][0]["last"], "d-0008");
    let acked = r["counters"]["acked"].as_u64().unwrap();
    assert!(acked > 0);
    assert_eq!(
        r["counters"]["sent"].as_u64(),
        Some(acked),
        "drained before exit"
    );
    let stored = stored(&data);
    assert_eq!(stored.len() as u64, acked);
    let devices: BTreeSet<&str> = stored.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        devices,
        BTreeSet::from(["d-0005", "d-0006", "d-0007", "d-0008"])
    );
}

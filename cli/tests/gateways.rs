//! Gateway connections (issue 16, test 2): 20,000 devices on 20 gateway connections
//! against `fleet local` for 60 s, under the trust policy (ARCHITECTURE §4.8): one gateway
//! credential for the fleet's buildings, checked by the broker on every publish. Every
//! acknowledged reading is stored exactly once, nothing else is, and every command reaches
//! the device it names.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

use fleet_local::SqliteStore;
use support::{Stack, acked, fleet, http_get, sample, set, stored, sum_of, tokens};

const DEVICES: u32 = 20_000;
const BUILDINGS: u32 = 20;
const SECONDS: u32 = 60;

#[test]
fn twenty_thousand_devices_on_twenty_gateways_store_what_was_acked_and_get_their_own_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start_with(&data, &["--mqtt-auth".as_ref(), "credentials".as_ref()]);
    let buildings: Vec<String> = (1..=BUILDINGS).map(|b| b.to_string()).collect();
    let (user, password) = tokens(&data, &["--gateway", &buildings.join(",")])
        .pop()
        .expect("one gateway credential");
    let acked_file = dir.path().join("acked.ndjson");
    let report = dir.path().join("report.json");

    let out = fleet()
        .arg("sim")
        .args(["--broker", &stack.mqtt_url()])
        .args(["--devices", &DEVICES.to_string()])
        .args(["--buildings", &BUILDINGS.to_string()])
        .args(["--connections", &BUILDINGS.to_string()])
        .args(["--duration", &SECONDS.to_string()])
        .args(["--connect-rate", "20000", "--log-format", "json"])
        // A debug-built stack on a busy CI machine may trail by seconds at the stop: the
        // sim waits for every acknowledgement rather than stop with readings in flight.
        .args(["--drain-timeout", "120"])
        .args(["--username", &user, "--password", &password])
        .arg("--acked-file")
        .arg(&acked_file)
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let (stdout, log) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "fleet sim failed:\n{stdout}\n{log}");
    assert!(
        stdout.contains(&format!("{DEVICES} devices on {BUILDINGS} connections")),
        "{stdout}"
    );

    // The broker saw 20 connections, each one a gateway, and refused nothing.
    let broker = http_get(stack.addrs.http, "/metrics");
    assert_eq!(
        sample(&broker, r#"fleet_mqtt_total{event="connections"}"#),
        Some(f64::from(BUILDINGS)),
        "{broker}"
    );
    assert_eq!(
        sample(&broker, r#"fleet_mqtt_total{event="errors"}"#),
        Some(0.0),
        "{broker}"
    );
    let refusals = sum_of(&broker, "fleet_mqtt_refusals_total");
    assert_eq!(
        refusals, 0.0,
        "the gateway credential covers every publish:\n{broker}"
    );
    assert!(stack.stop().success());

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let counter = |name: &str| report["counters"][name].as_u64().unwrap();
    assert_eq!(counter("devices"), u64::from(DEVICES));
    assert_eq!(counter("connections"), u64::from(BUILDINGS));
    assert_eq!(counter("reconnects"), 0, "no gateway lost its connection");
    assert_eq!(counter("refused"), 0);

    // Stored = acked, exactly: every acknowledged reading once, and nothing else.
    let acked = acked(&acked_file);
    let stored = stored(&data);
    assert_eq!(stored.len(), set(&stored).len(), "no reading stored twice");
    assert_eq!(acked.len() as u64, counter("acked"));
    assert_eq!(
        counter("acked"),
        counter("sent"),
        "every reading acknowledged"
    );
    assert!(
        acked.len() as u64 >= u64::from(DEVICES) * u64::from(SECONDS) / 2 * 9 / 10,
        "{} readings in {SECONDS} s from {DEVICES} devices every 2 s",
        acked.len()
    );
    assert_eq!(set(&acked), set(&stored), "the stack stored what was acked");
    let devices: BTreeSet<&str> = stored.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(devices.len(), DEVICES as usize, "every device published");

    // Every command the device applied is one the stack decided for that device, about that
    // reading; and every command decided well before the end reached its device.
    let db = SqliteStore::open(&data.join(fleet_local::LocalStore::DB_FILE)).unwrap();
    let decided: BTreeMap<(String, u64), (String, u64)> = db
        .recent_decisions(usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|r| {
            let d = r.decision;
            let command = d.command?;
            Some((
                (d.device.to_string(), d.reading_seq?),
                (command.action.as_str().to_owned(), d.at_ms),
            ))
        })
        .collect();
    assert!(decided.len() > 100, "{} commands", decided.len());
    let applied: Vec<(String, u64, String)> = log
        .lines()
        .filter(|l| l.contains("Remediation command received"))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let f = &v;
            (
                f["device"].as_str().unwrap().to_owned(),
                f["seq"].as_u64().unwrap(),
                f["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(applied.len() as u64, counter("commands"));
    for (device, seq, action) in &applied {
        let Some((decided_action, _)) = decided.get(&(device.clone(), *seq)) else {
            panic!("{device} applied {action} for reading {seq}, which the stack never commanded");
        };
        assert_eq!(decided_action, action, "{device} #{seq}");
    }
    let applied_keys: BTreeSet<(String, u64)> =
        applied.iter().map(|(d, s, _)| (d.clone(), *s)).collect();
    let ended_ms = report["ended_ms"].as_u64().unwrap();
    let missed: Vec<_> = decided
        .iter()
        .filter(|(key, (_, at_ms))| *at_ms + 5_000 < ended_ms && !applied_keys.contains(*key))
        .collect();
    assert!(
        missed.is_empty(),
        "commands that never reached their device: {missed:?}"
    );
}

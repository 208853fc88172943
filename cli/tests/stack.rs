//! The local stack end to end: `fleet local` and `fleet sim` as processes, third-party MQTT
//! clients (Debian's mosquitto-clients), mutual TLS, and a `kill -9` in the middle.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleet_local::SqliteStore;
use support::{Stack, acked, http_get, sent_acked, set, sim, stored};

fn mosquitto(tool: &str) -> Command {
    let found = Command::new("which")
        .arg(tool)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is missing: run scripts/setup.sh (Debian package mosquitto-clients)"
    );
    Command::new(tool)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

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
    let publish = |topic: &str, payload: &str| {
        let status = mosquitto("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-q",
                "1",
                "-t",
                topic,
                "-m",
                payload,
            ])
            .status()
            .unwrap();
        assert!(status.success(), "mosquitto_pub to {topic}");
    };
    let ts = now_ms();
    let reading = |seq: u64| {
        format!(
            r#"{{"device":"d-0042","building":"1","seq":{seq},"ts":{ts},"temperature":27.1,"humidity":60.2}}"#
        )
    };
    publish("dt/monitoring/1/d-0042/telemetry", &reading(1));
    publish("dt/monitoring/1/d-0042/telemetry", "{not json");
    publish("dt/monitoring/1/d$0042/telemetry", &reading(2));
    // After the bad ones: the stack still serves, and two readings with the same timestamp
    // (same second, same millisecond) are both kept.
    publish("dt/monitoring/1/d-0042/telemetry", &reading(3));
    publish("dt/monitoring/1/d-0042/telemetry", &reading(4));

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
        metrics.contains(r#"fleet_readings_rejected_total{reason="topic_invalid"} 1"#),
        "{metrics}"
    );
    let log = stack.log();
    assert!(
        log.contains("rejected") && log.contains("topic_invalid"),
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
fn a_legacy_device_over_mutual_tls_gets_legacy_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    let cert = support::fleet()
        .args(["local", "cert", "--device", "381938912", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        cert.status.success(),
        "{}",
        String::from_utf8_lossy(&cert.stderr)
    );
    let certs = data.join("certs");
    let tls = |c: &mut Command| {
        c.args([
            "-h",
            "localhost",
            "-p",
            &stack.addrs.mqtts.port().to_string(),
        ])
        .arg("--cafile")
        .arg(certs.join("ca.pem"))
        .arg("--cert")
        .arg(certs.join("devices/381938912.cert.pem"))
        .arg("--key")
        .arg(certs.join("devices/381938912.private.key"));
    };
    let mut sub = mosquitto("mosquitto_sub");
    tls(&mut sub);
    let sub = sub
        .args([
            "-t",
            "monitoring-device/remediation-1",
            "-C",
            "1",
            "-W",
            "20",
            "-i",
            "legacy-listener",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut publish = mosquitto("mosquitto_pub");
    tls(&mut publish);
    let status = publish
        .args(["-q", "1", "-i", "381938912", "-t", "monitoring-device/building-1"])
        .args(["-m", r#"{"body":{"device":"381938912","temperature":28.6,"humidity":61.6,"action":"Monitor"}}"#])
        .status()
        .unwrap();
    assert!(status.success());
    let out = sub.wait_with_output().unwrap();
    let command: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stack.log()
        )
    });
    assert_eq!(command["body"]["device"], "381938912");
    assert_eq!(command["body"]["action"], "Remediate");
    // The original device cools when the reference is below its last reading.
    assert!(command["body"]["temperature"].as_f64().unwrap() < 28.6);

    // Our own simulator speaks the same legacy protocol over the same mutual TLS: one device
    // with the original's parameters crosses 28 °C after 46 steps and gets a command back.
    let files = |name: &str| certs.join(name).to_str().unwrap().to_owned();
    // (Another device id: the one above is already under remediation.)
    let out = sim(&[
        "--legacy",
        "--device-id",
        "381938913",
        "--broker",
        &format!("mqtts://localhost:{}", stack.addrs.mqtts.port()),
        "--root-ca",
        &files("ca.pem"),
        "--cert",
        &files("devices/381938912.cert.pem"),
        "--key",
        &files("devices/381938912.private.key"),
        "--noise",
        "0",
        "--update-frequency",
        "0.05",
        "--duration",
        "4",
    ]);
    let (sent, acked) = sent_acked(&out);
    assert_eq!(sent, acked);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("commands received 1 (cool 1)"),
        "{summary}"
    );

    // Without a client certificate the TLS listener refuses the connection.
    let status = mosquitto("mosquitto_pub")
        .args([
            "-h",
            "localhost",
            "-p",
            &stack.addrs.mqtts.port().to_string(),
        ])
        .arg("--cafile")
        .arg(certs.join("ca.pem"))
        .args(["-t", "monitoring-device/building-1", "-m", "{}"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "a client without a certificate got in");
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

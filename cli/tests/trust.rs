//! Only a device speaks for itself (ARCHITECTURE §4.8, issue 12), against a real
//! `fleet local` with real clients: Debian's mosquitto-clients over TCP and mutual TLS,
//! MQTT.js over WebSocket (mosquitto's clients have none), and our own `fleet sim` as the
//! legitimate device.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fleet_clock::now_ms;
use support::{Stack, acked, fleet, http_get, mosquitto, sent_acked, set, stored, tokens};

/// `fleet local cert` for these devices; returns the certificate directory.
fn certs(data: &Path, devices: &[&str]) -> PathBuf {
    let mut cmd = fleet();
    cmd.args(["local", "cert", "--data"]).arg(data);
    for d in devices {
        cmd.args(["--device", d]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    data.join("certs")
}

/// A mosquitto client's connection options: plain TCP (with or without a credential) or
/// mutual TLS with a device's certificate.
#[derive(Clone)]
enum Via<'a> {
    Tcp(u16, Option<(&'a str, &'a str)>),
    Tls(u16, &'a Path, &'a str),
}

fn connect_args(cmd: &mut Command, via: &Via<'_>) {
    match via {
        Via::Tcp(port, creds) => {
            cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
            if let Some((u, p)) = creds {
                cmd.args(["-u", u, "-P", p]);
            }
        }
        Via::Tls(port, certs, device) => {
            cmd.args(["-h", "localhost", "-p", &port.to_string()])
                .arg("--cafile")
                .arg(certs.join("ca.pem"))
                .arg("--cert")
                .arg(certs.join(format!("devices/{device}.cert.pem")))
                .arg("--key")
                .arg(certs.join(format!("devices/{device}.private.key")));
        }
    }
}

/// `mosquitto_pub` of one QoS 1 message; whether it was acknowledged.
fn publish(via: &Via<'_>, client_id: &str, topic: &str, payload: &str) -> bool {
    let mut cmd = mosquitto("mosquitto_pub");
    connect_args(&mut cmd, via);
    cmd.args(["-i", client_id, "-q", "1", "-t", topic, "-m", payload])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// MQTT.js over WebSocket (e2e/support/mqtt-client.mjs): its JSON report.
fn ws(args: serde_json::Value) -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        root.join("e2e/node_modules/mqtt").is_dir(),
        "MQTT.js is missing: run scripts/setup.sh browser (e2e/node_modules)"
    );
    let out = Command::new("node")
        .arg(root.join("e2e/support/mqtt-client.mjs"))
        .arg(args.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn reading(device: &str, seq: u64) -> String {
    format!(
        r#"{{"device":"{device}","building":"1","seq":{seq},"ts":{},"temperature":26.5,"humidity":60.0}}"#,
        now_ms()
    )
}

/// `fleet_mqtt_refusals_total` for one reason, from /metrics.
fn refusals(stack: &Stack, action: &str, reason: &str) -> u64 {
    let metrics = http_get(stack.addrs.http, "/metrics");
    let series = format!(r#"fleet_mqtt_refusals_total{{action="{action}",reason="{reason}"}} "#);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

/// A read-only observer on `#` (the loopback development mode reads anything) whose
/// output is collected when it is stopped.
fn observer(port: u16, filter: &str) -> std::process::Child {
    let child = mosquitto("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-i",
            "watcher",
            "-v",
        ])
        .args(["-t", filter])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn stop_observer(child: std::process::Child) -> String {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn spoofing_and_takeovers_are_refused_on_every_listener_and_the_real_device_is_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    let certs = certs(&data, &["d-0001", "d-0002"]);
    let creds = tokens(&data, &["--device", "d-0002"]);
    let (attacker_user, attacker_pass) = (&creds[0].0, &creds[0].1);
    let (tcp, tls, ws_port) = (
        stack.addrs.mqtt.port(),
        stack.addrs.mqtts.port(),
        stack.addrs.ws.port(),
    );
    let watch = observer(tcp, "#");

    // The real device: d-0001 with its own certificate, for a few seconds.
    let acked_file = dir.path().join("acked.ndjson");
    let root = certs.join("ca.pem");
    let cert = certs.join("devices/d-0001.cert.pem");
    let key = certs.join("devices/d-0001.private.key");
    let device = fleet()
        .args(["sim", "--device-id", "d-0001", "--update-frequency", "0.05"])
        .args(["--duration", "6", "--log-format", "json"])
        .arg("--broker")
        .arg(format!("mqtts://localhost:{tls}"))
        .arg("--root-ca")
        .arg(&root)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("--acked-file")
        .arg(&acked_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));

    let spoofs = |via: &Via<'_>, client_id: &str, tag: &str| {
        let cmd = format!(r#"{{"action":"cool","device":"d-0001","note":"SPOOF-CMD-{tag}"}}"#);
        let alarm = format!(r#"{{"alarm":"SPOOF-ALARM-{tag}"}}"#);
        assert!(
            !publish(via, client_id, "cmd/monitoring/1/d-0001/remediation", &cmd),
            "{tag} command"
        );
        assert!(
            !publish(via, client_id, "dt/monitoring/alarms", &alarm),
            "{tag} alarm"
        );
        assert!(
            !publish(
                via,
                client_id,
                "dt/monitoring/1/d-0001/telemetry",
                &reading("d-0001", 900_001)
            ),
            "{tag} cross-device reading"
        );
    };
    // TCP, development mode: the client id names the device, d-0002.
    spoofs(&Via::Tcp(tcp, None), "d-0002", "TCP");
    // mutual TLS with d-0002's own certificate.
    spoofs(&Via::Tls(tls, &certs, "d-0002"), "d-0002", "TLS");
    // WebSocket (MQTT.js) with d-0002's credential.
    let ws_url = format!("ws://127.0.0.1:{ws_port}/mqtt");
    for (topic, payload) in [
        (
            "cmd/monitoring/1/d-0001/remediation",
            String::from("SPOOF-CMD-WS"),
        ),
        ("dt/monitoring/alarms", String::from("SPOOF-ALARM-WS")),
        (
            "dt/monitoring/1/d-0001/telemetry",
            reading("d-0001", 900_002),
        ),
    ] {
        let r = ws(serde_json::json!({
            "url": ws_url, "clientId": "d-0002", "username": attacker_user, "password": attacker_pass,
            "publish": [{"topic": topic, "message": payload}],
        }));
        assert_eq!(r["connack"], 0, "{r}");
        assert_eq!(r["puback"], serde_json::json!([false]), "{topic}: {r}");
        assert_eq!(r["closed"], true, "{topic}: {r}");
    }

    // Takeovers of d-0001's client id while it is connected with its certificate.
    assert!(!publish(
        &Via::Tcp(tcp, None),
        "d-0001",
        "dt/monitoring/1/d-0001/telemetry",
        &reading("d-0001", 900_003)
    ));
    assert!(!publish(
        &Via::Tcp(tcp, Some((attacker_user, attacker_pass))),
        "d-0001",
        "dt/monitoring/1/d-0001/telemetry",
        &reading("d-0001", 900_004)
    ));
    assert!(!publish(
        &Via::Tls(tls, &certs, "d-0002"),
        "d-0001",
        "dt/monitoring/1/d-0001/telemetry",
        &reading("d-0001", 900_005)
    ));
    let r = ws(serde_json::json!({
        "url": ws_url, "clientId": "d-0001", "username": attacker_user, "password": attacker_pass,
    }));
    assert_eq!(r["connack"], 5, "{r}");
    // The WebSocket needs a credential, and pages of other origins get nowhere.
    let r = ws(serde_json::json!({"url": ws_url, "clientId": "d-0001"}));
    assert_eq!(r["connack"], 5, "{r}");
    let r = ws(serde_json::json!({
        "url": ws_url, "clientId": "d-0002", "username": attacker_user, "password": attacker_pass,
        "origin": "http://evil.example",
    }));
    assert_eq!(
        (r["connack"].is_null(), &r["closed"]),
        (true, &serde_json::json!(true)),
        "{r}"
    );

    // The real device ran undisturbed: every reading it sent was acknowledged and stored,
    // none of the attempts was, and it never had to reconnect.
    let out = device.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    let (sent, acked_n) = sent_acked(&out);
    assert!(sent > 50 && sent == acked_n, "{summary}");
    assert!(summary.contains("reconnects 0"), "{summary}");
    let watched = stop_observer(watch);

    assert_eq!(refusals(&stack, "publish", "command_topic"), 3);
    assert_eq!(refusals(&stack, "publish", "alarm_topic"), 3);
    assert_eq!(refusals(&stack, "publish", "other_device"), 3);
    assert_eq!(refusals(&stack, "connect", "client_id_in_use"), 1);
    assert_eq!(refusals(&stack, "connect", "client_id_not_allowed"), 3);
    assert_eq!(refusals(&stack, "connect", "no_credentials"), 1);
    assert_eq!(refusals(&stack, "connect", "origin_not_allowed"), 1);
    let log = stack.log();
    assert!(
        log.contains("command_topic") && log.contains("client_id_in_use"),
        "{log}"
    );

    assert!(stack.stop().success());
    let stored = stored(&data);
    assert_eq!(
        set(&stored),
        set(&acked(&acked_file)),
        "all of the device's readings, and only them"
    );
    assert!(
        stored
            .iter()
            .all(|(d, seq)| d == "d-0001" && *seq < 900_000)
    );
    // Nothing refused reached a subscriber; the device's own readings did.
    assert!(
        !watched.contains("SPOOF") && !watched.contains("900001"),
        "{watched}"
    );
    assert!(
        watched.contains("dt/monitoring/1/d-0001/telemetry"),
        "{watched}"
    );
}

#[test]
fn the_original_device_keeps_its_fixed_client_id_and_nobody_else_can_speak_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    let certs = certs(&data, &["381938912", "381938913", "d-0002"]);
    let tls = stack.addrs.mqtts.port();
    let files = |name: &str| certs.join(name).to_str().unwrap().to_owned();

    // The original device, as the Go CLI ran it: client id `monitoring-device`, its
    // certificate, the legacy topics; it crosses 28 °C after 46 steps and is cooled.
    let sim = fleet()
        .args([
            "sim",
            "--legacy",
            "--noise",
            "0",
            "--update-frequency",
            "0.05",
        ])
        .args(["--duration", "4", "--log-format", "json"])
        .arg("--broker")
        .arg(format!("mqtts://localhost:{tls}"))
        .args(["--root-ca", &files("ca.pem")])
        // (Another id than the one below, which is cooled there: one remediation each.)
        .args(["--device-id", "381938913"])
        .args(["--cert", &files("devices/381938913.cert.pem")])
        .args(["--key", &files("devices/381938913.private.key")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Meanwhile another certificate tries the same fixed client id: refused, not a takeover.
    let impostor = Via::Tls(tls, &certs, "d-0002");
    let legacy = |device: &str, t: f64| {
        format!(
            r#"{{"body":{{"device":"{device}","temperature":{t},"humidity":61.6,"action":"Monitor"}}}}"#
        )
    };
    assert!(!publish(
        &impostor,
        "monitoring-device",
        "monitoring-device/building-1",
        &legacy("381938913", 20.0)
    ));
    let out: Output = sim.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("commands received 1 (cool 1)"),
        "{summary}"
    );
    assert!(summary.contains("reconnects 0"), "{summary}");
    assert!(
        stack.log().contains(r#""client_id":"monitoring-device""#),
        "connected with the original's client id"
    );

    // A third-party client as the original device (mosquitto_pub, its certificate, the
    // fixed client id): the legacy command arrives on the legacy topic in the legacy shape
    // (observed here by a loopback reader).
    let watch = observer(stack.addrs.mqtt.port(), "monitoring-device/remediation-1");
    let original = Via::Tls(tls, &certs, "381938912");
    let stored_before = readings(&data);
    assert!(publish(
        &original,
        "monitoring-device",
        "monitoring-device/building-1",
        &legacy("381938912", 27.0)
    ));
    assert!(publish(
        &original,
        "monitoring-device",
        "monitoring-device/building-1",
        &legacy("381938912", 28.6)
    ));
    std::thread::sleep(Duration::from_millis(500));
    let watched = stop_observer(watch);
    let command_line = watched
        .lines()
        .find(|l| l.contains("Remediate"))
        .unwrap_or_else(|| panic!("{watched}"));
    let json = command_line.split_once(' ').unwrap().1;
    let command: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(command["body"]["device"], "381938912");
    assert_eq!(command["body"]["action"], "Remediate");
    // The original device cools when the reference is below its last reading.
    assert!(
        command["body"]["temperature"].as_f64().unwrap() < 28.6,
        "{command}"
    );

    // Another device's certificate cannot speak for 381938912: not under its client id...
    assert!(!publish(
        &impostor,
        "381938912",
        "monitoring-device/building-1",
        &legacy("381938912", 30.0)
    ));
    assert_eq!(refusals(&stack, "connect", "client_id_not_allowed"), 1);
    // ...and not through the legacy topic, which names no device: the message is taken and
    // acknowledged, the reading is rejected for its device is not the publisher.
    assert!(publish(
        &impostor,
        "monitoring-device",
        "monitoring-device/building-1",
        &legacy("381938912", 30.0)
    ));
    let metrics = http_get(stack.addrs.http, "/metrics");
    assert!(
        metrics.contains(r#"fleet_readings_rejected_total{reason="device_not_publisher"} 1"#),
        "{metrics}"
    );
    assert_eq!(refusals(&stack, "connect", "client_id_in_use"), 1);
    assert!(stack.stop().success());
    assert_eq!(
        readings(&data),
        stored_before + 2,
        "the original's two readings, not the impostor's"
    );
}

#[test]
fn remote_listeners_must_authenticate_and_credentials_mode_needs_them_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Refused before anything is bound.
    let out = fleet()
        .args(["local", "--data"])
        .arg(&data)
        .args([
            "--allow-remote",
            "--mqtt",
            "0.0.0.0:0",
            "--ws",
            "off",
            "--mqtts",
            "off",
            "--http",
            "off",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--mqtt-auth credentials"), "{err}");
    let out = fleet()
        .args(["local", "--data"])
        .arg(&data)
        .args(["--mqtt", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));

    // Credentials everywhere: plain TCP without one is refused, the fleet token works as
    // any one device.
    let stack = Stack::start_with(&data, &["--mqtt-auth".as_ref(), "credentials".as_ref()]);
    let tcp = stack.addrs.mqtt.port();
    assert!(!publish(
        &Via::Tcp(tcp, None),
        "d-0001",
        "dt/monitoring/1/d-0001/telemetry",
        &reading("d-0001", 1)
    ));
    assert_eq!(refusals(&stack, "connect", "no_credentials"), 1);
    let fleet_token = std::fs::read_to_string(data.join("auth/fleet.token")).unwrap();
    let via = Via::Tcp(tcp, Some(("fleet", fleet_token.trim())));
    assert!(publish(
        &via,
        "d-0001",
        "dt/monitoring/1/d-0001/telemetry",
        &reading("d-0001", 1)
    ));
    assert!(!publish(
        &via,
        "d-0001",
        "dt/monitoring/1/d-0002/telemetry",
        &reading("d-0002", 1)
    ));
    // A credential keeps working after a restart (the secret is in the data directory).
    let addrs = stack.addrs;
    assert!(stack.stop().success());
    let stack = Stack::start_at(&data, Some(addrs));
    let _ = &stack;
    let stack_tcp = Via::Tcp(addrs.mqtt.port(), Some(("fleet", fleet_token.trim())));
    assert!(publish(
        &stack_tcp,
        "d-0001",
        "dt/monitoring/1/d-0001/telemetry",
        &reading("d-0001", 2)
    ));
    assert!(stack.stop().success());
    assert_eq!(
        set(&stored(&data)),
        set(&[("d-0001".to_owned(), 1), ("d-0001".to_owned(), 2)])
    );
}

#[test]
fn a_page_gets_a_namespace_only_from_the_stacks_own_origin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    // A name that is not the stack's (DNS rebinding) gets nothing.
    let rebound = raw_get(stack.addrs.http, "/config.json", "evil.example");
    assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");
    let config: serde_json::Value =
        serde_json::from_str(&http_get(stack.addrs.http, "/config.json")).unwrap();
    let ns = config["namespace"].as_str().unwrap().to_owned();
    let user = config["mqtt"]["username"].as_str().unwrap();
    let pass = config["mqtt"]["password"].as_str().unwrap();
    assert_eq!(user, format!("page:{ns}"));
    // Another page gets another namespace.
    let other: serde_json::Value =
        serde_json::from_str(&http_get(stack.addrs.http, "/config.json")).unwrap();
    assert_ne!(other["namespace"], config["namespace"]);

    let ws_url = format!("ws://127.0.0.1:{}/mqtt", stack.addrs.ws.port());
    let origin = format!("http://127.0.0.1:{}", stack.addrs.http.port());
    let mine = format!("{ns}-0001");
    let r = ws(serde_json::json!({
        "url": ws_url, "clientId": format!("{ns}.gw0"), "username": user, "password": pass,
        "origin": origin,
        "subscribe": ["cmd/monitoring/1/+/remediation", "dt/monitoring/alarms", "cmd/monitoring/1/d-0001/remediation"],
        "publish": [
            {"topic": format!("dt/monitoring/1/{mine}/telemetry"), "message": reading(&mine, 1)},
            {"topic": "dt/monitoring/1/d-0001/telemetry", "message": reading("d-0001", 1)},
        ],
    }));
    assert_eq!(r["connack"], 0, "{r}");
    assert_eq!(r["granted"], serde_json::json!([1, 1, 128]), "{r}");
    assert_eq!(r["puback"], serde_json::json!([true, false]), "{r}");
    // Its credential is bound to its namespace's client ids.
    let r = ws(
        serde_json::json!({"url": ws_url, "clientId": "d-0001", "username": user, "password": pass}),
    );
    assert_eq!(r["connack"], 5, "{r}");
    assert!(stack.stop().success());
    assert_eq!(set(&stored(&data)), set(&[(mine, 1)]));
}

/// Rows in the stack's reading table (legacy readings have no `seq` to list them by).
fn readings(data: &Path) -> u64 {
    fleet_local::SqliteStore::open(&data.join(fleet_local::LocalStore::DB_FILE))
        .unwrap()
        .reading_count()
        .unwrap()
}

/// A GET with a chosen Host header; the whole response.
fn raw_get(addr: std::net::SocketAddr, path: &str, host: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

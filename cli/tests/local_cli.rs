//! `fleet local` at its edges: refusing bad settings clearly, its HTTP endpoints, serving a
//! built web app, and keeping its data across a clean restart.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

mod support;

use std::net::TcpListener;
use std::process::Stdio;

use support::{Stack, fleet, http_get};

fn local(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    fleet()
        .args(["local", "--data"])
        .arg(dir.path().join("data"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_busy_port_fails_the_start_with_its_name() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let off = ["--ws", "off", "--mqtts", "off", "--http", "off"];
    let out = local(&[&["--mqtt", addr.as_str()][..], &off[..]].concat());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MQTT/TCP") && err.contains(&addr) && err.contains("already in use"),
        "{err}"
    );
    let out = local(&[
        "--mqtt", "off", "--ws", "off", "--mqtts", "off", "--http", &addr,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP") && err.contains(&addr), "{err}");
}

#[test]
fn listening_beyond_loopback_needs_an_explicit_flag() {
    let out = local(&[
        "--mqtt",
        "0.0.0.0:0",
        "--ws",
        "off",
        "--mqtts",
        "off",
        "--http",
        "off",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote"), "{err}");
}

#[test]
fn http_serves_health_config_metrics_and_the_web_app() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No built app yet: a page that says how to build it.
    let stack = Stack::start(&data);
    let health: serde_json::Value =
        serde_json::from_str(&http_get(stack.addrs.http, "/healthz")).unwrap();
    assert_eq!(health["status"], "ok");
    let config: serde_json::Value =
        serde_json::from_str(&http_get(stack.addrs.http, "/config.json")).unwrap();
    assert_eq!(config["mode"], "local");
    assert_eq!(
        config["mqtt"]["url"],
        format!("ws://127.0.0.1:{}/mqtt", stack.addrs.ws.port())
    );
    assert_eq!(config["topics"]["alarms"], "dt/monitoring/alarms");
    assert!(http_get(stack.addrs.http, "/metrics").contains("fleet_readings_stored_total 0"));
    assert!(http_get(stack.addrs.http, "/").contains("not built"));
    assert!(stack.stop().success());
}

#[test]
fn a_built_app_is_served_with_single_page_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<title>fleet app</title>").unwrap();
    std::fs::write(dist.join("app.js"), "console.log(1)").unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start_with(&data, &["--dist".as_ref(), dist.as_os_str()]);
    let http = stack.addrs.http;
    assert_eq!(http_get(http, "/app.js"), "console.log(1)");
    assert!(http_get(http, "/").contains("fleet app"));
    assert!(
        http_get(http, "/devices/d-0001").contains("fleet app"),
        "client-side routes get index.html"
    );
    assert!(stack.stop().success());
}

#[test]
fn a_clean_restart_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    let out = support::sim(&[
        "--broker",
        &stack.mqtt_url(),
        "--devices",
        "3",
        "--duration",
        "2",
        "--update-frequency",
        "0.2",
    ]);
    let (sent, acked) = support::sent_acked(&out);
    assert_eq!(sent, acked);
    assert!(stack.stop().success(), "SIGTERM exits cleanly");
    let stack = Stack::start(&data);
    let stats: serde_json::Value =
        serde_json::from_str(&http_get(stack.addrs.http, "/api/stats")).unwrap();
    assert_eq!(stats["readings"].as_u64(), Some(acked), "{stats}");
    assert_eq!(stats["decisions"].as_u64(), Some(acked));
    // A second stack on the same data directory is refused while this one runs.
    let out = fleet()
        .args(["local", "--data"])
        .arg(&data)
        .args([
            "--mqtt",
            "127.0.0.1:0",
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
    assert!(String::from_utf8_lossy(&out.stderr).contains("another fleet local is using"));
    assert!(stack.stop().success());
}

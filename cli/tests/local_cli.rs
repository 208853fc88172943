//! `fleet local` at its edges: refusing bad settings clearly, its HTTP endpoints, serving a
//! built web app, and keeping its data across a clean restart.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;

use support::{Stack, fleet, http_get, http_request};

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
    let missing = http_request(http, "/fleet-web-0123456789abcdef.js", &[]);
    assert_eq!(
        missing.status, 404,
        "a missing asset is not answered with index.html"
    );
    assert_eq!(missing.header("cache-control"), None);
    assert!(stack.stop().success());
}

/// A dist/ as `scripts/build-web.sh` leaves it: content-hashed assets with `.br` and `.gz`
/// beside them (marked bodies here: the choice is what is tested; the e2e suite checks the
/// real build with curl), and `index.html` with a `.gz`.
fn precompressed_dist(dist: &Path) {
    std::fs::create_dir_all(dist).unwrap();
    std::fs::write(dist.join("index.html"), "<title>fleet app</title>").unwrap();
    std::fs::write(dist.join("index.html.gz"), "GZ index").unwrap();
    let js = dist.join("fleet-web-0123456789abcdef.js");
    std::fs::write(&js, "console.log('identity')").unwrap();
    // Sizes differ, as real variants' do: a variant's ETag is its size and mtime.
    std::fs::write(js.with_extension("js.br"), "BR js").unwrap();
    std::fs::write(js.with_extension("js.gz"), "GZ: js").unwrap();
}

#[test]
fn the_app_is_served_precompressed_by_accept_encoding_cached_and_revalidated() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    precompressed_dist(&dist);
    let stack = Stack::start_with(
        &dir.path().join("data"),
        &["--dist".as_ref(), dist.as_os_str()],
    );
    let http = stack.addrs.http;
    let asset = "/fleet-web-0123456789abcdef.js";
    let get = |path: &str, headers: &[(&str, &str)]| http_request(http, path, headers);

    // Negotiation: brotli when accepted, else gzip, else the file as it is.
    for (accept, encoding, body) in [
        ("gzip, deflate, br, zstd", Some("br"), "BR js"),
        ("br;q=1.0, gzip;q=0.5", Some("br"), "BR js"),
        ("gzip, deflate", Some("gzip"), "GZ: js"),
        ("identity", None, "console.log('identity')"),
    ] {
        let r = get(asset, &[("Accept-Encoding", accept)]);
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(r.header("content-encoding"), encoding, "{accept}");
        assert_eq!(r.body, body.as_bytes(), "{accept}");
        assert_eq!(r.header("vary"), Some("accept-encoding"), "{accept}");
        assert_eq!(
            r.header("content-type"),
            Some("text/javascript"),
            "the type is the file's, not the encoding's"
        );
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "a content-hashed asset"
        );
    }
    let plain = get(asset, &[]);
    assert_eq!(plain.header("content-encoding"), None);

    // index.html, at / and at client-side routes: compressed when there is a variant,
    // always revalidated.
    for path in ["/", "/index.html", "/devices/d-0001"] {
        let r = get(path, &[("Accept-Encoding", "gzip, br")]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(r.body, b"GZ index", "{path}");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
    }

    // Conditional requests: the validators of the variant sent.
    let first = get(asset, &[("Accept-Encoding", "br")]);
    let etag = first.header("etag").expect("an ETag").to_owned();
    let modified = first
        .header("last-modified")
        .expect("a Last-Modified")
        .to_owned();
    let again = get(
        asset,
        &[("Accept-Encoding", "br"), ("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(
        again.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let since = get(
        asset,
        &[("Accept-Encoding", "br"), ("If-Modified-Since", &modified)],
    );
    assert_eq!(since.status, 304);
    let index = get("/", &[("Accept-Encoding", "gzip")]);
    let index_etag = index.header("etag").unwrap().to_owned();
    let revalidated = get(
        "/",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &index_etag)],
    );
    assert_eq!(revalidated.status, 304);
    assert_eq!(revalidated.header("cache-control"), Some("no-cache"));
    // Another representation's validator does not match this one.
    let gz = get(
        asset,
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &etag)],
    );
    assert_eq!(gz.status, 200);
    assert_eq!(gz.body, b"GZ: js");
    assert!(stack.stop().success());
}

#[test]
fn a_dist_config_json_is_replaced_when_it_is_the_builds_default_and_served_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    precompressed_dist(&dist);
    let config = dist.join("config.json");
    let args = ["--dist".as_ref(), dist.as_os_str()];

    // The build's default: the stack answers with a namespace and credential of its own.
    std::fs::write(&config, r#"{"mode":"in-page","written_by":"build-web.sh"}"#).unwrap();
    let stack = Stack::start_with(&dir.path().join("data1"), &args);
    let r = http_request(stack.addrs.http, "/config.json", &[]);
    assert_eq!(r.status, 200);
    let issued: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(issued["mode"], "local", "{issued}");
    assert!(
        issued["mqtt"]["password"].is_string(),
        "a credential: {issued}"
    );
    assert_eq!(r.header("cache-control"), Some("no-cache, no-store"));
    let log = stack.log();
    assert!(
        log.contains("the build's default config.json is replaced"),
        "{log}"
    );
    assert!(stack.stop().success());

    // A user's file (the template's WebConfig output): served as it is, and said so.
    let web_config = r#"{"mode":"aws","region":"eu-west-1","browser_building":"browser","mqtt":{"url":"wss://x-ats.iot.eu-west-1.amazonaws.com/mqtt","endpoint":"x-ats.iot.eu-west-1.amazonaws.com"},"cognito":{"identity_pool_id":"eu-west-1:00000000-0000-0000-0000-000000000000"}}"#;
    std::fs::write(&config, web_config).unwrap();
    let stack = Stack::start_with(&dir.path().join("data2"), &args);
    let r = http_request(
        stack.addrs.http,
        "/config.json",
        &[("Accept-Encoding", "gzip, br")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, web_config.as_bytes(), "verbatim");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let etag = r.header("etag").expect("an ETag").to_owned();
    let again = http_request(
        stack.addrs.http,
        "/config.json",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let log = stack.log();
    assert!(
        log.contains("serving this file as the pages' config.json")
            && log.contains(&config.display().to_string()),
        "the log names the file: {log}"
    );
    assert!(stack.stop().success());

    // A file with a credential would hand it to every page: the start fails and says why.
    std::fs::write(
        &config,
        r#"{"mode":"local","mqtt":{"url":"ws://127.0.0.1:8083/mqtt","username":"fleet","password":"x"}}"#,
    )
    .unwrap();
    let out = local(&[
        "--mqtt",
        "off",
        "--ws",
        "off",
        "--mqtts",
        "off",
        "--http",
        "127.0.0.1:0",
        "--dist",
        dist.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.json")
            && err.contains("mqtt.password is a credential")
            && err.contains(&config.display().to_string()),
        "{err}"
    );
}

#[test]
fn logs_to_a_file_or_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stack.log");
    let mut child = fleet()
        .args(["local", "--data"])
        .arg(dir.path().join("data"))
        .args([
            "--mqtt",
            "127.0.0.1:0",
            "--ws",
            "off",
            "--mqtts",
            "off",
            "--http",
            "off",
            "--log-format",
            "text",
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut mqtt = None;
    for line in std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap())) {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("MQTT") {
            mqtt = Some(url.trim().to_owned());
        }
        if line.starts_with("Stop with Ctrl-C") {
            break;
        }
    }
    let mqtt = mqtt.expect("the stack's MQTT listener");
    // A simulator's log into a pipe, with warnings (a device that gives up on a refused
    // connection) as well as information.
    let sim = fleet()
        .args([
            "sim",
            "--devices",
            "2",
            "--duration",
            "1",
            "--update-frequency",
            "0.2",
        ])
        .args([
            "--broker",
            &mqtt,
            "--log-format",
            "text",
            "--log-level",
            "DEBUG",
        ])
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let stack_log = std::fs::read(&log).unwrap();
    for (who, bytes) in [("fleet local", &stack_log), ("fleet sim", &sim.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            text.contains("INFO") || text.contains("DEBUG"),
            "{who} logged: {text}"
        );
        assert!(!bytes.contains(&0x1b), "{who}: an ESC byte in {text:?}");
    }
}

#[test]
fn logs_on_a_terminal_are_coloured() {
    // A device that cannot connect logs warnings; util-linux's `script` gives the simulator
    // a pseudo-terminal.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let command = format!(
        "{} sim --devices 1 --duration 1 --broker mqtt://{closed} --log-format text",
        env!("CARGO_BIN_EXE_fleet"),
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("WARN"), "{text}");
    assert!(out.stdout.contains(&0x1b), "colour on a terminal: {text}");
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

//! `fleet sim --cert-dir`: a fleet over mutual TLS where each device connects with its own
//! certificate (client id = device id = certificate name), against `fleet local`.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::{Stack, acked, sim, stored};

fn issue(data: &Path, devices: &[&str]) {
    let mut c = support::fleet();
    c.args(["local", "cert", "--data"]).arg(data);
    for d in devices {
        c.args(["--device", d]);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn each_device_connects_with_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stack = Stack::start(&data);
    issue(&data, &["d-0001", "d-0002"]);
    let certs = data.join("certs");
    let acked_file = dir.path().join("acked.ndjson");
    let out = sim(&[
        "--broker",
        &format!("mqtts://localhost:{}", stack.addrs.mqtts.port()),
        "--devices",
        "2",
        "--cert-dir",
        certs.join("devices").to_str().unwrap(),
        "--root-ca",
        certs.join("ca.pem").to_str().unwrap(),
        "--update-frequency",
        "0.1",
        "--duration",
        "3",
        "--acked-file",
        acked_file.to_str().unwrap(),
    ]);
    let (sent, acked_count) = support::sent_acked(&out);
    assert!(
        sent > 0 && sent == acked_count,
        "sent {sent}, acked {acked_count}"
    );
    let acked = acked(&acked_file);
    let devices: BTreeSet<&str> = acked.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        devices,
        BTreeSet::from(["d-0001", "d-0002"]),
        "both devices were acked"
    );
    assert!(stack.stop().success());
    let stored = support::set(&stored(&data));
    for reading in &acked {
        assert!(stored.contains(reading), "{reading:?} acked but not stored");
    }
}

#[test]
fn a_missing_certificate_is_named_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No broker needed: nothing may connect anyway (port 9 is discard, never MQTT).
    let broker = "mqtts://localhost:9";
    issue(&data, &["d-0001", "d-0002"]);
    let certs = data.join("certs");
    let out = support::fleet()
        .arg("sim")
        .args([
            "--broker",
            broker,
            "--devices",
            "3",
            "--cert-dir",
            certs.join("devices").to_str().unwrap(),
            "--root-ca",
            certs.join("ca.pem").to_str().unwrap(),
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let missing = certs.join("devices/d-0003.cert.pem");
    assert!(
        stderr.contains(&format!(
            "missing certificate file for device d-0003: {}",
            missing.display()
        )),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("Starting simulation"), "{stdout}");

    // Without --root-ca the CA is looked for in the directory, and named when missing.
    let out = support::fleet()
        .arg("sim")
        .args([
            "--broker",
            broker,
            "--devices",
            "2",
            "--cert-dir",
            certs.join("devices").to_str().unwrap(),
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ca = certs.join("devices/AmazonRootCA1.pem");
    assert!(
        stderr.contains(&format!("missing root CA file {}", ca.display())),
        "{stderr}"
    );

    // Certificates over plain TCP would be ignored: refused instead.
    let out = support::fleet()
        .args(["sim", "--broker", "mqtt://127.0.0.1:9", "--cert-dir"])
        .arg(certs.join("devices"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--cert-dir needs mutual TLS"), "{stderr}");
}

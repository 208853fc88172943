//! `fleet demo` as a user runs it: the real binary, its output and exit code.

#![allow(clippy::unwrap_used)] // Tests unwrap freely; a panic is a failure.

use std::process::{Command, Output};

fn demo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleet"))
        .arg("demo")
        .args(args)
        .env_remove("VELOCITY")
        .env_remove("UPDATE_FREQUENCY")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn a_simulated_hour_remediates_every_device_and_accounts_for_every_message() {
    let out = demo(&[
        "--devices",
        "4",
        "--minutes",
        "60",
        "--bad-every",
        "250",
        "--seed",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    for word in ["COOL", "HEAT", "RELEASE", "alarm", "rejected"] {
        assert!(text.contains(word), "no {word} in:\n{text}");
    }
    // 4 devices × 1800 readings, plus one bad message every 250 readings.
    assert!(
        text.contains("messages 7228: stored 7200, duplicates 0, rejected 28"),
        "{text}"
    );
    // Each device line of the summary shows commands in both directions.
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("d-000")).collect();
    assert_eq!(rows.len(), 4, "{text}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let cool: u32 = cols[3].parse().unwrap();
        let release: u32 = cols[5].parse().unwrap();
        assert!((1..=20).contains(&cool) && release >= 1, "{row}");
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = stdout(&demo(&["--minutes", "20", "--seed", "9"]));
    let b = stdout(&demo(&["--minutes", "20", "--seed", "9"]));
    let c = stdout(&demo(&["--minutes", "20", "--seed", "10"]));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn without_remediation_no_command_is_sent() {
    let text = stdout(&demo(&["--minutes", "30", "--no-remediation"]));
    assert!(
        !text.contains("COOL") && !text.contains("RELEASE"),
        "{text}"
    );
    assert!(text.contains("remediation off"));
}

#[test]
fn legacy_devices_are_remediated_in_the_legacy_shape() {
    let text = stdout(&demo(&[
        "--devices",
        "2",
        "--legacy-devices",
        "1",
        "--minutes",
        "30",
    ]));
    assert!(text.contains("(legacy)"), "{text}");
}

#[test]
fn bad_settings_fail_with_a_clear_message() {
    let out = demo(&["--update-frequency", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid device parameters") && err.contains("update_frequency"),
        "{err}"
    );
    let out = demo(&["--devices", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--devices"));
}

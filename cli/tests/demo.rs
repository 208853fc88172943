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

/// `fleet demo` runs recorded before the fleet engine replaced its loop (see
/// `tests/golden/README.md`): the same fleets and seeds give the same output, byte for byte.
#[test]
fn the_engine_replays_the_old_loops_runs_exactly() {
    let runs: [(&str, &[&str]); 4] = [
        ("demo-hour.txt", &["--minutes", "60"]),
        (
            "demo-legacy-bad.txt",
            &[
                "--devices",
                "6",
                "--buildings",
                "3",
                "--legacy-devices",
                "2",
                "--bad-every",
                "97",
                "--seed",
                "11",
                "--minutes",
                "60",
            ],
        ),
        (
            "demo-verbose.txt",
            &[
                "--devices",
                "3",
                "--legacy-devices",
                "1",
                "--seed",
                "4",
                "--minutes",
                "3",
                "--verbose",
                "--update-frequency",
                "1",
            ],
        ),
        (
            "demo-many.txt",
            &[
                "--devices",
                "24",
                "--buildings",
                "7",
                "--seed",
                "2",
                "--minutes",
                "10",
                "--update-frequency",
                "0.5",
                "--remediation-factor",
                "0.2",
            ],
        ),
    ];
    for (file, args) in runs {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(file);
        let expected = std::fs::read_to_string(&path).unwrap();
        let out = demo(args);
        assert!(out.status.success(), "{file}");
        let got = stdout(&out);
        if got != expected {
            let line = got
                .lines()
                .zip(expected.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(got.lines().count().min(expected.lines().count()));
            panic!(
                "{file}: differs from line {}:\n  got:      {:?}\n  expected: {:?}",
                line + 1,
                got.lines().nth(line),
                expected.lines().nth(line)
            );
        }
    }
}

/// The simulated hour's commands per device, as recorded before the engine (the summary
/// table of `demo-hour.txt`).
#[test]
fn a_simulated_hour_gives_the_previous_command_counts() {
    let text = stdout(&demo(&["--minutes", "60"]));
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("d-000"))
        .map(|l| l.split_whitespace().take(6).collect())
        .collect();
    let expected = [
        ["d-0001", "1", "1800", "7", "7", "14"],
        ["d-0002", "2", "1800", "8", "7", "14"],
        ["d-0003", "1", "1800", "7", "7", "14"],
        ["d-0004", "2", "1800", "8", "7", "14"],
        ["d-0005", "1", "1800", "7", "8", "14"],
    ];
    assert_eq!(rows, expected.map(|r| r.to_vec()).to_vec(), "{text}");
    assert!(text.contains("messages 9000: stored 9000, duplicates 0, rejected 0"));
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

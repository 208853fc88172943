//! The store against a real SQLite file.

use fleet_core::policy::LastReading;
use fleet_core::{Decision, DeviceId, DeviceState, PolicyConfig, ReadingRow, decide};
use fleet_pipeline::{Batch, ReadingStore, RemediationStore};
use tempfile::TempDir;

use super::*;

const T0: u64 = 1_764_230_400_000;

fn id(s: &str) -> DeviceId {
    s.parse().unwrap()
}

fn row(device: &str, seq: u64, ts: u64) -> ReadingRow {
    ReadingRow {
        device: id(device),
        sort_key: ReadingRow::sort_key(Some(seq), Some(ts), ts + 5, "m"),
        building: "1".parse().unwrap(),
        seq: Some(seq),
        ts: Some(ts),
        received_ms: ts + 5,
        temperature: 27.25,
        humidity: 61.5,
        legacy: false,
        ttl: (ts + 5) / 1000 + 86_400,
        source_id: format!("m-{seq}"),
    }
}

fn legacy_row(device: &str, received_ms: u64, source_id: &str) -> ReadingRow {
    ReadingRow {
        sort_key: ReadingRow::sort_key(None, None, received_ms, source_id),
        seq: None,
        ts: None,
        received_ms,
        legacy: true,
        source_id: source_id.to_owned(),
        ..row(device, 0, received_ms)
    }
}

fn temp() -> (TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/fleet.sqlite3");
    (dir, path)
}

/// Decides on `row` from the store's state and records the result, as the pipeline does.
fn remediate(store: &mut SqliteStore, row: &ReadingRow, now_ms: u64) -> Decision {
    let state = store.device_state(&row.device).unwrap();
    let (next, decision) = decide(&PolicyConfig::default(), &state, &row.reading(), now_ms);
    store.record_decision(&decision, &next).unwrap();
    decision
}

#[test]
fn rows_round_trip_with_every_field() {
    let (_dir, path) = temp();
    let mut s = SqliteStore::open(&path).unwrap();
    let mut big = row("d-1", u64::MAX, T0);
    big.temperature = -12.345_678_9;
    let legacy = legacy_row("d-1", T0 + 7, "abc");
    let rows = vec![row("d-1", 1, T0 + 1_000), big, legacy];
    assert_eq!(s.insert_new(&rows).unwrap(), vec![true, true, true]);

    let mut back = s.readings_of(&id("d-1"), 10).unwrap();
    back.reverse(); // newest first → oldest first, i.e. by sort key
    let mut want = rows.clone();
    want.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    assert_eq!(back, want);
    assert_eq!(back[1].seq, None, "legacy rows keep NULL seq and ts");
    assert_eq!(s.readings_of(&id("d-1"), 1).unwrap(), vec![rows[0].clone()]);
    assert!(s.readings_of(&id("d-2"), 10).unwrap().is_empty());
}

#[test]
fn duplicates_are_ignored() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let rows = [
        row("d-1", 1, T0),
        row("d-1", 2, T0 + 2_000),
        row("d-2", 1, T0),
    ];
    assert_eq!(s.insert_new(&rows).unwrap(), vec![true; 3]);
    let mut changed = rows[1].clone();
    changed.temperature = 99.0; // same key, other content: still the first one wins
    assert_eq!(
        s.insert_new(&[rows[0].clone(), changed, rows[2].clone()])
            .unwrap(),
        vec![false; 3]
    );
    assert_eq!(s.reading_count().unwrap(), 3);
    assert_eq!(s.readings_of(&id("d-1"), 1).unwrap()[0], rows[1]);
}

#[test]
fn two_readings_in_the_same_second_are_both_stored() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let rows = [
        row("d-1", 1, T0 + 100),
        row("d-1", 2, T0 + 900),
        row("d-1", 3, T0 + 900),
    ];
    assert_eq!(s.insert_new(&rows).unwrap(), vec![true; 3]);
    let keys = s.reading_keys().unwrap();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|(d, _)| d == "d-1"));
}

#[test]
fn rollback_discards_rows_decisions_and_cached_state() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let first = row("d-1", 1, T0);
    s.begin().unwrap();
    s.insert_new(std::slice::from_ref(&first)).unwrap();
    remediate(&mut s, &first, T0);
    s.commit().unwrap();
    let committed = s.device_state(&id("d-1")).unwrap();

    let hot = ReadingRow {
        temperature: 29.0,
        ..row("d-1", 2, T0 + 2_000)
    };
    s.begin().unwrap();
    assert_eq!(
        s.insert_new(std::slice::from_ref(&hot)).unwrap(),
        vec![true]
    );
    let cooled = remediate(&mut s, &hot, T0 + 2_000);
    assert!(cooled.command.is_some());
    assert_ne!(s.device_state(&id("d-1")).unwrap(), committed);
    s.rollback();

    assert_eq!(s.reading_count().unwrap(), 1);
    assert_eq!(s.decision_count().unwrap(), 1);
    assert_eq!(s.device_state(&id("d-1")).unwrap(), committed);
    // The retried batch decides from the old state, so it commands again.
    s.begin().unwrap();
    assert_eq!(
        s.insert_new(std::slice::from_ref(&hot)).unwrap(),
        vec![true]
    );
    assert_eq!(remediate(&mut s, &hot, T0 + 2_000), cooled);
    s.commit().unwrap();
    assert_eq!(
        s.device_state_of(&id("d-1"))
            .unwrap()
            .unwrap()
            .last
            .unwrap()
            .seq,
        Some(2)
    );
}

#[test]
fn calls_outside_a_batch_commit_by_themselves() {
    let (_dir, path) = temp();
    let mut s = SqliteStore::open(&path).unwrap();
    let r = row("d-1", 1, T0);
    assert_eq!(s.insert_new(std::slice::from_ref(&r)).unwrap(), vec![true]);
    remediate(&mut s, &r, T0);
    drop(s);
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.reading_count().unwrap(), 1);
    assert_eq!(s.decision_count().unwrap(), 1);
    assert!(s.device_state_of(&id("d-1")).unwrap().is_some());
}

#[test]
fn state_and_decisions_survive_reopening() {
    let (_dir, path) = temp();
    let mut s = SqliteStore::open(&path).unwrap();
    let rows = [
        row("d-1", 1, T0),
        ReadingRow {
            temperature: 29.0,
            ..row("d-1", 2, T0 + 2_000)
        },
    ];
    s.begin().unwrap();
    s.insert_new(&rows).unwrap();
    let decisions: Vec<Decision> = rows
        .iter()
        .map(|r| remediate(&mut s, r, T0 + 3_000))
        .collect();
    s.commit().unwrap();
    let state = s.device_state(&id("d-1")).unwrap();
    assert!(state.active.is_some());
    drop(s);

    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.device_state_of(&id("d-1")).unwrap(), Some(state.clone()));
    assert_eq!(s.device_state(&id("d-1")).unwrap(), state);
    assert_eq!(s.device_state(&id("d-9")).unwrap(), DeviceState::default());
    assert_eq!(s.device_state_of(&id("d-9")).unwrap(), None);
    let back: Vec<Decision> = s
        .decisions_of(&id("d-1"), 10)
        .unwrap()
        .into_iter()
        .rev()
        .map(|r| r.decision)
        .collect();
    assert_eq!(back, decisions);
    let recent = s.recent_decisions(1).unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].decision, decisions[1]);
}

#[test]
fn the_last_state_of_a_batch_wins() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let rows: Vec<ReadingRow> = (1..=5).map(|i| row("d-1", i, T0 + i * 1_000)).collect();
    s.begin().unwrap();
    s.insert_new(&rows).unwrap();
    for r in &rows {
        remediate(&mut s, r, T0 + 9_000);
    }
    s.commit().unwrap();
    let last = s.device_state_of(&id("d-1")).unwrap().unwrap().last;
    assert_eq!(
        last,
        Some(LastReading {
            ts: T0 + 5_000,
            seq: Some(5),
            temperature: 27.25
        })
    );
}

#[test]
fn a_batch_cannot_be_nested() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.begin().unwrap();
    assert!(s.begin().is_err());
    s.rollback();
    s.begin().unwrap();
    s.commit().unwrap();
}

#[test]
fn a_file_from_a_newer_build_is_refused() {
    let (_dir, path) = temp();
    drop(SqliteStore::open(&path).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(schema::user_version(&conn).unwrap(), SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    match SqliteStore::open(&path) {
        Err(OpenError::NewerSchema {
            found, supported, ..
        }) => assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION)),
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[test]
fn reopening_keeps_data_and_does_not_migrate_again() {
    let (_dir, path) = temp();
    let mut s = SqliteStore::open(&path).unwrap();
    s.insert_new(&[row("d-1", 1, T0)]).unwrap();
    drop(s);
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.reading_count().unwrap(), 1);
    assert_eq!(s.path(), Some(path.as_path()));
}

#[test]
fn opening_a_file_that_is_not_a_database_fails_clearly() {
    let (dir, _) = temp();
    let path = dir.path().join("junk.sqlite3");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, OpenError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("junk.sqlite3"), "{err}");
}

#[test]
fn sweep_deletes_expired_readings_and_old_decisions_only() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let old = ReadingRow {
        ttl: T0 / 1000 - 1,
        ..row("d-1", 1, T0 - 10_000)
    };
    let edge = ReadingRow {
        ttl: T0 / 1000,
        ..row("d-1", 2, T0 - 5_000)
    };
    let fresh = row("d-1", 3, T0);
    s.insert_new(&[old.clone(), edge.clone(), fresh.clone()])
        .unwrap();
    remediate(&mut s, &old, T0 - 3_600_000);
    remediate(&mut s, &edge, T0 - 1_000);
    remediate(&mut s, &fresh, T0);
    let state = s.device_state_of(&id("d-1")).unwrap();

    let report = s.sweep(T0, 60_000).unwrap();
    assert_eq!(
        report,
        SweepReport {
            readings: 1,
            decisions: 1
        }
    );
    assert_eq!(s.reading_count().unwrap(), 2);
    assert_eq!(s.decision_count().unwrap(), 2);
    assert_eq!(s.device_state_of(&id("d-1")).unwrap(), state);
    assert_eq!(s.sweep(T0, 60_000).unwrap(), SweepReport::default());
}

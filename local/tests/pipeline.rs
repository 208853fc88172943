//! The pipeline end to end on `LocalStore`: SQLite on disk and the file archive.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use fleet_core::{
    Action, ArchiveObject, Decision, DeviceId, DeviceState, Incoming, ReadingRow, Telemetry, Topic,
    encode_telemetry, encode_telemetry_batch,
};
use fleet_local::LocalStore;
use fleet_pipeline::{
    ArchiveStore, Batch, Outcome, Pipeline, PipelineConfig, ReadingStore, RemediationStore,
    StoreError,
};

/// 2025-11-27T08:00:00Z
const T0: u64 = 1_764_230_400_000;

fn telemetry(device: &str, seq: u64, temperature: f64) -> (String, String) {
    let t = Telemetry::current(
        device.parse().unwrap(),
        "1".parse().unwrap(),
        seq,
        T0 + seq * 2_000,
        temperature,
        60.0,
    );
    let topic = Topic::telemetry("1".parse().unwrap(), device.parse().unwrap());
    (topic.to_string(), encode_telemetry(&t))
}

fn ingest<S>(p: &mut Pipeline, s: &mut S, msgs: &[(String, String)], now: u64) -> Outcome
where
    S: ReadingStore + RemediationStore + ArchiveStore + Batch,
{
    try_ingest(p, s, msgs, now).unwrap()
}

fn try_ingest<S>(
    p: &mut Pipeline,
    s: &mut S,
    msgs: &[(String, String)],
    now: u64,
) -> Result<Outcome, StoreError>
where
    S: ReadingStore + RemediationStore + ArchiveStore + Batch,
{
    let ids: Vec<String> = (0..msgs.len()).map(|i| format!("m{now}-{i}")).collect();
    let batch: Vec<Incoming<'_>> = msgs
        .iter()
        .zip(&ids)
        .map(|((topic, payload), id)| Incoming {
            topic,
            payload: payload.as_bytes(),
            received_ms: now,
            source_id: id,
            publisher: &fleet_core::Publisher::Unbound,
        })
        .collect();
    p.ingest(s, &batch, now)
}

fn id(s: &str) -> DeviceId {
    s.parse().unwrap()
}

fn open(dir: &Path) -> LocalStore {
    LocalStore::open(&dir.join("data")).unwrap()
}

#[test]
fn readings_are_stored_remediated_archived_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pipeline::new(PipelineConfig::default()).unwrap();
    let mut s = open(dir.path());
    let msgs = [
        telemetry("d-1", 0, 27.0),
        telemetry("d-1", 1, 28.3),
        telemetry("d-2", 0, 26.5),
        (
            "dt/monitoring/1/d-3/telemetry".to_owned(),
            "not json".to_owned(),
        ),
    ];
    let out = ingest(&mut p, &mut s, &msgs, T0 + 10_000);
    assert_eq!((out.stored.len(), out.rejected.len()), (3, 1));
    assert_eq!(out.commands.len(), 1);
    assert!(out.archive_errors.is_empty(), "{:?}", out.archive_errors);
    assert_eq!(s.db.reading_count().unwrap(), 3);
    assert_eq!(s.db.decision_count().unwrap(), 3);
    let recorded: Vec<Decision> =
        s.db.recent_decisions(10)
            .unwrap()
            .into_iter()
            .rev()
            .map(|r| r.decision)
            .collect();
    assert_eq!(recorded, out.decisions);
    let cool = s.db.decisions_of(&id("d-1"), 1).unwrap();
    assert_eq!(
        cool[0].decision.command.as_ref().map(|c| c.action),
        Some(Action::Cool)
    );
    let stored: Vec<ReadingRow> = s.db.readings_of(&id("d-1"), 10).unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].seq, Some(1), "newest first");

    // One object for the readings and one for the rejects, under Hive-style keys. The
    // rejects are written at once; the readings once the buffer is flushed.
    assert_eq!(s.archive.keys().unwrap().len(), 1);
    s.flush_archive(true).unwrap();
    let keys = s.archive.keys().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys[0].starts_with("readings/dt=2025-11-27/hour=08/"),
        "{keys:?}"
    );
    assert!(
        keys[1].starts_with("rejected/dt=2025-11-27/hour=08/"),
        "{keys:?}"
    );
    let body = String::from_utf8(s.archive.get(&keys[0]).unwrap().unwrap()).unwrap();
    assert_eq!(body.lines().count(), 3);
    let state: DeviceState = s.db.device_state_of(&id("d-1")).unwrap().unwrap();
    assert!(state.active.is_some());
    drop(s);

    // After a restart the redelivered batch is a duplicate: no second command, and the
    // state the policy remembers is the one committed before.
    let mut p = Pipeline::new(PipelineConfig::default()).unwrap();
    let mut s = open(dir.path());
    assert_eq!(s.db.device_state_of(&id("d-1")).unwrap(), Some(state));
    let again = ingest(&mut p, &mut s, &msgs, T0 + 10_000);
    assert_eq!((again.stored.len(), again.duplicates), (0, 3));
    assert!(again.commands.is_empty());
    assert_eq!(s.db.reading_count().unwrap(), 3);
    s.flush_archive(true).unwrap();
    assert_eq!(s.archive.keys().unwrap(), keys, "same batch, same objects");

    // The next hot reading finds the remediation active: no command storm.
    let next = ingest(&mut p, &mut s, &[telemetry("d-1", 2, 28.6)], T0 + 12_000);
    assert_eq!((next.stored.len(), next.commands.len()), (1, 0));
}

/// A `LocalStore` whose `record_decision` fails once after `ok` successes.
struct Failing {
    inner: LocalStore,
    ok: usize,
}

impl ReadingStore for Failing {
    fn insert_new(&mut self, rows: &[ReadingRow]) -> Result<Vec<bool>, StoreError> {
        self.inner.insert_new(rows)
    }
}

impl RemediationStore for Failing {
    fn device_state(&mut self, device: &DeviceId) -> Result<DeviceState, StoreError> {
        self.inner.device_state(device)
    }

    fn record_decision(&mut self, d: &Decision, next: &DeviceState) -> Result<(), StoreError> {
        if self.ok == 0 {
            self.ok = usize::MAX;
            return Err(StoreError::new("record decision", "injected failure"));
        }
        self.ok -= 1;
        self.inner.record_decision(d, next)
    }
}

impl ArchiveStore for Failing {
    fn put_object(&mut self, object: &ArchiveObject) -> Result<(), StoreError> {
        self.inner.put_object(object)
    }
}

impl Batch for Failing {
    fn begin(&mut self) -> Result<(), StoreError> {
        self.inner.begin()
    }
    fn commit(&mut self) -> Result<(), StoreError> {
        self.inner.commit()
    }
    fn rollback(&mut self) {
        self.inner.rollback();
    }
}

#[test]
fn a_failed_batch_leaves_nothing_and_its_retry_commands_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pipeline::new(PipelineConfig::default()).unwrap();
    let mut s = Failing {
        inner: open(dir.path()),
        ok: 2,
    };
    let msgs = [
        telemetry("d-1", 0, 28.5),
        telemetry("d-2", 0, 28.5),
        telemetry("d-3", 0, 28.5),
    ];
    let err = try_ingest(&mut p, &mut s, &msgs, T0 + 10_000).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(s.inner.db.reading_count().unwrap(), 0);
    assert_eq!(s.inner.db.decision_count().unwrap(), 0);
    assert_eq!(s.inner.db.device_state_of(&id("d-1")).unwrap(), None);
    // The cache forgot the rolled-back states too, so the retry commands every device.
    let out = ingest(&mut p, &mut s, &msgs, T0 + 10_000);
    assert_eq!((out.stored.len(), out.commands.len()), (3, 3));
    assert_eq!(s.inner.db.decision_count().unwrap(), 3);
}

#[test]
fn a_batch_message_is_stored_as_its_rows_in_sqlite_and_decided_per_reading() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pipeline::new(PipelineConfig::default()).unwrap();
    let mut s = open(dir.path());
    let readings: Vec<Telemetry> = [27.0, 27.6, 28.3, 28.5, 28.6]
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            Telemetry::current(
                id("d-1"),
                "1".parse().unwrap(),
                i as u64,
                T0 + i as u64 * 2_000,
                t,
                60.0,
            )
        })
        .collect();
    let topic = Topic::telemetry("1".parse().unwrap(), id("d-1")).to_string();
    // The batch, a bad element in a second batch, and a single reading of another device.
    let mut bad = readings[4].clone();
    bad.seq = Some(9);
    bad.temperature = 300.0;
    let msgs = [
        (topic.clone(), encode_telemetry_batch(&readings)),
        (topic.clone(), encode_telemetry_batch(&[bad])),
        telemetry("d-2", 0, 27.0),
    ];
    let out = ingest(&mut p, &mut s, &msgs, T0 + 20_000);
    assert_eq!(
        (
            out.summary.received,
            out.summary.readings,
            out.summary.batches
        ),
        (3, 7, 2)
    );
    assert_eq!((out.stored.len(), out.rejected.len()), (6, 1));
    assert_eq!(out.rejected[0].reference(), format!("m{}-1#0", T0 + 20_000));
    assert_eq!(s.db.reading_count().unwrap(), 6);
    assert_eq!(
        s.db.decision_count().unwrap(),
        6,
        "one decision per reading"
    );
    // d-1 leaves the band at seq 2: one command, not one per hot reading.
    assert_eq!(out.commands.len(), 1);
    let cool = s.db.decisions_of(&id("d-1"), 10).unwrap();
    let commanded: Vec<Option<u64>> = cool
        .iter()
        .filter(|r| r.decision.command.is_some())
        .map(|r| r.decision.reading_seq)
        .collect();
    assert_eq!(commanded, [Some(2)]);
    s.flush_archive(true).unwrap();
    let keys = s.archive.keys().unwrap();
    let body = String::from_utf8(s.archive.get(&keys[0]).unwrap().unwrap()).unwrap();
    assert_eq!(body.lines().count(), 6);

    // The batch redelivered (its ack was lost): every reading is a duplicate.
    let again = ingest(&mut p, &mut s, &msgs[..1], T0 + 30_000);
    assert_eq!((again.stored.len(), again.duplicates), (0, 5));
    assert_eq!(s.db.reading_count().unwrap(), 6);
}

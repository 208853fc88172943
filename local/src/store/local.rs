//! [`LocalStore`]: everything the pipeline writes, on one machine.

use std::path::Path;

use fleet_core::{ArchiveObject, Decision, DeviceId, DeviceState, ReadingRow};
use fleet_pipeline::{ArchiveStore, Batch, ReadingStore, RemediationStore, StoreError};

use super::{OpenError, SqliteStore};
use crate::archive::FileArchive;
use crate::buffer::ArchiveBuffer;

/// The local stack's store: the tables in SQLite, the archive as files. Implements all
/// four pipeline traits by delegation, so it goes straight into
/// [`Pipeline::ingest`](fleet_pipeline::Pipeline::ingest).
#[derive(Debug)]
pub struct LocalStore {
    /// Readings, device states, decisions.
    pub db: SqliteStore,
    /// The raw archive.
    pub archive: FileArchive,
    /// Reading archive objects not yet written (see [`ArchiveBuffer`]).
    buffer: ArchiveBuffer,
}

impl LocalStore {
    /// The database's file name in a data directory.
    pub const DB_FILE: &str = "fleet.sqlite3";
    /// The archive's directory name in a data directory.
    pub const ARCHIVE_DIR: &str = "archive";

    /// A store from its parts.
    pub fn new(db: SqliteStore, archive: FileArchive) -> LocalStore {
        LocalStore {
            db,
            archive,
            buffer: ArchiveBuffer::default(),
        }
    }

    /// Opens the store in `data_dir` (created if needed): the database at
    /// [`DB_FILE`](Self::DB_FILE), the archive under [`ARCHIVE_DIR`](Self::ARCHIVE_DIR).
    pub fn open(data_dir: &Path) -> Result<LocalStore, OpenError> {
        let db = SqliteStore::open(&data_dir.join(Self::DB_FILE))?;
        Ok(LocalStore::new(
            db,
            FileArchive::new(data_dir.join(Self::ARCHIVE_DIR)),
        ))
    }
}

impl ReadingStore for LocalStore {
    fn insert_new(&mut self, rows: &[ReadingRow]) -> Result<Vec<bool>, StoreError> {
        self.db.insert_new(rows)
    }
}

impl RemediationStore for LocalStore {
    fn device_state(&mut self, device: &DeviceId) -> Result<DeviceState, StoreError> {
        self.db.device_state(device)
    }

    fn record_decision(
        &mut self,
        decision: &Decision,
        next: &DeviceState,
    ) -> Result<(), StoreError> {
        self.db.record_decision(decision, next)
    }
}

/// Reading objects go through the [`ArchiveBuffer`]; call [`LocalStore::flush_archive`]
/// when idle and before closing.
impl ArchiveStore for LocalStore {
    fn put_object(&mut self, object: &ArchiveObject) -> Result<(), StoreError> {
        self.buffer.put(&self.archive, object)
    }
}

impl LocalStore {
    /// Writes the buffered reading archive if it is due (`force`: now).
    pub fn flush_archive(&mut self, force: bool) -> Result<(), StoreError> {
        if force {
            self.buffer.flush(&self.archive)
        } else {
            self.buffer.flush_if_due(&self.archive)
        }
    }

    /// How long until the buffered archive is due, if anything is buffered.
    pub fn archive_due_in(&self) -> Option<std::time::Duration> {
        self.buffer.due_in()
    }
}

/// The archive is outside the batch, as S3 is outside a DynamoDB transaction: its objects
/// are idempotent by key, so a retried batch rewrites the same ones.
impl Batch for LocalStore {
    fn begin(&mut self) -> Result<(), StoreError> {
        self.db.begin()
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.db.commit()
    }

    fn rollback(&mut self) {
        self.db.rollback();
    }
}

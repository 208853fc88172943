//! The durable store: readings, device states and decisions in one SQLite file.
//!
//! [`SqliteStore`] implements the pipeline's [`ReadingStore`], [`RemediationStore`] and
//! [`Batch`]; [`LocalStore`] adds the [`FileArchive`](crate::archive::FileArchive) for
//! [`ArchiveStore`](fleet_pipeline::ArchiveStore), which is what the local stack runs on.
//!
//! # Layout
//! - `schema`: opening, pragmas, schema version and migrations ([`OpenError`]).
//! - `codec`: SQL statements and the mapping of core values to columns.
//! - `cache`: the transactional in-memory cache of device states.
//! - `query`: read helpers for the stack's endpoints and tests, and retention ([`sweep`]).
//!
//! # Key decisions
//! - One connection, owned: the pipeline is synchronous and writes from one thread, so
//!   there is no pool and no lock contention. Every statement is a cached prepared one.
//! - A batch is one `BEGIN IMMEDIATE … COMMIT`. Device states recorded in a batch stay in
//!   memory until commit and are then written once per device (the last state wins, in the
//!   same transaction as the decisions, so atomicity is unchanged), instead of one upsert
//!   per decision.
//! - Calls outside a batch still work: each runs in its own transaction.
//!
//! [`sweep`]: SqliteStore::sweep

mod cache;
mod checkpoint;
mod codec;
mod local;
mod query;
mod schema;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use fleet_core::{Decision, DeviceId, DeviceState, ReadingRow};
use fleet_pipeline::{Batch, ReadingStore, RemediationStore, StoreError};
use rusqlite::{Connection, OptionalExtension};

use self::cache::StateCache;

pub use self::checkpoint::{CheckpointReport, Checkpointer};
pub use self::local::LocalStore;
pub use self::query::{DecisionRecord, SweepReport};
pub use self::schema::{OpenError, SCHEMA_VERSION};

/// Readings, device states and the decision log in a SQLite database.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    /// `None` for an in-memory database.
    path: Option<PathBuf>,
    states: StateCache,
    /// Whether [`Batch::begin`] opened a transaction that is not yet ended.
    in_batch: bool,
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file and its directory if needed and
    /// migrating its schema to [`SCHEMA_VERSION`]. Fails with [`OpenError::NewerSchema`]
    /// for a file written by a newer build.
    ///
    /// The file is in WAL mode with `synchronous=NORMAL`: a committed batch survives the
    /// process crashing or being killed, not necessarily a power loss.
    pub fn open(path: &Path) -> Result<SqliteStore, OpenError> {
        let conn = schema::open_file(path)?;
        Ok(SqliteStore::with(conn, Some(path.to_path_buf())))
    }

    /// A private, empty in-memory database (for tests and the demo).
    pub fn open_in_memory() -> Result<SqliteStore, OpenError> {
        Ok(SqliteStore::with(schema::open_memory()?, None))
    }

    fn with(conn: Connection, path: Option<PathBuf>) -> SqliteStore {
        SqliteStore {
            conn,
            path,
            states: StateCache::default(),
            in_batch: false,
        }
    }

    /// The database file, `None` if in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `f` in the open batch, or, outside a batch, in a transaction of its own: the
    /// traits promise each call is all or nothing.
    fn atomically<T>(
        &mut self,
        f: impl FnOnce(&mut SqliteStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.in_batch {
            return f(self);
        }
        self.begin()?;
        match f(self) {
            Ok(value) => {
                self.commit()?;
                Ok(value)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    fn insert_rows(&self, rows: &[ReadingRow]) -> Result<Vec<bool>, StoreError> {
        let op = "insert readings";
        let mut stmt = self
            .conn
            .prepare_cached(codec::INSERT_READING)
            .map_err(|e| StoreError::new(op, e))?;
        rows.iter()
            .map(|row| {
                codec::insert_reading(&mut stmt, row)
                    .map(|inserted| inserted == 1)
                    .map_err(|e| StoreError::new(op, e))
            })
            .collect()
    }

    /// The device's committed state from the table, `None` if it has none.
    fn load_state(&self, device: &DeviceId) -> Result<Option<DeviceState>, StoreError> {
        let op = "read device state";
        let json: Option<String> = self
            .conn
            .prepare_cached(codec::SELECT_STATE)
            .and_then(|mut stmt| stmt.query_row([device.as_str()], |r| r.get(0)).optional())
            .map_err(|e| StoreError::new(op, e))?;
        json.map(|j| codec::state_from_json(&j))
            .transpose()
            .map_err(|e| StoreError::new(op, e))
    }

    fn insert_decision(&self, decision: &Decision) -> Result<(), StoreError> {
        let op = "record decision";
        let mut stmt = self
            .conn
            .prepare_cached(codec::INSERT_DECISION)
            .map_err(|e| StoreError::new(op, e))?;
        codec::insert_decision(&mut stmt, decision).map_err(|e| StoreError::new(op, e))
    }

    /// Writes the batch's pending states, one upsert per device.
    fn flush_states(&self) -> Result<(), StoreError> {
        let op = "write device states";
        if self.states.pending().len() == 0 {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare_cached(codec::UPSERT_STATE)
            .map_err(|e| StoreError::new(op, e))?;
        for (device, p) in self.states.pending() {
            let json = codec::state_to_json(&p.state).map_err(|e| StoreError::new(op, e))?;
            stmt.execute((device.as_str(), json, p.updated_ms.cast_signed()))
                .map_err(|e| StoreError::new(op, e))?;
        }
        Ok(())
    }
}

impl ReadingStore for SqliteStore {
    fn insert_new(&mut self, rows: &[ReadingRow]) -> Result<Vec<bool>, StoreError> {
        self.atomically(|s| s.insert_rows(rows))
    }
}

impl RemediationStore for SqliteStore {
    fn device_state(&mut self, device: &DeviceId) -> Result<DeviceState, StoreError> {
        if let Some(state) = self.states.get(device) {
            return Ok(state.clone());
        }
        // States are written only at commit, so the table holds the committed state even
        // inside a batch, and it is safe to cache as such. A device never seen is cached
        // too (as the default), so it is not looked up again.
        let state = self.load_state(device)?.unwrap_or_default();
        self.states.load(device.clone(), state.clone());
        Ok(state)
    }

    fn record_decision(
        &mut self,
        decision: &Decision,
        next: &DeviceState,
    ) -> Result<(), StoreError> {
        self.atomically(|s| {
            s.insert_decision(decision)?;
            s.states.stage(&decision.device, next, decision.at_ms);
            Ok(())
        })
    }
}

impl Batch for SqliteStore {
    /// `BEGIN IMMEDIATE`: takes the write lock now, so the batch cannot fail halfway for
    /// want of it. Fails if a batch is already open.
    fn begin(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| StoreError::new("begin batch", e))?;
        self.in_batch = true;
        Ok(())
    }

    /// Writes the batch's device states, then `COMMIT`s. If either fails, the batch is
    /// rolled back (the pipeline does not call [`Batch::rollback`] after a failed commit),
    /// so the store is never left inside a half-done transaction and the batch can be
    /// retried whole.
    fn commit(&mut self) -> Result<(), StoreError> {
        let committed = self.flush_states().and_then(|()| {
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| StoreError::new("commit batch", e))
        });
        match committed {
            Ok(()) => {
                self.in_batch = false;
                self.states.commit();
                Ok(())
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// `ROLLBACK`, and forgets the device states recorded in the batch.
    fn rollback(&mut self) {
        self.states.discard();
        self.in_batch = false;
        // SQLite may already have rolled back by itself (e.g. after a full disk).
        if !self.conn.is_autocommit()
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            // Nothing to return it to (the trait's rollback is infallible, as it runs on
            // error paths); the next `begin` will fail and report the stuck transaction.
            tracing::error!(error = %e, "rollback failed");
        }
    }
}

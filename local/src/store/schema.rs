//! Opening a database: pragmas, the schema and its forward migrations.
//!
//! The schema version lives in `PRAGMA user_version` (0 for a new file). Each migration
//! runs in its own transaction together with the version bump, so a crash mid-migration
//! leaves the file at the previous version, and the next open runs it again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

/// Schema migrations, in order: `MIGRATIONS[i]` takes the file from version `i` to `i + 1`.
/// Never edit a released entry; append a new one.
const MIGRATIONS: &[&str] = &[V1];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// How long a statement waits for another connection's lock (e.g. a `sqlite3` shell
/// inspecting the file) before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1. Integers hold `u64` values bit for bit (see `codec`). `readings` has no rowid:
/// its primary key is the table's only lookup, so a rowid would be a second B-tree to
/// write for nothing.
///
/// Both big tables are laid out for the ingest path, which writes tens of thousands of rows
/// a second: `readings` is keyed `(sk, device)` (the same uniqueness as DynamoDB's
/// `(device, sk)`), and `sk` starts with the time, so inserts land at the right edge of the
/// B-tree instead of on one page per device; `decisions` is indexed by time only. Keyed by
/// device first, every batch dirtied about two pages per reading and ingest ran at half the
/// speed. Per-device reads (tests, diagnostics) scan instead.
const V1: &str = "
CREATE TABLE readings (
    device      TEXT    NOT NULL,
    sk          TEXT    NOT NULL,
    building    TEXT    NOT NULL,
    seq         INTEGER NULL,
    ts          INTEGER NULL,
    received_ms INTEGER NOT NULL,
    temperature REAL    NOT NULL,
    humidity    REAL    NOT NULL,
    legacy      INTEGER NOT NULL,
    ttl         INTEGER NOT NULL,
    source_id   TEXT    NOT NULL,
    PRIMARY KEY (sk, device)
) WITHOUT ROWID;

CREATE TABLE device_state (
    device     TEXT    NOT NULL PRIMARY KEY,
    state      TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE decisions (
    id                   INTEGER PRIMARY KEY,
    device               TEXT    NOT NULL,
    building             TEXT    NULL,
    at_ms                INTEGER NOT NULL,
    reading_seq          INTEGER NULL,
    reading_ts           INTEGER NOT NULL,
    temperature          REAL    NOT NULL,
    humidity             REAL    NOT NULL,
    previous_temperature REAL    NULL,
    reason               TEXT    NOT NULL,
    action               TEXT    NULL,
    command              TEXT    NULL,
    legacy               INTEGER NOT NULL
);
CREATE INDEX decisions_at ON decisions (at_ms);
";

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database's directory could not be created.
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed to open or configure the file.
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        /// The file (`:memory:` for an in-memory database).
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer Fleet: this build does not know its schema and must
    /// not write to it.
    #[error(
        "database {} has schema version {found}, newer than this build's {supported}: \
         upgrade Fleet or use another data directory",
        path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A migration failed; the file is left at `from`.
    #[error("cannot migrate database {} from schema version {from}: {source}", path.display())]
    Migrate {
        /// The file.
        path: PathBuf,
        /// The version the migration started from.
        from: u32,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

/// Opens (creating it and its directory if needed) and prepares the database at `path`.
pub(crate) fn open_file(path: &Path) -> Result<Connection, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let conn = Connection::open(path).map_err(|source| OpenError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    prepare(conn, path)
}

/// A private in-memory database with the schema.
pub(crate) fn open_memory() -> Result<Connection, OpenError> {
    let path = Path::new(":memory:");
    let conn = Connection::open_in_memory().map_err(|source| OpenError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    prepare(conn, path)
}

fn prepare(conn: Connection, path: &Path) -> Result<Connection, OpenError> {
    configure(&conn).map_err(|source| OpenError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Durability, locking and cache settings.
///
/// `journal_mode=WAL` with `synchronous=NORMAL`: a commit appends to the write-ahead log
/// without an fsync, so it is in the OS page cache when `COMMIT` returns. That survives the
/// process crashing or being killed (`kill -9`), which is what the local stack promises;
/// a power loss or kernel panic may lose the last commits (never corrupt the file). `FULL`
/// would fsync every batch and cost most of the throughput for a guarantee a development
/// stack does not need.
///
/// The cache and checkpoint sizes are for throughput: a cache that holds the hot pages
/// avoids re-reading them, and checkpointing every 8192 log pages instead of SQLite's 1000
/// copies a hot page into the file once per checkpoint instead of after nearly every batch.
/// The stack moves checkpoints off the writer altogether ([`super::Checkpointer`]); this
/// setting is what a lone connection uses.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // Returns the mode in effect; in-memory databases stay in `memory` mode, which is fine.
    let _mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Negative: KiB, so 16 MiB whatever the page size.
    conn.pragma_update(None, "cache_size", -16_384)?;
    conn.pragma_update(None, "wal_autocheckpoint", 8_192)?;
    // After a checkpoint, shrink the log back to 64 MiB rather than keep its peak size.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(())
}

/// The file's schema version.
pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    loop {
        let from = user_version(conn).map_err(|source| OpenError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if from > SCHEMA_VERSION {
            return Err(OpenError::NewerSchema {
                path: path.to_path_buf(),
                found: from,
                supported: SCHEMA_VERSION,
            });
        }
        let Some(sql) = MIGRATIONS.get(from as usize) else {
            return Ok(());
        };
        if let Err(source) = migrate_step(conn, from, sql) {
            // A failed statement can leave the transaction open; close it so the file
            // stays at `from` and the connection is not left holding the write lock.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(OpenError::Migrate {
                path: path.to_path_buf(),
                from,
                source,
            });
        }
    }
}

/// Runs the migration from version `from`, unless another connection ran it first.
fn migrate_step(conn: &Connection, from: u32, sql: &str) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock before the version is read again, so two processes
    // opening a new file at once do not both migrate: the second waits, then sees the new
    // version and commits nothing. `user_version` is part of the transaction.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    if user_version(conn)? == from {
        conn.execute_batch(sql)?;
        conn.pragma_update(None, "user_version", from + 1)?;
    }
    conn.execute_batch("COMMIT")
}

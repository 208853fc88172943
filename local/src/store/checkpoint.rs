//! WAL checkpoints on a connection of their own.
//!
//! A checkpoint copies the write-ahead log back into the database file and then fsyncs it:
//! tens of milliseconds for a large log. Run by the writer, it stalls the batch in progress,
//! and with it every device waiting for an ack and every command waiting to go out; that
//! was the tail of the remediation round trip. Here the writer's automatic checkpoints are
//! turned off and a second connection checkpoints in `PASSIVE` mode, which never blocks
//! the writer, on a thread of its own.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::{OpenError, SqliteStore};

/// Log size at which the writer checkpoints by itself anyway, in pages, should the
/// checkpointer fall behind or stop: bounds the log at about 1 GiB.
const WRITER_BACKSTOP_PAGES: i64 = 262_144;

/// Checkpoints one database from its own connection.
#[derive(Debug)]
pub struct Checkpointer {
    conn: Connection,
}

/// What one checkpoint did, from `PRAGMA wal_checkpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Pages in the log.
    pub log_pages: i64,
    /// Pages copied into the database so far.
    pub checkpointed: i64,
}

impl SqliteStore {
    /// Hands checkpoints to a [`Checkpointer`] on a second connection; this connection
    /// then checkpoints only as a backstop.
    pub fn hand_off_checkpoints(&self) -> Result<Checkpointer, OpenError> {
        let path = self.path().map(Path::to_path_buf).unwrap_or_default();
        let open_err = |source| OpenError::Open {
            path: path.clone(),
            source,
        };
        self.conn
            .pragma_update(None, "wal_autocheckpoint", WRITER_BACKSTOP_PAGES)
            .map_err(open_err)?;
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        Ok(Checkpointer { conn })
    }
}

impl Checkpointer {
    /// Copies what it can of the log into the database without waiting for the writer.
    pub fn checkpoint(&self) -> rusqlite::Result<CheckpointReport> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok(CheckpointReport {
                    log_pages: row.get(1)?,
                    checkpointed: row.get(2)?,
                })
            })
    }
}

//! Reads for the stack's HTTP endpoints and tests, and retention.
//!
//! They read committed data straight from the tables (never the state cache's pending
//! entries), so they show what a restart would find.

use fleet_core::{Decision, DeviceId, DeviceState, ReadingRow};
use fleet_pipeline::StoreError;
use rusqlite::{Params, Row};

use super::{SqliteStore, codec};

/// A recorded decision with its row id (increasing in the order decisions were recorded).
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    /// Row id in the decision log.
    pub id: i64,
    /// The decision as recorded.
    pub decision: Decision,
}

/// What one [`SqliteStore::sweep`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Readings past their `ttl`.
    pub readings: u64,
    /// Decisions older than the retention.
    pub decisions: u64,
}

impl SqliteStore {
    /// Readings stored. Counts the whole table, so it costs a scan.
    pub fn reading_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM readings", "count readings")
    }

    /// Decisions in the log. Counts the whole table, so it costs a scan.
    pub fn decision_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM decisions", "count decisions")
    }

    /// A device's newest `limit` readings, newest first (by sort key: device time, or
    /// arrival for legacy readings).
    pub fn readings_of(
        &self,
        device: &DeviceId,
        limit: usize,
    ) -> Result<Vec<ReadingRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM readings WHERE device = ?1 ORDER BY sk DESC LIMIT ?2",
            codec::READING_COLUMNS
        );
        self.rows(
            &sql,
            (device.as_str(), sql_limit(limit)),
            codec::reading_from_row,
            "read readings",
        )
    }

    /// The `(device, sort key)` of every reading, sorted: the table's exact contents for
    /// tests and consistency checks.
    pub fn reading_keys(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.rows(
            "SELECT device, sk FROM readings ORDER BY device, sk",
            (),
            |r| Ok((r.get(0)?, r.get(1)?)),
            "read reading keys",
        )
    }

    /// The newest `limit` decisions of all devices, newest (last recorded) first.
    pub fn recent_decisions(&self, limit: usize) -> Result<Vec<DecisionRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM decisions ORDER BY id DESC LIMIT ?1",
            codec::DECISION_COLUMNS
        );
        self.rows(&sql, (sql_limit(limit),), record, "read decisions")
    }

    /// A device's newest `limit` decisions, newest first (by decision time, then order of
    /// recording).
    pub fn decisions_of(
        &self,
        device: &DeviceId,
        limit: usize,
    ) -> Result<Vec<DecisionRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM decisions WHERE device = ?1 ORDER BY at_ms DESC, id DESC LIMIT ?2",
            codec::DECISION_COLUMNS
        );
        self.rows(
            &sql,
            (device.as_str(), sql_limit(limit)),
            record,
            "read decisions",
        )
    }

    /// A device's committed remediation state; `None` if none was ever recorded.
    pub fn device_state_of(&self, device: &DeviceId) -> Result<Option<DeviceState>, StoreError> {
        self.load_state(device)
    }

    /// Deletes readings whose `ttl` (seconds since the epoch) is before `now_ms`, as
    /// DynamoDB's TTL does, and decisions recorded more than `decision_retention_ms` before
    /// `now_ms`. Device states are never deleted: they are the policy's memory, one row per
    /// device. Joins the open batch if there is one; otherwise each delete is atomic.
    pub fn sweep(
        &mut self,
        now_ms: u64,
        decision_retention_ms: u64,
    ) -> Result<SweepReport, StoreError> {
        let now_s = (now_ms / 1000).cast_signed();
        let cutoff_ms = now_ms.saturating_sub(decision_retention_ms).cast_signed();
        let readings = self
            .conn
            .execute("DELETE FROM readings WHERE ttl < ?1", (now_s,))
            .map_err(|e| StoreError::new("sweep readings", e))?;
        let decisions = self
            .conn
            .execute("DELETE FROM decisions WHERE at_ms < ?1", (cutoff_ms,))
            .map_err(|e| StoreError::new("sweep decisions", e))?;
        Ok(SweepReport {
            readings: readings as u64,
            decisions: decisions as u64,
        })
    }

    fn count(&self, sql: &str, op: &'static str) -> Result<u64, StoreError> {
        self.conn
            .query_row(sql, (), |r| r.get::<_, i64>(0))
            .map(i64::cast_unsigned)
            .map_err(|e| StoreError::new(op, e))
    }

    fn rows<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
        op: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| StoreError::new(op, e))?;
        let rows = stmt
            .query_map(params, map)
            .map_err(|e| StoreError::new(op, e))?;
        rows.collect::<rusqlite::Result<Vec<T>>>()
            .map_err(|e| StoreError::new(op, e))
    }
}

fn record(r: &Row<'_>) -> rusqlite::Result<DecisionRecord> {
    codec::decision_from_row(r).map(|(id, decision)| DecisionRecord { id, decision })
}

/// SQLite's `LIMIT` is an `i64`; anything larger means "no limit" anyway.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

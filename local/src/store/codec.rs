//! Conversions between the core's values and SQL rows.
//!
//! SQLite integers are `i64`; the core's are `u64`. They are stored bit for bit
//! ([`u64::cast_signed`]), so every value round-trips, including a `seq` above `i64::MAX`
//! (which devices may send). Such values sort negative in SQL; nothing orders or filters
//! by `seq`, and times (`ts`, `received_ms`, `at_ms`, `ttl`) from real clocks are far below
//! `i64::MAX`.

use fleet_core::{BuildingId, Command, Decision, DeviceState, IdError, ReadingRow, Reason};
use rusqlite::types::Type;
use rusqlite::{Row, Statement, params};

/// Inserts a reading unless its `(device, sk)` exists: one row changed means new.
pub(crate) const INSERT_READING: &str = "INSERT OR IGNORE INTO readings \
    (device, sk, building, seq, ts, received_ms, temperature, humidity, legacy, ttl, source_id) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// The columns [`reading_from_row`] reads, in order.
pub(crate) const READING_COLUMNS: &str =
    "device, sk, building, seq, ts, received_ms, temperature, humidity, legacy, ttl, source_id";

/// Appends a decision to the log.
pub(crate) const INSERT_DECISION: &str = "INSERT INTO decisions \
    (device, building, at_ms, reading_seq, reading_ts, temperature, humidity, \
     previous_temperature, reason, action, command, legacy) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// The columns [`decision_from_row`] reads, in order, after `id`.
pub(crate) const DECISION_COLUMNS: &str = "id, device, building, at_ms, reading_seq, reading_ts, \
    temperature, humidity, previous_temperature, reason, command, legacy";

/// Writes a device's state, replacing the previous one.
pub(crate) const UPSERT_STATE: &str = "INSERT INTO device_state (device, state, updated_ms) \
    VALUES (?1, ?2, ?3) \
    ON CONFLICT (device) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms";

/// Reads a device's state (JSON).
pub(crate) const SELECT_STATE: &str = "SELECT state FROM device_state WHERE device = ?1";

/// Runs [`INSERT_READING`] for `row`; returns the number of rows inserted (0 or 1).
pub(crate) fn insert_reading(
    stmt: &mut Statement<'_>,
    row: &ReadingRow,
) -> rusqlite::Result<usize> {
    stmt.execute(params![
        row.device.as_str(),
        row.sort_key,
        row.building.as_str(),
        row.seq.map(u64::cast_signed),
        row.ts.map(u64::cast_signed),
        row.received_ms.cast_signed(),
        row.temperature,
        row.humidity,
        row.legacy,
        row.ttl.cast_signed(),
        row.source_id,
    ])
}

/// A reading from a row of [`READING_COLUMNS`].
pub(crate) fn reading_from_row(r: &Row<'_>) -> rusqlite::Result<ReadingRow> {
    Ok(ReadingRow {
        device: id(r, 0)?,
        sort_key: r.get(1)?,
        building: id(r, 2)?,
        seq: r.get::<_, Option<i64>>(3)?.map(i64::cast_unsigned),
        ts: r.get::<_, Option<i64>>(4)?.map(i64::cast_unsigned),
        received_ms: r.get::<_, i64>(5)?.cast_unsigned(),
        temperature: r.get(6)?,
        humidity: r.get(7)?,
        legacy: r.get(8)?,
        ttl: r.get::<_, i64>(9)?.cast_unsigned(),
        source_id: r.get(10)?,
    })
}

/// Runs [`INSERT_DECISION`] for `d`.
pub(crate) fn insert_decision(stmt: &mut Statement<'_>, d: &Decision) -> rusqlite::Result<()> {
    let command = d
        .command
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    stmt.execute(params![
        d.device.as_str(),
        d.building.as_ref().map(|b| b.as_str()),
        d.at_ms.cast_signed(),
        d.reading_seq.map(u64::cast_signed),
        d.reading_ts.cast_signed(),
        d.temperature,
        d.humidity,
        d.previous_temperature,
        d.reason.code(),
        d.command.as_ref().map(|c| c.action.as_str()),
        command,
        d.legacy,
    ])?;
    Ok(())
}

/// A decision and its id from a row of [`DECISION_COLUMNS`].
pub(crate) fn decision_from_row(r: &Row<'_>) -> rusqlite::Result<(i64, Decision)> {
    let building: Option<String> = r.get(2)?;
    let building = building
        .map(BuildingId::try_from)
        .transpose()
        .map_err(|e| conversion(2, Type::Text, e))?;
    let command: Option<String> = r.get(10)?;
    let command = command
        .map(|json| serde_json::from_str::<Command>(&json))
        .transpose()
        .map_err(|e| conversion(10, Type::Text, e))?;
    let decision = Decision {
        device: id(r, 1)?,
        building,
        at_ms: r.get::<_, i64>(3)?.cast_unsigned(),
        reading_seq: r.get::<_, Option<i64>>(4)?.map(i64::cast_unsigned),
        reading_ts: r.get::<_, i64>(5)?.cast_unsigned(),
        temperature: r.get(6)?,
        humidity: r.get(7)?,
        previous_temperature: r.get(8)?,
        reason: reason(r, 9)?,
        command,
        legacy: r.get(11)?,
    };
    Ok((r.get(0)?, decision))
}

/// A device state from its JSON.
pub(crate) fn state_from_json(json: &str) -> serde_json::Result<DeviceState> {
    serde_json::from_str(json)
}

/// A device state as JSON.
pub(crate) fn state_to_json(state: &DeviceState) -> serde_json::Result<String> {
    serde_json::to_string(state)
}

/// A validated id (device or building) from a text column: a hand-edited file cannot
/// smuggle a bad id into topics or paths.
fn id<T>(r: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T: TryFrom<String, Error = IdError>,
{
    let s: String = r.get(idx)?;
    T::try_from(s).map_err(|e| conversion(idx, Type::Text, e))
}

/// A [`Reason`] from its [`Reason::code`], which is its serde name.
fn reason(r: &Row<'_>, idx: usize) -> rusqlite::Result<Reason> {
    let code: String = r.get(idx)?;
    serde_json::from_value(serde_json::Value::String(code))
        .map_err(|e| conversion(idx, Type::Text, e))
}

fn conversion(
    idx: usize,
    ty: Type,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_code_reads_back() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for r in Reason::ALL {
            let back = conn
                .query_row("SELECT ?1", [r.code()], |row| reason(row, 0))
                .unwrap();
            assert_eq!(back, r);
        }
    }
}

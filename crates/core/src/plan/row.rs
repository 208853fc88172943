//! The table row of one accepted reading (§4.4).

use serde::{Deserialize, Serialize};

use crate::id::{BuildingId, DeviceId};
use crate::policy::Reading;

/// One accepted reading, as stored in the readings table.
///
/// Keyed by `device` (partition) and `sort_key`, which is unique per reading and the same
/// for a redelivered one, so adapters write with "put if absent" and duplicates are
/// idempotent. (The original keyed by the unix second and lost readings.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadingRow {
    /// Partition key.
    pub device: DeviceId,
    /// Sort key: `{ts:013}#{seq:010}` for current readings, `{received_ms:013}#L{source_id}`
    /// for legacy-shaped ones (which carry neither `ts` nor `seq`).
    pub sort_key: String,
    /// The building, from the payload or (legacy) the topic.
    pub building: BuildingId,
    /// Device counter (`None` for legacy-shaped readings).
    pub seq: Option<u64>,
    /// Device clock, ms (`None` for legacy-shaped readings).
    pub ts: Option<u64>,
    /// Arrival time at the broker or queue, ms.
    pub received_ms: u64,
    /// Temperature, °C.
    pub temperature: f64,
    /// Relative humidity, %.
    pub humidity: f64,
    /// Whether the reading came on a legacy topic: commands then go back on the legacy
    /// remediation topic, in the legacy shape.
    pub legacy: bool,
    /// Expiry, seconds since the Unix epoch (DynamoDB TTL attribute).
    pub ttl: u64,
    /// The message's id in its transport (SQS message id, MQTT arrival counter).
    pub source_id: String,
}

impl ReadingRow {
    /// The sort key of a reading: device time and counter when present (zero-padded so keys
    /// sort in time order), else arrival time and transport id, which tell apart two legacy
    /// readings arriving in the same millisecond.
    pub fn sort_key(
        seq: Option<u64>,
        ts: Option<u64>,
        received_ms: u64,
        source_id: &str,
    ) -> String {
        match (ts, seq) {
            (Some(ts), Some(seq)) => format!("{ts:013}#{seq:010}"),
            _ => format!("{received_ms:013}#L{source_id}"),
        }
    }

    /// The reading's time: the device's `ts`, or the arrival for legacy-shaped readings.
    pub fn time_ms(&self) -> u64 {
        self.ts.unwrap_or(self.received_ms)
    }

    /// The reading as the remediation policy sees it.
    pub fn reading(&self) -> Reading<'_> {
        Reading {
            device: &self.device,
            building: Some(&self.building),
            seq: self.seq,
            ts: self.time_ms(),
            temperature: self.temperature,
            humidity: self.humidity,
            legacy: self.legacy,
        }
    }

    /// The normalized reading as one JSON line (for the NDJSON archive).
    pub fn to_json_line(&self) -> String {
        // Strings, integers, floats (non-finite ones as null) and booleans always serialize.
        serde_json::to_string(&self.archive_line()).unwrap_or_default()
    }

    /// What the archive keeps of the row: the reading and where it came from, in this
    /// order (the table's sort key and TTL are the table's business). Serialized straight
    /// into the batch's object: no intermediate value or line per reading.
    pub(crate) fn archive_line(&self) -> ArchiveLine<'_> {
        ArchiveLine {
            device: self.device.as_str(),
            building: self.building.as_str(),
            seq: self.seq,
            ts: self.ts,
            received_ms: self.received_ms,
            temperature: self.temperature,
            humidity: self.humidity,
            legacy: self.legacy,
            source_id: &self.source_id,
        }
    }
}

/// One reading's line in the NDJSON archive (see [`ReadingRow::archive_line`]).
#[derive(Serialize)]
pub(crate) struct ArchiveLine<'a> {
    device: &'a str,
    building: &'a str,
    seq: Option<u64>,
    ts: Option<u64>,
    received_ms: u64,
    temperature: f64,
    humidity: f64,
    legacy: bool,
    source_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys() {
        assert_eq!(
            ReadingRow::sort_key(Some(42), Some(1_764_230_400_123), 9, "m"),
            "1764230400123#0000000042"
        );
        assert_eq!(
            ReadingRow::sort_key(None, None, 1_764_230_400_123, "abc"),
            "1764230400123#Labc"
        );
        assert_eq!(
            ReadingRow::sort_key(Some(1), Some(5), 0, ""),
            "0000000000005#0000000001"
        );
    }

    #[test]
    fn archive_lines_keep_their_fields_in_order() {
        let mut row = ReadingRow {
            device: "d-0001".try_into().unwrap(),
            sort_key: "1764230400123#0000000042".into(),
            building: "1".try_into().unwrap(),
            seq: Some(42),
            ts: Some(1_764_230_400_123),
            received_ms: 1_764_230_400_200,
            temperature: 27.35,
            humidity: 61.0,
            legacy: false,
            ttl: 1_764_316_800,
            source_id: "m-\"1\"".into(),
        };
        assert_eq!(
            row.to_json_line(),
            r#"{"device":"d-0001","building":"1","seq":42,"ts":1764230400123,"received_ms":1764230400200,"temperature":27.35,"humidity":61.0,"legacy":false,"source_id":"m-\"1\""}"#
        );
        row.seq = None;
        row.humidity = f64::NAN;
        let body =
            crate::plan::archive::ndjson_of([row.archive_line(), row.archive_line()].into_iter());
        let line = r#"{"device":"d-0001","building":"1","seq":null,"ts":1764230400123,"received_ms":1764230400200,"temperature":27.35,"humidity":null,"legacy":false,"source_id":"m-\"1\""}"#;
        assert_eq!(body, format!("{line}\n{line}\n"));
    }
}

//! Archive objects: one NDJSON object per batch under a Hive-style key (§4.4).

use chrono::{DateTime, Datelike, Timelike, Utc};

/// Content type of archive objects.
pub const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";

/// One object to write to the archive bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveObject {
    /// Object key, e.g. `readings/dt=2025-11-27/hour=08/1764230400123-….ndjson`.
    pub key: String,
    /// NDJSON body: one JSON document per line, each line ending in `\n`.
    pub body: String,
}

/// The key of a batch's object under `prefix` (`readings` or `rejected`).
///
/// Date and hour are the UTC ones of the batch's first arrival (Hive-style partitions, so
/// Athena and lifecycle rules can prune by day). The name is that arrival plus a hash of the
/// batch's transport ids: a redelivered batch gets the same key and overwrites its object
/// instead of duplicating it, and only digits and hex ever reach the key.
pub(crate) fn key(prefix: &str, first_received_ms: u64, source_ids: &[&str]) -> String {
    let at = utc(first_received_ms);
    format!(
        "{prefix}/dt={:04}-{:02}-{:02}/hour={:02}/{first_received_ms:013}-{:016x}.ndjson",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        fnv1a(source_ids),
    )
}

/// `ms` since the Unix epoch as a UTC time. Times beyond chrono's range (year 262143)
/// cannot come from a real clock; they give the epoch rather than an error.
pub fn utc(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// 64-bit FNV-1a over the ids, each followed by 0xFF (a byte UTF-8 never contains, so
/// `["ab"]` and `["a", "b"]` hash differently). Stable across platforms and versions,
/// unlike `std`'s hasher.
fn fnv1a(ids: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in ids
        .iter()
        .flat_map(|id| id.bytes().chain(std::iter::once(0xFF)))
    {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// An NDJSON body of `items`, each serialized straight into the body as one line.
pub(crate) fn ndjson_of<T: serde::Serialize>(items: impl Iterator<Item = T>) -> String {
    let mut body = Vec::new();
    for item in items {
        let start = body.len();
        match serde_json::to_writer(&mut body, &item) {
            Ok(()) => body.push(b'\n'),
            // Cannot happen for plain data; should it, no half line is left behind.
            Err(_) => body.truncate(start),
        }
    }
    // serde_json writes UTF-8 only.
    String::from_utf8(body).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// An NDJSON body from lines.
pub(crate) fn ndjson(lines: impl Iterator<Item = String>) -> String {
    let mut body = String::new();
    for line in lines {
        body.push_str(&line);
        body.push('\n');
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_hive_style_in_utc() {
        // 2025-11-27T08:00:00.123Z
        let k = key("readings", 1_764_230_400_123, &["m1", "m2"]);
        assert!(
            k.starts_with("readings/dt=2025-11-27/hour=08/1764230400123-"),
            "{k}"
        );
        assert!(k.ends_with(".ndjson"));
        let name = k.rsplit('/').next().unwrap();
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'.' || b.is_ascii_lowercase())
        );
        assert_eq!(k, key("readings", 1_764_230_400_123, &["m1", "m2"]));
        assert_ne!(k, key("readings", 1_764_230_400_123, &["m1m2"]));
    }

    #[test]
    fn absurd_times_fall_back_to_the_epoch() {
        assert!(key("rejected", u64::MAX, &[]).starts_with("rejected/dt=1970-01-01/hour=00/"));
    }

    #[test]
    fn ndjson_ends_every_line() {
        assert_eq!(
            ndjson(["{}".to_string(), "[]".to_string()].into_iter()),
            "{}\n[]\n"
        );
    }
}

//! Series as files: CSV for spreadsheets, NDJSON for scripts, of one device (each card
//! offers both) or of the whole fleet in one file (the cloud panel). The text is built here
//! so it is tested natively. Times are given twice: `time` in ISO 8601 (UTC, ms) for people
//! and spreadsheets, `ts` in ms since the Unix epoch for scripts.

use std::fmt::Write as _;

use chrono::{Datelike, Timelike};

use crate::series::Series;

/// The CSV header (the columns of [`csv`]).
pub const CSV_HEADER: &str = "device,seq,time,ts,temperature,counterfactual,humidity,command";

/// `ms` since the Unix epoch as ISO 8601 in UTC with milliseconds,
/// `2025-11-27T08:00:00.000Z`.
pub fn iso_time(ms: u64) -> String {
    let at = fleet_core::plan::utc(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        ms % 1000
    )
}

/// The kept points of `device`'s series, one row each, oldest first. `command` holds the
/// action of a command that arrived just before that reading, if any.
pub fn csv(device: &str, series: &Series) -> String {
    let mut out = String::with_capacity(64 * (series.len() + 1));
    out.push_str(CSV_HEADER);
    out.push('\n');
    csv_rows(device, series, &mut out);
    out
}

/// [`csv`]'s rows without the header, appended to `out`.
pub fn csv_rows(device: &str, series: &Series, out: &mut String) {
    for p in series.points() {
        let command = command_at(series, p.seq).unwrap_or("");
        // Device ids are validated ([A-Za-z0-9_-]), so no field needs quoting.
        let _ = writeln!(
            out,
            "{device},{},{},{},{},{},{},{command}",
            p.seq,
            iso_time(p.ts),
            p.ts,
            p.temperature,
            p.counterfactual,
            p.humidity
        );
    }
}

/// The whole fleet in one file: the header, then each device's rows (as [`csv`] or
/// [`ndjson`] give them), as parts to join. A part per device keeps a big fleet's file
/// out of one giant string.
pub fn fleet<'a>(
    csv_format: bool,
    devices: impl Iterator<Item = (&'a str, &'a Series)>,
) -> Vec<String> {
    let mut parts = Vec::new();
    if csv_format {
        parts.push(format!("{CSV_HEADER}\n"));
    }
    for (id, series) in devices {
        let mut part = String::new();
        if csv_format {
            csv_rows(id, series, &mut part);
        } else {
            part = ndjson(id, series);
        }
        parts.push(part);
    }
    parts
}

/// The same rows as JSON objects, one per line.
pub fn ndjson(device: &str, series: &Series) -> String {
    let mut out = String::with_capacity(128 * series.len());
    for p in series.points() {
        // Written by hand rather than through `serde_json::Value` (smaller wasm): ids are
        // plain `[A-Za-z0-9_-]`, numbers are finite (the device model validates its
        // parameters), and Rust's shortest round-trip float format is valid JSON.
        let command = match command_at(series, p.seq) {
            Some(action) => format!("\"{action}\""),
            None => "null".to_owned(),
        };
        let _ = writeln!(
            out,
            "{{\"device\":\"{device}\",\"seq\":{},\"time\":\"{}\",\"ts\":{},\"temperature\":{},\"counterfactual\":{},\"humidity\":{},\"command\":{command}}}",
            p.seq,
            iso_time(p.ts),
            p.ts,
            p.temperature,
            p.counterfactual,
            p.humidity
        );
    }
    out
}

/// The action of the last command marked at `seq` (it arrived before that reading).
fn command_at(series: &Series, seq: u64) -> Option<&'static str> {
    series
        .markers()
        .filter(|m| m.seq == seq)
        .last()
        .map(|m| m.action.as_str())
}

#[cfg(test)]
mod tests {
    use fleet_core::payload::Action;

    use super::*;
    use crate::series::{Marker, Point};

    fn series() -> Series {
        let mut s = Series::new(10);
        for seq in 0..3 {
            s.push(Point {
                seq,
                ts: 1_764_230_400_000 + seq * 2000,
                temperature: 27.5 + seq as f64,
                counterfactual: 27.5,
                humidity: 60.25,
            });
        }
        s.mark(Marker {
            at_ms: 0,
            seq: 2,
            action: Action::Cool,
        });
        s
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_point_with_its_command() {
        let text = csv("dev-0001", &series());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            "dev-0001,0,2025-11-27T08:00:00.000Z,1764230400000,27.5,27.5,60.25,"
        );
        assert_eq!(
            lines[3],
            "dev-0001,2,2025-11-27T08:00:04.000Z,1764230404000,29.5,27.5,60.25,cool"
        );
    }

    #[test]
    fn times_are_iso_8601_in_utc_with_milliseconds() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(1_764_230_400_123), "2025-11-27T08:00:00.123Z");
        assert_eq!(iso_time(951_825_599_999), "2000-02-29T11:59:59.999Z");
    }

    #[test]
    fn the_whole_fleet_is_one_file_with_one_header_and_every_devices_rows() {
        let (a, b) = (series(), series());
        let parts = fleet(true, [("d-1", &a), ("d-2", &b)].into_iter());
        let text = parts.concat();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 3 + 3);
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines.iter().filter(|l| **l == CSV_HEADER).count(), 1);
        assert!(lines[1].starts_with("d-1,0,") && lines[4].starts_with("d-2,0,"));
        let json = fleet(false, [("d-1", &a), ("d-2", &b)].into_iter()).concat();
        let rows: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[5]["device"], "d-2");
        assert_eq!(rows[5]["time"], "2025-11-27T08:00:04.000Z");
        assert_eq!(rows[5]["ts"], 1_764_230_404_000_u64);
    }

    #[test]
    fn ndjson_lines_parse_back_with_the_same_fields() {
        let text = ndjson("dev-0001", &series());
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1]["seq"], 1);
        assert_eq!(rows[1]["temperature"], 28.5);
        assert_eq!(rows[1]["command"], serde_json::Value::Null);
        assert_eq!(rows[2]["command"], "cool");
        assert_eq!(rows[0]["device"], "dev-0001");
    }
}

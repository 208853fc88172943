//! A device's series as a file: CSV for spreadsheets, NDJSON for scripts. The page offers
//! both on each card; the text is built here so it is tested natively.

use std::fmt::Write as _;

use crate::series::Series;

/// The CSV header (the columns of [`csv`]).
pub const CSV_HEADER: &str = "device,seq,ts,temperature,counterfactual,humidity,command";

/// The kept points of `device`'s series, one row each, oldest first. `command` holds the
/// action of a command that arrived just before that reading, if any.
pub fn csv(device: &str, series: &Series) -> String {
    let mut out = String::with_capacity(64 * (series.len() + 1));
    out.push_str(CSV_HEADER);
    out.push('\n');
    for p in series.points() {
        let command = command_at(series, p.seq).unwrap_or("");
        // Device ids are validated ([A-Za-z0-9_-]), so no field needs quoting.
        let _ = writeln!(
            out,
            "{device},{},{},{},{},{},{command}",
            p.seq, p.ts, p.temperature, p.counterfactual, p.humidity
        );
    }
    out
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
            "{{\"device\":\"{device}\",\"seq\":{},\"ts\":{},\"temperature\":{},\"counterfactual\":{},\"humidity\":{},\"command\":{command}}}",
            p.seq, p.ts, p.temperature, p.counterfactual, p.humidity
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
        assert_eq!(lines[1], "dev-0001,0,1764230400000,27.5,27.5,60.25,");
        assert_eq!(lines[3], "dev-0001,2,1764230404000,29.5,27.5,60.25,cool");
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

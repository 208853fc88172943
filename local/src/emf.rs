//! The EMF log: the CloudWatch Embedded Metric Format lines the worker plan produces, one
//! file per UTC day under `DATA/logs/`, as the Lambda's log group would hold them.
//!
//! They go to a file rather than the console because there is one line per building per
//! batch: at thousands of readings per second that would drown the stack's own log.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use chrono::DateTime;

/// Appends EMF lines to `emf-YYYY-MM-DD.log`.
#[derive(Debug)]
pub struct EmfLog {
    dir: PathBuf,
    day: String,
    file: Option<BufWriter<File>>,
}

fn day_of(now_ms: u64) -> String {
    DateTime::from_timestamp_millis(now_ms.cast_signed()).map_or_else(
        || String::from("unknown"),
        |t| t.format("%Y-%m-%d").to_string(),
    )
}

impl EmfLog {
    /// A log in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> EmfLog {
        EmfLog {
            dir: dir.into(),
            day: String::new(),
            file: None,
        }
    }

    /// Appends lines, switching files at midnight UTC, and flushes.
    pub fn write(&mut self, now_ms: u64, lines: &[String]) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let day = day_of(now_ms);
        if self.file.is_none() || day != self.day {
            fs::create_dir_all(&self.dir)?;
            let path = self.dir.join(format!("emf-{day}.log"));
            self.file = Some(BufWriter::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            ));
            self.day = day;
        }
        if let Some(file) = &mut self.file {
            for line in lines {
                file.write_all(line.as_bytes())?;
                file.write_all(b"\n")?;
            }
            file.flush()?;
        }
        Ok(())
    }

    /// Deletes day files older than `retention_days`; returns how many.
    pub fn sweep(&self, now_ms: u64, retention_days: u32) -> std::io::Result<usize> {
        let oldest = day_of(now_ms.saturating_sub(u64::from(retention_days) * 86_400_000));
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(day) = name
                .to_str()
                .and_then(|n| n.strip_prefix("emf-")?.strip_suffix(".log"))
            else {
                continue;
            };
            // ISO dates compare as strings.
            if day < oldest.as_str() {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_one_file_per_day_and_old_days_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EmfLog::new(dir.path());
        let day1 = 1_764_230_400_000; // 2025-11-27
        log.write(day1, &["{\"a\":1}".into()]).unwrap();
        log.write(day1 + 1000, &["{\"a\":2}".into()]).unwrap();
        log.write(day1 + 86_400_000, &["{\"b\":1}".into()]).unwrap();
        let first = fs::read_to_string(dir.path().join("emf-2025-11-27.log")).unwrap();
        assert_eq!(first, "{\"a\":1}\n{\"a\":2}\n");
        assert!(dir.path().join("emf-2025-11-28.log").exists());
        assert_eq!(log.sweep(day1 + 3 * 86_400_000, 2).unwrap(), 1);
        assert!(!dir.path().join("emf-2025-11-27.log").exists());
    }
}

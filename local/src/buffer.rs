//! Coalescing the reading archive across batches, as Kinesis Firehose buffers for S3.
//!
//! The worker plan makes one archive object per batch. At 10,000 readings a second the
//! ingest thread's batches are small, and one file per batch meant hundreds of file
//! creations a second: 40% of the ingest thread, and the tail of the remediation round
//! trip. So consecutive reading objects of the same partition go into one file, written
//! when it reaches `max_bytes`, when it is `max_age` old, when the partition changes, and
//! at shutdown. The file keeps the first object's key, so keys stay unique and Hive-style.
//!
//! Rejected messages are written at once: they are rare, and the archive is the only
//! place that keeps their raw payloads. A `kill -9` can lose at most `max_age` of the
//! *reading* archive, never a reading: those are in the database first.

use std::time::{Duration, Instant};

use fleet_core::ArchiveObject;
use fleet_pipeline::StoreError;

use crate::archive::FileArchive;

/// Reading archive objects waiting to be written as one file.
#[derive(Debug)]
pub struct ArchiveBuffer {
    pending: Option<Pending>,
    max_bytes: usize,
    max_age: Duration,
}

#[derive(Debug)]
struct Pending {
    key: String,
    body: String,
    since: Instant,
}

impl Default for ArchiveBuffer {
    fn default() -> Self {
        ArchiveBuffer::new(1 << 20, Duration::from_secs(1))
    }
}

/// The Hive partition of a key: everything up to the last `/`.
fn partition(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(p, _)| p)
}

impl ArchiveBuffer {
    /// A buffer that writes at `max_bytes` or `max_age`, whichever comes first.
    pub fn new(max_bytes: usize, max_age: Duration) -> ArchiveBuffer {
        ArchiveBuffer {
            pending: None,
            max_bytes,
            max_age,
        }
    }

    /// Buffers a reading object (or writes a rejected one at once).
    pub fn put(&mut self, archive: &FileArchive, object: &ArchiveObject) -> Result<(), StoreError> {
        if !object.key.starts_with("readings/") {
            return write(archive, &object.key, object.body.as_bytes());
        }
        if self
            .pending
            .as_ref()
            .is_some_and(|p| partition(&p.key) != partition(&object.key))
        {
            self.flush(archive)?;
        }
        match &mut self.pending {
            Some(p) => p.body.push_str(&object.body),
            None => {
                self.pending = Some(Pending {
                    key: object.key.clone(),
                    body: object.body.clone(),
                    since: Instant::now(),
                })
            }
        }
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.body.len() >= self.max_bytes)
        {
            self.flush(archive)?;
        }
        Ok(())
    }

    /// Writes the pending file if it is old enough.
    pub fn flush_if_due(&mut self, archive: &FileArchive) -> Result<(), StoreError> {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.since.elapsed() >= self.max_age)
        {
            self.flush(archive)?;
        }
        Ok(())
    }

    /// How long until the pending file is due, if there is one.
    pub fn due_in(&self) -> Option<Duration> {
        self.pending
            .as_ref()
            .map(|p| self.max_age.saturating_sub(p.since.elapsed()))
    }

    /// Writes the pending file now.
    pub fn flush(&mut self, archive: &FileArchive) -> Result<(), StoreError> {
        match self.pending.take() {
            Some(p) => write(archive, &p.key, p.body.as_bytes()),
            None => Ok(()),
        }
    }
}

fn write(archive: &FileArchive, key: &str, body: &[u8]) -> Result<(), StoreError> {
    archive
        .put(key, body)
        .map_err(|e| StoreError::new("write archive object", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, body: &str) -> ArchiveObject {
        ArchiveObject {
            key: key.to_owned(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn reading_objects_coalesce_until_the_partition_changes() {
        let dir = tempfile::tempdir().unwrap();
        let archive = FileArchive::new(dir.path());
        let mut buffer = ArchiveBuffer::new(1 << 20, Duration::from_secs(60));
        let a = "readings/dt=2026-11-27/hour=11/1-a.ndjson";
        buffer.put(&archive, &object(a, "1\n")).unwrap();
        buffer
            .put(
                &archive,
                &object("readings/dt=2026-11-27/hour=11/2-b.ndjson", "2\n"),
            )
            .unwrap();
        assert!(archive.keys().unwrap().is_empty(), "nothing written yet");
        buffer
            .put(
                &archive,
                &object("readings/dt=2026-11-27/hour=12/3-c.ndjson", "3\n"),
            )
            .unwrap();
        assert_eq!(archive.get(a).unwrap().unwrap(), b"1\n2\n");
        buffer.flush(&archive).unwrap();
        assert_eq!(archive.keys().unwrap().len(), 2);
    }

    #[test]
    fn rejected_objects_are_written_at_once_and_size_and_age_flush() {
        let dir = tempfile::tempdir().unwrap();
        let archive = FileArchive::new(dir.path());
        let mut buffer = ArchiveBuffer::new(4, Duration::from_millis(0));
        buffer
            .put(
                &archive,
                &object("rejected/dt=2026-11-27/hour=11/1-x.ndjson", "bad\n"),
            )
            .unwrap();
        assert_eq!(archive.keys().unwrap().len(), 1);
        buffer
            .put(
                &archive,
                &object("readings/dt=2026-11-27/hour=11/1-a.ndjson", "12345\n"),
            )
            .unwrap();
        assert_eq!(archive.keys().unwrap().len(), 2, "over max_bytes: written");
        buffer
            .put(
                &archive,
                &object("readings/dt=2026-11-27/hour=11/2-a.ndjson", "1\n"),
            )
            .unwrap();
        assert_eq!(buffer.due_in(), Some(Duration::ZERO));
        buffer.flush_if_due(&archive).unwrap();
        assert_eq!(archive.keys().unwrap().len(), 3);
        assert_eq!(buffer.due_in(), None);
    }
}

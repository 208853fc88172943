//! The raw archive as files: the local stand-in for the S3 bucket (§4.4).
//!
//! [`FileArchive`] writes each [`ArchiveObject`] to a file under a root directory at exactly
//! its key (`readings/dt=2025-11-27/hour=08/….ndjson`), so the tree looks like the bucket
//! and the same tools (or `aws s3 sync`) can read it. [`FileArchive::sweep`] plays the
//! bucket's lifecycle rule and deletes old `dt=` partitions.
//!
//! # Key decisions
//! - Writes are atomic: the body goes to a temporary file in the object's directory, which
//!   is then renamed over the key, so a reader or a crash never sees half an object, and
//!   rewriting a key (a redelivered batch) replaces the object whole.
//! - No fsync, matching the database's `synchronous=NORMAL`: an object survives the process
//!   being killed, not necessarily a power loss.
//! - Keys come from the core, but a key is never trusted as a path: anything that could
//!   leave the root or name something odd is refused ([`KeyError`]).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;
use fleet_core::ArchiveObject;
use fleet_pipeline::{ArchiveStore, StoreError};

/// Longest key accepted, in bytes (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;

const DAY_MS: i64 = 86_400_000;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is empty.
    #[error("key is empty")]
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`].
    #[error("key is {len} bytes long, at most {MAX_KEY_LEN} allowed")]
    TooLong {
        /// Its length, bytes.
        len: usize,
    },
    /// The key holds a character outside `[A-Za-z0-9=/_.-]` (this includes `\`).
    #[error("key has {ch:?} at byte {at}; only A-Z, a-z, 0-9, '=', '/', '_', '.' and '-' allowed")]
    BadChar {
        /// The character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// The key is absolute, or has an empty segment (`a//b`, trailing `/`).
    #[error("key has an empty segment (absolute, `//` or trailing `/`)")]
    EmptySegment,
    /// The key contains `..`.
    #[error("key contains `..`")]
    DotDot,
    /// A segment starts with `.`: such names are reserved for temporary files.
    #[error("key has a segment starting with `.`")]
    HiddenSegment,
}

/// An archive operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The key cannot be a path under the root.
    #[error("bad archive key {key:?}: {source}")]
    BadKey {
        /// The key (it only holds safe characters if the error is not `BadChar`; printed
        /// with `{:?}` for that reason).
        key: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A file system operation failed.
    #[error("{operation} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "write".
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Archive objects as files under a root directory.
#[derive(Debug, Clone)]
pub struct FileArchive {
    root: PathBuf,
}

impl FileArchive {
    /// An archive under `root`. Nothing is touched until the first write, which creates
    /// the directories it needs.
    pub fn new(root: impl Into<PathBuf>) -> FileArchive {
        FileArchive { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `key`, after checking the key.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, ArchiveError> {
        check_key(key).map_err(|source| ArchiveError::BadKey {
            key: key.to_owned(),
            source,
        })?;
        Ok(self.root.join(key))
    }

    /// Writes `body` at `key` atomically, replacing any object with that key.
    pub fn put(&self, key: &str, body: &[u8]) -> Result<(), ArchiveError> {
        let path = self.path_of(key)?;
        // A checked key has at least one non-empty segment, so there is a parent and a name.
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(ArchiveError::BadKey {
                key: key.to_owned(),
                source: KeyError::Empty,
            });
        };
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        let tmp = dir.join(temp_name(name.to_string_lossy().as_ref()));
        let written = write_new(&tmp, body)
            .and_then(|()| fs::rename(&tmp, &path).map_err(io_error("rename into place", &path)));
        if written.is_err() {
            // Best effort: the error being returned matters more than a stray temp file,
            // which starts with `.` and is ignored by `keys` and removed with its partition.
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    /// The object at `key`, `None` if there is none.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        let path = self.path_of(key)?;
        match fs::read(&path) {
            Ok(body) => Ok(Some(body)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path)(e)),
        }
    }

    /// Every object's key, sorted. Temporary files and symbolic links are skipped.
    pub fn keys(&self) -> Result<Vec<String>, ArchiveError> {
        let mut keys = Vec::new();
        collect_keys(&self.root, "", &mut keys)?;
        keys.sort_unstable();
        Ok(keys)
    }

    /// Deletes the day partitions (`{prefix}/dt=YYYY-MM-DD/` directories, one level below
    /// the root) whose every object is older than `retention_days` at `now_ms`, standing in
    /// for the bucket's lifecycle expiry. A partition holds the objects of one UTC day, so
    /// it goes once `retention_days` have passed since that day's end; with `0`, every day
    /// before today's goes. Returns the number of partitions deleted.
    ///
    /// Only real directories are visited: a symbolic link is never followed, so nothing
    /// outside the root is deleted. Entries that are not `dt=` partitions are left alone.
    pub fn sweep(&self, now_ms: u64, retention_days: u32) -> Result<usize, ArchiveError> {
        let now_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let retention_ms = i64::from(retention_days).saturating_mul(DAY_MS);
        let mut deleted = 0;
        for prefix in real_dirs(&self.root)? {
            for partition in real_dirs(&prefix)? {
                let expired = partition
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(partition_end_ms)
                    .is_some_and(|end| end.saturating_add(retention_ms) <= now_ms);
                if expired {
                    fs::remove_dir_all(&partition)
                        .map_err(io_error("delete partition", &partition))?;
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}

impl ArchiveStore for FileArchive {
    fn put_object(&mut self, object: &ArchiveObject) -> Result<(), StoreError> {
        self.put(&object.key, object.body.as_bytes())
            .map_err(|e| StoreError::new("archive object", e))
    }
}

/// Checks that `key` is a relative path of safe, non-empty segments under the root.
pub fn check_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if let Some((at, ch)) = key
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '=' | '/' | '_' | '.' | '-')))
    {
        return Err(KeyError::BadChar { ch, at });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong { len: key.len() });
    }
    if key.contains("..") {
        return Err(KeyError::DotDot);
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return Err(KeyError::EmptySegment);
        }
        if segment.starts_with('.') {
            return Err(KeyError::HiddenSegment);
        }
    }
    Ok(())
}

/// A temporary name next to `name`, unique in this process (counter) and across
/// processes (pid), starting with `.` so no key can name it.
fn temp_name(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.{}-{n}.tmp", std::process::id())
}

/// Writes a file that must not exist yet (`create_new`: never truncates someone else's).
fn write_new(path: &Path, body: &[u8]) -> Result<(), ArchiveError> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(body))
        .map_err(io_error("write", path))
}

/// The end (next midnight, UTC, in ms) of the day a `dt=YYYY-MM-DD` name stands for.
fn partition_end_ms(name: &str) -> Option<i64> {
    let date = name.strip_prefix("dt=")?;
    let mut parts = date.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if (y.len(), m.len(), d.len()) != (4, 2, 2) {
        return None;
    }
    let day = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
    let end = day.succ_opt()?.and_hms_opt(0, 0, 0)?.and_utc();
    Some(end.timestamp_millis())
}

/// The real (not symlinked) subdirectories of `dir`; none if `dir` does not exist.
fn real_dirs(dir: &Path) -> Result<Vec<PathBuf>, ArchiveError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", dir)(e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("list", dir))?;
        // `DirEntry::file_type` does not follow symbolic links.
        let ty = entry
            .file_type()
            .map_err(io_error("inspect", &entry.path()))?;
        if ty.is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

fn collect_keys(dir: &Path, prefix: &str, keys: &mut Vec<String>) -> Result<(), ArchiveError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_error("list", dir))?;
        let name = entry.file_name();
        // Names that are not valid key segments (temp files, stray files) are not objects.
        let Some(name) = name.to_str().filter(|n| check_key(n).is_ok()) else {
            continue;
        };
        let key = format!("{prefix}{name}");
        let ty = entry
            .file_type()
            .map_err(io_error("inspect", &entry.path()))?;
        if ty.is_dir() {
            collect_keys(&entry.path(), &format!("{key}/"), keys)?;
        } else if ty.is_file() {
            keys.push(key);
        }
    }
    Ok(())
}

fn io_error(operation: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io {
        operation,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_keys_are_accepted() {
        assert_eq!(
            check_key("readings/dt=2025-11-27/hour=08/1764230400123-00ff.ndjson"),
            Ok(())
        );
        assert_eq!(
            check_key("rejected/dt=1970-01-01/hour=00/a_b.ndjson"),
            Ok(())
        );
    }

    #[test]
    fn unsafe_keys_are_refused_with_a_reason() {
        let cases = [
            ("", KeyError::Empty),
            ("/etc/passwd", KeyError::EmptySegment),
            ("a//b", KeyError::EmptySegment),
            ("a/b/", KeyError::EmptySegment),
            ("../x", KeyError::DotDot),
            ("a/../../x", KeyError::DotDot),
            ("a/..b", KeyError::DotDot),
            ("a\\b", KeyError::BadChar { ch: '\\', at: 1 }),
            ("a b", KeyError::BadChar { ch: ' ', at: 1 }),
            ("é", KeyError::BadChar { ch: 'é', at: 0 }),
            ("C:x", KeyError::BadChar { ch: ':', at: 1 }),
            ("a/.hidden", KeyError::HiddenSegment),
            (".", KeyError::HiddenSegment),
        ];
        for (key, want) in cases {
            assert_eq!(check_key(key), Err(want), "{key:?}");
        }
        let long = "a".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            check_key(&long),
            Err(KeyError::TooLong {
                len: MAX_KEY_LEN + 1
            })
        );
    }

    #[test]
    fn partition_names_parse_strictly() {
        // 2025-11-28T00:00:00Z
        assert_eq!(partition_end_ms("dt=2025-11-27"), Some(1_764_288_000_000));
        for bad in [
            "dt=2025-13-01",
            "dt=2025-1-01",
            "hour=08",
            "dt=",
            "dt=2025-11-27x",
        ] {
            assert_eq!(partition_end_ms(bad), None, "{bad}");
        }
    }
}

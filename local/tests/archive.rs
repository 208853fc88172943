//! `FileArchive` on a real directory.
#![allow(clippy::unwrap_used)]

use fleet_core::ArchiveObject;
use fleet_local::archive::{ArchiveError, FileArchive, KeyError};
use fleet_pipeline::ArchiveStore;

/// 2025-11-27T08:00:00.123Z
const NOW: u64 = 1_764_230_400_123;
const DAY: u64 = 86_400_000;

fn key(prefix: &str, day: &str, name: &str) -> String {
    format!("{prefix}/dt={day}/hour=08/{name}.ndjson")
}

#[test]
fn objects_are_written_at_their_keys_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = FileArchive::new(dir.path().join("archive"));
    let k = key("readings", "2025-11-27", "1764230400123-00000000000000ff");
    let object = ArchiveObject {
        key: k.clone(),
        body: "{\"a\":1}\n{\"a\":2}\n".to_owned(),
    };
    a.put_object(&object).unwrap();
    a.put("rejected/dt=2025-11-27/hour=08/x.ndjson", b"{}\n")
        .unwrap();

    let path = dir.path().join("archive").join(&k);
    assert_eq!(std::fs::read_to_string(path).unwrap(), object.body);
    assert_eq!(a.get(&k).unwrap().unwrap(), object.body.as_bytes());
    assert_eq!(a.get("readings/none.ndjson").unwrap(), None);
    assert_eq!(
        a.keys().unwrap(),
        vec![k, "rejected/dt=2025-11-27/hour=08/x.ndjson".to_owned()]
    );
}

#[test]
fn rewriting_a_key_replaces_the_object_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = FileArchive::new(dir.path());
    let k = key("readings", "2025-11-27", "same");
    a.put(&k, b"a much longer first body\n").unwrap();
    a.put(&k, b"short\n").unwrap();
    assert_eq!(a.get(&k).unwrap().unwrap(), b"short\n");
    let parent = dir.path().join(&k);
    let entries: Vec<_> = std::fs::read_dir(parent.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec!["same.ndjson"]);
}

#[test]
fn bad_keys_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut a = FileArchive::new(&root);
    for bad in ["../escape.ndjson", "/abs.ndjson", "a\\b", "a/./b", "a b"] {
        let err = a.put(bad, b"x").unwrap_err();
        assert!(matches!(err, ArchiveError::BadKey { .. }), "{bad}: {err}");
        assert!(err.to_string().contains("bad archive key"), "{err}");
    }
    let err = a
        .put_object(&ArchiveObject {
            key: "readings/../../etc/passwd".to_owned(),
            body: String::new(),
        })
        .unwrap_err();
    let source = std::error::Error::source(&err).unwrap();
    assert!(source.to_string().contains("`..`"), "{source}");
    assert!(matches!(
        a.get("x/../y").unwrap_err(),
        ArchiveError::BadKey {
            source: KeyError::DotDot,
            ..
        }
    ));
    assert!(!root.exists(), "nothing may be created for a refused key");
    assert!(!dir.path().join("escape.ndjson").exists());
}

#[test]
fn sweep_deletes_old_partitions_and_keeps_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let a = FileArchive::new(dir.path().join("archive"));
    let days = [
        "2025-11-20",
        "2025-11-24",
        "2025-11-25",
        "2025-11-26",
        "2025-11-27",
    ];
    for prefix in ["readings", "rejected"] {
        for day in days {
            a.put(&key(prefix, day, "o"), b"{}\n").unwrap();
        }
    }
    // Not partitions: left alone whatever their age.
    a.put("readings/notes.txt", b"keep").unwrap();
    a.put("readings/dt=junk/o.ndjson", b"keep").unwrap();

    // Two days of retention on the 27th: the 24th ended on the 25th at 00:00, more than
    // two days ago; the 25th ended on the 26th, less than two days ago.
    assert_eq!(a.sweep(NOW, 2).unwrap(), 4);
    let keys = a.keys().unwrap();
    for prefix in ["readings", "rejected"] {
        for (day, kept) in days.iter().zip([false, false, true, true, true]) {
            assert_eq!(
                keys.contains(&key(prefix, day, "o")),
                kept,
                "{prefix} {day}"
            );
        }
    }
    assert!(keys.contains(&"readings/notes.txt".to_owned()));
    assert!(keys.contains(&"readings/dt=junk/o.ndjson".to_owned()));

    // Retention 0 keeps only today; a second sweep finds nothing more.
    assert_eq!(a.sweep(NOW, 0).unwrap(), 4);
    assert_eq!(a.sweep(NOW, 0).unwrap(), 0);
    assert!(
        a.keys()
            .unwrap()
            .contains(&key("readings", "2025-11-27", "o"))
    );
    assert_eq!(a.sweep(NOW + DAY, 0).unwrap(), 2);
}

#[test]
fn sweeping_a_missing_root_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = FileArchive::new(dir.path().join("never-written"));
    assert_eq!(a.sweep(NOW, 0).unwrap(), 0);
    assert!(a.keys().unwrap().is_empty());
}

#[cfg(unix)]
#[test]
fn sweep_never_follows_links_out_of_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("dt=2000-01-01")).unwrap();
    std::fs::write(outside.join("dt=2000-01-01/precious"), b"!").unwrap();
    let root = dir.path().join("archive");
    std::fs::create_dir_all(root.join("readings")).unwrap();
    // A prefix that links outside, and a partition that does.
    std::os::unix::fs::symlink(&outside, root.join("linked")).unwrap();
    std::os::unix::fs::symlink(
        outside.join("dt=2000-01-01"),
        root.join("readings/dt=2000-01-02"),
    )
    .unwrap();
    let a = FileArchive::new(&root);
    assert_eq!(a.sweep(NOW, 0).unwrap(), 0);
    assert!(outside.join("dt=2000-01-01/precious").exists());
}

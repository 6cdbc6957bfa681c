use std::os::unix::fs::MetadataExt as _;
use std::time::{Duration, SystemTime};

use super::*;

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn writes_the_mode_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node1.conf");
    let cases = [
        (0o644, b"a\n".as_slice(), WriteOutcome::Written),
        (0o644, b"a\n".as_slice(), WriteOutcome::Unchanged),
        (0o600, b"a\n".as_slice(), WriteOutcome::Written),
        (0o600, b"b\n".as_slice(), WriteOutcome::Written),
        (0o600, b"b\n".as_slice(), WriteOutcome::Unchanged),
    ];
    for (mode, bytes, expected) in cases {
        let outcome = write_if_changed(&path, bytes, mode).unwrap();
        assert_eq!(outcome, expected, "mode {mode:o}");
        assert_eq!(mode_of(&path), mode);
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
    assert_eq!(dir_entries(dir.path()), ["node1.conf"]);
}

#[test]
fn write_creates_0600_then_is_unchanged_without_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node1.json");
    let bytes = b"{\n    \"rest\": {}\n}\n";

    assert_eq!(
        write_if_changed(&path, bytes, 0o600).unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(dir_entries(dir.path()), ["node1.json"]);

    // Age the file so that any touch would show.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let before = fs::metadata(&path).unwrap();

    assert_eq!(
        write_if_changed(&path, bytes, 0o600).unwrap(),
        WriteOutcome::Unchanged
    );
    let after = fs::metadata(&path).unwrap();
    assert_eq!(after.modified().unwrap(), old);
    assert_eq!(after.ino(), before.ino());
    assert_eq!(after.ctime_nsec(), before.ctime_nsec());
    assert_eq!(after.ctime(), before.ctime());
}

#[test]
fn a_change_is_written_atomically_to_a_new_inode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node1.json");
    write_if_changed(&path, b"{\"a\": 1}", 0o600).unwrap();
    let inode_before = fs::metadata(&path).unwrap().ino();

    assert_eq!(
        write_if_changed(&path, b"{\"a\": 2}", 0o600).unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(fs::read(&path).unwrap(), b"{\"a\": 2}");
    assert_ne!(fs::metadata(&path).unwrap().ino(), inode_before);
    assert_eq!(mode_of(&path), 0o600);
    // No temporary file left behind.
    assert_eq!(dir_entries(dir.path()), ["node1.json"]);
}

#[test]
fn failures_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("f");
    let error = write_if_changed(&path, b"x", 0o600).unwrap_err();
    assert!(
        matches!(&error, WriteFailure::MissingDirectory { dir: d, .. } if *d == dir.path().join("missing")),
        "{error:?}"
    );
    assert_eq!(error.path(), path);
    assert_eq!(
        error.to_string(),
        format!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            dir.path().join("missing").display()
        )
    );
    assert!(
        !dir.path().join("missing").exists(),
        "a directory was created"
    );
    let error = create_new(&path, b"x", 0o600).unwrap_err();
    assert!(
        matches!(error, WriteFailure::MissingDirectory { .. }),
        "{error:?}"
    );
    // A directory where the file should be cannot be read as the file.
    let error = write_if_changed(dir.path(), b"x", 0o600).unwrap_err();
    assert!(matches!(error, WriteFailure::Read { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("cannot read {}", dir.path().display())
    );
}

#[test]
fn create_new_never_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hash_5");
    assert_eq!(
        create_new(&path, b"first", 0o600).unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(mode_of(&path), 0o600);
    let inode = fs::metadata(&path).unwrap().ino();
    assert_eq!(
        create_new(&path, b"second", 0o644).unwrap(),
        CreateOutcome::Existed
    );
    assert_eq!(fs::read(&path).unwrap(), b"first");
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
    // Nothing else is left in the directory: the temporary file is gone.
    assert_eq!(dir_entries(dir.path()), ["hash_5"]);
    // A dangling symbolic link counts as existing: it is not followed or replaced.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
    assert_eq!(
        create_new(&link, b"x", 0o600).unwrap(),
        CreateOutcome::Existed
    );
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn create_new_loses_a_race_without_replacing() {
    // Writers racing for one name: exactly one creates it, the file holds that one's bytes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passphrase_7");
    let outcomes: Vec<(usize, CreateOutcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|index| {
                let path = &path;
                scope.spawn(move || {
                    let bytes = format!("writer {index}");
                    (index, create_new(path, bytes.as_bytes(), 0o600).unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<usize> = outcomes
        .iter()
        .filter(|(_, outcome)| *outcome == CreateOutcome::Created)
        .map(|(index, _)| *index)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("writer {}", winners[0])
    );
    assert_eq!(dir_entries(dir.path()), ["passphrase_7"]);
}

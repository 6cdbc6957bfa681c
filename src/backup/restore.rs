//! Restoring a node's data directory from an archive: `verify` (size and SHA-256 against the
//! manifest, streamed), `restore` (verify, extract into `DATA.restore-TIME` beside the data
//! directory, fsync, then swap by rename: `DATA` → `DATA.old-TIME`, the new one → `DATA`), and
//! `remove_old` for the set-aside directory once the node has run in sync.
//!
//! The data directory is never touched before the archive was verified and wholly extracted; a
//! failed extraction removes its staging directory. When `DATA` is a symlink, the directory it
//! points to is the one restored (so the staging directory sits on the same file system and the
//! swap is a rename).

use std::fs::{self, File};
use std::io::{self, Read as _};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use super::{BackupError, Manifest, Progress, Reporter, hex, io_error, parent_of, sync_dir};

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The data directory now holding the archive's contents (symlinks resolved).
    pub data_dir: PathBuf,
    /// The previous data directory, set aside (`DATA.old-TIME`), for `remove_old` once the node
    /// has run in sync; `None` when there was none.
    pub old: Option<PathBuf>,
    /// Entries extracted.
    pub files: u64,
}

/// Checks that `archive` has the manifest's size and SHA-256, reading it once in 1 MiB chunks.
pub fn verify(archive: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let mut file = File::open(archive).map_err(|e| io_error("open", archive, e))?;
    let actual = file
        .metadata()
        .map_err(|e| io_error("stat", archive, e))?
        .len();
    if actual != manifest.bytes {
        return Err(BackupError::SizeMismatch {
            path: archive.to_path_buf(),
            expected: manifest.bytes,
            actual,
        });
    }
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("read", archive, e)),
        };
        hasher.update(&buffer[..n]);
    }
    let digest = hex(&hasher.finalize());
    if !digest.eq_ignore_ascii_case(manifest.sha256.trim()) {
        return Err(BackupError::Corrupt {
            path: archive.to_path_buf(),
            expected: prefix(&manifest.sha256),
            actual: prefix(&digest),
        });
    }
    Ok(())
}

/// The first 12 characters of a digest, for messages.
fn prefix(digest: &str) -> String {
    digest.chars().take(12).collect()
}

/// Restores `archive` (described by `manifest`) as `data_dir`: verified first, extracted into
/// `DATA.restore-TIME`, fsynced, then swapped in by rename; the old directory is kept as
/// `DATA.old-TIME` (`TIME` from `now`). A `data_dir` that does not exist yet is fine (its parent
/// must). Progress goes to `progress` at most about once per second and at the end.
pub fn restore(
    archive: &Path,
    manifest: &Manifest,
    data_dir: &Path,
    now: SystemTime,
    progress: &mut dyn FnMut(Progress),
) -> Result<Restored, BackupError> {
    verify(archive, manifest)?;
    let data_dir = resolve(data_dir)?;
    let existing = match fs::symlink_metadata(&data_dir) {
        Ok(meta) if meta.is_dir() => Some(meta),
        Ok(_) => return Err(BackupError::NotADirectory { path: data_dir }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error("stat", &data_dir, e)),
    };
    let parent = parent_of(&data_dir).to_path_buf();
    if !parent.is_dir() {
        return Err(BackupError::NotADirectory { path: parent });
    }
    let time = chrono::DateTime::<chrono::Utc>::from(now).format("%Y%m%dT%H%M%SZ");
    let staging = sibling(&data_dir, &format!("restore-{time}"));
    let old = sibling(&data_dir, &format!("old-{time}"));
    for path in [&staging, &old] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(BackupError::Exists { path: path.clone() });
        }
    }
    fs::create_dir(&staging).map_err(|e| io_error("create", &staging, e))?;
    let mut reporter = Reporter::new(progress);
    let prepared = extract(archive, &staging, &mut reporter).and_then(|()| {
        if let Some(meta) = &existing {
            // The archive holds the directory's contents, not the directory: keep its mode.
            fs::set_permissions(&staging, meta.permissions())
                .map_err(|e| io_error("set the mode of", &staging, e))?;
        }
        sync_tree(&staging)
    });
    if let Err(error) = prepared {
        let _ = fs::remove_dir_all(&staging);
        return Err(error);
    }
    let old = existing.map(|_| old);
    if let Err(error) = swap(&data_dir, &staging, old.as_deref(), &|from, to| {
        fs::rename(from, to)
    }) {
        let _ = fs::remove_dir_all(&staging);
        return Err(error);
    }
    sync_dir(&parent)?;
    reporter.finish();
    Ok(Restored {
        data_dir,
        old,
        files: reporter.files(),
    })
}

/// `data_dir`, or the directory it points to when it is a symlink.
fn resolve(data_dir: &Path) -> Result<PathBuf, BackupError> {
    match fs::symlink_metadata(data_dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(data_dir).map_err(|e| io_error("resolve", data_dir, e))
        }
        _ => Ok(data_dir.to_path_buf()),
    }
}

/// `DATA.{suffix}` beside `DATA`.
fn sibling(data_dir: &Path, suffix: &str) -> PathBuf {
    let mut name = data_dir
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_default();
    name.push(".");
    name.push(suffix);
    data_dir.with_file_name(name)
}

/// The swap: `data_dir` → `old` (when there is an old one), then `staging` → `data_dir`; when the
/// second rename fails, the old directory is renamed back.
fn swap(
    data_dir: &Path,
    staging: &Path,
    old: Option<&Path>,
    rename: &dyn Fn(&Path, &Path) -> io::Result<()>,
) -> Result<(), BackupError> {
    if let Some(old) = old {
        rename(data_dir, old).map_err(|e| io_error("rename", data_dir, e))?;
    }
    if let Err(e) = rename(staging, data_dir) {
        if let Some(old) = old {
            // Best effort: the rename that failed is the error to report.
            let _ = rename(old, data_dir);
        }
        return Err(io_error("rename", staging, e));
    }
    Ok(())
}

/// Extracts `archive` into the empty directory `staging`, refusing any entry that is not a
/// relative path without `..`, or not a file, a directory or a symlink.
fn extract(archive: &Path, staging: &Path, reporter: &mut Reporter<'_>) -> Result<(), BackupError> {
    let extract_error = |source| BackupError::Extract {
        archive: archive.to_path_buf(),
        source,
    };
    let file = File::open(archive).map_err(|e| io_error("open", archive, e))?;
    let decoder = zstd::Decoder::new(file).map_err(extract_error)?;
    let mut tar = tar::Archive::new(decoder);
    tar.set_preserve_permissions(true);
    tar.set_preserve_mtime(true);
    for entry in tar.entries().map_err(extract_error)? {
        let mut entry = entry.map_err(extract_error)?;
        let unsafe_entry = |entry: &tar::Entry<'_, _>, reason| BackupError::UnsafeEntry {
            archive: archive.to_path_buf(),
            entry: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
            reason,
        };
        let path = entry.path().map_err(extract_error)?.into_owned();
        for component in path.components() {
            match component {
                Component::RootDir | Component::Prefix(_) => {
                    return Err(unsafe_entry(&entry, "an absolute path"));
                }
                Component::ParentDir => return Err(unsafe_entry(&entry, "a path with '..'")),
                Component::CurDir | Component::Normal(_) => {}
            }
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
            return Err(unsafe_entry(
                &entry,
                "not a regular file, a directory or a symlink",
            ));
        }
        // unpack_in also refuses to write through a symlink that leads out of `staging`.
        let unpacked = entry
            .unpack_in(staging)
            .map_err(|e| match e.raw_os_error() {
                Some(_) => io_error("write into", staging, e),
                None => extract_error(e),
            })?;
        if !unpacked {
            return Err(unsafe_entry(&entry, "a path outside the directory"));
        }
        reporter.add_bytes(entry.size());
        reporter.add_file();
    }
    Ok(())
}

/// Fsyncs every file and directory under `root` (symlinks aside), each directory after its
/// contents.
fn sync_tree(root: &Path) -> Result<(), BackupError> {
    let mut pending = vec![root.to_path_buf()];
    let mut dirs = Vec::new();
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| io_error("list", &dir, e))? {
            let entry = entry.map_err(|e| io_error("list", &dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| io_error("stat", &path, e))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                File::open(&path)
                    .and_then(|file| file.sync_all())
                    .map_err(|e| io_error("sync", &path, e))?;
            }
        }
        dirs.push(dir);
    }
    for dir in dirs.iter().rev() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Removes a data directory a restore set aside (`Restored::old`); anything whose name does not
/// hold `.old-` is refused, so a caller's mistake cannot remove a live data directory.
pub fn remove_old(old: &Path) -> Result<(), BackupError> {
    let is_old = old
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.contains(".old-"));
    if !is_old {
        return Err(BackupError::NotSetAside {
            path: old.to_path_buf(),
        });
    }
    fs::remove_dir_all(old).map_err(|e| io_error("remove", old, e))?;
    sync_dir(parent_of(old))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_failed_second_rename_puts_the_old_directory_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let staging = dir.path().join("data.restore-T");
        let old = dir.path().join("data.old-T");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("live"), b"live").unwrap();
        fs::create_dir(&staging).unwrap();
        let calls = Cell::new(0);
        let error = swap(&data, &staging, Some(&old), &|from, to| {
            calls.set(calls.get() + 1);
            if calls.get() == 2 {
                return Err(io::Error::from_raw_os_error(5));
            }
            fs::rename(from, to)
        })
        .unwrap_err();
        assert_eq!(calls.get(), 3, "the old directory is renamed back");
        assert!(error.to_string().contains("data.restore-T"), "{error}");
        assert_eq!(fs::read(data.join("live")).unwrap(), b"live");
        assert!(!old.exists());
    }

    #[test]
    fn remove_old_refuses_a_live_directory() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        assert!(matches!(
            remove_old(&data),
            Err(BackupError::NotSetAside { .. })
        ));
        assert!(data.exists());
        let old = dir.path().join("data.old-20261119T013907Z");
        fs::create_dir(&old).unwrap();
        fs::write(old.join("f"), b"x").unwrap();
        remove_old(&old).unwrap();
        assert!(!old.exists());
    }
}

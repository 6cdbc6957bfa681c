//! Backups of a node's data directory: the archive engine (a tar stream compressed with zstd and
//! hashed with SHA-256 as it is written, beside a JSON manifest), the listing and retention of a
//! target directory, and the verified restore that swaps directories by rename. It owns the files
//! of a target directory and a restore's staging directories; it does not stop or start nodes,
//! decide when to back up, or read a clock (callers pass `now`).
//!
//! Everything here is synchronous and streaming with bounded memory (an archive may be larger than
//! RAM), meant to run inside `tokio::task::spawn_blocking`.
//!
//! - `manifest`: `Manifest` (what an archive holds and its digest) and the archive names.
//! - `archive`: `create`, the archive and its manifest, whole or not at all.
//! - `store`: a target directory's listing (good archives, incomplete leftovers) and retention.
//! - `restore`: `verify`, `restore` (into a new directory, then a swap by rename), `remove_old`.

pub mod archive;
pub mod manifest;
pub mod restore;
pub mod store;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use archive::{ArchiveOptions, create, create_with};
pub use manifest::{FORMAT, Manifest, ManifestBase, archive_name};
pub use restore::{Restored, remove_old, restore, verify};
pub use store::{Entry, Incomplete, Listing, list, prune, to_prune};

/// How far a long archive or restore has come: handed to the caller's callback at most about once
/// per second, and once at the end (`done`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of file content read (archive) or written (restore) so far, before compression.
    pub bytes: u64,
    /// Entries (files, directories, symlinks) handled so far.
    pub files: u64,
    /// Time since the operation started.
    pub elapsed: Duration,
    /// Whether this is the last report.
    pub done: bool,
}

/// Why a backup, a listing, a retention or a restore failed; every variant names its file.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A chain or node name that cannot be part of a file name.
    #[error("{what} {value:?} cannot be part of an archive name: {reason}")]
    InvalidName {
        /// Which part of the name (`chain`, `node`).
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The target's file system is full: nothing that looks complete was left behind.
    #[error("cannot {action} {}: no space left on the device", path.display())]
    DiskFull {
        /// What was being done (`write`, `create`...).
        action: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// Another I/O failure.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done (`read`, `rename`, `sync`...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file that must not be replaced exists already.
    #[error("{} exists already", path.display())]
    Exists {
        /// The file or directory.
        path: PathBuf,
    },
    /// A path that must be a directory is not one (or is missing).
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// `remove_old` was given a path that is not a directory a restore set aside.
    #[error("{} is not a data directory set aside by a restore (no '.old-' in its name)", path.display())]
    NotSetAside {
        /// The path.
        path: PathBuf,
    },
    /// A file of the data directory changed size while it was archived (the node must be stopped).
    #[error("{} changed while it was archived (is the node stopped?)", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// A manifest that cannot be read as one.
    #[error("cannot read manifest {}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An archive whose size is not the manifest's (truncated, or another file).
    #[error("archive {} has {actual} bytes, its manifest says {expected}", path.display())]
    SizeMismatch {
        /// The archive.
        path: PathBuf,
        /// The manifest's size.
        expected: u64,
        /// The file's size.
        actual: u64,
    },
    /// An archive whose SHA-256 is not the manifest's: it is corrupted.
    #[error("archive {} is corrupted: sha256 {actual}..., its manifest says {expected}...", path.display())]
    Corrupt {
        /// The archive.
        path: PathBuf,
        /// The first 12 hex digits of the manifest's digest.
        expected: String,
        /// The first 12 hex digits of the file's digest.
        actual: String,
    },
    /// An archive entry that a restore refuses (an absolute path, `..`, a device...).
    #[error("archive {} holds an entry nodekeeper refuses: {entry:?}: {reason}", archive.display())]
    UnsafeEntry {
        /// The archive.
        archive: PathBuf,
        /// The entry's path, as the archive spells it (lossy).
        entry: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The archive's stream cannot be decoded (zstd or tar).
    #[error("cannot extract archive {}", archive.display())]
    Extract {
        /// The archive.
        archive: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The `DiskFull` or `Io` error of `action` on `path` (ENOSPC and EDQUOT are a full disk).
pub(crate) fn io_error(action: &'static str, path: &Path, source: io::Error) -> BackupError {
    // Linux errno values: ENOSPC 28, EDQUOT 122.
    if matches!(source.raw_os_error(), Some(28 | 122))
        || source.kind() == io::ErrorKind::StorageFull
    {
        BackupError::DiskFull {
            action,
            path: path.to_path_buf(),
        }
    } else {
        BackupError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Fsyncs a directory (after a rename or a creation in it).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|e| io_error("sync directory", dir, e))
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Reports progress to a callback at most once per `every` and once at the end.
pub(crate) struct Reporter<'a> {
    sink: &'a mut dyn FnMut(Progress),
    start: tokio::time::Instant,
    last: tokio::time::Instant,
    every: Duration,
    bytes: u64,
    files: u64,
}

impl<'a> Reporter<'a> {
    /// A reporter whose clock starts now.
    pub(crate) fn new(sink: &'a mut dyn FnMut(Progress)) -> Reporter<'a> {
        let now = tokio::time::Instant::now();
        Reporter {
            sink,
            start: now,
            last: now,
            every: Duration::from_secs(1),
            bytes: 0,
            files: 0,
        }
    }

    /// Counts `n` bytes, reporting when a second has passed since the last report.
    pub(crate) fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
        self.tick();
    }

    /// Counts one entry, reporting when a second has passed since the last report.
    pub(crate) fn add_file(&mut self) {
        self.files += 1;
        self.tick();
    }

    /// Entries counted so far.
    pub(crate) fn files(&self) -> u64 {
        self.files
    }

    fn tick(&mut self) {
        let now = tokio::time::Instant::now();
        if now.duration_since(self.last) >= self.every {
            self.last = now;
            self.report(false);
        }
    }

    /// The last report.
    pub(crate) fn finish(&mut self) {
        self.report(true);
    }

    fn report(&mut self, done: bool) {
        (self.sink)(Progress {
            bytes: self.bytes,
            files: self.files,
            elapsed: self.start.elapsed(),
            done,
        });
    }
}

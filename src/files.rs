//! The one atomic file writer. A write goes to a temporary file beside the target (created
//! exclusively, its mode set exactly whatever the umask), which is written and synced, then renamed
//! over the target (or hard-linked to it, for a create that never replaces) before the directory is
//! synced: a reader sees the old file or the new one, never a partial one, and a crash leaves at
//! most a hidden `.NAME.tmp.*` file behind.
//!
//! `write_if_changed` replaces a file only when its bytes or its mode differ (an unchanged file is
//! not touched, not even its mtime); `replace` replaces it in any case, keeping the owner it is
//! given (`config edit`); `create_new` creates a file that must never be replaced (key files, a
//! converted configuration). Neither creates directories: a missing one is reported as
//! `WriteFailure::MissingDirectory`. Every failure names the file.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What `write_if_changed` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file already held these bytes with this mode; it was not touched.
    Unchanged,
    /// The file was missing, different or had another mode, and was replaced atomically.
    Written,
}

/// What `create_new` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The file did not exist; it now holds the bytes.
    Created,
    /// The file existed already (whatever it holds); it was not touched.
    Existed,
}

/// Why a file could not be written; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum WriteFailure {
    /// The directory meant to hold the file does not exist (or is not a directory).
    #[error("cannot write {}: directory {} does not exist", path.display(), dir.display())]
    MissingDirectory {
        /// The file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
    /// Reading the current file failed.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Creating, writing, syncing, renaming or linking failed.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl WriteFailure {
    /// The file it is about.
    pub fn path(&self) -> &Path {
        match self {
            WriteFailure::MissingDirectory { path, .. }
            | WriteFailure::Read { path, .. }
            | WriteFailure::Write { path, .. } => path,
        }
    }
}

/// Writes `bytes` to `path` with exactly `mode` (whatever the umask), atomically, unless the file
/// already holds them with that mode, in which case nothing at all is done.
pub fn write_if_changed(
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<WriteOutcome, WriteFailure> {
    let dir = existing_dir(path)?;
    let holds = |mut file: File| -> io::Result<bool> {
        let metadata = file.metadata()?;
        let mut current = Vec::new();
        file.read_to_end(&mut current)?;
        Ok(current == bytes && metadata.permissions().mode() & 0o7777 == mode)
    };
    if let Some(file) = unless_missing(File::open(path)).map_err(read_failure(path))?
        && holds(file).map_err(read_failure(path))?
    {
        return Ok(WriteOutcome::Unchanged);
    }
    let temp_path = write_temp(dir, path, bytes, mode, None).map_err(write_failure(path))?;
    let result = fs::rename(&temp_path, path).and_then(|()| sync_dir(dir));
    if result.is_err() {
        // After a successful rename this finds nothing, which is fine.
        let _ = fs::remove_file(&temp_path);
    }
    result.map_err(write_failure(path))?;
    Ok(WriteOutcome::Written)
}

/// Replaces `path` by a file holding `bytes` with exactly `mode`, atomically, owned by `owner`
/// (user and group ids) when given; changing owners is asked for only when they would differ.
pub fn replace(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), WriteFailure> {
    let dir = existing_dir(path)?;
    let temp_path = write_temp(dir, path, bytes, mode, owner).map_err(write_failure(path))?;
    let result = fs::rename(&temp_path, path).and_then(|()| sync_dir(dir));
    if result.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    result.map_err(write_failure(path))
}

/// Creates `path` holding `bytes` with exactly `mode`, atomically, unless it exists already: an
/// existing file is never replaced, even by a writer racing this one (the temporary file is
/// hard-linked to `path`, which fails when `path` exists).
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> Result<CreateOutcome, WriteFailure> {
    let dir = existing_dir(path)?;
    // A link, even a dangling one, is an existing file: it is neither followed nor replaced.
    if unless_missing(fs::symlink_metadata(path))
        .map_err(read_failure(path))?
        .is_some()
    {
        return Ok(CreateOutcome::Existed);
    }
    let temp_path = write_temp(dir, path, bytes, mode, None).map_err(write_failure(path))?;
    let linked = fs::hard_link(&temp_path, path);
    let _ = fs::remove_file(&temp_path);
    match linked {
        Ok(()) => {
            sync_dir(dir).map_err(write_failure(path))?;
            Ok(CreateOutcome::Created)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(CreateOutcome::Existed),
        Err(source) => Err(write_failure(path)(source)),
    }
}

/// `Ok(None)` for a file that does not exist.
fn unless_missing<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A `WriteFailure::Read` about `path`.
fn read_failure(path: &Path) -> impl Fn(io::Error) -> WriteFailure + '_ {
    move |source| WriteFailure::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// A `WriteFailure::Write` about `path`.
fn write_failure(path: &Path) -> impl Fn(io::Error) -> WriteFailure + '_ {
    move |source| WriteFailure::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory holding `path` (`.` for a bare file name), which must exist.
fn existing_dir(path: &Path) -> Result<&Path, WriteFailure> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match unless_missing(fs::metadata(dir)).map_err(write_failure(path))? {
        Some(metadata) if metadata.is_dir() => Ok(dir),
        _ => Err(WriteFailure::MissingDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
    }
}

/// Creates `DIR/.NAME.tmp.PID.N` exclusively with `mode` (and `owner`), writes `bytes`, syncs
/// and closes it; its path. The file is removed on failure.
fn write_temp(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<PathBuf> {
    let (temp_path, mut file) = create_temp(dir, path, mode)?;
    let written = (|| {
        if let Some((uid, gid)) = owner {
            use std::os::unix::fs::MetadataExt as _;
            let created = file.metadata()?;
            // Only a change asks for the privilege of changing owners.
            if (created.uid(), created.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            }
        }
        // The creation mode is filtered by the umask; set it exactly (after the owner, which
        // may clear set-id bits).
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    drop(file);
    if written.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    written.map(|()| temp_path)
}

/// Creates `DIR/.NAME.tmp.PID.N` exclusively with `mode`.
fn create_temp(dir: &Path, path: &Path, mode: u32) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let mut attempts = 0;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut temp_name = OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".tmp.{}.{n}", std::process::id()));
        let temp_path = dir.join(temp_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp_path)
        {
            Ok(file) => return Ok((temp_path, file)),
            // A leftover of a crashed run with the same pid: try the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Syncs a directory, so that a rename or link in it survives a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;

//! `create`: a node's data directory → `NAME.tar.zst` and `NAME.manifest.json` in a target
//! directory, whole or not at all.
//!
//! The data directory's contents go into a tar stream with relative paths (regular files,
//! directories, symlinks stored as symlinks and never followed; sockets, FIFOs and devices are
//! skipped), compressed with zstd and hashed with SHA-256 as the compressed bytes are written to
//! `.NAME.tar.zst.partial`. Then, in this order:
//!
//! 1. the archive's temporary file is fsynced;
//! 2. the manifest (its size and digest now known) is written to `.NAME.manifest.json.partial`,
//!    fsynced and renamed to `NAME.manifest.json`;
//! 3. **the commit point**: `.NAME.tar.zst.partial` is renamed to `NAME.tar.zst`;
//! 4. the directory is fsynced.
//!
//! A listing counts an archive only when both files exist and the archive's size is the
//! manifest's, so a crash or a full disk at any step leaves nothing that looks complete: before 3
//! at most a hidden `.partial` file and a manifest without its archive, both reported as
//! incomplete. On any error the temporary files are removed, and so are the final ones when the
//! last step failed (an `Err` always means "no backup").

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::manifest::{ARCHIVE_SUFFIX, FORMAT, MANIFEST_SUFFIX, Manifest, ManifestBase};
use super::{BackupError, Progress, Reporter, archive_name, hex, io_error, sync_dir};

/// How to compress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveOptions {
    /// The zstd level (3, zstd's own default).
    pub level: i32,
    /// zstd worker threads: 0 compresses on the calling thread, 1 (the default) on one worker
    /// beside it while the calling thread reads files and hashes (measured with
    /// `scripts/bench.sh backup`: the faster on 2 cores, and what `zstd -3` itself does).
    pub workers: u32,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            level: 3,
            workers: 1,
        }
    }
}

/// Archives the contents of `data_dir` into `target_dir` (both must be directories) with the
/// default options; the manifest it wrote is returned. Progress goes to `progress` at most about
/// once per second and at the end. The node must be stopped: a file that changes size while it is
/// read fails the backup.
pub fn create(
    data_dir: &Path,
    target_dir: &Path,
    base: &ManifestBase,
    progress: &mut dyn FnMut(Progress),
) -> Result<Manifest, BackupError> {
    create_with(
        data_dir,
        target_dir,
        base,
        ArchiveOptions::default(),
        progress,
    )
}

/// `create` with explicit compression options (the benchmark compares them).
pub fn create_with(
    data_dir: &Path,
    target_dir: &Path,
    base: &ManifestBase,
    options: ArchiveOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Manifest, BackupError> {
    create_inner(data_dir, target_dir, base, options, None, progress)
}

/// The files one backup writes, final and temporary.
struct Paths {
    archive: PathBuf,
    archive_tmp: PathBuf,
    manifest: PathBuf,
    manifest_tmp: PathBuf,
}

impl Paths {
    fn new(target_dir: &Path, name: &str) -> Paths {
        Paths {
            archive: target_dir.join(format!("{name}{ARCHIVE_SUFFIX}")),
            archive_tmp: target_dir.join(format!(".{name}{ARCHIVE_SUFFIX}.partial")),
            manifest: target_dir.join(format!("{name}{MANIFEST_SUFFIX}")),
            manifest_tmp: target_dir.join(format!(".{name}{MANIFEST_SUFFIX}.partial")),
        }
    }
}

/// `create_with`, and the test seam: `fail_after` makes the archive's writer fail with ENOSPC once
/// that many compressed bytes were written.
pub(super) fn create_inner(
    data_dir: &Path,
    target_dir: &Path,
    base: &ManifestBase,
    options: ArchiveOptions,
    fail_after: Option<u64>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Manifest, BackupError> {
    let name = archive_name(base)?;
    for dir in [data_dir, target_dir] {
        if !fs::metadata(dir).is_ok_and(|meta| meta.is_dir()) {
            return Err(BackupError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
    }
    let paths = Paths::new(target_dir, &name);
    for path in [&paths.archive, &paths.manifest] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(BackupError::Exists { path: path.clone() });
        }
    }
    let result = write_both(
        data_dir, target_dir, base, &name, &paths, options, fail_after, progress,
    );
    if result.is_err() {
        // Best effort: the error that matters is the one returned.
        for path in [&paths.archive_tmp, &paths.manifest_tmp] {
            let _ = fs::remove_file(path);
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn write_both(
    data_dir: &Path,
    target_dir: &Path,
    base: &ManifestBase,
    name: &str,
    paths: &Paths,
    options: ArchiveOptions,
    fail_after: Option<u64>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Manifest, BackupError> {
    let mut reporter = Reporter::new(progress);
    let (digest, bytes) = write_archive(
        data_dir,
        &paths.archive_tmp,
        options,
        fail_after,
        &mut reporter,
    )?;
    let manifest = Manifest {
        chain: base.chain.clone(),
        node: base.node.clone(),
        height: base.height,
        head: base.head.clone(),
        version: base.version.clone(),
        created_at: crate::time::rfc3339(base.created_at),
        archive: format!("{name}{ARCHIVE_SUFFIX}"),
        sha256: digest,
        bytes,
        format: FORMAT.to_owned(),
        files: reporter.files(),
    };
    write_manifest(&manifest, &paths.manifest_tmp)?;
    fs::rename(&paths.manifest_tmp, &paths.manifest)
        .map_err(|e| io_error("rename", &paths.manifest_tmp, e))?;
    // The commit point: from here on the pair counts as an archive.
    let committed = fs::rename(&paths.archive_tmp, &paths.archive)
        .map_err(|e| io_error("rename", &paths.archive_tmp, e))
        .and_then(|()| sync_dir(target_dir));
    if let Err(error) = committed {
        let _ = fs::remove_file(&paths.archive);
        let _ = fs::remove_file(&paths.manifest);
        return Err(error);
    }
    reporter.finish();
    Ok(manifest)
}

fn create_exclusive(path: &Path) -> Result<File, BackupError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error("create", path, e))
}

fn write_manifest(manifest: &Manifest, path: &Path) -> Result<(), BackupError> {
    let mut file = create_exclusive(path)?;
    let mut text = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
    text.push(b'\n');
    file.write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", path, e))
}

/// Writes the compressed tar stream of `data_dir` to `path`, fsynced; its hex SHA-256 and size.
fn write_archive(
    data_dir: &Path,
    path: &Path,
    options: ArchiveOptions,
    fail_after: Option<u64>,
    reporter: &mut Reporter<'_>,
) -> Result<(String, u64), BackupError> {
    let file = create_exclusive(path)?;
    let sink = HashingWriter {
        file,
        hasher: Sha256::new(),
        written: 0,
        fail_after,
    };
    let write_error = |e| io_error("write", path, e);
    let mut encoder = zstd::Encoder::new(sink, options.level).map_err(write_error)?;
    encoder.include_checksum(true).map_err(write_error)?;
    if options.workers > 0 {
        encoder.multithread(options.workers).map_err(write_error)?;
    }
    let mut builder = tar::Builder::new(encoder);
    builder.follow_symlinks(false);
    append_tree(&mut builder, data_dir, path, reporter)?;
    let encoder = builder.into_inner().map_err(write_error)?;
    let sink = encoder.finish().map_err(write_error)?;
    sink.file
        .sync_all()
        .map_err(|e| io_error("sync", path, e))?;
    Ok((hex(&sink.hasher.finalize()), sink.written))
}

/// The archive file, hashing and counting what is written to it.
struct HashingWriter {
    file: File,
    hasher: Sha256,
    written: u64,
    fail_after: Option<u64>,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(limit) = self.fail_after
            && self.written + buf.len() as u64 > limit
        {
            // The test seam: a target that runs out of space after `limit` bytes.
            return Err(io::Error::from_raw_os_error(28));
        }
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A read error of a data directory's file, told apart from the archive's write errors when both
/// come back through the tar builder.
#[derive(Debug)]
enum SourceError {
    /// The file ended before the size its header announced.
    Shrank,
    /// Reading failed.
    Read(io::Error),
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::Shrank => f.write_str("the file shrank"),
            SourceError::Read(e) => write!(f, "read failed: {e}"),
        }
    }
}

impl std::error::Error for SourceError {}

/// Exactly `remaining` bytes of a file, counted for progress.
struct SourceReader<'r, 'a> {
    file: File,
    remaining: u64,
    reporter: &'r mut Reporter<'a>,
}

impl Read for SourceReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self
            .file
            .read(&mut buf[..want])
            .map_err(|e| io::Error::other(SourceError::Read(e)))?;
        if n == 0 {
            return Err(io::Error::other(SourceError::Shrank));
        }
        self.remaining -= n as u64;
        self.reporter.add_bytes(n as u64);
        Ok(n)
    }
}

/// Appends the contents of `root`, depth first in name order, without following any symlink.
fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    archive_path: &Path,
    reporter: &mut Reporter<'_>,
) -> Result<(), BackupError> {
    // Directories still to list, as paths relative to `root`. Only one directory's names are held
    // in memory at a time, besides this stack.
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(relative_dir) = pending.pop() {
        let dir = root.join(&relative_dir);
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| io_error("list", &dir, e))? {
            names.push(entry.map_err(|e| io_error("list", &dir, e))?.file_name());
        }
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let relative = relative_dir.join(&name);
            let full = root.join(&relative);
            let meta = fs::symlink_metadata(&full).map_err(|e| io_error("stat", &full, e))?;
            let kind = meta.file_type();
            let mut header = tar::Header::new_gnu();
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            let appended = if kind.is_dir() {
                header.set_size(0);
                subdirs.push(relative.clone());
                builder.append_data(&mut header, &relative, io::empty())
            } else if kind.is_symlink() {
                let target = fs::read_link(&full).map_err(|e| io_error("read link", &full, e))?;
                header.set_size(0);
                builder.append_link(&mut header, &relative, &target)
            } else if kind.is_file() {
                let file = File::open(&full).map_err(|e| io_error("open", &full, e))?;
                let reader = SourceReader {
                    file,
                    remaining: meta.len(),
                    reporter,
                };
                builder.append_data(&mut header, &relative, reader)
            } else {
                // Sockets, FIFOs and devices mean nothing in a backup.
                debug_assert!(
                    kind.is_socket()
                        || kind.is_fifo()
                        || kind.is_block_device()
                        || kind.is_char_device()
                );
                continue;
            };
            appended.map_err(|e| classify(e, &full, archive_path))?;
            reporter.add_file();
        }
        // Reversed so that popping visits them in name order.
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

/// An error from the tar builder: the data file's (read, shrank) or the archive's (write).
fn classify(error: io::Error, source: &Path, archive: &Path) -> BackupError {
    let is_source = error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<SourceError>().is_some());
    if !is_source {
        return io_error("write", archive, error);
    }
    match error
        .into_inner()
        .and_then(|inner| inner.downcast::<SourceError>().ok())
        .map(|inner| *inner)
    {
        Some(SourceError::Shrank) => BackupError::Changed {
            path: source.to_path_buf(),
        },
        Some(SourceError::Read(e)) => io_error("read", source, e),
        None => io_error("read", source, io::Error::other("unknown read error")),
    }
}

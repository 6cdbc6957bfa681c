//! Generated node config files: rendering a node config as JSON, writing it atomically with mode
//! 0600 only when its bytes (or its mode) change, and diffing it against what is on disk.
//!
//! Also owns the crate's atomic-write helpers ([`write_file_if_changed`], which
//! `supervisor_conf` reuses with mode 0644, and `write_atomic`, which `config edit` uses to keep a
//! file's owner). It never creates directories: a missing node directory
//! is a configuration error, reported as [`NodeFileError::MissingDirectory`].

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize as _;
use serde_json::Value;

/// The mode of a node config file: it may hold secrets.
pub const NODE_FILE_MODE: u32 = 0o600;

/// What [`write_if_changed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file already held these bytes with the right mode; it was not touched.
    Unchanged,
    /// The file was missing, different or had another mode, and was replaced atomically.
    Written,
}

/// Failure to read or write a node config file.
#[derive(Debug, thiserror::Error)]
pub enum NodeFileError {
    /// The directory meant to hold the file does not exist (or is not a directory).
    #[error("cannot write node config {path}: directory {dir} does not exist")]
    MissingDirectory {
        /// The node config file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
    /// Reading the current file failed.
    #[error("cannot read node config {path}")]
    Read {
        /// The node config file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing, syncing or renaming failed.
    #[error("cannot write node config {path}")]
    Write {
        /// The node config file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// `config` as the node reads it: pretty JSON indented by 4 spaces (like jmanager's
/// `json.dumps(indent=4)`, except that non-ASCII characters are written as UTF-8, not `\u`
/// escapes) with a trailing newline.
pub fn render(config: &Value) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    // A `Value` always serializes (its keys are strings) and a `Vec` never fails to grow.
    config
        .serialize(&mut serializer)
        .expect("a serde_json::Value serializes into a Vec");
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push('\n');
    text
}

/// Writes `render(config)` to `path` unless the file already holds exactly those bytes with mode
/// 0600, in which case nothing at all is done (not even its mtime changes).
///
/// A write goes to a temporary file (mode 0600) in the same directory, which is synced, renamed
/// over `path`, and then the directory is synced: readers see the old or the new file, never a
/// partial one. The directory must exist.
pub fn write_if_changed(path: &Path, config: &Value) -> Result<WriteOutcome, NodeFileError> {
    write_file_if_changed(path, render(config).as_bytes(), NODE_FILE_MODE).map_err(|failure| {
        let path = path.to_path_buf();
        match failure {
            WriteFailure::MissingDirectory { dir } => NodeFileError::MissingDirectory { path, dir },
            WriteFailure::Read(source) => NodeFileError::Read { path, source },
            WriteFailure::Write(source) => NodeFileError::Write { path, source },
        }
    })
}

/// `None` when `path` already holds exactly `render(config)`; otherwise a unified diff from the
/// file (`--- PATH (on disk)`) to the rendering (`+++ PATH (rendered)`). A missing file diffs as
/// empty. Only the content is compared, not the mode.
pub fn diff(path: &Path, config: &Value) -> Result<Option<String>, NodeFileError> {
    let rendered = render(config);
    let on_disk = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(NodeFileError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if on_disk == rendered.as_bytes() {
        return Ok(None);
    }
    let on_disk = String::from_utf8_lossy(&on_disk);
    let text = similar::TextDiff::from_lines(on_disk.as_ref(), rendered.as_str())
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{} (on disk)", path.display()),
            &format!("{} (rendered)", path.display()),
        )
        .to_string();
    Ok(Some(text))
}

/// Why [`write_file_if_changed`] failed; the caller adds the path and its own wording.
#[derive(Debug)]
pub(crate) enum WriteFailure {
    /// The parent directory is missing or not a directory.
    MissingDirectory {
        /// The parent directory.
        dir: PathBuf,
    },
    /// Reading the current file failed.
    Read(io::Error),
    /// Creating, writing, syncing or renaming failed.
    Write(io::Error),
}

/// Writes `bytes` to `path` with exactly `mode` (whatever the umask) unless it already holds them
/// with that mode; see [`write_if_changed`] for the atomic replacement.
pub(crate) fn write_file_if_changed(
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<WriteOutcome, WriteFailure> {
    let dir = parent_dir(path);
    match fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(WriteFailure::MissingDirectory {
                dir: dir.to_path_buf(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(WriteFailure::MissingDirectory {
                dir: dir.to_path_buf(),
            });
        }
        Err(e) => return Err(WriteFailure::Write(e)),
    }
    match File::open(path) {
        Ok(mut file) => {
            let metadata = file.metadata().map_err(WriteFailure::Read)?;
            let mut current = Vec::new();
            file.read_to_end(&mut current).map_err(WriteFailure::Read)?;
            if current == bytes && metadata.permissions().mode() & 0o7777 == mode {
                return Ok(WriteOutcome::Unchanged);
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(WriteFailure::Read(e)),
    }
    write_atomic(path, bytes, mode, None).map_err(WriteFailure::Write)?;
    Ok(WriteOutcome::Written)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Replaces `path` by a file holding `bytes` with `mode`, and owned by `owner` (user and group
/// ids) when given: temporary file in the same directory, fsync, rename, fsync of the directory.
/// The temporary file is removed on failure.
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let dir = parent_dir(path);
    let (temp_path, mut file) = create_temp(dir, path, mode)?;
    let result = (|| {
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
        file.sync_all()?;
        drop(file);
        fs::rename(&temp_path, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // After a successful rename this finds nothing, which is fine.
        let _ = fs::remove_file(&temp_path);
    }
    result
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
        let mut temp_name = std::ffi::OsString::from(".");
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;
    use std::time::{Duration, SystemTime};

    use serde_json::json;

    use super::*;

    #[test]
    fn render_cases() {
        // One key per object, so the expected text holds with or without preserve_order.
        let cases = [
            (json!({}), "{}\n"),
            (json!([]), "[]\n"),
            (json!(null), "null\n"),
            (
                json!({"rest": {"listen": "127.0.0.1:3100"}}),
                "{\n    \"rest\": {\n        \"listen\": \"127.0.0.1:3100\"\n    }\n}\n",
            ),
            (
                json!({"log": [{"level": "info"}, 1.5, 7, true, [], {}]}),
                "{\n    \"log\": [\n        {\n            \"level\": \"info\"\n        },\n        1.5,\n        7,\n        true,\n        [],\n        {}\n    ]\n}\n",
            ),
            (json!({"s": "é\"\n"}), "{\n    \"s\": \"é\\\"\\n\"\n}\n"),
        ];
        for (value, expected) in cases {
            assert_eq!(render(&value), expected, "{value}");
        }
    }

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
    fn write_creates_0600_then_is_unchanged_without_touching_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node1.json");
        let config = json!({"rest": {"listen": "127.0.0.1:3100"}});

        assert_eq!(
            write_if_changed(&path, &config).unwrap(),
            WriteOutcome::Written
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), render(&config));
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
            write_if_changed(&path, &config).unwrap(),
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
        write_if_changed(&path, &json!({"a": 1})).unwrap();
        let inode_before = fs::metadata(&path).unwrap().ino();

        let changed = json!({"a": 2});
        assert_eq!(
            write_if_changed(&path, &changed).unwrap(),
            WriteOutcome::Written
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), render(&changed));
        assert_ne!(fs::metadata(&path).unwrap().ino(), inode_before);
        assert_eq!(mode_of(&path), 0o600);
        // No temporary file left behind.
        assert_eq!(dir_entries(dir.path()), ["node1.json"]);
    }

    #[test]
    fn same_bytes_with_a_loose_mode_are_rewritten_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node1.json");
        let config = json!({"secret": "x"});
        fs::write(&path, render(&config)).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();

        assert_eq!(
            write_if_changed(&path, &config).unwrap(),
            WriteOutcome::Written
        );
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(
            write_if_changed(&path, &config).unwrap(),
            WriteOutcome::Unchanged
        );
    }

    #[test]
    fn the_shared_helper_writes_the_mode_asked_for() {
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
            let outcome = write_file_if_changed(&path, bytes, mode).unwrap();
            assert_eq!(outcome, expected, "mode {mode:o}");
            assert_eq!(mode_of(&path), mode);
            assert_eq!(fs::read(&path).unwrap(), bytes);
        }
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node1").join("node1.json");
        let error = write_if_changed(&path, &json!({})).unwrap_err();
        assert!(
            matches!(&error, NodeFileError::MissingDirectory { path: p, dir: d }
                if *p == path && *d == dir.path().join("node1")),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "cannot write node config {}: directory {} does not exist",
                path.display(),
                dir.path().join("node1").display()
            )
        );
        assert!(
            !dir.path().join("node1").exists(),
            "the directory was created"
        );

        // A file where the directory should be is reported the same way.
        fs::write(dir.path().join("node1"), "").unwrap();
        let error = write_if_changed(&path, &json!({})).unwrap_err();
        assert!(
            matches!(error, NodeFileError::MissingDirectory { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn a_directory_at_the_path_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_if_changed(dir.path(), &json!({})).unwrap_err();
        assert!(matches!(error, NodeFileError::Read { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("cannot read node config {}", dir.path().display())
        );
    }

    #[test]
    fn diff_cases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.json");
        let p = path.display();
        let config = json!({"a": 1});

        // Missing file: against empty.
        assert_eq!(
            diff(&path, &config).unwrap().unwrap(),
            format!(
                "--- {p} (on disk)\n+++ {p} (rendered)\n@@ -0,0 +1,3 @@\n+{{\n+    \"a\": 1\n+}}\n"
            )
        );

        // Same bytes: none.
        fs::write(&path, render(&config)).unwrap();
        assert_eq!(diff(&path, &config).unwrap(), None);

        // A change.
        assert_eq!(
            diff(&path, &json!({"a": 2})).unwrap().unwrap(),
            format!(
                "--- {p} (on disk)\n+++ {p} (rendered)\n@@ -1,3 +1,3 @@\n {{\n-    \"a\": 1\n+    \"a\": 2\n }}\n"
            )
        );

        // The same JSON written differently is a difference (the bytes are what counts).
        fs::write(&path, "{\"a\": 1}").unwrap();
        let text = diff(&path, &config).unwrap().unwrap();
        assert!(
            text.contains("-{\"a\": 1}\n\\ No newline at end of file\n"),
            "{text}"
        );
    }
}

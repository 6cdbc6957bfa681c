//! Generated node config files: rendering a node config as JSON, writing it (through `files`,
//! atomically) with mode 0600 only when its bytes (or its mode) change, and diffing it against what
//! is on disk. It never creates directories: a missing node directory is a configuration error,
//! reported as [`NodeFileError::MissingDirectory`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize as _;
use serde_json::Value;

pub use crate::files::WriteOutcome;
use crate::files::{self, WriteFailure};

/// The mode of a node config file: it may hold secrets.
pub const NODE_FILE_MODE: u32 = 0o600;

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
/// The write is `files::write_if_changed`'s: readers see the old or the new file, never a partial
/// one. The directory must exist.
pub fn write_if_changed(path: &Path, config: &Value) -> Result<WriteOutcome, NodeFileError> {
    files::write_if_changed(path, render(config).as_bytes(), NODE_FILE_MODE).map_err(|failure| {
        match failure {
            WriteFailure::MissingDirectory { path, dir } => {
                NodeFileError::MissingDirectory { path, dir }
            }
            WriteFailure::Read { path, source } => NodeFileError::Read { path, source },
            WriteFailure::Write { path, source } => NodeFileError::Write { path, source },
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

#[cfg(test)]
mod tests {
    use std::fs::Permissions;
    use std::os::unix::fs::PermissionsExt as _;

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

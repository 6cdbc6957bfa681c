//! An archive's manifest (`NAME.manifest.json` beside `NAME.tar.zst`: what it holds, its size and
//! SHA-256) and the archive names `{chain}-{node}-{height}-{time}`, whose parts must be safe file
//! name components. Pure, apart from reading a manifest file.

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{BackupError, io_error};

/// The one archive format: a tar stream compressed with zstd.
pub const FORMAT: &str = "tar+zstd";

/// The suffix of an archive file.
pub const ARCHIVE_SUFFIX: &str = ".tar.zst";

/// The suffix of a manifest file.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// What a backup's caller knows before the archive is written: the node and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestBase {
    /// The chain (`jormungandr`, `nodeos`, `cardano`).
    pub chain: String,
    /// The node's name in the configuration.
    pub node: String,
    /// The node's height when it was stopped, when known.
    pub height: Option<u64>,
    /// The head block's hash or id, when known.
    pub head: Option<String>,
    /// The node's version, when known.
    pub version: Option<String>,
    /// When the backup was made (it names the archive).
    pub created_at: SystemTime,
}

/// A written archive, as `NAME.manifest.json` describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The chain.
    pub chain: String,
    /// The node.
    pub node: String,
    /// The node's height, when known.
    pub height: Option<u64>,
    /// The head block's hash or id, when known.
    pub head: Option<String>,
    /// The node's version, when known.
    pub version: Option<String>,
    /// When the backup was made, RFC 3339 UTC.
    pub created_at: String,
    /// The archive's file name (`NAME.tar.zst`), in the same directory as the manifest.
    pub archive: String,
    /// Lower-case hex SHA-256 of the archive file.
    pub sha256: String,
    /// The archive file's size.
    pub bytes: u64,
    /// Always `tar+zstd`.
    pub format: String,
    /// Entries in the archive (files, directories, symlinks).
    pub files: u64,
}

impl Manifest {
    /// Reads and parses a manifest file.
    pub fn read(path: &Path) -> Result<Manifest, BackupError> {
        let file = std::fs::File::open(path).map_err(|e| io_error("open", path, e))?;
        // Manifests are small; a huge file is not one, so read at most 1 MiB of it.
        let reader = std::io::Read::take(std::io::BufReader::new(file), 1 << 20);
        serde_json::from_reader(reader).map_err(|source| BackupError::Manifest {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The name shared by the archive and its manifest (`archive` without `.tar.zst`), if the
    /// manifest's `archive` is a well-formed archive file name.
    pub fn stem(&self) -> Option<&str> {
        let stem = self.archive.strip_suffix(ARCHIVE_SUFFIX)?;
        check_component(stem).ok().map(|()| stem)
    }
}

/// The archive name `{chain}-{node}-{height}-{time}` (height `unknown` when none, time
/// `YYYYMMDDTHHMMSSZ` in UTC), without a suffix; refused when the chain or the node could not be a
/// file name component.
pub fn archive_name(base: &ManifestBase) -> Result<String, BackupError> {
    check_part("chain", &base.chain)?;
    check_part("node", &base.node)?;
    let height = match base.height {
        Some(height) => height.to_string(),
        None => "unknown".to_owned(),
    };
    let time = chrono::DateTime::<chrono::Utc>::from(base.created_at).format("%Y%m%dT%H%M%SZ");
    Ok(format!("{}-{}-{height}-{time}", base.chain, base.node))
}

fn check_part(what: &'static str, value: &str) -> Result<(), BackupError> {
    check_component(value).map_err(|reason| BackupError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    })
}

/// Whether `value` is safe as (part of) one file name: not empty, no `/`, no NUL, no `..`, not
/// hidden (a leading `.` is how temporary files are named).
pub(crate) fn check_component(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        Err("it is empty")
    } else if value.contains('/') {
        Err("it contains '/'")
    } else if value.contains('\0') {
        Err("it contains a NUL byte")
    } else if value.contains("..") {
        Err("it contains '..'")
    } else if value.starts_with('.') {
        Err("it starts with '.'")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn base(chain: &str, node: &str, height: Option<u64>) -> ManifestBase {
        ManifestBase {
            chain: chain.to_owned(),
            node: node.to_owned(),
            height,
            head: None,
            version: None,
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_052_347),
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            archive_name(&base("nodeos", "bp-1", Some(42))).unwrap(),
            "nodeos-bp-1-42-20261119T013907Z"
        );
        assert_eq!(
            archive_name(&base("cardano", "relay", None)).unwrap(),
            "cardano-relay-unknown-20261119T013907Z"
        );
        for (node, reason) in [
            ("", "it is empty"),
            ("a/b", "it contains '/'"),
            ("a\0b", "it contains a NUL byte"),
            ("a..b", "it contains '..'"),
            (".hidden", "it starts with '.'"),
        ] {
            let error = archive_name(&base("nodeos", node, None)).unwrap_err();
            assert!(
                matches!(error, BackupError::InvalidName { what: "node", reason: r, .. } if r == reason),
                "{node:?}: {error}"
            );
        }
        let error = archive_name(&base("../x", "n", None)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "chain \"../x\" cannot be part of an archive name: it contains '/'"
        );
    }

    #[test]
    fn stem_only_for_a_safe_archive_name() {
        let mut manifest = Manifest {
            chain: "nodeos".into(),
            node: "n".into(),
            height: None,
            head: None,
            version: None,
            created_at: "2026-11-19T01:39:07Z".into(),
            archive: "nodeos-n-unknown-20261119T013907Z.tar.zst".into(),
            sha256: String::new(),
            bytes: 0,
            format: FORMAT.into(),
            files: 0,
        };
        assert_eq!(manifest.stem(), Some("nodeos-n-unknown-20261119T013907Z"));
        manifest.archive = "../elsewhere.tar.zst".into();
        assert_eq!(manifest.stem(), None);
        manifest.archive = "x.tar".into();
        assert_eq!(manifest.stem(), None);
    }
}

//! A target directory's archives: `list` (the good ones, newest first, and the incomplete
//! leftovers of interrupted or damaged backups), and retention: `to_prune` (pure: which archives of
//! a node go) and `prune` (removes them).
//!
//! An archive is good when `NAME.manifest.json` parses, names `NAME.tar.zst`, and that file exists
//! with the manifest's size; its digest is checked only by a restore (`restore::verify`), since
//! reading every archive for a listing would take minutes. Removing one deletes the archive first
//! (the mirror of `archive::create`, whose commit point is the archive's rename): once it is gone
//! the pair no longer counts, and a crash before the manifest goes leaves a small manifest that
//! the listing reports as incomplete.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::manifest::{ARCHIVE_SUFFIX, MANIFEST_SUFFIX, Manifest};
use super::{BackupError, io_error, sync_dir};

/// A good archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The archive file.
    pub archive: PathBuf,
    /// Its manifest file.
    pub manifest_path: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
    /// When it was made (the manifest's `created_at`).
    pub created_at: SystemTime,
}

/// A file of the target directory that is not part of a good archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incomplete {
    /// The file.
    pub path: PathBuf,
    /// Why it does not count.
    pub reason: String,
}

/// What a target directory holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Good archives, newest first (then by name, for a stable order).
    pub good: Vec<Entry>,
    /// Temporary files, archives without a readable manifest, manifests without their archive.
    pub incomplete: Vec<Incomplete>,
}

impl Listing {
    /// The good archives of one node, newest first.
    pub fn of_node<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.good
            .iter()
            .filter(move |entry| entry.manifest.node == node)
    }

    /// The good archives of one chain, newest first.
    pub fn of_chain<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.good
            .iter()
            .filter(move |entry| entry.manifest.chain == chain)
    }
}

/// Lists the archives of `target_dir` (files other than archives, manifests and temporary files
/// are left out).
pub fn list(target_dir: &Path) -> Result<Listing, BackupError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(target_dir).map_err(|e| io_error("list", target_dir, e))? {
        let entry = entry.map_err(|e| io_error("list", target_dir, e))?;
        // Non-UTF-8 names are none of ours.
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    let mut listing = Listing::default();
    let mut claimed = HashSet::new();
    for name in &names {
        let path = target_dir.join(name);
        if name.starts_with('.') && name.ends_with(".partial") {
            listing.incomplete.push(Incomplete {
                path,
                reason: "temporary file of an interrupted backup".to_owned(),
            });
            continue;
        }
        let Some(stem) = name.strip_suffix(MANIFEST_SUFFIX) else {
            continue;
        };
        match good_entry(target_dir, stem, &path) {
            Ok(entry) => {
                claimed.insert(format!("{stem}{ARCHIVE_SUFFIX}"));
                listing.good.push(entry);
            }
            Err(reason) => listing.incomplete.push(Incomplete { path, reason }),
        }
    }
    for name in &names {
        if name.ends_with(ARCHIVE_SUFFIX) && !name.starts_with('.') && !claimed.contains(name) {
            listing.incomplete.push(Incomplete {
                path: target_dir.join(name),
                reason: "archive without a good manifest".to_owned(),
            });
        }
    }
    listing.good.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.archive.cmp(&a.archive))
    });
    Ok(listing)
}

/// The entry of manifest `path` (`STEM.manifest.json`), or why it is not a good archive.
fn good_entry(target_dir: &Path, stem: &str, path: &Path) -> Result<Entry, String> {
    let manifest = Manifest::read(path).map_err(|e| crate::describe::chain(&e))?;
    if manifest.stem() != Some(stem) {
        return Err(format!(
            "manifest names archive {:?}, not {stem}{ARCHIVE_SUFFIX}",
            manifest.archive
        ));
    }
    let created_at = chrono::DateTime::parse_from_rfc3339(&manifest.created_at)
        .map_err(|_| format!("created_at {:?} is not RFC 3339", manifest.created_at))?;
    let archive = target_dir.join(&manifest.archive);
    let size = match fs::metadata(&archive) {
        Ok(meta) if meta.is_file() => meta.len(),
        Ok(_) => return Err(format!("{} is not a file", archive.display())),
        Err(_) => return Err(format!("archive {} is missing", archive.display())),
    };
    if size != manifest.bytes {
        return Err(format!(
            "archive {} has {size} bytes, the manifest says {}",
            archive.display(),
            manifest.bytes
        ));
    }
    Ok(Entry {
        archive,
        manifest_path: path.to_path_buf(),
        created_at: created_at.with_timezone(&chrono::Utc).into(),
        manifest,
    })
}

/// The good archives of `node` that retention removes: all but the newest `keep` (at least 1, so
/// the only good archive is never removed), newest first. Pure.
pub fn to_prune<'a>(good: &'a [Entry], node: &str, keep: usize) -> Vec<&'a Entry> {
    let mut of_node: Vec<&Entry> = good.iter().filter(|e| e.manifest.node == node).collect();
    of_node.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.archive.cmp(&a.archive))
    });
    of_node.into_iter().skip(keep.max(1)).collect()
}

/// Keeps the newest `keep` (at least 1) good archives of `node` in `target_dir` and removes the
/// others, each archive before its manifest; the archives removed, newest first.
pub fn prune(target_dir: &Path, node: &str, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    let listing = list(target_dir)?;
    let mut removed = Vec::new();
    for entry in to_prune(&listing.good, node, keep) {
        fs::remove_file(&entry.archive).map_err(|e| io_error("remove", &entry.archive, e))?;
        removed.push(entry.archive.clone());
        fs::remove_file(&entry.manifest_path)
            .map_err(|e| io_error("remove", &entry.manifest_path, e))?;
    }
    if !removed.is_empty() {
        sync_dir(target_dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backup::FORMAT;

    fn entry(node: &str, secs: u64) -> Entry {
        let name = format!("nodeos-{node}-unknown-{secs}");
        Entry {
            archive: PathBuf::from(format!("{name}{ARCHIVE_SUFFIX}")),
            manifest_path: PathBuf::from(format!("{name}{MANIFEST_SUFFIX}")),
            manifest: Manifest {
                chain: "nodeos".into(),
                node: node.into(),
                height: None,
                head: None,
                version: None,
                created_at: String::new(),
                archive: format!("{name}{ARCHIVE_SUFFIX}"),
                sha256: String::new(),
                bytes: 1,
                format: FORMAT.into(),
                files: 1,
            },
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    fn pruned(good: &[Entry], node: &str, keep: usize) -> Vec<u64> {
        to_prune(good, node, keep)
            .into_iter()
            .map(|e| {
                e.created_at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
            })
            .collect()
    }

    #[test]
    fn retention_keeps_the_newest_of_the_node_and_never_the_only_one() {
        // Unsorted on purpose, with another node's archives in between.
        let good = vec![
            entry("a", 20),
            entry("b", 50),
            entry("a", 40),
            entry("a", 10),
            entry("b", 5),
            entry("a", 30),
        ];
        assert_eq!(pruned(&good, "a", 2), vec![20, 10]);
        assert_eq!(pruned(&good, "a", 4), Vec::<u64>::new());
        assert_eq!(pruned(&good, "a", 1), vec![30, 20, 10]);
        // keep = 0 is taken as 1: the newest good archive stays.
        assert_eq!(pruned(&good, "a", 0), vec![30, 20, 10]);
        assert_eq!(pruned(&good, "b", 0), vec![5]);
        assert_eq!(pruned(&[entry("b", 5)], "b", 0), Vec::<u64>::new());
        assert_eq!(pruned(&good, "c", 1), Vec::<u64>::new());
    }
}

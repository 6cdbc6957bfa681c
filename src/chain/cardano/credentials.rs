//! The block producer's credential files (KES key, VRF key, operational certificate) as dynamic
//! block forging uses them: whether they are at a node's paths, removing them from there, and
//! installing the pool's copies there (mode 0600, written beside the target and renamed into
//! place, so the node never reads half a file). Blocking file I/O; the adapter runs it off the
//! async threads.
//!
//! The files' contents are secrets: they are only ever copied from one file to another. Nothing
//! here keeps, logs, displays or puts them into an error; messages name paths and the OS error.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The pool's file names in its `credentials_dir`.
pub const POOL_FILES: [&str; 3] = ["kes.skey", "vrf.skey", "node.opcert"];

/// Where a node was started to look for its credential files (its `--shelley-kes-key`,
/// `--shelley-vrf-key` and `--shelley-operational-certificate`). Paths only, never contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// `--shelley-kes-key`.
    pub kes: PathBuf,
    /// `--shelley-vrf-key`.
    pub vrf: PathBuf,
    /// `--shelley-operational-certificate`.
    pub opcert: PathBuf,
}

impl Credentials {
    /// The pool's three files in `dir` (`kes.skey`, `vrf.skey`, `node.opcert`).
    pub fn pool(dir: &Path) -> Credentials {
        Credentials {
            kes: dir.join(POOL_FILES[0]),
            vrf: dir.join(POOL_FILES[1]),
            opcert: dir.join(POOL_FILES[2]),
        }
    }

    /// The three paths, KES key, VRF key, certificate.
    pub fn paths(&self) -> [&Path; 3] {
        [&self.kes, &self.vrf, &self.opcert]
    }
}

/// A file operation that failed: the path and the OS error, never a content.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct FileFailure {
    /// The file (or directory) concerned.
    pub path: PathBuf,
    /// What the OS said.
    pub error: io::Error,
}

fn failure(path: &Path, error: io::Error) -> FileFailure {
    FileFailure {
        path: path.to_path_buf(),
        error,
    }
}

/// Which of the three files exist at `paths`, in order. A path whose directory is missing or
/// cannot be searched is out of nodekeeper's reach (the node runs elsewhere, or as another user):
/// that is an error, not "absent".
pub fn present(paths: &Credentials) -> Result<[bool; 3], FileFailure> {
    let mut found = [false; 3];
    for (slot, path) in found.iter_mut().zip(paths.paths()) {
        match fs::symlink_metadata(path) {
            Ok(_) => *slot = true,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let dir = parent(path);
                match fs::metadata(dir) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => {
                        return Err(failure(
                            dir,
                            io::Error::other("not a directory, so the file cannot be there"),
                        ));
                    }
                    Err(error) => return Err(failure(dir, error)),
                }
            }
            Err(error) => return Err(failure(path, error)),
        }
    }
    Ok(found)
}

/// Removes the three files at `paths` (one already gone is fine); every removal is attempted.
/// Never touches any other file, so the pool's copies stay where they are.
pub fn remove(paths: &Credentials) -> Vec<FileFailure> {
    paths
        .paths()
        .into_iter()
        .filter_map(|path| match fs::remove_file(path) {
            Ok(()) => None,
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => Some(failure(path, error)),
        })
        .collect()
}

/// Copies the pool's three files (`pool`) to `paths`, each readable by its owner only (0600):
/// written to a temporary file beside the target, synced, then renamed over it. All or nothing:
/// at the first failure (a pool file missing or unreadable, a path not writable) the files
/// already installed are removed again, so a node never holds part of the key.
pub fn install(pool: &Credentials, paths: &Credentials) -> Result<(), FileFailure> {
    for (from, to) in pool.paths().into_iter().zip(paths.paths()) {
        if let Err(failure) = copy_private(from, to) {
            remove(paths);
            return Err(failure);
        }
    }
    Ok(())
}

fn copy_private(from: &Path, to: &Path) -> Result<(), FileFailure> {
    let bytes = fs::read(from).map_err(|e| failure(from, e))?;
    let name = to
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = parent(to).join(format!(".{name}.nodekeeper-{}", std::process::id()));
    let written = (|| {
        let _ = fs::remove_file(&temporary);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        // The mode of a new file is also narrowed by the umask; make it exactly 0600.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(&bytes)?;
        file.sync_all()
    })();
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(failure(&temporary, error));
    }
    fs::rename(&temporary, to).map_err(|error| {
        let _ = fs::remove_file(&temporary);
        failure(to, error)
    })
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str =
        "{\"type\": \"KesSigningKey_ed25519_kes_2^6\", \"cborHex\": \"5900c0deadbeef\"}";

    fn pool(dir: &Path) -> Credentials {
        let pool = Credentials::pool(dir);
        fs::create_dir_all(dir).unwrap();
        for (path, tag) in pool.paths().into_iter().zip(["kes", "vrf", "cert"]) {
            fs::write(path, format!("{tag} {SECRET}")).unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(0o640)).unwrap();
        }
        pool
    }

    fn node(dir: &Path) -> Credentials {
        fs::create_dir_all(dir).unwrap();
        Credentials {
            kes: dir.join("kes.skey"),
            vrf: dir.join("vrf.skey"),
            opcert: dir.join("node.cert"),
        }
    }

    #[test]
    fn install_copies_the_pools_files_0600_and_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir.path().join("pool"));
        let node = node(&dir.path().join("bp1"));
        assert_eq!(present(&node).unwrap(), [false; 3]);
        // A stale file with a wide mode is replaced, not reused.
        fs::write(&node.vrf, "old").unwrap();
        fs::set_permissions(&node.vrf, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(present(&node).unwrap(), [false, true, false]);

        install(&pool, &node).unwrap();
        assert_eq!(present(&node).unwrap(), [true; 3]);
        for ((from, to), tag) in pool
            .paths()
            .into_iter()
            .zip(node.paths())
            .zip(["kes", "vrf", "cert"])
        {
            assert_eq!(fs::read_to_string(to).unwrap(), format!("{tag} {SECRET}"));
            assert_eq!(
                fs::metadata(to).unwrap().permissions().mode() & 0o777,
                0o600,
                "{}",
                to.display()
            );
            // The pool's copy is untouched.
            assert_eq!(fs::read_to_string(from).unwrap(), format!("{tag} {SECRET}"));
            assert_eq!(
                fs::metadata(from).unwrap().permissions().mode() & 0o777,
                0o640
            );
        }
        // No temporary file is left behind.
        let names: Vec<String> = fs::read_dir(dir.path().join("bp1"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");

        assert!(remove(&node).is_empty());
        assert_eq!(present(&node).unwrap(), [false; 3]);
        // Removing again is fine; the pool keeps its files.
        assert!(remove(&node).is_empty());
        assert_eq!(present(&pool).unwrap(), [true; 3]);
    }

    #[test]
    fn a_missing_pool_file_fails_naming_it_without_contents() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir.path().join("pool"));
        fs::remove_file(&pool.opcert).unwrap();
        let node = node(&dir.path().join("bp1"));
        let error = install(&pool, &node).unwrap_err();
        assert_eq!(error.path, pool.opcert);
        let text = format!("{error} {error:?}");
        assert!(text.contains("node.opcert"), "{text}");
        assert!(!text.contains("cborHex"), "{text}");
        // All or nothing: the two files copied before the failure are gone again.
        assert_eq!(present(&node).unwrap(), [false; 3]);
    }

    #[test]
    fn paths_out_of_reach_are_an_error_not_absent() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = Credentials {
            kes: dir.path().join("no-such-dir/kes.skey"),
            vrf: dir.path().join("no-such-dir/vrf.skey"),
            opcert: dir.path().join("no-such-dir/node.cert"),
        };
        let error = present(&elsewhere).unwrap_err();
        assert_eq!(error.path, dir.path().join("no-such-dir"));
        assert_eq!(error.error.kind(), io::ErrorKind::NotFound);
        let file = dir.path().join("plain");
        fs::write(&file, "x").unwrap();
        let under_a_file = Credentials {
            kes: file.join("kes.skey"),
            vrf: file.join("vrf.skey"),
            opcert: file.join("node.cert"),
        };
        assert!(present(&under_a_file).is_err());
    }
}

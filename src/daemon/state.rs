//! What the daemon persists so that a restarted daemon carries on: the holds (`nodekeeper-state.json`
//! beside the restart log: a node an operator stopped or an earlier daemon held is not started)
//! and the policy's leadership memory (`leadership.state_file`: the leader, the known slots, the
//! chain time, parked nodes). Small JSON files, written atomically and only when they change.
//! Also the lock that keeps a second daemon off the same files (`nodekeeper.lock`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::error;

use super::disk::Disk;
use crate::config::{Config, nodefile};
use crate::policy::{Hold, LeaderMemory};

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct HoldsFile {
    holds: BTreeMap<String, Hold>,
}

/// Where the daemon keeps its holds: beside the restart log.
pub fn holds_path(config: &Config) -> PathBuf {
    config.restart_log.with_file_name("nodekeeper-state.json")
}

/// Where the daemon's lock is: beside the restart log and the state file.
pub fn lock_path(config: &Config) -> PathBuf {
    config.restart_log.with_file_name("nodekeeper.lock")
}

/// The lock one daemon holds on its files for as long as it lives (released when the process
/// ends, even by SIGKILL: it is an `flock`).
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

/// Takes the exclusive lock at `path` and writes this process's id into it; when another process
/// holds it, an error naming that process (its pid, as it wrote it) and the file.
pub fn lock(path: &Path) -> Result<Lock, String> {
    use std::io::{Read as _, Seek as _, Write as _};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_string()
            } else {
                format!("pid {holder}")
            };
            return Err(format!(
                "another nodekeeper ({who}) runs on these files (it holds {}); stop it first, or \
                 give this one its own restart_log.path",
                path.display()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(Lock { _file: file })
}

/// Reads the holds; a missing file is no holds; an unreadable or garbled one is an error naming
/// the file (the daemon refuses to start rather than forget an operator's hold).
pub fn load_holds(path: &Path) -> Result<BTreeMap<String, Hold>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<HoldsFile>(&bytes)
            .map(|file| file.holds)
            .map_err(|e| format!("{}: not a nodekeeper state file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the holds atomically.
pub fn save_holds(path: &Path, holds: &BTreeMap<String, Hold>) -> Result<(), String> {
    let file = HoldsFile {
        holds: holds.clone(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    crate::files::write_if_changed(path, &bytes, 0o644)
        .map(|_| ())
        .map_err(|e| crate::describe::chain(&e))
}

/// Reads the persisted leadership memory (absent: empty; unreadable: an error naming the file).
pub fn load_leadership(path: &Path) -> Result<LeaderMemory, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not a nodekeeper leadership state file ({e}); move it away to start afresh",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LeaderMemory::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The persisted files of one daemon; `None` paths in a dry run, which writes nothing. Writes go
/// to the disk writer, off the loop, in order.
pub struct Store {
    holds: Option<PathBuf>,
    leadership: Option<PathBuf>,
    saved_holds: Option<BTreeMap<String, Hold>>,
    saved_leadership: Option<serde_json::Value>,
    disk: Arc<Disk>,
}

impl Store {
    /// The files of `config` (none with `dry_run`), written through `disk`.
    pub fn new(config: &Config, dry_run: bool, disk: Arc<Disk>) -> Store {
        Store {
            holds: (!dry_run).then(|| holds_path(config)),
            leadership: (!dry_run && config.leadership.enabled)
                .then(|| config.leadership.state_file.clone()),
            saved_holds: None,
            saved_leadership: None,
            disk,
        }
    }

    /// Persists the holds when they changed since the last save.
    pub fn save_holds(&mut self, holds: BTreeMap<String, Hold>) {
        let Some(path) = self.holds.clone() else {
            return;
        };
        if self.saved_holds.as_ref() == Some(&holds) {
            return;
        }
        self.saved_holds = Some(holds.clone());
        self.disk.write(move || {
            if let Err(e) = save_holds(&path, &holds) {
                error!("{e}");
            }
        });
    }

    /// Runs `then` once every write asked for so far is done: an operator's answer goes out only
    /// when what it changed is on disk.
    pub fn after_writes(&self, then: impl FnOnce() + Send + 'static) {
        self.disk.write(then);
    }

    /// Persists the leadership memory when it changed (atomic replace, 0600).
    pub fn save_leadership(&mut self, memory: &LeaderMemory) {
        let Some(path) = self.leadership.clone() else {
            return;
        };
        let value = match serde_json::to_value(memory) {
            Ok(value) => value,
            Err(e) => {
                error!("leadership state not serialisable: {e}");
                return;
            }
        };
        if self.saved_leadership.as_ref() == Some(&value) {
            return;
        }
        self.saved_leadership = Some(value.clone());
        self.disk.write(move || {
            if let Err(e) = nodefile::write_if_changed(&path, &value) {
                error!("cannot persist the leadership state: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::HoldReason;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodekeeper.lock");
        let held = lock(&path).unwrap();
        let refused = lock(&path).unwrap_err();
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(held);
        lock(&path).unwrap();
    }

    #[test]
    fn holds_round_trip_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(load_holds(&path).unwrap().is_empty());
        let mut holds = BTreeMap::new();
        holds.insert(
            "node1".to_string(),
            Hold {
                reason: HoldReason::Storm {
                    restarts: 3,
                    window_secs: 1800,
                },
                since: std::time::UNIX_EPOCH,
            },
        );
        save_holds(&path, &holds).unwrap();
        assert_eq!(load_holds(&path).unwrap(), holds);
        std::fs::write(&path, "{not json").unwrap();
        assert!(load_holds(&path).unwrap_err().contains("state.json"));
    }
}

//! The daemon's persisted holds, so that a restarted daemon does not start a node an operator
//! stopped or an earlier daemon held. One small JSON file, written atomically.

use std::collections::BTreeMap;
use std::path::Path;

use crate::policy::Hold;

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct File {
    holds: BTreeMap<String, Hold>,
}

/// Reads the holds; a missing file is no holds; an unreadable or garbled one is an error naming
/// the file (the daemon refuses to start rather than forget an operator's hold).
pub fn load(path: &Path) -> Result<BTreeMap<String, Hold>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<File>(&bytes)
            .map(|file| file.holds)
            .map_err(|e| format!("{}: not a nodekeeper state file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the holds atomically.
pub fn save(path: &Path, holds: &BTreeMap<String, Hold>) -> Result<(), String> {
    let file = File {
        holds: holds.clone(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    crate::files::write_if_changed(path, &bytes, 0o644)
        .map(|_| ())
        .map_err(|e| crate::describe::chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::HoldReason;

    #[test]
    fn holds_round_trip_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(load(&path).unwrap().is_empty());
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
        save(&path, &holds).unwrap();
        assert_eq!(load(&path).unwrap(), holds);
        std::fs::write(&path, "{not json").unwrap();
        assert!(load(&path).unwrap_err().contains("state.json"));
    }
}

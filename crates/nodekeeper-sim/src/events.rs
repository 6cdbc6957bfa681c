//! The leader-event log: one JSON line per produced block, shared by several simulator processes.
//!
//! Owns the file format and the append discipline: the file is opened with `O_APPEND` for every event and the
//! whole line goes out in a single `write`, so lines of concurrent processes never interleave. Tests find
//! adversarial forks as two lines with the same `(epoch, slot)`.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::node::LeaderEvent;

/// Errors of appending an event.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// The file could not be opened or written.
    #[error("cannot append to the events file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Fewer bytes than the line were written.
    #[error("short write to the events file {} ({written} of {len} bytes)", path.display())]
    ShortWrite {
        /// The file.
        path: PathBuf,
        /// Bytes written.
        written: usize,
        /// Bytes in the line.
        len: usize,
    },
    /// The event could not be serialised (never happens for plain data).
    #[error("cannot serialise a leader event")]
    Json(#[from] serde_json::Error),
}

/// An append-only file of leader events.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
}

impl EventLog {
    /// A log at `path`; the file is created on the first event.
    pub fn new(path: PathBuf) -> EventLog {
        EventLog { path }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event as `{"node":…,"epoch":…,"slot":…,"height":…,"time":…}\n` in a single write.
    pub fn append(&self, event: &LeaderEvent) -> Result<(), EventLogError> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        let io_error = |source| EventLogError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_error)?;
        let written = file.write(&line).map_err(io_error)?;
        if written != line.len() {
            return Err(EventLogError::ShortWrite {
                path: self.path.clone(),
                written,
                len: line.len(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_json_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path().join("events.jsonl"));
        for slot in [3, 9] {
            log.append(&LeaderEvent {
                node: "n1".into(),
                epoch: 2,
                slot,
                height: 130 + slot,
                time: "2023-11-14T22:15:30+00:00".into(),
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(
            text,
            "{\"node\":\"n1\",\"epoch\":2,\"slot\":3,\"height\":133,\"time\":\"2023-11-14T22:15:30+00:00\"}\n\
             {\"node\":\"n1\",\"epoch\":2,\"slot\":9,\"height\":139,\"time\":\"2023-11-14T22:15:30+00:00\"}\n"
        );
    }
}

//! The append-only restart log (CSV): one row per stop, start, backup and restore, each written with a single
//! `write_all` and `fsync`ed before the next action. This module owns opening (header check,
//! torn-line repair) and appending; `record` owns the format (columns, headers, writing a row,
//! reading records: also what `log analyze` reads with) and `read` reading rows back. It must not
//! decide when to restart.
//!
//! Format. The header is
//! `node name,timestamp,action,uptime,reason,program,height,reference height,supervisor state,exit status`:
//! the first five columns are jmanager's names (its file separates them with `, `; ours with `,`, so
//! a jmanager file is refused rather than appended to). Rows are RFC 4180 CSV written by the `csv`
//! crate: a field with a comma, quote or line break is quoted, so a reason may contain any text.
//! Lines end with `\n`.
//!
//! - `timestamp`: UTC, RFC 3339 with milliseconds and `Z` (`2026-11-22T01:02:03.123Z`), truncated to
//!   the millisecond. Any RFC 3339 offset is accepted when reading.
//! - `action`: `stop` or `start`, as jmanager writes them; `backup` or `restore` for a backup or a
//!   restore of the node's data, written between the `stop` and the `start` around it (files
//!   without them still read; jmanager never wrote them).
//! - `uptime`, `height`, `reference height`, `exit status`: integers; an empty cell when unknown
//!   (jmanager wrote `-1` for an unknown uptime; we do not).
//!
//! Records, not lines. A record ends at a line break outside quotes, so a reason with a line break
//! stays one row. Rows are written by the `csv` crate and read back with the `csv` crate's reading
//! rules (a test checks both agree). A record that does not parse is reported as a `RowProblem` at
//! the line where it starts and, if it spans several lines, only its first line is skipped: a stray
//! quote in one corrupt line cannot swallow the rows after it.
//!
//! Torn rows. Each row is one `write_all` then `fsync`, so only the last record can be incomplete
//! after a crash: no line end, or a line end inside an open quote. `RestartLog::open` cuts the
//! incomplete record that follows the last good row and returns its bytes.

pub mod read;
pub mod record;
pub mod timestamp;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

pub use read::{RowProblem, read_rows, read_rows_from, read_tail};
pub use record::{COLUMNS, HEADER_LINE, RestartAction, RestartRow};

use read::{check_header, scan_records};
use record::encode_row;

/// How much of an existing file is read to check its header before the rest is read: a wrong,
/// large file is refused without being read whole.
const HEADER_PROBE_BYTES: u64 = 64 * 1024;

/// What `RestartLog::open` found and fixed, for the caller to log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The header was written: the file was new, empty, or only held a torn header.
    pub wrote_header: bool,
    /// The bytes of an incomplete last row (an interrupted write) that were cut off the file.
    pub repaired_torn_bytes: Option<Vec<u8>>,
    /// The last complete row does not parse (reported, not fatal).
    pub last_row_problem: Option<RowProblem>,
}

/// Why the restart log cannot be used. Messages name the file; the I/O cause is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum RestartLogError {
    /// The file could not be created (e.g. its directory does not exist).
    #[error("cannot create restart log {}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The existing file could not be opened, read or repaired.
    #[error("cannot {action} restart log {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done: `open`, `read`, `repair`.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The path is a directory or another non-regular file.
    #[error("restart log {} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file's first line is not nodekeeper's header (e.g. a jmanager `restarts.csv`).
    #[error(
        "restart log {} starts with {found}, expected nodekeeper's header {expected:?}; \
         move the file aside or set restart_log.path to another file",
        path.display()
    )]
    Header {
        /// The file.
        path: PathBuf,
        /// The first line found, quoted and cut.
        found: String,
        /// The header expected.
        expected: &'static str,
    },
    /// Writing a row failed (a partial write is cut off again).
    #[error("cannot append to restart log {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The row was written but `fsync` failed: it may not survive a power loss.
    #[error("cannot sync restart log {} to disk", path.display())]
    Sync {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The row's timestamp cannot be written as RFC 3339 (before year 0 or after 9999).
    #[error("timestamp of the row for {node} is out of range")]
    Timestamp {
        /// The row's node.
        node: String,
    },
}

/// The open restart log, ready for appending. One writer per file is assumed.
#[derive(Debug)]
pub struct RestartLog {
    file: File,
    path: PathBuf,
}

impl RestartLog {
    /// Opens `path` for appending, creating it (mode 0644, with the header) if missing.
    ///
    /// The parent directory is not created: a missing directory is an error naming the path. An
    /// existing file must start with nodekeeper's header, otherwise it is refused (`Header`). An
    /// incomplete last row left by an interrupted write is cut off and returned in the report, so
    /// it is never glued to the next row.
    pub fn open(path: &Path) -> Result<(RestartLog, OpenReport), RestartLogError> {
        let created = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o644)
            .open(path);
        match created {
            Ok(file) => {
                let mut log = RestartLog {
                    file,
                    path: path.to_path_buf(),
                };
                log.write_header()?;
                sync_parent_dir(path);
                let report = OpenReport {
                    wrote_header: true,
                    ..OpenReport::default()
                };
                return Ok((log, report));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(RestartLogError::Create {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        let io_error = |action: &'static str| {
            move |source: io::Error| RestartLogError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        // Checked before opening: opening a directory for writing fails with a less clear error.
        if !std::fs::metadata(path).map_err(io_error("open"))?.is_file() {
            return Err(RestartLogError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_error("open"))?;
        let mut log = RestartLog {
            file,
            path: path.to_path_buf(),
        };
        let mut report = OpenReport::default();

        let mut head = Vec::new();
        (&log.file)
            .take(HEADER_PROBE_BYTES)
            .read_to_end(&mut head)
            .map_err(io_error("read"))?;
        let whole_file_read = (head.len() as u64) < HEADER_PROBE_BYTES;
        let header_end = match check_header(&head, whole_file_read, path)? {
            Some(end) => end,
            None => {
                // Empty, or a header cut by an interrupted first write: start over.
                if !head.is_empty() {
                    report.repaired_torn_bytes = Some(head);
                }
                log.file.set_len(0).map_err(io_error("repair"))?;
                log.write_header()?;
                report.wrote_header = true;
                return Ok((log, report));
            }
        };

        let mut bytes = Vec::new();
        log.file
            .seek(SeekFrom::Start(0))
            .map_err(io_error("read"))?;
        log.file.read_to_end(&mut bytes).map_err(io_error("read"))?;
        let scanned = scan_records(&bytes, header_end, 2);
        let last_good_end = scanned
            .iter()
            .rev()
            .find(|record| record.outcome.is_ok())
            .map_or(header_end, |record| record.end);
        let kept_end = match torn_start(&bytes, last_good_end) {
            Some(start) => {
                report.repaired_torn_bytes = Some(bytes[start..].to_vec());
                log.file.set_len(start as u64).map_err(io_error("repair"))?;
                log.file.sync_all().map_err(io_error("repair"))?;
                start
            }
            None => bytes.len(),
        };
        report.last_row_problem = scanned
            .iter()
            .rev()
            .find(|record| record.end <= kept_end)
            .and_then(|record| record.outcome.as_ref().err())
            .cloned();
        Ok((log, report))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one row with a single `write_all` (the file is opened `O_APPEND`), then `fsync`s
    /// the data before returning, so the row is on disk before the next action.
    pub fn append(&mut self, row: &RestartRow) -> Result<(), RestartLogError> {
        let bytes = match encode_row(row) {
            Ok(bytes) => bytes,
            Err(RestartLogError::Write { source, .. }) => {
                return Err(RestartLogError::Write {
                    path: self.path.clone(),
                    source,
                });
            }
            Err(other) => return Err(other),
        };
        let length_before = self.file.metadata().map(|m| m.len()).ok();
        if let Err(source) = self.file.write_all(&bytes) {
            // A partial write (a full disk) would leave a torn line for the next row to be glued
            // to; cut it off again. If that fails too, the next `open` repairs it.
            if let Some(length) = length_before {
                let _ = self.file.set_len(length);
            }
            return Err(RestartLogError::Write {
                path: self.path.clone(),
                source,
            });
        }
        self.file
            .sync_data()
            .map_err(|source| RestartLogError::Sync {
                path: self.path.clone(),
                source,
            })
    }

    fn write_header(&mut self) -> Result<(), RestartLogError> {
        self.file
            .write_all(HEADER_LINE.as_bytes())
            .map_err(|source| RestartLogError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.file
            .sync_all()
            .map_err(|source| RestartLogError::Sync {
                path: self.path.clone(),
                source,
            })
    }
}

/// Makes a new file's directory entry durable. Best effort: some file systems refuse to sync a
/// directory, and the row data itself is synced regardless.
fn sync_parent_dir(path: &Path) {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// Where the incomplete final record after `from` starts, if the file ends inside one: no line
/// end, or inside a quoted field. Only what follows the last good row is considered, so a corrupt
/// line earlier in the file never makes good rows look torn.
fn torn_start(bytes: &[u8], from: usize) -> Option<usize> {
    let (mut scratch, mut ends) = (Vec::new(), Vec::new());
    let mut pos = from;
    while pos < bytes.len() {
        scratch.clear();
        ends.clear();
        match record::scan_record(&bytes[pos..], &mut scratch, &mut ends) {
            Some(end) => pos += end,
            None => return Some(pos),
        }
    }
    None
}

#[cfg(test)]
mod tests;

//! The append-only restart log (CSV): one row per stop and per start, each written with a single
//! `write_all` and `fsync`ed before the next action. This module owns the file format, opening
//! (header check, torn-line repair), appending and reading back; it must not decide when to restart.
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
//! - `action`: `stop` or `start`, as jmanager writes them.
//! - `uptime`, `height`, `reference height`, `exit status`: integers; an empty cell when unknown
//!   (jmanager wrote `-1` for an unknown uptime; we do not).
//!
//! Records, not lines. A record ends at a line break outside quotes, so a reason with a line break
//! stays one row. Rows are written by the `csv` crate and read back by one small state machine with
//! the `csv` crate's reading rules (a test checks both agree), which gives record ends, fields and
//! byte offsets in one pass: torn-row repair and resynchronisation need the offsets. A record that
//! does not parse is reported as a `RowProblem` at the line where it starts and, if it spans several
//! lines, only its first line is skipped: a stray quote in one corrupt line cannot swallow the rows
//! after it.
//!
//! Torn rows. Each row is one `write_all` then `fsync`, so only the last record can be incomplete
//! after a crash: no line end, or a line end inside an open quote. `RestartLog::open` cuts the
//! incomplete record that follows the last good row and returns its bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Datelike as _, SecondsFormat, Utc};

/// The column names, in order.
pub const COLUMNS: [&str; 10] = [
    "node name",
    "timestamp",
    "action",
    "uptime",
    "reason",
    "program",
    "height",
    "reference height",
    "supervisor state",
    "exit status",
];

/// The header line as written.
pub const HEADER_LINE: &str = "node name,timestamp,action,uptime,reason,program,height,reference height,supervisor state,exit status\n";

/// How much of an existing file is read to check its header before the rest is read: a wrong,
/// large file is refused without being read whole.
const HEADER_PROBE_BYTES: u64 = 64 * 1024;

/// What a row records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestartAction {
    /// The node's program was stopped.
    Stop,
    /// The node's program was started.
    Start,
}

impl RestartAction {
    /// The cell text: `stop` or `start`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartAction::Stop => "stop",
            RestartAction::Start => "start",
        }
    }

    /// Parses the cell text (exactly `stop` or `start`).
    pub fn parse(text: &str) -> Option<RestartAction> {
        match text {
            "stop" => Some(RestartAction::Stop),
            "start" => Some(RestartAction::Start),
            _ => None,
        }
    }
}

impl std::fmt::Display for RestartAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the restart log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartRow {
    /// The node's name (`node name`).
    pub node: String,
    /// When the action was taken (`timestamp`), kept to the millisecond.
    pub timestamp: SystemTime,
    /// Stop or start (`action`).
    pub action: RestartAction,
    /// The node's uptime in seconds as it last reported it; empty when unknown (`uptime`).
    pub uptime_secs: Option<u64>,
    /// Why (`reason`); may be empty, e.g. a plain start.
    pub reason: String,
    /// The supervisord program name (`program`).
    pub program: String,
    /// The node's height at the time (`height`).
    pub height: Option<u64>,
    /// The reference height at the time (`reference height`).
    pub reference_height: Option<u64>,
    /// supervisord's state name for the program at the time (`supervisor state`).
    pub supervisor_state: String,
    /// The program's last exit status, when known (`exit status`).
    pub exit_status: Option<i32>,
}

/// A row that could not be read back; it is skipped and the rest still comes out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowProblem {
    /// The 1-based line where the record starts (the header is line 1).
    pub line: usize,
    /// What is wrong, short (values are cut, never a whole line of unknown length).
    pub message: String,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

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

/// Reads every row of a nodekeeper restart log. Unreadable rows are skipped and reported.
pub fn read_rows(path: &Path) -> Result<(Vec<RestartRow>, Vec<RowProblem>), RestartLogError> {
    let bytes = std::fs::read(path).map_err(|source| RestartLogError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })?;
    parse_log(&bytes, path)
}

/// `read_rows` over any reader (errors name the file `(reader)`).
pub fn read_rows_from<R: Read>(
    mut reader: R,
) -> Result<(Vec<RestartRow>, Vec<RowProblem>), RestartLogError> {
    let path = Path::new("(reader)");
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| RestartLogError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
    parse_log(&bytes, path)
}

/// The rows in the last `max_bytes` of the log, oldest first (e.g. each node's last restart at
/// start-up without reading years of log). The first, probably partial, record of the window is
/// dropped; unreadable rows are skipped silently.
pub fn read_tail(path: &Path, max_bytes: u64) -> Result<Vec<RestartRow>, RestartLogError> {
    let io_error = |source| RestartLogError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let length = file.metadata().map_err(io_error)?.len();
    if length <= max_bytes {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error)?;
        return parse_log(&bytes, path).map(|(rows, _problems)| rows);
    }
    file.seek(SeekFrom::Start(length - max_bytes))
        .map_err(io_error)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_error)?;
    let Some(first_break) = bytes.iter().position(|&b| b == b'\n') else {
        return Ok(Vec::new());
    };
    Ok(scan_records(&bytes, first_break + 1, 0)
        .into_iter()
        .filter_map(|record| record.outcome.ok())
        .collect())
}

/// Header check then rows.
fn parse_log(
    bytes: &[u8],
    path: &Path,
) -> Result<(Vec<RestartRow>, Vec<RowProblem>), RestartLogError> {
    let Some(header_end) = check_header(bytes, true, path)? else {
        let problems = if bytes.is_empty() {
            Vec::new()
        } else {
            vec![RowProblem {
                line: 1,
                message: "incomplete header".into(),
            }]
        };
        return Ok((Vec::new(), problems));
    };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for record in scan_records(bytes, header_end, 2) {
        match record.outcome {
            Ok(row) => rows.push(row),
            Err(problem) => problems.push(problem),
        }
    }
    Ok((rows, problems))
}

/// Checks the first record of `head`: `Ok(Some(end))` after a good header, `Ok(None)` when `head`
/// is the whole file and empty or a prefix of the header (an interrupted first write).
fn check_header(
    head: &[u8],
    whole_file: bool,
    path: &Path,
) -> Result<Option<usize>, RestartLogError> {
    let record = scan_record(head, 0);
    let mismatch = |found: &[u8]| RestartLogError::Header {
        path: path.to_path_buf(),
        found: crate::describe::excerpt(&String::from_utf8_lossy(found), 60),
        expected: HEADER_LINE.trim_end(),
    };
    if !record.terminated {
        if whole_file && HEADER_LINE.as_bytes().starts_with(head) {
            return Ok(None);
        }
        return Err(mismatch(head));
    }
    let matches = record.fields.len() == COLUMNS.len()
        && record
            .fields
            .iter()
            .zip(COLUMNS)
            .all(|(field, column)| field == column.as_bytes());
    if matches {
        Ok(Some(record.end))
    } else {
        let line = &head[..record.end];
        Err(mismatch(line.strip_suffix(b"\n").unwrap_or(line)))
    }
}

/// One record found by the scanner: where it ends, and what it holds.
#[derive(Debug)]
struct Scanned {
    end: usize,
    outcome: Result<RestartRow, RowProblem>,
}

/// Reads the records of `bytes` from `pos` (which starts line `line`), resynchronising at the next
/// line after an unparsable multi-line record. Blank lines are skipped.
fn scan_records(bytes: &[u8], mut pos: usize, mut line: usize) -> Vec<Scanned> {
    let mut scanned = Vec::new();
    while pos < bytes.len() {
        let raw = scan_record(bytes, pos);
        let end = raw.end;
        let record = &bytes[pos..end];
        let n_breaks = record.iter().filter(|&&b| b == b'\n').count();
        let blank = matches!(record, b"\n" | b"\r\n");
        if blank {
            pos = end;
            line += n_breaks;
            continue;
        }
        let outcome = if raw.terminated {
            parse_row(raw.fields)
        } else if record.ends_with(b"\n") {
            Err("incomplete row (unclosed quote at the end of the file)".into())
        } else {
            Err("incomplete row (no line end)".into())
        };
        match outcome {
            Ok(row) => {
                scanned.push(Scanned {
                    end,
                    outcome: Ok(row),
                });
                pos = end;
                line += n_breaks;
            }
            Err(message) => {
                let problem = RowProblem { line, message };
                // Only the first line of a bad multi-line record is consumed.
                let first_break = record.iter().position(|&b| b == b'\n');
                let consumed = match first_break {
                    Some(index) if index + 1 < record.len() => index + 1,
                    _ => record.len(),
                };
                scanned.push(Scanned {
                    end: pos + consumed,
                    outcome: Err(problem),
                });
                line += record[..consumed].iter().filter(|&&b| b == b'\n').count();
                pos += consumed;
            }
        }
    }
    scanned
}

/// Where the incomplete final record after `from` starts, if the file ends inside one: no line
/// end, or inside a quoted field. Only what follows the last good row is considered, so a corrupt
/// line earlier in the file never makes good rows look torn.
fn torn_start(bytes: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while pos < bytes.len() {
        let record = scan_record(bytes, pos);
        if !record.terminated {
            return Some(pos);
        }
        pos = record.end;
    }
    None
}

/// One CSV record as the scanner read it.
struct RawRecord {
    /// Just past its `\n`, or the end of the input.
    end: usize,
    /// Whether a `\n` outside quotes ended it (else the input ended first).
    terminated: bool,
    /// The fields, unquoted (`\r` before the line end removed).
    fields: Vec<Vec<u8>>,
}

/// Reads the record starting at `start`. One state machine finds both the record's end and its
/// fields, following the `csv` crate's reader (csv-core) so that what its writer writes reads back
/// identically: a quote opens a quoted field only at the start of a field, `""` inside one is a
/// literal quote, and text after a closing quote continues the field unquoted. Never panics.
fn scan_record(bytes: &[u8], start: usize) -> RawRecord {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut state = State::FieldStart;
    let mut fields = Vec::new();
    let mut field = Vec::new();
    let mut end = None;
    for (offset, &byte) in bytes.iter().enumerate().skip(start) {
        state = match (state, byte) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => {
                field.push(byte);
                State::Quoted
            }
            (_, b'\n') => {
                end = Some(offset + 1);
                break;
            }
            (State::FieldStart, b'"') => State::Quoted,
            (State::QuoteInQuoted, b'"') => {
                field.push(b'"');
                State::Quoted
            }
            (_, b',') => {
                fields.push(std::mem::take(&mut field));
                State::FieldStart
            }
            _ => {
                field.push(byte);
                State::Unquoted
            }
        };
    }
    // A `\r\n` line end: the `\r` is not part of the last field (a quoted `\r` is kept).
    if end.is_some() && state == State::Unquoted && field.last() == Some(&b'\r') {
        field.pop();
    }
    fields.push(field);
    RawRecord {
        end: end.unwrap_or(bytes.len()),
        terminated: end.is_some(),
        fields,
    }
}

/// Decodes one row from a record's fields. Never panics.
fn parse_row(record: Vec<Vec<u8>>) -> Result<RestartRow, String> {
    if record.len() != COLUMNS.len() {
        return Err(format!(
            "{} fields, expected {}",
            record.len(),
            COLUMNS.len()
        ));
    }
    let mut fields = Vec::with_capacity(COLUMNS.len());
    for (field, column) in record.iter().zip(COLUMNS) {
        let text = std::str::from_utf8(field).map_err(|_| format!("{column} is not UTF-8"))?;
        fields.push(text);
    }
    let [
        node,
        timestamp,
        action,
        uptime,
        reason,
        program,
        height,
        reference_height,
        supervisor_state,
        exit_status,
    ] = fields[..]
    else {
        return Err("wrong number of fields".into());
    };
    let timestamp = DateTime::parse_from_rfc3339(timestamp)
        .ok()
        .and_then(|date| crate::time::from_unix(date.timestamp(), date.timestamp_subsec_nanos()))
        .ok_or_else(|| {
            format!(
                "timestamp is not an RFC 3339 date: {}",
                crate::describe::excerpt(timestamp, 60)
            )
        })?;
    let action = RestartAction::parse(action).ok_or_else(|| {
        format!(
            "action is neither stop nor start: {}",
            crate::describe::excerpt(action, 60)
        )
    })?;
    Ok(RestartRow {
        node: node.to_string(),
        timestamp,
        action,
        uptime_secs: optional_number("uptime", uptime)?,
        reason: reason.to_string(),
        program: program.to_string(),
        height: optional_number("height", height)?,
        reference_height: optional_number("reference height", reference_height)?,
        supervisor_state: supervisor_state.to_string(),
        exit_status: optional_number("exit status", exit_status)?,
    })
}

/// An empty cell is `None`; otherwise a decimal integer of type `T`.
fn optional_number<T: std::str::FromStr>(column: &str, text: &str) -> Result<Option<T>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        format!(
            "{column} is not a valid number: {}",
            crate::describe::excerpt(text, 60)
        )
    })
}

/// Serialises one row, line end included.
fn encode_row(row: &RestartRow) -> Result<Vec<u8>, RestartLogError> {
    let timestamp = utc(row.timestamp)
        .filter(|date| (0..=9999).contains(&date.year()))
        .ok_or_else(|| RestartLogError::Timestamp {
            node: row.node.clone(),
        })?
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let number = |value: Option<u64>| value.map(|v| v.to_string()).unwrap_or_default();
    let fields = [
        row.node.clone(),
        timestamp,
        row.action.as_str().to_string(),
        number(row.uptime_secs),
        row.reason.clone(),
        row.program.clone(),
        number(row.height),
        number(row.reference_height),
        row.supervisor_state.clone(),
        row.exit_status.map(|v| v.to_string()).unwrap_or_default(),
    ];
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to a `Vec` cannot fail; the errors are mapped rather than unwrapped all the same
    // (`append` puts the file's path in).
    let failed = |e: String| RestartLogError::Write {
        path: PathBuf::new(),
        source: io::Error::other(e),
    };
    writer
        .write_record(&fields)
        .map_err(|e| failed(e.to_string()))?;
    writer.into_inner().map_err(|e| failed(e.to_string()))
}

/// A `SystemTime` as a UTC date, if chrono can represent it.
fn utc(time: SystemTime) -> Option<DateTime<Utc>> {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => {
            DateTime::from_timestamp(i64::try_from(since.as_secs()).ok()?, since.subsec_nanos())
        }
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).ok()?;
            match before.subsec_nanos() {
                0 => DateTime::from_timestamp(-secs, 0),
                nanos => DateTime::from_timestamp(-secs - 1, 1_000_000_000 - nanos),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
    }

    /// A plain row, to vary with struct update syntax.
    fn row(node: &str, action: RestartAction) -> RestartRow {
        RestartRow {
            node: node.into(),
            timestamp: at(1_795_309_323_123),
            action,
            uptime_secs: Some(35_211),
            reason: "staled tip".into(),
            program: format!("jnode_{node}"),
            height: Some(405_672),
            reference_height: Some(405_690),
            supervisor_state: "RUNNING".into(),
            exit_status: None,
        }
    }

    fn tricky_rows() -> Vec<RestartRow> {
        vec![
            row("one", RestartAction::Stop),
            RestartRow {
                node: "two, the second".into(),
                reason: "lag: 12 blocks behind \"majority\", restarting".into(),
                uptime_secs: None,
                height: None,
                reference_height: None,
                exit_status: Some(-9),
                supervisor_state: String::new(),
                ..row("two", RestartAction::Start)
            },
            RestartRow {
                reason: "spawn error:\nline two\r\nline three".into(),
                timestamp: at(0),
                exit_status: Some(i32::MIN),
                uptime_secs: Some(u64::MAX),
                ..row("three", RestartAction::Stop)
            },
            RestartRow {
                node: "\"".into(),
                reason: String::new(),
                program: "ünïcödé ✓".into(),
                timestamp: at(253_402_300_799_999), // 9999-12-31T23:59:59.999Z
                ..row("four", RestartAction::Start)
            },
            RestartRow {
                reason: " leading and trailing spaces ".into(),
                timestamp: SystemTime::UNIX_EPOCH - Duration::from_millis(1_500),
                ..row("five", RestartAction::Stop)
            },
        ]
    }

    #[test]
    fn header_line_is_what_the_csv_writer_writes() {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        writer.write_record(COLUMNS).unwrap();
        assert_eq!(writer.into_inner().unwrap(), HEADER_LINE.as_bytes());
    }

    #[test]
    fn rows_are_encoded_as_documented() {
        let cases = [
            (
                row("one", RestartAction::Stop),
                "one,2026-11-22T01:02:03.123Z,stop,35211,staled tip,jnode_one,405672,405690,RUNNING,\n",
            ),
            (
                RestartRow {
                    reason: "a, \"b\"".into(),
                    uptime_secs: None,
                    height: None,
                    reference_height: None,
                    exit_status: Some(1),
                    ..row("two", RestartAction::Start)
                },
                "two,2026-11-22T01:02:03.123Z,start,,\"a, \"\"b\"\"\",jnode_two,,,RUNNING,1\n",
            ),
        ];
        for (row, expected) in cases {
            assert_eq!(
                String::from_utf8(encode_row(&row).unwrap()).unwrap(),
                expected
            );
        }
        let far = RestartRow {
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000),
            ..row("x", RestartAction::Stop)
        };
        assert!(matches!(
            encode_row(&far),
            Err(RestartLogError::Timestamp { .. })
        ));
    }

    #[test]
    fn round_trips_tricky_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restarts.csv");
        let (mut log, report) = RestartLog::open(&path).unwrap();
        assert_eq!(
            report,
            OpenReport {
                wrote_header: true,
                ..OpenReport::default()
            }
        );
        for row in tricky_rows() {
            log.append(&row).unwrap();
        }
        let (rows, problems) = read_rows(&path).unwrap();
        assert_eq!(problems, vec![]);
        assert_eq!(rows, tricky_rows());
        let file = std::fs::read(&path).unwrap();
        let (rows, problems) = read_rows_from(&file[..]).unwrap();
        assert_eq!((rows.len(), problems.len()), (5, 0));
    }

    #[test]
    fn a_new_file_is_0644_and_a_missing_directory_is_an_error_naming_the_path() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restarts.csv");
        RestartLog::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // The umask may take bits away, never add them.
        assert_eq!(mode & !0o644, 0, "{mode:o}");

        let missing = dir.path().join("no/such/dir/restarts.csv");
        let error = RestartLog::open(&missing).unwrap_err();
        assert!(matches!(error, RestartLogError::Create { .. }));
        assert!(
            error.to_string().contains("no/such/dir/restarts.csv"),
            "{error}"
        );

        let error = RestartLog::open(dir.path()).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }

    #[test]
    fn reopening_appends_under_a_single_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restarts.csv");
        for (index, node) in ["a", "b", "c"].into_iter().enumerate() {
            let (mut log, report) = RestartLog::open(&path).unwrap();
            assert_eq!(report.wrote_header, index == 0);
            assert_eq!(report.repaired_torn_bytes, None);
            log.append(&row(node, RestartAction::Stop)).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("node name").count(), 1);
        assert!(text.starts_with(HEADER_LINE));
        let (rows, _) = read_rows(&path).unwrap();
        let nodes: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(nodes, ["a", "b", "c"]);
    }

    #[test]
    fn each_row_is_on_disk_when_append_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restarts.csv");
        let (mut log, _) = RestartLog::open(&path).unwrap();
        for count in 1..=3 {
            log.append(&row("a", RestartAction::Start)).unwrap();
            // Read through another handle while the log is still open: no buffering in between.
            let (rows, problems) = read_rows(&path).unwrap();
            assert_eq!((rows.len(), problems.len()), (count, 0));
        }
        assert_eq!(log.path(), path);
    }

    /// Opens a file holding `content` and returns the report, or the error text.
    fn open_with(content: &[u8]) -> (tempfile::TempDir, PathBuf, Result<OpenReport, String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restarts.csv");
        std::fs::write(&path, content).unwrap();
        let result = RestartLog::open(&path)
            .map(|(_, report)| report)
            .map_err(|e| e.to_string());
        (dir, path, result)
    }

    #[test]
    fn torn_last_rows_are_cut_and_reported() {
        let good = String::from_utf8(encode_row(&row("a", RestartAction::Stop)).unwrap()).unwrap();
        let multi_line = String::from_utf8(
            encode_row(&RestartRow {
                reason: "first\nsecond".into(),
                ..row("m", RestartAction::Stop)
            })
            .unwrap(),
        )
        .unwrap();
        let cut_after_break = &multi_line[..multi_line.find('\n').unwrap() + 1];
        let cases: Vec<(&str, String, String)> = vec![
            (
                "partial row",
                format!("{HEADER_LINE}{good}b,2026-11-2"),
                "b,2026-11-2".into(),
            ),
            (
                "complete row without line end",
                format!("{HEADER_LINE}{}", good.trim_end()),
                good.trim_end().into(),
            ),
            (
                "cut just after a line break inside quotes",
                format!("{HEADER_LINE}{good}{cut_after_break}"),
                cut_after_break.into(),
            ),
            (
                "cut in the line after a line break inside quotes",
                format!("{HEADER_LINE}{good}{cut_after_break}sec"),
                format!("{cut_after_break}sec"),
            ),
            (
                "partial row after the header",
                format!("{HEADER_LINE}x"),
                "x".into(),
            ),
        ];
        for (name, content, torn) in cases {
            let (_dir, path, report) = open_with(content.as_bytes());
            let report = report.unwrap();
            assert_eq!(
                report.repaired_torn_bytes.as_deref(),
                Some(torn.as_bytes()),
                "{name}"
            );
            assert_eq!(report.last_row_problem, None, "{name}");
            // The next row starts on a fresh line and everything kept reads back cleanly.
            let (mut log, report) = RestartLog::open(&path).unwrap();
            assert_eq!(report.repaired_torn_bytes, None, "{name}: repaired once");
            log.append(&row("next", RestartAction::Start)).unwrap();
            let (rows, problems) = read_rows(&path).unwrap();
            assert_eq!(problems, vec![], "{name}");
            assert_eq!(rows.last().unwrap().node, "next", "{name}");
        }
    }

    #[test]
    fn a_torn_or_missing_header_is_rewritten() {
        for content in [
            &b""[..],
            b"node name,time",
            HEADER_LINE.trim_end().as_bytes(),
        ] {
            let (_dir, path, report) = open_with(content);
            let report = report.unwrap();
            assert!(report.wrote_header);
            let torn = (!content.is_empty()).then(|| content.to_vec());
            assert_eq!(report.repaired_torn_bytes, torn);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), HEADER_LINE);
        }
    }

    #[test]
    fn a_foreign_header_is_refused_naming_the_file() {
        let jmanager = "node name, timestamp, action, uptime, reason\n\
                        node_one,2020-06-18 16:42:50.123456,stop,35211,staled tip\n";
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("jmanager", jmanager.as_bytes().to_vec()),
            (
                "five of our columns",
                b"node name,timestamp,action,uptime,reason\n".to_vec(),
            ),
            ("text without a line end", b"hello".to_vec()),
            ("binary", vec![0u8, 159, 146, 150, b'\n']),
            ("a large file without line ends", vec![b'x'; 200_000]),
        ];
        for (name, content) in cases {
            let (_dir, path, result) = open_with(&content);
            let message = result.unwrap_err();
            assert!(
                message.contains(&path.display().to_string()),
                "{name}: {message}"
            );
            assert!(
                message.contains("expected nodekeeper's header"),
                "{name}: {message}"
            );
            assert!(message.len() < 400, "{name}: {message}");
            // The file is left as it was.
            assert_eq!(std::fs::read(&path).unwrap(), content, "{name}");
        }
    }

    #[test]
    fn a_corrupt_middle_line_never_makes_good_rows_look_torn() {
        let good = String::from_utf8(encode_row(&row("b", RestartAction::Stop)).unwrap()).unwrap();
        let content = format!("{HEADER_LINE}\"unclosed quote,x\n{good}{good}");
        let (_dir, path, report) = open_with(content.as_bytes());
        assert_eq!(report.unwrap(), OpenReport::default());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
        let (rows, problems) = read_rows(&path).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(problems.iter().map(|p| p.line).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_bad_last_row_is_reported_not_fatal() {
        let content = format!("{HEADER_LINE}a,yesterday,stop,,,p,,,,\n");
        let (_dir, _path, report) = open_with(content.as_bytes());
        let report = report.unwrap();
        assert_eq!(report.repaired_torn_bytes, None);
        let problem = report.last_row_problem.unwrap();
        assert_eq!(problem.line, 2);
        assert!(
            problem
                .message
                .starts_with("timestamp is not an RFC 3339 date"),
            "{problem}"
        );
    }

    #[test]
    fn corrupt_rows_are_reported_with_their_line_and_skipped() {
        let good = |node: &str| {
            String::from_utf8(encode_row(&row(node, RestartAction::Stop)).unwrap()).unwrap()
        };
        let multi = String::from_utf8(
            encode_row(&RestartRow {
                reason: "x\ny".into(),
                ..row("m", RestartAction::Start)
            })
            .unwrap(),
        )
        .unwrap();
        let content = [
            HEADER_LINE.to_string(),                                  // 1
            good("a"),                                                // 2
            "garbage without commas\n".into(),                        // 3
            multi,                                                    // 4-5
            "b,2026-11-22T01:02:03Z,reboot,,,p,,,,\n".into(),         // 6
            "\"unclosed quote,swallowing\n".into(),                   // 7
            good("c"),                                                // 8
            "\n".into(),                                              // 9: blank, skipped silently
            "d,2026-11-22T01:02:03Z,stop,-1,,p,,,,\n".into(),         // 10
            "e,2026-11-22T01:02:03Z,stop,,,p,,,,9999999999\n".into(), // 11
            good("f"),                                                // 12
            "g,2026-11-2".into(),                                     // 13: torn
        ]
        .concat();
        let (rows, problems) = read_rows_from(content.as_bytes()).unwrap();
        let nodes: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(nodes, ["a", "m", "c", "f"]);
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [3, 6, 7, 10, 11, 13], "{problems:?}");
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages[0], "1 fields, expected 10");
        assert!(messages[1].starts_with("action is neither stop nor start"));
        assert!(messages[3].starts_with("uptime is not a valid number"));
        assert!(messages[4].starts_with("exit status is not a valid number"));
        assert_eq!(messages[5], "incomplete row (no line end)");
    }

    #[test]
    fn the_csv_crate_reads_what_we_read() {
        let mut content = HEADER_LINE.as_bytes().to_vec();
        for row in tricky_rows() {
            content.extend(encode_row(&row).unwrap());
        }
        let ours: Vec<Vec<u8>> = {
            let (rows, _) = read_rows_from(&content[..]).unwrap();
            rows.iter().map(|row| encode_row(row).unwrap()).collect()
        };
        let mut reader = csv::ReaderBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(&content[..]);
        assert_eq!(
            reader.byte_headers().unwrap(),
            &csv::ByteRecord::from(COLUMNS.to_vec())
        );
        let theirs: Vec<Vec<u8>> = reader
            .byte_records()
            .map(|record| {
                let mut writer = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_writer(Vec::new());
                writer.write_byte_record(&record.unwrap()).unwrap();
                writer.into_inner().unwrap()
            })
            .collect();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn reading_never_panics_on_mangled_logs() {
        let mut content = HEADER_LINE.as_bytes().to_vec();
        for row in tricky_rows() {
            content.extend(encode_row(&row).unwrap());
        }
        // Every truncation and every single-byte change still reads without panicking.
        for cut in 0..content.len() {
            let _ = read_rows_from(&content[..cut]);
        }
        for index in HEADER_LINE.len()..content.len() {
            for byte in [b'"', b'\n', b',', b'\r', 0xff] {
                let mut mangled = content.clone();
                mangled[index] = byte;
                let _ = read_rows_from(&mangled[..]);
            }
        }
    }

    #[test]
    fn read_tail_returns_the_last_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restarts.csv");
        let (mut log, _) = RestartLog::open(&path).unwrap();
        for index in 0..100 {
            log.append(&row(&format!("n{index}"), RestartAction::Stop))
                .unwrap();
        }
        let all = read_tail(&path, 1 << 20).unwrap();
        assert_eq!(all.len(), 100);
        let tail = read_tail(&path, 500).unwrap();
        assert!(!tail.is_empty() && tail.len() < 10, "{}", tail.len());
        assert_eq!(tail.last().unwrap().node, "n99");
        assert!(read_tail(&dir.path().join("missing.csv"), 500).is_err());
    }
}

//! The restart-log record format, for the writer, for reading rows back and for `log analyze`:
//! the columns and headers of both formats (nodekeeper's ten columns, jmanager's five), writing a
//! row, and reading one record at a time at the byte level, fast enough for 10 million rows
//! (`RecordReader`). No I/O.
//!
//! Reading. A record ends at a line break outside quotes. The common line is split on commas eight
//! bytes at a time (`split_plain`), which also handles one pair of quotes around a whole field
//! (the csv crate quotes `lag (height 1, reference 9, 8 behind)`); any other line with a quote
//! goes through a quote-aware state machine with the `csv` crate's reading rules (`scan_record`),
//! so a record may span lines. A bad record only costs its first line: a stray quote in one corrupt
//! line cannot swallow the rows after it. Cells are checked as the writer writes them (UTF-8,
//! RFC 3339 timestamp, `stop`/`start`/`backup`/`restore`, integers) and decoded lazily: a `Row`
//! borrows its cells.
//!
//! jmanager's format is unquoted `node,timestamp,action,uptime,reason` (Python `str(datetime)` UTC
//! timestamps, uptime `-1` when unknown); everything after the fourth comma is the reason.

use std::borrow::Cow;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use chrono::{DateTime, Datelike as _, Utc};

use super::RestartLogError;
use super::timestamp::{HourCache, parse_python_timestamp, parse_rfc3339};

/// The column names of nodekeeper's restart log, in order; the first five are jmanager's.
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

/// The column names of jmanager's `restarts.csv`.
pub const JMANAGER_COLUMNS: [&str; 5] = ["node name", "timestamp", "action", "uptime", "reason"];

/// nodekeeper's header line as written.
pub const HEADER_LINE: &str = "node name,timestamp,action,uptime,reason,program,height,reference height,supervisor state,exit status\n";

/// jmanager's header line as it writes it (`, ` between names).
pub const JMANAGER_HEADER_LINE: &str = "node name, timestamp, action, uptime, reason\n";

/// What a row records. A backup or a restore is written between the `stop` and the `start` that
/// bracket it (their reasons start with `backup` / `restore`); its own row says what came of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartAction {
    /// The node's program was stopped.
    Stop,
    /// The node's program was started.
    Start,
    /// The stopped node's data was archived, or the attempt failed (the reason says which).
    Backup,
    /// The stopped node's data was restored from an archive, or the attempt failed.
    Restore,
}

impl RestartAction {
    /// Every action: the cells the reader accepts.
    pub const ALL: [RestartAction; 4] = [
        RestartAction::Stop,
        RestartAction::Start,
        RestartAction::Backup,
        RestartAction::Restore,
    ];

    /// The cell text: `stop`, `start`, `backup` or `restore`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartAction::Stop => "stop",
            RestartAction::Start => "start",
            RestartAction::Backup => "backup",
            RestartAction::Restore => "restore",
        }
    }

    /// Whether the row is maintenance (a backup or a restore) rather than a stop or a start: such
    /// a row is no restart of its own and never a failure.
    pub fn is_maintenance(self) -> bool {
        matches!(self, RestartAction::Backup | RestartAction::Restore)
    }

    /// Parses the cell text (exactly `stop`, `start`, `backup` or `restore`).
    pub fn parse(text: &str) -> Option<RestartAction> {
        parse_action(text.as_bytes()).ok()
    }
}

impl std::fmt::Display for RestartAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the restart log. In JSON (the API's `GET /v1/restarts`) the fields keep their
/// names and the timestamp is RFC 3339 UTC with milliseconds, as in the file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestartRow {
    /// The node's name (`node name`).
    pub node: String,
    /// When the action was taken (`timestamp`), kept to the millisecond.
    #[serde(with = "json_timestamp")]
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

impl RestartRow {
    /// The row a nodekeeper record holds (`None` only for a timestamp `SystemTime` cannot hold).
    /// The cells `log analyze` does not use are read here, from the record again.
    pub fn from_record(row: &Row<'_>) -> Option<RestartRow> {
        let ms = row.timestamp_ms;
        let nanos = u32::try_from(ms.rem_euclid(1000) * 1_000_000).ok()?;
        let (mut cells, mut ends) = (Vec::new(), Vec::new());
        scan_record(row.record, &mut cells, &mut ends);
        // Checked when the row was read: only a jmanager record lacks them (empty then).
        let cell = |index: usize| match (index.checked_sub(1), ends.len()) {
            (Some(start), 10) => &cells[ends[start]..ends[index]],
            _ => &[],
        };
        Some(RestartRow {
            node: text(row.node).to_string(),
            timestamp: crate::time::from_unix(ms.div_euclid(1000), nanos)?,
            action: row.action,
            uptime_secs: row.uptime_secs,
            reason: text(row.reason).to_string(),
            program: text(cell(5)).to_string(),
            height: parse_u64(cell(6)),
            reference_height: parse_u64(cell(7)),
            supervisor_state: text(cell(8)).to_string(),
            exit_status: parse_i32(cell(9)),
        })
    }
}

/// A row's timestamp in JSON: RFC 3339 UTC with milliseconds.
mod json_timestamp {
    use std::time::SystemTime;

    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::time::rfc3339_millis(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(SystemTime::from)
            .map_err(|e| D::Error::custom(format!("timestamp {text:?}: {e}")))
    }
}

/// Serialises one row as nodekeeper writes it (RFC 4180 by the `csv` crate, timestamp in UTC with
/// milliseconds), line end included.
pub fn encode_row(row: &RestartRow) -> Result<Vec<u8>, RestartLogError> {
    if !utc(row.timestamp).is_some_and(|date| (0..=9999).contains(&date.year())) {
        return Err(RestartLogError::Timestamp {
            node: row.node.clone(),
        });
    }
    let timestamp = crate::time::rfc3339_millis(row.timestamp);
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

/// Which program wrote the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// nodekeeper's restart log: ten columns, RFC 4180 quoting, RFC 3339 timestamps.
    Nodekeeper,
    /// jmanager's `restarts.csv`: five unquoted columns, Python timestamps.
    Jmanager,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Nodekeeper => "nodekeeper",
            Format::Jmanager => "jmanager",
        })
    }
}

/// What the first line of a log says.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// A known header; rows start at byte `end` (line 2).
    Known {
        /// The format.
        format: Format,
        /// Just past the header's line end.
        end: usize,
    },
    /// The input is empty or ends inside what may be a header: no rows.
    Incomplete,
    /// Not a restart log: the first line, quoted and cut.
    Foreign(String),
}

/// Recognises the header at the start of `head`: the column names separated by commas, spaces
/// around them ignored, `\n` or `\r\n` at the end. `whole_input` says `head` is all there is (so a
/// missing line end means a torn header rather than a long first line).
pub fn detect_header(head: &[u8], whole_input: bool) -> Header {
    let Some(line_end) = memchr::memchr(b'\n', head) else {
        let text = String::from_utf8_lossy(head);
        if whole_input
            && [HEADER_LINE, JMANAGER_HEADER_LINE]
                .iter()
                .any(|c| c.starts_with(text.as_ref()))
        {
            return Header::Incomplete;
        }
        return Header::Foreign(crate::describe::excerpt(&text, 60));
    };
    let line = &head[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let fields: Vec<&[u8]> = line.split(|&b| b == b',').map(<[u8]>::trim_ascii).collect();
    let is = |names: &[&str]| {
        fields.len() == names.len() && fields.iter().zip(names).all(|(f, n)| *f == n.as_bytes())
    };
    let end = line_end + 1;
    if is(&COLUMNS) {
        Header::Known {
            format: Format::Nodekeeper,
            end,
        }
    } else if is(&JMANAGER_COLUMNS) {
        Header::Known {
            format: Format::Jmanager,
            end,
        }
    } else {
        Header::Foreign(crate::describe::excerpt(&String::from_utf8_lossy(line), 60))
    }
}

/// One record that reads as a row: what it says about a restart, unquoted and checked, borrowed
/// from the input (or the reader's buffer); text is valid UTF-8. Every cell was checked; the
/// ones `log analyze` does not use are left in the record (`RestartRow::from_record` reads them):
/// a small row is cheap to hand over, 10 million times.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    /// `node name`.
    pub node: &'a [u8],
    /// `timestamp`, in milliseconds since the Unix epoch (truncated).
    pub timestamp_ms: i64,
    /// `action`.
    pub action: RestartAction,
    /// `uptime`: `None` when empty (or jmanager's negative `-1`).
    pub uptime_secs: Option<u64>,
    /// `reason`.
    pub reason: &'a [u8],
    /// The whole record as it is in the input, line end included.
    record: &'a [u8],
}

/// A cell already checked to be UTF-8, as text.
fn text(cell: &[u8]) -> &str {
    std::str::from_utf8(cell).unwrap_or_default()
}

/// What `RecordReader::step` found at the start of the bytes.
#[derive(Debug)]
pub enum Step<'a> {
    /// The record may continue past the bytes given (never at the end of the input).
    NeedMore,
    /// A blank line of this many bytes (skipped silently).
    Blank(usize),
    /// A record, or the first line of a bad one.
    Record {
        /// The bytes used: the whole record when it reads, only its first line when it does not.
        len: usize,
        /// The line ends among them.
        n_breaks: usize,
        /// The row, or what is wrong (short: values are cut, never a whole line).
        row: Result<Row<'a>, Cow<'static, str>>,
    },
}

/// Reads records one at a time, reusing its buffers and the timestamp cache between them.
#[derive(Debug, Default)]
pub struct RecordReader {
    scratch: Vec<u8>,
    field_ends: Vec<usize>,
    hours: HourCache,
}

impl RecordReader {
    /// Reads the record of `format` at the start of `bytes`, which must not be empty. `at_eof`
    /// says nothing follows `bytes`. A quoted record longer than `max_record` bytes is rejected at
    /// its first line instead of being read on (stray quotes cannot make reading quadratic);
    /// `usize::MAX` reads any record to its end.
    #[inline]
    pub fn step<'a>(
        &'a mut self,
        format: Format,
        bytes: &'a [u8],
        at_eof: bool,
        max_record: usize,
    ) -> Step<'a> {
        let line_end = memchr::memchr(b'\n', bytes);
        let line = match line_end {
            Some(index) => &bytes[..=index],
            None if at_eof => bytes,
            None => return Step::NeedMore,
        };
        if matches!(line, b"\n" | b"\r\n") {
            return Step::Blank(line.len());
        }
        let Some(line_end) = line_end else {
            if format == Format::Nodekeeper && memchr::memchr(b'"', line).is_some() {
                return self.step_quoted(bytes, at_eof, max_record);
            }
            return Step::Record {
                len: line.len(),
                n_breaks: 0,
                row: Err(Cow::Borrowed("incomplete row (no line end)")),
            };
        };
        let content = &line[..line_end];
        let row = match format {
            Format::Jmanager => decode_jmanager(content, line, &mut self.hours),
            Format::Nodekeeper => {
                let mut fields: [&[u8]; 10] = [&[]; 10];
                let split = split_plain(content, &mut fields);
                let n_fields = match split
                    .n_fields
                    .or_else(|| split_simple(content, &mut fields))
                {
                    Some(n_fields) => n_fields,
                    // Quotes other than around a whole one-line field: the careful way.
                    None => return self.step_quoted(bytes, at_eof, max_record),
                };
                if n_fields == COLUMNS.len() {
                    decode_fields(&fields, !split.ascii, line, &mut self.hours)
                } else {
                    Err(format!("{n_fields} fields, expected {}", COLUMNS.len()).into())
                }
            }
        };
        Step::Record {
            len: line.len(),
            n_breaks: 1,
            row,
        }
    }

    /// A nodekeeper record with a quote: the careful state machine, possibly over several lines.
    fn step_quoted<'a>(&'a mut self, bytes: &'a [u8], at_eof: bool, max_record: usize) -> Step<'a> {
        let window = &bytes[..bytes.len().min(max_record)];
        self.scratch.clear();
        self.field_ends.clear();
        let scanned = scan_record(window, &mut self.scratch, &mut self.field_ends);
        let (record_len, row) = match scanned {
            Some(end) => (
                end,
                decode_scanned(
                    &self.scratch,
                    &self.field_ends,
                    &bytes[..end],
                    &mut self.hours,
                ),
            ),
            None if window.len() < bytes.len() || window.len() == max_record => (
                window.len(),
                Err(format!(
                    "record longer than {} KiB (an unclosed quote?)",
                    max_record / 1024
                )
                .into()),
            ),
            None if !at_eof => return Step::NeedMore,
            None if bytes.ends_with(b"\n") => (
                bytes.len(),
                Err(Cow::Borrowed(
                    "incomplete row (unclosed quote at the end of the file)",
                )),
            ),
            None => (
                bytes.len(),
                Err(Cow::Borrowed("incomplete row (no line end)")),
            ),
        };
        let record = &bytes[..record_len];
        if row.is_ok() {
            return Step::Record {
                len: record_len,
                n_breaks: memchr::memchr_iter(b'\n', record).count(),
                row,
            };
        }
        // Only the first line of a bad record is used up.
        let len = match memchr::memchr(b'\n', record) {
            Some(index) if index + 1 < record.len() => index + 1,
            _ => record.len(),
        };
        Step::Record {
            len,
            n_breaks: usize::from(record[..len].ends_with(b"\n")),
            row,
        }
    }
}

/// Reads one record at the start of `bytes` with the `csv` crate's reading rules (csv-core's), so
/// that what its writer writes reads back identically: a quote opens a quoted field only at a
/// field's start, `""` inside one is a quote, text after a closing quote continues the field, and
/// a `\r` before the line end is not part of an unquoted last field. Field contents go to
/// `scratch`, each field's end to `ends`. Returns the record's end (just past its `\n`), or `None`
/// if `bytes` ends first. Never panics.
pub fn scan_record(bytes: &[u8], scratch: &mut Vec<u8>, ends: &mut Vec<usize>) -> Option<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut state = State::FieldStart;
    let mut end = None;
    for (offset, &byte) in bytes.iter().enumerate() {
        state = match (state, byte) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => {
                scratch.push(byte);
                State::Quoted
            }
            (_, b'\n') => {
                end = Some(offset + 1);
                break;
            }
            (State::FieldStart, b'"') => State::Quoted,
            (State::QuoteInQuoted, b'"') => {
                scratch.push(b'"');
                State::Quoted
            }
            (_, b',') => {
                ends.push(scratch.len());
                State::FieldStart
            }
            _ => {
                scratch.push(byte);
                State::Unquoted
            }
        };
    }
    let end = end?;
    let field_start = ends.last().copied().unwrap_or(0);
    if state == State::Unquoted && scratch.len() > field_start && scratch.last() == Some(&b'\r') {
        scratch.pop();
    }
    ends.push(scratch.len());
    Some(end)
}

/// The fields `scan_record` left in `scratch`, decoded.
fn decode_scanned<'a>(
    scratch: &'a [u8],
    ends: &[usize],
    record: &'a [u8],
    cache: &mut HourCache,
) -> Result<Row<'a>, Cow<'static, str>> {
    if ends.len() != COLUMNS.len() {
        return Err(format!("{} fields, expected {}", ends.len(), COLUMNS.len()).into());
    }
    let mut fields: [&[u8]; 10] = [&[]; 10];
    let mut start = 0;
    for (field, &end) in fields.iter_mut().zip(ends) {
        *field = &scratch[start..end];
        start = end;
    }
    decode_fields(&fields, true, record, cache)
}

/// What `split_plain` found.
struct PlainSplit {
    /// Fields found; `None` when the line needs `split_simple` (quotes other than one pair
    /// around a whole field, or too many commas to place the quotes).
    n_fields: Option<usize>,
    /// No byte above 127.
    ascii: bool,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;
/// Comma positions remembered per line (a row has nine).
const MAX_COMMAS: usize = 24;

/// The high bit of each byte of `word` that equals `byte` (exact: no borrow between bytes).
#[inline]
fn byte_mask(word: u64, byte: u8) -> u64 {
    let x = word ^ (u64::from(byte) * ONES);
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Splits a line (line end removed) on commas, eight bytes at a time. One pair of quotes around
/// a whole field (`"lag (height 1, reference 9, 8 behind)"`) is handled here; anything else with
/// quotes is left to `split_simple`.
#[inline]
fn split_plain<'a>(content: &'a [u8], fields: &mut [&'a [u8]; 10]) -> PlainSplit {
    let mut commas = [0u32; MAX_COMMAS];
    let mut n_commas = 0usize;
    let mut quotes = [0u32; 2];
    let mut n_quotes = 0usize;
    let mut high = 0u64;
    let note = |positions: &mut [u32], count: &mut usize, at: usize| {
        if let Some(slot) = positions.get_mut(*count) {
            *slot = at as u32;
        }
        *count += 1;
    };
    let mut words = content.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        high |= word & HIGH;
        let mut found = byte_mask(word, b',');
        while found != 0 {
            note(
                &mut commas,
                &mut n_commas,
                base + (found.trailing_zeros() / 8) as usize,
            );
            found &= found - 1;
        }
        let mut found = byte_mask(word, b'"');
        while found != 0 {
            note(
                &mut quotes,
                &mut n_quotes,
                base + (found.trailing_zeros() / 8) as usize,
            );
            found &= found - 1;
        }
        base += 8;
    }
    for (offset, &byte) in words.remainder().iter().enumerate() {
        high |= u64::from(byte & 0x80);
        if byte == b',' {
            note(&mut commas, &mut n_commas, base + offset);
        } else if byte == b'"' {
            note(&mut quotes, &mut n_quotes, base + offset);
        }
    }
    let ascii = high == 0;
    let len = content.len();
    // The quoted field's span, whose commas are text.
    let quoted = match n_quotes {
        0 => None,
        2 if n_commas <= MAX_COMMAS => {
            let (open, close) = (quotes[0] as usize, quotes[1] as usize);
            let at_start = open == 0 || content[open - 1] == b',';
            let at_end = close + 1 == len || content[close + 1] == b',';
            if !(at_start && at_end) {
                return PlainSplit {
                    n_fields: None,
                    ascii,
                };
            }
            Some((open, close))
        }
        _ => {
            return PlainSplit {
                n_fields: None,
                ascii,
            };
        }
    };
    let mut n_fields = 0;
    let mut field_start = 0;
    let mut push = |start: usize, end: usize, n_fields: &mut usize| {
        if *n_fields < fields.len() {
            fields[*n_fields] = match quoted {
                Some((open, close)) if start == open => &content[open + 1..close],
                _ => &content[start..end],
            };
        }
        *n_fields += 1;
    };
    for &comma in &commas[..n_commas.min(MAX_COMMAS)] {
        let comma = comma as usize;
        if quoted.is_some_and(|(open, close)| open < comma && comma < close) {
            continue;
        }
        push(field_start, comma, &mut n_fields);
        field_start = comma + 1;
    }
    if quoted.is_none() && n_commas > MAX_COMMAS {
        // Too many fields anyway: only the count matters.
        n_fields += n_commas - MAX_COMMAS;
    }
    let last_quoted = quoted.is_some_and(|(open, _)| open == field_start);
    push(field_start, len, &mut n_fields);
    if !last_quoted && n_fields <= fields.len() {
        // A `\r\n` line end: the `\r` is not part of an unquoted last field.
        let last = &mut fields[n_fields - 1];
        *last = last.strip_suffix(b"\r").unwrap_or(last);
    }
    PlainSplit {
        n_fields: Some(n_fields),
        ascii,
    }
}

/// Splits one nodekeeper line (line end removed) into `fields` and returns how many there are
/// (only the first ten are kept), or `None` when the line needs `scan_record`: a quote that does
/// not simply enclose a whole field (`""`, text around it, a line break inside).
fn split_simple<'a>(content: &'a [u8], fields: &mut [&'a [u8]; 10]) -> Option<usize> {
    let len = content.len();
    let mut n_fields = 0;
    let mut index = 0;
    loop {
        let field;
        let mut unquoted = false;
        if content.get(index) == Some(&b'"') {
            let close = index + 1 + memchr::memchr(b'"', &content[index + 1..])?;
            field = &content[index + 1..close];
            index = close + 1;
            if index < len && content[index] != b',' {
                return None;
            }
        } else {
            let start = index;
            while index < len && content[index] != b',' {
                if content[index] == b'"' {
                    return None;
                }
                index += 1;
            }
            field = &content[start..index];
            unquoted = true;
        }
        if n_fields < fields.len() {
            fields[n_fields] = field;
        }
        n_fields += 1;
        if index >= len {
            // A `\r\n` line end: the `\r` is not part of an unquoted last field.
            if unquoted && n_fields <= fields.len() {
                let last = &mut fields[n_fields - 1];
                *last = last.strip_suffix(b"\r").unwrap_or(last);
            }
            return Some(n_fields);
        }
        index += 1;
    }
}

/// The ten cells of a nodekeeper row, checked (`check_utf8`: the caller does not know them to be
/// ASCII).
#[inline]
fn decode_fields<'a>(
    fields: &[&'a [u8]; 10],
    check_utf8: bool,
    record: &'a [u8],
    cache: &mut HourCache,
) -> Result<Row<'a>, Cow<'static, str>> {
    if check_utf8 {
        for (field, column) in fields.iter().zip(COLUMNS) {
            if !field.is_ascii() && std::str::from_utf8(field).is_err() {
                return Err(format!("{column} is not UTF-8").into());
            }
        }
    }
    let timestamp_ms = parse_rfc3339(fields[1], cache).ok_or_else(|| {
        format!(
            "timestamp is not an RFC 3339 date: {}",
            crate::describe::excerpt(&String::from_utf8_lossy(fields[1]), 60)
        )
    })?;
    let action = parse_action(fields[2])?;
    let uptime = optional_number(fields[3], "uptime", parse_u64)?;
    // Checked here, decoded by `RestartRow::from_record` (`log analyze` does not need them).
    optional_number(fields[6], "height", |f| valid_u64(f).then_some(()))?;
    optional_number(fields[7], "reference height", |f| {
        valid_u64(f).then_some(())
    })?;
    optional_number(fields[9], "exit status", parse_i32)?;
    Ok(Row {
        node: fields[0],
        timestamp_ms,
        action,
        uptime_secs: uptime,
        reason: fields[4],
        record,
    })
}

/// A jmanager line (line end removed): `node,timestamp,action,uptime,reason`, unquoted; the
/// reason is the rest of the line, commas included.
fn decode_jmanager<'a>(
    content: &'a [u8],
    record: &'a [u8],
    cache: &mut HourCache,
) -> Result<Row<'a>, Cow<'static, str>> {
    let content = content.strip_suffix(b"\r").unwrap_or(content);
    let mut fields: [&[u8]; 4] = [&[]; 4];
    let mut rest = content;
    for (index, field) in fields.iter_mut().enumerate() {
        let Some(comma) = memchr::memchr(b',', rest) else {
            return Err(format!("{} fields, expected 5", index + 1).into());
        };
        *field = rest[..comma].trim_ascii();
        rest = &rest[comma + 1..];
    }
    let reason = rest.trim_ascii();
    for (field, column) in fields.iter().chain([&reason]).zip(JMANAGER_COLUMNS) {
        if !field.is_ascii() && std::str::from_utf8(field).is_err() {
            return Err(format!("{column} is not UTF-8").into());
        }
    }
    let timestamp_ms = parse_python_timestamp(fields[1], cache).ok_or_else(|| {
        format!(
            "timestamp is not a date: {}",
            crate::describe::excerpt(&String::from_utf8_lossy(fields[1]), 60)
        )
    })?;
    let action = parse_action(fields[2])?;
    // jmanager writes `-1` for an unknown uptime.
    let uptime = match fields[3] {
        b"" => None,
        text if text.first() == Some(&b'-') => {
            optional_number(&text[1..], "uptime", parse_u64)?;
            None
        }
        text => optional_number(text, "uptime", parse_u64)?,
    };
    Ok(Row {
        node: fields[0],
        timestamp_ms,
        action,
        uptime_secs: uptime,
        reason,
        record,
    })
}

#[inline]
fn parse_action(field: &[u8]) -> Result<RestartAction, Cow<'static, str>> {
    match field {
        b"stop" => Ok(RestartAction::Stop),
        b"start" => Ok(RestartAction::Start),
        b"backup" => Ok(RestartAction::Backup),
        b"restore" => Ok(RestartAction::Restore),
        other => Err(format!(
            "action is not stop, start, backup or restore: {}",
            crate::describe::excerpt(&String::from_utf8_lossy(other), 60)
        )
        .into()),
    }
}

/// An empty cell is `None`; otherwise `parse` must accept it.
#[inline]
fn optional_number<T>(
    field: &[u8],
    column: &str,
    parse: impl Fn(&[u8]) -> Option<T>,
) -> Result<Option<T>, Cow<'static, str>> {
    if field.is_empty() {
        return Ok(None);
    }
    parse(field).map(Some).ok_or_else(|| {
        format!(
            "{column} is not a valid number: {}",
            crate::describe::excerpt(&String::from_utf8_lossy(field), 60)
        )
        .into()
    })
}

/// What `str::parse::<u64>` accepts: an optional `+`, then decimal digits.
#[inline]
fn parse_u64(field: &[u8]) -> Option<u64> {
    let digits = field.strip_prefix(b"+").unwrap_or(field);
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    if digits.len() <= 19 {
        // At most 19 digits cannot overflow.
        for &byte in digits {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            value = value * 10 + u64::from(digit);
        }
        return Some(value);
    }
    for &byte in digits {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    Some(value)
}

/// Whether `parse_u64` accepts `field`, without computing the value when it cannot overflow.
#[inline]
fn valid_u64(field: &[u8]) -> bool {
    let digits = field.strip_prefix(b"+").unwrap_or(field);
    match digits.len() {
        0 => false,
        1..=19 => digits.iter().all(u8::is_ascii_digit),
        _ => parse_u64(field).is_some(),
    }
}

/// What `str::parse::<i32>` accepts.
fn parse_i32(field: &[u8]) -> Option<i32> {
    match field.strip_prefix(b"-") {
        Some(digits) if !digits.starts_with(b"+") => {
            let magnitude = i64::try_from(parse_u64(digits)?).ok()?;
            i32::try_from(-magnitude).ok()
        }
        Some(_) => None,
        None => i32::try_from(parse_u64(field)?).ok(),
    }
}

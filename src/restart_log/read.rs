//! Reading a nodekeeper restart log back into `RestartRow`s: the whole file (the API, the tests),
//! or only its last bytes (each node's last restart at start-up). Records are read by
//! `record::RecordReader`, the reader `log analyze` uses; unreadable ones are reported with their
//! line and skipped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::RestartLogError;
use super::record::{Format, HEADER_LINE, Header, RecordReader, RestartRow, Step, detect_header};

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
    let Some(first_break) = memchr::memchr(b'\n', &bytes) else {
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

/// Checks that `head` starts with nodekeeper's header: `Ok(Some(end))` after it, `Ok(None)` when
/// `head` is the whole file and empty or a prefix of the header (an interrupted first write).
/// Anything else, a jmanager log included, is a `Header` error naming the file.
pub(super) fn check_header(
    head: &[u8],
    whole_file: bool,
    path: &Path,
) -> Result<Option<usize>, RestartLogError> {
    let mismatch = |found: String| RestartLogError::Header {
        path: path.to_path_buf(),
        found,
        expected: HEADER_LINE.trim_end(),
    };
    let excerpt = |bytes: &[u8]| {
        let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        crate::describe::excerpt(&String::from_utf8_lossy(line), 60)
    };
    match detect_header(head, whole_file) {
        Header::Known {
            format: Format::Nodekeeper,
            end,
        } => Ok(Some(end)),
        Header::Incomplete if HEADER_LINE.as_bytes().starts_with(head) => Ok(None),
        Header::Foreign(found) => Err(mismatch(found)),
        Header::Known { .. } | Header::Incomplete => Err(mismatch(excerpt(head))),
    }
}

/// One record read: where it (or, when bad, its first line) ends, and what it holds.
#[derive(Debug)]
pub(super) struct Scanned {
    /// Just past it.
    pub end: usize,
    /// The row, or why not.
    pub outcome: Result<RestartRow, RowProblem>,
}

/// Reads the records of `bytes` from `pos` (which starts line `line`), resynchronising at the next
/// line after an unreadable multi-line record. Blank lines are skipped.
pub(super) fn scan_records(bytes: &[u8], mut pos: usize, mut line: usize) -> Vec<Scanned> {
    let mut reader = RecordReader::default();
    let mut scanned = Vec::new();
    while pos < bytes.len() {
        let (len, n_breaks, outcome) =
            match reader.step(Format::Nodekeeper, &bytes[pos..], true, usize::MAX) {
                // Not at the end of the input: never asked for more.
                Step::NeedMore => break,
                Step::Blank(len) => {
                    pos += len;
                    line += 1;
                    continue;
                }
                Step::Record { len, n_breaks, row } => {
                    let outcome = row.map_err(String::from).and_then(|row| {
                        RestartRow::from_record(&row)
                            .ok_or_else(|| "timestamp is out of range".to_string())
                    });
                    (len, n_breaks, outcome)
                }
            };
        scanned.push(Scanned {
            end: pos + len,
            outcome: outcome.map_err(|message| RowProblem { line, message }),
        });
        pos += len;
        line += n_breaks;
    }
    scanned
}

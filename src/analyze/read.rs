//! Reading restart logs into a `Dataset`: the I/O around `parse`. A file is read with positioned
//! reads in large blocks (no memory map, no per-row allocation), split into one byte range per
//! thread at line boundaries and parsed in parallel (`std::thread::scope`).
//!
//! Splitting at a line end can cut a quoted multi-line record in two. Each range's parser
//! therefore owns the records that *start* in it and reports where the next record starts; ranges
//! are then checked in order, and a range that did not start where its predecessor ended is parsed
//! again from the right place. The result is the same as one sequential pass, always.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;

use super::Dataset;
use super::parse::{ChunkParser, MAX_PROBLEMS};
use crate::restart_log::record::{Format, Header, detect_header};

/// Bytes read at a time per thread.
const BLOCK: usize = 1 << 20;
/// Bodies smaller than this are parsed on one thread.
const MIN_PARALLEL: u64 = 8 << 20;

/// One input of `log analyze`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file.
    Path(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl Input {
    /// How messages name it: the path, or `(stdin)`.
    pub fn name(&self) -> String {
        match self {
            Input::Path(path) => path.display().to_string(),
            Input::Stdin => "(stdin)".to_string(),
        }
    }
}

/// What was read from one input.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InputSummary {
    /// The file, or `(stdin)`.
    pub file: String,
    /// Its format; `None` when it is empty or holds only part of a header.
    pub format: Option<Format>,
    /// Rows read.
    pub rows: usize,
    /// Lines skipped because they do not parse.
    pub skipped: usize,
}

/// A line that could not be read; it is skipped.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file, or `(stdin)`.
    pub file: String,
    /// The 1-based line where the bad record starts (the header is line 1).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Everything read from the inputs.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The rows of every input, in input order.
    pub dataset: Dataset,
    /// One summary per input.
    pub inputs: Vec<InputSummary>,
    /// Bad lines, at most `MAX_PROBLEMS` per input (`InputSummary::skipped` counts them all).
    pub problems: Vec<Problem>,
}

/// Why an input cannot be analysed at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// It cannot be opened or read.
    #[error("cannot read {name}")]
    Io {
        /// The file, or `(stdin)`.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Its first line is neither header.
    #[error(
        "{name} is not a restart log: it starts with {found}, expected nodekeeper's header or \
         jmanager's `node name, timestamp, action, uptime, reason`"
    )]
    Foreign {
        /// The file, or `(stdin)`.
        name: String,
        /// The first line, quoted and cut.
        found: String,
    },
}

/// Reads every input with up to `n_threads` threads per file.
pub fn read_inputs(inputs: &[Input], n_threads: usize) -> Result<Loaded, ReadError> {
    let mut loaded = Loaded::default();
    for input in inputs {
        let name = input.name();
        let io_error = |source| ReadError::Io {
            name: name.clone(),
            source,
        };
        match input {
            Input::Path(path) => {
                let file = File::open(path).map_err(io_error)?;
                let metadata = file.metadata().map_err(io_error)?;
                if metadata.is_dir() {
                    return Err(io_error(io::Error::other("is a directory")));
                }
                let source = FileSource {
                    len: metadata.len(),
                    file,
                };
                read_source(&source, &name, n_threads, MIN_PARALLEL, &mut loaded)?;
            }
            Input::Stdin => {
                let mut bytes = Vec::new();
                io::stdin()
                    .lock()
                    .read_to_end(&mut bytes)
                    .map_err(io_error)?;
                read_source(&bytes[..], &name, n_threads, MIN_PARALLEL, &mut loaded)?;
            }
        }
    }
    Ok(loaded)
}

/// Reads an in-memory log (tests, small inputs) the way a file is read.
pub fn read_bytes(bytes: &[u8], name: &str, n_threads: usize) -> Result<Loaded, ReadError> {
    read_bytes_split(bytes, name, n_threads, MIN_PARALLEL)
}

/// `read_bytes`, splitting bodies of `min_parallel` bytes or more (tests split small inputs).
pub(crate) fn read_bytes_split(
    bytes: &[u8],
    name: &str,
    n_threads: usize,
    min_parallel: u64,
) -> Result<Loaded, ReadError> {
    let mut loaded = Loaded::default();
    read_source(bytes, name, n_threads, min_parallel, &mut loaded)?;
    Ok(loaded)
}

/// Something to read at offsets: a file or bytes in memory.
trait Source: Sync {
    fn len(&self) -> u64;
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

struct FileSource {
    file: File,
    /// The length when opened: rows appended while reading are left for the next run.
    len: u64,
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let room = usize::try_from(self.len.saturating_sub(offset)).unwrap_or(usize::MAX);
        let limit = buf.len().min(room);
        loop {
            match self.file.read_at(&mut buf[..limit], offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Source for [u8] {
    fn len(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

fn read_source(
    source: &(impl Source + ?Sized),
    name: &str,
    n_threads: usize,
    min_parallel: u64,
    loaded: &mut Loaded,
) -> Result<(), ReadError> {
    let io_error = |source| ReadError::Io {
        name: name.to_string(),
        source,
    };
    let len = source.len();
    let mut head = vec![0; 64 * 1024];
    let n_head = read_full(source, &mut head, 0).map_err(io_error)?;
    head.truncate(n_head);
    let mut summary = InputSummary {
        file: name.to_string(),
        format: None,
        rows: 0,
        skipped: 0,
    };
    let (format, body_start) = match detect_header(&head, n_head as u64 == len) {
        Header::Known { format, end } => (format, end as u64),
        Header::Incomplete => {
            if len > 0 {
                summary.skipped = 1;
                loaded.problems.push(Problem {
                    file: name.to_string(),
                    line: 1,
                    message: "incomplete header".to_string(),
                });
            }
            loaded.inputs.push(summary);
            return Ok(());
        }
        Header::Foreign(found) => {
            return Err(ReadError::Foreign {
                name: name.to_string(),
                found,
            });
        }
    };
    summary.format = Some(format);

    let body = len - body_start;
    let n_chunks = if body < min_parallel.max(1) {
        1
    } else {
        n_threads.max(1) as u64
    };
    let bounds: Vec<u64> = (0..=n_chunks)
        .map(|index| body_start + body * index / n_chunks)
        .collect();
    let chunks: Vec<io::Result<Chunk>> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .enumerate()
            .map(|(index, range)| {
                let (nominal, end) = (range[0], range[1]);
                scope.spawn(move || {
                    let start = if index == 0 {
                        nominal
                    } else {
                        next_line_start(source, nominal)?
                    };
                    parse_range(source, format, start, end)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a parser thread panicked"))
            .collect()
    });

    // Check that each range started where the previous one stopped; parse again if not.
    let mut first_line = 2;
    let mut expected_start = body_start;
    for (index, chunk) in chunks.into_iter().enumerate() {
        let mut chunk = chunk.map_err(io_error)?;
        if chunk.start != expected_start {
            let end = bounds[index + 1].max(expected_start);
            chunk = parse_range(source, format, expected_start, end).map_err(io_error)?;
        }
        expected_start = chunk.next;
        summary.rows += chunk.parser.rows.len();
        summary.skipped += chunk.parser.n_problems;
        merge(&mut chunk.parser, &mut loaded.dataset);
        let kept = loaded.problems.iter().filter(|p| p.file == name).count();
        let room = MAX_PROBLEMS.saturating_sub(kept);
        loaded.problems.extend(
            chunk
                .parser
                .problems
                .iter()
                .take(room)
                .map(|(line, message)| Problem {
                    file: name.to_string(),
                    line: first_line + line,
                    message: message.clone(),
                }),
        );
        first_line += chunk.parser.n_lines;
    }
    loaded.inputs.push(summary);
    Ok(())
}

/// The rows a thread parsed from the records starting in `[start, end)`.
struct Chunk {
    start: u64,
    /// Where the first record after the range starts (at or after `end`).
    next: u64,
    parser: ChunkParser,
}

fn parse_range(
    source: &(impl Source + ?Sized),
    format: Format,
    start: u64,
    end: u64,
) -> io::Result<Chunk> {
    // Rows are about 100 bytes; a generous estimate saves growing a large vector.
    let estimate = usize::try_from(end.saturating_sub(start) / 64).unwrap_or(0);
    let mut parser = ChunkParser::new(format, estimate);
    let mut len = source.len();
    let mut buf = vec![0; BLOCK];
    let mut buf_offset = start;
    let (mut filled, mut pos) = (0usize, 0usize);
    loop {
        let offset = buf_offset + pos as u64;
        if offset >= end || offset >= len {
            break;
        }
        let at_eof = buf_offset + filled as u64 >= len;
        if pos < filled
            && let Some(used) = parser.step(&buf[pos..filled], at_eof)
        {
            pos += used;
            continue;
        }
        // The record at `pos` continues past the buffer: keep it and read more.
        buf.copy_within(pos..filled, 0);
        buf_offset += pos as u64;
        filled -= pos;
        pos = 0;
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = source.read_at(&mut buf[filled..], buf_offset + filled as u64)?;
        if n == 0 {
            // The file got shorter while being read: what is there is all there is.
            len = buf_offset + filled as u64;
        }
        filled += n;
    }
    Ok(Chunk {
        start,
        next: buf_offset + pos as u64,
        parser,
    })
}

/// The start of the first line that begins at or after `offset`.
fn next_line_start(source: &(impl Source + ?Sized), offset: u64) -> io::Result<u64> {
    let mut buf = vec![0; 64 * 1024];
    let mut at = offset.saturating_sub(1);
    loop {
        let n = source.read_at(&mut buf, at)?;
        if n == 0 {
            return Ok(source.len());
        }
        if let Some(index) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(at + index as u64 + 1);
        }
        at += n as u64;
    }
}

fn read_full(source: &(impl Source + ?Sized), buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = source.read_at(&mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Adds a chunk's rows to the dataset (without copying them), mapping its local name ids to the
/// dataset's.
fn merge(parser: &mut ChunkParser, dataset: &mut Dataset) {
    let nodes: Vec<u32> = parser
        .nodes
        .iter()
        .map(|name| dataset.node_id(&String::from_utf8_lossy(name)))
        .collect();
    let reasons: Vec<u32> = parser
        .reasons
        .iter()
        .map(|kind| dataset.reason_id(&String::from_utf8_lossy(kind)))
        .collect();
    let mut rows = std::mem::take(&mut parser.rows);
    for row in &mut rows {
        row.node = nodes[row.node as usize];
        row.reason = reasons[row.reason as usize];
    }
    dataset.push_rows(rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_inside_a_multi_line_record_is_parsed_again() {
        let mut log = crate::restart_log::HEADER_LINE.to_string();
        for index in 0..300 {
            log.push_str(&format!(
                "n{},2026-11-22T01:02:03.000Z,stop,5,\"two\nlines, {index}\",p,,,,\n",
                index % 3
            ));
        }
        let bytes = log.as_bytes();
        let one = read_bytes(bytes, "x", 1).unwrap();
        assert_eq!(one.dataset.n_rows(), 300);
        // Every split point, forced by calling the range parser directly.
        let header_end = crate::restart_log::HEADER_LINE.len() as u64;
        for split in (header_end..bytes.len() as u64).step_by(5) {
            let first = parse_range(bytes, Format::Nodekeeper, header_end, split).unwrap();
            let start = next_line_start(bytes, split).unwrap();
            let mut second =
                parse_range(bytes, Format::Nodekeeper, start, bytes.len() as u64).unwrap();
            if second.start != first.next {
                second =
                    parse_range(bytes, Format::Nodekeeper, first.next, bytes.len() as u64).unwrap();
            }
            let n_rows = first.parser.rows.len() + second.parser.rows.len();
            assert_eq!(n_rows, 300, "split at {split}");
            assert_eq!(second.parser.n_problems + first.parser.n_problems, 0);
        }
    }
}

//! Byte-level parsing of restart logs, fast enough for 10 million rows: the header (which format),
//! then one record at a time into compact `LogRow`s with names interned, without allocating per
//! row. No I/O: `read` feeds the bytes.
//!
//! nodekeeper's format follows `restart_log` exactly (a test checks both agree on rows and on the
//! lines they reject, with the same messages, over well-formed and mangled logs). Fast path: a
//! line is split on commas eight bytes at a time, which also handles one pair of quotes around a
//! whole field (the csv crate quotes `lag (height 1, reference 9, 8 behind)`); only the needed
//! cells are decoded, names are interned per thread, and the date and hour of a timestamp are
//! cached from the previous row. Any other line with a quote goes through the same quote-aware
//! state machine as `restart_log`'s reader, so a record may span lines and a bad one only costs
//! its first line. One deliberate difference: a quoted record longer than `MAX_RECORD` is rejected
//! at its first line instead of being read to the end of the file, so stray quotes cannot make
//! reading quadratic.
//!
//! jmanager's format is unquoted `node,timestamp,action,uptime,reason` (Python `str(datetime)` UTC
//! timestamps, uptime `-1` when unknown); everything after the fourth comma is the reason.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use super::{Action, LogRow};
use crate::restart_log::COLUMNS;

/// The longest quoted (possibly multi-line) record read; longer ones are rejected at their first
/// line.
pub const MAX_RECORD: usize = 64 * 1024;

/// How many problems are kept with their message, per chunk and per file; the rest are counted.
pub const MAX_PROBLEMS: usize = 1000;

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

/// Recognises the header at the start of `head`. `whole_input` says `head` is all there is (so a
/// missing line end means a torn header rather than a long first line).
pub fn detect_header(head: &[u8], whole_input: bool) -> Header {
    let Some(line_end) = memchr::memchr(b'\n', head) else {
        let text = String::from_utf8_lossy(head);
        let candidates = [
            crate::restart_log::HEADER_LINE,
            "node name, timestamp, action, uptime, reason\n",
        ];
        if whole_input && candidates.iter().any(|c| c.starts_with(text.as_ref())) {
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
    } else if is(&COLUMNS[..5]) {
        Header::Known {
            format: Format::Jmanager,
            end,
        }
    } else {
        Header::Foreign(crate::describe::excerpt(&String::from_utf8_lossy(line), 60))
    }
}

/// Parses records one at a time into rows with chunk-local name ids, and problems with
/// chunk-local line numbers (0 = the chunk's first line). One per thread; `read` merges them.
#[derive(Debug)]
pub struct ChunkParser {
    format: Format,
    /// The rows, `node` and `reason` indexing `nodes` and `reasons`.
    pub rows: Vec<LogRow>,
    /// Node names seen, by local id (valid UTF-8).
    pub nodes: Vec<Box<[u8]>>,
    /// Reason kinds seen, by local id (valid UTF-8).
    pub reasons: Vec<Box<[u8]>>,
    /// Bad records: the chunk-local line where each starts, and what is wrong (the first
    /// `MAX_PROBLEMS` only).
    pub problems: Vec<(usize, String)>,
    /// Bad records, all of them.
    pub n_problems: usize,
    /// Line ends consumed so far.
    pub n_lines: usize,
    node_index: NameIndex,
    reason_index: NameIndex,
    scratch: Vec<u8>,
    field_ends: Vec<usize>,
    hours: HourCache,
}

/// A decoded row before interning.
struct Fields<'a> {
    node: &'a [u8],
    timestamp_ms: i64,
    action: Action,
    uptime_secs: Option<u64>,
    reason: &'a [u8],
}

impl ChunkParser {
    /// A parser for rows of `format`, with room for `n_rows` rows.
    pub fn new(format: Format, n_rows: usize) -> ChunkParser {
        ChunkParser {
            format,
            rows: Vec::with_capacity(n_rows),
            nodes: Vec::new(),
            reasons: Vec::new(),
            problems: Vec::new(),
            n_problems: 0,
            n_lines: 0,
            node_index: NameIndex::default(),
            reason_index: NameIndex::default(),
            scratch: Vec::new(),
            field_ends: Vec::new(),
            hours: HourCache::default(),
        }
    }

    /// Parses the record at the start of `bytes` and returns how many bytes it used, or `None`
    /// when the record may continue past `bytes` (never when `at_eof`). `bytes` must not be empty.
    pub fn step(&mut self, bytes: &[u8], at_eof: bool) -> Option<usize> {
        let line_end = memchr::memchr(b'\n', bytes);
        let line = match line_end {
            Some(index) => &bytes[..=index],
            None if at_eof => bytes,
            None => return None,
        };
        if matches!(line, b"\n" | b"\r\n") {
            self.n_lines += 1;
            return Some(line.len());
        }
        let Some(line_end) = line_end else {
            if self.format == Format::Nodekeeper && memchr::memchr(b'"', line).is_some() {
                return self.step_quoted(bytes, at_eof);
            }
            self.finish(Err(Cow::Borrowed("incomplete row (no line end)")), 0);
            return Some(line.len());
        };
        let content = &line[..line_end];
        let outcome = match self.format {
            Format::Jmanager => decode_jmanager(content, &mut self.hours),
            Format::Nodekeeper => {
                let mut fields: [&[u8]; 10] = [&[]; 10];
                let split = split_plain(content, &mut fields);
                let n_fields = match split
                    .n_fields
                    .or_else(|| split_simple(content, &mut fields))
                {
                    Some(n_fields) => n_fields,
                    // Quotes other than around a whole one-line field: the careful way.
                    None => return self.step_quoted(bytes, at_eof),
                };
                if n_fields == 10 {
                    decode_fields(&fields, !split.ascii, &mut self.hours)
                } else {
                    Err(format!("{n_fields} fields, expected 10").into())
                }
            }
        };
        self.finish(outcome, 1);
        Some(line.len())
    }

    /// A nodekeeper record with a quote: the careful state machine, possibly over several lines.
    fn step_quoted(&mut self, bytes: &[u8], at_eof: bool) -> Option<usize> {
        let window = &bytes[..bytes.len().min(MAX_RECORD)];
        // Taken out so that the fields can borrow them while `finish` updates `self`.
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut ends = std::mem::take(&mut self.field_ends);
        scratch.clear();
        ends.clear();
        let scanned = scan_record(window, &mut scratch, &mut ends);
        let (record_len, outcome) = match scanned {
            Some(end) => (end, decode_scanned(&scratch, &ends, &mut self.hours)),
            None if window.len() < bytes.len() || window.len() == MAX_RECORD => (
                window.len(),
                Err(Cow::Borrowed(
                    "record longer than 64 KiB (an unclosed quote?)",
                )),
            ),
            None if !at_eof => {
                self.scratch = scratch;
                self.field_ends = ends;
                return None;
            }
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
        let consumed = if outcome.is_ok() {
            let n_breaks = memchr::memchr_iter(b'\n', record).count();
            self.finish(outcome, n_breaks);
            record_len
        } else {
            // Only the first line of a bad record is used up, as `restart_log` does.
            let consumed = match memchr::memchr(b'\n', record) {
                Some(index) if index + 1 < record.len() => index + 1,
                _ => record.len(),
            };
            let n_breaks = usize::from(record[..consumed].ends_with(b"\n"));
            self.finish(outcome, n_breaks);
            consumed
        };
        self.scratch = scratch;
        self.field_ends = ends;
        Some(consumed)
    }

    fn finish(&mut self, outcome: Result<Fields<'_>, Cow<'static, str>>, n_breaks: usize) {
        match outcome {
            Ok(fields) => {
                let node = intern(&mut self.nodes, &mut self.node_index, fields.node);
                let kind = reason_kind(fields.reason);
                let reason = intern(&mut self.reasons, &mut self.reason_index, kind);
                self.rows.push(LogRow::new(
                    fields.timestamp_ms,
                    node,
                    reason,
                    fields.uptime_secs,
                    fields.action,
                ));
            }
            Err(message) => {
                self.n_problems += 1;
                if self.problems.len() < MAX_PROBLEMS {
                    self.problems.push((self.n_lines, message.into_owned()));
                }
            }
        }
        self.n_lines += n_breaks;
    }
}

/// The fields `scan_record` left in `scratch`, decoded.
fn decode_scanned<'a>(
    scratch: &'a [u8],
    ends: &[usize],
    cache: &mut HourCache,
) -> Result<Fields<'a>, Cow<'static, str>> {
    if ends.len() != COLUMNS.len() {
        return Err(format!("{} fields, expected {}", ends.len(), COLUMNS.len()).into());
    }
    let mut fields: [&[u8]; 10] = [&[]; 10];
    let mut start = 0;
    for (field, &end) in fields.iter_mut().zip(ends) {
        *field = &scratch[start..end];
        start = end;
    }
    decode_fields(&fields, true, cache)
}

/// Name to local id. Names of up to 24 bytes (every node name and reason kind in practice) are
/// keyed by three 8-byte words and their length, looked up first in a small direct-mapped cache:
/// no string hashing and no `memcmp` call per row.
#[derive(Debug)]
struct NameIndex {
    cache: Box<[CacheSlot; CACHE_SLOTS]>,
    short: FxHashMap<ShortKey, u32>,
    long: FxHashMap<Box<[u8]>, u32>,
}

/// A name of at most 24 bytes: three words covering it, and its length.
type ShortKey = (u64, u64, u64, u8);
/// A cached name and its id (`u32::MAX`: empty).
type CacheSlot = (ShortKey, u32);
const CACHE_SLOTS: usize = 256;

impl Default for NameIndex {
    fn default() -> NameIndex {
        NameIndex {
            cache: Box::new([((0, 0, 0, 0), u32::MAX); CACHE_SLOTS]),
            short: FxHashMap::default(),
            long: FxHashMap::default(),
        }
    }
}

/// The bytes of a name of at most 24 bytes as a key that only that name has.
#[inline]
fn short_key(name: &[u8]) -> Option<ShortKey> {
    let len = name.len();
    let word = |at: usize| u64::from_le_bytes(name[at..at + 8].try_into().expect("eight bytes"));
    match len {
        0..8 => {
            let mut packed = 0u64;
            for (index, &byte) in name.iter().enumerate() {
                packed |= u64::from(byte) << (8 * index);
            }
            Some((packed, 0, 0, len as u8))
        }
        // Three windows that together cover every byte (they overlap when shorter than 24).
        8..=24 => Some((word(0), word(8.min(len - 8)), word(len - 8), len as u8)),
        _ => None,
    }
}

#[inline]
fn cache_slot(key: &ShortKey) -> usize {
    let mixed = (key.0 ^ key.1.rotate_left(21) ^ key.2.rotate_left(42) ^ u64::from(key.3))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 56) as usize % CACHE_SLOTS
}

#[inline]
fn intern(names: &mut Vec<Box<[u8]>>, index: &mut NameIndex, name: &[u8]) -> u32 {
    let key = short_key(name);
    if let Some(key) = &key {
        let slot = &index.cache[cache_slot(key)];
        if slot.1 != u32::MAX && slot.0 == *key {
            return slot.1;
        }
    }
    let found = match &key {
        Some(key) => index.short.get(key).copied(),
        None => index.long.get(name).copied(),
    };
    let id = found.unwrap_or_else(|| {
        let id = u32::try_from(names.len()).expect("fewer than 2^32 distinct names");
        names.push(name.into());
        match key {
            Some(key) => index.short.insert(key, id),
            None => index.long.insert(name.into(), id),
        };
        id
    });
    if let Some(key) = key {
        index.cache[cache_slot(&key)] = (key, id);
    }
    id
}

/// A reason's kind (see `super::reason_kind`), on bytes.
fn reason_kind(reason: &[u8]) -> &[u8] {
    // Reasons are short: a plain loop beats setting up a substring searcher per row.
    let end = (1..reason.len())
        .find(|&index| reason[index] == b'(' && reason[index - 1] == b' ')
        .map_or(reason.len(), |index| index - 1);
    reason[..end].trim_ascii()
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

/// The ten fields of a nodekeeper row, checked like `restart_log` checks them (`check_utf8`:
/// the caller does not know them to be ASCII).
fn decode_fields<'a>(
    fields: &[&'a [u8]; 10],
    check_utf8: bool,
    cache: &mut HourCache,
) -> Result<Fields<'a>, Cow<'static, str>> {
    if check_utf8 {
        for (field, column) in fields.iter().zip(COLUMNS) {
            if !field.is_ascii() && std::str::from_utf8(field).is_err() {
                return Err(format!("{column} is not UTF-8").into());
            }
        }
    }
    let text = |field: &[u8]| String::from_utf8_lossy(field).into_owned();
    let timestamp_ms = parse_rfc3339(fields[1], cache).ok_or_else(|| {
        format!(
            "timestamp is not an RFC 3339 date: {}",
            crate::describe::excerpt(&text(fields[1]), 60)
        )
    })?;
    let action = parse_action(fields[2])?;
    let uptime = optional_number(fields[3], "uptime", parse_u64)?;
    // Checked, not kept: only whether `restart_log` would accept them matters.
    optional_number(fields[6], "height", |f| valid_u64(f).then_some(()))?;
    optional_number(fields[7], "reference height", |f| {
        valid_u64(f).then_some(())
    })?;
    optional_number(fields[9], "exit status", parse_i32)?;
    Ok(Fields {
        node: fields[0],
        timestamp_ms,
        action,
        uptime_secs: uptime,
        reason: fields[4],
    })
}

/// A jmanager line (line end removed): `node,timestamp,action,uptime,reason`, unquoted; the
/// reason is the rest of the line, commas included.
fn decode_jmanager<'a>(
    content: &'a [u8],
    cache: &mut HourCache,
) -> Result<Fields<'a>, Cow<'static, str>> {
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
    let names = ["node name", "timestamp", "action", "uptime", "reason"];
    for (field, column) in fields.iter().chain([&reason]).zip(names) {
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
    Ok(Fields {
        node: fields[0],
        timestamp_ms,
        action,
        uptime_secs: uptime,
        reason,
    })
}

fn parse_action(field: &[u8]) -> Result<Action, Cow<'static, str>> {
    match field {
        b"stop" => Ok(Action::Stop),
        b"start" => Ok(Action::Start),
        other => Err(format!(
            "action is neither stop nor start: {}",
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

/// Milliseconds since the epoch of any timestamp the analysis reads: RFC 3339, or jmanager's
/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC).
pub fn parse_timestamp(text: &[u8]) -> Option<i64> {
    let mut cache = HourCache::default();
    parse_rfc3339(text, &mut cache).or_else(|| parse_python_timestamp(text, &mut cache))
}

/// The last `YYYY-MM-DDTHH` seen and its time: consecutive rows of a log mostly share it, and
/// then only minutes, seconds and the fraction are left to parse.
#[derive(Clone, Copy, Debug, Default)]
pub struct HourCache {
    prefix: [u8; 13],
    hour_ms: i64,
    valid: bool,
}

/// An RFC 3339 timestamp as chrono's `parse_from_rfc3339` reads it, in milliseconds (truncated).
/// The common shape is parsed here; anything else goes through chrono.
fn parse_rfc3339(text: &[u8], cache: &mut HourCache) -> Option<i64> {
    if let Some(parsed) = fast_timestamp(text, true, cache) {
        return Some(parsed);
    }
    let text = std::str::from_utf8(text).ok()?;
    let date = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(date.timestamp_millis())
}

/// jmanager's Python `str(datetime)` in UTC; RFC 3339 is accepted too.
fn parse_python_timestamp(text: &[u8], cache: &mut HourCache) -> Option<i64> {
    if let Some(parsed) = fast_timestamp(text, false, cache) {
        return Some(parsed);
    }
    let text = std::str::from_utf8(text).ok()?;
    if let Ok(date) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(date.timestamp_millis());
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(naive.and_utc().timestamp_millis())
}

/// Two ASCII digits, or `None`.
#[inline]
fn two_digits(high: u8, low: u8) -> Option<u32> {
    let (high, low) = (high.wrapping_sub(b'0'), low.wrapping_sub(b'0'));
    (high <= 9 && low <= 9).then(|| u32::from(high) * 10 + u32::from(low))
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]` then `Z` or `±HH:MM` (`with_offset`), or `YYYY-MM-DD
/// HH:MM:SS[.f{1,9}]` with no offset (UTC). Leap seconds and other shapes: `None`.
fn fast_timestamp(text: &[u8], with_offset: bool, cache: &mut HourCache) -> Option<i64> {
    if text.len() < 19 {
        return None;
    }
    let separator = if with_offset { b'T' } else { b' ' };
    let hour_ms = if cache.valid && text[..13] == cache.prefix {
        cache.hour_ms
    } else {
        if text[4] != b'-' || text[7] != b'-' || text[10] != separator {
            return None;
        }
        let year = two_digits(text[0], text[1])? * 100 + two_digits(text[2], text[3])?;
        let month = two_digits(text[5], text[6])?;
        let day = two_digits(text[8], text[9])?;
        let hour = two_digits(text[11], text[12])?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) || hour > 23 {
            return None;
        }
        let days = days_from_civil(i64::from(year), month, day);
        let hour_ms = (days * 24 + i64::from(hour)) * 3_600_000;
        cache.prefix.copy_from_slice(&text[..13]);
        cache.hour_ms = hour_ms;
        cache.valid = true;
        hour_ms
    };
    if text[13] != b':' || text[16] != b':' {
        return None;
    }
    let minute = two_digits(text[14], text[15])?;
    let second = two_digits(text[17], text[18])?;
    if minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0u32;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n_digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if n_digits == 0 || n_digits > 9 {
            return None;
        }
        for index in 0..3 {
            let digit = fraction.get(index).filter(|_| index < n_digits);
            millis = millis * 10 + digit.map_or(0, |d| u32::from(d - b'0'));
        }
        rest = &fraction[n_digits..];
    }
    let offset_secs: i64 = match (with_offset, rest) {
        (false, []) | (true, b"Z") => 0,
        (true, [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]) => {
            let (hours, minutes) = (two_digits(*h1, *h2)?, two_digits(*m1, *m2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    Some(
        hour_ms + i64::from(minute) * 60_000 + i64::from(second) * 1000 + i64::from(millis)
            - offset_secs * 1000,
    )
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Reads one record at the start of `bytes` with `restart_log`'s rules (csv-core's): a quote
/// opens a quoted field only at a field's start, `""` inside one is a quote, text after a closing
/// quote continues the field. Field contents go to `scratch`, each field's end to `ends`. Returns
/// the record's end (just past its `\n`), or `None` if `bytes` ends first.
fn scan_record(bytes: &[u8], scratch: &mut Vec<u8>, ends: &mut Vec<usize>) -> Option<usize> {
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

#[cfg(test)]
mod tests;

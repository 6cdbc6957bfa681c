//! `log analyze`'s side of reading restart logs, fast enough for 10 million rows: records are read
//! by `restart_log::record::RecordReader` (the byte-level reader of both formats, shared with the
//! restart log itself) into compact `LogRow`s, names interned per thread without allocating per
//! row. No I/O: `read` feeds the bytes.
//!
//! One deliberate difference from reading rows back with `restart_log::read_rows`: a quoted record
//! longer than `MAX_RECORD` is rejected at its first line instead of being read to the end of the
//! file, so stray quotes cannot make reading quadratic.

use rustc_hash::FxHashMap;

use super::LogRow;
use crate::restart_log::record::{Format, RecordReader, Step};

/// The longest quoted (possibly multi-line) record read; longer ones are rejected at their first
/// line.
pub const MAX_RECORD: usize = 64 * 1024;

/// How many problems are kept with their message, per chunk and per file; the rest are counted.
pub const MAX_PROBLEMS: usize = 1000;

/// Parses records one at a time into rows with chunk-local name ids, and problems with
/// chunk-local line numbers (0 = the chunk's first line). One per thread; `read` merges them.
#[derive(Debug)]
pub struct ChunkParser {
    format: Format,
    reader: RecordReader,
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
}

impl ChunkParser {
    /// A parser for rows of `format`, with room for `n_rows` rows.
    pub fn new(format: Format, n_rows: usize) -> ChunkParser {
        ChunkParser {
            format,
            reader: RecordReader::default(),
            rows: Vec::with_capacity(n_rows),
            nodes: Vec::new(),
            reasons: Vec::new(),
            problems: Vec::new(),
            n_problems: 0,
            n_lines: 0,
            node_index: NameIndex::default(),
            reason_index: NameIndex::default(),
        }
    }

    /// Parses the record at the start of `bytes` and returns how many bytes it used, or `None`
    /// when the record may continue past `bytes` (never when `at_eof`). `bytes` must not be empty.
    #[inline]
    pub fn step(&mut self, bytes: &[u8], at_eof: bool) -> Option<usize> {
        // Taken apart in place, the row by reference: no copy of it per row. Fields, not
        // methods: `row` may borrow the reader's buffer.
        match &self.reader.step(self.format, bytes, at_eof, MAX_RECORD) {
            Step::NeedMore => None,
            Step::Blank(len) => {
                self.n_lines += 1;
                Some(*len)
            }
            Step::Record { len, n_breaks, row } => {
                match row {
                    Ok(row) => {
                        let node = intern(&mut self.nodes, &mut self.node_index, row.node);
                        let kind = reason_kind(row.reason);
                        let reason = intern(&mut self.reasons, &mut self.reason_index, kind);
                        self.rows.push(LogRow::new(
                            row.timestamp_ms,
                            node,
                            reason,
                            row.uptime_secs,
                            row.action,
                        ));
                    }
                    Err(message) => {
                        self.n_problems += 1;
                        if self.problems.len() < MAX_PROBLEMS {
                            self.problems.push((self.n_lines, message.to_string()));
                        }
                    }
                }
                self.n_lines += n_breaks;
                Some(*len)
            }
        }
    }
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
    if let Some(kind) = super::maintenance_kind(reason) {
        return kind.as_bytes();
    }
    // Reasons are short: a plain loop beats setting up a substring searcher per row.
    let end = (1..reason.len())
        .find(|&index| reason[index] == b'(' && reason[index - 1] == b' ')
        .map_or(reason.len(), |index| index - 1);
    reason[..end].trim_ascii()
}

#[cfg(test)]
mod tests;

//! Restart-log analysis (`nodekeeper log analyze`): restarts per node, reason, day and hour, MTBF,
//! flapping windows and the longest stable runs, over nodekeeper's restart log and jmanager's
//! `restarts.csv`. This module owns reading those files fast (`read`, `parse`), the pure analysis
//! (`report`) and its renderings (`render`, `plot`); it must not write to a restart log.
//!
//! Data flow: files → `read::read_inputs` (parallel byte-level parser, bad lines reported with
//! their file and line) → `Dataset` (compact rows, interned names) → `report::analyze` (pure, no
//! I/O) → `Report` → table, JSON, CSV or SVG.
//!
//! Definitions:
//! - A *restart* is a stop row, or a start row that does not complete one: a start right after the
//!   node's stop is the same restart, and so is a start whose reason is `retry after a failed
//!   start`. A restart's time and reason are its first row's.
//! - A reason's *kind* is its text before ` (`: `stale tip (no new block for 6 s)` is `stale tip`.
//!   A backup's or restore's reason is cut to its `MAINTENANCE_KINDS` prefix: `backup to
//!   /b/node1-….tar.zst (1.2 GB in 40 s)` is `backup`, `restore failed: …` is `restore failed`.
//!   Counts per reason, `--reason` and the planned list use kinds.
//! - `backup` and `restore` rows are maintenance, no restart of their own: the stop before and the
//!   start after one are a single restart whose kind (`backup`, `restore`, `automatic restore`) is
//!   planned. They are counted per node (`backups`, `restores`, failed ones apart).
//! - A restart is *planned* when its kind is in `DEFAULT_PLANNED` or `--planned`; every other
//!   restart is a *failure*.
//! - MTBF is the mean gap between a node's consecutive failures, `(last - first) / (n - 1)`; the
//!   mean uptime at failure (the `uptime` cell of failures that have one) is reported beside it.
//! - A node *flaps* when `flap_count` failures fall within `flap_window`; overlapping windows are
//!   merged into one.
//! - A *stable run* is the time between a node's consecutive failures, from its first row to its
//!   first failure, and from its last failure to the end of the log (*ongoing*).

pub mod parse;
pub mod plot;
pub mod read;
pub mod render;
pub mod report;

use rustc_hash::FxHashMap;

pub use report::{Options, Report, analyze};

/// Reason kinds that are planned restarts by default: an operator's request, a node found
/// stopped (someone stopped it), jmanager's leader-schedule refresh (`leader logs`), the
/// planned kinds nodekeeper may write (`schedule refresh`, `slot guard`, `config change`) and its
/// maintenance (`MAINTENANCE_KINDS`: a backup or a restore, done or failed, automatic or not). The
/// empty reason is jmanager's plain start of a STOPPED node.
pub const DEFAULT_PLANNED: [&str; 12] = [
    "operator request",
    "stopped",
    "leader logs",
    "schedule refresh",
    "slot guard",
    "config change",
    "backup",
    "backup failed",
    "restore",
    "restore failed",
    "automatic restore",
    "",
];

/// The kinds of the reasons nodekeeper writes around and on a backup or a restore, longest
/// prefix first: a reason that starts with one of them (then ends, or goes on with a space or a
/// colon) is of that kind, whatever follows (an archive's name, sizes, an error).
pub const MAINTENANCE_KINDS: [&str; 5] = [
    "automatic restore",
    "backup failed",
    "restore failed",
    "backup",
    "restore",
];

/// The kinds of the `backup`/`restore` rows that say the attempt failed.
pub const FAILED_MAINTENANCE_KINDS: [&str; 2] = ["backup failed", "restore failed"];

/// The reason nodekeeper writes on a start that retries a failed one: part of the earlier restart.
pub const RETRY_REASON: &str = "retry after a failed start";

/// Stop or start: the restart log's own type.
pub use crate::restart_log::RestartAction as Action;

/// One row, compact: names are indexes into the `Dataset`'s tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRow {
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: i64,
    /// Index into `Dataset::nodes`.
    pub node: u32,
    /// Index into `Dataset::reasons` (the reason's kind).
    pub reason: u32,
    /// The uptime cell in seconds, `UNKNOWN_UPTIME` when empty or negative (jmanager's `-1`).
    /// Not an `Option`, which would make a row a third larger (10 million rows are read at once).
    uptime: u32,
    /// Stop or start.
    pub action: Action,
}

/// `LogRow::uptime` when unknown.
const UNKNOWN_UPTIME: u32 = u32::MAX;

impl LogRow {
    /// A row; an uptime of 136 years or more is kept as just under that.
    pub fn new(
        timestamp_ms: i64,
        node: u32,
        reason: u32,
        uptime_secs: Option<u64>,
        action: Action,
    ) -> LogRow {
        let uptime = uptime_secs.map_or(UNKNOWN_UPTIME, |secs| {
            u32::try_from(secs)
                .unwrap_or(u32::MAX)
                .min(UNKNOWN_UPTIME - 1)
        });
        LogRow {
            timestamp_ms,
            node,
            reason,
            uptime,
            action,
        }
    }

    /// The uptime cell in seconds; `None` when empty or negative (jmanager's `-1`).
    pub fn uptime_secs(&self) -> Option<u32> {
        (self.uptime != UNKNOWN_UPTIME).then_some(self.uptime)
    }
}

/// Parsed rows of one or more logs, in file order, with their node and reason-kind tables.
/// The rows are kept in segments (one per parsed chunk) so that merging never copies them.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    segments: Vec<Vec<LogRow>>,
    /// Node names, indexed by `LogRow::node`.
    pub nodes: Vec<String>,
    /// Reason kinds, indexed by `LogRow::reason`.
    pub reasons: Vec<String>,
    node_index: FxHashMap<String, u32>,
    reason_index: FxHashMap<String, u32>,
}

impl Dataset {
    /// The rows, in file order.
    pub fn rows(&self) -> impl Iterator<Item = &LogRow> + '_ {
        self.segments.iter().flatten()
    }

    /// The rows, in file order, as consecutive slices.
    pub fn segments(&self) -> &[Vec<LogRow>] {
        &self.segments
    }

    /// How many rows there are.
    pub fn n_rows(&self) -> usize {
        self.segments.iter().map(Vec::len).sum()
    }

    /// Appends rows whose ids are this dataset's.
    pub fn push_rows(&mut self, rows: Vec<LogRow>) {
        if !rows.is_empty() {
            self.segments.push(rows);
        }
    }

    /// The index of node `name`, added if new.
    pub fn node_id(&mut self, name: &str) -> u32 {
        intern(&mut self.nodes, &mut self.node_index, name)
    }

    /// The index of the kind of `reason`, added if new.
    pub fn reason_id(&mut self, reason: &str) -> u32 {
        let kind = reason_kind(reason);
        intern(&mut self.reasons, &mut self.reason_index, kind)
    }

    /// Appends one row given as plain values (tests, small inputs); `timestamp` is RFC 3339.
    ///
    /// # Panics
    /// On a timestamp that does not parse: this is for literal test data.
    pub fn push(
        &mut self,
        node: &str,
        timestamp: &str,
        action: Action,
        uptime_secs: Option<u64>,
        reason: &str,
    ) {
        let timestamp_ms = crate::restart_log::timestamp::parse_timestamp(timestamp.as_bytes())
            .unwrap_or_else(|| panic!("bad timestamp {timestamp:?}"));
        let row = LogRow::new(
            timestamp_ms,
            self.node_id(node),
            self.reason_id(reason),
            uptime_secs,
            action,
        );
        match self.segments.last_mut() {
            Some(segment) => segment.push(row),
            None => self.segments.push(vec![row]),
        }
    }
}

fn intern(names: &mut Vec<String>, index: &mut FxHashMap<String, u32>, name: &str) -> u32 {
    if let Some(&id) = index.get(name) {
        return id;
    }
    let id = u32::try_from(names.len()).expect("fewer than 2^32 distinct names");
    names.push(name.to_string());
    index.insert(name.to_string(), id);
    id
}

/// A reason's kind: its text before ` (`, trimmed. `lag (height 11, reference 17, 6 behind)` is
/// `lag`; jmanager's reasons have no details and are their own kind. A backup's or a restore's
/// reason is its `MAINTENANCE_KINDS` prefix (`backup to /b/x.tar.zst` is `backup`).
pub fn reason_kind(reason: &str) -> &str {
    if let Some(kind) = maintenance_kind(reason.as_bytes()) {
        return kind;
    }
    let kind = match reason.find(" (") {
        Some(index) => &reason[..index],
        None => reason,
    };
    kind.trim()
}

/// The `MAINTENANCE_KINDS` entry `reason` starts with (followed by its end, a space or a colon),
/// if any. Cheap for other reasons: one byte is looked at.
#[inline]
pub fn maintenance_kind(reason: &[u8]) -> Option<&'static str> {
    if !matches!(reason.first(), Some(b'a' | b'b' | b'r')) {
        return None;
    }
    MAINTENANCE_KINDS.into_iter().find(|kind| {
        reason.starts_with(kind.as_bytes())
            && matches!(reason.get(kind.len()), None | Some(b' ' | b':'))
    })
}

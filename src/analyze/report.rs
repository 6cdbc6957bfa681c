//! The analysis: a pure function from parsed rows and options to a `Report`. No I/O, no clock.
//! The definitions (restart, planned, MTBF, flapping, stable run) are in the module above.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde::Serialize;

use super::{
    Action, DEFAULT_PLANNED, Dataset, FAILED_MAINTENANCE_KINDS, LogRow, RETRY_REASON, reason_kind,
};

const MS_PER_DAY: i64 = 86_400_000;
const MS_PER_HOUR: i64 = 3_600_000;
/// Above this many rows the grouped per-node pass runs on two threads.
const PARALLEL_ROWS: usize = 1_000_000;
/// Up to this many (node, reason) counters, rows in time order are counted in one pass.
const DENSE_COUNTS: usize = 1 << 20;

/// What to analyse and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Only these nodes (all when empty).
    pub nodes: Vec<String>,
    /// Only restarts of these reasons, compared by kind, ASCII case-insensitively (all when
    /// empty).
    pub reasons: Vec<String>,
    /// Only restarts at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only restarts before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Reason kinds that are planned restarts, compared ASCII case-insensitively.
    pub planned: Vec<String>,
    /// A node flaps when this many failures fall within `flap_window_ms`.
    pub flap_count: usize,
    /// The flapping window.
    pub flap_window_ms: i64,
    /// How many of the longest stable runs to list.
    pub top_stable: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            nodes: Vec::new(),
            reasons: Vec::new(),
            since_ms: None,
            until_ms: None,
            planned: DEFAULT_PLANNED.iter().map(|s| s.to_string()).collect(),
            flap_count: 3,
            flap_window_ms: 30 * 60 * 1000,
            top_stable: 5,
        }
    }
}

/// A point in time, milliseconds since the epoch; serialised as RFC 3339 UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// RFC 3339 UTC with milliseconds.
    pub fn rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_millis(self.0).map_or_else(
            || format!("@{}ms", self.0),
            |date| crate::time::rfc3339_millis(date.into()),
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rfc3339())
    }
}

/// The analysis of a restart log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The definitions the figures use.
    pub definitions: Definitions,
    /// The first and last restart counted.
    pub period: Option<Period>,
    /// Totals over the selected nodes and restarts.
    pub totals: Totals,
    /// One entry per node with rows in the period, by name.
    pub nodes: Vec<NodeReport>,
    /// Restarts per reason kind, most frequent first.
    pub reasons: Vec<ReasonReport>,
    /// Restarts per UTC day, per node.
    pub days: Vec<DayReport>,
    /// Restarts per hour of the day (UTC), 0 to 23.
    pub hours: Vec<HourReport>,
    /// Flapping windows, by start.
    pub flapping: Vec<FlapWindow>,
    /// The longest stable runs, longest first.
    pub stable_runs: Vec<StableRun>,
}

/// The definitions in force.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Definitions {
    /// Reason kinds counted as planned.
    pub planned: Vec<String>,
    /// Failures that make a flapping window.
    pub flap_count: usize,
    /// The flapping window, in seconds.
    pub flap_window_secs: f64,
}

/// A time range.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Period {
    /// Start.
    pub from: Timestamp,
    /// End.
    pub to: Timestamp,
}

/// Totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Rows of the selected nodes within `--since`/`--until`.
    pub rows: u64,
    /// Restarts counted (a stop and its start are one).
    pub restarts: u64,
    /// Of which failures.
    pub failures: u64,
    /// Of which planned.
    pub planned: u64,
    /// `backup` rows (maintenance, not restarts).
    pub backups: u64,
    /// Of which failed (`backup failed`).
    pub failed_backups: u64,
    /// `restore` rows (maintenance, not restarts).
    pub restores: u64,
    /// Of which failed (`restore failed`).
    pub failed_restores: u64,
}

/// One node's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeReport {
    /// The node.
    pub node: String,
    /// Its rows within `--since`/`--until`.
    pub rows: u64,
    /// Of which stops.
    pub stops: u64,
    /// Of which starts.
    pub starts: u64,
    /// Of which backups (maintenance between a stop and a start, not a restart of its own).
    pub backups: u64,
    /// Of the backups, those that failed.
    pub failed_backups: u64,
    /// Of which restores (maintenance, as backups).
    pub restores: u64,
    /// Of the restores, those that failed.
    pub failed_restores: u64,
    /// Restarts counted.
    pub restarts: u64,
    /// Of which failures.
    pub failures: u64,
    /// Of which planned.
    pub planned: u64,
    /// The first restart counted.
    pub first_restart: Option<Timestamp>,
    /// The last restart counted.
    pub last_restart: Option<Timestamp>,
    /// Mean time between failures in seconds: `(last - first) / (failures - 1)`; needs two.
    pub mtbf_secs: Option<f64>,
    /// Mean of the uptime logged at the failures that have one, in seconds.
    pub mean_uptime_at_failure_secs: Option<f64>,
    /// How many failures had an uptime.
    pub uptime_samples: u64,
    /// The node's longest stable run, in seconds.
    pub longest_stable_run_secs: Option<f64>,
    /// Its flapping windows.
    pub flapping_windows: u64,
    /// Restarts per reason kind, most frequent first.
    pub reasons: Vec<ReasonCount>,
}

/// A count for a reason kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    /// The kind.
    pub reason: String,
    /// Restarts.
    pub restarts: u64,
}

/// One reason kind's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReasonReport {
    /// The kind (empty: no reason).
    pub reason: String,
    /// Whether it is planned.
    pub planned: bool,
    /// Restarts.
    pub restarts: u64,
    /// Share of all restarts counted, 0 to 1.
    pub share: f64,
}

/// One UTC day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayReport {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Restarts that day.
    pub restarts: u64,
    /// Per node with restarts that day, by name.
    pub nodes: BTreeMap<String, u64>,
}

/// One hour of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HourReport {
    /// 0 to 23, UTC.
    pub hour: u32,
    /// Restarts in that hour, over all days.
    pub restarts: u64,
}

/// A stretch of time in which a node failed at least `flap_count` times per `flap_window`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlapWindow {
    /// The node.
    pub node: String,
    /// Its first failure in the window.
    pub from: Timestamp,
    /// Its last.
    pub to: Timestamp,
    /// Failures from `from` to `to`.
    pub failures: u64,
}

/// A time without failures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StableRun {
    /// The node.
    pub node: String,
    /// Start: a failure, or the node's first row.
    pub from: Timestamp,
    /// End: a failure, or the end of the log.
    pub to: Timestamp,
    /// Its length in seconds.
    pub secs: f64,
    /// Still going at the end of the log.
    pub ongoing: bool,
}

/// What one pass over a node's rows found.
#[derive(Debug, Default)]
struct NodeWalk {
    node: u32,
    rows: u64,
    stops: u64,
    starts: u64,
    backups: u64,
    failed_backups: u64,
    restores: u64,
    failed_restores: u64,
    restarts: u64,
    failures: u64,
    planned: u64,
    first_row: Option<i64>,
    first_restart: Option<i64>,
    last_restart: Option<i64>,
    reason_counts: Vec<(u32, u64)>,
    /// (day since the epoch, restarts), days ascending.
    days: Vec<(i64, u64)>,
    hours: [u64; 24],
    failure_times: Vec<i64>,
    uptime_sum: u128,
    uptime_samples: u64,
    /// The action of the node's previous row, for pairing a start with its stop.
    previous: Option<Action>,
    /// Reason ids counted so far.
    touched: Vec<u32>,
    /// The time of the node's previous row.
    last_time: i64,
    /// A row came before its predecessor: this walk is wrong (rows must be sorted first).
    disordered: bool,
}

/// Which rows and restarts count, by id.
struct Selection {
    node: Vec<bool>,
    reason: Vec<bool>,
    planned: Vec<bool>,
    /// The reason kinds of failed backups and restores.
    failed: Vec<bool>,
    retry: Option<u32>,
    since: i64,
    until: i64,
}

/// Analyses `data` under `options`.
pub fn analyze(data: &Dataset, options: &Options) -> Report {
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let selection = Selection {
        node: data
            .nodes
            .iter()
            .map(|name| options.nodes.is_empty() || options.nodes.iter().any(|n| n == name))
            .collect(),
        reason: data
            .reasons
            .iter()
            .map(|kind| {
                options.reasons.is_empty()
                    || options.reasons.iter().any(|r| same(reason_kind(r), kind))
            })
            .collect(),
        planned: data
            .reasons
            .iter()
            .map(|kind| options.planned.iter().any(|p| same(reason_kind(p), kind)))
            .collect(),
        failed: data
            .reasons
            .iter()
            .map(|kind| FAILED_MAINTENANCE_KINDS.contains(&kind.as_str()))
            .collect(),
        retry: data
            .reasons
            .iter()
            .position(|kind| kind == RETRY_REASON)
            .map(|index| index as u32),
        since: options.since_ms.unwrap_or(i64::MIN),
        until: options.until_ms.unwrap_or(i64::MAX),
    };

    let n_nodes = data.nodes.len();
    let n_reasons = data.reasons.len();
    // One pass in file order when each node's rows are in time order (the usual case), which the
    // pass itself checks; otherwise rows are grouped and sorted per node.
    let dense = n_nodes.saturating_mul(n_reasons) <= DENSE_COUNTS;
    let (mut walks, latest) = match dense.then(|| walk_in_file_order(data, &selection)) {
        Some((walks, latest)) if !walks.iter().any(|walk| walk.disordered) => (walks, latest),
        _ => {
            let latest = data.rows().map(|row| row.timestamp_ms).max();
            (walk_grouped(data, &selection), latest)
        }
    };
    let end_of_log = latest.map(|last| last.min(selection.until));
    walks.retain(|walk| walk.rows > 0);
    walks.sort_by(|a, b| data.nodes[a.node as usize].cmp(&data.nodes[b.node as usize]));

    assemble(data, options, &selection, &walks, end_of_log)
}

/// One pass in file order, every node's walk side by side, and the latest time of any row; with
/// many rows, one pass per thread, each thread taking every `n_threads`-th node. A walk whose rows
/// were out of order says so (`disordered`) and is not to be used.
fn walk_in_file_order(data: &Dataset, selection: &Selection) -> (Vec<NodeWalk>, Option<i64>) {
    let n_threads = if data.n_rows() >= PARALLEL_ROWS {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, 4)
            .min(data.nodes.len().max(1))
    } else {
        1
    };
    let walk_share = |share: usize| -> (Vec<NodeWalk>, Option<i64>) {
        let n_reasons = data.reasons.len();
        let mut walks: Vec<NodeWalk> = (0..data.nodes.len() as u32).map(NodeWalk::new).collect();
        let mut counts = vec![0u64; data.nodes.len() * n_reasons];
        let mut latest = i64::MIN;
        for segment in data.segments() {
            for row in segment {
                latest = latest.max(row.timestamp_ms);
                let node = row.node as usize;
                if node % n_threads == share && selection.node[node] {
                    let counts = &mut counts[node * n_reasons..(node + 1) * n_reasons];
                    walks[node].push(row, selection, counts);
                }
            }
        }
        for (node, walk) in walks.iter_mut().enumerate() {
            walk.finish(&mut counts[node * n_reasons..(node + 1) * n_reasons]);
        }
        (walks, (data.n_rows() > 0).then_some(latest))
    };
    if n_threads == 1 {
        return walk_share(0);
    }
    let shares: Vec<(Vec<NodeWalk>, Option<i64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..n_threads)
            .map(|share| scope.spawn(move || walk_share(share)))
            .collect();
        let mut shares = vec![walk_share(0)];
        shares.extend(
            handles
                .into_iter()
                .map(|handle| handle.join().expect("an analysis thread panicked")),
        );
        shares
    });
    let latest = shares[0].1;
    let mut shares: Vec<_> = shares
        .into_iter()
        .map(|share| share.0.into_iter())
        .collect();
    let walks = (0..data.nodes.len())
        .map(|node| {
            // Every share has one walk per node, in node order; keep the owner's.
            let mut owned = None;
            for (share, walks) in shares.iter_mut().enumerate() {
                let walk = walks.next().expect("one walk per node");
                if share == node % n_threads {
                    owned = Some(walk);
                }
            }
            owned.expect("every node has an owner")
        })
        .collect();
    (walks, latest)
}

/// Rows grouped by node (a stable counting sort), each node's put in time order, then walked,
/// on two threads when there are many.
fn walk_grouped(data: &Dataset, selection: &Selection) -> Vec<NodeWalk> {
    let n_nodes = data.nodes.len();
    let n_rows = data.n_rows();
    let mut starts = vec![0usize; n_nodes + 1];
    for row in data.rows() {
        starts[row.node as usize + 1] += 1;
    }
    for index in 0..n_nodes {
        starts[index + 1] += starts[index];
    }
    let mut grouped = Vec::with_capacity(n_rows);
    if n_nodes <= 1 {
        grouped.extend(data.rows());
    } else {
        grouped.resize(n_rows, LogRow::new(0, 0, 0, None, Action::Stop));
        let mut cursor = starts.clone();
        for row in data.rows() {
            let node = row.node as usize;
            grouped[cursor[node]] = *row;
            cursor[node] += 1;
        }
    }

    let mut groups: Vec<(u32, &mut [LogRow])> = Vec::new();
    let mut rest: &mut [LogRow] = &mut grouped;
    for node in 0..n_nodes {
        let (group, tail) = rest.split_at_mut(starts[node + 1] - starts[node]);
        rest = tail;
        if selection.node[node] && !group.is_empty() {
            groups.push((node as u32, group));
        }
    }
    let walk_groups = |groups: Vec<(u32, &mut [LogRow])>| -> Vec<NodeWalk> {
        let mut scratch = vec![0u64; data.reasons.len()];
        groups
            .into_iter()
            .map(|(node, group)| walk_node(selection, node, group, &mut scratch))
            .collect()
    };
    if n_rows >= PARALLEL_ROWS && groups.len() > 1 {
        // Two halves of about the same number of rows.
        let half = n_rows / 2;
        let mut seen = 0;
        let split = groups
            .iter()
            .position(|(_, group)| {
                seen += group.len();
                seen >= half
            })
            .map_or(groups.len(), |index| (index + 1).min(groups.len() - 1));
        let second = groups.split_off(split);
        std::thread::scope(|scope| {
            let handle = scope.spawn(|| walk_groups(second));
            let mut walks = walk_groups(groups);
            walks.extend(handle.join().expect("the analysis thread panicked"));
            walks
        })
    } else {
        walk_groups(groups)
    }
}

/// One node's rows, put in time order, then counted.
fn walk_node(
    selection: &Selection,
    node: u32,
    rows: &mut [LogRow],
    scratch: &mut [u64],
) -> NodeWalk {
    let sorted = rows
        .windows(2)
        .all(|pair| pair[0].timestamp_ms <= pair[1].timestamp_ms);
    if !sorted {
        // Stable: rows with the same time stay in file order.
        rows.sort_by_key(|row| row.timestamp_ms);
    }
    let mut walk = NodeWalk::new(node);
    for row in rows.iter() {
        walk.push(row, selection, scratch);
    }
    walk.finish(scratch);
    walk
}

impl NodeWalk {
    fn new(node: u32) -> NodeWalk {
        NodeWalk {
            node,
            last_time: i64::MIN,
            ..NodeWalk::default()
        }
    }

    /// Counts the node's next row (rows come in time order). `counts` holds the restarts per
    /// reason id while the walk lasts.
    #[inline]
    fn push(&mut self, row: &LogRow, selection: &Selection, counts: &mut [u64]) {
        if row.action.is_maintenance() {
            self.push_maintenance(row, selection);
            return;
        }
        let begins = match row.action {
            Action::Stop => true,
            Action::Start => match self.previous {
                Some(Action::Stop) => false,
                Some(Action::Start) => Some(row.reason) != selection.retry,
                // Never set to a maintenance row.
                Some(Action::Backup | Action::Restore) | None => true,
            },
            Action::Backup | Action::Restore => false,
        };
        self.previous = Some(row.action);
        let time = row.timestamp_ms;
        self.disordered |= time < self.last_time;
        self.last_time = time;
        if time < selection.since || time >= selection.until {
            return;
        }
        self.first_row.get_or_insert(time);
        self.rows += 1;
        match row.action {
            Action::Stop => self.stops += 1,
            Action::Start => self.starts += 1,
            Action::Backup | Action::Restore => {}
        }
        if !begins || !selection.reason[row.reason as usize] {
            return;
        }
        self.restarts += 1;
        self.first_restart.get_or_insert(time);
        self.last_restart = Some(time);
        let count = &mut counts[row.reason as usize];
        if *count == 0 {
            self.touched.push(row.reason);
        }
        *count += 1;
        let day = time.div_euclid(MS_PER_DAY);
        match self.days.last_mut() {
            Some((last, n)) if *last == day => *n += 1,
            _ => self.days.push((day, 1)),
        }
        self.hours[(time.rem_euclid(MS_PER_DAY) / MS_PER_HOUR) as usize] += 1;
        if selection.planned[row.reason as usize] {
            self.planned += 1;
        } else {
            self.failures += 1;
            self.failure_times.push(time);
            if let (Action::Stop, Some(uptime)) = (row.action, row.uptime_secs()) {
                self.uptime_sum += u128::from(uptime);
                self.uptime_samples += 1;
            }
        }
    }

    /// Counts a `backup` or `restore` row: no restart, and the start after it still completes
    /// the stop before it (`previous` is left alone).
    fn push_maintenance(&mut self, row: &LogRow, selection: &Selection) {
        let time = row.timestamp_ms;
        self.disordered |= time < self.last_time;
        self.last_time = time;
        if time < selection.since || time >= selection.until {
            return;
        }
        self.first_row.get_or_insert(time);
        self.rows += 1;
        let failed = u64::from(selection.failed[row.reason as usize]);
        if row.action == Action::Backup {
            self.backups += 1;
            self.failed_backups += failed;
        } else {
            self.restores += 1;
            self.failed_restores += failed;
        }
    }

    /// Moves the reason counts out of `counts` (leaving zeros).
    fn finish(&mut self, counts: &mut [u64]) {
        self.reason_counts = std::mem::take(&mut self.touched)
            .into_iter()
            .map(|reason| (reason, std::mem::take(&mut counts[reason as usize])))
            .collect();
    }
}

/// The report from the per-node passes.
fn assemble(
    data: &Dataset,
    options: &Options,
    selection: &Selection,
    walks: &[NodeWalk],
    end_of_log: Option<i64>,
) -> Report {
    let name = |node: u32| data.nodes[node as usize].clone();
    let mut totals = Totals::default();
    let mut reason_totals: BTreeMap<u32, u64> = BTreeMap::new();
    let mut days: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
    let mut hours = [0u64; 24];
    let mut flapping = Vec::new();
    let mut stable_runs = Vec::new();
    let mut nodes = Vec::new();
    let mut period: Option<Period> = None;
    for walk in walks {
        totals.rows += walk.rows;
        totals.restarts += walk.restarts;
        totals.failures += walk.failures;
        totals.planned += walk.planned;
        totals.backups += walk.backups;
        totals.failed_backups += walk.failed_backups;
        totals.restores += walk.restores;
        totals.failed_restores += walk.failed_restores;
        for &(reason, n) in &walk.reason_counts {
            *reason_totals.entry(reason).or_default() += n;
        }
        for &(day, n) in &walk.days {
            days.entry(day).or_default().insert(name(walk.node), n);
        }
        for (total, n) in hours.iter_mut().zip(walk.hours) {
            *total += n;
        }
        if let (Some(first), Some(last)) = (walk.first_restart, walk.last_restart) {
            period = Some(match period {
                None => Period {
                    from: Timestamp(first),
                    to: Timestamp(last),
                },
                Some(p) => Period {
                    from: p.from.min(Timestamp(first)),
                    to: p.to.max(Timestamp(last)),
                },
            });
        }

        let windows = flapping_windows(
            &walk.failure_times,
            options.flap_count,
            options.flap_window_ms,
        );
        let node_flapping = windows.len() as u64;
        flapping.extend(windows.into_iter().map(|(from, to, failures)| FlapWindow {
            node: name(walk.node),
            from: Timestamp(from),
            to: Timestamp(to),
            failures,
        }));

        let start = walk.first_row.unwrap_or(i64::MIN).max(selection.since);
        let end = end_of_log.unwrap_or(start).max(start);
        // Only the node's longest few can make the overall list: keep those (a min-heap).
        let mut longest = None;
        let mut top: BinaryHeap<Reverse<(i64, i64, i64, bool)>> = BinaryHeap::new();
        for (from, to, ongoing) in stable_runs_of(&walk.failure_times, start, end) {
            let length = to - from;
            longest = longest.max(Some(length));
            if options.top_stable == 0 {
                continue;
            }
            if top.len() < options.top_stable {
                top.push(Reverse((length, -from, to, ongoing)));
            } else if top.peek().is_some_and(|Reverse(least)| length > least.0) {
                top.pop();
                top.push(Reverse((length, -from, to, ongoing)));
            }
        }
        let top = top
            .into_iter()
            .map(|Reverse((_, from, to, ongoing))| (-from, to, ongoing));
        stable_runs.extend(top.into_iter().map(|(from, to, ongoing)| StableRun {
            node: name(walk.node),
            from: Timestamp(from),
            to: Timestamp(to),
            secs: secs(to - from),
            ongoing,
        }));

        let mut reasons: Vec<ReasonCount> = walk
            .reason_counts
            .iter()
            .map(|&(reason, restarts)| ReasonCount {
                reason: data.reasons[reason as usize].clone(),
                restarts,
            })
            .collect();
        reasons.sort_by(|a, b| b.restarts.cmp(&a.restarts).then(a.reason.cmp(&b.reason)));
        let n_failures = walk.failure_times.len();
        nodes.push(NodeReport {
            node: name(walk.node),
            rows: walk.rows,
            stops: walk.stops,
            starts: walk.starts,
            backups: walk.backups,
            failed_backups: walk.failed_backups,
            restores: walk.restores,
            failed_restores: walk.failed_restores,
            restarts: walk.restarts,
            failures: walk.failures,
            planned: walk.planned,
            first_restart: walk.first_restart.map(Timestamp),
            last_restart: walk.last_restart.map(Timestamp),
            mtbf_secs: (n_failures >= 2).then(|| {
                let span = walk.failure_times[n_failures - 1] - walk.failure_times[0];
                secs(span) / (n_failures - 1) as f64
            }),
            mean_uptime_at_failure_secs: (walk.uptime_samples > 0)
                .then(|| walk.uptime_sum as f64 / walk.uptime_samples as f64),
            uptime_samples: walk.uptime_samples,
            longest_stable_run_secs: longest.map(secs),
            flapping_windows: node_flapping,
            reasons,
        });
    }

    let mut reasons: Vec<ReasonReport> = reason_totals
        .into_iter()
        .map(|(reason, restarts)| ReasonReport {
            reason: data.reasons[reason as usize].clone(),
            planned: selection.planned[reason as usize],
            restarts,
            share: restarts as f64 / totals.restarts.max(1) as f64,
        })
        .collect();
    reasons.sort_by(|a, b| b.restarts.cmp(&a.restarts).then(a.reason.cmp(&b.reason)));
    flapping.sort_by(|a, b| a.from.cmp(&b.from).then(a.node.cmp(&b.node)));
    stable_runs.sort_by(|a, b| {
        b.secs
            .total_cmp(&a.secs)
            .then(a.node.cmp(&b.node))
            .then(a.from.cmp(&b.from))
    });
    stable_runs.truncate(options.top_stable);
    Report {
        definitions: Definitions {
            planned: options.planned.clone(),
            flap_count: options.flap_count,
            flap_window_secs: secs(options.flap_window_ms),
        },
        period,
        totals,
        nodes,
        reasons,
        days: days
            .into_iter()
            .map(|(day, nodes)| DayReport {
                day: day_name(day),
                restarts: nodes.values().sum(),
                nodes,
            })
            .collect(),
        hours: (0..24)
            .map(|hour| HourReport {
                hour,
                restarts: hours[hour as usize],
            })
            .collect(),
        flapping,
        stable_runs,
    }
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// `YYYY-MM-DD` of a day counted from the epoch.
pub fn day_name(day: i64) -> String {
    chrono::DateTime::from_timestamp_millis(day * MS_PER_DAY).map_or_else(
        || format!("day {day}"),
        |date| date.format("%Y-%m-%d").to_string(),
    )
}

/// Flapping windows over failure times (ascending): `(first, last, failures)` of each maximal
/// stretch in which every failure belongs to some `count` consecutive failures within `window_ms`.
pub fn flapping_windows(times: &[i64], count: usize, window_ms: i64) -> Vec<(i64, i64, u64)> {
    let count = count.max(1);
    // Index ranges of failures; a window sharing a failure with the current one extends it.
    let mut windows: Vec<(usize, usize)> = Vec::new();
    for first in 0..times.len().saturating_sub(count - 1) {
        let last = first + count - 1;
        if times[last] - times[first] > window_ms {
            continue;
        }
        match windows.last_mut() {
            Some(current) if first <= current.1 => current.1 = last,
            _ => windows.push((first, last)),
        }
    }
    windows
        .into_iter()
        .map(|(first, last)| (times[first], times[last], (last - first + 1) as u64))
        .collect()
}

/// The stable runs between `start`, the failures (ascending) and `end`: `(from, to, ongoing)`,
/// empty ones left out.
pub fn stable_runs_of(
    failures: &[i64],
    start: i64,
    end: i64,
) -> impl Iterator<Item = (i64, i64, bool)> + '_ {
    let last = failures.last().map_or(start, |&last| last.max(start));
    let boundaries = std::iter::once(start).chain(failures.iter().copied());
    boundaries
        .clone()
        .scan(i64::MIN, |from, time| {
            *from = (*from).max(time);
            Some(*from)
        })
        .zip(failures.iter().copied())
        .filter(|&(from, to)| to > from)
        .map(|(from, to)| (from, to, false))
        .chain((end > last).then_some((last, end, true)))
}

#[cfg(test)]
mod tests;

//! The backup rules, pure: whether a node may be backed up now (`may_back_up`, each refusal with
//! its reason), which node a scheduled backup takes (`scheduled_backup`), and whether a node is
//! restored by itself (`auto_restore`, over the per-node `ExitWatch` the shell keeps up to date
//! with `ExitWatch::observe`). Plain data in, decisions out: no I/O, no clock reads.
//!
//! The key's notion is leadership's (`LeaderMemory::may_hold_now`, the guard windows of
//! `leader::guard`); being in sync is the facts' (`PoolFacts`); a hopeless exit is the chain
//! adapter's (`ChainNode::hopeless_exit`, carried in `NodeObservation::hopeless_exit`).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::leader::{self, GuardWhy, LeaderConfig};
use super::{HoldReason, NodeFacts, NodeObservation, PolicyState, PoolFacts, ProgramSeen};
use crate::supervisor::ProcessState;
use crate::time::saturating_add;

/// The rules' settings (`[backup]` as the configuration checks it; the archive's target and
/// retention are the archive engine's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupRules {
    /// Scheduled backups this often after the last successful one; `None`: no schedule.
    pub every: Option<Duration>,
    /// The node scheduled backups take; `None`: any passive node in sync.
    pub node: Option<String>,
    /// Other nodes that must be in sync while one is backed up.
    pub min_in_sync: usize,
    /// Restore a node from the newest archive of its chain by itself (`auto_restore`).
    pub auto_restore: bool,
    /// An exit this soon after a start is an early exit (two in a row: restore).
    pub early_exit: Duration,
}

impl Default for BackupRules {
    /// The documented defaults: no schedule, one other node in sync, no automatic restore, 10 s.
    fn default() -> BackupRules {
        BackupRules {
            every: None,
            node: None,
            min_in_sync: 1,
            auto_restore: false,
            early_exit: Duration::from_secs(10),
        }
    }
}

/// What the rules read of the pool, as the shell knows it after the last tick.
#[derive(Clone, Copy, Debug)]
pub struct PoolView<'a> {
    /// The last tick's facts (in sync, heights), nodes in configuration order.
    pub facts: &'a PoolFacts,
    /// The policy's memory (holds; leadership's `may_hold_now` and guard windows).
    pub state: &'a PolicyState,
    /// Leadership's settings (whether it is on; the guard window's width and lookahead).
    pub leader: &'a LeaderConfig,
    /// Nodes with a start, stop or restart job in flight.
    pub busy: &'a BTreeSet<String>,
    /// A backup or restore in flight, and its node.
    pub archiving: Option<&'a str>,
    /// Nodes with a `data_dir` (only those can be archived).
    pub with_data_dir: &'a BTreeSet<String>,
}

/// Why a node is not backed up now: the API's answer and the log's line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such node in the configuration.
    #[error("no node {0:?} in the configuration")]
    UnknownNode(String),
    /// The node has no `data_dir`.
    #[error("{0} has no data_dir in the configuration: there is nothing to archive")]
    NoDataDir(String),
    /// The node holds or may hold the key: stopping it would stop the pool's production.
    #[error("{0} holds or may hold the leader key (it may be producing): back up a passive node")]
    MayHoldKey(String),
    /// Inside (or near) a guard window of leadership.
    #[error("not now: {0}; a stop inside a guard window could cost a slot")]
    GuardWindow(GuardWhy),
    /// The node is held.
    #[error("{node} is held ({reason}); release it first")]
    Held {
        /// The node.
        node: String,
        /// Why it is held.
        reason: HoldReason,
    },
    /// A start, stop or restart of the node is in flight.
    #[error("{0}: an action is in flight (a start, stop or restart); try again when it ends")]
    Busy(String),
    /// A backup or restore already runs (one at a time).
    #[error("a backup or restore of {0} is in flight: one at a time")]
    Archiving(String),
    /// Too few other nodes in sync to spare this one.
    #[error(
        "{node}: {in_sync} other node(s) in sync, backup.min_in_sync wants {needed}: the pool cannot spare it now"
    )]
    TooFewInSync {
        /// The node.
        node: String,
        /// Other nodes in sync now.
        in_sync: usize,
        /// `min_in_sync`.
        needed: usize,
    },
}

/// Whether `node` may be stopped and archived at `now`, or why not (the first reason that
/// applies, in the order of the rules: unknown, no data, the key, a guard window, held, busy,
/// another archive job, too few others in sync).
pub fn may_back_up(
    rules: &BackupRules,
    pool: &PoolView<'_>,
    node: &str,
    now: SystemTime,
) -> Result<(), Refusal> {
    if pool.facts.node(node).is_none() {
        return Err(Refusal::UnknownNode(node.to_string()));
    }
    if !pool.with_data_dir.contains(node) {
        return Err(Refusal::NoDataDir(node.to_string()));
    }
    let memory = &pool.state.leadership;
    if memory.may_hold_now.contains(node) || memory.leader.as_deref() == Some(node) {
        return Err(Refusal::MayHoldKey(node.to_string()));
    }
    if pool.leader.enabled
        && let Some(why) = leader::guard(
            memory,
            pool.leader,
            now,
            saturating_add(now, pool.leader.lookahead),
        )
    {
        return Err(Refusal::GuardWindow(why));
    }
    if let Some(hold) = pool.state.nodes.get(node).and_then(|m| m.hold.as_ref()) {
        return Err(Refusal::Held {
            node: node.to_string(),
            reason: hold.reason.clone(),
        });
    }
    if pool.busy.contains(node) {
        return Err(Refusal::Busy(node.to_string()));
    }
    if let Some(other) = pool.archiving {
        return Err(Refusal::Archiving(other.to_string()));
    }
    let in_sync = pool
        .facts
        .nodes
        .iter()
        .filter(|facts| facts.name != node && facts.in_sync)
        .count();
    if in_sync < rules.min_in_sync {
        return Err(Refusal::TooFewInSync {
            node: node.to_string(),
            in_sync,
            needed: rules.min_in_sync,
        });
    }
    Ok(())
}

/// Whether `node`'s data directory may be replaced from an archive at `now` (an operator's
/// restore), or why not: the rules of a backup, except that a held node may be restored (it is
/// often held because it is broken) and that the pool need not spare it (it is being mended).
pub fn may_restore(pool: &PoolView<'_>, node: &str, now: SystemTime) -> Result<(), Refusal> {
    let rules = BackupRules {
        min_in_sync: 0,
        ..BackupRules::default()
    };
    match may_back_up(&rules, pool, node, now) {
        Err(Refusal::Held { .. }) => {}
        other => return other,
    }
    // A hold is checked before `busy` and `archiving`: check them here.
    if pool.busy.contains(node) {
        return Err(Refusal::Busy(node.to_string()));
    }
    if let Some(other) = pool.archiving {
        return Err(Refusal::Archiving(other.to_string()));
    }
    Ok(())
}

/// The node a scheduled backup takes now, if one is due: `every` has passed since the last
/// successful backup of any node (`last_success`; never: due at once), and the node may be backed
/// up. `backup.node` when set; else, among the nodes in sync that may be backed up, the highest
/// (a tie: the first in configuration order).
pub fn scheduled_backup(
    rules: &BackupRules,
    pool: &PoolView<'_>,
    last_success: Option<SystemTime>,
    now: SystemTime,
) -> Option<String> {
    let every = rules.every?;
    if let Some(last) = last_success
        && now.duration_since(last).unwrap_or_default() < every
    {
        return None;
    }
    if let Some(node) = &rules.node {
        return may_back_up(rules, pool, node, now)
            .is_ok()
            .then(|| node.clone());
    }
    let mut best: Option<&NodeFacts> = None;
    for facts in &pool.facts.nodes {
        if !facts.in_sync || may_back_up(rules, pool, &facts.name, now).is_err() {
            continue;
        }
        // Strictly higher only: the first of equals (configuration order) stays.
        if best.is_none_or(|best| facts.height > best.height) {
            best = Some(facts);
        }
    }
    best.map(|facts| facts.name.clone())
}

/// Why a node is restored by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreReason {
    /// It exited within `early_exit` of a start this many times in a row.
    EarlyExits {
        /// Early exits in a row.
        count: u32,
        /// `backup.early_exit`.
        within: Duration,
    },
    /// Its last exit is the chain's corrupt-database signal (the adapter's words).
    CorruptDatabase(String),
}

impl std::fmt::Display for RestoreReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreReason::EarlyExits { count, within } => write!(
                f,
                "exited within {} s of a start {count} times in a row",
                within.as_secs_f64()
            ),
            RestoreReason::CorruptDatabase(what) => write!(f, "corrupt database: {what}"),
        }
    }
}

/// Early exits in a row that call for a restore.
pub const EARLY_EXITS: u32 = 2;

/// What the shell keeps per node for `auto_restore`: its exits since it last ran (or was in
/// sync), fed each tick by `observe`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitWatch {
    /// The start of the process whose exit was last counted (each exit counts once).
    pub counted: Option<SystemTime>,
    /// Exits within `early_exit` of their start, in a row.
    pub early_exits: u32,
    /// The adapter's words for the last exit, when it is the corrupt-database signal.
    pub corrupt: Option<String>,
    /// Restored by itself since it was last in sync: not again ("once; then normal rules apply").
    pub restored: bool,
}

impl ExitWatch {
    /// Takes in one tick's view of the node (`now`: when it was observed; an exit is timed from
    /// its process's start to the tick that first sees it down, within a tick of the truth or
    /// less with supervisord's events): an exit counts once, early or not (a late one ends the
    /// row); in sync clears the row and the once-only flag.
    pub fn observe(
        &mut self,
        early_exit: Duration,
        node: &NodeObservation,
        facts: &NodeFacts,
        now: SystemTime,
    ) {
        if facts.in_sync {
            *self = ExitWatch {
                counted: self.counted,
                ..ExitWatch::default()
            };
            return;
        }
        let ProgramSeen::Known(program) = &node.program else {
            return;
        };
        let exited = matches!(
            program.state,
            ProcessState::Exited | ProcessState::Backoff | ProcessState::Fatal
        );
        let Some(started) = program.started_at else {
            return;
        };
        if !exited || node.busy || self.counted == Some(started) {
            return;
        }
        self.counted = Some(started);
        let ran = now.duration_since(started).unwrap_or_default();
        if ran <= early_exit {
            self.early_exits = self.early_exits.saturating_add(1);
        } else {
            self.early_exits = 0;
        }
        self.corrupt = node.hopeless_exit.clone();
    }

    /// Records a restore of the node by itself: not again until it has been in sync.
    pub fn note_restored(&mut self) {
        self.restored = true;
        self.early_exits = 0;
        self.corrupt = None;
    }
}

/// Whether the node watched by `watch` is restored by itself, and why: `auto_restore` is on, an
/// archive of the same chain exists (`newest_archive`), it was not restored by itself since it
/// was last in sync, and its last exit is the corrupt-database signal or it exited early
/// [`EARLY_EXITS`] times in a row.
pub fn auto_restore(
    rules: &BackupRules,
    watch: &ExitWatch,
    newest_archive: Option<&str>,
) -> Option<RestoreReason> {
    if !rules.auto_restore || watch.restored || newest_archive.is_none() {
        return None;
    }
    if let Some(what) = &watch.corrupt {
        return Some(RestoreReason::CorruptDatabase(what.clone()));
    }
    (watch.early_exits >= EARLY_EXITS).then_some(RestoreReason::EarlyExits {
        count: watch.early_exits,
        within: rules.early_exit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::NodeState;
    use crate::policy::tests::{at, program, status};
    use crate::policy::{NotInSync, ProgramView};
    use crate::slots::{SlotClock, SlotDate};

    const NODES: [&str; 3] = ["a", "b", "c"];

    fn in_sync(name: &str, height: u64) -> NodeFacts {
        NodeFacts {
            name: name.to_string(),
            height: Some(height),
            lag: Some(0),
            in_sync: true,
            why_not: None,
            stale: None,
            up: true,
            known: true,
        }
    }

    fn behind(name: &str) -> NodeFacts {
        NodeFacts {
            in_sync: false,
            why_not: Some(NotInSync::Behind { lag: 50 }),
            ..in_sync(name, 1)
        }
    }

    /// A pool: the three nodes in sync at these heights, every one with a data_dir, leadership
    /// off, nothing in flight.
    struct Pool {
        facts: PoolFacts,
        state: PolicyState,
        leader: LeaderConfig,
        busy: BTreeSet<String>,
        archiving: Option<String>,
        with_data_dir: BTreeSet<String>,
    }

    impl Pool {
        fn new(heights: [u64; 3]) -> Pool {
            Pool {
                facts: PoolFacts {
                    nodes: NODES
                        .iter()
                        .zip(heights)
                        .map(|(name, height)| in_sync(name, height))
                        .collect(),
                    ..PoolFacts::default()
                },
                state: PolicyState::default(),
                leader: LeaderConfig::default(),
                busy: BTreeSet::new(),
                archiving: None,
                with_data_dir: NODES.iter().map(|n| n.to_string()).collect(),
            }
        }

        fn view(&self) -> PoolView<'_> {
            PoolView {
                facts: &self.facts,
                state: &self.state,
                leader: &self.leader,
                busy: &self.busy,
                archiving: self.archiving.as_deref(),
                with_data_dir: &self.with_data_dir,
            }
        }

        fn refusal(&self, node: &str) -> Option<Refusal> {
            may_back_up(&BackupRules::default(), &self.view(), node, at(1000)).err()
        }

        /// Leadership on, a known clock of 1 s slots starting at 0, epochs of 10 000 slots, and
        /// a pool slot at `slot` (epoch 0).
        fn leading_with_slot(&mut self, slot: u64) {
            self.leader = LeaderConfig {
                enabled: true,
                slot_window: 15,
                lookahead: Duration::from_secs(2),
                ..LeaderConfig::default()
            };
            self.state.leadership.clock = Some(SlotClock {
                block0: at(0),
                slot_duration: Duration::from_secs(1),
                slots_per_epoch: 10_000,
            });
            self.state.leadership.schedule = [SlotDate { epoch: 0, slot }].into();
        }
    }

    #[test]
    fn a_restore_may_mend_a_held_node_the_pool_cannot_spare_but_never_the_key_holder() {
        let mut pool = Pool::new([10, 10, 10]);
        pool.state.hold("b", at(10));
        pool.facts.nodes.retain(|f| f.name == "b");
        pool.facts.nodes[0] = behind("b");
        // A backup is refused (held, and nobody else in sync); a restore is not.
        assert!(matches!(pool.refusal("b"), Some(Refusal::Held { .. })));
        assert_eq!(may_restore(&pool.view(), "b", at(1000)), Ok(()));
        pool.busy.insert("b".into());
        assert_eq!(
            may_restore(&pool.view(), "b", at(1000)),
            Err(Refusal::Busy("b".into()))
        );
        pool.busy.clear();
        pool.archiving = Some("a".into());
        assert_eq!(
            may_restore(&pool.view(), "b", at(1000)),
            Err(Refusal::Archiving("a".into()))
        );
        pool.archiving = None;
        pool.state.leadership.may_hold_now.insert("b".into());
        assert_eq!(
            may_restore(&pool.view(), "b", at(1000)),
            Err(Refusal::MayHoldKey("b".into()))
        );
        pool.state.leadership.may_hold_now.clear();
        pool.with_data_dir.remove("b");
        assert_eq!(
            may_restore(&pool.view(), "b", at(1000)),
            Err(Refusal::NoDataDir("b".into()))
        );
    }

    #[test]
    fn a_restore_ends_a_hold_for_crashes_or_a_hopeless_exit_but_not_an_operators() {
        use crate::policy::{Hold, HoldReason};
        let mut state = PolicyState::default();
        let held = |state: &mut PolicyState, node: &str, reason: HoldReason| {
            state.nodes.entry(node.to_string()).or_default().hold = Some(Hold {
                reason,
                since: at(1),
            });
        };
        held(
            &mut state,
            "a",
            HoldReason::Hopeless {
                what: "dirty database".into(),
            },
        );
        held(
            &mut state,
            "b",
            HoldReason::Storm {
                restarts: 3,
                window_secs: 60,
            },
        );
        held(&mut state, "c", HoldReason::Operator);
        assert!(state.release_after_restore("a"));
        assert!(state.release_after_restore("b"));
        assert!(!state.release_after_restore("c"));
        assert!(!state.release_after_restore("d"));
        assert_eq!(state.holds().keys().collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        type Setup = fn(&mut Pool);
        let cases: &[(&str, Setup, &str)] = &[
            ("nothing in the way", |_| {}, ""),
            (
                "unknown node",
                |p| p.facts.nodes.retain(|f| f.name != "b"),
                "no node \"b\" in the configuration",
            ),
            (
                "no data_dir",
                |p| {
                    p.with_data_dir.remove("b");
                },
                "b has no data_dir",
            ),
            (
                "may hold the key",
                |p| {
                    p.state.leadership.may_hold_now.insert("b".into());
                },
                "b holds or may hold the leader key",
            ),
            (
                "the remembered leader",
                |p| p.state.leadership.leader = Some("b".into()),
                "b holds or may hold the leader key",
            ),
            (
                "a pool slot near",
                |p| p.leading_with_slot(1005),
                "not now: pool slot 0.1005 is near",
            ),
            (
                "leadership on, chain time unknown",
                |p| {
                    p.leading_with_slot(1005);
                    p.state.leadership.clock = None;
                },
                "not now: chain time unknown",
            ),
            (
                "held",
                |p| p.state.hold("b", at(10)),
                "b is held (held by an operator)",
            ),
            (
                "busy",
                |p| {
                    p.busy.insert("b".into());
                },
                "b: an action is in flight",
            ),
            (
                "another archive job",
                |p| p.archiving = Some("c".into()),
                "a backup or restore of c is in flight",
            ),
            (
                "no other node in sync",
                |p| p.facts.nodes = vec![behind("a"), in_sync("b", 9), behind("c")],
                "b: 0 other node(s) in sync, backup.min_in_sync wants 1",
            ),
        ];
        for (what, setup, expected) in cases {
            let mut pool = Pool::new([10, 10, 10]);
            setup(&mut pool);
            let said = pool.refusal("b").map(|r| r.to_string()).unwrap_or_default();
            if expected.is_empty() {
                assert_eq!(said, "", "{what}");
            } else {
                assert!(said.starts_with(expected), "{what}: {said:?}");
            }
        }
    }

    #[test]
    fn a_guard_window_far_away_does_not_refuse() {
        let mut pool = Pool::new([10, 10, 10]);
        pool.leading_with_slot(5000);
        assert_eq!(pool.refusal("b"), None);
    }

    #[test]
    fn min_in_sync_counts_the_other_nodes_only() {
        let mut pool = Pool::new([10, 10, 10]);
        pool.facts.nodes[2] = behind("c");
        let rules = |min_in_sync| BackupRules {
            min_in_sync,
            ..BackupRules::default()
        };
        // b is in sync itself, and a is the only other one in sync.
        assert_eq!(may_back_up(&rules(1), &pool.view(), "b", at(1000)), Ok(()));
        assert_eq!(
            may_back_up(&rules(2), &pool.view(), "b", at(1000)),
            Err(Refusal::TooFewInSync {
                node: "b".into(),
                in_sync: 1,
                needed: 2
            })
        );
        assert_eq!(may_back_up(&rules(0), &pool.view(), "c", at(1000)), Ok(()));
    }

    fn every_hour() -> BackupRules {
        BackupRules {
            every: Some(Duration::from_secs(3600)),
            ..BackupRules::default()
        }
    }

    #[test]
    fn a_scheduled_backup_is_due_every_period_after_the_last_success() {
        let pool = Pool::new([10, 12, 11]);
        let view = pool.view();
        let cases = [
            (BackupRules::default(), None, at(5000), None),
            (every_hour(), None, at(5000), Some("b")),
            (every_hour(), Some(at(2000)), at(5000), None),
            (every_hour(), Some(at(1400)), at(5000), Some("b")),
        ];
        for (rules, last, now, expected) in cases {
            assert_eq!(
                scheduled_backup(&rules, &view, last, now).as_deref(),
                expected,
                "every {:?}, last {last:?}",
                rules.every
            );
        }
    }

    #[test]
    fn a_scheduled_backup_picks_the_highest_passive_node_in_sync_first_in_order_on_a_tie() {
        // Heights, nodes that may hold the key, nodes out of sync, the node picked.
        type Case<'a> = ([u64; 3], &'a [&'a str], &'a [&'a str], Option<&'a str>);
        let cases: &[Case] = &[
            ([10, 12, 11], &[], &[], Some("b")),
            ([12, 10, 12], &[], &[], Some("a")),
            // The leader is highest: the next one goes.
            ([10, 12, 11], &["b"], &[], Some("c")),
            // Out of sync nodes are not candidates, whatever their height.
            ([10, 12, 11], &[], &["b"], Some("c")),
            ([10, 12, 11], &["a", "c"], &["b"], None),
        ];
        for (heights, holders, out, expected) in cases {
            let mut pool = Pool::new(*heights);
            pool.state.leadership.may_hold_now = holders.iter().map(|n| n.to_string()).collect();
            for name in *out {
                let index = NODES.iter().position(|n| n == name).unwrap();
                pool.facts.nodes[index] = NodeFacts {
                    height: Some(99),
                    ..behind(name)
                };
            }
            assert_eq!(
                scheduled_backup(&every_hour(), &pool.view(), None, at(5000)).as_deref(),
                *expected,
                "{heights:?} holders {holders:?} out {out:?}"
            );
        }
    }

    #[test]
    fn a_configured_backup_node_is_the_only_one_and_only_when_it_may() {
        let mut pool = Pool::new([10, 12, 11]);
        let rules = BackupRules {
            node: Some("a".into()),
            ..every_hour()
        };
        assert_eq!(
            scheduled_backup(&rules, &pool.view(), None, at(5000)).as_deref(),
            Some("a")
        );
        pool.state.leadership.may_hold_now.insert("a".into());
        assert_eq!(scheduled_backup(&rules, &pool.view(), None, at(5000)), None);
    }

    fn exited(started: u64) -> NodeObservation {
        let mut node = program("n", ProcessState::Exited);
        node.program = ProgramSeen::Known(ProgramView {
            state: ProcessState::Exited,
            started_at: Some(at(started)),
            exit_status: 1,
        });
        node
    }

    fn running() -> NodeObservation {
        let mut node = program("n", ProcessState::Running);
        node.probe = Some(Ok(status(NodeState::Running, Some(10))));
        node
    }

    /// The watch after these observations, each (node, in sync, seen at).
    fn watched(steps: &[(NodeObservation, bool, u64)]) -> ExitWatch {
        let mut watch = ExitWatch::default();
        for (node, synced, now) in steps {
            let facts = if *synced {
                in_sync("n", 10)
            } else {
                behind("n")
            };
            watch.observe(Duration::from_secs(10), node, &facts, at(*now));
        }
        watch
    }

    #[test]
    fn the_watch_counts_each_early_exit_once_and_a_late_exit_or_sync_ends_the_row() {
        // Each tick: what was seen, in sync, when; then the early exits in a row.
        type Case<'a> = (&'a str, Vec<(NodeObservation, bool, u64)>, u32);
        let cases: &[Case] = &[
            ("one early exit", vec![(exited(100), false, 105)], 1),
            (
                "the same exit seen on two ticks",
                vec![(exited(100), false, 105), (exited(100), false, 106)],
                1,
            ),
            (
                "two early exits",
                vec![(exited(100), false, 105), (exited(110), false, 112)],
                2,
            ),
            (
                "a late exit ends the row",
                vec![(exited(100), false, 105), (exited(110), false, 200)],
                0,
            ),
            (
                "in sync in between ends the row",
                vec![
                    (exited(100), false, 105),
                    (running(), true, 108),
                    (exited(110), false, 112),
                ],
                1,
            ),
        ];
        for (what, steps, expected) in cases {
            assert_eq!(watched(steps).early_exits, *expected, "{what}");
        }
    }

    #[test]
    fn the_watch_keeps_the_adapters_words_for_a_hopeless_exit() {
        let mut node = exited(100);
        node.hopeless_exit = Some("dirty database".into());
        let watch = watched(&[(node, false, 500)]);
        assert_eq!(watch.corrupt.as_deref(), Some("dirty database"));
        assert_eq!(watch.early_exits, 0);
    }

    #[test]
    fn auto_restore_needs_the_switch_an_archive_and_a_reason_and_happens_once() {
        let on = BackupRules {
            auto_restore: true,
            ..BackupRules::default()
        };
        let twice = watched(&[(exited(100), false, 105), (exited(110), false, 112)]);
        let once = watched(&[(exited(100), false, 105)]);
        let corrupt = ExitWatch {
            corrupt: Some("dirty database".into()),
            ..ExitWatch::default()
        };
        // Restored, then two early exits again before it was ever in sync: no second restore.
        let mut restored = twice.clone();
        restored.note_restored();
        for (started, seen) in [(200, 203), (210, 214)] {
            restored.observe(
                Duration::from_secs(10),
                &exited(started),
                &behind("n"),
                at(seen),
            );
        }
        assert_eq!(restored.early_exits, 2);
        let early = Some(RestoreReason::EarlyExits {
            count: 2,
            within: Duration::from_secs(10),
        });
        let dirty = Some(RestoreReason::CorruptDatabase("dirty database".into()));
        let archive = Some("nodeos-a-10-t");
        let cases = [
            ("off", BackupRules::default(), &twice, archive, None),
            ("no archive", on.clone(), &twice, None, None),
            ("one early exit", on.clone(), &once, archive, None),
            ("two early exits", on.clone(), &twice, archive, early),
            ("corrupt database", on.clone(), &corrupt, archive, dirty),
            ("already restored", on.clone(), &restored, archive, None),
        ];
        for (what, rules, watch, archive, expected) in cases {
            assert_eq!(auto_restore(&rules, watch, archive), expected, "{what}");
        }
    }

    #[test]
    fn being_in_sync_again_allows_another_automatic_restore() {
        let mut watch = watched(&[(exited(100), false, 105), (exited(110), false, 112)]);
        watch.note_restored();
        let facts = in_sync("n", 10);
        watch.observe(Duration::from_secs(10), &running(), &facts, at(300));
        assert!(!watch.restored);
        let on = BackupRules {
            auto_restore: true,
            ..BackupRules::default()
        };
        watch.observe(Duration::from_secs(10), &exited(400), &behind("n"), at(401));
        watch.observe(Duration::from_secs(10), &exited(410), &behind("n"), at(411));
        assert!(auto_restore(&on, &watch, Some("x")).is_some());
    }
}

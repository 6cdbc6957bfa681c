//! Leadership, the pure part: which node holds the pool's leader key, hand-overs (demote, verify,
//! promote: never two holders), guard windows around the pool's slots and epoch rollovers (no
//! promotion, no demotion of the leader, no leader restart, no booting node that could come up as
//! a leader), and the once-per-epoch schedule refresh.
//!
//! Invariants (checked by the property test in `leader_prop.rs`):
//! - a node is promoted only when every other node is known not to hold the key: its `GET
//!   /leaders` answered `[]`, its program is not running, or it is booting (a booting node holds no
//!   key until it reaches Running); a hung API, an unreachable supervisord or a job in flight all
//!   count as "may hold";
//! - extra holders are demoted at once, in or out of a window (that only removes holders);
//! - inside a guard window, extended by `lookahead` (at least one tick and one action), nothing
//!   is promoted, the leader is neither demoted nor restarted by a sync rule, nodes booting with the
//!   secret are stopped (parked) and none is started while a leader exists.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::{Action, NodeFacts, NodeObservation, Observation, ProgramSeen, Reason};
use crate::chain::{Holding, NodeState, ProbeError};
use crate::slots::{SlotClock, SlotDate};
use crate::supervisor::ProcessState;
use crate::time::saturating_add;

/// Leadership settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeaderConfig {
    /// Manage the leader key at all.
    pub enabled: bool,
    /// Switch leaders only when another node is this many blocks ahead.
    pub switch_margin: u64,
    /// Guard window around a pool slot or an epoch rollover, in slots either side.
    pub slot_window: u64,
    /// A schedule-refresh restart only when the next pool slot is further away than this.
    pub refresh_min_gap: Duration,
    /// How far ahead a window counts as near: at least a tick plus the time an action takes.
    pub lookahead: Duration,
    /// After a rollover, the leader's schedule is announced once it holds this epoch's slots, or
    /// after this long (an epoch without slots).
    pub schedule_settle: Duration,
    /// The chain's epochs ask for no care: no guard window around a rollover and no schedule
    /// refresh. Jormungandr computes a node's schedule at start and at the rollover, for the keys
    /// it holds then (false); a nodeos "epoch" is a round of the producer schedule and a
    /// cardano-node forges from its credentials whatever the epoch (true).
    pub epochs_free: bool,
    /// Each epoch's slots are announced (`SlotsAssigned`, an alert). Not on nodeos: its "epoch" is
    /// a round of a couple of minutes whose turns are the same every round, nothing to announce.
    pub announce_slots: bool,
}

/// What one node's leader endpoints said this tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeaderView {
    /// What it holds of the pool's key (Jormungandr: `GET /leaders`): `None` not asked;
    /// `Some(Err)` no useful answer.
    pub holding: Option<Result<Holding, ProbeError>>,
    /// The dates in its `GET /leaders/logs` (every epoch it keeps), when read this tick.
    pub schedule: Option<Vec<SlotDate>>,
}

/// Leadership's memory; the serialised part is persisted (atomically) across daemon restarts.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LeaderMemory {
    /// The node that holds the key, as far as nodekeeper knows.
    pub leader: Option<String>,
    /// The epoch of the last tick.
    pub epoch: Option<u64>,
    /// The last pool slot that passed while a node held the key.
    pub last_slot: Option<SlotDate>,
    /// The chain's time, from a node's settings.
    pub clock: Option<SlotClock>,
    /// The pool's slots known from the nodes' leadership logs (this and the last epoch).
    pub schedule: BTreeSet<SlotDate>,
    /// The epoch whose schedule was announced.
    pub announced_epoch: Option<u64>,
    /// Node → the epoch it was restarted in to compute the schedule.
    pub refreshed: BTreeMap<String, u64>,
    /// Nodes stopped by the slot guard, started again after the window.
    pub parked: BTreeSet<String>,
    /// Whether each node may hold the key, as last observed, with its process's start time: used
    /// while a job is in flight, and for a node that fell back from Running to bootstrapping (its
    /// enclave survives; only a new process starts empty). Persisted: a restarted daemon must not
    /// take a fallen-back holder for a fresh process.
    pub may_hold: BTreeMap<String, Remembered>,
    /// Failed promotions: node → (failures in a row, not before).
    #[serde(skip)]
    pub promotion_backoff: BTreeMap<String, (u32, SystemTime)>,
    /// An operator asked for this node as the leader.
    #[serde(skip)]
    pub requested: Option<String>,
    /// The leader an operator chose, and the epoch: it is not switched away from for being
    /// behind by the margin or for lacking the epoch's schedule, only when it is out of sync.
    pub chosen: Option<(String, u64)>,
    /// The last note per subject (a waiting hand-over or a deferred restart), logged on change.
    #[serde(skip)]
    pub notes: BTreeMap<String, String>,
    /// Whether each node came up holding the key at its last boot, read from its leaders right
    /// after it reached Running (before any promotion): the truth a wrapper script hides.
    /// Persisted.
    pub boot_evidence: BTreeMap<String, BootEvidence>,
    /// What was last concluded (may boot with the key?, why) per node, reported on change.
    #[serde(skip)]
    pub boot_said: BTreeMap<String, (bool, String)>,
    /// Each node's process start as last seen.
    #[serde(skip)]
    pub last_started: BTreeMap<String, SystemTime>,
    /// Processes seen booting (node → its start), whose first Running answer is evidence.
    #[serde(skip)]
    pub boot_watch: BTreeMap<String, SystemTime>,
    /// The nodes that may hold the key (produce, forge) as the last tick concluded: with
    /// leadership on, the tick's verdict (a holder, a remembered leader, a node whose answer is
    /// unknown); with leadership off, the nodes that may boot holding it ([`boots_with_key`]).
    /// What the backup rules read (`policy::backup`).
    #[serde(skip)]
    pub may_hold_now: BTreeSet<String>,
}

/// What a node held when it first answered after a boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BootEvidence {
    /// The process start it is about.
    pub started: Option<SystemTime>,
    /// It came up holding the key.
    pub with_key: bool,
}

/// Whether the node may boot holding the key, and why: what the chain adapter concluded from its
/// configuration and supervisord's command line, corrected by what its last boot showed. Unknown
/// counts as "may": safe by default.
pub fn boots_with_key(node: &NodeObservation, evidence: Option<&BootEvidence>) -> (bool, String) {
    let seen = |e: &BootEvidence| {
        if e.with_key {
            "its last boot came up holding the key"
        } else {
            "its last boot came up without the key"
        }
    };
    match (node.boot.with_key, evidence) {
        (Some(true), _) => (true, node.boot.why.clone()),
        (Some(false), Some(e)) if e.with_key => (true, seen(e).to_string()),
        (Some(false), _) => (false, node.boot.why.clone()),
        (None, Some(e)) => (e.with_key, format!("{}; {}", node.boot.why, seen(e))),
        (None, None) => (
            true,
            format!("{}; until a boot shows otherwise it may", node.boot.why),
        ),
    }
}

/// Records what a node held when it first answered Running after a boot nodekeeper saw (the
/// program STARTING, or a new process since the last tick), once per process.
fn note_boot(memory: &mut LeaderMemory, node: &NodeObservation) {
    let ProgramSeen::Known(program) = &node.program else {
        return;
    };
    let Some(started) = program.started_at else {
        return;
    };
    let last = memory.last_started.insert(node.name.clone(), started);
    let node_running =
        matches!(&node.probe, Some(Ok(status)) if status.state == NodeState::Running);
    // A node falling back to bootstrapping in the same process keeps its keys: not a boot.
    if program.state == ProcessState::Starting || last.is_some_and(|last| last != started) {
        memory.boot_watch.insert(node.name.clone(), started);
    }
    if program.state != ProcessState::Running || !node_running || node.busy {
        return;
    }
    let Some(Ok(holding)) = &node.leadership.holding else {
        return;
    };
    if memory.boot_watch.get(&node.name) != Some(&started) {
        return;
    }
    memory.boot_watch.remove(&node.name);
    memory.boot_evidence.insert(
        node.name.clone(),
        BootEvidence {
            started: Some(started),
            with_key: holding.holds(),
        },
    );
}

impl LeaderMemory {
    /// Records how a hand-over to `to` ended (`ok`: the promotion was confirmed; `promoting`: the
    /// promotion was asked for, confirmed or not).
    pub fn record_handover(
        &mut self,
        to: &str,
        (ok, promoting): (bool, bool),
        demoted: &[String],
        now: SystemTime,
    ) {
        for node in demoted {
            if self.leader.as_deref() == Some(node) {
                self.leader = None;
            }
        }
        for node in demoted {
            if let Some(entry) = self.may_hold.get_mut(node) {
                entry.may = false;
            }
        }
        if ok {
            self.chosen = match (self.requested.as_deref(), self.epoch) {
                (Some(requested), Some(epoch)) if requested == to => Some((to.to_string(), epoch)),
                _ => None,
            };
            self.leader = Some(to.to_string());
            self.promotion_backoff.remove(to);
            let entry = self.may_hold.entry(to.to_string()).or_default();
            entry.may = true;
            entry.read = true;
        } else {
            if promoting {
                // Asked, not confirmed: it may hold the key now, until its leaders are read.
                self.may_hold.insert(
                    to.to_string(),
                    Remembered {
                        started: self.may_hold.get(to).and_then(|r| r.started),
                        may: true,
                        read: false,
                    },
                );
            }
            let entry = self
                .promotion_backoff
                .entry(to.to_string())
                .or_insert((0, now));
            entry.0 = entry.0.saturating_add(1);
            // 2 s, 4 s, 8 s, ... at most a minute: another candidate is tried meanwhile.
            const PROMOTION_RETRY: crate::backoff::ExponentialBackoff =
                crate::backoff::ExponentialBackoff::constant(
                    Duration::from_secs(2),
                    Duration::from_secs(60),
                );
            entry.1 = saturating_add(now, PROMOTION_RETRY.delay(entry.0.saturating_sub(1)));
        }
        if self.requested.as_deref() == Some(to) {
            // The operator's request is answered, either way.
            self.requested = None;
        }
    }

    /// Records that a demotion of these nodes was confirmed.
    pub fn record_demotion(&mut self, demoted: &[String]) {
        for node in demoted {
            if self.leader.as_deref() == Some(node) {
                self.leader = None;
            }
        }
    }

    /// The pool's next known slot at or after `now`.
    pub fn next_slot(&self, now: SystemTime) -> Option<(SlotDate, SystemTime)> {
        let clock = self.clock?;
        self.schedule
            .iter()
            .map(|date| (*date, clock.date_time(*date)))
            .find(|(_, t)| *t >= now)
    }
}

/// The last known verdict on a node's keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Remembered {
    /// The process start it is about.
    pub started: Option<SystemTime>,
    /// It may hold the key.
    pub may: bool,
    /// Conclusive for the whole process: read from its own leaders while Running (a booting
    /// node's "nothing yet" does not say what it will hold once Running: `--secret` loads the key
    /// then), or a process that replaced one nodekeeper knew and boots without the key (keys
    /// enter only at a start or by a promotion, and nodekeeper promotes only a process it read).
    pub read: bool,
}

/// Why the guard is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuardWhy {
    /// The pool leads this slot.
    Slot(SlotDate),
    /// The epoch rolls over into this one.
    Rollover(u64),
    /// Chain time is not known yet (no node's settings read).
    NoClock,
}

impl std::fmt::Display for GuardWhy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardWhy::Slot(date) => write!(f, "pool slot {date} is near"),
            GuardWhy::Rollover(epoch) => write!(f, "the rollover to epoch {epoch} is near"),
            GuardWhy::NoClock => f.write_str("chain time unknown (no node's settings read yet)"),
        }
    }
}

/// The first guard window that intersects `[from, to]`.
pub fn guard(
    memory: &LeaderMemory,
    config: &LeaderConfig,
    from: SystemTime,
    to: SystemTime,
) -> Option<GuardWhy> {
    let Some(clock) = memory.clock else {
        return Some(GuardWhy::NoClock);
    };
    let half = clock
        .slot_duration
        .saturating_mul(u32::try_from(config.slot_window).unwrap_or(u32::MAX));
    let hits = |t: SystemTime| {
        saturating_add(t, half) >= from && t.checked_sub(half).is_none_or(|s| s <= to)
    };
    let epoch = clock.epoch_at(from);
    let rollovers = if config.epochs_free {
        Vec::new()
    } else {
        vec![epoch, epoch + 1, epoch + 2]
    };
    for e in rollovers {
        if hits(clock.epoch_start(e)) {
            return Some(GuardWhy::Rollover(e));
        }
    }
    memory
        .schedule
        .iter()
        .find(|date| hits(clock.date_time(**date)))
        .map(|date| GuardWhy::Slot(*date))
}

/// Whether the node may hold the key right now, whether that is known (`false` for a guess),
/// and whether it holds for the rest of the process (see [`Remembered::read`]).
/// `remembered` is the last known verdict and the process start it was about: keys only enter an
/// enclave at a process start (`--secret`) or by a promotion, so the same process keeps its last
/// known verdict while its leader API does not answer, and a node that fell back from Running to
/// bootstrapping keeps its keys.
fn may_hold(
    node: &NodeObservation,
    remembered: Option<Remembered>,
    boots_with_key: bool,
) -> (bool, bool, bool) {
    let unknown = |started: Option<SystemTime>| {
        let same = remembered.filter(|r| r.read && started.is_some() && r.started == started);
        (same.is_none_or(|r| r.may), false, false)
    };
    if node.busy {
        return (remembered.is_none_or(|r| r.may), false, false);
    }
    let program = match &node.program {
        ProgramSeen::Missing => return (false, true, false),
        ProgramSeen::Unreachable => return (true, false, false),
        ProgramSeen::Known(program) => program,
    };
    match program.state {
        ProcessState::Stopped
        | ProcessState::Exited
        | ProcessState::Fatal
        | ProcessState::Backoff => return (false, true, false),
        ProcessState::Starting
        | ProcessState::Running
        | ProcessState::Stopping
        | ProcessState::Unknown => {}
    }
    if let Some(Ok(holding)) = &node.leadership.holding {
        return (holding.holds(), true, true);
    }
    // Keys enter a process when it boots with them or by a promotion through its API, and
    // nodekeeper promotes only a process it has read. A process that replaced one nodekeeper knew
    // (it watched it start), that boots without the key, holds nothing, whether its API answers
    // or not: a restarted leader whose API hangs does not block the next promotion, in this
    // tick or any later one of the same process (the verdict is conclusive). (A process
    // nodekeeper never knew the predecessor of may have been promoted by someone else.)
    let replaced = program.started_at.is_some()
        && remembered.is_some_and(|r| r.started.is_some() && r.started != program.started_at);
    if replaced && !boots_with_key {
        return (false, true, true);
    }
    // Booting: a new process holds nothing yet; one that fell back from Running keeps its keys.
    let same_process_held = remembered.is_some_and(|r| r.may && r.started == program.started_at);
    match &node.probe {
        Some(Ok(status)) if status.state == NodeState::Running => unknown(program.started_at),
        Some(Ok(_)) | Some(Err(ProbeError::Refused)) => (same_process_held, true, false),
        None if program.state == ProcessState::Starting => (same_process_held, true, false),
        None | Some(Err(_)) => unknown(program.started_at),
    }
}

fn started_at(node: &NodeObservation) -> Option<SystemTime> {
    match &node.program {
        ProgramSeen::Known(program) => program.started_at,
        _ => None,
    }
}

/// Booting: the program runs but the node is not Running yet (it may come up as a leader).
fn booting(node: &NodeObservation) -> bool {
    let ProgramSeen::Known(program) = &node.program else {
        return false;
    };
    match program.state {
        ProcessState::Starting => true,
        ProcessState::Running => match &node.probe {
            Some(Ok(status)) => status.state != NodeState::Running,
            Some(Err(ProbeError::Refused)) | None => true,
            Some(Err(_)) => false,
        },
        _ => false,
    }
}

fn keys(node: &NodeObservation) -> Option<&[u32]> {
    match &node.leadership.holding {
        Some(Ok(holding)) => Some(&holding.0),
        _ => None,
    }
}

/// The leadership context of one tick, computed before the per-node rules.
pub struct Context {
    pub(super) enabled: bool,
    now: SystemTime,
    /// The guard, when a window is within `lookahead`.
    pub(super) near: Option<GuardWhy>,
    /// The node treated as the leader (a holder, or the remembered leader whose keys are unknown).
    pub(super) leader: Option<usize>,
    /// Whether each node may hold the key.
    may_hold: Vec<bool>,
    /// Whether each node is known to hold nothing for the rest of its process (read without the
    /// key, or a replacement that booted without it; see [`Remembered::read`]): its silence in a
    /// hand-over's verification is accepted, booting or not.
    settled: Vec<bool>,
    epoch: Option<u64>,
    /// Some node's logs showed this epoch's slots: the windows are known.
    epoch_known: bool,
    /// Whether each node may boot holding the key (see [`boots_with_key`]).
    pub(super) boots: Vec<bool>,
    /// Nodes booting with the secret (or with a job in flight), by index.
    secret_booting: Vec<usize>,
    /// Nodes that may hold the key but whose logs were not read this tick: they may lead slots
    /// nodekeeper does not know.
    unreadable_holders: Vec<usize>,
    /// With `[cluster]`: why this instance may not lead (then none of its nodes holds the key).
    pub(super) not_ours: Option<String>,
    /// With `[cluster]`: a node of another instance may hold the key (or may lead: this
    /// instance is not elected).
    pub(super) elsewhere: bool,
    /// With `[cluster]`: no node of the pool can be producing (elected, every other instance
    /// passive, none of ours may hold the key nor boots with it): a host loss, which may act
    /// inside a guard window.
    took_over: bool,
}

impl Context {
    /// Updates the memory from this tick's observation and computes the context.
    pub(super) fn new(
        config: &LeaderConfig,
        memory: &mut LeaderMemory,
        observation: &Observation,
        facts: &[NodeFacts],
    ) -> Context {
        let now = observation.now;
        if !config.enabled {
            // nodekeeper moves no key: a node producing is one that boots with it.
            memory.may_hold_now = observation
                .nodes
                .iter()
                .filter(|node| boots_with_key(node, memory.boot_evidence.get(&node.name)).0)
                .map(|node| node.name.clone())
                .collect();
            return Context {
                enabled: false,
                now,
                near: None,
                leader: None,
                may_hold: Vec::new(),
                settled: Vec::new(),
                epoch: None,
                epoch_known: false,
                boots: Vec::new(),
                secret_booting: Vec::new(),
                unreadable_holders: Vec::new(),
                not_ours: None,
                elsewhere: false,
                took_over: false,
            };
        }
        if let Some(clock) = observation.chain {
            memory.clock = Some(clock);
        }
        let epoch = memory.clock.map(|clock| clock.epoch_at(now));
        for node in &observation.nodes {
            if let Some(dates) = &node.leadership.schedule {
                memory.schedule.extend(dates.iter().copied());
            }
        }
        if let Some(epoch) = epoch {
            memory
                .schedule
                .retain(|date| date.epoch + 1 >= epoch && date.epoch <= epoch + 1);
            memory.epoch = Some(epoch);
            memory.refreshed.retain(|_, e| *e == epoch);
        }
        for node in &observation.nodes {
            note_boot(memory, node);
        }
        let boots: Vec<bool> = observation
            .nodes
            .iter()
            .map(|node| boots_with_key(node, memory.boot_evidence.get(&node.name)).0)
            .collect();
        let verdicts: Vec<(bool, bool, bool)> = observation
            .nodes
            .iter()
            .zip(&boots)
            .map(|(node, boots)| may_hold(node, memory.may_hold.get(&node.name).copied(), *boots))
            .collect();
        for (node, (may, known, conclusive)) in observation.nodes.iter().zip(&verdicts) {
            if *known {
                memory.may_hold.insert(
                    node.name.clone(),
                    Remembered {
                        started: started_at(node),
                        may: *may,
                        read: *conclusive,
                    },
                );
            }
        }
        let may_hold: Vec<bool> = verdicts.iter().map(|(may, _, _)| *may).collect();
        memory.may_hold_now = observation
            .nodes
            .iter()
            .zip(&may_hold)
            .filter(|(_, may)| **may)
            .map(|(node, _)| node.name.clone())
            .collect();
        // The leader: among the nodes known to hold the key, the remembered leader unless another
        // holder is in sync and it is not; else the remembered leader when it may still hold it.
        let holders: Vec<usize> = (0..observation.nodes.len())
            .filter(|&i| keys(&observation.nodes[i]).is_some_and(|ids| !ids.is_empty()))
            .collect();
        let remembered = memory
            .leader
            .as_ref()
            .and_then(|name| observation.nodes.iter().position(|n| &n.name == name));
        let leader = holders
            .iter()
            .copied()
            .max_by_key(|&i| {
                (
                    facts[i].in_sync,
                    Some(i) == remembered,
                    facts[i].height,
                    std::cmp::Reverse(i),
                )
            })
            .or(remembered.filter(|&i| may_hold[i]));
        // An instance that may not lead has no leader among its nodes: every holder is extra.
        let not_ours = observation
            .cluster
            .as_ref()
            .and_then(|gate| gate.why.clone());
        let leader = leader.filter(|_| not_ours.is_none());
        let elsewhere = observation
            .cluster
            .as_ref()
            .is_some_and(|gate| gate.why.is_some() || !gate.pool_passive);
        memory.leader = leader.map(|i| observation.nodes[i].name.clone());
        if let (Some(clock), Some(_)) = (memory.clock, leader) {
            memory.last_slot = memory
                .schedule
                .iter()
                .rev()
                .find(|date| clock.date_time(**date) <= now)
                .copied()
                .or(memory.last_slot);
        }
        let near = guard(memory, config, now, saturating_add(now, config.lookahead));
        let epoch_known = epoch.is_some_and(|e| memory.schedule.iter().any(|d| d.epoch == e));
        let secret_booting: Vec<usize> = (0..observation.nodes.len())
            .filter(|&i| {
                let node = &observation.nodes[i];
                boots[i] && (node.busy || booting(node))
            })
            .collect();
        let unreadable_holders = (0..observation.nodes.len())
            .filter(|&i| may_hold[i] && observation.nodes[i].leadership.schedule.is_none())
            .collect();
        let settled = observation
            .nodes
            .iter()
            .zip(&may_hold)
            .map(|(node, may)| {
                let started = started_at(node);
                !may && started.is_some()
                    && memory
                        .may_hold
                        .get(&node.name)
                        .is_some_and(|r| r.read && !r.may && r.started == started)
            })
            .collect();
        let took_over = observation
            .cluster
            .as_ref()
            .is_some_and(|gate| gate.why.is_none() && gate.pool_passive)
            && !may_hold.iter().any(|may| *may)
            && secret_booting.is_empty();
        Context {
            enabled: true,
            now,
            near,
            leader,
            may_hold,
            settled,
            epoch,
            epoch_known,
            boots,
            secret_booting,
            unreadable_holders,
            not_ours,
            elsewhere,
            took_over,
        }
    }

    /// Why a start or restart of node `index` must wait, if it must.
    pub(super) fn defer(
        &self,
        index: usize,
        node: &NodeObservation,
        reason: &Reason,
        other_candidate: bool,
    ) -> Option<String> {
        if !self.enabled {
            return None;
        }
        if Some(index) == self.leader {
            if !reason.is_sync_rule() {
                // A dead leader (crashed, hung) is restarted at once.
                return None;
            }
            if let Some(why) = &self.near {
                return Some(format!("it holds the leader key and {why}"));
            }
            // The key moves first, when it can: its leaders API answers (else it cannot be
            // demoted, and the restart is what takes the key away).
            if other_candidate && keys(node).is_some() {
                return Some("it holds the leader key, which moves to another node first".into());
            }
            return None;
        }
        // Another node holds or may hold the key, or is booting with the secret and may come up
        // holding it.
        let leader_exists = self.elsewhere
            || self
                .may_hold
                .iter()
                .enumerate()
                .any(|(i, may)| i != index && *may)
            || self.secret_booting.iter().any(|&i| i != index);
        if self.boots[index]
            && leader_exists
            && let Some(why) = &self.near
        {
            return Some(format!(
                "it may boot holding the leader key and could come up as a second leader: {why}"
            ));
        }
        if self.boots[index]
            && !self.epoch_known
            && let Some(&other) = self.secret_booting.iter().find(|&&i| i != index)
        {
            // Two nodes coming up with the secret compute the same unknown slots: one at a time.
            return Some(format!(
                "node #{} is booting with the leader secret and this epoch's slots are unknown: one at a time",
                other + 1
            ));
        }
        if self.boots[index]
            && !self.epoch_known
            && let Some(&other) = self.unreadable_holders.iter().find(|&&i| i != index)
        {
            return Some(format!(
                "node #{} may hold the key with a schedule that cannot be read, and this epoch's \
                 slots are unknown",
                other + 1
            ));
        }
        None
    }
}

/// The leadership actions of a tick, after the per-node rules (`acted`: nodes with an action).
pub(super) fn decide(
    config: &LeaderConfig,
    memory: &mut LeaderMemory,
    context: &Context,
    observation: &Observation,
    facts: &[NodeFacts],
    acted: &BTreeSet<String>,
    leader_job: bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    if !context.enabled {
        return actions;
    }
    let now = context.now;
    let nodes = &observation.nodes;
    let epoch = context.epoch;

    // Say what is concluded about each node's boot, once and on change.
    for node in nodes {
        let (with_key, why) = boots_with_key(node, memory.boot_evidence.get(&node.name));
        if memory.boot_said.get(&node.name) != Some(&(with_key, why.clone())) {
            memory
                .boot_said
                .insert(node.name.clone(), (with_key, why.clone()));
            actions.push(Action::BootVerdict {
                node: node.name.clone(),
                with_key,
                why,
            });
        }
    }
    let pool_slots_ahead = match (memory.clock, epoch) {
        (Some(clock), Some(epoch)) => memory
            .schedule
            .iter()
            .any(|date| date.epoch == epoch && clock.date_time(*date) > now),
        _ => false,
    };
    let has_schedule = |i: usize| {
        nodes[i]
            .leadership
            .schedule
            .as_ref()
            .is_some_and(|dates| epoch.is_some_and(|e| dates.iter().any(|d| d.epoch == e)))
    };

    // Announce this epoch's schedule once known (from any node's logs; a leader promoted
    // mid-epoch has none), or once it settled empty.
    if let (Some(epoch), Some(leader), Some(clock)) = (epoch, context.leader, memory.clock)
        && config.announce_slots
        && memory.announced_epoch != Some(epoch)
        && nodes[leader].leadership.schedule.is_some()
    {
        let slots: Vec<SlotDate> = memory
            .schedule
            .iter()
            .filter(|d| d.epoch == epoch)
            .copied()
            .collect();
        let settled = now
            .duration_since(clock.epoch_start(epoch))
            .is_ok_and(|elapsed| elapsed >= config.schedule_settle);
        if !slots.is_empty() || settled {
            memory.announced_epoch = Some(epoch);
            let mut slots = slots;
            slots.sort();
            slots.dedup();
            actions.push(Action::SlotsAssigned {
                node: nodes[leader].name.clone(),
                epoch,
                slots,
            });
        }
    }

    // Extra holders are demoted at once.
    for (i, node) in nodes.iter().enumerate() {
        if Some(i) == context.leader || node.busy || acted.contains(&node.name) {
            continue;
        }
        if let Some(ids) = keys(node)
            && !ids.is_empty()
        {
            actions.push(Action::Demote {
                node: node.name.clone(),
                holding: Holding(ids.to_vec()),
                why: match (&context.not_ours, context.leader) {
                    (Some(why), _) => format!("this instance may not lead: {why}"),
                    (None, Some(l)) => {
                        format!("{} leads; a node holds the key at most once", nodes[l].name)
                    }
                    (None, None) => "another node holds the key".into(),
                },
            });
        }
    }

    // Parking: near a window, while a leader exists, nothing that could come up as a second
    // leader keeps booting.
    // With no leader, the first booting node may come up as the only one.
    let leader_exists =
        context.elsewhere || context.leader.is_some() || context.may_hold.iter().any(|m| *m);
    let keep = if leader_exists {
        None
    } else {
        (0..nodes.len()).find(|&i| booting(&nodes[i]) && context.boots[i])
    };
    if let Some(why) = &context.near {
        for (i, node) in nodes.iter().enumerate() {
            if Some(i) == context.leader
                || Some(i) == keep
                || node.busy
                || acted.contains(&node.name)
                || !context.boots[i]
            {
                continue;
            }
            let hung = context.leader.is_some() && context.may_hold[i] && keys(node).is_none();
            if booting(node) || hung {
                memory.parked.insert(node.name.clone());
                actions.push(Action::Stop {
                    node: node.name.clone(),
                    reason: Reason::SlotGuard(why.to_string()),
                });
            }
        }
    }

    // This epoch's slots unknown: two nodes booting with the secret could both come up leading
    // the same slot before either is seen. Keep the first, park the others.
    let unreadable_other = |i: usize| context.unreadable_holders.iter().any(|&h| h != i);
    if !context.epoch_known
        && (context.secret_booting.len() > 1
            || context.secret_booting.iter().any(|&i| unreadable_other(i)))
    {
        let skip = usize::from(!context.secret_booting.iter().any(|&i| unreadable_other(i)));
        for &i in context.secret_booting.iter().skip(skip) {
            let node = &nodes[i];
            if node.busy || acted.contains(&node.name) || Some(i) == context.leader {
                continue;
            }
            if actions
                .iter()
                .any(|a| matches!(a, Action::Stop { node: n, .. } if *n == node.name))
            {
                continue;
            }
            memory.parked.insert(node.name.clone());
            actions.push(Action::Stop {
                node: node.name.clone(),
                reason: Reason::SlotGuard(
                    "another node is booting with the leader secret and this epoch's slots are unknown"
                        .into(),
                ),
            });
        }
    }

    // The target leader.
    let candidate = |i: usize| {
        let node = &nodes[i];
        facts[i].in_sync
            && !node.busy
            && !acted.contains(&node.name)
            && keys(node).is_some()
            && memory
                .promotion_backoff
                .get(&node.name)
                .is_none_or(|(_, until)| now >= *until)
    };
    let rank = |i: usize| {
        (
            pool_slots_ahead && has_schedule(i),
            facts[i].height.unwrap_or(0),
            std::cmp::Reverse(i),
        )
    };
    let best = (0..nodes.len())
        .filter(|&i| candidate(i))
        .max_by_key(|&i| rank(i));
    let requested = memory
        .requested
        .as_ref()
        .and_then(|name| nodes.iter().position(|n| &n.name == name))
        .filter(|&r| Some(r) != context.leader && candidate(r));
    let target = match (context.leader, best) {
        // Another instance leads (or none may): nothing of ours is promoted.
        _ if context.not_ours.is_some() => None,
        _ if requested.is_some() => requested,
        (_, None) => None,
        (None, Some(b)) => Some(b),
        (Some(l), Some(b)) if l == b => None,
        (Some(l), Some(b)) => {
            let l_ok = facts[l].in_sync && keys(&nodes[l]).is_some();
            let ahead = facts[b].height.unwrap_or(0)
                >= facts[l]
                    .height
                    .unwrap_or(0)
                    .saturating_add(config.switch_margin);
            let schedule_better = pool_slots_ahead && has_schedule(b) && !has_schedule(l);
            let chosen = memory
                .chosen
                .as_ref()
                .is_some_and(|(name, e)| *name == nodes[l].name && Some(*e) == epoch);
            (!l_ok || (!chosen && (ahead || schedule_better))).then_some(b)
        }
    };
    // A leader that fell back to bootstrapping keeps the key but cannot lead, and cannot be
    // demoted (its API is not up): restart it, so that the key is gone and `best` can lead.
    if let (Some(l), Some(_)) = (context.leader, best)
        && booting(&nodes[l])
        && context.may_hold[l]
        && context.near.is_none()
        && !nodes[l].busy
        && !acted.contains(&nodes[l].name)
        && !leader_job
    {
        actions.push(Action::Restart {
            node: nodes[l].name.clone(),
            reason: Reason::LeaderUnfit("fell back to bootstrapping while holding the key".into()),
            variant: super::Variant::Normal,
        });
        return actions;
    }
    let subject = "leader".to_string();
    if let Some(t) = target {
        let blocker = if leader_job {
            Some("a hand-over is in flight".to_string())
        } else if context.elsewhere {
            Some("a node of another instance may hold the key".to_string())
        } else if let Some(why) = guard(memory, config, now, saturating_add(now, config.lookahead))
            // A host loss: no node of the pool can be producing, so a slot near is one to save.
            .filter(|_| !context.took_over)
        {
            Some(why.to_string())
        } else {
            (0..nodes.len())
                .find(|&i| {
                    i != t
                        && context.may_hold[i]
                        && (Some(i) != context.leader
                            || keys(&nodes[i]).is_none()
                            || nodes[i].busy
                            || acted.contains(&nodes[i].name))
                })
                .map(|i| {
                    format!(
                        "{} may hold the key and cannot be verified (its leader API did not answer, \
                         or it is being acted on)",
                        nodes[i].name
                    )
                })
        };
        match blocker {
            Some(blocker) => {
                let note = format!("promotion of {} waits: {blocker}", nodes[t].name);
                if memory.notes.get(&subject) != Some(&note) {
                    memory.notes.insert(subject, note.clone());
                    actions.push(Action::Waiting {
                        node: nodes[t].name.clone(),
                        why: note,
                    });
                }
            }
            None => {
                memory.notes.remove(&subject);
                let from = context
                    .leader
                    .and_then(|l| {
                        keys(&nodes[l]).map(|ids| (nodes[l].name.clone(), Holding(ids.to_vec())))
                    })
                    .filter(|(_, holding)| holding.holds());
                let why = match context.leader {
                    _ if requested == Some(t) => "operator request".to_string(),
                    None => "no node holds the key".to_string(),
                    Some(l) if !facts[l].in_sync => {
                        format!("{} is not in sync", nodes[l].name)
                    }
                    Some(l) if pool_slots_ahead && has_schedule(t) && !has_schedule(l) => {
                        format!("{} lacks this epoch's schedule", nodes[l].name)
                    }
                    Some(l) => format!(
                        "{} is {} blocks ahead of {}",
                        nodes[t].name,
                        facts[t]
                            .height
                            .unwrap_or(0)
                            .saturating_sub(facts[l].height.unwrap_or(0)),
                        nodes[l].name
                    ),
                };
                // Silent nodes whose silence is accepted: known to hold nothing in their
                // current process (a replacement booting without the key may still be booting).
                let vouched = (0..nodes.len())
                    .filter(|&i| {
                        i != t
                            && !context.may_hold[i]
                            && keys(&nodes[i]).is_none()
                            && (context.settled[i] || !booting(&nodes[i]))
                            && matches!(&nodes[i].program, ProgramSeen::Known(p)
                                if matches!(p.state, ProcessState::Running | ProcessState::Starting))
                    })
                    .map(|i| nodes[i].name.clone())
                    .collect();
                actions.push(Action::HandOver {
                    from,
                    to: nodes[t].name.clone(),
                    why,
                    vouched,
                });
            }
        }
    } else {
        memory.notes.remove(&subject);
    }

    // Schedule refresh: a passive, in-sync node without this epoch's schedule is restarted to
    // compute it, once per epoch, when the leader is up and the next slot is far enough.
    let busy_anywhere = nodes.iter().any(|n| n.busy) || !acted.is_empty();
    let gap_ok = memory
        .next_slot(now)
        .is_none_or(|(_, t)| t.duration_since(now).unwrap_or_default() > config.refresh_min_gap);
    if let (Some(epoch), Some(l)) = (epoch, context.leader)
        && !config.epochs_free
        && pool_slots_ahead
        && gap_ok
        && !busy_anywhere
        && !leader_job
        && facts[l].in_sync
        && context.near.is_none()
        && !actions
            .iter()
            .any(|a| matches!(a, Action::HandOver { .. } | Action::Stop { .. }))
    {
        let lacking = (0..nodes.len()).find(|&i| {
            i != l
                && context.boots[i]
                && facts[i].in_sync
                && keys(&nodes[i]).is_some_and(<[u32]>::is_empty)
                && nodes[i].leadership.schedule.is_some()
                && !has_schedule(i)
                && memory.refreshed.get(&nodes[i].name) != Some(&epoch)
        });
        if let Some(i) = lacking {
            memory.refreshed.insert(nodes[i].name.clone(), epoch);
            actions.push(Action::Restart {
                node: nodes[i].name.clone(),
                reason: Reason::ScheduleRefresh(epoch),
                variant: super::Variant::Normal,
            });
        }
    }
    actions
}

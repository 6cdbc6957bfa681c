//! The decision policy: plain data in (`Observation`), actions out (`Action`), with its memory across
//! ticks in `PolicyState`. No I/O, no clock reads (`now` is in the observation), no `Result`: every
//! failure to observe is itself an observation. The shell (`daemon`) executes the actions.
//!
//! Rules (thresholds in `PolicyConfig`):
//! - crashed (EXITED, FATAL, BACKOFF) → start;
//! - RUNNING but the API has not answered for `hang_timeout` → restart (hung);
//! - Running with no height increase for `tip_timeout`, or with a tip older than `tip_timeout`
//!   on chains that give the tip's time (nodeos, cardano with its genesis) → restart (stale tip;
//!   `facts::stale`, whichever says more; a node whose height moves is judged by its lag first);
//! - `reference - height > tip_diff_threshold` → restart (lag), reference = max(best height among the
//!   local nodes observed now, the external reference when fresh);
//! - Bootstrapping longer than `bootstrap_timeout` → restart, with the fallback config when no other
//!   node is Running and in sync; back to the normal config once a sibling is in sync;
//! - no node up → start them all with the fallback config, one per `all_down_stagger`;
//! - sync rules (stale tip, lag, bootstrap timeout) wait `boot_grace` after a start, or until the
//!   node is first in sync, whichever comes first; at most one sync-rule restart is in flight at a
//!   time (crashed and hung nodes are not limited); a silent API is judged at once once the API
//!   has answered since the start, and only after `boot_grace` when it never has;
//! - more than `max_restarts` per `restart_window` → the node is held until an operator releases it;
//! - a program stopped by someone else is held (the operator's word stands) until started again;
//! - a node whose supervisord is unreachable, or that the shell is acting on, is left alone.

pub mod backup;
pub mod facts;
pub mod kes;
pub mod leader;
#[cfg(test)]
mod leader_prop;
#[cfg(test)]
mod leader_tests;
pub mod operator;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, SystemTime};

pub use crate::chain::Variant;
use crate::chain::{BootVerdict, Holding, KeyExpiry, NodeState, NodeStatus, ProbeError};
use crate::slots::{SlotClock, SlotDate};
use crate::supervisor::ProcessState;
pub use facts::{NodeFacts, NotInSync, PoolFacts, Stale};
pub use leader::{LeaderConfig, LeaderMemory, LeaderView};
pub use operator::{Answer, Refusal};

/// The control loop's thresholds (`[thresholds]`, as the configuration checks them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Period of the control loop.
    pub tick_interval: Duration,
    /// Timeout of one call to a node's API.
    pub probe_timeout: Duration,
    /// A RUNNING node that has not answered its API for this long is hung.
    pub hang_timeout: Duration,
    /// A Running node whose height has not grown for this long is restarted (stale tip).
    pub tip_timeout: Duration,
    /// A node more than this many blocks behind the reference is restarted (lag).
    pub tip_diff_threshold: u64,
    /// A node bootstrapping longer than this is restarted.
    pub bootstrap_timeout: Duration,
    /// After a start, the sync rules wait this long before judging the node.
    pub boot_grace: Duration,
    /// At most this many starts of one node per `restart_window`; beyond, the node is held.
    pub max_restarts: u32,
    /// The storm-protection window.
    pub restart_window: Duration,
    /// Delay between starts when every node is down.
    pub all_down_stagger: Duration,
}

/// What the policy applies.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// The thresholds of the rules.
    pub thresholds: Thresholds,
    /// An external reference older than this is ignored.
    pub reference_max_age: Duration,
    /// An external reference that leads every local node by more than this many blocks is
    /// ignored (a wrong but plausible answer must not restart node after node).
    pub reference_max_lead: u64,
    /// Leadership (disabled by default).
    pub leader: LeaderConfig,
    /// The configured nodes, in order (operator requests name one of them).
    pub nodes: Vec<String>,
    /// A node reporting fewer key periods than this is alerted about (`kes`); 0: never.
    pub kes_alert_periods: u64,
}

/// What supervisord says about a node's program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramView {
    /// The process state.
    pub state: ProcessState,
    /// When the process last started (supervisord's `start`), if ever.
    pub started_at: Option<SystemTime>,
    /// Exit status of the last exit (0 when unknown).
    pub exit_status: i32,
}

/// The program as far as nodekeeper could tell this tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgramSeen {
    /// supervisord answered.
    Known(ProgramView),
    /// supervisord has no such program (BAD_NAME).
    Missing,
    /// The node's supervisord could not be asked.
    Unreachable,
}

/// One node this tick.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeObservation {
    /// Node name (as configured).
    pub name: String,
    /// Its program.
    pub program: ProgramSeen,
    /// The REST probe, when the program was RUNNING (`None`: not probed).
    pub probe: Option<Result<NodeStatus, ProbeError>>,
    /// How long its API has not answered while asked (since its last answer), when the program is
    /// RUNNING and a question is outstanding or went unanswered; `None` when it answers.
    pub silent_for: Option<Duration>,
    /// The shell is acting on this node (a start or restart in flight): leave it alone.
    pub busy: bool,
    /// Its leader endpoints (leadership enabled, node Running).
    pub leadership: LeaderView,
    /// Whether it boots holding the key, as its chain adapter tells from its configuration and
    /// supervisord's command line.
    pub boot: BootVerdict,
    /// What its chain adapter says the program's last exit means, when starting it again cannot
    /// help (`ChainNode::hopeless_exit`): the node is held with that reason instead.
    pub hopeless_exit: Option<String>,
    /// Its forging key's validity, when its probe answered this round and it reports one
    /// (cardano-node's `remainingKESPeriods`).
    pub key_expiry: Option<KeyExpiry>,
}

/// The external reference tip, as last fetched successfully.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReferenceTip {
    /// Height.
    pub height: u64,
    /// When it was fetched.
    pub fetched_at: SystemTime,
}

/// Everything observed in one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Wall-clock time of the observation.
    pub now: SystemTime,
    /// Every configured node, in configuration order.
    pub nodes: Vec<NodeObservation>,
    /// The last good external reference, if any (the policy checks its age).
    pub reference: Option<ReferenceTip>,
    /// The chain's time, when a node's settings were read.
    pub chain: Option<SlotClock>,
    /// A leader hand-over or demotion is in flight.
    pub leader_job: bool,
    /// With `[cluster]`: whether this instance may let one of its nodes hold the key, and whether
    /// no node of another instance may (`None`: one instance, no store).
    pub cluster: Option<crate::cluster::rules::Gate>,
}

/// Why a node is started or restarted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The program is EXITED, FATAL or BACKOFF.
    Crashed(ProcessState),
    /// The API has not answered for this long while RUNNING.
    Hung(Duration),
    /// No new block for this long.
    StaleTip(Duration),
    /// Behind the reference.
    Lag {
        /// The node's height.
        height: u64,
        /// The reference height.
        reference: u64,
    },
    /// Bootstrapping for this long.
    BootstrapTimeout(Duration),
    /// No node was up.
    AllDown,
    /// Found STOPPED when nodekeeper started, or released by an operator while stopped.
    Stopped,
    /// nodekeeper's own earlier stop succeeded but the start failed: start again.
    Retry,
    /// Asked by an operator.
    Operator,
    /// Stopped near a pool slot or rollover (it could come up as a second leader), or started
    /// again after it.
    SlotGuard(String),
    /// Restarted to compute this epoch's leader schedule.
    ScheduleRefresh(u64),
    /// The leader fell back to bootstrapping with the key in its enclave: restarted so that the
    /// key is gone and another node can be promoted.
    LeaderUnfit(String),
}

impl Reason {
    /// A short stable label (metrics, logs, alert templates).
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Crashed(_) => "crashed",
            Reason::Hung(_) => "hung",
            Reason::StaleTip(_) => "stale_tip",
            Reason::Lag { .. } => "lag",
            Reason::BootstrapTimeout(_) => "bootstrap_timeout",
            Reason::AllDown => "all_down",
            Reason::Stopped => "stopped",
            Reason::Retry => "retry",
            Reason::Operator => "operator",
            Reason::SlotGuard(_) => "slot_guard",
            Reason::ScheduleRefresh(_) => "schedule_refresh",
            Reason::LeaderUnfit(_) => "leader_unfit",
        }
    }

    /// Stale tip, lag and bootstrap timeout: rules about sync, limited to one in flight.
    pub fn is_sync_rule(&self) -> bool {
        matches!(
            self,
            Reason::StaleTip(_)
                | Reason::Lag { .. }
                | Reason::BootstrapTimeout(_)
                | Reason::ScheduleRefresh(_)
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Crashed(state) => write!(f, "crashed ({state})"),
            Reason::Hung(silent) => {
                write!(f, "hung (no answer for {:.1} s)", silent.as_secs_f64())
            }
            Reason::StaleTip(for_) => {
                write!(f, "stale tip (no new block for {} s)", for_.as_secs())
            }
            Reason::Lag { height, reference } => write!(
                f,
                "lag (height {height}, reference {reference}, {} behind)",
                reference.saturating_sub(*height)
            ),
            Reason::BootstrapTimeout(for_) => {
                write!(
                    f,
                    "bootstrap timeout (bootstrapping for {} s)",
                    for_.as_secs()
                )
            }
            Reason::AllDown => f.write_str("all nodes down"),
            Reason::Stopped => f.write_str("stopped"),
            Reason::Retry => f.write_str("retry after a failed start"),
            Reason::Operator => f.write_str("operator request"),
            Reason::SlotGuard(why) => write!(f, "slot guard ({why})"),
            Reason::ScheduleRefresh(epoch) => {
                write!(f, "schedule refresh (epoch {epoch} schedule missing)")
            }
            Reason::LeaderUnfit(why) => write!(f, "leader unfit ({why})"),
        }
    }
}

/// Why a node is held (left alone).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum HoldReason {
    /// Too many restarts in the window.
    Storm {
        /// Restarts counted.
        restarts: u32,
        /// The window, in seconds.
        window_secs: u64,
    },
    /// Someone stopped the program outside nodekeeper (e.g. `supervisorctl stop`).
    OperatorStopped,
    /// `nodekeeper ctl hold`.
    Operator,
    /// The program exited in a way starting it again cannot mend (the chain adapter's words).
    Hopeless {
        /// What the exit means.
        what: String,
    },
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldReason::Storm {
                restarts,
                window_secs,
            } => write!(
                f,
                "restart storm: {restarts} restarts within {} s; release it with `nodekeeper ctl release`",
                window_secs
            ),
            HoldReason::OperatorStopped => f.write_str(
                "stopped outside nodekeeper; start it, or release it with `nodekeeper ctl release`",
            ),
            HoldReason::Operator => f.write_str("held by an operator"),
            HoldReason::Hopeless { what } => write!(
                f,
                "{what}; starting it again would fail the same way: repair it, then start it or \
                 release it with `nodekeeper ctl release`"
            ),
        }
    }
}

/// A hold on a node.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hold {
    /// Why.
    pub reason: HoldReason,
    /// Since when.
    pub since: SystemTime,
}

/// What the shell must do. Matched exhaustively by the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write the variant's config, then start the program (stopping it first if in BACKOFF).
    Start {
        /// The node.
        node: String,
        /// Why.
        reason: Reason,
        /// Which config.
        variant: Variant,
    },
    /// Write the variant's config, stop the program, start it.
    Restart {
        /// The node.
        node: String,
        /// Why.
        reason: Reason,
        /// Which config.
        variant: Variant,
    },
    /// Rewrite the node's config file as this variant; the running process is not touched.
    UseConfig {
        /// The node.
        node: String,
        /// Which config.
        variant: Variant,
    },
    /// The node is now held (report it; nothing to execute).
    Held {
        /// The node.
        node: String,
        /// Why.
        reason: HoldReason,
    },
    /// A hold ended because someone started the program (report it).
    Released {
        /// The node.
        node: String,
    },
    /// Stop the program (the slot guard parks a booting node).
    Stop {
        /// The node.
        node: String,
        /// Why.
        reason: Reason,
    },
    /// Take the key away from the node (an extra holder).
    Demote {
        /// The node.
        node: String,
        /// What it holds (the handles its leader control removes).
        holding: Holding,
        /// Why.
        why: String,
    },
    /// Demote `from` (if any), verify with `GET /leaders` on every node that none holds the key,
    /// then promote `to`.
    HandOver {
        /// The current leader and what it holds.
        from: Option<(String, Holding)>,
        /// The new leader.
        to: String,
        /// Why.
        why: String,
        /// Nodes whose leaders API does not answer now but that were read without the key in
        /// this same process (keys enter an enclave only at a start or by a promotion): the
        /// verification accepts their silence.
        vouched: Vec<String>,
    },
    /// The leader's schedule of this epoch is known (report it).
    SlotsAssigned {
        /// The leader it was read from.
        node: String,
        /// The epoch.
        epoch: u64,
        /// The pool's slots.
        slots: Vec<SlotDate>,
    },
    /// The external reference is doubted (it leads every local node by more than
    /// `reference_max_lead`) or trusted again (report it; once per change).
    Reference {
        /// The reference height.
        reference: u64,
        /// The best local height.
        best: u64,
        /// Trusted again (else: ignored from now on).
        trusted: bool,
    },
    /// What is concluded about whether a node may boot holding the key, and why (report it;
    /// once and on change).
    BootVerdict {
        /// The node.
        node: String,
        /// It may boot holding the key (its starts are guarded near a slot).
        with_key: bool,
        /// Why.
        why: String,
    },
    /// A node nodekeeper started or restarted is in sync again (report it).
    Recovered {
        /// The node.
        node: String,
    },
    /// No node was up: every node is being started, staggered (report it; once per episode,
    /// before its first start).
    AllDown {
        /// How many nodes the pool has.
        nodes: usize,
    },
    /// Something wanted waits for safety (report it; emitted when the reason changes).
    Waiting {
        /// The node concerned.
        node: String,
        /// What waits and why.
        why: String,
    },
    /// A node's forging key runs out soon: fewer periods left than `threshold` (report it: an
    /// alert; again each period less, see `kes`).
    KeyExpiring {
        /// The node.
        node: String,
        /// Key periods left (cardano: KES periods).
        periods: u64,
        /// `kes_alert_periods`.
        threshold: u64,
        /// Roughly the time left, when a period's length is known.
        time_left: Option<Duration>,
    },
    /// A node reported low before now reports at least the threshold: a new key (report it).
    KeyRenewed {
        /// The node.
        node: String,
        /// Key periods left.
        periods: u64,
        /// Roughly the time left, when a period's length is known.
        time_left: Option<Duration>,
    },
}

impl Action {
    /// The node the action is about (none for the pool-wide `AllDown`).
    pub fn node(&self) -> Option<&str> {
        match self {
            Action::Start { node, .. }
            | Action::Restart { node, .. }
            | Action::UseConfig { node, .. }
            | Action::Held { node, .. }
            | Action::Released { node }
            | Action::Stop { node, .. }
            | Action::Demote { node, .. }
            | Action::SlotsAssigned { node, .. }
            | Action::Recovered { node }
            | Action::BootVerdict { node, .. }
            | Action::Waiting { node, .. }
            | Action::KeyExpiring { node, .. }
            | Action::KeyRenewed { node, .. } => Some(node),
            Action::HandOver { to, .. } => Some(to),
            Action::AllDown { .. } | Action::Reference { .. } => None,
        }
    }
}

/// What the policy remembers about one node across ticks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeMemory {
    /// Seen at least once since the daemon started.
    pub adopted: bool,
    /// The program state last seen.
    pub last_state: Option<ProcessState>,
    /// The height last seen, and since when it has been that.
    pub last_height: Option<u64>,
    /// When `last_height` was first seen.
    pub height_since: Option<SystemTime>,
    /// Since when the node has been seen not Running (while its program is RUNNING).
    pub booting_since: Option<SystemTime>,
    /// Last start: by nodekeeper, or as supervisord reported for an adopted node.
    pub started_at: Option<SystemTime>,
    /// Restarted by a sync rule and not yet back in sync.
    pub sync_restart_at: Option<SystemTime>,
    /// Starts and restarts by nodekeeper (storm protection).
    pub restarts: Vec<SystemTime>,
    /// Held, and why.
    pub hold: Option<Hold>,
    /// The config variant the node was last started with (or its file holds).
    pub variant: Variant,
    /// nodekeeper stopped it and the start failed: its STOPPED state is ours, not an operator's.
    pub stopped_by_us: bool,
    /// A start was wanted but deferred (every node down: starts are staggered).
    pub start_deferred: bool,
    /// The REST API answered since the last start: from then on a failing API counts at once,
    /// before that only after boot grace (the API is not up yet early in a boot).
    pub api_answered: bool,
    /// The node reported Running since the last start: a later fall back to a boot state is
    /// timed from when it is seen, not from the program's start.
    pub seen_running: bool,
    /// nodekeeper started it and it has not been seen in sync since (`Action::Recovered`).
    pub recovering: bool,
    /// Seen in sync since its last start: boot grace is over.
    pub synced_since_start: bool,
}

impl NodeMemory {
    /// The bookkeeping of a start or restart issued now (boot grace, stall timers, variant).
    pub fn note_start(&mut self, now: SystemTime, variant: Variant) {
        self.started_at = Some(now);
        self.synced_since_start = false;
        self.last_height = None;
        self.height_since = None;
        self.booting_since = None;
        self.stopped_by_us = false;
        self.start_deferred = false;
        self.api_answered = false;
        self.seen_running = false;
        self.recovering = true;
        self.variant = variant;
    }
}

/// The policy's memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyState {
    /// Per node, by name.
    pub nodes: BTreeMap<String, NodeMemory>,
    /// While every node is down: the earliest time of the next start.
    pub all_down_next_start: Option<SystemTime>,
    /// This all-down episode was reported (`Action::AllDown`).
    pub all_down_announced: bool,
    /// The external reference is doubted (reported once per change).
    pub reference_doubted: bool,
    /// Leadership (persisted by the shell).
    pub leadership: LeaderMemory,
    /// Per node, the key periods last reported low (`kes`).
    pub key_alerts: BTreeMap<String, u64>,
}

/// How an action ended, reported back by the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// Failed; `left_stopped` when nodekeeper's stop succeeded but the start did not.
    Failed {
        /// The program is stopped because of nodekeeper.
        left_stopped: bool,
    },
}

impl PolicyState {
    /// Holds `node` on an operator's request.
    pub fn hold(&mut self, node: &str, now: SystemTime) {
        self.nodes.entry(node.to_string()).or_default().hold = Some(Hold {
            reason: HoldReason::Operator,
            since: now,
        });
    }

    /// Releases `node`: it is judged afresh from the next tick (a stopped node is started).
    pub fn release(&mut self, node: &str) -> bool {
        let memory = self.nodes.entry(node.to_string()).or_default();
        let was_held = memory.hold.take().is_some();
        memory.adopted = false;
        memory.restarts.clear();
        was_held
    }

    /// A backup or restore started the node again: the bookkeeping of a start (boot grace, its
    /// variant as before), without the recovery alert of a restart for a fault.
    pub fn note_maintenance_start(&mut self, node: &str, now: SystemTime) {
        let memory = self.nodes.entry(node.to_string()).or_default();
        let variant = memory.variant;
        memory.note_start(now, variant);
        memory.recovering = false;
    }

    /// A restore replaced the node's database: a hold for its crashes (a storm) or for a
    /// hopeless exit ends; an operator's hold, or a stop by hand, stays. True when one ended.
    pub fn release_after_restore(&mut self, node: &str) -> bool {
        let ends = self
            .nodes
            .get(node)
            .and_then(|m| m.hold.as_ref())
            .is_some_and(|hold| {
                matches!(
                    hold.reason,
                    HoldReason::Storm { .. } | HoldReason::Hopeless { .. }
                )
            });
        ends && self.release(node)
    }

    /// Every current hold, for persistence and status.
    pub fn holds(&self) -> BTreeMap<String, Hold> {
        self.nodes
            .iter()
            .filter_map(|(name, memory)| memory.hold.clone().map(|hold| (name.clone(), hold)))
            .collect()
    }

    /// Restores holds persisted by an earlier daemon.
    pub fn restore_holds(&mut self, holds: BTreeMap<String, Hold>) {
        for (name, hold) in holds {
            self.nodes.entry(name).or_default().hold = Some(hold);
        }
    }

    /// Marks `node` as stopped by nodekeeper: an earlier daemon stopped it and died before starting
    /// it again (its restart log ends with a `stop` row). Its STOPPED state is then finished as a
    /// restart, not taken for an operator's stop.
    pub fn interrupted_restart(&mut self, node: &str) {
        self.nodes
            .entry(node.to_string())
            .or_default()
            .stopped_by_us = true;
    }

    /// Records how an action on `node` ended.
    pub fn record_outcome(&mut self, node: &str, outcome: Outcome) {
        let memory = self.nodes.entry(node.to_string()).or_default();
        // Whatever the program did during the action was nodekeeper's doing: forget the state
        // seen before it, so it is not mistaken for an operator's stop or start.
        memory.last_state = None;
        match outcome {
            Outcome::Done => memory.stopped_by_us = false,
            Outcome::Failed { left_stopped } => {
                memory.stopped_by_us = left_stopped;
                memory.sync_restart_at = None;
            }
        }
    }
}

/// What one tick decided, and the facts it decided on.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The facts of the tick (worked out once, read by the shell for everything it reports).
    pub facts: PoolFacts,
    /// What the shell must do, in order.
    pub actions: Vec<Action>,
}

/// Decides this tick's actions. Updates `state`; performs nothing.
pub fn decide(
    config: &PolicyConfig,
    state: &mut PolicyState,
    observation: &Observation,
) -> Decision {
    let pool = facts::facts(config, state, observation);
    let actions = decide_on(config, state, observation, &pool);
    Decision {
        facts: pool,
        actions,
    }
}

fn decide_on(
    config: &PolicyConfig,
    state: &mut PolicyState,
    observation: &Observation,
    pool: &PoolFacts,
) -> Vec<Action> {
    let now = observation.now;
    let elapsed = |since: SystemTime| now.duration_since(since).unwrap_or_default();
    let best = pool.reference;
    let facts = &pool.nodes;
    let any_in_sync = facts.iter().any(|f| f.in_sync);
    let lead = leader::Context::new(&config.leader, &mut state.leadership, observation, facts);

    // Every node down, and every supervisord answering: start them one at a time, each
    // `all_down_stagger` after the previous, until some node is in sync again.
    let all_down = !facts.is_empty() && facts.iter().all(|f| f.known && !f.up);
    if any_in_sync {
        state.all_down_next_start = None;
        state.all_down_announced = false;
    } else if all_down && state.all_down_next_start.is_none() {
        state.all_down_next_start = Some(now);
    }

    let mut sync_restart_issued = false;
    let mut actions = Vec::new();

    // A doubted reference is reported when it starts being ignored and when it is trusted again.
    match (pool.doubted, state.reference_doubted) {
        (Some((reference, best)), false) => {
            state.reference_doubted = true;
            actions.push(Action::Reference {
                reference,
                best,
                trusted: false,
            });
        }
        (None, true) => {
            let best_local = pool.nodes.iter().filter_map(|node| node.height).max();
            if let (Some(reference), Some(best)) = (pool.external, best_local) {
                state.reference_doubted = false;
                actions.push(Action::Reference {
                    reference,
                    best,
                    trusted: true,
                });
            } else {
                state.reference_doubted = false;
            }
        }
        _ => {}
    }

    // Back in sync after nodekeeper started it: judged on an observation made after the start
    // (a node with a job in flight is not judged).
    for (node, f) in observation.nodes.iter().zip(facts) {
        if let Some(memory) = state.nodes.get_mut(&node.name)
            && memory.recovering
            && f.in_sync
            && !node.busy
        {
            memory.recovering = false;
            actions.push(Action::Recovered {
                node: node.name.clone(),
            });
        }
    }
    for (index, node) in observation.nodes.iter().enumerate() {
        if node.busy {
            continue;
        }
        let ProgramSeen::Known(program) = &node.program else {
            continue;
        };
        let variant = pool.variant_for(&node.name);
        let other_sync_restart_in_flight = state.nodes.iter().any(|(name, memory)| {
            *name != node.name
                && memory.sync_restart_at.is_some_and(|at| {
                    elapsed(at)
                        < config
                            .thresholds
                            .bootstrap_timeout
                            .saturating_add(config.thresholds.boot_grace)
                })
        });
        let memory = state.nodes.entry(node.name.clone()).or_default();
        let first_sight = !memory.adopted;
        memory.adopted = true;
        let previous = memory.last_state.replace(program.state);
        if first_sight {
            // Adopt the node as it is: its start time bounds boot grace and bootstrapping.
            memory.started_at = program.started_at;
        }

        if memory.hold.is_some() {
            let started_by_someone = previous.is_some_and(|p| !p.is_running_for_start())
                && matches!(
                    program.state,
                    ProcessState::Starting | ProcessState::Running
                );
            if !started_by_someone {
                continue;
            }
            memory.hold = None;
            memory.restarts.clear();
            memory.started_at = program.started_at.or(Some(now));
            memory.synced_since_start = false;
            actions.push(Action::Released {
                node: node.name.clone(),
            });
        }

        let wanted: Option<(Reason, bool)> = match program.state {
            ProcessState::Stopped => {
                if state.leadership.parked.contains(&node.name) {
                    Some((Reason::SlotGuard("the window passed".into()), false))
                } else if memory.stopped_by_us {
                    Some((Reason::Retry, false))
                } else if first_sight || memory.start_deferred {
                    let reason = if all_down || state.all_down_next_start.is_some() {
                        Reason::AllDown
                    } else {
                        Reason::Stopped
                    };
                    Some((reason, false))
                } else if previous.is_some_and(|p| p != ProcessState::Stopped) {
                    actions.push(hold(memory, &node.name, HoldReason::OperatorStopped, now));
                    None
                } else {
                    None
                }
            }
            ProcessState::Exited | ProcessState::Fatal | ProcessState::Backoff => {
                if let Some(what) = &node.hopeless_exit {
                    // Starting it again would fail the same way: held, for a repair.
                    let reason = HoldReason::Hopeless { what: what.clone() };
                    actions.push(hold(memory, &node.name, reason, now));
                    None
                } else {
                    Some((Reason::Crashed(program.state), false))
                }
            }
            ProcessState::Starting | ProcessState::Stopping | ProcessState::Unknown => None,
            ProcessState::Running => {
                if let (Some(theirs), Some(ours)) = (program.started_at, memory.started_at)
                    && theirs > ours
                {
                    // Started again outside nodekeeper: boot grace runs from that start.
                    memory.started_at = Some(theirs);
                    memory.api_answered = false;
                    memory.seen_running = false;
                    memory.synced_since_start = false;
                }
                // Boot grace ends when the node is first in sync after its start, or when it
                // runs out, whichever comes first.
                let in_grace = !memory.synced_since_start
                    && memory
                        .started_at
                        .is_some_and(|started| elapsed(started) < config.thresholds.boot_grace);
                judge_running(config, memory, node, &facts[index], best, in_grace, now)
            }
        };

        let Some((reason, restart)) = wanted else {
            continue;
        };
        if reason.is_sync_rule() && (sync_restart_issued || other_sync_restart_in_flight) {
            // One sync-rule restart at a time: the others wait for it to come back in sync.
            continue;
        }
        let other_candidate = pool.others_in_sync(&node.name);
        if let Some(why) = lead.defer(index, node, &reason, other_candidate) {
            // The label, not the words: a stale tip's words change every tick.
            let why = format!("{} restart waits: {why}", reason.label().replace('_', " "));
            if state.leadership.notes.get(&node.name) != Some(&why) {
                state
                    .leadership
                    .notes
                    .insert(node.name.clone(), why.clone());
                actions.push(Action::Waiting {
                    node: node.name.clone(),
                    why,
                });
            }
            continue;
        }
        state.leadership.notes.remove(&node.name);
        if !restart
            && let Some(next) = state.all_down_next_start
            && now < next
        {
            memory.start_deferred = true;
            continue;
        }
        let exempt = matches!(reason, Reason::Operator | Reason::SlotGuard(_));
        if !exempt && let Some(held) = storm(config, memory, &node.name, now) {
            actions.push(held);
            continue;
        }
        memory.note_start(now, variant);
        state.leadership.parked.remove(&node.name);
        if reason.is_sync_rule() {
            memory.sync_restart_at = Some(now);
            sync_restart_issued = true;
        }
        if !restart && state.all_down_next_start.is_some() {
            state.all_down_next_start = Some(crate::time::saturating_add(
                now,
                config.thresholds.all_down_stagger,
            ));
        }
        if reason == Reason::AllDown && !state.all_down_announced {
            state.all_down_announced = true;
            actions.push(Action::AllDown {
                nodes: observation.nodes.len(),
            });
        }
        let node_name = node.name.clone();
        actions.push(if restart {
            Action::Restart {
                node: node_name,
                reason,
                variant,
            }
        } else {
            Action::Start {
                node: node_name,
                reason,
                variant,
            }
        });
    }

    // A node on its fallback config goes back to its normal config (the file only: the process
    // keeps running) once a sibling is in sync.
    for node in &observation.nodes {
        let Some(memory) = state.nodes.get_mut(&node.name) else {
            continue;
        };
        if memory.variant == Variant::Fallback
            && pool.others_in_sync(&node.name)
            && !node.busy
            && !actions.iter().any(|action| {
                action.node() == Some(node.name.as_str())
                    && !matches!(action, Action::Recovered { .. })
            })
        {
            memory.variant = Variant::Normal;
            actions.push(Action::UseConfig {
                node: node.name.clone(),
                variant: Variant::Normal,
            });
        }
    }

    let acted: BTreeSet<String> = actions
        .iter()
        .filter(|action| matches!(action, Action::Start { .. } | Action::Restart { .. }))
        .filter_map(|action| action.node().map(str::to_string))
        .collect();
    let leadership = leader::decide(
        &config.leader,
        &mut state.leadership,
        &lead,
        observation,
        facts,
        &acted,
        observation.leader_job,
    );
    for action in leadership {
        if let Action::Restart { node, reason, .. } = &action {
            let memory = state.nodes.entry(node.clone()).or_default();
            // A planned restart (schedule refresh) is not counted by storm protection; an unfit
            // leader's is (a node that keeps falling back is held, not restarted forever).
            if matches!(reason, Reason::LeaderUnfit(_))
                && let Some(held) = storm(config, memory, node, now)
            {
                actions.push(held);
                continue;
            }
            memory.note_start(now, Variant::Normal);
            if reason.is_sync_rule() {
                memory.sync_restart_at = Some(now);
            }
        }
        actions.push(action);
    }
    actions.extend(kes::decide(
        config.kes_alert_periods,
        &mut state.key_alerts,
        &observation.nodes,
    ));
    actions
}

/// Storm protection: counts a start or restart of `node` now against its others within
/// `restart_window`; at `max_restarts` the node is held instead (the `Held` action returned).
fn storm(
    config: &PolicyConfig,
    memory: &mut NodeMemory,
    node: &str,
    now: SystemTime,
) -> Option<Action> {
    let window = config.thresholds.restart_window;
    memory
        .restarts
        .retain(|at| now.duration_since(*at).unwrap_or_default() < window);
    let n_restarts = u32::try_from(memory.restarts.len()).unwrap_or(u32::MAX);
    if n_restarts >= config.thresholds.max_restarts {
        let reason = HoldReason::Storm {
            restarts: n_restarts,
            window_secs: window.as_secs(),
        };
        memory.start_deferred = false;
        return Some(hold(memory, node, reason, now));
    }
    memory.restarts.push(now);
    None
}

/// Holds `node` from `now` for `reason`; the `Held` action that reports it.
fn hold(memory: &mut NodeMemory, node: &str, reason: HoldReason, now: SystemTime) -> Action {
    memory.hold = Some(Hold {
        reason: reason.clone(),
        since: now,
    });
    Action::Held {
        node: node.to_string(),
        reason,
    }
}

/// The rules for a RUNNING program: hung, bootstrap timeout, stale tip, lag. Returns the restart
/// reason, if any (`true`: a restart).
fn judge_running(
    config: &PolicyConfig,
    memory: &mut NodeMemory,
    node: &NodeObservation,
    facts: &NodeFacts,
    best: Option<u64>,
    in_grace: bool,
    now: SystemTime,
) -> Option<(Reason, bool)> {
    let elapsed = |since: SystemTime| now.duration_since(since).unwrap_or_default();
    // Hung: its API has not answered for `hang_timeout` while RUNNING. Judged at once once the API
    // has answered since the start, and only after boot grace when it never has (early in a boot
    // the API is not up yet).
    if let Some(silent) = node.silent_for
        && silent >= config.thresholds.hang_timeout
        && (memory.api_answered || !in_grace)
    {
        return Some((Reason::Hung(silent), true));
    }
    match &node.probe {
        None | Some(Err(_)) => None,
        Some(Ok(status)) => {
            memory.api_answered = true;
            if status.state != NodeState::Running {
                // Booting since its start, unless it was Running since: then since now.
                let boot_start = if memory.seen_running {
                    now
                } else {
                    memory.started_at.unwrap_or(now).min(now)
                };
                let since = *memory.booting_since.get_or_insert(boot_start);
                let booting = elapsed(since);
                return (booting > config.thresholds.bootstrap_timeout)
                    .then_some((Reason::BootstrapTimeout(booting), true));
            }
            memory.booting_since = None;
            memory.seen_running = true;
            let height = facts.height?;
            if memory.last_height != Some(height) {
                memory.last_height = Some(height);
                memory.height_since = Some(now);
            }
            if facts.in_sync {
                memory.sync_restart_at = None;
                // Boot grace has served its purpose: the node is in sync.
                memory.synced_since_start = true;
            }
            if in_grace {
                return None;
            }
            // The facts' computation (height unchanged or tip too old), made on the memory as it
            // was before this tick: the same as the one just updated, since a height that changed
            // this tick is not stale by height. A height standing still is stale first (as it
            // always was); a node whose height moves but is behind is told by how far behind (its
            // tip is old too: blocks behind are time behind); its tip's age alone, when nothing
            // is ahead to lag behind (a node alone, or every node late together).
            match facts.stale {
                Some(stale) if stale.by_height => {
                    return Some((Reason::StaleTip(stale.for_), true));
                }
                _ => {}
            }
            if let Some(reference) = best
                && reference.saturating_sub(height) > config.thresholds.tip_diff_threshold
            {
                return Some((Reason::Lag { height, reference }, true));
            }
            facts
                .stale
                .map(|stale| (Reason::StaleTip(stale.for_), true))
        }
    }
}

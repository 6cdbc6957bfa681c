//! The facts of one tick: computed once by the policy from the observation and its memory, and
//! read by everything else that needs them (the status snapshot, the metrics, the operator paths,
//! the restart-log rows). Whether a node is in sync, how far behind it is, why not, and the
//! reference height are worked out here and nowhere else.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::{NodeMemory, NodeObservation, Observation, PolicyConfig, PolicyState, ProgramSeen};
use crate::chain::{NodeState, Variant};
use crate::supervisor::ProcessState;

/// What the policy concluded about the pool this tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolFacts {
    /// The height lag is measured against: the best node Running now, or the external reference
    /// when it is fresh and higher.
    pub reference: Option<u64>,
    /// The external reference, when fresh enough to count and not leading every local node by
    /// more than `reference_max_lead`.
    pub external: Option<u64>,
    /// A fresh external reference that is ignored: it leads every local node by more than
    /// `reference_max_lead` blocks (and the best local height).
    pub doubted: Option<(u64, u64)>,
    /// Every configured node, in the observation's order.
    pub nodes: Vec<NodeFacts>,
}

/// What the policy concluded about one node this tick.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFacts {
    /// The node.
    pub name: String,
    /// Its height while it is Running (program RUNNING and the node says Running).
    pub height: Option<u64>,
    /// Blocks behind the reference, when its height is known.
    pub lag: Option<u64>,
    /// Running, within `tip_diff_threshold` of the reference, and its tip not stale.
    pub in_sync: bool,
    /// Why it is not in sync (`None` when it is).
    pub why_not: Option<NotInSync>,
    /// Its tip is stale: longer than `tip_timeout` ([`stale`]), the one computation the facts
    /// and the stale-tip restart rule both read.
    pub stale: Option<Stale>,
    /// Its process is up (starting, running or stopping), or nodekeeper is acting on it.
    pub up: bool,
    /// Its supervisord answered about its program.
    pub known: bool,
}

/// A stale tip: for how long, and whether its height alone says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stale {
    /// Whichever says more: its height unchanged for this long, or its tip this old.
    pub for_: Duration,
    /// Its height has not grown for longer than `tip_timeout` (stale on any chain); `false`:
    /// only its tip's age says so (a node catching blocks, but late).
    pub by_height: bool,
}

/// Why a node is not in sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotInSync {
    /// Its supervisord could not be asked.
    Unreachable,
    /// supervisord has no such program.
    Missing,
    /// The program is not RUNNING.
    NotRunning(ProcessState),
    /// The program runs but the node's API gave no status.
    NoAnswer,
    /// The node is not following the chain yet (the chain's name for the phase).
    Booting(String),
    /// Behind the reference by more than the threshold.
    Behind {
        /// Blocks behind.
        lag: u64,
    },
    /// No new block for longer than `tip_timeout`, or a tip older than that.
    StaleTip(Duration),
}

impl fmt::Display for NotInSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotInSync::Unreachable => f.write_str("its supervisord is unreachable"),
            NotInSync::Missing => f.write_str("its program is missing from supervisord"),
            NotInSync::NotRunning(state) => write!(f, "its program is {state}"),
            NotInSync::NoAnswer => f.write_str("its API gave no status"),
            NotInSync::Booting(phase) => write!(f, "it is {phase}"),
            NotInSync::Behind { lag } => write!(f, "{lag} blocks behind"),
            NotInSync::StaleTip(for_) => write!(f, "no new block for {} s", for_.as_secs()),
        }
    }
}

impl PoolFacts {
    /// The facts of the node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeFacts> {
        self.nodes.iter().find(|node| node.name == name)
    }

    /// How many nodes are in sync.
    pub fn in_sync(&self) -> usize {
        self.nodes.iter().filter(|node| node.in_sync).count()
    }

    /// Some node other than `name` is in sync.
    pub fn others_in_sync(&self, name: &str) -> bool {
        self.nodes
            .iter()
            .any(|node| node.name != name && node.in_sync)
    }

    /// The config a start of `name` uses: the normal one when another node is in sync (it can
    /// sync from its siblings), else the fallback.
    pub fn variant_for(&self, name: &str) -> Variant {
        if self.others_in_sync(name) {
            Variant::Normal
        } else {
            Variant::Fallback
        }
    }
}

/// Works the facts out from this tick's observation and the memory as it was before this tick.
pub fn facts(config: &PolicyConfig, state: &PolicyState, observation: &Observation) -> PoolFacts {
    let now = observation.now;
    let elapsed = |since: SystemTime| now.duration_since(since).unwrap_or_default();
    let fresh = observation
        .reference
        .filter(|tip| elapsed(tip.fetched_at) <= config.reference_max_age)
        .map(|tip| tip.height);
    let best_local = observation.nodes.iter().filter_map(running_height).max();
    // A reference far ahead of every local node is more likely wrong than all of them behind:
    // trusting it would restart node after node.
    let doubted = match (fresh, best_local) {
        (Some(external), Some(best))
            if external.saturating_sub(best) > config.reference_max_lead =>
        {
            Some((external, best))
        }
        _ => None,
    };
    let external = fresh.filter(|_| doubted.is_none());
    let reference = best_local.max(external);
    let nodes = observation
        .nodes
        .iter()
        .map(|node| node_facts(config, state.nodes.get(&node.name), node, reference, now))
        .collect();
    PoolFacts {
        reference,
        external,
        doubted,
        nodes,
    }
}

fn node_facts(
    config: &PolicyConfig,
    memory: Option<&NodeMemory>,
    node: &NodeObservation,
    reference: Option<u64>,
    now: SystemTime,
) -> NodeFacts {
    let height = running_height(node);
    let lag = match (reference, height) {
        (Some(best), Some(h)) => Some(best.saturating_sub(h)),
        _ => None,
    };
    let stale = stale(config, memory, node, now);
    let why_not = match &node.program {
        ProgramSeen::Unreachable => Some(NotInSync::Unreachable),
        ProgramSeen::Missing => Some(NotInSync::Missing),
        ProgramSeen::Known(program) if program.state != ProcessState::Running => {
            Some(NotInSync::NotRunning(program.state))
        }
        ProgramSeen::Known(_) => match &node.probe {
            Some(Ok(status)) => match &status.state {
                NodeState::Booting(phase) => Some(NotInSync::Booting(phase.clone())),
                NodeState::Running => match (lag, stale) {
                    (None, _) => Some(NotInSync::NoAnswer),
                    (Some(lag), _) if lag > config.thresholds.tip_diff_threshold => {
                        Some(NotInSync::Behind { lag })
                    }
                    (_, Some(stale)) => Some(NotInSync::StaleTip(stale.for_)),
                    _ => None,
                },
            },
            Some(Err(_)) | None => Some(NotInSync::NoAnswer),
        },
    };
    let up = node.busy
        || matches!(&node.program, ProgramSeen::Known(p) if matches!(
            p.state,
            ProcessState::Starting | ProcessState::Running | ProcessState::Stopping
        ));
    NodeFacts {
        name: node.name.clone(),
        height,
        lag,
        in_sync: why_not.is_none(),
        why_not,
        stale,
        up,
        known: matches!(node.program, ProgramSeen::Known(_)),
    }
}

/// Whether a Running node's tip is stale, longer than `tip_timeout`: whichever says more of its
/// height unchanged (since the memory first saw it, before this tick) and its tip's age
/// (`NodeStatus::tip_time`, on chains whose healthy tips are always recent). `None` for a node
/// that is not Running (a booting node is never stale: its own rule is `bootstrap_timeout`) and
/// for a fresh tip.
pub fn stale(
    config: &PolicyConfig,
    memory: Option<&NodeMemory>,
    node: &NodeObservation,
    now: SystemTime,
) -> Option<Stale> {
    let height = running_height(node)?;
    let elapsed = |since: SystemTime| now.duration_since(since).unwrap_or_default();
    let unchanged = match memory {
        Some(memory) if memory.last_height == Some(height) => {
            memory.height_since.map(elapsed).unwrap_or_default()
        }
        _ => Duration::ZERO,
    };
    let age = match &node.probe {
        Some(Ok(status)) => status.tip_time.map(elapsed).unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let timeout = config.thresholds.tip_timeout;
    (unchanged.max(age) > timeout).then_some(Stale {
        for_: unchanged.max(age),
        by_height: unchanged > timeout,
    })
}

/// The height of a node whose program is RUNNING and whose probe says Running.
pub(super) fn running_height(node: &NodeObservation) -> Option<u64> {
    let ProgramSeen::Known(program) = &node.program else {
        return None;
    };
    if program.state != ProcessState::Running {
        return None;
    }
    match &node.probe {
        Some(Ok(status)) if status.state == NodeState::Running => status.height,
        _ => None,
    }
}

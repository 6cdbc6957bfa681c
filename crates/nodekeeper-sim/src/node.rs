//! One simulated node as a state machine over time: boot states, faults, the leader enclave and leadership logs.
//!
//! Owns everything a node *is*, but does no I/O and never reads the clock: every method takes `now`, and
//! [`Node::advance`] returns the leader events for the shell to record. The HTTP layer (`api`) and the tasks in
//! `mod.rs` call it under a mutex.
//!
//! ## Leadership model (after jmanager §1.6 and Jormungandr 0.8's `leadership/process.rs`)
//!
//! * The pool's leader slots of an epoch are a pure function of the chain ([`ChainParams::pool_schedule`]).
//! * A node puts an epoch's slots into its leadership logs only when it *computes the schedule*, for the leader
//!   ids its enclave holds at that moment:
//!   - when it reaches `Running` (at boot, or when a `bootstrap` fault clears) holding at least one leader: the
//!     slots of the current epoch that are still ahead (the `--secret` case);
//!   - at an epoch boundary crossed while `Running` and holding at least one leader: all slots of the new epoch.
//! * `POST /api/v0/leaders` does **not** compute a schedule. A node promoted mid-epoch therefore has no entry for
//!   the current epoch until the next boundary or a restart, which is the real operators' problem that
//!   nodekeeper's "schedule refresh" solves by restarting such nodes.
//! * Entries are created `Pending`. When their slot starts (checked at each slot boundary, and on every request),
//!   an entry becomes `Block` if the node is `Running`, still holds that leader id, is neither `stuck` nor `hung`,
//!   and is on time; otherwise `Rejected` with a reason. A `Block` outcome is a leader event: one line in the events
//!   file per node and slot. Nodes that lag or are on a fork still lead (that is how adversarial forks happen, and
//!   what nodekeeper must prevent).

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use nodekeeper::chain::jormungandr::secret::LeaderSecret;
use serde::Serialize;

use crate::chain::{Block, BlockDate, Branch, ChainParams, fnv1a, to_hex};
use crate::fault::Fault;

/// The minimum number of entries kept in the leadership logs ring buffer.
const MIN_LOGS_CAPACITY: usize = 1024;

/// The node's start-up state, as in `GET /api/v0/node/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NodeState {
    /// First boot step.
    StartingRestServer,
    /// Opening storage.
    PreparingStorage,
    /// Loading block0.
    PreparingBlock0,
    /// Fetching the chain from peers.
    Bootstrapping,
    /// Starting the node's tasks.
    StartingWorkers,
    /// Fully up: full stats and the `/leaders*` routes are available.
    Running,
}

impl NodeState {
    /// The boot states in order, before `Running`.
    const BOOT: [NodeState; 5] = [
        NodeState::StartingRestServer,
        NodeState::PreparingStorage,
        NodeState::PreparingBlock0,
        NodeState::Bootstrapping,
        NodeState::StartingWorkers,
    ];

    /// The state's name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::StartingRestServer => "StartingRestServer",
            NodeState::PreparingStorage => "PreparingStorage",
            NodeState::PreparingBlock0 => "PreparingBlock0",
            NodeState::Bootstrapping => "Bootstrapping",
            NodeState::StartingWorkers => "StartingWorkers",
            NodeState::Running => "Running",
        }
    }
}

/// The outcome of a leadership log entry, serialised like Jormungandr's `LeadershipLogStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LeaderStatus {
    /// The slot has not come yet.
    Pending,
    /// The node produced a block.
    Block {
        /// The block hash.
        block: String,
        /// The parent hash.
        parent: String,
        /// The block's chain length.
        chain_length: u64,
    },
    /// The node did not produce a block.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// One entry of `GET /api/v0/leaders/logs`, fields in the order Jormungandr serialises them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeadershipLog {
    /// When the schedule entry was computed.
    pub created_at_time: String,
    /// The slot's start time.
    pub scheduled_at_time: String,
    /// The slot's date, `"E.S"`.
    pub scheduled_at_date: String,
    /// When the leader task woke for the slot.
    pub wake_at_time: Option<String>,
    /// When the entry finished; `None` while pending.
    pub finished_at_time: Option<String>,
    /// The outcome.
    pub status: LeaderStatus,
    /// The enclave leader id the entry belongs to.
    pub enclave_leader_id: u32,
}

/// A block the node produced, as one line of the events file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderEvent {
    /// The node's name.
    pub node: String,
    /// The slot's epoch.
    pub epoch: u64,
    /// The slot within the epoch.
    pub slot: u64,
    /// The chain length of the produced block (the node's view).
    pub height: u64,
    /// When the node produced it (wall clock, RFC 3339).
    pub time: String,
}

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Name in logs and leader events.
    pub name: String,
    /// The chain.
    pub params: ChainParams,
    /// The `version` field of the stats.
    pub version: String,
    /// Time from process start to `Running`.
    pub bootstrap: TimeDelta,
    /// The leader key the node boots with (`--secret`), held as leader id 1.
    pub secret: Option<LeaderSecret>,
}

/// How the node's tip relates to the main chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Main,
    Frozen(Block),
    Lag(u64),
    Fork(Branch),
}

#[derive(Debug, Clone)]
struct LogEntry {
    created_at: DateTime<Utc>,
    abs_slot: u64,
    leader_id: u32,
    wake_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    status: LeaderStatus,
}

/// The simulated node.
#[derive(Debug)]
pub struct Node {
    name: String,
    params: ChainParams,
    version: String,
    started_at: DateTime<Utc>,
    bootstrap: TimeDelta,
    fault: Fault,
    view: View,
    leaders: BTreeMap<u32, LeaderSecret>,
    logs: VecDeque<LogEntry>,
    logs_capacity: usize,
    /// Whether the last `advance` saw the node `Running`.
    was_running: bool,
    /// The last absolute slot `advance` processed.
    last_slot: u64,
    /// The latest epoch whose schedule the node computed.
    scheduled_epoch: Option<u64>,
    /// The slot of the last leader event, so one slot gives at most one event.
    last_event_slot: Option<u64>,
    /// The absolute slot when the node first reached `Running`.
    running_from_slot: Option<u64>,
    /// Milliseconds between a slot's start and the leader task waking, per node.
    wake_offset_ms: i64,
}

impl Node {
    /// A node that starts at `now`.
    pub fn new(config: NodeConfig, now: DateTime<Utc>) -> Node {
        let mut leaders = BTreeMap::new();
        if let Some(secret) = config.secret {
            leaders.insert(1, secret);
        }
        let pool_slots =
            usize::try_from(config.params.pool_slots_per_epoch()).unwrap_or(usize::MAX);
        Node {
            wake_offset_ms: i64::try_from(fnv1a(config.name.as_bytes()) % 7).unwrap_or(0) + 1,
            name: config.name,
            params: config.params,
            version: config.version,
            started_at: now,
            bootstrap: config.bootstrap,
            fault: Fault::None,
            view: View::Main,
            leaders,
            logs: VecDeque::new(),
            logs_capacity: MIN_LOGS_CAPACITY.max(pool_slots.saturating_mul(2)),
            was_running: false,
            last_slot: 0,
            scheduled_epoch: None,
            last_event_slot: None,
            running_from_slot: None,
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        self.fault
    }

    /// Seconds since the node started.
    pub fn uptime(&self, now: DateTime<Utc>) -> u64 {
        u64::try_from((now - self.started_at).num_seconds()).unwrap_or(0)
    }

    /// The start-up state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> NodeState {
        if self.fault == Fault::Bootstrap {
            return NodeState::Bootstrapping;
        }
        let elapsed = (now - self.started_at).num_milliseconds().max(0);
        let total = self.bootstrap.num_milliseconds();
        if total <= 0 || elapsed >= total {
            return NodeState::Running;
        }
        let phase = usize::try_from(elapsed.saturating_mul(5) / total).unwrap_or(0);
        NodeState::BOOT[phase.min(NodeState::BOOT.len() - 1)]
    }

    /// The node's tip at `now`, as its faults shape it.
    pub fn tip(&self, now: DateTime<Utc>) -> Block {
        let abs_slot = self.params.abs_slot_or_zero(now);
        match self.view {
            View::Main => Block::main(abs_slot),
            View::Frozen(block) => block,
            View::Lag(blocks) => Block::main(abs_slot.saturating_sub(blocks)),
            View::Fork(branch) => self.params.tip_at_slot(&branch, abs_slot),
        }
    }

    /// Blocks received since the node reached `Running`.
    pub fn blocks_received(&self, now: DateTime<Utc>) -> u64 {
        match self.running_from_slot {
            Some(from) => self.params.abs_slot_or_zero(now).saturating_sub(from),
            None => 0,
        }
    }

    /// Switches to `fault`. `Crash` is recorded but exiting is the shell's job.
    pub fn set_fault(&mut self, fault: Fault, now: DateTime<Utc>) {
        let tip = self.tip(now);
        self.view = match fault {
            Fault::Stuck => match self.view {
                // Setting `stuck` twice keeps the first freeze point.
                View::Frozen(block) => View::Frozen(block),
                _ => View::Frozen(tip),
            },
            Fault::Lag { blocks } => View::Lag(blocks),
            Fault::Fork => match (self.view, tip.branch) {
                (View::Fork(branch), _) => View::Fork(branch),
                (_, Branch::Fork { .. }) => View::Fork(tip.branch),
                (_, Branch::Main) => View::Fork(Branch::fork(
                    self.params.seed(),
                    &self.name,
                    tip.height,
                    self.params.abs_slot_or_zero(now),
                )),
            },
            Fault::None
            | Fault::Bootstrap
            | Fault::Hang
            | Fault::Slow { .. }
            | Fault::SlowLeaders { .. }
            | Fault::RefusePromotion
            | Fault::Crash
            | Fault::CorruptDb => View::Main,
        };
        self.fault = fault;
    }

    /// The leader ids in the enclave, ascending.
    pub fn leaders(&self) -> Vec<u32> {
        self.leaders.keys().copied().collect()
    }

    /// Adds a leader like the 0.8.19 enclave: the same identity gets its existing id back, a new one gets the
    /// highest id + 1 (1 for the first). Computes no schedule (see the module doc).
    pub fn add_leader(&mut self, secret: LeaderSecret) -> u32 {
        if let Some((id, _)) = self
            .leaders
            .iter()
            .find(|(_, held)| held.identity() == secret.identity())
        {
            return *id;
        }
        let id = self
            .leaders
            .keys()
            .next_back()
            .map_or(1, |highest| highest.saturating_add(1));
        self.leaders.insert(id, secret);
        id
    }

    /// Removes a leader; `false` if there is no such id.
    pub fn remove_leader(&mut self, id: u32) -> bool {
        self.leaders.remove(&id).is_some()
    }

    /// The leadership logs, oldest first.
    pub fn leadership_logs(&self) -> Vec<LeadershipLog> {
        self.logs
            .iter()
            .map(|entry| LeadershipLog {
                created_at_time: entry.created_at.to_rfc3339(),
                scheduled_at_time: self.params.slot_time(entry.abs_slot).to_rfc3339(),
                scheduled_at_date: self.params.date_of(entry.abs_slot).to_string(),
                wake_at_time: entry.wake_at.map(|time| time.to_rfc3339()),
                finished_at_time: entry.finished_at.map(|time| time.to_rfc3339()),
                status: entry.status.clone(),
                enclave_leader_id: entry.leader_id,
            })
            .collect()
    }

    /// Brings the node up to `now`: computes schedules and settles the entries whose slot has started.
    /// Returns the leader events (blocks produced) for the shell to record.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Vec<LeaderEvent> {
        let running = self.state(now) == NodeState::Running;
        let abs_slot = self.params.abs_slot_or_zero(now);
        if running {
            let epoch = self.params.date_of(abs_slot).epoch;
            if !self.was_running {
                self.running_from_slot.get_or_insert(abs_slot);
                if self.scheduled_epoch != Some(epoch) {
                    self.compute_schedule(epoch, Some(abs_slot), now);
                }
            } else if abs_slot > self.last_slot
                && self.params.abs_slot_of(BlockDate { epoch, slot: 0 }) > self.last_slot
                && self.scheduled_epoch != Some(epoch)
            {
                self.compute_schedule(epoch, None, now);
            }
        }
        let events = self.settle_due(abs_slot, running, now);
        self.was_running = running;
        self.last_slot = abs_slot;
        events
    }

    /// Schedules the pool's slots of `epoch` (only those after `after_slot`, if given) for every held leader.
    fn compute_schedule(&mut self, epoch: u64, after_slot: Option<u64>, now: DateTime<Utc>) {
        if self.leaders.is_empty() {
            return;
        }
        self.scheduled_epoch = Some(epoch);
        let epoch_start = self.params.abs_slot_of(BlockDate { epoch, slot: 0 });
        let slots: Vec<u64> = self
            .params
            .pool_schedule(epoch)
            .into_iter()
            .map(|slot| epoch_start + slot)
            .filter(|abs| after_slot.is_none_or(|after| *abs > after))
            .collect();
        for leader_id in self.leaders.keys().copied().collect::<Vec<_>>() {
            for abs_slot in &slots {
                self.logs.push_back(LogEntry {
                    created_at: now,
                    abs_slot: *abs_slot,
                    leader_id,
                    wake_at: None,
                    finished_at: None,
                    status: LeaderStatus::Pending,
                });
            }
        }
        while self.logs.len() > self.logs_capacity {
            self.logs.pop_front();
        }
    }

    fn settle_due(&mut self, abs_slot: u64, running: bool, now: DateTime<Utc>) -> Vec<LeaderEvent> {
        let tip = self.tip(now);
        let produced = LeaderStatus::Block {
            block: to_hex(&self.params.block_hash(&tip)),
            parent: to_hex(
                &self
                    .params
                    .parent(&tip)
                    .map_or([0; 32], |parent| self.params.block_hash(&parent)),
            ),
            chain_length: tip.height,
        };
        let mut events = Vec::new();
        for index in 0..self.logs.len() {
            let Some(entry) = self.logs.get(index) else {
                break;
            };
            if entry.status != LeaderStatus::Pending || entry.abs_slot > abs_slot {
                continue;
            }
            let entry_slot = entry.abs_slot;
            let reason = if !running {
                Some("the node was not running at the scheduled time".to_string())
            } else if entry_slot < abs_slot {
                Some("Missed the deadline to create the block".to_string())
            } else if !self.leaders.contains_key(&entry.leader_id) {
                Some(format!(
                    "leader {} is no longer in the enclave",
                    entry.leader_id
                ))
            } else {
                match self.fault {
                    Fault::Stuck => Some("the node is stuck".to_string()),
                    Fault::Hang => Some("the node is hung".to_string()),
                    _ => None,
                }
            };
            let wake_at =
                self.params.slot_time(entry_slot) + TimeDelta::milliseconds(self.wake_offset_ms);
            let status = match reason {
                Some(reason) => LeaderStatus::Rejected { reason },
                None => {
                    if self.last_event_slot != Some(entry_slot) {
                        self.last_event_slot = Some(entry_slot);
                        let date = self.params.date_of(entry_slot);
                        events.push(LeaderEvent {
                            node: self.name.clone(),
                            epoch: date.epoch,
                            slot: date.slot,
                            height: tip.height,
                            time: now.to_rfc3339(),
                        });
                    }
                    produced.clone()
                }
            };
            if let Some(entry) = self.logs.get_mut(index) {
                entry.wake_at = Some(wake_at);
                entry.finished_at = Some(now.max(wake_at));
                entry.status = status;
            }
        }
        events
    }
}

#[cfg(test)]
mod tests;

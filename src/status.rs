//! The pool's status as one snapshot: what the daemon publishes every tick (for the API and
//! `nodekeeper status`) and what a one-shot `nodekeeper status` computes without a daemon; and the
//! operator actions as the daemon reports them (`NodeAction`, `ActionState`, `ActionView`: the API's
//! wire types, shared by the daemon and the API client). Plain data plus the table rendering.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One node's line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLine {
    /// Node name.
    pub name: String,
    /// supervisord program name.
    pub program: String,
    /// supervisord's state (`RUNNING`, ...), or `UNREACHABLE` / `MISSING`.
    pub program_state: String,
    /// The node's own state (`Running`, `Bootstrapping`, ...), or the probe error.
    pub node_state: String,
    /// Tip height.
    pub height: Option<u64>,
    /// Blocks behind the reference (best local node or fresh external reference).
    pub lag: Option<u64>,
    /// Why it is held, when it is.
    pub held: Option<String>,
    /// An action is in flight.
    pub busy: bool,
    /// `normal` or `fallback`: the config the node was last started with.
    pub variant: String,
    /// The last restart-log row about it: time (RFC 3339), action and reason.
    pub last_restart: Option<LastRestart>,
    /// It holds the pool's leader key.
    #[serde(default)]
    pub leader: bool,
    /// Its leader schedule for the current epoch (leadership enabled): e.g. `epoch 12: 3 slots`,
    /// `epoch 12: none`, or `unknown` when its logs could not be read.
    #[serde(default)]
    pub schedule: Option<String>,
}

/// The pool's leadership (leadership enabled).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadershipLine {
    /// The node that holds the key.
    pub leader: Option<String>,
    /// The current epoch.
    pub epoch: Option<u64>,
    /// The pool's next known slot (`epoch.slot`).
    pub next_slot: Option<String>,
    /// When it starts (RFC 3339).
    pub next_slot_at: Option<String>,
    /// Seconds until it starts.
    pub next_slot_in_secs: Option<u64>,
    /// The last pool slot that passed with a leader.
    pub last_slot: Option<String>,
    /// Why leadership changes wait now (a guard window), if they do.
    pub guard: Option<String>,
}

/// The last restart of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRestart {
    /// RFC 3339 UTC.
    pub at: String,
    /// `start` or `restart` as decided by this daemon; `stop` or `start` as read back from the
    /// restart log.
    pub action: String,
    /// Why.
    pub reason: String,
}

/// The whole pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was taken (RFC 3339 UTC).
    pub taken_at: String,
    /// The reference height used for lag, if any.
    pub reference: Option<u64>,
    /// The external reference (PoolTool), if fresh.
    pub external_reference: Option<u64>,
    /// supervisord endpoints that could not be asked, with why.
    pub unreachable: Vec<String>,
    /// Nodes in configuration order.
    pub nodes: Vec<NodeLine>,
    /// Leadership, when enabled.
    #[serde(default)]
    pub leadership: Option<LeadershipLine>,
}

impl Snapshot {
    /// An aligned table, one line per node, then the reference and any unreachable supervisord.
    pub fn table(&self) -> String {
        let headers = [
            "NODE",
            "PROGRAM",
            "NODE STATE",
            "HEIGHT",
            "LAG",
            "LAST RESTART",
        ];
        let rows: Vec<[String; 6]> = self
            .nodes
            .iter()
            .map(|node| {
                let mut program = node.program_state.clone();
                if let Some(held) = &node.held {
                    let _ = write!(program, " (held: {held})");
                } else if node.busy {
                    program.push_str(" (acting)");
                }
                if node.variant == "fallback" {
                    program.push_str(" [fallback config]");
                }
                let mut name = node.name.clone();
                if node.leader {
                    name.push_str(" *");
                }
                let mut node_state = node.node_state.clone();
                if let Some(schedule) = &node.schedule {
                    let _ = write!(node_state, " [{schedule}]");
                }
                [
                    name,
                    program,
                    node_state,
                    node.height.map_or("-".into(), |h| h.to_string()),
                    node.lag.map_or("-".into(), |l| l.to_string()),
                    node.last_restart.as_ref().map_or("-".into(), |r| {
                        format!("{} {} ({})", r.at, r.action, r.reason)
                    }),
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let mut text = String::new();
            for (index, cell) in cells.iter().enumerate() {
                if index + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<width$}  ", width = widths[index]);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&mut out, &headers.map(String::from));
        for row in &rows {
            line(&mut out, row);
        }
        match (self.reference, self.external_reference) {
            (Some(reference), Some(external)) => {
                let _ = writeln!(
                    out,
                    "reference height {reference} (PoolTool majority max {external})"
                );
            }
            (Some(reference), None) => {
                let _ = writeln!(out, "reference height {reference} (best local node)");
            }
            _ => {}
        }
        if let Some(l) = &self.leadership {
            let _ = write!(
                out,
                "leader: {}",
                l.leader
                    .as_deref()
                    .unwrap_or("none (no node holds the key)")
            );
            if let Some(epoch) = l.epoch {
                let _ = write!(out, "; epoch {epoch}");
            }
            match (&l.next_slot, &l.next_slot_at, l.next_slot_in_secs) {
                (Some(slot), Some(at), Some(secs)) => {
                    let _ = write!(out, "; next slot {slot} at {at} (in {secs} s)");
                }
                _ => out.push_str("; next slot unknown"),
            }
            if let Some(guard) = &l.guard {
                let _ = write!(out, "; changes wait: {guard}");
            }
            out.push('\n');
        }
        for unreachable in &self.unreachable {
            let _ = writeln!(out, "unreachable: {unreachable}");
        }
        out
    }
}

/// What an operator can ask for a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeAction {
    /// Stop then start (`Reason::Operator`: storm protection does not apply). A hold stays.
    Restart,
    /// Start; ends any hold.
    Start,
    /// Stop; the node is held (`held by an operator`) so the loop does not start it again.
    Stop,
    /// Leave the node alone until released.
    Hold,
    /// Manage the node again (a stopped node is started).
    Release,
    /// Hand the leader key to the node at the next safe moment (leadership enabled).
    Leader,
}

impl NodeAction {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeAction::Restart => "restart",
            NodeAction::Start => "start",
            NodeAction::Stop => "stop",
            NodeAction::Hold => "hold",
            NodeAction::Release => "release",
            NodeAction::Leader => "leader",
        }
    }
}

/// Where an operator action is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ActionState {
    /// In flight.
    Running,
    /// Done.
    Done {
        /// What happened, e.g. `node1: restarted`.
        message: String,
    },
    /// Failed.
    Failed {
        /// Why, one line.
        error: String,
    },
}

/// An operator action as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionView {
    /// Its id.
    pub id: String,
    /// The node.
    pub node: String,
    /// What.
    pub action: NodeAction,
    /// When it was accepted (RFC 3339 UTC).
    pub requested_at: String,
    /// The operator's words, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where it is.
    #[serde(flatten)]
    pub state: ActionState,
}

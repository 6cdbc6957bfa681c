//! The pool's status as one snapshot: what the daemon publishes every tick (for the API and
//! `nodekeeper status`) and what a one-shot `nodekeeper status` computes without a daemon; and the
//! operator actions as the daemon reports them (`NodeAction`, `ActionState`, `ActionView`: the API's
//! wire types, shared by the daemon and the API client). Plain data plus the table rendering.
//!
//! Every chain fills the same fields with its own facts (height, lag, who holds the pool's key,
//! the pool's next slot or turn), and [`ChainLine`] carries the chain's words for them, so the
//! table reads as that chain's operators speak (`producer`, `round`, `next turn`) while the JSON
//! keeps Jormungandr's field names.

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
    /// Tip height (Jormungandr and cardano: block number; nodeos: head block number).
    pub height: Option<u64>,
    /// The last irreversible block where the chain reports one (nodeos: LIB).
    #[serde(default)]
    pub irreversible_height: Option<u64>,
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
    /// It holds the pool's key (Jormungandr: the leader key; nodeos: an unpaused producer;
    /// cardano: forging). The name is Jormungandr's, kept for its consumers.
    #[serde(default)]
    pub leader: bool,
    /// When it holds the pool's key, what it does in the chain's word (`leader`, `producer`,
    /// `forging`).
    #[serde(default)]
    pub role: Option<String>,
    /// Its leader schedule for the current epoch (leadership enabled): e.g. `epoch 12: 3 slots`,
    /// `epoch 12: none`, or `unknown` when its logs could not be read.
    #[serde(default)]
    pub schedule: Option<String>,
    /// With `[cluster]`: the instance that manages it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// The pool's leadership (leadership enabled).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadershipLine {
    /// The node that holds the key.
    pub leader: Option<String>,
    /// The current epoch.
    pub epoch: Option<u64>,
    /// The pool's next known slot (`epoch.slot`; nodeos: the first block of our producer's next
    /// turn, `round.block in the round`).
    pub next_slot: Option<String>,
    /// The same as one number: the absolute slot (cardano's `SlotNo`; nodeos: the block number).
    #[serde(default)]
    pub next_slot_number: Option<u64>,
    /// When it starts (RFC 3339).
    pub next_slot_at: Option<String>,
    /// Seconds until it starts.
    pub next_slot_in_secs: Option<u64>,
    /// The last pool slot that passed with a leader.
    pub last_slot: Option<String>,
    /// Why leadership changes wait now (a guard window), if they do.
    pub guard: Option<String>,
}

/// The pool's chain and its words for the facts every chain shares.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLine {
    /// `jormungandr`, `nodeos` or `cardano`.
    pub name: String,
    /// Our producer account (nodeos `[leadership] producer`).
    #[serde(default)]
    pub producer: Option<String>,
    /// What the node holding the pool's key does (`leader`, `producer`, `forging`).
    pub role: String,
    /// That node as a noun (`leader`, `producer`, `forging node`).
    pub holder: String,
    /// The daemon's epoch in the chain's words (`epoch`; nodeos: `round`).
    pub epoch: String,
    /// One of the pool's slots (`slot`; nodeos: `block`).
    pub slot: String,
    /// The pool's next chance to make a block (`slot`; nodeos: `turn`).
    pub next: String,
}

impl ChainLine {
    /// Jormungandr's words: what a snapshot without a chain (an older daemon's) is read with.
    pub fn jormungandr() -> ChainLine {
        ChainLine {
            name: "jormungandr".into(),
            producer: None,
            role: "leader".into(),
            holder: "leader".into(),
            epoch: "epoch".into(),
            slot: "slot".into(),
            next: "slot".into(),
        }
    }
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
    /// The pool's chain (absent from an older daemon's snapshot: Jormungandr).
    #[serde(default)]
    pub chain: Option<ChainLine>,
    /// With `[cluster]`: this instance and the election, as this instance sees them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterLine>,
    /// The backup or restore in flight (one at a time), with its progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveLine>,
}

/// A backup or restore in flight, as far as it has come.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveLine {
    /// The node.
    pub node: String,
    /// `backup` or `restore`.
    pub kind: String,
    /// `verifying`, `stopping`, `archiving`, `restoring`, `starting`.
    pub phase: String,
    /// The target directory (backup) or the archive (restore).
    pub path: String,
    /// Bytes of file content read (backup) or written (restore) so far.
    pub bytes: u64,
    /// Files handled so far.
    pub files: u64,
    /// Seconds since the job started.
    pub elapsed_secs: u64,
    /// Why (`operator`, `scheduled`, the automatic restore's reason).
    pub why: String,
}

/// The cluster as one instance sees it (`[cluster]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterLine {
    /// This instance.
    pub instance: String,
    /// The election: `elected` (this instance may let a node produce), `follower` (another
    /// instance is elected), `campaigning` (none known), `no lease` (etcd unreachable or the
    /// lease lost).
    pub election: String,
    /// The elected instance, when known.
    pub leader: Option<String>,
    /// etcd answered the session's last call.
    pub etcd_reachable: bool,
    /// The producer recorded in etcd by the last fenced promotion (`node@instance`).
    pub producer: Option<String>,
    /// The instances whose snapshot is live, this one included.
    pub instances: Vec<String>,
}

impl Snapshot {
    /// An aligned table: the chain, one line per node, then the reference, the pool's leadership
    /// and any unreachable supervisord.
    pub fn table(&self) -> String {
        let words = self.chain.clone().unwrap_or_else(ChainLine::jormungandr);
        let headers = [
            "NODE",
            "PROGRAM",
            "NODE STATE",
            "HEIGHT",
            "LAG",
            "ROLE",
            "LAST RESTART",
        ];
        let rows: Vec<[String; 7]> = self
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
                if let Some(instance) = &node.instance {
                    let _ = write!(name, "@{instance}");
                }
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
                    match (node.height, node.irreversible_height) {
                        (Some(height), Some(lib)) => format!("{height} (LIB {lib})"),
                        (Some(height), None) => height.to_string(),
                        (None, _) => "-".into(),
                    },
                    node.lag.map_or("-".into(), |l| l.to_string()),
                    match (&node.role, node.leader) {
                        (Some(role), _) => role.clone(),
                        (None, true) => words.role.clone(),
                        (None, false) => "-".into(),
                    },
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
        if let Some(cluster) = &self.cluster {
            let _ = write!(
                out,
                "cluster: instance {} ({}), etcd {}",
                cluster.instance,
                cluster.election,
                if cluster.etcd_reachable {
                    "reachable"
                } else {
                    "unreachable"
                }
            );
            if let Some(leader) = cluster.leader.as_ref().filter(|l| **l != cluster.instance) {
                let _ = write!(out, ", elected: {leader}");
            }
            if let Some(producer) = &cluster.producer {
                let _ = write!(out, ", producer: {producer}");
            }
            out.push('\n');
        }
        if self.chain.is_some() {
            let _ = write!(out, "chain: {}", words.name);
            if let Some(producer) = &words.producer {
                let _ = write!(out, ", producer: {producer}");
            }
            out.push('\n');
        }
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
                "{}: {}",
                words.holder,
                l.leader
                    .as_deref()
                    .unwrap_or("none (no node holds the key)")
            );
            if let Some(epoch) = l.epoch {
                let _ = write!(out, "; {} {epoch}", words.epoch);
            }
            let next = &words.next;
            match (&l.next_slot, &l.next_slot_at, l.next_slot_in_secs) {
                (Some(slot), Some(at), Some(secs)) => {
                    let _ = write!(out, "; next {next} ");
                    let (epoch, in_epoch) = slot.split_once('.').unwrap_or((slot, "?"));
                    match l.next_slot_number {
                        // Jormungandr's operators know slots as `epoch.slot`.
                        None => out.push_str(slot),
                        Some(_) if words.name == "jormungandr" => out.push_str(slot),
                        // cardano: slots are numbered (`SlotNo`).
                        Some(number) if words.next == words.slot => {
                            let _ = write!(
                                out,
                                "{number} ({} {epoch} {} {in_epoch})",
                                words.epoch, words.slot
                            );
                        }
                        // nodeos: a turn starts at a block.
                        Some(number) => {
                            let _ =
                                write!(out, "at {} {number} ({} {epoch})", words.slot, words.epoch);
                        }
                    }
                    let _ = write!(out, " at {at} (in {secs} s)");
                }
                _ => {
                    let _ = write!(out, "; next {next} unknown");
                }
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
    /// Stop the node, archive its data directory, start it again (`[backup]`; never the node
    /// that holds the key, never inside a guard window).
    Backup,
    /// Stop the node, restore its data directory from a verified archive, start it again.
    Restore,
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
            NodeAction::Backup => "backup",
            NodeAction::Restore => "restore",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, height: u64, lag: u64) -> NodeLine {
        NodeLine {
            name: name.into(),
            program: name.into(),
            program_state: "RUNNING".into(),
            node_state: "Running".into(),
            height: Some(height),
            lag: Some(lag),
            variant: "normal".into(),
            ..NodeLine::default()
        }
    }

    fn holder(mut line: NodeLine, role: &str) -> NodeLine {
        line.leader = true;
        line.role = Some(role.into());
        line
    }

    fn leadership(leader: &str, epoch: u64, slot: &str, number: u64) -> LeadershipLine {
        LeadershipLine {
            leader: Some(leader.into()),
            epoch: Some(epoch),
            next_slot: Some(slot.into()),
            next_slot_number: Some(number),
            next_slot_at: Some("2026-12-07T00:00:30Z".into()),
            next_slot_in_secs: Some(30),
            ..LeadershipLine::default()
        }
    }

    fn snapshot(nodes: Vec<NodeLine>, leadership: LeadershipLine, chain: ChainLine) -> Snapshot {
        Snapshot {
            taken_at: "2026-12-07T00:00:00Z".into(),
            reference: Some(nodes[0].height.unwrap()),
            nodes,
            leadership: Some(leadership),
            chain: Some(chain),
            ..Snapshot::default()
        }
    }

    #[test]
    fn jormungandr_keeps_its_words_and_its_marker() {
        let snapshot = snapshot(
            vec![
                holder(node("node1", 100, 0), "leader"),
                node("node2", 98, 2),
            ],
            leadership("node1", 12, "12.311", 5_311),
            ChainLine::jormungandr(),
        );
        assert_eq!(
            snapshot.table(),
            "chain: jormungandr\n\
             NODE     PROGRAM  NODE STATE  HEIGHT  LAG  ROLE    LAST RESTART\n\
             node1 *  RUNNING  Running     100     0    leader  -\n\
             node2    RUNNING  Running     98      2    -       -\n\
             reference height 100 (best local node)\n\
             leader: node1; epoch 12; next slot 12.311 at 2026-12-07T00:00:30Z (in 30 s)\n"
        );
    }

    #[test]
    fn nodeos_shows_the_lib_the_producer_and_the_next_turn() {
        let mut bp1 = holder(node("bp1", 5_000, 0), "producer");
        bp1.irreversible_height = Some(4_800);
        let chain = ChainLine {
            name: "nodeos".into(),
            producer: Some("ourbp".into()),
            role: "producer".into(),
            holder: "producer".into(),
            epoch: "round".into(),
            slot: "block".into(),
            next: "turn".into(),
        };
        let snapshot = snapshot(
            vec![bp1, node("bp2", 4_990, 10)],
            leadership("bp1", 69, "69.12", 5_052),
            chain,
        );
        assert_eq!(
            snapshot.table(),
            "chain: nodeos, producer: ourbp\n\
             NODE   PROGRAM  NODE STATE  HEIGHT           LAG  ROLE      LAST RESTART\n\
             bp1 *  RUNNING  Running     5000 (LIB 4800)  0    producer  -\n\
             bp2    RUNNING  Running     4990             10   -         -\n\
             reference height 5000 (best local node)\n\
             producer: bp1; round 69; next turn at block 5052 (round 69) at \
             2026-12-07T00:00:30Z (in 30 s)\n"
        );
    }

    #[test]
    fn cardano_shows_the_forging_node_and_the_absolute_slot() {
        let chain = ChainLine {
            name: "cardano".into(),
            producer: None,
            role: "forging".into(),
            holder: "forging node".into(),
            epoch: "epoch".into(),
            slot: "slot".into(),
            next: "slot".into(),
        };
        let mut snapshot = snapshot(
            vec![
                node("relay", 700, 0),
                holder(node("core", 700, 0), "forging"),
            ],
            leadership("core", 3, "3.41", 1_241),
            chain,
        );
        snapshot.leadership.as_mut().unwrap().guard = Some("pool slot 3.41 is near".into());
        assert_eq!(
            snapshot.table(),
            "chain: cardano\n\
             NODE    PROGRAM  NODE STATE  HEIGHT  LAG  ROLE     LAST RESTART\n\
             relay   RUNNING  Running     700     0    -        -\n\
             core *  RUNNING  Running     700     0    forging  -\n\
             reference height 700 (best local node)\n\
             forging node: core; epoch 3; next slot 1241 (epoch 3 slot 41) at \
             2026-12-07T00:00:30Z (in 30 s); changes wait: pool slot 3.41 is near\n"
        );
    }

    #[test]
    fn the_json_adds_fields_and_reads_an_older_daemons_snapshot() {
        let mut line = holder(node("bp1", 5_000, 0), "producer");
        line.irreversible_height = Some(4_800);
        let json = serde_json::to_value(&line).unwrap();
        // Jormungandr's names stay; the chain's facts are added beside them.
        assert_eq!(json["leader"], true);
        assert_eq!(json["height"], 5_000);
        assert_eq!(json["role"], "producer");
        assert_eq!(json["irreversible_height"], 4_800);
        let json = serde_json::to_value(leadership("bp1", 69, "69.12", 5_052)).unwrap();
        assert_eq!(json["next_slot"], "69.12");
        assert_eq!(json["next_slot_number"], 5_052);
        assert_eq!(json["next_slot_in_secs"], 30);
        // A snapshot of a daemon before chains: no chain, no role, read as Jormungandr's.
        let old = serde_json::json!({
            "taken_at": "2026-12-07T00:00:00Z", "reference": 100, "external_reference": null,
            "unreachable": [],
            "nodes": [{"name": "node1", "program": "node1", "program_state": "RUNNING",
                       "node_state": "Running", "height": 100, "lag": 0, "held": null,
                       "busy": false, "variant": "normal", "last_restart": null,
                       "leader": true, "schedule": "epoch 1: 2 slots"}],
            "leadership": {"leader": "node1", "epoch": 1, "next_slot": "1.5",
                           "next_slot_at": "2026-12-07T00:00:30Z", "next_slot_in_secs": 30,
                           "last_slot": null, "guard": null}
        });
        let snapshot: Snapshot = serde_json::from_value(old).unwrap();
        assert_eq!(snapshot.chain, None);
        let table = snapshot.table();
        assert!(!table.contains("chain:"), "{table}");
        assert!(table.contains("node1 *"), "{table}");
        assert!(
            table.contains("leader: node1; epoch 1; next slot 1.5 at"),
            "{table}"
        );
    }
}

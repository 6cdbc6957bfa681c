//! The chain-neutral core of a node: what the daemon and the policy know of any node whatever its
//! chain, and the trait family a chain adapter implements. Everything the daemon asks of a node
//! goes through [`ChainNode`]: its probe (state, height, head time), its leader control (who holds
//! the pool's key, demote, promote; [`LeaderControl`]), its schedule (chain time, the pool's slots;
//! [`Schedule`]) and its generated config file. Jormungandr (REST API v0) is the first adapter
//! (`jormungandr`).
//!
//! The traits are shaped for the chains that come next as much as for Jormungandr: a node whose
//! producing is paused and resumed (nodeos: `demote` = `POST /v1/producer/pause`, `promote` =
//! resume, `holding` = `GET /v1/producer/paused`), and one whose key is reloaded by a signal
//! (cardano-node: `promote` = put the credential files in place and send SIGHUP through
//! supervisord, `demote` = move them away and SIGHUP again). An adapter node is built per node from
//! its settings and may hold what it needs for that (its supervisord, its program name).
//!
//! A probe never fails the caller: an unreachable or hung node is an observation (`ProbeError`),
//! not an error.

pub mod cardano;
pub mod command;
pub mod jormungandr;
pub mod nodeos;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::slots::{LeaderLog, SlotClock};

/// Which chain's node software a node runs (one chain per configuration): the name as written
/// in the file (`chain = "nodeos"`), and the chain's own words for the facts every chain shares,
/// so that the status, the metrics and the alerts name them as that chain's operators do.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChainName {
    /// Jormungandr (REST API v0).
    #[default]
    Jormungandr,
    /// Antelope nodeos (EOS/Vaulta, WAX, Telos).
    Nodeos,
    /// cardano-node.
    Cardano,
}

impl ChainName {
    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainName::Jormungandr => "jormungandr",
            ChainName::Nodeos => "nodeos",
            ChainName::Cardano => "cardano",
        }
    }

    /// The default (Jormungandr): left out when a configuration is written back.
    pub fn is_default(&self) -> bool {
        *self == ChainName::default()
    }

    /// `thresholds.tip_timeout` when the file does not set it: how long a healthy node of the
    /// chain can go without a new block (and how old its tip can be).
    /// - Jormungandr: 90 s, jmanager's (a tip is judged by its height only).
    /// - nodeos: 30 s. Blocks come every 0.5 s and one missing producer leaves a 6 s gap, so four
    ///   producers missing in a row still pass; block producers' failover scripts alert at about
    ///   30 s.
    /// - cardano: 300 s. A block every 20 s on average with exponential gaps: P(gap > 300 s) =
    ///   e^-15 ≈ 3e-7, about one false alarm in years of blocks.
    pub fn default_tip_timeout(self) -> Duration {
        match self {
            ChainName::Jormungandr => Duration::from_secs(90),
            ChainName::Nodeos => Duration::from_secs(30),
            ChainName::Cardano => Duration::from_secs(300),
        }
    }

    /// `thresholds.tip_diff_threshold` when the file does not set it: blocks behind the reference
    /// before a node is restarted.
    /// - Jormungandr: 7, jmanager's.
    /// - nodeos: 20 blocks (10 s): more than one producer's missed turn (12 blocks) apart, yet far
    ///   under the 30 s a failover alerts at.
    /// - cardano: 5 blocks (about 100 s on average): two healthy nodes of a pool differ by one
    ///   block, two during a fork switch; gLiveView calls 600 slots (10 min) behind.
    pub fn default_tip_diff_threshold(self) -> u64 {
        match self {
            ChainName::Jormungandr => 7,
            ChainName::Nodeos => 20,
            ChainName::Cardano => 5,
        }
    }

    /// The chain's node program, the default `binary`.
    pub fn default_binary(self) -> &'static str {
        match self {
            ChainName::Jormungandr => "jormungandr",
            ChainName::Nodeos => "nodeos",
            ChainName::Cardano => "cardano-node",
        }
    }

    /// The one word for what the node that holds the pool's key does (the status's ROLE column):
    /// Jormungandr's `leader` (holds the leader key), nodeos's `producer` (unpaused), cardano's
    /// `forging` (credentials placed and reloaded).
    pub fn role(self) -> &'static str {
        match self {
            ChainName::Jormungandr => "leader",
            ChainName::Nodeos => "producer",
            ChainName::Cardano => "forging",
        }
    }

    /// The node that holds the pool's key, as a noun (`leader is now node2`).
    pub fn holder(self) -> &'static str {
        match self {
            ChainName::Jormungandr => "leader",
            ChainName::Nodeos => "producer",
            ChainName::Cardano => "forging node",
        }
    }

    /// What a hand-over moves from one node to another (`moved the leader key to node2`).
    pub fn key(self) -> &'static str {
        match self {
            ChainName::Jormungandr => "the leader key",
            ChainName::Nodeos => "block production",
            ChainName::Cardano => "the forging credentials",
        }
    }

    /// The daemon's epoch in the chain's words: nodeos's is a round of the active schedule.
    pub fn epoch(self) -> &'static str {
        match self {
            ChainName::Jormungandr | ChainName::Cardano => "epoch",
            ChainName::Nodeos => "round",
        }
    }

    /// One of the pool's slots (nodeos: a block of our producer's turn).
    pub fn slot(self) -> &'static str {
        match self {
            ChainName::Jormungandr | ChainName::Cardano => "slot",
            ChainName::Nodeos => "block",
        }
    }

    /// The pool's next chance to make a block, in the chain's words: a leader slot, or nodeos's
    /// next turn of our producer.
    pub fn next(self) -> &'static str {
        match self {
            ChainName::Jormungandr | ChainName::Cardano => "slot",
            ChainName::Nodeos => "turn",
        }
    }
}

/// What the configuration resolves for one node's chain adapter: each adapter owns its settings.
#[derive(Clone, Debug)]
pub enum ChainSettings {
    /// A Jormungandr node (REST API v0).
    Jormungandr(jormungandr::Settings),
    /// An Antelope nodeos node.
    Nodeos(nodeos::Settings),
    /// A cardano-node.
    Cardano(cardano::Settings),
}

impl ChainSettings {
    /// The chain's name as configured.
    pub fn name(&self) -> &'static str {
        self.chain().as_str()
    }

    /// Which chain.
    pub fn chain(&self) -> ChainName {
        match self {
            ChainSettings::Jormungandr(_) => ChainName::Jormungandr,
            ChainSettings::Nodeos(_) => ChainName::Nodeos,
            ChainSettings::Cardano(_) => ChainName::Cardano,
        }
    }

    /// Whether the node boots producing, given its supervisord command (see
    /// [`ChainNode::boots_producing`]).
    pub fn boots_producing(&self, command: Option<&str>) -> BootVerdict {
        match self {
            ChainSettings::Jormungandr(settings) => settings.boots_producing(command),
            ChainSettings::Nodeos(settings) => settings.boots_producing(command),
            ChainSettings::Cardano(settings) => settings.boots_producing(command),
        }
    }

    /// The arguments nodekeeper adds to the operator's (`args`) in the generated supervisord
    /// program: before them (Jormungandr's config, nodeos's `--pause-on-startup`), or after
    /// cardano-node's `run` subcommand and the operator's options.
    pub fn program_args(&self, args: &[String]) -> Vec<String> {
        match self {
            ChainSettings::Jormungandr(settings) => {
                [settings.config_args(), args.to_vec()].concat()
            }
            ChainSettings::Nodeos(settings) => [settings.program_args(), args.to_vec()].concat(),
            ChainSettings::Cardano(settings) => {
                let run =
                    (args.first().map(String::as_str) != Some("run")).then(|| "run".to_string());
                run.into_iter()
                    .chain(args.iter().cloned())
                    .chain(settings.program_args())
                    .collect()
            }
        }
    }

    /// The address nodekeeper asks the node at (its API or its metrics).
    pub fn api_url(&self) -> &reqwest::Url {
        match self {
            ChainSettings::Jormungandr(settings) => &settings.rest_url,
            ChainSettings::Nodeos(settings) => &settings.rest_url,
            ChainSettings::Cardano(settings) => &settings.metrics_url,
        }
    }
}

/// A boxed future, so that the adapter traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a node says about itself (Jormungandr: `GET /api/v0/node/stats`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeStatus {
    /// The node's life-cycle state.
    pub state: NodeState,
    /// Node software version (`jormungandr 0.9.0-...`).
    pub version: String,
    /// Tip height, parsed as an integer (the node sends a string); only while Running.
    pub height: Option<u64>,
    /// The last block that can no longer be reverted, where the chain reports one (nodeos:
    /// `last_irreversible_block_num`); `None` elsewhere.
    pub irreversible_height: Option<u64>,
    /// Tip block hash, hex.
    pub tip_hash: Option<String>,
    /// Tip block date `epoch.slot`.
    pub tip_date: Option<String>,
    /// Slot time of the tip block, as the node reports it (shown, never judged).
    pub last_block_time: Option<SystemTime>,
    /// When the tip block was made, on chains where a healthy node's tip is always recent
    /// (nodeos: `head_block_time`; cardano: the tip's `slotNum` through the Shelley genesis): the
    /// policy judges a Running node whose tip is older than `tip_timeout` stale. `None` where it
    /// is not known, or where a healthy node's tip may be old (Jormungandr: height only).
    pub tip_time: Option<SystemTime>,
    /// Seconds the node has been up, as it reports.
    pub uptime_secs: Option<u64>,
}

/// A node's life-cycle state, chain-neutral: it follows the chain, or it is not there yet.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum NodeState {
    /// Following the chain: the only state whose height counts.
    Running,
    /// Starting, replaying or catching up before it follows the chain; the chain's own name for
    /// the phase (Jormungandr's `Bootstrapping`, `PreparingBlock0`, ...).
    Booting(String),
}

impl NodeState {
    /// `Running`, or the chain's name of the phase.
    pub fn name(&self) -> &str {
        match self {
            NodeState::Running => "Running",
            NodeState::Booting(phase) => phase,
        }
    }
}

/// Why a probe got no status. Every variant means "the API did not answer usefully".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub enum ProbeError {
    /// No answer within the probe timeout (a hung node accepts and never answers).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Nothing listens (the node is down or not yet serving REST).
    #[error("connection refused")]
    Refused,
    /// Another connection failure.
    #[error("connection failed: {0}")]
    Connect(String),
    /// An HTTP status other than 200.
    #[error("HTTP {0}")]
    Status(u16),
    /// The body was not the expected JSON (the detail is short, never the whole body).
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// nodekeeper's own host could not make the call (too many open files, no buffer space): it
    /// says nothing about the node and never counts against it.
    #[error("not asked: nodekeeper's host is short of resources ({0})")]
    Local(String),
}

impl ProbeError {
    /// A short stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeError::Timeout(_) => "timeout",
            ProbeError::Refused => "refused",
            ProbeError::Connect(_) => "connect",
            ProbeError::Status(_) => "http_status",
            ProbeError::Malformed(_) => "malformed",
            ProbeError::Local(_) => "local",
        }
    }
}

/// What one node holds of the pool's key: the handles its leader control needs to take it away
/// again (Jormungandr: the enclave's leader ids; a chain that only produces or not has one handle
/// while producing). Empty: the node is passive. Opaque to the policy, which only asks whether a
/// node holds anything and hands the handles back to the adapter to demote.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holding(pub Vec<u32>);

impl Holding {
    /// Holds nothing.
    pub fn passive() -> Holding {
        Holding(Vec::new())
    }

    /// Holds the key under at least one handle.
    pub fn holds(&self) -> bool {
        !self.0.is_empty()
    }

    /// Every handle of `promoted` is among these (a promotion confirmed).
    pub fn includes(&self, promoted: &Holding) -> bool {
        promoted.0.iter().all(|id| self.0.contains(id))
    }
}

impl std::fmt::Display for Holding {
    /// The handles, comma-separated (`3`, `1, 2`), or `none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let ids: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&ids.join(", "))
    }
}

/// A leader-control call that failed: what it was about, in the adapter's words (e.g. `leader id
/// 3`), and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {error}")]
pub struct LeaderFailure {
    /// The handle or step concerned.
    pub what: String,
    /// Why.
    pub error: ProbeError,
}

/// Which generated config a node is started with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The normal config (template + overrides).
    #[default]
    Normal,
    /// The default (fallback) config: for a node with no sibling to sync from (Jormungandr: the
    /// default trusted peers).
    Fallback,
}

/// One node of a chain, as its adapter reaches it. Built per node from its settings.
pub trait ChainNode: Send + Sync {
    /// Asks the node how it is. Enforces `timeout` itself and never panics.
    fn probe(&self, timeout: Duration) -> BoxFuture<'_, Result<NodeStatus, ProbeError>>;

    /// Its leader control, when nodekeeper manages the pool's key on this chain.
    fn leader(&self) -> Option<&dyn LeaderControl>;

    /// Its schedule: the chain's time and the pool's slots the node knows.
    fn schedule(&self) -> Option<&dyn Schedule>;

    /// Whether the node boots producing (holding the pool's key) without nodekeeper promoting
    /// it, judged from what it is configured with and from `command`, the command line its
    /// supervisord runs, when read (Jormungandr: `--secret` or `secret_files`; nodeos: no
    /// `--pause-on-startup`; cardano-node: its credentials without
    /// `--start-as-non-producing-node`). Unknown when it cannot be told: a wrapper script may pass
    /// anything.
    fn boots_producing(&self, command: Option<&str>) -> BootVerdict;

    /// What an exit with `status` means when starting the node again cannot help (nodeos: 2, a
    /// dirty database that needs a replay or a restore); `None` for an ordinary crash.
    fn hopeless_exit(&self, status: i32) -> Option<String> {
        let _ = status;
        None
    }

    /// The text the node's software prints when it stops on a corrupt database (nodeos: `database
    /// dirty flag set`), to look for in its log tail ([`corrupt_database_seen`]) after an exit
    /// that [`ChainNode::hopeless_exit`] names; `None` when the chain has no such message.
    fn corrupt_database_marker(&self) -> Option<&'static str> {
        None
    }

    /// The config file nodekeeper generates for the node, as `variant` renders it: where it goes
    /// and its JSON. `None` when the chain's node has no generated file.
    fn config_file(&self, variant: Variant) -> Option<(&Path, &Value)>;

    /// How long the node's forging key stays valid, as its latest probe said (cardano-node:
    /// `remainingKESPeriods`). `None` on chains whose keys do not expire, and while the node
    /// reports nothing (it loaded no credentials since it started).
    fn key_expiry(&self) -> Option<KeyExpiry> {
        None
    }
}

/// Whether a program's log `tail` holds the chain's corrupt-database `marker`
/// ([`ChainNode::corrupt_database_marker`]). An empty marker is never seen: it would match any
/// tail. The tail is the caller's to bound (a few KiB of a program that has just exited), so
/// that a message from an older run is unlikely to be in it.
pub fn corrupt_database_seen(marker: &str, tail: &str) -> bool {
    !marker.is_empty() && tail.contains(marker)
}

/// What a node says of its forging key's validity: periods left, and how long one lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyExpiry {
    /// Key periods left (cardano-node: KES periods on the operational certificate).
    pub periods: u64,
    /// How long one period lasts, when known (cardano: `slotsPerKESPeriod` × `slotLength` from the
    /// genesis).
    pub period: Option<Duration>,
}

impl KeyExpiry {
    /// Roughly the time left: `periods` × `period` (the current period's elapsed part ignored).
    pub fn time_left(&self) -> Option<Duration> {
        self.period
            .map(|period| period.saturating_mul(u32::try_from(self.periods).unwrap_or(u32::MAX)))
    }
}

/// Whether a node boots holding the pool's key, and why nodekeeper thinks so.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootVerdict {
    /// `Some(true)`: it does; `Some(false)`: it does not; `None`: it cannot be told (the policy
    /// then takes it that it may).
    pub with_key: Option<bool>,
    /// Why, in words (`its supervisord command passes --secret`).
    pub why: String,
}

impl BootVerdict {
    /// A verdict of `with_key` because of `why`.
    pub fn new(with_key: Option<bool>, why: impl Into<String>) -> BootVerdict {
        BootVerdict {
            with_key,
            why: why.into(),
        }
    }
}

/// Who holds the pool's key on one node, and moving it: demote, promote, confirm.
pub trait LeaderControl: Send + Sync {
    /// What the node holds now (`Holding::passive()` when nothing). A node that is not up yet may
    /// answer `ProbeError::Refused` or `Status(503)`: it holds nothing.
    fn holding(&self, timeout: Duration) -> BoxFuture<'_, Result<Holding, ProbeError>>;

    /// Takes the key away: every handle of `holding`, all attempted; the failures, if any.
    fn demote<'a>(
        &'a self,
        holding: &'a Holding,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Vec<LeaderFailure>>>;

    /// Gives the node the key; what it holds for it (to confirm with [`LeaderControl::holding`]).
    fn promote(&self, timeout: Duration) -> BoxFuture<'_, Result<Holding, ProbeError>>;
}

/// The chain's time and the pool's schedule as one node knows them.
pub trait Schedule: Send + Sync {
    /// The chain's time (epochs and slots), from the node, never from a configured clock time.
    fn chain_time(&self, timeout: Duration) -> BoxFuture<'_, Result<SlotClock, ProbeError>>;

    /// The pool's slots the node has scheduled (every epoch it keeps), in its order.
    fn pool_slots(&self, timeout: Duration) -> BoxFuture<'_, Result<Vec<LeaderLog>, ProbeError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_database_is_seen_only_when_its_marker_is_in_the_tail() {
        let tail = "info  starting\nerror 2026-12-07T10:00:00.000 nodeos main.cpp:218 main ] \
                    database dirty flag set (likely due to unclean shutdown): replay required\n";
        assert!(corrupt_database_seen("database dirty flag set", tail));
        assert!(!corrupt_database_seen(
            "database dirty flag set",
            "info  starting\nerror shutting down\n"
        ));
        assert!(!corrupt_database_seen("database dirty flag set", ""));
        // A chain without a marker: nothing is ever seen, whatever the tail.
        assert!(!corrupt_database_seen("", tail));
    }
}

//! The chain-neutral view of a node: what the daemon and the policy know of any node whatever its
//! chain (its state, height, head time; why a probe got nothing), and the chain adapters that
//! produce it. Jormungandr (REST API v0) is the first adapter (`jormungandr`). A probe never
//! fails the caller: an unreachable or hung node is an observation (`ProbeError`), not an error.
pub mod jormungandr;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

/// What a node says about itself (Jormungandr: `GET /api/v0/node/stats`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeStatus {
    /// The node's life-cycle state.
    pub state: NodeState,
    /// Node software version (`jormungandr 0.9.0-...`).
    pub version: String,
    /// Tip height, parsed as an integer (the node sends a string); only while Running.
    pub height: Option<u64>,
    /// Tip block hash, hex.
    pub tip_hash: Option<String>,
    /// Tip block date `epoch.slot`.
    pub tip_date: Option<String>,
    /// Slot time of the tip block.
    pub last_block_time: Option<SystemTime>,
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
        }
    }
}

/// A boxed future, so the trait stays object-safe.
pub type ProbeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<NodeStatus, ProbeError>> + Send + 'a>>;

/// Asks one node how it is. Implementations enforce `timeout` themselves and never panic.
pub trait NodeProbe: Send + Sync {
    /// Probes the node whose API base is `api` (e.g. `http://127.0.0.1:3101/api`).
    fn probe<'a>(&'a self, api: &'a reqwest::Url, timeout: Duration) -> ProbeFuture<'a>;
}

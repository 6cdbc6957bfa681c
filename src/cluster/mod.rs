//! Several nodekeepers, one etcd (`[cluster]`): the instance's settings, what instances publish to
//! each other, the pure rules of who may produce (`rules`), the etcd session that keeps the lease,
//! campaigns and fences promotions (`session`), and the lease deadline file the host's fence reads
//! (`deadline`).
//!
//! Without `[cluster]` none of this runs: one instance, no store, exactly as before.

pub mod deadline;
pub mod rules;
#[cfg(test)]
mod rules_prop;
pub mod session;
pub mod settings;

use serde::{Deserialize, Serialize};

pub use settings::ClusterSettings;

use crate::status::{LeadershipLine, NodeLine};

/// What one instance publishes about itself under its lease (`{prefix}/instances/{name}`): gone
/// when its lease is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceSnapshot {
    /// The instance (`cluster.name`).
    pub instance: String,
    /// When it was taken (RFC 3339 UTC).
    pub taken_at: String,
    /// Some node of this instance holds the pool's key or cannot be verified not to.
    pub may_hold: bool,
    /// Its nodes that could produce now (in sync, leader API answering), best first.
    pub candidates: Vec<String>,
    /// Its nodes' status lines (holds included).
    pub nodes: Vec<NodeLine>,
    /// Its view of the pool's leadership (the elected instance's is the pool's).
    #[serde(default)]
    pub leadership: Option<LeadershipLine>,
}

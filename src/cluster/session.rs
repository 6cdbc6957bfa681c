//! The etcd session of one instance (a task): the lease (granted, kept alive every
//! `rules::keepalive_every`, its renewals noted), the campaign in the pool's election, the other
//! instances' snapshots (watched), this instance's own snapshot (put under the lease when it
//! changed), the fenced write of the producer and voluntary resignations. It never stops: etcd
//! unreachable is logged once per outage, retried with backoff, and shown in the view.
//!
//! STUB: the interface the daemon uses; the implementation lands with the session work.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::InstanceSnapshot;
use crate::chain::BoxFuture;

/// What the session knows, published on a watch channel.
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// The lease's time to live.
    pub ttl: Duration,
    /// When the grant or the latest keep-alive of the current lease that succeeded was sent (as
    /// `rules::Known::renewed`, never when its answer came).
    pub renewed: Option<Instant>,
    /// This instance's campaign won: the leader key's creation revision (the fencing token).
    pub elected: Option<i64>,
    /// The elected instance, when known (from the election's leader key).
    pub leader: Option<String>,
    /// The other instances' live snapshots, by name.
    pub peers: BTreeMap<String, InstanceSnapshot>,
    /// The producer recorded in etcd (`node@instance`), when known.
    pub producer: Option<String>,
    /// etcd answered the last call.
    pub reachable: bool,
    /// A pending request to move the key to this node (an operator's, via another instance).
    pub requested: Option<String>,
}

impl ClusterView {
    /// A view with nothing known yet.
    pub fn unknown(ttl: Duration) -> ClusterView {
        ClusterView {
            ttl,
            renewed: None,
            elected: None,
            leader: None,
            peers: BTreeMap::new(),
            producer: None,
            reachable: false,
            requested: None,
        }
    }
}

/// Why a fenced promotion was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// Not elected (any more): the transaction's comparison failed or no campaign won.
    #[error("this instance is not the elected one (the fencing token {0:?} no longer leads)")]
    NotLeader(Option<i64>),
    /// etcd did not answer.
    #[error("etcd: {0}")]
    Unreachable(String),
}

/// What the daemon asks of the cluster (a narrow trait, so the shell's tests use paused time).
pub trait Cluster: Send + Sync {
    /// The session's view, updated on every change.
    fn view(&self) -> watch::Receiver<ClusterView>;
    /// Publishes this instance's snapshot (put under the lease when it changed).
    fn publish(&self, snapshot: InstanceSnapshot);
    /// Records `node` as the producer, in a transaction that fails unless this instance's leader
    /// key still leads (the fencing token). A promotion goes ahead only when this succeeded.
    fn fence(&self, node: &str) -> BoxFuture<'_, Result<(), FenceError>>;
    /// Gives up the election (a voluntary move), then campaigns again.
    fn resign(&self);
    /// Asks the pool to move the key to `node` (of another instance): recorded in etcd for the
    /// elected instance.
    fn request(&self, node: &str);
}

/// The session task's handle (STUB until the session lands).
pub struct Session {
    view: watch::Sender<ClusterView>,
}

/// Starts the session of `settings` (STUB).
pub fn start(settings: super::ClusterSettings) -> Session {
    Session {
        view: watch::Sender::new(ClusterView::unknown(settings.lease_ttl)),
    }
}

impl Session {
    /// Resigns and revokes the lease (STUB).
    pub async fn shutdown(&self) {}
}

impl Cluster for Session {
    fn view(&self) -> watch::Receiver<ClusterView> {
        self.view.subscribe()
    }
    fn publish(&self, _snapshot: InstanceSnapshot) {}
    fn fence(&self, _node: &str) -> BoxFuture<'_, Result<(), FenceError>> {
        Box::pin(async { Err(FenceError::NotLeader(None)) })
    }
    fn resign(&self) {}
    fn request(&self, _node: &str) {}
}

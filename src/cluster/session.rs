//! The etcd session of one instance (a task): the lease (granted, kept alive every
//! `rules::keepalive_every`, its renewals noted), the campaign in the pool's election, the other
//! instances' snapshots (watched), this instance's own snapshot (put under the lease when it
//! changed), the fenced write of the producer and voluntary resignations. It never stops: etcd
//! unreachable is logged once per outage, retried with backoff, and shown in the view.
//!
//! `start` spawns the task (`etcd`); the view's fields come from the watch of the pool's prefix
//! (`store`, pure).

mod etcd;
mod store;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{ClusterSettings, InstanceSnapshot, rules};
use crate::chain::BoxFuture;
use etcd::{Command, Task};

/// What the session knows, published on a watch channel.
#[derive(Clone, Debug, PartialEq)]
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
    /// etcd calls that failed (or got no answer in time) since the start, for the metrics.
    pub failures: u64,
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
            failures: 0,
        }
    }

    /// Whether the lease is surely alive at `now` (`rules::lease_fresh`: renewed less than half
    /// a lease ago).
    pub fn lease_fresh(&self, now: Instant) -> bool {
        self.renewed
            .is_some_and(|renewed| now < renewed + rules::deadline(Duration::ZERO, self.ttl))
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
    /// Asks the pool to move the key to `node` (of another instance): recorded in etcd (under
    /// this instance's lease) for the instance that runs it.
    fn request(&self, node: &str);
    /// Deletes the request for one of this instance's nodes (`ClusterView::requested`), once
    /// this instance is elected and acted on it.
    fn clear_request(&self) {}
}

/// The etcd session of this instance: a handle on its task. Dropping it ends the task, which
/// resigns and revokes the lease in the background; `shutdown` waits for that.
#[derive(Debug)]
pub struct Session {
    view: watch::Receiver<ClusterView>,
    snapshots: watch::Sender<Option<InstanceSnapshot>>,
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
    fence_timeout: Duration,
}

/// Starts the session's task (on the current tokio runtime).
pub fn start(settings: ClusterSettings) -> Session {
    let (view_tx, view) = watch::channel(ClusterView::unknown(settings.lease_ttl));
    let (snapshots, wanted) = watch::channel(None);
    let (commands, commands_rx) = mpsc::unbounded_channel();
    // The transaction's own timeout, plus the loop's turn.
    let fence_timeout = etcd::call_timeout(settings.lease_ttl) + Duration::from_millis(500);
    let task = tokio::spawn(Task::new(settings, view_tx, commands_rx, wanted).run());
    Session {
        view,
        snapshots,
        commands,
        task,
        fence_timeout,
    }
}

impl Session {
    /// A clean stop: resigns, revokes the lease (so another instance takes over at once) and
    /// waits for it, a few seconds at most.
    pub async fn shutdown(self) {
        let Session { commands, task, .. } = self;
        drop(commands);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }

    /// Ends the task at once, without resigning or revoking anything: etcd sees what it sees when
    /// the process dies (the lease expires after its TTL). For tests of a crash.
    pub fn abort(self) {
        self.task.abort();
    }
}

impl Cluster for Session {
    fn view(&self) -> watch::Receiver<ClusterView> {
        self.view.clone()
    }

    fn publish(&self, snapshot: InstanceSnapshot) {
        self.snapshots.send_replace(Some(snapshot));
    }

    fn fence(&self, node: &str) -> BoxFuture<'_, Result<(), FenceError>> {
        let (reply, answer) = oneshot::channel();
        let sent = self.commands.send(Command::Fence {
            node: node.to_string(),
            reply,
        });
        Box::pin(async move {
            if sent.is_err() {
                return Err(FenceError::Unreachable("the session has ended".to_string()));
            }
            match tokio::time::timeout(self.fence_timeout, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(FenceError::Unreachable("the session has ended".to_string())),
                Err(_) => Err(FenceError::Unreachable(format!(
                    "no answer within {}",
                    humantime::format_duration(self.fence_timeout)
                ))),
            }
        })
    }

    fn resign(&self) {
        let _ = self.commands.send(Command::Resign);
    }

    fn request(&self, node: &str) {
        let _ = self.commands.send(Command::Request(node.to_string()));
    }

    fn clear_request(&self) {
        let _ = self.commands.send(Command::ClearRequest);
    }
}

//! The daemon's side of `[cluster]`: the etcd session's view turned into the policy's gate
//! (`cluster::rules::gate` on the loop's clock), a wake-up when it changes or the lease deadline
//! passes, this instance's snapshot published and the other instances' merged into the status,
//! the lease deadline handed to the host's fence, and the voluntary moves (resign when an operator
//! asks for a node of another instance, or when only another instance has a node fit to produce).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::cluster::rules::{self, Gate, Known, PeerFacts};
use crate::cluster::session::{Cluster, ClusterView};
use crate::cluster::{ClusterSettings, InstanceSnapshot};
use crate::policy::{PolicyState, PoolFacts};
use crate::status::{ClusterLine, Snapshot};

/// How long after a resignation for a better node elsewhere this instance does not resign
/// again for the same reason (no ping-pong between two instances whose nodes come and go).
const RESIGN_PAUSE: Duration = Duration::from_secs(30);

/// The daemon's link to its etcd session.
pub struct Link {
    /// The session.
    pub cluster: Arc<dyn Cluster>,
    settings: ClusterSettings,
    view: watch::Receiver<ClusterView>,
    /// The session's sender is gone (it never is while the daemon runs; a test may drop it).
    closed: bool,
    /// The origin of the rules' clock readings.
    origin: Instant,
    /// The gate last told to the operator.
    said: Option<Gate>,
    /// The elected instance last told.
    said_leader: Option<Option<String>>,
    /// The renewal last written to the deadline file.
    written: Option<Option<Instant>>,
    /// The host's fence reads the lease deadline here.
    deadline_file: Option<PathBuf>,
    /// The last resignation for a better node elsewhere.
    resigned_at: Option<Instant>,
    /// The operator request (a node of this instance) already taken from etcd.
    taken_request: Option<String>,
    /// Some node of this instance may hold the key, as of the last tick (`None`: no tick yet).
    may_hold: Option<bool>,
}

impl Link {
    /// A link to `cluster`, whose settings are `settings`; `deadline_file` is where the host's
    /// fence reads the lease deadline (`None`: not written, e.g. in a dry run).
    pub fn new(
        cluster: Arc<dyn Cluster>,
        settings: ClusterSettings,
        deadline_file: Option<PathBuf>,
    ) -> Link {
        let view = cluster.view();
        Link {
            cluster,
            settings,
            view,
            closed: false,
            origin: Instant::now(),
            said: None,
            said_leader: None,
            written: None,
            deadline_file,
            resigned_at: None,
            taken_request: None,
            may_hold: None,
        }
    }

    /// This instance's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    fn reading(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.origin)
    }

    /// What the rules know from the session's view.
    fn known(&self, view: &ClusterView) -> Known {
        Known {
            ttl: view.ttl,
            renewed: view.renewed.map(|at| self.reading(at)),
            elected: view.elected.is_some(),
            peers: view
                .peers
                .values()
                .filter(|peer| peer.instance != self.settings.name)
                .map(|peer| PeerFacts {
                    instance: peer.instance.clone(),
                    may_hold: peer.may_hold,
                })
                .collect(),
        }
    }

    /// The policy's gate now.
    pub fn gate(&self) -> Gate {
        let view = self.view.borrow();
        rules::gate(&self.known(&view), self.reading(Instant::now()))
    }

    /// When the gate may change without a word from the session: the lease deadline.
    fn deadline(&self) -> Option<Instant> {
        let view = self.view.borrow();
        let at = view.renewed? + rules::deadline(Duration::ZERO, view.ttl);
        (at > Instant::now()).then_some(at)
    }

    /// Resolves when the session's view changed or the lease deadline passed; pending forever
    /// once the session is gone.
    pub async fn changed(&mut self) {
        if self.closed {
            return std::future::pending().await;
        }
        let deadline = self.deadline();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = self.view.changed() => {
                if changed.is_err() {
                    self.closed = true;
                }
            }
            () = sleep => {}
        }
    }

    /// Takes a change in: logs what the operator should know, writes the lease deadline for the
    /// fence. True when the gate changed (the pool should be observed and decided again now).
    pub fn take_in(&mut self) -> bool {
        let view = self.view.borrow_and_update().clone();
        // etcd's outages are logged by the session, once each (start and end).
        if self.said_leader.as_ref() != Some(&view.leader) {
            match &view.leader {
                Some(leader) if *leader == self.settings.name => {
                    info!(instance = %self.settings.name, token = ?view.elected, "elected: this instance may let one of its nodes produce");
                }
                Some(leader) => {
                    info!(instance = %self.settings.name, "instance {leader} is elected")
                }
                None => info!(instance = %self.settings.name, "no instance is known to be elected"),
            }
            self.said_leader = Some(view.leader.clone());
        }
        self.write_deadline(&view);
        let gate = rules::gate(&self.known(&view), self.reading(Instant::now()));
        let changed = self.said.as_ref() != Some(&gate);
        if changed {
            match &gate.why {
                None if gate.pool_passive => {
                    info!(instance = %self.settings.name, "may lead: elected, lease fresh, no other instance holds the key")
                }
                None => {
                    info!(instance = %self.settings.name, "elected; a node of another instance may still hold the key: no promotion yet")
                }
                Some(why) => {
                    if self.said.as_ref().is_some_and(|g| g.may_lead) {
                        warn!(instance = %self.settings.name, "may not lead any more ({why}): demoting this instance's nodes");
                    } else {
                        info!(instance = %self.settings.name, "may not lead: {why}");
                    }
                }
            }
            self.said = Some(gate);
        }
        changed
    }

    fn write_deadline(&mut self, view: &ClusterView) {
        let Some(path) = &self.deadline_file else {
            return;
        };
        // Refreshed only once a tick decided, and only while this instance is elected or holds
        // nothing: a (re)started instance that may still hold the key of an earlier life, or a
        // follower whose demotion has not succeeded, leaves the fence demoting. (Elected or not,
        // the fence acts on a stale deadline only, never against a fresh election.)
        let holds = self.may_hold.is_none_or(|may| may);
        if view.elected.is_none() && holds {
            return;
        }
        let renewed = view.renewed;
        if self.written == Some(renewed) {
            return;
        }
        self.written = Some(renewed);
        // The fence reads the host's monotonic clock: the deadline is as far from its now as
        // it is from the loop's.
        let deadline = renewed.map(|at| {
            let remaining = (at + rules::deadline(Duration::ZERO, view.ttl))
                .saturating_duration_since(Instant::now());
            crate::cluster::deadline::monotonic_now() + remaining
        });
        if let Err(e) = crate::cluster::deadline::write(path, deadline) {
            warn!("cluster lease deadline {}: {e}", path.display());
        }
    }

    /// After a tick: publishes this instance's snapshot, takes an operator's request for one of
    /// its nodes into the policy, resigns when only another instance has a node fit to produce,
    /// and merges the other instances into `snapshot` (the status of the whole pool).
    pub fn after_tick(
        &mut self,
        snapshot: &mut Snapshot,
        policy: &mut PolicyState,
        facts: &PoolFacts,
    ) {
        let view = self.view.borrow().clone();
        let local: BTreeSet<&str> = snapshot.nodes.iter().map(|n| n.name.as_str()).collect();
        let may_hold = snapshot.nodes.iter().any(|line| {
            line.leader
                || policy
                    .leadership
                    .may_hold
                    .get(&line.name)
                    .is_none_or(|remembered| remembered.may)
        });
        self.may_hold = Some(may_hold);
        self.write_deadline(&view);
        let mut candidates: Vec<(&str, u64)> = facts
            .nodes
            .iter()
            .filter(|f| f.in_sync && local.contains(f.name.as_str()))
            .map(|f| (f.name.as_str(), f.height.unwrap_or(0)))
            .collect();
        candidates.sort_by_key(|(_, height)| std::cmp::Reverse(*height));
        let candidates: Vec<String> = candidates.iter().map(|(n, _)| n.to_string()).collect();
        self.cluster.publish(InstanceSnapshot {
            instance: self.settings.name.clone(),
            taken_at: snapshot.taken_at.clone(),
            may_hold,
            candidates: candidates.clone(),
            nodes: snapshot.nodes.clone(),
            leadership: snapshot.leadership.clone(),
        });
        // An operator asked another instance for one of this instance's nodes.
        if let Some(node) = &view.requested
            && self.taken_request.as_ref() != Some(node)
            && local.contains(node.as_str())
        {
            info!(instance = %self.settings.name, node = %node, "the pool asks for {node} to produce (an operator's request through another instance)");
            policy.leadership.requested = Some(node.clone());
            self.taken_request = Some(node.clone());
        }
        if view.requested.is_none() {
            self.taken_request = None;
        } else if view.elected.is_some() && self.taken_request.is_some() {
            // Elected with the request taken: it is this instance's to carry out now.
            self.cluster.clear_request();
        }
        // Elected with no node fit to produce while another instance has one: let it lead.
        if view.elected.is_some()
            && candidates.is_empty()
            && !may_hold
            && self
                .resigned_at
                .is_none_or(|at| at.elapsed() >= RESIGN_PAUSE)
            && let Some(peer) = view
                .peers
                .values()
                .find(|peer| peer.instance != self.settings.name && !peer.candidates.is_empty())
        {
            info!(instance = %self.settings.name, "resigning: no node of this instance can produce, and instance {} has {}", peer.instance, peer.candidates.join(", "));
            self.resigned_at = Some(Instant::now());
            self.cluster.resign();
        }
        // The whole pool: the other instances' nodes, as they published them.
        for line in &mut snapshot.nodes {
            line.instance = Some(self.settings.name.clone());
        }
        let mut instances = vec![self.settings.name.clone()];
        for peer in view.peers.values() {
            if peer.instance == self.settings.name {
                continue;
            }
            instances.push(peer.instance.clone());
            snapshot
                .nodes
                .extend(peer.nodes.iter().cloned().map(|mut line| {
                    line.instance = Some(peer.instance.clone());
                    line
                }));
        }
        let election = if view.renewed.is_none() {
            "no lease"
        } else if view.elected.is_some() {
            "elected"
        } else if view.leader.is_some() {
            "follower"
        } else {
            "campaigning"
        };
        snapshot.cluster = Some(ClusterLine {
            instance: self.settings.name.clone(),
            election: election.into(),
            leader: view.leader.clone(),
            etcd_reachable: view.reachable,
            producer: view.producer.clone(),
            instances,
        });
    }

    /// The best height a Running node of another instance published, as a reference tip taken
    /// `now` (a live snapshot is that instance's latest word; the policy still doubts one that
    /// leads every local node by more than `reference_max_lead`).
    pub fn peer_reference(
        &self,
        now: std::time::SystemTime,
    ) -> Option<crate::policy::ReferenceTip> {
        let running = crate::chain::NodeState::Running.name();
        let view = self.view.borrow();
        view.peers
            .values()
            .filter(|peer| peer.instance != self.settings.name)
            .flat_map(|peer| &peer.nodes)
            .filter(|line| line.node_state == running)
            .filter_map(|line| line.height)
            .max()
            .map(|height| crate::policy::ReferenceTip {
                height,
                fetched_at: now,
            })
    }

    /// An operator asks for `node` to produce, and another instance runs it: the request is
    /// recorded in etcd, and this instance resigns if it is elected. Returns what to answer.
    pub fn request_elsewhere(&mut self, node: &str) -> Option<String> {
        let instance = self.settings.instance_of(node)?;
        if instance == self.settings.name {
            return None;
        }
        self.cluster.request(node);
        let elected = self.view.borrow().elected.is_some();
        if elected {
            self.cluster.resign();
        }
        Some(format!(
            "{node} runs on instance {instance}: asked it to take over{}",
            if elected {
                " (this instance resigned the election)"
            } else {
                ""
            }
        ))
    }
}

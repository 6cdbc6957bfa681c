//! Carrying out the policy's leadership actions through the chain adapters' leader control, as
//! tasks that never block the loop: a hand-over (demote the old leader, verify on every other node
//! that may be up that none holds the key, promote, confirm) and the demotion of an extra holder.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::{error, info};

use crate::chain::{ChainNode, Holding, ProbeError};

/// How a leadership task ended.
#[derive(Debug)]
pub struct Finished {
    /// The node promoted (hand-over) or demoted.
    pub node: String,
    /// A hand-over (else a demotion).
    pub handover: bool,
    /// Nodes whose key was taken away.
    pub demoted: Vec<String>,
    /// The promotion (or demotion) was confirmed.
    pub ok: bool,
    /// A hand-over's promotion was asked for (confirmed or not: unconfirmed, the node may hold
    /// the key).
    pub promoting: bool,
    /// What happened, for the log and the operator.
    pub message: String,
    /// The node that led before a hand-over.
    pub from: Option<String>,
    /// Why the policy wanted the hand-over.
    pub why: String,
}

/// A node as a task reaches it.
pub type Handle = (String, Arc<dyn ChainNode>);

/// One hand-over: who to demote, who to verify (and whose silence is vouched for), who to promote.
pub struct Plan {
    /// The old leader and what it holds.
    pub from: Option<(Handle, Holding)>,
    /// Every other node whose process may be up.
    pub check: Vec<Handle>,
    /// Nodes read without the key in their current process: their silence is accepted.
    pub vouched: Vec<String>,
    /// The node to promote.
    pub to: Handle,
    /// Why (for the event).
    pub why: String,
    /// With `[cluster]`: the promotion is recorded in etcd first, fenced by this instance's
    /// election token, and does not happen when that fails.
    pub fence: Option<Arc<dyn crate::cluster::session::Cluster>>,
}

/// The leadership tasks in flight.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<Finished>,
    /// The nodes each task in flight demotes or promotes: busy until it ends (a sync rule must
    /// not restart a node whose demotion is being verified).
    nodes: Vec<(tokio::task::Id, Vec<String>)>,
}

impl Tasks {
    /// A hand-over or demotion is in flight.
    pub fn busy(&self) -> bool {
        !self.set.is_empty()
    }

    /// The nodes a task in flight demotes or promotes.
    pub fn nodes(&self) -> impl Iterator<Item = &String> {
        self.nodes.iter().flat_map(|(_, nodes)| nodes)
    }

    /// The next finished task; pending forever while none runs.
    pub async fn next(&mut self) -> Finished {
        loop {
            match self.set.join_next_with_id().await {
                Some(Ok((id, finished))) => {
                    self.nodes.retain(|(task, _)| *task != id);
                    return finished;
                }
                Some(Err(e)) => {
                    let id = e.id();
                    self.nodes.retain(|(task, _)| *task != id);
                    error!("leadership task failed: {e}");
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Starts a hand-over.
    pub fn hand_over(&mut self, plan: Plan, timeout: Duration) {
        let mut nodes = vec![plan.to.0.clone()];
        nodes.extend(plan.from.iter().map(|((node, _), _)| node.clone()));
        let task = self.set.spawn(hand_over(plan, timeout));
        self.nodes.push((task.id(), nodes));
    }

    /// Starts the demotion of an extra holder.
    pub fn demote(&mut self, (node, adapter): Handle, holding: Holding, timeout: Duration) {
        let nodes = vec![node.clone()];
        let task = self.set.spawn(async move {
            let result = match adapter.leader() {
                Some(leader) => leader.demote(&holding, timeout).await,
                None => Err(Vec::new()),
            };
            let ok = result.is_ok();
            Finished {
                demoted: if ok { vec![node.clone()] } else { Vec::new() },
                message: match result {
                    Ok(()) => format!("{node}: demoted (leader ids {holding} removed)"),
                    Err(failures) => format!(
                        "{node}: demotion failed: {}",
                        failures
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                },
                node,
                handover: false,
                ok,
                promoting: false,
                from: None,
                why: String::new(),
            }
        });
        self.nodes.push((task.id(), nodes));
    }
}

/// A node that is not up holds no key: nothing listens, or its leader API is not served yet
/// (503 while booting).
fn holds_nothing(answer: &Result<Holding, ProbeError>) -> bool {
    match answer {
        Ok(holding) => !holding.holds(),
        Err(ProbeError::Refused | ProbeError::Status(503)) => true,
        Err(_) => false,
    }
}

async fn hand_over(plan: Plan, timeout: Duration) -> Finished {
    let Plan {
        from,
        check,
        vouched,
        to: (to, to_node),
        why,
        fence,
    } = plan;
    let from_name = from.as_ref().map(|((name, _), _)| name.clone());
    let finished = |ok: bool, demoted: Vec<String>, message: String| Finished {
        node: to.clone(),
        handover: true,
        demoted,
        ok,
        promoting: false,
        message,
        from: from_name.clone(),
        why: why.clone(),
    };
    let Some(to_leader) = to_node.leader() else {
        return finished(false, Vec::new(), format!("{to} has no leader control"));
    };
    let mut demoted = Vec::new();
    // 1. Demote the old leader.
    if let Some(((name, node), holding)) = &from {
        let result = match node.leader() {
            Some(leader) => leader.demote(holding, timeout).await,
            None => Err(Vec::new()),
        };
        if let Err(failures) = result {
            let why = failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return finished(
                false,
                demoted,
                format!(
                    "hand-over to {to} stopped: demoting {name} failed ({why}); {to} is not promoted"
                ),
            );
        }
        demoted.push(name.clone());
    }
    // 2. Verify: no other node holds the key.
    let mut reads = JoinSet::new();
    for (index, (_, node)) in check.iter().enumerate() {
        let node = Arc::clone(node);
        reads.spawn(async move {
            let answer = match node.leader() {
                Some(leader) => leader.holding(timeout).await,
                None => Ok(Holding::passive()),
            };
            (index, answer)
        });
    }
    let mut answers: Vec<Result<Holding, ProbeError>> =
        vec![Err(ProbeError::Timeout(timeout)); check.len()];
    while let Some(joined) = reads.join_next().await {
        if let Ok((index, answer)) = joined {
            answers[index] = answer;
        }
    }
    for ((name, _), answer) in check.iter().zip(&answers) {
        if let Err(e) = answer
            && vouched.contains(name)
            && !matches!(e, ProbeError::Status(_) | ProbeError::Malformed(_))
        {
            // Read without the key in this same process; keys enter only at a start or by a
            // promotion, and neither happened.
            info!(node = %name, "{name}: leaders API silent ({e}); read without the key since its start");
            continue;
        }
        if !holds_nothing(answer) {
            let what = match answer {
                Ok(holding) => format!("still holds leader ids {holding}"),
                Err(e) => format!("cannot be verified ({e})"),
            };
            return finished(
                false,
                demoted,
                format!(
                    "hand-over to {to} stopped before promotion: {name} {what}; no second leader"
                ),
            );
        }
    }
    // 2b. With [cluster]: recorded as the producer in etcd, fenced by the election token (fails
    // once another instance leads).
    if let Some(cluster) = &fence {
        if let Err(e) = cluster.fence(&to).await {
            return finished(
                false,
                demoted,
                format!("hand-over to {to} stopped before promotion: {e}; no second leader"),
            );
        }
        // The answer may come late (a pause, a slow etcd): the lease must still be surely alive.
        let view = cluster.view().borrow().clone();
        if !view.lease_fresh(tokio::time::Instant::now()) || view.elected.is_none() {
            return finished(
                false,
                demoted,
                format!(
                    "hand-over to {to} stopped before promotion: the lease deadline passed while \
                     the promotion was being recorded; no second leader"
                ),
            );
        }
    }
    // 3. Promote, 4. confirm. From here on the node may hold the key, confirmed or not.
    let finished = |ok: bool, demoted: Vec<String>, message: String| Finished {
        promoting: true,
        ..finished(ok, demoted, message)
    };
    let promoted = match to_leader.promote(timeout).await {
        Ok(promoted) => promoted,
        Err(e) => {
            return finished(
                false,
                demoted,
                format!(
                    "promotion refused by {to}: {e}; it counts as maybe holding the key until it is read"
                ),
            );
        }
    };
    match to_leader.holding(timeout).await {
        Ok(now) if now.includes(&promoted) => {
            let message = match &from_name {
                Some(old) => {
                    format!("{to} promoted (leader id {promoted}) after {old} was demoted")
                }
                None => format!("{to} promoted (leader id {promoted})"),
            };
            finished(true, demoted, message)
        }
        Ok(now) => finished(
            false,
            demoted,
            format!("{to} answered leader id {promoted} but lists {now}"),
        ),
        Err(e) => finished(
            false,
            demoted,
            format!("{to} promoted (leader id {promoted}) but not confirmed: {e}"),
        ),
    }
}

/// Nodes by name, for the plans.
pub type Nodes = BTreeMap<String, Arc<dyn ChainNode>>;

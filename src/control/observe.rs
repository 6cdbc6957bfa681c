//! One observation of the pool: every supervisord asked once (one `system.multicall` of
//! `getProcessInfo` for the managed programs, not `getAllProcessInfo`, which costs supervisord
//! ~0.5 ms of CPU per program it has) and every node probed, all concurrently, each call with its
//! own timeout. Probes live across ticks (`Prober`): a tick waits a bounded time for them, so a
//! slow or dead node never delays decisions about the others.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::chain::{NodeProbe, NodeStatus, ProbeError};
use crate::config::Config;
use crate::policy::{NodeObservation, ProgramSeen, ProgramView};
use crate::supervisor::{Client, Fault, ProcessInfo, SupervisorError};

/// What one supervisord answered this tick.
#[derive(Debug)]
pub enum SupervisorAnswer {
    /// Program info by program name (a fault such as BAD_NAME in place of a missing program).
    Answered(BTreeMap<String, Result<ProcessInfo, Fault>>),
    /// Not asked this tick (backing off after failures).
    Skipped,
    /// The call failed.
    Failed(SupervisorError),
}

/// The raw results of one observation, before they become the policy's `NodeObservation`s.
#[derive(Debug)]
pub struct Raw {
    /// By supervisord name.
    pub supervisors: BTreeMap<String, SupervisorAnswer>,
    /// The latest probe result of each node (for display), by node name.
    pub probes: BTreeMap<String, Result<NodeStatus, ProbeError>>,
    /// The nodes whose probe answered (or timed out) during this observation: only these count
    /// for the policy, so a probe still in flight is neither a success nor a failure yet.
    pub fresh: BTreeSet<String>,
}

type ProbeResult = Result<NodeStatus, ProbeError>;

/// Node probes that outlive a tick: each node has at most one probe in flight; a tick starts the
/// missing ones, waits a bounded time for answers and leaves slow probes running, so a hung node
/// never delays decisions about the others. A probe that runs out its own timeout reports
/// `ProbeError::Timeout` in whichever tick it ends.
pub struct Prober {
    probe: Arc<dyn NodeProbe>,
    in_flight: BTreeMap<String, oneshot::Receiver<ProbeResult>>,
    latest: BTreeMap<String, ProbeResult>,
}

impl Prober {
    /// A prober using `probe` for every node.
    pub fn new(probe: Arc<dyn NodeProbe>) -> Prober {
        Prober {
            probe,
            in_flight: BTreeMap::new(),
            latest: BTreeMap::new(),
        }
    }

    /// Starts a probe of every configured node that has none in flight, then waits until every
    /// probe has answered or `wait` has passed. Returns the names of the nodes that answered.
    pub async fn round(&mut self, config: &Config, wait: Duration) -> BTreeSet<String> {
        let timeout = config.thresholds.probe_timeout;
        for node in &config.nodes {
            if self.in_flight.contains_key(&node.name) {
                continue;
            }
            let (sender, receiver) = oneshot::channel();
            let probe = Arc::clone(&self.probe);
            let url = node.rest_url.clone();
            tokio::spawn(async move {
                // The probe enforces its timeout; this outer bound only guards against a probe
                // that does not.
                let result = tokio::time::timeout(
                    timeout + Duration::from_millis(500),
                    probe.probe(&url, timeout),
                )
                .await
                .unwrap_or(Err(ProbeError::Timeout(timeout)));
                let _ = sender.send(result);
            });
            self.in_flight.insert(node.name.clone(), receiver);
        }
        // Nodes removed from the configuration are forgotten.
        self.in_flight
            .retain(|name, _| config.nodes.iter().any(|node| &node.name == name));
        self.latest
            .retain(|name, _| config.nodes.iter().any(|node| &node.name == name));
        let deadline = tokio::time::Instant::now() + wait;
        let mut answered = BTreeSet::new();
        let names: Vec<String> = self.in_flight.keys().cloned().collect();
        for name in names {
            let Some(receiver) = self.in_flight.get_mut(&name) else {
                continue;
            };
            match tokio::time::timeout_at(deadline, receiver).await {
                Ok(Ok(result)) => {
                    self.in_flight.remove(&name);
                    self.latest.insert(name.clone(), result);
                    answered.insert(name);
                }
                Ok(Err(_closed)) => {
                    self.in_flight.remove(&name);
                }
                Err(_still_running) => {}
            }
        }
        answered
    }

    /// The latest result of every node that has one.
    pub fn latest(&self) -> &BTreeMap<String, ProbeResult> {
        &self.latest
    }
}

/// Asks every supervisord (except those in `skip`) and probes every node, concurrently. Waits at
/// most `probe_wait` for node probes (supervisord calls have their own timeouts).
pub async fn observe(
    config: &Config,
    clients: &BTreeMap<String, Client>,
    prober: &mut Prober,
    skip: &[String],
    probe_wait: Duration,
) -> Raw {
    let mut supervisor_tasks = JoinSet::new();
    for (name, client) in clients {
        if skip.contains(name) {
            continue;
        }
        let programs: Vec<String> = config
            .nodes
            .iter()
            .filter(|node| &node.supervisor == name)
            .map(|node| node.program.clone())
            .collect();
        if programs.is_empty() {
            continue;
        }
        let client = client.clone();
        let name = name.clone();
        supervisor_tasks.spawn(async move {
            let answer = match client.get_process_infos(&programs).await {
                Ok(results) => {
                    SupervisorAnswer::Answered(programs.into_iter().zip(results).collect())
                }
                Err(error) => SupervisorAnswer::Failed(error),
            };
            (name, answer)
        });
    }
    let fresh = prober.round(config, probe_wait).await;
    // Only the supervisords in backoff are `Skipped`; one with no managed program is not listed.
    let mut supervisors: BTreeMap<String, SupervisorAnswer> = skip
        .iter()
        .filter(|name| clients.contains_key(*name))
        .map(|name| (name.clone(), SupervisorAnswer::Skipped))
        .collect();
    while let Some(joined) = supervisor_tasks.join_next().await {
        if let Ok((name, answer)) = joined {
            supervisors.insert(name, answer);
        }
    }
    Raw {
        supervisors,
        probes: prober.latest().clone(),
        fresh,
    }
}

/// supervisord's epoch-seconds field as a time (`0` means never).
pub fn epoch_secs(secs: i64) -> Option<SystemTime> {
    u64::try_from(secs)
        .ok()
        .filter(|secs| *secs > 0)
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
}

/// The policy's view of each configured node. `busy` names the nodes the shell is acting on.
pub fn node_observations(config: &Config, raw: &Raw, busy: &[String]) -> Vec<NodeObservation> {
    config
        .nodes
        .iter()
        .map(|node| {
            let program = match raw.supervisors.get(&node.supervisor) {
                Some(SupervisorAnswer::Answered(infos)) => match infos.get(&node.program) {
                    Some(Ok(info)) => ProgramSeen::Known(ProgramView {
                        state: info.state,
                        started_at: epoch_secs(info.start),
                        exit_status: info.exitstatus,
                    }),
                    Some(Err(Fault::BadName(_))) => ProgramSeen::Missing,
                    _ => ProgramSeen::Unreachable,
                },
                _ => ProgramSeen::Unreachable,
            };
            // Only a RUNNING program's probe says anything about the node. A failure counts in
            // the tick its probe ended only (a probe still in flight is neither success nor
            // failure yet); the last success stands until the next answer.
            let probe = match &program {
                ProgramSeen::Known(view)
                    if view.state == crate::supervisor::ProcessState::Running =>
                {
                    raw.probes
                        .get(&node.name)
                        .filter(|result| result.is_ok() || raw.fresh.contains(&node.name))
                        .cloned()
                }
                _ => None,
            };
            NodeObservation {
                name: node.name.clone(),
                program,
                probe,
                busy: busy.contains(&node.name),
                leadership: Default::default(),
            }
        })
        .collect()
}

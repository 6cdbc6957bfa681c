//! One observation of the pool: every supervisord asked once (one `system.multicall` of
//! `getProcessInfo` for the managed programs, not `getAllProcessInfo`, which costs supervisord
//! ~0.5 ms of CPU per program it has) and every node probed, all concurrently, each call with its
//! own timeout, so a slow or dead node never delays the others.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;

use crate::config::Config;
use crate::node::{NodeProbe, NodeStatus, ProbeError};
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
    /// By node name.
    pub probes: BTreeMap<String, Result<NodeStatus, ProbeError>>,
}

/// Asks every supervisord (except those in `skip`) and probes every node, concurrently.
pub async fn observe(
    config: &Config,
    clients: &BTreeMap<String, Client>,
    probe: &Arc<dyn NodeProbe>,
    skip: &[String],
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
    let timeout = config.thresholds.probe_timeout;
    let mut probe_tasks = JoinSet::new();
    for node in &config.nodes {
        let probe = Arc::clone(probe);
        let url = node.rest_url.clone();
        let name = node.name.clone();
        probe_tasks.spawn(async move {
            // The probe enforces its timeout; this outer bound only guards against a probe that
            // does not.
            let result = tokio::time::timeout(
                timeout + Duration::from_millis(500),
                probe.probe(&url, timeout),
            )
            .await
            .unwrap_or(Err(ProbeError::Timeout(timeout)));
            (name, result)
        });
    }
    let mut supervisors: BTreeMap<String, SupervisorAnswer> = clients
        .keys()
        .map(|name| (name.clone(), SupervisorAnswer::Skipped))
        .collect();
    while let Some(joined) = supervisor_tasks.join_next().await {
        if let Ok((name, answer)) = joined {
            supervisors.insert(name, answer);
        }
    }
    let mut probes = BTreeMap::new();
    while let Some(joined) = probe_tasks.join_next().await {
        if let Ok((name, result)) = joined {
            probes.insert(name, result);
        }
    }
    Raw {
        supervisors,
        probes,
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
            // Only a RUNNING program's probe says anything about the node.
            let probe = match &program {
                ProgramSeen::Known(view)
                    if view.state == crate::supervisor::ProcessState::Running =>
                {
                    raw.probes.get(&node.name).cloned()
                }
                _ => None,
            };
            NodeObservation {
                name: node.name.clone(),
                program,
                probe,
                busy: busy.contains(&node.name),
            }
        })
        .collect()
}

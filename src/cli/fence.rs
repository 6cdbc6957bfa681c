//! `nodekeeper fence`: the host's fence, a supervisord program beside the nodes (`supervisor-conf`
//! generates it with `[cluster]`). It reads the local daemon's lease deadline file
//! (`cluster::deadline`) every 250 ms and, once the deadline passed or when there is none, asks
//! this instance's nodes whether they hold the pool's key and demotes any that does, again every
//! second while it stays passed. So a daemon killed with `kill -9` or stopped leaves no producer
//! behind by the time its etcd lease expires and another instance may promote one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tracing::{info, warn};

use super::Failure;
use super::config::ConfigSourceArgs;
use crate::chain::{ChainNode, Holding, ProbeError};
use crate::cluster::deadline::{self, Pace, Step, Verdict};
use crate::config::Config;
use crate::daemon::leadership::Handle;
use crate::daemon::{Parts, RealParts};

/// How often the deadline file is read.
const READ_EVERY: Duration = Duration::from_millis(250);

/// Options of `nodekeeper fence` (the configuration comes from `-c`).
#[derive(Debug, Args)]
pub struct FenceArgs {}

/// Runs the fence until SIGTERM or SIGINT (0). A configuration error, or one without `[cluster]`,
/// exits 2 before any node is asked.
pub async fn run(source: &ConfigSourceArgs, _args: FenceArgs) -> Result<u8, Failure> {
    let config = source.load()?;
    if config.cluster.is_none() {
        return Err(Failure::usage(format!(
            "{}: nodekeeper fence needs [cluster]: without it no lease deadline is written and \
             there is nothing to fence",
            config.path.display()
        )));
    }
    let nodes = adapters(&config)?;
    let file = deadline::path(&config.restart_log);
    let timeout = config.thresholds.probe_timeout;
    let names: Vec<&str> = nodes.iter().map(|(name, _)| name.as_str()).collect();
    info!(
        "fencing {} node(s) with leader control ({}) on the deadline in {}",
        nodes.len(),
        names.join(", "),
        file.display()
    );
    tokio::select! {
        _ = fence(&file, &nodes, timeout) => {}
        () = signalled() => {}
    }
    Ok(0)
}

/// This instance's nodes whose adapter has leader control.
fn adapters(config: &Config) -> Result<Vec<Handle>, Failure> {
    let parts = RealParts::default();
    let mut problems = Vec::new();
    let secret = match (&config.leadership.secret_file, config.leadership.enabled) {
        (Some(path), true) => match crate::chain::jormungandr::secret::load(path) {
            Ok(secret) => Some(Arc::new(secret)),
            Err(e) => {
                problems.push(format!("leadership.secret_file: {e}"));
                None
            }
        },
        _ => None,
    };
    let mut supervisors = BTreeMap::new();
    for node in &config.nodes {
        if let Some(settings) = config.supervisors.get(&node.supervisor)
            && !supervisors.contains_key(&node.supervisor)
        {
            match parts.supervisor(settings) {
                Ok(client) => {
                    supervisors.insert(node.supervisor.clone(), client);
                }
                Err(e) => problems.push(e),
            }
        }
    }
    let mut nodes = Vec::new();
    for node in &config.nodes {
        match parts.node(
            node,
            secret.clone(),
            supervisors.get(&node.supervisor).cloned(),
        ) {
            Ok(adapter) if adapter.leader().is_some() => nodes.push((node.name.clone(), adapter)),
            Ok(_) => {}
            Err(e) => problems.push(format!("{}: {e}", node.name)),
        }
    }
    if problems.is_empty() {
        Ok(nodes)
    } else {
        Err(Failure::usage(problems.join("\nerror: ")))
    }
}

/// The loop: read, judge, sweep when the pace says so. Never ends.
async fn fence(file: &std::path::Path, nodes: &[Handle], timeout: Duration) {
    let mut pace = Pace::default();
    // Nodes whose silence (or failed demotion) was logged in this episode.
    let mut logged: BTreeSet<String> = BTreeSet::new();
    let mut every = tokio::time::interval(READ_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = deadline::monotonic_now();
        let verdict = deadline::verdict(&deadline::read(file), now);
        match (pace.step(&verdict, now), &verdict) {
            (Step::Wait, _) => {}
            (Step::Fresh, Verdict::Fresh { left }) => {
                logged.clear();
                info!(
                    "the local nodekeeper's lease is fresh (deadline in {} ms): idle",
                    left.as_millis()
                );
            }
            (Step::Sweep { first }, Verdict::Demote { why }) => {
                if first {
                    logged.clear();
                    info!("{why}: no node of this host may hold the key; checking them");
                }
                sweep(nodes, why, timeout, &mut logged).await;
            }
            // `Pace` sweeps only on a demotion and says fresh only on a fresh verdict.
            (Step::Fresh | Step::Sweep { .. }, _) => {}
        }
    }
}

/// What one node answered.
enum Outcome {
    /// It holds nothing (or is not up: nothing listens, or it is booting).
    Passive,
    /// It held `Holding` and was demoted.
    Demoted(Holding),
    /// It could not be read or demoted.
    Failed(String),
}

/// Asks every node at once and demotes any that holds the key.
async fn sweep(nodes: &[Handle], why: &str, timeout: Duration, logged: &mut BTreeSet<String>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (name, node) in nodes {
        let name = name.clone();
        let node = Arc::clone(node);
        tasks.spawn(async move {
            let outcome = fence_node(node.as_ref(), timeout).await;
            (name, outcome)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let Ok((name, outcome)) = joined else {
            continue;
        };
        match outcome {
            Outcome::Passive => {}
            Outcome::Demoted(holding) => {
                logged.remove(&name);
                warn!(node = %name, "{name}: demoted (leader ids {holding} removed): {why}");
            }
            Outcome::Failed(problem) => {
                if logged.insert(name.clone()) {
                    warn!(
                        node = %name,
                        "{name}: {problem}; it may hold the key: asking again every {} s while {why}",
                        deadline::RECHECK_EVERY.as_secs()
                    );
                }
            }
        }
    }
}

async fn fence_node(node: &dyn ChainNode, timeout: Duration) -> Outcome {
    let Some(leader) = node.leader() else {
        return Outcome::Passive;
    };
    let holding = match leader.holding(timeout).await {
        Ok(holding) if holding.holds() => holding,
        Ok(_) | Err(ProbeError::Refused | ProbeError::Status(503)) => return Outcome::Passive,
        Err(e) => return Outcome::Failed(format!("leaders API silent ({e})")),
    };
    match leader.demote(&holding, timeout).await {
        Ok(()) => Outcome::Demoted(holding),
        Err(failures) => Outcome::Failed(format!(
            "demotion failed: {}",
            failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM"),
        _ = int.recv() => info!("SIGINT"),
    }
}

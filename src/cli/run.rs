//! `nodekeeper run` (the daemon) and `nodekeeper status` (one table of the pool).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use clap::Args;
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

use super::Failure;
use super::config::ConfigSourceArgs;
use crate::api::{self, ApiState};
use crate::chain::jormungandr::JormungandrProbe;
use crate::config::{self, Config};
use crate::control::{self, Daemon, RunOptions};
use crate::policy::{Observation, PolicyConfig, PolicyState, ReferenceTip};
use crate::status::Snapshot;
use crate::time::SystemClock;

/// Options of `nodekeeper run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Decide and log what would be done, touching nothing (no node, no file).
    #[arg(long)]
    pub dry_run: bool,
    /// Run one tick, wait for its actions to finish, and exit.
    #[arg(long)]
    pub once: bool,
}

/// Options of `nodekeeper status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Resolves on SIGTERM, SIGINT or SIGUSR1.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        // Without signal handlers the daemon still runs; it can be killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM"),
        _ = int.recv() => info!("SIGINT"),
        _ = usr1.recv() => info!("SIGUSR1"),
    }
}

/// Runs the daemon until a signal.
pub async fn run(source: &ConfigSourceArgs, args: RunArgs) -> Result<u8, Failure> {
    let config = source.load_for_host()?;
    let config_source = source.source()?;
    let snapshot = Arc::new(RwLock::new(Snapshot::default()));
    let options = RunOptions {
        dry_run: args.dry_run,
        once: args.once,
    };
    // Email alerts (src/alert): a worker fed by the daemon's events, never blocking it; none in
    // a dry run. Started before the daemon, so that a bad [email] exits 2 before files are written.
    let alerts = if config.email.raw.enabled && !args.dry_run {
        let worker = crate::alert::start(&config, Arc::new(SystemClock))
            .map_err(|e| Failure::usage(e.to_string()))?;
        Some(worker)
    } else {
        None
    };
    let daemon = Daemon::new(
        config_source,
        config.clone(),
        config::process_env(),
        Arc::new(JormungandrProbe::new()),
        Arc::new(SystemClock),
        options,
        Arc::clone(&snapshot),
    )
    .map_err(|e| Failure::usage(e.to_string()))?;
    let daemon = match &alerts {
        Some(worker) => daemon.with_events(worker.sender()),
        None => daemon,
    };
    // Metrics: updated by the loop each tick, served by the API.
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let daemon = daemon.with_metrics(Arc::clone(&metrics));
    let (requests_tx, requests_rx) = mpsc::channel(16);
    let (stop_tx, stop_rx) = watch::channel(false);
    // A dry run touches nothing, not even the token file; --once has no use for the API.
    let api_task = if args.once || args.dry_run {
        drop(requests_tx);
        None
    } else {
        let token = api::token(config.api.token.as_ref(), &api::token_path(&config))
            .map_err(Failure::usage)?;
        let state = ApiState {
            snapshot: Arc::clone(&snapshot),
            requests: requests_tx,
            token: Arc::new(token),
            metrics,
            restart_log: config.restart_log.clone(),
            // `?wait=true` waits as long as a stop and a start can take.
            wait_limit: config
                .supervisors
                .values()
                .map(|s| s.wait_timeout)
                .max()
                .unwrap_or_default()
                * 2
                + Duration::from_secs(5),
        };
        let listen = config.api.listen;
        let mut stop = stop_rx.clone();
        Some(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            info!("API on http://{listen}");
            if let Err(e) = api::serve(listen, state, shutdown).await {
                // The loop keeps the nodes safe without the API; say loudly that it is missing.
                error!("API not available on {listen}: {e}");
            }
        }))
    };
    daemon.run(requests_rx, signalled()).await;
    let _ = stop_tx.send(true);
    if let Some(task) = api_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    if let Some(worker) = alerts {
        // The daemon (the other sender) is gone: deliver what is queued, briefly.
        worker.finish(Duration::from_secs(10)).await;
    }
    Ok(0)
}

/// Prints the pool's status: the running daemon's view when its API answers, else one
/// observation made now.
pub async fn status(source: &ConfigSourceArgs, args: StatusArgs) -> Result<u8, Failure> {
    let config = source.load()?;
    let snapshot = match from_daemon(&config).await {
        Some(snapshot) => snapshot,
        None => observe_now(&config).await?,
    };
    if args.json {
        let text =
            serde_json::to_string_pretty(&snapshot).map_err(|e| Failure::runtime(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", snapshot.table());
    }
    Ok(0)
}

async fn from_daemon(config: &Config) -> Option<Snapshot> {
    let api = api::ApiClient::new(&config.api.listen.to_string(), Duration::from_secs(2)).ok()?;
    let snapshot = api.status().await.ok()?;
    // A daemon that has not ticked yet has an empty snapshot: observe instead.
    (!snapshot.nodes.is_empty()).then_some(snapshot)
}

async fn observe_now(config: &Config) -> Result<Snapshot, Failure> {
    let clients = control::clients(config).map_err(|e| Failure::runtime(e.to_string()))?;
    let mut prober = control::observe::Prober::new(Arc::new(JormungandrProbe::new()));
    // One-shot: wait for every probe to answer or time out.
    let wait = config.thresholds.probe_timeout + Duration::from_millis(600);
    let raw = control::observe::observe(config, &clients, &mut prober, &[], wait).await;
    let mut state = PolicyState::default();
    if let Ok(holds) = control::holds::load(&control::state_path(config)) {
        state.restore_holds(holds);
    }
    let now = crate::time::Clock::now(&SystemClock);
    let mut nodes = control::observe::node_observations(config, &raw, &[]);
    let mut chain = None;
    if config.leadership.enabled {
        // The leader views, the persisted memory (known slots), and the chain time.
        let mut leadership = control::leadership::Leadership::new(config)
            .map_err(|e| Failure::runtime(e.to_string()))?;
        leadership.observe(config, &mut nodes, wait).await;
        state.leadership = control::leadership::Leadership::load(&config.leadership.state_file)
            .map_err(Failure::runtime)?;
        chain = leadership.clock().or(state.leadership.clock);
        if let Some(clock) = chain {
            state.leadership.clock = Some(clock);
            state.leadership.epoch = Some(clock.epoch_at(now));
        }
        for node in &nodes {
            if let Some(dates) = &node.leadership.schedule {
                state.leadership.schedule.extend(dates.iter().copied());
            }
            if matches!(&node.leadership.keys, Some(Ok(ids)) if !ids.is_empty()) {
                state.leadership.leader = Some(node.name.clone());
            }
        }
    }
    let observation = Observation {
        now,
        nodes,
        reference: None::<ReferenceTip>,
        chain,
        leader_job: false,
    };
    Ok(control::build_snapshot(
        config,
        &observation,
        &raw,
        &state,
        &control::last_restarts(config),
        &PolicyConfig::from_config(config),
    ))
}

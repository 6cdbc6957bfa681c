//! Simulated nodes for tests and the demo, the library behind the `nodekeeper-sim` binary: a Jormungandr node
//! (this file and the modules below), an Antelope nodeos producer (`nodeos`, `--chain nodeos`) and a cardano-node
//! block producer with dynamic block forging (`cardano`, `--chain cardano`); each chain module documents its own
//! flags, routes, faults and events file.
//! Test equipment, not part of the daemon: its own crate, which shares only the node secret's format with
//! `nodekeeper`.
//!
//! Several simulator processes (each a supervisord program) follow one simulated chain without talking to each
//! other, because the chain is a pure function of wall-clock time and shared parameters. Each process speaks the
//! REST API v0 faithfully enough for nodekeeper's probes, holds a leader enclave, keeps leadership logs, records
//! the blocks it leads in a shared events file, and takes injected faults at run time.
//!
//! Layout:
//! - `chain`: the pure chain model (epoch/slot maths, blocks, hashes, header bytes, pool schedule).
//! - `node`: one node as a state machine over time (boot states, faults, enclave, leadership logs); no I/O.
//! - `fault`: the fault vocabulary, the control-file syntax and the `POST /sim/fault` body.
//! - node secrets (`--secret` YAML, `POST /leaders` JSON) are `nodekeeper::chain::jormungandr::secret`, shared with the daemon.
//! - `events`: the append-only leader-event log.
//! - `config`: the command line and its validation.
//! - `data`: the data directory (`--data-dir`): `blocks.log` and the corrupt-database marker.
//! - `api`: the HTTP routes.
//! - this file: the shell: start-up, the slot ticker, the control-file poller and shutdown.
//!
//! Control interface: `POST /sim/fault` with `{"fault":"none|stuck|lag|bootstrap|hang|slow|slow-leaders|refuse-promotion|crash|corrupt-db|fork",
//! "blocks":N,"delay_ms":M}` (`blocks` is required for `lag`, `delay_ms` for `slow` and `slow-leaders`), `GET /sim/state`, or a
//! `--control` file holding one line (`stuck`, `lag 5`, `slow 500`, …; missing or empty = `none`), polled every
//! 200 ms and applied only when its content changes. `/sim/*` keeps answering under every fault except `crash`.

// The simulator models wall time itself: it reads the clock directly.
#![allow(clippy::disallowed_methods)]

pub mod api;
pub mod cardano;
pub mod chain;
pub mod config;
pub mod data;
pub mod events;
pub mod fault;
pub mod node;
pub mod nodeos;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use tokio::net::TcpListener;

use self::api::Shared;
use self::config::{Args, SimConfig};
use self::events::EventLog;
use self::fault::Fault;
use self::node::Node;

/// How often the block log is brought up to the node's tip.
const BLOCK_LOG_EVERY: Duration = Duration::from_millis(250);
/// How often the control file is read.
const CONTROL_POLL: Duration = Duration::from_millis(200);
/// How long a graceful shutdown may take before the process exits anyway (hung requests never finish).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// How late after a slot boundary the ticker wakes, so that `now` is safely inside the new slot.
const TICK_MARGIN: Duration = Duration::from_millis(5);
/// The longest the ticker sleeps, so long slots and clock jumps are still noticed.
const MAX_TICK: Duration = Duration::from_secs(1);

/// Errors of running the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The HTTP server failed.
    #[error("http server failed")]
    Serve(#[source] std::io::Error),
}

/// The `nodekeeper-sim` entry point: `--chain jormungandr|nodeos|cardano` (or `NODEKEEPER_SIM_CHAIN`; default
/// `jormungandr`) picks the simulated chain, whose own flags follow.
/// Exit status: 0 on shutdown, 1 on a `crash` or `corrupt-db` fault (and at every start while the corrupt-database
/// marker is in `--data-dir`) or a server failure, 2 on a start-up error.
pub fn main() -> ExitCode {
    let (chain, args) = split_chain(std::env::args_os().collect());
    match chain.as_deref() {
        None | Some("jormungandr") => jormungandr_main(args),
        Some("nodeos") => nodeos::main(args),
        Some("cardano") => cardano::main(args),
        Some(other) => {
            eprintln!("nodekeeper-sim: --chain {other:?}: expected jormungandr, nodeos or cardano");
            ExitCode::from(2)
        }
    }
}

/// Takes `--chain X` / `--chain=X` out of the command line (else `NODEKEEPER_SIM_CHAIN`); the rest goes to the
/// chain's own parser.
pub fn split_chain(args: Vec<OsString>) -> (Option<String>, Vec<OsString>) {
    let mut chain = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--chain" {
            chain = Some(
                args.next()
                    .map(|value| value.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        } else if let Some(value) = text.strip_prefix("--chain=") {
            chain = Some(value.to_string());
        } else {
            rest.push(arg);
        }
    }
    let chain = chain.or_else(|| std::env::var("NODEKEEPER_SIM_CHAIN").ok());
    (chain, rest)
}

/// The simulated Jormungandr node: runs until a signal or `GET /api/v0/shutdown`.
fn jormungandr_main(args: Vec<OsString>) -> ExitCode {
    let args = Args::parse_from(args);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("nodekeeper-sim: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(start(args));
    // Hung requests may still be pending; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn start(args: Args) -> ExitCode {
    let config = match args.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("nodekeeper-sim: {:#}", anyhow::Error::from(error));
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = &config.data_dir {
        if let Err(error) = std::fs::create_dir_all(dir) {
            eprintln!(
                "nodekeeper-sim: cannot create the data directory {}: {error}",
                dir.display()
            );
            return ExitCode::from(2);
        }
        if data::is_corrupt(dir) {
            // As a database that will not open: an error line and status 1, at every start.
            eprintln!("nodekeeper-sim: {}", data::CORRUPT_DB_MESSAGE);
            return ExitCode::from(1);
        }
    }
    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "nodekeeper-sim: cannot listen on {}: {error}",
                config.listen
            );
            return ExitCode::from(2);
        }
    };
    match listener.local_addr() {
        Ok(address) => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "listening on {address}");
            let _ = stdout.flush();
        }
        Err(error) => {
            eprintln!("nodekeeper-sim: cannot read the bound address: {error}");
            return ExitCode::from(2);
        }
    }
    match run(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nodekeeper-sim: {:#}", anyhow::Error::from(error));
            ExitCode::from(1)
        }
    }
}

/// Runs a simulated node on `listener` until `shutdown` resolves or `GET /api/v0/shutdown` is called.
pub async fn run(
    config: SimConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    let name = config.node.name.clone();
    let node = Node::new(config.node, Utc::now());
    let shared = Arc::new(
        Shared::new(node, config.events.map(EventLog::new)).with_data_dir(config.data_dir.clone()),
    );
    tracing::info!(node = %name, "simulated node starting");

    let mut background = Vec::new();
    if let Some(path) = config.control {
        let mut last_seen = None;
        // Apply the control file once before serving, so a node can be started faulty.
        apply_control_file(&shared, &path, &mut last_seen).await;
        background.push(tokio::spawn(poll_control_file(
            shared.clone(),
            path,
            last_seen,
        )));
    }
    background.push(tokio::spawn(tick_slots(shared.clone())));
    if let Some(dir) = &config.data_dir {
        match data::BlockLog::open(dir) {
            Ok(log) => background.push(tokio::spawn(write_blocks(shared.clone(), log))),
            Err(error) => {
                tracing::error!(dir = %dir.display(), %error, "cannot open the block log")
            }
        }
    }

    let server = axum::serve(listener, api::router(shared.clone()))
        .with_graceful_shutdown(shared.stopped())
        .into_future();
    let mut server = tokio::spawn(server);
    let result = tokio::select! {
        () = shutdown => {
            tracing::info!("signal received, shutting down");
            shared.request_stop();
            None
        }
        () = shared.stopped() => None,
        joined = &mut server => Some(joined),
    };
    let joined = match result {
        Some(joined) => Some(joined),
        None => tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.ok(),
    };
    server.abort();
    for task in background {
        task.abort();
    }
    match joined {
        Some(Ok(Err(error))) => Err(SimError::Serve(error)),
        _ => Ok(()),
    }
}

/// Wakes at every slot boundary to settle leader slots (and record leader events) on time.
async fn tick_slots(shared: Arc<Shared>) {
    loop {
        let wait = shared.with_node(|node, now| {
            let params = node.params();
            let next_start = match params.abs_slot_at(now) {
                Some(slot) => params.slot_time(slot.saturating_add(1)),
                None => params.block0_time(),
            };
            (next_start - now).to_std().unwrap_or(Duration::ZERO)
        });
        tokio::time::sleep(wait.min(MAX_TICK) + TICK_MARGIN).await;
    }
}

/// Appends the blocks of the node's tip to its data directory's block log while it is Running
/// (checked every `BLOCK_LOG_EVERY`).
async fn write_blocks(shared: Arc<Shared>, mut log: data::BlockLog) {
    loop {
        let tip = shared.with_node(|node, now| {
            (node.state(now) == node::NodeState::Running).then(|| {
                let tip = node.tip(now);
                (tip.height, chain::to_hex(&node.params().block_hash(&tip)))
            })
        });
        if let Some((height, hash)) = tip
            && let Err(error) = log.record(height, &hash)
        {
            tracing::error!(path = %log.path().display(), %error, "cannot append to the block log");
        }
        tokio::time::sleep(BLOCK_LOG_EVERY).await;
    }
}

async fn poll_control_file(shared: Arc<Shared>, path: PathBuf, mut last_seen: Option<String>) {
    loop {
        tokio::time::sleep(CONTROL_POLL).await;
        apply_control_file(&shared, &path, &mut last_seen).await;
    }
}

/// Reads the control file and applies its fault if the content changed since `last_seen`.
async fn apply_control_file(shared: &Shared, path: &Path, last_seen: &mut Option<String>) {
    let Some(line) = crate::changed_control_line(path, last_seen).await else {
        return;
    };
    match line.parse::<Fault>() {
        Ok(Fault::Crash) => {
            tracing::error!("control file says crash: exiting with status 1");
            std::process::exit(1);
        }
        Ok(Fault::CorruptDb) => data::corrupt_and_exit(shared.data_dir()),
        Ok(fault) => shared.set_fault(fault),
        Err(error) => tracing::warn!(path = %path.display(), %error, "ignoring the control file"),
    }
}

/// The control file's first non-empty line (a missing or empty file: `""`) when it changed since
/// `last_seen`; `None` when unchanged or unreadable (a read error is logged once). Every chain's
/// simulator reads its control file through this.
pub(crate) async fn changed_control_line(
    path: &Path,
    last_seen: &mut Option<String>,
) -> Option<String> {
    let content = match tokio::fs::read(path).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            let marker = format!("\0error: {error}");
            if last_seen.as_deref() != Some(marker.as_str()) {
                tracing::warn!(path = %path.display(), %error, "cannot read the control file");
                *last_seen = Some(marker);
            }
            return None;
        }
    };
    let line = content
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("");
    if last_seen.as_deref() == Some(line) {
        return None;
    }
    *last_seen = Some(line.to_string());
    Some(line.to_string())
}

/// Resolves on SIGTERM or SIGINT (supervisord stops programs with SIGTERM).
pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

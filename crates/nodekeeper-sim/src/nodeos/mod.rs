//! A simulated Antelope nodeos producer node (`/v1/chain/*` and `/v1/producer/*`): `nodekeeper-sim --chain nodeos`.
//!
//! Several sim processes (each a supervisord program) follow one simulated chain without talking, because the
//! chain is a pure function of wall-clock time and shared parameters (`--genesis-time`, `--block-interval-ms`,
//! `--producers`, `--chain-id`/`--seed`). Each process produces for `--producer` when it is that producer's turn,
//! it is in sync and healthy, and not paused, and appends one JSON line per block it makes to `--events`; two lines
//! with the same `block_num` are a double production, the fork nodekeeper must prevent.
//!
//! Layout:
//! - `chain`: the pure chain model (block numbers and times, ids, schedule, rounds, the nodeos time format).
//! - `node`: one node as a state machine over time (syncing, faults, pause, blocks made); no I/O.
//! - `fault`: the fault vocabulary, the control-file syntax and the `POST /sim/fault` body.
//! - `config`: the command line and its validation.
//! - `api`: the HTTP routes, nodeos's shapes and error bodies, the events file and the exits.
//! - this file: the shell: start-up (the dirty-db marker), the block ticker, the control-file poller, shutdown.
//!
//! Control interface: `POST /sim/fault` with `{"fault":"none|crash|stuck|lag|hang|slow|bootstrap|refuse-pause|dirty-db",
//! "blocks":N,"delay_ms":M}`, `GET /sim/state`, or a `--control` file holding one line (`stuck`, `lag 5`,
//! `slow 500`, …; missing or empty = `none`), polled every 200 ms and applied when its content changes.
//! Exit status: 0 on SIGTERM/SIGINT, 1 on `crash`, 2 on a start-up error or `dirty-db`.

// The simulator models wall time itself: it reads the clock directly.
#![allow(clippy::disallowed_methods)]

pub mod api;
pub mod chain;
pub mod config;
pub mod fault;
pub mod node;

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
use self::fault::Fault;
use self::node::Node;

/// How often the control file is read.
const CONTROL_POLL: Duration = Duration::from_millis(200);
/// How long a graceful shutdown may take before the process exits anyway (hung requests never finish).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// How late after a block boundary the ticker wakes, so that `now` is safely past it.
const TICK_MARGIN: Duration = Duration::from_millis(5);
/// The longest the ticker sleeps.
const MAX_TICK: Duration = Duration::from_secs(1);

/// The `--chain nodeos` entry point; `args` is the command line without `--chain`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = Args::parse_from(args);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
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
        if dir.join(api::DIRTY_MARKER).exists() {
            api::print_dirty_db();
            return ExitCode::from(2);
        }
    }
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
    let code = runtime.block_on(start(config));
    // Hung requests may still be pending; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn start(config: SimConfig) -> ExitCode {
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
    match run(config, listener, crate::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nodekeeper-sim: http server failed: {error}");
            ExitCode::from(1)
        }
    }
}

/// Runs a simulated nodeos on `listener` until `shutdown` resolves.
pub async fn run(
    config: SimConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let name = config.node.name.clone();
    let node = Node::new(config.node, Utc::now());
    let shared = Arc::new(Shared::new(
        node,
        config.events,
        config.data_dir,
        config.producer_api,
    ));
    tracing::info!(node = %name, "simulated nodeos starting");

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
    background.push(tokio::spawn(tick_blocks(shared.clone())));

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
        Some(Ok(Err(error))) => Err(error),
        _ => Ok(()),
    }
}

/// Wakes just after every block boundary to settle production (and record events) on time.
async fn tick_blocks(shared: Arc<Shared>) {
    loop {
        let wait = shared.with_node(|node, now| {
            let params = node.params();
            let next = params.block_time(params.head_at(now).saturating_add(1));
            (next - now).to_std().unwrap_or(Duration::ZERO)
        });
        tokio::time::sleep(wait.min(MAX_TICK) + TICK_MARGIN).await;
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
        Ok(fault) => {
            shared.set_fault(fault);
            api::exit_now(fault, shared.data_dir());
        }
        Err(error) => tracing::warn!(path = %path.display(), %error, "ignoring the control file"),
    }
}

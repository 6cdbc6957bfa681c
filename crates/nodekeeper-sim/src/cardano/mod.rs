//! A simulated cardano-node block producer (Prometheus metrics and dynamic block forging by SIGHUP):
//! `nodekeeper-sim --chain cardano`.
//!
//! Several simulator processes (each a supervisord program) follow one simulated chain without talking to each
//! other, because the chain is a pure function of wall-clock time and shared parameters. Each process serves
//! cardano-node's Prometheus metrics, forges on the pool's leader slots while its credentials are loaded, toggles
//! forging on SIGHUP as cardano-node does, records every block it forges in a shared events file (two lines with
//! the same `slot` = two nodes forged for one slot), and takes injected faults at run time.
//!
//! Layout:
//! - `chain`: the pure chain model (slots, epochs, blocks, KES periods, the pool's leader slots).
//! - `node`: one node as a state machine over time (replay, faults, forging, SIGHUP, counters); no I/O.
//! - `fault`: the fault vocabulary, the control-file syntax and the `POST /sim/fault` body.
//! - `metrics`: the Prometheus text.
//! - `files`: genesis and leadership-schedule JSON, credential files, the events file.
//! - `config`: the command line and its validation.
//! - `api`: the HTTP routes, the shared state and the cardano-style log lines.
//! - this file: the shell: start-up, `--write-*`, signals (SIGHUP, SIGTERM, SIGINT), the slot ticker, the
//!   control-file poller and shutdown.
//!
//! Control interface: `POST /sim/fault` with
//! `{"fault":"none|stuck|lag|bootstrap|hang|slow|ignore-sighup|crash|kes","slots":N,"delay_ms":M,"remaining":K}`,
//! `GET /sim/state`, `GET /sim/schedule?epoch=N`, or a `--control` file holding one line (`stuck`, `lag 5`,
//! `slow 500`, `kes 3`, …; missing or empty = `none`), polled every 200 ms and applied only when its content
//! changes.

pub mod api;
pub mod chain;
pub mod config;
pub mod fault;
pub mod files;
pub mod metrics;
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
use tokio::signal::unix::{Signal, SignalKind, signal};

use self::api::{Shared, log_line};
use self::config::{Args, Config};
use self::fault::Fault;
use self::files::{EventLog, genesis, leadership_schedule, read_credentials, write_json};
use self::node::{Credentials, Node};

/// How often the control file is read.
const CONTROL_POLL: Duration = Duration::from_millis(200);
/// How long a graceful shutdown may take before the process exits anyway (hung requests never finish).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);
/// How late after a slot boundary the ticker wakes, so that `now` is safely inside the new slot.
const TICK_MARGIN: Duration = Duration::from_millis(3);
/// The longest the ticker sleeps, so long slots and clock jumps are still noticed.
const MAX_TICK: Duration = Duration::from_secs(1);

/// The `--chain cardano` entry point; `args` is the command line without `--chain`.
/// Exit status: 0 on SIGTERM/SIGINT (or after `--write-*`), 1 on a `crash` fault or a server failure, 2 on a
/// start-up error.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
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
    if config.writes_only() {
        return write_files(&config);
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

/// `--write-genesis` and `--write-schedule`.
fn write_files(config: &Config) -> ExitCode {
    let params = &config.params;
    if let Some(path) = &config.write_genesis
        && let Err(error) = write_json(path, &genesis(params))
    {
        eprintln!("nodekeeper-sim: cannot write {}: {error}", path.display());
        return ExitCode::from(2);
    }
    if let Some(path) = &config.write_schedule {
        let epoch = config
            .epoch
            .unwrap_or_else(|| params.epoch_of(params.slot_at(Utc::now()).unwrap_or(0)));
        if let Err(error) = write_json(path, &leadership_schedule(params, epoch)) {
            eprintln!("nodekeeper-sim: cannot write {}: {error}", path.display());
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// The signals the node handles, installed before it announces its address so none can kill it by default.
struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

fn install_signals() -> std::io::Result<Signals> {
    Ok(Signals {
        hangup: signal(SignalKind::hangup())?,
        terminate: signal(SignalKind::terminate())?,
        interrupt: signal(SignalKind::interrupt())?,
    })
}

async fn start(config: Config) -> ExitCode {
    let Some(node_config) = config.node.clone() else {
        eprintln!("nodekeeper-sim: --name is required");
        return ExitCode::from(2);
    };
    let mut signals = match install_signals() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("nodekeeper-sim: cannot install signal handlers: {error}");
            return ExitCode::from(2);
        }
    };
    let credentials = if node_config.non_producing {
        Credentials::NotConfigured
    } else {
        read_credentials(config.credentials.as_ref())
    };
    if let Credentials::Unreadable(error) = &credentials {
        eprintln!("nodekeeper-sim: {error}");
        return ExitCode::from(2);
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
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(error) => {
            eprintln!("nodekeeper-sim: cannot read the bound address: {error}");
            return ExitCode::from(2);
        }
    };
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {address}");
        let _ = stdout.flush();
    }
    let now = Utc::now();
    let name = node_config.name.clone();
    let (node, boot) = Node::new(node_config, &credentials, now);
    log_line(&name, "startup", &boot.message(), now);
    let shared = Arc::new(Shared::new(
        node,
        config.events.map(EventLog::new),
        config.credentials,
        config.metrics_suffix,
    ));
    tracing::info!(node = %name, %address, "simulated cardano-node starting");

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

    let server = axum::serve(listener, api::router(shared.clone()))
        .with_graceful_shutdown(shared.stopped())
        .into_future();
    let mut server = tokio::spawn(server);
    let result = loop {
        tokio::select! {
            _ = signals.hangup.recv() => {
                shared.sighup();
            }
            _ = signals.terminate.recv() => break None,
            _ = signals.interrupt.recv() => break None,
            joined = &mut server => break Some(joined),
        }
    };
    let joined = match result {
        Some(joined) => Some(joined),
        None => {
            tracing::info!("signal received, shutting down");
            shared.request_stop();
            tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.ok()
        }
    };
    server.abort();
    for task in background {
        task.abort();
    }
    match joined {
        Some(Ok(Err(error))) => {
            eprintln!("nodekeeper-sim: http server failed: {error}");
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

/// Wakes at every slot boundary to run the forge loop on time.
async fn tick_slots(shared: Arc<Shared>) {
    loop {
        let wait = shared.with_node(|node, now| {
            let params = node.params();
            let next_start = match params.slot_at(now) {
                Some(slot) => params.slot_time(slot.saturating_add(1)),
                None => params.system_start(),
            };
            (next_start - now).to_std().unwrap_or(Duration::ZERO)
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
        Ok(Fault::Crash) => {
            tracing::error!("control file says crash: exiting with status 1");
            std::process::exit(1);
        }
        Ok(fault) => shared.set_fault(fault),
        Err(error) => tracing::warn!(path = %path.display(), %error, "ignoring the control file"),
    }
}

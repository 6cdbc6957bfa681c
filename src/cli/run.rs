//! `nodekeeper run` (the daemon) and `nodekeeper status` (one table of the pool).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use clap::Args;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::Failure;
use super::config::ConfigSourceArgs;
use crate::api::{self, ApiState};
use crate::config::{self, Config};
use crate::daemon::{Daemon, RealParts, RunOptions, Setup, state};
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

/// SIGHUPs, handled from now on (its default action would end the process): each is passed on
/// to the daemon, which reads its configuration again.
fn hangups() -> Option<mpsc::Receiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).ok()?;
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            // A full channel already has a reload waiting: this one adds nothing.
            let _ = sender.try_send(());
        }
    });
    Some(receiver)
}

/// The effective user id of this process (the owner of `/proc/self`), when known.
fn effective_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|meta| meta.uid())
}

/// The inbox's notices, passed on to the daemon's loop (the inbox is dropped, and its socket
/// removed, when the loop is gone).
fn relay(mut inbox: crate::listener::Inbox) -> mpsc::Receiver<crate::listener::Notice> {
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let notice = inbox.next().await;
            if sender.send(notice).await.is_err() {
                break;
            }
        }
    });
    receiver
}

/// Runs the daemon until a signal.
pub async fn run(source: &ConfigSourceArgs, args: RunArgs) -> Result<u8, Failure> {
    let hangups = hangups();
    let config = source.load_for_host()?;
    if effective_uid() == Some(0) {
        warn!(
            "running as root: nodekeeper needs no privilege beyond its files and supervisord's \
             socket; run it as the nodes' user (supervisor-conf --user)"
        );
    }
    let config_source = source.source()?;
    let snapshot = Arc::new(RwLock::new(Snapshot::default()));
    let options = RunOptions {
        dry_run: args.dry_run,
        once: args.once,
    };
    // One daemon per set of files: a second one would hand the key over on the same nodes. A
    // dry run writes nothing and takes no lock.
    let _lock = if args.dry_run {
        None
    } else {
        Some(state::lock(&state::lock_path(&config)).map_err(Failure::usage)?)
    };
    // The API's address, bound now: a daemon without its API is refused before it touches a node.
    let listener =
        if args.once || args.dry_run {
            None
        } else {
            let listen = config.api.listen;
            Some(api::bind(listen).await.map_err(|e| {
                Failure::usage(format!("cannot listen on {listen} (api.listen): {e}"))
            })?)
        };
    // supervisord's events (`nodekeeper listen` relays them to a socket beside the state file):
    // bound now, so that a listener connecting at any time finds it. Without it, polling alone.
    let notices = if args.once || args.dry_run {
        None
    } else {
        let path = crate::listener::socket_path(&config.restart_log);
        match crate::listener::Inbox::bind(&path).await {
            Ok(inbox) => Some(relay(inbox)),
            Err(e @ crate::listener::InboxError::Io { .. }) => {
                warn!(
                    "{}; supervisord's events are not heard: polling only",
                    crate::describe::chain(&e)
                );
                None
            }
            Err(e) => {
                return Err(Failure::usage(format!(
                    "cannot listen for supervisord's events: {e}"
                )));
            }
        }
    };
    // Alerts (src/alert): email's worker and one per channel, fed by the daemon's events, never
    // blocking it; none in a dry run. Started before the daemon, so that a bad [email] or channel
    // exits 2 before files are written.
    let alerts = if args.dry_run {
        None
    } else {
        crate::alert::Alerts::start(
            &config.email,
            &config.channels,
            config.alert_facts(),
            Arc::new(SystemClock),
        )
        .map_err(|e| Failure::usage(e.to_string()))?
    };
    // [cluster]: the etcd session (lease, election, fenced promotions). A one-off or dry run
    // would campaign beside the real daemon: refused while leadership is managed.
    let session = match &config.cluster {
        Some(_) if config.leadership.enabled && (args.once || args.dry_run) => {
            return Err(Failure::usage(
                "--once and --dry-run are not available with [cluster] and leadership: they would \
                 campaign in the pool's election beside the running instance"
                    .to_string(),
            ));
        }
        Some(settings) => Some(Arc::new(crate::cluster::session::start(settings.clone()))),
        None => None,
    };
    // Metrics: updated by the loop each tick, served by the API.
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let token = Arc::new(RwLock::new(String::new()));
    let daemon = Daemon::new(
        config.clone(),
        Setup {
            source: config_source,
            env: config::process_env(),
            parts: Arc::new(RealParts::default()),
            clock: Arc::new(SystemClock),
            options,
            snapshot: Arc::clone(&snapshot),
            metrics: Arc::clone(&metrics),
            events: alerts.as_ref().map(|worker| worker.sender()),
            token: Arc::clone(&token),
            alerts: alerts
                .as_ref()
                .map(crate::alert::Alerts::reconfigure)
                .unwrap_or_default(),
            hangups,
            notices,
            cluster: session
                .as_ref()
                .map(|session| Arc::clone(session) as Arc<dyn crate::cluster::session::Cluster>),
        },
    )
    .map_err(|e| Failure::usage(e.to_string()))?;
    let (requests_tx, requests_rx) = mpsc::channel(16);
    let (stop_tx, stop_rx) = watch::channel(false);
    // A dry run touches nothing, not even the token file; --once has no use for the API.
    let api_task = if let Some(listener) = listener {
        let state = ApiState {
            snapshot: Arc::clone(&snapshot),
            requests: requests_tx,
            token,
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
            live: api::dashboard::Live::default(),
        };
        let listen = config.api.listen;
        let mut stop = stop_rx.clone();
        Some(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            info!("API on http://{listen}");
            if let Err(e) = api::serve(listener, state, shutdown).await {
                // The loop keeps the nodes safe without the API; say loudly that it is missing.
                error!("API not available on {listen}: {e}");
            }
        }))
    } else {
        drop(requests_tx);
        None
    };
    let stepped_down = daemon.run(requests_rx, signalled()).await;
    if let Some(session) = session.and_then(|session| Arc::try_unwrap(session).ok()) {
        // A clean stop: once nothing here holds the key, resign and revoke the lease, so that
        // another instance takes over at once; else the lease runs out (and the fence demotes).
        if stepped_down {
            session.shutdown().await;
        } else {
            session.abort();
        }
    }
    let _ = stop_tx.send(true);
    if let Some(task) = api_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    if let Some(alerts) = alerts {
        // The daemon (the other sender) is gone: deliver what is queued, briefly.
        alerts.finish(Duration::from_secs(10)).await;
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
    crate::daemon::observe_once(config, &RealParts::default(), &SystemClock)
        .await
        .map_err(|e| Failure::runtime(e.to_string()))
}

//! The daemon (`nodekeeper run`): the imperative shell around the policy, as one loop over a
//! closed set of events ([`Event`]), each with one handler, after rust-analyzer's main loop.
//! It observes (a round per tick, as a task), asks the policy (`policy::decide` for a tick,
//! `policy::operator` for a request), executes what the policy answered (jobs, leadership tasks,
//! config files), and records (restart log, persisted state, snapshot, metrics, events). It never
//! decides: every "should this node be restarted, is it in sync, which config" is the policy's.
//!
//! Files, one per concern:
//! - `runtime`: everything built from a configuration (clients, chain adapters, PoolTool reporter
//!   and reference feed, API token, policy settings), built whole or not at all;
//! - `observe`: a round of observation, probes that outlive it, supervisord outages;
//! - `tick`: the tick and observed handlers (observe → decide → act → record);
//! - `act`: executing the policy's actions (jobs: start, restart, stop; config files; reports);
//! - `leadership`: hand-over and demotion tasks through the chain adapters' leader control;
//! - `operator`: the API's requests and the actions they became;
//! - `reload`: the configuration files watched, a new runtime swapped in whole or rejected;
//! - `snapshot`: the status snapshot and the metrics of a tick, from the policy's facts;
//! - `state`: the files that survive a restart of the daemon (holds, leadership memory).
//!
//! The loop never dies: every failure is logged, counted and retried; an unreachable supervisord
//! means no action on its nodes, with backoff.

pub mod act;
pub mod archive;
pub mod cluster;
pub mod disk;
pub mod leadership;
pub mod observe;
pub mod operator;
pub mod react;
pub mod reload;
pub mod runtime;
pub mod snapshot;
pub mod state;
#[cfg(test)]
mod tests;
pub mod tick;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{Config, ConfigSource, Env};
use crate::events::Event as Report;
use crate::listener::Notice;
use crate::metrics::Metrics;
use crate::policy::{Observation, PolicyState, PoolFacts};
use crate::restart_log::RestartLog;
use crate::status::{LastRestart, Snapshot};
use crate::time::{Clock, rfc3339};

pub use operator::{Accepted, Request};
pub use runtime::{Parts, RealParts, Runtime};

/// How `nodekeeper run` runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Decide and log, touch nothing.
    pub dry_run: bool,
    /// One tick, wait for its actions, exit.
    pub once: bool,
}

/// A fatal start-up problem (the loop itself never fails once running).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Everything the loop reacts to. `next_event` waits for the next one; `handle_event` has one
/// handler per kind.
enum Event {
    /// The tick interval elapsed: start a round of observation.
    Tick,
    /// A round of observation ended: decide, act, record.
    Observed(Box<observe::Observed>),
    /// A start, restart or stop job ended.
    JobFinished(act::JobDone),
    /// A hand-over or demotion ended.
    LeaderFinished(leadership::Finished),
    /// A request from the API.
    Request(Request),
    /// Time to look at the configuration files again.
    Reload,
    /// SIGHUP: read the configuration again, changed or not.
    Hangup,
    /// supervisord's listener relayed an event (or a node process was seen exiting).
    Notice(Notice),
    /// Ask supervisord again about a process that exited (it may not have noticed yet).
    LookAgain,
    /// Between rounds: ask the Running nodes again (their answers are taken in the next round).
    Ask,
    /// The etcd session's view changed, or the lease deadline passed.
    Cluster,
    /// SIGTERM, SIGINT or SIGUSR1: no new decisions; the actions in flight finish.
    Shutdown,
}

/// Where the daemon's records go, besides the restart log rows its jobs append.
pub struct Outputs {
    /// The restart log (`None` in a dry run, which writes nothing).
    pub log: Option<Arc<dyn disk::RowSink>>,
    /// The last restart-log row of each node (status).
    pub last_restarts: BTreeMap<String, LastRestart>,
    /// The snapshot the API and `nodekeeper status` read.
    pub snapshot: Arc<RwLock<Snapshot>>,
    /// The metrics the API serves.
    pub metrics: Arc<Metrics>,
    /// Alerts and other listeners (`try_send`: never blocks the loop).
    pub events: Option<mpsc::Sender<Report>>,
    /// The API token, shared with the API (a reload may change it).
    pub token: Arc<RwLock<String>>,
    /// The alert workers (email's, each channel's), to reconfigure on a reload.
    pub alerts: crate::alert::Reconfigures,
}

impl Outputs {
    /// Sends `event` to the listeners; when their queue is full the event is dropped and logged.
    pub fn emit(&self, event: Report) {
        if let Some(sender) = &self.events
            && let Err(e) = sender.try_send(event)
        {
            warn!("alert queue full or closed, event dropped: {e}");
        }
    }
}

/// The last tick, kept for operator requests between ticks (their facts, their rows' context).
#[derive(Default)]
pub struct Last {
    /// The observation.
    pub observation: Option<Observation>,
    /// The policy's facts of it.
    pub facts: PoolFacts,
}

/// The daemon's state between events.
pub struct Daemon {
    options: RunOptions,
    clock: Arc<dyn Clock>,
    rt: Runtime,
    reloader: reload::Reloader,
    policy: PolicyState,
    observer: observe::Observer,
    last: Last,
    jobs: act::Jobs,
    leader_tasks: leadership::Tasks,
    store: state::Store,
    book: operator::Book,
    out: Outputs,
    /// With `--once`: the tick was decided; the loop ends.
    done: bool,
    /// SIGHUPs.
    hangups: Option<mpsc::Receiver<()>>,
    /// What supervisord's event listeners relay (`nodekeeper listen`, through the inbox).
    notices: Option<mpsc::Receiver<Notice>>,
    /// Reaction to them.
    reaction: react::Reaction,
    /// File writes off the loop.
    disk: Arc<disk::Disk>,
    /// With `[cluster]`: the etcd session, as the loop sees it.
    cluster: Option<cluster::Link>,
    /// Backups and restores: the job in flight, exits watched, old directories.
    archives: archive::Archives,
}

/// What `Daemon::new` needs besides the configuration.
pub struct Setup {
    /// Where the configuration came from (hot reload watches it).
    pub source: ConfigSource,
    /// The environment it was read with.
    pub env: Env,
    /// How clients and adapters are made.
    pub parts: Arc<dyn Parts>,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// How to run.
    pub options: RunOptions,
    /// The snapshot shared with the API.
    pub snapshot: Arc<RwLock<Snapshot>>,
    /// The metrics shared with the API.
    pub metrics: Arc<Metrics>,
    /// Alerts and other listeners.
    pub events: Option<mpsc::Sender<Report>>,
    /// The API token cell shared with the API.
    pub token: Arc<RwLock<String>>,
    /// The alert workers' reconfiguration handles (email's, each channel's).
    pub alerts: crate::alert::Reconfigures,
    /// SIGHUPs (read the configuration again), when the process handles them.
    pub hangups: Option<mpsc::Receiver<()>>,
    /// Events relayed by supervisord's listeners, when an inbox is bound (else polling only).
    pub notices: Option<mpsc::Receiver<Notice>>,
    /// With `[cluster]`: the etcd session (`cluster::session::start`).
    pub cluster: Option<Arc<dyn crate::cluster::session::Cluster>>,
}

impl Daemon {
    /// Opens the restart log (repairing a torn last line), restores persisted holds and leadership
    /// memory, builds the runtime and writes node configs that changed. Fails only on what the
    /// operator must fix.
    pub fn new(config: Config, setup: Setup) -> Result<Daemon, StartError> {
        let Setup {
            source,
            env,
            parts,
            clock,
            options,
            snapshot,
            metrics,
            events,
            token,
            alerts,
            hangups,
            notices,
            cluster,
        } = setup;
        let log = if options.dry_run {
            None
        } else {
            let (log, report) =
                RestartLog::open(&config.restart_log).map_err(|e| StartError(e.to_string()))?;
            if let Some(torn) = &report.repaired_torn_bytes {
                warn!(
                    "restart log {}: removed a torn last line ({} bytes: {:?}) left by an interrupted write",
                    config.restart_log.display(),
                    torn.len(),
                    String::from_utf8_lossy(torn)
                );
            }
            if let Some(problem) = &report.last_row_problem {
                warn!("restart log {}: {problem}", config.restart_log.display());
            }
            Some(Arc::new(Mutex::new(log)) as Arc<dyn disk::RowSink>)
        };
        let mut policy = PolicyState::default();
        policy.restore_holds(state::load_holds(&state::holds_path(&config)).map_err(StartError)?);
        for (node, hold) in policy.holds() {
            info!(node = %node, "held since {}: {}", rfc3339(hold.since), hold.reason);
        }
        let last_restarts = snapshot::last_restarts(&config);
        // A restart log that ends with a `stop` for a node: an earlier daemon died between the
        // stop and the start. Finish that restart rather than take the node for stopped by hand.
        for (node, last) in &last_restarts {
            // A `backup` or `restore` row last: it died inside a backup or restore, the node
            // stopped.
            if matches!(last.action.as_str(), "stop" | "backup" | "restore") {
                info!(node = %node, "an earlier daemon stopped it and did not start it again: finishing that restart");
                policy.interrupted_restart(node);
            }
        }
        if config.leadership.enabled {
            policy.leadership =
                state::load_leadership(&config.leadership.state_file).map_err(StartError)?;
            if let Some(leader) = &policy.leadership.leader {
                info!(
                    "leadership state restored: {leader} held the key; nothing is promoted before every node is observed"
                );
            }
        }
        let rt = Runtime::build(&config, parts.as_ref(), options)
            .map_err(|problems| StartError(problems.join("; ")))?;
        if let Some(value) = &rt.token
            && let Ok(mut cell) = token.write()
        {
            cell.clone_from(value);
        }
        let disk = Arc::new(disk::Disk::new());
        let store = state::Store::new(&config, options.dry_run, Arc::clone(&disk));
        let reloader = reload::Reloader::new(source, env, parts, &config);
        let book = operator::Book::new(clock.as_ref());
        let daemon = Daemon {
            options,
            clock,
            rt,
            reloader,
            policy,
            observer: observe::Observer::default(),
            last: Last::default(),
            jobs: act::Jobs::default(),
            leader_tasks: leadership::Tasks::default(),
            store,
            book,
            out: Outputs {
                log,
                last_restarts,
                snapshot,
                metrics,
                events,
                token,
                alerts,
            },
            done: false,
            hangups,
            notices,
            reaction: react::Reaction::default(),
            archives: archive::Archives::default(),
            disk,
            cluster: match (cluster, &config.cluster) {
                (Some(session), Some(settings)) => Some(cluster::Link::new(
                    session,
                    settings.clone(),
                    (!options.dry_run).then(|| crate::cluster::deadline::path(&config.restart_log)),
                )),
                _ => None,
            },
        };
        if !options.dry_run {
            daemon.write_node_configs();
        }
        Ok(daemon)
    }

    /// Runs until `shutdown` resolves (or after one tick with `once`), then lets the actions in
    /// flight finish. Requests from the API arrive on `requests`.
    ///
    /// With `[cluster]`, a clean stop steps down: this instance's nodes are demoted first, and
    /// the answer says whether every one was (only then may the session resign and revoke its
    /// lease at once; otherwise the lease runs out and the host's fence demotes at the deadline).
    pub async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        shutdown: impl Future<Output = ()>,
    ) -> bool {
        let config = Arc::clone(&self.rt.config);
        let mut ticks = tokio::time::interval(config.thresholds.tick_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reloads = tokio::time::interval(reload::CHECK_EVERY);
        reloads.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reloads.reset();
        let mut asks = Asks::new(&config.thresholds);
        tokio::pin!(shutdown);
        info!(
            nodes = config.nodes.len(),
            dry_run = self.options.dry_run,
            "nodekeeper running: every {:?}",
            config.thresholds.tick_interval
        );
        loop {
            let event = tokio::select! {
                biased;
                () = &mut shutdown => Event::Shutdown,
                done = self.jobs.next(), if self.jobs.busy() => Event::JobFinished(done),
                finished = self.leader_tasks.next(), if self.leader_tasks.busy() => {
                    Event::LeaderFinished(finished)
                }
                observed = self.observer.finished(), if self.observer.in_flight() => {
                    Event::Observed(Box::new(observed))
                }
                Some(request) = requests.recv() => Event::Request(request),
                Some(()) = hangup(&mut self.hangups) => Event::Hangup,
                Some(notice) = next_notice(&mut self.notices) => Event::Notice(notice),
                () = look_again(self.reaction.wake_at()) => Event::LookAgain,
                _ = reloads.tick() => Event::Reload,
                _ = ticks.tick() => Event::Tick,
                () = asks.next() => Event::Ask,
                () = cluster_changed(&mut self.cluster) => Event::Cluster,
            };
            if !self.handle_event(event, &mut ticks) {
                break;
            }
            asks.follow(&self.rt.config.thresholds);
        }
        self.observer.abandon();
        self.drain().await;
        let stepped_down = self.step_down().await;
        self.store.save_holds(self.policy.holds());
        self.disk.flush().await;
        info!("nodekeeper stopped; nodes left running");
        stepped_down
    }

    /// With `[cluster]` and leadership: demotes every node of this instance that holds the key
    /// or may, so that another instance can take over as soon as this one resigns. True when
    /// nothing of this instance holds the key any more.
    async fn step_down(&mut self) -> bool {
        if self.cluster.is_none() || !self.rt.policy.leader.enabled || self.options.dry_run {
            return true;
        }
        while self.leader_tasks.busy() {
            let finished = self.leader_tasks.next().await;
            self.on_leader_finished(finished);
        }
        let timeout = self.rt.config.thresholds.probe_timeout;
        let mut all = true;
        for (name, adapter) in &self.rt.nodes {
            let Some(leader) = adapter.leader() else {
                continue;
            };
            match leader.holding(timeout).await {
                Ok(holding) if !holding.holds() => {}
                Ok(holding) => match leader.demote(&holding, timeout).await {
                    Ok(()) => info!(node = %name, "stepping down: {name} demoted"),
                    Err(failures) => {
                        all = false;
                        warn!(node = %name, "stepping down: demoting {name} failed ({}); the lease runs out instead", failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
                    }
                },
                // Not up: it holds nothing. Anything else: unknown.
                Err(crate::chain::ProbeError::Refused) => {}
                Err(e) => {
                    all = false;
                    warn!(node = %name, "stepping down: {name} could not be read ({e}); the lease runs out instead");
                }
            }
        }
        all
    }

    /// Handles one event; false when the loop ends.
    fn handle_event(&mut self, event: Event, ticks: &mut tokio::time::Interval) -> bool {
        match event {
            Event::Tick => self.on_tick(),
            Event::Observed(observed) => {
                self.on_observed(*observed);
                if self.rt.config.thresholds.tick_interval != ticks.period() {
                    // A reload changed the interval.
                    *ticks = tokio::time::interval(self.rt.config.thresholds.tick_interval);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    ticks.reset();
                }
            }
            Event::JobFinished(done) => self.on_job_finished(done),
            Event::LeaderFinished(finished) => self.on_leader_finished(finished),
            Event::Request(request) => self.on_request(request),
            Event::Reload => self.on_reload(),
            Event::Hangup => self.on_hangup(),
            Event::Notice(notice) => {
                let config = &self.rt.config;
                let want = self.reaction.on_notice(notice, |supervisor, program| {
                    config
                        .nodes
                        .iter()
                        .any(|node| node.supervisor == supervisor && node.program == program)
                });
                if let Some(want) = want {
                    self.observe_now(want);
                }
            }
            Event::Ask => self.on_ask(),
            Event::Cluster => {
                if self.cluster.as_mut().is_some_and(cluster::Link::take_in) {
                    self.observe_now(react::Want::Full);
                }
            }
            Event::LookAgain => {
                // The round's end sets both again.
                self.reaction.look_again = None;
                self.reaction.hang_check = None;
                self.observe_now(react::Want::Quick);
            }
            Event::Shutdown => {
                info!("signal received: no new decisions; finishing the actions in flight");
                return false;
            }
        }
        !(self.options.once && self.done)
    }

    /// Waits for the jobs in flight, as long as a stop and a start can take.
    async fn drain(&mut self) {
        let drain = self
            .rt
            .config
            .supervisors
            .values()
            .map(|s| s.wait_timeout)
            .max()
            .unwrap_or_default()
            + Duration::from_secs(5);
        let deadline = tokio::time::Instant::now() + drain;
        while self.jobs.busy() {
            // A backup or restore is waited for to its end: leaving the node stopped, or an
            // archive half written, is worse than a slow stop.
            let wait = match &self.archives.running {
                Some(node) => {
                    info!(node = %node, "waiting for {node}'s backup or restore to end before stopping");
                    Duration::from_secs(10)
                }
                None => deadline.saturating_duration_since(tokio::time::Instant::now()),
            };
            match tokio::time::timeout(wait, self.jobs.next()).await {
                Ok(done) => self.on_job_finished(done),
                Err(_) if self.archives.running.is_some() => {}
                Err(_) => {
                    warn!("actions still in flight after {drain:?}; exiting anyway");
                    break;
                }
            }
        }
    }
}

/// The next change of the etcd session's view (or its lease deadline); pending forever without
/// `[cluster]`.
async fn cluster_changed(link: &mut Option<cluster::Link>) {
    match link {
        Some(link) => link.changed().await,
        None => std::future::pending().await,
    }
}

/// The timer of the asks between rounds (`observe::ask_every`); follows a reload.
struct Asks {
    every: Option<Duration>,
    timer: Option<tokio::time::Interval>,
}

impl Asks {
    fn new(thresholds: &crate::policy::Thresholds) -> Asks {
        let every = observe::ask_every(thresholds);
        Asks {
            every,
            timer: every.map(|every| {
                let mut timer = tokio::time::interval(every);
                timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                timer.reset();
                timer
            }),
        }
    }

    /// Takes a reloaded configuration's thresholds.
    fn follow(&mut self, thresholds: &crate::policy::Thresholds) {
        if observe::ask_every(thresholds) != self.every {
            *self = Asks::new(thresholds);
        }
    }

    /// The next ask; pending forever when rounds ask often enough.
    async fn next(&mut self) {
        match &mut self.timer {
            Some(timer) => {
                timer.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// The next notice from the listeners; pending forever when there is no inbox (or it closed).
async fn next_notice(notices: &mut Option<mpsc::Receiver<Notice>>) -> Option<Notice> {
    match notices {
        Some(receiver) => match receiver.recv().await {
            Some(notice) => Some(notice),
            None => {
                *notices = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// When it is time for a quick round without an event (a process that exited, a silence about to
/// reach `hang_timeout`); pending forever when not.
async fn look_again(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next SIGHUP; pending forever when there is no channel (or it closed).
async fn hangup(hangups: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match hangups {
        Some(receiver) => match receiver.recv().await {
            Some(()) => Some(()),
            None => {
                *hangups = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// One round of observation made now and the policy's view of it, without a daemon: what
/// `nodekeeper status` shows when no daemon answers. The policy decides on a copy of the
/// persisted state (holds, leadership memory); nothing is executed or written.
pub async fn observe_once(
    config: &Config,
    parts: &dyn Parts,
    clock: &dyn Clock,
) -> Result<Snapshot, StartError> {
    let options = RunOptions {
        dry_run: true,
        once: true,
    };
    let rt = Runtime::build(config, parts, options)
        .map_err(|problems| StartError(problems.join("; ")))?;
    let mut policy = PolicyState::default();
    if let Ok(holds) = state::load_holds(&state::holds_path(config)) {
        policy.restore_holds(holds);
    }
    if config.leadership.enabled {
        policy.leadership =
            state::load_leadership(&config.leadership.state_file).map_err(StartError)?;
    }
    let now = clock.now();
    // One-shot: wait for every probe to answer or time out; read every program's command.
    let mut inputs = observe::Inputs::new(
        now,
        &rt,
        Vec::new(),
        config.thresholds.probe_timeout + Duration::from_millis(600),
        Arc::default(),
    );
    inputs.read_commands = rt.supervisors.keys().cloned().collect();
    let observed = observe::round(observe::Prober::default(), inputs).await;
    let observation = Observation {
        now,
        nodes: observed.nodes,
        reference: None,
        chain: observed
            .chain_time
            .map(|(_, clock)| clock)
            .or(policy.leadership.clock),
        leader_job: false,
        cluster: None,
    };
    let decision = crate::policy::decide(&rt.policy, &mut policy, &observation);
    let seen = snapshot::Seen {
        observation: &observation,
        facts: &decision.facts,
        raw: &observed.raw,
        busy: &Default::default(),
    };
    Ok(snapshot::build(
        config,
        &seen,
        &policy,
        &snapshot::last_restarts(config),
        &rt.policy,
    ))
}

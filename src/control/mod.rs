//! The imperative shell around the policy. One tick: **observe** (supervisord and node APIs,
//! concurrently, each call with a timeout; the reference tip refreshed on its own schedule) →
//! **decide** (`policy::decide`, pure) → **act** (starts and restarts in their own tasks, config
//! variants written first) → **record** (restart-log rows fsynced before each supervisord call, the
//! status snapshot, persisted holds). The loop never dies: every failure is logged, counted and
//! retried; an unreachable supervisord means no action on its nodes, with backoff.

pub mod act;
pub mod holds;
pub mod leadership;
pub mod observe;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::chain::NodeProbe;
use crate::config::watch::{Reload, Watcher};
use crate::config::{Config, ConfigSource, Env, nodefile};
use crate::events::Event;
use crate::metrics::{Metrics, NodeSample, TickSample};
use crate::policy::{
    self, Action, Observation, Outcome, PolicyConfig, PolicyState, ProgramSeen, ReferenceTip,
    Variant,
};
use crate::reference::{PoolToolSource, ReferenceTracker};
use crate::restart_log::{RestartLog, RestartRow};
pub use crate::status::{ActionState, ActionView, NodeAction};
use crate::status::{LastRestart, NodeLine, Snapshot};
use crate::supervisor::Client;
use crate::time::Clock;
use crate::time::rfc3339;
use observe::{Raw, SupervisorAnswer};

/// How often the configuration files are checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(2);
/// The longest wait between attempts to reach an unreachable supervisord.
const MAX_SUPERVISOR_BACKOFF: Duration = Duration::from_secs(30);
/// How many operator actions `GET /v1/actions/{id}` remembers.
const ACTIONS_KEPT: usize = 256;

/// How `nodekeeper run` runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Decide and log, touch nothing.
    pub dry_run: bool,
    /// One tick, wait for its actions, exit.
    pub once: bool,
}

/// A request from outside the loop (the HTTP API), served between ticks so it never races the
/// loop's own actions.
#[derive(Debug)]
pub enum Request {
    /// An operator's action on a node.
    Node {
        /// The node.
        node: String,
        /// What to do.
        action: NodeAction,
        /// The operator's words (`{"reason": "..."}`), logged and kept with the action.
        note: Option<String>,
        /// The action as accepted, or why not.
        reply: oneshot::Sender<Result<Accepted, Refusal>>,
    },
    /// The state of an earlier action.
    Action {
        /// Its id.
        id: String,
        /// The action, if remembered.
        reply: oneshot::Sender<Option<ActionView>>,
    },
}

/// An accepted action: its view now, and its state as it changes.
#[derive(Debug)]
pub struct Accepted {
    /// The action when accepted.
    pub view: ActionView,
    /// Its state; the last value stays readable after the loop lets go of it.
    pub updates: watch::Receiver<ActionState>,
}

/// Why an operator action was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such node in the configuration.
    #[error("no node {0:?} in the configuration")]
    UnknownNode(String),
    /// An action on the node is in flight.
    #[error("{0}: an action is in flight (a start, stop or restart); try again when it ends")]
    Busy(String),
    /// The node cannot do it now (e.g. lead while out of sync).
    #[error("{0}")]
    NotEligible(String),
    /// The daemon cannot act (dry run, no client).
    #[error("{0}")]
    Unavailable(String),
}

struct ActionRecord {
    view: ActionView,
    updates: watch::Sender<ActionState>,
}

/// A fatal start-up problem (the loop itself never fails once running).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Where the daemon keeps its holds: beside the restart log.
pub fn state_path(config: &Config) -> PathBuf {
    config.restart_log.with_file_name("nodekeeper-state.json")
}

/// supervisord clients by endpoint name.
pub fn clients(config: &Config) -> Result<BTreeMap<String, Client>, StartError> {
    config
        .supervisors
        .iter()
        .map(|(name, settings)| {
            settings
                .client()
                .map(|client| (name.clone(), client))
                .map_err(|e| StartError(e.to_string()))
        })
        .collect()
}

struct Outage {
    since: SystemTime,
    failures: u32,
    retry_at: tokio::time::Instant,
}

struct ReferenceFeed {
    source: PoolToolSource,
    tracker: ReferenceTracker,
    fetch: Option<
        oneshot::Receiver<Result<crate::reference::Reference, crate::reference::ReferenceError>>,
    >,
}

/// The daemon's state between ticks.
pub struct Daemon {
    config: Arc<Config>,
    env: Env,
    watcher: Watcher,
    clients: BTreeMap<String, Client>,
    prober: observe::Prober,
    clock: Arc<dyn Clock>,
    policy_config: PolicyConfig,
    state: PolicyState,
    /// `None` in a dry run, which writes nothing.
    log: Option<Arc<Mutex<RestartLog>>>,
    state_path: PathBuf,
    outages: BTreeMap<String, Outage>,
    reference: Option<ReferenceFeed>,
    busy: BTreeSet<String>,
    jobs: JoinSet<(String, act::Finished)>,
    last_restarts: BTreeMap<String, LastRestart>,
    snapshot: Arc<RwLock<Snapshot>>,
    options: RunOptions,
    last_reload_check: tokio::time::Instant,
    events: Option<mpsc::Sender<Event>>,
    /// Nodes restarted by nodekeeper and not yet seen back in sync (for `NodeRecovered`).
    recovering: BTreeSet<String>,
    /// Inside an all-down episode (one `AllNodesDown` per episode).
    all_down: bool,
    metrics: Arc<Metrics>,
    /// The last tick's observation (row context of operator actions between ticks).
    last_observation: Option<Observation>,
    /// Recent operator actions, oldest first.
    actions: VecDeque<ActionRecord>,
    /// The operator action in flight per node (its id).
    operator_jobs: BTreeMap<String, String>,
    action_prefix: String,
    next_action: u64,
    /// The leadership shell, when `leadership.enabled`.
    leadership: Option<leadership::Leadership>,
    /// An operator's leader request: the node and the action id waiting for its hand-over.
    leader_request: Option<(String, String)>,
    /// Why each hand-over in flight was decided, by target.
    handover_reasons: BTreeMap<String, String>,
    /// PoolTool tip and slot reports (when `pooltool.enabled`).
    reporter: Option<crate::pooltool::Reporter>,
}

impl Daemon {
    /// Opens the restart log (repairing a torn last line), restores persisted holds, builds the
    /// clients and writes node configs that changed. Fails only on what the operator must fix.
    pub fn new(
        source: ConfigSource,
        config: Config,
        env: Env,
        probe: Arc<dyn NodeProbe>,
        clock: Arc<dyn Clock>,
        options: RunOptions,
        snapshot: Arc<RwLock<Snapshot>>,
    ) -> Result<Daemon, StartError> {
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
            Some(Arc::new(Mutex::new(log)))
        };
        let state_path = state_path(&config);
        let mut state = PolicyState::default();
        state.restore_holds(holds::load(&state_path).map_err(StartError)?);
        for (node, hold) in state.holds() {
            info!(node = %node, "held since {}: {}", rfc3339(hold.since), hold.reason);
        }
        let clients = clients(&config)?;
        let status_url = reqwest::Url::parse(&config.pooltool.raw.status_url)
            .map_err(|e| StartError(format!("pooltool.status_url: {e}")))?;
        let reference = config.pooltool.raw.enabled.then(|| ReferenceFeed {
            source: PoolToolSource::new(
                status_url,
                config.thresholds.probe_timeout.max(Duration::from_secs(5)),
            ),
            tracker: ReferenceTracker::new(
                config.pooltool.raw.status_refresh,
                config.pooltool.raw.status_max_age,
            ),
            fetch: None,
        });
        let last_restarts = last_restarts(&config);
        // A restart-log that ends with a `stop` for a node: an earlier daemon died between the
        // stop and the start. Finish that restart rather than take the node for stopped by hand.
        for (node, last) in &last_restarts {
            if last.action == "stop" {
                info!(node = %node, "an earlier daemon stopped it and did not start it again: finishing that restart");
                state.interrupted_restart(node);
            }
        }
        let leadership = if config.leadership.enabled {
            state.leadership =
                leadership::Leadership::load(&config.leadership.state_file).map_err(StartError)?;
            if let Some(leader) = &state.leadership.leader {
                info!(
                    "leadership state restored: {leader} held the key; nothing is promoted before every node is observed"
                );
            }
            Some(leadership::Leadership::new(&config).map_err(StartError)?)
        } else {
            None
        };
        let reporter = (config.pooltool.raw.enabled && !options.dry_run).then(|| {
            let key_path = config.pooltool.raw.key_path.clone().unwrap_or_else(|| {
                config
                    .restart_log
                    .parent()
                    .map(|dir| dir.join("pooltool-keys"))
                    .unwrap_or_else(|| PathBuf::from("pooltool-keys"))
            });
            crate::pooltool::Reporter::new(
                &config.pooltool,
                key_path,
                config.thresholds.probe_timeout.max(Duration::from_secs(10)),
            )
        });
        let watcher = Watcher::new(source, &config);
        // Action ids are unique across daemon restarts: the start time, then a counter.
        let action_prefix = format!(
            "{:x}",
            clock
                .now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        );
        let daemon = Daemon {
            policy_config: PolicyConfig::from_config(&config),
            config: Arc::new(config),
            env,
            watcher,
            clients,
            prober: observe::Prober::new(probe),
            clock,
            state,
            log,
            state_path,
            outages: BTreeMap::new(),
            reference,
            busy: BTreeSet::new(),
            jobs: JoinSet::new(),
            last_restarts,
            snapshot,
            options,
            last_reload_check: tokio::time::Instant::now(),
            events: None,
            recovering: BTreeSet::new(),
            all_down: false,
            metrics: Arc::new(Metrics::new()),
            last_observation: None,
            actions: VecDeque::new(),
            operator_jobs: BTreeMap::new(),
            action_prefix,
            next_action: 1,
            leadership,
            leader_request: None,
            handover_reasons: BTreeMap::new(),
            reporter,
        };
        if !options.dry_run {
            daemon.write_node_configs();
        }
        Ok(daemon)
    }

    /// Sends the daemon's events to `sender` (alerts). Sending never blocks the loop: when the
    /// channel is full the event is dropped and logged.
    pub fn with_events(mut self, sender: mpsc::Sender<Event>) -> Daemon {
        self.events = Some(sender);
        self
    }

    /// Publishes metrics into `metrics` (shared with the API's `GET /metrics` and `/healthz`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Daemon {
        self.metrics = metrics;
        self
    }

    fn emit(&self, event: Event) {
        if let Some(sender) = &self.events
            && let Err(e) = sender.try_send(event)
        {
            warn!("alert queue full or closed, event dropped: {e}");
        }
    }

    /// Writes each node's config as the variant it was last started with (normal by default),
    /// where the file differs. Running nodes are not restarted for it.
    fn write_node_configs(&self) {
        for node in &self.config.nodes {
            let variant = self
                .state
                .nodes
                .get(&node.name)
                .map(|memory| memory.variant)
                .unwrap_or_default();
            let config = match variant {
                Variant::Normal => &node.config,
                Variant::Fallback => &node.fallback_config,
            };
            match nodefile::write_if_changed(&node.config_path, config) {
                Ok(nodefile::WriteOutcome::Written) => {
                    info!(node = %node.name, "wrote {}", node.config_path.display());
                }
                Ok(nodefile::WriteOutcome::Unchanged) => {}
                Err(e) => error!(node = %node.name, "{e}"),
            }
        }
    }

    /// Runs until `shutdown` resolves (or after one tick with `once`), then lets the actions in
    /// flight finish. Requests from the API arrive on `requests`.
    pub async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut interval = tokio::time::interval(self.config.thresholds.tick_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        info!(
            nodes = self.config.nodes.len(),
            dry_run = self.options.dry_run,
            "nodekeeper running: every {:?}",
            self.config.thresholds.tick_interval
        );
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    info!("signal received: no new decisions; finishing the actions in flight");
                    break;
                }
                Some(joined) = self.jobs.join_next(), if !self.jobs.is_empty() => self.finish(joined),
                Some(finished) = leader_finished(&mut self.leadership) => self.finish_leader(finished),
                Some(request) = requests.recv() => self.serve(request),
                _ = interval.tick() => {
                    self.tick().await;
                    if self.options.once {
                        break;
                    }
                }
            }
        }
        let drain = self
            .config
            .supervisors
            .values()
            .map(|s| s.wait_timeout)
            .max()
            .unwrap_or_default()
            + Duration::from_secs(5);
        if tokio::time::timeout(drain, async {
            while let Some(joined) = self.jobs.join_next().await {
                self.finish(joined);
            }
        })
        .await
        .is_err()
        {
            warn!("actions still in flight after {drain:?}; exiting anyway");
        }
        self.save_holds();
        info!("nodekeeper stopped; nodes left running");
    }

    /// PoolTool: the best in-sync node's tip; the leader's logs for the slots of the epoch.
    fn report_to_pooltool(&mut self, observation: &Observation) {
        let Some(reporter) = &mut self.reporter else {
            return;
        };
        let threshold = self.policy_config.tip_diff_threshold;
        let best = best_height(observation, &self.policy_config);
        let tip = observation
            .nodes
            .iter()
            .filter_map(|node| match &node.probe {
                Some(Ok(status)) if status.state == crate::chain::NodeState::Running => {
                    status.height.map(|h| (node, status, h))
                }
                _ => None,
            })
            .filter(|(_, _, h)| best.is_none_or(|b| b.saturating_sub(*h) <= threshold))
            .max_by_key(|(_, _, h)| *h)
            .and_then(|(node, status, _)| {
                self.config
                    .node(&node.name)
                    .map(|settings| crate::pooltool::TipInput {
                        rest_url: settings.rest_url.clone(),
                        status: status.clone(),
                    })
            });
        let slots = self.leadership.as_ref().and_then(|leadership| {
            let clock = leadership.clock()?;
            let leader = self.state.leadership.leader.as_ref()?;
            let logs = leadership.logs.get(leader)?;
            Some(crate::pooltool::SlotsInput {
                clock,
                logs: logs.clone(),
            })
        });
        reporter.poll(observation.now, tip, slots);
    }

    /// A leadership task ended: the policy's memory, the log, the alert, an operator's request.
    fn finish_leader(&mut self, finished: leadership::Finished) {
        let now = self.clock.now();
        if finished.ok {
            info!(node = %finished.node, "{}", finished.message);
        } else {
            warn!(node = %finished.node, "{}", finished.message);
        }
        if finished.handover {
            let why = self
                .handover_reasons
                .remove(&finished.node)
                .unwrap_or_default();
            self.state.leadership.record_handover(
                &finished.node,
                finished.ok,
                &finished.demoted,
                now,
            );
            if finished.ok {
                let epoch = self
                    .leadership
                    .as_ref()
                    .and_then(|l| l.clock())
                    .map(|clock| clock.epoch_at(now))
                    .unwrap_or_default();
                self.emit(Event::LeaderSwitched {
                    node: finished.node.clone(),
                    previous: finished.from.clone(),
                    reason: why,
                    epoch,
                });
            }
            if let Some((node, id)) = self.leader_request.clone()
                && node == finished.node
            {
                self.leader_request = None;
                self.state.leadership.requested = None;
                let state = if finished.ok {
                    ActionState::Done {
                        message: finished.message.clone(),
                    }
                } else {
                    ActionState::Failed {
                        error: finished.message.clone(),
                    }
                };
                self.set_action_state(&id, state);
            }
        } else if finished.ok {
            for node in &finished.demoted {
                if self.state.leadership.leader.as_deref() == Some(node) {
                    self.state.leadership.leader = None;
                }
            }
        }
        if let Some(leadership) = &mut self.leadership
            && !self.options.dry_run
        {
            leadership.save(&self.state.leadership);
        }
    }

    fn finish(&mut self, joined: Result<(String, act::Finished), tokio::task::JoinError>) {
        match joined {
            Ok((node, finished)) => {
                self.busy.remove(&node);
                self.state.record_outcome(&node, finished.outcome);
                if let Some(id) = self.operator_jobs.remove(&node) {
                    let state = match finished.error {
                        None => {
                            let verb = self
                                .actions
                                .iter()
                                .find(|record| record.view.id == id)
                                .map_or("done", |record| match record.view.action {
                                    NodeAction::Start => "started",
                                    NodeAction::Stop => "stopped",
                                    _ => "restarted",
                                });
                            ActionState::Done {
                                message: format!("{node}: {verb}"),
                            }
                        }
                        Some(error) => ActionState::Failed { error },
                    };
                    self.set_action_state(&id, state);
                }
            }
            Err(e) => error!("an action task failed: {e}"),
        }
    }

    fn set_action_state(&mut self, id: &str, state: ActionState) {
        if let Some(record) = self.actions.iter_mut().find(|record| record.view.id == id) {
            record.view.state = state.clone();
            record.updates.send_replace(state);
        }
    }

    fn serve(&mut self, request: Request) {
        match request {
            Request::Node {
                node,
                action,
                note,
                reply,
            } => {
                let answer = self.operator(&node, action, note);
                if let Err(refusal) = &answer {
                    info!(node = %node, "operator {} refused: {refusal}", action.as_str());
                }
                let _ = reply.send(answer);
            }
            Request::Action { id, reply } => {
                let view = self
                    .actions
                    .iter()
                    .find(|record| record.view.id == id)
                    .map(|record| record.view.clone());
                let _ = reply.send(view);
            }
        }
    }

    /// An operator's action, serialised with the loop's own: hold and release at once; start,
    /// restart and stop as jobs like the loop's (`Reason::Operator`: storm protection does not
    /// apply); a node with a job in flight is refused.
    fn operator(
        &mut self,
        node: &str,
        action: NodeAction,
        note: Option<String>,
    ) -> Result<Accepted, Refusal> {
        if self.config.node(node).is_none() {
            return Err(Refusal::UnknownNode(node.to_string()));
        }
        let now = self.clock.now();
        let words = note
            .as_deref()
            .map(|note| format!(" ({note})"))
            .unwrap_or_default();
        let state = match action {
            NodeAction::Leader => {
                if self.leadership.is_none() {
                    return Err(Refusal::Unavailable(
                        "leadership is not enabled (leadership.enabled = false)".to_string(),
                    ));
                }
                if self.options.dry_run {
                    return Err(Refusal::Unavailable(
                        "a dry run executes nothing".to_string(),
                    ));
                }
                if let Some((pending, _)) = &self.leader_request {
                    return Err(Refusal::Busy(pending.clone()));
                }
                if self.state.leadership.leader.as_deref() == Some(node) {
                    ActionState::Done {
                        message: format!("{node} already leads"),
                    }
                } else {
                    let threshold = self.policy_config.tip_diff_threshold;
                    let in_sync = self.snapshot.read().is_ok_and(|snapshot| {
                        snapshot.nodes.iter().any(|line| {
                            line.name == node
                                && line.node_state == "Running"
                                && line.lag.is_some_and(|lag| lag <= threshold)
                        })
                    });
                    if !in_sync {
                        return Err(Refusal::NotEligible(format!(
                            "{node} is not Running and in sync: it cannot lead; nothing was changed"
                        )));
                    }
                    info!(node = %node, "operator asks for {node} as the leader{words}: demote, verify, promote when no slot is near");
                    self.state.leadership.requested = Some(node.to_string());
                    ActionState::Running
                }
            }
            NodeAction::Hold => {
                self.state.hold(node, now);
                self.save_holds();
                info!(node = %node, "held by an operator{words}");
                ActionState::Done {
                    message: format!("{node}: held"),
                }
            }
            NodeAction::Release => {
                let message = if self.state.release(node) {
                    info!(node = %node, "released by an operator{words}");
                    format!("{node}: released")
                } else {
                    format!("{node}: was not held")
                };
                self.save_holds();
                ActionState::Done { message }
            }
            NodeAction::Restart | NodeAction::Start | NodeAction::Stop => {
                if self.busy.contains(node) {
                    return Err(Refusal::Busy(node.to_string()));
                }
                if self.log.is_none() {
                    return Err(Refusal::Unavailable(
                        "a dry run executes nothing".to_string(),
                    ));
                }
                let kind = match action {
                    NodeAction::Start => act::Kind::Start,
                    NodeAction::Stop => act::Kind::Stop,
                    _ => act::Kind::Restart,
                };
                let variant = self.operator_variant(node);
                match kind {
                    act::Kind::Stop => {
                        // The operator's stop stands: held, so the loop does not start it again.
                        self.state.hold(node, now);
                        self.save_holds();
                    }
                    act::Kind::Start | act::Kind::Restart => {
                        if kind == act::Kind::Start && self.state.release(node) {
                            self.save_holds();
                        }
                        // The policy's bookkeeping of a start (boot grace, storm window, variant).
                        let memory = self.state.nodes.entry(node.to_string()).or_default();
                        memory.restarts.push(now);
                        memory.note_start(now, variant);
                        memory.sync_restart_at = None;
                    }
                }
                info!(node = %node, "operator {}{words}", action.as_str());
                let observation = self.last_observation.take();
                let spawned = self.spawn_job(
                    node,
                    kind,
                    policy::Reason::Operator,
                    variant,
                    observation.as_ref(),
                    now,
                );
                self.last_observation = observation;
                if !spawned {
                    return Err(Refusal::Unavailable(format!(
                        "{node}: its supervisord is not configured"
                    )));
                }
                ActionState::Running
            }
        };
        let id = format!("{}-{}", self.action_prefix, self.next_action);
        self.next_action += 1;
        let view = ActionView {
            id: id.clone(),
            node: node.to_string(),
            action,
            requested_at: rfc3339(now),
            note,
            state: state.clone(),
        };
        let (updates, receiver) = watch::channel(state.clone());
        if state == ActionState::Running {
            if action == NodeAction::Leader {
                self.leader_request = Some((node.to_string(), id));
            } else {
                self.operator_jobs.insert(node.to_string(), id);
            }
        }
        if self.actions.len() >= ACTIONS_KEPT {
            self.actions.pop_front();
        }
        self.actions.push_back(ActionRecord {
            view: view.clone(),
            updates,
        });
        Ok(Accepted {
            view,
            updates: receiver,
        })
    }

    /// The config an operator's start uses: normal when another node is in sync (as of the last
    /// tick), else the fallback, as the policy would choose.
    fn operator_variant(&self, node: &str) -> Variant {
        let threshold = self.policy_config.tip_diff_threshold;
        let others_in_sync = self.snapshot.read().is_ok_and(|snapshot| {
            snapshot.nodes.iter().any(|line| {
                line.name != node
                    && line.node_state == "Running"
                    && line.lag.is_some_and(|lag| lag <= threshold)
            })
        });
        if others_in_sync {
            Variant::Normal
        } else {
            Variant::Fallback
        }
    }

    fn save_holds(&self) {
        if self.options.dry_run {
            return;
        }
        if let Err(e) = holds::save(&self.state_path, &self.state.holds()) {
            error!("{e}");
        }
    }

    fn maybe_reload(&mut self) {
        if self.last_reload_check.elapsed() < RELOAD_CHECK {
            return;
        }
        self.last_reload_check = tokio::time::Instant::now();
        match self.watcher.poll(&self.env) {
            None => {}
            Some(Reload::Rejected(errors)) => {
                error!(
                    "configuration change rejected, keeping the running configuration:\n{errors}"
                );
                self.emit(Event::ConfigReloadRejected {
                    errors: errors.to_string(),
                });
            }
            Some(Reload::Valid { config, notices }) => {
                for notice in notices {
                    warn!("{notice}");
                }
                match clients(&config) {
                    Ok(clients) => self.clients = clients,
                    Err(e) => {
                        error!("configuration change rejected: {e}");
                        return;
                    }
                }
                if config.restart_log != self.config.restart_log {
                    warn!("restart_log.path changes take effect when nodekeeper restarts");
                }
                if let Some(leadership) = &mut self.leadership
                    && let Err(e) = leadership.reload(&config)
                {
                    error!("configuration change rejected: {e}");
                    return;
                }
                if config.leadership.enabled != self.leadership.is_some() {
                    warn!("leadership.enabled changes take effect when nodekeeper restarts");
                }
                self.policy_config = PolicyConfig::from_config(&config);
                self.config = Arc::new(*config);
                info!("configuration reloaded");
                if !self.options.dry_run {
                    self.write_node_configs();
                }
            }
        }
    }

    fn poll_reference(&mut self, now: SystemTime) {
        let Some(feed) = &mut self.reference else {
            return;
        };
        if let Some(fetch) = &mut feed.fetch {
            match fetch.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => {}
                Err(oneshot::error::TryRecvError::Closed) => feed.fetch = None,
                Ok(result) => {
                    feed.fetch = None;
                    match &result {
                        Err(e) if feed.tracker.consecutive_failures() == 0 => warn!(
                            "reference tip unavailable ({e}); peers alone decide until it is back"
                        ),
                        Ok(_) if feed.tracker.consecutive_failures() > 0 => {
                            info!("reference tip available again");
                        }
                        _ => {}
                    }
                    feed.tracker.record(now, result);
                }
            }
        }
        if feed.fetch.is_none() && feed.tracker.due(now) {
            let source = feed.source.clone();
            let (sender, receiver) = oneshot::channel();
            tokio::spawn(async move {
                let _ = sender.send(source.fetch(now).await);
            });
            feed.fetch = Some(receiver);
        }
    }

    fn backoff_skips(&self) -> Vec<String> {
        let now = tokio::time::Instant::now();
        self.outages
            .iter()
            .filter(|(_, outage)| now < outage.retry_at)
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn note_supervisors(&mut self, raw: &Raw, now: SystemTime) {
        let tick = self.config.thresholds.tick_interval;
        for (name, answer) in &raw.supervisors {
            match answer {
                SupervisorAnswer::Answered(_) => {
                    if let Some(outage) = self.outages.remove(name) {
                        let after = now.duration_since(outage.since).unwrap_or_default();
                        info!(
                            supervisor = %name,
                            "supervisord reachable again after {} s",
                            after.as_secs()
                        );
                        if let Some(sender) = &self.events {
                            let _ = sender.try_send(Event::SupervisorBack {
                                supervisor: name.clone(),
                                after,
                            });
                        }
                    }
                }
                SupervisorAnswer::Skipped => {}
                SupervisorAnswer::Failed(error) => {
                    let events = self.events.clone();
                    let outage = self.outages.entry(name.clone()).or_insert_with(|| {
                        warn!(
                            supervisor = %name,
                            "cannot observe supervisord: {error}; no action on its nodes until it answers"
                        );
                        if let Some(sender) = events {
                            let _ = sender.try_send(Event::SupervisorUnreachable {
                                supervisor: name.clone(),
                                error: error.to_string(),
                            });
                        }
                        Outage {
                            since: now,
                            failures: 0,
                            retry_at: tokio::time::Instant::now(),
                        }
                    });
                    outage.failures = outage.failures.saturating_add(1);
                    let backoff = tick
                        .saturating_mul(1u32 << outage.failures.min(8))
                        .min(MAX_SUPERVISOR_BACKOFF);
                    outage.retry_at = tokio::time::Instant::now() + backoff;
                    debug!(supervisor = %name, failures = outage.failures, "retrying in {backoff:?}: {error}");
                }
            }
        }
    }

    /// One tick: observe, decide, act, record.
    pub async fn tick(&mut self) {
        let started = tokio::time::Instant::now();
        self.maybe_reload();
        let now = self.clock.now();
        self.poll_reference(now);
        let skip = self.backoff_skips();
        // Probes get at most half a tick: a hung node's probe stays in flight for later ticks
        // instead of holding up decisions about every other node.
        let probe_wait = (self.config.thresholds.tick_interval / 2)
            .min(self.config.thresholds.probe_timeout + Duration::from_millis(100));
        let raw = observe::observe(
            &self.config,
            &self.clients,
            &mut self.prober,
            &skip,
            probe_wait,
        )
        .await;
        self.note_supervisors(&raw, now);
        let busy: Vec<String> = self.busy.iter().cloned().collect();
        let mut nodes = observe::node_observations(&self.config, &raw, &busy);
        if let Some(leadership) = &mut self.leadership {
            leadership
                .observe(&self.config, &mut nodes, probe_wait)
                .await;
        }
        let observation = Observation {
            now,
            nodes,
            chain: self.leadership.as_ref().and_then(|l| l.clock()),
            leader_job: self.leadership.as_ref().is_some_and(|l| l.busy()),
            reference: self
                .reference
                .as_ref()
                .and_then(|feed| feed.tracker.current(now))
                .map(|reference| ReferenceTip {
                    height: reference.height,
                    fetched_at: reference.fetched_at,
                }),
        };
        let holds_before = self.state.holds();
        let actions = policy::decide(&self.policy_config, &mut self.state, &observation);
        for action in actions {
            self.act(action, &observation);
        }
        if self.state.holds() != holds_before {
            self.save_holds();
        }
        if let Some(leadership) = &mut self.leadership
            && !self.options.dry_run
        {
            leadership.save(&self.state.leadership);
        }
        self.report_to_pooltool(&observation);
        let snapshot = build_snapshot(
            &self.config,
            &observation,
            &raw,
            &self.state,
            &self.last_restarts,
            &self.policy_config,
        );
        let threshold = self.policy_config.tip_diff_threshold;
        let back: Vec<String> = snapshot
            .nodes
            .iter()
            .filter(|line| {
                self.recovering.contains(&line.name)
                    && !line.busy
                    && line.node_state == "Running"
                    && line.lag.is_some_and(|lag| lag <= threshold)
            })
            .map(|line| line.name.clone())
            .collect();
        for node in back {
            self.recovering.remove(&node);
            info!(node = %node, "back in sync");
            self.emit(Event::NodeRecovered { node });
        }
        if self.all_down
            && snapshot
                .nodes
                .iter()
                .any(|line| line.node_state == "Running")
        {
            self.all_down = false;
        }
        self.metrics.record_tick(&tick_sample(
            &observation,
            &raw,
            &snapshot,
            threshold,
            started.elapsed(),
            self.config.thresholds.tick_interval,
        ));
        if let Ok(mut shared) = self.snapshot.write() {
            *shared = snapshot;
        }
        self.last_observation = Some(observation);
    }

    fn act(&mut self, action: Action, observation: &Observation) {
        let dry = if self.options.dry_run {
            "dry run: would "
        } else {
            ""
        };
        match action {
            Action::Held { node, reason } => {
                warn!(node = %node, "holding the node: {reason}");
                self.emit(Event::NodeHeld {
                    node,
                    reason: reason.to_string(),
                });
            }
            Action::Released { node } => {
                info!(node = %node, "hold ended: the program was started outside nodekeeper");
            }
            Action::Waiting { node, why } => {
                info!(node = %node, "{why}");
            }
            Action::SlotsAssigned { node, epoch, slots } => {
                let clock = self.leadership.as_ref().and_then(|l| l.clock());
                let lines: Vec<String> = slots
                    .iter()
                    .map(|date| match clock {
                        Some(clock) => format!("{date} at {}", rfc3339(clock.date_time(*date))),
                        None => date.to_string(),
                    })
                    .collect();
                info!(node = %node, epoch, "the pool leads {} slots in epoch {epoch}: {}", lines.len(), lines.join(", "));
                self.emit(Event::SlotsAssigned {
                    node,
                    epoch,
                    slots: lines,
                });
            }
            Action::Demote { node, ids, why } => {
                warn!(node = %node, "{dry}demote {node} (leader ids {ids:?}): {why}");
                if !self.options.dry_run
                    && let Some(leadership) = &mut self.leadership
                {
                    leadership.spawn_demote(
                        &self.config,
                        &node,
                        ids,
                        self.config.thresholds.probe_timeout,
                    );
                }
            }
            Action::HandOver {
                from,
                to,
                why,
                vouched,
            } => {
                let previous = from.as_ref().map(|(name, _)| name.clone());
                info!(
                    node = %to,
                    "{dry}hand the leader key to {to}{}: {why}",
                    previous
                        .as_ref()
                        .map(|p| format!(" (demote {p}, verify, promote)"))
                        .unwrap_or_else(|| " (verify, promote)".into())
                );
                if self.options.dry_run {
                    return;
                }
                let timeout = self.config.thresholds.probe_timeout;
                let config = Arc::clone(&self.config);
                let spawned = self.leadership.as_mut().is_some_and(|leadership| {
                    leadership.spawn_handover(
                        &config,
                        &observation.nodes,
                        from,
                        &to,
                        &vouched,
                        timeout,
                    )
                });
                if spawned {
                    self.handover_reasons.insert(to.clone(), why);
                } else {
                    self.state
                        .leadership
                        .record_handover(&to, false, &[], observation.now);
                }
            }
            Action::Stop { node, reason } if self.options.dry_run => {
                info!(node = %node, "{dry}stop: {reason}");
                self.state.record_outcome(&node, Outcome::Done);
            }
            Action::Stop { node, reason } => {
                self.spawn_job(
                    &node,
                    act::Kind::Stop,
                    reason,
                    Variant::Normal,
                    Some(observation),
                    observation.now,
                );
            }
            Action::UseConfig { node, variant } => {
                let Some(settings) = self.config.node(&node) else {
                    return;
                };
                info!(node = %node, "{dry}return to the {variant:?} config (for its next start)");
                if !self.options.dry_run {
                    let config = match variant {
                        Variant::Normal => &settings.config,
                        Variant::Fallback => &settings.fallback_config,
                    };
                    if let Err(e) = nodefile::write_if_changed(&settings.config_path, config) {
                        error!(node = %node, "{e}");
                    }
                }
            }
            Action::Start {
                node,
                reason,
                variant,
            }
            | Action::Restart {
                node,
                reason,
                variant,
            } if self.options.dry_run => {
                info!(node = %node, variant = ?variant, "{dry}start or restart: {reason}");
                self.state.record_outcome(&node, Outcome::Done);
            }
            Action::Start {
                node,
                reason,
                variant,
            } => {
                self.spawn_job(
                    &node,
                    act::Kind::Start,
                    reason,
                    variant,
                    Some(observation),
                    observation.now,
                );
            }
            Action::Restart {
                node,
                reason,
                variant,
            } => {
                self.spawn_job(
                    &node,
                    act::Kind::Restart,
                    reason,
                    variant,
                    Some(observation),
                    observation.now,
                );
            }
        }
    }

    /// Starts a job on `node`; false when none could be started (unknown node or supervisord,
    /// dry run). `observation` (the tick's, or the last one for an operator's action) fills the
    /// restart-log rows.
    fn spawn_job(
        &mut self,
        node: &str,
        kind: act::Kind,
        reason: policy::Reason,
        variant: Variant,
        observation: Option<&Observation>,
        at: SystemTime,
    ) -> bool {
        let Some(settings) = self.config.node(node).cloned() else {
            return false;
        };
        let Some(client) = self.clients.get(&settings.supervisor).cloned() else {
            return false;
        };
        let context = observation
            .map(|observation| row_context(node, observation, &self.policy_config))
            .unwrap_or_default();
        if kind == act::Kind::Stop {
            warn!(node = %node, "stopping {node}: {reason}");
        } else {
            if reason == policy::Reason::AllDown && !self.all_down {
                self.all_down = true;
                self.emit(Event::AllNodesDown {
                    nodes: self.config.nodes.len(),
                });
            }
            self.emit(Event::NodeRestarted {
                node: node.to_string(),
                reason: reason.label().to_string(),
                detail: reason.to_string(),
                restart: kind == act::Kind::Restart,
            });
            if variant == Variant::Fallback {
                self.emit(Event::FallbackConfigUsed {
                    node: node.to_string(),
                });
            }
            self.recovering.insert(node.to_string());
            warn!(node = %node, variant = ?variant, "{} {node}: {reason}", match kind {
                act::Kind::Start => "starting",
                _ => "restarting",
            });
        }
        self.last_restarts.insert(
            node.to_string(),
            LastRestart {
                at: rfc3339(at),
                action: kind.as_str().into(),
                reason: reason.to_string(),
            },
        );
        let Some(log) = &self.log else {
            return false;
        };
        if kind != act::Kind::Stop {
            self.metrics.count_restart(node, reason.label());
        }
        let job = act::Job {
            node: settings,
            client,
            log: Arc::clone(log),
            kind,
            reason,
            variant,
            context,
            clock: Arc::clone(&self.clock),
        };
        self.busy.insert(node.to_string());
        let name = node.to_string();
        self.jobs.spawn(async move { (name, job.run().await) });
        true
    }
}

/// The next finished leadership task; pending forever without leadership.
async fn leader_finished(
    leadership: &mut Option<leadership::Leadership>,
) -> Option<leadership::Finished> {
    match leadership {
        Some(leadership) if leadership.busy() => leadership.next_finished().await,
        _ => std::future::pending().await,
    }
}

/// The restart-log context of an action on `node` decided on `observation`.
fn row_context(node: &str, observation: &Observation, config: &PolicyConfig) -> act::RowContext {
    let Some(seen) = observation.nodes.iter().find(|seen| seen.name == node) else {
        return act::RowContext::default();
    };
    let program = match &seen.program {
        ProgramSeen::Known(view) => Some(view),
        _ => None,
    };
    act::RowContext {
        program_state: program.map(|view| view.state),
        exit_status: program.map(|view| view.exit_status),
        uptime_secs: program
            .and_then(|view| view.started_at)
            .and_then(|started| observation.now.duration_since(started).ok())
            .map(|uptime| uptime.as_secs()),
        height: match &seen.probe {
            Some(Ok(status)) => status.height,
            _ => None,
        },
        reference_height: best_height(observation, config),
    }
}

/// What one tick publishes as metrics: from what was observed, nothing asked again.
fn tick_sample(
    observation: &Observation,
    raw: &Raw,
    snapshot: &Snapshot,
    threshold: u64,
    duration: Duration,
    interval: Duration,
) -> TickSample {
    let nodes = observation
        .nodes
        .iter()
        .zip(&snapshot.nodes)
        .map(|(seen, line)| {
            let probe = raw.probes.get(&seen.name);
            NodeSample {
                node: seen.name.clone(),
                program_state: match &seen.program {
                    ProgramSeen::Known(view) => Some(view.state.code()),
                    _ => None,
                },
                height: line.height,
                lag: line.lag,
                last_block_time: match probe {
                    Some(Ok(status)) => status.last_block_time,
                    _ => None,
                },
                probe_error: match probe {
                    Some(Err(e)) => Some(e.kind()),
                    _ => None,
                },
                held: line.held.is_some(),
                leader: line.leader,
                in_sync: line.node_state == "Running"
                    && line.lag.is_some_and(|lag| lag <= threshold),
            }
        })
        .collect();
    TickSample {
        now: observation.now,
        duration,
        interval,
        nodes,
        supervisors: raw
            .supervisors
            .iter()
            .map(|(name, answer)| {
                (
                    name.clone(),
                    matches!(answer, SupervisorAnswer::Answered(_)),
                )
            })
            .collect(),
        reference: snapshot.reference,
        external_reference: observation
            .reference
            .map(|tip| (tip.height, tip.fetched_at)),
    }
}

/// The reference height the policy uses: the best Running node now, or a fresh external one.
fn best_height(observation: &Observation, config: &PolicyConfig) -> Option<u64> {
    let local = observation
        .nodes
        .iter()
        .filter_map(|node| match (&node.program, &node.probe) {
            (ProgramSeen::Known(view), Some(Ok(status)))
                if view.state == crate::supervisor::ProcessState::Running
                    && status.state == crate::chain::NodeState::Running =>
            {
                status.height
            }
            _ => None,
        })
        .max();
    let external = observation
        .reference
        .filter(|tip| {
            observation
                .now
                .duration_since(tip.fetched_at)
                .unwrap_or_default()
                <= config.reference_max_age
        })
        .map(|tip| tip.height);
    local.max(external)
}

/// The last restart-log row of each node, read from the end of the log.
pub fn last_restarts(config: &Config) -> BTreeMap<String, LastRestart> {
    let mut last = BTreeMap::new();
    let Ok(rows) = crate::restart_log::read_tail(&config.restart_log, 256 * 1024) else {
        return last;
    };
    for row in rows {
        last.insert(row.node.clone(), last_restart_of(&row));
    }
    last
}

fn last_restart_of(row: &RestartRow) -> LastRestart {
    LastRestart {
        at: rfc3339(row.timestamp),
        action: row.action.to_string(),
        reason: row.reason.clone(),
    }
}

/// The status snapshot of one observation.
pub fn build_snapshot(
    config: &Config,
    observation: &Observation,
    raw: &Raw,
    state: &PolicyState,
    last_restarts: &BTreeMap<String, LastRestart>,
    policy_config: &PolicyConfig,
) -> Snapshot {
    let best = best_height(observation, policy_config);
    let nodes = config
        .nodes
        .iter()
        .zip(&observation.nodes)
        .map(|(settings, seen)| {
            let memory = state.nodes.get(&settings.name);
            let program_state = match &seen.program {
                ProgramSeen::Known(view) => view.state.name().to_string(),
                ProgramSeen::Missing => "MISSING".into(),
                ProgramSeen::Unreachable => "UNREACHABLE".into(),
            };
            let (node_state, height) = match raw.probes.get(&settings.name) {
                Some(Ok(status)) => (status.state.name().to_string(), status.height),
                Some(Err(e)) => (format!("({e})"), None),
                None => ("-".into(), None),
            };
            NodeLine {
                name: settings.name.clone(),
                program: settings.program.clone(),
                program_state,
                node_state,
                height,
                lag: match (best, height) {
                    (Some(best), Some(height)) => Some(best.saturating_sub(height)),
                    _ => None,
                },
                held: memory
                    .and_then(|m| m.hold.as_ref())
                    .map(|hold| hold.reason.to_string()),
                busy: seen.busy,
                variant: match memory.map(|m| m.variant).unwrap_or_default() {
                    Variant::Normal => "normal".into(),
                    Variant::Fallback => "fallback".into(),
                },
                last_restart: last_restarts.get(&settings.name).cloned(),
                leader: policy_config.leader.enabled
                    && (matches!(&seen.leadership.keys, Some(Ok(ids)) if !ids.is_empty())
                        || state.leadership.leader.as_deref() == Some(settings.name.as_str())),
                schedule: policy_config
                    .leader
                    .enabled
                    .then(|| leadership::schedule_state(&state.leadership, seen)),
            }
        })
        .collect();
    Snapshot {
        taken_at: rfc3339(observation.now),
        reference: best,
        external_reference: observation.reference.map(|tip| tip.height),
        unreachable: raw
            .supervisors
            .iter()
            .filter_map(|(name, answer)| match answer {
                SupervisorAnswer::Failed(e) => Some(format!("supervisord {name}: {e}")),
                // Not asked this tick: it failed before and is being retried with backoff.
                SupervisorAnswer::Skipped => Some(format!(
                    "supervisord {name}: unreachable, retrying with backoff"
                )),
                _ => None,
            })
            .collect(),
        nodes,
        leadership: policy_config.leader.enabled.then(|| {
            leadership::status_line(&state.leadership, &policy_config.leader, observation.now)
        }),
    }
}

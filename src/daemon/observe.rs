//! Observing the pool. One round per tick asks every supervisord once (one `system.multicall` of
//! `getProcessInfo` for the managed programs, not `getAllProcessInfo`, which costs supervisord
//! ~0.5 ms of CPU per program it has) and probes every node through its chain adapter, all
//! concurrently, each call with its own timeout; then it reads the leader views (who holds the key,
//! the pool's slots, the chain time until known) of the nodes that are Running. A round runs as a
//! task that owns the `Prober` until it ends, so the loop keeps serving requests and finished jobs
//! meanwhile. Probes outlive a round: a round waits a bounded time for them, so a slow or dead node
//! never delays decisions about the others; a new probe starts every round while older ones still
//! wait (at most `MAX_PROBES_IN_FLIGHT`), so how long a node has been silent is known to a round.
//!
//! Also here: supervisord outages (which supervisords are skipped while backing off, and when an
//! outage starts and ends).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::backoff::ExponentialBackoff;
use crate::chain::{BootVerdict, ChainNode, NodeStatus, ProbeError};
use crate::events::Event;
use crate::policy::{LeaderView, NodeObservation, ProgramSeen, ProgramView};
use crate::slots::{LeaderLog, SlotClock};
use crate::supervisor::{Fault, ProcessInfo, ProcessState, Supervisor, SupervisorError, namespec};

/// The longest wait between attempts to reach an unreachable supervisord.
const MAX_SUPERVISOR_BACKOFF: Duration = Duration::from_secs(30);

/// What one supervisord answered in a round.
#[derive(Debug)]
pub enum SupervisorAnswer {
    /// Program info by program name (a fault such as BAD_NAME in place of a missing program).
    Answered(BTreeMap<String, Result<ProcessInfo, Fault>>),
    /// Not asked this round (backing off after failures).
    Skipped,
    /// The call failed.
    Failed(SupervisorError),
}

type ProbeResult = Result<NodeStatus, ProbeError>;

/// A probe's result and the moment it came.
type Ended = (ProbeResult, tokio::time::Instant);

/// The raw results of one round, before they become the policy's `NodeObservation`s.
#[derive(Debug, Default)]
pub struct Raw {
    /// By supervisord name.
    pub supervisors: BTreeMap<String, SupervisorAnswer>,
    /// The latest probe result of each node (for display), by node name.
    pub probes: BTreeMap<String, ProbeResult>,
    /// The nodes whose probe answered (or timed out) during this round: only these count for the
    /// policy, so a probe still in flight is neither a success nor a failure yet.
    pub fresh: BTreeSet<String>,
    /// How long each node's API has not answered while asked, when a question is outstanding or
    /// went unanswered since its last answer.
    pub silence: BTreeMap<String, Duration>,
}

/// At most this many probes of one node in flight: a new one starts every round even while an
/// older one still waits, so that silence is measured from the first unanswered question.
pub const MAX_PROBES_IN_FLIGHT: usize = 3;

/// One node's probes.
#[derive(Debug, Default)]
struct NodeProbes {
    /// Started, not ended: when each started.
    in_flight: Vec<(tokio::time::Instant, oneshot::Receiver<Ended>)>,
    /// The latest result, and when its probe started (a later-started one replaces it).
    latest: Option<(tokio::time::Instant, ProbeResult)>,
    /// When the node last answered (the end of its latest successful probe).
    answered_at: Option<tokio::time::Instant>,
    /// The start of the first probe asked since that answer that failed.
    failed_since: Option<tokio::time::Instant>,
    /// Its latest answer took longer than a round waits: a slow node, not waited for.
    late: bool,
}

impl NodeProbes {
    /// Takes in the result of a probe started at `started`, ended at `at`.
    fn ended(&mut self, started: tokio::time::Instant, (result, at): Ended) -> bool {
        if matches!(result, Err(ProbeError::Local(_))) {
            // nodekeeper's host could not ask: no news about the node.
            return false;
        }
        let asked_after_answer = self.answered_at.is_none_or(|at| started >= at);
        match &result {
            Ok(_) => {
                self.answered_at = Some(self.answered_at.map_or(at, |last| last.max(at)));
                self.failed_since = None;
            }
            Err(_) if asked_after_answer => {
                self.failed_since = Some(self.failed_since.map_or(started, |s| s.min(started)));
            }
            Err(_) => {}
        }
        if self.latest.as_ref().is_none_or(|(at, _)| started >= *at) {
            self.latest = Some((started, result));
            return true;
        }
        false
    }

    /// How long the node has not answered while asked: from the first question since its last
    /// answer that is unanswered (still in flight, or failed).
    fn silence(&self, now: tokio::time::Instant) -> Option<Duration> {
        let asked_after =
            |started: &tokio::time::Instant| self.answered_at.is_none_or(|at| *started >= at);
        let pending = self
            .in_flight
            .iter()
            .map(|(started, _)| *started)
            .filter(asked_after)
            .min();
        let since = match (pending, self.failed_since) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(now.saturating_duration_since(since))
    }
}

/// Node probes that outlive a round: a round starts a probe of every node (up to
/// `MAX_PROBES_IN_FLIGHT` in flight each), waits a bounded time for answers and leaves slow
/// probes running. A probe that runs out its own timeout reports `ProbeError::Timeout` in
/// whichever round it ends; one that nodekeeper's own host could not make counts for nothing.
#[derive(Debug, Default)]
pub struct Prober {
    nodes: BTreeMap<String, NodeProbes>,
    /// The probe calls in flight, to be cut off when nodekeeper acts on their node.
    calls: Calls,
}

/// The probe calls in flight of each node; shared with the loop, which cuts them off even while
/// a round has the prober.
#[derive(Clone, Debug, Default)]
pub struct Calls(Arc<std::sync::Mutex<BTreeMap<String, Vec<tokio::task::AbortHandle>>>>);

impl Calls {
    fn add(&self, node: &str, call: tokio::task::AbortHandle) {
        let mut calls = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        calls.retain(|_, handles| {
            handles.retain(|handle| !handle.is_finished());
            !handles.is_empty()
        });
        calls.entry(node.to_string()).or_default().push(call);
    }

    /// Ends `node`'s probe calls in flight: their connections close. A node stopped with a
    /// question of ours open may wait for it before it exits (a graceful shutdown does).
    pub fn cut(&self, node: &str) {
        let mut calls = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for call in calls.remove(node).unwrap_or_default() {
            call.abort();
        }
    }
}

impl Prober {
    /// A prober whose calls are listed in `calls`.
    pub fn new(calls: Calls) -> Prober {
        Prober {
            nodes: BTreeMap::new(),
            calls,
        }
    }

    /// Forgets what `node` answered and any probe of it in flight: nodekeeper is acting on the
    /// node, and what its old process said is no news about the next one.
    pub fn forget(&mut self, node: &str) {
        self.nodes.remove(node);
        self.calls.cut(node);
    }

    /// Starts a probe of every node that has fewer than `MAX_PROBES_IN_FLIGHT` in flight, then
    /// waits until every probe has answered or `wait` has passed. A node still silent since an
    /// earlier round, or slow (its last answer took longer than `slow_after`), is not waited for:
    /// its answer is taken in whichever round it comes, its silence is what counts, and waiting
    /// would hold up the decisions about every node (the moment a silence reaches
    /// `hang_timeout` among them). Returns the names of the nodes whose result changed.
    pub(in crate::daemon) async fn round(
        &mut self,
        nodes: &[(String, Arc<dyn ChainNode>)],
        timeout: Duration,
        wait: Duration,
        slow_after: Duration,
    ) -> BTreeSet<String> {
        // Nodes removed from the configuration are forgotten.
        self.nodes
            .retain(|name, _| nodes.iter().any(|(node, _)| node == name));
        let began = tokio::time::Instant::now();
        let mut answered = self.collect(|_| began, slow_after).await;
        let not_waited: BTreeSet<String> = self
            .nodes
            .iter()
            .filter(|(_, probes)| probes.late || !probes.in_flight.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        self.ask(nodes, timeout);
        let deadline = tokio::time::Instant::now() + wait;
        let until = |name: &str| {
            if not_waited.contains(name) {
                began
            } else {
                deadline
            }
        };
        answered.extend(self.collect(until, slow_after).await);
        answered
    }

    /// Starts a probe of each of `nodes` that has fewer than `MAX_PROBES_IN_FLIGHT` in flight,
    /// without waiting: rounds take in the answers. Between rounds this makes a node's first
    /// unanswered question (where its silence starts) come soon after it stopped answering.
    pub(in crate::daemon) fn ask(
        &mut self,
        nodes: &[(String, Arc<dyn ChainNode>)],
        timeout: Duration,
    ) {
        for (name, node) in nodes {
            let probes = self.nodes.entry(name.clone()).or_default();
            if probes.in_flight.len() >= MAX_PROBES_IN_FLIGHT {
                continue;
            }
            let (sender, receiver) = oneshot::channel();
            let node = Arc::clone(node);
            let call = tokio::spawn(async move {
                // The adapter enforces its timeout; this outer bound only guards against one
                // that does not.
                let result =
                    tokio::time::timeout(timeout + Duration::from_millis(500), node.probe(timeout))
                        .await
                        .unwrap_or(Err(ProbeError::Timeout(timeout)));
                let _ = sender.send((result, tokio::time::Instant::now()));
            });
            self.calls.add(name, call.abort_handle());
            probes
                .in_flight
                .push((tokio::time::Instant::now(), receiver));
        }
    }

    /// Takes in each node's probes that end by `until(node)`; returns the nodes whose result
    /// changed.
    async fn collect(
        &mut self,
        until: impl Fn(&str) -> tokio::time::Instant,
        slow_after: Duration,
    ) -> BTreeSet<String> {
        let mut answered = BTreeSet::new();
        for (name, probes) in &mut self.nodes {
            let mut still = Vec::new();
            let until = until(name);
            for (started, mut receiver) in std::mem::take(&mut probes.in_flight) {
                match tokio::time::timeout_at(until, &mut receiver).await {
                    Ok(Ok(ended)) => {
                        probes.late = ended.1.saturating_duration_since(started) > slow_after;
                        if probes.ended(started, ended) {
                            answered.insert(name.clone());
                        }
                    }
                    Ok(Err(_closed)) => {}
                    Err(_still_running) => still.push((started, receiver)),
                }
            }
            probes.in_flight = still;
        }
        answered
    }

    /// The latest result of every node that has one.
    fn latest(&self) -> BTreeMap<String, ProbeResult> {
        self.nodes
            .iter()
            .filter_map(|(name, probes)| {
                probes
                    .latest
                    .as_ref()
                    .map(|(_, result)| (name.clone(), result.clone()))
            })
            .collect()
    }

    /// How long each node has not answered while asked.
    pub(in crate::daemon) fn silence(&self) -> BTreeMap<String, Duration> {
        let now = tokio::time::Instant::now();
        self.nodes
            .iter()
            .filter_map(|(name, probes)| probes.silence(now).map(|silent| (name.clone(), silent)))
            .collect()
    }
}

/// A node's program: what the round asks supervisord about.
#[derive(Clone, Debug)]
pub struct Program {
    /// The node.
    pub node: String,
    /// Its supervisord program.
    pub program: String,
    /// Which supervisord.
    pub supervisor: String,
}

/// Each supervisord's program command lines (`getAllConfigInfo`): supervisord name → program
/// namespec → command.
pub type Commands = BTreeMap<String, BTreeMap<String, String>>;

/// How often a supervisord's program commands are read again (an operator may edit its
/// configuration and `update`); also after it failed to answer.
pub const COMMANDS_MAX_AGE: Duration = Duration::from_secs(60);

/// Each probe's timeout. A hang is judged by silence (`hang_timeout`): an answer that comes
/// within it is an answer, so no call is given up sooner.
pub fn probe_timeout(thresholds: &crate::policy::Thresholds) -> Duration {
    thresholds.probe_timeout.max(thresholds.hang_timeout)
}

/// How often Running nodes are asked between rounds: a quarter of `hang_timeout` (at least
/// 100 ms), so a node's silence starts at most that long after it stopped answering instead of
/// up to a tick; `None` when rounds already ask that often.
pub fn ask_every(thresholds: &crate::policy::Thresholds) -> Option<Duration> {
    let every = (thresholds.hang_timeout / 4).max(Duration::from_millis(100));
    (every < thresholds.tick_interval).then_some(every)
}

/// Everything a round needs, owned: it runs as a task.
pub struct Inputs {
    /// Wall-clock time of the round.
    pub now: SystemTime,
    /// Every configured node's program, in configuration order.
    pub programs: Vec<Program>,
    /// The supervisords to ask (those not backing off).
    pub asked: Vec<(String, Arc<dyn Supervisor>)>,
    /// The supervisords backing off (not asked).
    pub skipped: Vec<String>,
    /// Every node's chain adapter, in configuration order.
    pub nodes: Vec<(String, Arc<dyn ChainNode>)>,
    /// Each probe's timeout.
    pub probe_timeout: Duration,
    /// How long the round waits for probes.
    pub probe_wait: Duration,
    /// A whole round's wait: a node whose answer takes longer is slow (rounds do not wait for
    /// it); each leader call's timeout.
    pub slow_after: Duration,
    /// Read the chain time (until it is known).
    pub want_chain_time: bool,
    /// The program commands known so far.
    pub commands: Arc<Commands>,
    /// The supervisords whose program commands this round reads (again).
    pub read_commands: Vec<String>,
    /// A quick round (an event asked to observe now): supervisord's states; probes started but
    /// not waited for; the leader views of the last whole round.
    pub quick: bool,
}

impl Inputs {
    /// A round over every node of `rt` at `now`, asking every supervisord but the `skipped` ones,
    /// with the program commands known so far (none read; probes wait `probe_wait`).
    pub fn new(
        now: SystemTime,
        rt: &super::runtime::Runtime,
        skipped: Vec<String>,
        probe_wait: Duration,
        commands: Arc<Commands>,
    ) -> Inputs {
        let config = &rt.config;
        let thresholds = &config.thresholds;
        Inputs {
            now,
            programs: config
                .nodes
                .iter()
                .map(|node| Program {
                    node: node.name.clone(),
                    program: node.program.clone(),
                    supervisor: node.supervisor.clone(),
                })
                .collect(),
            asked: rt
                .supervisors
                .iter()
                .filter(|(name, _)| !skipped.contains(name))
                .map(|(name, supervisor)| (name.clone(), Arc::clone(supervisor)))
                .collect(),
            skipped: skipped
                .into_iter()
                .filter(|name| rt.supervisors.contains_key(name))
                .collect(),
            nodes: config
                .nodes
                .iter()
                .filter_map(|node| {
                    rt.nodes
                        .get(&node.name)
                        .map(|adapter| (node.name.clone(), Arc::clone(adapter)))
                })
                .collect(),
            probe_timeout: probe_timeout(thresholds),
            probe_wait,
            slow_after: probe_wait,
            want_chain_time: config.leadership.enabled,
            commands,
            read_commands: Vec::new(),
            quick: false,
        }
    }
}

/// What a round saw.
pub struct Observed {
    /// Wall-clock time of the round.
    pub now: SystemTime,
    /// When the round began (monotonic).
    pub started: tokio::time::Instant,
    /// The prober, back from the round.
    pub prober: Prober,
    /// The raw answers.
    pub raw: Raw,
    /// The policy's view of each node (`busy` still to be set by the loop).
    pub nodes: Vec<NodeObservation>,
    /// The chain time, when read this round.
    pub chain_time: Option<(String, SlotClock)>,
    /// The pool's slots each node listed this round.
    pub logs: BTreeMap<String, Vec<LeaderLog>>,
    /// The program commands read this round, by supervisord (only those that answered).
    pub commands: BTreeMap<String, BTreeMap<String, String>>,
    /// A quick round: no leader views were read.
    pub quick: bool,
}

/// One round: every supervisord (but the skipped ones) asked, every node probed, concurrently;
/// then the leader views of the nodes found Running.
pub async fn round(mut prober: Prober, inputs: Inputs) -> Observed {
    let started = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for (name, supervisor) in &inputs.asked {
        let programs: Vec<String> = inputs
            .programs
            .iter()
            .filter(|program| &program.supervisor == name)
            .map(|program| program.program.clone())
            .collect();
        if programs.is_empty() {
            continue;
        }
        let supervisor = Arc::clone(supervisor);
        let name = name.clone();
        tasks.spawn(async move {
            let answer = match supervisor.process_infos(&programs).await {
                Ok(results) => {
                    SupervisorAnswer::Answered(programs.into_iter().zip(results).collect())
                }
                Err(error) => SupervisorAnswer::Failed(error),
            };
            (name, answer)
        });
    }
    let mut configs = JoinSet::new();
    for (name, supervisor) in &inputs.asked {
        if inputs.read_commands.contains(name) {
            let supervisor = Arc::clone(supervisor);
            let name = name.clone();
            configs.spawn(async move { (name, supervisor.program_configs().await) });
        }
    }
    let fresh = prober
        .round(
            &inputs.nodes,
            inputs.probe_timeout,
            inputs.probe_wait,
            inputs.slow_after,
        )
        .await;
    let mut commands = BTreeMap::new();
    while let Some(joined) = configs.join_next().await {
        match joined {
            Ok((name, Ok(programs))) => {
                let read = programs
                    .into_iter()
                    .map(|program| (namespec(&program.group, &program.name), program.command))
                    .collect();
                commands.insert(name, read);
            }
            Ok((name, Err(error))) => {
                debug!(supervisor = %name, "reading the program commands failed: {error}");
            }
            Err(_) => {}
        }
    }
    // Only the supervisords in backoff are `Skipped`; one with no managed program is not listed.
    let mut supervisors: BTreeMap<String, SupervisorAnswer> = inputs
        .skipped
        .iter()
        .map(|name| (name.clone(), SupervisorAnswer::Skipped))
        .collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((name, answer)) = joined {
            supervisors.insert(name, answer);
        }
    }
    let raw = Raw {
        supervisors,
        probes: prober.latest(),
        fresh,
        silence: prober.silence(),
    };
    let mut nodes = node_observations(&inputs.programs, &raw);
    boot_verdicts(&inputs, &commands, &mut nodes);
    key_expiries(&inputs, &mut nodes);
    let (chain_time, logs) = if inputs.quick {
        (None, BTreeMap::new())
    } else {
        leader_views(&inputs, &mut nodes).await
    };
    Observed {
        now: inputs.now,
        started,
        prober,
        raw,
        nodes,
        chain_time,
        logs,
        commands,
        quick: inputs.quick,
    }
}

/// Each node's forging key validity as its adapter read it with the latest probe, for the nodes
/// whose probe answered (the policy alerts on it).
fn key_expiries(inputs: &Inputs, nodes: &mut [NodeObservation]) {
    for node in nodes.iter_mut() {
        if !matches!(node.probe, Some(Ok(_))) {
            continue;
        }
        if let Some((_, adapter)) = inputs.nodes.iter().find(|(name, _)| *name == node.name) {
            node.key_expiry = adapter.key_expiry();
        }
    }
}

/// What each node's chain adapter concludes about booting with the key, from its command line as
/// read this round or before (`None` until read), and about its program's last exit.
fn boot_verdicts(inputs: &Inputs, read: &Commands, nodes: &mut [NodeObservation]) {
    for (node, program) in nodes.iter_mut().zip(&inputs.programs) {
        let Some((_, adapter)) = inputs.nodes.iter().find(|(name, _)| *name == node.name) else {
            continue;
        };
        let command = read
            .get(&program.supervisor)
            .or_else(|| inputs.commands.get(&program.supervisor))
            .and_then(|commands| commands.get(&program.program))
            .map(String::as_str);
        node.boot = adapter.boots_producing(command);
        if let ProgramSeen::Known(view) = &node.program
            && matches!(
                view.state,
                ProcessState::Exited | ProcessState::Fatal | ProcessState::Backoff
            )
        {
            node.hopeless_exit = adapter.hopeless_exit(view.exit_status);
        }
    }
}

/// supervisord's epoch-seconds field as a time (`0` means never).
pub fn epoch_secs(secs: i64) -> Option<SystemTime> {
    u64::try_from(secs)
        .ok()
        .filter(|secs| *secs > 0)
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
}

/// The policy's view of each configured node (`busy` false: the loop knows its jobs).
pub fn node_observations(programs: &[Program], raw: &Raw) -> Vec<NodeObservation> {
    programs
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
            // the round its probe ended only (a probe still in flight is neither success nor
            // failure yet); the last success stands until the next answer.
            let probe = match &program {
                ProgramSeen::Known(view) if view.state == ProcessState::Running => raw
                    .probes
                    .get(&node.node)
                    .filter(|result| result.is_ok() || raw.fresh.contains(&node.node))
                    .cloned(),
                _ => None,
            };
            let running =
                matches!(&program, ProgramSeen::Known(view) if view.state == ProcessState::Running);
            NodeObservation {
                name: node.node.clone(),
                silent_for: raw.silence.get(&node.node).copied().filter(|_| running),
                program,
                probe,
                busy: false,
                leadership: LeaderView::default(),
                boot: BootVerdict::default(),
                hopeless_exit: None,
                key_expiry: None,
            }
        })
        .collect()
}

/// The program runs and the node said it is Running.
fn running(node: &NodeObservation) -> bool {
    matches!(&node.program, ProgramSeen::Known(p) if p.state == ProcessState::Running)
        && matches!(&node.probe, Some(Ok(status)) if status.state == crate::chain::NodeState::Running)
}

type LeaderRead = (
    String,
    Result<crate::chain::Holding, ProbeError>,
    Result<Vec<LeaderLog>, ProbeError>,
    Option<Result<SlotClock, ProbeError>>,
);

/// Fills each Running node's leader view (what it holds, its slots) and reads the chain time
/// while unknown: every node concurrently, each call bounded by the round's probe wait.
async fn leader_views(
    inputs: &Inputs,
    nodes: &mut [NodeObservation],
) -> (
    Option<(String, SlotClock)>,
    BTreeMap<String, Vec<LeaderLog>>,
) {
    // A whole round's wait, even when this round's was cut short.
    let timeout = inputs.slow_after;
    let mut tasks: JoinSet<LeaderRead> = JoinSet::new();
    for node in nodes.iter() {
        // A node that leaves a question unanswered is not asked more: its leader calls would
        // only time out (the policy reads no answer and a timeout alike), holding up the round.
        if !running(node) || node.silent_for.is_some() {
            continue;
        }
        let Some((_, adapter)) = inputs.nodes.iter().find(|(name, _)| *name == node.name) else {
            continue;
        };
        if adapter.leader().is_none() {
            continue;
        }
        let adapter = Arc::clone(adapter);
        let name = node.name.clone();
        let want_clock = inputs.want_chain_time;
        tasks.spawn(async move {
            let (Some(leader), Some(schedule)) = (adapter.leader(), adapter.schedule()) else {
                let none = ProbeError::Connect("no leader control".into());
                return (name, Err(none.clone()), Err(none), None);
            };
            let (holding, logs, clock) = tokio::join!(
                leader.holding(timeout),
                schedule.pool_slots(timeout),
                async {
                    if want_clock {
                        Some(schedule.chain_time(timeout).await)
                    } else {
                        None
                    }
                }
            );
            (name, holding, logs, clock)
        });
    }
    let mut chain_time = None;
    let mut all_logs = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((name, holding, logs, clock)) = joined else {
            continue;
        };
        if let Some(Ok(clock)) = clock {
            chain_time = Some((name.clone(), clock));
        }
        let schedule = match logs {
            Ok(logs) => {
                let dates = logs.iter().map(|log| log.date).collect();
                all_logs.insert(name.clone(), logs);
                Some(dates)
            }
            Err(_) => None,
        };
        if let Some(node) = nodes.iter_mut().find(|node| node.name == name) {
            node.leadership = LeaderView {
                holding: Some(holding),
                schedule,
            };
        }
    }
    (chain_time, all_logs)
}

/// How long to wait before asking an unreachable supervisord again: two ticks, doubling with
/// each failure, at most `MAX_SUPERVISOR_BACKOFF`.
fn retry_backoff(tick: Duration) -> ExponentialBackoff {
    let first = tick
        .saturating_mul(2)
        .clamp(Duration::from_millis(1), MAX_SUPERVISOR_BACKOFF);
    ExponentialBackoff::try_new(first, MAX_SUPERVISOR_BACKOFF, 0.0).unwrap_or(
        ExponentialBackoff::constant(MAX_SUPERVISOR_BACKOFF, MAX_SUPERVISOR_BACKOFF),
    )
}

/// One supervisord that does not answer.
struct Outage {
    since: SystemTime,
    failures: u32,
    retry_at: tokio::time::Instant,
}

/// The supervisords that do not answer: when to ask them again (backoff), and the events of an
/// outage's start and end.
#[derive(Default)]
pub struct Outages {
    outages: BTreeMap<String, Outage>,
}

impl Outages {
    /// The supervisords not to ask now (backing off).
    pub fn skipped(&self) -> Vec<String> {
        let now = tokio::time::Instant::now();
        self.outages
            .iter()
            .filter(|(_, outage)| now < outage.retry_at)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Takes in what each supervisord answered in a round; returns the events of outages that
    /// started or ended.
    pub fn note(&mut self, raw: &Raw, now: SystemTime, tick: Duration) -> Vec<Event> {
        let mut events = Vec::new();
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
                        events.push(Event::SupervisorBack {
                            supervisor: name.clone(),
                            after,
                        });
                    }
                }
                SupervisorAnswer::Skipped => {}
                SupervisorAnswer::Failed(error) => {
                    let outage = self.outages.entry(name.clone()).or_insert_with(|| {
                        warn!(
                            supervisor = %name,
                            "cannot observe supervisord: {error}; no action on its nodes until it answers"
                        );
                        events.push(Event::SupervisorUnreachable {
                            supervisor: name.clone(),
                            error: error.to_string(),
                        });
                        Outage {
                            since: now,
                            failures: 0,
                            retry_at: tokio::time::Instant::now(),
                        }
                    });
                    outage.failures = outage.failures.saturating_add(1);
                    let backoff = retry_backoff(tick).delay(outage.failures - 1);
                    outage.retry_at = tokio::time::Instant::now() + backoff;
                    debug!(supervisor = %name, failures = outage.failures, "retrying in {backoff:?}: {error}");
                }
            }
        }
        events
    }

    /// Forgets supervisords no longer configured.
    pub fn retain(&mut self, configured: impl Fn(&str) -> bool) {
        self.outages.retain(|name, _| configured(name));
    }
}

/// The observation machinery between events: the prober (lent to a round while it runs), the
/// round in flight, supervisord outages, and what the leader views taught (chain time, each
/// node's slots).
pub struct Observer {
    prober: Option<Prober>,
    /// The prober's calls in flight.
    calls: Calls,
    round: Option<tokio::task::JoinHandle<Observed>>,
    /// Nodes acted on since the round in flight began: its answers about them predate the action.
    touched: BTreeSet<String>,
    /// The supervisords that do not answer.
    pub outages: Outages,
    /// The chain's time, once read from a node.
    pub chain_time: Option<SlotClock>,
    /// The pool's slots each node last listed (status, PoolTool).
    pub logs: BTreeMap<String, Vec<LeaderLog>>,
    /// Each supervisord's program commands, as last read.
    pub commands: Arc<Commands>,
    /// When each supervisord's commands were last read.
    commands_read: BTreeMap<String, tokio::time::Instant>,
    /// The leader views of the last whole round, with the process start they are about.
    views: BTreeMap<String, (Option<SystemTime>, LeaderView)>,
}

impl Default for Observer {
    fn default() -> Observer {
        let calls = Calls::default();
        Observer {
            prober: Some(Prober::new(calls.clone())),
            calls,
            round: None,
            touched: BTreeSet::new(),
            outages: Outages::default(),
            chain_time: None,
            logs: BTreeMap::new(),
            commands: Arc::default(),
            commands_read: BTreeMap::new(),
            views: BTreeMap::new(),
        }
    }
}

impl Observer {
    /// A round is in flight.
    pub fn in_flight(&self) -> bool {
        self.round.is_some()
    }

    /// Starts a round (none when one is in flight).
    pub fn start(&mut self, inputs: Inputs) {
        if let Some(prober) = self.prober.take() {
            self.touched.clear();
            self.round = Some(tokio::spawn(round(prober, inputs)));
        }
    }

    /// The round in flight, once it ends; pending forever while none runs.
    pub async fn finished(&mut self) -> Observed {
        loop {
            let Some(handle) = &mut self.round else {
                std::future::pending::<()>().await;
                continue;
            };
            let joined = handle.await;
            self.round = None;
            match joined {
                Ok(observed) => return observed,
                Err(e) => {
                    // The prober went down with the round: start afresh.
                    tracing::error!("an observation round failed: {e}");
                    self.prober = Some(Prober::new(self.calls.clone()));
                }
            }
        }
    }

    /// Takes the prober back from a round that ended; returns the nodes acted on meanwhile
    /// (their answers are forgotten: they predate the action).
    pub fn absorb(&mut self, mut prober: Prober) -> BTreeSet<String> {
        let touched = std::mem::take(&mut self.touched);
        for node in &touched {
            prober.forget(node);
        }
        self.prober = Some(prober);
        touched
    }

    /// nodekeeper starts or ends an action on `node`: what the node answered before says
    /// nothing about the process after it.
    pub fn touch(&mut self, node: &str) {
        self.calls.cut(node);
        match &mut self.prober {
            Some(prober) => prober.forget(node),
            None => {
                self.touched.insert(node.to_string());
            }
        }
    }

    /// The supervisords among `asked` whose program commands are due to be read: never read, or
    /// read more than [`COMMANDS_MAX_AGE`] ago.
    pub fn commands_due<'a>(&self, asked: impl Iterator<Item = &'a String>) -> Vec<String> {
        let now = tokio::time::Instant::now();
        asked
            .filter(|name| {
                self.commands_read
                    .get(*name)
                    .is_none_or(|at| now.duration_since(*at) >= COMMANDS_MAX_AGE)
            })
            .cloned()
            .collect()
    }

    /// Keeps the commands a round read; a supervisord that failed to answer is read again once
    /// it answers (it may have been restarted with another configuration).
    pub fn note_commands(
        &mut self,
        read: BTreeMap<String, BTreeMap<String, String>>,
        supervisors: &BTreeMap<String, SupervisorAnswer>,
        started: tokio::time::Instant,
    ) {
        for (name, answer) in supervisors {
            if matches!(answer, SupervisorAnswer::Failed(_)) {
                self.commands_read.remove(name);
            }
        }
        if read.is_empty() {
            return;
        }
        let commands = Arc::make_mut(&mut self.commands);
        for (name, programs) in read {
            self.commands_read.insert(name.clone(), started);
            commands.insert(name, programs);
        }
    }

    /// Keeps a whole round's leader views; gives a quick round's nodes the last ones, where the
    /// process is the same (a new process's keys are not the old one's).
    pub fn leader_views(&mut self, quick: bool, nodes: &mut [NodeObservation]) {
        let started = |node: &NodeObservation| match &node.program {
            ProgramSeen::Known(program) => program.started_at,
            _ => None,
        };
        if !quick {
            self.views = nodes
                .iter()
                .map(|node| (node.name.clone(), (started(node), node.leadership.clone())))
                .collect();
            return;
        }
        for node in nodes {
            if let Some((at, view)) = self.views.get(&node.name)
                && *at == started(node)
                && running(node)
            {
                node.leadership = view.clone();
            }
        }
    }

    /// Between rounds: starts a probe of each of `nodes` (see [`Prober::ask`]); nothing while a
    /// round has the prober (it is probing).
    pub fn ask_between(&mut self, nodes: &[(String, Arc<dyn ChainNode>)], timeout: Duration) {
        if let Some(prober) = &mut self.prober {
            prober.ask(nodes, timeout);
        }
    }

    /// Drops the round in flight (shutdown).
    pub fn abandon(&mut self) {
        if let Some(round) = self.round.take() {
            round.abort();
        }
    }
}

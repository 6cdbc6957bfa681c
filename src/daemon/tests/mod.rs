//! Scenario tests of the shell at unit level, with tokio's time paused: the daemon runs its real
//! loop against an in-memory supervisord (`FakeSupervisor`) and in-memory nodes (`FakeNode`,
//! a chain adapter whose height follows the paused clock), built through the `Parts` seam. A
//! configuration file in a temporary directory is loaded by the real loader. Each scenario takes
//! simulated minutes and real milliseconds.
//!
//! The real-supervisord integration tests (`tests/it`) stay; these cover the shell's paths: a
//! tick, each operator path, reloads accepted and rejected, a hand-over, a job that fails half way.

mod cluster;
mod handover;
mod job;
mod operator;
mod react;
mod reload;
mod tick;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::{Daemon, Parts, Request, RunOptions, Setup};
use crate::chain::jormungandr::LeaderSecret;
use crate::chain::{
    BootVerdict, BoxFuture, ChainNode, Holding, LeaderControl, LeaderFailure, NodeState,
    NodeStatus, ProbeError, Schedule, Variant,
};
use crate::config::{Config, ConfigSource, NodeSettings, SupervisorSettings};
use crate::events::Event;
use crate::metrics::Metrics;
use crate::slots::{LeaderLog, SlotClock};
use crate::status::{ActionView, NodeAction, Snapshot};
use crate::supervisor::{
    Fault, ProcessInfo, ProcessState, ProgramConfig, Supervisor, SupervisorError,
};
use crate::time::{Clock, TokioClock};

/// Wall-clock time when a scenario starts: the middle of an epoch of the fake chain.
fn base() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_500)
}

/// The fake chain: 1 s slots, 1,000 slots per epoch, genesis at a whole epoch before `base`.
fn chain_clock() -> SlotClock {
    SlotClock::new(
        UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        Duration::from_secs(1),
        1_000,
    )
    .expect("a valid clock")
}

/// A shared record of what happened, in order (`start node1`, `promote node2`, ...).
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    pub(super) fn push(&self, call: String) {
        self.0.lock().unwrap().push(call);
    }

    /// Every call so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The calls that start with `prefix`.
    pub fn matching(&self, prefix: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|call| call.starts_with(prefix))
            .collect()
    }
}

/// One program of the fake supervisord.
#[derive(Clone, Debug)]
struct FakeProgram {
    state: ProcessState,
    start: i64,
    pid: u32,
    /// Its command line, as `getAllConfigInfo` gives it.
    command: String,
    /// What it printed, stdout then stderr, as `tail_log` reads it.
    log: String,
}

#[derive(Default)]
struct SupervisorScript {
    programs: BTreeMap<String, FakeProgram>,
    /// The next start fails with this error (once).
    fail_next_start: Option<SupervisorError>,
    /// Every call fails: supervisord is unreachable.
    down: bool,
    /// A stop takes this long.
    stop_delay: Duration,
    /// The next stop stops the program but its answer is lost (a timeout).
    lose_next_stop_answer: bool,
    /// The next start panics (a bug in the task running it).
    panic_next_start: bool,
    next_pid: u32,
}

/// An in-memory supervisord: programs with states, start and stop that change them after
/// supervisord's own delays, failures on demand, and a record of every call.
pub struct FakeSupervisor {
    script: Mutex<SupervisorScript>,
    /// How many times `getAllConfigInfo` answered.
    config_reads: std::sync::atomic::AtomicUsize,
    clock: TokioClock,
    calls: Calls,
}

impl FakeSupervisor {
    fn new(clock: TokioClock, calls: Calls, programs: &[&str]) -> FakeSupervisor {
        let now = secs(clock.now());
        let programs = programs
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let program = FakeProgram {
                    state: ProcessState::Running,
                    start: now - 3_600,
                    pid: 100 + u32::try_from(i).unwrap(),
                    command: format!("fake-node --config /etc/{name}.yaml"),
                    log: String::new(),
                };
                (name.to_string(), program)
            })
            .collect();
        FakeSupervisor {
            config_reads: std::sync::atomic::AtomicUsize::new(0),
            script: Mutex::new(SupervisorScript {
                programs,
                next_pid: 1_000,
                ..SupervisorScript::default()
            }),
            clock,
            calls,
        }
    }

    /// Sets a program's state (as a crash, or `supervisorctl stop`, would).
    pub fn set(&self, program: &str, state: ProcessState) {
        let mut script = self.script.lock().unwrap();
        if let Some(p) = script.programs.get_mut(program) {
            p.state = state;
        }
    }

    /// The program prints `text` (to the log `tail_log` reads).
    pub fn print(&self, program: &str, text: &str) {
        let mut script = self.script.lock().unwrap();
        if let Some(p) = script.programs.get_mut(program) {
            p.log.push_str(text);
        }
    }

    /// How many times the program commands were read.
    pub fn config_reads(&self) -> usize {
        self.config_reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A program's state now.
    pub fn state(&self, program: &str) -> ProcessState {
        self.script.lock().unwrap().programs[program].state
    }

    /// The pid of a program's current process.
    pub fn pid(&self, program: &str) -> u32 {
        self.script.lock().unwrap().programs[program].pid
    }

    /// The next start fails with `error`.
    pub fn fail_next_start(&self, error: SupervisorError) {
        self.script.lock().unwrap().fail_next_start = Some(error);
    }

    /// The next stop stops the program, but its answer never comes (the call times out).
    pub fn lose_next_stop_answer(&self) {
        self.script.lock().unwrap().lose_next_stop_answer = true;
    }

    /// The next start panics.
    pub fn panic_next_start(&self) {
        self.script.lock().unwrap().panic_next_start = true;
    }

    /// Every stop takes `delay`.
    pub fn slow_stops(&self, delay: Duration) {
        self.script.lock().unwrap().stop_delay = delay;
    }

    /// supervisord stops answering (or answers again).
    pub fn set_down(&self, down: bool) {
        self.script.lock().unwrap().down = down;
    }

    fn unreachable(&self) -> SupervisorError {
        SupervisorError::Unreachable {
            endpoint: "fake".into(),
            why: "connection refused".into(),
        }
    }

    fn info(&self, name: &str, program: &FakeProgram) -> ProcessInfo {
        ProcessInfo {
            name: name.into(),
            group: name.into(),
            start: program.start,
            stop: 0,
            now: secs(self.clock.now()),
            state: program.state,
            statename: program.state.name().into(),
            spawnerr: String::new(),
            exitstatus: 0,
            stdout_logfile: String::new(),
            stderr_logfile: String::new(),
            pid: program.pid,
            description: String::new(),
        }
    }
}

fn secs(time: SystemTime) -> i64 {
    i64::try_from(time.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

impl Supervisor for FakeSupervisor {
    fn endpoint(&self) -> &str {
        "fake"
    }

    fn process_infos<'a>(
        &'a self,
        programs: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Result<ProcessInfo, Fault>>, SupervisorError>> {
        Box::pin(async move {
            let script = self.script.lock().unwrap();
            if script.down {
                return Err(self.unreachable());
            }
            Ok(programs
                .iter()
                .map(|name| match script.programs.get(name) {
                    Some(program) => Ok(self.info(name, program)),
                    None => Err(Fault::BadName(name.clone())),
                })
                .collect())
        })
    }

    fn program_configs(&self) -> BoxFuture<'_, Result<Vec<ProgramConfig>, SupervisorError>> {
        Box::pin(async move {
            let script = self.script.lock().unwrap();
            if script.down {
                return Err(self.unreachable());
            }
            self.config_reads
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(script
                .programs
                .iter()
                .map(|(name, program)| ProgramConfig {
                    name: name.clone(),
                    group: name.clone(),
                    command: program.command.clone(),
                })
                .collect())
        })
    }

    fn start<'a>(&'a self, program: &'a str) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        Box::pin(async move {
            self.calls.push(format!("start {program}"));
            // Taken out of the lock first: a panic under it would poison the fake for good.
            let panic_now = std::mem::take(&mut self.script.lock().unwrap().panic_next_start);
            assert!(!panic_now, "the fake supervisord's start panics, as asked");
            {
                let mut script = self.script.lock().unwrap();
                if script.down {
                    return Err(self.unreachable());
                }
                if let Some(error) = script.fail_next_start.take() {
                    if matches!(error, SupervisorError::Fault { .. })
                        && let Some(p) = script.programs.get_mut(program)
                    {
                        // supervisord gives up on a program it cannot spawn.
                        p.state = ProcessState::Fatal;
                    }
                    return Err(error);
                }
                let pid = script.next_pid;
                script.next_pid += 1;
                let now = secs(self.clock.now());
                let p = script.programs.get_mut(program).expect("known program");
                if p.state == ProcessState::Running {
                    return Err(SupervisorError::Fault {
                        method: "supervisor.startProcess".into(),
                        fault: Fault::AlreadyStarted(program.into()),
                    });
                }
                p.state = ProcessState::Starting;
                p.pid = pid;
                p.start = now;
            }
            // startsecs = 1.
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.set(program, ProcessState::Running);
            Ok(true)
        })
    }

    fn stop<'a>(&'a self, program: &'a str) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        Box::pin(async move {
            self.calls.push(format!("stop {program}"));
            let delay = {
                let mut script = self.script.lock().unwrap();
                if script.down {
                    return Err(self.unreachable());
                }
                let p = script.programs.get_mut(program).expect("known program");
                if !matches!(
                    p.state,
                    ProcessState::Running | ProcessState::Starting | ProcessState::Backoff
                ) {
                    return Err(SupervisorError::Fault {
                        method: "supervisor.stopProcess".into(),
                        fault: Fault::NotRunning(program.into()),
                    });
                }
                p.state = ProcessState::Stopping;
                script.stop_delay
            };
            tokio::time::sleep(delay).await;
            self.set(program, ProcessState::Stopped);
            if std::mem::take(&mut self.script.lock().unwrap().lose_next_stop_answer) {
                return Err(SupervisorError::Timeout {
                    endpoint: "fake".into(),
                    method: "supervisor.stopProcess".into(),
                    timeout: Duration::from_secs(30),
                });
            }
            Ok(true)
        })
    }

    fn signal<'a>(
        &'a self,
        program: &'a str,
        signal: &'a str,
    ) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        Box::pin(async move {
            self.calls.push(format!("signal {program} {signal}"));
            Ok(true)
        })
    }

    fn tail_log<'a>(
        &'a self,
        program: &'a str,
        bytes: u32,
    ) -> BoxFuture<'a, Result<String, SupervisorError>> {
        Box::pin(async move {
            self.calls.push(format!("tail_log {program} {bytes}"));
            let script = self.script.lock().unwrap();
            if script.down {
                return Err(self.unreachable());
            }
            let Some(p) = script.programs.get(program) else {
                return Err(SupervisorError::Fault {
                    method: "supervisor.tailProcessStdoutLog".into(),
                    fault: Fault::BadName(program.into()),
                });
            };
            let log = p.log.as_bytes();
            let from = log.len().saturating_sub(usize::try_from(bytes).unwrap());
            Ok(String::from_utf8_lossy(&log[from..]).into_owned())
        })
    }
}

#[derive(Default)]
struct NodeScript {
    /// Blocks behind the pool.
    lag: u64,
    /// The height stays here (a stuck node).
    stuck_at: Option<u64>,
    /// The API never answers.
    hung: bool,
    /// Every answer comes this late.
    delay: Duration,
    /// The enclave's leader ids.
    enclave: BTreeSet<u32>,
    next_id: u32,
    /// The next promotion is refused.
    refuse_promotion: bool,
}

/// An in-memory node of the fake chain: Running while its program runs, its height the pool's
/// (one block per second of the paused clock) minus its lag; a leader enclave.
pub struct FakeNode {
    name: String,
    supervisor: Arc<FakeSupervisor>,
    script: Mutex<NodeScript>,
    clock: TokioClock,
    calls: Calls,
    leadership: bool,
    /// Questions asked and not yet answered nor given up by the asker.
    open: Arc<std::sync::atomic::AtomicUsize>,
}

/// One open question to a fake node, closed when the asker answers or drops it.
struct Question(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Question {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl FakeNode {
    /// Questions to the node's API still open (asked, not answered, not given up).
    pub fn open_questions(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The pool's height now.
    pub fn pool_height(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
            .unwrap()
            .as_secs()
    }

    /// The node falls `lag` blocks behind.
    pub fn lag(&self, lag: u64) {
        self.script.lock().unwrap().lag = lag;
    }

    /// The node's tip freezes (or moves again with `false`).
    pub fn stuck(&self, stuck: bool) {
        let height = self.pool_height();
        self.script.lock().unwrap().stuck_at = stuck.then_some(height);
    }

    /// The node's API stops answering.
    pub fn hang(&self, hung: bool) {
        self.script.lock().unwrap().hung = hung;
    }

    /// Every answer of the node's API comes `delay` late.
    pub fn slow(&self, delay: Duration) {
        self.script.lock().unwrap().delay = delay;
    }

    /// The next promotion is refused.
    pub fn refuse_promotion(&self) {
        self.script.lock().unwrap().refuse_promotion = true;
    }

    /// The leader ids it holds.
    pub fn enclave(&self) -> BTreeSet<u32> {
        self.script.lock().unwrap().enclave.clone()
    }

    fn up(&self) -> bool {
        self.supervisor.state(&self.name) == ProcessState::Running
    }

    async fn answer<T>(&self, value: impl FnOnce(&mut NodeScript) -> T) -> Result<T, ProbeError> {
        self.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _question = Question(Arc::clone(&self.open));
        let (hung, delay) = {
            let script = self.script.lock().unwrap();
            (script.hung, script.delay)
        };
        if hung {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(delay).await;
        if !self.up() {
            return Err(ProbeError::Refused);
        }
        Ok(value(&mut self.script.lock().unwrap()))
    }
}

impl ChainNode for FakeNode {
    fn probe(&self, timeout: Duration) -> BoxFuture<'_, Result<NodeStatus, ProbeError>> {
        Box::pin(async move {
            let pool = self.pool_height();
            let answer = self.answer(|script| {
                let height = script.stuck_at.unwrap_or(pool).saturating_sub(script.lag);
                NodeStatus {
                    state: NodeState::Running,
                    version: "fake 1.0".into(),
                    height: Some(height),
                    irreversible_height: None,
                    tip_hash: None,
                    tip_date: None,
                    last_block_time: None,
                    tip_time: None,
                    uptime_secs: None,
                }
            });
            tokio::time::timeout(timeout, answer)
                .await
                .unwrap_or(Err(ProbeError::Timeout(timeout)))
        })
    }

    fn leader(&self) -> Option<&dyn LeaderControl> {
        self.leadership.then_some(self as &dyn LeaderControl)
    }

    fn schedule(&self) -> Option<&dyn Schedule> {
        self.leadership.then_some(self as &dyn Schedule)
    }

    fn boots_producing(&self, command: Option<&str>) -> BootVerdict {
        // Like Jormungandr's: `--secret` on the command line, the node's binary without it, or a
        // wrapper that cannot be read.
        match command {
            None => BootVerdict::new(None, "not read"),
            Some(command) if command.contains("--secret") => {
                BootVerdict::new(Some(true), "--secret")
            }
            Some(command) if command.starts_with("fake-node") => {
                BootVerdict::new(Some(false), "no --secret")
            }
            Some(_) => BootVerdict::new(None, "a wrapper"),
        }
    }

    fn config_file(&self, _variant: Variant) -> Option<(&Path, &serde_json::Value)> {
        None
    }
}

impl LeaderControl for FakeNode {
    fn holding(&self, timeout: Duration) -> BoxFuture<'_, Result<Holding, ProbeError>> {
        Box::pin(async move {
            let answer = self.answer(|script| Holding(script.enclave.iter().copied().collect()));
            tokio::time::timeout(timeout, answer)
                .await
                .unwrap_or(Err(ProbeError::Timeout(timeout)))
        })
    }

    fn demote<'a>(
        &'a self,
        holding: &'a Holding,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Vec<LeaderFailure>>> {
        Box::pin(async move {
            self.calls.push(format!("demote {}", self.name));
            let mut script = self.script.lock().unwrap();
            for id in &holding.0 {
                script.enclave.remove(id);
            }
            Ok(())
        })
    }

    fn promote(&self, _timeout: Duration) -> BoxFuture<'_, Result<Holding, ProbeError>> {
        Box::pin(async move {
            self.calls.push(format!("promote {}", self.name));
            let mut script = self.script.lock().unwrap();
            if std::mem::take(&mut script.refuse_promotion) {
                return Err(ProbeError::Status(500));
            }
            script.next_id += 1;
            let id = script.next_id;
            script.enclave.insert(id);
            Ok(Holding(vec![id]))
        })
    }
}

impl Schedule for FakeNode {
    fn chain_time(&self, _timeout: Duration) -> BoxFuture<'_, Result<SlotClock, ProbeError>> {
        Box::pin(async move { Ok(chain_clock()) })
    }

    fn pool_slots(&self, _timeout: Duration) -> BoxFuture<'_, Result<Vec<LeaderLog>, ProbeError>> {
        Box::pin(async move { Ok(Vec::new()) })
    }
}

/// The parts of a scenario: one fake supervisord for every `[supervisor*]`, one fake node per
/// node; every build recorded (`supervisor NAME ENDPOINT`, `node NAME URL secret|no secret`).
pub struct FakeParts {
    supervisor: Arc<FakeSupervisor>,
    nodes: BTreeMap<String, Arc<FakeNode>>,
    builds: Calls,
    /// Supervisord endpoints that cannot be built (a rejected reload).
    pub refuse: Mutex<BTreeSet<String>>,
}

impl Parts for FakeParts {
    fn supervisor(&self, settings: &SupervisorSettings) -> Result<Arc<dyn Supervisor>, String> {
        let endpoint = settings.endpoint.to_string();
        if self.refuse.lock().unwrap().contains(&endpoint) {
            return Err(format!(
                "supervisord {}: cannot build a client",
                settings.name
            ));
        }
        self.builds
            .push(format!("supervisor {} {endpoint}", settings.name));
        Ok(Arc::clone(&self.supervisor) as Arc<dyn Supervisor>)
    }

    fn node(
        &self,
        node: &NodeSettings,
        secret: Option<Arc<LeaderSecret>>,
        _supervisor: Option<Arc<dyn Supervisor>>,
    ) -> Result<Arc<dyn ChainNode>, String> {
        self.builds.push(format!(
            "node {} {} {}",
            node.name,
            node.jormungandr().unwrap().rest_url,
            match &secret {
                Some(secret) => format!("secret {}", secret.identity()),
                None => "no secret".into(),
            }
        ));
        let fake = self
            .nodes
            .get(&node.name)
            .ok_or_else(|| format!("no fake node {}", node.name))?;
        Ok(Arc::clone(fake) as Arc<dyn ChainNode>)
    }

    fn tip_headers(&self) -> Arc<dyn crate::pooltool::TipHeaders> {
        // Never reached over the network in these scenarios (the reporter's URLs go nowhere).
        Arc::new(crate::chain::jormungandr::JormungandrBlocks::new())
    }
}

/// A scenario's pool: a configuration on disk, the fakes, and what the daemon shares.
pub struct Pool {
    _dir: tempfile::TempDir,
    /// The directory of the configuration.
    pub dir: PathBuf,
    /// The configuration file (JSON).
    pub path: PathBuf,
    /// The configuration as written.
    pub json: serde_json::Value,
    /// The clock of the scenario (follows paused time).
    pub clock: TokioClock,
    /// supervisord.
    pub supervisor: Arc<FakeSupervisor>,
    /// The nodes by name.
    pub nodes: BTreeMap<String, Arc<FakeNode>>,
    /// How the daemon's parts are made.
    pub parts: Arc<FakeParts>,
    /// supervisord calls and leader calls, in order.
    pub calls: Calls,
    /// With `[cluster]`: the session the daemon is given.
    pub cluster: Option<Arc<dyn crate::cluster::session::Cluster>>,
}

/// The pool's leader secret (jcli's YAML).
const SECRET: &str =
    "genesis:\n  sig_key: kes25519-12-sk1qqq\n  vrf_key: vrf_sk1abc\n  node_id: 0123abcd\n";

impl Pool {
    /// Nodes `names`, all RUNNING and in sync, with `patch` merged into the configuration (tick
    /// 1 s, probe timeout 500 ms, the documented thresholds otherwise).
    pub fn new(names: &[&str], patch: serde_json::Value) -> Pool {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().to_path_buf();
        std::fs::write(
            root.join("template.json"),
            json!({"rest": {"listen": "127.0.0.1:3100"}, "p2p": {"trusted_peers": []}}).to_string(),
        )
        .unwrap();
        std::fs::write(root.join("secret.yaml"), SECRET).unwrap();
        std::fs::write(
            root.join("secret2.yaml"),
            SECRET.replace("0123abcd", "4567cdef"),
        )
        .unwrap();
        let nodes: Vec<serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                std::fs::create_dir_all(root.join("nodes").join(name)).unwrap();
                json!({"name": name, "overrides": {"rest": {"listen": format!("127.0.0.1:{}", 3101 + i)}}})
            })
            .collect();
        let mut config = json!({
            "supervisor": {"url": "http://127.0.0.1:9001/RPC2", "wait_timeout": "30s"},
            "node_defaults": {"template": "template.json", "node_dir": "nodes", "startsecs": 1, "stopwaitsecs": 5},
            "nodes": nodes,
            "thresholds": {"tick_interval": "1s", "probe_timeout": "500ms"},
            "restart_log": {"path": "restarts.csv"},
            "api": {"listen": "127.0.0.1:9180", "token": "first-token-0123456789"},
        });
        merge(&mut config, &patch);
        let path = root.join("nodekeeper.json");
        std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        let clock = TokioClock::starting_at(base());
        let calls = Calls::default();
        let supervisor = Arc::new(FakeSupervisor::new(clock, calls.clone(), names));
        let leadership = config["leadership"]["enabled"] == json!(true);
        let nodes: BTreeMap<String, Arc<FakeNode>> = names
            .iter()
            .map(|name| {
                let node = FakeNode {
                    name: name.to_string(),
                    supervisor: Arc::clone(&supervisor),
                    script: Mutex::new(NodeScript::default()),
                    clock,
                    calls: calls.clone(),
                    leadership,
                    open: Arc::default(),
                };
                (name.to_string(), Arc::new(node))
            })
            .collect();
        let parts = Arc::new(FakeParts {
            supervisor: Arc::clone(&supervisor),
            nodes: nodes.clone(),
            builds: Calls::default(),
            refuse: Mutex::new(BTreeSet::new()),
        });
        Pool {
            _dir: dir,
            dir: root,
            path,
            json: config,
            clock,
            supervisor,
            nodes,
            parts,
            calls,
            cluster: None,
        }
    }

    /// A node.
    pub fn node(&self, name: &str) -> &FakeNode {
        &self.nodes[name]
    }

    /// The configuration as loaded now.
    pub fn config(&self) -> Config {
        crate::config::load(&self.path, &BTreeMap::new()).expect("a valid configuration")
    }

    /// Rewrites the configuration with `patch` merged in.
    pub fn rewrite(&mut self, patch: serde_json::Value) {
        merge(&mut self.json, &patch);
        std::fs::write(
            &self.path,
            serde_json::to_string_pretty(&self.json).unwrap(),
        )
        .unwrap();
    }

    /// The builds of parts so far.
    pub fn builds(&self) -> Vec<String> {
        self.parts.builds.all()
    }

    /// A daemon over this pool, not running yet, and what it shares.
    pub fn daemon(&self, options: RunOptions) -> (Daemon, Shared) {
        let snapshot = Arc::new(RwLock::new(Snapshot::default()));
        let token = Arc::new(RwLock::new(String::new()));
        let (events_tx, events) = mpsc::channel(256);
        let (alerts, setups) = crate::alert::Reconfigure::pair();
        let daemon = Daemon::new(
            self.config(),
            Setup {
                source: ConfigSource::File(self.path.clone()),
                env: BTreeMap::new(),
                parts: Arc::clone(&self.parts) as Arc<dyn Parts>,
                clock: Arc::new(self.clock),
                options,
                snapshot: Arc::clone(&snapshot),
                metrics: Arc::new(Metrics::new()),
                events: Some(events_tx),
                token: Arc::clone(&token),
                alerts: crate::alert::Reconfigures {
                    email: Some(alerts),
                    ..Default::default()
                },
                hangups: None,
                notices: None,
                cluster: self.cluster.clone(),
            },
        )
        .expect("the daemon starts");
        (
            daemon,
            Shared {
                snapshot,
                token,
                events: Mutex::new(events),
                seen: Mutex::new(Vec::new()),
                setups: Mutex::new(setups),
            },
        )
    }

    /// Starts the daemon's loop.
    pub fn run(&self) -> Running {
        self.run_with(|_| {})
    }

    /// Starts the daemon's loop after `change` has had its way with the daemon.
    pub fn run_with(&self, change: impl FnOnce(&mut Daemon)) -> Running {
        let (mut daemon, shared) = self.daemon(RunOptions::default());
        change(&mut daemon);
        let (requests, requests_rx) = mpsc::channel(16);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon.run(requests_rx, async {
            let _ = stopped.await;
        }));
        Running {
            requests,
            stop: Some(stop),
            task,
            shared,
        }
    }

    /// The restart log's rows: `node action reason`.
    pub fn rows(&self) -> Vec<String> {
        let path = self.dir.join("restarts.csv");
        if !path.exists() {
            return Vec::new();
        }
        let (rows, _) = crate::restart_log::read_rows(&path).unwrap();
        rows.iter()
            .map(|row| format!("{} {} {}", row.node, row.action.as_str(), row.reason))
            .collect()
    }
}

fn merge(base: &mut serde_json::Value, patch: &serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                merge(
                    base.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// What the daemon shares with the outside.
pub struct Shared {
    /// The status snapshot.
    pub snapshot: Arc<RwLock<Snapshot>>,
    /// The API token cell.
    pub token: Arc<RwLock<String>>,
    events: Mutex<mpsc::Receiver<Event>>,
    seen: Mutex<Vec<Event>>,
    setups: Mutex<mpsc::Receiver<crate::alert::Setup>>,
}

impl Shared {
    /// Every event sent so far.
    pub fn events(&self) -> Vec<Event> {
        let mut events = self.events.lock().unwrap();
        let mut seen = self.seen.lock().unwrap();
        while let Ok(event) = events.try_recv() {
            seen.push(event);
        }
        seen.clone()
    }

    /// The alert setup the daemon handed over last (a reload), if any since the last call.
    pub fn alert_setup(&self) -> Option<crate::alert::Setup> {
        let mut setups = self.setups.lock().unwrap();
        let mut last = None;
        while let Ok(setup) = setups.try_recv() {
            last = Some(setup);
        }
        last
    }

    /// The snapshot's line of `node`: program state, whether held, busy, leader.
    pub fn line(&self, node: &str) -> crate::status::NodeLine {
        self.snapshot
            .read()
            .unwrap()
            .nodes
            .iter()
            .find(|line| line.name == node)
            .cloned()
            .unwrap_or_default()
    }
}

/// A running daemon.
pub struct Running {
    requests: mpsc::Sender<Request>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<bool>,
    /// What it shares.
    pub shared: Shared,
}

impl Running {
    /// An operator's request, as the API sends it; the accepted view or the refusal's words.
    pub async fn ask(&self, node: &str, action: NodeAction) -> Result<ActionView, String> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Node {
                node: node.into(),
                action,
                note: None,
                path: None,
                reply,
            })
            .await
            .unwrap();
        match answer.await.unwrap() {
            Ok(accepted) => Ok(accepted.view),
            Err(refusal) => Err(refusal.to_string()),
        }
    }

    /// The state of an action.
    pub async fn action(&self, id: &str) -> Option<ActionView> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Action {
                id: id.into(),
                reply,
            })
            .await
            .unwrap();
        answer.await.unwrap()
    }

    /// Waits until the action `id` is no longer running; its final view.
    pub async fn finished(&self, id: &str) -> ActionView {
        until("the action ends", Duration::from_secs(120), || async {
            self.action(id)
                .await
                .filter(|view| view.state != crate::status::ActionState::Running)
        })
        .await
    }

    /// Stops the loop and waits for it to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }
}

/// Polls `check` every 100 ms of paused time until it gives a value; panics after `within`.
pub async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (real time, at most 10 s) until `check` finds what the daemon's file writer, a thread of
/// its own that paused time does not pace, has written.
pub fn until_written<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1_000 {
        if let Some(value) = check() {
            return value;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}: not written within 10 s");
}

/// Lets `duration` of paused time pass.
pub async fn wait(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// The fake's `tail_log` answers as supervisord's does: the last bytes of what the program printed,
/// a fault for an unknown program. The restore job's scenarios rely on it.
#[tokio::test(start_paused = true)]
async fn the_fake_supervisord_tails_what_a_program_printed() {
    let calls = Calls::default();
    let supervisor = FakeSupervisor::new(TokioClock::starting_at(base()), calls.clone(), &["bp1"]);
    supervisor.print("bp1", "starting\n");
    supervisor.print("bp1", "database dirty flag set\n");
    assert_eq!(
        supervisor.tail_log("bp1", 24).await.unwrap(),
        "database dirty flag set\n"
    );
    assert_eq!(
        supervisor.tail_log("bp1", 1_000).await.unwrap(),
        "starting\ndatabase dirty flag set\n"
    );
    assert!(matches!(
        supervisor.tail_log("nosuch", 10).await,
        Err(SupervisorError::Fault {
            fault: Fault::BadName(_),
            ..
        })
    ));
    assert_eq!(calls.matching("tail_log").len(), 3);
}

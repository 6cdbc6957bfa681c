//! The leadership shell: every tick it reads each Running node's `GET /leaders` and
//! `/leaders/logs` (and the chain settings until known), runs hand-overs (demote the old leader,
//! verify with `GET /leaders` on every node that none holds the key, promote, confirm) and
//! demotions as tasks that never block the loop, and persists the policy's leadership memory
//! (atomic write, 0600) so that a restarted daemon keeps its guard windows and its leader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::Url;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::chain::jormungandr::leaders::LeaderApi;
use crate::chain::jormungandr::secret::{self, LeaderSecret};
use crate::chain::{NodeState, ProbeError};
use crate::config::{Config, nodefile};
use crate::policy::{LeaderConfig, LeaderMemory, LeaderView, NodeObservation, ProgramSeen};
use crate::slots::{LeaderLog, SlotClock};
use crate::status::LeadershipLine;
use crate::supervisor::ProcessState;
use crate::time::rfc3339;

/// How a leadership task ended.
#[derive(Debug)]
pub struct Finished {
    /// The node promoted (hand-over) or demoted.
    pub node: String,
    /// A hand-over (else a demotion).
    pub handover: bool,
    /// Nodes whose ids were removed.
    pub demoted: Vec<String>,
    /// The promotion (or demotion) was confirmed.
    pub ok: bool,
    /// What happened, for the log and the operator.
    pub message: String,
    /// The node that led before a hand-over.
    pub from: Option<String>,
}

/// The shell's leadership state.
pub struct Leadership {
    api: Arc<LeaderApi>,
    secret: Option<Arc<LeaderSecret>>,
    clock: Option<SlotClock>,
    /// The last leadership logs read per node (status, PoolTool).
    pub logs: BTreeMap<String, Vec<LeaderLog>>,
    jobs: JoinSet<Finished>,
    state_file: PathBuf,
    last_saved: Option<serde_json::Value>,
}

impl Leadership {
    /// The shell for `config`; the secret is read now (config validation already parsed it).
    pub fn new(config: &Config) -> Result<Leadership, String> {
        let mut leadership = Leadership {
            api: Arc::new(LeaderApi::new()),
            secret: None,
            clock: None,
            logs: BTreeMap::new(),
            jobs: JoinSet::new(),
            state_file: config.leadership.state_file.clone(),
            last_saved: None,
        };
        leadership.reload(config)?;
        Ok(leadership)
    }

    /// Takes a changed configuration (the secret file may have changed).
    pub fn reload(&mut self, config: &Config) -> Result<(), String> {
        self.state_file = config.leadership.state_file.clone();
        self.secret = match (&config.leadership.secret_file, config.leadership.enabled) {
            (Some(path), true) => Some(Arc::new(secret::load(path)?)),
            _ => None,
        };
        Ok(())
    }

    /// Reads the persisted memory (absent: empty; unreadable: an error naming the file).
    pub fn load(path: &Path) -> Result<LeaderMemory, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{}: not a nodekeeper leadership state file ({e}); move it away to start afresh",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LeaderMemory::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Persists `memory` when it changed (atomic replace, 0600).
    pub fn save(&mut self, memory: &LeaderMemory) {
        let value = match serde_json::to_value(memory) {
            Ok(value) => value,
            Err(e) => {
                error!("leadership state not serialisable: {e}");
                return;
            }
        };
        if self.last_saved.as_ref() == Some(&value) {
            return;
        }
        match nodefile::write_if_changed(&self.state_file, &value) {
            Ok(_) => self.last_saved = Some(value),
            Err(e) => error!("cannot persist the leadership state: {e}"),
        }
    }

    /// A hand-over or demotion is in flight.
    pub fn busy(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// The chain's time, once read.
    pub fn clock(&self) -> Option<SlotClock> {
        self.clock
    }

    /// Waits for the next finished task (pending forever when none runs).
    pub async fn next_finished(&mut self) -> Option<Finished> {
        match self.jobs.join_next().await {
            Some(Ok(finished)) => Some(finished),
            Some(Err(e)) => {
                error!("leadership task failed: {e}");
                None
            }
            None => std::future::pending().await,
        }
    }

    /// Fills each observed Running node's leader view: `GET /leaders` and `/leaders/logs`, all
    /// nodes concurrently, each call bounded by `timeout`; the settings once.
    pub async fn observe(
        &mut self,
        config: &Config,
        nodes: &mut [NodeObservation],
        timeout: Duration,
    ) {
        let mut tasks = JoinSet::new();
        for node in nodes.iter() {
            if !running(node) {
                continue;
            }
            let Some(settings) = config.node(&node.name) else {
                continue;
            };
            let api = Arc::clone(&self.api);
            let url = settings.rest_url.clone();
            let name = node.name.clone();
            let want_clock = self.clock.is_none();
            tasks.spawn(async move {
                let (keys, logs, clock) =
                    tokio::join!(api.leaders(&url, timeout), api.logs(&url, timeout), async {
                        if want_clock {
                            Some(api.settings(&url, timeout).await)
                        } else {
                            None
                        }
                    });
                (name, keys, logs, clock)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((name, keys, logs, clock)) = joined else {
                continue;
            };
            if let Some(Ok(clock)) = clock {
                if self.clock != Some(clock) {
                    info!(
                        slot_duration = ?clock.slot_duration,
                        slots_per_epoch = clock.slots_per_epoch,
                        "chain time read from {name}'s settings"
                    );
                }
                self.clock = Some(clock);
            }
            let schedule = match logs {
                Ok(logs) => {
                    let dates = logs.iter().map(|log| log.date).collect();
                    self.logs.insert(name.clone(), logs);
                    Some(dates)
                }
                Err(_) => None,
            };
            if let Some(node) = nodes.iter_mut().find(|node| node.name == name) {
                node.leadership = LeaderView {
                    keys: Some(keys),
                    schedule,
                };
            }
        }
    }

    /// Starts a hand-over: demote `from`, verify every other up node holds no key, promote `to`,
    /// confirm. Refuses (false) without a secret.
    pub fn spawn_handover(
        &mut self,
        config: &Config,
        nodes: &[NodeObservation],
        from: Option<(String, Vec<u32>)>,
        to: &str,
        vouched: &[String],
        timeout: Duration,
    ) -> bool {
        let Some(secret) = self.secret.clone() else {
            warn!("no leader secret loaded: cannot promote {to}");
            return false;
        };
        let Some(to_url) = config.node(to).map(|node| node.rest_url.clone()) else {
            return false;
        };
        let from = from.and_then(|(name, ids)| {
            config
                .node(&name)
                .map(|node| (name, node.rest_url.clone(), ids))
        });
        // Every node whose process may be up, except the one promoted.
        let check: Vec<(String, Url)> = nodes
            .iter()
            .filter(|node| node.name != to && maybe_up(node))
            .filter_map(|node| {
                config
                    .node(&node.name)
                    .map(|settings| (node.name.clone(), settings.rest_url.clone()))
            })
            .collect();
        let api = Arc::clone(&self.api);
        let to = to.to_string();
        let vouched = vouched.to_vec();
        let plan = Plan {
            from,
            check,
            vouched,
            to,
            to_url,
        };
        self.jobs
            .spawn(async move { hand_over(&api, &secret, plan, timeout).await });
        true
    }

    /// Starts the demotion of an extra leader.
    pub fn spawn_demote(&mut self, config: &Config, node: &str, ids: Vec<u32>, timeout: Duration) {
        let Some(url) = config.node(node).map(|n| n.rest_url.clone()) else {
            return;
        };
        let api = Arc::clone(&self.api);
        let node = node.to_string();
        self.jobs.spawn(async move {
            let mut failures = Vec::new();
            for id in &ids {
                if let Err(e) = api.demote(&url, *id, timeout).await {
                    failures.push(format!("leader id {id}: {e}"));
                }
            }
            let ok = failures.is_empty();
            Finished {
                demoted: if ok { vec![node.clone()] } else { Vec::new() },
                message: if ok {
                    format!("{node}: demoted (leader ids {ids:?} removed)")
                } else {
                    format!("{node}: demotion failed: {}", failures.join("; "))
                },
                node,
                handover: false,
                ok,
                from: None,
            }
        });
    }
}

/// The program runs and the node said it is Running.
fn running(node: &NodeObservation) -> bool {
    matches!(&node.program, ProgramSeen::Known(p) if p.state == ProcessState::Running)
        && matches!(&node.probe, Some(Ok(status)) if status.state == NodeState::Running)
}

/// The node's process may be up (or nodekeeper cannot tell).
fn maybe_up(node: &NodeObservation) -> bool {
    match &node.program {
        ProgramSeen::Missing => false,
        ProgramSeen::Unreachable => true,
        ProgramSeen::Known(p) => !matches!(
            p.state,
            ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal
        ),
    }
}

/// A node that is not up holds no key: nothing listens, or the leader routes are not served
/// yet (503 while booting).
fn holds_nothing(answer: &Result<Vec<u32>, ProbeError>) -> bool {
    match answer {
        Ok(ids) => ids.is_empty(),
        Err(ProbeError::Refused | ProbeError::Status(503)) => true,
        Err(_) => false,
    }
}

/// One hand-over: who to demote, who to verify (and whose silence is vouched for), who to promote.
struct Plan {
    from: Option<(String, Url, Vec<u32>)>,
    check: Vec<(String, Url)>,
    vouched: Vec<String>,
    to: String,
    to_url: Url,
}

async fn hand_over(
    api: &LeaderApi,
    secret: &LeaderSecret,
    plan: Plan,
    timeout: Duration,
) -> Finished {
    let Plan {
        from,
        check,
        vouched,
        to,
        to_url,
    } = plan;
    let (check, vouched, to, to_url) = (&check[..], &vouched[..], to.as_str(), &to_url);
    let from_name = from.as_ref().map(|(name, _, _)| name.clone());
    let finished = |ok: bool, demoted: Vec<String>, message: String| Finished {
        node: to.to_string(),
        handover: true,
        demoted,
        ok,
        message,
        from: from_name.clone(),
    };
    let mut demoted = Vec::new();
    // 1. Demote the old leader.
    if let Some((name, url, ids)) = &from {
        for id in ids {
            if let Err(e) = api.demote(url, *id, timeout).await {
                return finished(
                    false,
                    demoted,
                    format!(
                        "hand-over to {to} stopped: demoting {name} (leader id {id}) failed: {e}; \
                         {to} is not promoted"
                    ),
                );
            }
        }
        demoted.push(name.clone());
    }
    // 2. Verify: no other node holds the key.
    let answers = futures_join(api, check, timeout).await;
    for ((name, _), answer) in check.iter().zip(&answers) {
        if let Err(e) = answer
            && vouched.contains(name)
            && !matches!(e, ProbeError::Status(_) | ProbeError::Malformed(_))
        {
            // Read without the key in this same process; keys enter only at a start or by a
            // promotion, and neither happened.
            info!(node = %name, "{name}: leaders API silent ({e}); read without the key since its start");
            continue;
        }
        if !holds_nothing(answer) {
            let what = match answer {
                Ok(ids) => format!("still holds leader ids {ids:?}"),
                Err(e) => format!("cannot be verified ({e})"),
            };
            return finished(
                false,
                demoted,
                format!(
                    "hand-over to {to} stopped before promotion: {name} {what}; no second leader"
                ),
            );
        }
    }
    // 3. Promote, 4. confirm.
    let id = match api.promote(to_url, secret, timeout).await {
        Ok(id) => id,
        Err(e) => {
            return finished(
                false,
                demoted,
                format!(
                    "promotion refused by {to}: {e}; no node holds the key until the next attempt"
                ),
            );
        }
    };
    match api.leaders(to_url, timeout).await {
        Ok(ids) if ids.contains(&id) => {
            let message = match &from_name {
                Some(old) => format!("{to} promoted (leader id {id}) after {old} was demoted"),
                None => format!("{to} promoted (leader id {id})"),
            };
            finished(true, demoted, message)
        }
        Ok(ids) => finished(
            false,
            demoted,
            format!("{to} answered leader id {id} but lists {ids:?}"),
        ),
        Err(e) => finished(
            false,
            demoted,
            format!("{to} promoted (leader id {id}) but not confirmed: {e}"),
        ),
    }
}

async fn futures_join(
    api: &LeaderApi,
    check: &[(String, Url)],
    timeout: Duration,
) -> Vec<Result<Vec<u32>, ProbeError>> {
    let mut set = JoinSet::new();
    for (index, (_, url)) in check.iter().enumerate() {
        let url = url.clone();
        let api = api.clone();
        set.spawn(async move { (index, api.leaders(&url, timeout).await) });
    }
    let mut answers: Vec<Result<Vec<u32>, ProbeError>> =
        vec![Err(ProbeError::Timeout(timeout)); check.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((index, answer)) = joined {
            answers[index] = answer;
        }
    }
    answers
}

/// A node's schedule state for the status: this epoch's slots in its logs.
pub fn schedule_state(memory: &LeaderMemory, node: &NodeObservation) -> String {
    let (Some(epoch), Some(dates)) = (memory.epoch, &node.leadership.schedule) else {
        return "schedule unknown".into();
    };
    match dates.iter().filter(|date| date.epoch == epoch).count() {
        0 => format!("epoch {epoch}: no slots"),
        1 => format!("epoch {epoch}: 1 slot"),
        n => format!("epoch {epoch}: {n} slots"),
    }
}

/// The leadership line of the status.
pub fn status_line(
    memory: &LeaderMemory,
    config: &LeaderConfig,
    now: SystemTime,
) -> LeadershipLine {
    let next = memory.next_slot(now);
    LeadershipLine {
        leader: memory.leader.clone(),
        epoch: memory.epoch,
        next_slot: next.map(|(date, _)| date.to_string()),
        next_slot_at: next.map(|(_, at)| rfc3339(at)),
        next_slot_in_secs: next.map(|(_, at)| at.duration_since(now).unwrap_or_default().as_secs()),
        last_slot: memory.last_slot.map(|date| date.to_string()),
        guard: crate::policy::leader::guard(memory, config, now, now + config.lookahead)
            .map(|why| why.to_string()),
    }
}

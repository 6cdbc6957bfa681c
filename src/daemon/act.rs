//! Executing the policy's actions. A start, restart or stop is a job in its own task (the loop
//! keeps observing other nodes meanwhile): write the node's config variant, then for each
//! supervisord call append its restart-log row (fsynced) first, then make the call. Leadership
//! actions go to `leadership`'s tasks; reports become log lines and events. Nothing here decides.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::Daemon;
use super::disk::{self, RowSink};
use super::leadership::Plan;
use crate::chain::{ChainNode, Variant};
use crate::config::nodefile;
use crate::events::Event;
use crate::policy::{Action, Observation, Outcome, PoolFacts, ProgramSeen, Reason};
use crate::restart_log::{RestartAction, RestartRow};
use crate::status::LastRestart;
use crate::supervisor::{Fault, ProcessState, Supervisor, SupervisorError};
use crate::time::{Clock, rfc3339};

/// Start, restart or stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Start (a BACKOFF program is stopped first: supervisord refuses to start it).
    Start,
    /// Stop, then start.
    Restart,
    /// Stop only (an operator's stop, or the slot guard parking a booting node).
    Stop,
    /// Stop, archive the data directory, start (`archive`).
    Backup,
    /// Stop, restore the data directory, start (`archive`).
    Restore,
}

impl Kind {
    /// `start`, `restart` or `stop`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Restart => "restart",
            Kind::Stop => "stop",
            Kind::Backup => "backup",
            Kind::Restore => "restore",
        }
    }
}

/// How a job ended: the outcome for the policy, and why it failed, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// For `PolicyState::record_outcome`.
    pub outcome: Outcome,
    /// The failure, one line (`None` when done).
    pub error: Option<String>,
}

impl Finished {
    fn done() -> Finished {
        Finished {
            outcome: Outcome::Done,
            error: None,
        }
    }

    fn failed(left_stopped: bool, error: String) -> Finished {
        Finished {
            outcome: Outcome::Failed { left_stopped },
            error: Some(error),
        }
    }
}

/// A job that ended, for the loop.
#[derive(Debug)]
pub struct JobDone {
    /// The node.
    pub node: String,
    /// What it was.
    pub kind: Kind,
    /// How it ended.
    pub finished: Finished,
    /// A backup's or restore's result.
    pub archive: Option<Box<super::archive::ArchiveOutcome>>,
}

/// What the restart-log rows carry besides the action.
#[derive(Clone, Debug, Default)]
pub struct RowContext {
    /// The program state when the action was decided.
    pub program_state: Option<ProcessState>,
    /// Its exit status.
    pub exit_status: Option<i32>,
    /// Seconds since the program's last start.
    pub uptime_secs: Option<u64>,
    /// The node's height.
    pub height: Option<u64>,
    /// The reference height.
    pub reference_height: Option<u64>,
}

impl RowContext {
    /// The context of an action on `node` decided on `observation` and its `facts`.
    pub fn of(node: &str, observation: &Observation, facts: &PoolFacts) -> RowContext {
        let Some(seen) = observation.nodes.iter().find(|seen| seen.name == node) else {
            return RowContext::default();
        };
        let program = match &seen.program {
            ProgramSeen::Known(view) => Some(view),
            _ => None,
        };
        RowContext {
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
            reference_height: facts.reference,
        }
    }
}

/// Everything one job needs, owned, so it can run in a task.
pub struct Job {
    /// The node.
    pub node: String,
    /// Its supervisord program.
    pub program: String,
    /// Its chain adapter (its config file).
    pub adapter: Arc<dyn ChainNode>,
    /// Its supervisord.
    pub supervisor: Arc<dyn Supervisor>,
    /// The restart log.
    pub log: Arc<dyn RowSink>,
    /// Start, restart or stop.
    pub kind: Kind,
    /// Why.
    pub reason: Reason,
    /// Which config.
    pub variant: Variant,
    /// For the rows.
    pub context: RowContext,
    /// The clock for row timestamps.
    pub clock: Arc<dyn Clock>,
}

impl Job {
    fn row(&self, action: RestartAction) -> RestartRow {
        RestartRow {
            node: self.node.clone(),
            timestamp: self.clock.now(),
            action,
            uptime_secs: match action {
                RestartAction::Stop => self.context.uptime_secs,
                RestartAction::Start | RestartAction::Backup | RestartAction::Restore => None,
            },
            reason: self.reason.to_string(),
            program: self.program.clone(),
            height: self.context.height,
            reference_height: self.context.reference_height,
            supervisor_state: self
                .context
                .program_state
                .map(|state| state.name().to_string())
                .unwrap_or_default(),
            exit_status: self.context.exit_status,
        }
    }

    /// Appends the row of `action` (off the loop) and waits for its fsync.
    async fn record(&self, action: RestartAction) {
        let row = self.row(action);
        if let Err(e) = disk::append(&self.log, row).await {
            // The action still happens: losing a log row is bad, leaving a node down is worse.
            error!(node = %self.node, "cannot append to the restart log: {e}");
        }
    }

    /// Runs the job to its end and says how it went.
    pub async fn run(self) -> Finished {
        if self.kind == Kind::Stop {
            return self.stop().await;
        }
        if let Some((path, config)) = self.adapter.config_file(self.variant) {
            let (path, config) = (path.to_path_buf(), config.clone());
            let written = tokio::task::spawn_blocking(move || {
                nodefile::write_if_changed(&path, &config).map(|o| (o, path))
            })
            .await;
            match written {
                Ok(Ok((nodefile::WriteOutcome::Written, path))) => {
                    info!(node = %self.node, variant = ?self.variant, "wrote {}", path.display());
                }
                Ok(Ok((nodefile::WriteOutcome::Unchanged, _))) => {}
                Ok(Err(e)) => warn!(node = %self.node, "{e}; starting with the file as it is"),
                Err(e) => warn!(node = %self.node, "{e}; starting with the file as it is"),
            }
        }
        let must_stop =
            self.kind == Kind::Restart || self.context.program_state == Some(ProcessState::Backoff);
        let mut stopped = false;
        if must_stop {
            self.record(RestartAction::Stop).await;
            match self.supervisor.stop(&self.program).await {
                Ok(_) => stopped = true,
                Err(SupervisorError::Fault {
                    fault: Fault::NotRunning(_),
                    ..
                }) => stopped = true,
                Err(e) => {
                    error!(node = %self.node, "stop failed: {e}");
                    // A stop that may have happened (a timeout, a dropped connection) counts as
                    // nodekeeper's: a STOPPED program is then started again, never left stopped.
                    return Finished::failed(e.may_have_acted(), format!("stop failed: {e}"));
                }
            }
        }
        self.record(RestartAction::Start).await;
        let started_at = tokio::time::Instant::now();
        match self.supervisor.start(&self.program).await {
            Ok(_)
            | Err(SupervisorError::Fault {
                fault: Fault::AlreadyStarted(_),
                ..
            }) => {
                info!(
                    node = %self.node,
                    reason = %self.reason,
                    "{} in {:.1} s",
                    if stopped { "restarted" } else { "started" },
                    started_at.elapsed().as_secs_f64()
                );
                Finished::done()
            }
            Err(SupervisorError::Fault { fault, .. }) => {
                // SPAWN_ERROR and the like: supervisord shows the program as BACKOFF/FATAL, which
                // the policy sees as a crash next tick (within storm limits).
                error!(node = %self.node, "start failed: {fault}");
                Finished::failed(false, format!("start failed: {fault}"))
            }
            Err(e) => {
                error!(node = %self.node, "start failed: {e}");
                Finished::failed(stopped, format!("start failed: {e}"))
            }
        }
    }

    /// A stop only: its row, then `stopProcess` (a program that is not running is stopped as
    /// asked).
    async fn stop(self) -> Finished {
        self.record(RestartAction::Stop).await;
        match self.supervisor.stop(&self.program).await {
            Ok(_)
            | Err(SupervisorError::Fault {
                fault: Fault::NotRunning(_),
                ..
            }) => {
                info!(node = %self.node, reason = %self.reason, "stopped");
                Finished::done()
            }
            Err(e) => {
                error!(node = %self.node, "stop failed: {e}");
                Finished::failed(e.may_have_acted(), format!("stop failed: {e}"))
            }
        }
    }
}

/// The jobs in flight, at most one per node.
#[derive(Default)]
pub struct Jobs {
    set: JoinSet<JobDone>,
    busy: BTreeSet<String>,
    /// Which node and job each task is, so that one that panics still frees its node.
    tasks: BTreeMap<tokio::task::Id, (String, Kind)>,
}

impl Jobs {
    /// A job is in flight.
    pub fn busy(&self) -> bool {
        !self.set.is_empty()
    }

    /// The nodes with a job in flight.
    pub fn nodes(&self) -> &BTreeSet<String> {
        &self.busy
    }

    /// Starts `job`.
    pub fn spawn(&mut self, job: Job) {
        let (node, kind) = (job.node.clone(), job.kind);
        let task = {
            let node = node.clone();
            async move {
                let finished = job.run().await;
                JobDone {
                    node,
                    kind,
                    finished,
                    archive: None,
                }
            }
        };
        self.spawn_task(node, kind, task);
    }

    /// Starts a backup or restore.
    pub fn spawn_archive(&mut self, node: &str, kind: Kind, job: super::archive::ArchiveJob) {
        let task = {
            let node = node.to_string();
            async move { super::archive::done(node, kind, job.run().await) }
        };
        self.spawn_task(node.to_string(), kind, task);
    }

    fn spawn_task(
        &mut self,
        node: String,
        kind: Kind,
        task: impl std::future::Future<Output = JobDone> + Send + 'static,
    ) {
        self.busy.insert(node.clone());
        let task = self.set.spawn(task);
        self.tasks.insert(task.id(), (node, kind));
    }

    /// The next job that ends; pending forever while none runs. A job whose task failed
    /// (panicked) ends as a failure that may have left its program stopped: its node is free
    /// again, and the policy starts it if it is.
    pub async fn next(&mut self) -> JobDone {
        loop {
            match self.set.join_next_with_id().await {
                Some(Ok((id, done))) => {
                    self.tasks.remove(&id);
                    self.busy.remove(&done.node);
                    return done;
                }
                Some(Err(e)) => {
                    let Some((node, kind)) = self.tasks.remove(&e.id()) else {
                        error!("an action task failed: {e}");
                        continue;
                    };
                    error!(node = %node, "the {} job failed: {e}", kind.as_str());
                    self.busy.remove(&node);
                    return JobDone {
                        node,
                        kind,
                        finished: Finished::failed(true, format!("the job failed: {e}")),
                        archive: None,
                    };
                }
                None => std::future::pending::<()>().await,
            }
        }
    }
}

impl Daemon {
    /// Executes one of the policy's actions, decided on `observation` and its `facts`.
    pub(super) fn act(&mut self, action: Action, observation: &Observation, facts: &PoolFacts) {
        let dry = if self.options.dry_run {
            "dry run: would "
        } else {
            ""
        };
        match action {
            Action::Held { node, reason } => {
                warn!(node = %node, "holding the node: {reason}");
                self.out.emit(Event::NodeHeld {
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
            Action::KeyExpiring {
                node,
                periods,
                threshold,
                time_left,
            } => {
                let time_left_secs = time_left.map(|left| left.as_secs());
                warn!(
                    node = %node,
                    "the KES key expires in {periods} periods ({}), under leadership.kes_alert_periods ({threshold}): rotate it",
                    crate::alert::time_left(time_left_secs)
                );
                self.out.emit(Event::KesExpiring {
                    node,
                    periods,
                    threshold,
                    time_left_secs,
                });
            }
            Action::KeyRenewed {
                node,
                periods,
                time_left,
            } => {
                let time_left_secs = time_left.map(|left| left.as_secs());
                info!(
                    node = %node,
                    "the KES key was renewed: {periods} periods left ({})",
                    crate::alert::time_left(time_left_secs)
                );
                self.out.emit(Event::KesRenewed {
                    node,
                    periods,
                    time_left_secs,
                });
            }
            Action::BootVerdict {
                node,
                with_key,
                why,
            } => {
                if with_key {
                    info!(node = %node, "may boot holding the key ({why}): its starts are guarded near a pool slot");
                } else {
                    info!(node = %node, "boots without the key ({why})");
                }
            }
            Action::Recovered { node } => {
                info!(node = %node, "back in sync");
                self.out.emit(Event::NodeRecovered { node });
            }
            Action::Reference {
                reference,
                best,
                trusted: false,
            } => {
                warn!(
                    "ignoring the reference tip {reference}: it leads every local node (best {best}) \
                     by more than pooltool.reference_max_lead ({}); peers alone decide",
                    self.rt.policy.reference_max_lead
                );
            }
            Action::Reference {
                reference,
                best,
                trusted: true,
            } => {
                info!("the reference tip {reference} is trusted again (best local {best})");
            }
            Action::AllDown { nodes } => {
                warn!("no node is up: starting all {nodes} of them, staggered");
                self.out.emit(Event::AllNodesDown { nodes });
            }
            Action::SlotsAssigned { node, epoch, slots } => {
                let clock = self.observer.chain_time;
                let lines: Vec<String> = slots
                    .iter()
                    .map(|date| match clock {
                        Some(clock) => format!("{date} at {}", rfc3339(clock.date_time(*date))),
                        None => date.to_string(),
                    })
                    .collect();
                info!(node = %node, epoch, "the pool leads {} slots in epoch {epoch}: {}", lines.len(), lines.join(", "));
                self.out.emit(Event::SlotsAssigned {
                    node,
                    epoch,
                    slots: lines,
                });
            }
            Action::Demote { node, holding, why } => {
                warn!(node = %node, "{dry}demote {node} (leader ids {holding}): {why}");
                if !self.options.dry_run
                    && let Some(adapter) = self.rt.nodes.get(&node)
                {
                    let timeout = self.rt.config.thresholds.probe_timeout;
                    self.leader_tasks
                        .demote((node, Arc::clone(adapter)), holding, timeout);
                }
            }
            Action::HandOver {
                from,
                to,
                why,
                vouched,
            } => {
                info!(
                    node = %to,
                    "{dry}hand the leader key to {to}{}: {why}",
                    from.as_ref()
                        .map(|(p, _)| format!(" (demote {p}, verify, promote)"))
                        .unwrap_or_else(|| " (verify, promote)".into())
                );
                if self.options.dry_run {
                    return;
                }
                match self.plan(observation, from, &to, vouched, why) {
                    Some(plan) => {
                        let timeout = self.rt.config.thresholds.probe_timeout;
                        self.leader_tasks.hand_over(plan, timeout);
                    }
                    None => self.policy.leadership.record_handover(
                        &to,
                        (false, false),
                        &[],
                        observation.now,
                    ),
                }
            }
            Action::UseConfig { node, variant } => {
                info!(node = %node, "{dry}return to the {variant:?} config (for its next start)");
                if !self.options.dry_run
                    && let Some((path, config)) = self
                        .rt
                        .nodes
                        .get(&node)
                        .and_then(|adapter| adapter.config_file(variant))
                {
                    let (path, config) = (path.to_path_buf(), config.clone());
                    self.disk.write(move || {
                        if let Err(e) = nodefile::write_if_changed(&path, &config) {
                            error!(node = %node, "{e}");
                        }
                    });
                }
            }
            Action::Stop { node, reason } => {
                let context = RowContext::of(&node, observation, facts);
                self.start_job(&node, Kind::Stop, reason, Variant::Normal, context);
            }
            Action::Start {
                node,
                reason,
                variant,
            } => {
                let context = RowContext::of(&node, observation, facts);
                self.start_job(&node, Kind::Start, reason, variant, context);
            }
            Action::Restart {
                node,
                reason,
                variant,
            } => {
                let context = RowContext::of(&node, observation, facts);
                self.start_job(&node, Kind::Restart, reason, variant, context);
            }
        }
    }

    /// The hand-over as a plan of adapters: every node whose process may be up is verified.
    fn plan(
        &self,
        observation: &Observation,
        from: Option<(String, crate::chain::Holding)>,
        to: &str,
        vouched: Vec<String>,
        why: String,
    ) -> Option<Plan> {
        let handle = |name: &str| {
            self.rt
                .nodes
                .get(name)
                .map(|adapter| (name.to_string(), Arc::clone(adapter)))
        };
        let to = handle(to)?;
        to.1.leader()?;
        let from = from.and_then(|(name, holding)| handle(&name).map(|h| (h, holding)));
        let check = observation
            .nodes
            .iter()
            .filter(|node| node.name != to.0 && maybe_up(&node.program))
            .filter_map(|node| handle(&node.name))
            .collect();
        Some(Plan {
            from,
            check,
            vouched,
            to,
            why,
            fence: self.cluster.as_ref().map(|link| Arc::clone(&link.cluster)),
        })
    }

    /// Starts a start, restart or stop job on `node` (or logs it in a dry run); the log line, the
    /// events and the metrics of it.
    pub(super) fn start_job(
        &mut self,
        node: &str,
        kind: Kind,
        reason: Reason,
        variant: Variant,
        context: RowContext,
    ) {
        if self.options.dry_run {
            match kind {
                Kind::Stop => info!(node = %node, "dry run: would stop: {reason}"),
                _ => {
                    info!(node = %node, variant = ?variant, "dry run: would start or restart: {reason}")
                }
            }
            // Nothing runs; the policy hears it went as decided.
            self.policy.record_outcome(node, Outcome::Done);
            return;
        }
        let at = self.clock.now();
        if kind == Kind::Stop {
            warn!(node = %node, "stopping {node}: {reason}");
        } else {
            self.out.emit(Event::NodeRestarted {
                node: node.to_string(),
                reason: reason.label().to_string(),
                detail: reason.to_string(),
                restart: kind == Kind::Restart,
            });
            if variant == Variant::Fallback {
                self.out.emit(Event::FallbackConfigUsed {
                    node: node.to_string(),
                });
            }
            warn!(node = %node, variant = ?variant, "{} {node}: {reason}", match kind {
                Kind::Start => "starting",
                _ => "restarting",
            });
        }
        self.out.last_restarts.insert(
            node.to_string(),
            LastRestart {
                at: rfc3339(at),
                action: kind.as_str().into(),
                reason: reason.to_string(),
            },
        );
        let (Some(log), Some(settings)) = (&self.out.log, self.rt.config.node(node)) else {
            return;
        };
        let (Some(supervisor), Some(adapter)) = (
            self.rt.supervisors.get(&settings.supervisor),
            self.rt.nodes.get(node),
        ) else {
            return;
        };
        if kind != Kind::Stop {
            self.out.metrics.count_restart(node, reason.label());
        }
        let job = Job {
            node: node.to_string(),
            program: settings.program.clone(),
            adapter: Arc::clone(adapter),
            supervisor: Arc::clone(supervisor),
            log: Arc::clone(log),
            kind,
            reason,
            variant,
            context,
            clock: Arc::clone(&self.clock),
        };
        self.observer.touch(node);
        self.jobs.spawn(job);
    }

    /// Writes each node's config as the variant it was last started with (normal by default),
    /// where the file differs. Running nodes are not restarted for it.
    pub(super) fn write_node_configs(&self) {
        for (name, adapter) in &self.rt.nodes {
            let variant = self
                .policy
                .nodes
                .get(name)
                .map(|memory| memory.variant)
                .unwrap_or_default();
            let Some((path, config)) = adapter.config_file(variant) else {
                continue;
            };
            let (name, path, config) = (name.clone(), path.to_path_buf(), config.clone());
            self.disk
                .write(move || match nodefile::write_if_changed(&path, &config) {
                    Ok(nodefile::WriteOutcome::Written) => {
                        info!(node = %name, "wrote {}", path.display());
                    }
                    Ok(nodefile::WriteOutcome::Unchanged) => {}
                    Err(e) => error!(node = %name, "{e}"),
                });
        }
    }
}

/// The node's process may be up (or nodekeeper cannot tell).
fn maybe_up(program: &ProgramSeen) -> bool {
    match program {
        ProgramSeen::Missing => false,
        ProgramSeen::Unreachable => true,
        ProgramSeen::Known(p) => !matches!(
            p.state,
            ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal
        ),
    }
}

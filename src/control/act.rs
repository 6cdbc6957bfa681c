//! Executing one start, restart or stop: write the node's config variant, then for each supervisord call
//! append its restart-log row (fsynced) first, then make the call. Runs in its own task so the loop
//! keeps observing other nodes meanwhile.

use std::sync::{Arc, Mutex};
use tracing::{error, info, warn};

use crate::config::{NodeSettings, nodefile};
use crate::policy::{Outcome, Reason, Variant};
use crate::restart_log::{RestartAction, RestartLog, RestartRow};
use crate::supervisor::{Client, Fault, ProcessState, SupervisorError};

/// Start, restart or stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Start (a BACKOFF program is stopped first: supervisord refuses to start it).
    Start,
    /// Stop, then start.
    Restart,
    /// Stop only (an operator's stop through the API; the node is held first).
    Stop,
}

impl Kind {
    /// `start`, `restart` or `stop`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Restart => "restart",
            Kind::Stop => "stop",
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

/// Everything one action needs, owned, so it can run in a task.
pub struct Job {
    /// The node.
    pub node: NodeSettings,
    /// Its supervisord.
    pub client: Client,
    /// The restart log (one writer at a time).
    pub log: Arc<Mutex<RestartLog>>,
    /// Start or restart.
    pub kind: Kind,
    /// Why.
    pub reason: Reason,
    /// Which config.
    pub variant: Variant,
    /// For the rows.
    pub context: RowContext,
    /// The clock for row timestamps.
    pub clock: Arc<dyn crate::time::Clock>,
}

impl Job {
    fn row(&self, action: RestartAction) -> RestartRow {
        RestartRow {
            node: self.node.name.clone(),
            timestamp: self.clock.now(),
            action,
            uptime_secs: match action {
                RestartAction::Stop => self.context.uptime_secs,
                RestartAction::Start => None,
            },
            reason: self.reason.to_string(),
            program: self.node.program.clone(),
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

    fn record(&self, action: RestartAction) {
        let row = self.row(action);
        let mut log = match self.log.lock() {
            Ok(log) => log,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = log.append(&row) {
            // The action still happens: losing a log row is bad, leaving a node down is worse.
            error!(node = %self.node.name, "cannot append to the restart log: {e}");
        }
    }

    /// Runs the job to its end and says how it went.
    pub async fn run(self) -> Finished {
        if self.kind == Kind::Stop {
            return self.stop().await;
        }
        let config = match self.variant {
            Variant::Normal => &self.node.config,
            Variant::Fallback => &self.node.fallback_config,
        };
        match nodefile::write_if_changed(&self.node.config_path, config) {
            Ok(nodefile::WriteOutcome::Written) => {
                info!(node = %self.node.name, variant = ?self.variant, "wrote {}", self.node.config_path.display());
            }
            Ok(nodefile::WriteOutcome::Unchanged) => {}
            Err(e) => warn!(node = %self.node.name, "{e}; starting with the file as it is"),
        }
        let program = self.node.program.clone();
        let must_stop =
            self.kind == Kind::Restart || self.context.program_state == Some(ProcessState::Backoff);
        let mut stopped = false;
        if must_stop {
            self.record(RestartAction::Stop);
            match self.client.stop_process(&program, true).await {
                Ok(_) => stopped = true,
                Err(SupervisorError::Fault {
                    fault: Fault::NotRunning(_),
                    ..
                }) => stopped = true,
                Err(e) => {
                    error!(node = %self.node.name, "stop failed: {e}");
                    return Finished::failed(false, format!("stop failed: {e}"));
                }
            }
        }
        self.record(RestartAction::Start);
        let started_at = tokio::time::Instant::now();
        match self.client.start_process(&program, true).await {
            Ok(_)
            | Err(SupervisorError::Fault {
                fault: Fault::AlreadyStarted(_),
                ..
            }) => {
                info!(
                    node = %self.node.name,
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
                error!(node = %self.node.name, "start failed: {fault}");
                Finished::failed(false, format!("start failed: {fault}"))
            }
            Err(e) => {
                error!(node = %self.node.name, "start failed: {e}");
                Finished::failed(stopped, format!("start failed: {e}"))
            }
        }
    }

    /// A stop only: its row, then `stopProcess` (a program that is not running is stopped as
    /// asked).
    async fn stop(self) -> Finished {
        self.record(RestartAction::Stop);
        match self.client.stop_process(&self.node.program, true).await {
            Ok(_)
            | Err(SupervisorError::Fault {
                fault: Fault::NotRunning(_),
                ..
            }) => {
                info!(node = %self.node.name, reason = %self.reason, "stopped");
                Finished::done()
            }
            Err(e) => {
                error!(node = %self.node.name, "stop failed: {e}");
                Finished::failed(false, format!("stop failed: {e}"))
            }
        }
    }
}

//! The API's requests, served between other events so they never race the loop's own actions:
//! an operator's action on a node goes to `policy::operator`, whose answer is executed like a
//! tick's; every accepted action gets an id and a state the API can follow (`GET
//! /v1/actions/{id}`, `?wait=true`).

use std::collections::{BTreeMap, VecDeque};

use tokio::sync::{oneshot, watch};
use tracing::info;

use super::Daemon;
use super::act::{JobDone, Kind, RowContext};
use super::archive::ArchiveOutcome;
use super::leadership::Finished;
use crate::events::Event;
use crate::policy::{self, Answer, Refusal};
use crate::status::{ActionState, ActionView, NodeAction};
use crate::time::{Clock, rfc3339};

/// How many operator actions `GET /v1/actions/{id}` remembers.
const ACTIONS_KEPT: usize = 256;

/// A request from outside the loop (the HTTP API).
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
        /// A backup's target directory (`{"to": "..."}`) or a restore's archive
        /// (`{"from": "..."}`).
        path: Option<std::path::PathBuf>,
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

struct Record {
    view: ActionView,
    updates: watch::Sender<ActionState>,
}

/// The operator actions: recent ones by id, and the ones in flight.
pub struct Book {
    records: VecDeque<Record>,
    /// The action in flight per node (a job), by id.
    jobs: BTreeMap<String, String>,
    /// The leader request in flight: the node and the action id.
    leader: Option<(String, String)>,
    prefix: String,
    next: u64,
}

impl Book {
    /// An empty book whose ids are unique across daemon restarts: the start time, then a counter.
    pub fn new(clock: &dyn Clock) -> Book {
        let prefix = format!(
            "{:x}",
            clock
                .now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        );
        Book {
            records: VecDeque::new(),
            jobs: BTreeMap::new(),
            leader: None,
            prefix,
            next: 1,
        }
    }

    fn open(
        &mut self,
        node: &str,
        action: NodeAction,
        note: Option<String>,
        requested_at: String,
        state: ActionState,
    ) -> Accepted {
        let id = format!("{}-{}", self.prefix, self.next);
        self.next += 1;
        let view = ActionView {
            id: id.clone(),
            node: node.to_string(),
            action,
            requested_at,
            note,
            state: state.clone(),
        };
        let (updates, receiver) = watch::channel(state.clone());
        if state == ActionState::Running {
            if action == NodeAction::Leader {
                self.leader = Some((node.to_string(), id));
            } else {
                self.jobs.insert(node.to_string(), id);
            }
        }
        if self.records.len() >= ACTIONS_KEPT {
            self.records.pop_front();
        }
        self.records.push_back(Record {
            view: view.clone(),
            updates,
        });
        Accepted {
            view,
            updates: receiver,
        }
    }

    fn set(&mut self, id: &str, state: ActionState) {
        if let Some(record) = self.records.iter_mut().find(|record| record.view.id == id) {
            record.view.state = state.clone();
            record.updates.send_replace(state);
        }
    }

    fn view(&self, id: &str) -> Option<ActionView> {
        self.records
            .iter()
            .find(|record| record.view.id == id)
            .map(|record| record.view.clone())
    }
}

impl Daemon {
    /// A request from the API.
    pub(super) fn on_request(&mut self, request: Request) {
        match request {
            Request::Node {
                node,
                action,
                note,
                path,
                reply,
            } => {
                let answer = if matches!(action, NodeAction::Backup | NodeAction::Restore) {
                    self.archive_request(&node, action, note, path)
                } else {
                    self.operator(&node, action, note)
                };
                if let Err(refusal) = &answer {
                    info!(node = %node, "operator {} refused: {refusal}", action.as_str());
                }
                // A hold or a release is answered once it is persisted: a daemon killed right
                // after the answer still has it when it starts again.
                self.store.after_writes(move || {
                    let _ = reply.send(answer);
                });
            }
            Request::Action { id, reply } => {
                let _ = reply.send(self.book.view(&id));
            }
        }
    }

    /// An operator's backup or restore: `policy::backup`'s rules answer, an archive job executes.
    fn archive_request(
        &mut self,
        node: &str,
        action: NodeAction,
        note: Option<String>,
        path: Option<std::path::PathBuf>,
    ) -> Result<Accepted, Refusal> {
        let now = self.clock.now();
        if self.rt.config.node(node).is_none() {
            return Err(Refusal::UnknownNode(node.to_string()));
        }
        if self.options.dry_run {
            return Err(Refusal::Unavailable(
                "a dry run executes nothing".to_string(),
            ));
        }
        let started = if action == NodeAction::Backup {
            self.request_backup(node, path, note.clone())
        } else {
            self.request_restore(node, path, note.clone())
        };
        let message = started.map_err(Refusal::NotEligible)?;
        info!(node = %node, "operator {}: {message}", action.as_str());
        Ok(self
            .book
            .open(node, action, note, rfc3339(now), ActionState::Running))
    }

    /// An operator's action: the policy answers, the shell executes.
    fn operator(
        &mut self,
        node: &str,
        action: NodeAction,
        note: Option<String>,
    ) -> Result<Accepted, Refusal> {
        let now = self.clock.now();
        let words = note
            .as_deref()
            .map(|note| format!(" ({note})"))
            .unwrap_or_default();
        let acts = !matches!(action, NodeAction::Hold | NodeAction::Release);
        if self.options.dry_run
            && acts
            && self.rt.config.node(node).is_some()
            && (action != NodeAction::Leader || self.rt.policy.leader.enabled)
        {
            return Err(Refusal::Unavailable(
                "a dry run executes nothing".to_string(),
            ));
        }
        // A node of another instance: that instance takes over (this one resigns if elected).
        if action == NodeAction::Leader
            && self.rt.policy.leader.enabled
            && let Some(link) = &mut self.cluster
            && let Some(message) = link.request_elsewhere(node)
        {
            info!(node = %node, "operator asks for {node} as the leader{words}: {message}");
            return Ok(self.book.open(
                node,
                action,
                note,
                rfc3339(now),
                ActionState::Done { message },
            ));
        }
        let answer = policy::operator::operator(
            &self.rt.policy,
            &mut self.policy,
            &self.last.facts,
            self.jobs.nodes(),
            node,
            action,
            now,
        )?;
        self.store.save_holds(self.policy.holds());
        let state = match answer {
            Answer::Done(message) => {
                match action {
                    NodeAction::Hold => info!(node = %node, "held by an operator{words}"),
                    NodeAction::Release if message.ends_with("released") => {
                        info!(node = %node, "released by an operator{words}");
                    }
                    _ => {}
                }
                ActionState::Done { message }
            }
            Answer::HandOver => {
                info!(node = %node, "operator asks for {node} as the leader{words}: demote, verify, promote when no slot is near");
                ActionState::Running
            }
            Answer::Act(actions) => {
                info!(node = %node, "operator {}{words}", action.as_str());
                let observation = self.last.observation.take();
                for action in actions {
                    let (node, kind, reason, variant) = match action {
                        policy::Action::Start {
                            node,
                            reason,
                            variant,
                        } => (node, Kind::Start, reason, variant),
                        policy::Action::Restart {
                            node,
                            reason,
                            variant,
                        } => (node, Kind::Restart, reason, variant),
                        policy::Action::Stop { node, reason } => {
                            (node, Kind::Stop, reason, Default::default())
                        }
                        other => {
                            // The policy answers a request with jobs only.
                            info!("operator request answered with {other:?}: nothing to execute");
                            continue;
                        }
                    };
                    let context = observation
                        .as_ref()
                        .map(|observation| RowContext::of(&node, observation, &self.last.facts))
                        .unwrap_or_default();
                    self.start_job(&node, kind, reason, variant, context);
                }
                self.last.observation = observation;
                ActionState::Running
            }
        };
        Ok(self.book.open(node, action, note, rfc3339(now), state))
    }

    /// A job ended: the policy hears how, and an operator's action gets its final state.
    pub(super) fn on_job_finished(&mut self, done: JobDone) {
        let JobDone {
            node,
            kind,
            finished,
            archive,
        } = done;
        self.observer.touch(&node);
        self.policy.record_outcome(&node, finished.outcome);
        if let Some(outcome) = &archive {
            self.on_archive_finished(&node, kind, outcome);
        } else if matches!(kind, Kind::Backup | Kind::Restore) {
            // The task failed (panicked): the job's node is free again.
            self.archives.running = None;
        }
        if let Some(id) = self.book.jobs.remove(&node) {
            let state = match (&archive, finished.error) {
                (Some(outcome), error) => archive_state(&node, outcome, error),
                (None, None) => ActionState::Done {
                    message: format!(
                        "{node}: {}",
                        match kind {
                            Kind::Start => "started",
                            Kind::Stop => "stopped",
                            Kind::Restart => "restarted",
                            Kind::Backup => "backed up",
                            Kind::Restore => "restored",
                        }
                    ),
                },
                (None, Some(error)) => ActionState::Failed { error },
            };
            self.book.set(&id, state);
        }
    }

    /// A leadership task ended: the policy's memory, the log, the alert, an operator's request.
    pub(super) fn on_leader_finished(&mut self, finished: Finished) {
        let now = self.clock.now();
        if finished.ok {
            info!(node = %finished.node, "{}", finished.message);
        } else {
            tracing::warn!(node = %finished.node, "{}", finished.message);
        }
        if finished.handover {
            self.policy.leadership.record_handover(
                &finished.node,
                (finished.ok, finished.promoting),
                &finished.demoted,
                now,
            );
            if finished.ok {
                let epoch = self
                    .observer
                    .chain_time
                    .map(|clock| clock.epoch_at(now))
                    .unwrap_or_default();
                self.out.emit(Event::LeaderSwitched {
                    node: finished.node.clone(),
                    previous: finished.from.clone(),
                    reason: finished.why.clone(),
                    epoch,
                });
            }
            if let Some((node, id)) = self.book.leader.clone()
                && node == finished.node
            {
                self.book.leader = None;
                let state = if finished.ok {
                    ActionState::Done {
                        message: finished.message.clone(),
                    }
                } else {
                    ActionState::Failed {
                        error: finished.message.clone(),
                    }
                };
                self.book.set(&id, state);
            }
        } else if finished.ok {
            self.policy.leadership.record_demotion(&finished.demoted);
        }
        self.store.save_leadership(&self.policy.leadership);
    }
}

/// An operator's backup or restore, as it ended.
fn archive_state(node: &str, outcome: &ArchiveOutcome, error: Option<String>) -> ActionState {
    match (outcome, error) {
        (
            ArchiveOutcome::BackedUp {
                archive, manifest, ..
            },
            None,
        ) => ActionState::Done {
            message: format!(
                "{node}: backed up into {} ({} bytes)",
                archive.display(),
                manifest.bytes
            ),
        },
        (ArchiveOutcome::Restored { archive, .. }, None) => ActionState::Done {
            message: format!("{node}: restored from {}", archive.display()),
        },
        (ArchiveOutcome::BackedUp { .. } | ArchiveOutcome::Restored { .. }, Some(error)) => {
            ActionState::Failed {
                error: format!("{node}: the data is done but {error}"),
            }
        }
        (ArchiveOutcome::Failed(error) | ArchiveOutcome::Refused(error), _) => {
            ActionState::Failed {
                error: error.clone(),
            }
        }
    }
}

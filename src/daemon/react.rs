//! Reaction to supervisord's events (relayed by `nodekeeper listen`): an event about a managed
//! program means "observe now", a gap in a supervisord's event serials means "observe everything",
//! and a node process seen exiting means "ask supervisord until it has noticed". Events only make
//! the loop observe sooner: what to do is still decided by the policy on that observation, and
//! the tick's poll still catches whatever an event missed.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::observe::SupervisorAnswer;
use crate::listener::{Continuity, Notice, SerialTracker};
use crate::supervisor::{ProcessState, namespec};

/// How soon supervisord is asked again about a process that exited but that it still reports
/// RUNNING (it reaps children only when something wakes its loop, at least once a second).
pub const LOOK_AGAIN: Duration = Duration::from_millis(5);

/// How long a process that exited is watched for: beyond it, the tick's poll is as good.
const WATCH_EXITED: Duration = Duration::from_secs(2);

/// The round an event asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Want {
    /// supervisord's states now; the nodes' last answers (no waiting for probes).
    Quick,
    /// A whole round, as the tick's: something may have been missed.
    Full,
}

/// A process that exited while supervisord may not know yet.
#[derive(Debug)]
struct Exited {
    supervisor: String,
    pid: u32,
    since: Instant,
}

/// What the reaction keeps between events.
#[derive(Debug, Default)]
pub struct Reaction {
    serials: SerialTracker,
    /// A round wanted once the one in flight ends.
    pending: Option<Want>,
    /// Processes that exited, until supervisord reports them gone.
    exited: Vec<Exited>,
    /// When to ask supervisord again about them.
    pub look_again: Option<Instant>,
    /// When the first silent node reaches `hang_timeout`: a quick round then judges it at once
    /// instead of at the end of the next whole one.
    pub hang_check: Option<Instant>,
    /// The pid of each managed program's process as last observed: (supervisord, pid) → node.
    pids: BTreeMap<(String, u32), String>,
    /// Events received, about managed programs.
    pub events: u64,
}

impl Reaction {
    /// What a notice asks for; `managed` tells whether a supervisord's program (its namespec)
    /// is a node's.
    pub fn on_notice(
        &mut self,
        notice: Notice,
        managed: impl Fn(&str, &str) -> bool,
    ) -> Option<Want> {
        match notice {
            Notice::Event(event) => {
                let continuity = self.serials.note(&event);
                match &continuity {
                    Continuity::First => debug!(
                        supervisor = %event.supervisor,
                        "first event from supervisord's listener: observing everything"
                    ),
                    Continuity::Gap { missed } => warn!(
                        supervisor = %event.supervisor,
                        "{missed} supervisord event(s) missed (serial {}): observing everything",
                        event.pool_serial
                    ),
                    Continuity::Restarted => info!(
                        supervisor = %event.supervisor,
                        "supervisord's event serials started again (it restarted): observing everything"
                    ),
                    Continuity::Next | Continuity::Repeat => {}
                }
                let ours = managed(&event.supervisor, &namespec(&event.group, &event.program));
                if ours {
                    self.events += 1;
                    debug!(
                        supervisor = %event.supervisor,
                        program = %event.program,
                        "event: {:?} -> {:?}", event.from_state, event.state
                    );
                }
                if continuity.missed_some() {
                    Some(Want::Full)
                } else if ours && continuity != Continuity::Repeat {
                    Some(Want::Quick)
                } else {
                    None
                }
            }
            Notice::Exited { supervisor, pid } => {
                let node = self.pids.get(&(supervisor.clone(), pid))?;
                debug!(node = %node, pid, "its process exited: asking supervisord now");
                self.exited.push(Exited {
                    supervisor,
                    pid,
                    since: Instant::now(),
                });
                Some(Want::Quick)
            }
        }
    }

    /// After a round: when to look again so that a node silent for less than `hang_timeout`
    /// is judged the moment its silence reaches it (`silences`: each RUNNING node's, not acted on).
    pub fn watch_silence(
        &mut self,
        silences: impl IntoIterator<Item = Duration>,
        hang_timeout: Duration,
    ) {
        self.hang_check = silences
            .into_iter()
            .filter(|silent| *silent < hang_timeout)
            .map(|silent| hang_timeout - silent)
            .min()
            .map(|left| Instant::now() + left);
    }

    /// The earliest moment a quick round is wanted without an event, if any.
    pub fn wake_at(&self) -> Option<Instant> {
        match (self.look_again, self.hang_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A round is wanted while one is in flight: it starts once that one ends.
    pub fn defer(&mut self, want: Want) {
        self.pending = self.pending.max(Some(want));
    }

    /// The round deferred, if any (taken).
    pub fn take_pending(&mut self) -> Option<Want> {
        self.pending.take()
    }

    /// After a round: the pids of the processes it saw, and whether a process that exited is
    /// still reported RUNNING (then supervisord is asked again in [`LOOK_AGAIN`]).
    pub fn after_round(
        &mut self,
        supervisors: &BTreeMap<String, SupervisorAnswer>,
        nodes: &BTreeMap<(String, String), String>,
    ) {
        let now = Instant::now();
        let mut running = BTreeMap::new();
        for (name, answer) in supervisors {
            if let SupervisorAnswer::Answered(infos) = answer {
                for (program, info) in infos {
                    let Ok(info) = info else { continue };
                    if info.pid > 0
                        && let Some(node) = nodes.get(&(name.clone(), program.clone()))
                    {
                        running.insert((name.clone(), info.pid), (node.clone(), info.state));
                    }
                }
            }
        }
        self.exited.retain(|exited| {
            let still = running
                .get(&(exited.supervisor.clone(), exited.pid))
                .is_some_and(|(_, state)| {
                    matches!(state, ProcessState::Running | ProcessState::Stopping)
                });
            still && now.duration_since(exited.since) < WATCH_EXITED
        });
        self.look_again = (!self.exited.is_empty()).then(|| now + LOOK_AGAIN);
        self.pids = running
            .into_iter()
            .map(|(key, (node, _))| (key, node))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::ProgramEvent;

    fn event(supervisor: &str, program: &str, pool_serial: u64) -> Notice {
        Notice::Event(ProgramEvent {
            supervisor: supervisor.into(),
            serial: pool_serial * 2,
            pool_serial,
            program: program.into(),
            group: program.into(),
            from_state: ProcessState::Running,
            state: ProcessState::Exited,
            expected: Some(false),
            pid: Some(7),
            tries: None,
        })
    }

    #[test]
    fn events_ask_for_a_quick_round_gaps_and_restarts_for_a_whole_one() {
        let mut reaction = Reaction::default();
        let managed = |_: &str, program: &str| program.starts_with("node");
        // (notice, wanted)
        for (notice, want) in [
            // The first event of a supervisord: what came before is unknown.
            (event("a", "node1", 5), Some(Want::Full)),
            (event("a", "node1", 6), Some(Want::Quick)),
            // supervisord resending an event its listener did not answer.
            (event("a", "node1", 6), None),
            // Not a node's program.
            (event("a", "listener", 7), None),
            // Events 8 and 9 were lost (the buffer overflowed).
            (event("a", "node2", 10), Some(Want::Full)),
            // Another supervisord keeps its own serials.
            (event("b", "node3", 1), Some(Want::Full)),
            (event("b", "node3", 2), Some(Want::Quick)),
            // supervisord restarted: its serials start again.
            (event("a", "node1", 0), Some(Want::Full)),
            // A pid nobody knows exited.
            (
                Notice::Exited {
                    supervisor: "a".into(),
                    pid: 42,
                },
                None,
            ),
        ] {
            assert_eq!(
                reaction.on_notice(notice.clone(), managed),
                want,
                "{notice:?}"
            );
        }
        assert_eq!(reaction.events, 7);
        // A whole round wins over a quick one while one is in flight.
        reaction.defer(Want::Quick);
        reaction.defer(Want::Full);
        reaction.defer(Want::Quick);
        assert_eq!(reaction.take_pending(), Some(Want::Full));
        assert_eq!(reaction.take_pending(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_node_is_looked_at_again_when_its_silence_reaches_hang_timeout() {
        let hang = Duration::from_secs(2);
        let ms = Duration::from_millis;
        let mut reaction = Reaction::default();
        let now = Instant::now();
        // The nearest deadline wins; a node already past it (held, say) asks for nothing.
        reaction.watch_silence([ms(500), ms(1_200), ms(2_000), ms(9_000)], hang);
        assert_eq!(reaction.hang_check, Some(now + ms(800)));
        assert_eq!(reaction.wake_at(), Some(now + ms(800)));
        reaction.look_again = Some(now + LOOK_AGAIN);
        assert_eq!(reaction.wake_at(), Some(now + LOOK_AGAIN));
        reaction.look_again = None;
        reaction.watch_silence([ms(2_000)], hang);
        assert_eq!(reaction.hang_check, None);
        assert_eq!(reaction.wake_at(), None);
    }
}

//! Operator requests as inputs of the policy: restart, start, stop, hold, release, and "make this
//! node the leader". The policy answers with the actions that carry a request out, or at once, or
//! with a refusal, and keeps its memory right (holds, the bookkeeping of a start, the leader
//! request); the shell only executes. Requests are served between ticks, so they never race the
//! loop's own decisions.

use std::collections::BTreeSet;
use std::time::SystemTime;

use super::{Action, PolicyConfig, PolicyState, PoolFacts, Reason};
use crate::status::NodeAction;

/// How the policy answers a request it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Done at once; the message for the operator (`node1: held`).
    Done(String),
    /// The actions that carry it out (a start, stop or restart job).
    Act(Vec<Action>),
    /// A hand-over to the node is wanted; the ticks carry it out at the next safe moment.
    HandOver,
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such node in the configuration.
    #[error("no node {0:?} in the configuration")]
    UnknownNode(String),
    /// An action on the node (or a hand-over) is in flight.
    #[error("{0}: an action is in flight (a start, stop or restart); try again when it ends")]
    Busy(String),
    /// The node cannot do it now (e.g. lead while out of sync).
    #[error("{0}")]
    NotEligible(String),
    /// The daemon cannot act (leadership disabled, dry run).
    #[error("{0}")]
    Unavailable(String),
}

/// Answers `action` on `node` at `now`, with the facts of the last tick and the nodes a job is in
/// flight for.
pub fn operator(
    config: &PolicyConfig,
    state: &mut PolicyState,
    facts: &PoolFacts,
    busy: &BTreeSet<String>,
    node: &str,
    action: NodeAction,
    now: SystemTime,
) -> Result<Answer, Refusal> {
    if !config.nodes.iter().any(|name| name == node) {
        return Err(Refusal::UnknownNode(node.to_string()));
    }
    match action {
        NodeAction::Backup | NodeAction::Restore => Err(Refusal::Unavailable(
            "a backup or restore is answered by the backup rules (policy::backup)".to_string(),
        )),
        NodeAction::Leader => {
            if !config.leader.enabled {
                return Err(Refusal::Unavailable(
                    "leadership is not enabled (leadership.enabled = false)".to_string(),
                ));
            }
            if let Some(pending) = &state.leadership.requested {
                return Err(Refusal::Busy(pending.clone()));
            }
            if state.leadership.leader.as_deref() == Some(node) {
                return Ok(Answer::Done(format!("{node} already leads")));
            }
            if !facts.node(node).is_some_and(|f| f.in_sync) {
                return Err(Refusal::NotEligible(format!(
                    "{node} is not Running and in sync: it cannot lead; nothing was changed"
                )));
            }
            state.leadership.requested = Some(node.to_string());
            Ok(Answer::HandOver)
        }
        NodeAction::Hold => {
            state.hold(node, now);
            Ok(Answer::Done(format!("{node}: held")))
        }
        NodeAction::Release => Ok(Answer::Done(if state.release(node) {
            format!("{node}: released")
        } else {
            format!("{node}: was not held")
        })),
        NodeAction::Restart | NodeAction::Start | NodeAction::Stop => {
            if busy.contains(node) {
                return Err(Refusal::Busy(node.to_string()));
            }
            if action == NodeAction::Stop {
                // The operator's stop stands: held, so the loop does not start it again.
                state.hold(node, now);
                return Ok(Answer::Act(vec![Action::Stop {
                    node: node.to_string(),
                    reason: Reason::Operator,
                }]));
            }
            if action == NodeAction::Start {
                state.release(node);
            }
            let variant = facts.variant_for(node);
            // The bookkeeping of a start (boot grace, storm window, variant); storm protection
            // itself does not apply to an operator's request.
            let memory = state.nodes.entry(node.to_string()).or_default();
            memory.restarts.push(now);
            memory.note_start(now, variant);
            memory.sync_restart_at = None;
            let node = node.to_string();
            let reason = Reason::Operator;
            Ok(Answer::Act(vec![if action == NodeAction::Start {
                Action::Start {
                    node,
                    reason,
                    variant,
                }
            } else {
                Action::Restart {
                    node,
                    reason,
                    variant,
                }
            }]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::NodeState;
    use crate::chain::Variant;
    use crate::policy::tests::{at, program, status};
    use crate::policy::{HoldReason, NodeObservation, Observation, decide};
    use crate::supervisor::ProcessState;

    fn config() -> PolicyConfig {
        PolicyConfig {
            nodes: vec!["node1".into(), "node2".into()],
            ..PolicyConfig::default()
        }
    }

    fn running(name: &str, height: u64) -> NodeObservation {
        NodeObservation {
            probe: Some(Ok(status(NodeState::Running, Some(height)))),
            ..program(name, ProcessState::Running)
        }
    }

    /// The facts of one tick over `nodes` at `secs`.
    fn tick(
        config: &PolicyConfig,
        state: &mut PolicyState,
        secs: u64,
        nodes: Vec<NodeObservation>,
    ) -> PoolFacts {
        decide(
            config,
            state,
            &Observation {
                now: at(secs),
                nodes,
                reference: None,
                chain: None,
                leader_job: false,
                cluster: None,
            },
        )
        .facts
    }

    #[test]
    fn unknown_nodes_and_busy_nodes_are_refused() {
        let config = config();
        let mut state = PolicyState::default();
        let facts = tick(
            &config,
            &mut state,
            100,
            vec![running("node1", 10), running("node2", 10)],
        );
        let none = BTreeSet::new();
        let refused = operator(
            &config,
            &mut state,
            &facts,
            &none,
            "node9",
            NodeAction::Restart,
            at(101),
        );
        assert_eq!(refused, Err(Refusal::UnknownNode("node9".into())));
        let busy: BTreeSet<String> = ["node1".to_string()].into();
        for action in [NodeAction::Restart, NodeAction::Start, NodeAction::Stop] {
            let refused = operator(&config, &mut state, &facts, &busy, "node1", action, at(101));
            assert_eq!(refused, Err(Refusal::Busy("node1".into())), "{action:?}");
        }
        // Hold and release are not jobs: a busy node can still be held.
        let held = operator(
            &config,
            &mut state,
            &facts,
            &busy,
            "node1",
            NodeAction::Hold,
            at(101),
        );
        assert_eq!(held, Ok(Answer::Done("node1: held".into())));
    }

    #[test]
    fn a_stop_holds_the_node_and_a_start_releases_it_with_the_policys_variant() {
        let config = config();
        let mut state = PolicyState::default();
        let none = BTreeSet::new();
        let facts = tick(
            &config,
            &mut state,
            100,
            vec![running("node1", 10), running("node2", 10)],
        );
        let stop = operator(
            &config,
            &mut state,
            &facts,
            &none,
            "node1",
            NodeAction::Stop,
            at(101),
        );
        assert_eq!(
            stop,
            Ok(Answer::Act(vec![Action::Stop {
                node: "node1".into(),
                reason: Reason::Operator
            }]))
        );
        assert_eq!(state.holds()["node1"].reason, HoldReason::Operator);
        // node2 is in sync: node1 starts with its normal config, and the hold ends.
        let start = operator(
            &config,
            &mut state,
            &facts,
            &none,
            "node1",
            NodeAction::Start,
            at(102),
        );
        assert_eq!(
            start,
            Ok(Answer::Act(vec![Action::Start {
                node: "node1".into(),
                reason: Reason::Operator,
                variant: Variant::Normal
            }]))
        );
        assert!(state.holds().is_empty());
        assert!(state.nodes["node1"].recovering);
        // Nobody else in sync: the fallback config, as the policy would choose for itself.
        let lonely = tick(
            &config,
            &mut state,
            200,
            vec![running("node1", 10), program("node2", ProcessState::Exited)],
        );
        let restart = operator(
            &config,
            &mut state,
            &lonely,
            &none,
            "node2",
            NodeAction::Restart,
            at(201),
        );
        assert!(matches!(
            restart,
            Ok(Answer::Act(actions)) if actions == vec![Action::Restart {
                node: "node2".into(),
                reason: Reason::Operator,
                variant: Variant::Normal
            }]
        ));
        let restart = operator(
            &config,
            &mut state,
            &lonely,
            &none,
            "node1",
            NodeAction::Restart,
            at(202),
        );
        assert!(matches!(
            restart,
            Ok(Answer::Act(actions)) if actions == vec![Action::Restart {
                node: "node1".into(),
                reason: Reason::Operator,
                variant: Variant::Fallback
            }]
        ));
    }

    #[test]
    fn a_leader_request_needs_leadership_and_a_node_in_sync() {
        let mut config = config();
        let mut state = PolicyState::default();
        let none = BTreeSet::new();
        let facts = tick(
            &config,
            &mut state,
            100,
            vec![running("node1", 10), running("node2", 1)],
        );
        let off = operator(
            &config,
            &mut state,
            &facts,
            &none,
            "node1",
            NodeAction::Leader,
            at(101),
        );
        assert!(matches!(off, Err(Refusal::Unavailable(_))));
        config.leader.enabled = true;
        // node2 is 9 blocks behind: not in sync.
        let behind = operator(
            &config,
            &mut state,
            &facts,
            &none,
            "node2",
            NodeAction::Leader,
            at(101),
        );
        assert!(matches!(behind, Err(Refusal::NotEligible(_))), "{behind:?}");
        let wanted = operator(
            &config,
            &mut state,
            &facts,
            &none,
            "node1",
            NodeAction::Leader,
            at(101),
        );
        assert_eq!(wanted, Ok(Answer::HandOver));
        assert_eq!(state.leadership.requested.as_deref(), Some("node1"));
        let again = operator(
            &config,
            &mut state,
            &facts,
            &none,
            "node1",
            NodeAction::Leader,
            at(102),
        );
        assert_eq!(again, Err(Refusal::Busy("node1".into())));
        state.leadership.requested = None;
        state.leadership.leader = Some("node1".into());
        let leads = operator(
            &config,
            &mut state,
            &facts,
            &none,
            "node1",
            NodeAction::Leader,
            at(103),
        );
        assert_eq!(leads, Ok(Answer::Done("node1 already leads".into())));
    }
}

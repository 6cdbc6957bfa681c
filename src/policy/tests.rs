//! Table tests of the policy: plain observations in, actions out, over simulated time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::chain::{BootVerdict, NodeState, NodeStatus, ProbeError};
use crate::supervisor::ProcessState;

pub(super) const T0: u64 = 1_700_000_000;

pub(super) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

/// Programs in these tests started an hour before the first tick: boot grace is long over.
pub(super) fn long_ago() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 - 3600)
}

pub(super) fn status(state: NodeState, height: Option<u64>) -> NodeStatus {
    NodeStatus {
        state,
        version: "jormungandr 0.9.0".into(),
        height,
        irreversible_height: None,
        tip_hash: None,
        tip_date: None,
        last_block_time: None,
        tip_time: None,
        uptime_secs: None,
    }
}

pub(super) fn program(name: &str, state: ProcessState) -> NodeObservation {
    NodeObservation {
        name: name.into(),
        program: ProgramSeen::Known(ProgramView {
            state,
            started_at: Some(long_ago()),
            exit_status: 0,
        }),
        probe: None,
        silent_for: None,
        busy: false,
        leadership: LeaderView::default(),
        boot: BootVerdict::default(),
        hopeless_exit: None,
        key_expiry: None,
    }
}

fn running(name: &str, height: u64) -> NodeObservation {
    NodeObservation {
        probe: Some(Ok(status(NodeState::Running, Some(height)))),
        ..program(name, ProcessState::Running)
    }
}

fn booting(name: &str) -> NodeObservation {
    NodeObservation {
        probe: Some(Ok(status(NodeState::Booting("Bootstrapping".into()), None))),
        ..program(name, ProcessState::Running)
    }
}

fn hung(name: &str) -> NodeObservation {
    NodeObservation {
        probe: Some(Err(ProbeError::Timeout(Duration::from_secs(2)))),
        ..program(name, ProcessState::Running)
    }
}

/// Its API has not answered for `millis` while asked.
fn silent(mut node: NodeObservation, millis: u64) -> NodeObservation {
    node.silent_for = Some(Duration::from_millis(millis));
    node
}

fn started(mut node: NodeObservation, secs: u64) -> NodeObservation {
    if let ProgramSeen::Known(view) = &mut node.program {
        view.started_at = Some(at(secs));
    }
    node
}

fn unreachable(name: &str) -> NodeObservation {
    NodeObservation {
        name: name.into(),
        program: ProgramSeen::Unreachable,
        probe: None,
        silent_for: None,
        busy: false,
        leadership: LeaderView::default(),
        boot: BootVerdict::default(),
        hopeless_exit: None,
        key_expiry: None,
    }
}

/// A policy over simulated time.
struct World {
    config: PolicyConfig,
    state: PolicyState,
    reference: Option<ReferenceTip>,
}

impl World {
    fn new() -> World {
        World {
            config: PolicyConfig::default(),
            state: PolicyState::default(),
            reference: None,
        }
    }

    /// One tick at `secs`, with the actions rendered compactly: `verb node reason variant`.
    fn tick(&mut self, secs: u64, nodes: &[NodeObservation]) -> Vec<String> {
        let observation = Observation {
            now: at(secs),
            nodes: nodes.to_vec(),
            reference: self.reference,
            chain: None,
            leader_job: false,
            cluster: None,
        };
        // The reports of a recovery and of an all-down episode have their own tests; the rules'
        // tables list what is executed.
        decide(&self.config, &mut self.state, &observation)
            .actions
            .iter()
            .filter(|action| {
                !matches!(
                    action,
                    Action::Recovered { .. }
                        | Action::AllDown { .. }
                        | Action::Reference { .. }
                        | Action::BootVerdict { .. }
                )
            })
            .map(show)
            .collect()
    }
}

fn variant_word(variant: &Variant) -> &'static str {
    match variant {
        Variant::Normal => "normal",
        Variant::Fallback => "fallback",
    }
}

pub(super) fn show(action: &Action) -> String {
    match action {
        Action::Start {
            node,
            reason,
            variant,
        } => format!("start {node} {} {}", reason.label(), variant_word(variant)),
        Action::Restart {
            node,
            reason,
            variant,
        } => format!(
            "restart {node} {} {}",
            reason.label(),
            variant_word(variant)
        ),
        Action::UseConfig { node, variant } => format!("config {node} {}", variant_word(variant)),
        Action::Held { node, reason } => format!(
            "hold {node} {}",
            match reason {
                HoldReason::Storm { .. } => "storm",
                HoldReason::OperatorStopped => "operator_stopped",
                HoldReason::Operator => "operator",
                HoldReason::Hopeless { .. } => "hopeless",
            }
        ),
        Action::Released { node } => format!("release {node}"),
        Action::Stop { node, reason } => format!("stop {node} {}", reason.label()),
        Action::Demote { node, holding, .. } => format!("demote {node} {:?}", holding.0),
        Action::HandOver { from, to, .. } => match from {
            Some((from, _)) => format!("handover {from} -> {to}"),
            None => format!("promote {to}"),
        },
        Action::SlotsAssigned { epoch, slots, .. } => {
            format!("slots {epoch} {}", slots.len())
        }
        Action::Waiting { node, .. } => format!("wait {node}"),
        Action::Recovered { node } => format!("recovered {node}"),
        Action::AllDown { nodes } => format!("all down {nodes}"),
        Action::Reference {
            reference,
            best,
            trusted,
        } => format!("reference {reference} best {best} trusted {trusted}"),
        Action::BootVerdict {
            node,
            with_key,
            why,
        } => format!("boot {node} with_key {with_key}: {why}"),
        Action::KeyExpiring { node, periods, .. } => format!("kes {node} {periods}"),
        Action::KeyRenewed { node, periods, .. } => format!("kes renewed {node} {periods}"),
    }
}

#[track_caller]
fn check(actual: Vec<String>, expected: &[&str]) {
    assert_eq!(actual, expected);
}

#[test]
fn healthy_nodes_are_adopted_and_left_alone() {
    let mut w = World::new();
    for secs in 0..300 {
        let height = 1000 + secs / 20;
        check(
            w.tick(secs, &[running("a", height), running("b", height)]),
            &[],
        );
    }
}

#[test]
fn crashed_programs_are_started_with_the_config_their_siblings_allow() {
    for state in [
        ProcessState::Exited,
        ProcessState::Fatal,
        ProcessState::Backoff,
    ] {
        let mut w = World::new();
        check(
            w.tick(0, &[running("a", 100), program("b", state)]),
            &["start b crashed normal"],
        );
        // Alone, it has no sibling to sync from: the fallback config.
        let mut w = World::new();
        check(
            w.tick(0, &[program("b", state)]),
            &["start b crashed fallback"],
        );
    }
}

#[test]
fn a_node_silent_for_hang_timeout_is_restarted_a_slow_one_never() {
    let mut w = World::new();
    // Failed probes, slow answers: silent for less than hang_timeout (2 s) is not hung.
    check(
        w.tick(0, &[running("a", 100), silent(hung("b"), 1_000)]),
        &[],
    );
    check(
        w.tick(1, &[running("a", 100), silent(running("b", 100), 1_900)]),
        &[],
    );
    // An answer ends the silence.
    check(w.tick(2, &[running("a", 100), running("b", 100)]), &[]);
    check(
        w.tick(3, &[running("a", 100), silent(hung("b"), 1_000)]),
        &[],
    );
    check(
        w.tick(4, &[running("a", 100), silent(hung("b"), 2_000)]),
        &["restart b hung normal"],
    );
    let mut w = World::new();
    w.tick(0, &[running("a", 100), running("b", 100)]);
    let (actions, _) = w.tick_all(1, &[running("a", 100), silent(hung("b"), 2_500)]);
    assert_eq!(actions, ["restart b hung normal"]);
    let reason = Reason::Hung(Duration::from_millis(2_500));
    assert_eq!(reason.to_string(), "hung (no answer for 2.5 s)");
}

#[test]
fn stale_tip_restarts_after_tip_timeout_without_a_new_block() {
    let mut w = World::new();
    // b's height stops at 100 while a moves on slowly (within the lag threshold).
    for secs in 0..=90 {
        check(
            w.tick(secs, &[running("a", 100 + secs / 30), running("b", 100)]),
            &[],
        );
    }
    check(
        w.tick(91, &[running("a", 103), running("b", 100)]),
        &["restart b stale_tip normal"],
    );
}

#[test]
fn lag_is_measured_against_the_best_node_now_not_a_high_water_mark() {
    let mut w = World::new();
    check(w.tick(0, &[running("a", 107), running("b", 100)]), &[]);
    check(
        w.tick(1, &[running("a", 108), running("b", 100)]),
        &["restart b lag normal"],
    );
    // After a rollback the best height drops: nobody is lagging behind what was seen before.
    let mut w = World::new();
    check(w.tick(0, &[running("a", 500), running("b", 495)]), &[]);
    check(w.tick(1, &[running("a", 300), running("b", 299)]), &[]);
}

#[test]
fn a_fresh_reference_counts_a_stale_or_missing_one_never_does() {
    let mut w = World::new();
    w.reference = Some(ReferenceTip {
        height: 120,
        fetched_at: at(0),
    });
    check(
        w.tick(10, &[running("a", 112), running("b", 113)]),
        &["restart a lag normal"],
    );

    // Older than reference_max_age (180 s): ignored.
    let mut w = World::new();
    w.reference = Some(ReferenceTip {
        height: 120,
        fetched_at: at(0),
    });
    check(w.tick(181, &[running("a", 112), running("b", 113)]), &[]);

    // No reference (PoolTool down or garbled): peers alone decide.
    let mut w = World::new();
    check(w.tick(10, &[running("a", 112), running("b", 113)]), &[]);
}

#[test]
fn bootstrap_timeout_uses_the_fallback_config_only_without_a_synced_sibling() {
    let mut w = World::new();
    let boot = |secs| started(booting("b"), secs);
    check(w.tick(0, &[running("a", 100), boot(0)]), &[]);
    check(w.tick(650, &[running("a", 100 + 650 / 20), boot(0)]), &[]);
    check(
        w.tick(651, &[running("a", 133), boot(0)]),
        &["restart b bootstrap_timeout normal"],
    );

    let mut w = World::new();
    check(w.tick(0, &[hung("a"), boot(0)]), &[]);
    check(
        w.tick(651, &[program("a", ProcessState::Stopping), boot(0)]),
        &["restart b bootstrap_timeout fallback"],
    );
    // b comes up on its fallback config; once a is back in sync, b's file goes back to normal.
    check(
        w.tick(
            700,
            &[program("a", ProcessState::Starting), running("b", 140)],
        ),
        &[],
    );
    check(
        w.tick(800, &[running("a", 145), running("b", 145)]),
        &["config b normal"],
    );
    check(w.tick(801, &[running("a", 145), running("b", 145)]), &[]);
}

#[test]
fn an_adopted_node_bootstrapping_since_long_ago_is_judged_from_its_start() {
    let mut w = World::new();
    // Adopted at daemon start while bootstrapping since its start an hour ago.
    check(
        w.tick(0, &[running("a", 100), booting("b")]),
        &["restart b bootstrap_timeout normal"],
    );
}

#[test]
fn all_down_starts_every_node_on_the_fallback_config_staggered() {
    let mut w = World::new();
    let stopped = |n| program(n, ProcessState::Stopped);
    check(
        w.tick(0, &[stopped("a"), stopped("b"), stopped("c")]),
        &["start a all_down fallback"],
    );
    let a_starting = program("a", ProcessState::Starting);
    check(
        w.tick(5, &[a_starting.clone(), stopped("b"), stopped("c")]),
        &[],
    );
    check(
        w.tick(10, &[a_starting.clone(), stopped("b"), stopped("c")]),
        &["start b all_down fallback"],
    );
    check(
        w.tick(
            20,
            &[
                a_starting,
                program("b", ProcessState::Starting),
                stopped("c"),
            ],
        ),
        &["start c all_down fallback"],
    );
}

#[test]
fn sync_rules_wait_for_boot_grace_after_a_start() {
    let mut w = World::new();
    check(
        w.tick(0, &[running("a", 100), program("b", ProcessState::Exited)]),
        &["start b crashed normal"],
    );
    // b is far behind while catching up, within the 60 s grace.
    for secs in [5, 30, 59] {
        check(
            w.tick(secs, &[running("a", 100), started(running("b", 50), 1)]),
            &[],
        );
    }
    check(
        w.tick(61, &[running("a", 100), started(running("b", 50), 1)]),
        &["restart b lag normal"],
    );
}

#[test]
fn unreachable_supervisord_or_missing_programs_cause_nothing() {
    let mut w = World::new();
    check(w.tick(0, &[unreachable("a"), unreachable("b")]), &[]);
    let missing = NodeObservation {
        program: ProgramSeen::Missing,
        ..unreachable("b")
    };
    check(w.tick(1, &[running("a", 100), missing]), &[]);
    // A node whose supervisord is unreachable is not "down": no all-down start of the others.
    check(
        w.tick(2, &[unreachable("a"), program("b", ProcessState::Stopped)]),
        &["start b stopped fallback"],
    );
}

#[test]
fn storm_protection_holds_a_node_after_max_restarts_in_the_window() {
    let mut w = World::new();
    let exited = || program("b", ProcessState::Exited);
    for (secs, expected) in [
        (0, vec!["start b crashed normal"]),
        (100, vec!["start b crashed normal"]),
        (200, vec!["start b crashed normal"]),
        (300, vec!["hold b storm"]),
        (400, vec![]),
    ] {
        check(
            w.tick(secs, &[running("a", 100 + secs / 20), exited()]),
            &expected,
        );
    }
    // Released by an operator, it is acted on again.
    assert!(w.state.release("b"));
    check(
        w.tick(500, &[running("a", 125), exited()]),
        &["start b crashed normal"],
    );
}

#[test]
fn an_exit_that_starting_again_cannot_mend_holds_the_node_at_once() {
    // nodeos's dirty database (exit status 2): the adapter says starting again fails the same
    // way; the node is held with those words, never started in a loop.
    let mut w = World::new();
    let dirty = || NodeObservation {
        hopeless_exit: Some("dirty database".into()),
        ..program("b", ProcessState::Exited)
    };
    check(
        w.tick(0, &[running("a", 100), dirty()]),
        &["hold b hopeless"],
    );
    let held = w.state.holds().get("b").map(|hold| hold.reason.to_string());
    assert!(
        held.as_deref()
            .is_some_and(|why| why.starts_with("dirty database; starting it again")),
        "{held:?}"
    );
    check(w.tick(60, &[running("a", 103), dirty()]), &[]);
    // Repaired and started by the operator: released, watched again.
    check(
        w.tick(120, &[running("a", 106), started(running("b", 106), 110)]),
        &["release b"],
    );
    // An ordinary crash is started again.
    check(
        w.tick(
            180,
            &[running("a", 109), program("b", ProcessState::Exited)],
        ),
        &["start b crashed normal"],
    );
}

#[test]
fn at_most_one_sync_restart_in_flight_but_dead_nodes_are_not_limited() {
    let mut w = World::new();
    check(
        w.tick(
            0,
            &[running("a", 200), running("b", 100), running("c", 100)],
        ),
        &["restart b lag normal"],
    );
    // c still lags but waits for b, which is catching up within its grace; a dead node is
    // started meanwhile. (The fresh reference keeps b out of sync while a is down.)
    w.reference = Some(ReferenceTip {
        height: 201,
        fetched_at: at(30),
    });
    check(
        w.tick(
            30,
            &[
                running("a", 201),
                started(running("b", 150), 1),
                running("c", 100),
            ],
        ),
        &[],
    );
    check(
        w.tick(
            31,
            &[
                program("a", ProcessState::Exited),
                started(running("b", 150), 1),
                running("c", 100),
            ],
        ),
        &["start a crashed fallback"],
    );
    // b is back in sync: c's turn, and a (started on the fallback config) goes back to normal.
    check(
        w.tick(
            40,
            &[
                started(running("a", 202), 32),
                started(running("b", 202), 1),
                running("c", 100),
            ],
        ),
        &["restart c lag normal", "config a normal"],
    );
}

#[test]
fn an_operator_stop_is_respected_until_an_operator_starts_it() {
    let mut w = World::new();
    check(w.tick(0, &[running("a", 100), running("b", 100)]), &[]);
    let stopped = program("b", ProcessState::Stopped);
    check(
        w.tick(1, &[running("a", 100), stopped.clone()]),
        &["hold b operator_stopped"],
    );
    for secs in 2..10 {
        check(w.tick(secs, &[running("a", 100), stopped.clone()]), &[]);
    }
    check(
        w.tick(
            10,
            &[
                running("a", 100),
                started(program("b", ProcessState::Starting), 10),
            ],
        ),
        &["release b"],
    );
    // Judged again from its new start (within grace: nothing yet).
    check(
        w.tick(11, &[running("a", 100), started(running("b", 90), 10)]),
        &[],
    );
}

#[test]
fn stopped_programs_are_started_at_daemon_start_and_after_a_release() {
    let mut w = World::new();
    check(
        w.tick(0, &[running("a", 100), program("b", ProcessState::Stopped)]),
        &["start b stopped normal"],
    );
    let mut w = World::new();
    w.state.hold("b", at(0));
    check(
        w.tick(0, &[running("a", 100), program("b", ProcessState::Stopped)]),
        &[],
    );
    check(
        w.tick(1, &[running("a", 100), program("b", ProcessState::Exited)]),
        &[],
    );
    w.state.release("b");
    check(
        w.tick(2, &[running("a", 100), program("b", ProcessState::Stopped)]),
        &["start b stopped normal"],
    );
}

#[test]
fn busy_nodes_are_left_alone_and_failed_starts_are_retried() {
    let mut w = World::new();
    let mut b = program("b", ProcessState::Stopping);
    b.busy = true;
    check(w.tick(0, &[running("a", 100), b]), &[]);
    // Our stop worked, our start did not: STOPPED is ours, not an operator's.
    w.state
        .record_outcome("b", Outcome::Failed { left_stopped: true });
    check(
        w.tick(1, &[running("a", 100), program("b", ProcessState::Stopped)]),
        &["start b retry normal"],
    );
}

#[test]
fn holds_survive_a_daemon_restart() {
    let mut w = World::new();
    w.state.hold("b", at(0));
    let holds = w.state.holds();
    let mut fresh = World::new();
    fresh.state.restore_holds(holds);
    check(
        fresh.tick(0, &[running("a", 100), program("b", ProcessState::Stopped)]),
        &[],
    );
}

#[test]
fn reasons_read_well_in_the_restart_log() {
    assert_eq!(
        Reason::Lag {
            height: 100,
            reference: 110
        }
        .to_string(),
        "lag (height 100, reference 110, 10 behind)"
    );
    assert_eq!(
        Reason::Crashed(ProcessState::Fatal).to_string(),
        "crashed (FATAL)"
    );
    assert_eq!(
        Reason::StaleTip(Duration::from_secs(91)).to_string(),
        "stale tip (no new block for 91 s)"
    );
}

#[test]
fn a_node_that_hangs_after_answering_counts_at_once_even_in_grace() {
    let mut w = World::new();
    check(
        w.tick(0, &[running("a", 100), program("b", ProcessState::Exited)]),
        &["start b crashed normal"],
    );
    // Its API answered once after the start, then hangs: no need to wait for boot grace.
    check(
        w.tick(3, &[running("a", 100), started(running("b", 90), 1)]),
        &[],
    );
    check(
        w.tick(4, &[running("a", 100), started(silent(hung("b"), 500), 1)]),
        &[],
    );
    check(
        w.tick(
            5,
            &[running("a", 100), started(silent(hung("b"), 1_500), 1)],
        ),
        &[],
    );
    check(
        w.tick(
            6,
            &[running("a", 100), started(silent(hung("b"), 2_500), 1)],
        ),
        &["restart b hung normal"],
    );
    // An API that never answered since the start is given boot grace (60 s).
    let mut w = World::new();
    check(
        w.tick(0, &[running("a", 100), program("b", ProcessState::Exited)]),
        &["start b crashed normal"],
    );
    for secs in 2..=59 {
        let silence = (secs - 1) * 1_000;
        check(
            w.tick(
                secs,
                &[
                    running("a", 100 + secs / 20),
                    started(silent(hung("b"), silence), 1),
                ],
            ),
            &[],
        );
    }
    check(
        w.tick(
            61,
            &[running("a", 103), started(silent(hung("b"), 60_000), 1)],
        ),
        &["restart b hung normal"],
    );
}

#[test]
fn boot_grace_ends_when_the_node_is_first_in_sync() {
    let mut w = World::new();
    check(
        w.tick(0, &[running("a", 100), program("b", ProcessState::Exited)]),
        &["start b crashed normal"],
    );
    // In sync 5 s after its start: grace is over, though boot_grace (60 s) is not.
    check(
        w.tick(5, &[running("a", 100), started(running("b", 100), 1)]),
        &[],
    );
    // Its tip freezes at 100 while a moves on: a stale tip after tip_timeout (90 s), not after
    // boot grace plus tip_timeout.
    for secs in 6..=95 {
        check(
            w.tick(
                secs,
                &[running("a", 100 + secs / 30), started(running("b", 100), 1)],
            ),
            &[],
        );
    }
    check(
        w.tick(96, &[running("a", 103), started(running("b", 100), 1)]),
        &["restart b stale_tip normal"],
    );
    // Without a first moment in sync, grace holds the sync rules for boot_grace.
    let mut w = World::new();
    check(
        w.tick(0, &[running("a", 100), program("b", ProcessState::Exited)]),
        &["start b crashed normal"],
    );
    check(
        w.tick(30, &[running("a", 200), started(running("b", 100), 1)]),
        &[],
    );
}

#[test]
fn a_node_falling_back_to_bootstrapping_is_timed_from_then() {
    let mut w = World::new();
    check(w.tick(0, &[running("a", 100), running("b", 100)]), &[]);
    // b (started an hour ago) drops back to Bootstrapping: 650 s from now, not from its start.
    check(w.tick(10, &[running("a", 100), booting("b")]), &[]);
    check(w.tick(660, &[running("a", 133), booting("b")]), &[]);
    check(
        w.tick(661, &[running("a", 133), booting("b")]),
        &["restart b bootstrap_timeout normal"],
    );
}

impl World {
    /// One tick at `secs`: every action rendered, the reports included, and the facts.
    fn tick_all(&mut self, secs: u64, nodes: &[NodeObservation]) -> (Vec<String>, PoolFacts) {
        let observation = Observation {
            now: at(secs),
            nodes: nodes.to_vec(),
            reference: self.reference,
            chain: None,
            leader_job: false,
            cluster: None,
        };
        let decision = decide(&self.config, &mut self.state, &observation);
        (decision.actions.iter().map(show).collect(), decision.facts)
    }
}

fn busy(mut node: NodeObservation) -> NodeObservation {
    node.busy = true;
    node
}

#[test]
fn a_restarted_node_is_back_in_sync_only_when_seen_in_sync_after_its_restart() {
    let mut w = World::new();
    for secs in 0..=90 {
        w.tick(secs, &[running("a", 100 + secs / 30), running("b", 100)]);
    }
    // The restart is decided on an observation where b is Running, near the best height, but
    // stale: it is not in sync, and nothing says it is back in the same tick.
    let (actions, facts) = w.tick_all(91, &[running("a", 103), running("b", 100)]);
    assert_eq!(actions, ["restart b stale_tip normal"]);
    let b = facts.node("b").unwrap();
    assert!(!b.in_sync);
    assert!(matches!(b.why_not, Some(NotInSync::StaleTip(_))), "{b:?}");
    // While the job runs, and while the new process boots, no report.
    let (actions, _) = w.tick_all(92, &[running("a", 103), busy(running("b", 100))]);
    assert_eq!(actions, Vec::<String>::new());
    let (actions, facts) = w.tick_all(95, &[running("a", 103), started(booting("b"), 93)]);
    assert_eq!(actions, Vec::<String>::new());
    assert_eq!(
        facts.node("b").unwrap().why_not,
        Some(NotInSync::Booting("Bootstrapping".into()))
    );
    // Running and near the best height: back, once.
    let (actions, facts) = w.tick_all(99, &[running("a", 104), started(running("b", 104), 93)]);
    assert_eq!(actions, ["recovered b"]);
    assert!(facts.node("b").unwrap().in_sync);
    let (actions, _) = w.tick_all(100, &[running("a", 104), started(running("b", 104), 93)]);
    assert_eq!(actions, Vec::<String>::new());
}

#[test]
fn an_all_down_episode_is_reported_once_before_its_first_start() {
    let mut w = World::new();
    let stopped = |n| program(n, ProcessState::Stopped);
    let (actions, _) = w.tick_all(0, &[stopped("a"), stopped("b")]);
    assert_eq!(actions, ["all down 2", "start a all_down fallback"]);
    let starting = program("a", ProcessState::Starting);
    let (actions, _) = w.tick_all(10, &[starting.clone(), stopped("b")]);
    assert_eq!(actions, ["start b all_down fallback"]);
    // Back in sync ends the episode (the next one is reported again); both return to their
    // normal config.
    let (actions, _) = w.tick_all(30, &[running("a", 10), started(running("b", 10), 12)]);
    assert_eq!(
        actions,
        [
            "recovered a",
            "recovered b",
            "config a normal",
            "config b normal"
        ]
    );
    assert!(!w.state.all_down_announced);
}

#[test]
fn facts_say_who_is_in_sync_how_far_behind_and_why_not() {
    let mut w = World::new();
    w.reference = Some(ReferenceTip {
        height: 120,
        fetched_at: at(0),
    });
    let (_, facts) = w.tick_all(
        0,
        &[
            running("a", 118),
            running("b", 100),
            booting("c"),
            hung("d"),
            program("e", ProcessState::Fatal),
            unreachable("f"),
        ],
    );
    assert_eq!(facts.reference, Some(120));
    assert_eq!(facts.external, Some(120));
    let a = facts.node("a").unwrap();
    assert!(
        a.in_sync && a.lag == Some(2) && a.why_not.is_none(),
        "{a:?}"
    );
    assert_eq!(
        facts.node("b").unwrap().why_not,
        Some(NotInSync::Behind { lag: 20 })
    );
    assert_eq!(
        facts.node("c").unwrap().why_not,
        Some(NotInSync::Booting("Bootstrapping".into()))
    );
    assert_eq!(facts.node("d").unwrap().why_not, Some(NotInSync::NoAnswer));
    assert_eq!(
        facts.node("e").unwrap().why_not,
        Some(NotInSync::NotRunning(ProcessState::Fatal))
    );
    let f = facts.node("f").unwrap();
    assert_eq!(f.why_not, Some(NotInSync::Unreachable));
    assert!(!f.known && !f.up);
    assert_eq!(facts.in_sync(), 1);
    // Only a is in sync: a start of b would use its normal config, a start of a the fallback.
    assert_eq!(facts.variant_for("b"), Variant::Normal);
    assert_eq!(facts.variant_for("a"), Variant::Fallback);
    // An old reference is no reference: the best node now is.
    let (_, facts) = w.tick_all(1_000, &[running("a", 118), running("b", 100)]);
    assert_eq!((facts.reference, facts.external), (Some(118), None));
}

#[test]
fn absurd_durations_never_make_the_policy_panic() {
    let huge = Duration::MAX;
    let mut w = World::new();
    w.config.thresholds = Thresholds {
        tick_interval: huge,
        probe_timeout: huge,
        hang_timeout: huge,
        tip_timeout: huge,
        tip_diff_threshold: u64::MAX,
        bootstrap_timeout: huge,
        boot_grace: huge,
        max_restarts: u32::MAX,
        restart_window: huge,
        all_down_stagger: huge,
    };
    w.config.reference_max_age = huge;
    w.config.leader = LeaderConfig {
        enabled: true,
        switch_margin: u64::MAX,
        slot_window: u64::MAX,
        refresh_min_gap: huge,
        lookahead: huge,
        schedule_settle: huge,
        epochs_free: false,
        announce_slots: true,
    };
    w.reference = Some(ReferenceTip {
        height: u64::MAX,
        fetched_at: at(0),
    });
    let stopped = |n| program(n, ProcessState::Stopped);
    // Every rule's arithmetic is exercised: all down (stagger), crashes, booting, silence,
    // leadership windows; nothing may overflow.
    for secs in [0, 1, 2, 1_000_000] {
        w.tick(secs, &[stopped("a"), stopped("b")]);
        w.tick(
            secs + 1,
            &[program("a", ProcessState::Exited), booting("b")],
        );
        w.tick(
            secs + 2,
            &[silent(hung("a"), u64::MAX / 2), running("b", u64::MAX)],
        );
    }
}

#[test]
fn a_reference_far_ahead_of_every_local_node_is_ignored_and_said_once() {
    let mut w = World::new();
    // A plausible but wrong majority max: 200 blocks ahead of both nodes.
    w.reference = Some(ReferenceTip {
        height: 300,
        fetched_at: at(0),
    });
    let (actions, facts) = w.tick_all(0, &[running("a", 100), running("b", 99)]);
    assert_eq!(actions, ["reference 300 best 100 trusted false"]);
    assert_eq!((facts.reference, facts.external), (Some(100), None));
    assert_eq!(facts.doubted, Some((300, 100)));
    // No node is restarted for lag, however long it lasts; nothing more is said.
    for secs in 1..=120 {
        let (actions, _) = w.tick_all(
            secs,
            &[running("a", 100 + secs / 30), running("b", 99 + secs / 30)],
        );
        assert!(actions.is_empty(), "{secs}: {actions:?}");
    }
    // Within the margin (100 blocks) it counts again, and a node behind it by more than the
    // threshold is restarted.
    w.reference = Some(ReferenceTip {
        height: 125,
        fetched_at: at(130),
    });
    let (actions, facts) = w.tick_all(130, &[running("a", 104), running("b", 100)]);
    assert_eq!(facts.external, Some(125));
    assert_eq!(
        actions,
        [
            "reference 125 best 104 trusted true",
            "restart a lag fallback"
        ]
    );
}

/// A Running node whose chain dates its tip (nodeos, cardano with its genesis): its tip was made
/// at `tip_secs`.
fn dated(name: &str, height: u64, tip_secs: u64) -> NodeObservation {
    let mut node = running(name, height);
    if let Some(Ok(status)) = &mut node.probe {
        status.tip_time = Some(at(tip_secs));
    }
    node
}

/// A policy with nodeos's tip thresholds (30 s, 20 blocks).
fn nodeos_world() -> World {
    let mut w = World::new();
    w.config.thresholds.tip_timeout = Duration::from_secs(30);
    w.config.thresholds.tip_diff_threshold = 20;
    w
}

#[test]
fn a_tip_older_than_tip_timeout_is_stale_even_while_its_height_grows() {
    // One node alone, catching blocks slowly: its height grows every tick and it has no sibling
    // or reference to lag behind, but its tip is 40 s old.
    let mut w = nodeos_world();
    for secs in 100..=110 {
        // 30 s old at most: fresh enough.
        check(w.tick(secs, &[dated("b", 1000 + secs, secs - 30)]), &[]);
    }
    let (actions, facts) = w.tick_all(111, &[dated("b", 1111, 71)]);
    assert_eq!(actions, ["restart b stale_tip fallback"]);
    let b = facts.node("b").unwrap();
    assert_eq!(
        b.why_not,
        Some(NotInSync::StaleTip(Duration::from_secs(40)))
    );
    assert_eq!(
        b.stale,
        Some(Stale {
            for_: Duration::from_secs(40),
            by_height: false
        })
    );
    assert_eq!(
        Reason::StaleTip(Duration::from_secs(40)).to_string(),
        "stale tip (no new block for 40 s)"
    );
    // Without a tip time (Jormungandr), the same growing height is never stale.
    let mut w = nodeos_world();
    for secs in 100..=200 {
        check(w.tick(secs, &[running("b", 1000 + secs)]), &[]);
    }
}

#[test]
fn a_stale_tip_is_whichever_says_more_of_height_and_age() {
    let config = PolicyConfig {
        thresholds: Thresholds {
            tip_timeout: Duration::from_secs(30),
            ..Thresholds::default()
        },
        ..PolicyConfig::default()
    };
    let memory = |height: u64, since: u64| NodeMemory {
        last_height: Some(height),
        height_since: Some(at(since)),
        ..NodeMemory::default()
    };
    let now = at(100);
    let stale = |for_: u64, by_height: bool| {
        Some(Stale {
            for_: Duration::from_secs(for_),
            by_height,
        })
    };
    // Height unchanged for 35 s, tip 10 s old: stale by height.
    let fresh_tip = dated("b", 7, 90);
    assert_eq!(
        facts::stale(&config, Some(&memory(7, 65)), &fresh_tip, now),
        stale(35, true)
    );
    // Height unchanged for 35 s, tip 50 s old: the age says more, the height says so too.
    assert_eq!(
        facts::stale(&config, Some(&memory(7, 65)), &dated("b", 7, 50), now),
        stale(50, true)
    );
    // Height just changed, tip 40 s old: stale by age only.
    let old_tip = dated("b", 8, 60);
    assert_eq!(
        facts::stale(&config, Some(&memory(7, 65)), &old_tip, now),
        stale(40, false)
    );
    // Both under tip_timeout, or exactly at it: not stale.
    assert_eq!(
        facts::stale(&config, Some(&memory(7, 75)), &dated("b", 7, 70), now),
        None
    );
    // A tip time in the future (a node's clock ahead) is no age.
    assert_eq!(facts::stale(&config, None, &dated("b", 7, 200), now), None);
}

#[test]
fn a_moving_node_behind_is_restarted_for_lag_before_its_tips_age() {
    // b catches blocks but is 30 behind a: its tip is 40 s old and it lags; the restart says how
    // far behind.
    let mut w = nodeos_world();
    let (actions, facts) = w.tick_all(100, &[dated("a", 1000, 100), dated("b", 970, 60)]);
    assert_eq!(actions, ["restart b lag normal"]);
    let b = facts.node("b").unwrap();
    assert_eq!(b.why_not, Some(NotInSync::Behind { lag: 30 }));
    assert_eq!(b.stale.map(|stale| stale.by_height), Some(false));
    // A height frozen past tip_timeout is a stale tip first, however far behind.
    let mut w = nodeos_world();
    check(
        w.tick(100, &[dated("a", 1000, 100), dated("b", 990, 95)]),
        &[],
    );
    check(
        w.tick(131, &[dated("a", 1062, 131), dated("b", 990, 95)]),
        &["restart b stale_tip normal"],
    );
}

#[test]
fn a_booting_node_is_never_stale_however_old_its_tip() {
    let mut w = nodeos_world();
    // Started at 0: judged by bootstrap_timeout (650 s) alone.
    let replaying = |tip_secs: u64| {
        let mut node = started(booting("b"), 0);
        if let Some(Ok(status)) = &mut node.probe {
            status.tip_time = Some(at(tip_secs));
        }
        node
    };
    for secs in [0, 100, 600] {
        let (actions, facts) = w.tick_all(secs, &[dated("a", 5000 + secs, secs), replaying(0)]);
        assert_eq!(actions, Vec::<String>::new(), "at {secs}");
        let b = facts.node("b").unwrap();
        assert_eq!(b.stale, None);
        assert_eq!(b.why_not, Some(NotInSync::Booting("Bootstrapping".into())));
    }
}

#[test]
fn an_old_tip_waits_for_boot_grace_after_a_start() {
    // nodeos catching up after a start answers with an old head: judged after boot grace (60 s).
    let mut w = nodeos_world();
    let catching_up = |secs: u64| started(dated("b", 1000 + secs * 50, secs / 2), 0);
    for secs in 1..=59 {
        check(w.tick(secs, &[catching_up(secs)]), &[]);
    }
    check(
        w.tick(61, &[catching_up(61)]),
        &["restart b stale_tip fallback"],
    );
}

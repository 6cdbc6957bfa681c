//! Table tests of the leadership policy: plain observations in, actions out, one rule per test.
//!
//! The chain: 2 s slots, 150 slots per epoch (300 s epochs); epoch 100 starts at `at(0)`, so the
//! pool slot at `at(s)` is `100.(s/2)` and epoch 101 starts at `at(300)`. With `slot_window` 3
//! (6 s either side) and `lookahead` 3 s, a slot at `at(t)` is near for ticks in `t-9 ..= t+6`.

use std::collections::BTreeSet;
use std::time::Duration;

use super::leader::{GuardWhy, guard};
use super::tests::{at, program, show, status};
use super::*;
use crate::chain::{BootVerdict, Holding, NodeState, ProbeError};
use crate::slots::{SlotClock, SlotDate};
use crate::supervisor::ProcessState;

const EPOCH: u64 = 100;
const SLOTS_PER_EPOCH: u64 = 150;

fn clock() -> SlotClock {
    SlotClock::new(
        at(0) - Duration::from_secs(EPOCH * SLOTS_PER_EPOCH * 2),
        Duration::from_secs(2),
        SLOTS_PER_EPOCH,
    )
    .expect("valid clock")
}

/// The slot that starts at `at(secs)`.
fn slot_at(secs: u64) -> SlotDate {
    clock().date_at(at(secs))
}

/// Running at `height`, its `GET /leaders` answered `[]`.
fn passive(name: &str, height: u64) -> NodeObservation {
    NodeObservation {
        probe: Some(Ok(status(NodeState::Running, Some(height)))),
        leadership: LeaderView {
            holding: Some(Ok(Holding::passive())),
            schedule: None,
        },
        ..program(name, ProcessState::Running)
    }
}

/// Running at `height`, holding leader id 1.
fn holder(name: &str, height: u64) -> NodeObservation {
    with_keys(passive(name, height), Ok(vec![1]))
}

/// Running at `height`, its `GET /leaders` timed out.
fn api_failing(name: &str, height: u64) -> NodeObservation {
    with_keys(
        passive(name, height),
        Err(ProbeError::Timeout(Duration::from_secs(1))),
    )
}

/// The program is RUNNING, its REST API does not answer (leader endpoints not asked).
fn hung(name: &str) -> NodeObservation {
    NodeObservation {
        probe: Some(Err(ProbeError::Timeout(Duration::from_secs(1)))),
        ..program(name, ProcessState::Running)
    }
}

/// Bootstrapping, in a process started at `at(since)`.
fn booting(name: &str, since: u64) -> NodeObservation {
    started(
        NodeObservation {
            probe: Some(Ok(status(NodeState::Booting("Bootstrapping".into()), None))),
            ..program(name, ProcessState::Running)
        },
        since,
    )
}

/// Back to bootstrapping in the process that was Running (started long ago, like `program`'s).
fn fell_back(name: &str) -> NodeObservation {
    NodeObservation {
        probe: Some(Ok(status(NodeState::Booting("Bootstrapping".into()), None))),
        ..program(name, ProcessState::Running)
    }
}

fn started(mut node: NodeObservation, secs: u64) -> NodeObservation {
    if let ProgramSeen::Known(view) = &mut node.program {
        view.started_at = Some(at(secs));
    }
    node
}

fn with_keys(mut node: NodeObservation, keys: Result<Vec<u32>, ProbeError>) -> NodeObservation {
    node.leadership.holding = Some(keys.map(Holding));
    node
}

/// Its `GET /leaders/logs` lists these dates.
fn scheduled(mut node: NodeObservation, dates: &[SlotDate]) -> NodeObservation {
    node.leadership.schedule = Some(dates.to_vec());
    node
}

fn config() -> PolicyConfig {
    PolicyConfig {
        leader: LeaderConfig {
            enabled: true,
            switch_margin: 3,
            slot_window: 3,
            refresh_min_gap: Duration::from_secs(60),
            lookahead: Duration::from_secs(3),
            schedule_settle: Duration::from_secs(10),
            epochs_free: false,
            announce_slots: true,
        },
        ..PolicyConfig::default()
    }
}

/// The policy over simulated chain time.
struct World {
    config: PolicyConfig,
    /// The nodes whose adapters say they boot with the secret (the others: they do not).
    boots_with_secret: BTreeSet<String>,
    state: PolicyState,
    /// The chain's time as read this tick (`None`: no node's settings read).
    chain: Option<SlotClock>,
    leader_job: bool,
    cluster: Option<crate::cluster::rules::Gate>,
    /// The last tick's actions, unrendered (but the boot verdicts).
    last: Vec<Action>,
    /// The last tick's boot verdicts.
    verdicts: Vec<Action>,
}

impl World {
    fn new(boots_with_secret: &[&str]) -> World {
        World {
            config: config(),
            boots_with_secret: boots_with_secret.iter().map(ToString::to_string).collect(),
            state: PolicyState::default(),
            chain: Some(clock()),
            leader_job: false,
            cluster: None,
            last: Vec::new(),
            verdicts: Vec::new(),
        }
    }

    /// One tick at `at(secs)`, the actions rendered by `tests::show`.
    fn tick(&mut self, secs: u64, nodes: &[NodeObservation]) -> Vec<String> {
        let observation = Observation {
            now: at(secs),
            nodes: nodes
                .iter()
                .map(|node| {
                    let mut node = node.clone();
                    if node.boot == BootVerdict::default() {
                        let with_key = self.boots_with_secret.contains(&node.name);
                        node.boot = BootVerdict::new(Some(with_key), "as the test says");
                    }
                    node
                })
                .collect(),
            reference: None,
            chain: self.chain,
            leader_job: self.leader_job,
            cluster: self.cluster.clone(),
        };
        self.last = decide(&self.config, &mut self.state, &observation).actions;
        // What is concluded about boots is a report, kept apart.
        let (verdicts, rest) = std::mem::take(&mut self.last)
            .into_iter()
            .partition(|action| matches!(action, Action::BootVerdict { .. }));
        self.verdicts = verdicts;
        self.last = rest;
        // Recoveries are reports with tests of their own (`tests.rs`).
        self.last
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

    /// The reasons of the last tick's `Waiting` actions about `node`.
    fn waits(&self, node: &str) -> Vec<String> {
        self.last
            .iter()
            .filter_map(|action| match action {
                Action::Waiting { node: n, why } if n == node => Some(why.clone()),
                _ => None,
            })
            .collect()
    }

    /// The reason of the last tick's hand-over, if any.
    fn handover_why(&self) -> Option<String> {
        self.last.iter().find_map(|action| match action {
            Action::HandOver { why, .. } => Some(why.clone()),
            _ => None,
        })
    }
}

#[track_caller]
fn check(actual: Vec<String>, expected: &[&str]) {
    assert_eq!(actual, expected);
}

#[track_caller]
fn check_wait(world: &World, node: &str, mentions: &str) {
    let waits = world.waits(node);
    assert!(
        waits.iter().any(|why| why.contains(mentions)),
        "expected a wait of {node} mentioning {mentions:?}, got {waits:?} in {:?}",
        world.last
    );
}

// ----- Promotion when no node holds the key -----

#[test]
fn with_no_holder_the_highest_in_sync_node_is_promoted_ties_in_config_order() {
    for (nodes, expected) in [
        (vec![passive("b", 1000), passive("a", 1002)], "promote a"),
        (vec![passive("a", 1002), passive("b", 1000)], "promote a"),
        // Equal heights: the first in configuration order, not by name.
        (vec![passive("b", 1000), passive("a", 1000)], "promote b"),
        (
            vec![passive("c", 1000), passive("b", 1001), passive("a", 1001)],
            "promote b",
        ),
    ] {
        let mut w = World::new(&[]);
        check(w.tick(10, &nodes), &[expected]);
        assert!(
            matches!(&w.last[0], Action::HandOver { from: None, .. }),
            "{:?}",
            w.last
        );
        assert_eq!(w.handover_why().as_deref(), Some("no node holds the key"));
    }
}

#[test]
fn with_no_holder_promotion_waits_for_a_window_to_pass() {
    let mut w = World::new(&[]);
    // Epoch 100 started at 0: its rollover window lasts until 6.
    check(w.tick(3, &[passive("a", 1000)]), &["wait a"]);
    check_wait(&w, "a", "rollover to epoch 100");
    // The same reason is not reported again.
    check(w.tick(4, &[passive("a", 1000)]), &[]);
    check(w.tick(6, &[passive("a", 1000)]), &[]);
    check(w.tick(7, &[passive("a", 1000)]), &["promote a"]);

    // A pool slot at 100 (known from a node's logs): near from 91 to 106.
    let sched = |node| scheduled(node, &[slot_at(100)]);
    let mut w = World::new(&[]);
    check(w.tick(90, &[sched(passive("a", 1000))]), &["promote a"]);
    let mut w = World::new(&[]);
    check(w.tick(91, &[sched(passive("a", 1000))]), &["wait a"]);
    check_wait(&w, "a", "pool slot 100.50 is near");
    check(w.tick(106, &[sched(passive("a", 1000))]), &[]);
    check(w.tick(107, &[sched(passive("a", 1000))]), &["promote a"]);
}

#[test]
fn without_chain_time_nothing_is_promoted() {
    let mut w = World::new(&[]);
    w.chain = None;
    check(w.tick(10, &[passive("a", 1000)]), &["wait a"]);
    check_wait(&w, "a", "chain time unknown");
    w.chain = Some(clock());
    check(w.tick(11, &[passive("a", 1000)]), &["promote a"]);
}

#[test]
fn a_hand_over_in_flight_blocks_another() {
    let mut w = World::new(&[]);
    w.leader_job = true;
    check(w.tick(10, &[passive("a", 1000)]), &["wait a"]);
    check_wait(&w, "a", "hand-over is in flight");
    w.leader_job = false;
    check(w.tick(11, &[passive("a", 1000)]), &["promote a"]);
}

// ----- A leader holds the key -----

#[test]
fn a_leader_is_replaced_only_by_a_node_switch_margin_ahead() {
    for (b_height, expected) in [
        (995, vec![]),
        (1000, vec![]),
        (1002, vec![]),
        (1003, vec!["handover a -> b"]),
        (1006, vec!["handover a -> b"]),
    ] {
        let mut w = World::new(&[]);
        // a holds the key though b is first in configuration order.
        check(
            w.tick(10, &[passive("b", b_height), holder("a", 1000)]),
            &expected,
        );
        if !expected.is_empty() {
            assert_eq!(
                w.last[0],
                Action::HandOver {
                    from: Some(("a".into(), Holding(vec![1]))),
                    to: "b".into(),
                    why: format!("b is {} blocks ahead of a", b_height - 1000),
                    vouched: vec![],
                }
            );
        }
    }
}

#[test]
fn an_out_of_sync_leader_is_handed_over_but_not_inside_a_window() {
    // (the window's first ticks, a tick after it, whether the leader's logs show the pool slot)
    for (first, second, after, with_slot) in [(95, 96, 107, true), (295, 296, 307, false)] {
        let a = |h| {
            if with_slot {
                scheduled(holder("a", h), &[slot_at(100)])
            } else {
                holder("a", h)
            }
        };
        let mut w = World::new(&[]);
        // a lags 10 blocks behind b: its lag restart and the hand-over both wait.
        let expected: &[&str] = if with_slot {
            &["wait a", "slots 100 1", "wait b"]
        } else {
            &["wait a", "wait b"]
        };
        check(w.tick(first, &[a(990), passive("b", 1000)]), expected);
        check_wait(&w, "a", "it holds the leader key");
        check_wait(&w, "b", "promotion of b waits");
        check(w.tick(second, &[a(990), passive("b", 1000)]), &[]);
        // After the window: handed over; a's restart waits for the hand-over to complete.
        check(
            w.tick(after, &[a(990), passive("b", 1000)]),
            &["wait a", "handover a -> b"],
        );
        check_wait(&w, "a", "moves to another node first");
        assert_eq!(w.handover_why().as_deref(), Some("a is not in sync"));
    }
}

#[test]
fn a_leader_whose_keys_are_unknown_is_not_handed_over() {
    let mut w = World::new(&[]);
    check(w.tick(10, &[holder("a", 1000), passive("b", 1000)]), &[]);
    // a's `GET /leaders` times out while b pulls ahead: a cannot be demoted, b must wait.
    check(
        w.tick(11, &[api_failing("a", 1000), passive("b", 1005)]),
        &["wait b"],
    );
    check_wait(&w, "b", "a may hold the key");
    check(
        w.tick(12, &[holder("a", 1000), passive("b", 1005)]),
        &["handover a -> b"],
    );
}

#[test]
fn a_node_with_this_epochs_schedule_is_preferred_to_a_leader_without_it() {
    let slot = slot_at(200);
    // Equal heights; only b's logs show the pool slot ahead: handed over without the margin.
    let mut w = World::new(&[]);
    w.state.leadership.announced_epoch = Some(EPOCH);
    check(
        w.tick(
            20,
            &[
                scheduled(holder("a", 1000), &[]),
                scheduled(passive("b", 1000), &[slot]),
            ],
        ),
        &["handover a -> b"],
    );
    assert_eq!(
        w.handover_why().as_deref(),
        Some("a lacks this epoch's schedule")
    );
    // No hand-over for it once the slot passed.
    let mut w = World::new(&[]);
    w.state.leadership.announced_epoch = Some(EPOCH);
    check(
        w.tick(
            210,
            &[
                scheduled(holder("a", 1000), &[]),
                scheduled(passive("b", 1000), &[slot]),
            ],
        ),
        &[],
    );
    // With no holder, the node with the schedule wins over a higher one.
    let mut w = World::new(&[]);
    check(
        w.tick(
            20,
            &[
                scheduled(passive("a", 1005), &[]),
                scheduled(passive("b", 1000), &[slot]),
            ],
        ),
        &["promote b"],
    );
}

// ----- Extra holders -----

#[test]
fn extra_holders_are_demoted_at_once_even_inside_a_window() {
    // a leads; b comes up holding the key too (booted with `--secret`) inside the rollover window.
    let mut w = World::new(&["b"]);
    check(w.tick(290, &[passive("b", 1000), holder("a", 1000)]), &[]);
    check(
        w.tick(295, &[holder("b", 1001), holder("a", 1001)]),
        &["demote b [1]"],
    );
    // The remembered leader is kept even if the newcomer is first in config order and higher.
    check(
        w.tick(296, &[holder("b", 1003), holder("a", 1001)]),
        &["demote b [1]"],
    );

    // Nobody remembered: the first in configuration order keeps it.
    let mut w = World::new(&[]);
    check(
        w.tick(
            10,
            &[holder("b", 1000), holder("a", 1000), passive("c", 1000)],
        ),
        &["demote a [1]"],
    );
    // A remembered leader out of sync gives way to an in-sync holder (its own lag restart
    // removes its key).
    let mut w = World::new(&[]);
    check(w.tick(10, &[holder("b", 1000), passive("a", 1000)]), &[]);
    check(
        w.tick(11, &[holder("b", 990), holder("a", 1000)]),
        &["restart b lag normal"],
    );
    assert_eq!(w.state.leadership.leader.as_deref(), Some("a"));
}

#[test]
fn an_extra_holder_blocks_a_hand_over_until_it_is_demoted() {
    let mut w = World::new(&[]);
    check(
        w.tick(
            10,
            &[holder("a", 1000), passive("b", 1005), holder("c", 1000)],
        ),
        &["demote c [1]", "wait b"],
    );
    check_wait(&w, "b", "c may hold the key");
    check(
        w.tick(
            11,
            &[holder("a", 1000), passive("b", 1005), passive("c", 1000)],
        ),
        &["handover a -> b"],
    );
}

// ----- Who may hold the key -----

#[test]
fn a_node_that_may_hold_the_key_blocks_promotion_of_another() {
    let busy = NodeObservation {
        busy: true,
        ..passive("b", 1000)
    };
    let unreachable = NodeObservation {
        program: ProgramSeen::Unreachable,
        ..program("b", ProcessState::Running)
    };
    for b in [
        api_failing("b", 1000),
        hung("b"),
        unreachable,
        busy,
        // Running, probe refused (not yet serving REST? or dead): may hold.
        NodeObservation {
            probe: Some(Err(ProbeError::Connect("reset".into()))),
            ..program("b", ProcessState::Running)
        },
    ] {
        let mut w = World::new(&[]);
        check(w.tick(10, &[passive("a", 1000), b.clone()]), &["wait a"]);
        check_wait(&w, "a", "b may hold the key");
    }
}

#[test]
fn a_stopped_crashed_or_freshly_booting_node_does_not_block_promotion() {
    let mut w = World::new(&[]);
    // Stopped by an operator (held: left alone).
    w.state.hold("b", at(0));
    check(
        w.tick(
            10,
            &[passive("a", 1000), program("b", ProcessState::Stopped)],
        ),
        &["promote a"],
    );

    let mut w = World::new(&[]);
    check(
        w.tick(
            10,
            &[passive("a", 1000), program("b", ProcessState::Exited)],
        ),
        &["start b crashed normal", "promote a"],
    );

    // A new process that is still bootstrapping holds no key yet.
    for b in [
        booting("b", 5),
        started(program("b", ProcessState::Starting), 5),
        NodeObservation {
            probe: Some(Err(ProbeError::Refused)),
            ..started(program("b", ProcessState::Running), 5)
        },
    ] {
        let mut w = World::new(&[]);
        check(w.tick(10, &[passive("a", 1000), b]), &["promote a"]);
    }
}

#[test]
fn a_leader_that_falls_back_to_bootstrapping_keeps_the_key_and_is_restarted() {
    let mut w = World::new(&[]);
    check(w.tick(10, &[holder("a", 1000), passive("b", 1000)]), &[]);
    // Same process (started long ago): its enclave survives. Not promoting b over it; restart a.
    check(
        w.tick(11, &[fell_back("a"), passive("b", 1001)]),
        &["restart a leader_unfit normal"],
    );

    // Inside a window: no restart of the leader, no promotion.
    let mut w = World::new(&[]);
    check(w.tick(290, &[holder("a", 1000), passive("b", 1000)]), &[]);
    check(
        w.tick(295, &[fell_back("a"), passive("b", 1001)]),
        &["wait b"],
    );
    check_wait(&w, "b", "rollover to epoch 101");
    check(
        w.tick(307, &[fell_back("a"), passive("b", 1002)]),
        &["restart a leader_unfit normal"],
    );
}

#[test]
fn a_leader_that_keeps_falling_back_is_held_by_storm_protection() {
    // Each restart of the unfit leader counts: at max_restarts within the window it is held,
    // not restarted forever.
    let mut w = World::new(&[]);
    w.config.thresholds.max_restarts = 3;
    check(w.tick(10, &[holder("a", 1000), passive("b", 1000)]), &[]);
    let mut restarts = 0;
    for secs in 11..20 {
        let actions = w.tick(secs, &[fell_back("a"), passive("b", 1001)]);
        if actions == ["restart a leader_unfit normal"] {
            restarts += 1;
        } else {
            assert!(
                w.last.iter().any(|action| matches!(
                    action,
                    Action::Held { node, reason: HoldReason::Storm { restarts: 3, .. } } if node == "a"
                )),
                "{actions:?}"
            );
            break;
        }
    }
    assert_eq!(restarts, 3);
}

// ----- The slot guard: nodes booting with the secret -----

#[test]
fn near_a_window_a_node_booting_with_the_secret_is_parked_then_started_after_it() {
    let slot = slot_at(100);
    let a = || scheduled(holder("a", 1000), &[slot]);
    let mut w = World::new(&["b"]);
    // b boots with the secret, c does not: only b could come up as a second leader.
    check(
        w.tick(95, &[a(), booting("b", 90), booting("c", 90)]),
        &["slots 100 1", "stop b slot_guard"],
    );
    let stopped = || program("b", ProcessState::Stopped);
    check(w.tick(96, &[a(), stopped(), booting("c", 90)]), &["wait b"]);
    check_wait(&w, "b", "could come up as a second leader");
    check(w.tick(100, &[a(), stopped(), booting("c", 90)]), &[]);
    check(w.tick(106, &[a(), stopped(), booting("c", 90)]), &[]);
    check(
        w.tick(107, &[a(), stopped(), booting("c", 90)]),
        &["start b slot_guard normal"],
    );
    assert!(w.state.leadership.parked.is_empty());

    // Outside a window it keeps booting.
    let mut w = World::new(&["b"]);
    check(w.tick(50, &[a(), booting("b", 45)]), &["slots 100 1"]);
    // On a chain whose epochs are short rounds with the same turns (nodeos), nothing is announced.
    let mut w = World::new(&["b"]);
    w.config.leader.announce_slots = false;
    check(w.tick(50, &[a(), booting("b", 45)]), &[]);
}

#[test]
fn near_a_window_a_crashed_node_with_the_secret_waits_others_start_at_once() {
    let slot = slot_at(100);
    let a = || scheduled(holder("a", 1000), &[slot]);
    let mut w = World::new(&["b"]);
    check(
        w.tick(
            95,
            &[
                a(),
                program("b", ProcessState::Exited),
                program("c", ProcessState::Exited),
            ],
        ),
        &["wait b", "start c crashed normal", "slots 100 1"],
    );
    check_wait(&w, "b", "may boot holding the leader key");
    check(
        w.tick(
            96,
            &[a(), program("b", ProcessState::Exited), booting("c", 95)],
        ),
        &[],
    );
    check(
        w.tick(
            107,
            &[a(), program("b", ProcessState::Exited), booting("c", 95)],
        ),
        &["start b crashed normal"],
    );
}

/// Whether `node` may boot holding the key, with the adapter's `verdict` and a boot's `evidence`.
fn boot_conclusion(verdict: Option<bool>, evidence: Option<bool>) -> bool {
    let node = NodeObservation {
        boot: BootVerdict::new(verdict, "why"),
        ..program("n", ProcessState::Running)
    };
    let evidence = evidence.map(|with_key| leader::BootEvidence {
        started: None,
        with_key,
    });
    leader::boots_with_key(&node, evidence.as_ref()).0
}

#[test]
fn a_node_may_boot_with_the_key_unless_nodekeeper_knows_otherwise() {
    // (what the adapter tells, what its last boot showed) -> may boot holding the key
    for (verdict, evidence, may) in [
        (Some(true), None, true),
        (Some(true), Some(false), true),
        (Some(false), None, false),
        (Some(false), Some(true), true),
        (None, None, true),
        (None, Some(false), false),
        (None, Some(true), true),
    ] {
        assert_eq!(
            boot_conclusion(verdict, evidence),
            may,
            "verdict {verdict:?} evidence {evidence:?}"
        );
    }
}

/// A node under a wrapper script (jmanager's `jgstart.sh` passes `--secret`): its adapter cannot
/// tell from supervisord's command line.
fn wrapped(mut node: NodeObservation) -> NodeObservation {
    node.boot = BootVerdict::new(None, "its supervisord command runs \"jgstart.sh\"");
    node
}

#[test]
fn a_crashed_node_under_a_wrapper_waits_near_a_slot_until_a_boot_shows_it_passive() {
    let slot = slot_at(100);
    let a = || scheduled(holder("a", 1000), &[slot]);
    // Nobody boots with the secret as far as the configuration says (args = []).
    let mut w = World::new(&[]);
    check(
        w.tick(95, &[a(), wrapped(program("b", ProcessState::Exited))]),
        &["wait b", "slots 100 1"],
    );
    check_wait(&w, "b", "may boot holding the leader key");
    assert!(
        w.verdicts.iter().any(|v| matches!(v,
            Action::BootVerdict { node, with_key: true, why } if node == "b" && why.contains("jgstart.sh"))),
        "{:?}",
        w.verdicts
    );
    // After the window it starts, boots, and comes up without the key: from then on it is known.
    check(
        w.tick(107, &[a(), wrapped(program("b", ProcessState::Exited))]),
        &["start b crashed normal"],
    );
    let b_booting = || wrapped(started(program("b", ProcessState::Starting), 107));
    check(w.tick(108, &[a(), b_booting()]), &[]);
    let b_up = || wrapped(started(passive("b", 1000), 107));
    check(w.tick(110, &[a(), b_up()]), &[]);
    assert!(
        w.verdicts.iter().any(|v| matches!(v,
            Action::BootVerdict { node, with_key: false, why } if node == "b" && why.contains("without the key"))),
        "{:?}",
        w.verdicts
    );
    // Near the next slot, its crash is restarted at once.
    let next = slot_at(200);
    let a = || scheduled(holder("a", 1000), &[slot, next]);
    let actions = w.tick(
        195,
        &[
            a(),
            wrapped(started(program("b", ProcessState::Exited), 107)),
        ],
    );
    assert!(
        actions.iter().any(|a| a.starts_with("start b crashed")),
        "{actions:?}"
    );
    assert!(w.waits("b").is_empty(), "{:?}", w.last);

    // A wrapper whose boot came up holding the key stays guarded.
    let mut w = World::new(&[]);
    w.tick(
        10,
        &[
            a(),
            wrapped(started(program("b", ProcessState::Starting), 10)),
        ],
    );
    w.tick(12, &[a(), wrapped(started(holder("b", 1000), 10))]);
    check(
        w.tick(
            95,
            &[
                a(),
                wrapped(started(program("b", ProcessState::Exited), 10)),
            ],
        ),
        &["wait b"],
    );
}

#[test]
fn a_crashed_secret_node_starts_inside_a_window_when_no_node_may_hold_the_key() {
    let mut w = World::new(&["b"]);
    check(
        w.tick(295, &[program("b", ProcessState::Exited)]),
        &["start b crashed fallback"],
    );
}

// ----- Restarts of the leader -----

#[test]
fn a_sync_rule_restart_of_the_leader_waits_for_a_window() {
    let slot = slot_at(100);
    let a = || scheduled(holder("a", 1000), &[slot]);
    let mut w = World::new(&["a"]);
    check(w.tick(7, &[a()]), &["slots 100 1"]);
    // No new block for 91 s: stale tip, but the pool slot at 100 is near.
    check(w.tick(98, &[a()]), &["wait a"]);
    check_wait(&w, "a", "stale tip");
    check_wait(&w, "a", "pool slot 100.50 is near");
    check(w.tick(107, &[a()]), &["restart a stale_tip fallback"]);
}

#[test]
fn a_crashed_or_hung_leader_is_restarted_at_once_even_inside_a_window() {
    let slot = slot_at(100);
    let a = |node| scheduled(node, &[slot]);
    let mut w = World::new(&["a"]);
    check(
        w.tick(90, &[a(holder("a", 1000)), passive("b", 1000)]),
        &["slots 100 1"],
    );
    check(
        w.tick(
            95,
            &[program("a", ProcessState::Exited), passive("b", 1000)],
        ),
        &["start a crashed normal", "wait b"],
    );
    check_wait(&w, "b", "pool slot 100.50 is near");

    let mut w = World::new(&["a"]);
    check(
        w.tick(90, &[a(holder("a", 1000)), passive("b", 1000)]),
        &["slots 100 1"],
    );
    // Its REST API stops answering: b's promotion waits (a may still hold the key).
    let silent = |millis| NodeObservation {
        silent_for: Some(Duration::from_millis(millis)),
        ..hung("a")
    };
    check(w.tick(93, &[silent(500), passive("b", 1000)]), &["wait b"]);
    check(w.tick(94, &[silent(1_500), passive("b", 1000)]), &[]);
    check(
        w.tick(95, &[silent(2_500), passive("b", 1000)]),
        &["restart a hung normal"],
    );
}

// ----- Schedule refresh -----

#[test]
fn a_passive_secret_node_without_the_schedule_is_refreshed_once_per_epoch() {
    let h = |secs: u64| 1000 + secs / 10;
    let first = slot_at(200);
    let next = SlotDate {
        epoch: EPOCH + 1,
        slot: 50,
    };
    let a = |secs, dates: &[SlotDate]| scheduled(holder("a", h(secs)), dates);
    let b = |secs| scheduled(passive("b", h(secs)), &[]);
    let mut w = World::new(&["a", "b"]);
    check(
        w.tick(20, &[a(20, &[first]), b(20)]),
        &["slots 100 1", "restart b schedule_refresh normal"],
    );
    assert_eq!(
        w.last[1],
        Action::Restart {
            node: "b".into(),
            reason: Reason::ScheduleRefresh(EPOCH),
            variant: Variant::Normal,
        }
    );
    // Back up, still without it: not again this epoch.
    check(w.tick(21, &[a(21, &[first]), b(21)]), &[]);
    check(w.tick(100, &[a(100, &[first]), b(100)]), &[]);
    // The next epoch: once again.
    check(
        w.tick(320, &[a(320, &[first, next]), b(320)]),
        &["slots 101 1", "restart b schedule_refresh normal"],
    );
    check(w.tick(321, &[a(321, &[first, next]), b(321)]), &[]);
}

#[test]
fn no_schedule_refresh_when_the_next_slot_is_too_close_or_it_would_not_help() {
    let slot = slot_at(200);
    let a = || scheduled(holder("a", 1000), &[slot]);
    let lacking = |name| scheduled(passive(name, 1000), &[]);
    // The next slot 61 s away: refreshed; 60 s away (not further than refresh_min_gap): not.
    let mut w = World::new(&["b"]);
    check(
        w.tick(139, &[a(), lacking("b")]),
        &["slots 100 1", "restart b schedule_refresh normal"],
    );
    let mut w = World::new(&["b"]);
    check(w.tick(140, &[a(), lacking("b")]), &["slots 100 1"]);
    check(w.tick(190, &[a(), lacking("b")]), &[]);
    // The slot passed: no slot of this epoch ahead, nothing to refresh for.
    check(w.tick(210, &[a(), lacking("b")]), &[]);

    for (secret, b) in [
        // Not booting with the secret: a restart computes no schedule.
        (vec![], lacking("b")),
        // It has the schedule already.
        (vec!["b"], scheduled(passive("b", 1000), &[slot])),
        // Its logs were not read this tick.
        (vec!["b"], passive("b", 1000)),
        // Not in sync (and restarted for it anyway).
        (vec!["b"], scheduled(passive("b", 990), &[])),
    ] {
        let mut w = World::new(&secret);
        let actions = w.tick(20, &[a(), b]);
        assert!(
            !actions.iter().any(|a| a.contains("schedule_refresh")),
            "{actions:?}"
        );
    }

    // Inside a window (the leader's epoch-start window): no refresh.
    let mut w = World::new(&["b"]);
    check(w.tick(4, &[a(), lacking("b")]), &["slots 100 1"]);
    check(
        w.tick(7, &[a(), lacking("b")]),
        &["restart b schedule_refresh normal"],
    );
}

// ----- Schedule announcement -----

#[test]
fn slots_are_announced_once_per_epoch() {
    let h = |secs: u64| 1000 + secs / 10;
    let this = slot_at(200);
    let a = |secs, dates: &[SlotDate]| scheduled(holder("a", h(secs)), dates);
    let mut w = World::new(&["a"]);
    check(w.tick(20, &[a(20, &[this])]), &["slots 100 1"]);
    assert_eq!(
        w.last[0],
        Action::SlotsAssigned {
            node: "a".into(),
            epoch: EPOCH,
            slots: vec![this],
        }
    );
    check(w.tick(21, &[a(21, &[this])]), &[]);
    check(w.tick(250, &[a(250, &[this])]), &[]);
    // Epoch 101 without slots in the leader's logs: announced empty once settled (10 s).
    check(w.tick(303, &[a(303, &[this])]), &[]);
    check(w.tick(309, &[a(309, &[this])]), &[]);
    check(w.tick(310, &[a(310, &[this])]), &["slots 101 0"]);
    check(w.tick(311, &[a(311, &[this])]), &[]);
    // Epoch 102: its slots are announced as soon as the leader shows them.
    let d = |slot| SlotDate {
        epoch: EPOCH + 2,
        slot,
    };
    check(
        w.tick(601, &[a(601, &[d(20), d(10), d(20)])]),
        &["slots 102 2"],
    );
    assert_eq!(
        w.last[0],
        Action::SlotsAssigned {
            node: "a".into(),
            epoch: EPOCH + 2,
            slots: vec![d(10), d(20)],
        }
    );
    check(w.tick(602, &[a(602, &[d(10), d(20)])]), &[]);
}

#[test]
fn slots_are_announced_only_from_a_leader() {
    let this = slot_at(200);
    let mut w = World::new(&[]);
    // Nobody holds the key yet (promotion follows): no announcement.
    check(
        w.tick(20, &[scheduled(passive("a", 1000), &[this])]),
        &["promote a"],
    );
    w.state
        .leadership
        .record_handover("a", (true, false), &[], at(20));
    check(
        w.tick(21, &[scheduled(holder("a", 1000), &[this])]),
        &["slots 100 1"],
    );
}

// ----- Refused promotions -----

#[test]
fn a_refused_promotion_backs_the_node_off() {
    let nodes = [passive("a", 1000), passive("b", 1002)];
    let mut w = World::new(&[]);
    check(w.tick(10, &nodes), &["promote b"]);
    w.state
        .leadership
        .record_handover("b", (false, false), &[], at(10));
    // b is backed off for 2 s: the other candidate is tried.
    check(w.tick(11, &nodes), &["promote a"]);
    w.state
        .leadership
        .record_handover("a", (false, false), &[], at(11));
    check(w.tick(12, &nodes), &["promote b"]);

    // The only candidate: nothing until its back-off ends, doubling each failure.
    let nodes = [passive("b", 1000)];
    let mut w = World::new(&[]);
    check(w.tick(10, &nodes), &["promote b"]);
    w.state
        .leadership
        .record_handover("b", (false, false), &[], at(10));
    check(w.tick(11, &nodes), &[]);
    check(w.tick(12, &nodes), &["promote b"]);
    w.state
        .leadership
        .record_handover("b", (false, false), &[], at(12));
    check(w.tick(13, &nodes), &[]);
    check(w.tick(15, &nodes), &[]);
    check(w.tick(16, &nodes), &["promote b"]);
    w.state
        .leadership
        .record_handover("b", (true, false), &[], at(16));
    assert_eq!(w.state.leadership.leader.as_deref(), Some("b"));
    assert!(w.state.leadership.promotion_backoff.is_empty());
    check(w.tick(17, &[holder("b", 1000)]), &[]);
}

#[test]
fn a_refused_hand_over_leaves_the_demoted_leader_without_the_key() {
    let mut w = World::new(&[]);
    check(
        w.tick(10, &[holder("a", 1000), passive("b", 1005)]),
        &["handover a -> b"],
    );
    w.state
        .leadership
        .record_handover("b", (false, false), &["a".into()], at(10));
    assert_eq!(w.state.leadership.leader, None);
    // a was demoted and b refused: a, the only other candidate, is promoted back.
    check(
        w.tick(11, &[passive("a", 1000), passive("b", 1005)]),
        &["promote a"],
    );
}

// ----- Persistence -----

/// A daemon restart: holds and the leadership memory through their serialisation.
fn restarted(state: &PolicyState) -> PolicyState {
    let saved = serde_json::to_string(&state.leadership).expect("serialisable");
    let mut fresh = PolicyState::default();
    fresh.restore_holds(state.holds());
    fresh.leadership = serde_json::from_str(&saved).expect("round trip");
    fresh
}

#[test]
fn the_leader_memory_survives_a_daemon_restart() {
    let slot = slot_at(100);
    let mut w = World::new(&["a", "c"]);
    check(
        w.tick(
            95,
            &[
                scheduled(holder("a", 1000), &[slot]),
                passive("b", 1000),
                booting("c", 90),
            ],
        ),
        &["slots 100 1", "stop c slot_guard"],
    );
    let saved = w.state.clone();
    let before = w.state.leadership.clone();
    let fresh = restarted(&saved);
    let after = &fresh.leadership;
    assert_eq!(after.leader.as_deref(), Some("a"));
    assert_eq!(after.leader, before.leader);
    assert_eq!(after.schedule, BTreeSet::from([slot]));
    assert_eq!(after.clock, Some(clock()));
    assert_eq!(after.parked, BTreeSet::from(["c".to_string()]));
    assert_eq!(after.epoch, Some(EPOCH));
    assert_eq!(after.announced_epoch, Some(EPOCH));
    assert_eq!(after.last_slot, before.last_slot);
    assert_eq!(after.refreshed, before.refreshed);

    // The new daemon's first tick, before any node's settings are read (chain time from memory),
    // after the window: a's API hangs. Nobody is promoted while a may hold the key; the parked
    // node is started as parked, not as found stopped.
    let mut w = World {
        state: fresh,
        chain: None,
        ..World::new(&["a", "c"])
    };
    check(
        w.tick(
            107,
            &[
                hung("a"),
                passive("b", 1000),
                program("c", ProcessState::Stopped),
            ],
        ),
        &["start c slot_guard normal", "wait b"],
    );
    check_wait(&w, "b", "a may hold the key");
    // Still inside the window it would have waited for the window (the clock came from memory).
    let mut w = World {
        state: restarted(&saved),
        chain: None,
        ..World::new(&["a", "c"])
    };
    check(
        w.tick(
            100,
            &[
                hung("a"),
                passive("b", 1000),
                program("c", ProcessState::Stopped),
            ],
        ),
        &["wait c", "wait b"],
    );
    check_wait(&w, "b", "pool slot 100.50 is near");
    check_wait(&w, "c", "could come up as a second leader");
}

// ----- The guard -----

#[test]
fn guard_windows_cover_slot_window_slots_either_side() {
    let config = config().leader;
    let memory = LeaderMemory {
        clock: Some(clock()),
        schedule: BTreeSet::from([slot_at(100)]),
        ..LeaderMemory::default()
    };
    let ms = |secs: u64, millis: u64| at(secs) + Duration::from_millis(millis);
    let slot = Some(GuardWhy::Slot(slot_at(100)));
    let rollover = Some(GuardWhy::Rollover(EPOCH + 1));
    for (from, to, expected) in [
        // The slot at 100, 6 s either side.
        (at(93), at(93), None),
        (ms(93, 999), ms(93, 999), None),
        (at(94), at(94), slot.clone()),
        (at(100), at(100), slot.clone()),
        (at(106), at(106), slot.clone()),
        (ms(106, 1), ms(106, 1), None),
        // An interval that reaches into the window.
        (at(90), at(93), None),
        (at(90), at(94), slot.clone()),
        (at(80), at(120), slot.clone()),
        // The rollover to epoch 101 at 300.
        (at(293), at(293), None),
        (at(294), at(294), rollover.clone()),
        (at(299), at(299), rollover.clone()),
        (at(306), at(306), rollover.clone()),
        (at(307), at(307), None),
        (at(290), at(295), rollover.clone()),
        // The start of the current epoch (100, at 0).
        (at(6), at(6), Some(GuardWhy::Rollover(EPOCH))),
        (at(7), at(7), None),
        // Far from everything.
        (at(50), at(53), None),
    ] {
        assert_eq!(
            guard(&memory, &config, from, to),
            expected,
            "from {:?} to {:?}",
            from.duration_since(at(0)),
            to.duration_since(at(0))
        );
    }
    // A rollover is reported before a slot in the same interval.
    let near_rollover = LeaderMemory {
        schedule: BTreeSet::from([slot_at(298)]),
        ..memory.clone()
    };
    assert_eq!(
        guard(&near_rollover, &config, at(294), at(294)),
        Some(GuardWhy::Rollover(EPOCH + 1))
    );
    assert_eq!(
        guard(&near_rollover, &config, at(292), at(292)),
        Some(GuardWhy::Slot(slot_at(298)))
    );
    // A wider window.
    let wide = LeaderConfig {
        slot_window: 10,
        ..config.clone()
    };
    assert_eq!(guard(&memory, &wide, at(80), at(80)), slot);
    assert_eq!(guard(&memory, &wide, at(79), at(79)), None);
    // A chain whose epochs ask for no care (a nodeos round, a cardano epoch): no rollover
    // window, the pool's slots still guarded.
    let free = LeaderConfig {
        epochs_free: true,
        ..config.clone()
    };
    assert_eq!(
        guard(&near_rollover, &free, at(299), at(299)),
        Some(GuardWhy::Slot(slot_at(298)))
    );
    assert_eq!(guard(&memory, &free, at(299), at(306)), None);
    assert_eq!(guard(&memory, &free, at(100), at(100)), slot);
}

#[test]
fn guard_is_up_while_chain_time_is_unknown() {
    let config = config().leader;
    let memory = LeaderMemory {
        schedule: BTreeSet::from([slot_at(100)]),
        ..LeaderMemory::default()
    };
    assert_eq!(
        guard(&memory, &config, at(50), at(53)),
        Some(GuardWhy::NoClock)
    );
    assert_eq!(
        guard(&LeaderMemory::default(), &config, at(50), at(50)),
        Some(GuardWhy::NoClock)
    );
}

#[test]
fn leadership_disabled_does_nothing() {
    let mut w = World::new(&[]);
    w.config.leader.enabled = false;
    check(
        w.tick(
            95,
            &[holder("a", 1000), holder("b", 1000), passive("c", 1003)],
        ),
        &[],
    );
}

// ----- Suspected policy bugs (ignored: the test states what should happen) -----

#[test]
fn a_parked_node_stays_parked_for_the_whole_window_when_no_node_leads() {
    let slot = slot_at(100);
    let mut w = World::new(&["b", "c"]);
    let a = || scheduled(passive("a", 1000), &[slot]);
    // Nobody holds the key; b and c both boot with the secret near the slot.
    check(
        w.tick(92, &[a(), booting("b", 80), booting("c", 80)]),
        &["stop c slot_guard", "wait a"],
    );
    let stopped = || program("c", ProcessState::Stopped);
    // c must not be started while b may come up as the leader inside the window.
    let actions = w.tick(93, &[a(), booting("b", 80), stopped()]);
    assert!(
        !actions.iter().any(|a| a.starts_with("start c")),
        "{actions:?}"
    );
    let actions = w.tick(94, &[a(), booting("b", 80), stopped()]);
    assert!(
        !actions.iter().any(|a| a.starts_with("start c")),
        "{actions:?}"
    );
    // After the window it is started again.
    let actions = w.tick(107, &[a(), booting("b", 80), stopped()]);
    assert!(
        actions.contains(&"start c slot_guard normal".to_string()),
        "{actions:?}"
    );
}

#[test]
fn with_no_leader_the_node_kept_booting_is_one_that_can_lead() {
    let slot = slot_at(100);
    let mut w = World::new(&["b"]);
    // a (no secret) and b (with the secret) both boot near the slot; no node is Running.
    let actions = w.tick(
        95,
        &[scheduled(booting("a", 80), &[slot]), booting("b", 80)],
    );
    assert!(
        !actions.iter().any(|a| a.starts_with("stop b")),
        "{actions:?}"
    );
}

#[test]
fn after_a_daemon_restart_a_remembered_leader_that_is_bootstrapping_may_still_hold_the_key() {
    // a's process started at 0; promoted through the API (so not parked by the slot guard).
    let a = |node| started(node, 0);
    let mut w = World::new(&[]);
    check(
        w.tick(400, &[a(holder("a", 1000)), passive("b", 1000)]),
        &[],
    );
    // The same daemon restarts it once it falls back to bootstrapping (its enclave survives).
    let saved = w.state.clone();
    check(
        w.tick(401, &[a(fell_back("a")), passive("b", 1001)]),
        &["restart a leader_unfit normal"],
    );
    // A restarted daemon must not promote b over it either (a is bootstrapping for 401 s, within
    // bootstrap_timeout: no restart of its own).
    let mut w = World {
        state: restarted(&saved),
        ..World::new(&[])
    };
    let actions = w.tick(401, &[a(fell_back("a")), passive("b", 1001)]);
    assert!(
        !actions.iter().any(|a| a == "promote b"),
        "b promoted while a may hold the key: {actions:?}"
    );
}

#[test]
fn slots_are_not_announced_empty_while_another_node_shows_this_epochs_slots() {
    let slot = slot_at(200);
    let mut w = World::new(&[]);
    let actions = w.tick(
        20,
        &[
            scheduled(holder("a", 1000), &[]),
            scheduled(passive("b", 1000), &[slot]),
        ],
    );
    // The pool's slots are what any node's logs show: announced once, with b's slot.
    assert!(!actions.contains(&"slots 100 0".to_string()), "{actions:?}");
    assert!(actions.contains(&"slots 100 1".to_string()), "{actions:?}");
    w.state
        .leadership
        .record_handover("b", (true, false), &["a".into()], at(20));
    check(
        w.tick(
            21,
            &[
                scheduled(passive("a", 1000), &[]),
                scheduled(holder("b", 1000), &[slot]),
            ],
        ),
        &[],
    );
}

#[test]
fn a_replaced_process_that_boots_without_the_key_does_not_block_promotion() {
    // b led in its process started at 5; nodekeeper restarted it (a new process, started at 50)
    // and its API hangs. Booting without the key (nodeos --pause-on-startup, cardano
    // --start-as-non-producing-node), the new process holds nothing: a is promoted. Unknown,
    // it may hold the key: a waits.
    for (verdict, expected) in [(Some(false), "promote a"), (None, "wait a")] {
        let mut w = World::new(&[]);
        w.tick(10, &[passive("a", 1000), started(holder("b", 1000), 5)]);
        let mut b = started(hung("b"), 50);
        b.boot = BootVerdict::new(verdict, "why");
        let mut a = passive("a", 1000);
        a.boot = BootVerdict::new(Some(false), "why");
        check(w.tick(60, &[a.clone(), b.clone()]), &[expected]);
        // The conclusion holds for the whole process: a tick later, b still silent (the
        // hand-over stopped, or never ran), a is promoted again with b's silence vouched for.
        let again = w.tick(61, &[a, b]);
        assert_eq!(
            again.contains(&"promote a".to_string()),
            verdict == Some(false),
            "{again:?}"
        );
        let vouched = w.last.iter().find_map(|action| match action {
            Action::HandOver { vouched, .. } => Some(vouched.clone()),
            _ => None,
        });
        assert_eq!(
            vouched,
            (verdict == Some(false)).then(|| vec!["b".to_string()])
        );
        // Restarted again (started at 70), its first question still in flight: it is booting
        // as far as nodekeeper can tell, and still vouched for (it booted without the key).
        let mut b = started(hung("b"), 70);
        b.probe = None;
        b.boot = BootVerdict::new(verdict, "why");
        let mut a = passive("a", 1000);
        a.boot = BootVerdict::new(Some(false), "why");
        w.state.leadership.notes.clear();
        w.tick(71, &[a, b]);
        let vouched = w.last.iter().find_map(|action| match action {
            Action::HandOver { vouched, .. } => Some(vouched.clone()),
            _ => None,
        });
        assert_eq!(
            vouched,
            (verdict == Some(false)).then(|| vec!["b".to_string()]),
            "{:?}",
            w.last
        );
    }
}

#[test]
fn a_promotion_asked_for_but_not_confirmed_leaves_the_node_maybe_holding() {
    // a was read without the key, then a hand-over to it ended unconfirmed (the promotion timed
    // out): a may hold the key now. Silent, it blocks the promotion of b (waits, no second
    // leader); read again, the truth counts.
    let mut w = World::new(&[]);
    w.tick(10, &[passive("a", 1000), passive("b", 990)]);
    w.state
        .leadership
        .record_handover("a", (false, true), &[], at(11));
    assert!(
        w.tick(20, &[hung("a"), passive("b", 1000)])
            .iter()
            .all(|action| !action.starts_with("promote b")),
        "{:?}",
        w.last
    );
    // Without the promotion asked for, a's silence is vouched for (read without the key).
    let mut w = World::new(&[]);
    w.tick(10, &[passive("a", 1000), passive("b", 990)]);
    w.state
        .leadership
        .record_handover("a", (false, false), &[], at(11));
    check(w.tick(20, &[hung("a"), passive("b", 1000)]), &["promote b"]);
}

// ----- [cluster]: the instance's gate -----

fn gate(may_lead: bool, pool_passive: bool) -> Option<crate::cluster::rules::Gate> {
    Some(crate::cluster::rules::Gate {
        may_lead,
        pool_passive,
        why: (!may_lead).then(|| "another instance is elected".to_string()),
    })
}

#[test]
fn an_instance_that_may_not_lead_demotes_its_holders_and_promotes_nothing() {
    let mut w = World::new(&[]);
    w.cluster = gate(false, true);
    let actions = w.tick(10, &[holder("a", 1000), passive("b", 1000)]);
    check(actions, &["demote a [1]"]);
    assert!(
        w.last.iter().any(|a| matches!(a, Action::Demote { why, .. }
            if why.contains("this instance may not lead: another instance is elected"))),
        "{:?}",
        w.last
    );
    // Nothing held: still nothing promoted, and no wait reported (nothing of ours is a target).
    check(w.tick(11, &[passive("a", 1000), passive("b", 1000)]), &[]);
    // Elected: it leads as a single instance would.
    w.cluster = gate(true, true);
    check(
        w.tick(12, &[passive("a", 1000), passive("b", 1000)]),
        &["promote a"],
    );
}

#[test]
fn an_elected_instance_waits_while_a_node_of_another_instance_may_hold_the_key() {
    let mut w = World::new(&[]);
    w.cluster = gate(true, false);
    check(w.tick(10, &[passive("a", 1000)]), &["wait a"]);
    check_wait(&w, "a", "a node of another instance may hold the key");
    // A leader of its own keeps the key meanwhile.
    let mut w = World::new(&[]);
    w.cluster = gate(true, false);
    check(w.tick(10, &[holder("a", 1000), passive("b", 1000)]), &[]);
}

#[test]
fn after_a_host_loss_the_elected_instance_promotes_inside_a_window_when_nothing_can_produce() {
    // A pool slot at 100: near from 91 to 106. A single instance waits (a hand-over near a slot
    // could make two leaders); an instance elected after a host loss, with every other instance
    // passive and none of its own nodes holding, promotes: the slot would be lost otherwise.
    let sched = |node| scheduled(node, &[slot_at(100)]);
    let mut w = World::new(&[]);
    check(w.tick(95, &[sched(passive("a", 1000))]), &["wait a"]);
    let mut w = World::new(&[]);
    w.cluster = gate(true, true);
    check(w.tick(95, &[sched(passive("a", 1000))]), &["promote a"]);
    // Not when a node of its own may hold the key (its API does not answer).
    let mut w = World::new(&[]);
    w.cluster = gate(true, true);
    w.tick(90, &[sched(holder("b", 1000)), sched(passive("a", 1000))]);
    check(
        w.tick(
            95,
            &[sched(api_failing("b", 1000)), sched(passive("a", 1003))],
        ),
        &["wait a"],
    );
}

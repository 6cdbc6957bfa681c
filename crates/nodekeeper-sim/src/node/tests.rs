//! One simulated node over time: boot states, the leader schedule of a node booted with the secret,
//! blocks and leader events, promotions mid-epoch, demotion.

use chrono::TimeZone;

use super::*;

const BLOCK0: i64 = 1_700_000_000;

fn params() -> ChainParams {
    // 1 s slots, 20-slot epochs, 4 pool slots per epoch.
    ChainParams::try_new(BLOCK0, 1, 20, 3, 4, None).unwrap()
}

fn secret(node_id: &str) -> LeaderSecret {
    LeaderSecret::Genesis {
        sig_key: "kes".into(),
        vrf_key: "vrf".into(),
        node_id: node_id.into(),
    }
}

fn time(abs_slot: u64, millis: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(BLOCK0 + abs_slot as i64, 0).unwrap() + TimeDelta::milliseconds(millis)
}

fn node(secret: Option<LeaderSecret>, start: DateTime<Utc>) -> Node {
    Node::new(
        NodeConfig {
            name: "n1".into(),
            params: params(),
            version: "jormungandr 0.9.0-sim".into(),
            bootstrap: TimeDelta::milliseconds(500),
            secret,
        },
        start,
    )
}

/// Advances slot by slot (at 10 ms into each slot) from `from` to `to` inclusive, collecting events.
fn run(node: &mut Node, from: u64, to: u64) -> Vec<LeaderEvent> {
    (from..=to)
        .flat_map(|slot| node.advance(time(slot, 10)))
        .collect()
}

fn schedule_abs(epoch: u64) -> Vec<u64> {
    let p = params();
    p.pool_schedule(epoch)
        .into_iter()
        .map(|slot| p.abs_slot_of(BlockDate { epoch, slot }))
        .collect()
}

fn pending_dates(node: &Node) -> Vec<String> {
    node.leadership_logs()
        .into_iter()
        .filter(|log| log.status == LeaderStatus::Pending)
        .map(|log| log.scheduled_at_date)
        .collect()
}

#[test]
fn boots_through_the_states_then_runs() {
    let start = time(100, 0);
    let node = node(None, start);
    assert_eq!(node.state(start), NodeState::StartingRestServer);
    assert_eq!(
        node.state(start + TimeDelta::milliseconds(350)),
        NodeState::Bootstrapping
    );
    assert_eq!(
        node.state(start + TimeDelta::milliseconds(499)),
        NodeState::StartingWorkers
    );
    assert_eq!(
        node.state(start + TimeDelta::milliseconds(500)),
        NodeState::Running
    );
}

#[test]
fn a_node_booted_with_a_secret_schedules_the_rest_of_the_epoch() {
    // Epoch 5 covers absolute slots 100..120; start in the middle of it.
    let start = time(110, 0);
    let mut node = node(Some(secret("pool")), start);
    assert_eq!(node.leaders(), vec![1]);
    node.advance(start);
    assert!(
        node.leadership_logs().is_empty(),
        "no schedule before Running"
    );
    node.advance(time(111, 0));
    let expected: Vec<String> = schedule_abs(5)
        .into_iter()
        .filter(|abs| *abs > 111)
        .map(|abs| params().date_of(abs).to_string())
        .collect();
    assert_eq!(pending_dates(&node), expected);
    assert!(
        node.leadership_logs()
            .iter()
            .all(|log| log.enclave_leader_id == 1)
    );
}

#[test]
fn leader_slots_become_blocks_and_events_once() {
    // Running from slot 99, the last of epoch 4, so epoch 5's schedule is computed at its boundary.
    let mut node = node(Some(secret("pool")), time(98, 0));
    let events = run(&mut node, 98, 139);
    let expected: Vec<(u64, u64)> = schedule_abs(5)
        .into_iter()
        .chain(schedule_abs(6))
        .map(|abs| {
            let date = params().date_of(abs);
            (date.epoch, date.slot)
        })
        .collect();
    let got: Vec<(u64, u64)> = events.iter().map(|e| (e.epoch, e.slot)).collect();
    assert_eq!(got, expected);
    let first = &events[0];
    assert_eq!(first.height, schedule_abs(5)[0]);
    assert_eq!(first.node, "n1");
    let logs = node.leadership_logs();
    assert!(
        logs.iter()
            .all(|log| matches!(log.status, LeaderStatus::Block { .. }))
    );
    assert!(
        logs.iter()
            .all(|log| log.finished_at_time.is_some() && log.wake_at_time.is_some())
    );
    // Repeated advances in the same slot change nothing.
    assert!(node.advance(time(139, 900)).is_empty());
}

#[test]
fn a_leader_added_mid_epoch_waits_for_the_next_epoch() {
    let mut node = node(None, time(100, 0));
    run(&mut node, 100, 105);
    assert_eq!(node.add_leader(secret("pool")), 1);
    let events = run(&mut node, 106, 119);
    assert!(
        events.is_empty(),
        "no schedule for the current epoch after a mid-epoch promotion"
    );
    assert!(node.leadership_logs().is_empty());
    let events = run(&mut node, 120, 139);
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.epoch == 6));
}

#[test]
fn a_demoted_node_does_not_lead() {
    let mut node = node(Some(secret("pool")), time(99, 0));
    run(&mut node, 99, 100);
    assert!(node.remove_leader(1));
    assert!(!node.remove_leader(1));
    let events = run(&mut node, 101, 119);
    assert!(events.is_empty());
    let logs = node.leadership_logs();
    assert!(!logs.is_empty());
    assert!(logs.iter().all(
        |log| matches!(&log.status, LeaderStatus::Rejected { reason } if reason.contains("enclave"))
    ));
}

#[test]
fn leader_ids_follow_the_enclave_rules() {
    let mut node = node(None, time(0, 0));
    assert_eq!(node.add_leader(secret("a")), 1);
    assert_eq!(node.add_leader(secret("b")), 2);
    assert_eq!(node.add_leader(secret("a")), 1);
    assert!(node.remove_leader(1));
    assert_eq!(node.add_leader(secret("c")), 3);
    assert_eq!(node.leaders(), vec![2, 3]);
    assert!(node.remove_leader(3));
    assert_eq!(node.add_leader(secret("d")), 3);
}

#[test]
fn stuck_freezes_the_tip_and_rejects_slots() {
    let mut node = node(Some(secret("pool")), time(99, 0));
    run(&mut node, 99, 100);
    node.set_fault(Fault::Stuck, time(100, 500));
    let frozen = node.tip(time(100, 500));
    assert_eq!(frozen.height, 100);
    let events = run(&mut node, 101, 119);
    assert!(events.is_empty());
    assert_eq!(node.tip(time(119, 0)), frozen);
    assert_eq!(node.state(time(119, 0)), NodeState::Running);
    node.set_fault(Fault::None, time(119, 0));
    assert_eq!(node.tip(time(119, 0)).height, 119);
}

#[test]
fn lag_and_fork_shape_the_tip() {
    let mut node = node(None, time(0, 0));
    node.set_fault(Fault::Lag { blocks: 5 }, time(200, 0));
    assert_eq!(node.tip(time(210, 0)).height, 205);
    node.set_fault(Fault::Fork, time(210, 0));
    let at_fork = node.tip(time(210, 0));
    assert_eq!(at_fork, Block::main(205));
    let later = node.tip(time(240, 0));
    assert_eq!(later.height, 215);
    assert!(matches!(later.branch, Branch::Fork { .. }));
    // Setting fork again keeps the same branch.
    node.set_fault(Fault::Fork, time(240, 0));
    assert_eq!(node.tip(time(240, 0)), later);
}

#[test]
fn a_forked_leader_still_leads() {
    let mut node = node(Some(secret("pool")), time(99, 0));
    run(&mut node, 99, 100);
    node.set_fault(Fault::Fork, time(100, 100));
    let events = run(&mut node, 101, 119);
    let expected = schedule_abs(5).into_iter().filter(|abs| *abs > 100).count();
    assert_eq!(events.len(), expected);
}

#[test]
fn bootstrap_fault_hides_running_and_rejects_slots() {
    let mut node = node(Some(secret("pool")), time(99, 0));
    run(&mut node, 99, 100);
    node.set_fault(Fault::Bootstrap, time(100, 100));
    assert_eq!(node.state(time(101, 0)), NodeState::Bootstrapping);
    let events = run(&mut node, 101, 119);
    assert!(events.is_empty());
    node.set_fault(Fault::None, time(120, 0));
    assert_eq!(node.state(time(121, 0)), NodeState::Running);
    // Back to Running in epoch 6: the schedule of the rest of epoch 6 is computed as at boot.
    let events = run(&mut node, 121, 139);
    let expected = schedule_abs(6).into_iter().filter(|abs| *abs > 121).count();
    assert_eq!(events.len(), expected);
}

#[test]
fn slots_missed_while_suspended_are_rejected() {
    let mut node = node(Some(secret("pool")), time(99, 0));
    run(&mut node, 99, 100);
    // Nothing runs between slot 100 and slot 119 (think SIGSTOP).
    let events = node.advance(time(119, 10));
    let missed: Vec<_> = schedule_abs(5)
        .into_iter()
        .filter(|abs| *abs > 100 && *abs < 119)
        .collect();
    assert!(events.len() <= 1);
    let rejected = node
            .leadership_logs()
            .into_iter()
            .filter(|log| matches!(&log.status, LeaderStatus::Rejected { reason } if reason.contains("Missed")))
            .count();
    assert_eq!(rejected, missed.len());
}

#[test]
fn logs_serialise_in_the_reference_shape() {
    let mut node = node(Some(secret("pool")), time(99, 0));
    run(&mut node, 99, 119);
    let json = serde_json::to_string(&node.leadership_logs()[0]).unwrap();
    let keys = [
        "created_at_time",
        "scheduled_at_time",
        "scheduled_at_date",
        "wake_at_time",
        "finished_at_time",
        "status",
        "enclave_leader_id",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| json.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    assert!(json.contains(r#""status":{"Block":{"block":""#), "{json}");
    assert!(json.contains("+00:00"));
    let pending = serde_json::to_string(&LeaderStatus::Pending).unwrap();
    assert_eq!(pending, r#""Pending""#);
    let rejected = serde_json::to_string(&LeaderStatus::Rejected { reason: "x".into() }).unwrap();
    assert_eq!(rejected, r#"{"Rejected":{"reason":"x"}}"#);
}

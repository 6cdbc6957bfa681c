//! Integration tests of `nodekeeper run` against a real supervisord and simulated nodes: one
//! scenario per rule of the policy (crash, hung API, stale tip, lag, bootstrap timeout with the
//! fallback config, all down, boot grace, one sync restart in flight, storm, the operator's word,
//! adoption, dry run), a reference tip (PoolTool) that is down or talks garbage, a supervisord killed
//! and restarted under the daemon, and a daemon killed with SIGKILL in the middle of a restart.
//!
//! Each scenario asserts the action (through supervisord), the restart-log rows, and that healthy
//! nodes were left alone (their pids unchanged). "Nothing happens" is asserted by observing for a
//! bounded time long enough for the rule in question to have fired.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use nodekeeper::restart_log::{RestartAction, RestartRow};
use nodekeeper::supervisor::ProcessState;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

use crate::support::{DaemonConfig, FALLBACK_PEER, NORMAL_PEER, Supervisord, wait_until};

/// Long enough for anything the daemon does in these tests (a start takes startsecs = 1 s).
const WAIT: Duration = Duration::from_secs(20);
/// Twice the tip timeout: long enough for any sync rule to have fired on a node that deserved it.
const QUIET: Duration = Duration::from_secs(6);

/// The wall clock, to compare with restart-log timestamps (which are wall-clock times).
#[allow(clippy::disallowed_methods)]
fn wall_now() -> SystemTime {
    SystemTime::now()
}

/// One line per row, for assertion messages.
fn show(rows: &[RestartRow]) -> String {
    rows.iter()
        .map(|row| {
            format!(
                "{} {} {} [{}] state={} height={:?} reference={:?} exit={:?}",
                chrono::DateTime::<chrono::Utc>::from(row.timestamp).format("%H:%M:%S%.3f"),
                row.node,
                row.action,
                row.reason,
                row.supervisor_state,
                row.height,
                row.reference_height,
                row.exit_status
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until the restart log has at least `n` rows and returns them all.
async fn wait_rows(config: &DaemonConfig, n: usize) -> Vec<RestartRow> {
    wait_until(&format!("{n} restart-log rows"), WAIT, || {
        let rows = config.rows();
        async move { (rows.len() >= n).then_some(rows) }
    })
    .await
}

/// Observes for `period` that the restart log keeps exactly `n` rows.
async fn assert_rows_stay(config: &DaemonConfig, n: usize, period: Duration) {
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        let rows = config.rows();
        assert_eq!(
            rows.len(),
            n,
            "unexpected restart-log rows:\n{}",
            show(&rows)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(node, action)` of each row.
fn actions(rows: &[RestartRow]) -> Vec<(String, RestartAction)> {
    rows.iter()
        .map(|row| (row.node.clone(), row.action))
        .collect()
}

/// Waits until `node` is RUNNING with a pid other than `old_pid`, and its simulator answers in the
/// Running state; returns the new pid.
async fn wait_restarted(supervisord: &Supervisord, node: &str, old_pid: u32) -> u32 {
    let client = supervisord.client();
    let index = supervisord
        .sims
        .iter()
        .position(|sim| sim.name == node)
        .expect("a simulated node");
    let sim = &supervisord.sims[index];
    wait_until(&format!("{node} running again"), WAIT, || {
        let client = client.clone();
        async move {
            let info = client.get_process_info(node).await.ok()?;
            if info.state != ProcessState::Running || info.pid == old_pid {
                return None;
            }
            let state = sim.state().await?;
            (state["state"] == "Running").then_some(info.pid)
        }
    })
    .await
}

/// Asserts the pids of `nodes` are the ones in `before`.
async fn assert_untouched(
    supervisord: &Supervisord,
    before: &BTreeMap<String, u32>,
    nodes: &[&str],
) {
    let now = supervisord.pids().await;
    for node in nodes {
        assert_eq!(
            now[*node], before[*node],
            "{node} was restarted although healthy"
        );
        assert_ne!(now[*node], 0, "{node} is not running");
    }
}

/// Observes for `period` that `node` stays in `state`.
async fn assert_state_stays(
    supervisord: &Supervisord,
    node: &str,
    state: ProcessState,
    period: Duration,
) {
    let client = supervisord.client();
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        let info = client.get_process_info(node).await.expect("getProcessInfo");
        assert_eq!(info.state, state, "{node} left {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn secs(later: SystemTime, earlier: SystemTime) -> f64 {
    match later.duration_since(earlier) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[tokio::test]
async fn a_crashed_node_is_started_and_the_healthy_ones_are_left_alone() {
    let supervisord = Supervisord::builder().sims(3).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let _daemon = config.start(&[]).await;
    let before = supervisord.pids().await;

    supervisord.sims[1].fault(json!({"fault": "crash"})).await;
    let rows = wait_rows(&config, 1).await;
    wait_restarted(&supervisord, "node2", before["node2"]).await;

    assert_eq!(rows.len(), 1, "{}", show(&rows));
    let row = &rows[0];
    assert_eq!(
        (row.node.as_str(), row.action, row.program.as_str()),
        ("node2", RestartAction::Start, "node2")
    );
    assert_eq!(row.reason, "crashed (EXITED)");
    assert_eq!(row.supervisor_state, "EXITED");
    assert_eq!(row.exit_status, Some(1), "the crash fault exits with 1");
    assert_rows_stay(&config, 1, QUIET).await;
    assert_untouched(&supervisord, &before, &["node1", "node3"]).await;
}

#[tokio::test]
async fn a_hung_api_is_restarted_after_hang_timeout_of_silence() {
    let supervisord = Supervisord::builder().sims(3).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let _daemon = config.start(&[]).await;
    let before = supervisord.pids().await;

    let fault_at = wall_now();
    supervisord.sims[1].fault(json!({"fault": "hang"})).await;
    let rows = wait_rows(&config, 2).await;
    wait_restarted(&supervisord, "node2", before["node2"]).await;

    assert_eq!(
        actions(&rows),
        [
            ("node2".into(), RestartAction::Stop),
            ("node2".into(), RestartAction::Start)
        ],
        "{}",
        show(&rows)
    );
    for row in &rows {
        assert!(
            row.reason.starts_with("hung (no answer for 1."),
            "{}",
            row.reason
        );
        assert_eq!(row.supervisor_state, "RUNNING");
    }
    // Silent for hang_timeout (1.5 s) from the first question after the hang, and not much more.
    let after = secs(rows[0].timestamp, fault_at);
    assert!(
        (1.4..3.0).contains(&after),
        "restarted {after:.2} s after the hang (hang_timeout 1.5 s, tick 200 ms)"
    );
    assert_rows_stay(&config, 2, QUIET).await;
    assert_untouched(&supervisord, &before, &["node1", "node3"]).await;
}

#[tokio::test]
async fn stale_tips_are_restarted_one_sync_restart_at_a_time() {
    let supervisord = Supervisord::builder().sims(3).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let _daemon = config.start(&[]).await;
    let before = supervisord.pids().await;

    let fault_at = wall_now();
    supervisord.sims[1].fault(json!({"fault": "stuck"})).await;
    supervisord.sims[2].fault(json!({"fault": "stuck"})).await;
    let rows = wait_rows(&config, 4).await;
    wait_restarted(&supervisord, "node2", before["node2"]).await;
    wait_restarted(&supervisord, "node3", before["node3"]).await;

    assert_eq!(
        actions(&rows),
        [
            ("node2".into(), RestartAction::Stop),
            ("node2".into(), RestartAction::Start),
            ("node3".into(), RestartAction::Stop),
            ("node3".into(), RestartAction::Start),
        ],
        "{}",
        show(&rows)
    );
    for row in &rows {
        assert!(
            row.reason.starts_with("stale tip (no new block for "),
            "{}",
            show(&rows)
        );
    }
    // The frozen tip may have been first seen up to one slot (1 s) before the fault.
    let first = secs(rows[0].timestamp, fault_at);
    assert!(
        first >= 1.9,
        "node2 restarted {first:.2} s after it got stuck: before tip_timeout"
    );
    // node3 was stale at the same moment but waited for node2 to be back in sync (its start takes
    // startsecs = 1 s).
    let gap = secs(rows[2].timestamp, rows[0].timestamp);
    assert!(
        gap >= 1.0,
        "node3 restarted {gap:.2} s after node2: two sync restarts in flight"
    );
    assert_rows_stay(&config, 4, QUIET).await;
    assert_untouched(&supervisord, &before, &["node1"]).await;
}

#[tokio::test]
async fn a_lagging_node_is_restarted_but_only_after_boot_grace() {
    let supervisord = Supervisord::builder().sims(3).start().await;
    let config = DaemonConfig::write(&supervisord, json!({"thresholds": {"boot_grace": "4s"}}));
    let _daemon = config.start(&[]).await;
    let before = supervisord.pids().await;

    // The lag outlives the restart: the new process starts 20 blocks behind (the control file is
    // read before it serves), so it is never in sync within its boot grace.
    supervisord.set_control("node2", "lag 20");
    let rows = wait_rows(&config, 2).await;
    let pid = wait_restarted(&supervisord, "node2", before["node2"]).await;
    let rows_then = wait_rows(&config, 4).await;
    let third = wait_restarted(&supervisord, "node2", pid).await;
    // The third process starts lagging too; it is given its grace, and caught up within it.
    supervisord.sims[1].fault(json!({"fault": "none"})).await;
    assert_ne!(third, pid);

    assert_eq!(rows.len(), 2, "{}", show(&rows_then));
    assert_eq!(
        actions(&rows_then),
        [
            ("node2".into(), RestartAction::Stop),
            ("node2".into(), RestartAction::Start),
            ("node2".into(), RestartAction::Stop),
            ("node2".into(), RestartAction::Start),
        ],
        "{}",
        show(&rows_then)
    );
    for row in &rows_then {
        assert!(
            row.reason.starts_with("lag (height "),
            "{}",
            show(&rows_then)
        );
        let (height, reference) = (row.height.unwrap(), row.reference_height.unwrap());
        assert!(
            (19..=21).contains(&(reference - height)),
            "20 blocks behind expected:\n{}",
            show(&rows_then)
        );
        assert!(
            row.reason
                .ends_with(&format!("{} behind)", reference - height))
        );
    }
    // The second restart waited for boot grace (4 s) after the first, although the new process
    // lagged from its start.
    let gap = secs(rows_then[2].timestamp, rows_then[0].timestamp);
    assert!(
        gap >= 3.9,
        "restarted again {gap:.2} s after the first restart: within boot grace"
    );
    assert_rows_stay(&config, 4, QUIET).await;
    assert_untouched(&supervisord, &before, &["node1", "node3"]).await;
}

#[tokio::test]
async fn bootstrap_timeout_without_a_synced_sibling_uses_the_fallback_config_until_one_is_back() {
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let daemon = config.start(&[]).await;
    let client = supervisord.client();
    assert_eq!(config.trusted_peers("node1").unwrap(), [NORMAL_PEER]);

    // The operator stops node2: it is held, so node1 has no sibling in sync.
    client.stop_process("node2", true).await.unwrap();
    daemon
        .wait_for_log("holding the node: stopped outside nodekeeper", WAIT)
        .await;
    let before = supervisord.pids().await;
    supervisord.sims[0]
        .fault(json!({"fault": "bootstrap"}))
        .await;
    let rows = wait_rows(&config, 2).await;
    let pid = wait_restarted(&supervisord, "node1", before["node1"]).await;

    assert_eq!(
        actions(&rows),
        [
            ("node1".into(), RestartAction::Stop),
            ("node1".into(), RestartAction::Start)
        ],
        "{}",
        show(&rows)
    );
    for row in &rows {
        assert!(
            row.reason
                .starts_with("bootstrap timeout (bootstrapping for "),
            "{}",
            show(&rows)
        );
    }
    // Restarted on the default config, and kept on it while no sibling is up.
    assert_eq!(config.trusted_peers("node1").unwrap(), [FALLBACK_PEER]);
    assert_eq!(config.node_status("node1").await["variant"], "fallback");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert_eq!(config.trusted_peers("node1").unwrap(), [FALLBACK_PEER]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The operator starts node2 again: once it is in sync, node1's file goes back to normal,
    // without restarting node1.
    client.start_process("node2", true).await.unwrap();
    daemon
        .wait_for_log(
            "hold ended: the program was started outside nodekeeper",
            WAIT,
        )
        .await;
    wait_until("node1's normal config", WAIT, || {
        let peers = config.trusted_peers("node1");
        async move { (peers? == [NORMAL_PEER]).then_some(()) }
    })
    .await;
    assert_eq!(config.node_status("node1").await["variant"], "normal");
    assert_eq!(config.trusted_peers("node2").unwrap(), [NORMAL_PEER]);
    assert_eq!(
        supervisord.pids().await["node1"],
        pid,
        "node1 restarted for its config"
    );
    assert_rows_stay(&config, 2, Duration::from_secs(2)).await;
}

/// The bootstrap timeout counts from when the node began bootstrapping, not from its start: a
/// node that ran for a while and fell back to Bootstrapping gets `bootstrap_timeout` to recover.
#[tokio::test]
async fn bootstrap_timeout_counts_from_when_bootstrapping_began() {
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let _daemon = config.start(&[]).await;
    let before = supervisord.pids().await;
    // Both nodes run for longer than bootstrap_timeout (4 s) under the daemon.
    assert_rows_stay(&config, 0, Duration::from_secs(5)).await;

    let fault_at = wall_now();
    supervisord.sims[1]
        .fault(json!({"fault": "bootstrap"}))
        .await;
    let rows = wait_rows(&config, 2).await;
    wait_restarted(&supervisord, "node2", before["node2"]).await;
    let after = secs(rows[0].timestamp, fault_at);
    assert!(
        after >= 3.8,
        "node2 restarted {after:.2} s after it began bootstrapping (bootstrap_timeout 4 s):\n{}",
        show(&rows)
    );
    assert_eq!(config.trusted_peers("node2").unwrap(), [NORMAL_PEER]);
    assert_untouched(&supervisord, &before, &["node1"]).await;
}

#[tokio::test]
async fn all_nodes_down_are_started_staggered_on_the_fallback_config() {
    // startsecs 3 > all_down_stagger 1 s: no node is up in time to spare the others the stagger.
    let supervisord = Supervisord::builder()
        .sims(3)
        .sim_startsecs(3)
        .start()
        .await;
    let client = supervisord.client();
    for sim in &supervisord.sims {
        client.stop_process(&sim.name, true).await.unwrap();
    }
    let config = DaemonConfig::write(&supervisord, json!({}));
    let _daemon = config.start(&[]).await;

    // Watch the generated files while the nodes come up: each is on its fallback config for a
    // while, then back to normal once the others are in sync.
    let nodes = ["node1", "node2", "node3"];
    let mut fallback_seen = [false; 3];
    let deadline = Instant::now() + WAIT;
    loop {
        for (index, node) in nodes.iter().enumerate() {
            if config
                .trusted_peers(node)
                .is_some_and(|p| p == [FALLBACK_PEER])
            {
                fallback_seen[index] = true;
            }
        }
        let all_normal = nodes.iter().all(|node| {
            config
                .trusted_peers(node)
                .is_some_and(|p| p == [NORMAL_PEER])
        });
        let pids = supervisord.pids().await;
        if all_normal && fallback_seen.iter().all(|seen| *seen) && pids.values().all(|p| *p > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fallback seen {fallback_seen:?}, all normal now {all_normal}, pids {pids:?}\n{}",
            show(&config.rows())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = config.rows();
    assert_eq!(
        actions(&rows),
        nodes.map(|node| (node.to_string(), RestartAction::Start)),
        "{}",
        show(&rows)
    );
    for row in &rows {
        assert_eq!(row.reason, "all nodes down", "{}", show(&rows));
        assert_eq!(row.supervisor_state, "STOPPED");
    }
    for pair in rows.windows(2) {
        let gap = secs(pair[1].timestamp, pair[0].timestamp);
        assert!(
            gap >= 0.9,
            "starts {gap:.2} s apart (stagger 1 s):\n{}",
            show(&rows)
        );
    }
    let pids = supervisord.pids().await;
    assert_rows_stay(&config, 3, QUIET).await;
    assert_untouched(&supervisord, &pids, &nodes).await;
}

#[tokio::test]
async fn running_nodes_are_adopted_and_stopped_ones_started() {
    let supervisord = Supervisord::builder().sims(3).start().await;
    supervisord
        .client()
        .stop_process("node3", true)
        .await
        .unwrap();
    let before = supervisord.pids().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let daemon = config.start(&[]).await;

    let rows = wait_rows(&config, 1).await;
    wait_restarted(&supervisord, "node3", 0).await;
    assert_eq!(
        actions(&rows),
        [("node3".into(), RestartAction::Start)],
        "{}",
        show(&rows)
    );
    assert_eq!(rows[0].reason, "stopped");
    assert_eq!(rows[0].supervisor_state, "STOPPED");
    for node in ["node1", "node2", "node3"] {
        assert_eq!(config.trusted_peers(node).unwrap(), [NORMAL_PEER], "{node}");
    }
    assert_rows_stay(&config, 1, QUIET).await;
    assert_untouched(&supervisord, &before, &["node1", "node2"]).await;
    assert!(
        !daemon.log_text().contains("restarting"),
        "{}",
        daemon.log_text()
    );
}

#[tokio::test]
async fn a_dry_run_touches_nothing() {
    let supervisord = Supervisord::builder().sims(2).start().await;
    supervisord.sims[1].fault(json!({"fault": "crash"})).await;
    supervisord
        .wait_for_state("node2", ProcessState::Exited, WAIT)
        .await;
    let before = supervisord.pids().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let daemon = config.start(&["--dry-run"]).await;

    daemon
        .wait_for_log("dry run: would start or restart: crashed (EXITED)", WAIT)
        .await;
    assert_state_stays(
        &supervisord,
        "node2",
        ProcessState::Exited,
        Duration::from_secs(3),
    )
    .await;
    assert_untouched(&supervisord, &before, &["node1"]).await;
    for file in [
        config.restart_log.clone(),
        config.dir.join("api.token"),
        config.dir.join("nodekeeper-state.json"),
        config.node_config("node1"),
        config.node_config("node2"),
    ] {
        assert!(!file.exists(), "a dry run wrote {}", file.display());
    }
}

#[tokio::test]
async fn a_restart_storm_holds_the_node_until_released() {
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let daemon = config.start(&[]).await;
    let before = supervisord.pids().await;

    let mut pid = before["node2"];
    for n in 1..=3 {
        supervisord.sims[1].fault(json!({"fault": "crash"})).await;
        wait_rows(&config, n).await;
        pid = wait_restarted(&supervisord, "node2", pid).await;
    }
    supervisord.sims[1].fault(json!({"fault": "crash"})).await;
    daemon
        .wait_for_log(
            "holding the node: restart storm: 3 restarts within 60 s",
            WAIT,
        )
        .await;
    let held = config.node_status("node2").await["held"].clone();
    assert!(
        held.as_str()
            .is_some_and(|h| h.starts_with("restart storm")),
        "{held}"
    );
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(config.dir.join("nodekeeper-state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["holds"]["node2"]["reason"]["kind"], "storm",
        "{state}"
    );
    assert_state_stays(
        &supervisord,
        "node2",
        ProcessState::Exited,
        Duration::from_secs(3),
    )
    .await;
    assert_rows_stay(&config, 3, Duration::from_millis(100)).await;

    let released = config.ctl("release", "node2").await;
    assert_eq!(released.code, 0, "{released:?}");
    assert_eq!(released.stdout.trim(), "node2: released");
    let rows = wait_rows(&config, 4).await;
    wait_restarted(&supervisord, "node2", pid).await;
    assert_eq!(
        actions(&rows),
        vec![("node2".to_string(), RestartAction::Start); 4],
        "{}",
        show(&rows)
    );
    assert!(
        rows.iter().all(|row| row.reason == "crashed (EXITED)"),
        "{}",
        show(&rows)
    );
    assert_eq!(config.node_status("node2").await["held"], Value::Null);
    assert_untouched(&supervisord, &before, &["node1"]).await;
}

#[tokio::test]
async fn the_operators_stop_and_hold_are_respected_until_released() {
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let daemon = config.start(&[]).await;
    let client = supervisord.client();
    let before = supervisord.pids().await;

    // Stopped by the operator: held, left stopped.
    client.stop_process("node2", true).await.unwrap();
    daemon
        .wait_for_log("holding the node: stopped outside nodekeeper", WAIT)
        .await;
    let held = config.node_status("node2").await["held"].clone();
    assert!(
        held.as_str()
            .is_some_and(|h| h.starts_with("stopped outside nodekeeper")),
        "{held}"
    );
    assert_state_stays(
        &supervisord,
        "node2",
        ProcessState::Stopped,
        Duration::from_secs(3),
    )
    .await;

    // Started again by the operator: the hold ends, the operator's process is kept.
    client.start_process("node2", true).await.unwrap();
    daemon
        .wait_for_log(
            "hold ended: the program was started outside nodekeeper",
            WAIT,
        )
        .await;
    let operators = supervisord.pids().await;
    assert_rows_stay(&config, 0, QUIET).await;
    assert_untouched(&supervisord, &operators, &["node1", "node2"]).await;
    assert_eq!(config.node_status("node2").await["held"], Value::Null);

    // Stopped again, then released with `nodekeeper ctl release`: the daemon starts it.
    client.stop_process("node2", true).await.unwrap();
    wait_until("a second hold", WAIT, || {
        let n = daemon
            .log_text()
            .matches("holding the node: stopped outside")
            .count();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    let released = config.ctl("release", "node2").await;
    assert_eq!(released.code, 0, "{released:?}");
    assert_eq!(released.stdout.trim(), "node2: released");
    let rows = wait_rows(&config, 1).await;
    wait_restarted(&supervisord, "node2", 0).await;
    assert_eq!(actions(&rows), [("node2".into(), RestartAction::Start)]);
    assert_eq!(rows[0].reason, "stopped");

    assert_untouched(&supervisord, &before, &["node1"]).await;

    // `nodekeeper ctl hold`: a crash is left alone until released.
    let held = config.ctl("hold", "node1").await;
    assert_eq!(held.code, 0, "{held:?}");
    assert_eq!(held.stdout.trim(), "node1: held");
    let state = std::fs::read_to_string(config.dir.join("nodekeeper-state.json")).unwrap();
    assert!(state.contains("\"node1\""), "{state}");
    supervisord.sims[0].fault(json!({"fault": "crash"})).await;
    supervisord
        .wait_for_state("node1", ProcessState::Exited, WAIT)
        .await;
    assert_state_stays(
        &supervisord,
        "node1",
        ProcessState::Exited,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        config.node_status("node1").await["held"],
        "held by an operator"
    );
    assert_rows_stay(&config, 1, Duration::from_millis(100)).await;
    let released = config.ctl("release", "node1").await;
    assert_eq!(released.code, 0, "{released:?}");
    let rows = wait_rows(&config, 2).await;
    wait_restarted(&supervisord, "node1", 0).await;
    assert_eq!(rows[1].node, "node1");
    assert_eq!(rows[1].reason, "crashed (EXITED)");

    let unknown = config.ctl("hold", "node9").await;
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(unknown.stderr.contains("node9"), "{unknown:?}");
}

/// What the fake PoolTool answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// Accept the connection and close it without a word.
    Hangup,
    /// HTTP 503.
    Unavailable,
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// `{"majoritymax": "n/a"}`.
    NotANumber,
    /// `{"majoritymax": N}`.
    Height(u64),
}

/// A tiny `stats.json` server on loopback whose answer the test switches.
struct PoolTool {
    port: u16,
    answer: Arc<Mutex<Answer>>,
    served: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl PoolTool {
    async fn start(answer: Answer) -> PoolTool {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(Mutex::new(answer));
        let served = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let answer = Arc::clone(&answer);
            let served = Arc::clone(&served);
            async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let answer = *answer.lock().unwrap();
                    let served = Arc::clone(&served);
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buffer = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buffer[..n]),
                            }
                        }
                        let (status, body) = match answer {
                            Answer::Hangup => {
                                served.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            Answer::Unavailable => ("503 Service Unavailable", "busy".to_string()),
                            Answer::Garbage => ("200 OK", "<html>not json".to_string()),
                            Answer::NotANumber => ("200 OK", r#"{"majoritymax": "n/a"}"#.into()),
                            Answer::Height(h) => ("200 OK", format!(r#"{{"majoritymax": {h}}}"#)),
                        };
                        let response = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                        served.fetch_add(1, Ordering::SeqCst);
                    });
                }
            }
        });
        PoolTool {
            port,
            answer,
            served,
            task,
        }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for PoolTool {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_reference_tip_that_is_down_garbled_or_behind_never_restarts_a_node() {
    let supervisord = Supervisord::builder().sims(2).start().await;
    let pooltool = PoolTool::start(Answer::Hangup).await;
    let config = DaemonConfig::write(
        &supervisord,
        json!({"pooltool": {
            "enabled": true,
            "status_url": format!("http://127.0.0.1:{}/stats.json", pooltool.port),
            "status_refresh": "300ms",
            "status_max_age": "10s",
            "user_id": "00000000-0000-0000-0000-000000000000",
            "pool_id": "0123456789abcdef",
            "genesis_hash": "8e4d2a343f3dcf9330ad9035b3e8d168e6728904262f2c434a4f8f934ec7b676",
        }}),
    );
    let daemon = config.start(&[]).await;
    let before = supervisord.pids().await;

    for answer in [
        Answer::Hangup,
        Answer::Unavailable,
        Answer::Garbage,
        Answer::NotANumber,
        // PoolTool far behind the nodes (a stale majority): the local nodes are the reference.
        Answer::Height(5),
    ] {
        pooltool.set(answer);
        let served = pooltool.served();
        // Fetched at least twice with this answer (failures back off to 8 × 300 ms at most).
        wait_until(&format!("PoolTool asked twice ({answer:?})"), WAIT, || {
            let n = pooltool.served();
            async move { (n >= served + 2).then_some(()) }
        })
        .await;
        assert_rows_stay(&config, 0, Duration::from_secs(2)).await;
        let status = config.status().await;
        let external = &status["external_reference"];
        match answer {
            Answer::Height(h) => assert_eq!(*external, json!(h), "{status}"),
            // The last good value, if any, would still be fresh: there is none before Height.
            _ => assert_eq!(*external, Value::Null, "{status}"),
        }
        assert!(
            status["reference"].as_u64().is_some_and(|r| r > 500),
            "the local nodes are the reference: {status}"
        );
    }
    assert!(
        daemon.log_text().contains("reference tip unavailable"),
        "{}",
        daemon.log_text()
    );
    assert_untouched(&supervisord, &before, &["node1", "node2"]).await;

    // The control: a fresh reference far ahead is believed, and acted on (lag).
    let height = supervisord.sims[0].state().await.unwrap()["height"]
        .as_u64()
        .unwrap();
    let ahead = height + 100;
    pooltool.set(Answer::Height(ahead));
    let rows = wait_rows(&config, 1).await;
    assert_eq!(rows[0].action, RestartAction::Stop, "{}", show(&rows));
    assert!(
        rows[0].reason.starts_with("lag (height "),
        "{}",
        show(&rows)
    );
    assert_eq!(rows[0].reference_height, Some(ahead), "{}", show(&rows));
}

#[tokio::test]
async fn the_daemon_survives_supervisord_killed_and_restarted_and_resumes() {
    let mut supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let mut daemon = config.start(&[]).await;

    supervisord.kill9().await;
    daemon
        .wait_for_log("cannot observe supervisord", WAIT)
        .await;
    // Unreachable: nothing is done about its nodes (all down, as far as anyone could tell).
    let status = config.status().await;
    for line in status["nodes"].as_array().unwrap() {
        assert_eq!(line["program_state"], "UNREACHABLE", "{status}");
    }
    assert_rows_stay(&config, 0, Duration::from_secs(3)).await;
    assert!(!daemon.exited(), "the daemon died:\n{}", daemon.log_text());

    supervisord.start_again().await;
    daemon
        .wait_for_log("supervisord reachable again", Duration::from_secs(40))
        .await;
    assert!(!daemon.exited(), "the daemon died:\n{}", daemon.log_text());
    // The programs supervisord started again are adopted as they are.
    let after = supervisord.pids().await;
    assert_rows_stay(&config, 0, QUIET).await;
    assert_untouched(&supervisord, &after, &["node1", "node2"]).await;

    // And the daemon acts again.
    supervisord.sims[0].fault(json!({"fault": "crash"})).await;
    let rows = wait_rows(&config, 1).await;
    wait_restarted(&supervisord, "node1", after["node1"]).await;
    assert_eq!(actions(&rows), [("node1".into(), RestartAction::Start)]);
    assert_eq!(rows[0].reason, "crashed (EXITED)");
    assert!(!daemon.exited(), "the daemon died:\n{}", daemon.log_text());
}

#[tokio::test]
async fn a_daemon_killed_during_a_restart_is_succeeded_without_needless_restarts() {
    // The nodes take 2 s to stop, as a real node flushing its database does: the kill lands
    // while supervisord is stopping node2.
    let supervisord = Supervisord::builder()
        .sims(3)
        .sim_stop_delay(2)
        .start()
        .await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let mut first = config.start(&[]).await;
    let before = supervisord.pids().await;

    supervisord.sims[1].fault(json!({"fault": "stuck"})).await;
    // Killed while supervisord is stopping node2 for it: after the stop, before the start.
    let client = supervisord.client();
    let deadline = Instant::now() + WAIT;
    while client.get_process_info("node2").await.unwrap().state != ProcessState::Stopping {
        assert!(
            Instant::now() < deadline,
            "no restart:\n{}",
            first.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill9();
    let rows_at_kill = config.rows();
    assert_eq!(
        actions(&rows_at_kill),
        [("node2".into(), RestartAction::Stop)],
        "{}",
        show(&rows_at_kill)
    );

    let second = config.start(&[]).await;
    let old_pid = before["node2"];
    let deadline = Instant::now() + WAIT;
    let pid = loop {
        let info = client.get_process_info("node2").await.unwrap();
        if info.state == ProcessState::Running && info.pid != old_pid {
            break info.pid;
        }
        assert!(
            Instant::now() < deadline,
            "node2 is {} under the new daemon; its log:\n{}",
            info.state,
            second.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rows = config.rows();
    assert!(
        rows.len() <= 2,
        "{}\nsecond daemon:\n{}",
        show(&rows),
        second.log_text()
    );
    assert!(
        rows[1..]
            .iter()
            .all(|row| row.node == "node2" && row.action == RestartAction::Start),
        "the new daemon restarted something:\n{}",
        show(&rows)
    );
    assert_rows_stay(&config, rows.len(), QUIET).await;
    assert_untouched(&supervisord, &before, &["node1", "node3"]).await;
    assert_eq!(supervisord.pids().await["node2"], pid);
}

/// While supervisord cannot be reached, `nodekeeper status` says so on every tick, including the
/// ticks on which the daemon backs off instead of asking.
#[tokio::test]
async fn an_unreachable_supervisord_is_reported_in_the_status_for_the_whole_outage() {
    let mut supervisord = Supervisord::builder().sims(1).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let daemon = config.start(&[]).await;

    supervisord.kill9().await;
    daemon
        .wait_for_log("cannot observe supervisord", WAIT)
        .await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let status = config.status().await;
        assert_eq!(
            status["nodes"][0]["program_state"], "UNREACHABLE",
            "{status}"
        );
        let unreachable = status["unreachable"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            unreachable.len() == 1
                && unreachable[0]
                    .as_str()
                    .is_some_and(|u| u.starts_with("supervisord default: ")),
            "the outage is not reported: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `nodekeeper run` on `config`, waited for (at most 20 s): its exit code and its stderr.
async fn run_to_exit(config: &DaemonConfig) -> (Option<i32>, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        config.nodekeeper(&["run"]).env("RUST_LOG", "info").output(),
    )
    .await
    .expect("the second daemon exits")
    .expect("run nodekeeper");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_second_daemon_on_the_same_files_exits_2_naming_the_first() {
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let mut first = config.start(&[]).await;
    let (code, stderr) = run_to_exit(&config).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("another nodekeeper (pid {})", first.pid()))
            && stderr.contains("nodekeeper.lock"),
        "{stderr}"
    );
    assert!(!first.exited(), "the first daemon is unharmed");
    // Once the first is gone, the files are free.
    assert_eq!(first.terminate().await, Some(0));
    let again = config.start(&[]).await;
    drop(again);
}

#[tokio::test]
async fn a_daemon_that_cannot_bind_its_api_exits_2_before_touching_anything() {
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let taken = std::net::TcpListener::bind(&config.api_listen).expect("take the API port");
    let (code, stderr) = run_to_exit(&config).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {}", config.api_listen)),
        "{stderr}"
    );
    assert!(
        !config.restart_log.exists() && config.trusted_peers("node1").is_none(),
        "it wrote files before giving up"
    );
    drop(taken);
}

#[tokio::test]
async fn running_as_root_is_warned_about_once() {
    let supervisord = Supervisord::builder().sims(1).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let daemon = config.start(&[]).await;
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    let warnings = daemon.log_text().matches("running as root").count();
    assert_eq!(warnings, usize::from(root), "{}", daemon.log_text());
}

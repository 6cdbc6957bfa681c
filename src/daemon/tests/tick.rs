//! The tick: observe, decide, act, record, against the fakes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Pool, until, wait};
use crate::chain::ChainNode;
use crate::daemon::observe::Prober;
use crate::events::Event;
use crate::supervisor::ProcessState;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn a_tick_starts_a_crashed_node_and_leaves_the_healthy_ones_alone() {
    let pool = Pool::new(&["node1", "node2", "node3"], serde_json::json!({}));
    let running = pool.run();
    until("every node is seen in sync", MINUTE, || async {
        let snapshot = running.shared.snapshot.read().unwrap().clone();
        (snapshot.nodes.len() == 3 && snapshot.nodes.iter().all(|line| line.lag == Some(0)))
            .then_some(())
    })
    .await;
    let pid = pool.supervisor.pid("node2");
    pool.supervisor.set("node2", ProcessState::Exited);
    let crashed_at = tokio::time::Instant::now();
    until("node2 runs again, a new process", MINUTE, || async {
        (pool.supervisor.state("node2") == ProcessState::Running
            && pool.supervisor.pid("node2") != pid)
            .then_some(())
    })
    .await;
    // Started within a tick, plus supervisord's startsecs.
    assert!(
        crashed_at.elapsed() <= Duration::from_secs(3),
        "{:?}",
        crashed_at.elapsed()
    );
    assert_eq!(pool.calls.all(), ["start node2"]);
    assert_eq!(pool.rows(), ["node2 start crashed (EXITED)"]);
    until("node2 is reported back in sync", MINUTE, || async {
        running
            .shared
            .events()
            .contains(&Event::NodeRecovered {
                node: "node2".into(),
            })
            .then_some(())
    })
    .await;
    let events = running.shared.events();
    assert!(
        matches!(&events[0], Event::NodeRestarted { node, reason, restart: false, .. } if node == "node2" && reason == "crashed"),
        "{events:?}"
    );
    // A while later: nothing else was touched.
    wait(Duration::from_secs(30)).await;
    assert_eq!(pool.calls.all(), ["start node2"]);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_stale_tip_restart_is_reported_back_in_sync_only_after_the_new_process_is() {
    let pool = Pool::new(
        &["node1", "node2", "node3"],
        serde_json::json!({"thresholds": {"tip_timeout": "5s", "boot_grace": "2s"}}),
    );
    let running = pool.run();
    wait(Duration::from_secs(3)).await;
    let pid = pool.supervisor.pid("node3");
    pool.node("node3").stuck(true);
    until("node3 is stopped for its stale tip", MINUTE, || async {
        (!pool.calls.matching("stop node3").is_empty()).then_some(())
    })
    .await;
    // A new process comes with a moving tip.
    pool.node("node3").stuck(false);
    until("node3 runs again, a new process", MINUTE, || async {
        let events = running.shared.events();
        assert!(
            !events.contains(&Event::NodeRecovered {
                node: "node3".into()
            }),
            "node3 reported back before its new process ran: {events:?}"
        );
        (pool.supervisor.state("node3") == ProcessState::Running
            && pool.supervisor.pid("node3") != pid)
            .then_some(())
    })
    .await;
    until("node3 is reported back in sync", MINUTE, || async {
        running
            .shared
            .events()
            .contains(&Event::NodeRecovered {
                node: "node3".into(),
            })
            .then_some(())
    })
    .await;
    let rows = pool.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].starts_with("node3 stop stale tip"), "{rows:?}");
    assert!(rows[1].starts_with("node3 start stale tip"), "{rows:?}");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_supervisord_causes_no_action_and_one_outage_event_pair() {
    let pool = Pool::new(&["node1", "node2"], serde_json::json!({}));
    let running = pool.run();
    wait(Duration::from_secs(3)).await;
    pool.supervisor.set_down(true);
    pool.supervisor.set("node2", ProcessState::Exited);
    until("the outage is reported", MINUTE, || async {
        running
            .shared
            .events()
            .iter()
            .any(|event| matches!(event, Event::SupervisorUnreachable { .. }))
            .then_some(())
    })
    .await;
    wait(Duration::from_secs(20)).await;
    assert!(pool.calls.all().is_empty(), "{:?}", pool.calls.all());
    let snapshot = running.shared.snapshot.read().unwrap().clone();
    assert!(
        snapshot
            .unreachable
            .iter()
            .any(|line| line.contains("default")),
        "{snapshot:?}"
    );
    assert_eq!(running.shared.line("node2").program_state, "UNREACHABLE");
    pool.supervisor.set_down(false);
    until(
        "node2 is started once supervisord answers",
        MINUTE,
        || async { (pool.calls.all() == ["start node2"]).then_some(()) },
    )
    .await;
    let outages: Vec<_> = running
        .shared
        .events()
        .into_iter()
        .filter(|event| {
            matches!(
                event,
                Event::SupervisorUnreachable { .. } | Event::SupervisorBack { .. }
            )
        })
        .collect();
    assert_eq!(outages.len(), 2, "{outages:?}");
    assert!(matches!(outages[1], Event::SupervisorBack { .. }));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_node_and_a_lagging_node_are_restarted_one_rule_each() {
    let pool = Pool::new(
        &["node1", "node2", "node3"],
        serde_json::json!({"thresholds": {"boot_grace": "2s"}}),
    );
    let running = pool.run();
    wait(Duration::from_secs(5)).await;
    pool.node("node2").hang(true);
    until("the hung node2 is restarted", MINUTE, || async {
        (!pool.calls.matching("start node2").is_empty()).then_some(())
    })
    .await;
    pool.node("node2").hang(false);
    let rows = pool.rows();
    assert!(
        rows.first()
            .is_some_and(|row| row.starts_with("node2 stop hung")),
        "{rows:?}"
    );
    wait(Duration::from_secs(5)).await;
    pool.node("node3").lag(20);
    until("the lagging node3 is restarted", MINUTE, || async {
        (!pool.calls.matching("start node3").is_empty()).then_some(())
    })
    .await;
    pool.node("node3").lag(0);
    let rows = pool.rows();
    assert!(
        rows.iter()
            .any(|row| row.starts_with("node3 stop lag (height")),
        "{rows:?}"
    );
    assert_eq!(
        pool.calls.all(),
        ["stop node2", "start node2", "stop node3", "start node3"]
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_node_answering_a_second_late_is_never_restarted_a_silent_one_soon() {
    let pool = Pool::new(&["node1", "node2", "node3"], serde_json::json!({}));
    let running = pool.run();
    wait(Duration::from_secs(5)).await;
    // Every answer 1 s late, for five minutes: slow, not hung (hang_timeout is 2 s).
    pool.node("node2").slow(Duration::from_secs(1));
    wait(Duration::from_secs(300)).await;
    assert!(pool.calls.all().is_empty(), "{:?}", pool.calls.all());
    // Silent: restarted when its silence reaches hang_timeout (a quick round is due then, not
    // the end of the next whole one), its first unanswered question at most a quarter of
    // hang_timeout after it hung (an ask between rounds), not up to a tick. It hangs 0.3 s after
    // a round asked: the next round asks 0.7 s later, the next ask 0.2 s later.
    pool.node("node2").slow(Duration::ZERO);
    wait(Duration::from_millis(3_300)).await;
    pool.node("node3").hang(true);
    let hung_at = tokio::time::Instant::now();
    until("node3 is restarted", MINUTE, || async {
        (!pool.calls.matching("stop node3").is_empty()).then_some(())
    })
    .await;
    let after = hung_at.elapsed();
    assert!(
        after >= Duration::from_secs(2) && after <= Duration::from_millis(2_600),
        "restarted {after:?} after it hung"
    );
    pool.node("node3").hang(false);
    let rows = pool.rows();
    assert!(
        rows[0].starts_with("node3 stop hung (no answer for 2.0 s)"),
        "{rows:?}"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_node_with_leadership_on_is_judged_the_moment_its_silence_reaches_hang_timeout() {
    // A hang_timeout that ends while a whole round would wait for the leader calls.
    let leadership = serde_json::json!({
        "leadership": {"enabled": true, "secret_file": "secret.yaml"},
        "thresholds": {"hang_timeout": "2200ms"},
    });
    let pool = Pool::new(&["node1", "node2", "node3"], leadership);
    let running = pool.run();
    until("a node is promoted", MINUTE, || async {
        (!pool.calls.matching("promote").is_empty()).then_some(())
    })
    .await;
    wait(Duration::from_millis(2_300)).await;
    // Its leader endpoints are not asked while it leaves a question unanswered: the rounds
    // are not held up by their timeouts, and the silence is judged when it reaches 2.2 s.
    pool.node("node3").hang(true);
    until("node3 is restarted", MINUTE, || async {
        (!pool.calls.matching("stop node3").is_empty()).then_some(())
    })
    .await;
    pool.node("node3").hang(false);
    let rows = pool.rows();
    assert!(
        rows[0].starts_with("node3 stop hung (no answer for 2.2 s)"),
        "{rows:?}"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_round_waits_for_no_silent_node_and_acting_on_a_node_ends_its_questions() {
    let pool = Pool::new(&["node1", "node2"], serde_json::json!({}));
    let nodes: Vec<(String, Arc<dyn ChainNode>)> = ["node1", "node2"]
        .into_iter()
        .map(|name| {
            let node: Arc<dyn ChainNode> = pool.nodes[name].clone();
            (name.to_string(), node)
        })
        .collect();
    let (timeout, wait) = (Duration::from_secs(2), Duration::from_millis(500));
    let mut prober = Prober::default();
    pool.node("node2").hang(true);
    // The first unanswered question is waited for, as every node's...
    let began = Instant::now();
    let fresh = prober.round(&nodes, timeout, wait, wait).await;
    assert_eq!(began.elapsed(), wait);
    assert_eq!(fresh, BTreeSet::from(["node1".to_string()]));
    // ...a node still silent is not: the round ends with the others' answers.
    tokio::time::advance(Duration::from_millis(500)).await;
    let began = Instant::now();
    prober.round(&nodes, timeout, wait, wait).await;
    assert_eq!(began.elapsed(), Duration::ZERO);
    assert_eq!(prober.silence()["node2"], Duration::from_secs(1));
    assert_eq!(pool.node("node2").open_questions(), 2);
    // nodekeeper acts on node2: its open questions are given up (their connections close, and a
    // node shutting down gracefully need not wait for them).
    prober.forget("node2");
    tokio::task::yield_now().await;
    assert_eq!(pool.node("node2").open_questions(), 0);
    assert_eq!(pool.node("node1").open_questions(), 0);
    pool.node("node2").hang(false);

    // A node answering in 100 ms is waited for, also after a quick round (which waits for no
    // answer: the one it asked for comes in the next round, and is no silence).
    pool.node("node1").slow(Duration::from_millis(100));
    prober.round(&nodes, timeout, Duration::ZERO, wait).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let began = Instant::now();
    let fresh = prober.round(&nodes, timeout, wait, wait).await;
    assert_eq!(began.elapsed(), Duration::from_millis(100));
    assert!(fresh.contains("node1"), "{fresh:?}");
    // A node answering in 700 ms, later than a round waits, is slow: once it is known to be,
    // rounds no longer wait for it, and its answers still count when they come.
    pool.node("node1").slow(Duration::from_millis(700));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let began = Instant::now();
    prober.round(&nodes, timeout, wait, wait).await;
    assert_eq!(began.elapsed(), wait);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let began = Instant::now();
        let fresh = prober.round(&nodes, timeout, wait, wait).await;
        assert_eq!(began.elapsed(), Duration::ZERO);
        assert!(fresh.contains("node1"), "{fresh:?}");
        // Asked just now, it answered the question before: no silence.
        assert_eq!(
            prober.silence().get("node1").copied().unwrap_or_default(),
            Duration::ZERO
        );
    }
}

#[tokio::test(start_paused = true)]
async fn program_commands_are_read_at_start_every_minute_and_after_an_outage() {
    let pool = Pool::new(&["node1", "node2"], serde_json::json!({}));
    let running = pool.run();
    until("the commands are read", MINUTE, || async {
        (pool.supervisor.config_reads() == 1).then_some(())
    })
    .await;
    // Not every tick: once a minute.
    wait(Duration::from_secs(30)).await;
    assert_eq!(pool.supervisor.config_reads(), 1);
    until("read again after a minute", MINUTE, || async {
        (pool.supervisor.config_reads() == 2).then_some(())
    })
    .await;
    // supervisord down and back (perhaps restarted with another configuration): read at once.
    pool.supervisor.set_down(true);
    wait(Duration::from_secs(5)).await;
    pool.supervisor.set_down(false);
    let back = tokio::time::Instant::now();
    until("read again once it answers", MINUTE, || async {
        (pool.supervisor.config_reads() == 3).then_some(())
    })
    .await;
    assert!(
        back.elapsed() < Duration::from_secs(20),
        "{:?}",
        back.elapsed()
    );
    running.stop().await;
}

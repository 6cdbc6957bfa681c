//! Each operator path, through the loop's request channel as the API sends them.

use std::time::Duration;

use super::{Pool, until, until_written, wait};
use crate::status::{ActionState, NodeAction};
use crate::supervisor::ProcessState;

const MINUTE: Duration = Duration::from_secs(60);

fn done(message: &str) -> ActionState {
    ActionState::Done {
        message: message.into(),
    }
}

#[tokio::test(start_paused = true)]
async fn restart_stop_start_hold_and_release_are_answered_and_executed() {
    let pool = Pool::new(&["node1", "node2"], serde_json::json!({}));
    let running = pool.run();
    wait(Duration::from_secs(3)).await;

    // Restart: a stop and a start, rows with the operator's reason.
    let view = running.ask("node1", NodeAction::Restart).await.unwrap();
    assert_eq!(view.state, ActionState::Running);
    assert_eq!(
        running.finished(&view.id).await.state,
        done("node1: restarted")
    );
    assert_eq!(pool.calls.all(), ["stop node1", "start node1"]);

    // Stop: held, and not started again by the loop.
    let view = running.ask("node1", NodeAction::Stop).await.unwrap();
    assert_eq!(
        running.finished(&view.id).await.state,
        done("node1: stopped")
    );
    wait(Duration::from_secs(10)).await;
    assert_eq!(pool.supervisor.state("node1"), ProcessState::Stopped);
    assert_eq!(
        running.shared.line("node1").held.as_deref(),
        Some("held by an operator")
    );
    // The state file is written off the loop, soon.
    until_written("the hold", || {
        std::fs::read_to_string(pool.dir.join("nodekeeper-state.json"))
            .ok()
            .filter(|holds| holds.contains("node1"))
    });

    // Start: the hold ends, the node runs.
    let view = running.ask("node1", NodeAction::Start).await.unwrap();
    assert_eq!(
        running.finished(&view.id).await.state,
        done("node1: started")
    );
    assert_eq!(pool.supervisor.state("node1"), ProcessState::Running);
    until("the hold is gone from the status", MINUTE, || async {
        running.shared.line("node1").held.is_none().then_some(())
    })
    .await;

    // Hold: answered at once; a crash is then left alone until released.
    let view = running.ask("node2", NodeAction::Hold).await.unwrap();
    assert_eq!(view.state, done("node2: held"));
    pool.supervisor.set("node2", ProcessState::Exited);
    wait(Duration::from_secs(10)).await;
    assert_eq!(pool.supervisor.state("node2"), ProcessState::Exited);
    let view = running.ask("node2", NodeAction::Release).await.unwrap();
    assert_eq!(view.state, done("node2: released"));
    until("node2 is started once released", MINUTE, || async {
        (pool.supervisor.state("node2") == ProcessState::Running).then_some(())
    })
    .await;
    let view = running.ask("node2", NodeAction::Release).await.unwrap();
    assert_eq!(view.state, done("node2: was not held"));
    assert_eq!(
        pool.calls.all(),
        [
            "stop node1",
            "start node1",
            "stop node1",
            "start node1",
            "start node2"
        ]
    );
    assert_eq!(
        pool.rows(),
        [
            "node1 stop operator request",
            "node1 start operator request",
            "node1 stop operator request",
            "node1 start operator request",
            "node2 start crashed (EXITED)"
        ]
    );
    // Every action is remembered by id.
    let view = running.action(&view.id).await.unwrap();
    assert_eq!(view.node, "node2");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn refusals_name_the_reason_and_change_nothing() {
    let pool = Pool::new(&["node1", "node2"], serde_json::json!({}));
    let running = pool.run();
    wait(Duration::from_secs(3)).await;
    let unknown = running.ask("node9", NodeAction::Restart).await.unwrap_err();
    assert_eq!(unknown, "no node \"node9\" in the configuration");
    let leader = running.ask("node1", NodeAction::Leader).await.unwrap_err();
    assert!(leader.contains("leadership is not enabled"), "{leader}");
    // A node with a job in flight.
    pool.supervisor.slow_stops(Duration::from_secs(5));
    let view = running.ask("node1", NodeAction::Restart).await.unwrap();
    let busy = running.ask("node1", NodeAction::Stop).await.unwrap_err();
    assert!(busy.contains("an action is in flight"), "{busy}");
    assert_eq!(
        running.finished(&view.id).await.state,
        done("node1: restarted")
    );
    assert_eq!(pool.calls.all(), ["stop node1", "start node1"]);
    assert!(running.action("nope").await.is_none());
    running.stop().await;
}

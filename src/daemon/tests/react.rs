//! Reaction to supervisord's events: observe now, never decide differently.

use std::time::Duration;

use tokio::sync::mpsc;

use super::{Pool, until, wait};
use crate::listener::{Notice, ProgramEvent};
use crate::supervisor::ProcessState;

const MINUTE: Duration = Duration::from_secs(60);

/// A pool polled every 30 s: anything sooner is the events' doing.
fn slow_poll(names: &[&str]) -> Pool {
    Pool::new(
        names,
        serde_json::json!({"thresholds": {"tick_interval": "30s"}}),
    )
}

fn event(program: &str, serial: u64, from: ProcessState, to: ProcessState) -> Notice {
    Notice::Event(ProgramEvent {
        supervisor: "default".into(),
        serial: serial + 100,
        pool_serial: serial,
        program: program.into(),
        group: program.into(),
        from_state: from,
        state: to,
        expected: Some(false),
        pid: None,
        tries: None,
    })
}

#[tokio::test(start_paused = true)]
async fn a_crash_event_is_acted_on_at_once_not_at_the_next_poll() {
    let pool = slow_poll(&["node1", "node2"]);
    let (notices, rx) = mpsc::channel(16);
    let running = pool.run_with(|daemon| daemon.notices = Some(rx));
    until("the first round", MINUTE, || async {
        (running.shared.snapshot.read().unwrap().nodes.len() == 2).then_some(())
    })
    .await;
    // Events about programs nodekeeper does not manage (the listener itself) change nothing.
    notices
        .send(event(
            "nodekeeper-events",
            1,
            ProcessState::Starting,
            ProcessState::Running,
        ))
        .await
        .unwrap();
    for (serial, node) in [(2, "node2"), (3, "node1"), (4, "node2")] {
        wait(Duration::from_secs(2)).await;
        let before = pool.calls.matching("start").len();
        pool.supervisor.set(node, ProcessState::Exited);
        notices
            .send(event(
                node,
                serial,
                ProcessState::Running,
                ProcessState::Exited,
            ))
            .await
            .unwrap();
        until(
            "the crashed node is started",
            Duration::from_millis(200),
            || async { (pool.calls.matching("start").len() > before).then_some(()) },
        )
        .await;
        assert_eq!(pool.calls.all().last().unwrap(), &format!("start {node}"));
    }
    // The decisions are the policy's, as with polling: crashed nodes are started, and recorded.
    assert_eq!(
        pool.rows(),
        [
            "node2 start crashed (EXITED)",
            "node1 start crashed (EXITED)",
            "node2 start crashed (EXITED)"
        ]
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_exited_process_is_asked_about_until_supervisord_has_noticed() {
    let pool = slow_poll(&["node1", "node2"]);
    let (notices, rx) = mpsc::channel(16);
    let running = pool.run_with(|daemon| daemon.notices = Some(rx));
    until("the first round", MINUTE, || async {
        (running.shared.snapshot.read().unwrap().nodes.len() == 2).then_some(())
    })
    .await;
    wait(Duration::from_secs(1)).await;
    let pid = pool.supervisor.pid("node2");
    // The process is gone, but supervisord has not reaped it yet: still RUNNING.
    notices
        .send(Notice::Exited {
            supervisor: "default".into(),
            pid,
        })
        .await
        .unwrap();
    wait(Duration::from_millis(40)).await;
    assert!(pool.calls.matching("start").is_empty());
    pool.supervisor.set("node2", ProcessState::Exited);
    // Asked again every few milliseconds: started well before the next poll.
    until("node2 is started", Duration::from_millis(50), || async {
        (!pool.calls.matching("start node2").is_empty()).then_some(())
    })
    .await;
    // An exit of a pid nodekeeper does not know of is no reason to look.
    notices
        .send(Notice::Exited {
            supervisor: "default".into(),
            pid: 999_999,
        })
        .await
        .unwrap();
    running.stop().await;
}

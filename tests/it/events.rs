//! The daemon with supervisord's generated `[eventlistener]`: a crash is acted on at once, not
//! at the next poll; with the listener killed, the poll still catches a crash (no lost restart).

use std::path::Path;
use std::time::Duration;

use nodekeeper::restart_log::RestartAction;
use nodekeeper::supervisor::ProcessState;
use nodekeeper::supervisor::conf::{ListenerSpec, render_listener};
use serde_json::json;
use tokio::time::Instant;

use crate::support::{DaemonConfig, NODEKEEPER, Supervisord, kill_pid as kill9, wait_until};

/// The listener's namespec in supervisord.
const LISTENER: &str = "nodekeeper-events:nodekeeper-events";

async fn running_pid(supervisord: &Supervisord, name: &str) -> u32 {
    wait_until(
        &format!("{name} RUNNING"),
        Duration::from_secs(20),
        || async {
            let info = supervisord.client().get_process_info(name).await.ok()?;
            (info.state == ProcessState::Running).then_some(info.pid)
        },
    )
    .await
}

/// Waits for a `start` row of `node` after `since` rows; how long it took from `from`.
async fn start_row(config: &DaemonConfig, node: &str, since: usize, from: Instant) -> Duration {
    wait_until(
        &format!("a start row for {node}"),
        Duration::from_secs(30),
        || async {
            config
                .rows()
                .iter()
                .skip(since)
                .any(|row| row.node == node && row.action == RestartAction::Start)
                .then(|| from.elapsed())
        },
    )
    .await
}

#[tokio::test]
async fn with_the_listener_a_crash_is_acted_on_at_once_and_without_it_the_poll_still_catches_it() {
    let place = tempfile::Builder::new()
        .prefix("nk-evd-")
        .tempdir()
        .unwrap();
    let socket = place.path().join("nodekeeper-events.sock");
    let spec = ListenerSpec::nodekeeper(Path::new(NODEKEEPER), "default", &socket, 2);
    let supervisord = Supervisord::builder()
        .sims(2)
        .section(&render_listener(&spec).expect("the listener renders"))
        .start()
        .await;
    // A poll every 6 s: a reaction within a second is the events' doing.
    let mut config = DaemonConfig::write(
        &supervisord,
        json!({
            "thresholds": {"tick_interval": "6s"},
            "restart_log": {"path": place.path().join("restarts.csv")},
        }),
    );
    config.restart_log = place.path().join("restarts.csv");
    let _daemon = config.start(&[]).await;
    running_pid(&supervisord, LISTENER).await;
    // The daemon's inbox is bound beside the state file; the listener connects to it.
    wait_until("the inbox socket", Duration::from_secs(10), || async {
        socket.exists().then_some(())
    })
    .await;

    for round in 0..3 {
        let node = ["node1", "node2"][round % 2];
        let pid = running_pid(&supervisord, node).await;
        // Let the first poll pass, and the node run past supervisord's startsecs.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let rows = config.rows().len();
        let killed = Instant::now();
        kill9(pid);
        let took = start_row(&config, node, rows, killed).await;
        assert!(
            took < Duration::from_millis(1500),
            "crash {round}: start {took:?} after the kill, with a 6 s poll"
        );
        let row = config.rows().into_iter().last().unwrap();
        assert_eq!(row.reason, "crashed (EXITED)");
    }

    // The listener killed (supervisord restarts it) at the moment a node crashes: the event may
    // be lost, the restart is not.
    let listener = running_pid(&supervisord, LISTENER).await;
    let pid = running_pid(&supervisord, "node1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rows = config.rows().len();
    kill9(listener);
    let killed = Instant::now();
    kill9(pid);
    let took = start_row(&config, "node1", rows, killed).await;
    assert!(took < Duration::from_secs(15), "{took:?}");
    let again = running_pid(&supervisord, LISTENER).await;
    assert_ne!(again, listener, "supervisord restarted the listener");
}

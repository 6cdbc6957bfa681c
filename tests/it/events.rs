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

/// Sends `signal` (e.g. `STOP`, `CONT`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// supervisord with two sims and the generated listener, and a daemon that polls every
/// `tick`; the restart log in the place's directory.
async fn pool_with_listener(
    place: &tempfile::TempDir,
    tick: &str,
    extra: &str,
) -> (Supervisord, DaemonConfig) {
    let socket = place.path().join("nodekeeper-events.sock");
    let spec = ListenerSpec::nodekeeper(Path::new(NODEKEEPER), "default", &socket, 2);
    let supervisord = Supervisord::builder()
        .sims(2)
        .section(&render_listener(&spec).expect("the listener renders"))
        .section(extra)
        .start()
        .await;
    let mut config = DaemonConfig::write(
        &supervisord,
        json!({
            "thresholds": {"tick_interval": tick},
            "restart_log": {"path": place.path().join("restarts.csv")},
        }),
    );
    config.restart_log = place.path().join("restarts.csv");
    (supervisord, config)
}

#[tokio::test]
async fn supervisord_restarted_under_the_daemon_events_flow_again_and_nothing_is_restarted() {
    let place = tempfile::Builder::new()
        .prefix("nk-evr-")
        .tempdir()
        .unwrap();
    let (mut supervisord, config) = pool_with_listener(&place, "6s", "").await;
    let daemon = config.start(&[]).await;
    let listener = running_pid(&supervisord, LISTENER).await;
    // A crash acted on through the events: the daemon has seen serials from this supervisord.
    let pid = running_pid(&supervisord, "node1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed = Instant::now();
    kill9(pid);
    start_row(&config, "node1", 0, killed).await;
    running_pid(&supervisord, "node1").await;

    // supervisord dies with its programs and comes back: it starts the nodes and a new
    // listener, whose serials start again.
    supervisord.kill_and_restart().await;
    let again = running_pid(&supervisord, LISTENER).await;
    assert_ne!(again, listener);
    daemon
        .wait_for_log(
            "supervisord's event serials started again (it restarted): observing everything",
            Duration::from_secs(20),
        )
        .await;
    // supervisord started the nodes itself: nodekeeper has nothing to do.
    let rows = config.rows().len();
    assert_eq!(rows, 1, "{:?}", config.rows());
    for node in ["node1", "node2"] {
        running_pid(&supervisord, node).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(config.rows().len(), rows, "{:?}", config.rows());

    // The new listener reaches the daemon: a crash is acted on at once again.
    let pid = running_pid(&supervisord, "node2").await;
    let killed = Instant::now();
    kill9(pid);
    let took = start_row(&config, "node2", rows, killed).await;
    assert!(
        took < Duration::from_millis(1500),
        "start {took:?} after the kill, with a 6 s poll"
    );
}

#[tokio::test]
async fn an_overflowing_event_buffer_is_a_gap_and_the_daemon_observes_everything() {
    let place = tempfile::Builder::new()
        .prefix("nk-evo-")
        .tempdir()
        .unwrap();
    // Twenty programs to make events with (`flap:*`), more than the listener's buffer (64) holds.
    let flap = format!(
        "[program:flap]\ncommand=sleep 1000\nnumprocs=20\nprocess_name=%(program_name)s_%(process_num)02d\n\
         autostart=false\nautorestart=false\nstartsecs=0\nstopsignal=KILL\n\
         stdout_logfile={}\n\n",
        place.path().join("flap.log").display()
    );
    // A poll every two minutes: what happens within the test is the events' doing.
    let (supervisord, config) = pool_with_listener(&place, "120s", &flap).await;
    let daemon = config.start(&[]).await;
    let listener = running_pid(&supervisord, LISTENER).await;
    let pid = running_pid(&supervisord, "node1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The listener stops taking events; node1 crashes, then 160 more events overflow the
    // buffer, which drops the oldest: the crash's among them.
    signal(listener, "STOP");
    kill9(pid);
    supervisord
        .wait_for_state("node1", ProcessState::Exited, Duration::from_secs(10))
        .await;
    for verb in ["start", "stop", "start", "stop"] {
        let out = crate::support::run(supervisord.ctl().args([verb, "flap:*"])).await;
        assert_eq!(out.code, 0, "supervisorctl {verb} flap:*: {out:?}");
    }
    wait_until("the buffer overflowed", Duration::from_secs(20), || async {
        supervisord
            .main_log()
            .contains("event buffer overflowed")
            .then_some(())
    })
    .await;
    assert!(config.rows().is_empty(), "{:?}", config.rows());

    // The listener goes on: the daemon sees the serials jump and observes everything.
    let resumed = Instant::now();
    signal(listener, "CONT");
    daemon
        .wait_for_log("supervisord event(s) missed", Duration::from_secs(20))
        .await;
    let took = start_row(&config, "node1", 0, resumed).await;
    assert!(
        took < Duration::from_secs(10),
        "node1 started {took:?} after the listener resumed, with a 2 min poll"
    );
    assert_eq!(config.rows()[0].reason, "crashed (EXITED)");
}

//! A job that fails half way: the stop went through, the start did not.

use std::time::Duration;

use super::{Pool, until};
use crate::status::{ActionState, NodeAction};
use crate::supervisor::{Fault, ProcessState, SupervisorError};

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn a_restart_whose_start_fails_is_reported_and_finished_by_the_next_tick() {
    let pool = Pool::new(&["node1", "node2"], serde_json::json!({}));
    let running = pool.run();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pool.supervisor.fail_next_start(SupervisorError::Timeout {
        endpoint: "fake".into(),
        method: "supervisor.startProcess".into(),
        timeout: Duration::from_secs(30),
    });
    let view = running.ask("node1", NodeAction::Restart).await.unwrap();
    let done = running.finished(&view.id).await;
    let ActionState::Failed { error } = &done.state else {
        panic!("the restart did not fail: {done:?}");
    };
    assert!(error.starts_with("start failed"), "{error}");
    // nodekeeper's own stop left it STOPPED: the next tick starts it again, as a retry, not
    // as an operator's stop to respect.
    until("node1 runs again", MINUTE, || async {
        (pool.supervisor.state("node1") == ProcessState::Running).then_some(())
    })
    .await;
    assert_eq!(
        pool.calls.all(),
        ["stop node1", "start node1", "start node1"]
    );
    let rows = pool.rows();
    assert_eq!(
        rows,
        [
            "node1 stop operator request",
            "node1 start operator request",
            "node1 start retry after a failed start"
        ]
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_start_that_supervisord_refuses_is_a_failure_and_the_crash_rule_takes_over() {
    let pool = Pool::new(&["node1", "node2"], serde_json::json!({}));
    let running = pool.run();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let view = running.ask("node2", NodeAction::Stop).await.unwrap();
    running.finished(&view.id).await;
    // supervisord cannot spawn it: the program goes FATAL, as supervisord's would.
    pool.supervisor.fail_next_start(SupervisorError::Fault {
        method: "supervisor.startProcess".into(),
        fault: Fault::SpawnError("node2".into()),
    });
    let view = running.ask("node2", NodeAction::Start).await.unwrap();
    let done = running.finished(&view.id).await;
    let ActionState::Failed { error } = &done.state else {
        panic!("the start did not fail: {done:?}");
    };
    assert!(error.starts_with("start failed"), "{error}");
    until("node2 runs", MINUTE, || async {
        (pool.supervisor.state("node2") == ProcessState::Running).then_some(())
    })
    .await;
    assert_eq!(
        pool.rows(),
        [
            "node2 stop operator request",
            "node2 start operator request",
            "node2 start crashed (FATAL)"
        ]
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_stop_whose_answer_is_lost_counts_as_ours_and_the_node_is_started_again() {
    let pool = Pool::new(&["node1", "node2"], serde_json::json!({}));
    let running = pool.run();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The stop happens, but its answer times out: the restart fails half way with the program
    // STOPPED. It must not be left stopped for good.
    pool.supervisor.lose_next_stop_answer();
    let view = running.ask("node1", NodeAction::Restart).await.unwrap();
    let done = running.finished(&view.id).await;
    let ActionState::Failed { error } = &done.state else {
        panic!("the restart did not fail: {done:?}");
    };
    assert!(error.starts_with("stop failed"), "{error}");
    until("node1 runs again", MINUTE, || async {
        (pool.supervisor.state("node1") == ProcessState::Running).then_some(())
    })
    .await;
    assert_eq!(pool.calls.all(), ["stop node1", "start node1"]);
    assert_eq!(
        pool.rows(),
        [
            "node1 stop operator request",
            "node1 start retry after a failed start"
        ]
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_that_panics_frees_its_node_and_its_program_is_started_again() {
    let pool = Pool::new(&["node1", "node2"], serde_json::json!({}));
    let running = pool.run();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pool.supervisor.panic_next_start();
    let view = running.ask("node1", NodeAction::Restart).await.unwrap();
    let done = running.finished(&view.id).await;
    let ActionState::Failed { error } = &done.state else {
        panic!("the restart did not fail: {done:?}");
    };
    assert!(error.contains("the job failed"), "{error}");
    // The node is not busy for ever: it is started again, and takes requests again.
    until("node1 runs again", MINUTE, || async {
        (pool.supervisor.state("node1") == ProcessState::Running).then_some(())
    })
    .await;
    let view = running.ask("node1", NodeAction::Restart).await.unwrap();
    assert_eq!(
        running.finished(&view.id).await.state,
        ActionState::Done {
            message: "node1: restarted".into()
        }
    );
    running.stop().await;
}

/// A restart log on a disk that blocks every append until the gate opens.
struct StuckDisk {
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
    rows: std::sync::Mutex<Vec<String>>,
}

impl StuckDisk {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn is_open(&self) -> bool {
        *self.open.lock().unwrap()
    }
}

impl crate::daemon::disk::RowSink for StuckDisk {
    fn append(&self, row: &crate::restart_log::RestartRow) -> Result<(), String> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        self.rows
            .lock()
            .unwrap()
            .push(format!("{} {}", row.node, row.action.as_str()));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_stuck_disk_holds_up_neither_the_loop_nor_the_api() {
    let pool = Pool::new(&["node1", "node2"], serde_json::json!({}));
    let disk = std::sync::Arc::new(StuckDisk {
        open: std::sync::Mutex::new(false),
        opened: std::sync::Condvar::new(),
        rows: std::sync::Mutex::new(Vec::new()),
    });
    let sink = std::sync::Arc::clone(&disk);
    let running = pool.run_with(move |daemon| daemon.out.log = Some(sink));
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A watchdog opens the gate after a while (real time), whatever happens.
    let watchdog = std::sync::Arc::clone(&disk);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        watchdog.open();
    });
    // The restart's first row waits for the disk ...
    let restart = running.ask("node1", NodeAction::Restart).await.unwrap();
    // ... and meanwhile the loop answers requests about other nodes at once.
    let hold = running.ask("node2", NodeAction::Hold).await.unwrap();
    assert!(
        !disk.is_open(),
        "the request was answered only once the disk moved again"
    );
    assert_eq!(
        hold.state,
        ActionState::Done {
            message: "node2: held".into()
        }
    );
    // The row is still written before supervisord is asked.
    assert!(pool.calls.all().is_empty(), "{:?}", pool.calls.all());
    disk.open();
    running.finished(&restart.id).await;
    assert_eq!(*disk.rows.lock().unwrap(), ["node1 stop", "node1 start"]);
    assert_eq!(pool.calls.all(), ["stop node1", "start node1"]);
    running.stop().await;
}

//! `Supervisor::tail_log` against a real supervisord: the last bytes of a program's stdout and
//! stderr logs after it exited, stdout first; a redirected stderr; a tail that starts inside a
//! multibyte character; an unknown program. The nodeos simulator's dirty-database exit is read
//! back and recognised by the nodeos adapter's marker, as the restore job will.

use std::path::Path;
use std::time::Duration;

use nodekeeper::chain::nodeos::{Node, NodeosApi, Settings};
use nodekeeper::chain::{ChainNode, corrupt_database_seen};
use nodekeeper::supervisor::{Fault, ProcessState, Supervisor, SupervisorError};
use nodekeeper_sim::nodeos::api::{DIRTY_DB_MESSAGE, DIRTY_MARKER};

use crate::support::{Supervisord, sim_binary};

const EXITS: Duration = Duration::from_secs(10);

/// A `[program:x]` that runs `command` once (up at once, never restarted), its stderr in a log of
/// its own unless `redirect_stderr`.
fn section(name: &str, command: &str, logs: &Path, redirect_stderr: bool) -> String {
    let stderr = if redirect_stderr {
        "redirect_stderr=true\n".to_string()
    } else {
        format!(
            "redirect_stderr=false\nstderr_logfile={}\n",
            logs.join(format!("{name}.err")).display()
        )
    };
    format!(
        "[program:{name}]\ncommand={command}\nautostart=true\nautorestart=false\nstartsecs=0\n\
         startretries=0\nstdout_logfile={}\n{stderr}",
        logs.join(format!("{name}.out")).display()
    )
}

/// A nodeos node for the adapter's marker (its API is never called here).
fn nodeos() -> Node {
    let url = reqwest::Url::parse("http://127.0.0.1:1").unwrap();
    Node::new(Settings::new(url, None), &NodeosApi::new())
}

#[tokio::test]
async fn the_tail_of_an_exited_program_holds_its_stdout_then_its_stderr() {
    let logs = tempfile::tempdir().unwrap();
    let data_dir = logs.path().join("bp1-data");
    let marker_file = data_dir.join(DIRTY_MARKER);
    std::fs::create_dir_all(marker_file.parent().unwrap()).unwrap();
    std::fs::write(&marker_file, "").unwrap();
    // 1000 lines on stdout (about 9 KB), then the nodeos dirty-database line on stderr, then exit 2.
    let dirty = format!(
        "/bin/sh -c 'i=0; while [ $i -lt 1000 ]; do i=$((i+1)); echo out-$i; done; \
         echo \"error 2026-12-07T10:00:00.100 nodeos main.cpp:218 main ] {DIRTY_DB_MESSAGE}\" >&2; \
         exit 2'"
    );
    let sim = format!(
        "{} --chain nodeos --name bp1 --listen 127.0.0.1:0 --data-dir {}",
        sim_binary(),
        data_dir.display()
    );
    let merged = "/bin/sh -c 'echo to-stdout; echo to-stderr >&2; exit 2'";
    // 9 two-byte characters and a line break: 19 bytes.
    let accents = "/bin/sh -c 'echo ééééééééé'";
    let supervisord = Supervisord::builder()
        .section(&section("dirty", &dirty, logs.path(), false))
        .section(&section("bp1", &sim, logs.path(), false))
        .section(&section("merged", merged, logs.path(), true))
        .section(&section("accents", accents, logs.path(), true))
        .start()
        .await;
    for name in ["dirty", "bp1", "merged", "accents"] {
        supervisord
            .wait_for_state(name, ProcessState::Exited, EXITS)
            .await;
    }
    let client = supervisord.client();
    let supervisor: &dyn Supervisor = &client;
    let marker = nodeos().corrupt_database_marker().unwrap();

    // Both logs, stdout first, each cut to its last bytes.
    let tail = supervisor.tail_log("dirty", 4096).await.unwrap();
    let (stdout, stderr) = tail.split_once("error ").expect("the stderr line");
    assert!(stdout.ends_with("out-999\nout-1000\n"), "{tail:?}");
    assert!(
        !stdout.contains("out-1\n"),
        "more than 4096 bytes: {tail:?}"
    );
    assert!(stdout.len() <= 4096, "{}", stdout.len());
    assert!(
        stderr.ends_with(&format!("{DIRTY_DB_MESSAGE}\n")),
        "{tail:?}"
    );
    assert!(corrupt_database_seen(marker, &tail), "{tail:?}");
    let short = supervisor.tail_log("dirty", 8).await.unwrap();
    assert_eq!(short, "ut-1000\nequired\n", "8 bytes of each log");

    // The simulator's real exit: status 2 and nodeos's line, seen through the adapter's marker.
    let info = client.get_process_info("bp1").await.unwrap();
    assert_eq!(info.exitstatus, 2, "{info:?}");
    let tail = supervisor.tail_log("bp1", 4096).await.unwrap();
    assert!(corrupt_database_seen(marker, &tail), "{tail:?}");
    // A program that printed something else is not taken for a dirty database.
    let tail = supervisor.tail_log("merged", 4096).await.unwrap();
    assert!(!corrupt_database_seen(marker, &tail), "{tail:?}");

    // Stderr redirected: everything is in the stdout log, once, in the order written.
    assert_eq!(tail, "to-stdout\nto-stderr\n");

    // The last 10 bytes begin inside a character (supervisord cannot decode them): the tail
    // starts at the next character instead.
    let tail = supervisor.tail_log("accents", 10).await.unwrap();
    assert_eq!(tail, "éééé\n");
    let tail = supervisor.tail_log("accents", 11).await.unwrap();
    assert_eq!(tail, "ééééé\n");

    match supervisor.tail_log("nosuch", 100).await {
        Err(SupervisorError::Fault {
            fault: Fault::BadName(name),
            ..
        }) => assert_eq!(name, "nosuch"),
        other => panic!("expected BAD_NAME, got {other:?}"),
    }
}

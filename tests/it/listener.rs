//! The event listener against a real supervisord running the generated `[eventlistener]`
//! section: events reach the daemon's inbox in order, with non-ASCII program names; without an
//! inbox every event is still answered OK and nothing overflows; exit hints come from pidfds
//! well before supervisord reports the exit; stdout carries only the protocol.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nodekeeper::listener::{Continuity, Inbox, Notice, ProgramEvent, SerialTracker};
use nodekeeper::supervisor::ProcessState;
use nodekeeper::supervisor::conf::{ListenerSpec, render_listener};
use tokio::io::AsyncWriteExt as _;
use tokio::time::Instant;

use crate::support::{NODEKEEPER, Program, Supervisord, kill_pid as kill9, run};

/// The listener's namespec in supervisord.
const LISTENER: &str = "nodekeeper-events:nodekeeper-events";

/// Where the inbox and the listener's log go: outside supervisord's directory, so that the
/// section can be rendered before supervisord starts.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        Place {
            dir: tempfile::Builder::new().prefix("nk-ev-").tempdir().unwrap(),
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("nodekeeper-events.sock")
    }

    fn listener_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nodekeeper-events.log")).unwrap_or_default()
    }

    /// The generated section for the default supervisord with `n_nodes` nodes, logging at `log`.
    fn section(&self, n_nodes: usize, log: &str) -> String {
        let mut spec =
            ListenerSpec::nodekeeper(Path::new(NODEKEEPER), "default", &self.socket(), n_nodes);
        spec.command.extend(["--log".to_string(), log.to_string()]);
        render_listener(&spec).expect("the listener renders")
    }
}

/// The next notice within `within`, or a panic naming `what`.
async fn next(inbox: &mut Inbox, what: &str, within: Duration) -> Notice {
    tokio::time::timeout(within, inbox.next())
        .await
        .unwrap_or_else(|_| panic!("no notice within {within:?} while waiting for {what}"))
}

/// Events until one matches `wanted` (hints skipped), each noted by `tracker`; returns it and
/// the continuity of every event seen.
async fn event_until(
    inbox: &mut Inbox,
    tracker: &mut SerialTracker,
    what: &str,
    wanted: impl Fn(&ProgramEvent) -> bool,
) -> (ProgramEvent, Vec<Continuity>) {
    let mut seen = Vec::new();
    loop {
        if let Notice::Event(event) = next(inbox, what, Duration::from_secs(15)).await {
            seen.push(tracker.note(&event));
            if wanted(&event) {
                return (event, seen);
            }
        }
    }
}

async fn listener_pid(supervisord: &Supervisord) -> u32 {
    crate::support::wait_until("the listener to run", Duration::from_secs(15), || async {
        let info = supervisord.client().get_process_info(LISTENER).await.ok()?;
        (info.state == ProcessState::Running).then_some(info.pid)
    })
    .await
}

#[tokio::test]
async fn a_crash_reaches_the_inbox_as_exited_with_its_pid_in_serial_order() {
    let place = Place::new();
    let mut inbox = Inbox::bind(&place.socket()).await.expect("bind the inbox");
    let supervisord = Supervisord::builder()
        .program(Program::new("sleeper", "sleep 1000"))
        .program(Program::new("schläfer", "sleep 1000"))
        .section(&place.section(2, "info"))
        .start()
        .await;
    let client = supervisord.client();
    let mut tracker = SerialTracker::new();
    let mut continuity = Vec::new();
    // Both RUNNING events, in whatever order supervisord started the programs.
    let mut running = std::collections::BTreeMap::new();
    while running.len() < 2 {
        let (event, seen) = event_until(&mut inbox, &mut tracker, "RUNNING", |event| {
            event.state == ProcessState::Running && event.program != "nodekeeper-events"
        })
        .await;
        continuity.extend(seen);
        assert_eq!(event.supervisor, "default");
        running.insert(event.program.clone(), event.pid);
    }
    for name in ["sleeper", "schläfer"] {
        assert_eq!(
            running.get(name).copied().flatten(),
            Some(client.get_process_info(name).await.unwrap().pid),
            "{running:?}"
        );
    }
    for name in ["schläfer", "sleeper"] {
        let pid = client.get_process_info(name).await.unwrap().pid;
        kill9(pid);
        let (exited, seen) = event_until(&mut inbox, &mut tracker, "EXITED", |event| {
            event.program == name && event.state == ProcessState::Exited
        })
        .await;
        continuity.extend(seen);
        assert_eq!(
            exited,
            ProgramEvent {
                supervisor: "default".into(),
                serial: exited.serial,
                pool_serial: exited.pool_serial,
                program: name.into(),
                group: name.into(),
                from_state: ProcessState::Running,
                state: ProcessState::Exited,
                expected: Some(false),
                pid: Some(pid),
                tries: None,
            }
        );
    }
    // Every event came, in order: the first is First, each other the next pool serial.
    assert_eq!(continuity.first(), Some(&Continuity::First));
    assert!(
        continuity[1..].iter().all(|c| *c == Continuity::Next),
        "{continuity:?}"
    );
    let log = supervisord.main_log();
    assert!(!log.contains("UNKNOWN"), "{log}");
}

#[tokio::test]
async fn without_an_inbox_every_event_is_answered_and_a_gap_shows_once_it_is_back() {
    let place = Place::new();
    let mut inbox = Inbox::bind(&place.socket()).await.expect("bind the inbox");
    let supervisord = Supervisord::builder()
        .program(Program::new("flip", "sleep 1000").manual().startsecs(0))
        .section(&place.section(1, "info"))
        .start()
        .await;
    let client = supervisord.client();
    let pid = listener_pid(&supervisord).await;
    let mut tracker = SerialTracker::new();
    client.start_process("flip", true).await.unwrap();
    event_until(&mut inbox, &mut tracker, "flip RUNNING", |event| {
        event.program == "flip" && event.state == ProcessState::Running
    })
    .await;
    drop(inbox);

    // 25 stops and starts, 4 events each: more than the buffer of 64, with nobody to take them.
    for _ in 0..25 {
        client.stop_process("flip", true).await.unwrap();
        client.start_process("flip", true).await.unwrap();
    }
    client.stop_process("flip", true).await.unwrap();
    crate::support::wait_until(
        "the listener to drop the last event",
        Duration::from_secs(10),
        || async { place.listener_log().contains("not answering").then_some(()) },
    )
    .await;
    let info = client.get_process_info(LISTENER).await.unwrap();
    assert_eq!(
        (info.state, info.pid),
        (ProcessState::Running, pid),
        "{}",
        supervisord.main_log()
    );

    let mut inbox = Inbox::bind(&place.socket()).await.expect("bind again");
    client.start_process("flip", true).await.unwrap();
    let (_, seen) = event_until(&mut inbox, &mut tracker, "flip STARTING", |event| {
        event.program == "flip" && event.state == ProcessState::Starting
    })
    .await;
    match seen.first() {
        // About 100 events went by (the inbox's last moments may have taken a few): more than the
        // buffer of 64, all answered.
        Some(Continuity::Gap { missed }) => assert!(*missed > 64, "{seen:?}"),
        other => panic!("no gap: {other:?} ({seen:?})"),
    }
    let log = supervisord.main_log();
    assert!(!log.contains("UNKNOWN"), "{log}");
    assert!(!log.contains("overflowed"), "{log}");
    assert!(!log.contains("FAIL"), "{log}");
}

/// supervisord 4.3 reaps a killed child up to a second late and reports it on its next wake-up;
/// the listener's pidfd sees the exit at once. Asked then (as the daemon will be on a hint),
/// supervisord wakes, reaps and sends the EXITED event within milliseconds.
#[tokio::test]
async fn an_exit_hint_comes_well_before_supervisord_reports_the_exit() {
    let place = Place::new();
    let mut inbox = Inbox::bind(&place.socket()).await.expect("bind the inbox");
    let supervisord = Supervisord::builder()
        .program(Program::new("node1", "sleep 1000"))
        .section(&place.section(1, "info"))
        .start()
        .await;
    let client = supervisord.client();
    let mut tracker = SerialTracker::new();
    let mut hints = Vec::new();
    let mut events = Vec::new();
    let mut poked_events = Vec::new();
    for round in 0..8 {
        // Odd rounds do what the daemon does on a hint: ask supervisord, which wakes it.
        let poke = round % 2 == 1;
        let (running, _) = event_until(&mut inbox, &mut tracker, "RUNNING", |event| {
            event.program == "node1" && event.state == ProcessState::Running
        })
        .await;
        let pid = running.pid.expect("RUNNING has a pid");
        // The listener opens the pidfd as it forwards the RUNNING event; give it a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let killed = Instant::now();
        kill9(pid);
        let (mut hint, mut event) = (None, None);
        while hint.is_none() || event.is_none() {
            match next(
                &mut inbox,
                "the hint and the event",
                Duration::from_secs(10),
            )
            .await
            {
                Notice::Exited {
                    supervisor,
                    pid: seen,
                } if seen == pid => {
                    assert_eq!(supervisor, "default");
                    hint.get_or_insert(killed.elapsed());
                    if poke {
                        let info = client.get_process_info("node1").await.unwrap();
                        eprintln!("round {round}: asked after the hint: {}", info.state);
                    }
                }
                Notice::Event(e) if e.state == ProcessState::Exited && e.pid == Some(pid) => {
                    tracker.note(&e);
                    event.get_or_insert(killed.elapsed());
                }
                Notice::Event(e) => {
                    tracker.note(&e);
                }
                Notice::Exited { .. } => {}
            }
        }
        let (hint, event) = (hint.unwrap(), event.unwrap());
        eprintln!(
            "round {round}: kill → hint {hint:?}, kill → EXITED event {event:?} (poked: {poke})"
        );
        assert!(hint < Duration::from_millis(500), "hint after {hint:?}");
        hints.push(hint);
        if poke {
            // What the daemon relies on: asked, supervisord reaps and reports at once.
            assert!(event < Duration::from_millis(500), "event after {event:?}");
            poked_events.push(event);
        } else {
            events.push(event);
        }
        client.start_process("node1", false).await.unwrap();
    }
    hints.sort();
    events.sort();
    poked_events.sort();
    eprintln!(
        "kill → hint: median {:?}, max {:?}; kill → EXITED event: median {:?}, max {:?}; \
         with supervisord asked at the hint: median {:?}, max {:?}",
        hints[hints.len() / 2],
        hints[hints.len() - 1],
        events[events.len() / 2],
        events[events.len() - 1],
        poked_events[poked_events.len() / 2],
        poked_events[poked_events.len() - 1]
    );
}

/// The listener's stdout is the protocol and nothing else, even with every log on.
#[tokio::test]
async fn stdout_carries_only_the_protocol_even_at_trace_logging() {
    let place = Place::new();
    let payload = "processname:schläfer groupname:schläfer from_state:RUNNING expected:0 pid:2766";
    let mut input = String::new();
    for serial in 1..=2 {
        input.push_str(&format!(
            "ver:3.0 server:supervisor serial:{serial} pool:nodekeeper-events poolserial:{serial} \
             eventname:PROCESS_STATE_EXITED len:{}\n{payload}",
            payload.chars().count()
        ));
    }
    let mut child = tokio::process::Command::new(NODEKEEPER)
        .args(["listen", "--log", "trace", "--socket"])
        .arg(place.socket())
        .env_clear()
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nodekeeper listen");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the listener ends with its input")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "READY\nRESULT 2\nOKREADY\nRESULT 2\nOKREADY\n",
        "{stderr}"
    );
    assert!(stderr.contains("TRACE"), "{stderr}");
    assert!(stderr.contains("not answering"), "{stderr}");
}

#[tokio::test]
async fn bad_input_and_bad_options_exit_with_their_codes() {
    let place = Place::new();
    let mut child = tokio::process::Command::new(NODEKEEPER)
        .args(["listen", "--socket"])
        .arg(place.socket())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"RESULT 2\nOK\n").await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "READY\n");
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad event header"));

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unknown = run(tokio::process::Command::new(NODEKEEPER)
        .current_dir(root.join("configs"))
        .env_clear()
        .env("NODEKEEPER_SUPERVISOR_PASSWORD", "x")
        .args(["listen", "-c", "nodekeeper.toml", "--supervisor", "nosuch"])
        .stdin(Stdio::null()))
    .await;
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains("nosuch"), "{unknown:?}");
    assert_eq!(unknown.stdout, "");

    let broken = place.dir.path().join("broken.toml");
    std::fs::write(&broken, "[supervisor\nurl = 1\n").unwrap();
    let bad = run(tokio::process::Command::new(NODEKEEPER)
        .env_clear()
        .args(["listen", "-c"])
        .arg(&broken)
        .stdin(Stdio::null()))
    .await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert_eq!(bad.stdout, "");
    assert!(bad.stderr.contains("broken.toml"), "{bad:?}");
}

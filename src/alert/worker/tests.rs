//! The worker with an in-memory mailer and paused time: dedupe and its counts, outages as pairs,
//! retries with a backoff per mail, a slow server never blocking the sender; with real time and
//! a temporary directory, the outbox across a stop and a start.

use std::sync::Mutex;
use std::time::SystemTime;

use super::*;
use crate::alert::template::Templates;

const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Records every attempt; fails the first `failures` of them; takes `delay` per attempt.
#[derive(Clone, Default)]
struct MemoryMailer {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    delivered: Vec<Mail>,
    attempts: Vec<Instant>,
    /// Subjects of the attempts, in order.
    tried: Vec<String>,
    failures: u32,
    delay: Duration,
    /// Mails whose subject holds this fail (transiently), always.
    failing_for: Option<String>,
    /// Mails whose subject holds this are rejected.
    rejecting: Option<String>,
    /// Every mail fails (transiently).
    down: bool,
}

impl MemoryMailer {
    fn failing(failures: u32) -> MemoryMailer {
        let mailer = MemoryMailer::default();
        mailer.inner.lock().expect("lock").failures = failures;
        mailer
    }

    fn failing_for(needle: &str) -> MemoryMailer {
        let mailer = MemoryMailer::default();
        mailer.inner.lock().expect("lock").failing_for = Some(needle.into());
        mailer
    }

    fn rejecting(needle: &str) -> MemoryMailer {
        let mailer = MemoryMailer::default();
        mailer.inner.lock().expect("lock").rejecting = Some(needle.into());
        mailer
    }

    fn down() -> MemoryMailer {
        let mailer = MemoryMailer::default();
        mailer.inner.lock().expect("lock").down = true;
        mailer
    }

    fn tried(&self) -> Vec<String> {
        self.inner.lock().expect("lock").tried.clone()
    }

    fn slow(delay: Duration) -> MemoryMailer {
        let mailer = MemoryMailer::default();
        mailer.inner.lock().expect("lock").delay = delay;
        mailer
    }

    fn subjects(&self) -> Vec<String> {
        let inner = self.inner.lock().expect("lock");
        inner.delivered.iter().map(|m| m.subject.clone()).collect()
    }

    fn delivered(&self) -> Vec<Mail> {
        self.inner.lock().expect("lock").delivered.clone()
    }

    fn attempts(&self) -> Vec<Instant> {
        self.inner.lock().expect("lock").attempts.clone()
    }
}

impl Mailer for MemoryMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let (delay, fail, reject) = {
            let mut inner = self.inner.lock().expect("lock");
            inner.attempts.push(Instant::now());
            inner.tried.push(mail.subject.clone());
            let holds = |needle: &Option<String>| {
                needle
                    .as_deref()
                    .is_some_and(|needle| mail.subject.contains(needle))
            };
            let fail = inner.failures > 0 || inner.down || holds(&inner.failing_for);
            let reject = holds(&inner.rejecting);
            inner.failures = inner.failures.saturating_sub(1);
            (inner.delay, fail, reject)
        };
        tokio::time::sleep(delay).await;
        if reject {
            return Err(MailError {
                server: "memory:25".into(),
                reason: "permanent error (550): no such user".into(),
                kind: MailErrorKind::Rejected,
            });
        }
        if fail {
            return Err(MailError::transient("memory:25", "connection refused"));
        }
        self.inner
            .lock()
            .expect("lock")
            .delivered
            .push(mail.clone());
        Ok(())
    }
}

struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_311_547)
    }
}

fn options() -> WorkerOptions {
    WorkerOptions::new(WINDOW)
}

fn spawn(mailer: &MemoryMailer, options: WorkerOptions) -> AlertWorker {
    AlertWorker::spawn(
        mailer.clone(),
        Templates::shipped().expect("shipped templates"),
        Facts::test(),
        Arc::new(FixedClock),
        options,
    )
}

fn crashed(node: &str) -> Event {
    Event::NodeRestarted {
        node: node.into(),
        reason: "crashed".into(),
        detail: "crashed (EXITED)".into(),
        restart: false,
    }
}

fn unreachable() -> Event {
    Event::SupervisorUnreachable {
        supervisor: "default".into(),
        error: "connection refused".into(),
    }
}

fn back(secs: u64) -> Event {
    Event::SupervisorBack {
        supervisor: "default".into(),
        after: Duration::from_secs(secs),
    }
}

fn alert(event: &Event) -> Alert {
    Alert::from_event(event, &Facts::test(), FixedClock.now()).expect("mailed")
}

/// `Some(suppressed)` when mailed, `None` when suppressed.
fn verdict(verdict: Verdict) -> Option<u64> {
    match verdict {
        Verdict::Send(alert) => Some(alert.values["suppressed"].as_u64().expect("a count")),
        Verdict::Suppress => None,
    }
}

/// Lets the worker run until it is idle (paused time advances only when every task waits).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

async fn advance(duration: Duration) {
    tokio::time::sleep(duration).await;
    settle().await;
}

#[test]
fn the_same_alert_for_the_same_node_is_mailed_once_per_window_with_a_count() {
    let start = Instant::now();
    let at = |secs: u64| start + Duration::from_secs(secs);
    let mut dedupe = Dedupe::new(WINDOW);
    let table: &[(u64, Event, Option<u64>)] = &[
        (0, crashed("node1"), Some(0)),
        (10, crashed("node1"), None),
        (20, crashed("node2"), Some(0)),
        (
            30,
            Event::NodeRecovered {
                node: "node1".into(),
            },
            Some(0),
        ),
        (
            40,
            Event::NodeRestarted {
                node: "node1".into(),
                reason: "hung".into(),
                detail: "hung".into(),
                restart: true,
            },
            Some(0),
        ),
        (899, crashed("node1"), None),
        (900, crashed("node1"), Some(2)),
        (901, crashed("node1"), None),
        (2000, crashed("node1"), Some(1)),
        (2001, Event::AllNodesDown { nodes: 2 }, Some(0)),
        (2002, Event::AllNodesDown { nodes: 2 }, None),
    ];
    for (secs, event, expected) in table {
        assert_eq!(
            verdict(dedupe.admit(alert(event), at(*secs))),
            *expected,
            "at {secs} s: {event:?}"
        );
    }
}

#[test]
fn an_outage_is_mailed_when_it_starts_and_when_it_ends() {
    let start = Instant::now();
    let at = |secs: u64| start + Duration::from_secs(secs);
    let mut dedupe = Dedupe::new(WINDOW);
    // A first outage: both ends mailed.
    assert_eq!(verdict(dedupe.admit(alert(&unreachable()), at(0))), Some(0));
    assert_eq!(verdict(dedupe.admit(alert(&back(60)), at(60))), Some(0));
    // Flapping inside the window: neither end mailed, nothing due once it is over.
    assert_eq!(verdict(dedupe.admit(alert(&unreachable()), at(100))), None);
    assert_eq!(dedupe.next_deadline(), Some(at(900)));
    assert_eq!(verdict(dedupe.admit(alert(&back(5)), at(105))), None);
    assert_eq!(dedupe.next_deadline(), None);
    assert!(dedupe.due(at(900)).is_empty());
    // A third outage inside the window that lasts: mailed when the window ends, counting the
    // flap; its end is mailed too.
    assert_eq!(verdict(dedupe.admit(alert(&unreachable()), at(200))), None);
    assert!(dedupe.due(at(899)).is_empty());
    let due = dedupe.due(at(900));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].template, TemplateName::SupervisorUnreachable);
    assert_eq!(due[0].values["suppressed"], 1);
    assert_eq!(dedupe.next_deadline(), None);
    assert_eq!(verdict(dedupe.admit(alert(&back(800)), at(1000))), Some(0));
    // After the window, a new outage is mailed at once, whatever happened before.
    assert_eq!(
        verdict(dedupe.admit(alert(&unreachable()), at(2000))),
        Some(0)
    );
    // A repeated start (not sent by the daemon, but possible) is not mailed twice.
    assert_eq!(verdict(dedupe.admit(alert(&unreachable()), at(2001))), None);
    assert_eq!(verdict(dedupe.admit(alert(&back(2)), at(2002))), Some(0));
}

#[test]
fn retry_delays_double_up_to_the_maximum() {
    let options = options();
    let delays: Vec<u64> = (1..=9)
        .map(|failures| options.retry_delay(failures).as_secs())
        .collect();
    assert_eq!(delays, [10, 20, 40, 80, 160, 320, 600, 600, 600]);
    assert_eq!(options.retry_delay(u32::MAX).as_secs(), 600);
}

#[tokio::test(start_paused = true)]
async fn the_worker_mails_deduplicates_and_counts() {
    let mailer = MemoryMailer::default();
    let worker = spawn(&mailer, options());
    let sender = worker.sender();
    for event in [crashed("node1"), crashed("node1"), crashed("node2")] {
        sender.try_send(event).expect("queued");
    }
    settle().await;
    assert_eq!(
        mailer.subjects(),
        [
            "[nodekeeper] node1 crashed and was started (2026-11-22 01:39:07 UTC)",
            "[nodekeeper] node2 crashed and was started (2026-11-22 01:39:07 UTC)",
        ]
    );
    advance(WINDOW).await;
    sender.try_send(crashed("node1")).expect("queued");
    settle().await;
    let mails = mailer.delivered();
    assert_eq!(mails.len(), 3);
    assert!(
        mails[2]
            .body
            .contains("1 more alert(s) like this one for node1 were not mailed in the last 15m."),
        "{}",
        mails[2].body
    );
    assert_eq!(mails[2].date, FixedClock.now());
    drop(sender);
    worker.finish(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_delivery_is_retried_with_backoff_and_a_success_makes_the_others_due() {
    let mailer = MemoryMailer::failing(3);
    let worker = spawn(&mailer, options());
    let start = Instant::now();
    worker.sender().try_send(crashed("node1")).expect("queued");
    settle().await;
    advance(Duration::from_secs(5)).await;
    // A second alert fails too, with its own backoff (due at 15 s).
    worker.sender().try_send(crashed("node2")).expect("queued");
    advance(Duration::from_secs(80)).await;
    let offsets: Vec<u64> = mailer
        .attempts()
        .iter()
        .map(|at| at.duration_since(start).as_secs())
        .collect();
    // node1 failed at 0 and 10 (next try at 30), node2 at 5; node2 delivered at its retry
    // (15), and node1 went at once after it, not at 30.
    assert_eq!(offsets, [0, 5, 10, 15, 15]);
    let subjects = mailer.subjects();
    assert_eq!(subjects.len(), 2);
    assert!(subjects[0].contains("node2") && subjects[1].contains("node1"));
    worker.finish(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_mail_holds_nothing_back_and_is_retried_as_long_as_it_is_queued() {
    let mailer = MemoryMailer::failing_for("node1");
    let worker = spawn(&mailer, options());
    let start = Instant::now();
    worker.sender().try_send(crashed("node1")).expect("queued");
    worker.sender().try_send(crashed("node2")).expect("queued");
    settle().await;
    // node2 went at once, behind nobody.
    let subjects = mailer.subjects();
    assert_eq!(subjects.len(), 1);
    assert!(subjects[0].contains("node2"), "{subjects:?}");
    // node1 is never given up: still tried after two hours (far beyond ten attempts).
    advance(Duration::from_secs(2 * 3600)).await;
    let node1: Vec<u64> = mailer
        .attempts()
        .iter()
        .zip(mailer.tried())
        .filter(|(_, subject)| subject.contains("node1"))
        .map(|(at, _)| at.duration_since(start).as_secs())
        .collect();
    // Tried again at once after node2's success, then 20 s, 40 s ... up to 10 min apart.
    assert_eq!(node1[..8], [0, 0, 20, 60, 140, 300, 620, 1220]);
    assert!(node1.len() > 12, "{node1:?}");
    assert!(node1.last().is_some_and(|last| *last > 6600), "{node1:?}");
    worker.finish(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_rejected_mail_is_dropped_and_the_next_one_goes() {
    let mailer = MemoryMailer::rejecting("node1");
    let worker = spawn(&mailer, options());
    worker.sender().try_send(crashed("node1")).expect("queued");
    worker.sender().try_send(crashed("node2")).expect("queued");
    advance(Duration::from_secs(3600)).await;
    // node1 tried once only.
    assert_eq!(mailer.attempts().len(), 2);
    let subjects = mailer.subjects();
    assert_eq!(subjects.len(), 1);
    assert!(subjects[0].contains("node2"), "{subjects:?}");
    worker.finish(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn new_settings_retry_the_waiting_mails_at_once() {
    let failing = MemoryMailer::down();
    let worker = spawn(&failing, options());
    worker.sender().try_send(crashed("node1")).expect("queued");
    settle().await;
    advance(Duration::from_secs(1)).await;
    assert_eq!(failing.attempts().len(), 1);
    let working = MemoryMailer::default();
    let applied = worker.reconfigure().apply(Setup::new(
        working.clone(),
        Templates::shipped().expect("shipped templates"),
        Facts::test(),
        options(),
    ));
    assert!(applied);
    settle().await;
    // Not 10 s later: now.
    assert_eq!(working.subjects().len(), 1);
    worker.finish(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_server_never_blocks_the_sender() {
    let mailer = MemoryMailer::slow(Duration::from_secs(3600));
    let options = WorkerOptions {
        queue_limit: 10,
        ..options()
    };
    let worker = spawn(&mailer, options);
    let sender = worker.sender();
    // Every send returns at once, while the first delivery hangs; the queue stays bounded.
    for index in 0..(CHANNEL_CAPACITY * 2) {
        sender
            .try_send(crashed(&format!("node{index}")))
            .expect("the worker keeps taking events");
        if index % 100 == 0 {
            settle().await;
        }
    }
    settle().await;
    assert_eq!(mailer.attempts().len(), 1);
    // Stopping gives up within the grace period.
    let stop = Instant::now();
    drop(sender);
    worker.finish(Duration::from_secs(5)).await;
    assert!(stop.elapsed() <= Duration::from_secs(6));
    assert!(mailer.delivered().is_empty());
}

#[tokio::test(start_paused = true)]
async fn finishing_tries_each_queued_mail_once_more() {
    let mailer = MemoryMailer::failing(1);
    let worker = spawn(&mailer, options());
    worker.sender().try_send(crashed("node1")).expect("queued");
    worker.sender().try_send(crashed("node2")).expect("queued");
    settle().await;
    // node1 failed once and waits 10 s; finishing does not wait for the backoff.
    let stop = Instant::now();
    worker.finish(Duration::from_secs(5)).await;
    assert!(stop.elapsed() < Duration::from_secs(1));
    assert_eq!(mailer.subjects().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_suppressed_outage_that_lasts_is_mailed_when_the_window_ends() {
    let mailer = MemoryMailer::default();
    let worker = spawn(&mailer, options());
    let sender = worker.sender();
    sender.try_send(unreachable()).expect("queued");
    advance(Duration::from_secs(30)).await;
    sender.try_send(back(30)).expect("queued");
    advance(Duration::from_secs(30)).await;
    sender.try_send(unreachable()).expect("queued");
    settle().await;
    assert_eq!(mailer.subjects().len(), 2);
    // Still unreachable when the first mail's window ends.
    advance(WINDOW).await;
    let subjects = mailer.subjects();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(subjects[0].contains("unreachable"));
    assert!(subjects[1].contains("reachable again"));
    assert!(subjects[2].contains("unreachable"));
    // And its end is mailed.
    sender.try_send(back(900)).expect("queued");
    settle().await;
    let subjects = mailer.subjects();
    assert_eq!(subjects.len(), 4);
    assert!(subjects[3].contains("reachable again"));
    drop(sender);
    worker.finish(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn events_without_a_mail_are_skipped() {
    let mailer = MemoryMailer::default();
    let worker = spawn(&mailer, options());
    worker
        .sender()
        .try_send(Event::NodeRestarted {
            node: "node1".into(),
            reason: "all_down".into(),
            detail: "all down".into(),
            restart: false,
        })
        .expect("queued");
    worker.finish(Duration::from_secs(5)).await;
    assert!(mailer.attempts().is_empty());
}

/// Polls `check` every 10 ms for up to 10 s (real time).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn outbox_options(path: &std::path::Path) -> WorkerOptions {
    options().with_outbox(Some(path.to_path_buf()))
}

fn outbox_mails(path: &std::path::Path) -> Vec<crate::alert::queue::Queued> {
    match std::fs::read(path) {
        Ok(bytes) => outbox::decode(&bytes).expect("a readable outbox"),
        Err(_) => Vec::new(),
    }
}

/// A clock an hour after `FixedClock`: a second run.
struct LaterClock;

impl Clock for LaterClock {
    fn now(&self) -> SystemTime {
        FixedClock.now() + Duration::from_secs(3600)
    }
}

#[tokio::test]
async fn undelivered_mails_stay_in_the_outbox_at_shutdown_and_go_first_at_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alert-outbox.json");
    let down = MemoryMailer::down();
    let worker = spawn(&down, outbox_options(&path));
    worker.sender().try_send(crashed("node1")).expect("queued");
    worker.sender().try_send(unreachable()).expect("queued");
    // Stopped at once: the channel is drained, each mail tried once more, and both kept.
    worker.finish(Duration::from_secs(2)).await;
    let kept = outbox_mails(&path);
    let labels: Vec<&str> = kept.iter().map(|q| q.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "restart_crashed (node1)",
            "supervisor_unreachable (default)"
        ]
    );
    assert!(kept.iter().all(|q| q.mail.date == FixedClock.now()));
    assert_eq!(kept[1].class, crate::alert::queue::Class::StateChange);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path)
        .expect("outbox")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // The next run (an hour later) delivers them first, with their original Date.
    let working = MemoryMailer::default();
    let worker = AlertWorker::spawn(
        working.clone(),
        Templates::shipped().expect("shipped templates"),
        Facts::test(),
        Arc::new(LaterClock),
        outbox_options(&path),
    );
    worker.sender().try_send(crashed("node2")).expect("queued");
    eventually("three mails", || working.delivered().len() == 3).await;
    let mails = working.delivered();
    assert!(mails[0].subject.contains("node1"), "{mails:?}");
    assert!(mails[1].subject.contains("unreachable"), "{mails:?}");
    assert!(mails[2].subject.contains("node2"), "{mails:?}");
    assert_eq!(mails[0].date, FixedClock.now());
    assert_eq!(mails[1].date, FixedClock.now());
    assert_eq!(mails[2].date, LaterClock.now());
    eventually("an empty outbox", || outbox_mails(&path).is_empty()).await;
    worker.finish(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_queued_mail_is_in_the_outbox_before_it_is_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alert-outbox.json");
    let hung = MemoryMailer::slow(Duration::from_secs(3600));
    let worker = spawn(&hung, outbox_options(&path));
    worker.sender().try_send(crashed("node1")).expect("queued");
    eventually("the mail in the outbox", || outbox_mails(&path).len() == 1).await;
    // A crash now (SIGKILL) would lose nothing; a stop gives up at the deadline and keeps it.
    worker.finish(Duration::from_millis(200)).await;
    assert_eq!(outbox_mails(&path).len(), 1);
}

#[tokio::test]
async fn a_full_queue_keeps_the_state_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alert-outbox.json");
    let hung = MemoryMailer::slow(Duration::from_secs(3600));
    let options = WorkerOptions {
        queue_limit: 3,
        ..outbox_options(&path)
    };
    let worker = spawn(&hung, options);
    let sender = worker.sender();
    sender.try_send(crashed("node0")).expect("queued");
    eventually("node0 in flight", || hung.attempts().len() == 1).await;
    sender.try_send(unreachable()).expect("queued");
    for index in 1..10 {
        sender
            .try_send(crashed(&format!("node{index}")))
            .expect("queued");
    }
    drop(sender);
    worker.finish(Duration::from_millis(200)).await;
    let labels: Vec<String> = outbox_mails(&path).into_iter().map(|q| q.label).collect();
    assert_eq!(
        labels,
        [
            "restart_crashed (node0)",
            "supervisor_unreachable (default)",
            "restart_crashed (node9)"
        ]
    );
}

#[tokio::test]
async fn an_unreadable_outbox_is_moved_aside_and_the_worker_mails_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alert-outbox.json");
    std::fs::write(&path, "garbage").expect("write");
    let mailer = MemoryMailer::default();
    let worker = spawn(&mailer, outbox_options(&path));
    worker.sender().try_send(crashed("node1")).expect("queued");
    eventually("a mail", || mailer.delivered().len() == 1).await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("alert-outbox.json.corrupt")).expect("aside"),
        "garbage"
    );
    worker.finish(Duration::from_secs(1)).await;
    assert!(outbox_mails(&path).is_empty());
}

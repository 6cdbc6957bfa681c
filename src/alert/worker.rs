//! The alert worker: a task that turns the daemon's events into mails, deduplicates them, and
//! delivers them through a `Mailer` from a queue, retrying with backoff. The daemon hands events
//! over with `try_send` on a bounded channel, so nothing here can block the control loop.
//!
//! Deduplication (`Dedupe`, pure, given `now`): the same template for the same node (or
//! supervisord) is mailed at most once per `email.dedupe_window`; the next mail of that kind
//! carries the count of those suppressed meanwhile. A supervisord outage is a pair: its start is
//! deduplicated like the rest, and its end is mailed exactly when its start was, so the last mail
//! about a supervisord always tells its current state; an outage whose start was suppressed and
//! that still lasts when the window ends is mailed then.
//!
//! A reload reconfigures the running worker (`Reconfigure`): a new mailer, templates, facts and
//! dedupe window take over; mails already queued stay queued (as rendered) and what was mailed
//! stays counted.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::catalog::TemplateName;
use super::context::{Alert, Facts};
use super::mailer::{Mail, MailError, Mailer};
use super::template::Templates;
use crate::backoff::ExponentialBackoff;
use crate::events::Event;
use crate::time::Clock;

/// How many events may wait in the channel before the daemon drops one (and logs it).
pub const CHANNEL_CAPACITY: usize = 256;

/// The default retry delays of a failed delivery: 10 s, doubling up to 10 min.
pub const RETRY: ExponentialBackoff =
    ExponentialBackoff::constant(Duration::from_secs(10), Duration::from_secs(600));

/// The worker's knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerOptions {
    /// The same alert is mailed at most once per window (`email.dedupe_window`).
    pub dedupe_window: Duration,
    /// The delays between attempts of a failed delivery: the first retry after `retry.min()`,
    /// doubling on each failure up to `retry.max()`.
    pub retry: ExponentialBackoff,
    /// Attempts of one mail before it is dropped (logged as an error).
    pub max_attempts: u32,
    /// Mails waiting beyond this many (at least 2): the oldest not in flight is dropped (logged).
    pub queue_limit: usize,
}

impl WorkerOptions {
    /// Retries after 10 s, 20 s, 40 s ... up to 10 min, 10 attempts (about 40 min), 100 mails
    /// queued at most.
    pub fn new(dedupe_window: Duration) -> WorkerOptions {
        WorkerOptions {
            dedupe_window,
            retry: RETRY,
            max_attempts: 10,
            queue_limit: 100,
        }
    }

    /// The delay after the `failures`-th failed attempt (1-based).
    pub fn retry_delay(&self, failures: u32) -> Duration {
        self.retry.delay(failures.saturating_sub(1))
    }
}

/// `Mailer` behind a pointer, so that a reload can put another one in place.
trait AnyMailer: Send + Sync {
    fn send<'a>(
        &'a self,
        mail: &'a Mail,
    ) -> Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>>;
}

impl<M: Mailer> AnyMailer for M {
    fn send<'a>(
        &'a self,
        mail: &'a Mail,
    ) -> Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>> {
        Box::pin(Mailer::send(self, mail))
    }
}

/// What the worker mails with: the mailer, the templates, the facts every template may use and
/// the knobs. Built whole from the settings, at start and on each reload.
pub struct Setup {
    mailer: Arc<dyn AnyMailer>,
    templates: Templates,
    facts: Facts,
    options: WorkerOptions,
}

impl Setup {
    /// A setup of these parts.
    pub fn new<M: Mailer>(
        mailer: M,
        templates: Templates,
        facts: Facts,
        options: WorkerOptions,
    ) -> Setup {
        Setup {
            mailer: Arc::new(mailer),
            templates,
            facts,
            options,
        }
    }

    /// The knobs.
    pub fn options(&self) -> &WorkerOptions {
        &self.options
    }
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("facts", &self.facts)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Hands a new setup to the running worker (a reload). Never blocks.
#[derive(Clone, Debug)]
pub struct Reconfigure {
    sender: mpsc::Sender<Setup>,
}

impl Reconfigure {
    /// A handle and the receiving end a worker would hold (tests of the handle's users).
    #[cfg(test)]
    pub(crate) fn pair() -> (Reconfigure, mpsc::Receiver<Setup>) {
        let (sender, receiver) = mpsc::channel(1);
        (Reconfigure { sender }, receiver)
    }

    /// The worker takes `setup` for every mail from now on; false when the worker is gone or a
    /// setup is already waiting (the caller tries again with the next change).
    pub fn apply(&self, setup: Setup) -> bool {
        self.sender.try_send(setup).is_ok()
    }
}

/// The running worker: its event sender and its task.
#[derive(Debug)]
pub struct AlertWorker {
    sender: mpsc::Sender<Event>,
    setups: mpsc::Sender<Setup>,
    task: JoinHandle<()>,
}

impl AlertWorker {
    /// Starts the worker on the current tokio runtime.
    pub fn spawn<M: Mailer>(
        mailer: M,
        templates: Templates,
        facts: Facts,
        clock: Arc<dyn Clock>,
        options: WorkerOptions,
    ) -> AlertWorker {
        AlertWorker::start(Setup::new(mailer, templates, facts, options), clock)
    }

    /// Starts the worker with `setup` on the current tokio runtime.
    pub fn start(setup: Setup, clock: Arc<dyn Clock>) -> AlertWorker {
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let (setups, setups_rx) = mpsc::channel(1);
        let state = State {
            mailer: setup.mailer,
            templates: setup.templates,
            facts: setup.facts,
            clock,
            dedupe: Dedupe::new(setup.options.dedupe_window),
            options: setup.options,
            queue: VecDeque::new(),
            next_attempt: Instant::now(),
            closing: false,
        };
        let task = tokio::spawn(state.run(receiver, setups_rx));
        AlertWorker {
            sender,
            setups,
            task,
        }
    }

    /// A sender for the daemon; `try_send` on it returns at once.
    pub fn sender(&self) -> mpsc::Sender<Event> {
        self.sender.clone()
    }

    /// A handle to reconfigure the worker (a reload).
    pub fn reconfigure(&self) -> Reconfigure {
        Reconfigure {
            sender: self.setups.clone(),
        }
    }

    /// Stops taking events and tries each queued mail once more, for at most `grace`; what is
    /// still undelivered then is dropped. Every other sender must be dropped first (the worker
    /// runs until the channel closes).
    pub async fn finish(self, grace: Duration) {
        let AlertWorker {
            sender, mut task, ..
        } = self;
        drop(sender);
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            warn!(
                "alerts: gave up delivering queued mails after {} s",
                grace.as_secs()
            );
            task.abort();
        }
    }
}

/// What deduplication decided about one alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Mail it, with `suppressed` set to what was not mailed since the last one like it.
    Send(Alert),
    /// Do not mail it (counted).
    Suppress,
}

type Key = (TemplateName, Option<String>);

/// The state of one supervisord's outages, as mailed.
#[derive(Clone, Debug, Default)]
struct Outage {
    /// Unreachable now (as far as events say).
    down: bool,
    /// The last mail about it said "unreachable".
    told_down: bool,
    /// When the last "unreachable" mail was made.
    last_down_mail: Option<Instant>,
    /// Outages not mailed since then.
    suppressed: u64,
    /// The unreachable alert to mail at `recheck_at` if the outage still lasts.
    pending: Option<(Alert, Instant)>,
}

/// Deduplication, pure: every decision takes `now`.
#[derive(Clone, Debug)]
pub struct Dedupe {
    window: Duration,
    last_mail: BTreeMap<Key, Instant>,
    suppressed: BTreeMap<Key, u64>,
    outages: BTreeMap<String, Outage>,
}

impl Dedupe {
    /// Mails of a kind are now at most one per `window` (a reload); what was mailed stays counted.
    pub fn set_window(&mut self, window: Duration) {
        self.window = window;
    }

    /// Nothing mailed yet.
    pub fn new(window: Duration) -> Dedupe {
        Dedupe {
            window,
            last_mail: BTreeMap::new(),
            suppressed: BTreeMap::new(),
            outages: BTreeMap::new(),
        }
    }

    /// Whether `alert`, raised at `now`, is mailed.
    pub fn admit(&mut self, alert: Alert, now: Instant) -> Verdict {
        match alert.template {
            TemplateName::SupervisorUnreachable => self.outage_starts(alert, now),
            TemplateName::SupervisorBack => self.outage_ends(alert),
            _ => {
                let key = (alert.template, alert.about.clone());
                let recent = self
                    .last_mail
                    .get(&key)
                    .is_some_and(|last| now.saturating_duration_since(*last) < self.window);
                if recent {
                    *self.suppressed.entry(key).or_default() += 1;
                    Verdict::Suppress
                } else {
                    let suppressed = self.suppressed.remove(&key).unwrap_or(0);
                    self.last_mail.insert(key, now);
                    Verdict::Send(with_suppressed(alert, suppressed))
                }
            }
        }
    }

    fn outage_starts(&mut self, alert: Alert, now: Instant) -> Verdict {
        let window = self.window;
        let outage = self
            .outages
            .entry(alert.about.clone().unwrap_or_default())
            .or_default();
        outage.down = true;
        if outage.told_down {
            // Already said; the daemon reports each outage once, so this is a repeat.
            return Verdict::Suppress;
        }
        match outage.last_down_mail {
            Some(last) if now.saturating_duration_since(last) < window => {
                outage.suppressed += 1;
                outage.pending = Some((alert, last + window));
                Verdict::Suppress
            }
            _ => {
                let suppressed = std::mem::take(&mut outage.suppressed);
                outage.told_down = true;
                outage.last_down_mail = Some(now);
                outage.pending = None;
                Verdict::Send(with_suppressed(alert, suppressed))
            }
        }
    }

    fn outage_ends(&mut self, alert: Alert) -> Verdict {
        let outage = self
            .outages
            .entry(alert.about.clone().unwrap_or_default())
            .or_default();
        outage.down = false;
        outage.pending = None;
        if outage.told_down {
            outage.told_down = false;
            Verdict::Send(alert)
        } else {
            // Its start was not mailed (and is counted): neither is its end.
            Verdict::Suppress
        }
    }

    /// Alerts held back that are due at `now`: outages whose start was suppressed and that
    /// still last when the window ends.
    pub fn due(&mut self, now: Instant) -> Vec<Alert> {
        let mut due = Vec::new();
        for outage in self.outages.values_mut() {
            let Some((_, at)) = &outage.pending else {
                continue;
            };
            if *at > now {
                continue;
            }
            let Some((alert, _)) = outage.pending.take() else {
                continue;
            };
            if outage.down && !outage.told_down {
                // This outage is the one mailed; the count is of the others.
                let others = outage.suppressed.saturating_sub(1);
                outage.suppressed = 0;
                outage.told_down = true;
                outage.last_down_mail = Some(now);
                due.push(with_suppressed(alert, others));
            }
        }
        due
    }

    /// When `due` next has something to say.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.outages
            .values()
            .filter_map(|outage| outage.pending.as_ref().map(|(_, at)| *at))
            .min()
    }
}

fn with_suppressed(mut alert: Alert, suppressed: u64) -> Alert {
    alert.values.insert("suppressed", Value::from(suppressed));
    alert
}

/// A mail waiting for delivery.
#[derive(Debug)]
struct Queued {
    /// `template (about)`, for log lines.
    label: String,
    mail: Mail,
    failures: u32,
}

struct State {
    mailer: Arc<dyn AnyMailer>,
    templates: Templates,
    facts: Facts,
    clock: Arc<dyn Clock>,
    options: WorkerOptions,
    dedupe: Dedupe,
    queue: VecDeque<Queued>,
    /// When the head of the queue may be tried.
    next_attempt: Instant,
    /// The channel is closed: each queued mail gets one more attempt, then the worker ends.
    closing: bool,
}

enum Woken {
    Delivered(Result<(), MailError>),
    Event(Option<Event>),
    Setup(Box<Setup>),
    Timer,
}

impl State {
    async fn run(mut self, mut events: mpsc::Receiver<Event>, mut setups: mpsc::Receiver<Setup>) {
        let mut in_flight: Option<JoinHandle<Result<(), MailError>>> = None;
        loop {
            let now = Instant::now();
            if !self.closing {
                for alert in self.dedupe.due(now) {
                    self.enqueue(alert);
                }
            }
            if in_flight.is_none()
                && now >= self.next_attempt
                && let Some(head) = self.queue.front()
            {
                let mailer = Arc::clone(&self.mailer);
                let mail = head.mail.clone();
                in_flight = Some(tokio::spawn(async move { mailer.send(&mail).await }));
            }
            if self.closing && self.queue.is_empty() && in_flight.is_none() {
                return;
            }
            let retry_at =
                (in_flight.is_none() && !self.queue.is_empty()).then_some(self.next_attempt);
            let recheck_at = (!self.closing)
                .then(|| self.dedupe.next_deadline())
                .flatten();
            let wake = [retry_at, recheck_at].into_iter().flatten().min();
            let woken = tokio::select! {
                delivered = wait(&mut in_flight) => Woken::Delivered(delivered),
                event = events.recv(), if !self.closing => Woken::Event(event),
                Some(setup) = setups.recv() => Woken::Setup(Box::new(setup)),
                () = sleep_until(wake) => Woken::Timer,
            };
            match woken {
                Woken::Delivered(outcome) => {
                    in_flight = None;
                    self.delivered(outcome);
                }
                Woken::Event(Some(event)) => self.accept(&event),
                Woken::Setup(setup) => self.reconfigure(*setup),
                Woken::Event(None) => {
                    self.closing = true;
                    self.next_attempt = Instant::now();
                }
                Woken::Timer => {}
            }
        }
    }

    fn reconfigure(&mut self, setup: Setup) {
        info!("alerts: new settings in force");
        self.mailer = setup.mailer;
        self.templates = setup.templates;
        self.facts = setup.facts;
        self.dedupe.set_window(setup.options.dedupe_window);
        self.options = setup.options;
        // A mail waiting for a retry is tried with the new settings at once.
        self.next_attempt = Instant::now();
    }

    fn accept(&mut self, event: &Event) {
        let Some(alert) = Alert::from_event(event, &self.facts, self.clock.now()) else {
            debug!("alerts: {} is not mailed", event.kind());
            return;
        };
        match self.dedupe.admit(alert, Instant::now()) {
            Verdict::Send(alert) => self.enqueue(alert),
            Verdict::Suppress => debug!(
                "alerts: {} for {} suppressed (dedupe window)",
                event.kind(),
                event.node().unwrap_or("the pool")
            ),
        }
    }

    fn enqueue(&mut self, alert: Alert) {
        let label = match &alert.about {
            Some(about) => format!("{} ({about})", alert.template),
            None => alert.template.to_string(),
        };
        let rendered = self.templates.render(alert.template, &alert.values);
        if rendered.is_disabled() {
            debug!("alerts: {label}: the template's subject is empty, not mailed");
            return;
        }
        if self.queue.len() >= self.options.queue_limit.max(2) {
            // The head may be in flight: drop the oldest behind it.
            if let Some(dropped) = self.queue.remove(1) {
                error!(
                    "alerts: queue full ({} mails), dropped {}: {}",
                    self.queue.len() + 1,
                    dropped.label,
                    dropped.mail.subject
                );
            }
        }
        self.queue.push_back(Queued {
            label,
            mail: super::mail(rendered, self.clock.now()),
            failures: 0,
        });
    }

    fn delivered(&mut self, outcome: Result<(), MailError>) {
        let queued = self.queue.len();
        let Some(head) = self.queue.front_mut() else {
            return;
        };
        match outcome {
            Ok(()) => {
                info!("alerts: mailed {}: {}", head.label, head.mail.subject);
                self.queue.pop_front();
                self.next_attempt = Instant::now();
            }
            Err(e) => {
                head.failures += 1;
                if self.closing || head.failures >= self.options.max_attempts {
                    error!(
                        "alerts: {e}; dropped {} after {} attempt(s): {}",
                        head.label, head.failures, head.mail.subject
                    );
                    self.queue.pop_front();
                    self.next_attempt = Instant::now();
                } else {
                    let delay = self.options.retry_delay(head.failures);
                    warn!(
                        "alerts: {e}; {} retried in {} s ({} queued)",
                        head.label,
                        delay.as_secs(),
                        queued
                    );
                    self.next_attempt = Instant::now() + delay;
                }
            }
        }
    }
}

/// The outcome of the delivery in flight; never resolves when there is none.
async fn wait(in_flight: &mut Option<JoinHandle<Result<(), MailError>>>) -> Result<(), MailError> {
    match in_flight {
        Some(task) => match task.await {
            Ok(outcome) => outcome,
            Err(e) => Err(MailError {
                server: "?".into(),
                reason: format!("delivery task failed: {e}"),
            }),
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;

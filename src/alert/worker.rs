//! The alert worker: a task that turns the daemon's events into mails, deduplicates them, and
//! delivers them through a `Mailer` from a `Queue` (each mail with its own backoff, one delivery
//! at a time, state changes kept before ordinary mails), kept in the durable `Outbox` so that
//! undelivered mails survive a restart. The daemon hands events over with `try_send` on a bounded
//! channel, so nothing here can block the control loop.
//!
//! A transient failure is retried as long as the mail is queued; a rejection (`MailErrorKind::
//! Rejected`) drops it. At start the outbox's mails go first, with their original Date. At
//! shutdown (`finish`) the channel is drained, every mail gets one more attempt until the
//! deadline, and what is left stays in the outbox for the next run.
//!
//! Deduplication (`Dedupe`, pure, given `now`): the same template for the same node (or
//! supervisord) is mailed at most once per `email.dedupe_window`; the next mail of that kind
//! carries the count of those suppressed meanwhile. A supervisord outage is a pair: its start is
//! deduplicated like the rest, and its end is mailed exactly when its start was, so the last mail
//! about a supervisord always tells its current state; an outage whose start was suppressed and
//! that still lasts when the window ends is mailed then.
//!
//! A reload reconfigures the running worker (`Reconfigure`): a new mailer, templates, facts and
//! dedupe window take over; mails already queued stay queued (as rendered) and are tried at once
//! with the new settings, and what was mailed stays counted. The outbox opened at start stays in
//! use (a changed `email.outbox` applies at the next start).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::catalog::TemplateName;
use super::context::{Alert, Facts};
use super::mailer::{Mail, MailError, MailErrorKind, Mailer, Meta};
use super::outbox::{self, Outbox};
use super::queue::{Class, Id, Queue, Queued, Retry};
use super::routing::{self, Filter};
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
    /// The delays between attempts of a mail whose delivery failed: the first retry after
    /// `retry.min()`, doubling on each failure of that mail up to `retry.max()`. A transient
    /// failure is retried as long as the mail is queued.
    pub retry: ExponentialBackoff,
    /// Mails waiting beyond this many (at least 2): one is dropped (logged), ordinary mails
    /// before state changes (`queue`).
    pub queue_limit: usize,
    /// The durable outbox, opened at start (`None`: in memory only).
    pub outbox: Option<PathBuf>,
    /// The alerts this worker delivers (email: all; a channel: its `events`, `min_severity`).
    pub filter: Filter,
    /// The channel's name in log lines (`None`: email).
    pub channel: Option<String>,
}

impl WorkerOptions {
    /// Retries after 10 s, 20 s, 40 s ... up to 10 min, 100 mails queued at most, no outbox.
    pub fn new(dedupe_window: Duration) -> WorkerOptions {
        WorkerOptions {
            dedupe_window,
            retry: RETRY,
            queue_limit: 100,
            outbox: None,
            filter: Filter::all(),
            channel: None,
        }
    }

    /// These options with the outbox at `path`.
    pub fn with_outbox(self, path: Option<PathBuf>) -> WorkerOptions {
        WorkerOptions {
            outbox: path,
            ..self
        }
    }

    /// These options for the channel `name`, delivering what `filter` lets through.
    pub fn for_channel(self, name: &str, filter: Filter) -> WorkerOptions {
        WorkerOptions {
            filter,
            channel: Some(name.to_string()),
            ..self
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

/// How long `finish` waits beyond its grace for the worker's last outbox write.
const LAST_WRITE: Duration = Duration::from_secs(5);

/// The running worker: its event sender and its task.
#[derive(Debug)]
pub struct AlertWorker {
    sender: mpsc::Sender<Event>,
    setups: mpsc::Sender<Setup>,
    stop: oneshot::Sender<Duration>,
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

    /// Starts the worker with `setup` on the current tokio runtime. Its first step reads the
    /// outbox of `setup`'s options (off the runtime's threads); those mails go first.
    pub fn start(setup: Setup, clock: Arc<dyn Clock>) -> AlertWorker {
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let (setups, setups_rx) = mpsc::channel(1);
        let (stop, stop_rx) = oneshot::channel();
        let state = State {
            mailer: setup.mailer,
            templates: setup.templates,
            facts: setup.facts,
            clock,
            dedupe: Dedupe::new(setup.options.dedupe_window),
            queue: Queue::new(setup.options.queue_limit),
            options: setup.options,
            outbox: None,
            dirty: false,
            deadline: None,
        };
        let task = tokio::spawn(state.run(receiver, setups_rx, stop_rx));
        AlertWorker {
            sender,
            setups,
            stop,
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

    /// Stops taking events: the events already sent are taken, and each queued mail is tried
    /// once more, for at most `grace`; what is still undelivered then stays in the outbox for
    /// the next start (never dropped).
    pub async fn finish(self, grace: Duration) {
        let AlertWorker {
            sender,
            stop,
            mut task,
            ..
        } = self;
        drop(sender);
        // The worker may have ended already (its channel closed): nothing to tell it then.
        let _ = stop.send(grace);
        if tokio::time::timeout(grace + LAST_WRITE, &mut task)
            .await
            .is_err()
        {
            warn!(
                "alerts: the worker did not stop within {} s; the outbox holds what it last wrote",
                (grace + LAST_WRITE).as_secs()
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

/// What `alert` reports besides its text: the event, the node, a reason, the severity.
pub fn meta_of(alert: &Alert) -> Meta {
    let event = routing::event_of(alert.template);
    let reason = ["reason", "error"]
        .iter()
        .find_map(|name| alert.values.get(name).and_then(Value::as_str))
        .map(str::to_string);
    Meta {
        event: event.to_string(),
        node: alert.about.clone(),
        reason,
        severity: routing::severity_of(event),
    }
}

fn with_suppressed(mut alert: Alert, suppressed: u64) -> Alert {
    alert.values.insert("suppressed", Value::from(suppressed));
    alert
}

struct State {
    mailer: Arc<dyn AnyMailer>,
    templates: Templates,
    facts: Facts,
    clock: Arc<dyn Clock>,
    options: WorkerOptions,
    dedupe: Dedupe,
    queue: Queue,
    /// The outbox opened at start.
    outbox: Option<Outbox>,
    /// The queue changed since the outbox was written.
    dirty: bool,
    /// Closing: when the last attempts end (`None` while running, or closing without a
    /// deadline because every sender is gone).
    deadline: Option<Instant>,
}

enum Woken {
    Delivered(Id, Result<(), MailError>),
    Event(Option<Event>),
    Setup(Box<Setup>),
    Stop(Duration),
    Timer,
}

/// The delivery in flight: its mail and its task.
type InFlight = Option<(Id, JoinHandle<Result<(), MailError>>)>;

impl State {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut setups: mpsc::Receiver<Setup>,
        stop: oneshot::Receiver<Duration>,
    ) {
        self.open_outbox().await;
        let mut stop = Some(stop);
        let mut closing = false;
        let mut in_flight: InFlight = None;
        loop {
            let now = Instant::now();
            if !closing {
                for alert in self.dedupe.due(now) {
                    self.enqueue(alert);
                }
            }
            // A mail is on disk before its first attempt.
            self.save().await;
            if self.deadline.is_some_and(|deadline| now >= deadline) {
                if let Some((_, task)) = in_flight.take() {
                    task.abort();
                    self.queue.abandon();
                }
                break;
            }
            if in_flight.is_none()
                && let Some((id, mail)) = self.queue.next(now)
            {
                let mailer = Arc::clone(&self.mailer);
                in_flight = Some((id, tokio::spawn(async move { mailer.send(&mail).await })));
            }
            if closing && (self.queue.is_empty() || self.queue.done()) {
                break;
            }
            let retry_at = self.queue.next_due();
            let recheck_at = (!closing).then(|| self.dedupe.next_deadline()).flatten();
            let wake = [retry_at, recheck_at, self.deadline]
                .into_iter()
                .flatten()
                .min();
            let woken = tokio::select! {
                (id, delivered) = wait(&mut in_flight) => Woken::Delivered(id, delivered),
                event = events.recv(), if !closing => Woken::Event(event),
                Some(setup) = setups.recv() => Woken::Setup(Box::new(setup)),
                grace = stopped(&mut stop) => Woken::Stop(grace),
                () = sleep_until(wake) => Woken::Timer,
            };
            match woken {
                Woken::Delivered(id, outcome) => {
                    in_flight = None;
                    self.delivered(id, outcome);
                }
                Woken::Event(Some(event)) => self.accept(&event),
                Woken::Setup(setup) => self.reconfigure(*setup),
                Woken::Event(None) => {
                    // Every sender is gone: one more attempt each (`finish` sets the deadline).
                    closing = true;
                    self.queue.close(Instant::now());
                }
                Woken::Stop(grace) => {
                    self.deadline = Some(Instant::now() + grace);
                    if !closing {
                        closing = true;
                        // What the daemon sent before it stopped is still mailed (or kept).
                        events.close();
                        while let Ok(event) = events.try_recv() {
                            self.accept(&event);
                        }
                        self.queue.close(Instant::now());
                    }
                }
                Woken::Timer => {}
            }
        }
        self.save().await;
        if !self.queue.is_empty() {
            match &self.outbox {
                Some(outbox) => warn!(
                    "alerts: {} undelivered mail(s) kept in {} for the next start",
                    self.queue.len(),
                    outbox.path().display()
                ),
                None => error!(
                    "alerts: {} undelivered mail(s) dropped (no outbox)",
                    self.queue.len()
                ),
            }
        }
    }

    /// Opens the outbox of the options, if any; its mails are queued first, as they were.
    async fn open_outbox(&mut self) {
        let Some(path) = self.options.outbox.clone() else {
            return;
        };
        let loaded = tokio::task::spawn_blocking(move || Outbox::load(&path)).await;
        let Ok((outbox, mails)) = loaded else {
            error!("alerts: reading the outbox failed; undelivered mails live in memory only");
            return;
        };
        if !mails.is_empty() {
            info!(
                "alerts: {} undelivered mail(s) from {} go first",
                mails.len(),
                outbox.path().display()
            );
        }
        let now = Instant::now();
        for queued in mails {
            if let Some(dropped) = self.queue.push(queued, now) {
                self.log_dropped(&dropped);
            }
        }
        self.outbox = Some(outbox);
    }

    /// Writes the queue to the outbox when it changed (off the runtime's threads).
    async fn save(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let Some(outbox) = self.outbox.clone() else {
            return;
        };
        let bytes = outbox::encode(self.queue.mails());
        let written = tokio::task::spawn_blocking(move || outbox.save(&bytes)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(
                "alerts: {}; undelivered mails are kept in memory only",
                crate::describe::chain(&e)
            ),
            Err(e) => error!("alerts: writing the outbox failed: {e}"),
        }
    }

    fn reconfigure(&mut self, setup: Setup) {
        info!("alerts: new settings in force");
        if let Some(outbox) = &self.outbox
            && setup.options.outbox.as_deref() != Some(outbox.path())
        {
            let key = match &self.options.channel {
                Some(name) => format!("the outbox of channel {name}"),
                None => "email.outbox".to_string(),
            };
            warn!(
                "alerts: {key} changed; {} stays in use until the next start",
                outbox.path().display()
            );
        }
        self.mailer = setup.mailer;
        self.templates = setup.templates;
        self.facts = setup.facts;
        self.dedupe.set_window(setup.options.dedupe_window);
        self.options = WorkerOptions {
            outbox: self.options.outbox.clone(),
            ..setup.options
        };
        // Mails waiting for a retry are tried with the new settings at once.
        self.queue.all_due(Instant::now());
    }

    fn accept(&mut self, event: &Event) {
        let Some(alert) = Alert::from_event(event, &self.facts, self.clock.now()) else {
            debug!("alerts: {} is not mailed", event.kind());
            return;
        };
        if !self.options.filter.admits(alert.template) {
            debug!("alerts: {} is not for this channel", event.kind());
            return;
        }
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
        let label = match &self.options.channel {
            Some(channel) => format!("{label} to channel {channel}"),
            None => label,
        };
        let rendered = self.templates.render(alert.template, &alert.values);
        if rendered.is_disabled() {
            debug!("alerts: {label}: the template's subject is empty, not mailed");
            return;
        }
        let mail = Mail {
            meta: Some(meta_of(&alert)),
            ..super::mail(rendered, self.clock.now())
        };
        let queued = Queued {
            label,
            class: Class::of(alert.template),
            mail,
        };
        if let Some(dropped) = self.queue.push(queued, Instant::now()) {
            self.log_dropped(&dropped);
        }
        self.dirty = true;
    }

    fn log_dropped(&self, dropped: &Queued) {
        error!(
            "alerts: queue full ({} mails), dropped {}: {}",
            self.queue.len(),
            dropped.label,
            dropped.mail.subject
        );
    }

    fn delivered(&mut self, id: Id, outcome: Result<(), MailError>) {
        let now = Instant::now();
        let waiting = self.queue.len();
        match outcome {
            Ok(()) => {
                if let Some(queued) = self.queue.delivered(id, now) {
                    info!("alerts: mailed {}: {}", queued.label, queued.mail.subject);
                    self.dirty = true;
                }
            }
            Err(e) if e.kind == MailErrorKind::Rejected => {
                if let Some(queued) = self.queue.rejected(id) {
                    error!(
                        "alerts: {e}; the server refused {} for good, dropped: {}",
                        queued.label, queued.mail.subject
                    );
                    self.dirty = true;
                }
            }
            Err(e) => match self.queue.failed(id, now, &self.options.retry) {
                Some((label, failures, Retry::After(delay))) => warn!(
                    "alerts: {e}; {label} retried in {} s (attempt {failures}, {waiting} queued)",
                    delay.as_secs()
                ),
                Some((label, failures, Retry::Kept)) => {
                    warn!("alerts: {e}; {label} kept for the next start (attempt {failures})")
                }
                None => {}
            },
        }
    }
}

/// The outcome of the delivery in flight; never resolves when there is none.
async fn wait(in_flight: &mut InFlight) -> (Id, Result<(), MailError>) {
    match in_flight {
        Some((id, task)) => match task.await {
            Ok(outcome) => (*id, outcome),
            Err(e) => (
                *id,
                Err(MailError::transient(
                    "?",
                    format!("delivery task failed: {e}"),
                )),
            ),
        },
        None => std::future::pending().await,
    }
}

/// The grace `finish` gives, once; never resolves after that or when the worker was dropped.
async fn stopped(stop: &mut Option<oneshot::Receiver<Duration>>) -> Duration {
    let Some(receiver) = stop.as_mut() else {
        return std::future::pending().await;
    };
    let grace = receiver.await;
    *stop = None;
    match grace {
        Ok(grace) => grace,
        Err(_) => std::future::pending().await,
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

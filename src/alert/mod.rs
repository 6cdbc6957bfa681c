//! Email alerts: the daemon's events rendered from templates and mailed over SMTP, deduplicated,
//! from a queue that never blocks the control loop.
//!
//! - `catalog`: the templates (one per event, one per restart reason), their placeholders,
//!   jmanager's names, the shipped defaults (`configs/templates/`, embedded).
//! - `template`: loading (shipped, `email.templates_dir`, inline), validation, pure rendering.
//! - `context`: an `Event` (or a leadership fact) to an `Alert`: template + placeholder values.
//! - `worker`: dedupe (pure), the running task (`AlertWorker`): queue, outbox, retries, shutdown.
//! - `queue`: the mails waiting, pure: a backoff per mail, oldest due first, state changes kept
//!   before ordinary mails when full.
//! - `outbox`: the durable spool of undelivered mails (`alert-outbox.json`), read at start.
//! - `settings`: what the configuration resolves for alerts (`EmailSettings`), and the checks
//!   both the configuration and `SmtpMailer` make (password in clear, pin conflicts); alerts
//!   never read the configuration itself.
//! - `mailer`: the `Mailer` trait, `Mail`, `MailError` (transient or rejected); `smtp`:
//!   `SmtpMailer` (our TCP and TLS, lettre's SMTP); `tls`: rustls client configurations and the
//!   certificate pin (`Fingerprint`, `PinnedVerifier`).
//!
//! - `routing`: each event's severity, a channel's `Filter` (`events`, `min_severity`), pure.
//! - `channel`: the channels beyond email (`[[alerts.channels]]`: webhook, Slack, Discord,
//!   Telegram, ntfy): their settings, message shapes, HMAC, and `ChannelSender` (a `Mailer`
//!   over HTTP). Each channel runs its own worker (dedupe, queue, outbox); `Alerts` feeds every
//!   worker from the daemon's one sender.
//!
//! Must not: block the sender (the daemon uses `try_send`), or show a password in any message.

pub mod catalog;
pub mod channel;
pub mod context;
pub mod mailer;
pub mod outbox;
pub mod queue;
pub mod routing;
pub mod settings;
pub mod smtp;
pub mod template;
pub mod tls;
pub mod worker;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use catalog::TemplateName;
pub use channel::{ChannelSender, ChannelSettings, ChannelSetupError};
pub use context::{Alert, Facts, time_left};
pub use mailer::{Mail, MailError, MailErrorKind, Mailer};
pub use routing::{Filter, Severity};
pub use settings::{EmailSettings, InlineTemplate, SmtpSecurity, TemplateSettings};
pub use smtp::{SetupError, SmtpMailer};
pub use template::{Rendered, TemplateProblem, Templates};
pub use tls::Fingerprint;
pub use worker::{AlertWorker, Dedupe, Reconfigure, Setup, Verdict, WorkerOptions};

use crate::time::Clock;

/// The problems of the templates `templates` configures (shipped, `templates_dir`, inline), each
/// naming its template and file; empty when they all load. The directory must already be resolved.
pub fn template_problems(templates: &TemplateSettings) -> Vec<TemplateProblem> {
    Templates::load(templates).err().unwrap_or_default()
}

/// A rendered alert as a mail dated `date`.
pub fn mail(rendered: Rendered, date: SystemTime) -> Mail {
    Mail {
        subject: rendered.subject,
        body: rendered.body,
        date,
        meta: None,
    }
}

/// Why alerts cannot start: a template or an `[email]` key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The templates do not load (they changed since the configuration was checked).
    #[error("{}", .0.iter().map(|p| format!("{}: {}", p.key, p.message)).collect::<Vec<_>>().join("; "))]
    Templates(Vec<TemplateProblem>),
    /// The SMTP settings are incomplete or wrong.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A channel's TLS trust cannot be set up.
    #[error(transparent)]
    Channel(#[from] ChannelSetupError),
}

/// The worker's setup of `email` (SMTP mailer, templates, dedupe window, outbox), rendering with
/// `facts`: at start, and again on each reload (where the outbox opened at start stays).
pub fn setup(email: &EmailSettings, facts: Facts) -> Result<Setup, StartError> {
    let templates = Templates::load(&email.templates).map_err(StartError::Templates)?;
    let mailer = SmtpMailer::try_new(email)?;
    Ok(Setup::new(
        mailer,
        templates,
        facts,
        WorkerOptions::new(email.dedupe_window).with_outbox(email.outbox.clone()),
    ))
}

/// Starts the alert worker of `email` (SMTP mailer, templates, dedupe window), rendering with
/// `facts`; the mails left in its outbox by the last run go first.
pub fn start(
    email: &EmailSettings,
    facts: Facts,
    clock: Arc<dyn Clock>,
) -> Result<AlertWorker, StartError> {
    Ok(AlertWorker::start(setup(email, facts)?, clock))
}

/// Why `nodekeeper alert test` failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TestMailError {
    /// The configuration cannot make a mailer (a usage error).
    #[error(transparent)]
    Start(#[from] StartError),
    /// The server did not take the mail (a runtime failure); names the server.
    #[error(transparent)]
    Send(#[from] MailError),
}

/// Sends the test mail (template `test`) with the settings `email`, now. Returns the server's
/// `host:port`.
pub async fn send_test(
    email: &EmailSettings,
    facts: &Facts,
    clock: &dyn Clock,
) -> Result<String, TestMailError> {
    let templates = Templates::load(&email.templates).map_err(StartError::Templates)?;
    let mailer = SmtpMailer::try_new(email).map_err(StartError::from)?;
    let now = clock.now();
    let alert = Alert::test(mailer.server(), facts, now);
    let mail = mail(templates.render(alert.template, &alert.values), now);
    mailer.send(&mail).await?;
    Ok(mailer.server().to_string())
}

/// The worker's setup of the channel `settings` (its sender, templates, dedupe window, filter and
/// outbox), rendering with `facts` (its `{{window}}` the channel's).
pub fn channel_setup(settings: &ChannelSettings, facts: Facts) -> Result<Setup, StartError> {
    let templates = Templates::load(&settings.templates).map_err(StartError::Templates)?;
    let sender = ChannelSender::try_new(settings)?;
    let facts = Facts {
        dedupe_window: settings.dedupe_window,
        ..facts
    };
    Ok(Setup::new(
        sender,
        templates,
        facts,
        WorkerOptions::new(settings.dedupe_window)
            .with_outbox(settings.outbox.clone())
            .for_channel(&settings.name, settings.filter.clone()),
    ))
}

/// Every alert worker of a run: email's (when enabled) and one per channel, fed from one sender
/// by a task that hands each event to every worker (`try_send`: a full worker drops it, logged).
#[derive(Debug)]
pub struct Alerts {
    sender: mpsc::Sender<crate::events::Event>,
    email: Option<AlertWorker>,
    channels: Vec<(String, AlertWorker)>,
    stop: oneshot::Sender<()>,
    fan_out: JoinHandle<()>,
}

impl Alerts {
    /// Starts email's worker when `email.enabled` and one per channel; `None` when there is none.
    pub fn start(
        email: &EmailSettings,
        channels: &[ChannelSettings],
        facts: Facts,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Alerts>, StartError> {
        // Every setup first: nothing starts when one of them cannot.
        let email_setup = if email.enabled {
            Some(setup(email, facts.clone())?)
        } else {
            None
        };
        let channel_setups = channels
            .iter()
            .map(|settings| channel_setup(settings, facts.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        if email_setup.is_none() && channel_setups.is_empty() {
            return Ok(None);
        }
        let email = email_setup.map(|setup| AlertWorker::start(setup, Arc::clone(&clock)));
        let channels: Vec<(String, AlertWorker)> = channels
            .iter()
            .zip(channel_setups)
            .map(|(settings, setup)| {
                (
                    settings.name.clone(),
                    AlertWorker::start(setup, Arc::clone(&clock)),
                )
            })
            .collect();
        let targets: Vec<mpsc::Sender<crate::events::Event>> = email
            .iter()
            .chain(channels.iter().map(|(_, worker)| worker))
            .map(AlertWorker::sender)
            .collect();
        let (sender, receiver) = mpsc::channel(worker::CHANNEL_CAPACITY);
        let (stop, stop_rx) = oneshot::channel();
        let fan_out = tokio::spawn(fan_out(receiver, stop_rx, targets));
        Ok(Some(Alerts {
            sender,
            email,
            channels,
            stop,
            fan_out,
        }))
    }

    /// A sender for the daemon; `try_send` on it returns at once.
    pub fn sender(&self) -> mpsc::Sender<crate::events::Event> {
        self.sender.clone()
    }

    /// The handles to reconfigure email's worker and each channel's (a reload).
    pub fn reconfigure(&self) -> Reconfigures {
        Reconfigures {
            email: self.email.as_ref().map(AlertWorker::reconfigure),
            channels: self
                .channels
                .iter()
                .map(|(name, worker)| (name.clone(), worker.reconfigure()))
                .collect(),
        }
    }

    /// Hands on the events already sent, then finishes every worker (`AlertWorker::finish`),
    /// side by side, within `grace`.
    pub async fn finish(self, grace: Duration) {
        let Alerts {
            sender,
            email,
            channels,
            stop,
            fan_out,
        } = self;
        drop(sender);
        let _ = stop.send(());
        let _ = fan_out.await;
        let finishing: Vec<_> = email
            .into_iter()
            .chain(channels.into_iter().map(|(_, worker)| worker))
            .map(|worker| tokio::spawn(worker.finish(grace)))
            .collect();
        for task in finishing {
            let _ = task.await;
        }
    }
}

/// What a reload reconfigures: email's worker and each channel's, by name, as started.
#[derive(Debug, Default)]
pub struct Reconfigures {
    /// Email's worker, when `email.enabled` at start.
    pub email: Option<Reconfigure>,
    /// Each channel's worker, by `name`.
    pub channels: std::collections::BTreeMap<String, Reconfigure>,
}

/// Hands every event to every target until stopped (then the events waiting too) or every
/// sender is gone.
async fn fan_out(
    mut events: mpsc::Receiver<crate::events::Event>,
    mut stop: oneshot::Receiver<()>,
    targets: Vec<mpsc::Sender<crate::events::Event>>,
) {
    let hand_on = |event: crate::events::Event| {
        for target in &targets {
            if let Err(e) = target.try_send(event.clone()) {
                tracing::warn!("alerts: a worker's queue is full or closed, event dropped: {e}");
            }
        }
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => hand_on(event),
                None => return,
            },
            _ = &mut stop => {
                events.close();
                while let Ok(event) = events.try_recv() {
                    hand_on(event);
                }
                return;
            }
        }
    }
}

/// Sends the test alert (template `test`) to the channel `settings` now, whatever its filters.
/// Returns `channel NAME (KIND)`.
pub async fn send_channel_test(
    settings: &ChannelSettings,
    facts: &Facts,
    clock: &dyn Clock,
) -> Result<String, TestMailError> {
    let templates = Templates::load(&settings.templates).map_err(StartError::Templates)?;
    let sender = ChannelSender::try_new(settings).map_err(StartError::from)?;
    let now = clock.now();
    let alert = Alert::test(sender.server(), facts, now);
    let meta = worker::meta_of(&alert);
    let mail = Mail {
        meta: Some(meta),
        ..mail(templates.render(alert.template, &alert.values), now)
    };
    sender.send(&mail).await?;
    Ok(sender.server().to_string())
}

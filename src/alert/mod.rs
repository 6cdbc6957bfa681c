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
//! Must not: block the sender (the daemon uses `try_send`), or show a password in any message.

pub mod catalog;
pub mod context;
pub mod mailer;
pub mod outbox;
pub mod queue;
pub mod settings;
pub mod smtp;
pub mod template;
pub mod tls;
pub mod worker;

use std::sync::Arc;
use std::time::SystemTime;

pub use catalog::TemplateName;
pub use context::{Alert, Facts, time_left};
pub use mailer::{Mail, MailError, MailErrorKind, Mailer};
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

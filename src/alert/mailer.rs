//! The narrow interface to whatever delivers mail: `Mailer::send` of one rendered `Mail`. The
//! SMTP implementation is `smtp::SmtpMailer`; tests of the worker use an in-memory one.

use std::future::Future;
use std::time::SystemTime;

/// One rendered mail; the envelope (From, To) and transport are the mailer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    /// The Subject header (one line).
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// The Date header: when the alert was raised, not when delivery finally succeeded.
    pub date: SystemTime,
    /// What the alert reports, for channels that send it as data (the webhook's JSON, ntfy's
    /// headers); email ignores it. `None` in mails from before channels existed.
    pub meta: Option<Meta>,
}

/// What an alert reports, besides its text.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// The event name (`routing::EVENT_NAMES`).
    pub event: String,
    /// The node (or supervisord) it is about, if any.
    pub node: Option<String>,
    /// The rule's label or the cause in words, when the event has one.
    pub reason: Option<String>,
    /// Its severity.
    pub severity: super::routing::Severity,
}

/// Whether a failed delivery is worth trying again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailErrorKind {
    /// Anything but a refusal of this mail: the connection, TLS, authentication, a 4xx answer, a
    /// timeout. Retried as long as the mail is queued.
    Transient,
    /// The server refused this mail for good: a 5xx answer to MAIL, RCPT or DATA (but not one of
    /// the authentication codes 530, 534, 535, 538). Never retried.
    Rejected,
}

/// A mail could not be delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot send mail through {server}: {reason}")]
pub struct MailError {
    /// `host:port` of the server.
    pub server: String,
    /// What went wrong, one line.
    pub reason: String,
    /// Whether it is worth trying again.
    pub kind: MailErrorKind,
}

impl MailError {
    /// A failure worth trying again.
    pub fn transient(server: impl Into<String>, reason: impl Into<String>) -> MailError {
        MailError {
            server: server.into(),
            reason: reason.into(),
            kind: MailErrorKind::Transient,
        }
    }
}

/// Delivers mail.
pub trait Mailer: Send + Sync + 'static {
    /// Delivers `mail` to every recipient, or says why not. Bounded in time by the mailer.
    fn send(&self, mail: &Mail) -> impl Future<Output = Result<(), MailError>> + Send;
}

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
}

/// A mail could not be delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot send mail through {server}: {reason}")]
pub struct MailError {
    /// `host:port` of the server.
    pub server: String,
    /// What went wrong, one line.
    pub reason: String,
}

/// Delivers mail.
pub trait Mailer: Send + Sync + 'static {
    /// Delivers `mail` to every recipient, or says why not. Bounded in time by the mailer.
    fn send(&self, mail: &Mail) -> impl Future<Output = Result<(), MailError>> + Send;
}

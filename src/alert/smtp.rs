//! `SmtpMailer`: mail over SMTP with `lettre` (tokio, rustls): implicit TLS (`tls`, port 465),
//! STARTTLS required (`starttls`, 587) or no TLS (`plain`, 25, for a local relay), with the
//! credentials of the configuration, one message for all recipients. Headers: From, To, Date,
//! Message-ID, Subject, and a UTF-8 plain-text body.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::mailer::{Mail, MailError, Mailer};
use super::settings::{EmailSettings, SmtpSecurity};
use crate::describe;

/// How long one delivery (connect, TLS, authentication, data) may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The configuration cannot make a mailer (a key missing or wrong).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("email.{key}: {message}")]
pub struct SetupError {
    /// The key under `[email]`.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn setup_error(key: &'static str, message: impl Into<String>) -> SetupError {
    SetupError {
        key,
        message: message.into(),
    }
}

/// Sends mail through one SMTP server.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    server: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the credentials: never shown.
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `email` (server, port, security, credentials, addresses, extra CA). Checks
    /// what the configuration's validation only checks when alerts are enabled.
    pub fn try_new(email: &EmailSettings) -> Result<SmtpMailer, SetupError> {
        let host = email
            .smtp_server
            .as_deref()
            .filter(|host| !host.trim().is_empty())
            .ok_or_else(|| setup_error("smtp_server", "not set"))?
            .trim()
            .to_string();
        let port = email.port;
        let from_text = email
            .from
            .as_deref()
            .ok_or_else(|| setup_error("from", "not set"))?;
        let from: Mailbox = from_text
            .parse()
            .map_err(|e| setup_error("from", format!("{from_text:?}: {e}")))?;
        if email.to.is_empty() {
            return Err(setup_error("to", "no recipient"));
        }
        let to = email
            .to
            .iter()
            .map(|address| {
                address
                    .parse::<Mailbox>()
                    .map_err(|e| setup_error("to", format!("{address:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match email.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(&host, email.tls_ca_file.as_deref())?),
            SmtpSecurity::Starttls => {
                Tls::Required(tls_parameters(&host, email.tls_ca_file.as_deref())?)
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(SEND_TIMEOUT));
        if let Some(password) = &email.password {
            let user = email.user.clone().unwrap_or_else(|| from.email.to_string());
            builder = builder.credentials(Credentials::new(user, password.expose().to_string()));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            from,
            to,
            server: format!("{host}:{port}"),
        })
    }

    /// `host:port` of the server.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn error(&self, reason: impl Into<String>) -> MailError {
        MailError {
            server: self.server.clone(),
            reason: reason.into(),
        }
    }
}

/// TLS parameters for `host`: the system's roots (rustls-native-certs), plus the certificates of
/// `ca_file`.
fn tls_parameters(
    host: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<TlsParameters, SetupError> {
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            setup_error(
                "tls_ca_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(setup_error(
                "tls_ca_file",
                format!("{}: no PEM certificate in it", path.display()),
            ));
        }
        let certificate = Certificate::from_pem(&pem)
            .map_err(|e| setup_error("tls_ca_file", format!("{}: {e}", path.display())))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| setup_error("security", format!("cannot set up TLS: {e}")))
}

/// lettre's message, with its innermost cause when it adds something (`connection refused`,
/// `invalid peer certificate: UnknownIssuer`), repeated layers said once, lowercase first.
fn reason(error: &lettre::transport::smtp::Error) -> String {
    let outer = error.to_string();
    let inner = describe::innermost(error);
    let full = if outer.contains(&inner) {
        outer
    } else {
        format!("{outer}: {inner}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in full.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    let text = parts.join(": ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone())
            .date(mail.date)
            .message_id(None)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .body(mail.body.clone())
            .map_err(|e| self.error(format!("cannot build the message: {e}")))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| self.error(reason(&e)))
    }
}

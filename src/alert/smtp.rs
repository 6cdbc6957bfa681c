//! `SmtpMailer`: mail over SMTP. The connection and its TLS are ours (tokio, rustls through
//! `tls`), the SMTP dialogue is lettre's (`AsyncSmtpConnection` over our stream), so that every
//! mode goes through one path and can trust a pinned certificate: implicit TLS (`tls`, port 465),
//! STARTTLS required (`starttls`, 587; the plain EHLO and STARTTLS exchange is done here, and a
//! server that sends anything after its 220 answer is refused, since those bytes could be taken
//! as answers after the handshake), or no TLS (`plain`, 25, for a local relay; a password in
//! clear to another host needs `email.allow_insecure`). One message for all recipients. Headers:
//! From, To, Date, Message-ID, Subject, and a UTF-8 plain-text body.
//!
//! A failure is `Rejected` only when the server answers MAIL, RCPT or DATA with a 5xx code other
//! than the authentication codes (530, 534, 535, 538); everything else (connection, TLS,
//! authentication, timeouts) is `Transient`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::ServerName;
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _,
};
use tokio::io::{BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::mailer::{Mail, MailError, MailErrorKind, Mailer};
use super::settings::{self, EmailSettings, SmtpSecurity};
use super::tls::{self, Trust};
use crate::describe;

/// How long one delivery (connect, TLS, authentication, data) may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest reply line read during the STARTTLS exchange (RFC 5321 allows 512 bytes).
const MAX_REPLY_LINE: u64 = 2048;

/// The most lines of one reply read during the STARTTLS exchange.
const MAX_REPLY_LINES: usize = 100;

/// What lettre reads first on a connection whose greeting was already read (STARTTLS).
const PLACEHOLDER_GREETING: &[u8] = b"220 nodekeeper: greeting read before STARTTLS\r\n";

/// The 5xx codes that are about authentication, not about the mail: not a rejection.
const AUTH_CODES: [u16; 4] = [530, 534, 535, 538];

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

/// How the connection is secured.
#[derive(Clone)]
enum Wire {
    Plain,
    Tls(TlsConnector),
    Starttls(TlsConnector),
}

/// Sends mail through one SMTP server.
#[derive(Clone)]
pub struct SmtpMailer {
    host: String,
    port: u16,
    wire: Wire,
    server_name: ServerName<'static>,
    credentials: Option<Credentials>,
    hello: ClientId,
    from: Mailbox,
    to: Vec<Mailbox>,
    server: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credentials are never shown.
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `email` (server, port, security, trust, credentials, addresses). Checks what
    /// the configuration's validation checks, for `alert test` (which runs with alerts off).
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
        if let Some(message) = settings::insecure_auth(
            email.security,
            email.password.is_some(),
            Some(&host),
            email.allow_insecure,
        ) {
            return Err(setup_error("security", message));
        }
        if let Some((key, message)) = settings::tls_conflict(
            email.security,
            email.tls_pin_sha256.is_some(),
            email.tls_ca_file.is_some(),
        ) {
            return Err(setup_error(key, message));
        }
        let bare_host = host
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(&host);
        let server_name = ServerName::try_from(bare_host.to_string())
            .map_err(|e| setup_error("smtp_server", format!("{host:?}: {e}")))?;
        let connector = || -> Result<TlsConnector, SetupError> {
            let trust = match email.tls_pin_sha256 {
                Some(pin) => Trust::Pinned(pin),
                None => Trust::Roots(email.tls_ca_file.as_deref()),
            };
            let key = if email.tls_pin_sha256.is_some() {
                "tls_pin_sha256"
            } else if email.tls_ca_file.is_some() {
                "tls_ca_file"
            } else {
                "security"
            };
            let config = tls::client_config(&trust).map_err(|e| setup_error(key, e.0))?;
            Ok(TlsConnector::from(config))
        };
        let wire = match email.security {
            SmtpSecurity::Plain => Wire::Plain,
            SmtpSecurity::Tls => Wire::Tls(connector()?),
            SmtpSecurity::Starttls => Wire::Starttls(connector()?),
        };
        let credentials = email.password.as_ref().map(|password| {
            let user = email.user.clone().unwrap_or_else(|| from.email.to_string());
            Credentials::new(user, password.expose().to_string())
        });
        Ok(SmtpMailer {
            server: format!("{host}:{port}"),
            host: bare_host.to_string(),
            port,
            wire,
            server_name,
            credentials,
            hello: ClientId::default(),
            from,
            to,
        })
    }

    /// `host:port` of the server.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn error(&self, kind: MailErrorKind, reason: impl Into<String>) -> MailError {
        MailError {
            server: self.server.clone(),
            reason: reason.into(),
            kind,
        }
    }

    fn transient(&self, reason: impl Into<String>) -> MailError {
        self.error(MailErrorKind::Transient, reason)
    }

    /// Connects, secures the connection as configured, and returns it greeted and ready for
    /// lettre (which reads a greeting, then says EHLO).
    async fn open(&self) -> Result<Box<dyn AsyncTokioStream>, MailError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                self.transient(format!("cannot connect: {}", lowercase(&e.to_string())))
            })?;
        let peer = tcp
            .peer_addr()
            .map_err(|e| self.transient(format!("cannot connect: {e}")))?;
        match &self.wire {
            Wire::Plain => Ok(Box::new(tcp)),
            Wire::Tls(connector) => {
                let tls = self.handshake(connector, tcp).await?;
                Ok(Box::new(Stream::new(tls, peer, &[])))
            }
            Wire::Starttls(connector) => {
                let tcp = starttls(tcp, &self.hello)
                    .await
                    .map_err(|reason| self.transient(reason))?;
                let tls = self.handshake(connector, tcp).await?;
                Ok(Box::new(Stream::new(tls, peer, PLACEHOLDER_GREETING)))
            }
        }
    }

    async fn handshake(
        &self,
        connector: &TlsConnector,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, MailError> {
        connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| self.transient(tls_reason(&e)))
    }

    async fn deliver(
        &self,
        envelope: &lettre::address::Envelope,
        bytes: &[u8],
    ) -> Result<(), MailError> {
        let stream = self.open().await?;
        let mut connection = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|e| self.transient(reason(&e)))?;
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| self.transient(reason(&e)))?;
        }
        connection
            .send(envelope, bytes)
            .await
            .map_err(|e| self.error(kind_of(&e), reason(&e)))?;
        // The mail is taken; a failed goodbye changes nothing.
        let _ = connection.quit().await;
        Ok(())
    }
}

/// `Rejected` only for a 5xx answer that is not about authentication; lettre's `send` speaks
/// MAIL, RCPT and DATA only, so its permanent errors are answers to those.
fn kind_of(error: &lettre::transport::smtp::Error) -> MailErrorKind {
    let code = error.status().map(u16::from);
    if error.is_permanent() && !code.is_some_and(|code| AUTH_CODES.contains(&code)) {
        MailErrorKind::Rejected
    } else {
        MailErrorKind::Transient
    }
}

/// The plain part of STARTTLS: greeting, EHLO, STARTTLS, its 220 answer, and nothing after it.
/// Returns the connection, ready for the TLS handshake.
async fn starttls(tcp: TcpStream, hello: &ClientId) -> Result<TcpStream, String> {
    let mut reader = BufReader::new(tcp);
    let (code, _) = read_reply(&mut reader).await?;
    if code != 220 {
        return Err(format!("the server greeted with {code}, not 220"));
    }
    reader
        .get_mut()
        .write_all(format!("EHLO {hello}\r\n").as_bytes())
        .await
        .map_err(|e| format!("cannot write: {e}"))?;
    let (code, lines) = read_reply(&mut reader).await?;
    if code != 250 {
        return Err(format!("the server answered EHLO with {code}"));
    }
    let offers_starttls = lines.iter().any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|keyword| keyword.eq_ignore_ascii_case("STARTTLS"))
    });
    if !offers_starttls {
        return Err("the server does not offer STARTTLS (security = \"starttls\")".into());
    }
    reader
        .get_mut()
        .write_all(b"STARTTLS\r\n")
        .await
        .map_err(|e| format!("cannot write: {e}"))?;
    let (code, lines) = read_reply(&mut reader).await?;
    if code != 220 {
        return Err(format!(
            "the server answered STARTTLS with {code} {}",
            lines.join(" ")
        ));
    }
    if !reader.buffer().is_empty() {
        return Err(
            "the server sent data after its 220 answer to STARTTLS (refused: it could be taken \
             as answers after the handshake)"
                .into(),
        );
    }
    Ok(reader.into_inner())
}

/// One SMTP reply: its code and the text of its lines.
async fn read_reply(reader: &mut BufReader<TcpStream>) -> Result<(u16, Vec<String>), String> {
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = (&mut *reader)
            .take(MAX_REPLY_LINE)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("cannot read the server's answer: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        if !line.ends_with(b"\n") {
            return Err("the server's answer has a line too long".into());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let code = text
            .get(..3)
            .and_then(|code| code.parse::<u16>().ok())
            .filter(|code| (200..600).contains(code))
            .ok_or_else(|| format!("not an SMTP answer: {:?}", describe::excerpt(text, 80)))?;
        let separator = text.as_bytes().get(3).copied();
        lines.push(text.get(4..).unwrap_or_default().to_string());
        match separator {
            Some(b'-') if lines.len() < MAX_REPLY_LINES => {}
            Some(b'-') => return Err("the server's answer has too many lines".into()),
            _ => return Ok((code, lines)),
        }
    }
}

/// A TLS stream for lettre, with a greeting to read first when its own was read already.
struct Stream {
    inner: TlsStream<TcpStream>,
    peer: SocketAddr,
    prefix: &'static [u8],
}

impl Stream {
    fn new(inner: TlsStream<TcpStream>, peer: SocketAddr, prefix: &'static [u8]) -> Stream {
        Stream {
            inner,
            peer,
            prefix,
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("peer", &self.peer).finish()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix = &self.prefix[n..];
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Stream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

/// A failed handshake in rustls's words, with the cause of an "other" certificate error said
/// plainly (`invalid peer certificate: CaUsedAsEndEntity`, not `Other(OtherError(..))`).
fn tls_reason(error: &io::Error) -> String {
    let text = match error.get_ref() {
        Some(inner) => match inner.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
                format!("invalid peer certificate: {}", other.0)
            }
            _ => inner.to_string(),
        },
        None => error.to_string(),
    };
    format!("TLS handshake failed: {text}")
}

/// lettre's message, with its innermost cause when it adds something, repeated layers said once,
/// lowercase first.
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
    lowercase(&parts.join(": "))
}

fn lowercase(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
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
        // A message that cannot be built never will be: not worth a retry.
        let message = builder.body(mail.body.clone()).map_err(|e| {
            self.error(
                MailErrorKind::Rejected,
                format!("cannot build the message: {e}"),
            )
        })?;
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        match tokio::time::timeout(SEND_TIMEOUT, self.deliver(&envelope, &bytes)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(self.transient(format!("no answer within {} s", SEND_TIMEOUT.as_secs()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A scripted server: answers each line the client sends with the next reply (the first
    /// reply is the greeting); returns what the client sent.
    async fn scripted(
        replies: &'static [&'static str],
    ) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut reader = BufReader::new(socket);
            let mut heard = Vec::new();
            reader
                .get_mut()
                .write_all(replies[0].as_bytes())
                .await
                .expect("greet");
            for reply in &replies[1..] {
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                heard.push(line.trim_end().to_string());
                reader
                    .get_mut()
                    .write_all(reply.as_bytes())
                    .await
                    .expect("reply");
            }
            heard
        });
        (port, task)
    }

    async fn exchange(replies: &'static [&'static str]) -> (Result<(), String>, Vec<String>) {
        let (port, server) = scripted(replies).await;
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let outcome = starttls(tcp, &ClientId::Domain("client.test".into()))
            .await
            .map(|_| ());
        (outcome, server.await.expect("server"))
    }

    #[tokio::test]
    async fn starttls_says_ehlo_and_starttls_and_takes_the_220() {
        let (outcome, heard) = exchange(&[
            "220 relay ready\r\n",
            "250-relay\r\n250-SIZE 1000\r\n250 STARTTLS\r\n",
            "220 go ahead\r\n",
        ])
        .await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(heard, ["EHLO client.test", "STARTTLS"]);
    }

    #[tokio::test]
    async fn anything_after_the_220_to_starttls_is_refused() {
        let (outcome, _) = exchange(&[
            "220 relay ready\r\n",
            "250-relay\r\n250 STARTTLS\r\n",
            "220 go ahead\r\n250 injected\r\n",
        ])
        .await;
        let error = outcome.expect_err("refused");
        assert!(
            error.contains("after its 220 answer to STARTTLS"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_server_without_starttls_or_refusing_it_is_an_error() {
        let (outcome, heard) =
            exchange(&["220 relay ready\r\n", "250-relay\r\n250 SIZE 1000\r\n"]).await;
        assert!(
            outcome
                .expect_err("refused")
                .contains("does not offer STARTTLS")
        );
        assert_eq!(heard, ["EHLO client.test"]);
        let (outcome, _) = exchange(&[
            "220 relay ready\r\n",
            "250 STARTTLS\r\n",
            "454 TLS not available\r\n",
        ])
        .await;
        assert!(outcome.expect_err("refused").contains("454"));
    }

    fn plain_settings(port: u16) -> EmailSettings {
        EmailSettings {
            enabled: true,
            smtp_server: Some("127.0.0.1".into()),
            port,
            security: SmtpSecurity::Plain,
            user: None,
            password: None,
            from: Some("nk@example.org".into()),
            to: vec!["ops@example.org".into()],
            tls_ca_file: None,
            tls_pin_sha256: None,
            allow_insecure: false,
            outbox: None,
            templates: Default::default(),
            dedupe_window: Duration::from_secs(60),
        }
    }

    fn mail() -> Mail {
        Mail {
            subject: "s".into(),
            body: "b".into(),
            date: std::time::SystemTime::UNIX_EPOCH,
            meta: None,
        }
    }

    #[tokio::test]
    async fn only_a_5xx_answer_to_mail_rcpt_or_data_that_is_not_about_auth_is_a_rejection() {
        const EHLO: &str = "250-relay\r\n250 8BITMIME\r\n";
        let table: [(&'static [&'static str], MailErrorKind); 5] = [
            (
                &["220 hi\r\n", EHLO, "550 no such sender\r\n"],
                MailErrorKind::Rejected,
            ),
            (
                &["220 hi\r\n", EHLO, "250 ok\r\n", "550 no such user\r\n"],
                MailErrorKind::Rejected,
            ),
            (
                &["220 hi\r\n", EHLO, "451 try later\r\n"],
                MailErrorKind::Transient,
            ),
            (
                &["220 hi\r\n", EHLO, "530 authenticate first\r\n"],
                MailErrorKind::Transient,
            ),
            (&["554 go away\r\n"], MailErrorKind::Transient),
        ];
        for (replies, expected) in table {
            let (port, server) = scripted(replies).await;
            let mailer = SmtpMailer::try_new(&plain_settings(port)).expect("mailer");
            let error = mailer.send(&mail()).await.expect_err("refused");
            assert_eq!(error.kind, expected, "{replies:?}: {error}");
            server.abort();
        }
        // Nobody listening: transient.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let mailer = SmtpMailer::try_new(&plain_settings(port)).expect("mailer");
        let error = mailer.send(&mail()).await.expect_err("refused");
        assert_eq!(error.kind, MailErrorKind::Transient);
        assert!(error.reason.contains("connection refused"), "{error}");
    }

    #[test]
    fn a_password_in_clear_to_another_host_is_refused_naming_the_key_not_the_password() {
        let settings = EmailSettings {
            smtp_server: Some("relay.example.org".into()),
            password: Some(crate::secret::Secret::new("hunter2-secret")),
            ..plain_settings(25)
        };
        let error = SmtpMailer::try_new(&settings)
            .expect_err("refused")
            .to_string();
        assert!(
            error.starts_with("email.security: ") && error.contains("email.allow_insecure"),
            "{error}"
        );
        assert!(!error.contains("hunter2"));
        assert!(
            SmtpMailer::try_new(&EmailSettings {
                allow_insecure: true,
                ..settings.clone()
            })
            .is_ok()
        );
        assert!(
            SmtpMailer::try_new(&EmailSettings {
                smtp_server: Some("localhost".into()),
                ..settings
            })
            .is_ok()
        );
    }
}

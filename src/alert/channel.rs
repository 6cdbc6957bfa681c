//! Alert channels beyond email (`[[alerts.channels]]`): a generic webhook, Slack / Mattermost,
//! Discord, Telegram and ntfy. Owns each kind's resolved settings (`ChannelSettings`), the message
//! shapes (`outgoing`, pure: a rendered `Mail` to the request), the webhook's HMAC signature, the
//! verdict on an HTTP status, and `ChannelSender`, the `Mailer` that POSTs them. The worker
//! (dedupe, queue, outbox) is email's, one per channel.
//!
//! Must not: show a secret (HMAC secret, bot token, ntfy token) or a channel's URL path (Slack's
//! and Discord's carry their token) in a log line, an error or `Debug`.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::mailer::{Mail, MailError, MailErrorKind, Mailer, Meta};
use super::routing::{Filter, Severity};
use super::settings::TemplateSettings;
use super::tls::{self, Fingerprint, Trust};
use crate::secret::Secret;

/// The header carrying the webhook's signature: `sha256=HEX` of HMAC-SHA256 over the body.
pub const SIGNATURE_HEADER: &str = "X-Nodekeeper-Signature";

/// Telegram's Bot API, the default `url` of a `telegram` channel.
pub const TELEGRAM_API: &str = "https://api.telegram.org";

/// How long one delivery may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The file name of a channel's outbox beside the restart log: `alert-outbox-NAME.json`.
pub fn outbox_file_name(name: &str) -> String {
    format!("alert-outbox-{name}.json")
}

/// The `kind` of a channel, as the configuration spells it.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    /// A generic JSON webhook.
    Webhook,
    /// A Slack (or Mattermost) incoming webhook.
    Slack,
    /// A Discord webhook.
    Discord,
    /// Telegram's `sendMessage`.
    Telegram,
    /// An ntfy topic.
    Ntfy,
}

impl KindName {
    /// The kind as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            KindName::Webhook => "webhook",
            KindName::Slack => "slack",
            KindName::Discord => "discord",
            KindName::Telegram => "telegram",
            KindName::Ntfy => "ntfy",
        }
    }
}

/// A channel's kind with its own settings.
#[derive(Clone, PartialEq, Eq)]
pub enum Kind {
    /// JSON {event, node, reason, severity, timestamp, instance?, text}, signed when a secret is
    /// set.
    Webhook {
        /// The HMAC-SHA256 key (`hmac_secret_file`).
        hmac_secret: Option<Secret>,
    },
    /// {"text": ...}.
    Slack,
    /// {"content": ...}.
    Discord,
    /// {chat_id, text} to `URL/botTOKEN/sendMessage`.
    Telegram {
        /// The bot's token (`bot_token_file`).
        bot_token: Secret,
        /// The chat: a number or `@channelname`, sent as configured.
        chat_id: Value,
    },
    /// The text as the body, Title / Priority / Tags headers; the URL names the topic.
    Ntfy {
        /// An access token (`token_file`), sent as `Authorization: Bearer`.
        token: Option<Secret>,
    },
}

impl Kind {
    /// The kind's name.
    pub fn name(&self) -> KindName {
        match self {
            Kind::Webhook { .. } => KindName::Webhook,
            Kind::Slack => KindName::Slack,
            Kind::Discord => KindName::Discord,
            Kind::Telegram { .. } => KindName::Telegram,
            Kind::Ntfy { .. } => KindName::Ntfy,
        }
    }
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets are `Secret`s already; the chat id is no secret.
        match self {
            Kind::Webhook { hmac_secret } => f
                .debug_struct("Webhook")
                .field("hmac_secret", hmac_secret)
                .finish(),
            Kind::Slack => f.write_str("Slack"),
            Kind::Discord => f.write_str("Discord"),
            Kind::Telegram { bot_token, chat_id } => f
                .debug_struct("Telegram")
                .field("bot_token", bot_token)
                .field("chat_id", chat_id)
                .finish(),
            Kind::Ntfy { token } => f.debug_struct("Ntfy").field("token", token).finish(),
        }
    }
}

/// One channel, every default resolved (`[[alerts.channels]]`).
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelSettings {
    /// Its name (letters, digits, `-`, `_`): logs, `alert test --channel`, the outbox's name.
    pub name: String,
    /// Its kind and the kind's own settings.
    pub kind: Kind,
    /// Where to POST (ntfy: with the topic; telegram: the API's base).
    pub url: reqwest::Url,
    /// What it receives.
    pub filter: Filter,
    /// The same alert is sent at most once per window.
    pub dedupe_window: Duration,
    /// The durable outbox (`alert-outbox-NAME.json` beside the restart log by default).
    pub outbox: Option<PathBuf>,
    /// Templates overriding the shipped ones (the catalog email uses).
    pub templates: TemplateSettings,
    /// A PEM file of CA certificates trusted besides the system's.
    pub tls_ca_file: Option<PathBuf>,
    /// Trust exactly the server certificate with this fingerprint.
    pub tls_pin_sha256: Option<Fingerprint>,
    /// This instance's name under `[cluster]` (the webhook's `instance`).
    pub instance: Option<String>,
}

/// `url` as logs and `Debug` may show it: the scheme and the host only (a Slack or Discord URL's
/// path is its secret).
pub fn shown_url(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}/…", url.scheme()),
        (Some(host), None) => format!("{}://{host}/…", url.scheme()),
        _ => format!("{}:…", url.scheme()),
    }
}

impl std::fmt::Debug for ChannelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSettings")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &shown_url(&self.url))
            .field("filter", &self.filter)
            .field("dedupe_window", &self.dedupe_window)
            .field("outbox", &self.outbox)
            .field("templates", &self.templates)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_pin_sha256", &self.tls_pin_sha256)
            .field("instance", &self.instance)
            .finish()
    }
}

/// One HTTP POST, built purely from a mail.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where.
    pub url: reqwest::Url,
    /// The headers besides Content-Type.
    pub headers: Vec<(&'static str, String)>,
    /// `application/json` or `text/plain; charset=utf-8`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// The most characters a kind's text may have (Discord 2000, Telegram 4096, Slack's advice 4000).
fn text_limit(kind: KindName) -> usize {
    match kind {
        KindName::Discord => 2000,
        KindName::Slack | KindName::Telegram => 4000,
        KindName::Webhook | KindName::Ntfy => 16_000,
    }
}

/// The short text form of a rendered alert: the subject line, a blank line and the body,
/// trimmed, at most `limit` characters (cut with `…`).
pub fn text(mail: &Mail, limit: usize) -> String {
    let body = mail.body.trim();
    let whole = if body.is_empty() {
        mail.subject.trim().to_string()
    } else {
        format!("{}\n\n{body}", mail.subject.trim())
    };
    cut(whole, limit)
}

fn cut(text: String, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text;
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The meta of a mail without one (an outbox from before channels).
fn meta_or_default(mail: &Mail) -> Meta {
    mail.meta.clone().unwrap_or(Meta {
        event: "alert".into(),
        node: None,
        reason: None,
        severity: Severity::Warning,
    })
}

/// RFC 3339 in UTC, to the second.
pub fn rfc3339(mail: &Mail) -> String {
    let since = mail.date.duration_since(UNIX_EPOCH).unwrap_or_default();
    chrono::DateTime::<chrono::Utc>::from(UNIX_EPOCH + Duration::from_secs(since.as_secs()))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The request that delivers `mail` to a channel of `kind` at `url`.
pub fn outgoing(kind: &Kind, url: &reqwest::Url, mail: &Mail, instance: Option<&str>) -> Outgoing {
    let text = text(mail, text_limit(kind.name()));
    let json_post = |url: reqwest::Url, body: Value, headers| Outgoing {
        url,
        headers,
        content_type: "application/json",
        body: serde_json::to_vec(&body).unwrap_or_default(),
    };
    match kind {
        Kind::Webhook { hmac_secret } => {
            let meta = meta_or_default(mail);
            let mut body = json!({
                "event": meta.event,
                "node": meta.node,
                "reason": meta.reason,
                "severity": meta.severity.as_str(),
                "timestamp": rfc3339(mail),
            });
            if let (Some(instance), Some(object)) = (instance, body.as_object_mut()) {
                object.insert("instance".into(), Value::from(instance));
            }
            if let Some(object) = body.as_object_mut() {
                object.insert("text".into(), Value::from(text));
            }
            let mut post = json_post(url.clone(), body, Vec::new());
            if let Some(secret) = hmac_secret {
                post.headers.push((
                    SIGNATURE_HEADER,
                    signature(secret.expose().as_bytes(), &post.body),
                ));
            }
            post
        }
        Kind::Slack => json_post(url.clone(), json!({ "text": text }), Vec::new()),
        Kind::Discord => json_post(url.clone(), json!({ "content": text }), Vec::new()),
        Kind::Telegram { bot_token, chat_id } => {
            let base = url.as_str().trim_end_matches('/');
            let endpoint = format!("{base}/bot{}/sendMessage", bot_token.expose());
            let endpoint = reqwest::Url::parse(&endpoint).unwrap_or_else(|_| url.clone());
            json_post(
                endpoint,
                json!({ "chat_id": chat_id, "text": text }),
                Vec::new(),
            )
        }
        Kind::Ntfy { token } => {
            let meta = meta_or_default(mail);
            let priority = match meta.severity {
                Severity::Info => "3",
                Severity::Warning => "4",
                Severity::Critical => "5",
            };
            let mut headers = vec![
                ("Title", header_text(mail.subject.trim())),
                ("Priority", priority.to_string()),
                ("Tags", format!("{},{}", meta.severity.as_str(), meta.event)),
            ];
            if let Some(token) = token {
                headers.push(("Authorization", format!("Bearer {}", token.expose())));
            }
            let body = cut(mail.body.trim().to_string(), text_limit(KindName::Ntfy));
            Outgoing {
                url: url.clone(),
                headers,
                content_type: "text/plain; charset=utf-8",
                body: body.into_bytes(),
            }
        }
    }
}

/// `text` as a header value: as is when it is printable ASCII, else RFC 2047 (`=?UTF-8?B?..?=`),
/// which ntfy decodes.
pub fn header_text(text: &str) -> String {
    if text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        text.to_string()
    } else {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        format!("=?UTF-8?B?{encoded}?=")
    }
}

/// HMAC-SHA256 (RFC 2104) of `message` with `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    let mut mac = [0u8; 32];
    mac.copy_from_slice(&outer.finalize());
    mac
}

/// The signature header's value for `body`: `sha256=` and the lowercase hex HMAC.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let hex: String = hmac_sha256(key, body)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// What an HTTP status means for the alert: delivered, worth trying again (5xx, 408, 429 and
/// anything unexpected), or refused for good (any other 4xx).
pub fn verdict(status: u16) -> Result<(), MailErrorKind> {
    match status {
        200..=299 => Ok(()),
        408 | 429 => Err(MailErrorKind::Transient),
        400..=499 => Err(MailErrorKind::Rejected),
        _ => Err(MailErrorKind::Transient),
    }
}

/// Why a channel cannot be set up (its TLS trust); names the channel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("alerts.channels {name}: {message}")]
pub struct ChannelSetupError {
    /// The channel.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

/// Delivers a channel's alerts over HTTP(S).
#[derive(Clone)]
pub struct ChannelSender {
    kind: Kind,
    url: reqwest::Url,
    instance: Option<String>,
    client: reqwest::Client,
    server: String,
}

impl ChannelSender {
    /// The sender of `settings` (its TLS trust read now).
    pub fn try_new(settings: &ChannelSettings) -> Result<ChannelSender, ChannelSetupError> {
        let setup_error = |message: String| ChannelSetupError {
            name: settings.name.clone(),
            message,
        };
        let trust = match &settings.tls_pin_sha256 {
            Some(pin) => Trust::Pinned(*pin),
            None => Trust::Roots(settings.tls_ca_file.as_deref()),
        };
        let tls = tls::client_config(&trust).map_err(|e| setup_error(e.to_string()))?;
        let client = crate::http::client_builder()
            .timeout(TIMEOUT)
            .tls_backend_preconfigured((*tls).clone())
            .build()
            .map_err(|e| setup_error(format!("cannot make an HTTP client: {}", e.without_url())))?;
        Ok(ChannelSender {
            kind: settings.kind.clone(),
            url: settings.url.clone(),
            instance: settings.instance.clone(),
            client,
            server: format!(
                "channel {} ({})",
                settings.name,
                settings.kind.name().as_str()
            ),
        })
    }

    /// `channel NAME (KIND)`, as errors name it.
    pub fn server(&self) -> &str {
        &self.server
    }
}

impl Mailer for ChannelSender {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let post = outgoing(&self.kind, &self.url, mail, self.instance.as_deref());
        let mut request = self
            .client
            .post(post.url)
            .header(reqwest::header::CONTENT_TYPE, post.content_type)
            .body(post.body);
        for (name, value) in post.headers {
            request = request.header(name, value);
        }
        let error = |kind, reason: String| MailError {
            server: self.server.clone(),
            reason,
            kind,
        };
        // `without_url`: a Telegram URL holds the bot token, a Slack one its secret path.
        let response = request
            .send()
            .await
            .map_err(|e| error(MailErrorKind::Transient, e.without_url().to_string()))?;
        let status = response.status();
        verdict(status.as_u16()).map_err(|kind| error(kind, format!("HTTP {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> Mail {
        Mail {
            subject: "[nodekeeper] node1 crashed and was restarted".into(),
            body: "Node node1 crashed.\n\nReason: exited\n".into(),
            date: UNIX_EPOCH + Duration::from_secs(1_795_311_547),
            meta: Some(Meta {
                event: "node_restarted".into(),
                node: Some("node1".into()),
                reason: Some("crashed".into()),
                severity: Severity::Warning,
            }),
        }
    }

    fn url(text: &str) -> reqwest::Url {
        reqwest::Url::parse(text).expect("url")
    }

    fn json_body(post: &Outgoing) -> Value {
        assert_eq!(post.content_type, "application/json");
        serde_json::from_slice(&post.body).expect("json")
    }

    const TEXT: &str =
        "[nodekeeper] node1 crashed and was restarted\n\nNode node1 crashed.\n\nReason: exited";

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(mac[..4], [0x60, 0xe4, 0x31, 0x59]);
    }

    #[test]
    fn backup_and_restore_alerts_reach_channels_with_their_event_severity_and_cause() {
        use crate::alert::context::{Alert, Facts};
        use crate::alert::template::Templates;
        use crate::events::Event;
        let templates = Templates::shipped().expect("the shipped templates load");
        let date = UNIX_EPOCH + Duration::from_secs(1_795_311_547);
        let cases = [
            (
                Event::BackupDone {
                    node: "bp1".into(),
                    archive: "/b/bp1.tar.zst".into(),
                    height: Some(7),
                    bytes: 2_000_000_000,
                    took: Duration::from_secs(61),
                    scheduled: true,
                },
                "info",
                Value::Null,
                "[nodekeeper] bp1 backed up: 2.0 GB in 1m 1s",
            ),
            (
                Event::BackupFailed {
                    node: "bp1".into(),
                    error: "disk full".into(),
                    scheduled: true,
                },
                "critical",
                json!("disk full"),
                "[nodekeeper] bp1: backup failed",
            ),
            (
                Event::NodeRestored {
                    node: "bp1".into(),
                    archive: "/b/bp1.tar.zst".into(),
                    reason: "corrupt database".into(),
                    automatic: true,
                },
                "warning",
                json!("corrupt database"),
                "[nodekeeper] bp1 restored from a backup (automatic)",
            ),
            (
                Event::RestoreFailed {
                    node: "bp1".into(),
                    error: "checksum mismatch".into(),
                    automatic: false,
                },
                "critical",
                json!("checksum mismatch"),
                "[nodekeeper] bp1: restore failed",
            ),
        ];
        for (event, severity, reason, subject) in cases {
            let alert = Alert::from_event(&event, &Facts::test(), date).expect("alerted");
            let rendered = templates.render(alert.template, &alert.values);
            let mail = Mail {
                subject: rendered.subject,
                body: rendered.body,
                date,
                meta: Some(crate::alert::worker::meta_of(&alert)),
            };
            let hook = json_body(&outgoing(
                &Kind::Webhook { hmac_secret: None },
                &url("https://hooks.example/x"),
                &mail,
                None,
            ));
            assert_eq!(hook["event"], event.kind(), "{hook}");
            assert_eq!(hook["node"], "bp1", "{hook}");
            assert_eq!(hook["severity"], severity, "{hook}");
            assert_eq!(hook["reason"], reason, "{hook}");
            let text = hook["text"].as_str().expect("text");
            assert!(text.starts_with(subject), "{text}");
            let slack = json_body(&outgoing(
                &Kind::Slack,
                &url("https://hooks.slack.com/x"),
                &mail,
                None,
            ));
            assert!(
                slack["text"].as_str().expect("text").starts_with(subject),
                "{slack}"
            );
        }
    }

    #[test]
    fn the_webhook_sends_the_event_as_json_signed_over_its_body() {
        let kind = Kind::Webhook {
            hmac_secret: Some(Secret::new("s3cret")),
        };
        let post = outgoing(
            &kind,
            &url("https://hooks.example/x"),
            &mail(),
            Some("east"),
        );
        assert_eq!(
            json_body(&post),
            json!({
                "event": "node_restarted",
                "node": "node1",
                "reason": "crashed",
                "severity": "warning",
                "timestamp": "2026-11-22T01:39:07Z",
                "instance": "east",
                "text": TEXT,
            })
        );
        assert_eq!(
            post.headers,
            [(SIGNATURE_HEADER, signature(b"s3cret", &post.body))]
        );
        assert!(post.headers[0].1.starts_with("sha256=") && post.headers[0].1.len() == 71);
        let unsigned = outgoing(
            &Kind::Webhook { hmac_secret: None },
            &url("https://hooks.example/x"),
            &mail(),
            None,
        );
        assert!(unsigned.headers.is_empty());
        assert!(json_body(&unsigned).get("instance").is_none());
    }

    #[test]
    fn slack_discord_and_telegram_get_their_own_shapes() {
        let slack = outgoing(
            &Kind::Slack,
            &url("https://hooks.slack.com/services/T/B/X"),
            &mail(),
            None,
        );
        assert_eq!(json_body(&slack), json!({ "text": TEXT }));
        assert_eq!(slack.url.as_str(), "https://hooks.slack.com/services/T/B/X");
        let discord = outgoing(
            &Kind::Discord,
            &url("https://discord.com/api/webhooks/1/t"),
            &mail(),
            None,
        );
        assert_eq!(json_body(&discord), json!({ "content": TEXT }));
        let telegram = Kind::Telegram {
            bot_token: Secret::new("123:ABC"),
            chat_id: json!(-1001),
        };
        let post = outgoing(&telegram, &url(TELEGRAM_API), &mail(), None);
        assert_eq!(
            post.url.as_str(),
            "https://api.telegram.org/bot123:ABC/sendMessage"
        );
        assert_eq!(json_body(&post), json!({ "chat_id": -1001, "text": TEXT }));
    }

    #[test]
    fn ntfy_gets_the_body_as_text_and_the_rest_in_headers() {
        let kind = Kind::Ntfy {
            token: Some(Secret::new("tk_1")),
        };
        let mut critical = mail();
        critical.subject = "[nodekeeper] nœud1 held".into();
        if let Some(meta) = critical.meta.as_mut() {
            meta.severity = Severity::Critical;
            meta.event = "node_held".into();
        }
        let post = outgoing(&kind, &url("https://ntfy.sh/pool-alerts"), &critical, None);
        assert_eq!(post.content_type, "text/plain; charset=utf-8");
        assert_eq!(post.body, b"Node node1 crashed.\n\nReason: exited");
        assert_eq!(
            post.headers,
            [
                (
                    "Title",
                    "=?UTF-8?B?W25vZGVrZWVwZXJdIG7Fk3VkMSBoZWxk?=".to_string()
                ),
                ("Priority", "5".to_string()),
                ("Tags", "critical,node_held".to_string()),
                ("Authorization", "Bearer tk_1".to_string()),
            ]
        );
        assert_eq!(header_text("plain title"), "plain title");
    }

    #[test]
    fn a_long_text_is_cut_to_the_kinds_limit() {
        let mut long = mail();
        long.body = "é".repeat(5000);
        let post = outgoing(
            &Kind::Discord,
            &url("https://discord.com/api/webhooks/1/t"),
            &long,
            None,
        );
        let content = json_body(&post)["content"]
            .as_str()
            .expect("text")
            .to_string();
        assert_eq!(content.chars().count(), 2000);
        assert!(content.ends_with('…'));
    }

    #[test]
    fn only_4xx_other_than_408_and_429_is_a_rejection() {
        assert_eq!(verdict(204), Ok(()));
        assert_eq!(verdict(400), Err(MailErrorKind::Rejected));
        assert_eq!(verdict(404), Err(MailErrorKind::Rejected));
        assert_eq!(verdict(408), Err(MailErrorKind::Transient));
        assert_eq!(verdict(429), Err(MailErrorKind::Transient));
        assert_eq!(verdict(500), Err(MailErrorKind::Transient));
        assert_eq!(verdict(503), Err(MailErrorKind::Transient));
    }

    #[test]
    fn debug_shows_no_secret_and_no_url_path() {
        let settings = ChannelSettings {
            name: "ops".into(),
            kind: Kind::Telegram {
                bot_token: Secret::new("123:SECRET"),
                chat_id: json!("@pool"),
            },
            url: url("https://hooks.slack.com/services/T0/B0/SECRETPATH"),
            filter: Filter::all(),
            dedupe_window: Duration::from_secs(60),
            outbox: None,
            templates: TemplateSettings::default(),
            tls_ca_file: None,
            tls_pin_sha256: None,
            instance: None,
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("hooks.slack.com"));
    }
}

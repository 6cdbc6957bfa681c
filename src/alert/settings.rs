//! What alerts need from the configuration (`[email]`), resolved: the SMTP server and how to reach
//! it, the addresses, the templates and the dedupe window. The configuration builds these; nothing
//! here reads a file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tls::Fingerprint;
use crate::secret::Secret;

/// SMTP transport security.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Implicit TLS (port 465).
    Tls,
    /// STARTTLS (port 587).
    Starttls,
    /// No TLS (a local relay).
    Plain,
}

impl SmtpSecurity {
    /// The default port of this mode: 465, 587 or 25.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Plain => 25,
        }
    }
}

/// One template given inline in the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InlineTemplate {
    /// The subject line template.
    pub subject: String,
    /// The body template.
    pub message: String,
}

/// Where templates come from besides the shipped ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateSettings {
    /// A directory of `NAME.txt` files overriding the shipped templates (path resolved).
    pub dir: Option<PathBuf>,
    /// Inline templates by event name (also jmanager's `stuck`, `bootstrap_restart`,
    /// `slots_assigned`); they win over the directory's.
    pub inline: BTreeMap<String, InlineTemplate>,
}

/// The email settings, every default resolved. The configuration checks the server and addresses
/// only when `enabled`; `SmtpMailer::try_new` checks them again, for `alert test`.
#[derive(Clone, Debug)]
pub struct EmailSettings {
    /// The daemon sends alerts.
    pub enabled: bool,
    /// SMTP server host name.
    pub smtp_server: Option<String>,
    /// Port (the security mode's default when not configured).
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// SMTP user name; `None`: the sender's address.
    pub user: Option<String>,
    /// The SMTP password; without one, no authentication.
    pub password: Option<Secret>,
    /// Sender address.
    pub from: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// A PEM file of CA certificates trusted besides the system's (path resolved).
    pub tls_ca_file: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (not with
    /// `tls_ca_file`, nor with `plain`).
    pub tls_pin_sha256: Option<Fingerprint>,
    /// Allow the password in clear (`plain`) to a host that is not a loopback one.
    pub allow_insecure: bool,
    /// The file keeping undelivered mails across restarts (path resolved; by default
    /// `alert-outbox.json` beside the restart log); `None`: mails live in memory only.
    pub outbox: Option<PathBuf>,
    /// Templates overriding the shipped ones.
    pub templates: TemplateSettings,
    /// The same event for the same node is mailed at most once per window.
    pub dedupe_window: Duration,
}

/// Whether `host` is this machine without asking DNS: `localhost`, a name under `.localhost`, or
/// a loopback address (IPv4 127/8, `::1`, also IPv4-mapped, in brackets or not).
pub fn is_loopback_host(host: &str) -> bool {
    crate::http::is_loopback_host(host.trim())
}

/// Why `security`, `password` and `host` would send the password in clear over the network,
/// unless `allow_insecure`: the message for `email.security`.
pub fn insecure_auth(
    security: SmtpSecurity,
    has_password: bool,
    host: Option<&str>,
    allow_insecure: bool,
) -> Option<String> {
    let host = host.map(str::trim).filter(|host| !host.is_empty())?;
    (security == SmtpSecurity::Plain && has_password && !allow_insecure && !is_loopback_host(host))
        .then(|| {
            format!(
                "\"plain\" would send the SMTP password in clear to {host}, which is not a \
                 loopback host: use \"starttls\" or \"tls\", or set email.allow_insecure = true"
            )
        })
}

/// Why the TLS keys contradict each other or the security mode: `(key, message)`.
pub fn tls_conflict(
    security: SmtpSecurity,
    pinned: bool,
    has_ca_file: bool,
) -> Option<(&'static str, &'static str)> {
    if !pinned {
        return None;
    }
    if security == SmtpSecurity::Plain {
        Some((
            "tls_pin_sha256",
            "a pinned certificate needs security \"tls\" or \"starttls\", not \"plain\"",
        ))
    } else if has_ca_file {
        Some((
            "tls_pin_sha256",
            "either a pinned certificate or email.tls_ca_file, not both",
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_clear_to_another_host_needs_allow_insecure() {
        use SmtpSecurity::*;
        let table = [
            (Plain, true, "relay.example.org", false, true),
            (Plain, true, "relay.example.org", true, false),
            (Plain, true, "127.0.0.1", false, false),
            (Plain, false, "relay.example.org", false, false),
            (Starttls, true, "relay.example.org", false, false),
            (Tls, true, "relay.example.org", false, false),
        ];
        for (security, password, host, allow, refused) in table {
            let problem = insecure_auth(security, password, Some(host), allow);
            assert_eq!(
                problem.is_some(),
                refused,
                "{security:?} {password} {host} {allow}"
            );
            if let Some(problem) = problem {
                assert!(problem.contains("email.allow_insecure") && problem.contains(host));
            }
        }
    }

    #[test]
    fn a_pin_goes_with_tls_only_and_without_a_ca_file() {
        use SmtpSecurity::*;
        assert!(tls_conflict(Plain, true, false).is_some());
        assert!(tls_conflict(Tls, true, true).is_some());
        assert!(tls_conflict(Starttls, true, false).is_none());
        assert!(tls_conflict(Tls, false, true).is_none());
        assert!(tls_conflict(Plain, false, false).is_none());
    }
}

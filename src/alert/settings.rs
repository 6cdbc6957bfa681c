//! What alerts need from the configuration (`[email]`), resolved: the SMTP server and how to reach
//! it, the addresses, the templates and the dedupe window. The configuration builds these; nothing
//! here reads a file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Templates overriding the shipped ones.
    pub templates: TemplateSettings,
    /// The same event for the same node is mailed at most once per window.
    pub dedupe_window: Duration,
}

//! The jmanager drop-in: converts jmanager's two files (`jmanager_config.json` and
//! `config_template.json`, in jmanager's exact layout) into nodekeeper's `RawConfig`, and writes
//! the result as nodekeeper TOML (`nodekeeper config import-jmanager`).
//!
//! It owns the key mapping from jmanager to nodekeeper. Every key of jmanager's file is either
//! converted, or reported as a **notice** (a `ConfigError` that does not stop the import): keys
//! nodekeeper deliberately does not use, keys jmanager itself does not know (with a did-you-mean),
//! and values that behave differently under nodekeeper. Nothing is silently dropped. Problems
//! that make a conversion impossible (unreadable or invalid JSON, missing sections, wrong types)
//! are **errors**, all reported in one run, each naming the file and jmanager's key path.
//!
//! It checks JSON types only; values are checked by `validate`, like any other config.
//! Relative paths are resolved against the working directory, as jmanager resolved them, and
//! written absolute so that the converted config works wherever it is stored. It reads the two
//! files and writes nothing.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::{ConfigError, ConfigErrors, did_you_mean};
use super::raw::{RawConfig, RawNode, RawPeer, RawTemplate, SlotsVerification, SmtpSecurity};

/// The PoolTool user id of jmanager's example config: PoolTool stays disabled while it is set.
pub const USER_ID_PLACEHOLDER: &str = "<pool_tool_user_id>";

/// A converted jmanager configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    /// nodekeeper's equivalent of jmanager's two files.
    pub raw: RawConfig,
    /// What was not converted, or converts with a change of behaviour: origin = the jmanager
    /// file, key = jmanager's key path, message = why.
    pub notices: Vec<ConfigError>,
}

/// Reads jmanager's `jmanager_config.json` and its node config template and converts them. Errors
/// are every problem found in either file.
pub fn import(jmanager_config: &Path, config_template: &Path) -> Result<Import, ConfigErrors> {
    match std::env::current_dir() {
        Ok(cwd) => import_in(jmanager_config, config_template, &cwd),
        Err(e) => {
            let mut errors = ConfigErrors::default();
            errors.push(ConfigError::new(
                jmanager_config.display().to_string(),
                "",
                format!("cannot resolve relative paths: no working directory ({e})"),
            ));
            Err(errors)
        }
    }
}

/// [`import`] with relative paths (the two arguments and the paths inside the file) resolved
/// against `cwd`.
fn import_in(
    jmanager_config: &Path,
    config_template: &Path,
    cwd: &Path,
) -> Result<Import, ConfigErrors> {
    let mut reader = Reader {
        origin: jmanager_config.display().to_string(),
        cwd,
        errors: ConfigErrors::default(),
        notices: Vec::new(),
    };
    let template_path = absolute(cwd, config_template);
    let template = read_template(&template_path, config_template, &mut reader.errors);
    let document = match std::fs::read_to_string(absolute(cwd, jmanager_config)) {
        Err(e) => {
            reader.error("", format!("cannot read: {e}"));
            None
        }
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(document) => Some(document),
            Err(e) => {
                reader.error("", format!("invalid JSON: {e}"));
                None
            }
        },
    };
    let mut raw = RawConfig::default();
    raw.node_defaults.template = Some(template_path);
    if let Some(document) = &document {
        reader.document(document, template.as_ref(), &mut raw);
    }
    let Reader {
        errors, notices, ..
    } = reader;
    errors.into_result(Import { raw, notices })
}

/// The template: readable, JSON, an object. Errors name the template's path.
fn read_template(path: &Path, shown: &Path, errors: &mut ConfigErrors) -> Option<Value> {
    let mut fail = |message: String| {
        errors.push(ConfigError::new(shown.display().to_string(), "", message));
        None
    };
    match std::fs::read_to_string(path) {
        Err(e) => fail(format!("cannot read the node config template: {e}")),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(template @ Value::Object(_)) => Some(template),
            Ok(other) => fail(format!(
                "expected a JSON object (a node config template), got {}",
                describe(&other)
            )),
            Err(e) => fail(format!("invalid JSON: {e}")),
        },
    }
}

/// The keys of one jmanager object: those converted, and those known but not used (with why).
struct Keys {
    used: &'static [&'static str],
    unused: &'static [(&'static str, &'static str)],
}

const REMOVED_FROM_JMANAGER: &str =
    "not used: jmanager itself stopped reading this key (commit 6cd2609)";

const TOP_KEYS: Keys = Keys {
    used: &["common_config", "nodes_config"],
    unused: &[],
};
const COMMON_KEYS: Keys = Keys {
    used: &["manager", "pooltool", "jormungandr", "email"],
    unused: &[],
};
const JORMUNGANDR_KEYS: Keys = Keys {
    used: &[
        "supervisor_rest_api_url",
        "common_dir",
        "secret",
        "restarts_log_filename",
        "timeouts",
        "tip_diff_threshold",
    ],
    unused: &[],
};
const TIMEOUTS_KEYS: Keys = Keys {
    used: &["tip_timeout"],
    unused: &[
        (
            "refresh_interval",
            "not used: nodekeeper polls every node once per thresholds.tick_interval",
        ),
        (
            "leaders_refresh_interval",
            "not used: nodekeeper reads the nodes' leaders once per thresholds.tick_interval, \
             without a separate cache",
        ),
    ],
};
const MANAGER_KEYS: Keys = Keys {
    used: &[
        "timeout_between_restarts",
        "min_scheduled_time_difference",
        "pool_id_file",
        "genesis_hash_file",
        "send_slots_within",
    ],
    unused: &[
        (
            "epoch_start_time",
            "not used: nodekeeper computes epoch boundaries from the node's /api/v0/settings \
             (block 0 time, slot duration, slots per epoch)",
        ),
        ("leaders_for_new_epoch", REMOVED_FROM_JMANAGER),
    ],
};
const POOLTOOL_KEYS: Keys = Keys {
    used: &["status_summary", "send_tip", "send_slots", "user_id"],
    unused: &[],
};
const URL_RATE_KEYS: Keys = Keys {
    used: &["url", "refresh_rate"],
    unused: &[],
};
const SEND_SLOTS_KEYS: Keys = Keys {
    used: &["url", "key_path", "verify_slots_gpg", "verify_slots_hash"],
    unused: &[],
};
const EMAIL_KEYS: Keys = Keys {
    used: &[
        "email_alerts",
        "port",
        "smtp_server",
        "sender",
        "password",
        "recipient",
        "templates",
    ],
    unused: &[],
};
const TEMPLATES_KEYS: Keys = Keys {
    used: &["stuck", "bootstrap_restart", "slots_assigned"],
    unused: &[(
        "leader",
        "not used: jmanager accepted this template but never sent it",
    )],
};
const TEMPLATE_KEYS: Keys = Keys {
    used: &["subject", "message"],
    unused: &[],
};
const NODE_KEYS: Keys = Keys {
    used: &["node_name", "jmanager_settings", "config"],
    unused: &[("priority", REMOVED_FROM_JMANAGER)],
};
const SETTINGS_KEYS: Keys = Keys {
    used: &[
        "node_path",
        "supervisor_service_name",
        "default_trusted_peers",
    ],
    unused: &[("priority", REMOVED_FROM_JMANAGER)],
};
const PEER_KEYS: Keys = Keys {
    used: &["address", "id"],
    unused: &[],
};

/// The placeholders jmanager filled in, by template: (subject, message). Subjects only ever got
/// `{timestamp}`.
fn placeholders(template: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match template {
        "stuck" | "bootstrap_restart" => (&["timestamp"], &["timestamp", "node_name", "timeout"]),
        _ => (
            &["timestamp"],
            &["timestamp", "node_name", "slots_count", "slots"],
        ),
    }
}

/// Walks jmanager's document, filling a `RawConfig` and collecting errors and notices.
struct Reader<'a> {
    origin: String,
    cwd: &'a Path,
    errors: ConfigErrors,
    notices: Vec<ConfigError>,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

impl Reader<'_> {
    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(self.origin.clone(), key, message));
    }

    fn notice(&mut self, key: &str, message: impl Into<String>) {
        self.notices
            .push(ConfigError::new(self.origin.clone(), key, message));
    }

    /// Notices for the keys of `map` that are known but unused, or unknown.
    fn check_keys(&mut self, map: &Map<String, Value>, prefix: &str, keys: &Keys) {
        for name in map.keys() {
            if keys.used.contains(&name.as_str()) {
                continue;
            }
            let key = join(prefix, name);
            if let Some((_, why)) = keys.unused.iter().find(|(unused, _)| unused == name) {
                self.notice(&key, *why);
                continue;
            }
            let known: Vec<&str> = keys
                .used
                .iter()
                .copied()
                .chain(keys.unused.iter().map(|(unused, _)| *unused))
                .collect();
            let message = match did_you_mean(name, &known) {
                Some(suggestion) => {
                    format!("not used: not a jmanager key; did you mean `{suggestion}`?")
                }
                None => format!(
                    "not used: not a jmanager key (jmanager's keys here: {})",
                    known.join(", ")
                ),
            };
            self.notice(&key, message);
        }
    }

    /// `map[name]` as an object whose keys are then checked; an error when it is not an object,
    /// or when it is `required` and missing.
    fn section<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        prefix: &str,
        name: &str,
        keys: &Keys,
        required: bool,
    ) -> Option<&'v Map<String, Value>> {
        let key = join(prefix, name);
        match map.get(name) {
            None => {
                if required {
                    self.error(&key, "missing: jmanager requires this section");
                }
                None
            }
            Some(Value::Object(section)) => {
                self.check_keys(section, &key, keys);
                Some(section)
            }
            Some(other) => {
                self.error(&key, format!("expected an object, got {}", describe(other)));
                None
            }
        }
    }

    /// `map[name]` checked by `convert`, which says what it expected when the value is wrong.
    fn value<T>(
        &mut self,
        map: &Map<String, Value>,
        prefix: &str,
        name: &str,
        convert: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        let value = map.get(name)?;
        match convert(value) {
            Ok(converted) => Some(converted),
            Err(expected) => {
                self.error(
                    &join(prefix, name),
                    format!("expected {expected}, got {}", describe(value)),
                );
                None
            }
        }
    }

    fn string(&mut self, map: &Map<String, Value>, prefix: &str, name: &str) -> Option<String> {
        self.value(map, prefix, name, |value| match value {
            Value::String(text) => Ok(text.clone()),
            _ => Err("a string".into()),
        })
    }

    /// A path, made absolute against the working directory.
    fn path(&mut self, map: &Map<String, Value>, prefix: &str, name: &str) -> Option<PathBuf> {
        let text = self.string(map, prefix, name)?;
        Some(absolute(self.cwd, Path::new(&text)))
    }

    fn seconds(&mut self, map: &Map<String, Value>, prefix: &str, name: &str) -> Option<Duration> {
        self.value(map, prefix, name, |value| {
            value
                .as_f64()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .ok_or_else(|| "a non-negative number of seconds".into())
        })
    }

    fn count(&mut self, map: &Map<String, Value>, prefix: &str, name: &str) -> Option<u64> {
        self.value(map, prefix, name, |value| {
            value
                .as_u64()
                .ok_or_else(|| "a non-negative whole number".into())
        })
    }

    fn port(&mut self, map: &Map<String, Value>, prefix: &str, name: &str) -> Option<u16> {
        self.value(map, prefix, name, |value| {
            value
                .as_u64()
                .and_then(|port| u16::try_from(port).ok())
                .ok_or_else(|| "a port number (0-65535)".into())
        })
    }

    /// jmanager's switches: on when `== 1` (Python's `True == 1` too), off for other numbers.
    fn flag(&mut self, map: &Map<String, Value>, prefix: &str, name: &str) -> Option<bool> {
        self.value(map, prefix, name, |value| match value {
            Value::Number(number) => Ok(number.as_f64() == Some(1.0)),
            Value::Bool(on) => Ok(*on),
            _ => Err("1 (on) or 0 (off)".into()),
        })
    }

    fn document(&mut self, document: &Value, template: Option<&Value>, raw: &mut RawConfig) {
        let Value::Object(top) = document else {
            self.error(
                "",
                format!(
                    "expected a JSON object with common_config and nodes_config, got {}",
                    describe(document)
                ),
            );
            return;
        };
        self.check_keys(top, "", &TOP_KEYS);
        if let Some(common) = self.section(top, "", "common_config", &COMMON_KEYS, true) {
            let prefix = "common_config";
            // In the order of jmanager's example, so that messages follow the file.
            if let Some(section) = self.section(common, prefix, "manager", &MANAGER_KEYS, false) {
                self.manager(section, raw);
            }
            if let Some(section) = self.section(common, prefix, "pooltool", &POOLTOOL_KEYS, false) {
                self.pooltool(section, raw);
            }
            if let Some(section) =
                self.section(common, prefix, "jormungandr", &JORMUNGANDR_KEYS, true)
            {
                self.jormungandr(section, raw);
            }
            if let Some(section) = self.section(common, prefix, "email", &EMAIL_KEYS, false) {
                self.email(section, raw);
            }
        }
        match top.get("nodes_config") {
            None => self.error(
                "nodes_config",
                "missing: jmanager requires the list of nodes",
            ),
            Some(Value::Array(nodes)) => {
                for (index, node) in nodes.iter().enumerate() {
                    if let Some(node) = self.node(node, index, template) {
                        raw.nodes.push(node);
                    }
                }
            }
            Some(other) => self.error(
                "nodes_config",
                format!("expected a list of nodes, got {}", describe(other)),
            ),
        }
    }

    fn jormungandr(&mut self, section: &Map<String, Value>, raw: &mut RawConfig) {
        let prefix = "common_config.jormungandr";
        if let Some(url) = self.string(section, prefix, "supervisor_rest_api_url") {
            self.supervisor_url(&url, raw);
        }
        let common_dir = self.path(section, prefix, "common_dir");
        let secret = self.string(section, prefix, "secret");
        let restarts = self.string(section, prefix, "restarts_log_filename");
        // jmanager built both paths as "{common_dir}/{name}", so a leading '/' in the name does
        // not escape common_dir ("a//b" is "a/b").
        let in_common_dir = |this: &mut Self, name: &str, field: &str| match &common_dir {
            Some(dir) => Some(dir.join(name.trim_start_matches('/'))),
            None => {
                this.error(
                    &join(prefix, "common_dir"),
                    format!("missing: jmanager read {field} from {{common_dir}}/{{{field}}}"),
                );
                None
            }
        };
        if let Some(secret) = secret.filter(|secret| !secret.is_empty())
            && let Some(path) = in_common_dir(self, &secret, "secret")
        {
            raw.leadership.secret_file = Some(path);
            raw.leadership.enabled = true;
        }
        if let Some(restarts) = restarts
            && let Some(path) = in_common_dir(self, &restarts, "restarts_log_filename")
        {
            raw.restart_log.path = path;
        }
        let timeouts_prefix = join(prefix, "timeouts");
        if let Some(timeouts) = self.section(section, prefix, "timeouts", &TIMEOUTS_KEYS, false)
            && let Some(timeout) = self.seconds(timeouts, &timeouts_prefix, "tip_timeout")
        {
            raw.thresholds.tip_timeout = Some(timeout);
            self.notice(
                &join(&timeouts_prefix, "tip_timeout"),
                "now enforced: jmanager's stale-tip rule never fired against real nodes \
                 (it compared heights as strings); nodekeeper restarts a node whose tip has \
                 not grown for this long (thresholds.tip_timeout)",
            );
        }
        if let Some(threshold) = self.count(section, prefix, "tip_diff_threshold") {
            raw.thresholds.tip_diff_threshold = Some(threshold);
        }
    }

    /// nodekeeper refuses credentials in the URL (they end up in logs); jmanager's xmlrpc client
    /// could only take them there, so they move to `supervisor.user` / `password`.
    fn supervisor_url(&mut self, url: &str, raw: &mut RawConfig) {
        raw.supervisor.url = url.to_string();
        let Ok(mut parsed) = reqwest::Url::parse(url) else {
            // Left as written: validation reports what is wrong with it.
            return;
        };
        if parsed.username().is_empty() && parsed.password().is_none() {
            return;
        }
        let user = parsed.username().to_string();
        let password = parsed.password().map(str::to_string);
        if parsed.set_username("").is_err() || parsed.set_password(None).is_err() {
            return;
        }
        raw.supervisor.url = parsed.to_string();
        raw.supervisor.user = Some(user).filter(|user| !user.is_empty());
        raw.supervisor.password = password;
        self.notice(
            "common_config.jormungandr.supervisor_rest_api_url",
            "credentials moved out of the URL to supervisor.user and supervisor.password \
             (consider supervisor.password_file instead)",
        );
    }

    fn manager(&mut self, section: &Map<String, Value>, raw: &mut RawConfig) {
        let prefix = "common_config.manager";
        if let Some(timeout) = self.seconds(section, prefix, "timeout_between_restarts") {
            raw.thresholds.bootstrap_timeout = timeout;
        }
        if let Some(gap) = self.seconds(section, prefix, "min_scheduled_time_difference") {
            raw.leadership.schedule_refresh_min_gap = gap;
        }
        if let Some(path) = self.path(section, prefix, "pool_id_file") {
            raw.pooltool.pool_id_file = Some(path);
        }
        if let Some(path) = self.path(section, prefix, "genesis_hash_file") {
            raw.pooltool.genesis_hash_file = Some(path);
        }
        if let Some(after) = self.seconds(section, prefix, "send_slots_within") {
            raw.pooltool.send_slots_after = after;
        }
    }

    fn pooltool(&mut self, section: &Map<String, Value>, raw: &mut RawConfig) {
        let prefix = "common_config.pooltool";
        let pooltool = &mut raw.pooltool;
        let summary_prefix = join(prefix, "status_summary");
        if let Some(summary) =
            self.section(section, prefix, "status_summary", &URL_RATE_KEYS, false)
        {
            if let Some(url) = self.string(summary, &summary_prefix, "url") {
                pooltool.status_url = url;
            }
            if let Some(rate) = self.seconds(summary, &summary_prefix, "refresh_rate") {
                pooltool.status_refresh = rate;
            }
        }
        let tip_prefix = join(prefix, "send_tip");
        if let Some(tip) = self.section(section, prefix, "send_tip", &URL_RATE_KEYS, false) {
            if let Some(url) = self.string(tip, &tip_prefix, "url") {
                pooltool.tip_url = url;
            }
            if let Some(rate) = self.seconds(tip, &tip_prefix, "refresh_rate") {
                pooltool.tip_interval = rate;
            }
        }
        let slots_prefix = join(prefix, "send_slots");
        let mut gpg = false;
        let mut hash = false;
        if let Some(slots) = self.section(section, prefix, "send_slots", &SEND_SLOTS_KEYS, false) {
            if let Some(url) = self.string(slots, &slots_prefix, "url") {
                pooltool.slots_url = url;
            }
            if let Some(path) = self.path(slots, &slots_prefix, "key_path") {
                pooltool.key_path = Some(path);
            }
            gpg = self.flag(slots, &slots_prefix, "verify_slots_gpg") == Some(true);
            hash = self.flag(slots, &slots_prefix, "verify_slots_hash") == Some(true);
        }
        // jmanager checked gpg first, then hash, else sent the base keys only.
        (pooltool.slots_verification, pooltool.gpg) = match (gpg, hash) {
            (true, _) => (SlotsVerification::Gpg, Some(PathBuf::from("gpg"))),
            (false, true) => (SlotsVerification::Hash, None),
            (false, false) => (SlotsVerification::None, None),
        };
        if let Some(user_id) = self.string(section, prefix, "user_id") {
            pooltool.enabled = !user_id.is_empty() && user_id != USER_ID_PLACEHOLDER;
            if user_id == USER_ID_PLACEHOLDER {
                self.notice(
                    &join(prefix, "user_id"),
                    "still jmanager's placeholder: pooltool.enabled is set to false",
                );
            }
            pooltool.user_id = Some(user_id);
        }
    }

    fn email(&mut self, section: &Map<String, Value>, raw: &mut RawConfig) {
        let prefix = "common_config.email";
        let email = &mut raw.email;
        // jmanager sent with smtplib.SMTP_SSL: implicit TLS.
        email.security = SmtpSecurity::Tls;
        if let Some(on) = self.flag(section, prefix, "email_alerts") {
            email.enabled = on;
        }
        email.port = self.port(section, prefix, "port");
        email.smtp_server = self.string(section, prefix, "smtp_server");
        if let Some(sender) = self.string(section, prefix, "sender") {
            // jmanager logged in with the sender address as the user name.
            email.user = Some(sender.clone());
            email.from = Some(sender);
        }
        email.password = self.string(section, prefix, "password");
        // smtplib took one address or a list.
        if let Some(to) = self.value(section, prefix, "recipient", |value| match value {
            Value::String(address) => Ok(vec![address.clone()]),
            Value::Array(addresses) => addresses
                .iter()
                .map(|address| address.as_str().map(str::to_string))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| "an address or a list of addresses".into()),
            _ => Err("an address or a list of addresses".into()),
        }) {
            email.to = to;
        }
        let templates_prefix = join(prefix, "templates");
        let Some(templates) = self.section(section, prefix, "templates", &TEMPLATES_KEYS, false)
        else {
            return;
        };
        for name in TEMPLATES_KEYS.used {
            let template_prefix = join(&templates_prefix, name);
            let Some(template) =
                self.section(templates, &templates_prefix, name, &TEMPLATE_KEYS, false)
            else {
                continue;
            };
            let (subject_names, message_names) = placeholders(name);
            let subject = self.template_part(template, &template_prefix, "subject", subject_names);
            let message = self.template_part(template, &template_prefix, "message", message_names);
            if let (Some(subject), Some(message)) = (subject, message) {
                raw.email
                    .templates
                    .insert((*name).to_string(), RawTemplate { subject, message });
            }
        }
    }

    /// The subject or message of an email template; both are required.
    fn template_part(
        &mut self,
        template: &Map<String, Value>,
        prefix: &str,
        part: &str,
        placeholders: &[&str],
    ) -> Option<String> {
        if !template.contains_key(part) {
            self.error(
                &join(prefix, part),
                "missing: a template needs a subject and a message",
            );
            return None;
        }
        let text = self.string(template, prefix, part)?;
        self.check_placeholders(&join(prefix, part), &text, placeholders);
        Some(text)
    }

    /// A notice for each `{name}` that jmanager did not fill in: Python's `format` raised on it,
    /// so jmanager never sent that email.
    fn check_placeholders(&mut self, key: &str, text: &str, allowed: &[&str]) {
        for name in format_fields(text) {
            if !allowed.contains(&name.as_str()) {
                self.notice(
                    key,
                    format!(
                        "placeholder {{{name}}} was not filled in by jmanager (it failed to send \
                         this email); placeholders here: {}",
                        allowed
                            .iter()
                            .map(|allowed| format!("{{{allowed}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }

    fn node(&mut self, value: &Value, index: usize, template: Option<&Value>) -> Option<RawNode> {
        let prefix = format!("nodes_config[{index}]");
        let Value::Object(node) = value else {
            self.error(
                &prefix,
                format!("expected a node object, got {}", describe(value)),
            );
            return None;
        };
        self.check_keys(node, &prefix, &NODE_KEYS);
        let name = match node.get("node_name") {
            None => {
                self.error(
                    &join(&prefix, "node_name"),
                    "missing: every node needs a name",
                );
                None
            }
            Some(_) => self.string(node, &prefix, "node_name"),
        };
        let settings_prefix = join(&prefix, "jmanager_settings");
        let mut raw = RawNode::default();
        if let Some(settings) =
            self.section(node, &prefix, "jmanager_settings", &SETTINGS_KEYS, true)
        {
            if settings.contains_key("node_path") {
                raw.node_dir = self.path(settings, &settings_prefix, "node_path");
            } else {
                self.error(
                    &join(&settings_prefix, "node_path"),
                    "missing: the node's directory (jmanager ran {node_path}/jcli and wrote \
                     {node_path}/{node_name}.json)",
                );
            }
            raw.program = self.string(settings, &settings_prefix, "supervisor_service_name");
            raw.default_trusted_peers = self.peers(settings, &settings_prefix);
        }
        let config_key = join(&prefix, "config");
        match node.get("config") {
            None => {}
            Some(Value::Object(overrides)) => {
                if let Some(template) = template {
                    self.check_list_merges(
                        template,
                        &Value::Object(overrides.clone()),
                        &config_key,
                    );
                }
                raw.overrides = overrides.clone();
            }
            Some(other) => self.error(
                &config_key,
                format!(
                    "expected an object (merged onto the template), got {}",
                    describe(other)
                ),
            ),
        }
        raw.name = name?;
        Some(raw)
    }

    fn peers(&mut self, settings: &Map<String, Value>, prefix: &str) -> Option<Vec<RawPeer>> {
        let key = join(prefix, "default_trusted_peers");
        let list = match settings.get("default_trusted_peers")? {
            Value::Array(list) => list,
            other => {
                self.error(
                    &key,
                    format!(
                        "expected a list of {{address, id}}, got {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        let mut peers = Vec::new();
        for (index, peer) in list.iter().enumerate() {
            let peer_prefix = format!("{key}[{index}]");
            let Value::Object(peer) = peer else {
                self.error(
                    &peer_prefix,
                    format!("expected {{address, id}}, got {}", describe(peer)),
                );
                continue;
            };
            self.check_keys(peer, &peer_prefix, &PEER_KEYS);
            if !peer.contains_key("address") {
                self.error(
                    &join(&peer_prefix, "address"),
                    "missing: a peer needs an address",
                );
                continue;
            }
            let address = self.string(peer, &peer_prefix, "address");
            let id = self.string(peer, &peer_prefix, "id");
            if let Some(address) = address {
                peers.push(RawPeer { address, id });
            }
        }
        Some(peers)
    }

    /// jmanager merged lists index by index (keeping the template's extra elements and never
    /// overwriting scalar elements); nodekeeper replaces them. Where that changes a node's
    /// config, say so.
    fn check_list_merges(&mut self, template: &Value, overrides: &Value, key: &str) {
        match (template, overrides) {
            (Value::Object(template), Value::Object(overrides)) => {
                for (name, value) in overrides {
                    if let Some(template_value) = template.get(name) {
                        self.check_list_merges(template_value, value, &join(key, name));
                    }
                }
            }
            (Value::Array(_), Value::Array(_)) => {
                let mut jmanager = template.clone();
                jmanager_fill(&mut jmanager, overrides);
                if &jmanager != overrides {
                    self.notice(
                        key,
                        format!(
                            "lists now replace the template's list: jmanager merged it element \
                             by element with the template's, which gave {jmanager}; write that \
                             list here to keep it"
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

/// jmanager's `_fillTemplate`, for comparison only: dict keys with scalar values overwrite,
/// dicts and lists recurse, lists merge index by index (appending while the template is shorter;
/// scalar elements are never overwritten). Where jmanager raised (a key the template lacks, a
/// type mismatch), this leaves the template as it is.
fn jmanager_fill(template: &mut Value, overrides: &Value) {
    match (template, overrides) {
        (Value::Array(template), Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                if template.len() < items.len() {
                    template.push(item.clone());
                }
                if let Some(element) = template.get_mut(index) {
                    jmanager_fill(element, item);
                }
            }
        }
        (Value::Object(template), Value::Object(overrides)) => {
            for (name, value) in overrides {
                match value {
                    Value::Object(_) | Value::Array(_) => {
                        if let Some(element) = template.get_mut(name) {
                            jmanager_fill(element, value);
                        }
                    }
                    scalar => {
                        template.insert(name.clone(), scalar.clone());
                    }
                }
            }
        }
        _ => {}
    }
}

/// The field names of a Python format string: `{name}`, `{name:fmt}`, `{name!r}`; `{{` and `}}`
/// are literal braces.
fn format_fields(text: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        if let Some(literal) = after.strip_prefix('{') {
            rest = literal;
            continue;
        }
        let Some(close) = after.find('}') else { break };
        let field = &after[..close];
        let name = field
            .split([':', '!', '.', '['])
            .next()
            .unwrap_or_default()
            .trim();
        fields.push(name.to_string());
        rest = &after[close + 1..];
    }
    fields
}

/// A JSON value for messages: scalars shown, containers named.
fn describe(value: &Value) -> String {
    match value {
        Value::Object(_) => "an object".into(),
        Value::Array(_) => "a list".into(),
        Value::Null => "null".into(),
        scalar => scalar.to_string(),
    }
}

/// `path` against `cwd` when relative, without `.` components; `..` stays (it may cross a
/// symlink).
fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    cwd.join(path)
        .components()
        .filter(|component| !matches!(component, Component::CurDir))
        .collect()
}

/// nodekeeper TOML for `raw`, with a header saying it was converted from jmanager's files, when.
/// Fails when a node override holds `null`, which TOML cannot express (the error names each key).
pub fn to_toml(raw: &RawConfig) -> Result<String, String> {
    render(raw, None, now())
}

/// [`to_toml`] whose header also names the jmanager config the result was converted from.
pub fn to_toml_from(raw: &RawConfig, jmanager_config: &Path) -> Result<String, String> {
    render(raw, Some(jmanager_config), now())
}

/// The header's timestamp, from the clock abstraction.
fn now() -> chrono::DateTime<chrono::Utc> {
    use crate::time::Clock as _;
    crate::time::SystemClock.now().into()
}

fn render(
    raw: &RawConfig,
    jmanager_config: Option<&Path>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, String> {
    let mut nulls = Vec::new();
    for (index, node) in raw.nodes.iter().enumerate() {
        for (name, value) in &node.overrides {
            find_nulls(
                value,
                &format!("nodes[{index}].overrides.{name}"),
                &mut nulls,
            );
        }
    }
    if !nulls.is_empty() {
        return Err(format!(
            "{}: null cannot be written in TOML; remove the key from the jmanager config or give \
             it a value",
            nulls.join(", ")
        ));
    }
    let body = toml::to_string(raw).map_err(|e| format!("cannot write TOML: {e}"))?;
    let mut header = String::from("# nodekeeper configuration converted from jmanager's files\n");
    for path in jmanager_config
        .into_iter()
        .chain(raw.node_defaults.template.as_deref())
    {
        let path = std::env::current_dir()
            .map(|cwd| absolute(&cwd, path))
            .unwrap_or_else(|_| path.to_path_buf());
        header.push_str(&format!("#   {}\n", path.display()));
    }
    header.push_str(&format!(
        "# by `nodekeeper config import-jmanager` on {}.\n\
         # Paths are absolute: jmanager resolved them against its working directory. Keys that\n\
         # nodekeeper does not use were reported as notices by the import.\n\n",
        now.format("%Y-%m-%d %H:%M:%S UTC"),
    ));
    Ok(header + &body)
}

fn find_nulls(value: &Value, key: &str, nulls: &mut Vec<String>) {
    match value {
        Value::Null => nulls.push(key.to_string()),
        Value::Object(map) => {
            for (name, value) in map {
                find_nulls(value, &join(key, name), nulls);
            }
        }
        Value::Array(items) => {
            for (index, value) in items.iter().enumerate() {
                find_nulls(value, &format!("{key}[{index}]"), nulls);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;

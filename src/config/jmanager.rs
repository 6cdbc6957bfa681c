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
//! It checks JSON types only; values are checked by `model::validate`, like any other config.
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
            raw.thresholds.tip_timeout = timeout;
            self.notice(
                &join(&timeouts_prefix, "tip_timeout"),
                "now enforced: jmanager's stale-tip rule never fired against real nodes \
                 (it compared heights as strings); nodekeeper restarts a node whose tip has \
                 not grown for this long (thresholds.tip_timeout)",
            );
        }
        if let Some(threshold) = self.count(section, prefix, "tip_diff_threshold") {
            raw.thresholds.tip_diff_threshold = threshold;
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
mod tests {
    use super::*;
    use crate::config::load::{Env, Origins};

    const EXAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/jmanager/jmanager_config.json"
    );
    const TEMPLATE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/jmanager/config_template.json"
    );

    fn example() -> Value {
        serde_json::from_str(&std::fs::read_to_string(EXAMPLE).unwrap()).unwrap()
    }

    /// The value at a `.`-separated path of `document` (list indices as numbers), created as an
    /// object when missing.
    fn at<'v>(document: &'v mut Value, path: &str) -> &'v mut Value {
        path.split('.')
            .fold(document, |value, part| match part.parse::<usize>() {
                Ok(index) => &mut value[index],
                Err(_) => &mut value[part],
            })
    }

    fn remove(document: &mut Value, path: &str) {
        let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
        let parent = if parent.is_empty() {
            document
        } else {
            at(document, parent)
        };
        match parent {
            Value::Object(map) => {
                map.shift_remove(name)
                    .unwrap_or_else(|| panic!("no {path}"));
            }
            Value::Array(items) => {
                items.remove(name.parse().unwrap());
            }
            _ => panic!("{path}: not a container"),
        }
    }

    /// Imports `text` as `jmanager_config.json` (with the example template) from a temp dir that
    /// is also the working directory, so messages name the file as `jmanager_config.json`.
    fn import_text(text: &str) -> (Result<Import, ConfigErrors>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jmanager_config.json"), text).unwrap();
        let result = import_in(
            Path::new("jmanager_config.json"),
            Path::new(TEMPLATE),
            dir.path(),
        );
        (result, dir)
    }

    fn import_value(document: &Value) -> Result<Import, ConfigErrors> {
        import_text(&serde_json::to_string_pretty(document).unwrap()).0
    }

    fn lines(errors: &[ConfigError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn converts_the_example() {
        let import = import_in(
            Path::new(EXAMPLE),
            Path::new(TEMPLATE),
            Path::new("/elsewhere"),
        )
        .unwrap();
        let raw = &import.raw;
        let secs = Duration::from_secs;
        assert_eq!(raw.supervisor.url, "http://localhost:9001/RPC2");
        assert_eq!(raw.supervisor.user, None);
        assert!(raw.leadership.enabled);
        assert_eq!(
            raw.leadership.secret_file.as_deref(),
            Some(Path::new("/home/pool/jormungandr/node_secret.yaml"))
        );
        assert_eq!(raw.leadership.schedule_refresh_min_gap, secs(600));
        assert_eq!(
            raw.restart_log.path,
            Path::new("/home/pool/jormungandr/restarts.csv")
        );
        assert_eq!(raw.thresholds.tip_timeout, secs(90));
        assert_eq!(raw.thresholds.tip_diff_threshold, 7);
        assert_eq!(raw.thresholds.bootstrap_timeout, secs(650));
        assert_eq!(
            raw.thresholds.tick_interval,
            secs(1),
            "untouched keys keep nodekeeper's defaults"
        );

        let pooltool = &raw.pooltool;
        assert!(pooltool.enabled);
        assert_eq!(
            pooltool.user_id.as_deref(),
            Some("00000000-0000-4000-8000-000000000000")
        );
        assert_eq!(
            pooltool.pool_id_file.as_deref(),
            Some(Path::new("/home/pool/jormungandr/stake_pool_id"))
        );
        assert_eq!(
            pooltool.genesis_hash_file.as_deref(),
            Some(Path::new("/home/pool/jormungandr/genesis_hash"))
        );
        assert_eq!(pooltool.send_slots_after, secs(180));
        assert_eq!(
            pooltool.status_url,
            "https://pooltool.s3-us-west-2.amazonaws.com/stats/stats.json"
        );
        assert_eq!(pooltool.status_refresh, secs(60));
        assert_eq!(pooltool.tip_url, "https://api.pooltool.io/v0/sharemytip");
        assert_eq!(pooltool.tip_interval, secs(15));
        assert_eq!(pooltool.slots_url, "https://api.pooltool.io/v0/sendlogs");
        assert_eq!(
            pooltool.key_path.as_deref(),
            Some(Path::new("/home/pool/jormungandr/keystorage"))
        );
        assert_eq!(pooltool.slots_verification, SlotsVerification::Gpg);
        assert_eq!(pooltool.gpg.as_deref(), Some(Path::new("gpg")));

        let email = &raw.email;
        assert!(email.enabled);
        assert_eq!(email.security, SmtpSecurity::Tls);
        assert_eq!(email.port, Some(465));
        assert_eq!(email.smtp_server.as_deref(), Some("smtp.example.com"));
        assert_eq!(email.from.as_deref(), Some("alerts@example.com"));
        assert_eq!(email.user.as_deref(), Some("alerts@example.com"));
        assert_eq!(
            email.password.as_deref(),
            Some("<sender email account password>")
        );
        assert_eq!(email.to, ["operator@example.com"]);
        assert_eq!(
            email.templates.keys().collect::<Vec<_>>(),
            ["bootstrap_restart", "slots_assigned", "stuck"]
        );
        assert_eq!(
            email.templates["stuck"].subject,
            "[POOL] Node stuck - restarting ({timestamp})"
        );
        assert!(
            email.templates["slots_assigned"]
                .message
                .ends_with("{slots_count} slots assigned:\n{slots}")
        );

        assert_eq!(
            raw.node_defaults.template.as_deref(),
            Some(Path::new(TEMPLATE))
        );
        assert_eq!(raw.nodes.len(), 2);
        let one = &raw.nodes[0];
        assert_eq!(one.name, "node_one");
        assert_eq!(one.program.as_deref(), Some("jnode_one"));
        assert_eq!(
            one.node_dir.as_deref(),
            Some(Path::new("/home/pool/jormungandr/node_one"))
        );
        let peers = one.default_trusted_peers.as_ref().unwrap();
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[0].address, "/ip4/52.9.132.248/tcp/3000");
        assert_eq!(
            peers[0].id.as_deref(),
            Some("671a9e7a5c739532668511bea823f0f5c5557c99b813456c")
        );
        assert_eq!(one.overrides["rest"]["listen"], "127.0.0.1:3101");
        assert_eq!(one.overrides["p2p"]["max_connections"], 1024);
        assert_eq!(
            one.overrides.keys().collect::<Vec<_>>(),
            ["p2p", "rest", "storage"],
            "override order kept"
        );
        let two = &raw.nodes[1];
        assert_eq!(
            (two.name.as_str(), two.program.as_deref()),
            ("node_two", Some("jnode_two"))
        );
        assert_eq!(two.default_trusted_peers.as_ref().unwrap().len(), 2);
        assert_eq!(two.rest_url, None, "derived from rest.listen by validation");
    }

    #[test]
    fn example_notices_are_the_unused_keys() {
        let import = import_in(Path::new(EXAMPLE), Path::new(TEMPLATE), Path::new("/")).unwrap();
        let keys: Vec<&str> = import
            .notices
            .iter()
            .map(|notice| notice.key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "common_config.manager.epoch_start_time",
                "common_config.jormungandr.timeouts.refresh_interval",
                "common_config.jormungandr.timeouts.leaders_refresh_interval",
                "common_config.jormungandr.timeouts.tip_timeout",
            ]
        );
        assert!(import.notices.iter().all(|notice| notice.origin == EXAMPLE));
        let text = lines(&import.notices).join("\n");
        assert!(text.contains("epoch_start_time: not used: nodekeeper computes epoch boundaries from the node's /api/v0/settings"), "{text}");
        assert!(text.contains("refresh_interval: not used: nodekeeper polls every node once per thresholds.tick_interval"), "{text}");
        assert!(text.contains("tip_timeout: now enforced"), "{text}");
    }

    #[test]
    fn unknown_and_unused_keys_become_notices_with_suggestions() {
        let mut document = example();
        at(&mut document, "colour").clone_from(&Value::from("blue"));
        at(
            &mut document,
            "common_config.jormungandr.timeouts.tip_timout",
        )
        .clone_from(&Value::from(60));
        at(&mut document, "common_config.manager.leaders_for_new_epoch")
            .clone_from(&Value::from(1));
        at(
            &mut document,
            "common_config.email.templates.leader.subject",
        )
        .clone_from(&Value::from("leader"));
        at(&mut document, "common_config.email.templates.stuck.subject")
            .clone_from(&Value::from("stuck ({time})"));
        at(&mut document, "nodes_config.0.priority").clone_from(&Value::from(1));
        at(
            &mut document,
            "nodes_config.1.jmanager_settings.suprvisor_service_name",
        )
        .clone_from(&Value::from("x"));
        at(
            &mut document,
            "nodes_config.1.jmanager_settings.default_trusted_peers.0.port",
        )
        .clone_from(&Value::from(3000));
        let import = import_value(&document).unwrap();
        let notices = lines(&import.notices);
        let expected = [
            "jmanager_config.json: colour: not used: not a jmanager key (jmanager's keys here: common_config, nodes_config)",
            "jmanager_config.json: common_config.manager.leaders_for_new_epoch: not used: jmanager itself stopped reading this key (commit 6cd2609)",
            "jmanager_config.json: common_config.jormungandr.timeouts.tip_timout: not used: not a jmanager key; did you mean `tip_timeout`?",
            "jmanager_config.json: common_config.email.templates.leader: not used: jmanager accepted this template but never sent it",
            "jmanager_config.json: common_config.email.templates.stuck.subject: placeholder {time} was not filled in by jmanager (it failed to send this email); placeholders here: {timestamp}",
            "jmanager_config.json: nodes_config[0].priority: not used: jmanager itself stopped reading this key (commit 6cd2609)",
            "jmanager_config.json: nodes_config[1].jmanager_settings.suprvisor_service_name: not used: not a jmanager key; did you mean `supervisor_service_name`?",
            "jmanager_config.json: nodes_config[1].jmanager_settings.default_trusted_peers[0].port: not used: not a jmanager key (jmanager's keys here: address, id)",
        ];
        for line in expected {
            assert!(
                notices.contains(&line.to_string()),
                "missing {line:?} in {notices:#?}"
            );
        }
        assert_eq!(notices.len(), expected.len() + 4, "{notices:#?}");
        // Notices do not stop the conversion of what is known.
        assert_eq!(import.raw.thresholds.tip_timeout, Duration::from_secs(90));
        assert_eq!(
            import.raw.email.templates["stuck"].subject,
            "stuck ({time})"
        );
        assert!(!import.raw.email.templates.contains_key("leader"));
    }

    #[test]
    fn each_error_names_the_file_and_jmanager_key() {
        type Mutation = fn(&mut Value);
        let cases: [(&str, Mutation, &str); 16] = [
            (
                "no common_config",
                |d| remove(d, "common_config"),
                "common_config: missing: jmanager requires this section",
            ),
            (
                "no jormungandr",
                |d| remove(d, "common_config.jormungandr"),
                "common_config.jormungandr: missing: jmanager requires this section",
            ),
            (
                "no nodes_config",
                |d| remove(d, "nodes_config"),
                "nodes_config: missing: jmanager requires the list of nodes",
            ),
            (
                "node without name",
                |d| remove(d, "nodes_config.1.node_name"),
                "nodes_config[1].node_name: missing: every node needs a name",
            ),
            (
                "node without settings",
                |d| remove(d, "nodes_config.0.jmanager_settings"),
                "nodes_config[0].jmanager_settings: missing: jmanager requires this section",
            ),
            (
                "node without node_path",
                |d| remove(d, "nodes_config.0.jmanager_settings.node_path"),
                "nodes_config[0].jmanager_settings.node_path: missing: the node's directory",
            ),
            (
                "threshold in words",
                |d| *at(d, "common_config.jormungandr.tip_diff_threshold") = "seven".into(),
                "common_config.jormungandr.tip_diff_threshold: expected a non-negative whole number, got \"seven\"",
            ),
            (
                "nodes not a list",
                |d| *at(d, "nodes_config") = serde_json::json!({"node_name": "a"}),
                "nodes_config: expected a list of nodes, got an object",
            ),
            (
                "node not an object",
                |d| *at(d, "nodes_config.1") = "node_two".into(),
                "nodes_config[1]: expected a node object, got \"node_two\"",
            ),
            (
                "negative timeout",
                |d| *at(d, "common_config.manager.timeout_between_restarts") = (-5).into(),
                "common_config.manager.timeout_between_restarts: expected a non-negative number of seconds, got -5",
            ),
            (
                "section not an object",
                |d| *at(d, "common_config.pooltool") = serde_json::json!([1]),
                "common_config.pooltool: expected an object, got a list",
            ),
            (
                "switch as text",
                |d| *at(d, "common_config.email.email_alerts") = "yes".into(),
                "common_config.email.email_alerts: expected 1 (on) or 0 (off), got \"yes\"",
            ),
            (
                "port too large",
                |d| *at(d, "common_config.email.port") = 70000.into(),
                "common_config.email.port: expected a port number (0-65535), got 70000",
            ),
            (
                "overrides not an object",
                |d| *at(d, "nodes_config.0.config") = serde_json::json!([]),
                "nodes_config[0].config: expected an object (merged onto the template), got a list",
            ),
            (
                "peers not a list",
                |d| {
                    *at(d, "nodes_config.0.jmanager_settings.default_trusted_peers") = "none".into()
                },
                "nodes_config[0].jmanager_settings.default_trusted_peers: expected a list of {address, id}, got \"none\"",
            ),
            (
                "template without message",
                |d| remove(d, "common_config.email.templates.stuck.message"),
                "common_config.email.templates.stuck.message: missing: a template needs a subject and a message",
            ),
        ];
        for (name, mutate, expected) in cases {
            let mut document = example();
            mutate(&mut document);
            let errors = lines(&import_value(&document).expect_err(name).0);
            assert_eq!(errors.len(), 1, "{name}: {errors:#?}");
            assert!(
                errors[0].starts_with(&format!("jmanager_config.json: {expected}")),
                "{name}: {errors:#?}"
            );
        }
    }

    #[test]
    fn secret_without_common_dir_is_an_error() {
        let mut document = example();
        remove(&mut document, "common_config.jormungandr.common_dir");
        let errors = lines(&import_value(&document).unwrap_err().0);
        assert_eq!(
            errors,
            [
                "jmanager_config.json: common_config.jormungandr.common_dir: missing: jmanager read secret from {common_dir}/{secret}",
                "jmanager_config.json: common_config.jormungandr.common_dir: missing: jmanager read restarts_log_filename from {common_dir}/{restarts_log_filename}",
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_in_one_run() {
        let mut document = example();
        remove(&mut document, "common_config.jormungandr");
        *at(&mut document, "common_config.manager.send_slots_within") = "3m".into();
        remove(&mut document, "nodes_config.0.node_name");
        *at(&mut document, "nodes_config.1.jmanager_settings.node_path") = 42.into();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jm.json"), document.to_string()).unwrap();
        let errors = import_in(
            Path::new("jm.json"),
            Path::new("missing_template.json"),
            dir.path(),
        )
        .unwrap_err();
        let errors = lines(&errors.0);
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(
            errors[0].starts_with("missing_template.json: cannot read the node config template: "),
            "{errors:#?}"
        );
        assert_eq!(
            errors[1],
            "jm.json: common_config.manager.send_slots_within: expected a non-negative number of seconds, got \"3m\""
        );
        assert_eq!(
            errors[2],
            "jm.json: common_config.jormungandr: missing: jmanager requires this section"
        );
        assert_eq!(
            errors[3],
            "jm.json: nodes_config[0].node_name: missing: every node needs a name"
        );
        assert_eq!(
            errors[4],
            "jm.json: nodes_config[1].jmanager_settings.node_path: expected a string, got 42"
        );
    }

    #[test]
    fn unreadable_and_invalid_files_name_the_file() {
        let (result, _dir) =
            import_text("{\n  \"common_config\": {\n    \"manager\": {,\n  }\n}\n");
        let errors = lines(&result.unwrap_err().0);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].starts_with("jmanager_config.json: invalid JSON: "),
            "{errors:#?}"
        );
        assert!(errors[0].ends_with("at line 3 column 17"), "{errors:#?}");

        let (result, _dir) = import_text("[1, 2]");
        assert_eq!(
            lines(&result.unwrap_err().0),
            [
                "jmanager_config.json: expected a JSON object with common_config and nodes_config, got a list"
            ]
        );

        let dir = tempfile::tempdir().unwrap();
        let errors =
            import_in(Path::new("absent.json"), Path::new(TEMPLATE), dir.path()).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(
            (errors.0[0].origin.as_str(), errors.0[0].key.as_str()),
            ("absent.json", "")
        );
        assert!(errors.0[0].message.starts_with("cannot read: "), "{errors}");
    }

    #[test]
    fn the_template_must_be_a_json_object() {
        for (text, expected) in [
            (
                "[{\"log\": []}]",
                "t.json: expected a JSON object (a node config template), got a list",
            ),
            (
                "{\"log\": [",
                "t.json: invalid JSON: EOF while parsing a list at line 1 column 9",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("t.json"), text).unwrap();
            let errors =
                import_in(Path::new(EXAMPLE), Path::new("t.json"), dir.path()).unwrap_err();
            assert_eq!(lines(&errors.0), [expected]);
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        let mut document = example();
        *at(&mut document, "common_config.jormungandr.common_dir") = "./pool".into();
        *at(&mut document, "common_config.jormungandr.secret") = "/secret.yaml".into();
        *at(&mut document, "common_config.manager.pool_id_file") = "pool/id".into();
        *at(&mut document, "common_config.pooltool.send_slots.key_path") = "../keys".into();
        *at(&mut document, "nodes_config.0.jmanager_settings.node_path") = "node_one".into();
        let (result, dir) = import_text(&document.to_string());
        let raw = result.unwrap().raw;
        let cwd = dir.path();
        assert_eq!(
            raw.leadership.secret_file,
            Some(cwd.join("pool/secret.yaml")),
            "jmanager joined with '/'"
        );
        assert_eq!(raw.restart_log.path, cwd.join("pool/restarts.csv"));
        assert_eq!(raw.pooltool.pool_id_file, Some(cwd.join("pool/id")));
        assert_eq!(raw.pooltool.key_path, Some(cwd.join("../keys")));
        assert_eq!(raw.nodes[0].node_dir, Some(cwd.join("node_one")));
        assert_eq!(
            raw.nodes[1].node_dir.as_deref(),
            Some(Path::new("/home/pool/jormungandr/node_two"))
        );

        let relative_template = import_in(
            Path::new(EXAMPLE),
            Path::new("data/jmanager/./config_template.json"),
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests")),
        );
        assert_eq!(
            relative_template
                .unwrap()
                .raw
                .node_defaults
                .template
                .as_deref(),
            Some(Path::new(TEMPLATE))
        );
    }

    #[test]
    fn slots_verification_follows_jmanager_precedence() {
        for (gpg, hash, expected) in [
            (1, 0, SlotsVerification::Gpg),
            (1, 1, SlotsVerification::Gpg),
            (0, 1, SlotsVerification::Hash),
            (0, 0, SlotsVerification::None),
            (2, 0, SlotsVerification::None),
        ] {
            let mut document = example();
            *at(
                &mut document,
                "common_config.pooltool.send_slots.verify_slots_gpg",
            ) = gpg.into();
            *at(
                &mut document,
                "common_config.pooltool.send_slots.verify_slots_hash",
            ) = hash.into();
            let pooltool = import_value(&document).unwrap().raw.pooltool;
            assert_eq!(
                pooltool.slots_verification, expected,
                "gpg={gpg} hash={hash}"
            );
            assert_eq!(pooltool.gpg.is_some(), expected == SlotsVerification::Gpg);
        }
    }

    #[test]
    fn placeholder_user_id_leaves_pooltool_off_and_email_switch_off() {
        let mut document = example();
        *at(&mut document, "common_config.pooltool.user_id") = USER_ID_PLACEHOLDER.into();
        *at(&mut document, "common_config.email.email_alerts") = 0.into();
        *at(&mut document, "common_config.email.recipient") =
            serde_json::json!(["a@example.com", "b@example.com"]);
        remove(&mut document, "common_config.jormungandr.secret");
        let import = import_value(&document).unwrap();
        assert!(!import.raw.pooltool.enabled);
        assert!(!import.raw.email.enabled);
        assert_eq!(import.raw.email.to, ["a@example.com", "b@example.com"]);
        assert!(
            !import.raw.leadership.enabled,
            "no secret, no leader management"
        );
        assert!(lines(&import.notices).contains(
            &"jmanager_config.json: common_config.pooltool.user_id: still jmanager's placeholder: pooltool.enabled is set to false".to_string()
        ));
    }

    #[test]
    fn supervisor_credentials_move_out_of_the_url() {
        let mut document = example();
        *at(
            &mut document,
            "common_config.jormungandr.supervisor_rest_api_url",
        ) = "http://jm:s3cret@127.0.0.1:9001/RPC2".into();
        let import = import_value(&document).unwrap();
        assert_eq!(import.raw.supervisor.url, "http://127.0.0.1:9001/RPC2");
        assert_eq!(import.raw.supervisor.user.as_deref(), Some("jm"));
        assert_eq!(import.raw.supervisor.password.as_deref(), Some("s3cret"));
        assert!(
            import
                .notices
                .iter()
                .any(|n| n.key == "common_config.jormungandr.supervisor_rest_api_url")
        );
    }

    #[test]
    fn lists_jmanager_merged_differently_are_reported() {
        let mut document = example();
        // The template has one trusted peer and one log output: jmanager kept the template's
        // surplus log element, and merged the peer element by element.
        *at(&mut document, "nodes_config.0.config.log") = serde_json::json!([]);
        *at(&mut document, "nodes_config.1.config.log") = serde_json::json!([{"level": "debug"}]);
        let import = import_value(&document).unwrap();
        let list_notices: Vec<&ConfigError> = import
            .notices
            .iter()
            .filter(|n| n.message.starts_with("lists now replace"))
            .collect();
        let keys: Vec<&str> = list_notices.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(
            keys,
            ["nodes_config[0].config.log", "nodes_config[1].config.log"],
            "{list_notices:#?}"
        );
        assert!(
            list_notices[1]
                .message
                .contains(r#"gave [{"format":"plain","level":"debug","output":"stderr"}]"#),
            "{list_notices:#?}"
        );
        // Same-shaped trusted peers merge to the override's values: nothing to report.
        assert!(!keys.iter().any(|key| key.contains("trusted_peers")));

        let mut jmanager = serde_json::json!({"a": [1, 2, {"x": 1}], "b": [{"x": 1, "y": 2}]});
        jmanager_fill(
            &mut jmanager,
            &serde_json::json!({"a": [9], "b": [{"x": 5}, {"x": 6}], "c": 3}),
        );
        assert_eq!(
            jmanager,
            serde_json::json!({"a": [1, 2, {"x": 1}], "b": [{"x": 5, "y": 2}, {"x": 6}], "c": 3})
        );
    }

    #[test]
    fn python_format_fields() {
        assert_eq!(
            format_fields("{a} {{literal}} {b:>4} {c!r} x}"),
            ["a", "b", "c"]
        );
        assert!(format_fields("no fields {").is_empty());
    }

    #[test]
    fn toml_round_trips_through_nodekeepers_loader() {
        let import = import_in(Path::new(EXAMPLE), Path::new(TEMPLATE), Path::new("/")).unwrap();
        let mut raw = import.raw;
        // Every kind of value an override can hold, and a multi-line string.
        raw.nodes[0]
            .overrides
            .insert("float".into(), serde_json::json!(0.25));
        raw.nodes[0]
            .overrides
            .insert("flag".into(), serde_json::json!(true));
        raw.nodes[0].overrides.insert(
            "MixedCase".into(),
            serde_json::json!({"Inner": [1, "two", [3]]}),
        );
        raw.thresholds.tip_timeout = Duration::from_millis(1500);
        let text = to_toml_from(&raw, Path::new(EXAMPLE)).unwrap();
        assert!(
            text.starts_with(&format!("# nodekeeper configuration converted from jmanager's files\n#   {EXAMPLE}\n#   {TEMPLATE}\n# by ")),
            "{text}"
        );
        assert!(
            text.contains("\n# by `nodekeeper config import-jmanager` on 20"),
            "{text}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodekeeper.toml");
        std::fs::write(&path, &text).unwrap();
        let (loaded, errors) = crate::config::load_raw(&path, &Env::new());
        assert!(errors.is_empty(), "{errors}\n{text}");
        assert_eq!(loaded, raw, "{text}");
        assert!(to_toml(&raw).unwrap().starts_with(&format!(
            "# nodekeeper configuration converted from jmanager's files\n#   {TEMPLATE}\n# by "
        )));
    }

    #[test]
    fn toml_refuses_null_naming_each_key() {
        let mut document = example();
        *at(&mut document, "nodes_config.0.config.p2p.public_id") = Value::Null;
        *at(&mut document, "nodes_config.1.config.log") = serde_json::json!([{"output": null}]);
        let import = import_value(&document).unwrap();
        assert_eq!(
            import.raw.nodes[0].overrides["p2p"]["public_id"],
            Value::Null,
            "null overwrites, as in jmanager"
        );
        let error = to_toml(&import.raw).unwrap_err();
        assert_eq!(
            error,
            "nodes[0].overrides.p2p.public_id, nodes[1].overrides.log[0].output: null cannot be written in \
             TOML; remove the key from the jmanager config or give it a value"
        );
    }

    #[test]
    fn validation_accepts_the_converted_example_when_its_files_exist() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let mut document = example();
        *at(&mut document, "common_config.jormungandr.common_dir") = base.to_str().unwrap().into();
        for (key, file, content) in [
            (
                "common_config.manager.pool_id_file",
                "stake_pool_id",
                "a".repeat(64),
            ),
            (
                "common_config.manager.genesis_hash_file",
                "genesis_hash",
                "b".repeat(64),
            ),
        ] {
            std::fs::write(base.join(file), content).unwrap();
            *at(&mut document, key) = base.join(file).to_str().unwrap().into();
        }
        std::fs::write(base.join("node_secret.yaml"), "genesis:\n  sig_key: kes25519-12-sk1x\n  vrf_key: vrf_sk1x\n  node_id: 0011223344556677\n").unwrap();
        for (index, name) in ["node_one", "node_two"].into_iter().enumerate() {
            std::fs::create_dir(base.join(name)).unwrap();
            *at(
                &mut document,
                &format!("nodes_config.{index}.jmanager_settings.node_path"),
            ) = base.join(name).to_str().unwrap().into();
        }
        let path = base.join("jmanager_config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&document).unwrap()).unwrap();
        let import = import(&path, Path::new(TEMPLATE)).unwrap();
        let env = Env::new();
        let origins = Origins::new(&path, &env);
        let mut errors = ConfigErrors::default();
        let (config, _) = crate::config::model::validate(
            import.raw,
            &path,
            &origins,
            &mut errors,
            crate::config::HostFiles::Check,
        );
        assert!(errors.is_empty(), "{errors}");
        assert_eq!(config.nodes.len(), 2);
        assert_eq!(
            config.nodes[0].jormungandr().rest_url.as_str(),
            "http://127.0.0.1:3101/api"
        );
        assert_eq!(config.nodes[1].program, "jnode_two");
        assert_eq!(
            config.nodes[0].jormungandr().config["p2p"]["max_connections"],
            1024,
            "override merged onto the template"
        );
        assert_eq!(
            config.nodes[1].jormungandr().config["p2p"]["max_connections"],
            768,
            "template value kept"
        );
        assert_eq!(
            config.nodes[0].jormungandr().fallback_config["p2p"]["trusted_peers"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            config.pooltool.pool_id.as_deref(),
            Some("a".repeat(64).as_str())
        );

        // Without the node directories, the host check names them.
        for name in ["node_one", "node_two"] {
            std::fs::remove_dir(base.join(name)).unwrap();
        }
        let errors = crate::config::model::host_problems(&config, &Env::new());
        let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["nodes[0].node_dir", "nodes[1].node_dir"], "{errors}");
    }
}

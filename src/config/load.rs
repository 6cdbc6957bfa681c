//! Reading the config file and the environment into a `RawConfig`, collecting every problem.
//!
//! Layers, later wins: the file (TOML, YAML or JSON by extension) → `NODEKEEPER__SECTION__KEY`
//! environment variables → the connection variables shared with `ctl` (`NODEKEEPER_SUPERVISOR_URL`,
//! `_USER`, `_PASSWORD`). Each section (and each node) is deserialized on its own; a key with a wrong
//! type is reported, dropped (so its default applies) and the section is read again, so that one
//! run reports every wrong key, not only the first. Unknown keys are reported with a suggestion.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::error::{ConfigError, ConfigErrors, did_you_mean};
use super::fields::fields_of;
use super::raw::{RawAlerts, RawChannel, RawConfig, RawNode, RawSupervisor};

/// A snapshot of the environment variables (passed in, so tests never touch the process's).
pub type Env = BTreeMap<String, String>;

/// Prefix of variables overriding any key: `NODEKEEPER__THRESHOLDS__TIP_TIMEOUT=120`.
pub const ENV_PREFIX: &str = "NODEKEEPER__";

/// The connection variables shared with `nodekeeper ctl`, and the key each one sets.
pub const CONNECTION_ENV: [(&str, &str); 3] = [
    ("NODEKEEPER_SUPERVISOR_URL", "supervisor.url"),
    ("NODEKEEPER_SUPERVISOR_USER", "supervisor.user"),
    ("NODEKEEPER_SUPERVISOR_PASSWORD", "supervisor.password"),
];

/// The environment of this process, for the CLI.
pub fn process_env() -> Env {
    std::env::vars().collect()
}

/// Names where a key's value came from: the environment variable that set it, else the file.
pub(crate) struct Origins<'a> {
    file: String,
    env: &'a Env,
}

impl<'a> Origins<'a> {
    pub(crate) fn new(file: &Path, env: &'a Env) -> Origins<'a> {
        Origins {
            file: file.display().to_string(),
            env,
        }
    }

    /// The file's name as shown in messages.
    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    /// `environment NAME` when a variable set `key` (or a key under it), else the file.
    pub(crate) fn of(&self, key: &str) -> String {
        for (variable, set_key) in CONNECTION_ENV {
            if key == set_key && self.env.contains_key(variable) {
                return format!("environment {variable}");
            }
        }
        let variable = format!(
            "{ENV_PREFIX}{}",
            key.replace('.', "__")
                .replace(['[', ']'], "")
                .to_uppercase()
        );
        // The variable of this key, or of a key under it (an unknown section set from the
        // environment is reported at the section).
        let under = format!("{variable}__");
        match self
            .env
            .keys()
            .find(|name| **name == variable || name.starts_with(&under))
        {
            Some(name) => format!("environment {name}"),
            None => self.file.clone(),
        }
    }

    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.of(key), key, message)
    }
}

/// The file format, from the extension.
fn format_of(path: &Path) -> Option<config::FileFormat> {
    match path.extension()?.to_str()? {
        "toml" => Some(config::FileFormat::Toml),
        "yaml" | "yml" => Some(config::FileFormat::Yaml),
        "json" => Some(config::FileFormat::Json),
        _ => None,
    }
}

/// Reads `path` and the environment into a `RawConfig`. The errors are every problem of shape
/// (syntax, types, unknown keys); values are checked later by `validate`.
pub fn load_raw(path: &Path, env: &Env) -> (RawConfig, ConfigErrors) {
    let file_error = |message: String| {
        let mut errors = ConfigErrors::default();
        errors.push(ConfigError::new(path.display().to_string(), "", message));
        (RawConfig::default(), errors)
    };
    let Some(format) = format_of(path) else {
        return file_error(
            "unknown config format: expected a .toml, .yaml, .yml or .json file".into(),
        );
    };
    match std::fs::read_to_string(path) {
        Ok(text) => load_raw_text(&text, format, path, env),
        Err(e) => file_error(format!("cannot read: {e}")),
    }
}

/// Like [`load_raw`], for text in `format` that messages attribute to `path` (e.g. a jmanager
/// config converted to nodekeeper's layout).
pub fn load_raw_text(
    text: &str,
    format: config::FileFormat,
    path: &Path,
    env: &Env,
) -> (RawConfig, ConfigErrors) {
    let origins = Origins::new(path, env);
    let mut errors = ConfigErrors::default();
    // TOML is read once by `toml` itself first: its error names a line, a column and a reason we
    // can show without the source line it would otherwise quote (that line may hold a password).
    if format == config::FileFormat::Toml
        && let Err(e) = text.parse::<toml::Table>()
    {
        errors.push(syntax_error(origins.file(), text, e.span(), e.message()));
        return (RawConfig::default(), errors);
    }
    let fail = |errors: &mut ConfigErrors, message: String| {
        errors.push(ConfigError::new(origins.file(), "", message));
    };
    let overrides: config::Map<String, String> = env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(text, format))
        .add_source(
            config::Environment::with_prefix("NODEKEEPER")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(overrides)),
        );
    for (variable, key) in CONNECTION_ENV {
        if let Some(value) = env.get(variable) {
            builder = match builder.set_override(key, value.as_str()) {
                Ok(builder) => builder,
                Err(e) => {
                    fail(&mut errors, format!("{variable}: {e}"));
                    return (RawConfig::default(), errors);
                }
            };
        }
    }
    let built = match builder.build() {
        Ok(built) => built,
        Err(e) => {
            fail(&mut errors, flatten_parse_error(&e.to_string()));
            // (TOML's syntax was checked above; this is YAML, JSON or the environment.)
            return (RawConfig::default(), errors);
        }
    };
    let top = match built.try_deserialize::<config::Map<String, config::Value>>() {
        Ok(top) => top,
        Err(e) => {
            fail(&mut errors, format!("expected a table of sections: {e}"));
            return (RawConfig::default(), errors);
        }
    };
    let mut raw = RawConfig::default();
    let mut reader = SectionReader {
        origins: &origins,
        errors: &mut errors,
    };
    for (key, value) in top {
        match key.as_str() {
            "supervisor" => raw.supervisor = reader.read(value, "supervisor"),
            "supervisors" => {
                for (name, value) in reader.table(value, "supervisors") {
                    let section: RawSupervisor = reader.read(value, &format!("supervisors.{name}"));
                    raw.supervisors.insert(name, section);
                }
            }
            "node_defaults" => raw.node_defaults = reader.read(value, "node_defaults"),
            "versions" => raw.versions = reader.read(value, "versions"),
            "nodes" => {
                let nodes = match value.into_array() {
                    Ok(nodes) => nodes,
                    Err(_) => {
                        reader.errors.push(origins.error(
                            "nodes",
                            "expected a list of nodes ([[nodes]] tables in TOML)",
                        ));
                        Vec::new()
                    }
                };
                for (index, value) in nodes.into_iter().enumerate() {
                    let node: RawNode = reader.read(value, &format!("nodes[{index}]"));
                    raw.nodes.push(node);
                }
            }
            "thresholds" => raw.thresholds = reader.read(value, "thresholds"),
            "pooltool" => raw.pooltool = reader.read(value, "pooltool"),
            "leadership" => raw.leadership = reader.read(value, "leadership"),
            "email" => raw.email = reader.read(value, "email"),
            "alerts" => {
                for (key, value) in reader.table(value, "alerts") {
                    if key != "channels" {
                        reader.unknown("alerts", &key, fields_of::<RawAlerts>());
                        continue;
                    }
                    let channels = match value.into_array() {
                        Ok(channels) => channels,
                        Err(_) => {
                            reader.errors.push(origins.error(
                                "alerts.channels",
                                "expected a list of channels ([[alerts.channels]] tables in TOML)",
                            ));
                            Vec::new()
                        }
                    };
                    for (index, value) in channels.into_iter().enumerate() {
                        let channel: RawChannel =
                            reader.read(value, &format!("alerts.channels[{index}]"));
                        raw.alerts.channels.push(channel);
                    }
                }
            }
            "restart_log" => raw.restart_log = reader.read(value, "restart_log"),
            "api" => raw.api = reader.read(value, "api"),
            "cluster" => raw.cluster = Some(reader.read(value, "cluster")),
            "backup" => raw.backup = Some(reader.read(value, "backup")),
            "reference_url" => raw.reference_url = reader.read(value, "reference_url"),
            "reference_allow_insecure" => {
                raw.reference_allow_insecure = reader.read(value, "reference_allow_insecure");
            }
            unknown => reader.unknown("", unknown, fields_of::<RawConfig>()),
        }
    }
    (raw, errors)
}

/// The config crate's parse errors (YAML and JSON; TOML is checked before) in one line: the
/// first, which says what and where. Any later line could be an excerpt of the source, which may
/// hold a secret.
fn flatten_parse_error(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// A syntax error at byte `span` of `text` (read from `file`): `line L, column C (key K): invalid
/// TOML: REASON`, with the key of that line when it has one (`email.password`) and the parser's
/// short reason (lowercased first letter, no trailing period). The source line itself is never
/// quoted: it may hold a secret.
pub(crate) fn syntax_error(
    file: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    reason: &str,
) -> ConfigError {
    let reason = reason.trim().trim_end_matches('.');
    let reason = match reason.chars().next() {
        Some(first) if first.is_uppercase() && !reason.starts_with("TOML") => {
            first.to_lowercase().collect::<String>() + &reason[first.len_utf8()..]
        }
        _ => reason.to_string(),
    };
    let Some(span) = span else {
        return ConfigError::new(file, "", format!("invalid TOML: {reason}"));
    };
    let at = span.start.min(text.len());
    let at = (0..=at)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let mut column = before[line_start..].chars().count() + 1;
    let key = toml_key_at(text, line);
    if key.as_deref().is_some_and(is_secret_key) {
        // The column of an unclosed secret would tell its length: point at the value's start.
        let line_text = text[line_start..].lines().next().unwrap_or_default();
        if let Some(equals) = line_text.find('=') {
            let value = &line_text[equals + 1..];
            let spaces = value.len() - value.trim_start().len();
            column = line_text[..equals + 1 + spaces].chars().count() + 1;
        }
    }
    // The key goes into the message: a problem with an empty key is one of the whole file (it
    // could not be read at all), which is what a syntax error is.
    let at_key = key.map(|key| format!(" (key {key})")).unwrap_or_default();
    ConfigError::new(
        file,
        "",
        format!("line {line}, column {column}{at_key}: invalid TOML: {reason}"),
    )
}

/// The full key set on line `line` (1-based) of a TOML text, from the last table header before it
/// (`[email]`, `[[nodes]]` counted as `nodes[N]`) and the bare key before the line's `=`. `None`
/// when the line sets no key this simple reading understands (a header, a quoted key, a value
/// continued from an earlier line).
fn toml_key_at(text: &str, line: usize) -> Option<String> {
    let bare = |key: &str| {
        let key = key.trim();
        (!key.is_empty()
            && key.split('.').all(|part| {
                let part = part.trim();
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            }))
        .then(|| key.split('.').map(str::trim).collect::<Vec<_>>().join("."))
    };
    let mut table = String::new();
    let mut arrays: BTreeMap<String, usize> = BTreeMap::new();
    for (index, content) in text.lines().enumerate() {
        let trimmed = content.trim();
        if index + 1 == line {
            let (key, _) = trimmed.split_once('=')?;
            let key = bare(key)?;
            return Some(if table.is_empty() {
                key
            } else {
                format!("{table}.{key}")
            });
        }
        if let Some(name) = trimmed
            .strip_prefix("[[")
            .and_then(|rest| rest.split_once("]]"))
            .and_then(|(name, _)| bare(name))
        {
            let count = arrays.entry(name.clone()).or_insert(0);
            table = format!("{name}[{count}]");
            *count += 1;
        } else if let Some(name) = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(name, _)| bare(name))
        {
            // A sub-table of the latest element of an array of tables: `[nodes.overrides]`.
            table = match arrays.iter().find(|(array, _)| {
                name.strip_prefix(array.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
            }) {
                Some((array, count)) => {
                    format!(
                        "{array}[{}]{}",
                        count.saturating_sub(1),
                        &name[array.len()..]
                    )
                }
                None => name,
            };
        }
    }
    None
}

struct SectionReader<'a, 'b> {
    origins: &'a Origins<'b>,
    errors: &'a mut ConfigErrors,
}

impl SectionReader<'_, '_> {
    /// Deserializes one section, reporting every bad key (each is dropped and the section read
    /// again, so its default applies) and every unknown key.
    fn read<T: DeserializeOwned + Default>(&mut self, value: config::Value, prefix: &str) -> T {
        let mut value = value;
        // Each round removes one key, so this ends; the bound guards against surprises.
        for _round in 0..256 {
            let mut unknown = Vec::new();
            let result: Result<T, _> =
                serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
                    value.clone(),
                    &mut |path: serde_ignored::Path| unknown.push(path.to_string()),
                ));
            match result {
                Ok(section) => {
                    for key in unknown {
                        self.unknown(prefix, &key, fields_of::<T>());
                    }
                    return section;
                }
                Err(error) => {
                    let path = error.path().to_string();
                    let key = join(prefix, if path == "." { "" } else { &path });
                    // serde quotes the value it could not read (`invalid type: string "…"`);
                    // the value of a secret is never shown.
                    let message = if is_secret_key(&key) {
                        "expected a string".to_string()
                    } else {
                        clean_message(&error.inner().to_string())
                    };
                    self.errors.push(self.origins.error(&key, message));
                    let first = error
                        .path()
                        .iter()
                        .next()
                        .and_then(|segment| match segment {
                            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                            _ => None,
                        });
                    match first {
                        Some(first) if remove_key(&mut value, &first) => continue,
                        _ => return T::default(),
                    }
                }
            }
        }
        T::default()
    }

    /// The entries of a table section (`[supervisors.NAME]`).
    fn table(&mut self, value: config::Value, prefix: &str) -> Vec<(String, config::Value)> {
        match value.into_table() {
            Ok(table) => table.into_iter().collect(),
            Err(_) => {
                self.errors.push(
                    self.origins
                        .error(prefix, "expected a table of named sections"),
                );
                Vec::new()
            }
        }
    }

    fn unknown(&mut self, prefix: &str, key: &str, known: &[&str]) {
        let full = join(prefix, key);
        let last = key.rsplit('.').next().unwrap_or(key);
        let message = match did_you_mean(last, known) {
            Some(suggestion) => format!("unknown key; did you mean `{suggestion}`?"),
            None if known.is_empty() => "unknown key".to_string(),
            None => format!("unknown key; expected one of: {}", known.join(", ")),
        };
        self.errors.push(self.origins.error(&full, message));
    }
}

/// Whether `key` holds a secret (or an account id kept as one): its value is never quoted.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    matches!(last, "password" | "token" | "user_id")
}

fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (_, true) => prefix.to_string(),
        _ if key.starts_with('[') => format!("{prefix}{key}"),
        _ => format!("{prefix}.{key}"),
    }
}

fn remove_key(value: &mut config::Value, key: &str) -> bool {
    match &mut value.kind {
        config::ValueKind::Table(table) => table.shift_remove(key).is_some(),
        _ => false,
    }
}

/// serde's messages are fine but sometimes end with the config crate's ` for key ...` suffix,
/// which repeats the key we already show.
fn clean_message(message: &str) -> String {
    match message.find(" for key `") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, text: &str, env: &[(&str, &str)]) -> (RawConfig, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let env: Env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (raw, errors) = load_raw(&path, &env);
        let prefix = format!("{}", path.display());
        let messages = errors
            .0
            .iter()
            .map(|e| e.to_string().replace(&prefix, "FILE"))
            .collect();
        (raw, messages)
    }

    #[test]
    fn every_bad_and_unknown_key_is_reported_at_once() {
        let (raw, errors) = load(
            "a.toml",
            "[thresholds]\ntip_timeout = \"soon\"\napi_failures = \"many\"\ntip_timout = 5\n\
             tip_diff_threshold = 9\n[colours]\nx = 1\n",
            &[],
        );
        assert_eq!(
            raw.thresholds.tip_diff_threshold,
            Some(9),
            "good keys still apply"
        );
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("FILE: thresholds.tip_timeout: expected a duration")),
            "{errors:#?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("FILE: thresholds.api_failures: ")),
            "{errors:#?}"
        );
        assert!(
            errors.contains(
                &"FILE: thresholds.tip_timout: unknown key; did you mean `tip_timeout`?"
                    .to_string()
            ),
            "{errors:#?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("FILE: colours: unknown key; expected one of: supervisor,")),
            "{errors:#?}"
        );
    }

    #[test]
    fn environment_overrides_the_file_and_is_named_in_errors() {
        let (raw, errors) = load(
            "a.yaml",
            "supervisor:\n  url: http://127.0.0.1:9001/RPC2\nthresholds:\n  tip_timeout: 90\n",
            &[
                ("NODEKEEPER__THRESHOLDS__TIP_TIMEOUT", "120"),
                ("NODEKEEPER__API__LISTEN", "127.0.0.1:9999"),
                ("NODEKEEPER_SUPERVISOR_URL", "unix:///run/s.sock"),
                ("NODEKEEPER_SUPERVISOR_PASSWORD", "12345"),
                ("NODEKEEPER__THRESHOLDS__MAX_RESTARTS", "lots"),
            ],
        );
        assert_eq!(
            raw.thresholds.tip_timeout,
            Some(std::time::Duration::from_secs(120))
        );
        assert_eq!(raw.api.listen, "127.0.0.1:9999");
        assert_eq!(raw.supervisor.url, "unix:///run/s.sock");
        assert_eq!(
            raw.supervisor.password.as_deref(),
            Some("12345"),
            "numeric passwords stay strings"
        );
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].starts_with(
                "environment NODEKEEPER__THRESHOLDS__MAX_RESTARTS: thresholds.max_restarts: "
            ),
            "{errors:#?}"
        );
    }

    #[test]
    fn nodes_are_read_one_by_one_and_keep_override_case() {
        let (raw, errors) = load(
            "a.json",
            r#"{"nodes": [{"name": "a", "overrides": {"rest": {"listen": "127.0.0.1:1"}, "MixedCase": 1}},
                          {"name": "b", "bogus": true, "args": "not-a-list"}]}"#,
            &[],
        );
        assert_eq!(raw.nodes.len(), 2);
        assert_eq!(raw.nodes[0].overrides["MixedCase"], 1);
        assert_eq!(raw.nodes[1].name, "b");
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("FILE: nodes[1].args: ")),
            "{errors:#?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("FILE: nodes[1].bogus: unknown key")),
            "{errors:#?}"
        );
    }

    #[test]
    fn a_toml_syntax_error_names_line_column_and_key_never_the_value() {
        let text = "[supervisor]\nurl = \"http://127.0.0.1:9001\"\n\n[email]\nenabled = true\n\
                    password = \"hunter2\nfrom = \"a@b\"\n";
        let (_, errors) = load("a.toml", text, &[]);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].starts_with("FILE: line 6, column 12 (key email.password): invalid TOML: "),
            "{errors:#?}"
        );
        assert!(!errors[0].contains("hunter2"), "{errors:#?}");
        assert!(!errors[0].contains('\n'), "one line: {errors:#?}");

        // Arrays of tables and their sub-tables are named by index.
        let text = "[[nodes]]\nname = \"a\"\n[[nodes]]\nname = \"b\"\n[nodes.overrides]\n\
                    x = \"secret\n";
        let (_, errors) = load("a.toml", text, &[]);
        assert!(
            errors[0]
                .starts_with("FILE: line 6, column 12 (key nodes[1].overrides.x): invalid TOML: "),
            "{errors:#?}"
        );
        assert!(!errors[0].contains("secret"), "{errors:#?}");

        // A line that is not `key = value` names no key.
        let (_, errors) = load("a.toml", "[api]\nhunter2 hunter2\n", &[]);
        assert!(
            errors[0].starts_with("FILE: line 2, column "),
            "{errors:#?}"
        );
        assert!(!errors[0].contains("hunter2"), "{errors:#?}");
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_quoted() {
        let (_, errors) = load("a.json", r#"{"api": {"token": {"v": "hunter2"}}}"#, &[]);
        assert_eq!(
            errors,
            ["FILE: api.token: expected a string"],
            "{errors:#?}"
        );
    }

    #[test]
    fn syntax_errors_and_formats_name_the_file() {
        for (name, text) in [
            ("a.toml", "[supervisor\nurl = 1\n"),
            ("a.yaml", "a: [1, 2\nb: 3\n"),
            ("a.json", "{\"a\": 1,}"),
            ("a.ini", "x=1"),
        ] {
            let (_, errors) = load(name, text, &[]);
            assert_eq!(errors.len(), 1, "{name}: {errors:#?}");
            assert!(errors[0].starts_with("FILE: "), "{name}: {errors:#?}");
            assert!(!errors[0].contains('\n'), "{name}: {errors:#?}");
        }
    }
}

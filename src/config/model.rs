//! The validated configuration the rest of nodekeeper uses, and `validate`, which turns a
//! `RawConfig` into it while collecting every problem of value (ranges, URLs, files, duplicates,
//! templates and overrides). Paths in the file are relative to the file's directory.
//!
//! `Config` holds resolved settings only (every default applied, paths resolved, secrets read):
//! its own (`Thresholds`, `PoolToolSettings`, `LeadershipSettings`, `NodeSettings`,
//! `ApiSettings`) and those the lower modules own and this module fills
//! (`supervisor::SupervisorSettings`, `alert::EmailSettings`). The file's shape stays in `raw`;
//! `config show` reads it again with `load_raw_source`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::error::{ConfigError, ConfigErrors};
use super::load::{Env, Origins, load_raw};
use super::merge;
use super::raw::{
    RawConfig, RawEmail, RawLeadership, RawPeer, RawPoolTool, RawSupervisor, RawThresholds,
};
use crate::alert::{EmailSettings, Facts, InlineTemplate, TemplateSettings};
use crate::chain::ChainSettings;
use crate::chain::jormungandr;
pub use crate::policy::Thresholds;
pub use crate::pooltool::{PoolToolSettings, SlotsVerification};
use crate::secret::Secret;
use crate::supervisor::{Endpoint, SupervisorSettings};

/// Name of the default supervisord endpoint (`[supervisor]`).
pub const DEFAULT_SUPERVISOR: &str = "default";

/// One node, every default resolved.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Unique node name.
    pub name: String,
    /// supervisord program name.
    pub program: String,
    /// Which supervisord (a key of `Config::supervisors`).
    pub supervisor: String,
    /// The node's directory.
    pub node_dir: PathBuf,
    /// The binary it runs.
    pub binary: PathBuf,
    /// The version name, when chosen from `[versions]`.
    pub version: Option<String>,
    /// What its chain adapter needs (its API, its generated config).
    pub chain: ChainSettings,
    /// Extra arguments of the node binary.
    pub args: Vec<String>,
    /// supervisord `startsecs`.
    pub startsecs: u32,
    /// supervisord `stopwaitsecs`.
    pub stopwaitsecs: u32,
    /// Its stdout log file (supervisord's `stdout_logfile`).
    pub log_file: PathBuf,
}

/// The API settings.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Bearer token of mutating endpoints; without one they are refused.
    pub token: Option<Secret>,
}

/// `[thresholds]` as checked (the policy owns the type).
fn thresholds_of(raw: &RawThresholds) -> Thresholds {
    Thresholds {
        tick_interval: raw.tick_interval,
        probe_timeout: raw.probe_timeout,
        api_failures: raw.api_failures,
        tip_timeout: raw.tip_timeout,
        tip_diff_threshold: raw.tip_diff_threshold,
        bootstrap_timeout: raw.bootstrap_timeout,
        boot_grace: raw.boot_grace,
        max_restarts: raw.max_restarts,
        restart_window: raw.restart_window,
        all_down_stagger: raw.all_down_stagger,
    }
}

// The documented defaults are the file's (`raw`), so they are given here, where both are known.
impl Default for Thresholds {
    /// The documented defaults of `[thresholds]`.
    fn default() -> Thresholds {
        thresholds_of(&RawThresholds::default())
    }
}

// The documented defaults are the file's (`raw`), so they are given here, where both are known.
impl Default for PoolToolSettings {
    /// The documented defaults of `[pooltool]` (disabled, no ids).
    fn default() -> PoolToolSettings {
        let raw = RawPoolTool::default();
        PoolToolSettings {
            enabled: raw.enabled,
            status_url: raw.status_url,
            status_refresh: raw.status_refresh,
            status_max_age: raw.status_max_age,
            tip_url: raw.tip_url,
            tip_interval: raw.tip_interval,
            slots_url: raw.slots_url,
            send_slots_after: raw.send_slots_after,
            slots_verification: raw.slots_verification,
            gpg: raw.gpg,
            key_path: raw
                .key_path
                .unwrap_or_else(|| PathBuf::from("pooltool-keys")),
            user_id: raw.user_id,
            pool_id: raw.pool_id,
            genesis_hash: raw.genesis_hash,
        }
    }
}

/// Leader key handling (`[leadership]`), paths resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadershipSettings {
    /// Manage the leader key (promote/demote) at all.
    pub enabled: bool,
    /// The pool's node secret (YAML, as given to `jormungandr --secret`); checked when enabled.
    pub secret_file: Option<PathBuf>,
    /// Switch leaders only when another node is this many blocks ahead.
    pub switch_margin: u64,
    /// No promotion, demotion or leader restart within this many slots of a leader slot.
    pub slot_window: u64,
    /// Restart a node to fetch the schedule only when the next slot is further away than this.
    pub schedule_refresh_min_gap: Duration,
    /// Persisted safety state (current leader, last slot, epoch).
    pub state_file: PathBuf,
}

/// The whole validated configuration: resolved settings only (the file's shape stays in `raw`).
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// supervisord endpoints by name; `default` is `[supervisor]`.
    pub supervisors: BTreeMap<String, SupervisorSettings>,
    /// The nodes, in file order.
    pub nodes: Vec<NodeSettings>,
    /// Control-loop thresholds.
    pub thresholds: Thresholds,
    /// PoolTool.
    pub pooltool: PoolToolSettings,
    /// Leadership.
    pub leadership: LeadershipSettings,
    /// Email alerts.
    pub email: EmailSettings,
    /// The restart log path.
    pub restart_log: PathBuf,
    /// The HTTP API.
    pub api: ApiSettings,
}

impl NodeSettings {
    /// Its Jormungandr settings (the one chain so far).
    pub fn jormungandr(&self) -> &jormungandr::Settings {
        let ChainSettings::Jormungandr(settings) = &self.chain;
        settings
    }
}

impl Config {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSettings> {
        self.nodes.iter().find(|node| node.name == name)
    }

    /// What alert placeholders need beyond an event (thresholds, dedupe window), on this host.
    pub fn alert_facts(&self) -> Facts {
        Facts::on_this_host(
            self.thresholds.tip_timeout,
            self.thresholds.bootstrap_timeout,
            self.email.dedupe_window,
        )
    }
}

/// Reads and validates `path` with the environment `env`: every problem, or the config.
pub fn load(path: &Path, env: &Env) -> Result<Config, ConfigErrors> {
    load_source(&ConfigSource::File(path.to_path_buf()), env).map(|(config, _)| config)
}

/// Whether the checks of files that exist only on the deployed host run: secret and id files
/// (supervisord passwords, SMTP password, API token, the leader secret, PoolTool's pool id and
/// genesis hash), the SMTP CA file, the alert templates directory and the node directories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostFiles {
    /// Read and check them (the daemon, `config check`).
    #[default]
    Check,
    /// Skip them, naming each skipped check (`config check --skip-host-files`: an example, or a
    /// configuration checked away from its host). Secrets from those files are then absent.
    Skip,
}

/// A check not made because it reads a file of the deployed host ([`HostFiles::Skip`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedCheck {
    /// The key naming the file (`supervisor.password_file`).
    pub key: String,
    /// The file or directory, resolved.
    pub path: PathBuf,
}

impl std::fmt::Display for SkippedCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not checked (host file): {} = {}",
            self.key,
            self.path.display()
        )
    }
}

/// Checks every value of `raw` (read from `path`) and resolves defaults and relative paths,
/// skipping the checks of host files when `host_files` says so; also returns the checks skipped.
pub(crate) fn validate(
    raw: RawConfig,
    path: &Path,
    origins: &Origins<'_>,
    errors: &mut ConfigErrors,
    host_files: HostFiles,
) -> (Config, Vec<SkippedCheck>) {
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut v = Validator {
        base,
        origins,
        errors,
        templates: HashMap::new(),
        host_files,
        skipped: Vec::new(),
    };
    let mut supervisors = BTreeMap::new();
    if let Some(settings) = v.supervisor(DEFAULT_SUPERVISOR, "supervisor", &raw.supervisor) {
        supervisors.insert(DEFAULT_SUPERVISOR.to_string(), settings);
    }
    for (name, section) in &raw.supervisors {
        if name == DEFAULT_SUPERVISOR {
            v.error(
                &format!("supervisors.{name}"),
                "the name `default` is taken by [supervisor]",
            );
            continue;
        }
        if let Some(settings) = v.supervisor(name, &format!("supervisors.{name}"), section) {
            supervisors.insert(name.clone(), settings);
        }
    }
    v.thresholds(&raw.thresholds);
    let nodes = v.nodes(&raw);
    for (name, settings) in &supervisors {
        let slowest = nodes
            .iter()
            .filter(|node| &node.supervisor == name)
            .map(|node| node.stopwaitsecs.max(node.startsecs))
            .max()
            .unwrap_or(0);
        if settings.wait_timeout <= Duration::from_secs(u64::from(slowest)) {
            let key = if name == DEFAULT_SUPERVISOR {
                "supervisor.wait_timeout".to_string()
            } else {
                format!("supervisors.{name}.wait_timeout")
            };
            v.error(
                &key,
                format!(
                    "{} must exceed the nodes' stopwaitsecs and startsecs ({slowest} s)",
                    humantime::format_duration(settings.wait_timeout)
                ),
            );
        }
    }
    let restart_log = v.resolve(&raw.restart_log.path);
    let pooltool = v.pooltool(&raw.pooltool, &restart_log);
    let leadership = v.leadership(&raw.leadership);
    let email = v.email(&raw.email);
    let api = v.api(&raw);
    let skipped = std::mem::take(&mut v.skipped);
    let config = Config {
        path: path.to_path_buf(),
        supervisors,
        nodes,
        thresholds: thresholds_of(&raw.thresholds),
        pooltool,
        leadership,
        email,
        restart_log,
        api,
    };
    (config, skipped)
}

struct Validator<'a, 'b> {
    base: PathBuf,
    origins: &'a Origins<'b>,
    errors: &'a mut ConfigErrors,
    templates: HashMap<PathBuf, Option<Value>>,
    host_files: HostFiles,
    skipped: Vec<SkippedCheck>,
}

impl Validator<'_, '_> {
    fn error(&mut self, key: &str, message: impl Into<String>) {
        let error = self.origins.error(key, message);
        self.errors.push(error);
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    /// Whether the check of the host file `path` (named by `key`) runs; when it does not, it is
    /// recorded as skipped.
    fn checks_host_file(&mut self, key: &str, path: &Path) -> bool {
        match self.host_files {
            HostFiles::Check => true,
            HostFiles::Skip => {
                self.skipped.push(SkippedCheck {
                    key: key.to_string(),
                    path: path.to_path_buf(),
                });
                false
            }
        }
    }

    /// The first line of a secret file; errors name the key and the file, never its content.
    fn read_secret_file(&mut self, key: &str, path: &Path) -> Option<Secret> {
        let path = self.resolve(path);
        if !self.checks_host_file(key, &path) {
            return None;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => match text.lines().next().map(str::trim) {
                Some(line) if !line.is_empty() => Some(Secret::new(line)),
                _ => {
                    self.error(
                        key,
                        format!(
                            "{} is empty: expected the secret on its first line",
                            path.display()
                        ),
                    );
                    None
                }
            },
            Err(e) => {
                self.error(key, format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    /// One of `inline` / `file`, each optional, never both.
    fn secret(
        &mut self,
        prefix: &str,
        inline_key: &str,
        inline: Option<&String>,
        file_key: &str,
        file: Option<&PathBuf>,
    ) -> Option<Secret> {
        // A secret from the environment wins over the file, as every environment override does.
        let inline_from_env = self
            .origins
            .of(&format!("{prefix}.{inline_key}"))
            .starts_with("environment ");
        match (inline, file) {
            (Some(inline), Some(_)) if inline_from_env => Some(Secret::new(inline.clone())),
            (Some(_), Some(_)) => {
                self.error(
                    &format!("{prefix}.{file_key}"),
                    format!("give either {inline_key} or {file_key}, not both"),
                );
                None
            }
            (Some(inline), None) => Some(Secret::new(inline.clone())),
            (None, Some(file)) => self.read_secret_file(&format!("{prefix}.{file_key}"), file),
            (None, None) => None,
        }
    }

    fn positive(&mut self, key: &str, duration: Duration) {
        if duration.is_zero() {
            self.error(key, "expected a positive duration, got 0");
        }
    }

    fn supervisor(
        &mut self,
        name: &str,
        prefix: &str,
        raw: &RawSupervisor,
    ) -> Option<SupervisorSettings> {
        let endpoint = match Endpoint::parse(&raw.url) {
            Ok(endpoint) => Some(endpoint),
            Err(e) => {
                self.error(&format!("{prefix}.url"), e.to_string());
                None
            }
        };
        let password = self.secret(
            prefix,
            "password",
            raw.password.as_ref(),
            "password_file",
            raw.password_file.as_ref(),
        );
        let credentials = match (&raw.user, password) {
            (Some(user), Some(password)) => Some((user.clone(), password)),
            (Some(_), None) => {
                if raw.password_file.is_none() {
                    self.error(
                        &format!("{prefix}.user"),
                        "a user needs a password: set password_file or NODEKEEPER_SUPERVISOR_PASSWORD",
                    );
                }
                None
            }
            (None, Some(_)) => {
                self.error(&format!("{prefix}.user"), "a password is set but no user");
                None
            }
            (None, None) => None,
        };
        self.positive(&format!("{prefix}.timeout"), raw.timeout);
        self.positive(&format!("{prefix}.wait_timeout"), raw.wait_timeout);
        Some(SupervisorSettings {
            name: name.to_string(),
            endpoint: endpoint?,
            credentials,
            timeout: raw.timeout,
            wait_timeout: raw.wait_timeout,
        })
    }

    fn thresholds(&mut self, t: &RawThresholds) {
        for (key, duration) in [
            ("tick_interval", t.tick_interval),
            ("probe_timeout", t.probe_timeout),
            ("tip_timeout", t.tip_timeout),
            ("bootstrap_timeout", t.bootstrap_timeout),
            ("boot_grace", t.boot_grace),
            ("restart_window", t.restart_window),
        ] {
            self.positive(&format!("thresholds.{key}"), duration);
        }
        for (key, count) in [
            ("api_failures", u64::from(t.api_failures)),
            ("tip_diff_threshold", t.tip_diff_threshold),
            ("max_restarts", u64::from(t.max_restarts)),
        ] {
            if count == 0 {
                self.error(
                    &format!("thresholds.{key}"),
                    "expected a positive number, got 0",
                );
            }
        }
        if t.tick_interval < Duration::from_millis(100) && !t.tick_interval.is_zero() {
            self.error("thresholds.tick_interval", "expected at least 100ms");
        }
    }

    /// The parsed template at `path` (already resolved), read once per path.
    fn template(&mut self, key: &str, path: &Path) -> Option<Value> {
        let path = path.to_path_buf();
        if let Some(cached) = self.templates.get(&path) {
            return cached.clone();
        }
        let parsed = match std::fs::read_to_string(&path) {
            Err(e) => {
                self.error(key, format!("cannot read template {}: {e}", path.display()));
                None
            }
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(value @ Value::Object(_)) => Some(value),
                Ok(_) => {
                    self.error(
                        key,
                        format!(
                            "{}: expected a JSON object (a node config template)",
                            path.display()
                        ),
                    );
                    None
                }
                Err(e) => {
                    self.error(key, format!("{}: invalid JSON: {e}", path.display()));
                    None
                }
            },
        };
        self.templates.insert(path, parsed.clone());
        parsed
    }

    fn nodes(&mut self, raw: &RawConfig) -> Vec<NodeSettings> {
        if raw.nodes.is_empty() {
            self.error(
                "nodes",
                "expected at least one node ([[nodes]] with a name)",
            );
        }
        let defaults = &raw.node_defaults;
        let mut nodes: Vec<NodeSettings> = Vec::new();
        for (index, node) in raw.nodes.iter().enumerate() {
            let prefix = format!("nodes[{index}]");
            let key = |field: &str| format!("{prefix}.{field}");
            if node.name.is_empty() {
                self.error(&key("name"), "expected a node name");
                continue;
            }
            if !node
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                self.error(
                    &key("name"),
                    format!("{:?}: expected letters, digits, '-', '_' or '.' only (it names files and programs)", node.name),
                );
                continue;
            }
            if let Some(first) = nodes.iter().position(|other| other.name == node.name) {
                self.error(
                    &key("name"),
                    format!("duplicate node name {:?} (also nodes[{first}])", node.name),
                );
            }
            let program = node.program.clone().unwrap_or_else(|| node.name.clone());
            let supervisor = node
                .supervisor
                .clone()
                .unwrap_or_else(|| DEFAULT_SUPERVISOR.to_string());
            if supervisor != DEFAULT_SUPERVISOR && !raw.supervisors.contains_key(&supervisor) {
                self.error(
                    &key("supervisor"),
                    format!("{supervisor:?} is not a [supervisors.NAME] section"),
                );
            }
            if let Some(other) = nodes
                .iter()
                .find(|other| other.program == program && other.supervisor == supervisor)
            {
                self.error(
                    &key("program"),
                    format!("program {program:?} is also used by node {:?}", other.name),
                );
            }
            let version = node.version.clone().or_else(|| defaults.version.clone());
            let binary = match &version {
                Some(version) => match raw.versions.get(version) {
                    Some(binary) => binary.clone(),
                    None => {
                        let known: Vec<&str> = raw.versions.keys().map(String::as_str).collect();
                        self.error(
                            &key("version"),
                            format!(
                                "{version:?} is not in [versions] (known: {})",
                                if known.is_empty() {
                                    "none".to_string()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        );
                        PathBuf::new()
                    }
                },
                None => node
                    .binary
                    .clone()
                    .unwrap_or_else(|| defaults.binary.clone()),
            };
            let node_dir = match (&node.node_dir, &defaults.node_dir) {
                (Some(dir), _) => self.resolve(dir),
                (None, Some(base)) => self.resolve(base).join(&node.name),
                (None, None) => {
                    self.error(
                        &key("node_dir"),
                        "not set: set node_defaults.node_dir or this node's node_dir",
                    );
                    PathBuf::new()
                }
            };
            let config_path = node
                .config_path
                .as_ref()
                .map(|path| self.resolve(path))
                .unwrap_or_else(|| node_dir.join(format!("{}.json", node.name)));
            let template_key = if node.template.is_some() {
                key("template")
            } else {
                "node_defaults.template".to_string()
            };
            let Some(template_path) = node.template.as_ref().or(defaults.template.as_ref()) else {
                self.error(
                    &key("template"),
                    "no template: set node_defaults.template or this node's template",
                );
                continue;
            };
            let template_path = self.resolve(template_path);
            let Some(template) = self.template(&template_key, &template_path) else {
                continue;
            };
            let overrides = Value::Object(node.overrides.clone());
            let conflicts = merge::type_conflicts(&template, &overrides);
            let rest_conflict = conflicts
                .iter()
                .any(|c| c.path == "rest" || c.path.starts_with("rest."));
            for conflict in conflicts {
                self.error(
                    &format!("{prefix}.overrides.{}", conflict.path),
                    format!(
                        "changes the type of the template's value from {} to {}",
                        conflict.template_kind, conflict.override_kind
                    ),
                );
            }
            let config = merge::merge(&template, &overrides);
            let rest_url = match &node.rest_url {
                Some(url) => match parse_rest_url(url) {
                    Ok(url) => Some(url),
                    Err(why) => {
                        self.error(&key("rest_url"), why);
                        None
                    }
                },
                None => match merge::get_path(&config, "rest.listen") {
                    Some(Value::String(listen)) => match rest_url_from_listen(listen) {
                        Ok(url) => Some(url),
                        Err(why) => {
                            self.error(&format!("{prefix}.overrides.rest.listen"), why);
                            None
                        }
                    },
                    Some(other) => {
                        self.error(
                            &format!("{prefix}.overrides.rest.listen"),
                            format!("expected \"HOST:PORT\", got {}", merge::kind(other)),
                        );
                        None
                    }
                    // A type conflict under `rest` was reported already.
                    None if rest_conflict => None,
                    None => {
                        self.error(
                            &key("rest_url"),
                            "no REST address: set rest_url, or rest.listen in the template or overrides",
                        );
                        None
                    }
                },
            };
            let Some(rest_url) = rest_url else { continue };
            if let Some(other) = nodes.iter().find(|other| {
                other.supervisor == supervisor
                    && same_port(&other.jormungandr().rest_url, &rest_url)
            }) {
                self.error(
                    &key("rest_url"),
                    format!(
                        "REST port {} is also used by node {:?}",
                        rest_url.port_or_known_default().unwrap_or(0),
                        other.name
                    ),
                );
            }
            let peers: Vec<Value> = node
                .default_trusted_peers
                .as_ref()
                .unwrap_or(&defaults.default_trusted_peers)
                .iter()
                .map(peer_json)
                .collect();
            let fallback_config = if peers.is_empty() {
                config.clone()
            } else {
                merge::with_trusted_peers(&config, &peers)
            };
            let log_dir = defaults
                .log_dir
                .as_ref()
                .map(|dir| self.resolve(dir))
                .unwrap_or_else(|| node_dir.clone());
            let args = node.args.clone().unwrap_or_else(|| defaults.args.clone());
            nodes.push(NodeSettings {
                name: node.name.clone(),
                program,
                supervisor,
                binary,
                version,
                chain: ChainSettings::Jormungandr(jormungandr::Settings {
                    rest_url,
                    template_path,
                    config_path,
                    boots_with_secret: jormungandr::Settings::boots_with_secret(&args, &config),
                    config,
                    fallback_config,
                }),
                args,
                startsecs: defaults.startsecs,
                stopwaitsecs: defaults.stopwaitsecs,
                log_file: log_dir.join(format!("{}.log", node.name)),
                node_dir,
            });
        }
        nodes
    }

    fn url(&mut self, key: &str, text: &str) {
        match reqwest::Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {}
            Ok(_) => self.error(
                key,
                format!("{text:?}: expected an http:// or https:// URL"),
            ),
            Err(e) => self.error(
                key,
                format!("{text:?}: expected an http:// or https:// URL ({e})"),
            ),
        }
    }

    fn pooltool(&mut self, raw: &RawPoolTool, restart_log: &Path) -> PoolToolSettings {
        let pool_id = self.id_value(
            "pooltool",
            "pool_id",
            raw.pool_id.as_ref(),
            raw.pool_id_file.as_ref(),
        );
        let genesis_hash = self.id_value(
            "pooltool",
            "genesis_hash",
            raw.genesis_hash.as_ref(),
            raw.genesis_hash_file.as_ref(),
        );
        for (key, url) in [
            ("status_url", &raw.status_url),
            ("tip_url", &raw.tip_url),
            ("slots_url", &raw.slots_url),
        ] {
            self.url(&format!("pooltool.{key}"), url);
        }
        for (key, duration) in [
            ("status_refresh", raw.status_refresh),
            ("status_max_age", raw.status_max_age),
            ("tip_interval", raw.tip_interval),
        ] {
            self.positive(&format!("pooltool.{key}"), duration);
        }
        if raw.enabled {
            if raw.user_id.is_none() {
                self.error("pooltool.user_id", "required when pooltool.enabled is true");
            }
            if pool_id.is_none() && raw.pool_id_file.is_none() {
                self.error(
                    "pooltool.pool_id",
                    "required when pooltool.enabled is true (or pool_id_file)",
                );
            }
            if genesis_hash.is_none() && raw.genesis_hash_file.is_none() {
                self.error(
                    "pooltool.genesis_hash",
                    "required when pooltool.enabled is true (or genesis_hash_file)",
                );
            }
            if raw.slots_verification == SlotsVerification::Gpg && raw.gpg.is_none() {
                self.error(
                    "pooltool.gpg",
                    "required when slots_verification is \"gpg\"",
                );
            }
        }
        PoolToolSettings {
            enabled: raw.enabled,
            status_url: raw.status_url.clone(),
            status_refresh: raw.status_refresh,
            status_max_age: raw.status_max_age,
            tip_url: raw.tip_url.clone(),
            tip_interval: raw.tip_interval,
            slots_url: raw.slots_url.clone(),
            send_slots_after: raw.send_slots_after,
            slots_verification: raw.slots_verification,
            gpg: raw.gpg.clone(),
            // Default: `pooltool-keys` beside the restart log.
            key_path: match &raw.key_path {
                Some(path) => self.resolve(path),
                None => restart_log
                    .parent()
                    .map(|dir| dir.join("pooltool-keys"))
                    .unwrap_or_else(|| PathBuf::from("pooltool-keys")),
            },
            user_id: raw.user_id.clone(),
            pool_id: pool_id.map(|secret| secret.expose().to_string()),
            genesis_hash: genesis_hash.map(|secret| secret.expose().to_string()),
        }
    }

    /// An id given inline or in a file (not secret, but read the same way).
    fn id_value(
        &mut self,
        prefix: &str,
        key: &str,
        inline: Option<&String>,
        file: Option<&PathBuf>,
    ) -> Option<Secret> {
        self.secret(prefix, key, inline, &format!("{key}_file"), file)
    }

    fn leadership(&mut self, raw: &RawLeadership) -> LeadershipSettings {
        let settings = LeadershipSettings {
            enabled: raw.enabled,
            secret_file: raw.secret_file.as_ref().map(|path| self.resolve(path)),
            switch_margin: raw.switch_margin,
            slot_window: raw.slot_window,
            schedule_refresh_min_gap: raw.schedule_refresh_min_gap,
            state_file: self.resolve(&raw.state_file),
        };
        if settings.slot_window == 0 {
            self.error(
                "leadership.slot_window",
                "expected a positive number of slots, got 0",
            );
        }
        if settings.enabled {
            match &settings.secret_file {
                None => self.error(
                    "leadership.secret_file",
                    "required when leadership.enabled is true",
                ),
                Some(path) => {
                    // The error names the file and what is wrong, never its content.
                    if self.checks_host_file("leadership.secret_file", path)
                        && let Err(e) = crate::chain::jormungandr::secret::load(path)
                    {
                        self.error("leadership.secret_file", e);
                    }
                }
            }
        }
        settings
    }

    fn email(&mut self, raw: &RawEmail) -> EmailSettings {
        let password = self.secret(
            "email",
            "password",
            raw.password.as_ref(),
            "password_file",
            raw.password_file.as_ref(),
        );
        if raw.enabled {
            if raw.smtp_server.as_deref().is_none_or(str::is_empty) {
                self.error("email.smtp_server", "required when email.enabled is true");
            }
            match &raw.from {
                None => self.error("email.from", "required when email.enabled is true"),
                Some(from) if !from.contains('@') => {
                    self.error("email.from", format!("{from:?}: expected an email address"))
                }
                Some(_) => {}
            }
            if raw.to.is_empty() {
                self.error("email.to", "expected at least one recipient");
            }
            for (index, to) in raw.to.iter().enumerate() {
                if !to.contains('@') {
                    self.error(
                        &format!("email.to[{index}]"),
                        format!("{to:?}: expected an email address"),
                    );
                }
            }
        }
        self.positive("email.dedupe_window", raw.dedupe_window);
        let templates = TemplateSettings {
            dir: raw.templates_dir.as_ref().map(|path| self.resolve(path)),
            inline: raw
                .templates
                .iter()
                .map(|(name, template)| {
                    let template = InlineTemplate {
                        subject: template.subject.clone(),
                        message: template.message.clone(),
                    };
                    (name.clone(), template)
                })
                .collect(),
        };
        // Alerts (src/alert): the CA file and the templates; each problem names its template.
        let tls_ca_file = raw.tls_ca_file.as_ref().map(|path| self.resolve(path));
        if raw.enabled
            && let Some(path) = &tls_ca_file
            && self.checks_host_file("email.tls_ca_file", path)
            && let Err(e) = std::fs::read(path)
        {
            self.error(
                "email.tls_ca_file",
                format!("cannot read {}: {e}", path.display()),
            );
        }
        let checked_templates = match &templates.dir {
            Some(dir) if !self.checks_host_file("email.templates_dir", dir) => TemplateSettings {
                dir: None,
                ..templates.clone()
            },
            _ => templates.clone(),
        };
        for problem in crate::alert::template_problems(&checked_templates) {
            self.error(&problem.key, problem.message);
        }
        EmailSettings {
            enabled: raw.enabled,
            smtp_server: raw.smtp_server.clone(),
            port: raw.port.unwrap_or_else(|| raw.security.default_port()),
            security: raw.security,
            user: raw.user.clone(),
            password,
            from: raw.from.clone(),
            to: raw.to.clone(),
            tls_ca_file,
            templates,
            dedupe_window: raw.dedupe_window,
        }
    }

    fn api(&mut self, raw: &RawConfig) -> ApiSettings {
        let api = &raw.api;
        let token = self.secret(
            "api",
            "token",
            api.token.as_ref(),
            "token_file",
            api.token_file.as_ref(),
        );
        let listen = match api.listen.parse::<SocketAddr>() {
            Ok(listen) => listen,
            Err(_) => {
                self.error(
                    "api.listen",
                    format!(
                        "{:?}: expected an IP address and port, e.g. 127.0.0.1:9180",
                        api.listen
                    ),
                );
                SocketAddr::from((Ipv4Addr::LOCALHOST, 9180))
            }
        };
        if !listen.ip().is_loopback() && token.is_none() {
            self.error(
                "api.listen",
                format!("{listen} is not a loopback address: set api.token_file so that mutating endpoints require a token"),
            );
        }
        ApiSettings { listen, token }
    }
}

fn peer_json(peer: &RawPeer) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("address".into(), Value::String(peer.address.clone()));
    if let Some(id) = &peer.id {
        object.insert("id".into(), Value::String(id.clone()));
    }
    Value::Object(object)
}

fn parse_rest_url(text: &str) -> Result<reqwest::Url, String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Ok(url),
        Ok(_) => Err(format!(
            "{text:?}: expected an http:// URL such as http://127.0.0.1:3100/api"
        )),
        Err(e) => Err(format!(
            "{text:?}: expected an http:// URL such as http://127.0.0.1:3100/api ({e})"
        )),
    }
}

/// `rest.listen` (`HOST:PORT`) → `http://HOST:PORT/api`, with an unspecified address (0.0.0.0)
/// reached through loopback.
pub fn rest_url_from_listen(listen: &str) -> Result<reqwest::Url, String> {
    let address: SocketAddr = listen
        .parse()
        .map_err(|_| format!("{listen:?}: expected \"IP:PORT\", e.g. \"127.0.0.1:3100\""))?;
    let ip = if address.ip().is_unspecified() {
        match address.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        address.ip()
    };
    let url = format!("http://{}/api", SocketAddr::new(ip, address.port()));
    reqwest::Url::parse(&url).map_err(|e| format!("{listen:?}: {e}"))
}

/// Two REST URLs on the same supervisord host clash when their ports are equal and their hosts
/// are equal or either is loopback/unspecified.
fn same_port(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    let local = |url: &reqwest::Url| {
        url.host_str().is_some_and(|host| {
            host == "localhost"
                || host
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
        })
    };
    a.port_or_known_default() == b.port_or_known_default()
        && (a.host_str() == b.host_str() || (local(a) && local(b)))
}

/// Problems of the host rather than of the configuration: node directories that do not exist.
/// `config check`, `config write` and `run` report them; commands that only print (render,
/// supervisor-conf) do not need them.
pub fn host_problems(config: &Config, env: &Env) -> ConfigErrors {
    let origins = Origins::new(&config.path, env);
    let mut errors = ConfigErrors::default();
    for (index, node) in config.nodes.iter().enumerate() {
        if !node.node_dir.is_dir() {
            errors.push(origins.error(
                &format!("nodes[{index}].node_dir"),
                format!("directory {} does not exist", node.node_dir.display()),
            ));
        }
    }
    errors
}

/// The node directories [`host_problems`] would check, as skipped checks ([`HostFiles::Skip`]).
pub fn skipped_host_checks(config: &Config) -> Vec<SkippedCheck> {
    config
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| SkippedCheck {
            key: format!("nodes[{index}].node_dir"),
            path: node.node_dir.clone(),
        })
        .collect()
}

/// Where a configuration is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// nodekeeper's own file.
    File(PathBuf),
    /// jmanager's two files.
    Jmanager {
        /// `jmanager_config.json`.
        config: PathBuf,
        /// `config_template.json`.
        template: PathBuf,
    },
}

/// Loads and validates a configuration from either source. Also returns notices: keys of a
/// jmanager file that nodekeeper does not use, reported rather than silently dropped.
pub fn load_source(
    source: &ConfigSource,
    env: &Env,
) -> Result<(Config, Vec<ConfigError>), ConfigErrors> {
    load_source_with(source, env, HostFiles::Check).result
}

/// The outcome of [`load_source_with`].
#[derive(Debug)]
pub struct Loaded {
    /// The configuration and its notices (keys of a jmanager file that are not used), or every
    /// problem.
    pub result: Result<(Config, Vec<ConfigError>), ConfigErrors>,
    /// The checks of host files skipped ([`HostFiles::Skip`]), whether or not it is valid.
    pub skipped: Vec<SkippedCheck>,
}

/// [`load_source`], skipping the checks of host files when `host_files` says so.
pub fn load_source_with(source: &ConfigSource, env: &Env, host_files: HostFiles) -> Loaded {
    let layered = match layer(source, env) {
        Ok(layered) => layered,
        Err(errors) => {
            return Loaded {
                result: Err(errors),
                skipped: Vec::new(),
            };
        }
    };
    let Layered {
        raw,
        path,
        notices,
        mut errors,
    } = layered;
    let origins = Origins::new(&path, env);
    let (config, skipped) = validate(raw, &path, &origins, &mut errors, host_files);
    Loaded {
        result: errors.into_result(config).map(|config| (config, notices)),
        skipped,
    }
}

/// The effective configuration of `source` in the file's shape (file + environment, defaults
/// filled in), for `config show`: every problem of shape, or it. Values are not checked here.
pub fn load_raw_source(source: &ConfigSource, env: &Env) -> Result<RawConfig, ConfigErrors> {
    let layered = layer(source, env)?;
    layered.errors.into_result(layered.raw)
}

/// A source read and layered with the environment, before validation.
struct Layered {
    raw: RawConfig,
    /// The file messages name, and whose directory relative paths are resolved against.
    path: PathBuf,
    /// Keys of a jmanager file that are not used.
    notices: Vec<ConfigError>,
    /// Problems of shape so far.
    errors: ConfigErrors,
}

/// Reads `source` and the environment into a `RawConfig`. `Err` when there is nothing to
/// validate: the file itself could not be read or parsed, or jmanager's files not converted.
fn layer(source: &ConfigSource, env: &Env) -> Result<Layered, ConfigErrors> {
    match source {
        ConfigSource::File(path) => {
            let (raw, errors) = load_raw(path, env);
            if errors
                .0
                .iter()
                .any(|error| error.key.is_empty() && error.origin == path.display().to_string())
            {
                // The file itself could not be read or parsed: nothing more to say about values.
                return Err(errors);
            }
            Ok(Layered {
                raw,
                path: path.clone(),
                notices: Vec::new(),
                errors,
            })
        }
        ConfigSource::Jmanager { config, template } => {
            let import = super::jmanager::import(config, template)?;
            // The converted configuration goes through the same layering as a file, so the
            // environment overrides work the same on jmanager's files.
            let text = serde_json::to_string(&import.raw).map_err(|e| {
                let mut errors = ConfigErrors::default();
                errors.push(ConfigError::new(
                    config.display().to_string(),
                    "",
                    e.to_string(),
                ));
                errors
            })?;
            let (raw, errors) =
                super::load::load_raw_text(&text, ::config::FileFormat::Json, config, env);
            Ok(Layered {
                raw,
                path: config.clone(),
                notices: import.notices,
                errors,
            })
        }
    }
}

/// Whether `raw` holds a secret inline (a password or token written in the file itself): such a
/// file must be readable by its owner only.
pub fn has_inline_secret(raw: &RawConfig) -> bool {
    raw.supervisor.password.is_some()
        || raw
            .supervisors
            .values()
            .any(|section| section.password.is_some())
        || raw.email.password.is_some()
        || raw.api.token.is_some()
}

/// Whether the files of `source` themselves (without the environment) hold a secret inline.
pub fn source_has_inline_secret(source: &ConfigSource) -> bool {
    layer(source, &Env::new()).is_ok_and(|layered| has_inline_secret(&layered.raw))
}

/// A copy of `raw` with every secret replaced by `<redacted>`, for display.
pub fn redacted(raw: &RawConfig) -> RawConfig {
    let hide = |secret: &mut Option<String>| {
        if secret.is_some() {
            *secret = Some("<redacted>".into());
        }
    };
    let mut raw = raw.clone();
    hide(&mut raw.supervisor.password);
    for section in raw.supervisors.values_mut() {
        hide(&mut section.password);
    }
    hide(&mut raw.email.password);
    hide(&mut raw.api.token);
    raw
}

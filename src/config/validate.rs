//! Validation: a `RawConfig` (the file's shape, every default filled) becomes a `Config` while
//! every problem of value is collected (ranges, URLs, files, duplicates, templates, overrides,
//! secrets), each naming its origin and key. Paths in the file are relative to the file's directory;
//! files that exist only on a deployed host can be skipped (`HostFiles::Skip`), each skip named.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::error::{ConfigError, ConfigErrors};
use super::load::Origins;
use super::merge;
use super::model::*;
use super::raw::{
    ChainName, RawChannel, RawChatId, RawConfig, RawEmail, RawLeadership, RawNode, RawPeer,
    RawPoolTool, RawSupervisor, RawThresholds,
};
use crate::alert::{EmailSettings, InlineTemplate, TemplateSettings};
use crate::chain::ChainSettings;
use crate::chain::jormungandr;
use crate::cluster::ClusterSettings;
use crate::secret::Secret;
use crate::supervisor::{Endpoint, SupervisorSettings};

/// How much longer than the nodes' `stopwaitsecs` (and `startsecs`) a call that waits for a
/// program is given.
pub const WAIT_MARGIN: Duration = Duration::from_secs(5);

/// Any duration above zero: the least of a key where zero is nonsense.
const POSITIVE: Duration = Duration::from_nanos(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The range of every duration key, `(key, least, most)`: a value outside is a configuration
/// error naming the key and the bound. The upper bounds are far above any sensible setting and
/// far below what would overflow the daemon's time arithmetic (a huge `tick_interval` passed
/// the check and then crashed `run`). `[supervisors.NAME]` has the bounds of `[supervisor]`.
pub const DURATION_BOUNDS: &[(&str, Duration, Duration)] = &[
    ("supervisor.timeout", POSITIVE, Duration::from_secs(10 * 60)),
    ("supervisor.wait_timeout", POSITIVE, HOUR),
    (
        "thresholds.tick_interval",
        Duration::from_millis(100),
        Duration::from_secs(10 * 60),
    ),
    (
        "thresholds.probe_timeout",
        POSITIVE,
        Duration::from_secs(5 * 60),
    ),
    ("thresholds.hang_timeout", POSITIVE, HOUR),
    ("thresholds.tip_timeout", POSITIVE, DAY),
    ("thresholds.bootstrap_timeout", POSITIVE, DAY),
    ("thresholds.boot_grace", POSITIVE, DAY),
    (
        "thresholds.restart_window",
        POSITIVE,
        Duration::from_secs(7 * 24 * 3600),
    ),
    ("thresholds.all_down_stagger", Duration::ZERO, HOUR),
    ("pooltool.status_refresh", POSITIVE, DAY),
    ("pooltool.status_max_age", POSITIVE, DAY),
    ("pooltool.tip_interval", POSITIVE, DAY),
    ("pooltool.send_slots_after", Duration::ZERO, DAY),
    ("leadership.schedule_refresh_min_gap", Duration::ZERO, DAY),
    (
        "email.dedupe_window",
        POSITIVE,
        Duration::from_secs(7 * 24 * 3600),
    ),
    // A backup stops a node: more often than every few minutes is a mistake.
    (
        "backup.every",
        Duration::from_secs(5 * 60),
        Duration::from_secs(90 * 24 * 3600),
    ),
    ("backup.early_exit", POSITIVE, HOUR),
    (
        "backup.keep_old_for",
        Duration::ZERO,
        Duration::from_secs(30 * 24 * 3600),
    ),
];

/// The bounds of `key` (`supervisors.NAME.x` has those of `supervisor.x`).
pub fn duration_bounds(key: &str) -> Option<(Duration, Duration)> {
    let generic = match key.strip_prefix("supervisors.") {
        Some(rest) => match rest.rsplit_once('.') {
            Some((_, field)) => format!("supervisor.{field}"),
            None => key.to_string(),
        },
        None => key.to_string(),
    };
    DURATION_BOUNDS
        .iter()
        .find(|(known, _, _)| *known == generic)
        .map(|(_, least, most)| (*least, *most))
}

/// Why `value` is outside `least..=most`, or `None` when it is inside.
fn out_of_bounds(value: Duration, least: Duration, most: Duration) -> Option<String> {
    let shown = |duration: Duration| humantime::format_duration(duration).to_string();
    if value < least {
        if least == POSITIVE {
            return Some("expected a positive duration, got 0".to_string());
        }
        return Some(format!(
            "expected at least {}, got {}",
            shown(least),
            shown(value)
        ));
    }
    (value > most).then(|| {
        format!(
            "{} is too long: expected at most {}",
            shown(value),
            shown(most)
        )
    })
}

/// The shortest API token accepted on a public (not loopback) `api.listen`.
pub const MIN_PUBLIC_TOKEN_CHARS: usize = 32;

/// The default of `thresholds.hang_timeout`.
pub const DEFAULT_HANG_TIMEOUT: Duration = Duration::from_secs(2);

/// `thresholds.hang_timeout`, or what the older `api_failures` meant: that many probe timeouts.
fn hang_timeout_of(raw: &RawThresholds) -> Duration {
    match (raw.hang_timeout, raw.api_failures) {
        (Some(timeout), _) => timeout,
        (None, Some(failures)) => raw.probe_timeout.saturating_mul(failures.max(1)),
        (None, None) => DEFAULT_HANG_TIMEOUT,
    }
}

/// `[thresholds]` as checked (the policy owns the type), for a pool of `chain`: the tip keys the
/// file leaves out take the chain's defaults.
pub(crate) fn thresholds_of(raw: &RawThresholds, chain: ChainName) -> Thresholds {
    Thresholds {
        tick_interval: raw.tick_interval,
        probe_timeout: raw.probe_timeout,
        hang_timeout: hang_timeout_of(raw),
        tip_timeout: raw
            .tip_timeout
            .unwrap_or_else(|| chain.default_tip_timeout()),
        tip_diff_threshold: raw
            .tip_diff_threshold
            .unwrap_or_else(|| chain.default_tip_diff_threshold()),
        bootstrap_timeout: raw.bootstrap_timeout,
        boot_grace: raw.boot_grace,
        max_restarts: raw.max_restarts,
        restart_window: raw.restart_window,
        all_down_stagger: raw.all_down_stagger,
    }
}

/// Checks every value of `raw` (read from `path`) and resolves defaults and relative paths,
/// skipping the checks of host files when `host_files` says so; also returns the checks skipped and
/// the notices (keys still read but replaced by others).
pub(crate) fn validate(
    raw: RawConfig,
    path: &Path,
    origins: &Origins<'_>,
    errors: &mut ConfigErrors,
    host_files: HostFiles,
) -> (Config, Vec<SkippedCheck>, Vec<ConfigError>) {
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
        notices: Vec::new(),
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
        // supervisord answers a stop once the program is down, SIGKILLed after stopwaitsecs at
        // the latest: the call must be given longer than that, with room for the answer.
        if settings.wait_timeout < Duration::from_secs(u64::from(slowest)) + WAIT_MARGIN {
            let key = if name == DEFAULT_SUPERVISOR {
                "supervisor.wait_timeout".to_string()
            } else {
                format!("supervisors.{name}.wait_timeout")
            };
            v.error(
                &key,
                format!(
                    "{} must exceed the nodes' stopwaitsecs and startsecs ({slowest} s) by at least {} s",
                    humantime::format_duration(settings.wait_timeout),
                    WAIT_MARGIN.as_secs()
                ),
            );
        }
    }
    let restart_log = v.resolve(&raw.restart_log.path);
    let pooltool = v.pooltool(&raw.pooltool, &restart_log);
    let pool_chain = raw
        .nodes
        .first()
        .and_then(|node| node.chain)
        .unwrap_or(raw.node_defaults.chain);
    let leadership = v.leadership(&raw.leadership, pool_chain);
    if raw.pooltool.enabled && pool_chain != ChainName::Jormungandr {
        v.error(
            "pooltool.enabled",
            format!(
                "PoolTool follows Jormungandr pools, and this pool runs {}",
                pool_chain.as_str()
            ),
        );
    }
    if raw.leadership.enabled && !raw.leadership.allow_insecure {
        v.secret_sent_over_tls_or_loopback(&raw, &nodes);
    }
    let reference_url = v.reference_url(&raw, pool_chain);
    let email = v.email(&raw.email, &restart_log);
    let api = v.api(&raw);
    let cluster = v.cluster(&raw, &nodes);
    let channels = v.channels(
        &raw.alerts.channels,
        &restart_log,
        cluster.as_ref().map(|cluster| cluster.name.as_str()),
    );
    let backup = v.backup(&raw);
    let mut nodes = nodes;
    if let Some(cluster) = &cluster {
        // This instance manages its own nodes; the others' are validated alike (one pool file
        // for every host) and known by name in `cluster.instances`.
        let local = &cluster.instances[&cluster.name];
        nodes.retain(|node| local.contains(&node.name));
    }
    let skipped = std::mem::take(&mut v.skipped);
    let notices = std::mem::take(&mut v.notices);
    let config = Config {
        path: path.to_path_buf(),
        supervisors,
        nodes,
        thresholds: thresholds_of(&raw.thresholds, pool_chain),
        pooltool,
        leadership,
        email,
        channels,
        restart_log,
        api,
        reference_url,
        cluster,
        backup,
    };
    (config, skipped, notices)
}

struct Validator<'a, 'b> {
    base: PathBuf,
    origins: &'a Origins<'b>,
    errors: &'a mut ConfigErrors,
    templates: HashMap<PathBuf, Option<Value>>,
    host_files: HostFiles,
    skipped: Vec<SkippedCheck>,
    notices: Vec<ConfigError>,
}

impl Validator<'_, '_> {
    fn notice(&mut self, key: &str, message: impl Into<String>) {
        let notice = self.origins.error(key, message);
        self.notices.push(notice);
    }

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

    /// Checks `duration` against the bounds of `key` ([`DURATION_BOUNDS`]).
    fn duration(&mut self, key: &str, duration: Duration) {
        let (least, most) = duration_bounds(key).unwrap_or((Duration::ZERO, Duration::MAX));
        if let Some(why) = out_of_bounds(duration, least, most) {
            self.error(key, why);
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
        self.duration(&format!("{prefix}.timeout"), raw.timeout);
        self.duration(&format!("{prefix}.wait_timeout"), raw.wait_timeout);
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
            ("bootstrap_timeout", t.bootstrap_timeout),
            ("boot_grace", t.boot_grace),
            ("restart_window", t.restart_window),
            ("all_down_stagger", t.all_down_stagger),
        ] {
            self.duration(&format!("thresholds.{key}"), duration);
        }
        if let Some(timeout) = t.hang_timeout {
            self.duration("thresholds.hang_timeout", timeout);
        }
        if let Some(timeout) = t.tip_timeout {
            self.duration("thresholds.tip_timeout", timeout);
        }
        // `api_failures × probe_timeout` stands for hang_timeout when it is unset: its bounds.
        if let (None, Some(failures @ 1..)) = (t.hang_timeout, t.api_failures)
            && let Some((least, most)) = duration_bounds("thresholds.hang_timeout")
            && let Some(why) = out_of_bounds(hang_timeout_of(t), least, most)
        {
            self.error(
                "thresholds.api_failures",
                format!("{failures} × probe_timeout as hang_timeout: {why}"),
            );
        }
        match (t.hang_timeout, t.api_failures) {
            (_, Some(0)) => self.error("thresholds.api_failures", "expected a positive number, got 0"),
            (Some(_), Some(_)) => self.notice(
                "thresholds.api_failures",
                "replaced by thresholds.hang_timeout, which is set: api_failures is not used",
            ),
            (None, Some(failures)) => self.notice(
                "thresholds.api_failures",
                format!(
                    "replaced by thresholds.hang_timeout (a node is hung when it has not answered for \
                     that long): read as hang_timeout = {failures} × probe_timeout = {}",
                    humantime::format_duration(hang_timeout_of(t))
                ),
            ),
            _ => {}
        }
        for (key, count) in [
            ("tip_diff_threshold", t.tip_diff_threshold.unwrap_or(1)),
            ("max_restarts", u64::from(t.max_restarts)),
        ] {
            if count == 0 {
                self.error(
                    &format!("thresholds.{key}"),
                    "expected a positive number, got 0",
                );
            }
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
            let chain = node.chain.unwrap_or(defaults.chain);
            if let Some(first) = raw.nodes.first()
                && first.chain.unwrap_or(defaults.chain) != chain
            {
                self.error(
                    &key("chain"),
                    format!(
                        "{:?} differs from nodes[0]'s {:?}: one pool, one chain per configuration \
                         (set chain in [node_defaults])",
                        chain.as_str(),
                        first.chain.unwrap_or(defaults.chain).as_str()
                    ),
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
                None => node.binary.clone().unwrap_or_else(|| {
                    // The documented default binary is the chain's node program.
                    if defaults.binary == Path::new(ChainName::Jormungandr.default_binary()) {
                        PathBuf::from(chain.default_binary())
                    } else {
                        defaults.binary.clone()
                    }
                }),
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
            if chain != ChainName::Jormungandr {
                let log_dir = defaults
                    .log_dir
                    .as_ref()
                    .map(|dir| self.resolve(dir))
                    .unwrap_or_else(|| node_dir.clone());
                let Some(chain_settings) =
                    self.other_chain(chain, raw, node, &prefix, &supervisor, &nodes)
                else {
                    continue;
                };
                nodes.push(NodeSettings {
                    name: node.name.clone(),
                    program,
                    supervisor,
                    binary,
                    version,
                    chain: chain_settings,
                    args: node.args.clone().unwrap_or_else(|| defaults.args.clone()),
                    startsecs: defaults.startsecs,
                    stopwaitsecs: defaults.stopwaitsecs,
                    log_file: log_dir.join(format!("{}.log", node.name)),
                    data_dir: node.data_dir.as_ref().map(|dir| self.resolve(dir)),
                    node_dir,
                });
                continue;
            }
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
                other.supervisor == supervisor && same_port(other.chain.api_url(), &rest_url)
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
                data_dir: node.data_dir.as_ref().map(|dir| self.resolve(dir)),
                node_dir,
            });
        }
        nodes
    }

    /// The settings of a nodeos or cardano node (`chain` is not Jormungandr); `None` after an
    /// error.
    fn other_chain(
        &mut self,
        chain: ChainName,
        raw: &RawConfig,
        node: &RawNode,
        prefix: &str,
        supervisor: &str,
        nodes: &[NodeSettings],
    ) -> Option<ChainSettings> {
        let key = |field: &str| format!("{prefix}.{field}");
        let jormungandr_only = [
            ("template", node.template.is_some()),
            ("overrides", !node.overrides.is_empty()),
            (
                "default_trusted_peers",
                node.default_trusted_peers.is_some(),
            ),
            ("config_path", node.config_path.is_some()),
        ];
        for (field, set) in jormungandr_only {
            if set {
                self.error(
                    &key(field),
                    format!(
                        "a Jormungandr setting: nodekeeper generates no config file for {}",
                        chain.as_str()
                    ),
                );
            }
        }
        let leadership = raw.leadership.enabled;
        let (url_key, url) = match chain {
            ChainName::Nodeos => {
                if node.metrics_url.is_some() || node.credentials.is_some() {
                    self.error(&key("metrics_url"), "a cardano setting, not nodeos's");
                }
                let Some(text) = &node.rest_url else {
                    self.error(
                        &key("rest_url"),
                        "required for nodeos: its HTTP API (http-server-address), e.g. http://127.0.0.1:8888",
                    );
                    return None;
                };
                (key("rest_url"), text.clone())
            }
            _ => {
                if node.rest_url.is_some() {
                    self.error(
                        &key("rest_url"),
                        "a nodeos setting: cardano-node is read at metrics_url",
                    );
                }
                (
                    key("metrics_url"),
                    node.metrics_url.clone().unwrap_or_else(|| {
                        crate::chain::cardano::settings::DEFAULT_METRICS_URL.to_string()
                    }),
                )
            }
        };
        let url = match parse_rest_url(&url) {
            Ok(url) => url,
            Err(why) => {
                self.error(&url_key, why);
                return None;
            }
        };
        if let Some(other) = nodes
            .iter()
            .find(|other| other.supervisor == supervisor && same_port(other.chain.api_url(), &url))
        {
            self.error(
                &url_key,
                format!(
                    "port {} is also used by node {:?}",
                    url.port_or_known_default().unwrap_or(0),
                    other.name
                ),
            );
        }
        Some(match chain {
            ChainName::Nodeos => ChainSettings::Nodeos(crate::chain::nodeos::Settings::new(
                url,
                raw.leadership.producer.clone().filter(|_| leadership),
            )),
            _ => {
                let credentials =
                    node.credentials
                        .as_ref()
                        .map(|c| crate::chain::cardano::Credentials {
                            kes: self.resolve(&c.kes),
                            vrf: self.resolve(&c.vrf),
                            opcert: self.resolve(&c.opcert),
                        });
                if let Some(why) = another_host(raw, supervisor, &url) {
                    // Its credential paths are on that host: nodekeeper can neither place the
                    // pool's files there nor remove them, so it never forges through nodekeeper.
                    if credentials.is_some() || leadership {
                        self.error(
                            &key("credentials"),
                            format!(
                                "node {:?} runs on another host ({why}): nodekeeper cannot place \
                                 or remove its credential files there, so it is refused as a \
                                 forging candidate; give it a loopback address if it runs on this \
                                 host, else manage it from its own host or leave it out of this \
                                 pool (forging across hosts is not supported)",
                                node.name
                            ),
                        );
                    }
                } else if leadership && credentials.is_none() {
                    self.error(
                        &key("credentials"),
                        "required with leadership: { kes = PATH, vrf = PATH, opcert = PATH }, the paths the node was started with",
                    );
                }
                let l = &raw.leadership;
                let pool = match (&l.credentials_dir, &l.schedule_file, &l.genesis_file) {
                    (Some(dir), Some(schedule), Some(genesis)) if leadership => {
                        Some(crate::chain::cardano::Pool {
                            credentials_dir: self.resolve(dir),
                            schedule_file: self.resolve(schedule),
                            genesis_file: self.resolve(genesis),
                        })
                    }
                    _ => None,
                };
                ChainSettings::Cardano(crate::chain::cardano::Settings {
                    metrics_url: url,
                    credentials,
                    pool,
                    // With leadership or without: the tip's time is judged whenever it is known.
                    genesis_file: l.genesis_file.as_ref().map(|path| self.resolve(path)),
                })
            }
        })
    }

    fn url(&mut self, key: &str, text: &str) {
        let shown = crate::http::redact_url(text);
        match reqwest::Url::parse(text) {
            Ok(url) if has_credentials(&url) => self.error(key, credentials_refused(&shown)),
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {}
            Ok(_) => self.error(
                key,
                format!("{shown:?}: expected an http:// or https:// URL"),
            ),
            Err(e) => self.error(
                key,
                format!("{shown:?}: expected an http:// or https:// URL ({e})"),
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
            ("send_slots_after", raw.send_slots_after),
        ] {
            self.duration(&format!("pooltool.{key}"), duration);
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
            reference_max_lead: raw.reference_max_lead,
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
            user_id: raw.user_id.clone().map(Secret::new),
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

    fn leadership(&mut self, raw: &RawLeadership, chain: ChainName) -> LeadershipSettings {
        let settings = LeadershipSettings {
            enabled: raw.enabled,
            secret_file: raw.secret_file.as_ref().map(|path| self.resolve(path)),
            switch_margin: raw.switch_margin,
            slot_window: raw.slot_window,
            schedule_refresh_min_gap: raw.schedule_refresh_min_gap,
            state_file: self.resolve(&raw.state_file),
            kes_alert_periods: raw
                .kes_alert_periods
                .unwrap_or(crate::chain::cardano::DEFAULT_KES_ALERT_PERIODS),
        };
        if let Some(periods) = raw.kes_alert_periods
            && periods > MAX_KES_ALERT_PERIODS
        {
            self.error(
                "leadership.kes_alert_periods",
                format!(
                    "{periods}: expected 0 (no alert) to {MAX_KES_ALERT_PERIODS} KES periods \
                     (mainnet's certificates last 62)"
                ),
            );
        }
        self.duration(
            "leadership.schedule_refresh_min_gap",
            raw.schedule_refresh_min_gap,
        );
        if settings.slot_window == 0 {
            self.error(
                "leadership.slot_window",
                "expected a positive number of slots, got 0",
            );
        }
        let other_chains = [
            ("producer", raw.producer.is_some(), ChainName::Nodeos),
            (
                "credentials_dir",
                raw.credentials_dir.is_some(),
                ChainName::Cardano,
            ),
            (
                "schedule_file",
                raw.schedule_file.is_some(),
                ChainName::Cardano,
            ),
            (
                "genesis_file",
                raw.genesis_file.is_some(),
                ChainName::Cardano,
            ),
            (
                "kes_alert_periods",
                raw.kes_alert_periods.is_some(),
                ChainName::Cardano,
            ),
            (
                "secret_file",
                raw.secret_file.is_some(),
                ChainName::Jormungandr,
            ),
        ];
        for (field, set, owner) in other_chains {
            if set && owner != chain {
                self.error(
                    &format!("leadership.{field}"),
                    format!(
                        "a {} setting, and this pool runs {}",
                        owner.as_str(),
                        chain.as_str()
                    ),
                );
            }
        }
        if settings.enabled && chain == ChainName::Nodeos {
            match &raw.producer {
                None => self.error(
                    "leadership.producer",
                    "required for nodeos when leadership.enabled is true: our producer account",
                ),
                Some(name) if !is_antelope_name(name) => self.error(
                    "leadership.producer",
                    format!("{name:?}: expected an account name: 1 to 12 of a-z, 1-5 and '.', not ending in '.'"),
                ),
                Some(_) => {}
            }
        }
        if settings.enabled && chain == ChainName::Cardano {
            self.cardano_pool_files(raw);
        } else if chain == ChainName::Cardano
            && let Some(path) = &raw.genesis_file
        {
            // Without leadership the genesis still dates each node's tip (stale by age): checked
            // the same way.
            self.pool_file("genesis_file", path, raw.kes_alert_periods);
        }
        if settings.enabled && chain == ChainName::Jormungandr {
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

    /// cardano leadership: the pool's credentials directory and its three files, the schedule
    /// and the genesis files, read and checked (errors name the file and key, never content).
    fn cardano_pool_files(&mut self, raw: &RawLeadership) {
        match &raw.credentials_dir {
            None => self.error(
                "leadership.credentials_dir",
                "required for cardano when leadership.enabled is true: where nodekeeper keeps the pool's kes.skey, vrf.skey and node.opcert",
            ),
            Some(dir) => {
                let dir = self.resolve(dir);
                if self.checks_host_file("leadership.credentials_dir", &dir) {
                    let missing: Vec<&str> = ["kes.skey", "vrf.skey", "node.opcert"]
                        .into_iter()
                        .filter(|name| !dir.join(name).is_file())
                        .collect();
                    if !missing.is_empty() {
                        self.error(
                            "leadership.credentials_dir",
                            format!("{}: missing {}", dir.display(), missing.join(", ")),
                        );
                    }
                }
            }
        }
        for (field, path) in [
            ("schedule_file", &raw.schedule_file),
            ("genesis_file", &raw.genesis_file),
        ] {
            let Some(path) = path else {
                self.error(
                    &format!("leadership.{field}"),
                    "required for cardano when leadership.enabled is true",
                );
                continue;
            };
            self.pool_file(field, path, raw.kes_alert_periods);
        }
    }

    /// `[leadership] field` (`genesis_file` or `schedule_file`) read and parsed, unless it is a
    /// host file skipped; a problem names the file and key, never content.
    fn pool_file(&mut self, field: &str, path: &Path, kes_alert_periods: Option<u64>) {
        use crate::chain::cardano::genesis::{Genesis, parse_schedule};
        let key = format!("leadership.{field}");
        let path = self.resolve(path);
        if !self.checks_host_file(&key, &path) {
            return;
        }
        let read = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| {
                let checked = if field == "genesis_file" {
                    Genesis::parse(&text).and_then(|genesis| {
                        kes_alert_fits(kes_alert_periods, genesis.max_kes_evolutions)
                    })
                } else {
                    parse_schedule(&text).map(|_| ())
                };
                checked.map_err(|e| format!("{}: {e}", path.display()))
            });
        if let Err(why) = read {
            self.error(&key, why);
        }
    }

    /// `reference_url`: nodeos only; a node's API base, `https://` unless its host is loopback
    /// or `reference_allow_insecure`.
    fn reference_url(&mut self, raw: &RawConfig, chain: ChainName) -> Option<reqwest::Url> {
        let text = raw.reference_url.as_ref()?;
        if chain != ChainName::Nodeos {
            let instead = match chain {
                ChainName::Jormungandr => "PoolTool's majority max ([pooltool] enabled = true)",
                _ => "the slot of now from leadership.genesis_file",
            };
            self.error(
                "reference_url",
                format!(
                    "a nodeos setting, and this pool runs {}: its reference is {instead}",
                    chain.as_str()
                ),
            );
            return None;
        }
        let url = match parse_rest_url(text) {
            Ok(url) => url,
            Err(why) => {
                self.error("reference_url", why);
                return None;
            }
        };
        if url.scheme() == "http"
            && !url.host_str().is_some_and(crate::http::is_loopback_host)
            && !raw.reference_allow_insecure
        {
            self.error(
                "reference_url",
                format!(
                    "{:?} is plain http to a host that is not loopback: a forged answer would make \
                     nodes look behind; use https or a loopback address, or set \
                     reference_allow_insecure = true",
                    crate::http::redact_url(url.as_str())
                ),
            );
        }
        Some(url)
    }

    /// With leadership enabled, the node secret is POSTed to each node's REST API: a plain
    /// `http://` URL is refused unless its host is loopback (or `leadership.allow_insecure`).
    fn secret_sent_over_tls_or_loopback(&mut self, raw: &RawConfig, nodes: &[NodeSettings]) {
        for node in nodes {
            let Some(settings) = node.jormungandr() else {
                continue;
            };
            let url = &settings.rest_url;
            if url.scheme() != "http" || url.host_str().is_some_and(crate::http::is_loopback_host) {
                continue;
            }
            let Some(index) = raw.nodes.iter().position(|raw| raw.name == node.name) else {
                continue;
            };
            let key = if raw.nodes[index].rest_url.is_some() {
                format!("nodes[{index}].rest_url")
            } else {
                format!("nodes[{index}].overrides.rest.listen")
            };
            self.error(
                &key,
                format!(
                    "{:?} is plain http to a host that is not loopback, and leadership sends the \
                     node secret there: use https or a loopback address, or set \
                     leadership.allow_insecure = true",
                    crate::http::redact_url(url.as_str())
                ),
            );
        }
    }

    fn email(&mut self, raw: &RawEmail, restart_log: &Path) -> EmailSettings {
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
        self.duration("email.dedupe_window", raw.dedupe_window);
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
        // Trust and the wire: the pin, what it goes with, and a password in clear.
        let tls_pin_sha256 = raw.tls_pin_sha256.as_deref().and_then(|text| {
            crate::alert::Fingerprint::parse(text)
                .map_err(|e| self.error("email.tls_pin_sha256", e))
                .ok()
        });
        if let Some((key, message)) = crate::alert::settings::tls_conflict(
            raw.security,
            raw.tls_pin_sha256.is_some(),
            raw.tls_ca_file.is_some(),
        ) {
            self.error(&format!("email.{key}"), message);
        }
        if let Some(message) = crate::alert::settings::insecure_auth(
            raw.security,
            password.is_some(),
            raw.smtp_server.as_deref(),
            raw.allow_insecure,
        ) {
            self.error("email.security", message);
        }
        let outbox = Some(match &raw.outbox {
            Some(path) => self.resolve(path),
            None => crate::alert::outbox::default_path(restart_log),
        });
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
            tls_pin_sha256,
            allow_insecure: raw.allow_insecure,
            outbox,
            templates,
            dedupe_window: raw.dedupe_window,
        }
    }

    /// `[[alerts.channels]]`: each channel's name, kind, URL (https unless loopback), the kind's
    /// own keys (secrets from files), filters, trust and templates; errors name
    /// `alerts.channels[N].KEY` and never show a secret nor a URL's path.
    fn channels(
        &mut self,
        raw: &[RawChannel],
        restart_log: &Path,
        instance: Option<&str>,
    ) -> Vec<ChannelSettings> {
        let mut names = std::collections::BTreeSet::new();
        let mut channels = Vec::new();
        for (index, channel) in raw.iter().enumerate() {
            let prefix = format!("alerts.channels[{index}]");
            if let Some(settings) = self.channel(&prefix, channel, restart_log, instance) {
                if !names.insert(settings.name.clone()) {
                    self.error(
                        &format!("{prefix}.name"),
                        format!("{:?}: another channel has this name", settings.name),
                    );
                    continue;
                }
                channels.push(settings);
            }
        }
        channels
    }

    fn channel(
        &mut self,
        prefix: &str,
        raw: &RawChannel,
        restart_log: &Path,
        instance: Option<&str>,
    ) -> Option<ChannelSettings> {
        use crate::alert::channel::{Kind, KindName, TELEGRAM_API, shown_url};
        let key = |name: &str| format!("{prefix}.{name}");
        let mut ok = true;
        let name = raw.name.trim().to_string();
        if name.is_empty() {
            self.error(&key("name"), "required: the channel's name");
            ok = false;
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.error(
                &key("name"),
                format!("{name:?}: expected letters, digits, `-` and `_` only"),
            );
            ok = false;
        } else if name == "email" {
            self.error(
                &key("name"),
                "\"email\" is the [email] channel's name: choose another",
            );
            ok = false;
        }
        let Some(kind_name) = raw.kind else {
            self.error(
                &key("kind"),
                "required: \"webhook\", \"slack\", \"discord\", \"telegram\" or \"ntfy\"",
            );
            return None;
        };
        // Keys of another kind: a mistake worth naming.
        let owned: [(&str, bool, KindName); 5] = [
            (
                "hmac_secret_file",
                raw.hmac_secret_file.is_some(),
                KindName::Webhook,
            ),
            (
                "bot_token_file",
                raw.bot_token_file.is_some(),
                KindName::Telegram,
            ),
            ("chat_id", raw.chat_id.is_some(), KindName::Telegram),
            ("topic", raw.topic.is_some(), KindName::Ntfy),
            ("token_file", raw.token_file.is_some(), KindName::Ntfy),
        ];
        for (field, set, owner) in owned {
            if set && owner != kind_name {
                self.error(
                    &key(field),
                    format!(
                        "a key of kind \"{}\", and this channel is \"{}\"",
                        owner.as_str(),
                        kind_name.as_str()
                    ),
                );
                ok = false;
            }
        }
        let url_text = match (&raw.url, kind_name) {
            (Some(url), _) => Some(url.clone()),
            (None, KindName::Telegram) => Some(TELEGRAM_API.to_string()),
            (None, _) => {
                self.error(&key("url"), "required: where to POST the alerts");
                None
            }
        };
        let mut url = url_text.and_then(|text| self.channel_url(&key("url"), &text));
        let kind = match kind_name {
            KindName::Webhook => Kind::Webhook {
                hmac_secret: raw
                    .hmac_secret_file
                    .as_ref()
                    .and_then(|path| self.read_secret_file(&key("hmac_secret_file"), path)),
            },
            KindName::Slack => Kind::Slack,
            KindName::Discord => Kind::Discord,
            KindName::Telegram => {
                let bot_token = match &raw.bot_token_file {
                    Some(path) => self.read_secret_file(&key("bot_token_file"), path),
                    None => {
                        self.error(&key("bot_token_file"), "required for kind \"telegram\"");
                        None
                    }
                };
                let chat_id = match &raw.chat_id {
                    Some(RawChatId::Number(number)) => Some(Value::from(*number)),
                    Some(RawChatId::Text(text)) if !text.trim().is_empty() => {
                        Some(Value::from(text.trim()))
                    }
                    _ => {
                        self.error(
                            &key("chat_id"),
                            "required for kind \"telegram\": the chat's number or @name",
                        );
                        None
                    }
                };
                match (bot_token, chat_id) {
                    (Some(bot_token), Some(chat_id)) => Kind::Telegram { bot_token, chat_id },
                    // With the host files skipped, the token is not read: a placeholder.
                    (None, Some(chat_id)) if raw.bot_token_file.is_some() => Kind::Telegram {
                        bot_token: Secret::new(""),
                        chat_id,
                    },
                    _ => {
                        ok = false;
                        Kind::Slack
                    }
                }
            }
            KindName::Ntfy => {
                let topic = raw.topic.as_deref().map(str::trim);
                if let Some(base) = url.as_mut() {
                    let path_topic = base.path().trim_matches('/').to_string();
                    match (topic, path_topic.is_empty()) {
                        (Some(topic), true) => {
                            if topic.is_empty()
                                || !topic
                                    .chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                            {
                                self.error(
                                    &key("topic"),
                                    "expected letters, digits, `-` and `_` only",
                                );
                                ok = false;
                            } else {
                                base.set_path(&format!("/{topic}"));
                            }
                        }
                        (Some(_), false) => {
                            self.error(
                                &key("topic"),
                                "the URL names a topic already: give it in one place",
                            );
                            ok = false;
                        }
                        (None, true) => {
                            self.error(
                                &key("topic"),
                                "required for kind \"ntfy\" unless the URL ends with the topic",
                            );
                            ok = false;
                        }
                        (None, false) => {}
                    }
                }
                Kind::Ntfy {
                    token: raw
                        .token_file
                        .as_ref()
                        .and_then(|path| self.read_secret_file(&key("token_file"), path)),
                }
            }
        };
        let mut events = std::collections::BTreeSet::new();
        for (position, event) in raw.events.iter().enumerate() {
            if crate::alert::routing::EVENT_NAMES.contains(&event.as_str()) {
                events.insert(event.clone());
            } else {
                self.error(
                    &format!("{prefix}.events[{position}]"),
                    format!(
                        "{event:?}: unknown event; expected one of: {}",
                        crate::alert::routing::EVENT_NAMES.join(", ")
                    ),
                );
            }
        }
        let (least, most) = duration_bounds("email.dedupe_window").unwrap_or_default();
        if let Some(why) = out_of_bounds(raw.dedupe_window, least, most) {
            self.error(&key("dedupe_window"), why);
        }
        let tls_ca_file = raw.tls_ca_file.as_ref().map(|path| self.resolve(path));
        if let Some(path) = &tls_ca_file
            && self.checks_host_file(&key("tls_ca_file"), path)
            && let Err(e) = std::fs::read(path)
        {
            self.error(
                &key("tls_ca_file"),
                format!("cannot read {}: {e}", path.display()),
            );
        }
        let tls_pin_sha256 = raw.tls_pin_sha256.as_deref().and_then(|text| {
            crate::alert::Fingerprint::parse(text)
                .map_err(|e| self.error(&key("tls_pin_sha256"), e))
                .ok()
        });
        if raw.tls_pin_sha256.is_some() && raw.tls_ca_file.is_some() {
            self.error(
                &key("tls_pin_sha256"),
                "either a pinned certificate or tls_ca_file, not both",
            );
        }
        let templates = TemplateSettings {
            dir: raw.templates_dir.as_ref().map(|path| self.resolve(path)),
            inline: BTreeMap::new(),
        };
        if let Some(dir) = &templates.dir
            && self.checks_host_file(&key("templates_dir"), dir)
        {
            for problem in crate::alert::template_problems(&templates) {
                self.error(
                    &key("templates_dir"),
                    format!("{}: {}", problem.key, problem.message),
                );
            }
        }
        let outbox = Some(match &raw.outbox {
            Some(path) => self.resolve(path),
            None => restart_log
                .parent()
                .unwrap_or(Path::new("."))
                .join(crate::alert::channel::outbox_file_name(&name)),
        });
        let url = url?;
        if !ok {
            return None;
        }
        tracing::debug!("alerts: channel {name} posts to {}", shown_url(&url));
        Some(ChannelSettings {
            name,
            kind,
            url,
            filter: crate::alert::Filter {
                events,
                min_severity: raw.min_severity,
            },
            dedupe_window: raw.dedupe_window,
            outbox,
            templates,
            tls_ca_file,
            tls_pin_sha256,
            instance: instance.map(str::to_string),
        })
    }

    /// A channel's URL: http(s) with a host, no credentials, `https://` unless the host is
    /// loopback. Messages show the scheme and host only.
    fn channel_url(&mut self, key: &str, text: &str) -> Option<reqwest::Url> {
        let url = match reqwest::Url::parse(text.trim()) {
            Ok(url) => url,
            Err(e) => {
                self.error(key, format!("expected an http:// or https:// URL ({e})"));
                return None;
            }
        };
        let shown = crate::alert::channel::shown_url(&url);
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            self.error(key, format!("{shown}: expected an http:// or https:// URL"));
            return None;
        }
        if has_credentials(&url) {
            self.error(key, format!("{shown}: no user or password in the URL"));
            return None;
        }
        if url.scheme() == "http" && !url.host_str().is_some_and(crate::http::is_loopback_host) {
            self.error(
                key,
                format!(
                    "{shown} is plain http to a host that is not loopback: use https or a \
                     loopback address"
                ),
            );
            return None;
        }
        Some(url)
    }

    /// `[cluster]` and `nodes[].instance`: every node names its instance once `[cluster]` is set,
    /// and none does without it.
    fn cluster(&mut self, raw: &RawConfig, nodes: &[NodeSettings]) -> Option<ClusterSettings> {
        let Some(cluster) = &raw.cluster else {
            if let Some(index) = raw.nodes.iter().position(|node| node.instance.is_some()) {
                self.error(
                    &format!("nodes[{index}].instance"),
                    "an instance needs [cluster] (the etcd the instances share)",
                );
            }
            return None;
        };
        let valid_name = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let mut instances: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut ok = true;
        for (index, node) in raw.nodes.iter().enumerate() {
            let key = format!("nodes[{index}].instance");
            match &node.instance {
                None => {
                    self.error(
                        &key,
                        format!(
                            "missing: with [cluster], every node names the instance that manages it \
                             (node {:?})",
                            node.name
                        ),
                    );
                    ok = false;
                }
                Some(instance) if !valid_name(instance) => {
                    self.error(
                        &key,
                        format!("{instance:?}: expected letters, digits, '-', '_' or '.' only"),
                    );
                    ok = false;
                }
                Some(instance) => {
                    if nodes.iter().any(|n| n.name == node.name) {
                        instances
                            .entry(instance.clone())
                            .or_default()
                            .push(node.name.clone());
                    }
                }
            }
        }
        if cluster.name.is_empty() {
            self.error(
                "cluster.name",
                "missing: this instance's name (one of nodes[].instance; usually set per host with \
                 NODEKEEPER__CLUSTER__NAME)",
            );
            ok = false;
        } else if ok && !instances.contains_key(&cluster.name) {
            self.error(
                "cluster.name",
                format!(
                    "{:?} manages no node: nodes[].instance names {}",
                    cluster.name,
                    instances
                        .keys()
                        .map(|name| format!("{name:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            ok = false;
        }
        if cluster.etcd.is_empty() {
            self.error(
                "cluster.etcd",
                "expected at least one etcd endpoint, e.g. [\"https://10.0.0.1:2379\"]",
            );
            ok = false;
        }
        for (index, endpoint) in cluster.etcd.iter().enumerate() {
            let key = format!("cluster.etcd[{index}]");
            match reqwest::Url::parse(endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                    let loopback = url.host_str().is_some_and(crate::http::is_loopback_host);
                    if url.scheme() == "http" && !loopback && !cluster.allow_insecure {
                        self.error(
                            &key,
                            format!(
                                "{}: plain http to a host that is not loopback (the election and \
                                 any password in clear); use https:// with cluster.ca_file, or set \
                                 cluster.allow_insecure = true",
                                crate::http::redact_url(endpoint)
                            ),
                        );
                        ok = false;
                    }
                }
                _ => {
                    self.error(
                        &key,
                        format!(
                            "{}: expected http(s)://HOST:PORT",
                            crate::http::redact_url(endpoint)
                        ),
                    );
                    ok = false;
                }
            }
        }
        let ttl = cluster.lease_ttl;
        if ttl.subsec_nanos() != 0 || ttl < Duration::from_secs(2) || ttl > Duration::from_secs(300)
        {
            self.error(
                "cluster.lease_ttl",
                format!(
                    "{}: expected whole seconds from 2 s to 5 min (etcd leases count seconds)",
                    humantime::format_duration(ttl)
                ),
            );
            ok = false;
        }
        if !cluster.prefix.starts_with('/') || cluster.prefix.ends_with('/') {
            self.error(
                "cluster.prefix",
                format!(
                    "{:?}: expected a key prefix that starts with '/' and does not end with one",
                    cluster.prefix
                ),
            );
            ok = false;
        }
        let mut file = |v: &mut Self, key: &str, path: &Option<PathBuf>| -> Option<PathBuf> {
            let path = v.resolve(path.as_ref()?);
            if v.checks_host_file(key, &path) && !path.is_file() {
                v.error(key, format!("{}: no such file", path.display()));
                ok = false;
            }
            Some(path)
        };
        let ca_file = file(self, "cluster.ca_file", &cluster.ca_file);
        let cert = file(self, "cluster.cert_file", &cluster.cert_file);
        let key = file(self, "cluster.key_file", &cluster.key_file);
        let client_cert = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                self.error(
                    "cluster.key_file",
                    "missing: cluster.cert_file needs its key",
                );
                ok = false;
                None
            }
            (None, Some(_)) => {
                self.error(
                    "cluster.cert_file",
                    "missing: cluster.key_file needs its certificate",
                );
                ok = false;
                None
            }
        };
        let credentials = match (&cluster.user, &cluster.password_file) {
            (Some(user), Some(file)) => self
                .read_secret_file("cluster.password_file", file)
                .map(|password| (user.clone(), password)),
            (None, None) => None,
            (Some(_), None) => {
                self.error(
                    "cluster.password_file",
                    "missing: cluster.user needs a password",
                );
                ok = false;
                None
            }
            (None, Some(_)) => {
                self.error(
                    "cluster.user",
                    "missing: cluster.password_file needs a user",
                );
                ok = false;
                None
            }
        };
        ok.then(|| ClusterSettings {
            name: cluster.name.clone(),
            endpoints: cluster.etcd.clone(),
            ca_file,
            client_cert,
            credentials,
            lease_ttl: ttl,
            prefix: cluster.prefix.clone(),
            instances,
        })
    }

    /// `[backup]`: the target directory whenever the table is set (so with `every` or
    /// `auto_restore`), `keep` at least 1, durations in bounds, `node` a configured node with a
    /// `data_dir` (a node without one is otherwise simply no candidate).
    fn backup(&mut self, raw: &RawConfig) -> Option<BackupSettings> {
        let backup = raw.backup.as_ref()?;
        let dir = match &backup.dir {
            Some(dir) => Some(self.resolve(dir)),
            None => {
                let users: Vec<&str> = [
                    (backup.every.is_some(), "every"),
                    (backup.auto_restore, "auto_restore"),
                ]
                .into_iter()
                .filter_map(|(set, key)| set.then_some(key))
                .collect();
                let why = if users.is_empty() {
                    "[backup] is set".to_string()
                } else {
                    format!("backup.{} needs archives", users.join(" and backup."))
                };
                self.error(
                    "backup.dir",
                    format!("missing: the directory archives go to ({why})"),
                );
                None
            }
        };
        if backup.keep == 0 {
            self.error(
                "backup.keep",
                "expected at least 1 (the archives kept per node)",
            );
        }
        if let Some(every) = backup.every {
            self.duration("backup.every", every);
        }
        self.duration("backup.early_exit", backup.early_exit);
        self.duration("backup.keep_old_for", backup.keep_old_for);
        if let Some(name) = &backup.node {
            match raw.nodes.iter().find(|node| &node.name == name) {
                None => self.error(
                    "backup.node",
                    format!("{name:?} is not a configured node (nodes[].name)"),
                ),
                Some(node) if node.data_dir.is_none() => self.error(
                    "backup.node",
                    format!("{name:?} has no data_dir: set nodes[].data_dir to back it up"),
                ),
                Some(_) => {}
            }
        }
        Some(BackupSettings {
            dir: dir?,
            keep: backup.keep,
            keep_old_for: backup.keep_old_for,
            rules: BackupRules {
                every: backup.every,
                node: backup.node.clone(),
                min_in_sync: usize::try_from(backup.min_in_sync).unwrap_or(usize::MAX),
                auto_restore: backup.auto_restore,
                early_exit: backup.early_exit,
            },
        })
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
        if !crate::http::is_loopback_host(&listen.ip().to_string()) {
            // Reachable from other hosts: only when asked for, and behind a strong token. (A
            // token from a file not read here, `HostFiles::Skip`, cannot be measured.)
            let missing = token.is_none() && api.token_file.is_none();
            let short = token
                .as_ref()
                .is_some_and(|token| token.expose().chars().count() < MIN_PUBLIC_TOKEN_CHARS);
            if !api.allow_public {
                self.error(
                    "api.listen",
                    format!(
                        "{listen} is not a loopback address: an API reachable from other hosts \
                         needs api.allow_public = true and a token of at least \
                         {MIN_PUBLIC_TOKEN_CHARS} characters (api.token_file)"
                    ),
                );
            } else if missing || short {
                let key = if api.token.is_some() && api.token_file.is_none() {
                    "api.token"
                } else {
                    "api.token_file"
                };
                self.error(
                    key,
                    format!(
                        "{} a public API (api.listen = {listen}) needs a token of at least \
                         {MIN_PUBLIC_TOKEN_CHARS} characters",
                        if missing { "missing:" } else { "too short:" }
                    ),
                );
            }
        }
        ApiSettings { listen, token }
    }
}

/// Why a cardano node runs on another host, if it does: its supervisord is reached over TCP at
/// a host that is not loopback, or its `metrics_url` is (no DNS: a name other than `localhost` is
/// another host).
fn another_host(raw: &RawConfig, supervisor: &str, metrics_url: &reqwest::Url) -> Option<String> {
    let supervisor_url = if supervisor == DEFAULT_SUPERVISOR {
        Some(&raw.supervisor.url)
    } else {
        raw.supervisors.get(supervisor).map(|section| &section.url)
    };
    if let Some(text) = supervisor_url
        && let Ok(crate::supervisor::Endpoint::Http(url)) = crate::supervisor::Endpoint::parse(text)
        && url
            .host_str()
            .is_some_and(|host| !crate::http::is_loopback_host(host))
    {
        return Some(format!(
            "its supervisord {} is not on loopback",
            crate::http::redact_url(url.as_str())
        ));
    }
    metrics_url
        .host_str()
        .is_some_and(|host| !crate::http::is_loopback_host(host))
        .then(|| {
            format!(
                "its metrics_url {} is not on loopback",
                crate::http::redact_url(metrics_url.as_str())
            )
        })
}

/// The largest `leadership.kes_alert_periods` accepted.
const MAX_KES_ALERT_PERIODS: u64 = 1000;

/// A configured KES alert threshold above the genesis's `maxKESEvolutions` would alert about
/// every certificate from the day it is made.
fn kes_alert_fits(
    configured: Option<u64>,
    max_evolutions: u64,
) -> Result<(), crate::chain::cardano::genesis::FileError> {
    match configured {
        Some(periods) if periods > max_evolutions => {
            Err(crate::chain::cardano::genesis::FileError::new(format!(
                "leadership.kes_alert_periods = {periods} is more than its maxKESEvolutions \
                 ({max_evolutions}): every certificate would be alerted about"
            )))
        }
        _ => Ok(()),
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

/// Whether `url` carries a user name or a password.
fn has_credentials(url: &reqwest::Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// The message refusing a URL with credentials (`shown` already without them): they would reach
/// logs, `config show` and the status.
fn credentials_refused(shown: &str) -> String {
    format!("{shown:?}: credentials do not belong in the URL")
}

fn parse_rest_url(text: &str) -> Result<reqwest::Url, String> {
    let shown = crate::http::redact_url(text);
    match reqwest::Url::parse(text) {
        Ok(url) if has_credentials(&url) => Err(credentials_refused(&shown)),
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Ok(url),
        Ok(_) => Err(format!(
            "{shown:?}: expected an http:// URL such as http://127.0.0.1:3100/api"
        )),
        Err(e) => Err(format!(
            "{shown:?}: expected an http:// URL such as http://127.0.0.1:3100/api ({e})"
        )),
    }
}

/// An Antelope account name: 1 to 12 characters of `a-z`, `1-5` and `.`, not ending in `.`.
fn is_antelope_name(name: &str) -> bool {
    (1..=12).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || ('1'..='5').contains(&c) || c == '.')
        && !name.ends_with('.')
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::load::load_raw_text;

    fn thresholds(text: &str) -> (RawThresholds, Vec<String>, Vec<String>) {
        let path = Path::new("/nowhere/nodekeeper.toml");
        let env = crate::config::Env::new();
        let (raw, mut errors) = load_raw_text(text, config::FileFormat::Toml, path, &env);
        let origins = Origins::new(path, &env);
        let (_, _, notices) = validate(raw.clone(), path, &origins, &mut errors, HostFiles::Skip);
        let errors: Vec<String> = errors
            .0
            .iter()
            .filter(|e| e.key.starts_with("thresholds"))
            .map(ToString::to_string)
            .collect();
        let notices = notices.iter().map(ToString::to_string).collect();
        (raw.thresholds, errors, notices)
    }

    #[test]
    fn hang_timeout_has_a_default_and_api_failures_is_read_as_probe_timeouts() {
        let (raw, errors, notices) = thresholds("[thresholds]\n");
        assert_eq!(hang_timeout_of(&raw), DEFAULT_HANG_TIMEOUT);
        assert!(
            errors.is_empty() && notices.is_empty(),
            "{errors:?} {notices:?}"
        );

        let (raw, errors, notices) =
            thresholds("[thresholds]\napi_failures = 3\nprobe_timeout = \"2s\"\n");
        assert_eq!(hang_timeout_of(&raw), Duration::from_secs(6));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].contains("thresholds.api_failures")
                && notices[0].contains("hang_timeout = 3 × probe_timeout = 6s"),
            "{notices:?}"
        );

        let (raw, _, notices) =
            thresholds("[thresholds]\napi_failures = 3\nhang_timeout = \"5s\"\n");
        assert_eq!(hang_timeout_of(&raw), Duration::from_secs(5));
        assert!(notices[0].contains("not used"), "{notices:?}");

        let (_, errors, _) = thresholds("[thresholds]\napi_failures = 0\nhang_timeout = 0\n");
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    /// Every problem of `text` (a whole file, host files skipped) as `key: message`.
    fn problems(text: &str) -> Vec<String> {
        let path = Path::new("/nowhere/nodekeeper.toml");
        let env = crate::config::Env::new();
        let (raw, mut errors) = load_raw_text(text, config::FileFormat::Toml, path, &env);
        let origins = Origins::new(path, &env);
        validate(raw, path, &origins, &mut errors, HostFiles::Skip);
        errors
            .0
            .iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect()
    }

    #[test]
    fn every_duration_key_is_bounded_and_an_absurd_value_is_named() {
        for (key, least, most) in DURATION_BOUNDS {
            let (section, field) = key.split_once('.').unwrap();
            let mut values = vec![
                (i64::MAX.to_string(), "is too long: expected at most"),
                (
                    "\"100000000h\"".to_string(),
                    "is too long: expected at most",
                ),
                (
                    format!(
                        "\"{}\"",
                        humantime::format_duration(*most + Duration::from_secs(1))
                    ),
                    "is too long",
                ),
            ];
            if *least > Duration::ZERO {
                values.push(("0".to_string(), "expected a"));
            }
            for (value, why) in values {
                let text = format!("[{section}]\n{field} = {value}\n");
                let found = problems(&text);
                assert!(
                    found
                        .iter()
                        .any(|p| p.starts_with(&format!("{key}: ")) && p.contains(why)),
                    "{key} = {value}: {found:#?}"
                );
            }
            // The bound itself is accepted.
            let text = format!(
                "[{section}]\n{field} = \"{}\"\n",
                humantime::format_duration(*most)
            );
            assert!(
                !problems(&text)
                    .iter()
                    .any(|p| p.starts_with(&format!("{key}: "))),
                "{key} at its bound: {:#?}",
                problems(&text)
            );
        }
        // [supervisors.NAME] has the bounds of [supervisor].
        let found =
            problems("[supervisors.far]\nurl = \"http://10.0.0.2:9001\"\ntimeout = \"1000h\"\n");
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("supervisors.far.timeout: ") && p.contains("at most 10m")),
            "{found:#?}"
        );
        // hang_timeout derived from api_failures is bounded too.
        let found = problems("[thresholds]\napi_failures = 4000000000\nprobe_timeout = \"5m\"\n");
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("thresholds.api_failures: ") && p.contains("at most 1h")),
            "{found:#?}"
        );
        assert!(
            problems("[thresholds]\ntick_interval = \"50ms\"\n").contains(
                &"thresholds.tick_interval: expected at least 100ms, got 50ms".to_string()
            )
        );
    }

    #[test]
    fn the_bounds_table_knows_every_duration_key() {
        // Every value of the defaults that reads as a duration is a duration key; each must have
        // bounds (a new key without them fails here).
        fn walk(prefix: &str, value: &serde_json::Value, found: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, value) in map {
                        let key = if prefix.is_empty() {
                            key.clone()
                        } else {
                            format!("{prefix}.{key}")
                        };
                        walk(&key, value, found);
                    }
                }
                serde_json::Value::String(text) if humantime::parse_duration(text).is_ok() => {
                    found.push(prefix.to_string());
                }
                _ => {}
            }
        }
        let mut raw = RawConfig::default();
        raw.thresholds.hang_timeout = Some(DEFAULT_HANG_TIMEOUT);
        raw.backup = Some(super::super::raw::RawBackup {
            every: Some(Duration::from_secs(3600)),
            ..Default::default()
        });
        let mut keys = Vec::new();
        walk("", &serde_json::to_value(&raw).unwrap(), &mut keys);
        assert!(keys.len() >= 15, "{keys:?}");
        for key in keys {
            assert!(
                duration_bounds(&key).is_some(),
                "{key} has no bounds in DURATION_BOUNDS"
            );
        }
    }

    /// Every problem of a configuration of two nodes (REST at `rest1` and `rest2`) plus `extra`.
    fn node_problems(rest1: &str, rest2: &str, extra: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("template.json"),
            r#"{"rest": {"listen": "127.0.0.1:3101"}}"#,
        )
        .unwrap();
        let path = dir.path().join("nodekeeper.toml");
        let text = format!(
            "[node_defaults]\ntemplate = \"template.json\"\nnode_dir = \"nodes\"\n\
             [[nodes]]\nname = \"node1\"\n{rest1}\n[[nodes]]\nname = \"node2\"\n{rest2}\n{extra}"
        );
        let env = crate::config::Env::new();
        let (raw, mut errors) = load_raw_text(&text, config::FileFormat::Toml, &path, &env);
        let origins = Origins::new(&path, &env);
        validate(raw, &path, &origins, &mut errors, HostFiles::Skip);
        errors
            .0
            .iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect()
    }

    /// A configuration of `text` in a directory holding `files`; the loaded config (when valid)
    /// and the problems, `key: message`.
    fn chain_config(text: &str, files: &[(&str, &str)]) -> (Option<Config>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        let path = dir.path().join("nodekeeper.toml");
        let env = crate::config::Env::new();
        let (raw, mut errors) = load_raw_text(text, config::FileFormat::Toml, &path, &env);
        let origins = Origins::new(&path, &env);
        let (config, _, _) = validate(raw, &path, &origins, &mut errors, HostFiles::Check);
        let problems: Vec<String> = errors
            .0
            .iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect();
        (problems.is_empty().then_some(config), problems)
    }

    const NODEOS: &str = "[node_defaults]\nchain = \"nodeos\"\nnode_dir = \"nodes\"\n\
        [leadership]\nenabled = true\nproducer = \"nkpool\"\n\
        [[nodes]]\nname = \"bp1\"\nrest_url = \"http://127.0.0.1:8888\"\n\
        [[nodes]]\nname = \"bp2\"\nrest_url = \"http://127.0.0.1:8889\"\n";

    #[test]
    fn a_nodeos_pool_needs_its_api_and_its_producer_and_no_template() {
        let (config, problems) = chain_config(NODEOS, &[]);
        assert!(problems.is_empty(), "{problems:?}");
        let config = config.unwrap();
        let bp1 = &config.nodes[0];
        assert_eq!(bp1.binary, Path::new("nodeos"));
        assert_eq!(bp1.chain.name(), "nodeos");
        assert_eq!(bp1.chain.api_url().as_str(), "http://127.0.0.1:8888/");
        assert_eq!(bp1.chain.program_args(&[]), ["--pause-on-startup"]);
        for (from, to, expected) in [
            (
                "rest_url = \"http://127.0.0.1:8889\"\n",
                "",
                "nodes[1].rest_url: required for nodeos",
            ),
            (
                "producer = \"nkpool\"",
                "producer = \"NK-pool\"",
                "leadership.producer: \"NK-pool\": expected an account name",
            ),
            (
                "8889",
                "8888",
                "nodes[1].rest_url: port 8888 is also used by node \"bp1\"",
            ),
            (
                "name = \"bp2\"\n",
                "name = \"bp2\"\nchain = \"cardano\"\n",
                "nodes[1].chain: \"cardano\" differs from nodes[0]'s \"nodeos\"",
            ),
            (
                "name = \"bp2\"\n",
                "name = \"bp2\"\ntemplate = \"t.json\"\n",
                "nodes[1].template: a Jormungandr setting",
            ),
            (
                "producer = \"nkpool\"",
                "producer = \"nkpool\"\nsecret_file = \"s.yaml\"",
                "leadership.secret_file: a jormungandr setting, and this pool runs nodeos",
            ),
            (
                "[leadership]",
                "[pooltool]\nenabled = true\n[leadership]",
                "pooltool.enabled: PoolTool follows Jormungandr pools, and this pool runs nodeos",
            ),
        ] {
            let (_, problems) = chain_config(&NODEOS.replacen(from, to, 1), &[]);
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{expected}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_cardano_pool_reads_metrics_and_checks_the_pools_files() {
        let text = "[node_defaults]\nchain = \"cardano\"\nnode_dir = \"nodes\"\n\
            [leadership]\nenabled = true\ncredentials_dir = \"pool\"\n\
            schedule_file = \"schedule.json\"\ngenesis_file = \"genesis.json\"\n\
            [[nodes]]\nname = \"bp1\"\n\
            credentials = { kes = \"n1/kes.skey\", vrf = \"n1/vrf.skey\", opcert = \"n1/node.opcert\" }\n";
        let genesis = r#"{"systemStart": "2023-11-14T22:13:20Z", "slotLength": 1,
            "epochLength": 600, "slotsPerKESPeriod": 129600, "maxKESEvolutions": 62}"#;
        let files = [
            ("pool/kes.skey", "{}"),
            ("pool/vrf.skey", "{}"),
            ("pool/node.opcert", "{}"),
            ("schedule.json", "[]"),
            ("genesis.json", genesis),
        ];
        let (config, problems) = chain_config(text, &files);
        assert!(problems.is_empty(), "{problems:?}");
        let config = config.unwrap();
        let node = &config.nodes[0];
        assert_eq!(node.binary, Path::new("cardano-node"));
        assert_eq!(
            node.chain.api_url().as_str(),
            "http://127.0.0.1:12798/metrics"
        );
        let args = node
            .chain
            .program_args(&["--port".into(), "3001".into()])
            .join(" ");
        assert!(
            args.starts_with("run --port 3001 --shelley-kes-key ")
                && args.ends_with("node.opcert --start-as-non-producing-node"),
            "{args}"
        );
        // A missing pool file, a bad genesis, a node without its credential paths.
        let (_, problems) = chain_config(text, &files[1..]);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("leadership.credentials_dir: ")
                    && p.ends_with("missing kes.skey")),
            "{problems:?}"
        );
        let mut bad = files;
        bad[4] = ("genesis.json", r#"{"systemStart": "soon"}"#);
        let (_, problems) = chain_config(text, &bad);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("leadership.genesis_file: ") && p.contains("systemStart")),
            "{problems:?}"
        );
        let without = text.replace(
            "credentials = { kes = \"n1/kes.skey\", vrf = \"n1/vrf.skey\", opcert = \"n1/node.opcert\" }\n",
            "",
        );
        let (_, problems) = chain_config(&without, &files);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("nodes[0].credentials: required with leadership")),
            "{problems:?}"
        );
    }

    const CARDANO: &str = "[node_defaults]\nchain = \"cardano\"\nnode_dir = \"nodes\"\n\
        [leadership]\nenabled = true\ncredentials_dir = \"pool\"\n\
        schedule_file = \"schedule.json\"\ngenesis_file = \"genesis.json\"\n\
        [[nodes]]\nname = \"bp1\"\n\
        credentials = { kes = \"n1/kes.skey\", vrf = \"n1/vrf.skey\", opcert = \"n1/node.opcert\" }\n";

    const CARDANO_FILES: [(&str, &str); 5] = [
        ("pool/kes.skey", "{}"),
        ("pool/vrf.skey", "{}"),
        ("pool/node.opcert", "{}"),
        ("schedule.json", "[]"),
        (
            "genesis.json",
            r#"{"systemStart": "2023-11-14T22:13:20Z", "slotLength": 1,
            "epochLength": 600, "slotsPerKESPeriod": 129600, "maxKESEvolutions": 62}"#,
        ),
    ];

    #[test]
    fn the_kes_alert_threshold_defaults_to_14_and_is_checked() {
        let (config, problems) = chain_config(CARDANO, &CARDANO_FILES);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.unwrap().leadership.kes_alert_periods, 14);
        let set = CARDANO.replace("[leadership]\n", "[leadership]\nkes_alert_periods = 30\n");
        let (config, problems) = chain_config(&set, &CARDANO_FILES);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.unwrap().leadership.kes_alert_periods, 30);
        for (value, expected) in [
            ("63", "leadership.genesis_file: "),
            (
                "1001",
                "leadership.kes_alert_periods: 1001: expected 0 (no alert) to 1000",
            ),
        ] {
            let text = CARDANO.replace(
                "[leadership]\n",
                &format!("[leadership]\nkes_alert_periods = {value}\n"),
            );
            let (_, problems) = chain_config(&text, &CARDANO_FILES);
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{value}: {problems:?}"
            );
        }
        let text = CARDANO.replace("[leadership]\n", "[leadership]\nkes_alert_periods = 63\n");
        let (_, problems) = chain_config(&text, &CARDANO_FILES);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("more than its maxKESEvolutions (62)")),
            "{problems:?}"
        );
        let nodeos = NODEOS.replace("[leadership]\n", "[leadership]\nkes_alert_periods = 7\n");
        let (_, problems) = chain_config(&nodeos, &[]);
        assert!(
            problems.iter().any(|p| p.starts_with(
                "leadership.kes_alert_periods: a cardano setting, and this pool runs nodeos"
            )),
            "{problems:?}"
        );
    }

    #[test]
    fn a_cardano_node_on_another_host_is_refused_as_a_forging_candidate() {
        let refused = |problems: &[String], why: &str| {
            problems.iter().any(|p| {
                p.starts_with("nodes[0].credentials: node \"bp1\" runs on another host (")
                    && p.contains(why)
                    && p.contains("cannot place or remove its credential files there")
            })
        };
        // Its supervisord is reached at another host.
        let far_supervisor =
            format!("[supervisor]\nurl = \"http://192.0.2.9:9001/RPC2\"\n{CARDANO}");
        let (_, problems) = chain_config(&far_supervisor, &CARDANO_FILES);
        assert!(
            refused(
                &problems,
                "its supervisord http://192.0.2.9:9001/RPC2 is not on loopback"
            ),
            "{problems:?}"
        );
        // Its metrics are read at another host.
        let far_metrics = CARDANO.replace(
            "name = \"bp1\"\n",
            "name = \"bp1\"\nmetrics_url = \"http://bp1.example.org:12798/metrics\"\n",
        );
        let (_, problems) = chain_config(&far_metrics, &CARDANO_FILES);
        assert!(
            refused(
                &problems,
                "its metrics_url http://bp1.example.org:12798/metrics is not on loopback"
            ),
            "{problems:?}"
        );
        // Without credentials, leadership still needs them: the same refusal, not "required".
        let without = far_metrics.replace(
            "credentials = { kes = \"n1/kes.skey\", vrf = \"n1/vrf.skey\", opcert = \"n1/node.opcert\" }\n",
            "",
        );
        let (_, problems) = chain_config(&without, &CARDANO_FILES);
        assert!(refused(&problems, "metrics_url"), "{problems:?}");
        assert!(
            !problems
                .iter()
                .any(|p| p.contains("required with leadership"))
        );
        // Watched only (no leadership, no credentials): accepted; on loopback: accepted.
        let watched = without.replace("enabled = true\n", "enabled = false\n");
        let (_, problems) = chain_config(&watched, &CARDANO_FILES);
        assert!(problems.is_empty(), "{problems:?}");
        let unix = format!("[supervisor]\nurl = \"unix:///run/supervisor.sock\"\n{CARDANO}");
        let (_, problems) = chain_config(&unix, &CARDANO_FILES);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn leadership_refuses_plain_http_to_another_host_unless_allowed() {
        let leadership = "[leadership]\nenabled = true\nsecret_file = \"secret.yaml\"\n";
        let far = "rest_url = \"http://10.0.0.2:3101/api\"";
        let near = "overrides = { rest = { listen = \"192.0.2.7:3102\" } }";
        let found = node_problems(far, near, leadership);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].starts_with("nodes[0].rest_url: \"http://10.0.0.2:3101/api\" is plain http")
                && found[0].contains("leadership.allow_insecure = true"),
            "{found:#?}"
        );
        assert!(
            found[1].starts_with("nodes[1].overrides.rest.listen: \"http://192.0.2.7:3102/api\""),
            "{found:#?}"
        );
        // Allowed explicitly, or leadership off, or https, or loopback: no problem.
        let allowed = format!("{leadership}allow_insecure = true\n");
        assert_eq!(node_problems(far, near, &allowed), Vec::<String>::new());
        assert_eq!(node_problems(far, near, ""), Vec::<String>::new());
        let safe = [
            "rest_url = \"https://10.0.0.2:3101/api\"",
            "rest_url = \"http://localhost:3102/api\"",
        ];
        assert_eq!(
            node_problems(safe[0], safe[1], leadership),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_public_api_needs_allow_public_and_a_long_token() {
        let api = |extra: &str| {
            node_problems(
                "",
                "rest_url = \"http://127.0.0.1:3102/api\"",
                &format!("[api]\nlisten = \"0.0.0.0:9180\"\n{extra}"),
            )
        };
        let long = "token = \"0123456789abcdef0123456789abcdef\"\n";
        let found = api(long);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("api.listen: 0.0.0.0:9180 is not a loopback address")
                && found[0].contains("api.allow_public = true"),
            "{found:#?}"
        );
        assert_eq!(
            api(&format!("allow_public = true\n{long}")),
            Vec::<String>::new()
        );
        let found = api("allow_public = true\ntoken = \"0123456789abcdef0123456789abcde\"\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("api.token: too short: a public API")
                && found[0].contains("at least 32 characters")
                && !found[0].contains("0123456789"),
            "{found:#?}"
        );
        let found = api("allow_public = true\n");
        assert!(
            found[0].starts_with("api.token_file: missing:"),
            "{found:#?}"
        );
        // Loopback needs neither.
        assert_eq!(
            node_problems(
                "",
                "rest_url = \"http://127.0.0.1:3102/api\"",
                "[api]\nlisten = \"[::1]:9180\"\n"
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_waiting_call_gets_a_margin_over_stopwaitsecs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("template.json"),
            r#"{"rest": {"listen": "127.0.0.1:3101"}}"#,
        )
        .unwrap();
        let path = dir.path().join("nodekeeper.toml");
        let env = crate::config::Env::new();
        let problems = |wait: &str| {
            let text = format!(
                "[supervisor]\nwait_timeout = \"{wait}\"\n[node_defaults]\nstopwaitsecs = 120\n\
                 template = \"template.json\"\nnode_dir = \"nodes\"\n[[nodes]]\nname = \"node1\"\n"
            );
            let (raw, mut errors) = load_raw_text(&text, config::FileFormat::Toml, &path, &env);
            let origins = Origins::new(&path, &env);
            validate(raw, &path, &origins, &mut errors, HostFiles::Skip);
            errors
                .0
                .iter()
                .filter(|e| e.key == "supervisor.wait_timeout")
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        let refused = problems("2m 2s");
        assert!(
            refused.len() == 1 && refused[0].contains("by at least 5 s"),
            "{refused:?}"
        );
        assert!(problems("2m 5s").is_empty());
    }

    /// `[email]` of `section`, validated: its settings and the `email.*` problems.
    fn email(section: &str) -> (EmailSettings, Vec<String>) {
        let path = Path::new("/nowhere/nodekeeper.toml");
        let env = crate::config::Env::new();
        let text =
            format!("[restart_log]\npath = \"/var/lib/nk/restarts.csv\"\n[email]\n{section}");
        let (raw, mut errors) = load_raw_text(&text, config::FileFormat::Toml, path, &env);
        let origins = Origins::new(path, &env);
        let (config, _, _) = validate(raw, path, &origins, &mut errors, HostFiles::Skip);
        let errors = errors
            .0
            .iter()
            .filter(|e| e.key.starts_with("email"))
            .map(ToString::to_string)
            .collect();
        (config.email, errors)
    }

    #[test]
    fn a_password_in_clear_to_a_remote_host_names_allow_insecure_not_the_password() {
        let remote = "smtp_server = \"relay.example.org\"\nsecurity = \"plain\"\npassword = \"hunter2-pw\"\n";
        let (_, errors) = email(remote);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("/nowhere/nodekeeper.toml")
                && errors[0].contains("email.security")
                && errors[0].contains("email.allow_insecure")
                && !errors[0].contains("hunter2"),
            "{errors:?}"
        );
        let (settings, errors) = email(&format!("{remote}allow_insecure = true\n"));
        assert!(errors.is_empty() && settings.allow_insecure, "{errors:?}");
        let (_, errors) = email(&remote.replace("relay.example.org", "127.0.0.1"));
        assert!(errors.is_empty(), "{errors:?}");
        let (_, errors) = email(&remote.replace("plain", "starttls"));
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn a_pin_is_read_in_any_of_its_spellings_and_goes_with_tls_only() {
        let hex = "3f1c5e0b8a2d4e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
        let (settings, errors) = email(&format!(
            "tls_pin_sha256 = \"sha256 Fingerprint={}\"\n",
            hex.to_uppercase()
                .as_bytes()
                .chunks(2)
                .map(|p| std::str::from_utf8(p).unwrap())
                .collect::<Vec<_>>()
                .join(":")
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            settings.tls_pin_sha256,
            crate::alert::Fingerprint::parse(hex).ok()
        );
        let (_, errors) = email("tls_pin_sha256 = \"abc\"\n");
        assert!(
            errors.len() == 1
                && errors[0].contains("email.tls_pin_sha256")
                && errors[0].contains("64 hex digits"),
            "{errors:?}"
        );
        let (_, errors) = email(&format!(
            "tls_pin_sha256 = \"{hex}\"\ntls_ca_file = \"ca.pem\"\n"
        ));
        assert!(
            errors.len() == 1 && errors[0].contains("not both"),
            "{errors:?}"
        );
        let (_, errors) = email(&format!(
            "tls_pin_sha256 = \"{hex}\"\nsecurity = \"plain\"\n"
        ));
        assert!(
            errors.len() == 1 && errors[0].contains("not \"plain\""),
            "{errors:?}"
        );
    }

    #[test]
    fn the_outbox_is_beside_the_restart_log_unless_configured() {
        let (settings, _) = email("");
        assert_eq!(
            settings.outbox,
            Some(PathBuf::from("/var/lib/nk/alert-outbox.json"))
        );
        let (settings, _) = email("outbox = \"spool/outbox.json\"\n");
        assert_eq!(
            settings.outbox,
            Some(PathBuf::from("/nowhere/spool/outbox.json"))
        );
    }

    /// The problems of `text` as printed (`origin: key: message`).
    /// `[[alerts.channels]]` of `tables` (with secret files in a temporary directory, the
    /// config beside them), validated: the channels and every `alerts` problem as printed.
    fn channels(tables: &str) -> (Vec<ChannelSettings>, Vec<String>) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hmac.key"), "hmac-hunter2\n").expect("write");
        std::fs::write(dir.path().join("bot.token"), "123:bot-hunter2\n").expect("write");
        let path = dir.path().join("nodekeeper.toml");
        let env = crate::config::Env::new();
        let text = format!("[restart_log]\npath = \"/var/lib/nk/restarts.csv\"\n{tables}");
        let (raw, mut errors) = load_raw_text(&text, config::FileFormat::Toml, &path, &env);
        let origins = Origins::new(&path, &env);
        let (config, _, _) = validate(raw, &path, &origins, &mut errors, HostFiles::Check);
        let shown = path.display().to_string();
        let errors = errors
            .0
            .iter()
            .filter(|e| e.key.starts_with("alerts"))
            .map(|e| e.to_string().replace(&shown, "FILE"))
            .collect();
        (config.channels, errors)
    }

    #[test]
    fn channels_resolve_their_kind_secrets_filters_and_outbox() {
        let (channels, errors) = channels(
            "[[alerts.channels]]\nname = \"hook\"\nkind = \"webhook\"\n\
             url = \"https://hooks.example/in\"\nhmac_secret_file = \"hmac.key\"\n\
             events = [\"node_held\", \"node_restarted\"]\nmin_severity = \"warning\"\n\
             [[alerts.channels]]\nname = \"tg\"\nkind = \"telegram\"\n\
             bot_token_file = \"bot.token\"\nchat_id = -1001\n\
             [[alerts.channels]]\nname = \"push\"\nkind = \"ntfy\"\n\
             url = \"http://127.0.0.1:8080\"\ntopic = \"pool\"\n",
        );
        assert_eq!(errors, Vec::<String>::new());
        let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["hook", "tg", "push"]);
        let hook = &channels[0];
        assert!(
            matches!(&hook.kind, crate::alert::channel::Kind::Webhook { hmac_secret: Some(s) } if s.expose() == "hmac-hunter2")
        );
        assert_eq!(hook.filter.min_severity, crate::alert::Severity::Warning);
        assert_eq!(hook.filter.events.len(), 2);
        assert_eq!(
            hook.outbox.as_deref(),
            Some(Path::new("/var/lib/nk/alert-outbox-hook.json"))
        );
        assert_eq!(channels[1].url.as_str(), "https://api.telegram.org/");
        assert_eq!(channels[2].url.as_str(), "http://127.0.0.1:8080/pool");
        let shown = format!("{channels:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn channel_mistakes_name_file_and_key_never_a_secret_or_a_url_path() {
        let (channels, errors) = channels(
            "[[alerts.channels]]\nname = \"slack\"\nkind = \"slack\"\n\
             url = \"http://hooks.slack.com/services/T0/B0/SECRETPATH\"\n\
             [[alerts.channels]]\nname = \"tg\"\nkind = \"telegram\"\n\
             [[alerts.channels]]\nname = \"x\"\nkind = \"discord\"\n\
             url = \"https://discord.com/api/webhooks/1/t\"\nevents = [\"node_crashed\"]\n\
             topic = \"t\"\n\
             [[alerts.channels]]\nname = \"x\"\nkind = \"ntfy\"\nurl = \"https://ntfy.sh\"\n",
        );
        assert!(channels.is_empty(), "{channels:?}");
        let expected = [
            "FILE: alerts.channels[0].url: http://hooks.slack.com/… is plain http",
            "alerts.channels[1].bot_token_file: required for kind \"telegram\"",
            "alerts.channels[1].chat_id: required",
            "alerts.channels[2].topic: a key of kind \"ntfy\"",
            "alerts.channels[2].events[0]: \"node_crashed\": unknown event",
            "alerts.channels[3].topic: required for kind \"ntfy\"",
        ];
        for part in expected {
            assert!(
                errors.iter().any(|e| e.contains(part)),
                "{part:?} not in {errors:#?}"
            );
        }
        assert!(
            errors.iter().all(|e| !e.contains("SECRETPATH")),
            "{errors:#?}"
        );
    }

    fn printed_problems(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodekeeper.toml");
        let env = crate::config::Env::new();
        let (raw, mut errors) = load_raw_text(text, config::FileFormat::Toml, &path, &env);
        let origins = Origins::new(&path, &env);
        let _ = validate(raw, &path, &origins, &mut errors, HostFiles::Check);
        let shown = path.display().to_string();
        errors
            .0
            .iter()
            .map(|e| e.to_string().replace(&shown, "FILE"))
            .collect()
    }

    const CARDANO_RELAYS: &str = "[node_defaults]\nchain = \"cardano\"\nnode_dir = \"nodes\"\n\
        [[nodes]]\nname = \"relay1\"\n";

    #[test]
    fn tip_thresholds_default_per_chain_unless_set() {
        let jormungandr = Thresholds::default();
        assert_eq!(
            (jormungandr.tip_timeout, jormungandr.tip_diff_threshold),
            (Duration::from_secs(90), 7)
        );
        let (config, problems) = chain_config(NODEOS, &[]);
        assert!(problems.is_empty(), "{problems:?}");
        let t = config.unwrap().thresholds;
        assert_eq!(
            (t.tip_timeout, t.tip_diff_threshold),
            (Duration::from_secs(30), 20)
        );
        let (config, problems) = chain_config(CARDANO_RELAYS, &[]);
        assert!(problems.is_empty(), "{problems:?}");
        let t = config.unwrap().thresholds;
        assert_eq!(
            (t.tip_timeout, t.tip_diff_threshold),
            (Duration::from_secs(300), 5)
        );
        // What the operator sets wins, and is checked.
        let set = format!("{NODEOS}[thresholds]\ntip_timeout = \"45s\"\ntip_diff_threshold = 9\n");
        let (config, problems) = chain_config(&set, &[]);
        assert!(problems.is_empty(), "{problems:?}");
        let t = config.unwrap().thresholds;
        assert_eq!(
            (t.tip_timeout, t.tip_diff_threshold),
            (Duration::from_secs(45), 9)
        );
        let zero = format!("{NODEOS}[thresholds]\ntip_timeout = 0\ntip_diff_threshold = 0\n");
        let (_, problems) = chain_config(&zero, &[]);
        assert!(
            problems
                .contains(&"thresholds.tip_timeout: expected a positive duration, got 0".into())
                && problems.contains(
                    &"thresholds.tip_diff_threshold: expected a positive number, got 0".into()
                ),
            "{problems:?}"
        );
    }

    #[test]
    fn a_cardano_genesis_dates_the_tips_without_leadership_too() {
        let genesis = r#"{"systemStart": "2023-11-14T22:13:20Z", "slotLength": 1,
            "epochLength": 600, "slotsPerKESPeriod": 129600, "maxKESEvolutions": 62}"#;
        let text = format!("[leadership]\ngenesis_file = \"genesis.json\"\n{CARDANO_RELAYS}");
        let (config, problems) = chain_config(&text, &[("genesis.json", genesis)]);
        assert!(problems.is_empty(), "{problems:?}");
        let config = config.unwrap();
        let ChainSettings::Cardano(settings) = &config.nodes[0].chain else {
            panic!("a cardano node");
        };
        assert!(settings.pool.is_none());
        assert!(
            settings
                .genesis_file
                .as_ref()
                .is_some_and(|path| path.ends_with("genesis.json")),
            "{settings:?}"
        );
        // Checked as with leadership: a bad one names the key and the file.
        let (_, problems) = chain_config(&text, &[("genesis.json", "{\"systemStart\": 5}")]);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("leadership.genesis_file: ") && p.contains("systemStart")),
            "{problems:?}"
        );
    }

    #[test]
    fn reference_url_is_a_nodeos_key_over_https_or_loopback() {
        let with = |url: &str, text: &str| format!("reference_url = \"{url}\"\n{text}");
        let (config, problems) = chain_config(&with("https://api.example.com", NODEOS), &[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            config.unwrap().reference_url.unwrap().as_str(),
            "https://api.example.com/"
        );
        let (config, problems) = chain_config(&with("http://127.0.0.1:8890", NODEOS), &[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(config.unwrap().reference_url.is_some());
        // Plain http to another host: refused unless allowed.
        let far = with("http://10.0.0.9:8888", NODEOS);
        let problems = printed_problems(&far);
        assert!(
            problems.len() == 1
                && problems[0]
                    .starts_with("FILE: reference_url: \"http://10.0.0.9:8888/\" is plain http")
                && problems[0].contains("reference_allow_insecure = true"),
            "{problems:?}"
        );
        let allowed = format!("reference_allow_insecure = true\n{far}");
        let (_, problems) = chain_config(&allowed, &[]);
        assert!(problems.is_empty(), "{problems:?}");
        // Other chains: refused, naming the file, the line and the key.
        let problems = printed_problems(&with("https://api.example.com", CARDANO_RELAYS));
        assert_eq!(
            problems,
            [
                "FILE: reference_url: a nodeos setting, and this pool runs cardano: its reference \
              is the slot of now from leadership.genesis_file"
            ]
        );
        let jormungandr = "[[nodes]]\nname = \"j1\"\nrest_url = \"http://127.0.0.1:3101/api\"\n";
        let problems = printed_problems(&with("https://api.example.com", jormungandr));
        assert!(
            problems.iter().any(|p| p.starts_with(
                "FILE: reference_url: a nodeos setting, and this pool runs jormungandr"
            )),
            "{problems:?}"
        );
    }

    fn cluster_of(text: &str) -> (Option<ClusterSettings>, Vec<String>, Vec<String>) {
        let path = Path::new("/nowhere/nodekeeper.toml");
        let env = crate::config::Env::new();
        let (raw, mut errors) = load_raw_text(text, config::FileFormat::Toml, path, &env);
        let origins = Origins::new(path, &env);
        let (config, _, _) = validate(raw, path, &origins, &mut errors, HostFiles::Skip);
        let errors = errors
            .0
            .iter()
            .filter(|e| e.key.starts_with("cluster") || e.key.ends_with(".instance"))
            .map(ToString::to_string)
            .collect();
        let nodes = config.nodes.iter().map(|n| n.name.clone()).collect();
        (config.cluster, errors, nodes)
    }

    const POOL: &str = "[node_defaults]\nchain = \"nodeos\"\n\
        [[nodes]]\nname = \"a1\"\nrest_url = \"http://127.0.0.1:8881\"\ninstance = \"a\"\n\
        [[nodes]]\nname = \"b1\"\nrest_url = \"http://127.0.0.1:8882\"\ninstance = \"b\"\n";

    #[test]
    fn a_cluster_instance_manages_its_own_nodes_and_knows_every_instance() {
        let text = format!("{POOL}[cluster]\nname = \"b\"\netcd = [\"http://127.0.0.1:2379\"]\n");
        let (cluster, errors, nodes) = cluster_of(&text);
        assert!(errors.is_empty(), "{errors:?}");
        let cluster = cluster.expect("cluster settings");
        assert_eq!(nodes, ["b1"]);
        assert_eq!(cluster.lease_ttl, Duration::from_secs(10));
        assert_eq!(cluster.instance_of("a1"), Some("a"));
        assert_eq!(cluster.election_key(), "/nodekeeper/election");
    }

    #[test]
    fn cluster_mistakes_name_their_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[cluster]\nname = \"c\"\netcd = [\"http://127.0.0.1:2379\"]\n",
                "cluster.name",
            ),
            ("[cluster]\nname = \"a\"\n", "cluster.etcd"),
            (
                "[cluster]\nname = \"a\"\netcd = [\"http://10.0.0.1:2379\"]\n",
                "cluster.etcd[0]",
            ),
            (
                "[cluster]\nname = \"a\"\netcd = [\"http://127.0.0.1:2379\"]\nlease_ttl = \"1500ms\"\n",
                "cluster.lease_ttl",
            ),
            (
                "[cluster]\nname = \"a\"\netcd = [\"http://127.0.0.1:2379\"]\nuser = \"root\"\n",
                "cluster.password_file",
            ),
        ];
        for (section, key) in cases {
            let (cluster, errors, _) = cluster_of(&format!("{POOL}{section}"));
            assert!(cluster.is_none(), "{section}");
            assert!(
                errors.iter().any(|e| e.contains(&format!("{key}:"))),
                "{section}: {errors:?}"
            );
        }
        // An instance without [cluster], and a node without an instance with it.
        let (_, errors, _) = cluster_of(POOL);
        assert!(
            errors.iter().any(|e| e.contains("nodes[0].instance")),
            "{errors:?}"
        );
        let missing = POOL.replacen("instance = \"b\"\n", "", 1)
            + "[cluster]\nname = \"a\"\netcd = [\"http://127.0.0.1:2379\"]\n";
        let (_, errors, _) = cluster_of(&missing);
        assert!(
            errors.iter().any(|e| e.contains("nodes[1].instance")),
            "{errors:?}"
        );
    }

    /// `[backup]` and the nodes' data directories of a nodeos pool (`a1` with `data_dir = "d1"`,
    /// `b1` without) plus `extra`, and every `backup` problem.
    fn backup_of(extra: &str) -> (Option<BackupSettings>, Vec<String>, Vec<Option<PathBuf>>) {
        let text = format!(
            "[node_defaults]\nchain = \"nodeos\"\nnode_dir = \"/nodes\"\n\
             [[nodes]]\nname = \"a1\"\nrest_url = \"http://127.0.0.1:8881\"\ndata_dir = \"d1\"\n\
             [[nodes]]\nname = \"b1\"\nrest_url = \"http://127.0.0.1:8882\"\n{extra}"
        );
        let path = Path::new("/nowhere/nodekeeper.toml");
        let env = crate::config::Env::new();
        let (raw, mut errors) = load_raw_text(&text, config::FileFormat::Toml, path, &env);
        let origins = Origins::new(path, &env);
        let (config, _, _) = validate(raw, path, &origins, &mut errors, HostFiles::Skip);
        let errors = errors
            .0
            .iter()
            .map(ToString::to_string)
            .map(|e| e.replace("/nowhere/nodekeeper.toml", "FILE"))
            .collect();
        let dirs = config.nodes.iter().map(|n| n.data_dir.clone()).collect();
        (config.backup, errors, dirs)
    }

    #[test]
    fn backup_resolves_its_defaults_and_paths_beside_the_file() {
        let (backup, errors, dirs) = backup_of("");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(backup, None);
        assert_eq!(dirs, [Some(PathBuf::from("/nowhere/d1")), None]);
        let (backup, errors, _) = backup_of("[backup]\ndir = \"archives\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            backup,
            Some(BackupSettings {
                dir: PathBuf::from("/nowhere/archives"),
                keep: 3,
                keep_old_for: Duration::from_secs(600),
                rules: BackupRules::default(),
            })
        );
        let (backup, errors, _) = backup_of(
            "[backup]\ndir = \"/srv/b\"\nkeep = 5\nevery = \"6h\"\nnode = \"a1\"\n\
             min_in_sync = 2\nauto_restore = true\nearly_exit = \"20s\"\nkeep_old_for = \"1h\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            backup,
            Some(BackupSettings {
                dir: PathBuf::from("/srv/b"),
                keep: 5,
                keep_old_for: Duration::from_secs(3600),
                rules: BackupRules {
                    every: Some(Duration::from_secs(6 * 3600)),
                    node: Some("a1".into()),
                    min_in_sync: 2,
                    auto_restore: true,
                    early_exit: Duration::from_secs(20),
                },
            })
        );
    }

    #[test]
    fn backup_mistakes_name_their_key() {
        let cases = [
            (
                "[backup]\nkeep = 2\n",
                "FILE: backup.dir: missing: the directory archives go to ([backup] is set)",
            ),
            (
                "[backup]\nevery = \"1d\"\nauto_restore = true\n",
                "FILE: backup.dir: missing: the directory archives go to (backup.every and \
                 backup.auto_restore needs archives)",
            ),
            (
                "[backup]\ndir = \"b\"\nkeep = 0\n",
                "FILE: backup.keep: expected at least 1",
            ),
            (
                "[backup]\ndir = \"b\"\nnode = \"c1\"\n",
                "FILE: backup.node: \"c1\" is not a configured node",
            ),
            (
                "[backup]\ndir = \"b\"\nnode = \"b1\"\n",
                "FILE: backup.node: \"b1\" has no data_dir",
            ),
            (
                "[backup]\ndir = \"b\"\nearly_exit = 0\n",
                "FILE: backup.early_exit: expected a positive duration",
            ),
            (
                "[backup]\ndir = \"b\"\nevery = \"1m\"\n",
                "FILE: backup.every: expected at least 5m, got 1m",
            ),
            (
                "[backup]\ndir = \"b\"\nkeeps = 2\n",
                "FILE: backup.keeps: unknown key",
            ),
        ];
        for (table, expected) in cases {
            let (_, errors, _) = backup_of(table);
            assert!(
                errors.len() == 1 && errors[0].starts_with(expected),
                "{table}: {errors:?}"
            );
        }
    }
}

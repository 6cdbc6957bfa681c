//! The validated configuration the rest of nodekeeper uses, and loading it from its source (a
//! file or jmanager's two files, with the environment): `validate` checks the values; host
//! readiness (files that exist only on a deployed host) is checked apart (`host_problems`).
//!
//! `Config` holds resolved settings only (every default applied, paths resolved, secrets read):
//! its own (`LeadershipSettings`, `NodeSettings`, `ApiSettings`) and those other modules own and
//! the configuration fills (`policy::Thresholds`, `supervisor::SupervisorSettings`,
//! `chain::ChainSettings`, `pooltool::PoolToolSettings`, `alert::EmailSettings`). The file's shape
//! stays in `raw`; `config show` reads it again with `load_raw_source`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, ConfigErrors};
use super::load::{Env, Origins, load_raw};
use super::raw::{ChainName, RawConfig, RawPoolTool, RawThresholds};
use super::validate::{thresholds_of, validate};
pub use crate::alert::ChannelSettings;
use crate::alert::{EmailSettings, Facts};
use crate::chain::ChainSettings;
use crate::chain::jormungandr;
pub use crate::policy::Thresholds;
pub use crate::policy::backup::BackupRules;
pub use crate::pooltool::{PoolToolSettings, SlotsVerification};
use crate::secret::Secret;
use crate::supervisor::SupervisorSettings;

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
    /// Its database directory, what a backup archives (`nodes[].data_dir`); `None`: never
    /// backed up.
    pub data_dir: Option<PathBuf>,
}

/// `[backup]`, checked: the archives' target and retention, and the rules' settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSettings {
    /// The target directory.
    pub dir: PathBuf,
    /// Archives kept per node (at least 1).
    pub keep: u32,
    /// How long a restored node must be in sync before its old data directory is removed.
    pub keep_old_for: std::time::Duration,
    /// What the backup rules apply (`policy::backup`).
    pub rules: BackupRules,
}

/// The API settings.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Bearer token of mutating endpoints; without one they are refused.
    pub token: Option<Secret>,
}

// The documented defaults are the file's (`raw`), so they are given here, where both are known.
impl Default for Thresholds {
    /// The documented defaults of `[thresholds]` (a Jormungandr pool's tip defaults).
    fn default() -> Thresholds {
        thresholds_of(&RawThresholds::default(), ChainName::default())
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
            reference_max_lead: raw.reference_max_lead,
            tip_url: raw.tip_url,
            tip_interval: raw.tip_interval,
            slots_url: raw.slots_url,
            send_slots_after: raw.send_slots_after,
            slots_verification: raw.slots_verification,
            gpg: raw.gpg,
            key_path: raw
                .key_path
                .unwrap_or_else(|| PathBuf::from("pooltool-keys")),
            user_id: raw.user_id.map(Secret::new),
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
    /// cardano: a node reporting fewer KES periods than this is alerted about (0: never).
    pub kes_alert_periods: u64,
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
    /// Alert channels beyond email (`[[alerts.channels]]`).
    pub channels: Vec<ChannelSettings>,
    /// The restart log path.
    pub restart_log: PathBuf,
    /// The HTTP API.
    pub api: ApiSettings,
    /// nodeos: the reference node's API base (`reference_url`), whose `get_info` head is the
    /// pool's reference tip.
    pub reference_url: Option<reqwest::Url>,
    /// `[cluster]`: this instance among several sharing etcd. Then `nodes` holds this instance's
    /// nodes only (every node of the file was validated; `cluster.instances` names them all).
    pub cluster: Option<crate::cluster::ClusterSettings>,
    /// `[backup]`: archives of node data directories; `None` when the table is absent.
    pub backup: Option<BackupSettings>,
}

impl NodeSettings {
    /// Its Jormungandr settings, when it is a Jormungandr node.
    pub fn jormungandr(&self) -> Option<&jormungandr::Settings> {
        match &self.chain {
            ChainSettings::Jormungandr(settings) => Some(settings),
            _ => None,
        }
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
        .for_chain(
            self.nodes
                .first()
                .map_or_else(Default::default, |node| node.chain.chain()),
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
    let (config, skipped, checked) = validate(raw, &path, &origins, &mut errors, host_files);
    let mut notices = notices;
    notices.extend(checked);
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

/// A copy of `raw` with every secret (passwords, the API token, PoolTool's user id) replaced by
/// `<redacted>` and every URL without its user name and password, for display.
pub fn redacted(raw: &RawConfig) -> RawConfig {
    let hide = |secret: &mut Option<String>| {
        if secret.is_some() {
            *secret = Some("<redacted>".into());
        }
    };
    let url = |url: &mut String| *url = crate::http::redact_url(url);
    let mut raw = raw.clone();
    hide(&mut raw.supervisor.password);
    url(&mut raw.supervisor.url);
    for section in raw.supervisors.values_mut() {
        hide(&mut section.password);
        url(&mut section.url);
    }
    for node in &mut raw.nodes {
        if let Some(rest_url) = &mut node.rest_url {
            url(rest_url);
        }
    }
    if let Some(reference_url) = &mut raw.reference_url {
        url(reference_url);
    }
    hide(&mut raw.email.password);
    hide(&mut raw.api.token);
    hide(&mut raw.pooltool.user_id);
    url(&mut raw.pooltool.status_url);
    url(&mut raw.pooltool.tip_url);
    url(&mut raw.pooltool.slots_url);
    // A Slack or Discord URL's path is its secret: the scheme and host only.
    for channel in &mut raw.alerts.channels {
        if let Some(text) = &mut channel.url {
            *text = match reqwest::Url::parse(text) {
                Ok(parsed) => crate::alert::channel::shown_url(&parsed),
                Err(_) => "<redacted>".into(),
            };
        }
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid configuration holding a secret in every place one can be written inline.
    const SECRETS: [&str; 5] = [
        "sv-hunter2",
        "mail-hunter2",
        "tok-hunter2",
        "uid-hunter2",
        "url-hunter2",
    ];

    #[test]
    fn debug_of_config_and_raw_and_config_show_hold_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("template.json"),
            r#"{"rest": {"listen": "127.0.0.1:3101"}}"#,
        )
        .unwrap();
        let path = dir.path().join("nodekeeper.toml");
        std::fs::write(
            &path,
            "[supervisor]\nuser = \"nk\"\npassword = \"sv-hunter2\"\n\
             [supervisors.far]\nurl = \"http://nk:url-hunter2@10.0.0.2:9001\"\n\
             [node_defaults]\ntemplate = \"template.json\"\nnode_dir = \"nodes\"\n\
             [[nodes]]\nname = \"node1\"\n\
             [email]\npassword = \"mail-hunter2\"\n\
             [api]\ntoken = \"tok-hunter2\"\n\
             [pooltool]\nuser_id = \"uid-hunter2\"\n",
        )
        .unwrap();
        let source = ConfigSource::File(path.clone());
        let env = Env::new();
        // The URL with credentials is refused, without repeating them.
        let errors = load_source_with(&source, &env, HostFiles::Skip)
            .result
            .unwrap_err()
            .to_string();
        assert!(errors.contains("supervisors.far.url"), "{errors}");
        for secret in SECRETS {
            assert!(!errors.contains(secret), "{secret} in {errors}");
        }
        let raw = load_raw_source(&source, &env).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text = text.replace("nk:url-hunter2@", "");
        std::fs::write(&path, text).unwrap();
        let (config, _) = load_source_with(&source, &env, HostFiles::Skip)
            .result
            .unwrap();
        assert_eq!(
            config.pooltool.user_id.as_ref().map(Secret::expose),
            Some("uid-hunter2"),
            "the secret is there, only never shown"
        );
        let shown = [
            format!("{config:?}"),
            format!("{config:#?}"),
            format!("{raw:?}"),
            toml::to_string(&redacted(&raw)).unwrap(),
        ];
        for text in &shown {
            for secret in SECRETS {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        assert!(
            shown[3].contains("user_id = \"<redacted>\""),
            "{}",
            shown[3]
        );
        assert!(
            shown[3].contains("url = \"http://10.0.0.2:9001\""),
            "{}",
            shown[3]
        );
    }
}

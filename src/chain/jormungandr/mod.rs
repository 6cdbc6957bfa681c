//! The Jormungandr adapter: one [`Node`] per configured node implements the chain-neutral traits
//! over REST API v0 (`probe`: node stats; `leaders`: the enclave's leader ids, promotion and
//! demotion, leadership logs and chain settings; `blocks`: a block's first bytes, for PoolTool's
//! tip report), promoting with the pool's node secret (`secret`: the `--secret` YAML turned into
//! the JSON body of `POST /leaders`).

pub mod blocks;
pub mod leaders;
pub mod probe;
pub mod secret;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde_json::Value;

use super::{
    BootVerdict, BoxFuture, ChainNode, Holding, LeaderControl, LeaderFailure, NodeStatus,
    ProbeError, Schedule, Variant,
};
use crate::slots::{LeaderLog, SlotClock};
pub use blocks::JormungandrBlocks;
pub use leaders::LeaderApi;
pub use probe::JormungandrProbe;
pub use secret::LeaderSecret;

/// What the adapter knows of one Jormungandr node, as the configuration resolves it.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The REST API base, e.g. `http://127.0.0.1:3101/api` (calls go to `{rest_url}/v0/...`).
    pub rest_url: Url,
    /// The template its config is generated from.
    pub template_path: PathBuf,
    /// Where its generated config is written.
    pub config_path: PathBuf,
    /// The normal config: the template merged with the node's overrides.
    pub config: Value,
    /// The fallback config: the normal one with the default trusted peers.
    pub fallback_config: Value,
    /// It boots as a leader: `--secret` among its arguments or `secret_files` in its config.
    pub boots_with_secret: bool,
}

/// A command line split into words the way supervisord does (shell-like: whitespace, with single
/// and double quotes and backslashes).
pub(crate) fn command_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

impl Settings {
    /// Whether a node run with `args` and `config` boots holding the pool's key: `--secret`
    /// among its arguments, or `secret_files` in its config.
    pub fn boots_with_secret(args: &[String], config: &Value) -> bool {
        args.iter()
            .any(|arg| arg == "--secret" || arg.starts_with("--secret="))
            || config
                .get("secret_files")
                .and_then(Value::as_array)
                .is_some_and(|files| !files.is_empty())
    }

    /// Whether a node of these settings boots holding the pool's key, given the command line its
    /// supervisord runs (`None`: not read yet).
    pub fn boots_producing(&self, command: Option<&str>) -> BootVerdict {
        if self.boots_with_secret {
            return BootVerdict::new(
                Some(true),
                "its configuration names a secret (--secret in args, or secret_files)",
            );
        }
        let Some(command) = command else {
            return BootVerdict::new(
                None,
                "its supervisord command is not read yet (until it is, it may)",
            );
        };
        // `sh -c '...'`: the script's words count too.
        let words: Vec<String> = command_words(command)
            .into_iter()
            .flat_map(|word| {
                if word.contains(char::is_whitespace) {
                    command_words(&word)
                } else {
                    vec![word]
                }
            })
            .collect();
        if words
            .iter()
            .any(|word| word == "--secret" || word.starts_with("--secret="))
        {
            return BootVerdict::new(Some(true), "its supervisord command passes --secret");
        }
        let program = words.first().map(String::as_str).unwrap_or_default();
        let binary = Path::new(program)
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if !binary.starts_with("jormungandr") {
            return BootVerdict::new(
                None,
                format!(
                    "its supervisord command runs {binary:?}, not jormungandr itself: a wrapper \
                     may pass --secret"
                ),
            );
        }
        let config = words
            .iter()
            .position(|word| word == "--config")
            .and_then(|at| words.get(at + 1))
            .map(String::as_str)
            .or_else(|| words.iter().find_map(|word| word.strip_prefix("--config=")));
        match config {
            Some(path) if Path::new(path) != self.config_path => BootVerdict::new(
                None,
                format!(
                    "its supervisord command runs jormungandr with {path}, not the config \
                     nodekeeper generates: it may name secret_files"
                ),
            ),
            _ => BootVerdict::new(
                Some(false),
                "its supervisord command runs jormungandr without --secret, with nodekeeper's \
                 config, which has no secret_files",
            ),
        }
    }

    /// The node program's arguments before the operator's: its generated config.
    pub fn config_args(&self) -> Vec<String> {
        vec![
            "--config".to_string(),
            self.config_path.to_string_lossy().into_owned(),
        ]
    }
}

/// The HTTP clients every Jormungandr node shares: one connection setting (no proxy, no
/// redirects, no idle connections kept), made once, since making a client loads the TLS roots.
#[derive(Clone, Debug)]
pub struct Clients {
    probe: JormungandrProbe,
    leaders: LeaderApi,
    blocks: JormungandrBlocks,
}

impl Clients {
    /// The clients, sharing one HTTP client.
    pub fn new() -> Clients {
        let http = probe::client();
        Clients {
            probe: JormungandrProbe::with_client(http.clone()),
            leaders: LeaderApi::with_client(http.clone()),
            blocks: JormungandrBlocks::with_client(http),
        }
    }

    /// The block reader (PoolTool's tip headers).
    pub fn blocks(&self) -> &JormungandrBlocks {
        &self.blocks
    }
}

impl Default for Clients {
    fn default() -> Self {
        Clients::new()
    }
}

/// One Jormungandr node. Its clients are the pool's shared ones; the secret is the pool's,
/// present when nodekeeper manages the leader key.
pub struct Node {
    spec: Settings,
    probe: JormungandrProbe,
    leaders: LeaderApi,
    secret: Option<Arc<LeaderSecret>>,
}

impl Node {
    /// The node of `spec`, reached with `clients`; with `secret`, its leader control and
    /// schedule are served.
    pub fn new(spec: Settings, secret: Option<Arc<LeaderSecret>>, clients: &Clients) -> Node {
        Node {
            spec,
            probe: clients.probe.clone(),
            leaders: clients.leaders.clone(),
            secret,
        }
    }
}

impl ChainNode for Node {
    fn probe(&self, timeout: Duration) -> BoxFuture<'_, Result<NodeStatus, ProbeError>> {
        Box::pin(self.probe.probe(&self.spec.rest_url, timeout))
    }

    fn leader(&self) -> Option<&dyn LeaderControl> {
        self.secret.as_ref().map(|_| self as &dyn LeaderControl)
    }

    fn schedule(&self) -> Option<&dyn Schedule> {
        self.secret.as_ref().map(|_| self as &dyn Schedule)
    }

    fn boots_producing(&self, command: Option<&str>) -> BootVerdict {
        self.spec.boots_producing(command)
    }

    fn config_file(&self, variant: Variant) -> Option<(&Path, &Value)> {
        let config = match variant {
            Variant::Normal => &self.spec.config,
            Variant::Fallback => &self.spec.fallback_config,
        };
        Some((&self.spec.config_path, config))
    }
}

impl LeaderControl for Node {
    fn holding(&self, timeout: Duration) -> BoxFuture<'_, Result<Holding, ProbeError>> {
        Box::pin(async move {
            self.leaders
                .leaders(&self.spec.rest_url, timeout)
                .await
                .map(Holding)
        })
    }

    fn demote<'a>(
        &'a self,
        holding: &'a Holding,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Vec<LeaderFailure>>> {
        Box::pin(async move {
            let mut failures = Vec::new();
            for id in &holding.0 {
                // 404: the id is gone already, which is what a demotion wants.
                if let Err(error) = self.leaders.demote(&self.spec.rest_url, *id, timeout).await {
                    failures.push(LeaderFailure {
                        what: format!("leader id {id}"),
                        error,
                    });
                }
            }
            if failures.is_empty() {
                Ok(())
            } else {
                Err(failures)
            }
        })
    }

    fn promote(&self, timeout: Duration) -> BoxFuture<'_, Result<Holding, ProbeError>> {
        Box::pin(async move {
            let Some(secret) = &self.secret else {
                return Err(ProbeError::Connect("no leader secret loaded".into()));
            };
            self.leaders
                .promote(&self.spec.rest_url, secret, timeout)
                .await
                .map(|id| Holding(vec![id]))
        })
    }
}

impl Schedule for Node {
    fn chain_time(&self, timeout: Duration) -> BoxFuture<'_, Result<SlotClock, ProbeError>> {
        Box::pin(self.leaders.settings(&self.spec.rest_url, timeout))
    }

    fn pool_slots(&self, timeout: Duration) -> BoxFuture<'_, Result<Vec<LeaderLog>, ProbeError>> {
        Box::pin(self.leaders.logs(&self.spec.rest_url, timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(boots_with_secret: bool) -> Settings {
        Settings {
            rest_url: Url::parse("http://127.0.0.1:3101/api").unwrap(),
            template_path: PathBuf::from("/etc/nodekeeper/node-template.yaml"),
            config_path: PathBuf::from("/var/lib/nodekeeper/node_1.yaml"),
            config: Value::Null,
            fallback_config: Value::Null,
            boots_with_secret,
        }
    }

    #[test]
    fn command_lines_split_like_supervisords() {
        assert_eq!(
            command_words(r#"/bin/sh -c 'exec jormungandr --secret "/a b/s.yaml"' x\ y"#),
            vec![
                "/bin/sh",
                "-c",
                r#"exec jormungandr --secret "/a b/s.yaml""#,
                "x y"
            ]
        );
        assert!(command_words("   ").is_empty());
    }

    #[test]
    fn the_boot_verdict_comes_from_the_config_and_supervisords_command() {
        let ours = "/usr/bin/jormungandr --config /var/lib/nodekeeper/node_1.yaml";
        // (configured with a secret, command) -> verdict
        for (secret, command, expected) in [
            (true, Some(ours), Some(true)),
            (false, None, None),
            (false, Some(ours), Some(false)),
            (
                false,
                Some("/usr/bin/jormungandr --config /var/lib/nodekeeper/node_1.yaml --secret /s"),
                Some(true),
            ),
            (false, Some("jormungandr --secret=/s"), Some(true)),
            // jmanager's start script passes the secret itself: nodekeeper cannot tell.
            (false, Some("/home/pool/jgstart.sh"), None),
            (
                false,
                Some("/bin/sh -c 'jormungandr --secret /s'"),
                Some(true),
            ),
            (false, Some("/bin/sh -c 'jormungandr'"), None),
            // Another config than the one nodekeeper writes may name secret_files.
            (false, Some("jormungandr --config /other.yaml"), None),
        ] {
            let verdict = settings(secret).boots_producing(command);
            assert_eq!(verdict.with_key, expected, "{command:?}: {}", verdict.why);
            assert!(!verdict.why.is_empty());
        }
    }
}

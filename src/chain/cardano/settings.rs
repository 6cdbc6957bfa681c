//! What the configuration resolves for one cardano-node (`chain = "cardano"`), and what can be
//! told of it without asking it: whether it boots forging, and the arguments its generated
//! program gets.

use std::path::PathBuf;

use reqwest::Url;

use crate::chain::BootVerdict;
use crate::chain::command::{program_name, shell_words};

/// The default Prometheus endpoint of cardano-node (`hasPrometheus`).
pub const DEFAULT_METRICS_URL: &str = "http://127.0.0.1:12798/metrics";

/// The paths a node was started with for its block-forging credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// `--shelley-kes-key`.
    pub kes: PathBuf,
    /// `--shelley-vrf-key`.
    pub vrf: PathBuf,
    /// `--shelley-operational-certificate`.
    pub opcert: PathBuf,
}

/// The pool-wide files of `[leadership]` (cardano).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolFiles {
    /// Where nodekeeper keeps the pool's `kes.skey`, `vrf.skey` and `node.opcert`.
    pub credentials_dir: PathBuf,
    /// The JSON of `cardano-cli query leadership-schedule`.
    pub schedule_file: PathBuf,
    /// The Shelley genesis JSON.
    pub genesis_file: PathBuf,
}

/// One cardano-node's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Its Prometheus metrics.
    pub metrics_url: Url,
    /// Its credential paths, when configured.
    pub credentials: Option<Credentials>,
    /// The pool's files when leadership is on.
    pub pool: Option<PoolFiles>,
}

impl Settings {
    /// The arguments nodekeeper's generated program adds before the operator's: with leadership
    /// on, the credential paths and `--start-as-non-producing-node` (nodekeeper places the files
    /// and sends SIGHUP to the one node that forges).
    pub fn program_args(&self) -> Vec<String> {
        let (Some(_), Some(credentials)) = (&self.pool, &self.credentials) else {
            return Vec::new();
        };
        let path = |path: &PathBuf| path.to_string_lossy().into_owned();
        vec![
            "--shelley-kes-key".to_string(),
            path(&credentials.kes),
            "--shelley-vrf-key".to_string(),
            path(&credentials.vrf),
            "--shelley-operational-certificate".to_string(),
            path(&credentials.opcert),
            "--start-as-non-producing-node".to_string(),
        ]
    }

    /// Whether the node boots forging, from the command line its supervisord runs.
    pub fn boots_producing(&self, command: Option<&str>) -> BootVerdict {
        let Some(command) = command else {
            return BootVerdict::new(
                None,
                "its supervisord command is not read yet (until it is, it may)",
            );
        };
        let words = shell_words(command);
        let has = |flag: &str| {
            words
                .iter()
                .any(|word| word == flag || word.starts_with(&format!("{flag}=")))
        };
        if has("--start-as-non-producing-node") {
            return BootVerdict::new(
                Some(false),
                "its supervisord command passes --start-as-non-producing-node",
            );
        }
        if !matches!(program_name(&words).as_deref(), Some("cardano-node")) {
            return BootVerdict::new(
                None,
                "its supervisord command does not run cardano-node itself: a wrapper may pass anything",
            );
        }
        if has("--shelley-kes-key") {
            BootVerdict::new(
                Some(true),
                "its supervisord command passes the credentials without --start-as-non-producing-node",
            )
        } else {
            BootVerdict::new(Some(false), "its supervisord command passes no credentials")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_boots_forging_only_with_its_credentials_and_not_non_producing() {
        let settings = Settings {
            metrics_url: Url::parse(DEFAULT_METRICS_URL).unwrap(),
            credentials: Some(Credentials {
                kes: "/n/kes.skey".into(),
                vrf: "/n/vrf.skey".into(),
                opcert: "/n/node.opcert".into(),
            }),
            pool: Some(PoolFiles {
                credentials_dir: "/pool".into(),
                schedule_file: "/pool/schedule.json".into(),
                genesis_file: "/pool/shelley-genesis.json".into(),
            }),
        };
        assert_eq!(
            settings.program_args().join(" "),
            "--shelley-kes-key /n/kes.skey --shelley-vrf-key /n/vrf.skey \
             --shelley-operational-certificate /n/node.opcert --start-as-non-producing-node"
        );
        for (command, with_key) in [
            (
                "cardano-node run --shelley-kes-key k --start-as-non-producing-node",
                Some(false),
            ),
            (
                "/usr/local/bin/cardano-node run --shelley-kes-key k",
                Some(true),
            ),
            ("cardano-node run --config c.json", Some(false)),
            ("/opt/spo/startBP.sh", None),
        ] {
            assert_eq!(
                settings.boots_producing(Some(command)).with_key,
                with_key,
                "{command}"
            );
        }
        let relay = Settings {
            pool: None,
            ..settings
        };
        assert!(relay.program_args().is_empty());
    }
}

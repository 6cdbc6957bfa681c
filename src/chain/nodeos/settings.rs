//! What the configuration resolves for one nodeos node (`chain = "nodeos"`), and the arguments
//! its generated supervisord program gets.

use std::time::Duration;

use reqwest::Url;

use crate::chain::BootVerdict;

/// nodeos's block interval.
pub const DEFAULT_BLOCK_INTERVAL: Duration = Duration::from_millis(500);

/// How often the reference node's `get_info` (`reference_url`) is asked (backed off up to 8×
/// while it fails): a head read 5 s ago is 10 blocks low, half of the default
/// `tip_diff_threshold`.
pub const REFERENCE_REFRESH: Duration = Duration::from_secs(5);

/// A reference head older than this is no reference: 30 blocks low by then, more than the default
/// `tip_diff_threshold` of 20.
pub const REFERENCE_MAX_AGE: Duration = Duration::from_secs(15);

/// A reference leading every local node by more than this is ignored: one round of 21 producers
/// (252 blocks, 126 s). Nodes that far behind are stale by their tips' age already; a reference
/// that far ahead is more likely another chain or a broken node.
pub const REFERENCE_MAX_LEAD: u64 = 252;

/// What the adapter knows of one nodeos node, as the configuration resolves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The HTTP API base, e.g. `http://127.0.0.1:8888` (calls go to `{rest_url}/v1/...`).
    pub rest_url: Url,
    /// The pool's producer account (`[leadership] producer`, `producer-name` in its config.ini)
    /// when leadership is on. Without it there is no leader control and no schedule: the node is
    /// only probed.
    pub producer: Option<String>,
    /// The chain's block interval (nodeos: 500 ms; the simulator's `--block-interval-ms`).
    pub block_interval: Duration,
}

impl Settings {
    /// A node at `rest_url` producing for `producer`, with the default block interval.
    pub fn new(rest_url: Url, producer: Option<String>) -> Settings {
        Settings {
            rest_url,
            producer,
            block_interval: DEFAULT_BLOCK_INTERVAL,
        }
    }

    /// The arguments nodekeeper's generated program adds before the operator's: with leadership
    /// on, every node boots paused (`--pause-on-startup`) and only the chosen one is resumed.
    pub fn program_args(&self) -> Vec<String> {
        match self.producer {
            Some(_) => vec!["--pause-on-startup".to_string()],
            None => Vec::new(),
        }
    }

    /// Whether the node boots producing, from the command line its supervisord runs.
    pub fn boots_producing(&self, command: Option<&str>) -> BootVerdict {
        super::boot::boots_producing(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_a_producer_every_node_boots_paused() {
        let url = Url::parse("http://127.0.0.1:8888").unwrap();
        let settings = Settings::new(url.clone(), Some("nkpool".into()));
        assert_eq!(settings.program_args(), ["--pause-on-startup"]);
        assert!(Settings::new(url, None).program_args().is_empty());
    }
}

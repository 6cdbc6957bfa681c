//! The simulator's command line (`clap`, every flag also read from `NODEKEEPER_SIM_<FLAG>`) and its validation
//! into a [`SimConfig`].
//!
//! Owns flag names, defaults and start-up errors (exit status 2). It reads the `--secret` file and nothing else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::TimeDelta;
use clap::Parser;
use nodekeeper::chain::jormungandr::secret::{self, LeaderSecret, SecretError};

use crate::chain::{ChainError, ChainParams, parse_hash};
use crate::node::NodeConfig;

/// The default genesis time: a fixed instant, so that every simulator started without `--block0-time` follows
/// the same chain.
pub const DEFAULT_BLOCK0_TIME: i64 = 1_700_000_000;

/// `nodekeeper-sim`: a simulated Jormungandr node speaking REST API v0.
#[derive(Debug, Clone, Parser)]
#[command(name = "nodekeeper-sim", version, about)]
pub struct Args {
    /// Node name, used in logs and leader events.
    #[arg(long, env = "NODEKEEPER_SIM_NAME")]
    pub name: String,

    /// REST listen address; port 0 picks a free port. The bound address is printed as the first stdout line,
    /// `listening on IP:PORT`.
    #[arg(long, env = "NODEKEEPER_SIM_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Genesis time, Unix seconds, shared by all nodes of a chain.
    #[arg(long, env = "NODEKEEPER_SIM_BLOCK0_TIME", default_value_t = DEFAULT_BLOCK0_TIME, allow_negative_numbers = true)]
    pub block0_time: i64,

    /// Slot duration in seconds.
    #[arg(long, env = "NODEKEEPER_SIM_SLOT_DURATION", default_value_t = 1)]
    pub slot_duration: u64,

    /// Slots per epoch.
    #[arg(long, env = "NODEKEEPER_SIM_SLOTS_PER_EPOCH", default_value_t = 60)]
    pub slots_per_epoch: u64,

    /// Chain seed: different seeds make different chains (hashes and pool schedules).
    #[arg(long, env = "NODEKEEPER_SIM_SEED", default_value_t = 0)]
    pub seed: u64,

    /// Slots per epoch the pool is scheduled to lead [default: 5 % of the epoch, at least 1].
    #[arg(long, env = "NODEKEEPER_SIM_POOL_SLOTS_PER_EPOCH")]
    pub pool_slots_per_epoch: Option<u64>,

    /// The pool id (64 hex) in the headers of the pool's blocks [default: derived from the seed].
    #[arg(long, env = "NODEKEEPER_SIM_POOL_ID")]
    pub pool_id: Option<String>,

    /// Seconds from start to `Running`, spread over the five boot states.
    #[arg(long, env = "NODEKEEPER_SIM_BOOTSTRAP_SECS", default_value_t = 2.0)]
    pub bootstrap_secs: f64,

    /// Node secret YAML (as for `jormungandr --secret`); the node boots holding it as leader id 1.
    #[arg(long, env = "NODEKEEPER_SIM_SECRET")]
    pub secret: Option<PathBuf>,

    /// Leader-event log: one JSON line appended per block this node produces.
    #[arg(long, env = "NODEKEEPER_SIM_EVENTS")]
    pub events: Option<PathBuf>,

    /// Control file polled every 200 ms; one line: none, stuck, lag N, bootstrap, hang, slow MS, slow-leaders MS, refuse-promotion, crash, corrupt-db or fork.
    #[arg(long, env = "NODEKEEPER_SIM_CONTROL")]
    pub control: Option<PathBuf>,

    /// Data directory: created if missing; `blocks.log` grows in it while the node follows the chain, and the
    /// `corrupt-db` fault leaves a marker there that makes every later start exit 1.
    #[arg(long, env = "NODEKEEPER_SIM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// The `version` the node reports.
    #[arg(
        long,
        env = "NODEKEEPER_SIM_VERSION_STRING",
        default_value = "jormungandr 0.9.0-sim"
    )]
    pub version_string: String,
}

/// Errors of turning [`Args`] into a [`SimConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The secret file could not be read.
    #[error("cannot read the secret file {}", path.display())]
    ReadSecret {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The secret file does not hold a usable secret.
    #[error("invalid secret file {}", path.display())]
    Secret {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: SecretError,
    },
    /// The chain parameters are inconsistent.
    #[error("invalid chain parameters")]
    Chain(#[from] ChainError),
    /// `--pool-id` is not 64 hex characters.
    #[error("pool id must be 64 hex characters, got {0:?}")]
    PoolId(String),
    /// `--bootstrap-secs` is negative or not a number.
    #[error("bootstrap seconds must be a finite number >= 0, got {0}")]
    Bootstrap(f64),
}

/// A validated simulator configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The node.
    pub node: NodeConfig,
    /// The REST listen address.
    pub listen: SocketAddr,
    /// The leader-event log, if any.
    pub events: Option<PathBuf>,
    /// The control file, if any.
    pub control: Option<PathBuf>,
    /// The data directory, if any.
    pub data_dir: Option<PathBuf>,
}

impl Args {
    /// Validates the flags and reads the secret file.
    pub fn into_config(self) -> Result<SimConfig, ConfigError> {
        let pool_id = match &self.pool_id {
            Some(text) => {
                Some(parse_hash(text.trim()).ok_or_else(|| ConfigError::PoolId(text.clone()))?)
            }
            None => None,
        };
        let pool_slots = self
            .pool_slots_per_epoch
            .unwrap_or_else(|| ChainParams::default_pool_slots(self.slots_per_epoch));
        let params = ChainParams::try_new(
            self.block0_time,
            self.slot_duration,
            self.slots_per_epoch,
            self.seed,
            pool_slots,
            pool_id,
        )?;
        if !self.bootstrap_secs.is_finite() || self.bootstrap_secs < 0.0 {
            return Err(ConfigError::Bootstrap(self.bootstrap_secs));
        }
        // At most a day, which also keeps the float-to-integer conversion in range.
        let bootstrap_ms = (self.bootstrap_secs.min(86_400.0) * 1000.0).round() as i64;
        let secret = match &self.secret {
            Some(path) => Some(read_secret(path)?),
            None => None,
        };
        Ok(SimConfig {
            node: NodeConfig {
                name: self.name,
                params,
                version: self.version_string,
                bootstrap: TimeDelta::milliseconds(bootstrap_ms),
                secret,
            },
            listen: self.listen,
            events: self.events,
            control: self.control,
            data_dir: self.data_dir,
        })
    }
}

/// Reads and parses a `--secret` file.
pub fn read_secret(path: &Path) -> Result<LeaderSecret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadSecret {
        path: path.to_path_buf(),
        source,
    })?;
    secret::parse_file_text(&text).map_err(|source| ConfigError::Secret {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<SimConfig, ConfigError> {
        let mut argv = vec!["nodekeeper-sim", "--name", "n1"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap().into_config()
    }

    #[test]
    fn defaults_make_a_shared_chain() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.node.params.block0_unix(), DEFAULT_BLOCK0_TIME);
        assert_eq!(config.node.params.slot_duration(), 1);
        assert_eq!(config.node.params.slots_per_epoch(), 60);
        assert_eq!(config.node.params.pool_slots_per_epoch(), 3);
        assert_eq!(config.node.bootstrap, TimeDelta::milliseconds(2000));
        assert_eq!(config.node.version, "jormungandr 0.9.0-sim");
        assert_eq!(config.listen.to_string(), "127.0.0.1:0");
        assert!(config.node.secret.is_none());
    }

    #[test]
    fn reports_bad_values() {
        assert!(matches!(
            parse(&["--bootstrap-secs=-1"]),
            Err(ConfigError::Bootstrap(_))
        ));
        assert!(matches!(
            parse(&["--bootstrap-secs", "NaN"]),
            Err(ConfigError::Bootstrap(_))
        ));
        assert!(matches!(
            parse(&["--slot-duration", "0"]),
            Err(ConfigError::Chain(_))
        ));
        assert!(matches!(
            parse(&["--pool-id", "abc"]),
            Err(ConfigError::PoolId(_))
        ));
        let missing = parse(&["--secret", "/nonexistent/secret.yaml"]).unwrap_err();
        assert!(matches!(missing, ConfigError::ReadSecret { .. }));
        assert!(missing.to_string().contains("/nonexistent/secret.yaml"));
    }

    #[test]
    fn reads_the_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.yaml");
        std::fs::write(
            &path,
            "genesis:\n  sig_key: k\n  vrf_key: v\n  node_id: abcd\n",
        )
        .unwrap();
        let config = parse(&[
            "--secret",
            path.to_str().unwrap(),
            "--bootstrap-secs",
            "0.3",
        ])
        .unwrap();
        assert_eq!(
            config.node.secret.map(|s| s.identity().to_string()),
            Some("abcd".to_string())
        );
        assert_eq!(config.node.bootstrap, TimeDelta::milliseconds(300));
        std::fs::write(&path, "nonsense\n").unwrap();
        assert!(matches!(
            parse(&["--secret", path.to_str().unwrap()]),
            Err(ConfigError::Secret { .. })
        ));
    }
}

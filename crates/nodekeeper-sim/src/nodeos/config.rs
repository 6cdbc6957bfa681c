//! The nodeos sim's command line (`clap`, every flag also read from `NODEKEEPER_SIM_<FLAG>`) and its validation
//! into a [`SimConfig`]. Start-up errors exit with status 2.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::TimeDelta;
use clap::Parser;

use super::chain::{ChainError, ChainParams, DEFAULT_LIB_LAG, valid_name};
use super::node::NodeConfig;
use crate::chain::parse_hash;

/// The default genesis time (Unix seconds): a fixed instant, so every sim started without `--genesis-time` follows
/// the same chain.
pub const DEFAULT_GENESIS_TIME: i64 = 1_700_000_000;
/// The default active schedule.
pub const DEFAULT_PRODUCERS: &str = "eosnationftw,nodekeeper,eosphereiobp,teamgreymass";
/// The default producer account of this node (in the default schedule).
pub const DEFAULT_PRODUCER: &str = "nodekeeper";

/// `nodekeeper-sim --chain nodeos`: a simulated Antelope nodeos producer node.
#[derive(Debug, Clone, Parser)]
#[command(name = "nodekeeper-sim --chain nodeos", version, about)]
pub struct Args {
    /// Node name, used in logs and in the events file.
    #[arg(long, env = "NODEKEEPER_SIM_NAME")]
    pub name: String,

    /// HTTP listen address; port 0 picks a free port. The bound address is printed as the first stdout line,
    /// `listening on IP:PORT`.
    #[arg(long, env = "NODEKEEPER_SIM_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Genesis time, Unix seconds, shared by all nodes of a chain.
    #[arg(long, env = "NODEKEEPER_SIM_GENESIS_TIME", default_value_t = DEFAULT_GENESIS_TIME, allow_negative_numbers = true)]
    pub genesis_time: i64,

    /// Milliseconds between blocks.
    #[arg(long, env = "NODEKEEPER_SIM_BLOCK_INTERVAL_MS", default_value_t = 500)]
    pub block_interval_ms: u64,

    /// The active producer schedule, comma-separated, in turn order; each makes 12 consecutive blocks.
    #[arg(long, env = "NODEKEEPER_SIM_PRODUCERS", default_value = DEFAULT_PRODUCERS)]
    pub producers: String,

    /// The producer account this node produces for.
    #[arg(long, env = "NODEKEEPER_SIM_PRODUCER", default_value = DEFAULT_PRODUCER)]
    pub producer: String,

    /// The chain id (64 hex) [default: derived from --seed].
    #[arg(long, env = "NODEKEEPER_SIM_CHAIN_ID")]
    pub chain_id: Option<String>,

    /// Chain seed for the chain id and block ids when --chain-id is not given.
    #[arg(long, env = "NODEKEEPER_SIM_SEED", default_value_t = 0)]
    pub seed: u64,

    /// How many blocks the last irreversible block trails the head (3: Savanna; ~325: pre-Savanna Leap).
    #[arg(long, env = "NODEKEEPER_SIM_LIB_LAG_BLOCKS", default_value_t = DEFAULT_LIB_LAG)]
    pub lib_lag_blocks: u64,

    /// Seconds of syncing after start (head an hour behind, catching up) before the node is in sync.
    #[arg(long, env = "NODEKEEPER_SIM_BOOTSTRAP_SECS", default_value_t = 2.0)]
    pub bootstrap_secs: f64,

    /// Start with production paused (nodeos `--pause-on-startup`).
    #[arg(long, env = "NODEKEEPER_SIM_PAUSE_ON_STARTUP")]
    pub pause_on_startup: bool,

    /// Run without `producer_api_plugin`: every `/v1/producer/*` route answers 404.
    #[arg(long, env = "NODEKEEPER_SIM_NO_PRODUCER_API")]
    pub no_producer_api: bool,

    /// Events file: one JSON line appended per block this node makes.
    #[arg(long, env = "NODEKEEPER_SIM_EVENTS")]
    pub events: Option<PathBuf>,

    /// Control file polled every 200 ms; one line: none, crash, stuck, lag N, hang, slow MS, bootstrap,
    /// refuse-pause or dirty-db.
    #[arg(long, env = "NODEKEEPER_SIM_CONTROL")]
    pub control: Option<PathBuf>,

    /// Data directory: created if missing; holds the dirty-database marker (`dirty-db` fault).
    #[arg(long, env = "NODEKEEPER_SIM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// The `server_version_string` reported by get_info.
    #[arg(
        long,
        env = "NODEKEEPER_SIM_SERVER_VERSION_STRING",
        default_value = "v1.2.2"
    )]
    pub server_version_string: String,
}

/// Errors of turning [`Args`] into a [`SimConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The chain parameters are inconsistent.
    #[error("invalid chain parameters")]
    Chain(#[from] ChainError),
    /// `--producer` is not an account name.
    #[error("--producer {0:?} is not an Antelope account name")]
    Producer(String),
    /// `--chain-id` is not 64 hex characters.
    #[error("--chain-id must be 64 hex characters, got {0:?}")]
    ChainId(String),
    /// `--bootstrap-secs` is negative or not a number.
    #[error("--bootstrap-secs must be a finite number >= 0, got {0}")]
    Bootstrap(f64),
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The node.
    pub node: NodeConfig,
    /// The listen address.
    pub listen: SocketAddr,
    /// Whether `/v1/producer/*` is served.
    pub producer_api: bool,
    /// The events file, if any.
    pub events: Option<PathBuf>,
    /// The control file, if any.
    pub control: Option<PathBuf>,
    /// The data directory, if any.
    pub data_dir: Option<PathBuf>,
}

impl Args {
    /// Validates the flags.
    pub fn into_config(self) -> Result<SimConfig, ConfigError> {
        let chain_id = match &self.chain_id {
            Some(text) => {
                parse_hash(text.trim()).ok_or_else(|| ConfigError::ChainId(text.clone()))?
            }
            None => ChainParams::chain_id_from_seed(self.seed),
        };
        let producers = self
            .producers
            .split(',')
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect();
        let params = ChainParams::try_new(
            self.genesis_time,
            self.block_interval_ms,
            producers,
            chain_id,
            self.lib_lag_blocks,
        )?;
        let producer = self.producer.trim().to_string();
        if !valid_name(&producer) {
            return Err(ConfigError::Producer(producer));
        }
        if !self.bootstrap_secs.is_finite() || self.bootstrap_secs < 0.0 {
            return Err(ConfigError::Bootstrap(self.bootstrap_secs));
        }
        // At most a day, which also keeps the float-to-integer conversion in range.
        let bootstrap_ms = (self.bootstrap_secs.min(86_400.0) * 1000.0).round() as i64;
        Ok(SimConfig {
            node: NodeConfig {
                name: self.name,
                producer,
                params,
                version: self.server_version_string,
                bootstrap: TimeDelta::milliseconds(bootstrap_ms),
                pause_on_startup: self.pause_on_startup,
            },
            listen: self.listen,
            producer_api: !self.no_producer_api,
            events: self.events,
            control: self.control,
            data_dir: self.data_dir,
        })
    }
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
        let params = &config.node.params;
        assert_eq!(params.producers().len(), 4);
        assert!(params.producers().contains(&config.node.producer));
        assert_eq!(config.node.producer, "nodekeeper");
        assert_eq!(params.interval_ms(), 500);
        assert_eq!(params.lib_lag(), 3);
        assert_eq!(params.chain_id(), ChainParams::chain_id_from_seed(0));
        assert_eq!(config.node.bootstrap, TimeDelta::milliseconds(2000));
        assert!(!config.node.pause_on_startup);
        assert!(config.producer_api);
        assert_eq!(config.node.version, "v1.2.2");
    }

    #[test]
    fn flags_are_read() {
        let config = parse(&[
            "--producers",
            "alice, bob",
            "--producer",
            "bob",
            "--chain-id",
            &"ab".repeat(32),
            "--pause-on-startup",
            "--no-producer-api",
            "--bootstrap-secs",
            "0.25",
        ])
        .unwrap();
        assert_eq!(config.node.params.producers(), ["alice", "bob"]);
        assert_eq!(config.node.params.chain_id(), [0xab; 32]);
        assert!(config.node.pause_on_startup);
        assert!(!config.producer_api);
        assert_eq!(config.node.bootstrap, TimeDelta::milliseconds(250));
    }

    #[test]
    fn reports_bad_values() {
        assert!(matches!(
            parse(&["--bootstrap-secs=-1"]),
            Err(ConfigError::Bootstrap(_))
        ));
        assert!(matches!(
            parse(&["--block-interval-ms", "0"]),
            Err(ConfigError::Chain(_))
        ));
        assert!(matches!(
            parse(&["--producers", "Bad"]),
            Err(ConfigError::Chain(_))
        ));
        assert!(matches!(
            parse(&["--producers", ","]),
            Err(ConfigError::Chain(_))
        ));
        assert!(matches!(
            parse(&["--producer", "x-y"]),
            Err(ConfigError::Producer(_))
        ));
        assert!(matches!(
            parse(&["--chain-id", "abc"]),
            Err(ConfigError::ChainId(_))
        ));
    }
}

//! The cardano simulator's command line (`clap`, every flag also read from `NODEKEEPER_SIM_<FLAG>`) and its
//! validation into a [`Config`].
//!
//! Owns flag names, defaults and start-up errors (exit status 2). Credential flags are spelled as cardano-node
//! spells them; the files themselves are read by the shell (`mod.rs`), at boot and on SIGHUP.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::TimeDelta;
use clap::{Parser, ValueEnum};

use super::chain::{ChainError, ChainParams};
use super::node::NodeConfig;

/// The default system start: a fixed instant, so that every simulator started without `--system-start` follows
/// the same chain.
pub const DEFAULT_SYSTEM_START: i64 = 1_700_000_000;

/// How the counters' names end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum MetricsSuffix {
    /// Legacy tracing (iohk-monitoring): every integer metric ends in `_int`.
    #[default]
    Int,
    /// New tracing (trace-dispatcher): counters end in `_counter`, gauges keep `_int`.
    Counter,
}

/// `nodekeeper-sim --chain cardano`: a simulated cardano-node block producer (Prometheus metrics, dynamic block
/// forging by SIGHUP).
#[derive(Debug, Clone, Parser)]
#[command(name = "nodekeeper-sim --chain cardano", version, about)]
pub struct Args {
    /// Node name, used in logs and forge events (required unless only writing files).
    #[arg(long, env = "NODEKEEPER_SIM_NAME")]
    pub name: Option<String>,

    /// Metrics listen address; port 0 picks a free port. The bound address is printed as the first stdout line,
    /// `listening on IP:PORT`.
    #[arg(long, env = "NODEKEEPER_SIM_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// System start (Shelley genesis `systemStart`), Unix seconds, shared by all nodes of a chain.
    #[arg(long, env = "NODEKEEPER_SIM_SYSTEM_START", default_value_t = DEFAULT_SYSTEM_START, allow_negative_numbers = true)]
    pub system_start: i64,

    /// Slot length in milliseconds.
    #[arg(long, env = "NODEKEEPER_SIM_SLOT_LENGTH_MS", default_value_t = 1000)]
    pub slot_length_ms: u64,

    /// Slots per epoch.
    #[arg(long, env = "NODEKEEPER_SIM_EPOCH_LENGTH", default_value_t = 600)]
    pub epoch_length: u64,

    /// Slots per KES period.
    #[arg(
        long,
        env = "NODEKEEPER_SIM_SLOTS_PER_KES_PERIOD",
        default_value_t = 129_600
    )]
    pub slots_per_kes_period: u64,

    /// KES periods an operational certificate is valid for.
    #[arg(long, env = "NODEKEEPER_SIM_MAX_KES_EVOLUTIONS", default_value_t = 62)]
    pub max_kes_evolutions: u64,

    /// Chain seed: different seeds make different block slots and leader schedules.
    #[arg(long, env = "NODEKEEPER_SIM_SEED", default_value_t = 0)]
    pub seed: u64,

    /// Fraction of slots the pool leads.
    #[arg(long, env = "NODEKEEPER_SIM_LEADER_RATE", default_value_t = 0.05)]
    pub leader_rate: f64,

    /// The operational certificate's start KES period [default: the KES period when the node starts].
    #[arg(long, env = "NODEKEEPER_SIM_OPCERT_KES_PERIOD")]
    pub opcert_kes_period: Option<u64>,

    /// KES signing key file (a text envelope; contents are not checked).
    #[arg(long, env = "NODEKEEPER_SIM_SHELLEY_KES_KEY")]
    pub shelley_kes_key: Option<PathBuf>,

    /// VRF signing key file.
    #[arg(long, env = "NODEKEEPER_SIM_SHELLEY_VRF_KEY")]
    pub shelley_vrf_key: Option<PathBuf>,

    /// Operational certificate file.
    #[arg(long, env = "NODEKEEPER_SIM_SHELLEY_OPERATIONAL_CERTIFICATE")]
    pub shelley_operational_certificate: Option<PathBuf>,

    /// Start without forging even if the credential files exist; SIGHUP re-reads them.
    #[arg(long, env = "NODEKEEPER_SIM_START_AS_NON_PRODUCING_NODE")]
    pub start_as_non_producing_node: bool,

    /// Seconds of chain replay after start (slotNum 0, no forging, SIGHUP not effective).
    #[arg(long, env = "NODEKEEPER_SIM_BOOTSTRAP_SECS", default_value_t = 2.0)]
    pub bootstrap_secs: f64,

    /// Forge-event log: one JSON line appended per block this node forges.
    #[arg(long, env = "NODEKEEPER_SIM_EVENTS")]
    pub events: Option<PathBuf>,

    /// Control file polled every 200 ms; one line: none, stuck, lag N, bootstrap, hang, slow MS, ignore-sighup or
    /// crash.
    #[arg(long, env = "NODEKEEPER_SIM_CONTROL")]
    pub control: Option<PathBuf>,

    /// Counter names end in `_int` (legacy tracing) or `_counter` (new tracing).
    #[arg(long, env = "NODEKEEPER_SIM_METRICS_SUFFIX", value_enum, default_value_t = MetricsSuffix::Int)]
    pub metrics_suffix: MetricsSuffix,

    /// Write a Shelley genesis JSON for these parameters to PATH, then exit without serving.
    #[arg(long, env = "NODEKEEPER_SIM_WRITE_GENESIS")]
    pub write_genesis: Option<PathBuf>,

    /// Write the pool's leader slots of `--epoch` to PATH (the JSON of `cardano-cli query leadership-schedule
    /// --out-file`), then exit without serving.
    #[arg(long, env = "NODEKEEPER_SIM_WRITE_SCHEDULE")]
    pub write_schedule: Option<PathBuf>,

    /// The epoch for `--write-schedule` [default: the current epoch].
    #[arg(long, env = "NODEKEEPER_SIM_EPOCH")]
    pub epoch: Option<u64>,
}

/// Errors of turning [`Args`] into a [`Config`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The chain parameters are inconsistent.
    #[error("invalid chain parameters")]
    Chain(#[from] ChainError),
    /// `--bootstrap-secs` is negative or not a number.
    #[error("bootstrap seconds must be a finite number >= 0, got {0}")]
    Bootstrap(f64),
    /// Some but not all of the three credential flags were given.
    #[error(
        "give all three of --shelley-kes-key, --shelley-vrf-key and --shelley-operational-certificate, or none"
    )]
    PartialCredentials,
    /// Serving needs a name.
    #[error("--name is required (unless only --write-genesis / --write-schedule)")]
    NoName,
}

/// The three credential files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialPaths {
    /// `--shelley-kes-key`.
    pub kes: PathBuf,
    /// `--shelley-vrf-key`.
    pub vrf: PathBuf,
    /// `--shelley-operational-certificate`.
    pub opcert: PathBuf,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The chain.
    pub params: ChainParams,
    /// The node (if serving).
    pub node: Option<NodeConfig>,
    /// The credential files, if configured.
    pub credentials: Option<CredentialPaths>,
    /// The metrics listen address.
    pub listen: SocketAddr,
    /// The forge-event log, if any.
    pub events: Option<PathBuf>,
    /// The control file, if any.
    pub control: Option<PathBuf>,
    /// Counter suffix.
    pub metrics_suffix: MetricsSuffix,
    /// `--write-genesis`.
    pub write_genesis: Option<PathBuf>,
    /// `--write-schedule`.
    pub write_schedule: Option<PathBuf>,
    /// `--epoch`.
    pub epoch: Option<u64>,
}

impl Config {
    /// Whether the command only writes files.
    pub fn writes_only(&self) -> bool {
        self.write_genesis.is_some() || self.write_schedule.is_some()
    }
}

impl Args {
    /// Validates the flags.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let params = ChainParams::try_new(
            self.system_start,
            self.slot_length_ms,
            self.epoch_length,
            self.slots_per_kes_period,
            self.max_kes_evolutions,
            self.seed,
            self.leader_rate,
        )?;
        if !self.bootstrap_secs.is_finite() || self.bootstrap_secs < 0.0 {
            return Err(ConfigError::Bootstrap(self.bootstrap_secs));
        }
        // At most a day, which also keeps the float-to-integer conversion in range.
        let bootstrap_ms = (self.bootstrap_secs.min(86_400.0) * 1000.0).round() as i64;
        let credentials = match (
            self.shelley_kes_key,
            self.shelley_vrf_key,
            self.shelley_operational_certificate,
        ) {
            (Some(kes), Some(vrf), Some(opcert)) => Some(CredentialPaths { kes, vrf, opcert }),
            (None, None, None) => None,
            _ => return Err(ConfigError::PartialCredentials),
        };
        let writes_only = self.write_genesis.is_some() || self.write_schedule.is_some();
        let node = match self.name {
            Some(name) => Some(NodeConfig {
                name,
                params: params.clone(),
                bootstrap: TimeDelta::milliseconds(bootstrap_ms),
                opcert_kes_period: self.opcert_kes_period,
                non_producing: self.start_as_non_producing_node,
            }),
            None if writes_only => None,
            None => return Err(ConfigError::NoName),
        };
        Ok(Config {
            params,
            node,
            credentials,
            listen: self.listen,
            events: self.events,
            control: self.control,
            metrics_suffix: self.metrics_suffix,
            write_genesis: self.write_genesis,
            write_schedule: self.write_schedule,
            epoch: self.epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["nodekeeper-sim"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap().into_config()
    }

    #[test]
    fn defaults_make_a_shared_chain() {
        let config = parse(&["--name", "bp1"]).unwrap();
        assert_eq!(config.params.system_start_unix(), DEFAULT_SYSTEM_START);
        assert_eq!(config.params.slot_length_ms(), 1000);
        assert_eq!(config.params.epoch_length(), 600);
        assert_eq!(config.params.slots_per_kes_period(), 129_600);
        assert_eq!(config.params.max_kes_evolutions(), 62);
        assert!((config.params.leader_rate() - 0.05).abs() < 1e-9);
        assert!(!config.writes_only());
        let node = config.node.unwrap();
        assert_eq!(node.bootstrap, TimeDelta::milliseconds(2000));
        assert!(!node.non_producing);
        assert_eq!(config.credentials, None);
        assert_eq!(config.metrics_suffix, MetricsSuffix::Int);
    }

    #[test]
    fn credentials_come_as_three() {
        let config = parse(&[
            "--name",
            "bp1",
            "--shelley-kes-key",
            "/k",
            "--shelley-vrf-key",
            "/v",
            "--shelley-operational-certificate",
            "/o",
            "--start-as-non-producing-node",
            "--metrics-suffix",
            "counter",
        ])
        .unwrap();
        assert_eq!(config.credentials.unwrap().opcert, PathBuf::from("/o"));
        assert!(config.node.unwrap().non_producing);
        assert_eq!(config.metrics_suffix, MetricsSuffix::Counter);
        assert!(matches!(
            parse(&["--name", "bp1", "--shelley-kes-key", "/k"]),
            Err(ConfigError::PartialCredentials)
        ));
    }

    #[test]
    fn reports_bad_values() {
        assert!(matches!(parse(&[]), Err(ConfigError::NoName)));
        assert!(parse(&["--write-genesis", "/tmp/g.json"]).is_ok());
        assert!(matches!(
            parse(&["--name", "n", "--bootstrap-secs=-1"]),
            Err(ConfigError::Bootstrap(_))
        ));
        assert!(matches!(
            parse(&["--name", "n", "--slot-length-ms", "0"]),
            Err(ConfigError::Chain(_))
        ));
        assert!(matches!(
            parse(&["--name", "n", "--leader-rate", "2"]),
            Err(ConfigError::Chain(_))
        ));
        assert!(Args::try_parse_from(["x", "--name", "n", "--metrics-suffix", "real"]).is_err());
    }
}

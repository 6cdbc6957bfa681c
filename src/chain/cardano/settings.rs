//! What the configuration resolves for one cardano-node (`chain = "cardano"`): its metrics, its
//! credential paths, the pool's files when leadership is on, and the arguments its generated
//! supervisord program gets.

use std::path::PathBuf;

use reqwest::Url;

use super::Credentials;
use crate::chain::BootVerdict;

/// cardano-node's default Prometheus address (`hasPrometheus: ["127.0.0.1", 12798]`).
pub const DEFAULT_METRICS_URL: &str = "http://127.0.0.1:12798/metrics";

/// What every node of the pool shares: the pool's credential files and its schedule files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// The directory of the pool's three files, `kes.skey`, `vrf.skey` and `node.opcert`; they are
    /// copied from here and never removed.
    pub credentials_dir: PathBuf,
    /// The pool's leadership schedule (`cardano-cli query leadership-schedule --out-file` JSON),
    /// read again whenever it changes.
    pub schedule_file: PathBuf,
    /// The Shelley genesis (`systemStart`, `slotLength`, `epochLength`, ...).
    pub genesis_file: PathBuf,
}

/// What the adapter knows of one cardano-node, as the configuration resolves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Its Prometheus endpoint, [`DEFAULT_METRICS_URL`] unless configured.
    pub metrics_url: Url,
    /// Where this node was started to look for its credential files; `None`: nodekeeper does not
    /// manage its forging (a relay, or a producer managed by hand).
    pub credentials: Option<Credentials>,
    /// The pool's files, when leadership is on.
    pub pool: Option<Pool>,
    /// The Shelley genesis (`[leadership] genesis_file`), with leadership on or off: the tip's
    /// slot through it is the tip's time, which the policy judges against `tip_timeout`. `None`:
    /// the tip is judged by its height alone.
    pub genesis_file: Option<PathBuf>,
}

impl Settings {
    /// A node at the default metrics address, without managed credentials.
    pub fn new() -> Settings {
        Settings {
            metrics_url: Url::parse(DEFAULT_METRICS_URL).expect("the default URL parses"),
            credentials: None,
            pool: None,
            genesis_file: None,
        }
    }

    /// The arguments nodekeeper's generated program adds after the operator's: with leadership
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
            super::NON_PRODUCING_FLAG.to_string(),
        ]
    }

    /// Whether the node boots forging, from the command line its supervisord runs.
    pub fn boots_producing(&self, command: Option<&str>) -> BootVerdict {
        super::boot_verdict(command)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_leadership_a_node_is_started_with_its_paths_and_non_producing() {
        let settings = Settings {
            credentials: Some(Credentials {
                kes: "/n/kes.skey".into(),
                vrf: "/n/vrf.skey".into(),
                opcert: "/n/node.opcert".into(),
            }),
            pool: Some(Pool {
                credentials_dir: "/pool".into(),
                schedule_file: "/pool/schedule.json".into(),
                genesis_file: "/pool/shelley-genesis.json".into(),
            }),
            ..Settings::new()
        };
        assert_eq!(
            settings.program_args().join(" "),
            "--shelley-kes-key /n/kes.skey --shelley-vrf-key /n/vrf.skey \
             --shelley-operational-certificate /n/node.opcert --start-as-non-producing-node"
        );
        assert_eq!(
            settings
                .boots_producing(Some("cardano-node run --shelley-kes-key k"))
                .with_key,
            Some(true)
        );
        let relay = Settings {
            pool: None,
            ..settings
        };
        assert!(relay.program_args().is_empty());
    }
}

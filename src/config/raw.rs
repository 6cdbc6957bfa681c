//! The shape of nodekeeper's config file as written (TOML, YAML or JSON): every key with its
//! default. Nothing here is validated beyond types; `model` turns this into a checked `Config`.
//!
//! Field docs are the reference for the keys; `configs/nodekeeper.toml` shows them commented.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
pub use crate::alert::SmtpSecurity;
pub use crate::chain::ChainName;
pub use crate::pooltool::SlotsVerification;

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawConfig {
    /// The supervisord that runs the nodes (the default endpoint).
    pub supervisor: RawSupervisor,
    /// More supervisord endpoints, by name, for nodes on other hosts (`nodes[].supervisor`).
    pub supervisors: BTreeMap<String, RawSupervisor>,
    /// Settings every node inherits unless it sets its own.
    pub node_defaults: RawNodeDefaults,
    /// Node binaries side by side: version name → path of the binary.
    pub versions: BTreeMap<String, PathBuf>,
    /// The nodes (at least one).
    pub nodes: Vec<RawNode>,
    /// Control-loop thresholds.
    pub thresholds: RawThresholds,
    /// PoolTool: reference tip and reporting.
    pub pooltool: RawPoolTool,
    /// Leader key handling.
    pub leadership: RawLeadership,
    /// Email alerts.
    pub email: RawEmail,
    /// Alert channels beyond email.
    #[serde(skip_serializing_if = "RawAlerts::is_empty")]
    pub alerts: RawAlerts,
    /// The append-only restart log.
    pub restart_log: RawRestartLog,
    /// The operator HTTP API.
    pub api: RawApi,
    /// nodeos: another node's HTTP API (`get_info`, e.g. a public API node) whose head is the
    /// pool's reference tip, as PoolTool's is for Jormungandr; a pool-level key (top of the file,
    /// before any table). `https://` unless its host is loopback or `reference_allow_insecure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_url: Option<String>,
    /// Allow a plain `http://` `reference_url` to a host that is not loopback (a forged answer
    /// could then make nodes look behind, within `REFERENCE_MAX_LEAD`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reference_allow_insecure: bool,
    /// Several nodekeepers (one per host) coordinating through etcd; absent: one instance, no
    /// store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<RawCluster>,
    /// Backups of node data directories (`nodes[].data_dir`) and restores; absent: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<RawBackup>,
}

/// `[backup]`: where node data is archived, how many archives are kept, the schedule and the
/// automatic restore.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawBackup {
    /// The target directory (local or mounted), relative to the config file; required.
    pub dir: Option<PathBuf>,
    /// Archives kept per node (at least 1; the only good one is never deleted).
    pub keep: u32,
    /// Scheduled backups this often after the last successful one; absent: only on request.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub every: Option<Duration>,
    /// The node scheduled backups take; absent: any passive node in sync (the highest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Other nodes that must be in sync while one is backed up.
    pub min_in_sync: u32,
    /// Restore a node by itself from the newest archive of its chain when it exits within
    /// `early_exit` of a start twice in a row or with its chain's corrupt-database signal; once,
    /// until it has been in sync again.
    pub auto_restore: bool,
    /// An exit this soon after a start is an early exit.
    #[serde(with = "duration")]
    pub early_exit: Duration,
    /// After a restore, the old data directory is kept until the node has been in sync this
    /// long, then removed.
    #[serde(with = "duration")]
    pub keep_old_for: Duration,
}

impl Default for RawBackup {
    fn default() -> RawBackup {
        RawBackup {
            dir: None,
            keep: 3,
            every: None,
            node: None,
            min_in_sync: 1,
            auto_restore: false,
            early_exit: Duration::from_secs(10),
            keep_old_for: Duration::from_secs(600),
        }
    }
}

/// `[cluster]`: this instance among several, and the etcd they share.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawCluster {
    /// This instance's name (usually set per host: `NODEKEEPER__CLUSTER__NAME=host-a`); one of
    /// the names `nodes[].instance` gives.
    pub name: String,
    /// etcd client URLs, `https://` unless loopback or `allow_insecure`.
    pub etcd: Vec<String>,
    /// The CA of etcd's server certificates (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM), with `key_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's key (PEM), with `cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// etcd user, with `password_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A file holding the etcd user's password (first line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The lease's time to live, whole seconds (2 s to 5 min): an instance stops producing half
    /// of it after its last renewal, another may take over after all of it.
    #[serde(with = "duration")]
    pub lease_ttl: Duration,
    /// Key prefix of this pool in etcd (several pools may share one etcd).
    pub prefix: String,
    /// Allow `http://` etcd endpoints that are not loopback (traffic and password in clear).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure: bool,
}

impl Default for RawCluster {
    fn default() -> RawCluster {
        RawCluster {
            name: String::new(),
            etcd: Vec::new(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            user: None,
            password_file: None,
            lease_ttl: crate::cluster::settings::DEFAULT_LEASE_TTL,
            prefix: crate::cluster::settings::DEFAULT_PREFIX.into(),
            allow_insecure: false,
        }
    }
}

/// How to reach one supervisord.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawSupervisor {
    /// `http://HOST:PORT/RPC2` or `unix:///PATH.sock`. Env `NODEKEEPER_SUPERVISOR_URL` wins.
    pub url: String,
    /// Basic-auth user name. Env `NODEKEEPER_SUPERVISOR_USER` wins.
    pub user: Option<String>,
    /// The password inline (discouraged; prefer `password_file` or env
    /// `NODEKEEPER_SUPERVISOR_PASSWORD`, which wins).
    pub password: Option<String>,
    /// A file holding the password on its first line.
    pub password_file: Option<PathBuf>,
    /// Timeout of calls that answer at once.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Timeout of start/stop calls that wait for the program (above startsecs and stopwaitsecs).
    #[serde(with = "duration")]
    pub wait_timeout: Duration,
}

impl Default for RawSupervisor {
    fn default() -> RawSupervisor {
        RawSupervisor {
            url: "http://127.0.0.1:9001/RPC2".into(),
            user: None,
            password: None,
            password_file: None,
            timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(300),
        }
    }
}

/// A trusted peer of a Jormungandr node (`p2p.trusted_peers[]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    /// Multiaddress, e.g. `/ip4/1.2.3.4/tcp/3000`.
    pub address: String,
    /// The peer's public id (hex); optional on newer nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The paths a cardano-node was started with for its block-forging credentials
/// (`--shelley-kes-key`, `--shelley-vrf-key`, `--shelley-operational-certificate`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    /// The KES signing key's path.
    pub kes: PathBuf,
    /// The VRF signing key's path.
    pub vrf: PathBuf,
    /// The operational certificate's path.
    pub opcert: PathBuf,
}

/// Defaults for every node.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawNodeDefaults {
    /// The chain of every node that does not set its own (`jormungandr`, `nodeos` or `cardano`).
    #[serde(skip_serializing_if = "ChainName::is_default")]
    pub chain: ChainName,
    /// The node config template (JSON), relative to the config file. Required for Jormungandr.
    pub template: Option<PathBuf>,
    /// Base directory: a node's directory defaults to `{node_dir}/{name}`.
    pub node_dir: Option<PathBuf>,
    /// The node binary when no version is chosen (default: the chain's node program,
    /// `jormungandr`, `nodeos` or `cardano-node`).
    pub binary: PathBuf,
    /// The version (a key of `[versions]`) nodes run unless they choose another.
    pub version: Option<String>,
    /// Trusted peers of the default (fallback) config.
    pub default_trusted_peers: Vec<RawPeer>,
    /// Extra arguments given to every node (e.g. `--genesis-block-hash`, `<hash>`).
    pub args: Vec<String>,
    /// supervisord `startsecs` of node programs.
    pub startsecs: u32,
    /// supervisord `stopwaitsecs` of node programs: time to flush the database before SIGKILL.
    pub stopwaitsecs: u32,
    /// Directory of node program logs; default: the node's directory.
    pub log_dir: Option<PathBuf>,
}

impl Default for RawNodeDefaults {
    fn default() -> RawNodeDefaults {
        RawNodeDefaults {
            chain: ChainName::default(),
            template: None,
            node_dir: None,
            binary: PathBuf::from("jormungandr"),
            version: None,
            default_trusted_peers: Vec::new(),
            args: Vec::new(),
            startsecs: 5,
            stopwaitsecs: 120,
            log_dir: None,
        }
    }
}

/// One node.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawNode {
    /// Node name (unique): log rows, alerts, the generated file name.
    pub name: String,
    /// Its chain; default `node_defaults.chain`. Every node of a configuration runs one chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainName>,
    /// cardano-node: its Prometheus metrics (default `http://127.0.0.1:12798/metrics`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
    /// cardano-node: the credential paths it was started with (leadership needs them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RawCredentials>,
    /// supervisord program name; default: the node name.
    pub program: Option<String>,
    /// Which supervisord (a key of `[supervisors]`); default: `[supervisor]`.
    pub supervisor: Option<String>,
    /// With `[cluster]` (then required): the instance (`cluster.name` of the host's nodekeeper)
    /// that manages this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// REST API base URL: Jormungandr's (`http://127.0.0.1:3101/api`; default: derived from
    /// `rest.listen` of the merged node config), nodeos's HTTP API (`http://127.0.0.1:8888`,
    /// required).
    pub rest_url: Option<String>,
    /// The node's directory; default `{node_defaults.node_dir}/{name}`.
    pub node_dir: Option<PathBuf>,
    /// Where the generated node config goes; default `{node_dir}/{name}.json`.
    pub config_path: Option<PathBuf>,
    /// The node's database directory (what a backup archives and a restore replaces), relative
    /// to the config file; no default: a node without one is never backed up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// A version from `[versions]`; default `node_defaults.version`.
    pub version: Option<String>,
    /// The binary, when not chosen by version; default `node_defaults.binary`.
    pub binary: Option<PathBuf>,
    /// A template of its own; default `node_defaults.template`.
    pub template: Option<PathBuf>,
    /// Merged onto the template: objects recursively, scalars and null overwrite, lists replace.
    pub overrides: serde_json::Map<String, serde_json::Value>,
    /// Trusted peers of its default (fallback) config; default `node_defaults.default_trusted_peers`.
    pub default_trusted_peers: Option<Vec<RawPeer>>,
    /// Extra arguments; default `node_defaults.args`.
    pub args: Option<Vec<String>>,
}

/// Control-loop thresholds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawThresholds {
    /// Period of the control loop.
    #[serde(with = "duration")]
    pub tick_interval: Duration,
    /// Timeout of one node REST call.
    #[serde(with = "duration")]
    pub probe_timeout: Duration,
    /// A RUNNING node that has not answered its API for this long is hung (default 2 s; a healthy
    /// node answers in milliseconds).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub hang_timeout: Option<Duration>,
    /// Replaced by `hang_timeout`; still read: failed calls in a row before a node counted as
    /// hung, taken as `hang_timeout = api_failures × probe_timeout` when `hang_timeout` is unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_failures: Option<u32>,
    /// A Running node whose height has not grown for this long, or whose tip is older than this
    /// (nodeos; cardano with `leadership.genesis_file`), is restarted. Default per chain
    /// (`ChainName::default_tip_timeout`): Jormungandr 90 s, nodeos 30 s, cardano 300 s.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub tip_timeout: Option<Duration>,
    /// A node more than this many blocks behind the reference is restarted. Default per chain
    /// (`ChainName::default_tip_diff_threshold`): Jormungandr 7, nodeos 20, cardano 5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tip_diff_threshold: Option<u64>,
    /// A node Bootstrapping longer than this is restarted.
    #[serde(with = "duration")]
    pub bootstrap_timeout: Duration,
    /// After a (re)start, sync rules wait this long before judging the node.
    #[serde(with = "duration")]
    pub boot_grace: Duration,
    /// At most this many restarts of one node per `restart_window`; beyond, the node is held.
    pub max_restarts: u32,
    /// The storm-protection window.
    #[serde(with = "duration")]
    pub restart_window: Duration,
    /// Delay between starts when every node is down.
    #[serde(with = "duration")]
    pub all_down_stagger: Duration,
}

impl Default for RawThresholds {
    fn default() -> RawThresholds {
        RawThresholds {
            tick_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(1),
            hang_timeout: None,
            api_failures: None,
            tip_timeout: None,
            tip_diff_threshold: None,
            bootstrap_timeout: Duration::from_secs(650),
            boot_grace: Duration::from_secs(60),
            max_restarts: 3,
            restart_window: Duration::from_secs(30 * 60),
            all_down_stagger: Duration::from_secs(10),
        }
    }
}

/// PoolTool.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawPoolTool {
    /// Use PoolTool at all (reference tip and reports).
    pub enabled: bool,
    /// Majority-max source.
    pub status_url: String,
    /// How often to fetch it.
    #[serde(with = "duration")]
    pub status_refresh: Duration,
    /// A reference older than this is ignored.
    #[serde(with = "duration")]
    pub status_max_age: Duration,
    /// A reference that leads every local node by more than this many blocks is ignored (and
    /// logged): a wrong but plausible answer must not restart node after node.
    pub reference_max_lead: u64,
    /// `sharemytip` endpoint.
    pub tip_url: String,
    /// Minimum time between tip reports.
    #[serde(with = "duration")]
    pub tip_interval: Duration,
    /// `sendlogs` endpoint.
    pub slots_url: String,
    /// Seconds after the epoch start when slots are sent (window of 60 s).
    #[serde(with = "duration")]
    pub send_slots_after: Duration,
    /// `none`, `hash` or `gpg`.
    pub slots_verification: SlotsVerification,
    /// The gpg binary (gpg mode).
    pub gpg: Option<PathBuf>,
    /// Where per-epoch keys and hashes are kept.
    pub key_path: Option<PathBuf>,
    /// PoolTool user id (UUID).
    pub user_id: Option<String>,
    /// The pool id (hex) inline, or `pool_id_file`.
    pub pool_id: Option<String>,
    /// A file holding the pool id.
    pub pool_id_file: Option<PathBuf>,
    /// The genesis hash inline, or `genesis_hash_file`.
    pub genesis_hash: Option<String>,
    /// A file holding the genesis hash.
    pub genesis_hash_file: Option<PathBuf>,
}

impl Default for RawPoolTool {
    fn default() -> RawPoolTool {
        RawPoolTool {
            enabled: false,
            status_url: "https://pooltool.s3-us-west-2.amazonaws.com/stats/stats.json".into(),
            status_refresh: Duration::from_secs(60),
            status_max_age: Duration::from_secs(180),
            reference_max_lead: 100,
            tip_url: "https://api.pooltool.io/v0/sharemytip".into(),
            tip_interval: Duration::from_secs(15),
            slots_url: "https://api.pooltool.io/v0/sendlogs".into(),
            send_slots_after: Duration::from_secs(180),
            slots_verification: SlotsVerification::Hash,
            gpg: None,
            key_path: None,
            user_id: None,
            pool_id: None,
            pool_id_file: None,
            genesis_hash: None,
            genesis_hash_file: None,
        }
    }
}

/// Leader key handling.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawLeadership {
    /// Manage the leader key (promote/demote) at all.
    pub enabled: bool,
    /// The pool's node secret (YAML, as given to `jormungandr --secret`).
    pub secret_file: Option<PathBuf>,
    /// Switch leaders only when another node is this many blocks ahead.
    pub switch_margin: u64,
    /// No promotion, demotion or leader restart within this many slots of a leader slot.
    pub slot_window: u64,
    /// Restart a node to fetch the schedule only when the next slot is further away than this.
    #[serde(with = "duration")]
    pub schedule_refresh_min_gap: Duration,
    /// Persisted safety state (current leader, last slot, epoch).
    pub state_file: PathBuf,
    /// Allow plain `http://` REST URLs of nodes on other hosts (not loopback) while leadership is
    /// enabled: the node secret is sent to them in clear. Default false: such a URL is refused.
    pub allow_insecure: bool,
    /// nodeos: our producer account (the one node producing for it is chosen by nodekeeper).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
    /// cardano: where nodekeeper keeps the pool's credentials (`kes.skey`, `vrf.skey`,
    /// `node.opcert`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_dir: Option<PathBuf>,
    /// cardano: the JSON of `cardano-cli query leadership-schedule` (re-read when it changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_file: Option<PathBuf>,
    /// cardano: the Shelley genesis JSON (`systemStart`, `slotLength`, `epochLength`,
    /// `slotsPerKESPeriod`), for the slot of now; read with leadership on or off, it also dates
    /// each node's tip (a tip older than `thresholds.tip_timeout` is stale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub genesis_file: Option<PathBuf>,
    /// cardano: alert when a node reports fewer `remainingKESPeriods` than this (default 14,
    /// about three weeks on mainnet; 0: never). Read whether leadership is enabled or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kes_alert_periods: Option<u64>,
}

impl Default for RawLeadership {
    fn default() -> RawLeadership {
        RawLeadership {
            enabled: false,
            secret_file: None,
            switch_margin: 3,
            slot_window: 15,
            schedule_refresh_min_gap: Duration::from_secs(600),
            state_file: PathBuf::from("leader-state.json"),
            allow_insecure: false,
            producer: None,
            credentials_dir: None,
            schedule_file: None,
            genesis_file: None,
            kes_alert_periods: None,
        }
    }
}

/// Email alerts.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawEmail {
    /// Send alerts at all.
    pub enabled: bool,
    /// SMTP server host name.
    pub smtp_server: Option<String>,
    /// Port; default by security: 465, 587 or 25.
    pub port: Option<u16>,
    /// `tls`, `starttls` or `plain`.
    pub security: SmtpSecurity,
    /// SMTP user name; default: `from`.
    pub user: Option<String>,
    /// SMTP password inline (discouraged), or `password_file`, or env
    /// `NODEKEEPER__EMAIL__PASSWORD`.
    pub password: Option<String>,
    /// A file holding the SMTP password.
    pub password_file: Option<PathBuf>,
    /// Sender address.
    pub from: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// A PEM file of CA certificates trusted for the SMTP server besides the system's (a private
    /// CA); default: none, the system's roots only. A self-signed server: `tls_pin_sha256`.
    pub tls_ca_file: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (hex, `AB:CD:..`, or
    /// openssl's `sha256 Fingerprint=AB:..` line), whatever its issuer, validity or names: for a
    /// relay with a self-signed certificate. Not with `tls_ca_file` nor `security = "plain"`.
    pub tls_pin_sha256: Option<String>,
    /// Allow `security = "plain"` with a password to a host that is not a loopback one (the
    /// password then crosses the network in clear).
    pub allow_insecure: bool,
    /// The file keeping undelivered mails across restarts; default: `alert-outbox.json` beside
    /// the restart log.
    pub outbox: Option<PathBuf>,
    /// Templates overriding the shipped ones.
    pub templates_dir: Option<PathBuf>,
    /// Inline templates by event name (also jmanager's `stuck`, `bootstrap_restart`,
    /// `slots_assigned`).
    pub templates: BTreeMap<String, RawTemplate>,
    /// The same event for the same node is mailed at most once per window.
    #[serde(with = "duration")]
    pub dedupe_window: Duration,
}

impl Default for RawEmail {
    fn default() -> RawEmail {
        RawEmail {
            enabled: false,
            smtp_server: None,
            port: None,
            security: SmtpSecurity::Tls,
            user: None,
            password: None,
            password_file: None,
            from: None,
            to: Vec::new(),
            tls_ca_file: None,
            tls_pin_sha256: None,
            allow_insecure: false,
            outbox: None,
            templates_dir: None,
            templates: BTreeMap::new(),
            dedupe_window: Duration::from_secs(15 * 60),
        }
    }
}

/// `[alerts]`: the channels beyond email (`[[alerts.channels]]`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawAlerts {
    /// One table per channel.
    pub channels: Vec<RawChannel>,
}

impl RawAlerts {
    /// No channel.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

/// A Telegram chat: its number, or `@channelname`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum RawChatId {
    /// A numeric chat id (negative for groups).
    Number(i64),
    /// `@channelname`, or a number written as a string.
    Text(String),
}

/// `[[alerts.channels]]`: one channel. Secrets come from files only.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawChannel {
    /// Its name (letters, digits, `-`, `_`; not `email`): logs, `alert test --channel`, the
    /// outbox file.
    pub name: String,
    /// `webhook`, `slack` (also Mattermost), `discord`, `telegram` or `ntfy`.
    pub kind: Option<crate::alert::channel::KindName>,
    /// Where to POST; `https://` unless the host is loopback. Telegram: the Bot API's base
    /// (default `https://api.telegram.org`); ntfy: the server, with the topic unless `topic`.
    pub url: Option<String>,
    /// webhook: a file holding the HMAC-SHA256 key; the body is then signed in
    /// `X-Nodekeeper-Signature: sha256=HEX`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_secret_file: Option<PathBuf>,
    /// telegram: a file holding the bot's token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot_token_file: Option<PathBuf>,
    /// telegram: the chat to send to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<RawChatId>,
    /// ntfy: the topic (else the URL's path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// ntfy: a file holding an access token (sent as `Authorization: Bearer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The events it receives (`Event` names, and `test`); default: all.
    pub events: Vec<String>,
    /// The least severity it receives: `info` (default), `warning` or `critical`.
    pub min_severity: crate::alert::Severity,
    /// The same alert is sent at most once per window.
    #[serde(with = "duration")]
    pub dedupe_window: Duration,
    /// The file keeping undelivered alerts across restarts; default:
    /// `alert-outbox-NAME.json` beside the restart log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox: Option<PathBuf>,
    /// Templates overriding the shipped ones (the same catalog as email's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templates_dir: Option<PathBuf>,
    /// A PEM file of CA certificates trusted besides the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (not with
    /// `tls_ca_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_pin_sha256: Option<String>,
}

impl Default for RawChannel {
    fn default() -> RawChannel {
        RawChannel {
            name: String::new(),
            kind: None,
            url: None,
            hmac_secret_file: None,
            bot_token_file: None,
            chat_id: None,
            topic: None,
            token_file: None,
            events: Vec::new(),
            min_severity: crate::alert::Severity::Info,
            dedupe_window: Duration::from_secs(15 * 60),
            outbox: None,
            templates_dir: None,
            tls_ca_file: None,
            tls_pin_sha256: None,
        }
    }
}

impl std::fmt::Debug for RawChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A Slack or Discord URL's path is its secret.
        let url = self
            .url
            .as_deref()
            .map(|text| match reqwest::Url::parse(text) {
                Ok(url) => crate::alert::channel::shown_url(&url),
                Err(_) => "<unparsable>".to_string(),
            });
        f.debug_struct("RawChannel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &url)
            .field("hmac_secret_file", &self.hmac_secret_file)
            .field("bot_token_file", &self.bot_token_file)
            .field("chat_id", &self.chat_id)
            .field("topic", &self.topic)
            .field("token_file", &self.token_file)
            .field("events", &self.events)
            .field("min_severity", &self.min_severity)
            .field("dedupe_window", &self.dedupe_window)
            .field("outbox", &self.outbox)
            .field("templates_dir", &self.templates_dir)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_pin_sha256", &self.tls_pin_sha256)
            .finish()
    }
}

/// An inline email template.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    /// The subject line template.
    pub subject: String,
    /// The body template.
    pub message: String,
}

/// The restart log.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawRestartLog {
    /// CSV file, relative to the config file.
    pub path: PathBuf,
}

impl Default for RawRestartLog {
    fn default() -> RawRestartLog {
        RawRestartLog {
            path: PathBuf::from("restarts.csv"),
        }
    }
}

/// The operator HTTP API.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RawApi {
    /// Listen address; loopback unless you mean otherwise.
    pub listen: String,
    /// Bearer token of mutating endpoints inline (discouraged), or `token_file`, or env
    /// `NODEKEEPER__API__TOKEN`.
    pub token: Option<String>,
    /// A file holding the token.
    pub token_file: Option<PathBuf>,
    /// Allow a `listen` address that is not loopback (the API reachable from other hosts); it
    /// then needs a token of at least 32 characters. Default false.
    pub allow_public: bool,
}

impl Default for RawApi {
    fn default() -> RawApi {
        RawApi {
            listen: "127.0.0.1:9180".into(),
            token: None,
            token_file: None,
            allow_public: false,
        }
    }
}

/// `Some(<redacted>)` for a secret that is set: `Debug` of the sections that hold one.
fn shown_secret(secret: &Option<String>) -> Option<crate::secret::Secret> {
    secret.as_ref().map(|_| crate::secret::Secret::new(""))
}

// The sections holding a secret (or a URL that might carry credentials) have a `Debug` that
// shows neither; every other field is shown as derived.
impl std::fmt::Debug for RawSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSupervisor")
            .field("url", &crate::http::redact_url(&self.url))
            .field("user", &self.user)
            .field("password", &shown_secret(&self.password))
            .field("password_file", &self.password_file)
            .field("timeout", &self.timeout)
            .field("wait_timeout", &self.wait_timeout)
            .finish()
    }
}

impl std::fmt::Debug for RawPoolTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPoolTool")
            .field("enabled", &self.enabled)
            .field("status_url", &crate::http::redact_url(&self.status_url))
            .field("status_refresh", &self.status_refresh)
            .field("status_max_age", &self.status_max_age)
            .field("reference_max_lead", &self.reference_max_lead)
            .field("tip_url", &crate::http::redact_url(&self.tip_url))
            .field("tip_interval", &self.tip_interval)
            .field("slots_url", &crate::http::redact_url(&self.slots_url))
            .field("send_slots_after", &self.send_slots_after)
            .field("slots_verification", &self.slots_verification)
            .field("gpg", &self.gpg)
            .field("key_path", &self.key_path)
            .field("user_id", &shown_secret(&self.user_id))
            .field("pool_id", &self.pool_id)
            .field("pool_id_file", &self.pool_id_file)
            .field("genesis_hash", &self.genesis_hash)
            .field("genesis_hash_file", &self.genesis_hash_file)
            .finish()
    }
}

impl std::fmt::Debug for RawEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawEmail")
            .field("enabled", &self.enabled)
            .field("smtp_server", &self.smtp_server)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.user)
            .field("password", &shown_secret(&self.password))
            .field("password_file", &self.password_file)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("templates_dir", &self.templates_dir)
            .field("templates", &self.templates)
            .field("dedupe_window", &self.dedupe_window)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RawApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawApi")
            .field("listen", &self.listen)
            .field("token", &shown_secret(&self.token))
            .field("token_file", &self.token_file)
            .field("allow_public", &self.allow_public)
            .finish()
    }
}

//! The daemon's Prometheus metrics, kept with `prometheus-client` and served by the API on
//! `GET /metrics` in the Prometheus text format (0.0.4, which every Prometheus scrapes and
//! `promtool check metrics` lints). The control loop updates them once per tick from what it
//! has already observed (no extra calls), plus a counter per start/restart it makes; the API only
//! encodes them. This module also keeps what `GET /healthz` needs: when the loop last ticked, its
//! interval and how many nodes were in sync.
//!
//! Names (prefix `nodekeeper_`): see [`Metrics::new`].

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `state` label values of `node_program_state`: supervisord's state names, then the
/// status's `MISSING` (no such program) and `UNREACHABLE` (its supervisord did not answer).
pub const PROGRAM_STATES: [&str; 10] = [
    "STOPPED",
    "STARTING",
    "RUNNING",
    "BACKOFF",
    "STOPPING",
    "EXITED",
    "FATAL",
    "UNKNOWN",
    "MISSING",
    "UNREACHABLE",
];

/// `{node="..."}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    /// The node's name.
    pub node: String,
}

/// `{chain="..."}`: `jormungandr`, `nodeos` or `cardano`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainLabel {
    /// The pool's chain.
    pub chain: String,
}

/// `{node="...", reason="..."}`: `reason` is `policy::Reason::label()`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestartLabels {
    /// The node's name.
    pub node: String,
    /// The rule's stable label (`crashed`, `lag`, `operator`, ...).
    pub reason: String,
}

/// `{node="...", result="..."}` of `backups_total`: `result` is `ok` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackupLabels {
    /// The node's name.
    pub node: String,
    /// `ok` or `failed`.
    pub result: String,
}

/// `{node="...", result="...", automatic="..."}` of `restores_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestoreLabels {
    /// The node's name.
    pub node: String,
    /// `ok` or `failed`.
    pub result: String,
    /// `true` when nodekeeper restored on its own (a corrupt database), `false` when asked.
    pub automatic: String,
}

/// `{node="...", kind="..."}`: `kind` is `ProbeError::kind()`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeErrorLabels {
    /// The node's name.
    pub node: String,
    /// `timeout`, `refused`, `connect`, `http_status`, `malformed`.
    pub kind: String,
}

/// `{node="...", state="..."}`: `state` is one of [`PROGRAM_STATES`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProgramStateLabels {
    /// The node's name.
    pub node: String,
    /// One of [`PROGRAM_STATES`].
    pub state: String,
}

/// `{version="...", os="...", arch="..."}` of `build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version (`nodekeeper --version`).
    pub version: String,
    /// The target's operating system (`linux`).
    pub os: String,
    /// The target's architecture (`x86_64`).
    pub arch: String,
}

/// `{supervisor="..."}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SupervisorLabel {
    /// The supervisord endpoint's name (`default` for `[supervisor]`).
    pub supervisor: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Labels of the cluster's series: this instance. Not `instance`, which Prometheus gives every
/// scraped series (the target's address).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabel {
    /// `cluster.name`.
    pub cluster_instance: String,
}

/// Labels of `cluster_info`: this instance, its election state and the elected instance.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterInfoLabels {
    /// `cluster.name`.
    pub cluster_instance: String,
    /// `elected`, `follower`, `campaigning` or `no lease`.
    pub election: String,
    /// The elected instance (empty when unknown).
    pub leader: String,
}

/// One node as the loop saw it this tick.
#[derive(Clone, Debug, Default)]
pub struct NodeSample {
    /// The node's name.
    pub node: String,
    /// The program's state as the status names it, one of [`PROGRAM_STATES`] (supervisord's
    /// name, `MISSING` or `UNREACHABLE`).
    pub program_state: &'static str,
    /// Tip height (only while Running).
    pub height: Option<u64>,
    /// The last irreversible block, where the chain reports one (nodeos: LIB).
    pub irreversible_height: Option<u64>,
    /// Blocks behind the reference.
    pub lag: Option<u64>,
    /// Slot time of the tip block.
    pub last_block_time: Option<SystemTime>,
    /// The probe failed this tick, and how.
    pub probe_error: Option<&'static str>,
    /// Held.
    pub held: bool,
    /// Holds the pool's key (Jormungandr: leader; nodeos: unpaused producer; cardano: forging).
    pub leader: bool,
    /// Running, near the reference and not stale.
    pub in_sync: bool,
    /// Forging key periods left, as the node reports them (cardano-node's `remainingKESPeriods`).
    pub kes_periods: Option<u64>,
}

/// Everything one tick publishes.
#[derive(Clone, Debug)]
pub struct TickSample {
    /// When the tick observed.
    pub now: SystemTime,
    /// How long the tick took.
    pub duration: Duration,
    /// The tick interval in force.
    pub interval: Duration,
    /// Every configured node.
    pub nodes: Vec<NodeSample>,
    /// Each supervisord asked this tick: answered or not (skipped ones are absent).
    pub supervisors: Vec<(String, bool)>,
    /// The reference height lag is measured against.
    pub reference: Option<u64>,
    /// The external (PoolTool) reference and when it was fetched.
    pub external_reference: Option<(u64, SystemTime)>,
    /// The pool's chain (`jormungandr`, `nodeos`, `cardano`).
    pub chain: String,
    /// The pool's next slot (nodeos: the first block of our producer's next turn) as one number
    /// (the absolute slot; nodeos: the block number) and when it starts; `None` when unknown.
    pub next_slot: Option<(u64, SystemTime)>,
    /// `[leadership]` is enabled: one node should hold the pool's key.
    pub leadership: bool,
}

/// What `GET /healthz` needs, as of the last tick.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    /// When the last tick ended (monotonic), if any.
    pub last_tick: Option<Instant>,
    /// The tick interval in force.
    pub interval: Duration,
    /// How long the last tick took.
    pub duration: Duration,
    /// Nodes in sync at the last tick.
    pub in_sync: usize,
    /// Configured nodes.
    pub nodes: usize,
}

/// The registry and its metrics. Shared (`Arc`) between the loop and the API.
pub struct Metrics {
    registry: Registry,
    node_height: Family<NodeLabel, Gauge>,
    node_irreversible_height: Family<NodeLabel, Gauge>,
    chain_info: Family<ChainLabel, Gauge>,
    next_slot: Family<ChainLabel, Gauge>,
    next_slot_in: Family<ChainLabel, FloatGauge>,
    node_lag: Family<NodeLabel, Gauge>,
    node_block_age: Family<NodeLabel, FloatGauge>,
    node_program_state: Family<ProgramStateLabels, Gauge>,
    build_info: Family<BuildLabels, Gauge>,
    leadership_enabled: Gauge,
    node_leader: Family<NodeLabel, Gauge>,
    node_held: Family<NodeLabel, Gauge>,
    node_in_sync: Family<NodeLabel, Gauge>,
    kes_periods: Family<NodeLabel, Gauge>,
    restarts: Family<RestartLabels, Counter>,
    backups: Family<BackupLabels, Counter>,
    backup_last_success: Family<NodeLabel, FloatGauge>,
    backup_last_bytes: Family<NodeLabel, Gauge>,
    restores: Family<RestoreLabels, Counter>,
    probe_errors: Family<ProbeErrorLabels, Counter>,
    supervisor_up: Family<SupervisorLabel, Gauge>,
    cluster_elected: Family<InstanceLabel, Gauge>,
    cluster_etcd_up: Family<InstanceLabel, Gauge>,
    cluster_instances: Family<InstanceLabel, Gauge>,
    cluster_info: Family<ClusterInfoLabels, Gauge>,
    tick_duration: Histogram,
    last_tick: FloatGauge,
    reference_height: Gauge,
    external_reference_height: Gauge,
    external_reference_age: FloatGauge,
    nodes_in_sync: Gauge<i64, AtomicI64>,
    known_nodes: Mutex<BTreeSet<String>>,
    liveness: Mutex<Liveness>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric (prefix `nodekeeper_`):
    ///
    /// | name | type | labels |
    /// |---|---|---|
    /// | `node_height` | gauge | node |
    /// | `node_irreversible_height` | gauge (nodeos: LIB) | node |
    /// | `node_lag_blocks` | gauge | node |
    /// | `node_last_block_age_seconds` | gauge | node |
    /// | `node_program_state` | gauge, 1 for the program's state, 0 for the others | node, state |
    /// | `node_leader` | gauge 0/1 (leader, unpaused producer, forging) | node |
    /// | `node_held` | gauge 0/1 | node |
    /// | `node_in_sync` | gauge 0/1 | node |
    /// | `restarts_total` | counter | node, reason |
    /// | `backups_total` | counter | node, result (`ok`, `failed`) |
    /// | `backup_last_success_timestamp_seconds` | gauge (Unix time) | node |
    /// | `backup_last_bytes` | gauge (the last good archive's size) | node |
    /// | `restores_total` | counter | node, result (`ok`, `failed`), automatic (`true`, `false`) |
    /// | `probe_errors_total` | counter | node, kind |
    /// | `supervisor_up` | gauge 0/1 | supervisor |
    /// | `tick_duration_seconds` | histogram | |
    /// | `last_tick_timestamp_seconds` | gauge | |
    /// | `nodes_in_sync` | gauge | |
    /// | `reference_height` | gauge | |
    /// | `chain_info` | gauge, always 1 | chain |
    /// | `cluster_elected`, `cluster_etcd_up`, `cluster_instances` | gauge (`[cluster]`) | cluster_instance |
    /// | `cluster_info` | gauge, always 1 (`[cluster]`) | cluster_instance, election, leader |
    /// | `next_slot_number`, `next_slot_seconds` | gauge (absent when unknown) | chain |
    /// | `external_reference_height`, `external_reference_age_seconds` | gauge | |
    /// | `leadership_enabled` | gauge 0/1 (`[leadership]` enabled) | |
    /// | `build_info` | gauge, always 1 | version, os, arch |
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("nodekeeper");
        let metrics = Metrics {
            registry: Registry::default(),
            node_height: Family::default(),
            node_irreversible_height: Family::default(),
            chain_info: Family::default(),
            next_slot: Family::default(),
            next_slot_in: Family::default(),
            node_lag: Family::default(),
            node_block_age: Family::default(),
            node_program_state: Family::default(),
            build_info: Family::default(),
            leadership_enabled: Gauge::default(),
            node_leader: Family::default(),
            node_held: Family::default(),
            node_in_sync: Family::default(),
            kes_periods: Family::default(),
            restarts: Family::default(),
            backups: Family::default(),
            backup_last_success: Family::default(),
            backup_last_bytes: Family::default(),
            restores: Family::default(),
            probe_errors: Family::default(),
            supervisor_up: Family::default(),
            cluster_elected: Family::default(),
            cluster_etcd_up: Family::default(),
            cluster_instances: Family::default(),
            cluster_info: Family::default(),
            tick_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            last_tick: FloatGauge::default(),
            reference_height: Gauge::default(),
            external_reference_height: Gauge::default(),
            external_reference_age: FloatGauge::default(),
            nodes_in_sync: Gauge::default(),
            known_nodes: Mutex::new(BTreeSet::new()),
            liveness: Mutex::new(Liveness {
                last_tick: None,
                interval: Duration::from_secs(1),
                duration: Duration::ZERO,
                in_sync: 0,
                nodes: 0,
            }),
        };
        registry.register(
            "node_height",
            "Tip height of the node (while Running)",
            metrics.node_height.clone(),
        );
        registry.register(
            "node_irreversible_height",
            "The node's last irreversible block, where the chain reports one (nodeos: LIB)",
            metrics.node_irreversible_height.clone(),
        );
        registry.register(
            "node_lag_blocks",
            "Blocks the node is behind the reference",
            metrics.node_lag.clone(),
        );
        registry.register_with_unit(
            "node_last_block_age",
            "Seconds since the slot time of the node's tip block",
            Unit::Seconds,
            metrics.node_block_age.clone(),
        );
        registry.register(
            "node_program_state",
            "1 for the state of the node's program (supervisord's state name, MISSING: no such \
             program, UNREACHABLE: its supervisord did not answer), 0 for the other states",
            metrics.node_program_state.clone(),
        );
        registry.register(
            "build_info",
            "The running nodekeeper's version and target (always 1)",
            metrics.build_info.clone(),
        );
        metrics
            .build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                os: std::env::consts::OS.into(),
                arch: std::env::consts::ARCH.into(),
            })
            .set(1);
        registry.register(
            "leadership_enabled",
            "1 when [leadership] is enabled (one node should hold the pool's key)",
            metrics.leadership_enabled.clone(),
        );
        registry.register(
            "node_leader",
            "1 when the node holds the pool's key (Jormungandr: leader; nodeos: unpaused \
             producer; cardano: forging)",
            metrics.node_leader.clone(),
        );
        registry.register(
            "node_held",
            "1 when the node is held (left alone) until released",
            metrics.node_held.clone(),
        );
        registry.register(
            "node_in_sync",
            "1 when the node is Running near the reference",
            metrics.node_in_sync.clone(),
        );
        registry.register(
            "kes_periods_remaining",
            "KES periods left on the node's operational certificate (cardano-node's \
             remainingKESPeriods; absent while the node reports none)",
            metrics.kes_periods.clone(),
        );
        registry.register(
            "restarts",
            "Starts and restarts made by nodekeeper, by node and reason",
            metrics.restarts.clone(),
        );
        registry.register(
            "backups",
            "Backups of node data (stop, archive, start), by node and result (ok or failed)",
            metrics.backups.clone(),
        );
        registry.register_with_unit(
            "backup_last_success_timestamp",
            "Unix time of the node's last successful backup (absent before the first one since \
             nodekeeper started)",
            Unit::Seconds,
            metrics.backup_last_success.clone(),
        );
        registry.register_with_unit(
            "backup_last",
            "Size of the node's last successful backup archive",
            Unit::Bytes,
            metrics.backup_last_bytes.clone(),
        );
        registry.register(
            "restores",
            "Restores of node data from a backup, by node, result (ok or failed) and whether \
             nodekeeper restored on its own (automatic=\"true\": a corrupt database)",
            metrics.restores.clone(),
        );
        registry.register(
            "probe_errors",
            "Failed probes of node REST APIs, by node and kind",
            metrics.probe_errors.clone(),
        );
        registry.register(
            "supervisor_up",
            "1 when supervisord answered at the last tick",
            metrics.supervisor_up.clone(),
        );
        registry.register_with_unit(
            "tick_duration",
            "Duration of a control-loop tick (observe, decide, act, record)",
            Unit::Seconds,
            metrics.tick_duration.clone(),
        );
        registry.register_with_unit(
            "last_tick_timestamp",
            "Unix time of the last control-loop tick",
            Unit::Seconds,
            metrics.last_tick.clone(),
        );
        registry.register(
            "nodes_in_sync",
            "Nodes Running near the reference",
            metrics.nodes_in_sync.clone(),
        );
        registry.register(
            "reference_height",
            "The height lag is measured against (best local node or fresh PoolTool tip)",
            metrics.reference_height.clone(),
        );
        registry.register(
            "external_reference_height",
            "The last PoolTool majority max tip",
            metrics.external_reference_height.clone(),
        );
        registry.register_with_unit(
            "external_reference_age",
            "Seconds since the PoolTool tip was fetched",
            Unit::Seconds,
            metrics.external_reference_age.clone(),
        );
        registry.register(
            "cluster_elected",
            "With [cluster]: 1 while this instance is elected (it may let one of its nodes produce)",
            metrics.cluster_elected.clone(),
        );
        registry.register(
            "cluster_etcd_up",
            "With [cluster]: 1 when etcd answered the session's last call",
            metrics.cluster_etcd_up.clone(),
        );
        registry.register(
            "cluster_instances",
            "With [cluster]: instances whose snapshot is live in etcd, this one included",
            metrics.cluster_instances.clone(),
        );
        registry.register(
            "cluster_info",
            "With [cluster]: this instance's election state and the elected instance (always 1)",
            metrics.cluster_info.clone(),
        );
        registry.register(
            "chain_info",
            "The pool's chain (always 1)",
            metrics.chain_info.clone(),
        );
        registry.register(
            "next_slot_number",
            "The pool's next slot as a number (cardano: the absolute slot; nodeos: the first block \
             of our producer's next turn)",
            metrics.next_slot.clone(),
        );
        registry.register_with_unit(
            "next_slot",
            "Seconds until the pool's next slot (nodeos: our producer's next turn)",
            Unit::Seconds,
            metrics.next_slot_in.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// One start or restart made by nodekeeper (`reason` = `Reason::label()`).
    pub fn count_restart(&self, node: &str, reason: &str) {
        self.restarts
            .get_or_create(&RestartLabels {
                node: node.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// One backup of `node`'s data, finished at `at`: `ok` with the archive's size in `bytes`
    /// (its time and size become the node's last success), or failed (`bytes` unused).
    pub fn record_backup(&self, node: &str, ok: bool, bytes: u64, at: SystemTime) {
        self.backups
            .get_or_create(&BackupLabels {
                node: node.to_string(),
                result: result(ok).to_string(),
            })
            .inc();
        if ok {
            let label = NodeLabel {
                node: node.to_string(),
            };
            let unix = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            self.backup_last_success.get_or_create(&label).set(unix);
            self.backup_last_bytes
                .get_or_create(&label)
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }

    /// One restore of `node`'s data, `automatic` when nodekeeper did it on its own.
    pub fn record_restore(&self, node: &str, ok: bool, automatic: bool) {
        self.restores
            .get_or_create(&RestoreLabels {
                node: node.to_string(),
                result: result(ok).to_string(),
                automatic: automatic.to_string(),
            })
            .inc();
    }

    /// Publishes the cluster's state as this instance sees it (`[cluster]`).
    pub fn record_cluster(&self, line: &crate::status::ClusterLine) {
        let instance = InstanceLabel {
            cluster_instance: line.instance.clone(),
        };
        self.cluster_elected
            .get_or_create(&instance)
            .set(i64::from(line.election == "elected"));
        self.cluster_etcd_up
            .get_or_create(&instance)
            .set(i64::from(line.etcd_reachable));
        self.cluster_instances
            .get_or_create(&instance)
            .set(i64::try_from(line.instances.len()).unwrap_or(i64::MAX));
        let info = ClusterInfoLabels {
            cluster_instance: line.instance.clone(),
            election: line.election.clone(),
            leader: line.leader.clone().unwrap_or_default(),
        };
        if self.cluster_info.get(&info).is_none() {
            self.cluster_info.clear();
        }
        self.cluster_info.get_or_create(&info).set(1);
    }

    /// Publishes one tick.
    pub fn record_tick(&self, tick: &TickSample) {
        self.tick_duration.observe(tick.duration.as_secs_f64());
        let now = tick.now;
        let unix = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.last_tick.set(unix);
        let present: BTreeSet<String> = tick.nodes.iter().map(|n| n.node.clone()).collect();
        {
            let mut known = self.known_nodes.lock().unwrap_or_else(|p| p.into_inner());
            for gone in known.difference(&present) {
                self.forget(gone);
            }
            *known = present;
        }
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for sample in &tick.nodes {
            let label = NodeLabel {
                node: sample.node.clone(),
            };
            set_or_remove(&self.node_height, &label, sample.height.map(as_i64));
            set_or_remove(
                &self.node_irreversible_height,
                &label,
                sample.irreversible_height.map(as_i64),
            );
            set_or_remove(&self.node_lag, &label, sample.lag.map(as_i64));
            set_or_remove(&self.kes_periods, &label, sample.kes_periods.map(as_i64));
            match sample.last_block_time {
                Some(at) => {
                    let age = now.duration_since(at).unwrap_or_default().as_secs_f64();
                    self.node_block_age.get_or_create(&label).set(age);
                }
                None => {
                    self.node_block_age.remove(&label);
                }
            }
            for state in PROGRAM_STATES {
                self.node_program_state
                    .get_or_create(&ProgramStateLabels {
                        node: sample.node.clone(),
                        state: state.to_string(),
                    })
                    .set(i64::from(sample.program_state == state));
            }
            self.node_leader
                .get_or_create(&label)
                .set(i64::from(sample.leader));
            self.node_held
                .get_or_create(&label)
                .set(i64::from(sample.held));
            self.node_in_sync
                .get_or_create(&label)
                .set(i64::from(sample.in_sync));
            if let Some(kind) = sample.probe_error {
                self.probe_errors
                    .get_or_create(&ProbeErrorLabels {
                        node: sample.node.clone(),
                        kind: kind.to_string(),
                    })
                    .inc();
            }
        }
        for (name, up) in &tick.supervisors {
            self.supervisor_up
                .get_or_create(&SupervisorLabel {
                    supervisor: name.clone(),
                })
                .set(i64::from(*up));
        }
        self.reference_height
            .set(tick.reference.map(as_i64).unwrap_or(0));
        self.leadership_enabled.set(i64::from(tick.leadership));
        if let Some((height, fetched_at)) = tick.external_reference {
            self.external_reference_height.set(as_i64(height));
            self.external_reference_age.set(
                now.duration_since(fetched_at)
                    .unwrap_or_default()
                    .as_secs_f64(),
            );
        }
        let chain = ChainLabel {
            chain: tick.chain.clone(),
        };
        if self.chain_info.get(&chain).is_none() {
            // A reload to another chain: the old chain's series go.
            self.chain_info.clear();
            self.next_slot.clear();
            self.next_slot_in.clear();
        }
        self.chain_info.get_or_create(&chain).set(1);
        match tick.next_slot {
            Some((number, at)) => {
                self.next_slot.get_or_create(&chain).set(as_i64(number));
                self.next_slot_in
                    .get_or_create(&chain)
                    .set(at.duration_since(now).unwrap_or_default().as_secs_f64());
            }
            None => {
                self.next_slot.remove(&chain);
                self.next_slot_in.remove(&chain);
            }
        }
        let in_sync = tick.nodes.iter().filter(|n| n.in_sync).count();
        self.nodes_in_sync.set(as_i64(in_sync as u64));
        let mut liveness = self.liveness.lock().unwrap_or_else(|p| p.into_inner());
        *liveness = Liveness {
            last_tick: Some(Instant::now()),
            interval: tick.interval,
            duration: tick.duration,
            in_sync,
            nodes: tick.nodes.len(),
        };
    }

    fn forget(&self, node: &str) {
        let label = NodeLabel {
            node: node.to_string(),
        };
        for family in [
            &self.node_height,
            &self.node_irreversible_height,
            &self.node_lag,
            &self.node_leader,
            &self.node_held,
            &self.node_in_sync,
            &self.kes_periods,
            &self.backup_last_bytes,
        ] {
            family.remove(&label);
        }
        self.node_block_age.remove(&label);
        self.backup_last_success.remove(&label);
        for state in PROGRAM_STATES {
            self.node_program_state.remove(&ProgramStateLabels {
                node: node.to_string(),
                state: state.to_string(),
            });
        }
    }

    /// What `GET /healthz` judges.
    pub fn liveness(&self) -> Liveness {
        *self.liveness.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Prometheus text (format 0.0.4) of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        to_prometheus_text(&text)
    }

    /// The current value of `restarts_total{node, reason}` (tests, diagnostics).
    pub fn restarts(&self, node: &str, reason: &str) -> u64 {
        self.restarts
            .get(&RestartLabels {
                node: node.to_string(),
                reason: reason.to_string(),
            })
            .map_or(0, |counter| counter.get())
    }
}

/// prometheus-client's OpenMetrics text as the classic Prometheus text format: a counter's
/// `HELP`/`TYPE` name its `_total` samples, and the `UNIT` and `EOF` lines (OpenMetrics only) go.
/// Everything else (gauges, histograms, label and value syntax) is the same in both.
fn to_prometheus_text(openmetrics: &str) -> String {
    let mut counters = BTreeSet::new();
    for line in openmetrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"))
        {
            counters.insert(name.to_string());
        }
    }
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let header = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match header {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                text.push_str(&format!("{prefix}{name}{total} {tail}\n"));
            }
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

/// The `result` label: `ok` or `failed`.
fn result(ok: bool) -> &'static str {
    if ok { "ok" } else { "failed" }
}

fn set_or_remove(family: &Family<NodeLabel, Gauge>, label: &NodeLabel, value: Option<i64>) {
    match value {
        Some(value) => {
            family.get_or_create(label).set(value);
        }
        None => {
            family.remove(label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_is_encoded_and_vanished_nodes_are_forgotten() {
        let metrics = Metrics::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let tick = TickSample {
            now,
            duration: Duration::from_millis(3),
            interval: Duration::from_secs(1),
            nodes: vec![
                NodeSample {
                    node: "node1".into(),
                    program_state: "RUNNING",
                    height: Some(42),
                    lag: Some(0),
                    last_block_time: Some(now - Duration::from_secs(2)),
                    in_sync: true,
                    kes_periods: Some(13),
                    ..NodeSample::default()
                },
                NodeSample {
                    node: "node2".into(),
                    program_state: "UNREACHABLE",
                    probe_error: Some("refused"),
                    held: true,
                    ..NodeSample::default()
                },
            ],
            supervisors: vec![("default".into(), true)],
            reference: Some(42),
            external_reference: None,
            chain: "jormungandr".into(),
            next_slot: None,
            leadership: false,
        };
        metrics.record_tick(&tick);
        metrics.count_restart("node2", "operator");
        let text = metrics.encode();
        for line in [
            "nodekeeper_node_height{node=\"node1\"} 42",
            "nodekeeper_node_last_block_age_seconds{node=\"node1\"} 2.0",
            "nodekeeper_node_program_state{node=\"node1\",state=\"RUNNING\"} 1",
            "nodekeeper_node_program_state{node=\"node1\",state=\"STOPPED\"} 0",
            "nodekeeper_node_program_state{node=\"node2\",state=\"UNREACHABLE\"} 1",
            "nodekeeper_node_program_state{node=\"node2\",state=\"RUNNING\"} 0",
            "nodekeeper_leadership_enabled 0",
            "nodekeeper_node_held{node=\"node2\"} 1",
            "nodekeeper_restarts_total{node=\"node2\",reason=\"operator\"} 1",
            "nodekeeper_probe_errors_total{node=\"node2\",kind=\"refused\"} 1",
            "nodekeeper_supervisor_up{supervisor=\"default\"} 1",
            "nodekeeper_nodes_in_sync 1",
            "nodekeeper_kes_periods_remaining{node=\"node1\"} 13",
            "nodekeeper_tick_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(!text.contains("nodekeeper_node_height{node=\"node2\"}"));
        assert!(!text.contains("nodekeeper_kes_periods_remaining{node=\"node2\"}"));
        assert_eq!(metrics.liveness().in_sync, 1);

        let only_node2 = TickSample {
            nodes: vec![tick.nodes[1].clone()],
            ..tick
        };
        metrics.record_tick(&only_node2);
        let text = metrics.encode();
        assert!(!text.contains("node=\"node1\""), "{text}");
        assert_eq!(metrics.restarts("node2", "operator"), 1);
    }

    #[test]
    fn a_chains_facts_are_gauges_with_its_label() {
        let metrics = Metrics::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let tick = TickSample {
            now,
            duration: Duration::from_millis(3),
            interval: Duration::from_secs(1),
            nodes: vec![NodeSample {
                node: "bp1".into(),
                program_state: "RUNNING",
                height: Some(5_000),
                irreversible_height: Some(4_800),
                lag: Some(0),
                leader: true,
                in_sync: true,
                ..NodeSample::default()
            }],
            supervisors: vec![("default".into(), true)],
            reference: Some(5_000),
            external_reference: None,
            chain: "nodeos".into(),
            next_slot: Some((5_052, now + Duration::from_secs(26))),
            leadership: true,
        };
        metrics.record_tick(&tick);
        let text = metrics.encode();
        for line in [
            "nodekeeper_node_height{node=\"bp1\"} 5000",
            "nodekeeper_node_irreversible_height{node=\"bp1\"} 4800",
            "nodekeeper_node_lag_blocks{node=\"bp1\"} 0",
            "nodekeeper_node_leader{node=\"bp1\"} 1",
            "nodekeeper_chain_info{chain=\"nodeos\"} 1",
            "nodekeeper_next_slot_number{chain=\"nodeos\"} 5052",
            "nodekeeper_next_slot_seconds{chain=\"nodeos\"} 26.0",
            "nodekeeper_leadership_enabled 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // The next slot unknown: its series go; a reload to another chain drops the old label.
        metrics.record_tick(&TickSample {
            chain: "cardano".into(),
            next_slot: None,
            ..tick
        });
        let text = metrics.encode();
        assert!(
            text.contains("nodekeeper_chain_info{chain=\"cardano\"} 1"),
            "{text}"
        );
        assert!(!text.contains("chain=\"nodeos\""), "{text}");
        assert!(!text.contains("nodekeeper_next_slot_seconds{"), "{text}");
    }

    #[test]
    fn the_text_is_the_classic_format_with_total_counters_and_build_info() {
        let metrics = Metrics::new();
        metrics.count_restart("node1", "lag");
        let text = metrics.encode();
        for line in [
            "# HELP nodekeeper_restarts_total Starts and restarts",
            "# TYPE nodekeeper_restarts_total counter",
            "nodekeeper_restarts_total{node=\"node1\",reason=\"lag\"} 1",
            "# TYPE nodekeeper_build_info gauge",
            "# TYPE nodekeeper_tick_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        let build = format!(
            "nodekeeper_build_info{{version=\"{}\",os=\"{}\",arch=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        assert!(text.contains(&build), "{build} missing from:\n{text}");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("# UNIT"), "{text}");
        assert!(
            !text.contains("# TYPE nodekeeper_restarts counter"),
            "{text}"
        );
    }

    #[test]
    fn backups_and_restores_are_counted_by_result_and_the_last_success_is_kept() {
        let metrics = Metrics::new();
        // Like every family, absent until its first sample.
        assert!(!metrics.encode().contains("backup"));
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        metrics.record_backup("bp1", true, 123_000_000, at(1_000));
        metrics.record_backup("bp1", false, 0, at(2_000));
        metrics.record_backup("bp1", true, 124_000_000, at(3_000));
        metrics.record_backup("bp2", false, 0, at(3_000));
        metrics.record_restore("bp1", true, true);
        metrics.record_restore("bp1", false, false);
        let text = metrics.encode();
        for line in [
            "nodekeeper_backups_total{node=\"bp1\",result=\"ok\"} 2",
            "nodekeeper_backups_total{node=\"bp1\",result=\"failed\"} 1",
            "nodekeeper_backups_total{node=\"bp2\",result=\"failed\"} 1",
            "nodekeeper_backup_last_success_timestamp_seconds{node=\"bp1\"} 3000.0",
            "nodekeeper_backup_last_bytes{node=\"bp1\"} 124000000",
            "nodekeeper_restores_total{node=\"bp1\",result=\"ok\",automatic=\"true\"} 1",
            "nodekeeper_restores_total{node=\"bp1\",result=\"failed\",automatic=\"false\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // A failed backup is no success: bp2 has no last success, bp1 keeps its own.
        assert!(
            !text.contains("nodekeeper_backup_last_success_timestamp_seconds{node=\"bp2\"}"),
            "{text}"
        );
        assert!(
            !text.contains("nodekeeper_backup_last_bytes{node=\"bp2\"}"),
            "{text}"
        );
        for line in [
            "# HELP nodekeeper_backups_total Backups of node data",
            "# TYPE nodekeeper_backups_total counter",
            "# TYPE nodekeeper_backup_last_success_timestamp_seconds gauge",
            "# TYPE nodekeeper_backup_last_bytes gauge",
            "# TYPE nodekeeper_restores_total counter",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn every_supervisord_state_is_a_program_state_label() {
        for state in crate::supervisor::ProcessState::ALL {
            assert!(PROGRAM_STATES.contains(&state.name()), "{state}");
        }
    }
}

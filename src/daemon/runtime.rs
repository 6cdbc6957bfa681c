//! Everything the daemon builds from a configuration, built whole or not at all: the supervisord
//! clients, one chain adapter per node (with the pool's leader secret when leadership is on), the
//! policy's settings, the PoolTool reporter, the reference feed (PoolTool's majority max, or a
//! nodeos `reference_url`'s head), the alert worker's setup (mailer,
//! templates, dedupe window) and the API token. A reload builds
//! a new `Runtime` and swaps it in only when every part was built (`reload`), so a rejected change
//! leaves every part as it was.
//!
//! How the clients and adapters are made is a seam (`Parts`): the real XML-RPC client and REST
//! adapters, or the in-memory doubles of the shell tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::RunOptions;
use crate::alert;
use crate::chain::jormungandr::{self, LeaderSecret};
use crate::chain::{ChainNode, ChainSettings, cardano, nodeos};
use crate::config::{Config, NodeSettings, PoolToolSettings, SupervisorSettings, Thresholds};
use crate::policy::{LeaderConfig, PolicyConfig};
use crate::pooltool::reference::{PoolToolSource, Reference, ReferenceError, ReferenceTracker};
use crate::pooltool::{Reporter, TipHeaders};
use crate::supervisor::Supervisor;

/// How the runtime's clients and adapters are made.
pub trait Parts: Send + Sync {
    /// A client of the supervisord `settings` describe.
    fn supervisor(&self, settings: &SupervisorSettings) -> Result<Arc<dyn Supervisor>, String>;

    /// The chain adapter of `node`; `secret` is the pool's leader secret when leadership is on;
    /// `supervisor` is the client of the supervisord that runs it (an adapter may signal it).
    fn node(
        &self,
        node: &NodeSettings,
        secret: Option<Arc<LeaderSecret>>,
        supervisor: Option<Arc<dyn Supervisor>>,
    ) -> Result<Arc<dyn ChainNode>, String>;

    /// How PoolTool's reporter reads a tip block's first bytes.
    fn tip_headers(&self) -> Arc<dyn TipHeaders>;

    /// The nodeos API client a reference node (`reference_url`) is asked with.
    fn nodeos_api(&self) -> nodeos::NodeosApi {
        nodeos::NodeosApi::new()
    }
}

/// The real parts: XML-RPC clients, the Jormungandr REST adapter (its HTTP clients made once
/// and shared by every node and every reload).
#[derive(Clone, Debug, Default)]
pub struct RealParts {
    jormungandr: jormungandr::Clients,
    nodeos: nodeos::NodeosApi,
    cardano: cardano::MetricsProbe,
}

impl Parts for RealParts {
    fn supervisor(&self, settings: &SupervisorSettings) -> Result<Arc<dyn Supervisor>, String> {
        settings
            .client()
            .map(|client| Arc::new(client) as Arc<dyn Supervisor>)
            .map_err(|e| format!("supervisord {}: {e}", settings.name))
    }

    fn node(
        &self,
        node: &NodeSettings,
        secret: Option<Arc<LeaderSecret>>,
        supervisor: Option<Arc<dyn Supervisor>>,
    ) -> Result<Arc<dyn ChainNode>, String> {
        match &node.chain {
            ChainSettings::Jormungandr(settings) => Ok(Arc::new(jormungandr::Node::new(
                settings.clone(),
                secret,
                &self.jormungandr,
            ))),
            ChainSettings::Nodeos(settings) => {
                Ok(Arc::new(nodeos::Node::new(settings.clone(), &self.nodeos)))
            }
            ChainSettings::Cardano(settings) => {
                let supervisor = supervisor.ok_or_else(|| {
                    format!(
                        "no client of supervisord {:?}, which signals it",
                        node.supervisor
                    )
                })?;
                let pool = settings
                    .pool
                    .as_ref()
                    .map(|pool| Arc::new(cardano::PoolFiles::new(pool)));
                Ok(Arc::new(cardano::Node::new(
                    settings.clone(),
                    pool,
                    supervisor,
                    node.program.clone(),
                    &self.cardano,
                )))
            }
        }
    }

    fn tip_headers(&self) -> Arc<dyn TipHeaders> {
        Arc::new(self.jormungandr.blocks().clone())
    }

    fn nodeos_api(&self) -> nodeos::NodeosApi {
        self.nodeos.clone()
    }
}

/// The policy's view of `config`: its thresholds and leadership settings.
pub fn policy_config(config: &Config) -> PolicyConfig {
    let mut policy = thresholds(&config.thresholds, &config.pooltool);
    reference_bounds(config, &mut policy);
    let l = &config.leadership;
    let t = &config.thresholds;
    policy.leader = LeaderConfig {
        enabled: l.enabled,
        switch_margin: l.switch_margin,
        slot_window: l.slot_window,
        refresh_min_gap: l.schedule_refresh_min_gap,
        // A window is near when it begins before the next tick has observed and acted.
        lookahead: t
            .tick_interval
            .saturating_mul(2)
            .saturating_add(t.probe_timeout),
        schedule_settle: config.pooltool.send_slots_after,
        epochs_free: config
            .nodes
            .first()
            .is_some_and(|node| node.jormungandr().is_none()),
        announce_slots: config
            .nodes
            .first()
            .is_none_or(|node| node.chain.chain() != crate::chain::ChainName::Nodeos),
    };
    policy.nodes = config.nodes.iter().map(|node| node.name.clone()).collect();
    // Only cardano-nodes report key periods; the key is refused for other chains.
    policy.kes_alert_periods = l.kes_alert_periods;
    policy
}

fn thresholds(t: &Thresholds, pooltool: &PoolToolSettings) -> PolicyConfig {
    PolicyConfig {
        thresholds: t.clone(),
        reference_max_age: pooltool.status_max_age,
        reference_max_lead: pooltool.reference_max_lead,
        leader: LeaderConfig::default(),
        nodes: Vec::new(),
        kes_alert_periods: crate::chain::cardano::DEFAULT_KES_ALERT_PERIODS,
    }
}

/// The bounds the policy trusts the reference within: a nodeos reference node's, or PoolTool's.
fn reference_bounds(config: &Config, policy: &mut PolicyConfig) {
    if config.reference_url.is_some() {
        policy.reference_max_age = nodeos::REFERENCE_MAX_AGE;
        policy.reference_max_lead = nodeos::REFERENCE_MAX_LEAD;
    }
}

impl Default for PolicyConfig {
    /// The documented defaults of `[thresholds]` and of `[pooltool]`'s reference keys.
    fn default() -> PolicyConfig {
        thresholds(&Thresholds::default(), &PoolToolSettings::default())
    }
}

/// Where the reference tip is fetched.
#[derive(Clone, Debug)]
pub enum ReferenceSource {
    /// PoolTool's majority max (Jormungandr, `pooltool.enabled`).
    PoolTool(PoolToolSource),
    /// Another nodeos's `get_info` head (`reference_url`).
    Nodeos {
        /// The API client.
        api: nodeos::NodeosApi,
        /// The reference node's API base.
        url: reqwest::Url,
        /// The timeout of one fetch.
        timeout: Duration,
    },
}

impl ReferenceSource {
    /// The configured address.
    pub fn url(&self) -> &reqwest::Url {
        match self {
            ReferenceSource::PoolTool(source) => source.url(),
            ReferenceSource::Nodeos { url, .. } => url,
        }
    }

    /// Fetches the reference height; `fetched_at` is `now`. A failure is the feed's own: it is
    /// logged and backed off, and never counts against a node.
    pub async fn fetch(&self, now: std::time::SystemTime) -> Result<Reference, ReferenceError> {
        match self {
            ReferenceSource::PoolTool(source) => source.fetch(now).await,
            ReferenceSource::Nodeos { api, url, timeout } => match api.info(url, *timeout).await {
                Ok(info) => Ok(Reference {
                    height: info.head_block_num,
                    fetched_at: now,
                }),
                Err(e) => Err(ReferenceError::Node(e.to_string())),
            },
        }
    }
}

/// The reference tip (PoolTool's majority max, or a nodeos reference node's head): its source,
/// its tracker, a fetch in flight.
pub struct ReferenceFeed {
    /// Where it is fetched.
    pub source: ReferenceSource,
    /// Refresh, backoff and freshness.
    pub tracker: ReferenceTracker,
    /// A fetch in flight.
    pub fetch: Option<oneshot::Receiver<Result<Reference, ReferenceError>>>,
}

/// Everything built from one configuration.
pub struct Runtime {
    /// The configuration.
    pub config: Arc<Config>,
    /// The policy's settings.
    pub policy: PolicyConfig,
    /// supervisord clients by endpoint name.
    pub supervisors: BTreeMap<String, Arc<dyn Supervisor>>,
    /// Chain adapters by node name.
    pub nodes: BTreeMap<String, Arc<dyn ChainNode>>,
    /// PoolTool tip and slot reports (when `pooltool.enabled`, not in a dry run).
    pub reporter: Option<Reporter>,
    /// The reference tip (with `reference_url`, or when `pooltool.enabled`).
    pub reference: Option<ReferenceFeed>,
    /// The API token (none in a dry run or with `--once`, which serve no API).
    pub token: Option<String>,
    /// The alert worker's setup (`email.enabled`, not in a dry run), handed to the worker when a
    /// reload swaps this runtime in.
    pub alerts: Option<alert::Setup>,
    /// Each `[[alerts.channels]]` worker's setup, by name (not in a dry run), handed to the
    /// channel's worker when a reload swaps this runtime in.
    pub channels: Vec<(String, alert::Setup)>,
}

impl Runtime {
    /// Builds every part of `config`; every problem when any part cannot be built.
    pub fn build(
        config: &Config,
        parts: &dyn Parts,
        options: RunOptions,
    ) -> Result<Runtime, Vec<String>> {
        let mut problems = Vec::new();
        let mut supervisors = BTreeMap::new();
        for (name, settings) in &config.supervisors {
            match parts.supervisor(settings) {
                Ok(client) => {
                    supervisors.insert(name.clone(), client);
                }
                Err(e) => problems.push(e),
            }
        }
        let secret = match (&config.leadership.secret_file, config.leadership.enabled) {
            (Some(path), true) => match jormungandr::secret::load(path) {
                Ok(secret) => Some(Arc::new(secret)),
                Err(e) => {
                    problems.push(format!("leadership.secret_file: {e}"));
                    None
                }
            },
            _ => None,
        };
        let mut nodes = BTreeMap::new();
        for node in &config.nodes {
            match parts.node(
                node,
                secret.clone(),
                supervisors.get(&node.supervisor).cloned(),
            ) {
                Ok(adapter) => {
                    nodes.insert(node.name.clone(), adapter);
                }
                Err(e) => problems.push(format!("{}: {e}", node.name)),
            }
        }
        let pooltool = &config.pooltool;
        let reference = if let Some(url) = &config.reference_url {
            Some(ReferenceFeed {
                source: ReferenceSource::Nodeos {
                    api: parts.nodeos_api(),
                    url: url.clone(),
                    timeout: config.thresholds.probe_timeout.max(Duration::from_secs(2)),
                },
                tracker: ReferenceTracker::new(
                    nodeos::REFERENCE_REFRESH,
                    nodeos::REFERENCE_MAX_AGE,
                ),
                fetch: None,
            })
        } else if pooltool.enabled {
            match reqwest::Url::parse(&pooltool.status_url) {
                Ok(url) => Some(ReferenceFeed {
                    source: ReferenceSource::PoolTool(PoolToolSource::new(
                        url,
                        config.thresholds.probe_timeout.max(Duration::from_secs(5)),
                    )),
                    tracker: ReferenceTracker::new(
                        pooltool.status_refresh,
                        pooltool.status_max_age,
                    ),
                    fetch: None,
                }),
                Err(e) => {
                    problems.push(format!("pooltool.status_url: {e}"));
                    None
                }
            }
        } else {
            None
        };
        let reporter = (pooltool.enabled && !options.dry_run).then(|| {
            Reporter::new(
                pooltool,
                pooltool.key_path.clone(),
                config.thresholds.probe_timeout.max(Duration::from_secs(10)),
                parts.tip_headers(),
            )
        });
        let token = if options.dry_run || options.once {
            None
        } else {
            match crate::api::token(config.api.token.as_ref(), &crate::api::token_path(config)) {
                Ok(token) => Some(token),
                Err(e) => {
                    problems.push(format!("api token: {e}"));
                    None
                }
            }
        };
        let alerts = if config.email.enabled && !options.dry_run {
            match alert::setup(&config.email, config.alert_facts()) {
                Ok(setup) => Some(setup),
                Err(e) => {
                    problems.push(format!("email: {e}"));
                    None
                }
            }
        } else {
            None
        };
        let mut channels = Vec::new();
        if !options.dry_run {
            for settings in &config.channels {
                match alert::channel_setup(settings, config.alert_facts()) {
                    Ok(setup) => channels.push((settings.name.clone(), setup)),
                    Err(e) => problems.push(format!("alerts.channels {}: {e}", settings.name)),
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Runtime {
            config: Arc::new(config.clone()),
            policy: policy_config(config),
            supervisors,
            nodes,
            reporter,
            reference,
            token,
            alerts,
            channels,
        })
    }
}

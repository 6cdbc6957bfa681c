//! The nodeos (Antelope: EOS/Vaulta, WAX, Telos) chain adapter: one [`Node`] per configured node
//! implements the chain-neutral traits over nodeos's HTTP API (`api`), on top of what its answers
//! mean (`wire`), when the pool's producer may change hands (`rounds`), blocks and rounds as the
//! daemon's slots and epochs (`turns`) and whether a node boots producing (`boot`).
//!
//! - `probe`: `/v1/chain/get_info` -> Running, height = `head_block_num`, tip time =
//!   `head_block_time` (UTC). Whether the head is stale is the policy's judgement (its height
//!   unchanged, or its time older than `tip_timeout`). nodeos has no booting phase it reports:
//!   while it replays, its HTTP API does not answer yet (a silent API, judged after boot grace);
//!   once it answers, it is Running, catching up or not.
//! - leader control (served when a producer is configured): `holding` = `/v1/producer/paused`
//!   (`false`: producing, handle 1; `true`: passive; a 404 without `producer_api_plugin` is an
//!   error, never "passive"); `demote` = `POST /v1/producer/pause`, then `paused` again, which
//!   must now be `true`; `promote` = `POST /v1/producer/resume`.
//! - schedule: one slot per block (slot numbers are block numbers), one epoch per round; the
//!   pool's slots are our producer's blocks in the head's round and the next (`turns`).
//! - no generated config file: nodekeeper does not write nodeos's `config.ini`.
//! - exit status 2 is hopeless (a dirty database); its log line, `database dirty flag set`, is the
//!   chain's corrupt-database marker.

pub mod api;
pub mod boot;
pub mod rounds;
pub mod settings;
pub mod turns;
pub mod wire;

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{
    BootVerdict, BoxFuture, ChainNode, Holding, LeaderControl, LeaderFailure, NodeStatus,
    ProbeError, Schedule, Variant,
};
use crate::slots::{LeaderLog, SlotClock};
pub use api::NodeosApi;
pub use settings::{
    DEFAULT_BLOCK_INTERVAL, REFERENCE_MAX_AGE, REFERENCE_MAX_LEAD, REFERENCE_REFRESH, Settings,
};

/// The start of the line nodeos logs when it stops on a dirty database (`main.cpp`: "database
/// dirty flag set (likely due to unclean shutdown): replay required", exit status 2); nodeos
/// itself recognises the condition by this text.
pub const DIRTY_DATABASE_MARKER: &str = "database dirty flag set";

/// One nodeos node. Its API client is the process's shared one.
pub struct Node {
    spec: Settings,
    api: NodeosApi,
}

impl Node {
    /// The node of `spec`, reached with `api` (one per process, cloned).
    pub fn new(spec: Settings, api: &NodeosApi) -> Node {
        Node {
            spec,
            api: api.clone(),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.spec
    }

    /// `get_info` as read (the head, whose turn it is, LIB).
    pub async fn info(&self, timeout: Duration) -> Result<wire::Info, ProbeError> {
        self.api.info(&self.spec.rest_url, timeout).await
    }

    /// The active producers, in turn order.
    pub async fn producers(&self, timeout: Duration) -> Result<Vec<String>, ProbeError> {
        self.api.schedule(&self.spec.rest_url, timeout).await
    }

    /// Whether our producer may change hands at `now` (the manageos rule, [`turns::handover_verdict`]
    /// with `margin` whole turns kept clear before ours), from this node's `get_info` and schedule:
    /// `Ok(Ok(()))` allowed, `Ok(Err(why))` not now, `Err` when the node did not answer usefully
    /// (or no producer is configured). `timeout` bounds each of the two calls.
    pub async fn handover_allowed(
        &self,
        margin: usize,
        now: SystemTime,
        timeout: Duration,
    ) -> Result<Result<(), String>, ProbeError> {
        let ours = self.ours()?;
        let (info, producers) = self.head_and_schedule(timeout).await?;
        Ok(turns::handover_verdict(
            &info,
            &producers,
            ours,
            margin,
            self.spec.block_interval,
            now,
        ))
    }

    fn ours(&self) -> Result<&str, ProbeError> {
        self.spec
            .producer
            .as_deref()
            .ok_or_else(|| ProbeError::Connect("no producer account configured".into()))
    }

    async fn head_and_schedule(
        &self,
        timeout: Duration,
    ) -> Result<(wire::Info, Vec<String>), ProbeError> {
        let rest = &self.spec.rest_url;
        let (info, producers) = tokio::join!(
            self.api.info(rest, timeout),
            self.api.schedule(rest, timeout)
        );
        Ok((info?, producers?))
    }
}

impl ChainNode for Node {
    fn probe(&self, timeout: Duration) -> BoxFuture<'_, Result<NodeStatus, ProbeError>> {
        Box::pin(async move { self.info(timeout).await.map(|info| info.status()) })
    }

    fn leader(&self) -> Option<&dyn LeaderControl> {
        self.spec
            .producer
            .as_ref()
            .map(|_| self as &dyn LeaderControl)
    }

    fn schedule(&self) -> Option<&dyn Schedule> {
        self.spec.producer.as_ref().map(|_| self as &dyn Schedule)
    }

    fn boots_producing(&self, command: Option<&str>) -> BootVerdict {
        boot::boots_producing(command)
    }

    fn hopeless_exit(&self, status: i32) -> Option<String> {
        // nodeos's DATABASE_DIRTY: every start exits the same way until the state is replayed
        // (`--replay-blockchain`) or restored from a backup.
        (status == 2).then(|| {
            "dirty database (nodeos exited with status 2: \"database dirty flag set\"); \
             it needs a replay (--replay-blockchain) or a restore from a backup"
                .to_string()
        })
    }

    fn corrupt_database_marker(&self) -> Option<&'static str> {
        Some(DIRTY_DATABASE_MARKER)
    }

    fn config_file(&self, _variant: Variant) -> Option<(&Path, &Value)> {
        None
    }
}

impl LeaderControl for Node {
    fn holding(&self, timeout: Duration) -> BoxFuture<'_, Result<Holding, ProbeError>> {
        Box::pin(async move {
            let paused = self.api.paused(&self.spec.rest_url, timeout).await?;
            Ok(if paused {
                Holding::passive()
            } else {
                Holding(vec![turns::HANDLE])
            })
        })
    }

    /// Pauses production (whatever the handles: pausing a paused node changes nothing), then
    /// reads `paused` again: a node that still produces (it answered the pause but ignored it)
    /// has not been demoted.
    fn demote<'a>(
        &'a self,
        _holding: &'a Holding,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Vec<LeaderFailure>>> {
        Box::pin(async move {
            let rest = &self.spec.rest_url;
            let failure = |what: &str, error| {
                Err(vec![LeaderFailure {
                    what: what.to_string(),
                    error,
                }])
            };
            if let Err(error) = self.api.pause(rest, timeout).await {
                return failure("POST /v1/producer/pause", error);
            }
            match self.api.paused(rest, timeout).await {
                Ok(true) => Ok(()),
                Ok(false) => failure(
                    "producer pause",
                    ProbeError::Malformed(
                        "the node answered the pause but /v1/producer/paused is still false: it \
                         still produces"
                            .into(),
                    ),
                ),
                Err(error) => failure("GET /v1/producer/paused after the pause", error),
            }
        })
    }

    fn promote(&self, timeout: Duration) -> BoxFuture<'_, Result<Holding, ProbeError>> {
        Box::pin(async move {
            self.api.resume(&self.spec.rest_url, timeout).await?;
            Ok(Holding(vec![turns::HANDLE]))
        })
    }
}

impl Schedule for Node {
    fn chain_time(&self, timeout: Duration) -> BoxFuture<'_, Result<SlotClock, ProbeError>> {
        Box::pin(async move {
            let (info, producers) = self.head_and_schedule(timeout).await?;
            turns::clock(&info, producers.len(), self.spec.block_interval)
        })
    }

    fn pool_slots(&self, timeout: Duration) -> BoxFuture<'_, Result<Vec<LeaderLog>, ProbeError>> {
        Box::pin(async move {
            let ours = self.ours()?;
            let (info, producers) = self.head_and_schedule(timeout).await?;
            let clock = turns::clock(&info, producers.len(), self.spec.block_interval)?;
            turns::pool_slots(&info, &producers, ours, &clock)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::corrupt_database_seen;

    fn node() -> Node {
        let url = reqwest::Url::parse("http://127.0.0.1:8888").unwrap();
        Node::new(Settings::new(url, None), &NodeosApi::new())
    }

    #[test]
    fn the_dirty_flag_line_is_the_corrupt_database_marker() {
        let node = node();
        let marker = node.corrupt_database_marker().expect("nodeos has a marker");
        // As nodeos logs it before it exits with status 2 (the status `hopeless_exit` names).
        let tail = "info  2026-12-07T10:00:00.000 nodeos    main.cpp:139  main ] nodeos version v5.0.3\n\
                    error 2026-12-07T10:00:00.100 nodeos    main.cpp:218  main ] database dirty flag \
                    set (likely due to unclean shutdown): replay required\n";
        assert!(corrupt_database_seen(marker, tail));
        assert!(node.hopeless_exit(2).is_some());
        let clean = "warn  2026-12-07T10:00:00.100 nodeos    main.cpp:230  main ] \
                     nodeos successfully exiting\n";
        assert!(!corrupt_database_seen(marker, clean));
    }
}

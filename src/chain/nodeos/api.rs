//! The HTTP exchanges with one nodeos node (`chain_api_plugin`: `get_info`,
//! `get_producer_schedule`; `producer_api_plugin`: `pause`, `resume`, `paused`): each a `POST` with
//! an empty body (nodeos answers any method), under one timeout around the whole exchange, the body
//! read under a size limit, any 2xx accepted (`producer_api_plugin` answers 201), errors in the
//! probe's `ProbeError` taxonomy (the Jormungandr probe's `client` and `classify`, reused). The
//! answers are decoded by `wire`.

use std::time::Duration;

use reqwest::Url;

use super::wire::{self, Info};
use crate::chain::ProbeError;
use crate::chain::jormungandr::probe::{api_url, classify, client, too_large};
use crate::http::{BodyError, read_limited};

/// The largest `get_info` or `get_producer_schedule` answer read (a few KB in practice).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The largest answer of a `producer_api_plugin` call read (`true`, `{"result":"ok"}`).
pub const MAX_SMALL_BYTES: usize = 4 * 1024;

/// Talks to nodeos nodes. One client serves every node of the process.
#[derive(Clone, Debug)]
pub struct NodeosApi {
    http: reqwest::Client,
}

impl Default for NodeosApi {
    fn default() -> Self {
        NodeosApi::new()
    }
}

impl NodeosApi {
    /// The API with the HTTP client every node adapter uses: no proxy, no redirects, no idle
    /// connections kept (a node restarted by supervisord drops its connections).
    pub fn new() -> NodeosApi {
        NodeosApi::with_client(client())
    }

    /// The API reached with `http` (a client made like the probe's, shared).
    pub fn with_client(http: reqwest::Client) -> NodeosApi {
        NodeosApi { http }
    }

    /// `/v1/chain/get_info`.
    pub async fn info(&self, rest: &Url, timeout: Duration) -> Result<Info, ProbeError> {
        let body = self
            .call(rest, &["v1", "chain", "get_info"], MAX_BODY_BYTES, timeout)
            .await?;
        wire::parse_info(&body)
    }

    /// `/v1/chain/get_producer_schedule`: the active producers, in turn order.
    pub async fn schedule(&self, rest: &Url, timeout: Duration) -> Result<Vec<String>, ProbeError> {
        let body = self
            .call(
                rest,
                &["v1", "chain", "get_producer_schedule"],
                MAX_BODY_BYTES,
                timeout,
            )
            .await?;
        wire::parse_schedule(&body)
    }

    /// `/v1/producer/paused`: whether production is paused. 404 without `producer_api_plugin`.
    pub async fn paused(&self, rest: &Url, timeout: Duration) -> Result<bool, ProbeError> {
        let body = self
            .call(
                rest,
                &["v1", "producer", "paused"],
                MAX_SMALL_BYTES,
                timeout,
            )
            .await?;
        wire::parse_paused(&body)
    }

    /// `POST /v1/producer/pause` (the answer's body is not read beyond its size).
    pub async fn pause(&self, rest: &Url, timeout: Duration) -> Result<(), ProbeError> {
        self.call(rest, &["v1", "producer", "pause"], MAX_SMALL_BYTES, timeout)
            .await
            .map(drop)
    }

    /// `POST /v1/producer/resume`.
    pub async fn resume(&self, rest: &Url, timeout: Duration) -> Result<(), ProbeError> {
        self.call(
            rest,
            &["v1", "producer", "resume"],
            MAX_SMALL_BYTES,
            timeout,
        )
        .await
        .map(drop)
    }

    /// `POST {rest}/{segments}` with an empty body, within `timeout`: the body of a 2xx answer, at
    /// most `limit` bytes of it. Any other status is `Status` and its body is not read.
    async fn call(
        &self,
        rest: &Url,
        segments: &[&str],
        limit: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, ProbeError> {
        let request = self
            .http
            .post(api_url(rest, segments)?)
            .header(reqwest::header::ACCEPT, "application/json");
        let exchange = async {
            let response = request.send().await.map_err(|e| classify(&e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(ProbeError::Status(status.as_u16()));
            }
            read_limited(response, limit).await.map_err(|e| match e {
                BodyError::TooLarge => too_large(limit),
                BodyError::Transport(e) => classify(&e),
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_elapsed) => Err(ProbeError::Timeout(timeout)),
        }
    }
}

//! Probing a cardano-node over its Prometheus endpoint (`GET /metrics`, default
//! `http://127.0.0.1:12798/metrics`): the HTTP exchange under one timeout and a size limit, its
//! failures in the probe's taxonomy (the Jormungandr probe's `classify`, shared), and the text
//! handed to `metrics::parse`. It decides nothing about the node.

use std::time::Duration;

use reqwest::Url;

use super::metrics::{self, Metrics};
use crate::chain::ProbeError;
use crate::chain::jormungandr::probe::{classify, client, too_large};
use crate::http::{BodyError, read_limited};

/// The largest metrics text read: a block producer's is 10 to 60 KB.
pub const MAX_METRICS_BYTES: usize = 4 * 1024 * 1024;

/// What a cardano-node is called in `NodeStatus::version`: its metrics carry no version.
pub const VERSION: &str = "cardano-node";

/// Reads cardano-nodes' metrics. One HTTP client serves every node (clone it freely).
#[derive(Clone, Debug)]
pub struct MetricsProbe {
    http: reqwest::Client,
}

impl Default for MetricsProbe {
    fn default() -> Self {
        MetricsProbe::new()
    }
}

impl MetricsProbe {
    /// A probe with its own client, made like the Jormungandr probe's (no proxy, no redirects, no
    /// idle connections kept: a node restarted by supervisord drops its connections).
    pub fn new() -> MetricsProbe {
        MetricsProbe::with_client(client())
    }

    /// A probe using `http` (a client made like `jormungandr::probe::client()`, shared).
    pub fn with_client(http: reqwest::Client) -> MetricsProbe {
        MetricsProbe { http }
    }

    /// `GET url` within `timeout`, decoded. A hung node (accepts, never answers) is `Timeout`.
    pub async fn metrics(&self, url: &Url, timeout: Duration) -> Result<Metrics, ProbeError> {
        let body = match tokio::time::timeout(timeout, self.fetch(url.clone())).await {
            Ok(result) => result?,
            Err(_elapsed) => return Err(ProbeError::Timeout(timeout)),
        };
        metrics::parse(&body)
    }

    async fn fetch(&self, url: Url) -> Result<Vec<u8>, ProbeError> {
        let response = self
            .http
            .get(url)
            .header(
                reqwest::header::ACCEPT,
                "text/plain; version=0.0.4, */*; q=0.1",
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(ProbeError::Status(status.as_u16()));
        }
        read_limited(response, MAX_METRICS_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => too_large(MAX_METRICS_BYTES),
                BodyError::Transport(e) => classify(&e),
            })
    }
}

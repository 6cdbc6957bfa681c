//! A block's first bytes from a Jormungandr node (`GET {api}/v0/block/{hash}`, raw bytes): what a
//! PoolTool tip report decodes the tip's header fields from. `JormungandrBlocks` is the adapter's
//! side of `pooltool::TipHeaders`; it reads no more of the block than asked, and leaves the timeout
//! to its caller.

use reqwest::Url;

use super::probe::{api_url, classify, client};
use crate::chain::ProbeError;
use crate::pooltool::{HeaderFuture, TipHeaders};

/// Reads blocks from Jormungandr nodes over REST API v0. One client serves every node.
#[derive(Clone, Debug)]
pub struct JormungandrBlocks {
    http: reqwest::Client,
}

impl JormungandrBlocks {
    /// A reader with its own HTTP client (the probe's: no proxy, no redirects, no idle connections).
    pub fn new() -> Self {
        JormungandrBlocks::with_client(client())
    }

    /// A reader using `http` (a client made like the probe's, shared).
    pub fn with_client(http: reqwest::Client) -> Self {
        JormungandrBlocks { http }
    }

    /// The first `len` bytes of the block at `url` (fewer when the block is shorter). No timeout:
    /// the caller bounds the call.
    async fn first_bytes(&self, url: Url, len: usize) -> Result<Vec<u8>, ProbeError> {
        let mut response = self
            .http
            .get(url)
            .header("Accept", "application/octet-stream")
            .send()
            .await
            .map_err(|e| classify(&e))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(ProbeError::Status(response.status().as_u16()));
        }
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            match response.chunk().await.map_err(|e| classify(&e))? {
                Some(chunk) => bytes.extend_from_slice(&chunk),
                None => break,
            }
        }
        bytes.truncate(len);
        Ok(bytes)
    }
}

impl Default for JormungandrBlocks {
    fn default() -> Self {
        JormungandrBlocks::new()
    }
}

impl TipHeaders for JormungandrBlocks {
    fn header_bytes<'a>(&'a self, rest: &'a Url, hash: &'a str, len: usize) -> HeaderFuture<'a> {
        Box::pin(async move { self.first_bytes(block_url(rest, hash)?, len).await })
    }
}

/// `{api}/v0/block/{hash}` for an API base like `http://127.0.0.1:3101/api`.
pub fn block_url(api: &Url, hash: &str) -> Result<Url, ProbeError> {
    api_url(api, &["v0", "block", hash])
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use tokio::net::TcpListener;

    use super::*;

    /// The fake node: `block` under its hash (404 for any other), recording each request's hash
    /// and `Accept` header.
    #[derive(Default)]
    struct Node {
        block: Vec<u8>,
        requests: Vec<(String, Option<String>)>,
    }

    type Shared = Arc<Mutex<Node>>;

    const HASH: &str = "ab12";

    async fn block(
        State(node): State<Shared>,
        Path(hash): Path<String>,
        headers: HeaderMap,
    ) -> Response {
        let mut node = node.lock().unwrap();
        let accept = headers
            .get("accept")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        node.requests.push((hash.clone(), accept));
        if hash == HASH {
            (StatusCode::OK, node.block.clone()).into_response()
        } else {
            StatusCode::NOT_FOUND.into_response()
        }
    }

    /// Starts the fake node serving `bytes`; its REST API base.
    async fn node(bytes: Vec<u8>) -> (Url, Shared) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Shared::new(Mutex::new(Node {
            block: bytes,
            requests: Vec::new(),
        }));
        let router = axum::Router::new()
            .route("/api/v0/block/{hash}", axum::routing::get(block))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let api = Url::parse(&format!("http://{address}/api")).unwrap();
        (api, shared)
    }

    /// A block of `len` bytes: 0, 1, 2, ... (mod 256).
    fn numbered(len: usize) -> Vec<u8> {
        (0..len).map(|index| (index % 256) as u8).collect()
    }

    #[test]
    fn block_url_appends_segments() {
        for base in ["http://127.0.0.1:3101/api", "http://127.0.0.1:3101/api/"] {
            let url = block_url(&Url::parse(base).unwrap(), "ab12").unwrap();
            assert_eq!(url.as_str(), "http://127.0.0.1:3101/api/v0/block/ab12");
        }
        let odd = Url::parse("mailto:node@example.org").unwrap();
        assert!(matches!(
            block_url(&odd, "ab12"),
            Err(ProbeError::Connect(_))
        ));
    }

    #[tokio::test]
    async fn reads_the_first_bytes_of_the_block() {
        let (api, shared) = node(numbered(5000)).await;
        let blocks = JormungandrBlocks::new();
        let bytes = blocks.header_bytes(&api, HASH, 116).await.unwrap();
        assert_eq!(bytes, numbered(116));
        // A block shorter than asked is given whole.
        shared.lock().unwrap().block = numbered(100);
        let bytes = blocks.header_bytes(&api, HASH, 116).await.unwrap();
        assert_eq!(bytes, numbered(100));
        let requests = shared.lock().unwrap().requests.clone();
        let expected = (
            HASH.to_string(),
            Some("application/octet-stream".to_string()),
        );
        assert_eq!(requests, [expected.clone(), expected]);
    }

    #[tokio::test]
    async fn failures_are_probe_errors() {
        let (api, _shared) = node(numbered(200)).await;
        let blocks = JormungandrBlocks::new();
        assert_eq!(
            blocks.header_bytes(&api, "cd34", 116).await,
            Err(ProbeError::Status(404))
        );
        // Nothing listening.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let down = Url::parse(&format!("http://{address}/api")).unwrap();
        assert_eq!(
            blocks.header_bytes(&down, HASH, 116).await,
            Err(ProbeError::Refused)
        );
    }
}

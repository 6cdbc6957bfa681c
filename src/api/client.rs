//! A typed client of the daemon's HTTP API, shared by `nodekeeper ctl`, `nodekeeper status` and
//! the integration tests: one method per endpoint returning the wire types (`crate::status`,
//! `super::wire`), and `send` for the status and body of any request. It must not import the
//! daemon: it only speaks HTTP.
//!
//! Errors keep what the daemon said: the HTTP status and its `{"error": ...}` message. An action's
//! answer is checked against its state (200 done, 202 running, 500 failed), so a caller that sees
//! a `Done` view knows the daemon answered 200.

use std::time::Duration;

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use super::wire::{ActionNote, ErrorBody, Restarts, RestartsQuery};
use crate::status::{ActionState, ActionView, NodeAction, Snapshot};

/// A client of one daemon's API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

/// Why a call did not give the endpoint's answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    /// No connection (the daemon is not running): nothing reached it.
    #[error("connection refused")]
    Unreachable,
    /// The exchange failed after connecting (e.g. a timeout): the request may have reached the
    /// daemon, so it is never retried elsewhere.
    #[error("{0}")]
    Transport(String),
    /// The daemon answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The daemon's `{"error": ...}` message, else the body's text (cut).
        message: String,
    },
    /// An answer that does not read as the endpoint's.
    #[error("unexpected answer (HTTP {status}): {message}")]
    Malformed {
        /// The HTTP status.
        status: u16,
        /// What does not read.
        message: String,
    },
}

impl ApiClientError {
    /// The HTTP status, when the daemon answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiClientError::Status { status, .. } | ApiClientError::Malformed { status, .. } => {
                Some(*status)
            }
            ApiClientError::Unreachable | ApiClientError::Transport(_) => None,
        }
    }
}

/// One answer as it came: the status and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiClientError::Malformed {
            status: self.status,
            message: e.to_string(),
        })
    }

    /// The body of a 2xx answer as JSON of type `T`, else the error the daemon answered.
    fn ok_json<T: DeserializeOwned>(self) -> Result<T, ApiClientError> {
        if (200..300).contains(&self.status) {
            self.json()
        } else {
            Err(self.error())
        }
    }

    /// The body of a 200 answer as text, else the error the daemon answered.
    fn ok_text(self) -> Result<String, ApiClientError> {
        if self.status == 200 {
            Ok(self.text())
        } else {
            Err(self.error())
        }
    }

    /// The daemon's error: its `{"error": ...}` message, else the body's text.
    fn error(&self) -> ApiClientError {
        let message = match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => body.error,
            Err(_) => {
                let text = self.text();
                let text = text.trim();
                if text.chars().count() > 200 {
                    crate::describe::excerpt(text, 200)
                } else {
                    text.to_string()
                }
            }
        };
        ApiClientError::Status {
            status: self.status,
            message,
        }
    }
}

impl ApiClient {
    /// A client of the daemon listening on `listen` (`host:port`, the configuration's
    /// `api.listen`); each call is bounded by `timeout`. Proxy settings are ignored: the daemon is
    /// asked directly.
    pub fn new(listen: &str, timeout: Duration) -> Result<ApiClient, ApiClientError> {
        let base = Url::parse(&format!("http://{listen}"))
            .map_err(|e| ApiClientError::Transport(format!("http://{listen}: {e}")))?;
        let http = crate::http::client_builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ApiClientError::Transport(e.to_string()))?;
        Ok(ApiClient {
            base,
            token: None,
            http,
        })
    }

    /// The same client presenting `token` (a bearer token) on every request.
    pub fn with_token(mut self, token: impl Into<String>) -> ApiClient {
        self.token = Some(token.into());
        self
    }

    /// `http://host:port`, as messages name the daemon.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The URL of `path` (which may carry a query), under the base.
    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        match path.split_once('?') {
            Some((path, query)) => {
                url.set_path(path);
                url.set_query(Some(query));
            }
            None => url.set_path(path),
        }
        url
    }

    /// `path` made of segments, each percent-encoded as needed (node names are free text).
    fn url_of(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().extend(segments);
        }
        url
    }

    /// Sends any request (`path` with its query, e.g. `/v1/restarts?limit=5`) with the token, if
    /// any, and returns the status and body whatever they are. For tests of malformed requests
    /// and exact bodies; the typed methods are built on it.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Reply, ApiClientError> {
        self.exchange(method, self.url(path), body).await
    }

    async fn exchange(
        &self,
        method: Method,
        url: Url,
        body: Option<String>,
    ) -> Result<Reply, ApiClientError> {
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let transport = |e: reqwest::Error| {
            if e.is_connect() {
                ApiClientError::Unreachable
            } else {
                ApiClientError::Transport(e.to_string())
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        Ok(Reply { status, body })
    }

    /// `GET /healthz`: the text of a 200 (`ok: 2 of 3 nodes in sync`); a 503 is a `Status` error
    /// with the reason (`not ready: ...`).
    pub async fn healthz(&self) -> Result<String, ApiClientError> {
        self.send(Method::GET, "/healthz", None).await?.ok_text()
    }

    /// `GET /v1/status`: the daemon's latest snapshot (empty before its first tick).
    pub async fn status(&self) -> Result<Snapshot, ApiClientError> {
        self.send(Method::GET, "/v1/status", None).await?.ok_json()
    }

    /// `GET /v1/restarts`: restart-log rows, oldest first.
    pub async fn restarts(&self, query: &RestartsQuery) -> Result<Restarts, ApiClientError> {
        let mut url = self.url("/v1/restarts");
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(node) = &query.node {
                pairs.append_pair("node", node);
            }
            if let Some(since) = &query.since {
                pairs.append_pair("since", since);
            }
            if let Some(limit) = query.limit {
                pairs.append_pair("limit", &limit.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.exchange(Method::GET, url, None).await?.ok_json()
    }

    /// `GET /metrics`: Prometheus text.
    pub async fn metrics(&self) -> Result<String, ApiClientError> {
        self.send(Method::GET, "/metrics", None).await?.ok_text()
    }

    /// `POST /v1/nodes/{node}/{action}` (`POST /v1/leader/{node}` for `Leader`), with the
    /// operator's note as the body when given; `wait` asks the daemon to answer when the action
    /// is over (or its wait limit passed). The view says where the action is: `Running` (202),
    /// `Done` (200) or `Failed` (500).
    pub async fn node_action(
        &self,
        node: &str,
        action: NodeAction,
        note: Option<&str>,
        wait: bool,
    ) -> Result<ActionView, ApiClientError> {
        let body = ActionNote {
            reason: note.map(str::to_string),
            ..ActionNote::default()
        };
        self.node_action_with(node, action, body, wait).await
    }

    /// `POST /v1/nodes/{node}/backup` or `.../restore`: `path` is the backup's target directory
    /// or the restore's archive (absolute, on the daemon's host).
    pub async fn archive_action(
        &self,
        node: &str,
        action: NodeAction,
        note: Option<&str>,
        path: Option<&str>,
        wait: bool,
    ) -> Result<ActionView, ApiClientError> {
        let path = path.map(str::to_string);
        let body = ActionNote {
            reason: note.map(str::to_string),
            to: if action == NodeAction::Backup {
                path.clone()
            } else {
                None
            },
            from: if action == NodeAction::Restore {
                path
            } else {
                None
            },
        };
        self.node_action_with(node, action, body, wait).await
    }

    async fn node_action_with(
        &self,
        node: &str,
        action: NodeAction,
        body: ActionNote,
        wait: bool,
    ) -> Result<ActionView, ApiClientError> {
        let mut url = match action {
            NodeAction::Leader => self.url_of(&["v1", "leader", node]),
            other => self.url_of(&["v1", "nodes", node, other.as_str()]),
        };
        if wait {
            url.set_query(Some("wait=true"));
        }
        let body = (body != ActionNote::default())
            .then(|| serde_json::to_string(&body).unwrap_or_default());
        let reply = self.exchange(Method::POST, url, body).await?;
        action_view(reply)
    }

    /// `POST /v1/leader/{node}`: hand the leader key to the node at the next safe moment.
    pub async fn leader(&self, node: &str, wait: bool) -> Result<ActionView, ApiClientError> {
        self.node_action(node, NodeAction::Leader, None, wait).await
    }

    /// `GET /v1/actions/{id}`: an earlier action, while the daemon remembers it.
    pub async fn action(&self, id: &str) -> Result<ActionView, ApiClientError> {
        let url = self.url_of(&["v1", "actions", id]);
        self.exchange(Method::GET, url, None).await?.ok_json()
    }
}

/// An action's answer: its view, checked against the status.
fn action_view(reply: Reply) -> Result<ActionView, ApiClientError> {
    if !matches!(reply.status, 200 | 202 | 500) {
        return Err(reply.error());
    }
    let view: ActionView = match reply.json() {
        Ok(view) => view,
        // A 500 without an action: the daemon's own error.
        Err(_) if reply.status == 500 => return Err(reply.error()),
        Err(e) => return Err(e),
    };
    let expected = match view.state {
        ActionState::Done { .. } => 200,
        ActionState::Running => 202,
        ActionState::Failed { .. } => 500,
    };
    if reply.status != expected {
        return Err(ApiClientError::Malformed {
            status: reply.status,
            message: format!("an action in state {:?}", view.state),
        });
    }
    Ok(view)
}

#[cfg(test)]
mod tests;

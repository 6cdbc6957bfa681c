//! The daemon's HTTP API (axum). Read endpoints for everyone on the listen address (`/healthz`,
//! `/metrics`, `/v1/status`, `/v1/restarts`, `/v1/actions/{id}`); mutating endpoints
//! (`POST /v1/nodes/{name}/{restart|start|stop|hold|release}`, `POST /v1/leader/{name}`) behind a
//! bearer token compared in constant time. It never acts itself: actions go to the control loop
//! over its request channel, so they are serialised with the loop's own and never race them.
//!
//! Errors are [`ApiError`] (JSON `{"error": "..."}`); a missing and a wrong token get the same
//! 401. Bodies over [`BODY_LIMIT`] are refused with 413. The token never appears in an answer or
//! a log line.
//!
//! `dashboard` is the web page on the same address (`GET /`), its live feed (`GET /v1/events`),
//! the heights' history and the restarts chart; it acts only through the endpoints above.
//!
//! `server` is the bounded accept loop (header, body and request timeouts, a connection cap);
//! `client` is the typed client of this API (for `ctl`, `status` and the tests); `wire` holds the
//! JSON shapes both sides use, besides the plain status data of `crate::status`.

pub mod client;
pub mod dashboard;
pub mod server;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::daemon::{Accepted, Request};
use crate::metrics::Metrics;
use crate::policy::Refusal;
use crate::restart_log::RestartRow;
use crate::status::{ActionState, ActionView, NodeAction, Snapshot};
pub use client::{ApiClient, ApiClientError};
use wire::{ActionNote, ErrorBody, Restarts, RestartsQuery};

/// The largest request body accepted (413 above).
pub const BODY_LIMIT: usize = 16 * 1024;
/// The longest operator note (`{"reason": "..."}`) accepted.
const NOTE_LIMIT: usize = 500;
/// `GET /v1/restarts` answers at most this many rows (the newest) unless `limit` says fewer.
const RESTARTS_DEFAULT_LIMIT: usize = 1000;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The latest status snapshot.
    pub snapshot: Arc<RwLock<Snapshot>>,
    /// The control loop's request channel.
    pub requests: mpsc::Sender<Request>,
    /// The bearer token of mutating endpoints (a reload may change it).
    pub token: Arc<RwLock<String>>,
    /// The metrics the loop updates.
    pub metrics: Arc<Metrics>,
    /// The restart log (`GET /v1/restarts`).
    pub restart_log: PathBuf,
    /// The longest `?wait=true` waits for an action before answering 202 anyway.
    pub wait_limit: Duration,
    /// The dashboard's live feed and heights' history (its sampler runs in [`serve`]).
    pub live: dashboard::Live,
}

/// An API error: a status and a one-line message, as JSON `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong token (one answer for both).
    #[error("unauthorized")]
    Unauthorized,
    /// No such node, action or route.
    #[error("{0}")]
    NotFound(String),
    /// A malformed query or body.
    #[error("{0}")]
    BadRequest(String),
    /// The node is busy.
    #[error("{0}")]
    Conflict(String),
    /// The body is over the limit.
    #[error("request body over {BODY_LIMIT} bytes")]
    TooLarge,
    /// The request did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    /// The loop is stopping, or cannot act.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Bad input is the client's problem, not the daemon's: not logged as an error.
        debug!("API answers {}: {self}", self.status());
        let mut response = (
            self.status(),
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        if matches!(self, ApiError::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        let message = refusal.to_string();
        match refusal {
            Refusal::UnknownNode(_) => ApiError::NotFound(message),
            Refusal::Busy(_) => ApiError::Conflict(message),
            Refusal::NotEligible(_) => ApiError::Conflict(message),
            Refusal::Unavailable(_) => ApiError::Unavailable(message),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::BadRequest(format!("bad query: {}", rejection.body_text()))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest(format!("cannot read the body: {}", rejection.body_text()))
        }
    }
}

fn stopping() -> ApiError {
    ApiError::Unavailable("the control loop is stopping".into())
}

/// The router (testable without a socket).
pub fn router(state: ApiState) -> Router {
    let mutating = Router::new()
        .route("/v1/nodes/{name}/{action}", post(node_action))
        .route("/v1/leader/{name}", post(leader))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/restarts", get(restarts))
        .route("/v1/actions/{id}", get(action))
        .merge(mutating)
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Binds the API's address (at start-up: a failure to bind is fatal, before any node is touched).
pub async fn bind(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await
}

/// Serves the API on `listener` until `shutdown` resolves, within the default
/// [`server::Limits`] (10 s for a header or a body, a request its `?wait=true` limit and more,
/// 256 connections at once), with the dashboard's sampler beside it (stopped first, so that open
/// event streams end and do not hold the shutdown).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = server::Limits::for_wait_limit(state.wait_limit);
    let (stopping, mut stop_seen) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(
        state
            .live
            .clone()
            .run(Arc::clone(&state.snapshot), async move {
                let _ = stop_seen.wait_for(|stopped| *stopped).await;
            }),
    );
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(true);
        let _ = sampler.await;
    };
    server::serve(listener, router(state), limits, shutdown).await
}

/// 200 when the loop ticked within 3 tick intervals (or 3 times its last tick's duration, if
/// longer) and at least one node is in sync; 503 with the reason otherwise.
async fn healthz(State(state): State<ApiState>) -> Response {
    let liveness = state.metrics.liveness();
    let unavailable = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response()
    };
    let Some(last_tick) = liveness.last_tick else {
        return unavailable("the control loop has not ticked yet".into());
    };
    let allowed = liveness.interval.max(liveness.duration) * 3;
    let since = last_tick.elapsed();
    if since > allowed {
        return unavailable(format!(
            "the control loop last ticked {:.1} s ago (expected every {:.1} s)",
            since.as_secs_f64(),
            liveness.interval.as_secs_f64()
        ));
    }
    if liveness.in_sync == 0 {
        return unavailable(format!("no node in sync (0 of {})", liveness.nodes));
    }
    (
        StatusCode::OK,
        format!(
            "ok: {} of {} nodes in sync\n",
            liveness.in_sync, liveness.nodes
        ),
    )
        .into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

fn snapshot(state: &ApiState) -> Result<Snapshot, ApiError> {
    state
        .snapshot
        .read()
        .map(|snapshot| snapshot.clone())
        .map_err(|_| ApiError::Internal("status unavailable".into()))
}

/// The snapshot (what `nodekeeper status --json` prints), each node with `is_held` added.
async fn status(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    status_json(&snapshot(&state)?).map(Json)
}

/// The JSON of `GET /v1/status` (and of the dashboard's live feed): the snapshot, each node with
/// `is_held` added.
fn status_json(snapshot: &Snapshot) -> Result<Value, ApiError> {
    let mut value =
        serde_json::to_value(snapshot).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(nodes) = value.get_mut("nodes").and_then(Value::as_array_mut) {
        for node in nodes {
            if let Some(node) = node.as_object_mut() {
                let held = node.get("held").is_some_and(|held| !held.is_null());
                node.insert("is_held".into(), Value::Bool(held));
            }
        }
    }
    Ok(value)
}

/// Restart-log rows, oldest first: `node=` one node, `since=` RFC 3339, `limit=` the newest N
/// (default 1000).
async fn restarts(
    State(state): State<ApiState>,
    query: Result<Query<RestartsQuery>, QueryRejection>,
) -> Result<Json<Restarts>, ApiError> {
    let Query(query) = query?;
    let since = match &query.since {
        None => None,
        Some(text) => Some(SystemTime::from(
            chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
                ApiError::BadRequest(format!(
                    "since={text:?}: expected RFC 3339, e.g. 2026-11-22T01:39:07Z ({e})"
                ))
            })?,
        )),
    };
    if let Some(node) = &query.node
        && !snapshot(&state)?
            .nodes
            .iter()
            .any(|line| &line.name == node)
    {
        return Err(ApiError::NotFound(format!(
            "no node {node:?} in the configuration"
        )));
    }
    let limit = query.limit.unwrap_or(RESTARTS_DEFAULT_LIMIT);
    let path = state.restart_log.clone();
    let (rows, skipped) = tokio::task::spawn_blocking(move || {
        if !path.exists() {
            return Ok((Vec::new(), 0));
        }
        crate::restart_log::read_rows(&path).map(|(rows, problems)| (rows, problems.len()))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut rows: Vec<RestartRow> = rows
        .into_iter()
        .filter(|row| query.node.as_ref().is_none_or(|node| &row.node == node))
        .filter(|row| since.is_none_or(|since| row.timestamp >= since))
        .collect();
    if rows.len() > limit {
        rows.drain(..rows.len() - limit);
    }
    Ok(Json(Restarts {
        rows,
        skipped_rows: skipped,
    }))
}

async fn action(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<ActionView>, ApiError> {
    let (reply, answer) = oneshot::channel();
    state
        .requests
        .send(Request::Action {
            id: id.clone(),
            reply,
        })
        .await
        .map_err(|_| stopping())?;
    answer
        .await
        .map_err(|_| stopping())?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no action {id:?} (only recent ones are kept)")))
}

/// Constant-time comparison of the presented bearer token with ours (the time depends on the
/// lengths only).
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
    else {
        return false;
    };
    let (a, b) = (presented.as_bytes(), token.as_bytes());
    let mut difference = a.len() ^ b.len();
    for index in 0..a.len().max(b.len()) {
        let x = a.get(index).copied().unwrap_or(0);
        let y = b.get(index).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0 && !b.is_empty()
}

/// Checked before anything else of a mutating request (its body is not even read without it).
async fn require_token(
    State(state): State<ApiState>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let token = state
        .token
        .read()
        .map(|token| token.clone())
        .unwrap_or_default();
    if authorized(request.headers(), &token) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionQuery {
    /// Answer when the action is done (200) or failed (500).
    #[serde(default)]
    wait: bool,
}

/// An optional body: nothing, or `{"reason": "..."}` (kept with the action and logged).
fn note(body: &Bytes) -> Result<Option<String>, ApiError> {
    let parsed = parse_note(body)?;
    if parsed.to.is_some() || parsed.from.is_some() {
        return Err(ApiError::BadRequest(
            "\"to\" is a backup's and \"from\" a restore's".into(),
        ));
    }
    reason(parsed.reason)
}

fn parse_note(body: &Bytes) -> Result<ActionNote, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ActionNote::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be empty or JSON like {{\"reason\": \"...\"}} ({e})"
        ))
    })
}

/// A backup's or restore's body: the note, and the path it may name (`to` for a backup,
/// `from` for a restore), which must be absolute.
fn archive_body(
    body: &Bytes,
    action: NodeAction,
) -> Result<(Option<String>, Option<std::path::PathBuf>), ApiError> {
    let parsed = parse_note(body)?;
    let (path, key, other) = match action {
        NodeAction::Backup => (parsed.to, "to", parsed.from.is_some().then_some("from")),
        _ => (parsed.from, "from", parsed.to.is_some().then_some("to")),
    };
    if let Some(other) = other {
        return Err(ApiError::BadRequest(format!(
            "{other:?} is not a {}'s: use {key:?}",
            action.as_str()
        )));
    }
    let path = match path {
        Some(path) if !std::path::Path::new(&path).is_absolute() || path.contains('\0') => {
            return Err(ApiError::BadRequest(format!(
                "{key}: expected an absolute path on the daemon's host, got {path:?}"
            )));
        }
        other => other.map(std::path::PathBuf::from),
    };
    Ok((reason(parsed.reason)?, path))
}

fn reason(reason: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(reason) = reason else {
        return Ok(None);
    };
    if reason.chars().count() > NOTE_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "reason: at most {NOTE_LIMIT} characters"
        )));
    }
    // One line in the log, whatever was sent.
    let reason: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Ok(Some(reason))
}

async fn submit(
    state: &ApiState,
    node: String,
    action: NodeAction,
    note: Option<String>,
    path: Option<std::path::PathBuf>,
) -> Result<Accepted, ApiError> {
    let (reply, answer) = oneshot::channel();
    state
        .requests
        .send(Request::Node {
            node,
            action,
            note,
            path,
            reply,
        })
        .await
        .map_err(|_| stopping())?;
    Ok(answer.await.map_err(|_| stopping())??)
}

async fn node_action(
    State(state): State<ApiState>,
    Path((name, action)): Path<(String, String)>,
    query: Result<Query<ActionQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let action = match action.as_str() {
        "restart" => NodeAction::Restart,
        "start" => NodeAction::Start,
        "stop" => NodeAction::Stop,
        "hold" => NodeAction::Hold,
        "release" => NodeAction::Release,
        "backup" => NodeAction::Backup,
        "restore" => NodeAction::Restore,
        other => {
            return Err(ApiError::NotFound(format!(
                "no action {other:?}: restart, start, stop, hold, release, backup or restore"
            )));
        }
    };
    let Query(query) = query?;
    let body = body?;
    let (note, path) = match action {
        NodeAction::Backup | NodeAction::Restore => archive_body(&body, action)?,
        _ => (note(&body)?, None),
    };
    let accepted = submit(&state, name, action, note, path).await?;
    answer(&state, accepted, query.wait).await
}

/// 200 when done (hold, release, or waited for), 202 while running, 500 when it failed; the body
/// is the action (`id`, `node`, `action`, `state`, and `message` or `error`).
async fn answer(state: &ApiState, accepted: Accepted, wait: bool) -> Result<Response, ApiError> {
    let Accepted {
        mut view,
        mut updates,
    } = accepted;
    if wait && view.state == ActionState::Running {
        match tokio::time::timeout(
            state.wait_limit,
            updates.wait_for(|state| *state != ActionState::Running),
        )
        .await
        {
            Ok(Ok(state)) => view.state = state.clone(),
            Ok(Err(_)) => return Err(stopping()),
            // Still running: answer like without wait; GET /v1/actions/{id} follows it.
            Err(_) => {}
        }
    }
    let status = match view.state {
        ActionState::Running => StatusCode::ACCEPTED,
        ActionState::Done { .. } => StatusCode::OK,
        ActionState::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Ok((status, Json(view)).into_response())
}

/// A slot-aware hand-over of the leader key to the node, through the leadership policy: it
/// happens at the next safe moment (no slot or rollover near, every other node verified without
/// the key). 409 when the node is not in sync; 503 when leadership is not enabled.
async fn leader(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<ActionQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let note = note(&body?)?;
    let accepted = submit(&state, name, NodeAction::Leader, note, None).await?;
    answer(&state, accepted, query.wait).await
}

/// The API token: from the configuration, else from `path`, created with 32 random bytes (hex)
/// and mode 0600 on first use, so the daemon is never open without one.
pub fn token(
    configured: Option<&crate::secret::Secret>,
    path: &std::path::Path,
) -> Result<String, String> {
    if let Some(secret) = configured {
        return Ok(secret.expose().to_string());
    }
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let mut bytes = [0u8; 32];
    let mut random =
        std::fs::File::open("/dev/urandom").map_err(|e| format!("/dev/urandom: {e}"))?;
    std::io::Read::read_exact(&mut random, &mut bytes).map_err(|e| format!("/dev/urandom: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::files::write_if_changed(path, format!("{token}\n").as_bytes(), 0o600)
        .map_err(|e| crate::describe::chain(&e))?;
    Ok(token)
}

/// Where the generated token lives: beside the restart log.
pub fn token_path(config: &crate::config::Config) -> std::path::PathBuf {
    config.restart_log.with_file_name("api.token")
}

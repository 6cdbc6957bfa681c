//! The daemon's HTTP API (axum): the status snapshot for everyone on the listen address, and the
//! mutating endpoints behind a bearer token compared in constant time. Requests that change
//! anything go to the control loop over a channel, so they are serialised with its own actions.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

use crate::control::Request;
use crate::status::Snapshot;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The latest status snapshot.
    pub snapshot: Arc<RwLock<Snapshot>>,
    /// The control loop's request channel.
    pub requests: mpsc::Sender<Request>,
    /// The bearer token of mutating endpoints.
    pub token: Arc<String>,
}

/// The router (testable without a socket).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/nodes/{name}/hold", post(hold))
        .route("/v1/nodes/{name}/release", post(release))
        .with_state(state)
}

/// Serves the API on `listen` until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn status(State(state): State<ApiState>) -> Response {
    match state.snapshot.read() {
        Ok(snapshot) => Json(snapshot.clone()).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "status unavailable").into_response(),
    }
}

/// Constant-time comparison of the presented bearer token with ours.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(presented) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
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
    difference == 0
}

async fn forward(
    state: &ApiState,
    headers: &HeaderMap,
    make: impl FnOnce(oneshot::Sender<Result<String, String>>) -> Request,
) -> Response {
    if !authorized(headers, &state.token) {
        return (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
    }
    let (reply, answer) = oneshot::channel();
    if state.requests.send(make(reply)).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the control loop is stopping\n",
        )
            .into_response();
    }
    match answer.await {
        Ok(Ok(message)) => (StatusCode::OK, format!("{message}\n")).into_response(),
        Ok(Err(message)) => (StatusCode::NOT_FOUND, format!("{message}\n")).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the control loop is stopping\n",
        )
            .into_response(),
    }
}

async fn hold(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    forward(&state, &headers, |reply| Request::Hold {
        node: name,
        reply,
    })
    .await
}

async fn release(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    forward(&state, &headers, |reply| Request::Release {
        node: name,
        reply,
    })
    .await
}

/// The API token: from the configuration, else from `path`, created with 32 random bytes (hex)
/// and mode 0600 on first use, so the daemon is never open without one.
pub fn token(
    configured: Option<&crate::config::Secret>,
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
    crate::config::nodefile::write_file_if_changed(path, format!("{token}\n").as_bytes(), 0o600)
        .map_err(|e| format!("cannot write {}: {e:?}", path.display()))?;
    Ok(token)
}

/// Where the generated token lives: beside the restart log.
pub fn token_path(config: &crate::config::Config) -> std::path::PathBuf {
    config.restart_log.with_file_name("api.token")
}

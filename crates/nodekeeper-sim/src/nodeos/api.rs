//! The nodeos sim's HTTP surface: the `chain_api_plugin` and `producer_api_plugin` routes nodekeeper uses, nodeos's
//! error bodies, and the `/sim/*` controls.
//!
//! Owns routes, JSON shapes, status codes, and the faults that are about answering HTTP (`hang`, `slow`,
//! `refuse-pause` through [`Node::pause`], and the two exits). Like nodeos's `http_plugin`, a route answers
//! whatever the method (GET and POST alike) and an unknown path is a 404 with nodeos's error body. Node behaviour
//! lives in `node`; every handler first settles the node up to now through [`Shared::with_node`].

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::chain::{id_hex, nodeos_time};
use super::fault::{Fault, FaultRequest};
use super::node::{BlockEvent, Node};
use crate::chain::fnv1a;

/// How often a hung request checks whether the hang is over.
const HANG_POLL: Duration = Duration::from_millis(100);
/// How long the process lingers after accepting an exit fault over HTTP, so the answer gets out.
const EXIT_DELAY: Duration = Duration::from_millis(100);
/// nodeos's message for a dirty database (`main.cpp`, exit code 2).
pub const DIRTY_DB_MESSAGE: &str =
    "database dirty flag set (likely due to unclean shutdown): replay required";
/// The dirty-database marker, relative to `--data-dir`; removing it (or the whole `state` directory, as a restore
/// or a replay would) lets the node start again.
pub const DIRTY_MARKER: &str = "state/sim-dirty-db";
/// The `producer_api_plugin` routes.
const PRODUCER_ROUTES: [&str; 3] = [
    "/v1/producer/pause",
    "/v1/producer/resume",
    "/v1/producer/paused",
];
/// The `chain_api_plugin` routes served.
const CHAIN_ROUTES: [&str; 2] = ["/v1/chain/get_info", "/v1/chain/get_producer_schedule"];

/// State shared by the handlers and the background tasks.
#[derive(Debug)]
pub struct Shared {
    node: Mutex<Node>,
    events: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    producer_api: bool,
    stop: watch::Sender<bool>,
}

impl Shared {
    /// Wraps a node.
    pub fn new(
        node: Node,
        events: Option<PathBuf>,
        data_dir: Option<PathBuf>,
        producer_api: bool,
    ) -> Shared {
        Shared {
            node: Mutex::new(node),
            events,
            data_dir,
            producer_api,
            stop: watch::channel(false).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Node> {
        self.node
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Settles the node up to now, records the blocks it made, then runs `f` on it.
    pub fn with_node<R>(&self, f: impl FnOnce(&mut Node, DateTime<Utc>) -> R) -> R {
        let now = Utc::now();
        let mut node = self.lock();
        let events = node.advance(now);
        // Recording under the lock keeps one node's lines in block order.
        for event in &events {
            tracing::info!(
                block_num = event.block_num,
                round = event.round,
                "produced a block"
            );
            if let Some(path) = &self.events
                && let Err(error) = append_event(path, event)
            {
                tracing::error!(path = %path.display(), %error, "block event lost");
            }
        }
        f(&mut node, now)
    }

    /// The current fault, without settling.
    pub fn fault(&self) -> Fault {
        self.lock().fault()
    }

    /// Applies a fault. The exits (`crash`, `dirty-db`) are recorded here and carried out by the caller
    /// ([`exit_now`] or [`exit_soon`]).
    pub fn set_fault(&self, fault: Fault) {
        self.with_node(|node, now| {
            if node.fault() != fault {
                tracing::warn!(from = %node.fault(), to = %fault, "fault changed");
            }
            node.set_fault(fault, now);
        });
    }

    /// The data directory, if any.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// Asks the server to shut down gracefully.
    pub fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Resolves once a stop was requested.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.stop.subscribe();
        async move {
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    }

    /// The `/sim/state` document.
    pub fn sim_state(&self) -> Value {
        let producer_api = self.producer_api;
        self.with_node(|node, now| {
            let params = node.params();
            let head = node.head(now);
            json!({
                "name": node.name(),
                "pid": std::process::id(),
                "producer": node.producer(),
                "fault": node.fault().to_string(),
                "state": if node.in_sync(now) { "in-sync" } else { "syncing" },
                "paused": node.paused(),
                "producing": node.producing(now),
                "producer_api": producer_api,
                "head_block_num": head,
                "last_irreversible_block_num": node.lib(now),
                "chain_head_block_num": params.head_at(now),
                "head_block_producer": params.producer_of(head),
                "chain_head_block_producer": params.producer_of(params.head_at(now)),
                "round": params.round_of(params.head_at(now)),
                "blocks_made": node.blocks_made(),
                "uptime": node.uptime(now),
            })
        })
    }
}

/// Appends one event as one JSON line, in a single `write` to a file opened with `O_APPEND`, so lines of
/// concurrent processes never interleave.
pub fn append_event(path: &Path, event: &BlockEvent) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let written = file.write(&line)?;
    if written != line.len() {
        return Err(std::io::Error::other(format!(
            "short write ({written} of {} bytes)",
            line.len()
        )));
    }
    Ok(())
}

/// Prints nodeos's dirty-database error the way nodeos logs it (to stderr).
pub fn print_dirty_db() {
    eprintln!(
        "error {} nodeos    main.cpp:218                  main                 ] {DIRTY_DB_MESSAGE}",
        nodeos_time(Utc::now())
    );
}

/// Writes the dirty-database marker under `data_dir`.
pub fn write_dirty_marker(data_dir: &Path) -> std::io::Result<()> {
    let marker = data_dir.join(DIRTY_MARKER);
    if let Some(parent) = marker.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&marker, format!("{DIRTY_DB_MESSAGE}\n"))
}

/// Carries out an exit fault now: `crash` exits 1; `dirty-db` leaves the marker, prints the message and exits 2.
/// Other faults return.
pub fn exit_now(fault: Fault, data_dir: Option<&Path>) {
    match fault {
        Fault::Crash => {
            tracing::error!("crash fault: exiting with status 1");
            std::process::exit(1);
        }
        Fault::DirtyDb => {
            if let Some(dir) = data_dir
                && let Err(error) = write_dirty_marker(dir)
            {
                tracing::error!(dir = %dir.display(), %error, "cannot write the dirty-db marker");
            }
            print_dirty_db();
            std::process::exit(2);
        }
        _ => {}
    }
}

/// Carries out an exit fault shortly, after the current answer had a chance to leave.
pub fn exit_soon(fault: Fault, data_dir: Option<PathBuf>) {
    if fault.exits() {
        tokio::spawn(async move {
            tokio::time::sleep(EXIT_DELAY).await;
            exit_now(fault, data_dir.as_deref());
        });
    }
}

/// The sim's router.
pub fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new()
        .route("/v1/chain/get_info", any(get_info))
        .route(
            "/v1/chain/get_producer_schedule",
            any(get_producer_schedule),
        )
        .route("/v1/node/get_supported_apis", any(get_supported_apis))
        .route("/sim/state", get(sim_state))
        .route("/sim/fault", post(post_fault));
    if shared.producer_api {
        router = router
            .route("/v1/producer/pause", any(pause))
            .route("/v1/producer/resume", any(resume))
            .route("/v1/producer/paused", any(paused));
    }
    router
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), v1_faults))
        .with_state(shared)
}

/// `hang` and `slow` for every `/v1` request, known route or not; `/sim` is never affected.
async fn v1_faults(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/v1/") {
        loop {
            match shared.fault() {
                Fault::Hang => tokio::time::sleep(HANG_POLL).await,
                Fault::Slow { delay_ms } => {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    break;
                }
                _ => break,
            }
        }
    }
    next.run(request).await
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_value(status: StatusCode, value: &impl Serialize) -> Response {
    json_response(
        status,
        serde_json::to_string(value).unwrap_or_else(|_| "null".to_string()),
    )
}

/// nodeos's `error_results` body: `{"code":..,"message":..,"error":{"code":..,"name":..,"what":..,"details":[..]}}`.
fn nodeos_error(
    status: StatusCode,
    message: &str,
    error: (i64, &str, &str),
    detail: (&str, &str, u64, &str),
) -> Response {
    let (code, name, what) = error;
    let (detail_message, file, line_number, method) = detail;
    json_value(
        status,
        &json!({
            "code": status.as_u16(),
            "message": message,
            "error": {
                "code": code,
                "name": name,
                "what": what,
                "details": [{
                    "message": detail_message,
                    "file": file,
                    "line_number": line_number,
                    "method": method,
                }],
            },
        }),
    )
}

/// The 404 nodeos answers for a path no plugin registered.
async fn not_found() -> Response {
    nodeos_error(
        StatusCode::NOT_FOUND,
        "Not Found",
        (0, "exception", "unspecified"),
        (
            "Unknown Endpoint",
            "beast_http_session.hpp",
            177,
            "handle_request",
        ),
    )
}

/// Whether `body` counts as no parameters, as nodeos's `is_empty_content` decides: empty or spaces, or `{}` with
/// only spaces and tabs inside (after trimming spaces; not newlines).
fn is_empty_content(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_matches(' ');
    trimmed.is_empty()
        || (trimmed.len() > 1
            && trimmed.starts_with('{')
            && trimmed.ends_with('}')
            && trimmed[1..trimmed.len() - 1]
                .chars()
                .all(|c| c == ' ' || c == '\t'))
}

/// Calls without parameters take an empty body or `{}`; anything else gets nodeos's 400, returned here.
fn reject_params(body: &Bytes) -> Option<Response> {
    if is_empty_content(body) {
        return None;
    }
    Some(nodeos_error(
        StatusCode::BAD_REQUEST,
        "Invalid Request",
        (3_200_006, "invalid_http_request", "invalid http request"),
        (
            "no parameter should be given",
            "http_plugin.hpp",
            246,
            "parse_params",
        ),
    ))
}

/// `get_info` in the field order of Spring 1.x's `get_info_results`.
#[derive(Debug, Serialize)]
struct GetInfo {
    server_version: String,
    chain_id: String,
    head_block_num: u64,
    last_irreversible_block_num: u64,
    last_irreversible_block_id: String,
    head_block_id: String,
    head_block_time: String,
    head_block_producer: String,
    virtual_block_cpu_limit: u64,
    virtual_block_net_limit: u64,
    block_cpu_limit: u64,
    block_net_limit: u64,
    server_version_string: String,
    fork_db_head_block_num: u64,
    fork_db_head_block_id: String,
    server_full_version_string: String,
    total_cpu_weight: String,
    total_net_weight: String,
    earliest_available_block_num: u64,
    last_irreversible_block_time: String,
}

fn info(node: &Node, now: DateTime<Utc>) -> GetInfo {
    let params = node.params();
    let head = node.head(now);
    let lib = node.lib(now);
    let version_hash = fnv1a(node.version().as_bytes());
    let head_id = id_hex(&params.block_id(head));
    GetInfo {
        server_version: format!("{:08x}", version_hash as u32),
        chain_id: id_hex(&params.chain_id()),
        head_block_num: head,
        last_irreversible_block_num: lib,
        last_irreversible_block_id: id_hex(&params.block_id(lib)),
        head_block_id: head_id.clone(),
        head_block_time: nodeos_time(params.block_time(head)),
        head_block_producer: params.producer_of(head).to_string(),
        virtual_block_cpu_limit: 200_000_000,
        virtual_block_net_limit: 1_048_576_000,
        block_cpu_limit: 200_000,
        block_net_limit: 1_048_576,
        server_version_string: node.version().to_string(),
        fork_db_head_block_num: head,
        fork_db_head_block_id: head_id,
        // The version, then a 40-hex commit whose first 8 digits are `server_version`, as nodeos prints them.
        server_full_version_string: format!(
            "{}-{:08x}{:016x}{:016x}",
            node.version(),
            version_hash as u32,
            version_hash,
            version_hash.rotate_left(17)
        ),
        total_cpu_weight: "383238297463548".to_string(),
        total_net_weight: "95748713458217".to_string(),
        earliest_available_block_num: 1,
        last_irreversible_block_time: nodeos_time(params.block_time(lib)),
    }
}

async fn get_info(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(response) = reject_params(&body) {
        return response;
    }
    shared.with_node(|node, now| json_value(StatusCode::OK, &info(node, now)))
}

async fn get_producer_schedule(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(response) = reject_params(&body) {
        return response;
    }
    shared.with_node(|node, _| {
        let params = node.params();
        let producers: Vec<Value> = params
            .producers()
            .iter()
            .map(|name| {
                json!({
                    "producer_name": name,
                    "authority": [0, {
                        "threshold": 1,
                        "keys": [{"key": params.producer_key(name), "weight": 1}],
                    }],
                })
            })
            .collect();
        json_value(
            StatusCode::OK,
            &json!({
                "active": {"version": 1, "producers": producers},
                "pending": null,
                "proposed": null,
            }),
        )
    })
}

async fn get_supported_apis(State(shared): State<Arc<Shared>>) -> Response {
    let mut apis: Vec<&str> = CHAIN_ROUTES.to_vec();
    if shared.producer_api {
        apis.extend(PRODUCER_ROUTES);
    }
    json_value(StatusCode::OK, &json!({ "apis": apis }))
}

/// `producer_api_plugin` answers its calls with 201.
async fn pause(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(response) = reject_params(&body) {
        return response;
    }
    shared.with_node(|node, _| {
        if node.pause() {
            tracing::info!("production paused");
        } else {
            tracing::warn!("pause answered ok but refused (refuse-pause fault)");
        }
    });
    json_response(StatusCode::CREATED, r#"{"result":"ok"}"#.to_string())
}

async fn resume(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(response) = reject_params(&body) {
        return response;
    }
    shared.with_node(|node, _| {
        node.resume();
        tracing::info!("production resumed");
    });
    json_response(StatusCode::CREATED, r#"{"result":"ok"}"#.to_string())
}

async fn paused(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(response) = reject_params(&body) {
        return response;
    }
    let paused = shared.with_node(|node, _| node.paused());
    json_response(StatusCode::CREATED, paused.to_string())
}

async fn sim_state(State(shared): State<Arc<Shared>>) -> Response {
    json_value(StatusCode::OK, &shared.sim_state())
}

async fn post_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let fault = serde_json::from_slice::<FaultRequest>(&body)
        .map_err(|error| format!("invalid fault request: {error}"))
        .and_then(|request| request.fault().map_err(|error| error.to_string()));
    let fault = match fault {
        Ok(fault) => fault,
        Err(message) => {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                message,
            )
                .into_response();
        }
    };
    shared.set_fault(fault);
    exit_soon(fault, shared.data_dir().map(Path::to_path_buf));
    json_value(StatusCode::OK, &shared.sim_state())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_content_is_what_nodeos_calls_empty() {
        for body in ["", "   ", "{}", " { } ", "{\t}"] {
            assert!(is_empty_content(body.as_bytes()), "{body:?}");
        }
        for body in ["null", "{\"a\":1}", "[]", "{}\n", "x"] {
            assert!(!is_empty_content(body.as_bytes()), "{body:?}");
        }
    }
}

//! The simulator's HTTP surface: Jormungandr REST API v0 under `/api/v0` and the fault controls under `/sim`.
//!
//! Owns routes, JSON shapes (camelCase DTOs as in the REST reference), status codes, and the `hang`, `slow`,
//! `slow-leaders` and `refuse-promotion` faults, which act here because they are about answering HTTP. Node
//! behaviour lives in `node`; every handler first brings the node up to the current time through
//! [`Shared::with_node`].

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, TimeDelta, Utc};
use nodekeeper::chain::jormungandr::secret;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use crate::chain::{Block, ChainParams, derive_id, parse_hash, to_hex};
use crate::events::EventLog;
use crate::fault::{Fault, FaultRequest};
use crate::node::{Node, NodeState};

/// What `/leaders*` and the other "full context" routes answer while the node is not `Running`, like 0.8.x.
const NOT_READY: &str = "Full REST context not available yet";
/// What `POST /api/v0/leaders` answers (with a 500) under the `refuse-promotion` fault.
const PROMOTION_REFUSED: &str = "leader promotion refused (refuse-promotion fault)";
/// The leader routes: `/api/v0/leaders` and everything under it; `slow-leaders` delays only these.
const LEADERS_ROUTE: &str = "/api/v0/leaders";
/// How far back from the tip `GET /api/v0/block/{hash}` looks.
const BLOCK_LOOKUP_DEPTH: u64 = 2000;
/// How often a hung request checks whether the hang is over.
const HANG_POLL: Duration = Duration::from_millis(100);
/// How long the process lingers after accepting `crash` over HTTP, so the answer gets out.
const CRASH_DELAY: Duration = Duration::from_millis(100);

/// State shared by the handlers and the background tasks.
#[derive(Debug)]
pub struct Shared {
    node: Mutex<Node>,
    events: Option<EventLog>,
    stop: watch::Sender<bool>,
    data_dir: Option<std::path::PathBuf>,
}

impl Shared {
    /// Wraps a node; leader events go to `events` if given.
    pub fn new(node: Node, events: Option<EventLog>) -> Shared {
        Shared {
            node: Mutex::new(node),
            events,
            stop: watch::channel(false).0,
            data_dir: None,
        }
    }

    /// With the node's data directory (where the `corrupt-db` fault leaves its marker).
    pub fn with_data_dir(mut self, data_dir: Option<std::path::PathBuf>) -> Shared {
        self.data_dir = data_dir;
        self
    }

    /// The node's data directory, if any.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_deref()
    }

    fn lock(&self) -> MutexGuard<'_, Node> {
        // A panic elsewhere must not take the API down with it; the node's data stays consistent per call.
        self.node
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Brings the node up to now, records the resulting leader events, then runs `f` on it.
    pub fn with_node<R>(&self, f: impl FnOnce(&mut Node, DateTime<Utc>) -> R) -> R {
        let now = Utc::now();
        let mut node = self.lock();
        let events = node.advance(now);
        // Recording under the lock keeps one node's lines in slot order.
        if let Some(log) = &self.events {
            for event in &events {
                match log.append(event) {
                    Ok(()) => tracing::info!(
                        epoch = event.epoch,
                        slot = event.slot,
                        height = event.height,
                        "led a block"
                    ),
                    Err(error) => {
                        tracing::error!(error = %anyhow::Error::from(error), "leader event lost")
                    }
                }
            }
        } else {
            for event in &events {
                tracing::info!(
                    epoch = event.epoch,
                    slot = event.slot,
                    height = event.height,
                    "led a block"
                );
            }
        }
        f(&mut node, now)
    }

    /// The current fault, without advancing the node.
    pub fn fault(&self) -> Fault {
        self.lock().fault()
    }

    /// Applies a fault; `Crash` is the caller's business (see [`crash_soon`]).
    pub fn set_fault(&self, fault: Fault) {
        self.with_node(|node, now| {
            if node.fault() != fault {
                tracing::warn!(from = %node.fault(), to = %fault, "fault changed");
            }
            node.set_fault(fault, now);
        });
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
    pub fn sim_state(&self) -> serde_json::Value {
        self.with_node(|node, now| {
            let params = node.params();
            let tip = node.tip(now);
            let abs_slot = params.abs_slot_or_zero(now);
            let date = params.date_of(abs_slot);
            json!({
                "name": node.name(),
                "pid": std::process::id(),
                "fault": node.fault().to_string(),
                "state": node.state(now).as_str(),
                "height": tip.height,
                "tip": to_hex(&params.block_hash(&tip)),
                "tip_date": params.block_date(&tip).to_string(),
                "chain_height": abs_slot,
                "epoch": date.epoch,
                "slot": date.slot,
                "leaders": node.leaders(),
                "uptime": node.uptime(now),
            })
        })
    }
}

/// Exits the process with status 1 shortly, after the current answer had a chance to leave.
pub fn crash_soon() {
    tokio::spawn(async {
        tokio::time::sleep(CRASH_DELAY).await;
        tracing::error!("crash fault: exiting with status 1");
        std::process::exit(1);
    });
}

/// The simulator's router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v0/node/stats", get(node_stats))
        .route("/api/v0/settings", get(settings))
        .route("/api/v0/leaders", get(get_leaders).post(post_leader))
        .route("/api/v0/leaders/logs", get(leaders_logs))
        .route("/api/v0/leaders/{id}", delete(delete_leader))
        .route("/api/v0/tip", get(tip))
        .route("/api/v0/block/{hash}", get(block))
        .route("/api/v0/network/stats", get(network_stats))
        .route("/api/v0/shutdown", get(shutdown))
        .route("/sim/state", get(sim_state))
        .route("/sim/fault", post(post_fault))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), api_faults))
        .with_state(shared)
}

/// Whether `path` is one of the leader routes (`/api/v0/leaders`, `/api/v0/leaders/{id}`, `/api/v0/leaders/logs`).
fn is_leaders_route(path: &str) -> bool {
    path.strip_prefix(LEADERS_ROUTE)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `hang` and `slow` for every `/api/v0` request, known route or not, and `slow-leaders` for the leader routes
/// only; `/sim` is never affected.
async fn api_faults(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/api/") {
        let leaders = is_leaders_route(path);
        loop {
            match shared.fault() {
                Fault::Hang => tokio::time::sleep(HANG_POLL).await,
                Fault::Slow { delay_ms } => {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    break;
                }
                Fault::SlowLeaders { delay_ms } if leaders => {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    break;
                }
                _ => break,
            }
        }
    }
    next.run(request).await
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn not_ready() -> Response {
    text(StatusCode::SERVICE_UNAVAILABLE, NOT_READY)
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found")
}

/// `GET /api/v0/node/stats`.
#[derive(Debug, Serialize)]
struct NodeStatsDto {
    version: String,
    state: NodeState,
    #[serde(flatten)]
    stats: Option<NodeStats>,
}

/// The 0.9 `NodeStats` (no `nodeId`), fields in the reference's order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeStats {
    block_recv_cnt: u64,
    last_block_content_size: u64,
    last_block_date: String,
    last_block_fees: u64,
    last_block_hash: String,
    last_block_height: String,
    last_block_sum: u64,
    last_block_time: String,
    last_block_tx: u64,
    last_received_block_time: Option<String>,
    peer_available_cnt: u64,
    peer_connected_cnt: u64,
    peer_quarantined_cnt: u64,
    peer_total_cnt: u64,
    peer_unreachable_cnt: u64,
    tx_recv_cnt: u64,
    uptime: Option<u64>,
}

/// When a node got `block`: a little after its slot started.
fn received_time(params: &ChainParams, block: &Block) -> DateTime<Utc> {
    let delay = 80 + i64::from(params.block_hash(block)[2]);
    params.slot_time(params.block_slot(block)) + TimeDelta::milliseconds(delay)
}

fn full_stats(node: &Node, now: DateTime<Utc>) -> NodeStats {
    let params = node.params();
    let tip = node.tip(now);
    let tx = params.block_tx_count(&tip);
    let hash = params.block_hash(&tip);
    let received = node.blocks_received(now);
    NodeStats {
        block_recv_cnt: received,
        last_block_content_size: params.block_content_size(&tip),
        last_block_date: params.block_date(&tip).to_string(),
        last_block_fees: tx * 400_000,
        last_block_hash: to_hex(&hash),
        last_block_height: tip.height.to_string(),
        last_block_sum: tx * 1_000_000 * (u64::from(hash[1]) + 1),
        last_block_time: params.slot_time(params.block_slot(&tip)).to_rfc3339(),
        last_block_tx: tx,
        last_received_block_time: (received > 0).then(|| received_time(params, &tip).to_rfc3339()),
        peer_available_cnt: 42,
        peer_connected_cnt: 8,
        peer_quarantined_cnt: 3,
        peer_total_cnt: 53,
        peer_unreachable_cnt: 0,
        tx_recv_cnt: received * 2,
        uptime: Some(node.uptime(now)),
    }
}

async fn node_stats(State(shared): State<Arc<Shared>>) -> Response {
    shared.with_node(|node, now| {
        let state = node.state(now);
        let stats = (state == NodeState::Running).then(|| full_stats(node, now));
        axum::Json(NodeStatsDto {
            version: node.version().to_string(),
            state,
            stats,
        })
        .into_response()
    })
}

async fn settings(State(shared): State<Arc<Shared>>) -> Response {
    shared.with_node(|node, now| {
        if node.state(now) != NodeState::Running {
            return not_ready();
        }
        let params = node.params();
        let current_slot_start = params
            .abs_slot_at(now)
            .map(|slot| params.slot_time(slot).to_rfc3339());
        axum::Json(json!({
            "block0Hash": to_hex(&params.block0_hash()),
            "block0Time": params.block0_time().to_rfc3339(),
            "currSlotStartTime": current_slot_start,
            "consensusVersion": "genesis",
            "fees": {"constant": 200_000, "coefficient": 100_000, "certificate": 400_000},
            "blockContentMaxSize": 102_400,
            "epochStabilityDepth": 10,
            "slotDuration": params.slot_duration(),
            "slotsPerEpoch": params.slots_per_epoch(),
            "treasuryTax": {"fixed": 0, "ratio": {"numerator": 1, "denominator": 10}},
            "rewardParams": {
                "initialValue": 3_835_616_440_000u64,
                "compoundingRatio": {"numerator": 0, "denominator": 1},
                "compoundingType": "Linear",
                "epochRate": 1,
                "epochStart": 1,
                "rewardDrawingLimitMax": "None",
                "poolParticipationCapping": null,
            },
        }))
        .into_response()
    })
}

async fn get_leaders(State(shared): State<Arc<Shared>>) -> Response {
    shared.with_node(|node, now| {
        if node.state(now) != NodeState::Running {
            return not_ready();
        }
        axum::Json(node.leaders()).into_response()
    })
}

/// `POST /api/v0/leaders`: a well-formed secret is refused with a 500 under `refuse-promotion` (a malformed one
/// is still a 400), and the enclave is left as it was.
async fn post_leader(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    shared.with_node(|node, now| {
        if node.state(now) != NodeState::Running {
            return not_ready();
        }
        let parsed = std::str::from_utf8(&body)
            .map_err(|_| "body is not utf-8".to_string())
            .and_then(|text| secret::parse_json(text).map_err(|error| error.to_string()));
        match parsed {
            Ok(_) if node.fault() == Fault::RefusePromotion => {
                tracing::warn!("leader promotion refused (refuse-promotion fault)");
                text(StatusCode::INTERNAL_SERVER_ERROR, PROMOTION_REFUSED)
            }
            Ok(secret) => {
                let id = node.add_leader(secret);
                tracing::info!(id, "leader added");
                axum::Json(id).into_response()
            }
            Err(message) => text(StatusCode::BAD_REQUEST, message),
        }
    })
}

async fn delete_leader(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    shared.with_node(|node, now| {
        if node.state(now) != NodeState::Running {
            return not_ready();
        }
        let Ok(id) = id.parse::<u32>() else {
            return text(StatusCode::BAD_REQUEST, format!("invalid leader id {id:?}"));
        };
        if node.remove_leader(id) {
            tracing::info!(id, "leader removed");
            StatusCode::OK.into_response()
        } else {
            text(StatusCode::NOT_FOUND, format!("leader {id} not found"))
        }
    })
}

async fn leaders_logs(State(shared): State<Arc<Shared>>) -> Response {
    shared.with_node(|node, now| {
        if node.state(now) != NodeState::Running {
            return not_ready();
        }
        axum::Json(node.leadership_logs()).into_response()
    })
}

async fn tip(State(shared): State<Arc<Shared>>) -> Response {
    shared.with_node(|node, now| {
        if node.state(now) != NodeState::Running {
            return not_ready();
        }
        text(
            StatusCode::OK,
            to_hex(&node.params().block_hash(&node.tip(now))),
        )
    })
}

async fn block(State(shared): State<Arc<Shared>>, Path(hash): Path<String>) -> Response {
    shared.with_node(|node, now| {
        if node.state(now) != NodeState::Running {
            return not_ready();
        }
        let Some(hash) = parse_hash(&hash) else {
            return text(StatusCode::BAD_REQUEST, "invalid block id");
        };
        let params = node.params();
        match params.find_block(&node.tip(now), &hash, BLOCK_LOOKUP_DEPTH) {
            Some(block) => (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                Body::from(params.block_bytes(&block)),
            )
                .into_response(),
            None => text(StatusCode::NOT_FOUND, "block not found"),
        }
    })
}

/// One entry of `GET /api/v0/network/stats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PeerStats {
    node_id: String,
    addr: Option<String>,
    established_at: String,
    last_block_received: Option<String>,
    last_fragment_received: Option<String>,
    last_gossip_received: Option<String>,
}

async fn network_stats(State(shared): State<Arc<Shared>>) -> Response {
    shared.with_node(|node, now| {
        if node.state(now) != NodeState::Running {
            return not_ready();
        }
        let params = node.params();
        let tip = node.tip(now);
        let name_seed = crate::chain::fnv1a(node.name().as_bytes());
        let started = now - TimeDelta::seconds(i64::try_from(node.uptime(now)).unwrap_or(0));
        let peers: Vec<PeerStats> = (0..4u8)
            .map(|i| PeerStats {
                node_id: to_hex(&derive_id(&[name_seed, u64::from(i)])),
                addr: Some(format!("10.0.{}.{}:3000", i, (name_seed % 250) + 1)),
                established_at: (started + TimeDelta::milliseconds(350 * i64::from(i) + 120))
                    .to_rfc3339(),
                last_block_received: (i % 2 == 0).then(|| received_time(params, &tip).to_rfc3339()),
                last_fragment_received: None,
                last_gossip_received: Some(
                    (now - TimeDelta::milliseconds(200 * i64::from(i) + 50)).to_rfc3339(),
                ),
            })
            .collect();
        axum::Json(peers).into_response()
    })
}

async fn shutdown(State(shared): State<Arc<Shared>>) -> Response {
    tracing::info!("shutdown requested over the REST API");
    shared.request_stop();
    StatusCode::OK.into_response()
}

async fn sim_state(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.sim_state()).into_response()
}

async fn post_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: FaultRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("invalid fault request: {error}"),
            );
        }
    };
    let fault = match request.fault() {
        Ok(fault) => fault,
        Err(error) => return text(StatusCode::BAD_REQUEST, error.to_string()),
    };
    shared.set_fault(fault);
    if fault == Fault::Crash {
        crash_soon();
    }
    if fault == Fault::CorruptDb {
        let dir = shared.data_dir().map(std::path::Path::to_path_buf);
        tokio::spawn(async move {
            tokio::time::sleep(CRASH_DELAY).await;
            crate::data::corrupt_and_exit(dir.as_deref());
        });
    }
    axum::Json(shared.sim_state()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_routes_are_the_leaders_path_and_below() {
        for path in [
            "/api/v0/leaders",
            "/api/v0/leaders/",
            "/api/v0/leaders/1",
            "/api/v0/leaders/logs",
        ] {
            assert!(is_leaders_route(path), "{path}");
        }
        for path in [
            "/api/v0/node/stats",
            "/api/v0/leadersx",
            "/api/v0/settings",
            "/sim/state",
            "/api/v0",
        ] {
            assert!(!is_leaders_route(path), "{path}");
        }
    }
}

//! The cardano simulator's HTTP surface: Prometheus `GET /metrics` and the controls under `/sim`; also the
//! state the handlers and background tasks share, and the node's cardano-style log lines on stdout.
//!
//! Owns routes, the `/sim/*` JSON shapes, and the `hang` and `slow` faults, which act here because they are about
//! answering HTTP: they hold every request outside `/sim/`, so `/sim/*` keeps answering under every fault except
//! `crash`. Node behaviour lives in `node`; every handler first brings the node up to the current time through
//! [`Shared::with_node`], which also records forged blocks in the events file.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;

use super::config::{CredentialPaths, MetricsSuffix};
use super::fault::{Fault, FaultRequest};
use super::files::{EventLog, leadership_schedule, read_credentials};
use super::metrics;
use super::node::{Node, Reload};

/// How often a hung request checks whether the hang is over.
const HANG_POLL: Duration = Duration::from_millis(100);
/// How long the process lingers after accepting `crash` over HTTP, so the answer gets out.
const CRASH_DELAY: Duration = Duration::from_millis(100);

/// Writes one log line to stdout as cardano-node's legacy (iohk-monitoring) scribe formats it:
/// `[HOST:cardano.node.startup:Info:5] [2024-01-29 15:20:50.50 UTC] MESSAGE`. Errors (a closed pipe) are ignored.
pub fn log_line(host: &str, namespace: &str, message: &str, now: DateTime<Utc>) {
    let stamp = now.format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    // Two decimals, as the real scribe prints them.
    let stamp = &stamp[..stamp.len() - 1];
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "[{host}:cardano.node.{namespace}:Info:5] [{stamp} UTC] {message}"
    );
    let _ = stdout.flush();
}

/// State shared by the handlers and the background tasks.
#[derive(Debug)]
pub struct Shared {
    node: Mutex<Node>,
    events: Option<EventLog>,
    credentials: Option<CredentialPaths>,
    suffix: MetricsSuffix,
    stop: watch::Sender<bool>,
}

impl Shared {
    /// Wraps a node; forge events go to `events` if given.
    pub fn new(
        node: Node,
        events: Option<EventLog>,
        credentials: Option<CredentialPaths>,
        suffix: MetricsSuffix,
    ) -> Shared {
        Shared {
            node: Mutex::new(node),
            events,
            credentials,
            suffix,
            stop: watch::channel(false).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Node> {
        // A panic while holding the lock leaves a consistent node (every mutation is a plain assignment).
        self.node
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Brings the node up to now (recording forged blocks), then runs `f` on it.
    pub fn with_node<T>(&self, f: impl FnOnce(&mut Node, DateTime<Utc>) -> T) -> T {
        let now = Utc::now();
        let mut node = self.lock();
        for event in node.advance(now) {
            log_line(
                node.name(),
                "Forge",
                &format!(
                    "Forged block {} in slot {} (epoch {})",
                    event.block, event.slot, event.epoch
                ),
                now,
            );
            if let Some(log) = &self.events
                && let Err(error) = log.append(&event)
            {
                tracing::error!(error = %anyhow::Error::from(error), "cannot record a forged block");
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

    /// Handles a SIGHUP: re-reads the credential files and logs what the node concluded, like cardano-node
    /// (`Performing block forging reconfiguration: …`, then `Performing topology configuration update` unless the
    /// change was not effective).
    pub fn sighup(&self) -> Option<Reload> {
        let credentials = read_credentials(self.credentials.as_ref());
        self.with_node(|node, now| {
            let reload = node.sighup(&credentials, now);
            match &reload {
                Some(Reload::NotEffective) => {
                    log_line(node.name(), "startup", &Reload::NotEffective.message(), now);
                }
                Some(reload) => {
                    log_line(node.name(), "startup", &reload.message(), now);
                    // SIGHUP also re-reads the topology (P2P mode), as the real handler does after forging.
                    log_line(
                        node.name(),
                        "startup",
                        "Performing topology configuration update",
                        now,
                    );
                }
                None => tracing::warn!("SIGHUP ignored (ignore-sighup fault)"),
            }
            reload
        })
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
            let wall_slot = node.wall_slot(now);
            let tip = node.tip(now);
            json!({
                "name": node.name(),
                "pid": std::process::id(),
                "fault": node.fault().to_string(),
                "state": if node.replaying(now) { "replaying" } else { "running" },
                "in_sync": node.in_sync(now),
                "forging": node.forging(),
                "sighups": node.sighups(),
                "last_reload": node.last_reload().map(Reload::as_str),
                "wall_slot": wall_slot,
                "wall_epoch": params.epoch_of(wall_slot),
                "chain_tip_slot": params.tip_at(wall_slot).slot,
                "chain_block": params.tip_at(wall_slot).block,
                "slot": tip.map_or(0, |tip| tip.slot),
                "block": tip.map_or(0, |tip| tip.block),
                "epoch": tip.map_or(0, |tip| params.epoch_of(tip.slot)),
                "slot_in_epoch": tip.map_or(0, |tip| params.slot_in_epoch(tip.slot)),
                "counters": node.counters(),
                "kes_period": node.current_kes_period(now),
                "opcert_kes_period": node.opcert_kes_period(),
                "remaining_kes_periods": node.remaining_kes_periods(now),
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
        .route("/metrics", get(metrics_text))
        .route("/sim/state", get(sim_state))
        .route("/sim/fault", post(post_fault))
        .route("/sim/schedule", get(sim_schedule))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), http_faults))
        .with_state(shared)
}

/// `hang` and `slow` for every request outside `/sim/`; `/sim/*` is never affected.
async fn http_faults(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/sim/") {
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

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found")
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    let suffix = shared.suffix;
    let body = shared.with_node(|node, now| metrics::render(node, now, suffix));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn sim_state(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.sim_state()).into_response()
}

/// `GET /sim/schedule?epoch=N` (default: the current epoch): the `--write-schedule` JSON.
async fn sim_schedule(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let epoch = match query.get("epoch").map(|text| text.parse::<u64>()) {
        Some(Ok(epoch)) => Some(epoch),
        Some(Err(_)) => return text(StatusCode::BAD_REQUEST, "epoch must be a number"),
        None => None,
    };
    shared.with_node(|node, now| {
        let params = node.params();
        let epoch = epoch.unwrap_or_else(|| params.epoch_of(node.wall_slot(now)));
        axum::Json(leadership_schedule(params, epoch)).into_response()
    })
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
    axum::Json(shared.sim_state()).into_response()
}

//! The web dashboard served on the API's address: one page (`GET /`, with `/app.js` and
//! `/style.css`, embedded in the binary), the live feed (`GET /v1/events`, server-sent events of
//! the status JSON each time the snapshot changes), the heights of the last hour
//! (`GET /v1/history`) and the restarts-per-day chart of `log analyze --plot`
//! (`GET /v1/restarts.svg`). It reads what the API reads and acts through the API's own
//! token-protected endpoints (from the page's script); it decides nothing.
//!
//! One sampler task ([`Live::run`], started by `api::serve`) polls the shared snapshot and, when it
//! changed, publishes the status JSON on a `watch` channel (every event stream reads it: one
//! serialisation per change, whatever the number of viewers) and records the heights in the
//! bounded [`History`]. Event streams are capped ([`MAX_STREAMS`], 503 beyond) and end when the
//! sampler stops, so a shutdown is not held by an open page.

pub mod history;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::{ApiError, ApiState};
use crate::status::Snapshot;
pub use history::History;

/// Event streams open at once; more get 503 (EventSource tries again by itself).
pub const MAX_STREAMS: usize = 32;
/// How often the sampler looks at the shared snapshot (the loop writes it once a tick).
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How long a client waits before reconnecting a dropped stream (the SSE `retry` field).
const RETRY: Duration = Duration::from_secs(2);

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// The page's policy: its own script and style only, requests to this host only, no frames, no
/// forms posted anywhere.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";
/// The chart's policy (opened on its own): nothing but its own inline style.
const SVG_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'";

/// What the live feed carries.
#[derive(Clone, Debug, PartialEq)]
enum Feed {
    /// Nothing sampled yet.
    Waiting,
    /// The latest status JSON (what `GET /v1/status` answers).
    Status(Arc<str>),
    /// The API is stopping: streams end.
    Closed,
}

/// The dashboard's shared state: the live feed, the heights' history and the streams' places.
#[derive(Clone)]
pub struct Live {
    feed: watch::Sender<Feed>,
    history: Arc<Mutex<History>>,
    streams: Arc<Semaphore>,
}

impl Default for Live {
    fn default() -> Live {
        Live::new(MAX_STREAMS, History::default())
    }
}

impl Live {
    /// A feed with room for `max_streams` event streams and an empty `history`.
    pub fn new(max_streams: usize, history: History) -> Live {
        Live {
            feed: watch::Sender::new(Feed::Waiting),
            history: Arc::new(Mutex::new(history)),
            streams: Arc::new(Semaphore::new(max_streams)),
        }
    }

    /// Publishes `snapshot` to the streams and records its heights.
    pub fn publish(&self, snapshot: &Snapshot) {
        match super::status_json(snapshot) {
            Ok(value) => {
                self.feed
                    .send_replace(Feed::Status(Arc::from(value.to_string())));
            }
            Err(e) => tracing::warn!("dashboard: cannot serialise the status: {e}"),
        }
        if let Ok(taken_at) = chrono::DateTime::parse_from_rfc3339(&snapshot.taken_at)
            && let Ok(mut history) = self.history.lock()
        {
            history.record(taken_at.timestamp(), snapshot);
        }
    }

    /// The sampler: publishes the shared `snapshot` each time it changed (by its `taken_at`)
    /// until `stop` resolves, then ends every stream.
    pub async fn run(self, snapshot: Arc<RwLock<Snapshot>>, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = None;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = every.tick() => {}
            }
            let current = match snapshot.read() {
                Ok(current) if last.as_ref() != Some(&current.taken_at) => current.clone(),
                _ => continue,
            };
            last = Some(current.taken_at.clone());
            self.publish(&current);
        }
        self.feed.send_replace(Feed::Closed);
    }

    fn place(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.streams).try_acquire_owned().ok()
    }
}

/// The dashboard's routes (merged into the API's router).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .route("/v1/events", get(events))
        .route("/v1/history", get(history))
        .route("/v1/restarts.svg", get(restarts_svg))
}

/// An embedded file with its type; never sniffed, never cached stale (it changes with the binary).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// The status JSON now and at each change, as `status` events; 503 when every place is taken.
async fn events(
    State(state): State<ApiState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let place = state.live.place().ok_or_else(|| {
        ApiError::Unavailable(format!(
            "{MAX_STREAMS} event streams are open already; try again later"
        ))
    })?;
    let mut feed = state.live.feed.subscribe();
    // The current status first, then each change.
    feed.mark_changed();
    let first = Event::default().retry(RETRY).comment("nodekeeper");
    let updates = stream::unfold((feed, place), |(mut feed, place)| async move {
        loop {
            feed.changed().await.ok()?;
            let current = feed.borrow_and_update().clone();
            match current {
                Feed::Waiting => continue,
                Feed::Closed => return None,
                Feed::Status(json) => {
                    let event = Event::default().event("status").data(&*json);
                    return Some((Ok(event), (feed, place)));
                }
            }
        }
    });
    let stream = futures_util::StreamExt::chain(stream::once(async { Ok(first) }), updates);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Each node's heights over the last hour (`{"step_secs", "window_secs", "nodes": {name:
/// [[unix seconds, height], ...]}}`).
async fn history(State(state): State<ApiState>) -> Result<Json<History>, ApiError> {
    state
        .live
        .history
        .lock()
        .map(|history| Json(history.clone()))
        .map_err(|_| ApiError::Internal("history unavailable".into()))
}

/// Restarts per UTC day per node from the restart log, the SVG of `log analyze --plot`.
async fn restarts_svg(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let path: PathBuf = state.restart_log.clone();
    let svg = tokio::task::spawn_blocking(move || restarts_per_day(&path))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(SVG_CSP),
            ),
        ],
        svg,
    )
        .into_response())
}

fn restarts_per_day(path: &std::path::Path) -> Result<String, String> {
    use crate::analyze::{self, read};
    let loaded = if path.exists() {
        read::read_inputs(&[read::Input::Path(path.to_path_buf())], 1)
            .map_err(|e| crate::describe::chain(&e))?
    } else {
        read::Loaded::default()
    };
    let report = analyze::analyze(&loaded.dataset, &analyze::report::Options::default());
    analyze::plot::restarts_per_day_svg(&report)
}

#[cfg(test)]
mod tests;

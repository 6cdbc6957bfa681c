//! The API's accept loop, bounded so that no client can hold it: a header-read timeout (which
//! also ends a kept-alive connection idle that long), a body-read timeout, a timeout of the whole
//! request, and a cap on connections served at once (beyond it, new connections wait in the
//! listen backlog until one ends). It serves a `Router` and decides nothing.
//!
//! axum's own `serve` sets none of these (hyper's header timeout needs a timer that axum does not
//! give it), so this is a small loop on hyper's HTTP/1 connection builder.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::{ApiError, BODY_LIMIT};

/// The bounds of the API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest wait for a request's header: from the connection's start, and again after each
    /// answer (so it is also how long a kept-alive connection may stay idle).
    pub header_timeout: Duration,
    /// The longest wait for a request's body once its header is in (408 after).
    pub body_timeout: Duration,
    /// The longest a request may take once read, answer included (503 after). It must exceed
    /// the longest `?wait=true`.
    pub request_timeout: Duration,
    /// Connections served at once; more wait until one ends.
    pub max_connections: usize,
}

impl Limits {
    /// The defaults: 10 s for a header or a body, 256 connections, and requests given 30 s or
    /// `wait_limit` (the longest `?wait=true`) plus 5 s, whichever is longer.
    pub fn for_wait_limit(wait_limit: Duration) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30)
                .max(wait_limit.saturating_add(Duration::from_secs(5))),
            max_connections: 256,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves; then stops accepting,
/// lets requests in progress finish (for at most a header timeout) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(middleware::from_fn_with_state(limits, bounded));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closing_seen) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        // A permit first: at the cap, nothing more is accepted until a connection ends.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        connections.spawn(connection(
            stream,
            app.clone(),
            limits,
            closing_seen.clone(),
            permit,
        ));
        // Reap the connections that ended, so that the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    let _ = closing.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.header_timeout, drain)
        .await
        .is_err()
    {
        debug!("API: connections still open at shutdown are closed");
    }
    Ok(())
}

/// An accept that failed. A connection reset before it was accepted concerns that connection
/// only; anything else (out of descriptors) is waited out briefly so that the loop does not spin.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    warn!("API: cannot accept a connection: {error}");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Serves one connection, holding its `permit` until it ends.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut connection = pin!(connection);
    let mut told = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    debug!("API connection ended: {e}");
                }
                return;
            }
            _ = closing.wait_for(|closing| *closing), if !told => {
                told = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Reads the body within `body_timeout` (408 after) and runs the request within
/// `request_timeout` (503 after).
async fn bounded(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body =
        match tokio::time::timeout(limits.body_timeout, axum::body::to_bytes(body, BODY_LIMIT))
            .await
        {
            Err(_) => {
                return ApiError::Timeout(format!(
                    "the request body did not arrive within {} s",
                    limits.body_timeout.as_secs_f64()
                ))
                .into_response();
            }
            // Over the limit (or the client went away, when the answer no longer matters).
            Ok(Err(_)) => return ApiError::TooLarge.into_response(),
            Ok(Ok(body)) => body,
        };
    let request = Request::from_parts(parts, Body::from(body));
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(format!(
            "no answer within {} s",
            limits.request_timeout.as_secs_f64()
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    // Real sockets and real time: a test measures how long the server keeps a connection.
    #![allow(clippy::disallowed_types)]
    use std::time::Instant;

    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const HEADER: Duration = Duration::from_millis(300);

    /// The server on a free loopback port with short limits: `/ok` answers, `/stuck` never does,
    /// `/echo` answers with the body it read.
    async fn start(max_connections: usize) -> std::net::SocketAddr {
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/stuck", get(std::future::pending::<&'static str>))
            .route("/echo", post(|body: axum::body::Bytes| async move { body }));
        let limits = Limits {
            header_timeout: HEADER,
            body_timeout: HEADER,
            request_timeout: Duration::from_millis(500),
            max_connections,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, app, limits, std::future::pending()));
        address
    }

    /// Reads until the server closes the connection (at most 5 s): what it sent, and when.
    async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
        let started = Instant::now();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer));
        assert!(
            read.await.is_ok(),
            "the server kept the connection open for 5 s"
        );
        (
            String::from_utf8_lossy(&answer).into_owned(),
            started.elapsed(),
        )
    }

    async fn get_ok(address: std::net::SocketAddr) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        until_closed(&mut stream).await.0
    }

    #[tokio::test]
    async fn a_silent_or_half_sent_header_or_an_idle_connection_is_closed() {
        let address = start(16).await;
        let mut silent = TcpStream::connect(address).await.unwrap();
        let mut half = TcpStream::connect(address).await.unwrap();
        half.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        for stream in [&mut silent, &mut half] {
            let (_, after) = until_closed(stream).await;
            assert!(after < HEADER * 4, "closed after {after:?}");
        }
        // Kept alive after an answer: closed once idle for a header timeout.
        let mut idle = TcpStream::connect(address).await.unwrap();
        idle.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let (answer, after) = until_closed(&mut idle).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(after < HEADER * 4, "closed after {after:?}");
    }

    #[tokio::test]
    async fn a_slow_body_gets_408_and_a_request_that_never_ends_503() {
        let address = start(16).await;
        let mut slow = TcpStream::connect(address).await.unwrap();
        slow.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nab")
            .await
            .unwrap();
        let mut answer = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut answer))
            .await
            .expect("an answer")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

        let mut stuck = TcpStream::connect(address).await.unwrap();
        stuck
            .write_all(b"GET /stuck HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let (answer, _) = until_closed(&mut stuck).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(get_ok(address).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn beyond_the_cap_connections_wait_and_the_server_still_answers() {
        let address = start(4).await;
        // Four silent connections take every place; a fifth waits for one to end.
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(TcpStream::connect(address).await.unwrap());
        }
        tokio::time::sleep(HEADER / 3).await;
        let started = Instant::now();
        let answer = get_ok(address).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let waited = started.elapsed();
        assert!(
            waited > HEADER / 3 && waited < HEADER * 4,
            "answered after {waited:?}"
        );
        // Many more than the cap, dropped at once: every place is given back.
        let mut many = Vec::new();
        for _ in 0..40 {
            many.push(TcpStream::connect(address).await.unwrap());
        }
        drop(many);
        drop(held);
        let started = Instant::now();
        for _ in 0..8 {
            assert!(get_ok(address).await.starts_with("HTTP/1.1 200"));
        }
        assert!(started.elapsed() < HEADER * 4, "{:?}", started.elapsed());
    }
}

//! The client against the real router on a loopback port, with a stand-in for the control loop:
//! every endpoint, the daemon's errors kept with their status, names that need encoding, an
//! unreachable daemon, and answers whose status does not match the action's state.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use reqwest::Method;
use tokio::sync::{mpsc, watch};

use super::*;
use crate::api::{ApiState, router};
use crate::daemon::{Accepted, Request};
use crate::metrics::Metrics;
use crate::policy::Refusal;
use crate::restart_log::{RestartAction, RestartLog, RestartRow};
use crate::status::NodeLine;

const TOKEN: &str = "the-token";

/// The view of an action as the stand-in loop makes it.
fn view(id: &str, node: &str, action: NodeAction, state: ActionState) -> ActionView {
    ActionView {
        id: id.into(),
        node: node.into(),
        action,
        requested_at: "2026-11-22T01:02:03Z".into(),
        note: None,
        state,
    }
}

/// Answers the API's requests like the loop: `hold` is done at once, `stop` fails, other actions
/// run for 50 ms; `nope` is no node, `busy` is busy. Remembers actions by id.
async fn stand_in_loop(mut requests: mpsc::Receiver<Request>) {
    let mut remembered = Vec::new();
    while let Some(request) = requests.recv().await {
        match request {
            Request::Node {
                node,
                action,
                note,
                reply,
                ..
            } => {
                let refusal = match node.as_str() {
                    "nope" => Some(Refusal::UnknownNode(node.clone())),
                    "busy" => Some(Refusal::Busy(node.clone())),
                    _ => None,
                };
                if let Some(refusal) = refusal {
                    let _ = reply.send(Err(refusal));
                    continue;
                }
                let state = match action {
                    NodeAction::Hold => ActionState::Done {
                        message: format!("{node}: held"),
                    },
                    NodeAction::Stop => ActionState::Failed {
                        error: "stop failed".into(),
                    },
                    _ => ActionState::Running,
                };
                let id = format!("a{}", remembered.len() + 1);
                let mut accepted = view(&id, &node, action, state.clone());
                accepted.note = note;
                let (updates, receiver) = watch::channel(state.clone());
                if state == ActionState::Running {
                    let message = format!("{node}: {}ed", action.as_str());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _ = updates.send(ActionState::Done { message });
                        // Kept until the waiters have seen it.
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    });
                }
                remembered.push(accepted.clone());
                let _ = reply.send(Ok(Accepted {
                    view: accepted,
                    updates: receiver,
                }));
            }
            Request::Action { id, reply } => {
                let _ = reply.send(remembered.iter().find(|v| v.id == id).cloned());
            }
        }
    }
}

/// The API on a free loopback port with one node, `node1`, and a restart log of two rows.
async fn serve(dir: &Path) -> String {
    let restart_log = dir.join("restarts.csv");
    let (mut log, _) = RestartLog::open(&restart_log).unwrap();
    for (node, action) in [
        ("node1", RestartAction::Stop),
        ("node1", RestartAction::Start),
    ] {
        log.append(&RestartRow {
            node: node.into(),
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_309_323_123),
            action,
            uptime_secs: Some(7),
            reason: "stale tip (no new block for 6 s)".into(),
            program: "jnode_node1".into(),
            height: Some(10),
            reference_height: None,
            supervisor_state: "RUNNING".into(),
            exit_status: None,
        })
        .unwrap();
    }
    let snapshot = Snapshot {
        taken_at: "2026-11-22T01:02:03Z".into(),
        reference: Some(12),
        nodes: vec![NodeLine {
            name: "node1".into(),
            program: "jnode_node1".into(),
            program_state: "RUNNING".into(),
            height: Some(10),
            ..NodeLine::default()
        }],
        ..Snapshot::default()
    };
    let (requests, receiver) = mpsc::channel(4);
    tokio::spawn(stand_in_loop(receiver));
    let state = ApiState {
        snapshot: Arc::new(RwLock::new(snapshot)),
        requests,
        token: Arc::new(std::sync::RwLock::new(TOKEN.to_string())),
        metrics: Arc::new(Metrics::new()),
        restart_log,
        wait_limit: Duration::from_secs(5),
        live: crate::api::dashboard::Live::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    listen
}

fn client(listen: &str) -> ApiClient {
    ApiClient::new(listen, Duration::from_secs(10))
        .unwrap()
        .with_token(TOKEN)
}

#[track_caller]
fn assert_status(result: Result<impl std::fmt::Debug, ApiClientError>, status: u16, text: &str) {
    match result {
        Err(ApiClientError::Status {
            status: got,
            message,
        }) => {
            assert_eq!(got, status, "{message}");
            assert!(message.contains(text), "{message:?} lacks {text:?}");
        }
        other => panic!("expected HTTP {status}, got {other:?}"),
    }
}

#[tokio::test]
async fn read_endpoints_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let listen = serve(dir.path()).await;
    let api = client(&listen);
    assert_eq!(api.base(), format!("http://{listen}"));

    // The loop has not ticked: 503 with the reason.
    assert_status(api.healthz().await, 503, "not ready: the control loop");
    let status = api.status().await.unwrap();
    assert_eq!(status.nodes[0].name, "node1");
    assert_eq!(status.reference, Some(12));
    let metrics = api.metrics().await.unwrap();
    assert!(
        metrics.contains("# TYPE nodekeeper_build_info gauge"),
        "{metrics}"
    );

    let all = api.restarts(&RestartsQuery::default()).await.unwrap();
    assert_eq!(all.skipped_rows, 0);
    let actions: Vec<RestartAction> = all.rows.iter().map(|row| row.action).collect();
    assert_eq!(actions, [RestartAction::Stop, RestartAction::Start]);
    // The wire format of a row, exactly.
    let reply = api
        .send(Method::GET, "/v1/restarts?limit=1", None)
        .await
        .unwrap();
    let raw: serde_json::Value = reply.json().unwrap();
    assert_eq!(
        raw,
        serde_json::json!({"rows": [{
            "node": "node1",
            "timestamp": "2026-11-22T01:02:03.123Z",
            "action": "start",
            "uptime_secs": 7,
            "reason": "stale tip (no new block for 6 s)",
            "program": "jnode_node1",
            "height": 10,
            "reference_height": null,
            "supervisor_state": "RUNNING",
            "exit_status": null,
        }], "skipped_rows": 0})
    );
    assert_eq!(all.rows[0].uptime_secs, Some(7));
    assert_eq!(all.rows[0].reference_height, None);
    let query = RestartsQuery {
        node: Some("node1".into()),
        since: Some("2026-11-22T01:02:03+00:00".into()),
        limit: Some(1),
    };
    let last = api.restarts(&query).await.unwrap();
    assert_eq!(last.rows, all.rows[1..]);
    let unknown = RestartsQuery {
        node: Some("a node/with?odd&chars".into()),
        ..RestartsQuery::default()
    };
    assert_status(
        api.restarts(&unknown).await,
        404,
        "no node \"a node/with?odd&chars\"",
    );
    let bad = RestartsQuery {
        since: Some("yesterday".into()),
        ..RestartsQuery::default()
    };
    assert_status(api.restarts(&bad).await, 400, "expected RFC 3339");
}

#[tokio::test]
async fn actions_are_typed_and_checked_against_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let listen = serve(dir.path()).await;
    let api = client(&listen);

    let held = api
        .node_action("node1", NodeAction::Hold, Some("maintenance"), false)
        .await
        .unwrap();
    assert_eq!(
        held.state,
        ActionState::Done {
            message: "node1: held".into()
        }
    );
    assert_eq!(held.note.as_deref(), Some("maintenance"));
    let running = api
        .node_action("node1", NodeAction::Restart, None, false)
        .await
        .unwrap();
    assert_eq!(running.state, ActionState::Running);
    assert_eq!(api.action(&running.id).await.unwrap(), running);
    let waited = api
        .node_action("node1", NodeAction::Restart, None, true)
        .await
        .unwrap();
    assert_eq!(
        waited.state,
        ActionState::Done {
            message: "node1: restarted".into()
        }
    );
    let failed = api
        .node_action("node1", NodeAction::Stop, None, false)
        .await
        .unwrap();
    assert_eq!(
        failed.state,
        ActionState::Failed {
            error: "stop failed".into()
        }
    );
    let leader = api.leader("node 1/b", false).await.unwrap();
    assert_eq!(
        (leader.node.as_str(), leader.action),
        ("node 1/b", NodeAction::Leader)
    );

    assert_status(
        api.node_action("nope", NodeAction::Start, None, false)
            .await,
        404,
        "no node \"nope\" in the configuration",
    );
    assert_status(
        api.node_action("busy", NodeAction::Start, None, false)
            .await,
        409,
        "an action is in flight",
    );
    assert_status(api.action("a99").await, 404, "no action \"a99\"");
    let long = "x".repeat(501);
    assert_status(
        api.node_action("node1", NodeAction::Hold, Some(&long), false)
            .await,
        400,
        "at most 500 characters",
    );

    // Without the token, or with another: 401, and the raw answer is there for exact checks.
    let anonymous = ApiClient::new(&listen, Duration::from_secs(10)).unwrap();
    assert_status(
        anonymous
            .node_action("node1", NodeAction::Hold, None, false)
            .await,
        401,
        "unauthorized",
    );
    let wrong = anonymous.clone().with_token("nope");
    let error = wrong.leader("node1", false).await.unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert_eq!(error.to_string(), "HTTP 401: unauthorized");
    let reply = anonymous
        .send(Method::POST, "/v1/nodes/node1/hold", Some("[1]".into()))
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.text(), r#"{"error":"unauthorized"}"#);
    let reply = api
        .send(Method::POST, "/v1/nodes/node1/hold", Some("[1]".into()))
        .await
        .unwrap();
    assert_eq!(reply.status, 400, "{}", reply.text());
}

#[test]
fn an_action_whose_status_does_not_match_its_state_is_malformed() {
    let body = |state: ActionState| {
        serde_json::to_vec(&view("a1", "node1", NodeAction::Restart, state)).unwrap()
    };
    let done = ActionState::Done {
        message: "ok".into(),
    };
    for (status, state) in [
        (200, ActionState::Running),
        (202, done.clone()),
        (500, done.clone()),
    ] {
        let reply = Reply {
            status,
            body: body(state),
        };
        assert!(
            matches!(action_view(reply), Err(ApiClientError::Malformed { .. })),
            "{status}"
        );
    }
    let reply = Reply {
        status: 200,
        body: body(done.clone()),
    };
    assert_eq!(action_view(reply).unwrap().state, done);
    let reply = Reply {
        status: 500,
        body: br#"{"error": "status unavailable"}"#.to_vec(),
    };
    let error = action_view(reply).unwrap_err();
    assert_eq!(error.to_string(), "HTTP 500: status unavailable");
    let reply = Reply {
        status: 503,
        body: b"not ready: no node in sync (0 of 2)\n".to_vec(),
    };
    assert_eq!(
        action_view(reply).unwrap_err().to_string(),
        "HTTP 503: not ready: no node in sync (0 of 2)"
    );
}

#[tokio::test]
async fn a_daemon_that_is_not_running_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = listener.local_addr().unwrap().to_string();
    drop(listener);
    let api = client(&listen);
    let error = api.status().await.unwrap_err();
    assert!(matches!(error, ApiClientError::Unreachable), "{error:?}");
    assert_eq!(error.status(), None);
}

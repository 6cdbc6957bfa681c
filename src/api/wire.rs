//! The API's JSON shapes that are not plain status data, written by the server and read by the
//! client from one definition: the restart rows of `GET /v1/restarts` and its query, an action's
//! note, and the error body. The snapshot and the operator actions are in `crate::status`.

use serde::{Deserialize, Serialize};

use crate::restart_log::{RestartAction, RestartRow};

/// The query of `GET /v1/restarts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartsQuery {
    /// Only this node's rows.
    pub node: Option<String>,
    /// Only rows at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only the newest this many rows (the server's default: 1000).
    pub limit: Option<usize>,
}

/// The answer of `GET /v1/restarts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restarts {
    /// The rows, oldest first.
    pub rows: Vec<RestartEntry>,
    /// Rows of the log that could not be read.
    pub skipped_rows: usize,
}

/// One restart-log row as the API gives it (the timestamp as RFC 3339 with milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartEntry {
    /// The node.
    pub node: String,
    /// When (RFC 3339 UTC, milliseconds).
    pub timestamp: String,
    /// Stop or start.
    pub action: RestartAction,
    /// The node's uptime in seconds, when known.
    pub uptime_secs: Option<u64>,
    /// Why.
    pub reason: String,
    /// The supervisord program.
    pub program: String,
    /// The node's height.
    pub height: Option<u64>,
    /// The reference height.
    pub reference_height: Option<u64>,
    /// supervisord's state name for the program.
    pub supervisor_state: String,
    /// The program's last exit status.
    pub exit_status: Option<i32>,
}

impl From<&RestartRow> for RestartEntry {
    fn from(row: &RestartRow) -> RestartEntry {
        RestartEntry {
            node: row.node.clone(),
            timestamp: crate::time::rfc3339_millis(row.timestamp),
            action: row.action,
            uptime_secs: row.uptime_secs,
            reason: row.reason.clone(),
            program: row.program.clone(),
            height: row.height,
            reference_height: row.reference_height,
            supervisor_state: row.supervisor_state.clone(),
            exit_status: row.exit_status,
        }
    }
}

/// The optional body of a node action: `{"reason": "..."}`, the operator's note.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionNote {
    /// Why (at most 500 characters).
    pub reason: Option<String>,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong, one line.
    pub error: String,
}

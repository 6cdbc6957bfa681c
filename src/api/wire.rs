//! The API's JSON shapes that are not plain status data, written by the server and read by the
//! client from one definition: the answer of `GET /v1/restarts` (`RestartRow`s) and its query, an
//! action's note, and the error body. The snapshot and the operator actions are in `crate::status`.

use serde::{Deserialize, Serialize};

use crate::restart_log::RestartRow;

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
    pub rows: Vec<RestartRow>,
    /// Rows of the log that could not be read.
    pub skipped_rows: usize,
}

/// The optional body of a node action: `{"reason": "..."}`, the operator's note; a backup may
/// name its target directory (`"to"`), a restore its archive (`"from"`), as absolute paths on
/// the daemon's host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionNote {
    /// Why (at most 500 characters).
    pub reason: Option<String>,
    /// A backup's target directory instead of `backup.dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// A restore's archive (`NAME.tar.zst`, its manifest beside it) instead of the newest one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong, one line.
    pub error: String,
}

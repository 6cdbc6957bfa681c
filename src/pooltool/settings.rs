//! What PoolTool reporting and the reference tip need of the configuration: endpoints,
//! intervals, the slots' verification mode and the pool's identity. The configuration resolves
//! and validates it (`config`); nothing here reads a file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// How slot logs are verified when sent to PoolTool.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SlotsVerification {
    /// Only the base keys.
    None,
    /// sha256 of this epoch's slots, and last epoch's slots in clear.
    Hash,
    /// Slots encrypted with gpg; last epoch's key in clear.
    Gpg,
}

/// PoolTool settings (`[pooltool]`), resolved by the configuration: the ids read from their
/// files and `key_path` resolved. The documented defaults are the configuration's.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolToolSettings {
    /// Use PoolTool at all (reference tip and reports).
    pub enabled: bool,
    /// Majority-max source (checked to be an http(s) URL).
    pub status_url: String,
    /// How often to fetch it.
    pub status_refresh: Duration,
    /// A reference older than this is ignored.
    pub status_max_age: Duration,
    /// A reference leading every local node by more than this many blocks is ignored.
    pub reference_max_lead: u64,
    /// `sharemytip` endpoint.
    pub tip_url: String,
    /// Minimum time between tip reports.
    pub tip_interval: Duration,
    /// `sendlogs` endpoint.
    pub slots_url: String,
    /// Time after the epoch start when slots are sent (window of 60 s).
    pub send_slots_after: Duration,
    /// How slot logs are verified.
    pub slots_verification: SlotsVerification,
    /// The gpg binary (gpg mode).
    pub gpg: Option<PathBuf>,
    /// Where per-epoch keys and hashes are kept (resolved; default `pooltool-keys` beside the
    /// restart log).
    pub key_path: PathBuf,
    /// PoolTool user id (UUID): the account's key, so kept as a secret (never in `Debug`).
    pub user_id: Option<Secret>,
    /// The pool id (hex), from `pool_id` or `pool_id_file`.
    pub pool_id: Option<String>,
    /// The genesis hash, from `genesis_hash` or `genesis_hash_file`.
    pub genesis_hash: Option<String>,
}

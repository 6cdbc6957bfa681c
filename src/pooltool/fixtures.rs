//! Fixtures shared by the PoolTool unit tests: the identity, a chain clock, leadership logs, a
//! Jormungandr-like block, and small helpers on JSON bodies and URLs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use reqwest::Url;
use serde_json::Value;

use super::wire::Identity;
use crate::slots::{LeaderLog, LogStatus, SlotClock, SlotDate};

pub(super) const POOL: &str = "5d5a1fd43e4ea9bb1e2c2c77a37b5ab16b1a2e0ae1e58d1eef6fbc8e0a1d2c3b";
pub(super) const USER: &str = "0f2b8a34-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
pub(super) const GENESIS: &str = "8e4d2a343f3dcf9330ad9035b3e8d168e6728904262f2c434a4f8f934ec7b676";
pub(super) const TIP_HASH: &str =
    "b1a3c5e7d9f1b3a5c7e9d1f3b5a7c9e1d3f5b7a9c1e3d5f7b9a1c3e5d7f9b1a3";
pub(super) const TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

/// Genesis at `t(0)`, 2 s slots, 500 slots: epoch `e` starts at `t(1000 e)`.
pub(super) fn clock() -> SlotClock {
    SlotClock::new(t(0), Duration::from_secs(2), 500).unwrap()
}

pub(super) fn identity() -> Identity {
    Identity {
        pool_id: POOL.into(),
        user_id: crate::secret::Secret::new(USER),
        genesis_hash: GENESIS.into(),
    }
}

/// A Genesis-Praos-like block: the header fields, a leader id, filler for VRF/KES and content.
pub(super) fn fake_block(
    header_len: u16,
    epoch: u32,
    slot: u32,
    parent: [u8; 32],
    pool: [u8; 32],
) -> Vec<u8> {
    let mut block = Vec::new();
    block.extend(header_len.to_be_bytes());
    block.extend(2u16.to_be_bytes()); // version
    block.extend(1234u32.to_be_bytes()); // content size
    block.extend(epoch.to_be_bytes());
    block.extend(slot.to_be_bytes());
    block.extend(987_654u32.to_be_bytes()); // chain length
    block.extend([0x11; 32]); // content hash
    block.extend(parent);
    block.extend(pool);
    block.extend([0x77; 400]); // VRF proof, KES signature, content
    block
}

pub(super) fn pairs(url: &Url) -> Vec<(String, String)> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(super) fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn log(epoch: u64, slot: u64, status: LogStatus) -> LeaderLog {
    let date = SlotDate { epoch, slot };
    LeaderLog {
        date,
        scheduled_at: clock().date_time(date),
        finished: status != LogStatus::Pending,
        status,
        enclave_leader_id: 1,
    }
}

/// Epoch 5 has 3 distinct slots (7 twice, any status); epochs 4 and 50 are not epoch 5.
pub(super) fn logs() -> Vec<LeaderLog> {
    vec![
        log(5, 400, LogStatus::Pending),
        log(50, 5, LogStatus::Pending),
        log(5, 30, LogStatus::Rejected("missed".into())),
        log(4, 1, LogStatus::Block),
        log(5, 7, LogStatus::Block),
        log(5, 7, LogStatus::Block),
    ]
}

pub(super) fn keys(body: &Value) -> Vec<&str> {
    body.as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

pub(super) const BASE_KEYS: [&str; 5] = [
    "currentepoch",
    "poolid",
    "genesispref",
    "userid",
    "assigned_slots",
];

pub(super) fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The `sharemytip` query of the report of height 405672 (`TIP_HASH`) with the header of
/// `fake_block(_, 176, 4242, [0xab; 32], [0xcd; 32])`, from a node of `version`.
pub(super) fn full_tip_query(version: &str) -> Vec<(String, String)> {
    let parent = "ab".repeat(32);
    let leader = "cd".repeat(32);
    owned(&[
        ("poolid", POOL),
        ("userid", USER),
        ("genesispref", "8e4d2a3"),
        ("mytip", "405672"),
        ("lasthash", TIP_HASH),
        ("lastpool", &leader),
        ("lastparent", &parent),
        ("lastslot", "4242"),
        ("lastepoch", "176"),
        ("jormver", version),
        ("platform", "nodekeeper"),
    ])
}

//! The simulated Antelope chain, pure: block numbers, times, ids, the producer schedule and rounds as functions of
//! wall-clock time and shared parameters, so several sim processes agree without talking.
//!
//! Model: block `n` (n >= 1) is produced at `genesis + n x interval`; the chain head at time `t` is the last block
//! whose time is `<= t`. Every slot has a block (missed blocks are not modelled: the chain is the same whoever
//! produces). The active schedule lists `N` producers; each makes [`BLOCKS_PER_PRODUCER`] consecutive blocks in
//! turn, so block `n` belongs to `producers[(n / 12) % N]` and round `n / (12 x N)`, as nodeos maps block slots.
//! Block ids are 32 bytes whose first 4 are the block number big-endian (as Antelope ids are) and the rest a hash
//! of the chain id and the number.

use chrono::{DateTime, TimeDelta, Utc};

use crate::chain::{derive_id, fnv1a, to_hex};

/// Consecutive blocks each active producer makes in its turn.
pub const BLOCKS_PER_PRODUCER: u64 = 12;
/// How far the last irreversible block trails the head by default: Savanna finality (Spring 1.x) keeps LIB two or
/// three blocks behind; pre-Savanna Leap trailed by ~325 (`--lib-lag-blocks 325`).
pub const DEFAULT_LIB_LAG: u64 = 3;

/// Errors of building [`ChainParams`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    /// The block interval is zero.
    #[error("the block interval must be at least 1 ms")]
    Interval,
    /// The schedule is empty.
    #[error("the producer schedule is empty")]
    NoProducers,
    /// A producer name is not an Antelope account name.
    #[error(
        "{0:?} is not an Antelope account name (up to 12 of a-z, 1-5 and '.', not ending in '.')"
    )]
    BadName(String),
    /// A producer appears twice in the schedule.
    #[error("producer {0:?} appears twice in the schedule")]
    Duplicate(String),
}

/// Whether `name` is a valid Antelope account name of up to 12 characters (`a-z`, `1-5`, `.`; not ending in `.`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 12
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'1'..=b'5').contains(&b) || b == b'.')
}

/// The shared parameters of one simulated chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    genesis_ms: i64,
    interval_ms: i64,
    producers: Vec<String>,
    chain_id: [u8; 32],
    lib_lag: u64,
}

impl ChainParams {
    /// Validates and builds the parameters.
    pub fn try_new(
        genesis_unix: i64,
        interval_ms: u64,
        producers: Vec<String>,
        chain_id: [u8; 32],
        lib_lag: u64,
    ) -> Result<ChainParams, ChainError> {
        let interval_ms = i64::try_from(interval_ms).map_err(|_| ChainError::Interval)?;
        if interval_ms <= 0 {
            return Err(ChainError::Interval);
        }
        if producers.is_empty() {
            return Err(ChainError::NoProducers);
        }
        for (index, name) in producers.iter().enumerate() {
            if !valid_name(name) {
                return Err(ChainError::BadName(name.clone()));
            }
            if producers[..index].contains(name) {
                return Err(ChainError::Duplicate(name.clone()));
            }
        }
        Ok(ChainParams {
            genesis_ms: genesis_unix.saturating_mul(1000),
            interval_ms,
            producers,
            chain_id,
            lib_lag,
        })
    }

    /// A chain id derived from a seed, for chains started without `--chain-id`.
    pub fn chain_id_from_seed(seed: u64) -> [u8; 32] {
        derive_id(&[0x6e6f_6465_6f73, seed])
    }

    /// The chain id.
    pub fn chain_id(&self) -> [u8; 32] {
        self.chain_id
    }

    /// The active producers, in schedule order.
    pub fn producers(&self) -> &[String] {
        &self.producers
    }

    /// The block interval in milliseconds.
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    /// How many blocks LIB trails the head.
    pub fn lib_lag(&self) -> u64 {
        self.lib_lag
    }

    /// Blocks in one round: 12 per producer.
    pub fn round_len(&self) -> u64 {
        BLOCKS_PER_PRODUCER * self.producers.len() as u64
    }

    /// The chain head at `now`: the last block whose time is at or before `now`; 0 before block 1.
    pub fn head_at(&self, now: DateTime<Utc>) -> u64 {
        let elapsed = now.timestamp_millis().saturating_sub(self.genesis_ms);
        if elapsed <= 0 {
            return 0;
        }
        u64::try_from(elapsed / self.interval_ms).unwrap_or(0)
    }

    /// The time of block `n`.
    pub fn block_time(&self, n: u64) -> DateTime<Utc> {
        let offset = i64::try_from(n)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.interval_ms);
        DateTime::<Utc>::from_timestamp_millis(self.genesis_ms.saturating_add(offset))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// How many blocks fit in `delta` (rounded down, at least 0).
    pub fn blocks_in(&self, delta: TimeDelta) -> u64 {
        u64::try_from(delta.num_milliseconds().max(0) / self.interval_ms).unwrap_or(0)
    }

    /// The producer whose turn block `n` is.
    pub fn producer_of(&self, n: u64) -> &str {
        let index = (n / BLOCKS_PER_PRODUCER) % self.producers.len() as u64;
        &self.producers[usize::try_from(index).unwrap_or(0)]
    }

    /// The round block `n` belongs to (counted from genesis).
    pub fn round_of(&self, n: u64) -> u64 {
        n / self.round_len()
    }

    /// The first block of the next turn of `producer` strictly after block `n`, if it is in the schedule.
    pub fn next_turn_of(&self, producer: &str, n: u64) -> Option<u64> {
        let index = self.producers.iter().position(|p| p == producer)? as u64;
        let round = self.round_len();
        let start_in_round = index * BLOCKS_PER_PRODUCER;
        let base = n / round * round + start_in_round;
        Some(if base > n { base } else { base + round })
    }

    /// The id of block `n`: its number big-endian in the first 4 bytes, then a hash of the chain and the number.
    pub fn block_id(&self, n: u64) -> [u8; 32] {
        let chain = u64::from_le_bytes(self.chain_id[..8].try_into().unwrap_or([0; 8]));
        let mut id = derive_id(&[chain, n, 0x0062_6c6f_636b]);
        let num = u32::try_from(n).unwrap_or(u32::MAX);
        id[..4].copy_from_slice(&num.to_be_bytes());
        id
    }

    /// The signing key shown for `producer` in the schedule: `EOS` and 50 base58 characters derived from the name
    /// (the shape of a legacy public key; not a valid key).
    pub fn producer_key(&self, producer: &str) -> String {
        const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let mut state = fnv1a(producer.as_bytes());
        let mut key = String::from("EOS");
        for _ in 0..50 {
            // splitmix64 step
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            key.push(char::from(BASE58[usize::try_from(z % 58).unwrap_or(0)]));
        }
        key
    }
}

/// Renders a time as nodeos does (`fc::time_point`): UTC, millisecond precision, **no zone**,
/// e.g. `2019-02-22T03:01:04.500`.
pub fn nodeos_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

/// 64 lowercase hex characters.
pub fn id_hex(id: &[u8; 32]) -> String {
    to_hex(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(producers: &[&str]) -> ChainParams {
        ChainParams::try_new(
            1_700_000_000,
            500,
            producers.iter().map(|p| p.to_string()).collect(),
            ChainParams::chain_id_from_seed(0),
            DEFAULT_LIB_LAG,
        )
        .unwrap()
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn head_follows_the_clock() {
        let p = params(&["alice", "bob"]);
        let genesis = 1_700_000_000_000;
        assert_eq!(p.head_at(at(genesis - 1)), 0);
        assert_eq!(p.head_at(at(genesis)), 0);
        assert_eq!(p.head_at(at(genesis + 499)), 0);
        assert_eq!(p.head_at(at(genesis + 500)), 1);
        assert_eq!(p.head_at(at(genesis + 10_250)), 20);
        assert_eq!(p.block_time(20), at(genesis + 10_000));
        assert_eq!(p.head_at(p.block_time(12345)), 12345);
    }

    #[test]
    fn times_render_like_nodeos() {
        let p = params(&["alice"]);
        assert_eq!(nodeos_time(p.block_time(1)), "2023-11-14T22:13:20.500");
        assert_eq!(nodeos_time(p.block_time(2)), "2023-11-14T22:13:21.000");
        assert!(!nodeos_time(p.block_time(3)).contains('Z'));
    }

    #[test]
    fn producers_take_twelve_block_turns() {
        let p = params(&["alice", "bob", "carol"]);
        assert_eq!(p.round_len(), 36);
        assert_eq!(p.producer_of(0), "alice");
        assert_eq!(p.producer_of(11), "alice");
        assert_eq!(p.producer_of(12), "bob");
        assert_eq!(p.producer_of(35), "carol");
        assert_eq!(p.producer_of(36), "alice");
        assert_eq!(p.round_of(35), 0);
        assert_eq!(p.round_of(36), 1);
        assert_eq!(p.next_turn_of("bob", 0), Some(12));
        assert_eq!(p.next_turn_of("bob", 12), Some(48));
        assert_eq!(p.next_turn_of("alice", 5), Some(36));
        assert_eq!(p.next_turn_of("dave", 5), None);
    }

    #[test]
    fn ids_carry_the_block_number() {
        let p = params(&["alice"]);
        let id = id_hex(&p.block_id(0x0123_4567));
        assert_eq!(id.len(), 64);
        assert!(id.starts_with("01234567"), "{id}");
        assert_ne!(p.block_id(5), p.block_id(6));
        assert_eq!(p.block_id(5), params(&["alice"]).block_id(5));
        let other = ChainParams::try_new(
            1_700_000_000,
            500,
            vec!["alice".into()],
            ChainParams::chain_id_from_seed(1),
            3,
        )
        .unwrap();
        assert_ne!(other.block_id(5), p.block_id(5));
        assert_eq!(&id_hex(&other.block_id(5))[..8], "00000005");
    }

    #[test]
    fn names_and_schedules_are_checked() {
        for name in ["eosio", "nodekeeper", "a.b", "zzzzzzzzzzzz", "abc12345"] {
            assert!(valid_name(name), "{name}");
        }
        for name in ["", "Alice", "abc6", "abc.", "thirteenchars", "a-b"] {
            assert!(!valid_name(name), "{name}");
        }
        let build = |names: &[&str]| {
            ChainParams::try_new(
                0,
                500,
                names.iter().map(|n| n.to_string()).collect(),
                [0; 32],
                3,
            )
        };
        assert_eq!(build(&[]), Err(ChainError::NoProducers));
        assert!(matches!(build(&["Bad"]), Err(ChainError::BadName(_))));
        assert!(matches!(build(&["a", "a"]), Err(ChainError::Duplicate(_))));
        assert_eq!(
            ChainParams::try_new(0, 0, vec!["a".into()], [0; 32], 3),
            Err(ChainError::Interval)
        );
    }

    #[test]
    fn keys_look_like_legacy_public_keys() {
        let p = params(&["alice", "bob"]);
        let key = p.producer_key("alice");
        assert_eq!(key.len(), 53);
        assert!(key.starts_with("EOS"));
        assert_ne!(key, p.producer_key("bob"));
        assert_eq!(key, p.producer_key("alice"));
    }
}

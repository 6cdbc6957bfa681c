//! The simulated chain: a pure function of shared parameters and wall-clock time.
//!
//! Owns the epoch/slot arithmetic of the REST reference (`epoch = ⌊(now − block0)/(slotDuration·slotsPerEpoch)⌋`,
//! `slot_time(E,S) = block0 + (E·slotsPerEpoch + S)·slotDuration`), the blocks of the main chain and of forks,
//! their hashes and raw bytes (header layout of jmanager §1.7), and the pool's leader schedule of an epoch.
//! It does no I/O and never reads the clock: every function takes `now` or a slot as an argument, which is why
//! several simulator processes that share [`ChainParams`] agree on heights and hashes without talking to each other.
//!
//! Model: every slot of the main chain holds exactly one block, so the block of absolute slot `n` has chain length
//! `n` (block0 is chain length 0 at date `0.0`). A fork leaves the main chain at some block and then grows one
//! block every [`FORK_SLOTS_PER_BLOCK`] slots, so a forked node falls further and further behind.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, TimeZone, Utc};

/// How many slots a forked branch needs per block (the main chain makes one block per slot).
pub const FORK_SLOTS_PER_BLOCK: u64 = 3;

/// Size in bytes of the fields every header has: version, content size, epoch, slot, chain length,
/// content hash and parent hash.
const COMMON_HEADER_LEN: usize = 2 + 4 + 4 + 4 + 4 + 32 + 32;
/// Size of a Genesis-Praos VRF proof.
const VRF_PROOF_LEN: usize = 96;
/// Size of a KES (sum-ed25519-12) signature.
const KES_SIGNATURE_LEN: usize = 484;
/// Size of one simulated transaction fragment in the block content.
const FRAGMENT_LEN: u64 = 242;

/// Errors of [`ChainParams::try_new`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    /// A parameter that must be positive is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A parameter is outside the range the simulator supports.
    #[error("{name} must be between {min} and {max}, got {value}")]
    OutOfRange {
        /// The parameter.
        name: &'static str,
        /// The given value.
        value: i64,
        /// The smallest allowed value.
        min: i64,
        /// The largest allowed value.
        max: i64,
    },
    /// The pool is scheduled for more slots than an epoch has.
    #[error("pool slots per epoch ({pool}) exceed slots per epoch ({epoch})")]
    TooManyPoolSlots {
        /// The requested number of pool slots.
        pool: u64,
        /// The number of slots in an epoch.
        epoch: u64,
    },
}

/// The parameters every simulated node of one chain shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    block0_time: i64,
    slot_duration: u64,
    slots_per_epoch: u64,
    seed: u64,
    pool_slots_per_epoch: u64,
    pool_id: [u8; 32],
}

impl ChainParams {
    /// Validates and builds the parameters; `pool_id` defaults to a value derived from `seed`.
    pub fn try_new(
        block0_time: i64,
        slot_duration: u64,
        slots_per_epoch: u64,
        seed: u64,
        pool_slots_per_epoch: u64,
        pool_id: Option<[u8; 32]>,
    ) -> Result<Self, ChainError> {
        if slot_duration == 0 {
            return Err(ChainError::Zero("slot duration"));
        }
        if slots_per_epoch == 0 {
            return Err(ChainError::Zero("slots per epoch"));
        }
        // The bounds keep every time computation far from chrono's limits and dates inside the header's u32s.
        check_range("block0 time", block0_time, 0, MAX_BLOCK0_TIME)?;
        check_range(
            "slot duration",
            saturating_i64(slot_duration),
            1,
            MAX_SLOT_DURATION,
        )?;
        check_range(
            "slots per epoch",
            saturating_i64(slots_per_epoch),
            1,
            MAX_SLOTS_PER_EPOCH,
        )?;
        if pool_slots_per_epoch > slots_per_epoch {
            return Err(ChainError::TooManyPoolSlots {
                pool: pool_slots_per_epoch,
                epoch: slots_per_epoch,
            });
        }
        Ok(ChainParams {
            block0_time,
            slot_duration,
            slots_per_epoch,
            seed,
            pool_slots_per_epoch,
            pool_id: pool_id.unwrap_or_else(|| hash32(&[seed, TAG_POOL])),
        })
    }

    /// The default number of pool slots per epoch: 5 % of the slots, at least 1.
    pub fn default_pool_slots(slots_per_epoch: u64) -> u64 {
        (slots_per_epoch / 20).max(1)
    }

    /// The chain seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Genesis time, in Unix seconds.
    pub fn block0_unix(&self) -> i64 {
        self.block0_time
    }

    /// Genesis time.
    pub fn block0_time(&self) -> DateTime<Utc> {
        unix_to_time(self.block0_time)
    }

    /// Slot duration in seconds.
    pub fn slot_duration(&self) -> u64 {
        self.slot_duration
    }

    /// Number of slots in an epoch.
    pub fn slots_per_epoch(&self) -> u64 {
        self.slots_per_epoch
    }

    /// Number of slots of an epoch the pool is scheduled to lead.
    pub fn pool_slots_per_epoch(&self) -> u64 {
        self.pool_slots_per_epoch
    }

    /// The pool id (node id) written into the headers of the pool's blocks.
    pub fn pool_id(&self) -> [u8; 32] {
        self.pool_id
    }

    /// The hash of block0, as shown in the settings.
    pub fn block0_hash(&self) -> [u8; 32] {
        self.block_hash(&Block::main(0))
    }

    /// The absolute slot (slots since block0) in progress at `now`; `None` before block0.
    pub fn abs_slot_at(&self, now: DateTime<Utc>) -> Option<u64> {
        // `timestamp()` floors, because the sub-second part is always non-negative.
        let elapsed = now.timestamp().checked_sub(self.block0_time)?;
        let elapsed = u64::try_from(elapsed).ok()?;
        Some(elapsed / self.slot_duration)
    }

    /// The absolute slot in progress at `now`, or 0 (block0's slot) before block0.
    pub fn abs_slot_or_zero(&self, now: DateTime<Utc>) -> u64 {
        self.abs_slot_at(now).unwrap_or(0)
    }

    /// The epoch/slot date of an absolute slot.
    pub fn date_of(&self, abs_slot: u64) -> BlockDate {
        BlockDate {
            epoch: abs_slot / self.slots_per_epoch,
            slot: abs_slot % self.slots_per_epoch,
        }
    }

    /// The absolute slot of an epoch/slot date.
    pub fn abs_slot_of(&self, date: BlockDate) -> u64 {
        date.epoch
            .saturating_mul(self.slots_per_epoch)
            .saturating_add(date.slot)
    }

    /// The start time of an absolute slot.
    pub fn slot_time(&self, abs_slot: u64) -> DateTime<Utc> {
        let offset = i64::try_from(abs_slot.saturating_mul(self.slot_duration)).unwrap_or(i64::MAX);
        unix_to_time(self.block0_time.saturating_add(offset))
    }

    /// The start time of the first slot of `epoch`.
    pub fn epoch_start(&self, epoch: u64) -> DateTime<Utc> {
        self.slot_time(epoch.saturating_mul(self.slots_per_epoch))
    }

    /// The tip of `branch` when absolute slot `abs_slot` is in progress.
    pub fn tip_at_slot(&self, branch: &Branch, abs_slot: u64) -> Block {
        match *branch {
            Branch::Main => Block::main(abs_slot),
            Branch::Fork {
                base_height,
                base_slot,
                ..
            } => {
                let blocks_since = abs_slot.saturating_sub(base_slot) / FORK_SLOTS_PER_BLOCK;
                if blocks_since == 0 {
                    Block::main(base_height)
                } else {
                    Block {
                        branch: *branch,
                        height: base_height + blocks_since,
                    }
                }
            }
        }
    }

    /// The tip of the main chain at `now`.
    pub fn main_tip(&self, now: DateTime<Utc>) -> Block {
        Block::main(self.abs_slot_or_zero(now))
    }

    /// The absolute slot of a block.
    pub fn block_slot(&self, block: &Block) -> u64 {
        match block.branch {
            Branch::Main => block.height,
            Branch::Fork {
                base_height,
                base_slot,
                ..
            } => {
                let since = block.height.saturating_sub(base_height);
                base_slot.saturating_add(since.saturating_mul(FORK_SLOTS_PER_BLOCK))
            }
        }
    }

    /// The date of a block.
    pub fn block_date(&self, block: &Block) -> BlockDate {
        self.date_of(self.block_slot(block))
    }

    /// The parent of a block; `None` for block0.
    pub fn parent(&self, block: &Block) -> Option<Block> {
        let height = block.height.checked_sub(1)?;
        Some(match block.branch {
            Branch::Fork { base_height, .. } if height > base_height => Block {
                branch: block.branch,
                height,
            },
            _ => Block::main(height),
        })
    }

    /// The hash of a block.
    pub fn block_hash(&self, block: &Block) -> [u8; 32] {
        let branch_id = match block.branch {
            Branch::Main => 0,
            Branch::Fork { id, .. } => id,
        };
        hash32(&[self.seed, TAG_BLOCK, branch_id, block.height])
    }

    /// Looks for the block with `hash` among `tip` and its `depth` nearest ancestors.
    pub fn find_block(&self, tip: &Block, hash: &[u8; 32], depth: u64) -> Option<Block> {
        let mut current = Some(*tip);
        for _ in 0..=depth {
            let block = current?;
            if &self.block_hash(&block) == hash {
                return Some(block);
            }
            current = self.parent(&block);
        }
        None
    }

    /// The number of transactions in a block (0 to 3, derived from its hash).
    pub fn block_tx_count(&self, block: &Block) -> u64 {
        if block.height == 0 {
            return 0;
        }
        u64::from(self.block_hash(block)[0] % 4)
    }

    /// The size in bytes of a block's content.
    pub fn block_content_size(&self, block: &Block) -> u64 {
        self.block_tx_count(block) * FRAGMENT_LEN
    }

    /// The pool id that produced a block: the pool's id in its scheduled slots, another pool's id elsewhere.
    pub fn block_pool_id(&self, block: &Block) -> [u8; 32] {
        let abs_slot = self.block_slot(block);
        let date = self.date_of(abs_slot);
        if self.pool_schedule(date.epoch).contains(&date.slot) {
            self.pool_id
        } else {
            hash32(&[self.seed, TAG_OTHER_POOL, abs_slot % 97])
        }
    }

    /// The raw bytes of a block as served by `GET /api/v0/block/{hash}`: a big-endian `u16` header length, the
    /// header (`u16` version, `u32` content size, `u32` epoch, `u32` slot, `u32` chain length, content hash,
    /// parent hash and, except for block0, pool id, VRF proof and KES signature), then the content.
    pub fn block_bytes(&self, block: &Block) -> Vec<u8> {
        let is_block0 = block.height == 0;
        let header_len = if is_block0 {
            COMMON_HEADER_LEN
        } else {
            COMMON_HEADER_LEN + 32 + VRF_PROOF_LEN + KES_SIGNATURE_LEN
        };
        let content_size = self.block_content_size(block);
        let date = self.block_date(block);
        let hash = self.block_hash(block);
        let parent_hash = self
            .parent(block)
            .map(|parent| self.block_hash(&parent))
            .unwrap_or([0; 32]);
        let content = pseudo_random_bytes(
            &[self.seed, TAG_CONTENT, u64::from_be_bytes(first8(&hash))],
            content_size,
        );
        let content_hash = hash32(&[
            self.seed,
            TAG_CONTENT_HASH,
            u64::from_be_bytes(first8(&hash)),
        ]);

        let mut bytes = Vec::with_capacity(2 + header_len + content.len());
        push_u16(&mut bytes, header_len);
        bytes.extend_from_slice(&(if is_block0 { 0u16 } else { 2u16 }).to_be_bytes());
        bytes.extend_from_slice(&saturating_u32(content_size).to_be_bytes());
        bytes.extend_from_slice(&saturating_u32(date.epoch).to_be_bytes());
        bytes.extend_from_slice(&saturating_u32(date.slot).to_be_bytes());
        bytes.extend_from_slice(&saturating_u32(block.height).to_be_bytes());
        bytes.extend_from_slice(&content_hash);
        bytes.extend_from_slice(&parent_hash);
        if !is_block0 {
            let seed = u64::from_be_bytes(first8(&hash));
            bytes.extend_from_slice(&self.block_pool_id(block));
            bytes.extend_from_slice(&pseudo_random_bytes(
                &[self.seed, TAG_VRF, seed],
                VRF_PROOF_LEN as u64,
            ));
            bytes.extend_from_slice(&pseudo_random_bytes(
                &[self.seed, TAG_KES, seed],
                KES_SIGNATURE_LEN as u64,
            ));
        }
        bytes.extend_from_slice(&content);
        bytes
    }

    /// The slots (within the epoch, ascending) the pool is scheduled to lead in `epoch`; deterministic in
    /// (seed, epoch).
    pub fn pool_schedule(&self, epoch: u64) -> Vec<u64> {
        // Robert Floyd's sampling: `k` distinct values out of `0..n` with `k` draws.
        let n = self.slots_per_epoch;
        let k = self.pool_slots_per_epoch;
        let mut rng = SplitMix64(mix(&[self.seed, TAG_SCHEDULE, epoch]));
        let mut chosen = BTreeSet::new();
        for j in (n - k)..n {
            let candidate = rng.next_u64() % (j + 1);
            if !chosen.insert(candidate) {
                chosen.insert(j);
            }
        }
        chosen.into_iter().collect()
    }
}

/// An epoch/slot date, displayed as `"E.S"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockDate {
    /// The epoch.
    pub epoch: u64,
    /// The slot within the epoch.
    pub slot: u64,
}

impl fmt::Display for BlockDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.slot)
    }
}

/// The branch a node follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// The chain every healthy node follows.
    Main,
    /// A private branch that leaves the main chain after the main block of height `base_height`.
    Fork {
        /// Identifies the branch; it goes into the hashes of its blocks.
        id: u64,
        /// Height of the last main-chain block of the branch.
        base_height: u64,
        /// Absolute slot at which the branch started; its k-th block is at `base_slot + k·FORK_SLOTS_PER_BLOCK`.
        base_slot: u64,
    },
}

impl Branch {
    /// A fork of a node called `name` that leaves the main chain after block `base_height` at `base_slot`.
    pub fn fork(seed: u64, name: &str, base_height: u64, base_slot: u64) -> Branch {
        Branch::Fork {
            id: mix(&[
                seed,
                TAG_FORK,
                fnv1a(name.as_bytes()),
                base_height,
                base_slot,
            ]) | 1,
            base_height,
            base_slot,
        }
    }
}

/// A block, identified by its branch and chain length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The branch the block belongs to (blocks up to a fork's base are main-chain blocks).
    pub branch: Branch,
    /// The chain length (height); block0 has 0.
    pub height: u64,
}

impl Block {
    /// The main-chain block of chain length `height` (which is also its absolute slot).
    pub fn main(height: u64) -> Block {
        Block {
            branch: Branch::Main,
            height,
        }
    }
}

/// A 32-byte pseudo-random id derived from `words` (peer ids and the like).
pub fn derive_id(words: &[u64]) -> [u8; 32] {
    hash32(words)
}

/// Lowercase hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Parses exactly 32 bytes of hex (64 characters, either case); `None` otherwise.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        let high = hex_value(pair[0])?;
        let low = hex_value(pair[1])?;
        out[i] = high << 4 | low;
    }
    Some(out)
}

/// A deterministic 64-bit hash of a byte string (FNV-1a), used to turn names into seeds.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Converts Unix seconds to a UTC time, saturating at the representable range.
pub fn unix_to_time(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The latest supported genesis time (year 2096).
const MAX_BLOCK0_TIME: i64 = 4_000_000_000;
/// The longest supported slot: a day.
const MAX_SLOT_DURATION: i64 = 86_400;
/// The longest supported epoch, in slots.
const MAX_SLOTS_PER_EPOCH: i64 = 1_000_000;

fn check_range(name: &'static str, value: i64, min: i64, max: i64) -> Result<(), ChainError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ChainError::OutOfRange {
            name,
            value,
            min,
            max,
        })
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

const TAG_BLOCK: u64 = 1;
const TAG_POOL: u64 = 2;
const TAG_OTHER_POOL: u64 = 3;
const TAG_SCHEDULE: u64 = 4;
const TAG_CONTENT: u64 = 5;
const TAG_CONTENT_HASH: u64 = 6;
const TAG_VRF: u64 = 7;
const TAG_KES: u64 = 8;
const TAG_FORK: u64 = 9;

/// The splitmix64 generator: tiny, fast and good enough to make hashes that look random.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn mix(words: &[u64]) -> u64 {
    let mut rng = SplitMix64(0x6a09_e667_f3bc_c908);
    let mut acc = 0;
    for word in words {
        rng.0 ^= word.wrapping_add(acc);
        acc = rng.next_u64();
    }
    acc
}

fn pseudo_random_bytes(words: &[u64], len: u64) -> Vec<u8> {
    let mut rng = SplitMix64(mix(words));
    let len = usize::try_from(len).unwrap_or(0);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_be_bytes());
    }
    out.truncate(len);
    out
}

fn hash32(words: &[u64]) -> [u8; 32] {
    let bytes = pseudo_random_bytes(words, 32);
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes);
    out
}

fn first8(bytes: &[u8; 32]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    out
}

fn push_u16(bytes: &mut Vec<u8>, value: usize) {
    let value = u16::try_from(value).unwrap_or(u16::MAX);
    bytes.extend_from_slice(&value.to_be_bytes());
}

fn saturating_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

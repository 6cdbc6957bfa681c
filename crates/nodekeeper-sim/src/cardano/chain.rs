//! The simulated Cardano chain: a pure function of shared parameters and wall-clock time.
//!
//! Owns the slot arithmetic of a Shelley-only chain (`slot = ⌊(now − systemStart) / slotLength⌋`, absolute slot
//! numbers as `cardano-cli` prints them, `epoch = ⌊slot / epochLength⌋`), the blocks of the chain, the KES
//! period of a slot, and the pool's leader slots. It does no I/O and never reads the clock, which is why several
//! simulator processes that share [`ChainParams`] agree on slots and block numbers without talking to each other.
//!
//! Blocks: the chain is cut into windows of [`BLOCK_WINDOW`] slots (1 / `activeSlotsCoeff`) and each window holds
//! exactly one block, at an offset drawn from the seed. So not every slot has a block, the block number of any
//! slot is O(1) to compute, and the tip's slot trails the wall-clock slot by 0 to 2·[`BLOCK_WINDOW`] − 1 slots, as
//! on mainnet (where gLiveView calls a node in sync while the gap is under ~40 slots).
//!
//! Leader slots: each slot belongs to the pool with probability `leader_rate`, decided by a hash of the seed and
//! the slot. They are independent of the chain's blocks (the other pools' blocks): the simulator does not
//! splice the pool's own blocks into the shared chain, which keeps the chain identical for every node.

use chrono::{DateTime, TimeZone, Utc};

/// Slots per block window: the chain has exactly one block every this many slots (`activeSlotsCoeff` 0.05).
pub const BLOCK_WINDOW: u64 = 20;
/// The active slot coefficient the block windows imply, as written in the genesis.
pub const ACTIVE_SLOTS_COEFF: f64 = 0.05;
/// How many blocks back the density is measured over.
const DENSITY_BLOCKS: u64 = 50;
/// Leader rates are kept in parts per million.
const PPM: u64 = 1_000_000;
/// The largest slot length accepted, in milliseconds (one hour).
const MAX_SLOT_LENGTH_MS: u64 = 3_600_000;
/// The latest system start accepted (year 2100), which keeps every time computation inside chrono's range.
const MAX_SYSTEM_START: i64 = 4_102_444_800;

const TAG_BLOCK: u64 = 0x626c_6f63_6b00_0001;
const TAG_LEADER: u64 = 0x6c65_6164_6572_0002;

/// Errors of [`ChainParams::try_new`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChainError {
    /// A parameter that must be positive is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A parameter is outside the supported range.
    #[error("{0} is out of range ({1})")]
    OutOfRange(&'static str, String),
}

/// The parameters every simulated node of one chain shares.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainParams {
    system_start: i64,
    slot_length_ms: u64,
    epoch_length: u64,
    slots_per_kes_period: u64,
    max_kes_evolutions: u64,
    seed: u64,
    leader_ppm: u64,
}

/// The tip of a chain: the last block at or before some slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tip {
    /// The block's absolute slot.
    pub slot: u64,
    /// The block number (the first block of the chain is 1; 0 means no block yet).
    pub block: u64,
}

impl ChainParams {
    /// Validates and builds the parameters; `leader_rate` is the fraction of slots the pool leads (0..=1).
    pub fn try_new(
        system_start: i64,
        slot_length_ms: u64,
        epoch_length: u64,
        slots_per_kes_period: u64,
        max_kes_evolutions: u64,
        seed: u64,
        leader_rate: f64,
    ) -> Result<ChainParams, ChainError> {
        if slot_length_ms == 0 {
            return Err(ChainError::Zero("slot length"));
        }
        if epoch_length == 0 {
            return Err(ChainError::Zero("epoch length"));
        }
        if slots_per_kes_period == 0 {
            return Err(ChainError::Zero("slots per KES period"));
        }
        if max_kes_evolutions == 0 {
            return Err(ChainError::Zero("max KES evolutions"));
        }
        if slot_length_ms > MAX_SLOT_LENGTH_MS {
            return Err(ChainError::OutOfRange(
                "slot length",
                format!("at most {MAX_SLOT_LENGTH_MS} ms"),
            ));
        }
        if !(0..=MAX_SYSTEM_START).contains(&system_start) {
            return Err(ChainError::OutOfRange(
                "system start",
                format!("0 to {MAX_SYSTEM_START} Unix seconds"),
            ));
        }
        if epoch_length > u64::from(u32::MAX) {
            return Err(ChainError::OutOfRange(
                "epoch length",
                format!("at most {}", u32::MAX),
            ));
        }
        if !leader_rate.is_finite() || !(0.0..=1.0).contains(&leader_rate) {
            return Err(ChainError::OutOfRange(
                "leader rate",
                "a fraction between 0 and 1".to_string(),
            ));
        }
        Ok(ChainParams {
            system_start,
            slot_length_ms,
            epoch_length,
            slots_per_kes_period,
            max_kes_evolutions,
            seed,
            leader_ppm: (leader_rate * PPM as f64).round() as u64,
        })
    }

    /// The system start (genesis time), Unix seconds.
    pub fn system_start_unix(&self) -> i64 {
        self.system_start
    }

    /// The system start.
    pub fn system_start(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.system_start, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Slot length in milliseconds.
    pub fn slot_length_ms(&self) -> u64 {
        self.slot_length_ms
    }

    /// Slots per epoch.
    pub fn epoch_length(&self) -> u64 {
        self.epoch_length
    }

    /// Slots per KES period.
    pub fn slots_per_kes_period(&self) -> u64 {
        self.slots_per_kes_period
    }

    /// How many KES periods an operational certificate is valid for.
    pub fn max_kes_evolutions(&self) -> u64 {
        self.max_kes_evolutions
    }

    /// The chain seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The fraction of slots the pool leads.
    pub fn leader_rate(&self) -> f64 {
        self.leader_ppm as f64 / PPM as f64
    }

    /// The slot in progress at `now`; `None` before the system start.
    pub fn slot_at(&self, now: DateTime<Utc>) -> Option<u64> {
        let elapsed = now
            .timestamp_millis()
            .checked_sub(self.system_start * 1000)?;
        let elapsed = u64::try_from(elapsed).ok()?;
        Some(elapsed / self.slot_length_ms)
    }

    /// The start time of `slot`.
    pub fn slot_time(&self, slot: u64) -> DateTime<Utc> {
        let offset = i64::try_from(slot.saturating_mul(self.slot_length_ms)).unwrap_or(i64::MAX);
        let millis = (self.system_start * 1000).saturating_add(offset);
        Utc.timestamp_millis_opt(millis)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The epoch of `slot`.
    pub fn epoch_of(&self, slot: u64) -> u64 {
        slot / self.epoch_length
    }

    /// The position of `slot` in its epoch.
    pub fn slot_in_epoch(&self, slot: u64) -> u64 {
        slot % self.epoch_length
    }

    /// The first slot of `epoch`.
    pub fn epoch_start_slot(&self, epoch: u64) -> u64 {
        epoch.saturating_mul(self.epoch_length)
    }

    /// The KES period of `slot`.
    pub fn kes_period(&self, slot: u64) -> u64 {
        slot / self.slots_per_kes_period
    }

    /// The slot of the block in block window `window`.
    fn block_slot(&self, window: u64) -> u64 {
        window * BLOCK_WINDOW + mix(&[self.seed, TAG_BLOCK, window]) % BLOCK_WINDOW
    }

    /// The chain's tip while `slot` is in progress: the last block at or before `slot`.
    pub fn tip_at(&self, slot: u64) -> Tip {
        let window = slot / BLOCK_WINDOW;
        if self.block_slot(window) <= slot {
            Tip {
                slot: self.block_slot(window),
                block: window + 1,
            }
        } else if window == 0 {
            Tip::default()
        } else {
            Tip {
                slot: self.block_slot(window - 1),
                block: window,
            }
        }
    }

    /// Whether a block of the shared chain sits in `slot`.
    pub fn has_block(&self, slot: u64) -> bool {
        self.tip_at(slot).slot == slot && self.tip_at(slot).block > 0
    }

    /// The chain density at `tip`: blocks per slot over the last [`DENSITY_BLOCKS`] blocks.
    pub fn density(&self, tip: Tip) -> f64 {
        if tip.block < 2 {
            return 0.0;
        }
        let back = DENSITY_BLOCKS.min(tip.block - 1);
        let first = self.block_slot(tip.block - 1 - back);
        let span = tip.slot.saturating_sub(first).max(1);
        back as f64 / span as f64
    }

    /// Whether the pool is the slot leader of `slot`.
    pub fn is_leader(&self, slot: u64) -> bool {
        mix(&[self.seed, TAG_LEADER, slot]) % PPM < self.leader_ppm
    }

    /// The pool's leader slots of `epoch`, ascending (absolute slot numbers).
    pub fn leader_schedule(&self, epoch: u64) -> Vec<u64> {
        let start = self.epoch_start_slot(epoch);
        (start..start.saturating_add(self.epoch_length))
            .filter(|slot| self.is_leader(*slot))
            .collect()
    }
}

/// A SplitMix64 hash of several words: deterministic across processes and platforms.
fn mix(words: &[u64]) -> u64 {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for word in words {
        state ^= *word;
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        state = z ^ (z >> 31);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChainParams {
        ChainParams::try_new(1_700_000_000, 1000, 600, 129_600, 62, 7, 0.05).unwrap()
    }

    #[test]
    fn slots_and_epochs_follow_the_clock() {
        let p = params();
        assert_eq!(p.slot_at(p.system_start()), Some(0));
        assert_eq!(
            p.slot_at(p.system_start() - chrono::TimeDelta::milliseconds(1)),
            None
        );
        let t = p.slot_time(1234) + chrono::TimeDelta::milliseconds(999);
        assert_eq!(p.slot_at(t), Some(1234));
        assert_eq!(p.epoch_of(1234), 2);
        assert_eq!(p.slot_in_epoch(1234), 34);
        assert_eq!(p.epoch_start_slot(2), 1200);
        assert_eq!(p.kes_period(129_599), 0);
        assert_eq!(p.kes_period(129_600), 1);
        let fast = ChainParams::try_new(1_700_000_000, 100, 600, 129_600, 62, 7, 0.05).unwrap();
        assert_eq!(
            fast.slot_at(fast.system_start() + chrono::TimeDelta::milliseconds(1050)),
            Some(10)
        );
        assert_eq!(fast.slot_time(10).timestamp_millis(), 1_700_000_001_000);
    }

    #[test]
    fn one_block_per_window_and_not_every_slot() {
        let p = params();
        let mut blocks = 0;
        let mut last = Tip::default();
        for slot in 0..2000 {
            let tip = p.tip_at(slot);
            assert!(tip.slot <= slot);
            assert!(slot - tip.slot < 2 * BLOCK_WINDOW || tip.block == 0);
            assert!(tip.block >= last.block && tip.block <= last.block + 1);
            if p.has_block(slot) {
                blocks += 1;
                assert_eq!(tip.slot, slot);
                assert_eq!(tip.block, blocks);
            }
            last = tip;
        }
        assert_eq!(blocks, 2000 / BLOCK_WINDOW);
        // Far from genesis, in O(1).
        let far = p.tip_at(10_000_000_000);
        let window = 10_000_000_000 / BLOCK_WINDOW;
        assert!(far.block == window || far.block == window + 1, "{far:?}");
        let density = p.density(p.tip_at(100_000));
        assert!((0.03..0.08).contains(&density), "{density}");
    }

    #[test]
    fn leader_slots_are_deterministic_and_near_the_rate() {
        let p = params();
        let schedule = p.leader_schedule(5);
        assert_eq!(schedule, params().leader_schedule(5));
        assert!(
            schedule
                .iter()
                .all(|s| p.epoch_of(*s) == 5 && p.is_leader(*s))
        );
        assert!((10..=55).contains(&schedule.len()), "{}", schedule.len());
        let other = ChainParams::try_new(1_700_000_000, 1000, 600, 129_600, 62, 8, 0.05).unwrap();
        assert_ne!(schedule, other.leader_schedule(5));
        let never = ChainParams::try_new(1_700_000_000, 1000, 600, 129_600, 62, 7, 0.0).unwrap();
        assert!(never.leader_schedule(5).is_empty());
        let always = ChainParams::try_new(1_700_000_000, 1000, 600, 129_600, 62, 7, 1.0).unwrap();
        assert_eq!(always.leader_schedule(5).len(), 600);
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert_eq!(
            ChainParams::try_new(0, 0, 600, 1, 1, 0, 0.05),
            Err(ChainError::Zero("slot length"))
        );
        assert!(ChainParams::try_new(0, 1000, 0, 1, 1, 0, 0.05).is_err());
        assert!(ChainParams::try_new(0, 1000, 600, 0, 1, 0, 0.05).is_err());
        assert!(ChainParams::try_new(0, 1000, 600, 1, 0, 0, 0.05).is_err());
        assert!(ChainParams::try_new(-1, 1000, 600, 1, 1, 0, 0.05).is_err());
        assert!(ChainParams::try_new(0, 1000, 600, 1, 1, 0, 1.5).is_err());
        assert!(ChainParams::try_new(0, 1000, 600, 1, 1, 0, f64::NAN).is_err());
    }
}

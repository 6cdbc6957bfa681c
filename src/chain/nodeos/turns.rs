//! nodeos's blocks and rounds in the daemon's terms, pure: a block is a slot and a round an
//! epoch, so that the policy's guard ("no change within `slot_window` slots of one of the pool's
//! slots", and of an epoch rollover) keeps hand-overs clear of our producer's turn.
//!
//! ## The clock
//! [`clock`] is a `SlotClock` whose slot is one block (`slot_duration` = the block interval) and
//! whose epoch is one round (`slots_per_epoch` = 12 x the active producers), anchored on the head
//! that `get_info` reports: `block0 = head_block_time - head_block_num x interval`, so that the
//! slot in progress at a block's time is that block's number (slot numbers are block numbers) and
//! epoch `e` is blocks `12N x e .. 12N x (e + 1)` (on the simulator's chain exactly a round; on a
//! real chain, whose turns follow block timestamps, a window as long as a round that need not begin
//! with the schedule's first producer). The anchor is the same on every call as long as
//! no block is missed (every block comes one interval after the previous one); a missed block
//! moves it by one interval, and the daemon then sees a new clock.
//!
//! ## Whose turn a block is
//! A producer makes 12 blocks in a row, in schedule order. Which producer a block belongs to
//! depends on how the turns line up with block numbers, and there are two answers ([`offset`]):
//! the block number itself (`producers[(n / 12) % N]`, the simulator's chain), or, on a real
//! chain, the block's timestamp slot (half-seconds since 2000-01-01 UTC: nodeos's
//! `get_scheduled_producer` uses `slot % (12N) / 12`), which is the block number plus a constant
//! for as long as no block is missed. Each is tried against the head, the timestamp first when
//! blocks are half a second apart: the first that gives the head's `head_block_producer` is used;
//! when none does, the schedule is changing and no slot is predicted. (A chain whose turns follow
//! block numbers with half-second blocks, which only the simulator makes, could be mistaken for
//! the other kind when its head fits both; with the simulator's default genesis it never does.)
//!
//! ## The pool's slots
//! [`pool_slots`] lists our producer's blocks in the head's round and the next one (one
//! `LeaderLog` per block, handle 1, scheduled at the block's time, finished once the head passed
//! it), predicted from the head on: a block missed later moves the real ones by one interval.
//!
//! ## Hand-over
//! [`handover_verdict`] is the manageos rule of `rounds` applied to a `get_info` and a schedule:
//! not during our turn, nor the one right after it, nor within `margin` turns of ours, and only
//! from a fresh head (whose turn it is is only known from a head younger than one turn).

use std::time::{Duration, SystemTime};

use super::rounds::{self, BLOCKS_PER_TURN};
use super::wire::Info;
use crate::chain::ProbeError;
use crate::slots::{LeaderLog, LogStatus, SlotClock};

/// The handle of a producing nodeos in `Holding` and in its `LeaderLog`s (it has one key).
pub const HANDLE: u32 = 1;

/// Antelope's block timestamp epoch: 2000-01-01T00:00:00Z, in Unix milliseconds.
pub const TIMESTAMP_EPOCH_MS: u128 = 946_684_800_000;
/// Antelope's block timestamp slot: half a second.
pub const TIMESTAMP_SLOT: Duration = Duration::from_millis(500);

/// Blocks in a round of `producers` producers.
pub fn round_len(producers: usize) -> u64 {
    BLOCKS_PER_TURN.saturating_mul(producers as u64)
}

/// The chain's clock: one slot per block, one epoch per round, slot numbers = block numbers.
pub fn clock(info: &Info, producers: usize, interval: Duration) -> Result<SlotClock, ProbeError> {
    let since_block0 = u32::try_from(info.head_block_num)
        .ok()
        .and_then(|head| interval.checked_mul(head))
        .ok_or_else(|| {
            malformed(format!(
                "head_block_num {} is too large",
                info.head_block_num
            ))
        })?;
    let block0 = info
        .head_block_time
        .checked_sub(since_block0)
        .filter(|block0| *block0 >= SystemTime::UNIX_EPOCH)
        .ok_or_else(|| {
            malformed(format!(
                "head_block_time is earlier than {} blocks of {interval:?} after the Unix epoch",
                info.head_block_num
            ))
        })?;
    SlotClock::new(block0, interval, round_len(producers))
        .ok_or_else(|| malformed("a zero block interval or an empty schedule".into()))
}

/// The time of block `n` on `clock` (exact: `block0 + n x interval`).
pub fn block_time(clock: &SlotClock, n: u64) -> SystemTime {
    let nanos = clock.slot_duration.as_nanos().saturating_mul(u128::from(n));
    let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
    clock.block0 + Duration::from_nanos(nanos)
}

/// How turns line up with block numbers: `d` such that block `n` is the turn of
/// `producers[((n + d) % 12N) / 12]`. With half-second blocks, the block timestamp slot first
/// (nodeos's own rule), then the block numbers themselves (`d = 0`, the simulator's chain); the
/// first that gives the head's producer.
pub fn offset(info: &Info, producers: &[String], interval: Duration) -> Result<u64, String> {
    let round = round_len(producers.len());
    if round == 0 {
        return Err("the active schedule is empty".into());
    }
    let mut candidates = Vec::with_capacity(2);
    if interval == TIMESTAMP_SLOT {
        let ms = info
            .head_block_time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let slot = ms.saturating_sub(TIMESTAMP_EPOCH_MS) / TIMESTAMP_SLOT.as_millis();
        let slot = u64::try_from(slot % u128::from(round)).unwrap_or(0);
        let head = info.head_block_num % round;
        candidates.push((slot + round - head) % round);
    }
    candidates.push(0);
    candidates
        .into_iter()
        .find(|d| producer_of(producers, *d, info.head_block_num) == info.head_block_producer)
        .ok_or_else(|| {
            format!(
                "the head block {} is {:?}'s, which neither its number nor its time gives in the \
                 active schedule: the schedule is changing",
                info.head_block_num, info.head_block_producer
            )
        })
}

/// The producer whose turn block `n` is, with turns offset by `d`.
fn producer_of(producers: &[String], d: u64, n: u64) -> &str {
    let round = round_len(producers.len()).max(1);
    let position = (n % round + d % round) % round;
    let index = usize::try_from(position / BLOCKS_PER_TURN).unwrap_or(0);
    producers.get(index).map(String::as_str).unwrap_or_default()
}

/// Our producer's blocks in the head's round (epoch) and the next, as the daemon's leader logs.
/// Empty when `ours` is not in the active schedule.
pub fn pool_slots(
    info: &Info,
    producers: &[String],
    ours: &str,
    clock: &SlotClock,
) -> Result<Vec<LeaderLog>, ProbeError> {
    if !producers.iter().any(|name| name == ours) {
        return Ok(Vec::new());
    }
    let d = offset(info, producers, clock.slot_duration).map_err(ProbeError::Malformed)?;
    let round = clock.slots_per_epoch;
    let first = info.head_block_num / round * round;
    let end = first.saturating_add(round.saturating_mul(2));
    Ok((first..end)
        .filter(|n| producer_of(producers, d, *n) == ours)
        .map(|n| {
            let done = n <= info.head_block_num;
            LeaderLog {
                date: clock.date_of(n),
                scheduled_at: block_time(clock, n),
                finished: done,
                // The head passed it: the block exists (nodeos does not say which node made it).
                status: if done {
                    LogStatus::Block
                } else {
                    LogStatus::Pending
                },
                enclave_leader_id: HANDLE,
            }
        })
        .collect())
}

/// Whether our producer may change hands now, from the latest `get_info` (read at `now`) and the
/// active schedule; why not, in words, when not. `margin` is in whole turns kept clear before
/// ours (`rounds::handover_allowed`); a head older than one turn says nothing of whose turn it is.
pub fn handover_verdict(
    info: &Info,
    producers: &[String],
    ours: &str,
    margin: usize,
    interval: Duration,
    now: SystemTime,
) -> Result<(), String> {
    let turn = interval.saturating_mul(u32::try_from(BLOCKS_PER_TURN).unwrap_or(u32::MAX));
    let age = now.duration_since(info.head_block_time).unwrap_or_default();
    if age >= turn {
        return Err(format!(
            "the head is {age:?} old (a turn is {turn:?}): whose turn it is now is not known"
        ));
    }
    rounds::handover_allowed(
        &rounds::turn(producers, ours, &info.head_block_producer),
        margin,
    )
}

fn malformed(detail: String) -> ProbeError {
    ProbeError::Malformed(detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::SlotDate;

    const MS: Duration = Duration::from_millis(1);

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    /// A head at block `n` of a chain whose block 0 is at Unix second 1_700_000_000, made by
    /// `producer`.
    fn info(n: u64, interval: Duration, producer: &str) -> Info {
        Info {
            version: "v1.2.2".into(),
            chain_id: "00".into(),
            head_block_num: n,
            head_block_time: SystemTime::UNIX_EPOCH
                + Duration::from_secs(1_700_000_000)
                + interval * u32::try_from(n).unwrap(),
            head_block_producer: producer.into(),
            last_irreversible_block_num: n.saturating_sub(3),
            head_block_id: None,
        }
    }

    #[test]
    fn slots_are_block_numbers_and_epochs_are_rounds() {
        let bps = names(&["alpha", "bravo", "charlie", "delta"]);
        let interval = 50 * MS;
        // Block 1_000: round 1_000 / 48 = 20, 1_000 % 48 = 40: delta's turn.
        let head = info(1_000, interval, "delta");
        let clock = clock(&head, bps.len(), interval).unwrap();
        assert_eq!(clock.slots_per_epoch, 48);
        assert_eq!(clock.slot_duration, interval);
        assert_eq!(
            clock.block0,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert_eq!(clock.abs_slot_at(head.head_block_time), 1_000);
        assert_eq!(clock.abs_slot_at(head.head_block_time + 49 * MS), 1_000);
        assert_eq!(clock.abs_slot_at(head.head_block_time + interval), 1_001);
        assert_eq!(
            clock.date_at(head.head_block_time),
            SlotDate {
                epoch: 20,
                slot: 40
            }
        );
        assert_eq!(clock.epoch_start(21), block_time(&clock, 1_008));
        // Turns follow block numbers here (the simulator's chain), also with half-second blocks,
        // where the timestamp rule would put alpha at the head.
        assert_eq!(offset(&head, &bps, interval), Ok(0));
        assert_eq!(
            offset(&info(1_000, TIMESTAMP_SLOT, "delta"), &bps, TIMESTAMP_SLOT),
            Ok(0)
        );
        // Another head of the same chain gives the same clock.
        assert_eq!(
            super::clock(&info(5_555, interval, "x"), bps.len(), interval).unwrap(),
            clock
        );
        // Nonsense is refused, not turned into a clock.
        assert!(super::clock(&head, 0, interval).is_err());
        assert!(super::clock(&head, 4, Duration::ZERO).is_err());
        let mut early = head.clone();
        early.head_block_time = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        assert!(super::clock(&early, 4, interval).is_err());
    }

    #[test]
    fn pool_slots_are_our_turns_in_this_round_and_the_next() {
        let bps = names(&["alpha", "bravo", "charlie", "delta"]);
        let interval = 50 * MS;
        let head = info(1_000, interval, "delta");
        let clock = clock(&head, bps.len(), interval).unwrap();
        let logs = pool_slots(&head, &bps, "bravo", &clock).unwrap();
        let blocks: Vec<u64> = logs.iter().map(|l| clock.abs_slot_of(l.date)).collect();
        // Round 20 is blocks 960..1008; bravo's turn is its blocks 12..24.
        let expected: Vec<u64> = (972..984).chain(1_020..1_032).collect();
        assert_eq!(blocks, expected);
        for (log, n) in logs.iter().zip(&expected) {
            assert_eq!(log.scheduled_at, block_time(&clock, *n));
            assert_eq!(
                log.scheduled_at,
                SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + 50 * n)
            );
            assert_eq!(log.finished, *n <= 1_000);
            assert_eq!(log.enclave_leader_id, HANDLE);
        }
        assert_eq!(logs[0].status, LogStatus::Block);
        assert_eq!(logs[12].status, LogStatus::Pending);
        assert_eq!(
            logs[0].date,
            SlotDate {
                epoch: 20,
                slot: 12
            }
        );
        assert_eq!(
            logs[12].date,
            SlotDate {
                epoch: 21,
                slot: 12
            }
        );
        // Not scheduled: no slot; a head producer the schedule does not place there: an error.
        assert!(
            pool_slots(&head, &bps, "nkpool", &clock)
                .unwrap()
                .is_empty()
        );
        let changing = info(1_000, interval, "alpha");
        assert!(matches!(
            pool_slots(&changing, &bps, "bravo", &clock),
            Err(ProbeError::Malformed(_))
        ));
    }

    #[test]
    fn turns_follow_block_timestamps_on_a_real_chain() {
        // 21 producers, half-second blocks; the head's timestamp slot, not its number, says
        // whose turn it is (blocks were missed since genesis).
        let bps: Vec<String> = (0..21).map(|i| format!("bp{i}")).collect();
        let interval = TIMESTAMP_SLOT;
        // 2023-04-05T06:07:08.500Z: timestamp slot 1_467_980_057; % 252 = 173: bp14's block 5.
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_680_674_828_500);
        let slot = (1_680_674_828_500u128 - TIMESTAMP_EPOCH_MS) / 500;
        assert_eq!(slot % 252, 173);
        let head = Info {
            head_block_num: 300_000_123,
            head_block_time: time,
            head_block_producer: "bp14".into(),
            ..info(0, interval, "x")
        };
        // By number, 300_000_123 % 252 = 171 is bp14's block 3: the timestamp is used.
        assert_eq!(offset(&head, &bps, interval), Ok(2));
        let clock = clock(&head, bps.len(), interval).unwrap();
        let logs = pool_slots(&head, &bps, "bp14", &clock).unwrap();
        let blocks: Vec<u64> = logs.iter().map(|l| clock.abs_slot_of(l.date)).collect();
        // The head is bp14's block 5 (from 0): its turn is blocks head-5 ..= head+6,
        // then one round of 252 blocks later.
        let turn = 300_000_118..300_000_130;
        assert!(turn.clone().all(|n| blocks.contains(&n)), "{blocks:?}");
        assert!(turn.map(|n| n + 252).all(|n| blocks.contains(&n)));
        assert!(!blocks.contains(&300_000_117) && !blocks.contains(&300_000_130));
        // Nowhere to place the head producer: an error.
        let lost = Info {
            head_block_producer: "bp15".into(),
            ..head
        };
        assert!(offset(&lost, &bps, interval).is_err());
    }

    #[test]
    fn handovers_wait_for_a_fresh_head_and_the_manageos_rule() {
        let bps: Vec<String> = (0..6).map(|i| format!("bp{i}")).collect();
        let interval = 50 * MS;
        let at = |producer: &str| info(1_000, interval, producer);
        let now = at("bp0").head_block_time + 10 * MS;
        let verdict =
            |producer: &str| handover_verdict(&at(producer), &bps, "bp2", 1, interval, now);
        // bp2 ours, bp3 right after, bp1 just before: refused; bp4, bp5, bp0: allowed.
        for (producer, allowed) in [
            ("bp0", true),
            ("bp1", false),
            ("bp2", false),
            ("bp3", false),
            ("bp4", true),
            ("bp5", true),
        ] {
            assert_eq!(verdict(producer).is_ok(), allowed, "{producer}");
        }
        // A head one turn (600 ms) old or more is not trusted.
        let late = at("bp4").head_block_time + 600 * MS;
        let why = handover_verdict(&at("bp4"), &bps, "bp2", 1, interval, late).unwrap_err();
        assert!(why.contains("whose turn it is now is not known"), "{why}");
        assert!(handover_verdict(&at("bp4"), &bps, "bp2", 1, interval, late - MS).is_ok());
    }
}

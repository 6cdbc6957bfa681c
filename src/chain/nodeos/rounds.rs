//! When the pool's producer may change hands on nodeos, pure: from the active schedule and whose
//! turn it is (`head_block_producer`), never a wall-clock guess. Each active producer makes
//! [`BLOCKS_PER_TURN`] blocks in a row (6 s), in schedule order; a round is every producer's turn.
//!
//! The rule follows the manageos seed ("wait until our production round has completed, plus one
//! more round, then pause"): no hand-over during our turn, nor during the turn right after it
//! (our last blocks are still being confirmed), nor so close before our next turn that fewer than
//! `margin` whole turns are left to pause the old node, verify and resume the new one.

/// Blocks each producer makes in a row.
pub const BLOCKS_PER_TURN: u64 = 12;

/// Where the schedule stands for our producer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Our producer is not in the active schedule: it makes no block now.
    NotScheduled,
    /// Our producer's turn: it is making blocks.
    Ours,
    /// `since` turns after ours ended (1: the turn right after ours), `until` turns before ours
    /// begins (1: ours is next).
    Between {
        /// Turns since ours (1 = the next producer's turn).
        since: usize,
        /// Turns until ours (1 = ours comes next).
        until: usize,
    },
    /// The producer whose turn it is is not in the schedule read: the schedule is changing.
    Unknown,
}

/// Where `head_producer`'s turn stands for `ours` in `producers` (turn order).
pub fn turn(producers: &[String], ours: &str, head_producer: &str) -> Turn {
    let Some(our_index) = producers.iter().position(|name| name == ours) else {
        return Turn::NotScheduled;
    };
    let Some(head_index) = producers.iter().position(|name| name == head_producer) else {
        return Turn::Unknown;
    };
    let n = producers.len();
    if head_index == our_index {
        return Turn::Ours;
    }
    Turn::Between {
        since: (head_index + n - our_index) % n,
        until: (our_index + n - head_index) % n,
    }
}

/// Whether the producer may change hands now; why not, in words, when not.
pub fn handover_allowed(turn: &Turn, margin: usize) -> Result<(), String> {
    match turn {
        Turn::NotScheduled => Ok(()),
        Turn::Ours => Err("our producer's turn: it is making blocks".into()),
        Turn::Unknown => Err(
            "the producer whose turn it is is not in the active schedule (it is changing)".into(),
        ),
        Turn::Between { since: 1, .. } => {
            Err("the turn right after ours: our last blocks are being confirmed".into())
        }
        // Whole turns left before ours begins: the current one may be nearly over.
        Turn::Between { until, .. } if until.saturating_sub(1) < margin => Err(format!(
            "our turn begins within {until} turn(s) ({} s at most): too close to hand over",
            *until as u64 * BLOCKS_PER_TURN / 2
        )),
        Turn::Between { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("bp{i}")).collect()
    }

    #[test]
    fn turns_are_counted_around_the_schedule() {
        let bps = schedule(5);
        assert_eq!(turn(&bps, "bp2", "bp2"), Turn::Ours);
        assert_eq!(
            turn(&bps, "bp2", "bp3"),
            Turn::Between { since: 1, until: 4 }
        );
        assert_eq!(
            turn(&bps, "bp2", "bp1"),
            Turn::Between { since: 4, until: 1 }
        );
        assert_eq!(
            turn(&bps, "bp0", "bp4"),
            Turn::Between { since: 4, until: 1 }
        );
        assert_eq!(turn(&bps, "nkpool", "bp1"), Turn::NotScheduled);
        assert_eq!(turn(&bps, "bp2", "stranger"), Turn::Unknown);
    }

    #[test]
    fn a_handover_waits_for_our_turn_and_the_next_to_end_and_keeps_clear_of_ours() {
        // 21 producers, our producer bp10, a margin of one whole turn.
        let bps = schedule(21);
        let allowed: Vec<usize> = (0..21)
            .filter(|i| handover_allowed(&turn(&bps, "bp10", &format!("bp{i}")), 1).is_ok())
            .collect();
        // Not bp10 (ours), bp11 (right after), bp9 (ours is next: the turn may be nearly over).
        assert_eq!(
            allowed,
            (0..21)
                .filter(|i| ![9, 10, 11].contains(i))
                .collect::<Vec<_>>()
        );
        // A larger margin keeps more turns clear before ours.
        assert!(handover_allowed(&turn(&bps, "bp10", "bp8"), 2).is_err());
        assert!(handover_allowed(&turn(&bps, "bp10", "bp7"), 2).is_ok());
        // Not scheduled: nothing to interrupt; a changing schedule: wait.
        assert!(handover_allowed(&Turn::NotScheduled, 1).is_ok());
        assert!(handover_allowed(&Turn::Unknown, 1).is_err());
        // Two producers leave no safe turn at all.
        let two = schedule(2);
        for head in ["bp0", "bp1"] {
            assert!(handover_allowed(&turn(&two, "bp0", head), 1).is_err());
        }
    }

    #[test]
    fn refusals_say_why() {
        let bps = schedule(21);
        let why = handover_allowed(&turn(&bps, "bp10", "bp9"), 1).unwrap_err();
        assert_eq!(
            why,
            "our turn begins within 1 turn(s) (6 s at most): too close to hand over"
        );
    }
}

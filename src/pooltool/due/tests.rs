use std::time::Duration;

use super::*;
use crate::pooltool::fixtures::{clock, t};

#[test]
fn tip_tracker_rules() {
    let mut tracker = TipTracker::new(Duration::from_secs(15));
    // Never sent: due at once.
    assert!(tracker.due(t(0), 100));
    tracker.attempted(t(0));
    tracker.record(t(0), 100, true);
    assert_eq!(
        tracker.last_sent(),
        Some(TipSent {
            at: t(0),
            height: 100
        })
    );
    // A new height waits for the interval; the same height is never re-sent.
    assert!(!tracker.due(t(14), 101));
    assert!(tracker.due(t(15), 101));
    assert!(!tracker.due(t(1000), 100));
    // A lower height (rollback) is a change too.
    assert!(tracker.due(t(15), 99));
    // Failures double the wait: 30, 60, 120, 240, 480, then 600 (capped).
    let mut at = 15;
    for (failures, wait) in [
        (1, 30),
        (2, 60),
        (3, 120),
        (4, 240),
        (5, 480),
        (6, 600),
        (7, 600),
    ] {
        tracker.attempted(t(at));
        tracker.record(t(at), 101, false);
        assert_eq!(tracker.consecutive_failures(), failures);
        assert_eq!(tracker.wait(), Duration::from_secs(wait), "{failures}");
        assert!(!tracker.due(t(at + wait - 1), 101));
        assert!(tracker.due(t(at + wait), 101));
        at += wait;
    }
    // The failed height is retried, and a success resets the wait.
    tracker.attempted(t(at));
    tracker.record(t(at), 101, true);
    assert_eq!(tracker.consecutive_failures(), 0);
    assert_eq!(tracker.wait(), Duration::from_secs(15));
    assert!(!tracker.due(t(at + 100), 101));
    // A clock that stepped back makes a report due.
    assert!(tracker.due(t(0), 102));
    // An interval above the cap is never shortened by it.
    let mut slow = TipTracker::new(Duration::from_secs(900));
    slow.record(t(0), 1, false);
    assert_eq!(slow.wait(), Duration::from_secs(900));
    for _ in 0..100 {
        slow.record(t(0), 1, false);
    }
    assert_eq!(slow.wait(), Duration::from_secs(900));
}

#[test]
fn slots_tracker_rules() {
    let c = clock();
    let mut tracker = SlotsTracker::new(Duration::from_secs(180));
    assert_eq!(
        slots_window(&c, Duration::from_secs(180), 5),
        Some((t(5180), t(5240)))
    );
    assert_eq!(slots_window(&c, Duration::MAX, 5), None);
    let never = SlotsTracker::new(Duration::MAX);
    assert_eq!(never.decide(&c, t(5180)), SlotsDecision::Idle);
    // Before the window: wait. In it: send.
    assert_eq!(tracker.decide(&c, t(5000)), SlotsDecision::Idle);
    assert_eq!(tracker.decide(&c, t(5179)), SlotsDecision::Idle);
    assert_eq!(tracker.decide(&c, t(5180)), SlotsDecision::Send(5));
    // A failure is retried within the window, at most every 10 s.
    tracker.attempted(t(5180));
    tracker.record(5, false);
    assert_eq!(tracker.consecutive_failures(), 1);
    assert_eq!(tracker.decide(&c, t(5189)), SlotsDecision::Idle);
    assert_eq!(tracker.decide(&c, t(5190)), SlotsDecision::Send(5));
    tracker.attempted(t(5190));
    tracker.record(5, true);
    assert_eq!(tracker.sent_epoch(), Some(5));
    assert_eq!(tracker.consecutive_failures(), 0);
    // Sent: nothing more this epoch, even after the window.
    assert_eq!(tracker.decide(&c, t(5200)), SlotsDecision::Idle);
    assert_eq!(tracker.decide(&c, t(5900)), SlotsDecision::Idle);
    // Epoch 6's window passes unsent: missed once, then left alone.
    assert_eq!(tracker.decide(&c, t(6240)), SlotsDecision::Missed(6));
    tracker.missed(6);
    assert_eq!(tracker.decide(&c, t(6241)), SlotsDecision::Idle);
    // Epoch 7 again in its window, at its last second.
    assert_eq!(tracker.decide(&c, t(7239)), SlotsDecision::Send(7));
    // A failing epoch is missed once its window closes.
    tracker.attempted(t(7239));
    tracker.record(7, false);
    assert_eq!(tracker.decide(&c, t(7240)), SlotsDecision::Missed(7));
    assert_eq!(tracker.sent_epoch(), Some(5));
}

#[test]
fn attempts_count_failures_and_how_long_it_has_been() {
    let mut attempts = Attempts::default();
    // Never attempted: any wait has passed.
    assert!(attempts.waited(t(0), Duration::MAX));
    assert_eq!(attempts.last(), None);
    attempts.started(t(10));
    assert!(!attempts.waited(t(14), Duration::from_secs(5)));
    assert!(attempts.waited(t(15), Duration::from_secs(5)));
    // A clock that stepped back: how long it has been is unknown, so the wait is over.
    assert!(attempts.waited(t(5), Duration::from_secs(5)));
    attempts.ended(false);
    attempts.ended(false);
    assert_eq!(attempts.consecutive_failures(), 2);
    attempts.ended(true);
    assert_eq!(attempts.consecutive_failures(), 0);
    assert_eq!(attempts.last(), Some(t(10)));
}

#[test]
fn a_zero_tip_interval_never_waits() {
    // The configuration refuses it; the tracker still answers without a backoff.
    let mut tracker = TipTracker::new(Duration::ZERO);
    tracker.attempted(t(0));
    tracker.record(t(0), 1, false);
    assert_eq!(tracker.wait(), Duration::ZERO);
    assert!(tracker.due(t(0), 1));
}

//! The mails waiting for delivery, pure (every call that needs the time takes `now`): each mail
//! has its own backoff, so one that keeps failing never holds the others back. Delivery is
//! sequential: `next` starts the oldest mail that is due; after any success every waiting mail
//! is due at once (the server is back). The queue is bounded, and state-change mails (a
//! supervisord unreachable and back, a node held and recovered) are never dropped before
//! ordinary ones: when it is full, the oldest ordinary mail not in flight goes; when there is
//! none, a new ordinary mail is dropped itself, and a new state-change mail drops the oldest
//! state-change mail not in flight.
//!
//! At shutdown (`close`) every mail gets one more attempt, due at once, and none is retried.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::catalog::TemplateName;
use super::mailer::Mail;
use crate::backoff::ExponentialBackoff;

/// How much a mail matters when the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// The start or end of a state: dropped only for another state-change mail.
    StateChange,
    /// Everything else: dropped first.
    Ordinary,
}

impl Class {
    /// The class of a mail of `template`.
    pub fn of(template: TemplateName) -> Class {
        match template {
            TemplateName::SupervisorUnreachable
            | TemplateName::SupervisorBack
            | TemplateName::NodeHeld
            | TemplateName::NodeRecovered => Class::StateChange,
            _ => Class::Ordinary,
        }
    }
}

/// A mail to deliver, with what the log says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// `template (about)`, for log lines.
    pub label: String,
    /// Its class when the queue is full.
    pub class: Class,
    /// The mail, dated when it was raised.
    pub mail: Mail,
}

/// The id of a mail in the queue (for the outcome of its delivery).
pub type Id = u64;

#[derive(Debug)]
struct Entry {
    id: Id,
    queued: Queued,
    failures: u32,
    due: Instant,
    /// Closing: its last attempt was made.
    last_tried: bool,
}

/// What a failed attempt did to a mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Tried again after this delay.
    After(Duration),
    /// Closing: it is not tried again in this run (it stays queued).
    Kept,
}

/// The queue; see the module's documentation.
#[derive(Debug)]
pub struct Queue {
    /// Oldest first.
    entries: VecDeque<Entry>,
    limit: usize,
    in_flight: Option<Id>,
    next_id: Id,
    closing: bool,
}

impl Queue {
    /// An empty queue holding at most `limit` mails (at least 2).
    pub fn new(limit: usize) -> Queue {
        Queue {
            entries: VecDeque::new(),
            limit: limit.max(2),
            in_flight: None,
            next_id: 0,
            closing: false,
        }
    }

    /// How many mails wait (the one in flight included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No mail waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The mails, oldest first (for the outbox).
    pub fn mails(&self) -> impl Iterator<Item = &Queued> {
        self.entries.iter().map(|entry| &entry.queued)
    }

    /// Queues `queued`, due at `now`. Returns the mail dropped to make room, which is `queued`
    /// itself when only it may go.
    pub fn push(&mut self, queued: Queued, now: Instant) -> Option<Queued> {
        let mut dropped = None;
        if self.entries.len() >= self.limit {
            let victim = self
                .oldest_waiting(Class::Ordinary)
                .or_else(|| match queued.class {
                    Class::StateChange => self.oldest_waiting(Class::StateChange),
                    Class::Ordinary => None,
                });
            match victim {
                Some(index) => dropped = self.entries.remove(index).map(|entry| entry.queued),
                None => return Some(queued),
            }
        }
        self.next_id += 1;
        self.entries.push_back(Entry {
            id: self.next_id,
            queued,
            failures: 0,
            due: now,
            last_tried: false,
        });
        dropped
    }

    fn oldest_waiting(&self, class: Class) -> Option<usize> {
        self.entries
            .iter()
            .position(|entry| entry.queued.class == class && Some(entry.id) != self.in_flight)
    }

    /// Starts the delivery of the oldest mail due at `now`, unless one is in flight.
    pub fn next(&mut self, now: Instant) -> Option<(Id, Mail)> {
        if self.in_flight.is_some() {
            return None;
        }
        let closing = self.closing;
        let entry = self
            .entries
            .iter()
            .find(|entry| entry.due <= now && !(closing && entry.last_tried))?;
        self.in_flight = Some(entry.id);
        Some((entry.id, entry.queued.mail.clone()))
    }

    /// A delivery is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// When the next mail is due, while none is in flight (`None`: nothing to wait for).
    pub fn next_due(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        self.entries
            .iter()
            .filter(|entry| !(self.closing && entry.last_tried))
            .map(|entry| entry.due)
            .min()
    }

    fn take_in_flight(&mut self, id: Id) -> Option<usize> {
        if self.in_flight == Some(id) {
            self.in_flight = None;
        }
        self.entries.iter().position(|entry| entry.id == id)
    }

    /// Mail `id` was delivered: it leaves the queue, and every other mail is due at `now`.
    pub fn delivered(&mut self, id: Id, now: Instant) -> Option<Queued> {
        let index = self.take_in_flight(id)?;
        self.all_due(now);
        self.entries.remove(index).map(|entry| entry.queued)
    }

    /// Mail `id` was refused for good: it leaves the queue.
    pub fn rejected(&mut self, id: Id) -> Option<Queued> {
        let index = self.take_in_flight(id)?;
        self.entries.remove(index).map(|entry| entry.queued)
    }

    /// Mail `id` failed at `now`: due again after `retry`'s delay for its failures, or, closing,
    /// kept without another attempt. Returns its label and what happens next.
    pub fn failed(
        &mut self,
        id: Id,
        now: Instant,
        retry: &ExponentialBackoff,
    ) -> Option<(String, u32, Retry)> {
        let index = self.take_in_flight(id)?;
        let closing = self.closing;
        let entry = self.entries.get_mut(index)?;
        entry.failures = entry.failures.saturating_add(1);
        let next = if closing {
            entry.last_tried = true;
            Retry::Kept
        } else {
            let delay = retry.delay(entry.failures.saturating_sub(1));
            entry.due = now + delay;
            Retry::After(delay)
        };
        Some((entry.queued.label.clone(), entry.failures, next))
    }

    /// The delivery in flight was abandoned (shutdown): its mail stays queued.
    pub fn abandon(&mut self) {
        self.in_flight = None;
    }

    /// Every mail is due at `now` (new settings, or a success).
    pub fn all_due(&mut self, now: Instant) {
        for entry in &mut self.entries {
            entry.due = entry.due.min(now);
        }
    }

    /// Shutdown: every mail is due at `now` and gets one more attempt, none is retried.
    pub fn close(&mut self, now: Instant) {
        self.closing = true;
        self.all_due(now);
    }

    /// Closing, and every mail had its last attempt (or none is left).
    pub fn done(&self) -> bool {
        self.closing && self.in_flight.is_none() && self.entries.iter().all(|e| e.last_tried)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    const RETRY: ExponentialBackoff =
        ExponentialBackoff::constant(Duration::from_secs(10), Duration::from_secs(600));

    fn queued(label: &str, class: Class) -> Queued {
        Queued {
            label: label.into(),
            class,
            mail: Mail {
                subject: label.into(),
                body: String::new(),
                date: SystemTime::UNIX_EPOCH,
                meta: None,
            },
        }
    }

    fn ordinary(label: &str) -> Queued {
        queued(label, Class::Ordinary)
    }

    fn state(label: &str) -> Queued {
        queued(label, Class::StateChange)
    }

    fn labels(queue: &Queue) -> Vec<&str> {
        queue.mails().map(|q| q.label.as_str()).collect()
    }

    #[test]
    fn the_four_state_change_templates_are_the_state_changes() {
        use TemplateName::*;
        for name in [
            SupervisorUnreachable,
            SupervisorBack,
            NodeHeld,
            NodeRecovered,
        ] {
            assert_eq!(Class::of(name), Class::StateChange, "{name}");
        }
        for name in [
            RestartCrashed,
            AllNodesDown,
            LeaderSwitched,
            ConfigReloadRejected,
        ] {
            assert_eq!(Class::of(name), Class::Ordinary, "{name}");
        }
    }

    #[test]
    fn a_failing_mail_does_not_hold_the_others_back() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut queue = Queue::new(100);
        queue.push(ordinary("a"), at(0));
        queue.push(ordinary("b"), at(0));
        let (a, _) = queue.next(at(0)).expect("a is due");
        assert!(queue.next(at(0)).is_none(), "one delivery at a time");
        assert_eq!(
            queue.failed(a, at(0), &RETRY),
            Some(("a".into(), 1, Retry::After(Duration::from_secs(10))))
        );
        // b goes while a waits for its retry.
        let (b, mail) = queue.next(at(1)).expect("b is due");
        assert_eq!(mail.subject, "b");
        assert_eq!(
            queue.failed(b, at(1), &RETRY).map(|f| f.2),
            Some(Retry::After(Duration::from_secs(10)))
        );
        assert_eq!(queue.next_due(), Some(at(10)));
        assert!(queue.next(at(9)).is_none());
        // Each has its own backoff: a's second failure doubles its delay, not b's.
        let (a2, _) = queue.next(at(10)).expect("a is due again");
        assert_eq!(a2, a);
        assert_eq!(
            queue.failed(a, at(10), &RETRY).map(|f| f.2),
            Some(Retry::After(Duration::from_secs(20)))
        );
        assert_eq!(queue.next_due(), Some(at(11)));
    }

    #[test]
    fn after_a_success_every_waiting_mail_is_due_at_once_oldest_first() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut queue = Queue::new(100);
        for label in ["a", "b", "c"] {
            queue.push(ordinary(label), at(0));
        }
        for now in [0, 0] {
            let (id, _) = queue.next(at(now)).expect("due");
            queue.failed(id, at(now), &RETRY);
        }
        // c succeeds: a and b, waiting for their retries, are due now, a first.
        let (c, mail) = queue.next(at(1)).expect("c");
        assert_eq!(mail.subject, "c");
        assert_eq!(queue.delivered(c, at(1)).map(|q| q.label), Some("c".into()));
        let (_, mail) = queue.next(at(1)).expect("a due at once");
        assert_eq!(mail.subject, "a");
        assert_eq!(labels(&queue), ["a", "b"]);
    }

    #[test]
    fn a_full_queue_drops_ordinary_mails_before_state_changes() {
        let now = Instant::now();
        let mut queue = Queue::new(3);
        queue.push(ordinary("o1"), now);
        queue.push(state("s1"), now);
        queue.push(ordinary("o2"), now);
        // o1 is in flight: it is not dropped.
        let (o1, _) = queue.next(now).expect("o1");
        assert_eq!(
            queue.push(state("s2"), now).map(|q| q.label),
            Some("o2".into())
        );
        assert_eq!(labels(&queue), ["o1", "s1", "s2"]);
        // No ordinary mail but the one in flight: a new ordinary mail is dropped itself.
        assert_eq!(
            queue.push(ordinary("o3"), now).map(|q| q.label),
            Some("o3".into())
        );
        // A new state change drops the oldest state change.
        assert_eq!(
            queue.push(state("s3"), now).map(|q| q.label),
            Some("s1".into())
        );
        assert_eq!(labels(&queue), ["o1", "s2", "s3"]);
        queue.delivered(o1, now);
        // Room again; once full, the ordinary one goes first.
        queue.push(ordinary("o4"), now);
        assert_eq!(
            queue.push(state("s4"), now).map(|q| q.label),
            Some("o4".into())
        );
        assert_eq!(labels(&queue), ["s2", "s3", "s4"]);
    }

    #[test]
    fn closing_tries_each_mail_once_more_and_keeps_the_failures() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut queue = Queue::new(100);
        queue.push(ordinary("a"), at(0));
        queue.push(ordinary("b"), at(0));
        let (a, _) = queue.next(at(0)).expect("a");
        queue.failed(a, at(0), &RETRY);
        queue.close(at(1));
        assert!(!queue.done());
        let (a, _) = queue.next(at(1)).expect("a at once, despite its backoff");
        assert_eq!(
            queue.failed(a, at(1), &RETRY).map(|f| f.2),
            Some(Retry::Kept)
        );
        let (b, _) = queue.next(at(1)).expect("b");
        queue.failed(b, at(1), &RETRY);
        assert!(queue.next(at(100)).is_none());
        assert!(queue.done());
        assert_eq!(labels(&queue), ["a", "b"]);
    }
}

//! The pure rules of who may produce in a cluster: from what the etcd session knows (its lease's
//! last renewal, whether its campaign won, the other instances' published facts) at a reading of
//! the local monotonic clock, whether this instance may let one of its nodes hold the pool's key.
//!
//! Times are readings of one local monotonic clock (a `Duration` since any fixed origin), so the
//! property test can give every instance a drifting clock of its own.

use std::time::Duration;

/// What the session knows at `now`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Known {
    /// The lease's time to live.
    pub ttl: Duration,
    /// When the grant or the latest keep-alive of the current lease that succeeded was SENT (the
    /// local reading taken before sending it, kept with the request); `None`: no lease. Not when
    /// its answer came: an answer read late (the process stopped, a slow loop) would stretch the
    /// lease past the server's (`rules_prop` has the overlap it causes).
    pub renewed: Option<Duration>,
    /// This instance's campaign won and its leader key was not seen deleted since.
    pub elected: bool,
    /// The other instances whose snapshot is live in etcd (their lease is alive).
    pub peers: Vec<PeerFacts>,
}

/// What a live peer published.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerFacts {
    /// Its name.
    pub instance: String,
    /// Some node of it holds the key or cannot be verified not to.
    pub may_hold: bool,
}

/// What the policy may do, from the cluster's side.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    /// Elected and the lease surely alive: one of this instance's nodes may hold the key.
    pub may_lead: bool,
    /// No node of another instance may hold the key: every live peer published none, and a peer
    /// whose lease is gone demoted its nodes by its deadline (its daemon, or its host's fence).
    pub pool_passive: bool,
    /// Why this instance may not lead, for the operator.
    pub why: Option<String>,
}

/// The moment after `renewed` from which the instance must hold nothing: half the lease. The
/// server expires the lease `ttl` after it last saw a keep-alive, which is after it was sent
/// (`renewed`): the other half covers the clocks' drift, the demotion, and the host's fence
/// noticing the deadline when the instance itself cannot.
pub fn deadline(renewed: Duration, ttl: Duration) -> Duration {
    renewed + ttl / 2
}

/// How often the session renews the lease: five times a lease, so that two renewals in a row
/// may fail before the deadline.
pub fn keepalive_every(ttl: Duration) -> Duration {
    (ttl / 5).max(Duration::from_millis(200))
}

/// Whether the lease is surely alive at `now`.
pub fn lease_fresh(known: &Known, now: Duration) -> bool {
    known
        .renewed
        .is_some_and(|renewed| now < deadline(renewed, known.ttl))
}

/// The gate at `now`.
pub fn gate(known: &Known, now: Duration) -> Gate {
    let holders: Vec<&str> = known
        .peers
        .iter()
        .filter(|peer| peer.may_hold)
        .map(|peer| peer.instance.as_str())
        .collect();
    let pool_passive = holders.is_empty();
    let why = if known.renewed.is_none() {
        Some("no lease in etcd".to_string())
    } else if !lease_fresh(known, now) {
        Some(format!(
            "the lease was not renewed for {} (the deadline is half of lease_ttl {})",
            humantime::format_duration(round_ms(now.saturating_sub(known.renewed.unwrap_or(now)))),
            humantime::format_duration(known.ttl)
        ))
    } else if !known.elected {
        Some("another instance is elected".to_string())
    } else {
        None
    };
    Gate {
        may_lead: why.is_none(),
        pool_passive,
        why,
    }
}

fn round_ms(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(renewed: Option<u64>, elected: bool, peers: &[(&str, bool)]) -> Known {
        Known {
            ttl: Duration::from_secs(10),
            renewed: renewed.map(Duration::from_secs),
            elected,
            peers: peers
                .iter()
                .map(|(name, may_hold)| PeerFacts {
                    instance: name.to_string(),
                    may_hold: *may_hold,
                })
                .collect(),
        }
    }

    #[test]
    fn an_elected_instance_leads_until_half_its_lease_after_the_last_renewal() {
        let k = known(Some(100), true, &[]);
        assert!(gate(&k, Duration::from_secs(104)).may_lead);
        let late = gate(&k, Duration::from_secs(105));
        assert!(!late.may_lead);
        assert!(late.why.unwrap().contains("not renewed for 5s"));
    }

    #[test]
    fn an_instance_that_is_not_elected_or_has_no_lease_never_leads() {
        assert!(!gate(&known(Some(100), false, &[]), Duration::from_secs(101)).may_lead);
        assert!(!gate(&known(None, true, &[]), Duration::from_secs(101)).may_lead);
    }

    #[test]
    fn the_pool_is_passive_only_when_no_live_peer_may_hold_the_key() {
        let now = Duration::from_secs(101);
        assert!(gate(&known(Some(100), true, &[("b", false)]), now).pool_passive);
        assert!(!gate(&known(Some(100), true, &[("b", false), ("c", true)]), now).pool_passive);
    }
}

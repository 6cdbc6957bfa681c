//! What a tick publishes: the status snapshot (API, `nodekeeper status`) and the metrics sample,
//! both read from the observation and the policy's facts of the tick; nothing is worked out again
//! here. Also the last restart-log row of each node, read back at start-up.
//!
//! Every chain fills the same fields: height (and nodeos's LIB), lag, who holds the pool's key
//! (the adapter's `holding`: Jormungandr's leader ids, nodeos unpaused, cardano forging) and the
//! pool's next slot from the policy's `LeaderMemory` (the adapters' `Schedule::pool_slots`: the
//! leader logs, nodeos's blocks of our producer, cardano's `schedule_file`); for nodeos the next
//! slot is the first block of our producer's next turn.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::observe::{Raw, SupervisorAnswer};
use crate::chain::{ChainName, ChainSettings};
use crate::config::Config;
use crate::metrics::{NodeSample, TickSample};
use crate::policy::leader::guard;
use crate::policy::{
    LeaderConfig, LeaderMemory, NodeObservation, Observation, PolicyConfig, PolicyState, PoolFacts,
    ProgramSeen, Variant,
};
use crate::restart_log::RestartRow;
use crate::slots::SlotDate;
use crate::status::{ChainLine, LastRestart, LeadershipLine, NodeLine, Snapshot};
use crate::time::rfc3339;

/// The last restart-log row of each node, read from the end of the log.
pub fn last_restarts(config: &Config) -> BTreeMap<String, LastRestart> {
    let mut last = BTreeMap::new();
    let Ok(rows) = crate::restart_log::read_tail(&config.restart_log, 256 * 1024) else {
        return last;
    };
    for row in rows {
        last.insert(row.node.clone(), last_restart_of(&row));
    }
    last
}

fn last_restart_of(row: &RestartRow) -> LastRestart {
    LastRestart {
        at: rfc3339(row.timestamp),
        action: row.action.to_string(),
        reason: row.reason.clone(),
    }
}

/// One tick as the snapshot reads it.
pub struct Seen<'a> {
    /// What was observed.
    pub observation: &'a Observation,
    /// What the policy concluded from it.
    pub facts: &'a PoolFacts,
    /// The raw answers (the probes' last words, for display).
    pub raw: &'a Raw,
    /// The nodes with a job in flight once the tick's actions started.
    pub busy: &'a BTreeSet<String>,
}

/// The status snapshot of one tick.
pub fn build(
    config: &Config,
    seen: &Seen<'_>,
    state: &PolicyState,
    last_restarts: &BTreeMap<String, LastRestart>,
    policy: &PolicyConfig,
) -> Snapshot {
    let Seen {
        observation,
        facts,
        raw,
        busy,
    } = *seen;
    let chain = pool_chain(config);
    let nodes = config
        .nodes
        .iter()
        .filter_map(|settings| {
            let seen = observation
                .nodes
                .iter()
                .find(|seen| seen.name == settings.name)?;
            let node_facts = facts.node(&settings.name);
            let memory = state.nodes.get(&settings.name);
            let program_state = match &seen.program {
                ProgramSeen::Known(view) => view.state.name().to_string(),
                ProgramSeen::Missing => "MISSING".into(),
                ProgramSeen::Unreachable => "UNREACHABLE".into(),
            };
            let (node_state, height, irreversible_height) = match raw.probes.get(&settings.name) {
                Some(Ok(status)) => (
                    status.state.name().to_string(),
                    status.height,
                    status.irreversible_height,
                ),
                Some(Err(e)) => (format!("({e})"), None, None),
                None => ("-".into(), None, None),
            };
            let holds = policy.leader.enabled
                && (matches!(&seen.leadership.holding, Some(Ok(holding)) if holding.holds())
                    || state.leadership.leader.as_deref() == Some(settings.name.as_str()));
            Some(NodeLine {
                name: settings.name.clone(),
                program: settings.program.clone(),
                program_state,
                node_state,
                height,
                irreversible_height,
                lag: node_facts.and_then(|f| f.lag),
                held: memory
                    .and_then(|m| m.hold.as_ref())
                    .map(|hold| hold.reason.to_string()),
                busy: seen.busy || busy.contains(&settings.name),
                variant: match memory.map(|m| m.variant).unwrap_or_default() {
                    Variant::Normal => "normal".into(),
                    Variant::Fallback => "fallback".into(),
                },
                last_restart: last_restarts.get(&settings.name).cloned(),
                leader: holds,
                role: holds.then(|| chain.role().to_string()),
                schedule: policy
                    .leader
                    .enabled
                    .then(|| schedule_state(&state.leadership, seen, chain)),
                instance: config.cluster.as_ref().map(|cluster| cluster.name.clone()),
            })
        })
        .collect();
    Snapshot {
        taken_at: rfc3339(observation.now),
        reference: facts.reference,
        external_reference: observation.reference.map(|tip| tip.height),
        unreachable: raw
            .supervisors
            .iter()
            .filter_map(|(name, answer)| match answer {
                SupervisorAnswer::Failed(e) => Some(format!("supervisord {name}: {e}")),
                // Not asked this tick: it failed before and is being retried with backoff.
                SupervisorAnswer::Skipped => Some(format!(
                    "supervisord {name}: unreachable, retrying with backoff"
                )),
                SupervisorAnswer::Answered(_) => None,
            })
            .collect(),
        nodes,
        leadership: policy
            .leader
            .enabled
            .then(|| status_line(&state.leadership, &policy.leader, chain, observation.now)),
        chain: Some(chain_line(config, chain)),
        // Filled by the daemon's cluster link, which knows the election and the other instances.
        cluster: None,
        archive: None,
    }
}

/// The pool's chain: its nodes' (one chain per configuration); Jormungandr without nodes.
fn pool_chain(config: &Config) -> ChainName {
    config
        .nodes
        .first()
        .map_or(ChainName::default(), |node| node.chain.chain())
}

/// The chain's line of the status: its name, our producer account (nodeos) and its words.
fn chain_line(config: &Config, chain: ChainName) -> ChainLine {
    let producer = config.nodes.iter().find_map(|node| match &node.chain {
        ChainSettings::Nodeos(settings) => settings.producer.clone(),
        _ => None,
    });
    ChainLine {
        name: chain.as_str().into(),
        producer,
        role: chain.role().into(),
        holder: chain.holder().into(),
        epoch: chain.epoch().into(),
        slot: chain.slot().into(),
        next: chain.next().into(),
    }
}

/// A node's schedule state for the status: this epoch's slots in its logs (nodeos: our
/// producer's blocks in this round).
fn schedule_state(memory: &LeaderMemory, node: &NodeObservation, chain: ChainName) -> String {
    let (Some(epoch), Some(dates)) = (memory.epoch, &node.leadership.schedule) else {
        return "schedule unknown".into();
    };
    let (name, slot) = (chain.epoch(), chain.slot());
    match dates.iter().filter(|date| date.epoch == epoch).count() {
        0 => format!("{name} {epoch}: no {slot}s"),
        1 => format!("{name} {epoch}: 1 {slot}"),
        n => format!("{name} {epoch}: {n} {slot}s"),
    }
}

/// The pool's next slot at or after `now` as the status shows it, with its time: the next known
/// slot; on nodeos, whose every block of a turn is one of the pool's slots, the first block of
/// our producer's next turn (a turn in progress is not "next").
fn next_slot(
    memory: &LeaderMemory,
    chain: ChainName,
    now: std::time::SystemTime,
) -> Option<(SlotDate, std::time::SystemTime)> {
    if chain != ChainName::Nodeos {
        return memory.next_slot(now);
    }
    let clock = memory.clock?;
    let ours: BTreeSet<u64> = memory
        .schedule
        .iter()
        .map(|date| clock.abs_slot_of(*date))
        .collect();
    ours.iter()
        .filter(|n| {
            n.checked_sub(1)
                .is_none_or(|before| !ours.contains(&before))
        })
        .map(|n| (clock.date_of(*n), clock.slot_time(*n)))
        .find(|(_, at)| *at >= now)
}

/// The leadership line of the status.
fn status_line(
    memory: &LeaderMemory,
    config: &LeaderConfig,
    chain: ChainName,
    now: std::time::SystemTime,
) -> LeadershipLine {
    let next = next_slot(memory, chain, now);
    LeadershipLine {
        leader: memory.leader.clone(),
        epoch: memory.epoch,
        next_slot: next.map(|(date, _)| date.to_string()),
        next_slot_number: next.and_then(|(date, _)| Some(memory.clock?.abs_slot_of(date))),
        next_slot_at: next.map(|(_, at)| rfc3339(at)),
        next_slot_in_secs: next.map(|(_, at)| at.duration_since(now).unwrap_or_default().as_secs()),
        last_slot: memory.last_slot.map(|date| date.to_string()),
        guard: guard(
            memory,
            config,
            now,
            crate::time::saturating_add(now, config.lookahead),
        )
        .map(|why| why.to_string()),
    }
}

/// What one tick publishes as metrics: from what was observed and concluded, nothing asked again.
pub fn tick_sample(
    observation: &Observation,
    facts: &PoolFacts,
    raw: &Raw,
    snapshot: &Snapshot,
    duration: Duration,
    interval: Duration,
) -> TickSample {
    let nodes = observation
        .nodes
        .iter()
        .filter_map(|seen| {
            let line = snapshot.nodes.iter().find(|line| line.name == seen.name)?;
            let probe = raw.probes.get(&seen.name);
            Some(NodeSample {
                node: seen.name.clone(),
                program_state: match &seen.program {
                    ProgramSeen::Known(view) => view.state.name(),
                    ProgramSeen::Missing => "MISSING",
                    ProgramSeen::Unreachable => "UNREACHABLE",
                },
                height: line.height,
                irreversible_height: line.irreversible_height,
                lag: line.lag,
                last_block_time: match probe {
                    Some(Ok(status)) => status.last_block_time,
                    _ => None,
                },
                probe_error: match probe {
                    Some(Err(e)) => Some(e.kind()),
                    _ => None,
                },
                held: line.held.is_some(),
                leader: line.leader,
                in_sync: facts.node(&seen.name).is_some_and(|f| f.in_sync),
                kes_periods: seen.key_expiry.map(|expiry| expiry.periods),
            })
        })
        .collect();
    TickSample {
        now: observation.now,
        duration,
        interval,
        nodes,
        supervisors: raw
            .supervisors
            .iter()
            .map(|(name, answer)| {
                (
                    name.clone(),
                    matches!(answer, SupervisorAnswer::Answered(_)),
                )
            })
            .collect(),
        reference: facts.reference,
        external_reference: observation
            .reference
            .map(|tip| (tip.height, tip.fetched_at)),
        chain: snapshot
            .chain
            .as_ref()
            .map_or_else(|| ChainName::default().as_str().into(), |c| c.name.clone()),
        // The status's next slot, to the second it shows.
        next_slot: snapshot.leadership.as_ref().and_then(|l| {
            let at = crate::time::saturating_add(
                observation.now,
                Duration::from_secs(l.next_slot_in_secs?),
            );
            Some((l.next_slot_number?, at))
        }),
        leadership: snapshot.leadership.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::slots::SlotClock;

    /// A nodeos-like clock: 1 s blocks, rounds of 72 blocks (6 producers), ours the second turn
    /// (blocks 12..24 of each round) in rounds 0 and 1.
    fn memory() -> (LeaderMemory, SlotClock) {
        let clock = SlotClock::new(SystemTime::UNIX_EPOCH, Duration::from_secs(1), 72).unwrap();
        let memory = LeaderMemory {
            clock: Some(clock),
            schedule: (12..24).chain(84..96).map(|n| clock.date_of(n)).collect(),
            ..LeaderMemory::default()
        };
        (memory, clock)
    }

    #[test]
    fn nodeos_next_turn_is_the_first_block_of_the_next_turn() {
        let (memory, clock) = memory();
        // Before our turn: its first block.
        let before = clock.slot_time(5);
        assert_eq!(
            next_slot(&memory, ChainName::Nodeos, before),
            Some((clock.date_of(12), clock.slot_time(12)))
        );
        // Inside our turn, the next turn is the next round's, not the next block.
        let during = clock.slot_time(15);
        assert_eq!(
            next_slot(&memory, ChainName::Nodeos, during),
            Some((clock.date_of(84), clock.slot_time(84)))
        );
        // After the last known turn: unknown.
        assert_eq!(
            next_slot(&memory, ChainName::Nodeos, clock.slot_time(90)),
            None
        );
    }

    #[test]
    fn other_chains_take_the_next_known_slot() {
        let (memory, clock) = memory();
        let during = clock.slot_time(15);
        for chain in [ChainName::Jormungandr, ChainName::Cardano] {
            assert_eq!(
                next_slot(&memory, chain, during),
                Some((clock.date_of(15), clock.slot_time(15)))
            );
        }
        let line = status_line(&memory, &LeaderConfig::default(), ChainName::Nodeos, during);
        assert_eq!(line.next_slot.as_deref(), Some("1.12"));
        assert_eq!(line.next_slot_number, Some(84));
        assert_eq!(line.next_slot_in_secs, Some(69));
    }
}

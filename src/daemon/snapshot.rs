//! What a tick publishes: the status snapshot (API, `nodekeeper status`) and the metrics sample,
//! both read from the observation and the policy's facts of the tick; nothing is worked out again
//! here. Also the last restart-log row of each node, read back at start-up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::observe::{Raw, SupervisorAnswer};
use crate::config::Config;
use crate::metrics::{NodeSample, TickSample};
use crate::policy::leader::guard;
use crate::policy::{
    LeaderConfig, LeaderMemory, NodeObservation, Observation, PolicyConfig, PolicyState, PoolFacts,
    ProgramSeen, Variant,
};
use crate::restart_log::RestartRow;
use crate::status::{LastRestart, LeadershipLine, NodeLine, Snapshot};
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
            let (node_state, height) = match raw.probes.get(&settings.name) {
                Some(Ok(status)) => (status.state.name().to_string(), status.height),
                Some(Err(e)) => (format!("({e})"), None),
                None => ("-".into(), None),
            };
            Some(NodeLine {
                name: settings.name.clone(),
                program: settings.program.clone(),
                program_state,
                node_state,
                height,
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
                leader: policy.leader.enabled
                    && (matches!(&seen.leadership.holding, Some(Ok(holding)) if holding.holds())
                        || state.leadership.leader.as_deref() == Some(settings.name.as_str())),
                schedule: policy
                    .leader
                    .enabled
                    .then(|| schedule_state(&state.leadership, seen)),
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
            .then(|| status_line(&state.leadership, &policy.leader, observation.now)),
    }
}

/// A node's schedule state for the status: this epoch's slots in its logs.
fn schedule_state(memory: &LeaderMemory, node: &NodeObservation) -> String {
    let (Some(epoch), Some(dates)) = (memory.epoch, &node.leadership.schedule) else {
        return "schedule unknown".into();
    };
    match dates.iter().filter(|date| date.epoch == epoch).count() {
        0 => format!("epoch {epoch}: no slots"),
        1 => format!("epoch {epoch}: 1 slot"),
        n => format!("epoch {epoch}: {n} slots"),
    }
}

/// The leadership line of the status.
fn status_line(
    memory: &LeaderMemory,
    config: &LeaderConfig,
    now: std::time::SystemTime,
) -> LeadershipLine {
    let next = memory.next_slot(now);
    LeadershipLine {
        leader: memory.leader.clone(),
        epoch: memory.epoch,
        next_slot: next.map(|(date, _)| date.to_string()),
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
                    ProgramSeen::Known(view) => Some(view.state.code()),
                    _ => None,
                },
                height: line.height,
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
    }
}

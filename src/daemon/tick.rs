//! The tick: a round of observation starts (the reference tip refreshed on its own schedule),
//! and when it ends the policy decides on it, the actions are executed and everything is
//! recorded (persisted state, PoolTool reports, the snapshot, the metrics).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::observe::{Inputs, Observed};
use super::react::Want;
use super::{Daemon, Last, snapshot};
use crate::chain::NodeState;
use crate::policy::{self, Observation, PoolFacts, ReferenceTip};
use crate::pooltool::{SlotsInput, TipInput};

impl Daemon {
    /// The tick interval elapsed: start a round (unless the last one still runs).
    pub(super) fn on_tick(&mut self) {
        if self.observer.in_flight() {
            return;
        }
        self.start_round(Want::Full);
    }

    /// Between rounds: ask each node last seen RUNNING (and not being acted on) again, so that
    /// a node that stops answering is silent from soon after, not from the next round.
    pub(super) fn on_ask(&mut self) {
        let Some(observation) = &self.last.observation else {
            return;
        };
        let busy = self.jobs.nodes();
        let running: Vec<_> = observation
            .nodes
            .iter()
            .filter(|node| !node.busy && !busy.contains(&node.name))
            .filter(|node| {
                matches!(&node.program, policy::ProgramSeen::Known(p)
                    if p.state == crate::supervisor::ProcessState::Running)
            })
            .filter_map(|node| {
                self.rt
                    .nodes
                    .get(&node.name)
                    .map(|adapter| (node.name.clone(), Arc::clone(adapter)))
            })
            .collect();
        let timeout = super::observe::probe_timeout(&self.rt.config.thresholds);
        self.observer.ask_between(&running, timeout);
    }

    /// An event asks to observe now: a round starts, or follows the one in flight.
    /// The cluster's gate for the policy (`None` without `[cluster]`).
    pub(super) fn cluster_gate(&self) -> Option<crate::cluster::rules::Gate> {
        self.cluster.as_ref().map(super::cluster::Link::gate)
    }

    pub(super) fn observe_now(&mut self, want: Want) {
        if self.observer.in_flight() {
            self.reaction.defer(want);
        } else {
            self.start_round(want);
        }
    }

    /// Starts a round: a whole one (`Full`), or a quick one that waits for no probe and reads no
    /// leader view.
    fn start_round(&mut self, want: Want) {
        let now = self.clock.now();
        self.poll_reference(now);
        let thresholds = &self.rt.config.thresholds;
        // Probes get at most half a tick: a hung node's probe stays in flight for later rounds
        // instead of holding up decisions about every other node.
        let probe_wait = (thresholds.tick_interval / 2)
            .min(thresholds.probe_timeout + Duration::from_millis(100));
        let skipped = self.observer.outages.skipped();
        let mut inputs = Inputs::new(
            now,
            &self.rt,
            skipped,
            probe_wait,
            Arc::clone(&self.observer.commands),
        );
        // Nor past the moment a silence reaches `hang_timeout`: the round then ends in time to
        // judge it.
        if let Some(at) = self.reaction.hang_check {
            inputs.probe_wait =
                probe_wait.min(at.saturating_duration_since(tokio::time::Instant::now()));
        }
        inputs.want_chain_time &= self.observer.chain_time.is_none();
        inputs.read_commands = self
            .observer
            .commands_due(inputs.asked.iter().map(|(name, _)| name));
        if want == Want::Quick {
            inputs.quick = true;
            inputs.probe_wait = Duration::ZERO;
            inputs.want_chain_time = false;
            inputs.read_commands.clear();
        }
        self.observer.start(inputs);
    }

    /// A round ended: decide on it, act, record.
    pub(super) fn on_observed(&mut self, observed: Observed) {
        let Observed {
            now,
            started,
            prober,
            raw,
            mut nodes,
            chain_time,
            logs,
            commands,
            quick,
        } = observed;
        debug!(quick, took = ?started.elapsed(), "round ended");
        let touched = self.observer.absorb(prober);
        self.observer.leader_views(quick, &mut nodes);
        self.observer
            .note_commands(commands, &raw.supervisors, started);
        let tick = self.rt.config.thresholds.tick_interval;
        for event in self.observer.outages.note(&raw, now, tick) {
            self.out.emit(event);
        }
        if let Some((name, clock)) = chain_time {
            if self.observer.chain_time != Some(clock) {
                info!(
                    slot_duration = ?clock.slot_duration,
                    slots_per_epoch = clock.slots_per_epoch,
                    "chain time read from {name}'s settings"
                );
            }
            self.observer.chain_time = Some(clock);
        }
        self.observer.logs.extend(logs);
        // A node acted on since the round began is left alone: what the round saw of it
        // predates the action.
        // So is a node a hand-over or demotion in flight acts on (its demotion may still be
        // being verified).
        if !self.options.dry_run {
            self.watch_exits(&nodes, now);
        }
        let leading: std::collections::BTreeSet<&String> = self.leader_tasks.nodes().collect();
        for node in &mut nodes {
            node.busy = self.jobs.nodes().contains(&node.name)
                || touched.contains(&node.name)
                || leading.contains(&node.name);
        }
        let observation = Observation {
            now,
            nodes,
            chain: self.observer.chain_time,
            leader_job: self.leader_tasks.busy(),
            cluster: self.cluster_gate(),
            reference: self
                .rt
                .reference
                .as_ref()
                .and_then(|feed| feed.tracker.current(now))
                .map(|reference| ReferenceTip {
                    height: reference.height,
                    fetched_at: reference.fetched_at,
                })
                // With [cluster]: the other instances' Running nodes count as a reference too,
                // so that a node behind the pool is caught on any host.
                .into_iter()
                .chain(
                    self.cluster
                        .as_ref()
                        .and_then(|link| link.peer_reference(now)),
                )
                .max_by_key(|tip| tip.height),
        };
        let decision = policy::decide(&self.rt.policy, &mut self.policy, &observation);
        for action in decision.actions {
            self.act(action, &observation, &decision.facts);
        }
        self.store.save_holds(self.policy.holds());
        self.store.save_leadership(&self.policy.leadership);
        self.report_to_pooltool(&observation, &decision.facts);
        let seen = snapshot::Seen {
            observation: &observation,
            facts: &decision.facts,
            raw: &raw,
            busy: self.jobs.nodes(),
        };
        let snapshot = snapshot::build(
            &self.rt.config,
            &seen,
            &self.policy,
            &self.out.last_restarts,
            &self.rt.policy,
        );
        self.out.metrics.record_tick(&snapshot::tick_sample(
            &observation,
            &decision.facts,
            &raw,
            &snapshot,
            started.elapsed(),
            tick,
        ));
        let mut snapshot = snapshot;
        if let Some(link) = &mut self.cluster {
            link.after_tick(&mut snapshot, &mut self.policy, &decision.facts);
            if let Some(line) = &snapshot.cluster {
                self.out.metrics.record_cluster(line);
            }
        }
        snapshot.archive = self.archive_line();
        if let Ok(mut shared) = self.out.snapshot.write() {
            *shared = snapshot;
        }
        self.last = Last {
            observation: Some(observation),
            facts: decision.facts,
        };
        if !self.options.dry_run {
            self.after_tick_archives();
        }
        self.done = true;
        let programs = self
            .rt
            .config
            .nodes
            .iter()
            .map(|node| {
                (
                    (node.supervisor.clone(), node.program.clone()),
                    node.name.clone(),
                )
            })
            .collect();
        self.reaction.after_round(&raw.supervisors, &programs);
        if let Some(observation) = &self.last.observation {
            let busy = self.jobs.nodes();
            self.reaction.watch_silence(
                observation
                    .nodes
                    .iter()
                    .filter(|node| !node.busy && !busy.contains(&node.name))
                    .filter_map(|node| node.silent_for),
                self.rt.config.thresholds.hang_timeout,
            );
        }
        if let Some(want) = self.reaction.take_pending() {
            self.start_round(want);
        }
    }

    /// PoolTool: the best in-sync node's tip; the leader's logs for the slots of the epoch.
    fn report_to_pooltool(&mut self, observation: &Observation, facts: &PoolFacts) {
        let Some(reporter) = &mut self.rt.reporter else {
            return;
        };
        let tip = facts
            .nodes
            .iter()
            .zip(&observation.nodes)
            .filter(|(f, _)| f.in_sync)
            .filter_map(|(f, seen)| match &seen.probe {
                Some(Ok(status)) if status.state == NodeState::Running => {
                    f.height.map(|height| (height, seen, status))
                }
                _ => None,
            })
            .max_by_key(|(height, _, _)| *height)
            .and_then(|(_, seen, status)| {
                // PoolTool follows Jormungandr pools only.
                let settings = self.rt.config.node(&seen.name)?.jormungandr()?;
                Some(TipInput {
                    rest_url: settings.rest_url.clone(),
                    status: status.clone(),
                })
            });
        let slots = self.observer.chain_time.and_then(|clock| {
            let leader = self.policy.leadership.leader.as_ref()?;
            let logs = self.observer.logs.get(leader)?;
            Some(SlotsInput {
                clock,
                logs: logs.clone(),
            })
        });
        reporter.poll(observation.now, tip, slots);
    }

    /// The reference feed: a finished fetch is recorded; a new one starts when due.
    fn poll_reference(&mut self, now: SystemTime) {
        let Some(feed) = &mut self.rt.reference else {
            return;
        };
        if let Some(fetch) = &mut feed.fetch {
            match fetch.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => {}
                Err(oneshot::error::TryRecvError::Closed) => feed.fetch = None,
                Ok(result) => {
                    feed.fetch = None;
                    match &result {
                        Err(e) if feed.tracker.consecutive_failures() == 0 => warn!(
                            "reference tip unavailable ({e}); peers alone decide until it is back"
                        ),
                        Ok(_) if feed.tracker.consecutive_failures() > 0 => {
                            info!("reference tip available again");
                        }
                        _ => {}
                    }
                    feed.tracker.record(now, result);
                }
            }
        }
        if feed.fetch.is_none() && feed.tracker.due(now) {
            let source = feed.source.clone();
            let (sender, receiver) = oneshot::channel();
            tokio::spawn(async move {
                let _ = sender.send(source.fetch(now).await);
            });
            feed.fetch = Some(receiver);
        }
    }
}

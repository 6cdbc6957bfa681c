//! What happened, as the daemon reports it to whoever listens (email and the alert channels).
//! Events are plain data; sending them never blocks the control loop.

use std::time::Duration;

use serde::Serialize;

/// Something an operator wants to hear about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A node was started or restarted by a rule.
    NodeRestarted {
        /// The node.
        node: String,
        /// The rule's stable label: `crashed`, `hung`, `stale_tip`, `lag`, `bootstrap_timeout`,
        /// `all_down`, `stopped`, `retry`, `operator` (and later `schedule_refresh`).
        reason: String,
        /// The reason in words, as in the restart log.
        detail: String,
        /// True for a restart (stop + start), false for a start.
        restart: bool,
    },
    /// A node was started with its default (fallback) config: no sibling to sync from.
    FallbackConfigUsed {
        /// The node.
        node: String,
    },
    /// No node was up: all are being started.
    AllNodesDown {
        /// How many nodes.
        nodes: usize,
    },
    /// A node is held (left alone) until an operator releases it.
    NodeHeld {
        /// The node.
        node: String,
        /// Why, in words.
        reason: String,
    },
    /// A node restarted by nodekeeper is back in sync.
    NodeRecovered {
        /// The node.
        node: String,
    },
    /// A supervisord could not be asked; nothing is done to its nodes until it answers.
    SupervisorUnreachable {
        /// The supervisord's name (`default` or `[supervisors.NAME]`).
        supervisor: String,
        /// Why.
        error: String,
    },
    /// A supervisord answers again.
    SupervisorBack {
        /// The supervisord's name.
        supervisor: String,
        /// How long it was unreachable.
        #[serde(with = "crate::config::duration")]
        after: Duration,
    },
    /// A changed configuration was rejected; the running one is kept.
    ConfigReloadRejected {
        /// Every problem, one per line.
        errors: String,
    },
    /// The pool's leader key moved to `node` (demoted, verified, promoted).
    LeaderSwitched {
        /// The new leader.
        node: String,
        /// The node that held it before, if any.
        previous: Option<String>,
        /// Why, in words.
        reason: String,
        /// The epoch.
        epoch: u64,
    },
    /// The leader's schedule of an epoch is known.
    SlotsAssigned {
        /// The leader it was read from.
        node: String,
        /// The epoch.
        epoch: u64,
        /// One line per slot: `epoch.slot at time`.
        slots: Vec<String>,
    },
    /// A node's KES key runs out soon: fewer periods left on its operational certificate than
    /// `leadership.kes_alert_periods` (said again each period less).
    KesExpiring {
        /// The node.
        node: String,
        /// KES periods left (`remainingKESPeriods`).
        periods: u64,
        /// `leadership.kes_alert_periods`.
        threshold: u64,
        /// Roughly the seconds left (periods × `slotsPerKESPeriod` × `slotLength`), when the
        /// genesis is known.
        time_left_secs: Option<u64>,
    },
    /// A node said to run low reports at least the threshold again: a new operational certificate.
    KesRenewed {
        /// The node.
        node: String,
        /// KES periods left.
        periods: u64,
        /// Roughly the seconds left, when the genesis is known.
        time_left_secs: Option<u64>,
    },
    /// A node's data was archived (`[backup]`): the node was stopped for it and started again.
    BackupDone {
        /// The node.
        node: String,
        /// The archive written (its path).
        archive: String,
        /// The node's height when it was stopped, if known.
        height: Option<u64>,
        /// The archive's size in bytes.
        bytes: u64,
        /// How long archiving took (the node's downtime, less its stop and start).
        #[serde(with = "crate::config::duration")]
        took: Duration,
        /// True for a scheduled backup, false for one an operator asked for.
        scheduled: bool,
    },
    /// A backup of a node failed; the node was started again on its data as it was.
    BackupFailed {
        /// The node.
        node: String,
        /// Why, in words.
        error: String,
        /// True for a scheduled backup.
        scheduled: bool,
    },
    /// A node's data was replaced by an archive's.
    NodeRestored {
        /// The node.
        node: String,
        /// The archive restored from (its path).
        archive: String,
        /// Why, in words: an operator's request, or the corruption found.
        reason: String,
        /// True when nodekeeper restored it on its own (a corrupt database).
        automatic: bool,
    },
    /// A restore of a node failed.
    RestoreFailed {
        /// The node.
        node: String,
        /// Why, in words.
        error: String,
        /// True when nodekeeper attempted it on its own.
        automatic: bool,
    },
}

impl Event {
    /// A stable name per kind (templates are chosen by it; reasons refine `node_restarted`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::NodeRestarted { .. } => "node_restarted",
            Event::FallbackConfigUsed { .. } => "fallback_config_used",
            Event::AllNodesDown { .. } => "all_nodes_down",
            Event::NodeHeld { .. } => "node_held",
            Event::NodeRecovered { .. } => "node_recovered",
            Event::SupervisorUnreachable { .. } => "supervisor_unreachable",
            Event::SupervisorBack { .. } => "supervisor_back",
            Event::ConfigReloadRejected { .. } => "config_reload_rejected",
            Event::LeaderSwitched { .. } => "leader_switched",
            Event::SlotsAssigned { .. } => "slots_assigned",
            Event::KesExpiring { .. } => "kes_expiring",
            Event::KesRenewed { .. } => "kes_renewed",
            Event::BackupDone { .. } => "backup_done",
            Event::BackupFailed { .. } => "backup_failed",
            Event::NodeRestored { .. } => "node_restored",
            Event::RestoreFailed { .. } => "restore_failed",
        }
    }

    /// The node it is about, if any (the unit of deduplication with the kind).
    pub fn node(&self) -> Option<&str> {
        match self {
            Event::NodeRestarted { node, .. }
            | Event::FallbackConfigUsed { node }
            | Event::NodeHeld { node, .. }
            | Event::NodeRecovered { node }
            | Event::KesExpiring { node, .. }
            | Event::KesRenewed { node, .. }
            | Event::BackupDone { node, .. }
            | Event::BackupFailed { node, .. }
            | Event::NodeRestored { node, .. }
            | Event::RestoreFailed { node, .. } => Some(node),
            Event::SupervisorUnreachable { supervisor, .. }
            | Event::SupervisorBack { supervisor, .. } => Some(supervisor),
            Event::AllNodesDown { .. }
            | Event::ConfigReloadRejected { .. }
            | Event::LeaderSwitched { .. }
            | Event::SlotsAssigned { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_and_restore_events_have_their_kind_node_and_json_tag() {
        let events = [
            (
                Event::BackupDone {
                    node: "bp1".into(),
                    archive: "/b/bp1.tar.zst".into(),
                    height: Some(42),
                    bytes: 123_000_000,
                    took: Duration::from_millis(4_200),
                    scheduled: true,
                },
                "backup_done",
            ),
            (
                Event::BackupFailed {
                    node: "bp1".into(),
                    error: "disk full".into(),
                    scheduled: false,
                },
                "backup_failed",
            ),
            (
                Event::NodeRestored {
                    node: "bp1".into(),
                    archive: "/b/bp1.tar.zst".into(),
                    reason: "operator request".into(),
                    automatic: false,
                },
                "node_restored",
            ),
            (
                Event::RestoreFailed {
                    node: "bp1".into(),
                    error: "no archive".into(),
                    automatic: true,
                },
                "restore_failed",
            ),
        ];
        for (event, kind) in events {
            assert_eq!(event.kind(), kind);
            // The name a channel's `events = [...]` filter accepts.
            assert!(crate::alert::routing::EVENT_NAMES.contains(&kind), "{kind}");
            assert_eq!(event.node(), Some("bp1"));
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["event"], kind, "{json}");
            assert_eq!(json["node"], "bp1", "{json}");
        }
        let done = Event::BackupDone {
            node: "bp1".into(),
            archive: "/b/x".into(),
            height: None,
            bytes: 1,
            took: Duration::from_secs(65),
            scheduled: true,
        };
        assert_eq!(serde_json::to_value(&done).unwrap()["took"], "1m 5s");
    }
}

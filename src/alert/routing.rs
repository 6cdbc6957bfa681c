//! Severity and routing, pure: the event an alert reports (`event_of` its template), that event's
//! severity (`severity_of`, the table the README shows), and a channel's `Filter` (its `events`
//! and `min_severity`). Nothing here sends or reads the configuration.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::catalog::TemplateName;

/// How much an event matters; ordered `Info < Warning < Critical`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Good news or a fact: something recovered, a schedule is known, a test.
    #[default]
    Info,
    /// nodekeeper acted, or something needs a look soon.
    Warning,
    /// The pool may not produce, or nodekeeper cannot act, until someone steps in.
    Critical,
}

impl Severity {
    /// `info`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Every event name a channel's `events` may list (`Event::kind`, and `test`).
pub const EVENT_NAMES: [&str; 17] = [
    "node_restarted",
    "fallback_config_used",
    "all_nodes_down",
    "node_held",
    "node_recovered",
    "supervisor_unreachable",
    "supervisor_back",
    "config_reload_rejected",
    "leader_switched",
    "slots_assigned",
    "kes_expiring",
    "kes_renewed",
    "backup_done",
    "backup_failed",
    "node_restored",
    "restore_failed",
    "test",
];

/// The event (`Event::kind`) an alert of `template` reports; `test` for the test alert.
pub fn event_of(template: TemplateName) -> &'static str {
    use TemplateName::*;
    match template {
        RestartCrashed
        | RestartHung
        | RestartStaleTip
        | RestartLag
        | RestartBootstrapTimeout
        | RestartScheduleRefresh
        | RestartOther => "node_restarted",
        FallbackConfigUsed => "fallback_config_used",
        AllNodesDown => "all_nodes_down",
        NodeHeld => "node_held",
        NodeRecovered => "node_recovered",
        LeaderSwitched => "leader_switched",
        SlotsAssigned => "slots_assigned",
        SupervisorUnreachable => "supervisor_unreachable",
        SupervisorBack => "supervisor_back",
        ConfigReloadRejected => "config_reload_rejected",
        KesExpiring => "kes_expiring",
        KesRenewed => "kes_renewed",
        BackupDone => "backup_done",
        BackupFailed => "backup_failed",
        NodeRestored => "node_restored",
        RestoreFailed => "restore_failed",
        Test => "test",
    }
}

/// The severity of `event` (an `EVENT_NAMES` entry; anything else is a warning).
pub fn severity_of(event: &str) -> Severity {
    match event {
        "all_nodes_down"
        | "node_held"
        | "supervisor_unreachable"
        | "kes_expiring"
        | "backup_failed"
        | "restore_failed" => Severity::Critical,
        "node_recovered" | "supervisor_back" | "slots_assigned" | "kes_renewed" | "backup_done"
        | "test" => Severity::Info,
        _ => Severity::Warning,
    }
}

/// What a channel lets through: the events it lists (all when empty) at `min_severity` or above.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Event names; empty: every event.
    pub events: BTreeSet<String>,
    /// The least severity delivered.
    pub min_severity: Severity,
}

impl Filter {
    /// Everything (email, and a channel without filters).
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Whether an alert of `template` passes.
    pub fn admits(&self, template: TemplateName) -> bool {
        let event = event_of(template);
        (self.events.is_empty() || self.events.contains(event))
            && severity_of(event) >= self.min_severity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_reports_a_known_event_and_every_event_has_a_template() {
        let reported: BTreeSet<&str> = TemplateName::ALL.iter().map(|t| event_of(*t)).collect();
        let known: BTreeSet<&str> = EVENT_NAMES.into_iter().collect();
        assert_eq!(reported, known);
    }

    #[test]
    fn the_severity_table() {
        assert_eq!(severity_of("all_nodes_down"), Severity::Critical);
        assert_eq!(severity_of("node_restarted"), Severity::Warning);
        assert_eq!(severity_of("supervisor_back"), Severity::Info);
        assert_eq!(severity_of("backup_done"), Severity::Info);
        assert_eq!(severity_of("node_restored"), Severity::Warning);
        assert_eq!(severity_of("backup_failed"), Severity::Critical);
        assert_eq!(severity_of("restore_failed"), Severity::Critical);
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
    }

    #[test]
    fn a_filter_lets_through_its_events_at_its_severity_or_above() {
        use TemplateName::*;
        assert!(Filter::all().admits(SlotsAssigned));
        let critical = Filter {
            events: BTreeSet::new(),
            min_severity: Severity::Warning,
        };
        assert!(critical.admits(RestartLag) && critical.admits(NodeHeld));
        assert!(!critical.admits(NodeRecovered));
        let restarts = Filter {
            events: ["node_restarted".to_string()].into(),
            min_severity: Severity::Info,
        };
        assert!(restarts.admits(RestartCrashed) && restarts.admits(RestartOther));
        assert!(!restarts.admits(NodeHeld));
        // Backups by name: a channel for the failures only, and one at critical for everything.
        let backups = Filter {
            events: ["backup_failed".to_string(), "restore_failed".to_string()].into(),
            min_severity: Severity::Info,
        };
        assert!(backups.admits(BackupFailed) && backups.admits(RestoreFailed));
        assert!(!backups.admits(BackupDone) && !backups.admits(NodeRestored));
        let critical_only = Filter {
            events: BTreeSet::new(),
            min_severity: Severity::Critical,
        };
        assert!(critical_only.admits(BackupFailed) && critical_only.admits(RestoreFailed));
        assert!(!critical_only.admits(NodeRestored) && !critical_only.admits(BackupDone));
    }
}

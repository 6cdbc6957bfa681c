//! The alert templates nodekeeper knows: their names, the placeholders each one may use, jmanager's
//! names for some of them, and the shipped defaults (`configs/templates/NAME.txt`, embedded in the
//! binary so the daemon needs no templates directory).

use std::fmt;

/// Placeholders every template may use.
pub const COMMON_PLACEHOLDERS: &[&str] = &["timestamp", "host", "suppressed", "window"];

/// One alert template (a subject and a body), chosen by the event and, for restarts, the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TemplateName {
    /// A crashed program (EXITED, FATAL, BACKOFF) was started.
    RestartCrashed,
    /// A node whose REST API failed repeatedly was restarted.
    RestartHung,
    /// A node whose tip did not move for `tip_timeout` was restarted.
    RestartStaleTip,
    /// A node too far behind the reference was restarted.
    RestartLag,
    /// A node bootstrapping longer than `bootstrap_timeout` was restarted.
    RestartBootstrapTimeout,
    /// A node was restarted to fetch the new epoch's leader schedule (leadership).
    RestartScheduleRefresh,
    /// A start or restart for another reason (stopped, retry, operator).
    RestartOther,
    /// A node was started with its default (fallback) config.
    FallbackConfigUsed,
    /// No node was up; all are being started.
    AllNodesDown,
    /// A node is held (restart storm, or an operator) until released.
    NodeHeld,
    /// A node restarted by nodekeeper is back in sync.
    NodeRecovered,
    /// The leader key moved to another node (leadership).
    LeaderSwitched,
    /// The pool's slots for an epoch are known (leadership).
    SlotsAssigned,
    /// A supervisord stopped answering.
    SupervisorUnreachable,
    /// A supervisord answers again.
    SupervisorBack,
    /// A changed configuration was rejected.
    ConfigReloadRejected,
    /// A node's KES key runs out soon (cardano).
    KesExpiring,
    /// A node's KES key was renewed (a new operational certificate).
    KesRenewed,
    /// A node's data was archived.
    BackupDone,
    /// A backup of a node failed.
    BackupFailed,
    /// A node's data was restored from an archive.
    NodeRestored,
    /// A restore of a node failed.
    RestoreFailed,
    /// `nodekeeper alert test`.
    Test,
}

impl TemplateName {
    /// Every template, in a stable order.
    pub const ALL: [TemplateName; 23] = [
        TemplateName::RestartCrashed,
        TemplateName::RestartHung,
        TemplateName::RestartStaleTip,
        TemplateName::RestartLag,
        TemplateName::RestartBootstrapTimeout,
        TemplateName::RestartScheduleRefresh,
        TemplateName::RestartOther,
        TemplateName::FallbackConfigUsed,
        TemplateName::AllNodesDown,
        TemplateName::NodeHeld,
        TemplateName::NodeRecovered,
        TemplateName::LeaderSwitched,
        TemplateName::SlotsAssigned,
        TemplateName::SupervisorUnreachable,
        TemplateName::SupervisorBack,
        TemplateName::ConfigReloadRejected,
        TemplateName::KesExpiring,
        TemplateName::KesRenewed,
        TemplateName::BackupDone,
        TemplateName::BackupFailed,
        TemplateName::NodeRestored,
        TemplateName::RestoreFailed,
        TemplateName::Test,
    ];

    /// The name of the file (`NAME.txt`) and of the `email.templates.NAME` key.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateName::RestartCrashed => "restart_crashed",
            TemplateName::RestartHung => "restart_hung",
            TemplateName::RestartStaleTip => "restart_stale_tip",
            TemplateName::RestartLag => "restart_lag",
            TemplateName::RestartBootstrapTimeout => "restart_bootstrap_timeout",
            TemplateName::RestartScheduleRefresh => "restart_schedule_refresh",
            TemplateName::RestartOther => "restart_other",
            TemplateName::FallbackConfigUsed => "fallback_config_used",
            TemplateName::AllNodesDown => "all_nodes_down",
            TemplateName::NodeHeld => "node_held",
            TemplateName::NodeRecovered => "node_recovered",
            TemplateName::LeaderSwitched => "leader_switched",
            TemplateName::SlotsAssigned => "slots_assigned",
            TemplateName::SupervisorUnreachable => "supervisor_unreachable",
            TemplateName::SupervisorBack => "supervisor_back",
            TemplateName::ConfigReloadRejected => "config_reload_rejected",
            TemplateName::KesExpiring => "kes_expiring",
            TemplateName::KesRenewed => "kes_renewed",
            TemplateName::BackupDone => "backup_done",
            TemplateName::BackupFailed => "backup_failed",
            TemplateName::NodeRestored => "node_restored",
            TemplateName::RestoreFailed => "restore_failed",
            TemplateName::Test => "test",
        }
    }

    /// The placeholders of this template besides [`COMMON_PLACEHOLDERS`].
    pub fn own_placeholders(self) -> &'static [&'static str] {
        const RESTART: &[&str] = &["node_name", "reason", "detail", "action"];
        const RESTART_TIMEOUT: &[&str] = &["node_name", "reason", "detail", "action", "timeout"];
        match self {
            TemplateName::RestartStaleTip
            | TemplateName::RestartLag
            | TemplateName::RestartBootstrapTimeout => RESTART_TIMEOUT,
            TemplateName::RestartCrashed
            | TemplateName::RestartHung
            | TemplateName::RestartScheduleRefresh
            | TemplateName::RestartOther => RESTART,
            TemplateName::FallbackConfigUsed | TemplateName::NodeRecovered => &["node_name"],
            TemplateName::AllNodesDown => &["nodes"],
            TemplateName::NodeHeld => &["node_name", "reason"],
            TemplateName::LeaderSwitched => &[
                "node_name",
                "previous",
                "reason",
                "epoch",
                "role",
                "key",
                "epoch_name",
            ],
            TemplateName::SlotsAssigned => &[
                "node_name",
                "epoch",
                "slots_count",
                "slots",
                "epoch_name",
                "slot_name",
            ],
            TemplateName::SupervisorUnreachable => &["supervisor", "error"],
            TemplateName::SupervisorBack => &["supervisor", "after"],
            TemplateName::ConfigReloadRejected => &["errors"],
            TemplateName::KesExpiring => &["node_name", "periods", "threshold", "time_left"],
            TemplateName::KesRenewed => &["node_name", "periods", "time_left"],
            TemplateName::BackupDone => {
                &["node_name", "archive", "height", "size", "took", "trigger"]
            }
            TemplateName::BackupFailed | TemplateName::RestoreFailed => {
                &["node_name", "error", "trigger"]
            }
            TemplateName::NodeRestored => &["node_name", "archive", "reason", "trigger"],
            TemplateName::Test => &["server"],
        }
    }

    /// Every placeholder this template may use: the common ones, then its own.
    pub fn placeholders(self) -> Vec<&'static str> {
        COMMON_PLACEHOLDERS
            .iter()
            .chain(self.own_placeholders())
            .copied()
            .collect()
    }

    /// The shipped default, `configs/templates/NAME.txt`.
    pub fn shipped(self) -> &'static str {
        match self {
            TemplateName::RestartCrashed => {
                include_str!("../../configs/templates/restart_crashed.txt")
            }
            TemplateName::RestartHung => include_str!("../../configs/templates/restart_hung.txt"),
            TemplateName::RestartStaleTip => {
                include_str!("../../configs/templates/restart_stale_tip.txt")
            }
            TemplateName::RestartLag => include_str!("../../configs/templates/restart_lag.txt"),
            TemplateName::RestartBootstrapTimeout => {
                include_str!("../../configs/templates/restart_bootstrap_timeout.txt")
            }
            TemplateName::RestartScheduleRefresh => {
                include_str!("../../configs/templates/restart_schedule_refresh.txt")
            }
            TemplateName::RestartOther => {
                include_str!("../../configs/templates/restart_other.txt")
            }
            TemplateName::FallbackConfigUsed => {
                include_str!("../../configs/templates/fallback_config_used.txt")
            }
            TemplateName::AllNodesDown => {
                include_str!("../../configs/templates/all_nodes_down.txt")
            }
            TemplateName::NodeHeld => include_str!("../../configs/templates/node_held.txt"),
            TemplateName::NodeRecovered => {
                include_str!("../../configs/templates/node_recovered.txt")
            }
            TemplateName::LeaderSwitched => {
                include_str!("../../configs/templates/leader_switched.txt")
            }
            TemplateName::SlotsAssigned => {
                include_str!("../../configs/templates/slots_assigned.txt")
            }
            TemplateName::SupervisorUnreachable => {
                include_str!("../../configs/templates/supervisor_unreachable.txt")
            }
            TemplateName::SupervisorBack => {
                include_str!("../../configs/templates/supervisor_back.txt")
            }
            TemplateName::ConfigReloadRejected => {
                include_str!("../../configs/templates/config_reload_rejected.txt")
            }
            TemplateName::KesExpiring => include_str!("../../configs/templates/kes_expiring.txt"),
            TemplateName::KesRenewed => include_str!("../../configs/templates/kes_renewed.txt"),
            TemplateName::BackupDone => include_str!("../../configs/templates/backup_done.txt"),
            TemplateName::BackupFailed => {
                include_str!("../../configs/templates/backup_failed.txt")
            }
            TemplateName::NodeRestored => {
                include_str!("../../configs/templates/node_restored.txt")
            }
            TemplateName::RestoreFailed => {
                include_str!("../../configs/templates/restore_failed.txt")
            }
            TemplateName::Test => include_str!("../../configs/templates/test.txt"),
        }
    }

    /// The template called `name`, if nodekeeper has one (jmanager's names are not here: see
    /// [`targets`]).
    pub fn parse(name: &str) -> Option<TemplateName> {
        TemplateName::ALL
            .into_iter()
            .find(|template| template.as_str() == name)
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// jmanager's template names and the templates each one stands for: `stuck` was its mail for a
/// node that stopped moving (nodekeeper's stale tip and lag), `bootstrap_restart` for a bootstrap
/// that took too long.
pub const JMANAGER_NAMES: &[(&str, &[TemplateName])] = &[
    (
        "stuck",
        &[TemplateName::RestartStaleTip, TemplateName::RestartLag],
    ),
    (
        "bootstrap_restart",
        &[TemplateName::RestartBootstrapTimeout],
    ),
];

/// The templates a file or key called `name` sets: itself, or what a jmanager name stands for.
/// Empty when the name is unknown.
pub fn targets(name: &str) -> Vec<TemplateName> {
    if let Some(template) = TemplateName::parse(name) {
        return vec![template];
    }
    JMANAGER_NAMES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, targets)| targets.to_vec())
        .unwrap_or_default()
}

/// Every name [`targets`] accepts, for messages.
pub fn known_names() -> Vec<&'static str> {
    TemplateName::ALL
        .iter()
        .map(|template| template.as_str())
        .chain(JMANAGER_NAMES.iter().map(|(alias, _)| *alias))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for template in TemplateName::ALL {
            assert_eq!(TemplateName::parse(template.as_str()), Some(template));
        }
        let mut names = known_names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TemplateName::ALL.len() + JMANAGER_NAMES.len());
    }

    #[test]
    fn jmanager_names_map_onto_ours() {
        assert_eq!(
            targets("stuck"),
            [TemplateName::RestartStaleTip, TemplateName::RestartLag]
        );
        assert_eq!(
            targets("bootstrap_restart"),
            [TemplateName::RestartBootstrapTimeout]
        );
        // jmanager's `slots_assigned` is ours under the same name, with the same placeholders.
        assert_eq!(targets("slots_assigned"), [TemplateName::SlotsAssigned]);
        for jmanager in ["timestamp", "node_name", "slots_count", "slots"] {
            assert!(
                TemplateName::SlotsAssigned
                    .placeholders()
                    .contains(&jmanager)
            );
        }
        for jmanager in ["timestamp", "node_name", "timeout"] {
            for template in targets("stuck")
                .into_iter()
                .chain(targets("bootstrap_restart"))
            {
                assert!(template.placeholders().contains(&jmanager), "{template}");
            }
        }
        assert!(targets("leader").is_empty());
    }

    #[test]
    fn the_templates_readme_lists_every_template_with_its_placeholders() {
        let readme = include_str!("../../configs/templates/README.md");
        for template in TemplateName::ALL {
            let placeholders = template
                .own_placeholders()
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let row = readme
                .lines()
                .find(|line| line.starts_with(&format!("| `{template}` |")))
                .unwrap_or_else(|| panic!("no row for {template} in configs/templates/README.md"));
            assert!(
                row.ends_with(&format!("| {placeholders} |")),
                "configs/templates/README.md, {template}: expected {placeholders}, got {row}"
            );
        }
        for common in COMMON_PLACEHOLDERS {
            assert!(readme.contains(&format!("`{common}`")), "{common}");
        }
    }
}

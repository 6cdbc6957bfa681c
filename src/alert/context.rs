//! From an `Event` to an `Alert`: which template, what it is about (the unit of deduplication
//! with the template) and the value of every placeholder. Pure: the time and the facts the event
//! does not carry (host name, thresholds) are arguments.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::catalog::TemplateName;
use super::template::Values;
use crate::chain::ChainName;
use crate::events::Event;

/// What the placeholders need beyond the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The host nodekeeper runs on (`{{host}}`).
    pub host: String,
    /// `thresholds.tip_timeout` (`{{timeout}}` of stale tip and lag, in minutes as jmanager's).
    pub tip_timeout: Duration,
    /// `thresholds.bootstrap_timeout` (`{{timeout}}` of bootstrap timeout, in minutes).
    pub bootstrap_timeout: Duration,
    /// `email.dedupe_window` (`{{window}}`).
    pub dedupe_window: Duration,
    /// The pool's chain, whose words name the role and the epoch (`{{role}}`, `{{key}}`,
    /// `{{epoch_name}}`, `{{slot_name}}`).
    pub chain: ChainName,
}

impl Facts {
    /// The facts of these settings, on this host.
    pub fn on_this_host(
        tip_timeout: Duration,
        bootstrap_timeout: Duration,
        dedupe_window: Duration,
    ) -> Facts {
        Facts {
            host: host_name(),
            tip_timeout,
            bootstrap_timeout,
            dedupe_window,
            chain: ChainName::default(),
        }
    }

    /// The same facts for a pool of `chain`.
    pub fn for_chain(self, chain: ChainName) -> Facts {
        Facts { chain, ..self }
    }

    /// Facts for tests: host `testhost`, the default thresholds and window.
    pub fn test() -> Facts {
        Facts {
            host: "testhost".into(),
            tip_timeout: Duration::from_secs(90),
            bootstrap_timeout: Duration::from_secs(650),
            dedupe_window: Duration::from_secs(15 * 60),
            chain: ChainName::default(),
        }
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `/etc/hostname`), or `localhost`.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_string())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// One alert to mail.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The template it is rendered with.
    pub template: TemplateName,
    /// The node or supervisord it is about, if any: with the template, the unit of deduplication.
    pub about: Option<String>,
    /// Every placeholder's value.
    pub values: Values,
}

impl Alert {
    /// A new alert with the common placeholders set (`suppressed` is 0 until the worker counts).
    fn new(template: TemplateName, about: Option<&str>, facts: &Facts, now: SystemTime) -> Alert {
        let mut values = Values::new();
        values.insert("timestamp", Value::from(timestamp(now)));
        values.insert("host", Value::from(facts.host.clone()));
        values.insert("suppressed", Value::from(0u32));
        values.insert("window", Value::from(duration(facts.dedupe_window)));
        Alert {
            template,
            about: about.map(str::to_string),
            values,
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<Value>) -> Alert {
        self.values.insert(name, value.into());
        self
    }

    /// The alert for `event`, or `None` for an event that is not mailed: the start of each node
    /// in an all-down episode (the one `all_nodes_down` mail says it).
    pub fn from_event(event: &Event, facts: &Facts, now: SystemTime) -> Option<Alert> {
        let alert = match event {
            Event::NodeRestarted {
                node,
                reason,
                detail,
                restart,
            } => {
                let (template, timeout) = match reason.as_str() {
                    "crashed" => (TemplateName::RestartCrashed, None),
                    "hung" => (TemplateName::RestartHung, None),
                    "stale_tip" => (TemplateName::RestartStaleTip, Some(facts.tip_timeout)),
                    "lag" => (TemplateName::RestartLag, Some(facts.tip_timeout)),
                    "bootstrap_timeout" => (
                        TemplateName::RestartBootstrapTimeout,
                        Some(facts.bootstrap_timeout),
                    ),
                    "schedule_refresh" => (TemplateName::RestartScheduleRefresh, None),
                    "all_down" => return None,
                    _ => (TemplateName::RestartOther, None),
                };
                let alert = Alert::new(template, Some(node), facts, now)
                    .with("node_name", node.as_str())
                    .with("reason", reason.as_str())
                    .with("detail", detail.as_str())
                    .with("action", if *restart { "restarted" } else { "started" });
                match timeout {
                    Some(timeout) => alert.with("timeout", minutes(timeout)),
                    None => alert,
                }
            }
            Event::FallbackConfigUsed { node } => {
                Alert::new(TemplateName::FallbackConfigUsed, Some(node), facts, now)
                    .with("node_name", node.as_str())
            }
            Event::AllNodesDown { nodes } => {
                Alert::new(TemplateName::AllNodesDown, None, facts, now).with("nodes", *nodes)
            }
            Event::NodeHeld { node, reason } => {
                Alert::new(TemplateName::NodeHeld, Some(node), facts, now)
                    .with("node_name", node.as_str())
                    .with("reason", reason.as_str())
            }
            Event::NodeRecovered { node } => {
                Alert::new(TemplateName::NodeRecovered, Some(node), facts, now)
                    .with("node_name", node.as_str())
            }
            Event::SupervisorUnreachable { supervisor, error } => Alert::new(
                TemplateName::SupervisorUnreachable,
                Some(supervisor),
                facts,
                now,
            )
            .with("supervisor", supervisor.as_str())
            .with("error", error.as_str()),
            Event::SupervisorBack { supervisor, after } => {
                Alert::new(TemplateName::SupervisorBack, Some(supervisor), facts, now)
                    .with("supervisor", supervisor.as_str())
                    .with("after", duration(*after))
            }
            Event::ConfigReloadRejected { errors } => {
                Alert::new(TemplateName::ConfigReloadRejected, None, facts, now)
                    .with("errors", errors.as_str())
            }
            Event::LeaderSwitched {
                node,
                previous,
                reason,
                epoch,
            } => Alert::leader_switched(node, previous.as_deref(), reason, *epoch, facts, now),
            Event::SlotsAssigned { node, epoch, slots } => {
                Alert::slots_assigned(node, *epoch, slots, facts, now)
            }
            Event::KesExpiring {
                node,
                periods,
                threshold,
                time_left_secs,
            } => Alert::new(TemplateName::KesExpiring, Some(node), facts, now)
                .with("node_name", node.as_str())
                .with("periods", *periods)
                .with("threshold", *threshold)
                .with("time_left", time_left(*time_left_secs)),
            Event::KesRenewed {
                node,
                periods,
                time_left_secs,
            } => Alert::new(TemplateName::KesRenewed, Some(node), facts, now)
                .with("node_name", node.as_str())
                .with("periods", *periods)
                .with("time_left", time_left(*time_left_secs)),
            Event::BackupDone {
                node,
                archive,
                height,
                bytes,
                took,
                scheduled,
            } => Alert::new(TemplateName::BackupDone, Some(node), facts, now)
                .with("node_name", node.as_str())
                .with("archive", archive.as_str())
                .with(
                    "height",
                    height.map_or_else(|| "unknown".to_string(), |h| h.to_string()),
                )
                .with("size", size(*bytes))
                .with("took", duration(*took))
                .with("trigger", trigger(*scheduled, "scheduled")),
            Event::BackupFailed {
                node,
                error,
                scheduled,
            } => Alert::new(TemplateName::BackupFailed, Some(node), facts, now)
                .with("node_name", node.as_str())
                .with("error", error.as_str())
                .with("trigger", trigger(*scheduled, "scheduled")),
            Event::NodeRestored {
                node,
                archive,
                reason,
                automatic,
            } => Alert::new(TemplateName::NodeRestored, Some(node), facts, now)
                .with("node_name", node.as_str())
                .with("archive", archive.as_str())
                .with("reason", reason.as_str())
                .with("trigger", trigger(*automatic, "automatic")),
            Event::RestoreFailed {
                node,
                error,
                automatic,
            } => Alert::new(TemplateName::RestoreFailed, Some(node), facts, now)
                .with("node_name", node.as_str())
                .with("error", error.as_str())
                .with("trigger", trigger(*automatic, "automatic")),
        };
        Some(alert)
    }

    /// The leader key moved to `node` (from `previous`, if one held it) for `reason`, in `epoch`.
    pub fn leader_switched(
        node: &str,
        previous: Option<&str>,
        reason: &str,
        epoch: u64,
        facts: &Facts,
        now: SystemTime,
    ) -> Alert {
        Alert::new(TemplateName::LeaderSwitched, None, facts, now)
            .with("node_name", node)
            .with("previous", previous.unwrap_or_default())
            .with("reason", reason)
            .with("epoch", epoch)
            .with("role", facts.chain.holder())
            .with("key", facts.chain.key())
            .with("epoch_name", facts.chain.epoch())
    }

    /// The pool leads `slots` (one line each, e.g. `epoch.slot at time`) in `epoch`, on `node`.
    pub fn slots_assigned(
        node: &str,
        epoch: u64,
        slots: &[String],
        facts: &Facts,
        now: SystemTime,
    ) -> Alert {
        Alert::new(
            TemplateName::SlotsAssigned,
            Some(&format!("epoch {epoch}")),
            facts,
            now,
        )
        .with("node_name", node)
        .with("epoch", epoch)
        .with("slots_count", slots.len())
        .with("slots", slots.join("\n"))
        .with("epoch_name", facts.chain.epoch())
        .with("slot_name", facts.chain.slot())
    }

    /// The mail of `nodekeeper alert test`, sent through `server`.
    pub fn test(server: &str, facts: &Facts, now: SystemTime) -> Alert {
        Alert::new(TemplateName::Test, None, facts, now).with("server", server)
    }
}

/// UTC, to the second: `2026-11-22 01:39:07 UTC`.
pub fn timestamp(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// Minutes as jmanager gave them (`tip_timeout / 60`): `1.5`, `10.8`, `15`.
pub fn minutes(duration: Duration) -> String {
    let tenths = (duration.as_secs_f64() / 6.0).round() as u64;
    if tenths.is_multiple_of(10) {
        (tenths / 10).to_string()
    } else {
        format!("{}.{}", tenths / 10, tenths % 10)
    }
}

/// Roughly how long a key lasts, from seconds: `about 21 days`, `about 36 hours`, `about 5
/// minutes`; `time left unknown` without a genesis to tell a KES period's length.
pub fn time_left(secs: Option<u64>) -> String {
    const HOUR: u64 = 3600;
    const DAY: u64 = 24 * HOUR;
    match secs {
        None => "time left unknown".into(),
        Some(secs) if secs >= 2 * DAY => format!("about {} days", (secs + DAY / 2) / DAY),
        Some(secs) if secs >= 2 * HOUR => format!("about {} hours", (secs + HOUR / 2) / HOUR),
        Some(secs) => format!("about {} minutes", secs.div_ceil(60)),
    }
}

/// Who started a backup or a restore: `own` (`scheduled`, `automatic`) when nodekeeper did on its
/// own, else `operator`.
fn trigger(by_itself: bool, own: &'static str) -> &'static str {
    if by_itself { own } else { "operator" }
}

/// A size in decimal units, as the restart log's backup rows give it: `512 B`, `4.2 MB`,
/// `123 MB`, `1.5 GB` (one decimal under 10).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 999.5 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 9.95 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// A duration to the second, as humans write it: `15m`, `2m 5s`.
pub fn duration(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_311_547)
    }

    fn restarted(reason: &str, restart: bool) -> Event {
        Event::NodeRestarted {
            node: "node3".into(),
            reason: reason.into(),
            detail: format!("{reason} (detail)"),
            restart,
        }
    }

    #[test]
    fn restarts_choose_their_template_by_reason() {
        let facts = Facts::test();
        let table = [
            ("crashed", Some(TemplateName::RestartCrashed)),
            ("hung", Some(TemplateName::RestartHung)),
            ("stale_tip", Some(TemplateName::RestartStaleTip)),
            ("lag", Some(TemplateName::RestartLag)),
            (
                "bootstrap_timeout",
                Some(TemplateName::RestartBootstrapTimeout),
            ),
            (
                "schedule_refresh",
                Some(TemplateName::RestartScheduleRefresh),
            ),
            ("stopped", Some(TemplateName::RestartOther)),
            ("retry", Some(TemplateName::RestartOther)),
            ("operator", Some(TemplateName::RestartOther)),
            ("something_new", Some(TemplateName::RestartOther)),
            ("all_down", None),
        ];
        for (reason, template) in table {
            let alert = Alert::from_event(&restarted(reason, true), &facts, at());
            assert_eq!(alert.as_ref().map(|a| a.template), template, "{reason}");
            if let Some(alert) = alert {
                assert_eq!(alert.about.as_deref(), Some("node3"));
                // Every value it sets is a placeholder of its template, and vice versa.
                let names: Vec<&str> = alert.values.keys().copied().collect();
                let mut expected = alert.template.placeholders();
                expected.sort_unstable();
                assert_eq!(names, expected, "{reason}");
            }
        }
    }

    #[test]
    fn every_event_sets_exactly_its_templates_placeholders() {
        let facts = Facts::test();
        let events = [
            restarted("crashed", false),
            Event::FallbackConfigUsed {
                node: "node1".into(),
            },
            Event::AllNodesDown { nodes: 3 },
            Event::NodeHeld {
                node: "node1".into(),
                reason: "restart storm".into(),
            },
            Event::NodeRecovered {
                node: "node1".into(),
            },
            Event::SupervisorUnreachable {
                supervisor: "default".into(),
                error: "connection refused".into(),
            },
            Event::SupervisorBack {
                supervisor: "default".into(),
                after: Duration::from_secs(125),
            },
            Event::ConfigReloadRejected {
                errors: "a\nb".into(),
            },
            Event::LeaderSwitched {
                node: "node2".into(),
                previous: Some("node1".into()),
                reason: "ahead".into(),
                epoch: 42,
            },
            Event::SlotsAssigned {
                node: "node1".into(),
                epoch: 42,
                slots: vec!["42.1".into()],
            },
            Event::KesExpiring {
                node: "bp1".into(),
                periods: 13,
                threshold: 14,
                time_left_secs: Some(13 * 129_600),
            },
            Event::KesRenewed {
                node: "bp1".into(),
                periods: 62,
                time_left_secs: None,
            },
            Event::BackupDone {
                node: "bp1".into(),
                archive: "/b/bp1.tar.zst".into(),
                height: None,
                bytes: 1,
                took: Duration::from_secs(4),
                scheduled: false,
            },
            Event::BackupFailed {
                node: "bp1".into(),
                error: "disk full".into(),
                scheduled: true,
            },
            Event::NodeRestored {
                node: "bp1".into(),
                archive: "/b/bp1.tar.zst".into(),
                reason: "operator request".into(),
                automatic: false,
            },
            Event::RestoreFailed {
                node: "bp1".into(),
                error: "no archive".into(),
                automatic: true,
            },
        ];
        let others = [Alert::test("smtp.example.org:465", &facts, at())];
        let alerts = events
            .iter()
            .map(|event| Alert::from_event(event, &facts, at()).expect("mailed"))
            .chain(others);
        for alert in alerts {
            let names: Vec<&str> = alert.values.keys().copied().collect();
            let mut expected = alert.template.placeholders();
            expected.sort_unstable();
            assert_eq!(names, expected, "{}", alert.template);
        }
    }

    #[test]
    fn values_are_formatted_for_people() {
        assert_eq!(timestamp(at()), "2026-11-22 01:39:07 UTC");
        assert_eq!(minutes(Duration::from_secs(90)), "1.5");
        assert_eq!(minutes(Duration::from_secs(650)), "10.8");
        assert_eq!(minutes(Duration::from_secs(900)), "15");
        assert_eq!(duration(Duration::from_millis(125_400)), "2m 5s");
        let alert =
            Alert::from_event(&restarted("stale_tip", true), &Facts::test(), at()).expect("mailed");
        assert_eq!(alert.values["timeout"], "1.5");
        assert_eq!(alert.values["action"], "restarted");
        assert_eq!(alert.values["window"], "15m");
        assert_eq!(alert.values["host"], "testhost");
        assert_eq!(time_left(Some(13 * 129_600)), "about 20 days");
        assert_eq!(time_left(Some(129_600)), "about 36 hours");
        assert_eq!(time_left(Some(61)), "about 2 minutes");
        assert_eq!(time_left(None), "time left unknown");
        for (bytes, text) in [
            (0, "0 B"),
            (999, "999 B"),
            (1_000, "1.0 kB"),
            (4_200_000, "4.2 MB"),
            (9_960_000, "10 MB"),
            (123_456_789, "123 MB"),
            (999_600_000, "1.0 GB"),
            (1_500_000_000_000, "1.5 TB"),
        ] {
            assert_eq!(size(bytes), text, "{bytes}");
        }
        assert_eq!(trigger(true, "scheduled"), "scheduled");
        assert_eq!(trigger(false, "automatic"), "operator");
    }
}

//! Forging keys that run out: when a node reports few key periods left (cardano-node's
//! `remainingKESPeriods` on its operational certificate), the alert, its repeats and its end.
//! Pure: what each node reported this tick (`NodeObservation::key_expiry`) in,
//! `Action::KeyExpiring` / `Action::KeyRenewed` out, with what was said per node kept in
//! `PolicyState::key_alerts`.
//!
//! The rule, per node that reports the metric (the forging node, and any other that loaded the
//! credentials since it started):
//! - under `kes_alert_periods` periods: reported once, then again each time it reports fewer
//!   periods than when it was last reported (a period less: every 36 h on mainnet, so about once a
//!   day and a half); a rise that stays under the threshold is not reported and changes nothing;
//! - at or over the threshold after a report: `KeyRenewed` once (a new operational certificate);
//! - a node that reports nothing this tick (down, silent, no credentials loaded) keeps what was
//!   said: neither a repeat nor a recovery until it reports again;
//! - `kes_alert_periods = 0`: never.
//!
//! The memory is not persisted: a restarted daemon reports a low key once more.

use std::collections::BTreeMap;

use super::{Action, NodeObservation};

/// The reports of this tick, given `threshold` (`kes_alert_periods`), what was said per node
/// (`said`: the periods last reported, updated) and the nodes as observed.
pub fn decide(
    threshold: u64,
    said: &mut BTreeMap<String, u64>,
    nodes: &[NodeObservation],
) -> Vec<Action> {
    let mut actions = Vec::new();
    for node in nodes {
        let Some(expiry) = node.key_expiry else {
            continue;
        };
        let periods = expiry.periods;
        let last = said.get(&node.name).copied();
        if periods < threshold {
            if last.is_none_or(|last| periods < last) {
                said.insert(node.name.clone(), periods);
                actions.push(Action::KeyExpiring {
                    node: node.name.clone(),
                    periods,
                    threshold,
                    time_left: expiry.time_left(),
                });
            }
        } else if last.is_some() {
            said.remove(&node.name);
            actions.push(Action::KeyRenewed {
                node: node.name.clone(),
                periods,
                time_left: expiry.time_left(),
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::chain::KeyExpiry;
    use crate::policy::tests::program;
    use crate::supervisor::ProcessState;

    const HOUR: Duration = Duration::from_secs(3600);

    fn reporting(name: &str, periods: Option<u64>) -> NodeObservation {
        let mut node = program(name, ProcessState::Running);
        node.key_expiry = periods.map(|periods| KeyExpiry {
            periods,
            period: Some(36 * HOUR),
        });
        node
    }

    /// What each tick reports, as `node:periods` (`+` for a renewal), over ticks of `bp1`'s
    /// readings (`None`: it reports nothing).
    #[track_caller]
    fn check(threshold: u64, readings: &[Option<u64>], expected: &[&str]) {
        let mut said = BTreeMap::new();
        let mut out = Vec::new();
        for reading in readings {
            let nodes = [reporting("bp1", *reading), reporting("bp2", None)];
            for action in decide(threshold, &mut said, &nodes) {
                out.push(match action {
                    Action::KeyExpiring {
                        node,
                        periods,
                        threshold: t,
                        ..
                    } => {
                        assert_eq!(t, threshold);
                        format!("{node}:{periods}")
                    }
                    Action::KeyRenewed { node, periods, .. } => format!("{node}:+{periods}"),
                    other => panic!("unexpected {other:?}"),
                });
            }
        }
        assert_eq!(out, expected, "readings {readings:?}");
    }

    #[test]
    fn a_low_key_is_reported_once_then_each_period_less() {
        check(14, &[Some(20), Some(14)], &[]);
        check(14, &[Some(13), Some(13), Some(13)], &["bp1:13"]);
        check(
            14,
            &[Some(13), Some(12), Some(12), Some(11), Some(0)],
            &["bp1:13", "bp1:12", "bp1:11", "bp1:0"],
        );
    }

    #[test]
    fn silence_keeps_what_was_said_and_a_rise_under_the_threshold_is_quiet() {
        check(
            14,
            &[Some(5), None, None, Some(5), Some(4)],
            &["bp1:5", "bp1:4"],
        );
        check(
            14,
            &[Some(5), Some(9), Some(8), Some(4)],
            &["bp1:5", "bp1:4"],
        );
    }

    #[test]
    fn a_new_certificate_is_reported_once_and_a_later_low_key_again() {
        check(
            14,
            &[Some(2), Some(62), Some(62), Some(61), Some(13)],
            &["bp1:2", "bp1:+62", "bp1:13"],
        );
        // Never low: no renewal either.
        check(14, &[Some(62), Some(14)], &[]);
    }

    #[test]
    fn zero_turns_the_alert_off() {
        check(0, &[Some(0), Some(62)], &[]);
    }

    #[test]
    fn the_time_left_is_periods_times_a_periods_length_when_known() {
        let mut said = BTreeMap::new();
        let actions = decide(14, &mut said, &[reporting("bp1", Some(10))]);
        assert_eq!(
            actions,
            [Action::KeyExpiring {
                node: "bp1".into(),
                periods: 10,
                threshold: 14,
                time_left: Some(360 * HOUR),
            }]
        );
        let mut unknown = reporting("bp2", Some(3));
        unknown.key_expiry = Some(KeyExpiry {
            periods: 3,
            period: None,
        });
        let actions = decide(14, &mut said, &[unknown]);
        assert!(
            matches!(
                &actions[..],
                [Action::KeyExpiring {
                    time_left: None,
                    periods: 3,
                    ..
                }]
            ),
            "{actions:?}"
        );
    }

    #[test]
    fn decide_reports_a_low_key_from_the_observation_with_the_configured_threshold() {
        use crate::policy::{Observation, PolicyConfig, PolicyState};
        let mut config = PolicyConfig {
            nodes: vec!["bp1".into()],
            ..PolicyConfig::default()
        };
        let mut state = PolicyState::default();
        let observe = |periods| Observation {
            now: crate::policy::tests::at(1),
            nodes: vec![reporting("bp1", Some(periods))],
            reference: None,
            chain: None,
            leader_job: false,
            cluster: None,
        };
        let kes = |actions: Vec<Action>| -> Vec<Action> {
            actions
                .into_iter()
                .filter(|a| matches!(a, Action::KeyExpiring { .. } | Action::KeyRenewed { .. }))
                .collect()
        };
        let found = kes(crate::policy::decide(&config, &mut state, &observe(20)).actions);
        assert!(found.is_empty(), "{found:?}");
        config.kes_alert_periods = 21;
        let found = kes(crate::policy::decide(&config, &mut state, &observe(20)).actions);
        assert!(
            matches!(
                &found[..],
                [Action::KeyExpiring {
                    periods: 20,
                    threshold: 21,
                    ..
                }]
            ),
            "{found:?}"
        );
        assert_eq!(state.key_alerts.get("bp1"), Some(&20));
    }
}

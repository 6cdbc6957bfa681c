//! The analysis on plain data: pairing, planned restarts, MTBF, flapping, stable runs, filters,
//! per-day and per-hour counts.

use super::*;
use crate::analyze::Action::{Backup, Restore, Start, Stop};

/// A row as written in a test: node, time (`DD HH:MM:SS` in November 2026, UTC), action,
/// uptime, reason.
type Row<'a> = (&'a str, &'a str, Action, Option<u64>, &'a str);

fn at(time: &str) -> i64 {
    crate::restart_log::timestamp::parse_timestamp(
        format!("2026-11-{time}Z").replace(' ', "T").as_bytes(),
    )
    .unwrap_or_else(|| panic!("bad test time {time}"))
}

fn dataset(rows: &[Row<'_>]) -> Dataset {
    let mut data = Dataset::default();
    for &(node, time, action, uptime, reason) in rows {
        let timestamp = format!("2026-11-{time}Z").replace(' ', "T");
        data.push(node, &timestamp, action, uptime, reason);
    }
    data
}

fn node<'a>(report: &'a Report, name: &str) -> &'a NodeReport {
    report
        .nodes
        .iter()
        .find(|n| n.node == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

/// (restarts, failures, planned) of every node, by name.
fn counts(report: &Report) -> Vec<(&str, u64, u64, u64)> {
    report
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.restarts, n.failures, n.planned))
        .collect()
}

#[test]
fn a_stop_and_its_start_are_one_restart() {
    let cases: Vec<(&str, Vec<Row<'_>>, u64)> = vec![
        (
            "pair",
            vec![
                ("a", "20 01:00:00", Stop, Some(10), "stale tip (x)"),
                ("a", "20 01:00:01", Start, None, "stale tip (x)"),
            ],
            1,
        ),
        (
            "lone start (a crash)",
            vec![("a", "20 01:00:00", Start, None, "crashed (EXITED)")],
            1,
        ),
        (
            "two crashes",
            vec![
                ("a", "20 01:00:00", Start, None, "crashed (EXITED)"),
                ("a", "20 01:05:00", Start, None, "crashed (EXITED)"),
            ],
            2,
        ),
        (
            "a retry belongs to its restart",
            vec![
                ("a", "20 01:00:00", Stop, None, "lag (x)"),
                ("a", "20 01:00:01", Start, None, "lag (x)"),
                (
                    "a",
                    "20 01:00:05",
                    Start,
                    None,
                    "retry after a failed start",
                ),
            ],
            1,
        ),
        (
            "a stop without its start",
            vec![
                ("a", "20 01:00:00", Stop, None, "hung (x)"),
                ("a", "20 02:00:00", Stop, None, "hung (x)"),
            ],
            2,
        ),
        (
            "pairs are per node",
            vec![
                ("a", "20 01:00:00", Stop, None, "hung (x)"),
                ("b", "20 01:00:01", Start, None, "crashed (EXITED)"),
                ("a", "20 01:00:02", Start, None, "hung (x)"),
            ],
            2,
        ),
    ];
    for (name, rows, expected) in cases {
        let report = analyze(&dataset(&rows), &Options::default());
        assert_eq!(report.totals.restarts, expected, "{name}");
        assert_eq!(report.totals.rows, rows.len() as u64, "{name}");
    }
}

#[test]
fn planned_restarts_are_not_failures() {
    let rows = [
        ("a", "20 01:00:00", Stop, Some(100), "operator request"),
        ("a", "20 01:00:01", Start, None, "operator request"),
        ("a", "20 02:00:00", Start, None, "stopped"),
        ("a", "20 03:00:00", Stop, Some(200), "leader logs"),
        ("a", "20 03:00:01", Start, None, "leader logs"),
        ("a", "20 04:00:00", Start, None, ""),
        ("a", "20 05:00:00", Stop, Some(300), "Schedule Refresh"),
        ("a", "20 06:00:00", Stop, Some(400), "stale tip (x)"),
        (
            "a",
            "20 07:00:00",
            Stop,
            Some(500),
            "custom maintenance (y)",
        ),
    ];
    let report = analyze(&dataset(&rows), &Options::default());
    assert_eq!(counts(&report), [("a", 7, 2, 5)]);
    let a = node(&report, "a");
    assert_eq!(a.mean_uptime_at_failure_secs, Some(450.0));
    assert_eq!(a.mtbf_secs, Some(3600.0));

    // --planned adds a kind (compared without the details and the case).
    let options = Options {
        planned: [DEFAULT_PLANNED.to_vec(), vec!["Custom Maintenance (z)"]]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..Options::default()
    };
    let report = analyze(&dataset(&rows), &options);
    assert_eq!(counts(&report), [("a", 7, 1, 6)]);
    assert_eq!(node(&report, "a").mtbf_secs, None);
    let planned: Vec<(&str, bool)> = report
        .reasons
        .iter()
        .map(|r| (r.reason.as_str(), r.planned))
        .collect();
    assert!(
        planned.contains(&("custom maintenance", true)),
        "{planned:?}"
    );
    assert!(planned.contains(&("stale tip", false)), "{planned:?}");
}

#[test]
fn backups_and_restores_are_planned_maintenance_not_restarts() {
    let rows = [
        ("a", "20 01:00:00", Stop, Some(100), "backup (scheduled)"),
        (
            "a",
            "20 01:00:30",
            Backup,
            None,
            "backup to /b/a-20261120T010000Z.tar.zst (123 MB in 4.2 s)",
        ),
        ("a", "20 01:00:31", Start, None, "backup (scheduled)"),
        ("a", "20 02:00:00", Stop, Some(200), "backup"),
        ("a", "20 02:00:01", Backup, None, "backup failed: disk full"),
        ("a", "20 02:00:02", Start, None, "backup failed: disk full"),
        ("a", "20 03:00:00", Stop, Some(300), "restore"),
        (
            "a",
            "20 03:00:10",
            Restore,
            None,
            "restore from /b/a-1.tar.zst",
        ),
        ("a", "20 03:00:11", Start, None, "restore"),
        (
            "a",
            "20 04:00:00",
            Stop,
            Some(5),
            "automatic restore (corrupt database: dirty flag set) from /b/a-1.tar.zst",
        ),
        (
            "a",
            "20 04:00:05",
            Restore,
            None,
            "automatic restore (corrupt database: dirty flag set) from /b/a-1.tar.zst",
        ),
        ("a", "20 04:00:06", Start, None, "automatic restore"),
        ("a", "20 05:00:00", Stop, None, "restore"),
        (
            "a",
            "20 05:00:01",
            Restore,
            None,
            "restore failed: no archive",
        ),
        (
            "a",
            "20 05:00:02",
            Start,
            None,
            "restore failed: no archive",
        ),
        // A crash after all that is the only failure.
        ("a", "20 06:00:00", Start, None, "crashed (EXITED)"),
    ];
    let report = analyze(&dataset(&rows), &Options::default());
    // Five maintenance restarts (stop, backup or restore, start) and the crash.
    assert_eq!(counts(&report), [("a", 6, 1, 5)]);
    let a = node(&report, "a");
    assert_eq!((a.stops, a.starts), (5, 6));
    assert_eq!((a.backups, a.failed_backups), (2, 1));
    assert_eq!((a.restores, a.failed_restores), (3, 1));
    assert_eq!(a.rows, rows.len() as u64);
    assert_eq!(a.mean_uptime_at_failure_secs, None);
    let totals = report.totals;
    assert_eq!(
        (
            totals.backups,
            totals.failed_backups,
            totals.restores,
            totals.failed_restores
        ),
        (2, 1, 3, 1)
    );
    let reasons: Vec<(&str, u64, bool)> = report
        .reasons
        .iter()
        .map(|r| (r.reason.as_str(), r.restarts, r.planned))
        .collect();
    assert_eq!(
        reasons,
        [
            ("backup", 2, true),
            ("restore", 2, true),
            ("automatic restore", 1, true),
            ("crashed", 1, false),
        ]
    );
    // The crash's stable run starts at the first row: maintenance broke none.
    assert_eq!(a.longest_stable_run_secs, Some(5.0 * 3600.0));
}

#[test]
fn maintenance_reasons_have_their_prefix_as_kind() {
    use crate::analyze::reason_kind;
    for (reason, kind) in [
        ("backup", "backup"),
        ("backup (scheduled)", "backup"),
        ("backup to /b/x.tar.zst (1 GB in 3 s)", "backup"),
        ("backup failed: disk full", "backup failed"),
        ("backup: operator", "backup"),
        ("restore from /b/x.tar.zst", "restore"),
        ("restore failed: checksum", "restore failed"),
        (
            "automatic restore (corrupt database: x) from /b/x.tar.zst",
            "automatic restore",
        ),
        // Other words that merely start alike keep the usual rule.
        ("backups pruned (3)", "backups pruned"),
        ("restored by hand", "restored by hand"),
        ("stale tip (x)", "stale tip"),
    ] {
        assert_eq!(reason_kind(reason), kind, "{reason}");
        let mut data = Dataset::default();
        let id = data.reason_id(reason);
        assert_eq!(data.reasons[id as usize], kind, "{reason}");
    }
}

#[test]
fn mtbf_is_the_mean_gap_between_failures() {
    /// Name, rows, MTBF, mean uptime at failure, uptime samples.
    type Case<'a> = (&'a str, Vec<Row<'a>>, Option<f64>, Option<f64>, u64);
    let cases: Vec<Case<'_>> = vec![
        ("no failure", vec![], None, None, 0),
        (
            "one failure",
            vec![("a", "20 01:00:00", Stop, Some(60), "hung")],
            None,
            Some(60.0),
            1,
        ),
        (
            "three failures, 1 h and 3 h apart",
            vec![
                ("a", "20 01:00:00", Stop, Some(60), "hung"),
                ("a", "20 01:00:01", Start, None, "hung"),
                ("a", "20 02:00:00", Start, None, "crashed (EXITED)"),
                ("a", "20 05:00:00", Stop, None, "lag (x)"),
                ("a", "20 05:00:01", Start, None, "lag (x)"),
            ],
            Some(2.0 * 3600.0),
            Some(60.0),
            1,
        ),
        (
            "planned restarts in between change nothing",
            vec![
                ("a", "20 01:00:00", Stop, Some(100), "hung"),
                ("a", "20 01:30:00", Stop, Some(5), "operator request"),
                ("a", "20 01:30:01", Start, None, "operator request"),
                ("a", "20 03:00:00", Stop, Some(300), "hung"),
            ],
            Some(2.0 * 3600.0),
            Some(200.0),
            2,
        ),
    ];
    for (name, rows, mtbf, uptime, samples) in cases {
        let mut data = dataset(&rows);
        data.node_id("a");
        let report = analyze(&data, &Options::default());
        let (got_mtbf, got_uptime, got_samples) =
            report.nodes.first().map_or((None, None, 0), |a| {
                (a.mtbf_secs, a.mean_uptime_at_failure_secs, a.uptime_samples)
            });
        assert_eq!(got_mtbf, mtbf, "{name}: mtbf");
        assert_eq!(got_uptime, uptime, "{name}: uptime");
        assert_eq!(got_samples, samples, "{name}: samples");
    }
}

#[test]
fn flapping_windows_hold_enough_failures_and_merge_when_they_share_one() {
    let minutes = |list: &[i64]| list.iter().map(|m| m * 60_000).collect::<Vec<_>>();
    let window = 30 * 60_000;
    /// Name, failure times in minutes, count, windows (from, to, failures) in minutes.
    type Case<'a> = (&'a str, Vec<i64>, usize, Vec<(i64, i64, u64)>);
    let cases: Vec<Case<'_>> = vec![
        ("none", vec![], 3, vec![]),
        ("too few", vec![0, 10], 3, vec![]),
        ("three in 20 min", vec![0, 10, 20], 3, vec![(0, 20, 3)]),
        ("exactly the window", vec![0, 15, 30], 3, vec![(0, 30, 3)]),
        ("just over", vec![0, 15, 31], 3, vec![]),
        (
            "overlapping windows merge",
            vec![0, 10, 20, 35, 45],
            3,
            vec![(0, 45, 5)],
        ),
        (
            "separate episodes",
            vec![0, 10, 20, 100, 110, 120],
            3,
            vec![(0, 20, 3), (100, 120, 3)],
        ),
        (
            "a failure between episodes that belongs to neither",
            vec![0, 5, 10, 60, 120, 125, 130],
            3,
            vec![(0, 10, 3), (120, 130, 3)],
        ),
        ("pairs", vec![0, 10, 100], 2, vec![(0, 10, 2)]),
    ];
    for (name, times, count, expected) in cases {
        let expected: Vec<(i64, i64, u64)> = expected
            .into_iter()
            .map(|(from, to, n)| (from * 60_000, to * 60_000, n))
            .collect();
        assert_eq!(
            flapping_windows(&minutes(&times), count, window),
            expected,
            "{name}"
        );
    }

    // Through the report: planned restarts never make a node flap.
    let rows = [
        ("a", "20 01:00:00", Start, None, "crashed (EXITED)"),
        ("a", "20 01:05:00", Start, None, "operator request"),
        ("a", "20 01:10:00", Start, None, "crashed (EXITED)"),
        ("b", "20 01:00:00", Start, None, "crashed (EXITED)"),
        ("b", "20 01:05:00", Start, None, "crashed (EXITED)"),
        ("b", "20 01:10:00", Start, None, "crashed (FATAL)"),
    ];
    let report = analyze(&dataset(&rows), &Options::default());
    assert_eq!(
        report.flapping,
        [FlapWindow {
            node: "b".into(),
            from: Timestamp(at("20 01:00:00")),
            to: Timestamp(at("20 01:10:00")),
            failures: 3,
        }]
    );
    assert_eq!(node(&report, "a").flapping_windows, 0);
    assert_eq!(node(&report, "b").flapping_windows, 1);
}

#[test]
fn stable_runs_go_from_failure_to_failure_and_to_the_end_of_the_log() {
    let runs =
        |failures: &[i64], start, end| stable_runs_of(failures, start, end).collect::<Vec<_>>();
    assert_eq!(runs(&[], 0, 100), [(0, 100, true)]);
    assert_eq!(
        runs(&[0, 10, 10, 40], 0, 100),
        [(0, 10, false), (10, 40, false), (40, 100, true)]
    );
    assert_eq!(runs(&[20], 5, 20), [(5, 20, false)], "no empty ongoing run");
    assert_eq!(
        runs(&[3, 20], 5, 30),
        [(5, 20, false), (20, 30, true)],
        "a failure before the start"
    );

    let rows = [
        ("a", "20 00:00:00", Start, None, "stopped"),
        ("a", "20 06:00:00", Stop, None, "hung"),
        ("a", "21 06:00:00", Stop, None, "hung"),
        ("b", "20 12:00:00", Stop, None, "hung"),
        ("b", "22 00:00:00", Stop, None, "operator request"),
    ];
    let options = Options {
        top_stable: 3,
        ..Options::default()
    };
    let report = analyze(&dataset(&rows), &options);
    let runs: Vec<(&str, i64, i64, bool)> = report
        .stable_runs
        .iter()
        .map(|r| (r.node.as_str(), r.from.0, r.to.0, r.ongoing))
        .collect();
    assert_eq!(
        runs,
        [
            ("b", at("20 12:00:00"), at("22 00:00:00"), true),
            ("a", at("20 06:00:00"), at("21 06:00:00"), false),
            ("a", at("21 06:00:00"), at("22 00:00:00"), true),
        ]
    );
    assert_eq!(node(&report, "a").longest_stable_run_secs, Some(86_400.0));
    assert_eq!(report.stable_runs[0].secs, 36.0 * 3600.0);
}

#[test]
fn filters_select_nodes_reasons_and_a_period() {
    let rows = [
        ("a", "19 23:00:00", Stop, None, "hung (3)"),
        ("a", "20 00:00:01", Start, None, "hung (3)"),
        ("a", "20 01:00:00", Stop, None, "stale tip (9 s)"),
        ("a", "20 01:00:01", Start, None, "stale tip (9 s)"),
        ("b", "20 02:00:00", Start, None, "crashed (EXITED)"),
        ("b", "21 02:00:00", Stop, None, "Stale Tip (1 s)"),
        ("b", "22 02:00:00", Stop, None, "lag (x)"),
    ];
    let data = dataset(&rows);
    let run = |options: Options| {
        let report = analyze(&data, &options);
        counts(&report)
            .into_iter()
            .map(|(n, r, f, p)| (n.to_string(), r, f, p))
            .collect::<Vec<_>>()
    };
    let row = |n: &str, r, f, p| (n.to_string(), r, f, p);
    assert_eq!(
        run(Options::default()),
        [row("a", 2, 2, 0), row("b", 3, 3, 0)]
    );
    let only_b = Options {
        nodes: vec!["b".into()],
        ..Options::default()
    };
    assert_eq!(run(only_b), [row("b", 3, 3, 0)]);
    let stale = Options {
        reasons: vec!["stale tip (whatever detail)".into()],
        ..Options::default()
    };
    assert_eq!(run(stale), [row("a", 1, 1, 0), row("b", 1, 1, 0)]);
    // The start at 00:00:01 completes the stop before --since: it is not a restart of its own.
    let period = Options {
        since_ms: Some(at("20 00:00:00")),
        until_ms: Some(at("22 00:00:00")),
        ..Options::default()
    };
    assert_eq!(run(period.clone()), [row("a", 1, 1, 0), row("b", 2, 2, 0)]);
    let report = analyze(&data, &period);
    assert_eq!(node(&report, "a").rows, 3);
    assert_eq!(
        report.period,
        Some(Period {
            from: Timestamp(at("20 01:00:00")),
            to: Timestamp(at("21 02:00:00")),
        })
    );
    let nobody = Options {
        nodes: vec!["zzz".into()],
        ..Options::default()
    };
    let report = analyze(&data, &nobody);
    assert_eq!(report.totals, Totals::default());
    assert!(report.nodes.is_empty() && report.period.is_none());
}

#[test]
fn restarts_per_reason_day_and_hour() {
    let rows = [
        ("a", "20 01:00:00", Stop, None, "stale tip (1)"),
        ("a", "20 01:00:01", Start, None, "stale tip (1)"),
        ("b", "20 01:30:00", Start, None, "crashed (EXITED)"),
        ("a", "20 23:59:59", Stop, None, "stale tip (2)"),
        ("a", "21 00:00:01", Start, None, "stale tip (2)"),
        ("b", "21 13:00:00", Stop, None, "operator request"),
    ];
    let report = analyze(&dataset(&rows), &Options::default());
    let reasons: Vec<(&str, u64, bool)> = report
        .reasons
        .iter()
        .map(|r| (r.reason.as_str(), r.restarts, r.planned))
        .collect();
    assert_eq!(
        reasons,
        [
            ("stale tip", 2, false),
            ("crashed", 1, false),
            ("operator request", 1, true)
        ]
    );
    assert_eq!(report.reasons[0].share, 0.5);
    type Day<'a> = (&'a str, u64, Vec<(&'a str, u64)>);
    let days: Vec<Day<'_>> = report
        .days
        .iter()
        .map(|d| {
            let nodes = d.nodes.iter().map(|(n, c)| (n.as_str(), *c)).collect();
            (d.day.as_str(), d.restarts, nodes)
        })
        .collect();
    assert_eq!(
        days,
        [
            ("2026-11-20", 3, vec![("a", 2), ("b", 1)]),
            ("2026-11-21", 1, vec![("b", 1)]),
        ]
    );
    let hours: Vec<(u32, u64)> = report
        .hours
        .iter()
        .filter(|h| h.restarts > 0)
        .map(|h| (h.hour, h.restarts))
        .collect();
    assert_eq!(hours, [(1, 2), (13, 1), (23, 1)]);
    assert_eq!(report.hours.len(), 24);
    let a_reasons: Vec<(&str, u64)> = node(&report, "a")
        .reasons
        .iter()
        .map(|r| (r.reason.as_str(), r.restarts))
        .collect();
    assert_eq!(a_reasons, [("stale tip", 2)]);
}

#[test]
fn rows_out_of_order_give_the_same_report() {
    // Rotated logs given newest first: the grouped path sorts each node's rows.
    let rows = [
        ("a", "20 01:00:00", Stop, Some(5), "hung"),
        ("a", "20 01:00:01", Start, None, "hung"),
        ("b", "20 02:00:00", Start, None, "crashed (EXITED)"),
        ("a", "21 01:00:00", Stop, Some(7), "lag (x)"),
        ("a", "21 01:00:01", Start, None, "lag (x)"),
        ("b", "21 02:00:00", Stop, None, "operator request"),
        ("b", "21 02:00:01", Start, None, "operator request"),
    ];
    let in_order = analyze(&dataset(&rows), &Options::default());
    let mut shuffled = rows.to_vec();
    shuffled.rotate_left(3);
    let data = dataset(&shuffled);
    let selection = Selection {
        node: vec![true; 2],
        reason: vec![true; data.reasons.len()],
        planned: vec![false; data.reasons.len()],
        failed: vec![false; data.reasons.len()],
        retry: None,
        since: i64::MIN,
        until: i64::MAX,
    };
    assert!(
        walk_in_file_order(&data, &selection)
            .0
            .iter()
            .any(|w| w.disordered)
    );
    assert_eq!(analyze(&data, &Options::default()), in_order);
    shuffled.reverse();
    assert_eq!(analyze(&dataset(&shuffled), &Options::default()), in_order);
}

#[test]
fn the_grouped_and_the_single_pass_agree() {
    // Many rows over a few nodes, in time order: both paths must give the same walks.
    let mut data = Dataset::default();
    let reasons = [
        "hung",
        "lag (x)",
        "operator request",
        "crashed (EXITED)",
        "retry after a failed start",
        "backup failed: disk full",
    ];
    let mut state = 12_345u64;
    let mut time = at("01 00:00:00");
    for _ in 0..5000 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        time += (state >> 40) as i64 % 600_000;
        let node = format!("n{}", (state >> 20) % 4);
        let action = [Stop, Start, Stop, Start, Backup, Restore][((state >> 10) % 6) as usize];
        let uptime = (!(state >> 5).is_multiple_of(3)).then_some((state >> 30) % 100_000);
        let reason = reasons[((state >> 50) % reasons.len() as u64) as usize];
        let timestamp = crate::analyze::report::Timestamp(time).rfc3339();
        data.push(&node, &timestamp, action, uptime, reason);
    }
    let selection = |data: &Dataset| Selection {
        node: vec![true; data.nodes.len()],
        reason: vec![true; data.reasons.len()],
        planned: data
            .reasons
            .iter()
            .map(|r| r == "operator request")
            .collect(),
        failed: data.reasons.iter().map(|r| r == "backup failed").collect(),
        retry: data
            .reasons
            .iter()
            .position(|r| r == RETRY_REASON)
            .map(|i| i as u32),
        since: i64::MIN,
        until: i64::MAX,
    };
    let selection = selection(&data);
    let key = |walks: Vec<NodeWalk>| {
        let mut walks: Vec<_> = walks
            .into_iter()
            .filter(|w| w.rows > 0)
            .map(|mut w| {
                w.reason_counts.sort();
                format!("{w:?}")
            })
            .collect();
        walks.sort();
        walks
    };
    let (walks, latest) = walk_in_file_order(&data, &selection);
    assert!(!walks.iter().any(|w| w.disordered));
    assert_eq!(latest, Some(time));
    assert_eq!(key(walks), key(walk_grouped(&data, &selection)));
}

//! `nodekeeper log analyze` through the real binary over the fixtures in `tests/data/restarts/`:
//! a nodekeeper log, a jmanager `restarts.csv`, and a log with corrupt and truncated lines.
//! Table, JSON, CSV and the SVG plot; several files and stdin; errors.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

const NODEKEEPER: &str = env!("CARGO_BIN_EXE_nodekeeper");

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/restarts")
        .join(name)
        .display()
        .to_string()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `nodekeeper log analyze ARGS` with `stdin` as standard input.
fn analyze(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(NODEKEEPER)
        .args(["log", "analyze"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nodekeeper runs");
    // A child that does not read stdin may close it first: that is fine.
    let _ = child.stdin.take().expect("stdin").write_all(stdin);
    let output = child.wait_with_output().expect("nodekeeper finishes");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn json_of(args: &[&str], stdin: &[u8]) -> Value {
    let run = analyze(&[&["--json"], args].concat(), stdin);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// A node's figures: restarts, failures, planned, MTBF, mean uptime at failure, flapping.
fn node_figures(report: &Value, node: &str) -> Value {
    let entry = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("no node {node}"));
    json!([
        entry["restarts"],
        entry["failures"],
        entry["planned"],
        entry["mtbf_secs"],
        entry["mean_uptime_at_failure_secs"],
        entry["flapping_windows"],
    ])
}

#[test]
fn a_nodekeeper_log_as_json() {
    let report = json_of(&[&fixture("nodekeeper.csv")], b"");
    assert_eq!(
        report["totals"],
        json!({
            "rows": 17, "restarts": 10, "failures": 8, "planned": 2,
            "backups": 0, "failed_backups": 0, "restores": 0, "failed_restores": 0,
        })
    );
    assert_eq!(
        node_figures(&report, "node1"),
        json!([3, 3, 0, 54000.0, 37199.0, 0])
    );
    assert_eq!(
        node_figures(&report, "node2"),
        json!([3, 2, 1, 163800.0, 45000.0, 0])
    );
    assert_eq!(
        node_figures(&report, "node3"),
        json!([4, 3, 1, 600.0, 3600.0, 1])
    );
    let reasons: Vec<(String, u64)> = report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["reason"].as_str().unwrap().to_string(),
                r["restarts"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("crashed", 3),
        ("lag", 2),
        ("stale tip", 2),
        ("hung", 1),
        ("operator request", 1),
        ("stopped", 1),
    ];
    assert_eq!(reasons, expected.map(|(r, n)| (r.to_string(), n)).to_vec());
    assert_eq!(
        report["days"],
        json!([
            {"day": "2026-11-20", "restarts": 4, "nodes": {"node1": 2, "node2": 2}},
            {"day": "2026-11-21", "restarts": 5, "nodes": {"node1": 1, "node3": 4}},
            {"day": "2026-11-22", "restarts": 1, "nodes": {"node2": 1}},
        ])
    );
    assert_eq!(
        report["flapping"],
        json!([{
            "node": "node3",
            "from": "2026-11-21T09:00:00.000Z",
            "to": "2026-11-21T09:20:00.000Z",
            "failures": 3,
        }])
    );
    assert_eq!(
        report["stable_runs"][0],
        json!({
            "node": "node2",
            "from": "2026-11-20T03:00:00.000Z",
            "to": "2026-11-22T00:30:00.000Z",
            "secs": 163800.0,
            "ongoing": false,
        })
    );
    assert_eq!(report["hours"].as_array().unwrap().len(), 24);
    assert_eq!(report["hours"][9], json!({"hour": 9, "restarts": 3}));
    assert_eq!(report["skipped"], 0);
    assert_eq!(report["inputs"][0]["format"], "nodekeeper");
}

#[test]
fn a_nodekeeper_log_as_a_table() {
    let run = analyze(&[&fixture("nodekeeper.csv")], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    let out = &run.stdout;
    for line in [
        "1 input, 17 rows read",
        "10 restarts from 2026-11-20 01:00:00 to 2026-11-22 00:30:00 UTC: 8 failures, 2 planned",
        "NODE   RESTARTS  FAILURES  PLANNED    MTBF  UPTIME AT FAILURE  LONGEST STABLE  FLAPPING",
        "node1         3         3        0     15h            10h 19m              1d         0",
        "node3         4         3        1     10m                 1h         15h 10m         1",
        "operator request         1  10.0%  planned",
        "DAY         TOTAL  node1  node2  node3",
        "2026-11-21      5      1      0      4",
        "flapping: 3 or more failures within 30m",
        "node3  2026-11-21 09:00:00  2026-11-21 09:20:00         3",
        "node1  2026-11-21 07:00:00  2026-11-22 00:30:01 (ongoing)   17h 30m",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in\n{out}"
        );
    }
}

#[test]
fn a_nodekeeper_log_as_csv() {
    let run = analyze(&["--csv", &fixture("nodekeeper.csv")], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut reader = csv::Reader::from_reader(run.stdout.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec![
            "section", "node", "reason", "day", "hour", "from", "to", "metric", "value"
        ]
    );
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let has = |cells: &[&str]| {
        assert!(
            records.iter().any(|record| record == cells),
            "no row {cells:?} in\n{}",
            run.stdout
        );
    };
    has(&["total", "", "", "", "", "", "", "restarts", "10"]);
    has(&[
        "node",
        "node1",
        "",
        "",
        "",
        "",
        "",
        "mtbf_secs",
        "54000.000",
    ]);
    has(&["node", "node2", "", "", "", "", "", "failures", "2"]);
    has(&["reason", "", "lag", "", "", "", "", "restarts", "2"]);
    has(&[
        "day",
        "node3",
        "",
        "2026-11-21",
        "",
        "",
        "",
        "restarts",
        "4",
    ]);
    has(&["hour", "", "", "", "9", "", "", "restarts", "3"]);
    has(&[
        "flapping",
        "node3",
        "",
        "",
        "",
        "2026-11-21T09:00:00.000Z",
        "2026-11-21T09:20:00.000Z",
        "failures",
        "3",
    ]);
}

#[test]
fn a_jmanager_restarts_csv() {
    let report = json_of(&[&fixture("restarts.csv")], b"");
    assert_eq!(report["inputs"][0]["format"], "jmanager");
    assert_eq!(
        report["totals"],
        json!({
            "rows": 9, "restarts": 5, "failures": 3, "planned": 2,
            "backups": 0, "failed_backups": 0, "restores": 0, "failed_restores": 0,
        })
    );
    assert_eq!(
        node_figures(&report, "node_one"),
        json!([2, 2, 0, 40629.877, 37605.5, 0])
    );
    assert_eq!(
        node_figures(&report, "node_two"),
        json!([3, 1, 2, null, 86399.0, 0])
    );
    assert_eq!(
        report["period"],
        json!({"from": "2020-06-18T16:42:50.123Z", "to": "2020-06-20T10:00:00.000Z"})
    );
}

/// A log as the daemon writes a backup, a failed backup and an automatic restore, then a crash.
const MAINTENANCE_LOG: &str = "\
node name,timestamp,action,uptime,reason,program,height,reference height,supervisor state,exit status
bp1,2026-12-01T03:00:00.000Z,stop,86400,backup (scheduled),bp1,100,100,RUNNING,
bp1,2026-12-01T03:00:40.000Z,backup,,backup to /b/bp1-20261201T030000Z.tar.zst (123 MB in 4.2 s),bp1,100,100,STOPPED,
bp1,2026-12-01T03:00:41.000Z,start,,backup (scheduled),bp1,100,100,STOPPED,
bp1,2026-12-02T03:00:00.000Z,stop,86400,backup (scheduled),bp1,200,200,RUNNING,
bp1,2026-12-02T03:00:01.000Z,backup,,backup failed: No space left on device (os error 28),bp1,200,200,STOPPED,
bp1,2026-12-02T03:00:02.000Z,start,,backup (scheduled),bp1,200,200,STOPPED,
bp1,2026-12-03T05:00:00.000Z,stop,7200,\"automatic restore (corrupt database: database dirty flag set) from /b/bp1-20261201T030000Z.tar.zst\",bp1,,,EXITED,2
bp1,2026-12-03T05:01:00.000Z,restore,,\"automatic restore (corrupt database: database dirty flag set) from /b/bp1-20261201T030000Z.tar.zst\",bp1,,,STOPPED,
bp1,2026-12-03T05:01:01.000Z,start,,automatic restore,bp1,,,STOPPED,
bp1,2026-12-04T00:00:00.000Z,start,,crashed (EXITED),bp1,,,EXITED,1
";

#[test]
fn backups_and_restores_are_planned_maintenance_in_every_rendering() {
    let report = json_of(&["-"], MAINTENANCE_LOG.as_bytes());
    assert_eq!(report["skipped"], 0, "{report}");
    assert_eq!(
        report["totals"],
        json!({
            "rows": 10, "restarts": 4, "failures": 1, "planned": 3,
            "backups": 2, "failed_backups": 1, "restores": 1, "failed_restores": 0,
        })
    );
    let node = &report["nodes"][0];
    assert_eq!(
        json!([
            node["stops"],
            node["starts"],
            node["backups"],
            node["restores"]
        ]),
        json!([3, 4, 2, 1])
    );
    let reasons: Vec<(&str, u64, bool)> = report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let reason = r["reason"].as_str().unwrap();
            (
                reason,
                r["restarts"].as_u64().unwrap(),
                r["planned"] == true,
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("backup", 2, true),
            ("automatic restore", 1, true),
            ("crashed", 1, false)
        ]
    );

    let run = analyze(&[], MAINTENANCE_LOG.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = &run.stdout;
    // Compared with single spaces: the column widths are not the point.
    let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    for line in [
        "4 restarts from 2026-12-01 03:00:00 to 2026-12-04 00:00:00 UTC: 1 failures, 3 planned",
        "2 backups (1 failed), 1 restores (0 failed): maintenance",
        "NODE RESTARTS FAILURES PLANNED MTBF UPTIME AT FAILURE LONGEST STABLE FLAPPING BACKUPS RESTORES",
        "bp1 4 1 3 - - 2d 21h 0 2 (1 failed) 1",
        "backup 2 50.0% planned",
        "automatic restore 1 25.0% planned",
    ] {
        assert!(
            out.lines().any(|l| words(l).starts_with(line)),
            "missing {line:?} in\n{out}"
        );
    }

    let run = analyze(&["--csv", "-"], MAINTENANCE_LOG.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    for row in [
        "total,,,,,,,backups,2",
        "total,,,,,,,failed_backups,1",
        "node,bp1,,,,,,restores,1",
    ] {
        assert!(
            run.stdout.lines().any(|l| l == row),
            "{row}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn corrupt_lines_are_reported_with_file_and_line_and_the_report_still_comes_out() {
    let path = fixture("corrupt.csv");
    let run = analyze(&[&path], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let warned: Vec<&str> = run.stderr.lines().collect();
    let expected: Vec<String> = [
        "3: 1 fields, expected 10",
        "5: timestamp is not an RFC 3339 date: \"yesterday\"",
        "6: incomplete row (no line end)",
        "7: action is not stop, start, backup or restore: \"reboot\"",
        "10: uptime is not a valid number: \"-1\"",
        "11: incomplete row (no line end)",
    ]
    .iter()
    .map(|problem| format!("warning: {path}:{problem} (skipped)"))
    .collect();
    assert_eq!(warned, expected);
    assert!(
        run.stdout
            .starts_with("1 input, 4 rows read, 6 unreadable lines skipped (listed on stderr)\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("2 restarts from"), "{}", run.stdout);

    let report = json_of(&[&path], b"");
    assert_eq!(report["skipped"], 6);
    assert_eq!(report["inputs"][0]["skipped"], 6);
    assert_eq!(
        report["problems"][4],
        json!({"file": path, "line": 10, "message": "uptime is not a valid number: \"-1\""})
    );
    assert_eq!(report["totals"]["restarts"], 2);
}

#[test]
fn several_files_and_stdin_are_one_log() {
    let jmanager = std::fs::read(fixture("restarts.csv")).unwrap();
    let report = json_of(&[&fixture("nodekeeper.csv"), "-"], &jmanager);
    let inputs: Vec<(&str, &str)> = report["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["file"].as_str().unwrap(), i["format"].as_str().unwrap()))
        .collect();
    assert_eq!(inputs[1], ("(stdin)", "jmanager"));
    assert_eq!(report["totals"]["restarts"], 15);
    assert_eq!(report["nodes"].as_array().unwrap().len(), 5);

    // No FILE and a pipe on stdin: stdin is read.
    let report = json_of(&[], &jmanager);
    assert_eq!(report["totals"]["restarts"], 5);
}

#[test]
fn filters_narrow_the_report() {
    let path = fixture("nodekeeper.csv");
    let report = json_of(
        &[
            &path,
            "--node",
            "node1",
            "--node",
            "node3",
            "--since",
            "2026-11-21",
            "--reason",
            "crashed",
        ],
        b"",
    );
    assert_eq!(
        report["totals"],
        json!({
            "rows": 8, "restarts": 2, "failures": 2, "planned": 0,
            "backups": 0, "failed_backups": 0, "restores": 0, "failed_restores": 0,
        })
    );
    let report = json_of(&[&path, "--until", "2026-11-20T12:00:00Z"], b"");
    assert_eq!(report["totals"]["restarts"], 3);
    let report = json_of(
        &[
            &path,
            "--planned",
            "crashed",
            "--flap-count",
            "2",
            "--flap-window",
            "15m",
        ],
        b"",
    );
    assert_eq!(report["totals"]["planned"], 5);
    assert_eq!(report["flapping"], json!([]));
    let report = json_of(&[&path, "--flap-count", "2", "--flap-window", "10m"], b"");
    assert_eq!(report["flapping"][0]["failures"], 3);
}

#[test]
fn the_plot_is_an_svg_file() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("restarts.svg");
    let plot_arg = plot.display().to_string();
    let run = analyze(&[&fixture("nodekeeper.csv"), "--plot", &plot_arg], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    for text in ["restarts per day (UTC)", "node1", "node3", "2026-11-21"] {
        assert!(svg.contains(text), "{text} not in the plot");
    }
}

#[test]
fn unreadable_inputs_and_bad_options_fail_with_one_line() {
    let missing = fixture("missing.csv");
    let run = analyze(&[&missing], b"");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with(&format!("error: cannot read {missing}: ")),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");

    let not_a_log = analyze(&["-"], b"hello,world\n");
    assert_eq!(not_a_log.code, 1);
    assert!(
        not_a_log
            .stderr
            .starts_with("error: (stdin) is not a restart log: it starts with \"hello,world\""),
        "{}",
        not_a_log.stderr
    );

    let bad_time = analyze(&[&fixture("nodekeeper.csv"), "--since", "soonish"], b"");
    assert_eq!(bad_time.code, 2);
    assert!(
        bad_time.stderr.contains("--since: not a time"),
        "{}",
        bad_time.stderr
    );

    let bad_count = analyze(&[&fixture("nodekeeper.csv"), "--flap-count", "1"], b"");
    assert_eq!(bad_count.code, 2);
    let both = analyze(&[&fixture("nodekeeper.csv"), "--json", "--csv"], b"");
    assert_eq!(both.code, 2);
}

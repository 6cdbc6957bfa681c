//! Renderings of a `Report`: aligned tables, JSON (with the inputs and skipped lines), and one
//! tidy CSV. Pure: strings in memory.

use std::fmt::Write as _;

use serde::Serialize;

use super::read::{InputSummary, Problem};
use super::report::{Report, Timestamp};

/// How many flapping windows the table lists (JSON and CSV have them all).
const TABLE_FLAPPING: usize = 20;

/// The report with what was read, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    /// One entry per input.
    pub inputs: &'a [InputSummary],
    /// Lines skipped, all inputs.
    pub skipped: usize,
    /// The skipped lines (at most 1000 per input).
    pub problems: &'a [Problem],
    /// The figures.
    #[serde(flatten)]
    pub report: &'a Report,
}

/// Pretty JSON, newline-terminated.
pub fn json(document: &Document<'_>) -> String {
    let mut text = serde_json::to_string_pretty(document).expect("a report serialises");
    text.push('\n');
    text
}

/// A compact duration: the largest unit and the next one unless it is zero (`3d 4h`, `2h`,
/// `5m 30s`, `45s`).
pub fn duration(secs: f64) -> String {
    let total = secs.max(0.0).round() as u64;
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let Some(index) = units.iter().position(|&(size, _)| total >= size) else {
        return "0s".to_string();
    };
    let (size, name) = units[index];
    let mut text = format!("{}{name}", total / size);
    if let Some(&(next_size, next_name)) = units.get(index + 1) {
        let next = total % size / next_size;
        if next > 0 {
            text.push_str(&format!(" {next}{next_name}"));
        }
    }
    text
}

/// `YYYY-MM-DD HH:MM:SS` UTC.
fn when(time: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(time.0).map_or_else(
        || time.rfc3339(),
        |date| date.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// An aligned table: headers, then rows, column `i` right-aligned when `right[i]`; trailing
/// blanks are trimmed.
fn table(out: &mut String, headers: &[&str], right: &[bool], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate() {
            let width = widths[index];
            if right.get(index).copied().unwrap_or(false) {
                let _ = write!(text, "{cell:>width$}  ");
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for row in rows {
        line(row);
    }
}

fn optional(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "-".to_string(), format)
}

/// The report as aligned tables.
pub fn table_text(document: &Document<'_>) -> String {
    let report = document.report;
    let mut out = String::new();
    let n_rows: usize = document.inputs.iter().map(|i| i.rows).sum();
    let _ = write!(
        out,
        "{} input{}, {n_rows} rows read",
        document.inputs.len(),
        if document.inputs.len() == 1 { "" } else { "s" }
    );
    if document.skipped > 0 {
        let _ = write!(
            out,
            ", {} unreadable line{} skipped (listed on stderr)",
            document.skipped,
            if document.skipped == 1 { "" } else { "s" }
        );
    }
    out.push('\n');
    let totals = report.totals;
    match report.period {
        Some(period) => {
            let _ = writeln!(
                out,
                "{} restarts from {} to {} UTC: {} failures, {} planned (a stop and its start count once)",
                totals.restarts,
                when(period.from),
                when(period.to),
                totals.failures,
                totals.planned
            );
        }
        None => out.push_str("no restarts\n"),
    }
    // Maintenance: its own line, and its own columns below, only in logs that have any.
    let maintenance = totals.backups + totals.restores > 0;
    if maintenance {
        let _ = writeln!(
            out,
            "{} backups ({} failed), {} restores ({} failed): maintenance, their stop and start \
             count as planned restarts",
            totals.backups, totals.failed_backups, totals.restores, totals.failed_restores
        );
    }

    out.push('\n');
    // A count with its failed part: `3`, `3 (1 failed)`.
    let with_failed = |n: u64, failed: u64| match failed {
        0 => n.to_string(),
        failed => format!("{n} ({failed} failed)"),
    };
    let rows: Vec<Vec<String>> = report
        .nodes
        .iter()
        .map(|node| {
            let mut row = vec![
                node.node.clone(),
                node.restarts.to_string(),
                node.failures.to_string(),
                node.planned.to_string(),
                optional(node.mtbf_secs, duration),
                optional(node.mean_uptime_at_failure_secs, duration),
                optional(node.longest_stable_run_secs, duration),
                node.flapping_windows.to_string(),
            ];
            if maintenance {
                row.push(with_failed(node.backups, node.failed_backups));
                row.push(with_failed(node.restores, node.failed_restores));
            }
            row
        })
        .collect();
    let mut headers = vec![
        "NODE",
        "RESTARTS",
        "FAILURES",
        "PLANNED",
        "MTBF",
        "UPTIME AT FAILURE",
        "LONGEST STABLE",
        "FLAPPING",
    ];
    if maintenance {
        headers.extend(["BACKUPS", "RESTORES"]);
    }
    let mut right = vec![true; headers.len()];
    right[0] = false;
    table(&mut out, &headers, &right, &rows);

    out.push('\n');
    let rows: Vec<Vec<String>> = report
        .reasons
        .iter()
        .map(|reason| {
            vec![
                if reason.reason.is_empty() {
                    "(none)".to_string()
                } else {
                    reason.reason.clone()
                },
                reason.restarts.to_string(),
                format!("{:.1}%", reason.share * 100.0),
                if reason.planned { "planned" } else { "failure" }.to_string(),
            ]
        })
        .collect();
    table(
        &mut out,
        &["REASON", "RESTARTS", "SHARE", "KIND"],
        &[false, true, true, false],
        &rows,
    );

    out.push_str("\nrestarts per day (UTC)\n");
    let node_names: Vec<&str> = report.nodes.iter().map(|n| n.node.as_str()).collect();
    let mut headers = vec!["DAY", "TOTAL"];
    headers.extend(&node_names);
    let rows: Vec<Vec<String>> = report
        .days
        .iter()
        .map(|day| {
            let mut row = vec![day.day.clone(), day.restarts.to_string()];
            row.extend(
                node_names
                    .iter()
                    .map(|node| day.nodes.get(*node).copied().unwrap_or(0).to_string()),
            );
            row
        })
        .collect();
    let mut right = vec![true; headers.len()];
    right[0] = false;
    table(&mut out, &headers, &right, &rows);

    out.push_str("\nrestarts per hour of the day (UTC)\n");
    let most = report.hours.iter().map(|h| h.restarts).max().unwrap_or(0);
    let rows: Vec<Vec<String>> = report
        .hours
        .iter()
        .map(|hour| {
            let bar = if most == 0 {
                0
            } else {
                (hour.restarts * 40).div_ceil(most) as usize
            };
            vec![
                format!("{:02}", hour.hour),
                hour.restarts.to_string(),
                "#".repeat(bar),
            ]
        })
        .collect();
    table(
        &mut out,
        &["HOUR", "RESTARTS", ""],
        &[false, true, false],
        &rows,
    );

    let definitions = &report.definitions;
    let _ = writeln!(
        out,
        "\nflapping: {} or more failures within {}",
        definitions.flap_count,
        duration(definitions.flap_window_secs)
    );
    if report.flapping.is_empty() {
        out.push_str("none\n");
    } else {
        let rows: Vec<Vec<String>> = report
            .flapping
            .iter()
            .take(TABLE_FLAPPING)
            .map(|window| {
                vec![
                    window.node.clone(),
                    when(window.from),
                    when(window.to),
                    window.failures.to_string(),
                ]
            })
            .collect();
        table(
            &mut out,
            &["NODE", "FROM", "TO", "FAILURES"],
            &[false, false, false, true],
            &rows,
        );
        if report.flapping.len() > TABLE_FLAPPING {
            let _ = writeln!(
                out,
                "... and {} more (--json or --csv lists them all)",
                report.flapping.len() - TABLE_FLAPPING
            );
        }
    }

    out.push_str("\nlongest stable runs (no failure)\n");
    if report.stable_runs.is_empty() {
        out.push_str("none\n");
    } else {
        let rows: Vec<Vec<String>> = report
            .stable_runs
            .iter()
            .map(|run| {
                vec![
                    run.node.clone(),
                    when(run.from),
                    if run.ongoing {
                        format!("{} (ongoing)", when(run.to))
                    } else {
                        when(run.to)
                    },
                    duration(run.secs),
                ]
            })
            .collect();
        table(
            &mut out,
            &["NODE", "FROM", "TO", "DURATION"],
            &[false, false, false, true],
            &rows,
        );
    }
    let planned: Vec<String> = definitions
        .planned
        .iter()
        .map(|p| {
            if p.is_empty() {
                "(none)".to_string()
            } else {
                p.clone()
            }
        })
        .collect();
    let _ = writeln!(out, "\nplanned reasons: {}", planned.join(", "));
    out
}

/// One tidy CSV: `section,node,reason,day,hour,from,to,metric,value`, one figure per row.
pub fn csv_text(document: &Document<'_>) -> String {
    let report = document.report;
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer
        .write_record([
            "section", "node", "reason", "day", "hour", "from", "to", "metric", "value",
        ])
        .expect("writing to memory");
    let mut record = |section: &str,
                      node: &str,
                      reason: &str,
                      day: &str,
                      hour: &str,
                      span: Option<(Timestamp, Timestamp)>,
                      metric: &str,
                      value: String| {
        let (from, to) = span.map_or((String::new(), String::new()), |(from, to)| {
            (from.rfc3339(), to.rfc3339())
        });
        writer
            .write_record([section, node, reason, day, hour, &from, &to, metric, &value])
            .expect("writing to memory");
    };
    let totals = report.totals;
    for (metric, value) in [
        ("rows", totals.rows),
        ("restarts", totals.restarts),
        ("failures", totals.failures),
        ("planned", totals.planned),
        ("backups", totals.backups),
        ("failed_backups", totals.failed_backups),
        ("restores", totals.restores),
        ("failed_restores", totals.failed_restores),
        ("skipped_lines", document.skipped as u64),
    ] {
        record("total", "", "", "", "", None, metric, value.to_string());
    }
    let number = |value: Option<f64>| value.map_or_else(String::new, |v| format!("{v:.3}"));
    for node in &report.nodes {
        let n = &node.node;
        for (metric, value) in [
            ("rows", node.rows.to_string()),
            ("stops", node.stops.to_string()),
            ("starts", node.starts.to_string()),
            ("backups", node.backups.to_string()),
            ("failed_backups", node.failed_backups.to_string()),
            ("restores", node.restores.to_string()),
            ("failed_restores", node.failed_restores.to_string()),
            ("restarts", node.restarts.to_string()),
            ("failures", node.failures.to_string()),
            ("planned", node.planned.to_string()),
            ("mtbf_secs", number(node.mtbf_secs)),
            (
                "mean_uptime_at_failure_secs",
                number(node.mean_uptime_at_failure_secs),
            ),
            ("uptime_samples", node.uptime_samples.to_string()),
            (
                "longest_stable_run_secs",
                number(node.longest_stable_run_secs),
            ),
            ("flapping_windows", node.flapping_windows.to_string()),
        ] {
            record("node", n, "", "", "", None, metric, value);
        }
        for reason in &node.reasons {
            let value = reason.restarts.to_string();
            record(
                "node_reason",
                n,
                &reason.reason,
                "",
                "",
                None,
                "restarts",
                value,
            );
        }
    }
    for reason in &report.reasons {
        for (metric, value) in [
            ("restarts", reason.restarts.to_string()),
            ("share", format!("{:.6}", reason.share)),
            ("planned", u8::from(reason.planned).to_string()),
        ] {
            record("reason", "", &reason.reason, "", "", None, metric, value);
        }
    }
    for day in &report.days {
        for (node, n) in &day.nodes {
            record(
                "day",
                node,
                "",
                &day.day,
                "",
                None,
                "restarts",
                n.to_string(),
            );
        }
    }
    for hour in &report.hours {
        let h = hour.hour.to_string();
        record(
            "hour",
            "",
            "",
            "",
            &h,
            None,
            "restarts",
            hour.restarts.to_string(),
        );
    }
    for window in &report.flapping {
        let span = Some((window.from, window.to));
        let value = window.failures.to_string();
        record(
            "flapping",
            &window.node,
            "",
            "",
            "",
            span,
            "failures",
            value,
        );
    }
    for run in &report.stable_runs {
        let span = Some((run.from, run.to));
        for (metric, value) in [
            ("secs", format!("{:.3}", run.secs)),
            ("ongoing", u8::from(run.ongoing).to_string()),
        ] {
            record("stable_run", &run.node, "", "", "", span, metric, value);
        }
    }
    let bytes = writer.into_inner().expect("writing to memory");
    String::from_utf8(bytes).expect("the fields are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_two_units_at_most() {
        for (secs, text) in [
            (0.0, "0s"),
            (0.4, "0s"),
            (45.0, "45s"),
            (60.0, "1m"),
            (330.0, "5m 30s"),
            (7200.0, "2h"),
            (7259.0, "2h"),
            (7260.0, "2h 1m"),
            (86_400.0, "1d"),
            (3.0 * 86_400.0 + 4.0 * 3600.0 + 59.0, "3d 4h"),
            (-5.0, "0s"),
        ] {
            assert_eq!(duration(secs), text, "{secs}");
        }
    }
}

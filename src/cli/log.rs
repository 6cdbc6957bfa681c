//! `nodekeeper log analyze`: the shell around `analyze`. It turns arguments into `Options`, reads
//! the inputs, reports unreadable lines on stderr, and prints the report (table, JSON or CSV) or
//! writes the SVG plot.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::Failure;
use crate::analyze::read::{self, Input};
use crate::analyze::render::{self, Document};
use crate::analyze::{self, DEFAULT_PLANNED, Options};
use crate::time::SystemClock;

/// How many unreadable lines are listed on stderr per input (the count covers all).
const STDERR_PROBLEMS: usize = 20;

/// `nodekeeper log ...`.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Restarts per node, reason, day and hour; MTBF, flapping windows, longest stable runs.
    ///
    /// Reads nodekeeper's restart log and jmanager's restarts.csv (several files, e.g. rotated
    /// ones, are read as one log). A stop and its start count as one restart; planned restarts
    /// (operator request, stopped, leader logs, schedule refresh, slot guard, config change,
    /// backup, backup failed, restore, restore failed, automatic restore, empty reason, and
    /// --planned) are not failures. Unreadable lines are listed on stderr and skipped.
    Analyze(AnalyzeArgs),
}

/// Options of `nodekeeper log analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Restart logs, nodekeeper's or jmanager's; `-` is stdin. Without FILE, stdin is read
    /// unless it is a terminal.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Only this node (repeatable).
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Only restarts for this reason, by kind: the text before ` (` (repeatable).
    #[arg(long = "reason", value_name = "REASON")]
    pub reasons: Vec<String>,
    /// Only restarts at or after TIME: RFC 3339, `YYYY-MM-DD[ HH:MM[:SS]]` (UTC), or a duration
    /// ago (`7d`, `12h`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only restarts before TIME (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Also count this reason kind as planned (repeatable).
    #[arg(long = "planned", value_name = "REASON")]
    pub planned: Vec<String>,
    /// A node flaps when this many failures fall within --flap-window.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..))]
    pub flap_count: u32,
    /// The flapping window (`30m`, `1h`, seconds).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub flap_window: Duration,
    /// How many of the longest stable runs to list.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,
    /// Print JSON instead of tables.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print one tidy CSV (`section,node,reason,day,hour,from,to,metric,value`).
    #[arg(long)]
    pub csv: bool,
    /// Also draw restarts per day per node into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Parser threads per file (default: the number of CPUs, at most 8).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: Option<u32>,
}

/// Runs a `log` command.
pub fn run(command: LogCommand) -> Result<u8, Failure> {
    match command {
        LogCommand::Analyze(args) => analyze_command(args, &SystemClock),
    }
}

fn analyze_command(args: AnalyzeArgs, clock: &dyn crate::time::Clock) -> Result<u8, Failure> {
    let now = clock.now();
    let options = Options {
        nodes: args.nodes.clone(),
        reasons: args.reasons.clone(),
        since_ms: args
            .since
            .as_deref()
            .map(|text| parse_time(text, now).map_err(|e| Failure::usage(format!("--since: {e}"))))
            .transpose()?,
        until_ms: args
            .until
            .as_deref()
            .map(|text| parse_time(text, now).map_err(|e| Failure::usage(format!("--until: {e}"))))
            .transpose()?,
        planned: DEFAULT_PLANNED
            .iter()
            .map(|s| s.to_string())
            .chain(args.planned.iter().cloned())
            .collect(),
        flap_count: args.flap_count as usize,
        flap_window_ms: i64::try_from(args.flap_window.as_millis()).unwrap_or(i64::MAX),
        top_stable: args.top,
    };
    let inputs = inputs(&args.files)?;
    let n_threads = args.threads.map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(8)
        },
        |n| n as usize,
    );
    let loaded = read::read_inputs(&inputs, n_threads).map_err(|e| {
        let message = match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        };
        Failure::runtime(message)
    })?;

    let mut stderr = std::io::stderr().lock();
    for summary in &loaded.inputs {
        let problems = loaded.problems.iter().filter(|p| p.file == summary.file);
        for problem in problems.take(STDERR_PROBLEMS) {
            let _ = writeln!(stderr, "warning: {problem} (skipped)");
        }
        if summary.skipped > STDERR_PROBLEMS {
            let _ = writeln!(
                stderr,
                "warning: {}: {} more unreadable lines skipped",
                summary.file,
                summary.skipped - STDERR_PROBLEMS
            );
        }
    }
    for node in &args.nodes {
        if !loaded.dataset.nodes.contains(node) {
            let _ = writeln!(stderr, "warning: no rows for node {node:?}");
        }
    }
    drop(stderr);

    let report = analyze::analyze(&loaded.dataset, &options);
    let document = Document {
        inputs: &loaded.inputs,
        skipped: loaded.inputs.iter().map(|i| i.skipped).sum(),
        problems: &loaded.problems,
        report: &report,
    };
    if let Some(path) = &args.plot {
        let svg = analyze::plot::restarts_per_day_svg(&report).map_err(Failure::runtime)?;
        std::fs::write(path, svg).map_err(|e| {
            Failure::runtime(format!("cannot write the plot {}: {e}", path.display()))
        })?;
    }
    let text = if args.json {
        render::json(&document)
    } else if args.csv {
        render::csv_text(&document)
    } else {
        render::table_text(&document)
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(0),
        // A closed pipe (`| head`) is not a failure of the analysis.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Failure::runtime(format!("cannot write the report: {e}"))),
    }
}

/// FILE arguments to inputs: `-` is stdin; none means stdin unless it is a terminal.
fn inputs(files: &[PathBuf]) -> Result<Vec<Input>, Failure> {
    if files.is_empty() {
        if std::io::stdin().is_terminal() {
            return Err(Failure::usage(
                "no restart log given: name one or more FILEs, or pipe one into stdin",
            ));
        }
        return Ok(vec![Input::Stdin]);
    }
    let n_stdin = files.iter().filter(|f| f.as_os_str() == "-").count();
    if n_stdin > 1 {
        return Err(Failure::usage("`-` (stdin) can be given once"));
    }
    Ok(files
        .iter()
        .map(|file| {
            if file.as_os_str() == "-" {
                Input::Stdin
            } else {
                Input::Path(file.clone())
            }
        })
        .collect())
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("not a duration ({e}): {text:?}"))
}

/// `--since`/`--until`: RFC 3339; a UTC date or date and time; or a duration before `now`.
fn parse_time(text: &str, now: SystemTime) -> Result<i64, String> {
    let text = text.trim();
    if let Some(ms) = crate::restart_log::timestamp::parse_timestamp(text.as_bytes()) {
        return Ok(ms);
    }
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(naive.and_utc().timestamp_millis());
        }
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        let now_ms = chrono::DateTime::<chrono::Utc>::from(now).timestamp_millis();
        let ago_ms = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_sub(ago_ms));
    }
    Err(format!(
        "not a time: {text:?} (RFC 3339, YYYY-MM-DD[ HH:MM[:SS]] UTC, or a duration ago like 7d)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_accepted_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10 * 86_400);
        let cases = [
            ("2026-11-22T01:02:03Z", Some(1_795_309_323_000)),
            ("2026-11-22T03:02:03+02:00", Some(1_795_309_323_000)),
            ("2026-11-22 01:02:03", Some(1_795_309_323_000)),
            ("2026-11-22 01:02", Some(1_795_309_320_000)),
            ("2026-11-22", Some(1_795_305_600_000)),
            ("1d", Some(9 * 86_400_000)),
            ("12h", Some(9 * 86_400_000 + 12 * 3_600_000)),
            ("yesterday", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_time(text, now).ok(), expected, "{text}");
        }
    }

    #[test]
    fn durations_in_seconds_or_with_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert!(parse_duration("soon").is_err());
    }
}

//! The parser against `restart_log`'s reader (same rows, same rejected lines and messages, on
//! well-formed and on mangled logs, through the chunked reader), jmanager's format, long records.

use super::*;
use crate::analyze::read::{self, Loaded, ReadError};
use crate::restart_log::record::Format;
use crate::restart_log::timestamp::parse_timestamp;
use crate::restart_log::{self, HEADER_LINE};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A nodekeeper log of `n_rows` rows written by the `csv` crate (as `restart_log` writes them),
/// with every awkward value: commas, quotes and line breaks in names and reasons, non-ASCII,
/// empty cells, offsets, nanoseconds, huge uptimes, and a few `\r\n` line ends.
fn tricky_log(n_rows: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let nodes = [
        "node1",
        "node two",
        "nœud",
        "a,b",
        "q\"uote",
        "",
        "multi\nline",
    ];
    let reasons = [
        "stale tip (no new block for 6 s)",
        "lag (height 11, reference 17, 6 behind)",
        "two\nlines (x)",
        "ends with cr\r",
        " padded ",
        "say \"hi\" (quoted)",
        "",
        "operator request",
        "ünïcode (détail)",
        "retry after a failed start",
        "backup to /b/n.tar.zst (1 MB in 2 s)",
        "automatic restore (corrupt database: x) from /b/n.tar.zst",
    ];
    let mut out = HEADER_LINE.as_bytes().to_vec();
    for _ in 0..n_rows {
        let ms = 1_700_000_000_000 + rng.below(100_000_000_000) as i64;
        let date = chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let timestamp = match rng.below(5) {
            0 => date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            1 => date.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            2 => date
                .with_timezone(&chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap())
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            3 => date
                .with_timezone(&chrono::FixedOffset::west_opt(7 * 3600).unwrap())
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
            _ => date.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let number = |rng: &mut Rng| match rng.below(4) {
            0 => String::new(),
            1 => u64::MAX.to_string(),
            _ => rng.below(1_000_000).to_string(),
        };
        let uptime = number(&mut rng);
        let height = number(&mut rng);
        let reference = number(&mut rng);
        let exit = match rng.below(3) {
            0 => String::new(),
            1 => "-15".to_string(),
            _ => "0".to_string(),
        };
        let record = [
            rng.pick(&nodes).to_string(),
            timestamp,
            rng.pick(&["stop", "start", "stop", "start", "backup", "restore"])
                .to_string(),
            uptime,
            rng.pick(&reasons).to_string(),
            "prog".to_string(),
            height,
            reference,
            rng.pick(&["RUNNING", "", "EXITED"]).to_string(),
            exit,
        ];
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        writer.write_record(&record).unwrap();
        let mut line = writer.into_inner().unwrap();
        if rng.below(10) == 0 {
            line.pop();
            line.extend(b"\r\n");
        }
        out.extend(line);
    }
    out
}

/// A row as both readers can say it: node, ms, action, uptime, reason kind.
type Plain = (String, i64, &'static str, Option<u32>, String);

fn ours(loaded: &Loaded) -> Vec<Plain> {
    let data = &loaded.dataset;
    data.rows()
        .map(|row| {
            (
                data.nodes[row.node as usize].clone(),
                row.timestamp_ms,
                row.action.as_str(),
                row.uptime_secs(),
                data.reasons[row.reason as usize].clone(),
            )
        })
        .collect()
}

fn theirs(rows: &[restart_log::RestartRow]) -> Vec<Plain> {
    rows.iter()
        .map(|row| {
            // Milliseconds, rounded down also before 1970.
            let ms = match row
                .timestamp
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
            {
                Ok(since) => since.as_millis() as i64,
                Err(before) => -(before.duration().as_nanos().div_ceil(1_000_000) as i64),
            };
            (
                row.node.clone(),
                ms,
                row.action.as_str(),
                row.uptime_secs
                    .map(|u| u32::try_from(u).unwrap_or(u32::MAX).min(u32::MAX - 1)),
                crate::analyze::reason_kind(&row.reason).to_string(),
            )
        })
        .collect()
}

/// Both readers accept the same rows and reject the same lines with the same messages.
#[track_caller]
fn check_agrees(bytes: &[u8], what: &str) {
    let expected = restart_log::read_rows_from(bytes);
    let actual = read::read_bytes(bytes, "x", 1);
    match (expected, actual) {
        (Ok((rows, problems)), Ok(loaded)) => {
            assert_eq!(ours(&loaded), theirs(&rows), "{what}: rows");
            let ours: Vec<(usize, &str)> = loaded
                .problems
                .iter()
                .map(|p| (p.line, p.message.as_str()))
                .collect();
            let theirs: Vec<(usize, &str)> = problems
                .iter()
                .map(|p| (p.line, p.message.as_str()))
                .collect();
            assert_eq!(ours, theirs, "{what}: problems");
        }
        (Err(_), Err(ReadError::Foreign { .. })) => {}
        (expected, actual) => panic!("{what}: {expected:?} vs {actual:?}"),
    }
}

#[test]
fn well_formed_logs_read_like_restart_log_reads_them() {
    for seed in 1..=20 {
        let log = tricky_log(200, seed);
        check_agrees(&log, &format!("seed {seed}"));
        let loaded = read::read_bytes(&log, "x", 1).unwrap();
        assert_eq!(loaded.dataset.n_rows(), 200, "seed {seed}");
    }
}

#[test]
fn mangled_logs_are_rejected_on_the_same_lines_with_the_same_messages() {
    let log = tricky_log(12, 7);
    let header = HEADER_LINE.len();
    for cut in header..log.len() {
        check_agrees(&log[..cut], &format!("cut at {cut}"));
    }
    for index in header..log.len() {
        for byte in [b'"', b'\n', b',', b'\r', 0xff, b'0', b' ', b'T'] {
            let mut mangled = log.clone();
            mangled[index] = byte;
            check_agrees(&mangled, &format!("byte {index} set to {byte:#x}"));
        }
    }
}

#[test]
fn corrupt_and_truncated_lines_are_reported_with_their_line_numbers() {
    let content = [
        HEADER_LINE,                                                            // 1
        "node1,2026-11-20T01:00:00.000Z,stop,3600,stale tip (x),node1,,,,\n",   // 2
        "garbage without commas\n",                                             // 3
        "\n",                                                                   // 4: blank
        "node1,yesterday,stop,,hung,node1,,,,\n",                               // 5
        "\"unclosed quote,x\n",                                                 // 6
        "node2,2026-11-20T05:00:00Z,reboot,,crashed,node2,,,,\n",               // 7
        "node2,2026-11-20T05:00:00Z,stop,7200,\"a, b\",node2,10,10,RUNNING,\n", // 8
        "node3,2026-11-20T06:00:00Z,stop,-1,stale tip,node3,,,,\n",             // 9
        "node3,2026-11-20T06:0",                                                // 10: torn
    ]
    .concat();
    let loaded = read::read_bytes(content.as_bytes(), "corrupt.csv", 1).unwrap();
    assert_eq!(loaded.dataset.n_rows(), 2);
    let problems: Vec<(usize, &str)> = loaded
        .problems
        .iter()
        .map(|p| (p.line, p.message.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            (3, "1 fields, expected 10"),
            (5, "timestamp is not an RFC 3339 date: \"yesterday\""),
            // The quote opened on line 6 closes on line 8: one bad record, its first line skipped.
            (6, "7 fields, expected 10"),
            (
                7,
                "action is not stop, start, backup or restore: \"reboot\""
            ),
            (9, "uptime is not a valid number: \"-1\""),
            (10, "incomplete row (no line end)"),
        ]
    );
    assert_eq!(
        loaded.problems[0].to_string(),
        "corrupt.csv:3: 1 fields, expected 10"
    );
    assert_eq!(loaded.inputs[0].skipped, 6);
    check_agrees(content.as_bytes(), "corrupt");
}

#[test]
fn jmanager_rows_are_read_with_python_timestamps_and_unknown_uptimes() {
    let content = "node name, timestamp, action, uptime, reason\n\
                   node_one,2020-06-18 16:42:50.123456,stop,35211,staled tip\n\
                   node_one,2020-06-18 16:42:51,start,-1,staled tip\n\
                   node_two,2020-06-18 17:00:00.5,start,-1,\n\
                   node_two,2020-06-19 10:00:00,stop,,JcliError: JError.FAILED_REST_REQUEST, more\r\n\
                   node_two,2020-06-19 10:00:00,stop\n\
                   node_two,2020-06-19T10:00:00Z,stop,x,boot timeout\n\
                   node_two,June 19th,stop,1,boot timeout\n\
                   node_two,2020-06-19 10:00:01,start,-1,boot timeout";
    let loaded = read::read_bytes(content.as_bytes(), "restarts.csv", 1).unwrap();
    assert_eq!(loaded.inputs[0].format, Some(Format::Jmanager));
    let at = |text: &str| parse_timestamp(text.as_bytes()).unwrap();
    let rows = ours(&loaded);
    assert_eq!(
        rows,
        [
            (
                "node_one".to_string(),
                at("2020-06-18T16:42:50.123Z"),
                "stop",
                Some(35211),
                "staled tip".to_string()
            ),
            (
                "node_one".into(),
                at("2020-06-18T16:42:51Z"),
                "start",
                None,
                "staled tip".into()
            ),
            (
                "node_two".into(),
                at("2020-06-18T17:00:00.500Z"),
                "start",
                None,
                String::new()
            ),
            (
                "node_two".into(),
                at("2020-06-19T10:00:00Z"),
                "stop",
                None,
                "JcliError: JError.FAILED_REST_REQUEST, more".into()
            ),
        ]
    );
    let problems: Vec<(usize, &str)> = loaded
        .problems
        .iter()
        .map(|p| (p.line, p.message.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            (6, "3 fields, expected 5"),
            (7, "uptime is not a valid number: \"x\""),
            (8, "timestamp is not a date: \"June 19th\""),
            (9, "incomplete row (no line end)"),
        ]
    );
}

#[test]
fn a_foreign_file_is_refused_naming_it() {
    let error = read::read_bytes(b"hello,world\n1,2\n", "notes.csv", 1).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("notes.csv is not a restart log"),
        "{message}"
    );
    assert!(message.contains("\"hello,world\""), "{message}");
}

#[test]
fn a_record_longer_than_the_limit_costs_only_its_first_line() {
    let mut content = HEADER_LINE.as_bytes().to_vec();
    content.extend(b"\"an unclosed quote,x\n");
    let good = b"node1,2026-11-20T01:00:00Z,stop,1,hung,node1,,,,\n";
    while content.len() < 2 * MAX_RECORD {
        content.extend(good);
    }
    let loaded = read::read_bytes(&content, "x", 1).unwrap();
    assert_eq!(
        loaded.problems.iter().map(|p| p.line).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(
        loaded.dataset.n_rows(),
        (content.len() - HEADER_LINE.len() - 21) / good.len()
    );
}

#[test]
fn reason_kinds_are_the_text_before_the_details() {
    for (reason, kind) in [
        ("stale tip (no new block for 6 s)", "stale tip"),
        ("lag (height 1, reference 9, 8 behind)", "lag"),
        ("staled tip", "staled tip"),
        (
            "JcliError: JError.FAILED_REST_REQUEST",
            "JcliError: JError.FAILED_REST_REQUEST",
        ),
        ("(only details)", "(only details)"),
        ("backup to /b/x.tar.zst (1 GB in 3 s)", "backup"),
        ("backup failed: disk full (ENOSPC)", "backup failed"),
        ("restore from /b/x.tar.zst", "restore"),
        (
            "automatic restore (corrupt database) from /b/x",
            "automatic restore",
        ),
        ("backups pruned", "backups pruned"),
        (" padded ", "padded"),
        ("", ""),
    ] {
        assert_eq!(reason_kind(reason.as_bytes()), kind.as_bytes(), "{reason}");
        assert_eq!(crate::analyze::reason_kind(reason), kind, "{reason}");
    }
}

#[test]
fn parallel_reading_matches_one_sequential_pass() {
    // Multi-line quoted records and a stray quote make some split points fall inside a record.
    let mut log = tricky_log(400, 3);
    let middle = log.len() / 2;
    log[middle] = b'"';
    let sequential = read::read_bytes_split(&log, "x", 1, 0).unwrap();
    for n_threads in [2, 3, 4, 7, 16, 64] {
        let parallel = read::read_bytes_split(&log, "x", n_threads, 0).unwrap();
        assert_eq!(ours(&parallel), ours(&sequential), "{n_threads} threads");
        assert_eq!(
            parallel.problems, sequential.problems,
            "{n_threads} threads"
        );
        assert_eq!(parallel.inputs, sequential.inputs, "{n_threads} threads");
    }
}

//! The restart log: writing, opening and repairing, reading back, the record format.

use super::record::{Format, Header, detect_header};
use super::timestamp::{HourCache, fast_timestamp, parse_python_timestamp, parse_rfc3339};
use super::*;
use std::time::{Duration, SystemTime};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn at(millis: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
}

/// A plain row, to vary with struct update syntax.
fn row(node: &str, action: RestartAction) -> RestartRow {
    RestartRow {
        node: node.into(),
        timestamp: at(1_795_309_323_123),
        action,
        uptime_secs: Some(35_211),
        reason: "staled tip".into(),
        program: format!("jnode_{node}"),
        height: Some(405_672),
        reference_height: Some(405_690),
        supervisor_state: "RUNNING".into(),
        exit_status: None,
    }
}

fn tricky_rows() -> Vec<RestartRow> {
    vec![
        row("one", RestartAction::Stop),
        RestartRow {
            node: "two, the second".into(),
            reason: "lag: 12 blocks behind \"majority\", restarting".into(),
            uptime_secs: None,
            height: None,
            reference_height: None,
            exit_status: Some(-9),
            supervisor_state: String::new(),
            ..row("two", RestartAction::Start)
        },
        RestartRow {
            reason: "spawn error:\nline two\r\nline three".into(),
            timestamp: at(0),
            exit_status: Some(i32::MIN),
            uptime_secs: Some(u64::MAX),
            ..row("three", RestartAction::Stop)
        },
        RestartRow {
            node: "\"".into(),
            reason: String::new(),
            program: "ünïcödé ✓".into(),
            timestamp: at(253_402_300_799_999), // 9999-12-31T23:59:59.999Z
            ..row("four", RestartAction::Start)
        },
        RestartRow {
            reason: " leading and trailing spaces ".into(),
            timestamp: SystemTime::UNIX_EPOCH - Duration::from_millis(1_500),
            ..row("five", RestartAction::Stop)
        },
        RestartRow {
            reason: "backup to /b/six-20261122T010203Z.tar.zst (123 MB in 4.2 s)".into(),
            uptime_secs: None,
            ..row("six", RestartAction::Backup)
        },
        RestartRow {
            reason: "automatic restore (corrupt database: dirty flag) from /b/six.tar.zst".into(),
            ..row("six", RestartAction::Restore)
        },
    ]
}

#[test]
fn header_line_is_what_the_csv_writer_writes() {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer.write_record(COLUMNS).unwrap();
    assert_eq!(writer.into_inner().unwrap(), HEADER_LINE.as_bytes());
}

#[test]
fn rows_are_encoded_as_documented() {
    let cases = [
        (
            row("one", RestartAction::Stop),
            "one,2026-11-22T01:02:03.123Z,stop,35211,staled tip,jnode_one,405672,405690,RUNNING,\n",
        ),
        (
            RestartRow {
                reason: "a, \"b\"".into(),
                uptime_secs: None,
                height: None,
                reference_height: None,
                exit_status: Some(1),
                ..row("two", RestartAction::Start)
            },
            "two,2026-11-22T01:02:03.123Z,start,,\"a, \"\"b\"\"\",jnode_two,,,RUNNING,1\n",
        ),
    ];
    for (row, expected) in cases {
        assert_eq!(
            String::from_utf8(encode_row(&row).unwrap()).unwrap(),
            expected
        );
    }
    // A backup's and a restore's own rows: the action is the cell text, and reads back.
    for action in [RestartAction::Backup, RestartAction::Restore] {
        let text = String::from_utf8(encode_row(&row("n", action)).unwrap()).unwrap();
        assert!(
            text.starts_with(&format!("n,2026-11-22T01:02:03.123Z,{action},")),
            "{text}"
        );
        let (rows, problems) = read_rows_from(format!("{HEADER_LINE}{text}").as_bytes()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(rows, [row("n", action)]);
    }
    for action in RestartAction::ALL {
        assert_eq!(RestartAction::parse(action.as_str()), Some(action));
        let json = serde_json::to_string(&action).unwrap();
        assert_eq!(json, format!("\"{action}\""));
    }
    assert_eq!(RestartAction::parse("Backup"), None);
    let far = RestartRow {
        timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000),
        ..row("x", RestartAction::Stop)
    };
    assert!(matches!(
        encode_row(&far),
        Err(RestartLogError::Timestamp { .. })
    ));
}

#[test]
fn round_trips_tricky_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restarts.csv");
    let (mut log, report) = RestartLog::open(&path).unwrap();
    assert_eq!(
        report,
        OpenReport {
            wrote_header: true,
            ..OpenReport::default()
        }
    );
    for row in tricky_rows() {
        log.append(&row).unwrap();
    }
    let (rows, problems) = read_rows(&path).unwrap();
    assert_eq!(problems, vec![]);
    assert_eq!(rows, tricky_rows());
    let file = std::fs::read(&path).unwrap();
    let (rows, problems) = read_rows_from(&file[..]).unwrap();
    assert_eq!((rows.len(), problems.len()), (tricky_rows().len(), 0));
}

#[test]
fn a_new_file_is_0644_and_a_missing_directory_is_an_error_naming_the_path() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restarts.csv");
    RestartLog::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    // The umask may take bits away, never add them.
    assert_eq!(mode & !0o644, 0, "{mode:o}");

    let missing = dir.path().join("no/such/dir/restarts.csv");
    let error = RestartLog::open(&missing).unwrap_err();
    assert!(matches!(error, RestartLogError::Create { .. }));
    assert!(
        error.to_string().contains("no/such/dir/restarts.csv"),
        "{error}"
    );

    let error = RestartLog::open(dir.path()).unwrap_err();
    assert!(error.to_string().contains("not a regular file"), "{error}");
}

#[test]
fn reopening_appends_under_a_single_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restarts.csv");
    for (index, node) in ["a", "b", "c"].into_iter().enumerate() {
        let (mut log, report) = RestartLog::open(&path).unwrap();
        assert_eq!(report.wrote_header, index == 0);
        assert_eq!(report.repaired_torn_bytes, None);
        log.append(&row(node, RestartAction::Stop)).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("node name").count(), 1);
    assert!(text.starts_with(HEADER_LINE));
    let (rows, _) = read_rows(&path).unwrap();
    let nodes: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(nodes, ["a", "b", "c"]);
}

#[test]
fn each_row_is_on_disk_when_append_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restarts.csv");
    let (mut log, _) = RestartLog::open(&path).unwrap();
    for count in 1..=3 {
        log.append(&row("a", RestartAction::Start)).unwrap();
        // Read through another handle while the log is still open: no buffering in between.
        let (rows, problems) = read_rows(&path).unwrap();
        assert_eq!((rows.len(), problems.len()), (count, 0));
    }
    assert_eq!(log.path(), path);
}

/// Opens a file holding `content` and returns the report, or the error text.
fn open_with(content: &[u8]) -> (tempfile::TempDir, PathBuf, Result<OpenReport, String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restarts.csv");
    std::fs::write(&path, content).unwrap();
    let result = RestartLog::open(&path)
        .map(|(_, report)| report)
        .map_err(|e| e.to_string());
    (dir, path, result)
}

#[test]
fn torn_last_rows_are_cut_and_reported() {
    let good = String::from_utf8(encode_row(&row("a", RestartAction::Stop)).unwrap()).unwrap();
    let multi_line = String::from_utf8(
        encode_row(&RestartRow {
            reason: "first\nsecond".into(),
            ..row("m", RestartAction::Stop)
        })
        .unwrap(),
    )
    .unwrap();
    let cut_after_break = &multi_line[..multi_line.find('\n').unwrap() + 1];
    let cases: Vec<(&str, String, String)> = vec![
        (
            "partial row",
            format!("{HEADER_LINE}{good}b,2026-11-2"),
            "b,2026-11-2".into(),
        ),
        (
            "complete row without line end",
            format!("{HEADER_LINE}{}", good.trim_end()),
            good.trim_end().into(),
        ),
        (
            "cut just after a line break inside quotes",
            format!("{HEADER_LINE}{good}{cut_after_break}"),
            cut_after_break.into(),
        ),
        (
            "cut in the line after a line break inside quotes",
            format!("{HEADER_LINE}{good}{cut_after_break}sec"),
            format!("{cut_after_break}sec"),
        ),
        (
            "partial row after the header",
            format!("{HEADER_LINE}x"),
            "x".into(),
        ),
    ];
    for (name, content, torn) in cases {
        let (_dir, path, report) = open_with(content.as_bytes());
        let report = report.unwrap();
        assert_eq!(
            report.repaired_torn_bytes.as_deref(),
            Some(torn.as_bytes()),
            "{name}"
        );
        assert_eq!(report.last_row_problem, None, "{name}");
        // The next row starts on a fresh line and everything kept reads back cleanly.
        let (mut log, report) = RestartLog::open(&path).unwrap();
        assert_eq!(report.repaired_torn_bytes, None, "{name}: repaired once");
        log.append(&row("next", RestartAction::Start)).unwrap();
        let (rows, problems) = read_rows(&path).unwrap();
        assert_eq!(problems, vec![], "{name}");
        assert_eq!(rows.last().unwrap().node, "next", "{name}");
    }
}

#[test]
fn a_torn_or_missing_header_is_rewritten() {
    for content in [
        &b""[..],
        b"node name,time",
        HEADER_LINE.trim_end().as_bytes(),
    ] {
        let (_dir, path, report) = open_with(content);
        let report = report.unwrap();
        assert!(report.wrote_header);
        let torn = (!content.is_empty()).then(|| content.to_vec());
        assert_eq!(report.repaired_torn_bytes, torn);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), HEADER_LINE);
    }
}

#[test]
fn a_foreign_header_is_refused_naming_the_file() {
    let jmanager = "node name, timestamp, action, uptime, reason\n\
                    node_one,2020-06-18 16:42:50.123456,stop,35211,staled tip\n";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("jmanager", jmanager.as_bytes().to_vec()),
        (
            "five of our columns",
            b"node name,timestamp,action,uptime,reason\n".to_vec(),
        ),
        ("text without a line end", b"hello".to_vec()),
        ("binary", vec![0u8, 159, 146, 150, b'\n']),
        ("a large file without line ends", vec![b'x'; 200_000]),
    ];
    for (name, content) in cases {
        let (_dir, path, result) = open_with(&content);
        let message = result.unwrap_err();
        assert!(
            message.contains(&path.display().to_string()),
            "{name}: {message}"
        );
        assert!(
            message.contains("expected nodekeeper's header"),
            "{name}: {message}"
        );
        assert!(message.len() < 400, "{name}: {message}");
        // The file is left as it was.
        assert_eq!(std::fs::read(&path).unwrap(), content, "{name}");
    }
}

#[test]
fn a_corrupt_middle_line_never_makes_good_rows_look_torn() {
    let good = String::from_utf8(encode_row(&row("b", RestartAction::Stop)).unwrap()).unwrap();
    let content = format!("{HEADER_LINE}\"unclosed quote,x\n{good}{good}");
    let (_dir, path, report) = open_with(content.as_bytes());
    assert_eq!(report.unwrap(), OpenReport::default());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
    let (rows, problems) = read_rows(&path).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(problems.iter().map(|p| p.line).collect::<Vec<_>>(), [2]);
}

#[test]
fn a_bad_last_row_is_reported_not_fatal() {
    let content = format!("{HEADER_LINE}a,yesterday,stop,,,p,,,,\n");
    let (_dir, _path, report) = open_with(content.as_bytes());
    let report = report.unwrap();
    assert_eq!(report.repaired_torn_bytes, None);
    let problem = report.last_row_problem.unwrap();
    assert_eq!(problem.line, 2);
    assert!(
        problem
            .message
            .starts_with("timestamp is not an RFC 3339 date"),
        "{problem}"
    );
}

#[test]
fn corrupt_rows_are_reported_with_their_line_and_skipped() {
    let good = |node: &str| {
        String::from_utf8(encode_row(&row(node, RestartAction::Stop)).unwrap()).unwrap()
    };
    let multi = String::from_utf8(
        encode_row(&RestartRow {
            reason: "x\ny".into(),
            ..row("m", RestartAction::Start)
        })
        .unwrap(),
    )
    .unwrap();
    let content = [
        HEADER_LINE.to_string(),                                  // 1
        good("a"),                                                // 2
        "garbage without commas\n".into(),                        // 3
        multi,                                                    // 4-5
        "b,2026-11-22T01:02:03Z,reboot,,,p,,,,\n".into(),         // 6
        "\"unclosed quote,swallowing\n".into(),                   // 7
        good("c"),                                                // 8
        "\n".into(),                                              // 9: blank, skipped silently
        "d,2026-11-22T01:02:03Z,stop,-1,,p,,,,\n".into(),         // 10
        "e,2026-11-22T01:02:03Z,stop,,,p,,,,9999999999\n".into(), // 11
        good("f"),                                                // 12
        "g,2026-11-2".into(),                                     // 13: torn
    ]
    .concat();
    let (rows, problems) = read_rows_from(content.as_bytes()).unwrap();
    let nodes: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(nodes, ["a", "m", "c", "f"]);
    let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [3, 6, 7, 10, 11, 13], "{problems:?}");
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(messages[0], "1 fields, expected 10");
    assert!(messages[1].starts_with("action is not stop, start, backup or restore"));
    assert!(messages[3].starts_with("uptime is not a valid number"));
    assert!(messages[4].starts_with("exit status is not a valid number"));
    assert_eq!(messages[5], "incomplete row (no line end)");
}

#[test]
fn the_csv_crate_reads_what_we_read() {
    let mut content = HEADER_LINE.as_bytes().to_vec();
    for row in tricky_rows() {
        content.extend(encode_row(&row).unwrap());
    }
    let ours: Vec<Vec<u8>> = {
        let (rows, _) = read_rows_from(&content[..]).unwrap();
        rows.iter().map(|row| encode_row(row).unwrap()).collect()
    };
    let mut reader = csv::ReaderBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(&content[..]);
    assert_eq!(
        reader.byte_headers().unwrap(),
        &csv::ByteRecord::from(COLUMNS.to_vec())
    );
    let theirs: Vec<Vec<u8>> = reader
        .byte_records()
        .map(|record| {
            let mut writer = csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(Vec::new());
            writer.write_byte_record(&record.unwrap()).unwrap();
            writer.into_inner().unwrap()
        })
        .collect();
    assert_eq!(ours, theirs);
}

#[test]
fn reading_never_panics_on_mangled_logs() {
    let mut content = HEADER_LINE.as_bytes().to_vec();
    for row in tricky_rows() {
        content.extend(encode_row(&row).unwrap());
    }
    // Every truncation and every single-byte change still reads without panicking.
    for cut in 0..content.len() {
        let _ = read_rows_from(&content[..cut]);
    }
    for index in HEADER_LINE.len()..content.len() {
        for byte in [b'"', b'\n', b',', b'\r', 0xff] {
            let mut mangled = content.clone();
            mangled[index] = byte;
            let _ = read_rows_from(&mangled[..]);
        }
    }
}

#[test]
fn read_tail_returns_the_last_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restarts.csv");
    let (mut log, _) = RestartLog::open(&path).unwrap();
    for index in 0..100 {
        log.append(&row(&format!("n{index}"), RestartAction::Stop))
            .unwrap();
    }
    let all = read_tail(&path, 1 << 20).unwrap();
    assert_eq!(all.len(), 100);
    let tail = read_tail(&path, 500).unwrap();
    assert!(!tail.is_empty() && tail.len() < 10, "{}", tail.len());
    assert_eq!(tail.last().unwrap().node, "n99");
    assert!(read_tail(&dir.path().join("missing.csv"), 500).is_err());
}

#[test]
fn headers_name_the_format() {
    let nodekeeper = HEADER_LINE.as_bytes();
    let cases: Vec<(&[u8], bool, Header)> = vec![
        (
            nodekeeper,
            true,
            Header::Known {
                format: Format::Nodekeeper,
                end: nodekeeper.len(),
            },
        ),
        (
            b"node name, timestamp, action, uptime, reason\r\nx",
            true,
            Header::Known {
                format: Format::Jmanager,
                end: 46,
            },
        ),
        (
            b"node name,timestamp,action,uptime,reason\n",
            true,
            Header::Known {
                format: Format::Jmanager,
                end: 41,
            },
        ),
        (b"", true, Header::Incomplete),
        (b"node name,time", true, Header::Incomplete),
        (b"node name, time", true, Header::Incomplete),
        (
            b"node name,time",
            false,
            Header::Foreign("\"node name,time\"".into()),
        ),
        (b"a,b,c\n", true, Header::Foreign("\"a,b,c\"".into())),
    ];
    for (head, whole, expected) in cases {
        assert_eq!(
            detect_header(head, whole),
            expected,
            "{}",
            String::from_utf8_lossy(head)
        );
    }
}

#[test]
fn the_fast_timestamp_parser_agrees_with_chrono() {
    let mut rng = Rng(99);
    for _ in 0..20_000 {
        // 1900 to 2100, any millisecond.
        let ms = -2_208_988_800_000 + rng.below(6_311_433_600_000) as i64;
        let date = chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let offset = chrono::FixedOffset::east_opt(rng.below(48 * 1800) as i32 - 24 * 1800 + 1)
            .unwrap_or(chrono::FixedOffset::east_opt(0).unwrap());
        let texts = [
            date.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            date.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            date.with_timezone(&offset)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        ];
        let mut cache = HourCache::default();
        for text in &texts {
            let expected = chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_millis();
            assert_eq!(
                parse_rfc3339(text.as_bytes(), &mut cache),
                Some(expected),
                "{text}"
            );
            assert!(fast_timestamp(text.as_bytes(), true, &mut cache).is_some());
        }
        let python = date.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        assert_eq!(
            parse_python_timestamp(python.as_bytes(), &mut cache),
            Some(ms),
            "{python}"
        );
    }
    // Shapes left to chrono, and nonsense.
    let mut cache = HourCache::default();
    for (text, expected) in [
        ("2016-12-31T23:59:60.500Z", Some(1_483_228_800_500)),
        ("2026-02-29T00:00:00Z", None),
        ("2024-02-29T00:00:00Z", Some(1_709_164_800_000)),
        ("2026-11-22T24:00:00Z", None),
        ("2026-11-22T01:02:03", None),
        ("2026-11-22T01:02:03.Z", None),
        ("2026-11-22T01:02:03+25:00", None),
    ] {
        let parsed = parse_rfc3339(text.as_bytes(), &mut cache);
        let chrono = chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|d| d.timestamp_millis());
        assert_eq!(parsed, chrono, "{text}: as chrono");
        assert_eq!(parsed, expected, "{text}");
    }
}

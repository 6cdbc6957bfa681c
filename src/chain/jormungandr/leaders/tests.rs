//! The leader endpoints' decoding (ids, promotion answers, logs, settings), their URLs, and the
//! client against hung and absent nodes, never quoting the secret.

use std::time::SystemTime;

use tokio::net::TcpListener;

use super::*;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn detail(result: Result<impl std::fmt::Debug, ProbeError>) -> String {
    match result {
        Err(ProbeError::Malformed(detail)) => {
            assert!(detail.len() < 120, "detail too long: {detail}");
            detail
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn leader_ids_decode() {
    assert_eq!(parse_leaders(b"[1]"), Ok(vec![1]));
    assert_eq!(parse_leaders(b"[]"), Ok(vec![]));
    assert_eq!(parse_leaders(b" [2, 1] "), Ok(vec![2, 1]));
    assert_eq!(parse_leaders(b"[4294967295]"), Ok(vec![u32::MAX]));
    let cases: [(&[u8], &str); 6] = [
        (b"", "not JSON"),
        (b"{\"leaders\":[1]}", "not a JSON array"),
        (b"[-1]", "[0] is not a leader id: -1"),
        (b"[1,\"2\"]", "[1] is a string, not a leader id"),
        (b"[4294967296]", "[0] is not a leader id: 4294967296"),
        (b"[1.5]", "[0] is not a leader id"),
    ];
    for (body, expected) in cases {
        let got = detail(parse_leaders(body));
        assert!(got.starts_with(expected), "{got}");
    }
}

#[test]
fn a_promotion_answer_is_one_id_and_never_quoted() {
    assert_eq!(parse_leader_id(b"1"), Ok(1));
    assert_eq!(parse_leader_id(b"7\n"), Ok(7));
    for (body, expected) in [
        ("", "not JSON (0 bytes)"),
        ("\"1\"", "a string instead of a leader id"),
        ("-1", "a number out of the leader id range"),
        ("[1]", "an array instead of a leader id"),
        (
            r#"{"genesis":{"sig_key":"kes25519-12-sk1LEAK"}}"#,
            "an object instead of a leader id",
        ),
        (r#"{"genesis":{"sig_key":"kes25519-12-sk1LEAK""#, "not JSON"),
    ] {
        let got = detail(parse_leader_id(body.as_bytes()));
        assert!(got.starts_with(expected), "{got}");
        assert!(!got.contains("LEAK"), "{got}");
    }
}

/// The reference's example, with the elided values of its third entry filled in.
const LOGS: &str = r#"[{"created_at_time":"2020-05-08T19:13:40.417263555+00:00","scheduled_at_time":"2020-05-08T23:18:35+00:00",
  "scheduled_at_date":"147.7349","wake_at_time":null,"finished_at_time":null,"status":"Pending","enclave_leader_id":1},
 {"created_at_time":"2020-05-08T19:13:40.417263555+00:00","scheduled_at_time":"2020-05-08T20:01:17+00:00",
  "scheduled_at_date":"147.1430","wake_at_time":"2020-05-08T20:01:17.001254555+00:00",
  "finished_at_time":"2020-05-08T20:01:17.410113333+00:00","enclave_leader_id":1,
  "status":{"Block":{"block":"d9040ca5…4174","parent":"cc72d4ca…4832","chain_length":406012}}},
 {"created_at_time":"2020-05-08T19:13:40.417263555+00:00","scheduled_at_time":"2020-05-08T20:20:17+00:00",
  "scheduled_at_date":"147.2000","wake_at_time":"2020-05-08T20:20:17.002+00:00",
  "finished_at_time":"2020-05-08T20:20:17.3+00:00","enclave_leader_id":2,
  "status":{"Rejected":{"reason":"Missed the deadline to compute the schedule"}}}]"#;

#[test]
fn logs_decode_the_reference_shapes() {
    let logs = parse_logs(LOGS.as_bytes()).unwrap();
    assert_eq!(
        logs,
        vec![
            LeaderLog {
                date: SlotDate {
                    epoch: 147,
                    slot: 7349
                },
                scheduled_at: at(1_588_979_915),
                finished: false,
                status: LogStatus::Pending,
                enclave_leader_id: 1,
            },
            LeaderLog {
                date: SlotDate {
                    epoch: 147,
                    slot: 1430
                },
                scheduled_at: at(1_588_968_077),
                finished: true,
                status: LogStatus::Block,
                enclave_leader_id: 1,
            },
            LeaderLog {
                date: SlotDate {
                    epoch: 147,
                    slot: 2000
                },
                scheduled_at: at(1_588_969_217),
                finished: true,
                status: LogStatus::Rejected("Missed the deadline to compute the schedule".into()),
                enclave_leader_id: 2,
            },
        ]
    );
    // The ITN clock puts each scheduled time on its date.
    let itn = SlotClock::new(at(1_576_264_417), Duration::from_secs(2), 43_200).unwrap();
    for log in &logs {
        assert_eq!(itn.date_time(log.date), log.scheduled_at, "{:?}", log.date);
    }
    assert_eq!(parse_logs(b"[]"), Ok(vec![]));
    let in_a_block = r#"[{"scheduled_at_time":"2020-05-08T20:01:17+00:00","scheduled_at_date":"147.1430",
            "status":{"InABlock":{"block":"aa","chain_length":1}},"enclave_leader_id":3}]"#;
    let log = &parse_logs(in_a_block.as_bytes()).unwrap()[0];
    assert_eq!(
        (log.status.clone(), log.finished),
        (LogStatus::Block, false)
    );
}

#[test]
fn a_bad_log_entry_fails_the_whole_answer() {
    let entry = |date: &str, time: &str, finished: &str, status: &str, id: &str| {
        format!(
            r#"[{{"scheduled_at_time":"2020-05-08T20:01:17+00:00","scheduled_at_date":"147.1","status":"Pending","enclave_leader_id":1}},
                {{"scheduled_at_date":{date},"scheduled_at_time":{time},"finished_at_time":{finished},"status":{status},"enclave_leader_id":{id}}}]"#
        )
    };
    let good = (
        r#""147.2""#,
        r#""2020-05-08T20:01:19+00:00""#,
        "null",
        r#""Pending""#,
        "1",
    );
    assert_eq!(
        parse_logs(entry(good.0, good.1, good.2, good.3, good.4).as_bytes()).map(|logs| logs.len()),
        Ok(2)
    );
    let long = format!("\"{}\"", "x".repeat(5_000));
    let cases = [
        (
            entry(r#""147""#, good.1, good.2, good.3, good.4),
            "[1] scheduled_at_date is not an epoch.slot date: \"147\"",
        ),
        (
            entry("147.2", good.1, good.2, good.3, good.4),
            "[1] scheduled_at_date is a number",
        ),
        (
            entry(&long, good.1, good.2, good.3, good.4),
            "[1] scheduled_at_date is not an epoch.slot date",
        ),
        (
            entry(good.0, r#""tomorrow""#, good.2, good.3, good.4),
            "[1] scheduled_at_time is not an RFC 3339 date",
        ),
        (
            entry(good.0, "null", good.2, good.3, good.4),
            "[1] scheduled_at_time is null, not a date",
        ),
        (
            entry(good.0, good.1, "17", good.3, good.4),
            "[1] finished_at_time is a number, not a date",
        ),
        (
            entry(good.0, good.1, good.2, r#""Done""#, good.4),
            "[1] status is not a known outcome: \"Done\"",
        ),
        (
            entry(good.0, good.1, good.2, r#"{"Rejected":{}}"#, good.4),
            "[1] status Rejected has no reason",
        ),
        (
            entry(
                good.0,
                good.1,
                good.2,
                r#"{"Rejected":{"reason":3}}"#,
                good.4,
            ),
            "[1] status reason is a number",
        ),
        (
            entry(good.0, good.1, good.2, r#"{"Block":null}"#, good.4),
            "[1] status \"Block\" is null, not a known outcome",
        ),
        (
            entry(
                good.0,
                good.1,
                good.2,
                r#"{"Block":{},"Pending":{}}"#,
                good.4,
            ),
            "[1] status is an object, not an outcome",
        ),
        (
            entry(good.0, good.1, good.2, "null", good.4),
            "[1] status is null, not an outcome",
        ),
        (
            entry(good.0, good.1, good.2, good.3, r#""1""#),
            "[1] enclave_leader_id is a string, not a leader id",
        ),
        (
            entry(good.0, good.1, good.2, good.3, "-3"),
            "[1] enclave_leader_id is not a leader id: -3",
        ),
        (
            r#"[{"scheduled_at_date":"1.1"}]"#.to_string(),
            "[0] has no scheduled_at_time",
        ),
        ("[3]".to_string(), "[0] is a number, not a log entry"),
        ("{}".to_string(), "not a JSON array of log entries"),
        ("<html>".to_string(), "not JSON"),
    ];
    for (body, expected) in cases {
        let got = detail(parse_logs(body.as_bytes()));
        assert!(got.starts_with(expected), "{expected}: {got}");
    }
}

const ITN_SETTINGS: &str = r#"{"block0Hash":"8e4d2a343f3dcf9330ad9035b3e8d168e6728904262f2c434a4f8f934ec7b676",
 "block0Time":"2019-12-13T19:13:37+00:00","currSlotStartTime":"2020-05-08T11:44:01+00:00",
 "consensusVersion":"genesis","slotDuration":2,"slotsPerEpoch":43200,"epochStabilityDepth":10,
 "blockContentMaxSize":102400,
 "fees":{"constant":200000,"coefficient":100000,"certificate":400000},
 "treasuryTax":{"fixed":0,"ratio":{"numerator":1,"denominator":10}},
 "rewardParams":{"initialValue":3835616440000,"compoundingRatio":{"numerator":0,"denominator":1},
   "compoundingType":"Linear","epochRate":1,"epochStart":1,"rewardDrawingLimitMax":"None",
   "poolParticipationCapping":null}}"#;

#[test]
fn settings_decode_into_the_chain_clock() {
    let clock = parse_settings(ITN_SETTINGS.as_bytes()).unwrap();
    assert_eq!(
        clock,
        SlotClock::new(at(1_576_264_417), Duration::from_secs(2), 43_200).unwrap()
    );
    // 2020-05-08T23:18:35Z is ITN's 147.7349 (the reference's log example).
    assert_eq!(
        clock.date_at(at(1_588_979_915)),
        SlotDate {
            epoch: 147,
            slot: 7349
        }
    );
    let with = |key: &str, value: &str| {
        let mut settings: Value = serde_json::from_str(ITN_SETTINGS).unwrap();
        let fields = settings.as_object_mut().unwrap();
        if value.is_empty() {
            fields.remove(key);
        } else {
            fields.insert(key.into(), serde_json::from_str(value).unwrap());
        }
        settings.to_string()
    };
    let cases = [
        (with("block0Time", ""), "no block0Time"),
        (
            with("block0Time", r#""2019-12-13 19:13:37""#),
            "block0Time is not an RFC 3339 date",
        ),
        (with("slotDuration", "0"), "slotDuration is out of range"),
        (with("slotDuration", "2.5"), "slotDuration is out of range"),
        (
            with("slotDuration", "86400"),
            "slotDuration is out of range",
        ),
        (with("slotDuration", r#""2""#), "slotDuration is a string"),
        (with("slotsPerEpoch", ""), "no slotsPerEpoch"),
        (with("slotsPerEpoch", "0"), "slotsPerEpoch is out of range"),
        (
            with("slotsPerEpoch", "4294967296"),
            "slotsPerEpoch is out of range",
        ),
        ("[]".to_string(), "an array instead of a JSON object"),
        ("{".to_string(), "not JSON"),
    ];
    for (body, expected) in cases {
        let got = detail(parse_settings(body.as_bytes()));
        assert!(got.starts_with(expected), "{expected}: {got}");
    }
}

#[test]
fn urls_append_segments_to_the_api_base() {
    let api = Url::parse("http://127.0.0.1:3101/api/").unwrap();
    assert_eq!(
        api_url(&api, &["v0", "leaders", "7"]).unwrap().as_str(),
        "http://127.0.0.1:3101/api/v0/leaders/7"
    );
    assert_eq!(
        api_url(&api, &["v0", "leaders", "logs"]).unwrap().as_str(),
        "http://127.0.0.1:3101/api/v0/leaders/logs"
    );
}

// Over real HTTP. The client against the simulator (promotion, demotion, a node not running,
// logs and settings) is tested in tests/it/leader_api.rs: this library cannot use the simulator.

const FAST: Duration = Duration::from_secs(2);

fn secret(node_id: &str) -> LeaderSecret {
    LeaderSecret::Genesis {
        sig_key: "kes25519-12-sk1SECRETSECRET".into(),
        vrf_key: "vrf_sk1SECRETSECRET".into(),
        node_id: node_id.into(),
    }
}

#[tokio::test]
async fn a_hung_node_times_out_within_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // Accepts every connection and keeps it open without a word.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = Url::parse(&format!("http://{address}/api")).unwrap();
    let api = LeaderApi::new();
    let timeout = Duration::from_millis(200);
    let pool = secret("pool");
    let started = tokio::time::Instant::now();
    let (leaders, promote, demote, logs, settings) = tokio::join!(
        api.leaders(&url, timeout),
        api.promote(&url, &pool, timeout),
        api.demote(&url, 1, timeout),
        api.logs(&url, timeout),
        api.settings(&url, timeout),
    );
    assert!(started.elapsed() < Duration::from_millis(600));
    let hung = Some(ProbeError::Timeout(timeout));
    assert_eq!(leaders.err(), hung);
    assert_eq!(promote.err(), hung);
    assert_eq!(demote.err(), hung);
    assert_eq!(logs.err(), hung);
    assert_eq!(settings.err(), hung);
}

#[tokio::test]
async fn nothing_listening_is_refused_and_the_secret_stays_out_of_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let url = Url::parse(&format!("http://{address}/api")).unwrap();
    let error = LeaderApi::new()
        .promote(&url, &secret("pool"), FAST)
        .await
        .unwrap_err();
    assert_eq!(error, ProbeError::Refused);
    let odd = Url::parse("mailto:node@example.org").unwrap();
    let error = LeaderApi::new()
        .promote(&odd, &secret("pool"), FAST)
        .await
        .unwrap_err();
    assert!(matches!(error, ProbeError::Connect(_)), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("SECRET"));
}

//! What nodeos's HTTP answers mean, pure: `/v1/chain/get_info` into [`Info`] and a `NodeStatus`,
//! `/v1/producer/paused` (a bare `true` / `false`), and `/v1/chain/get_producer_schedule` into the
//! active producers in turn order. Nothing here panics on any bytes a node sends, and a field that
//! is present with the wrong type makes the whole answer `Malformed`: a half-understood answer is
//! not trusted.
//!
//! Wire facts (`chains.md`): `head_block_time` is `"2019-02-22T03:01:04.500"`, **without a zone:
//! it is UTC**; blocks come every 0.5 s; `head_block_producer` is whose turn it is.

use std::time::SystemTime;

use chrono::{NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::chain::{NodeState, NodeStatus, ProbeError};

/// The largest block number believed (a broken answer, not a tip, beyond it).
pub const MAX_PLAUSIBLE: u64 = 1_000_000_000_000;

/// The fields of `get_info` nodekeeper reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// `server_version_string` (or `server_version` when absent).
    pub version: String,
    /// `chain_id`.
    pub chain_id: String,
    /// `head_block_num`.
    pub head_block_num: u64,
    /// `head_block_time`, read as UTC.
    pub head_block_time: SystemTime,
    /// `head_block_producer`: whose turn it is.
    pub head_block_producer: String,
    /// `last_irreversible_block_num`.
    pub last_irreversible_block_num: u64,
    /// `head_block_id`.
    pub head_block_id: Option<String>,
}

impl Info {
    /// The chain-neutral status: Running with the head as its tip, and `head_block_time` as the
    /// tip's time. Whether the head is stale is the policy's judgement (`tip_timeout` on
    /// `tip_time`), not the adapter's.
    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            state: NodeState::Running,
            version: self.version.clone(),
            height: Some(self.head_block_num),
            irreversible_height: Some(self.last_irreversible_block_num),
            tip_hash: self.head_block_id.clone(),
            tip_date: None,
            last_block_time: Some(self.head_block_time),
            tip_time: Some(self.head_block_time),
            uptime_secs: None,
        }
    }

    /// Blocks between the head and the last irreversible block.
    pub fn lib_lag(&self) -> u64 {
        self.head_block_num
            .saturating_sub(self.last_irreversible_block_num)
    }
}

/// Decodes a `/v1/chain/get_info` body.
pub fn parse_info(body: &[u8]) -> Result<Info, ProbeError> {
    let fields = object(body)?;
    let version = match fields.get("server_version_string") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => return Err(wrong("server_version_string", other, "a string")),
        None => string(&fields, "server_version")?.to_string(),
    };
    let head_block_num = number(&fields, "head_block_num")?;
    let head_block_time = block_time(string(&fields, "head_block_time")?)?;
    Ok(Info {
        version,
        chain_id: string(&fields, "chain_id")?.to_string(),
        head_block_num,
        head_block_time,
        head_block_producer: string(&fields, "head_block_producer")?.to_string(),
        last_irreversible_block_num: number(&fields, "last_irreversible_block_num")?,
        head_block_id: match fields.get("head_block_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(other) => return Err(wrong("head_block_id", other, "a string")),
        },
    })
}

/// Decodes `/v1/producer/paused`: a bare `true` or `false`.
pub fn parse_paused(body: &[u8]) -> Result<bool, ProbeError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Bool(paused)) => Ok(paused),
        Ok(other) => Err(ProbeError::Malformed(format!(
            "paused is {}, not true or false",
            kind(&other)
        ))),
        Err(e) => Err(ProbeError::Malformed(format!("not JSON ({e})"))),
    }
}

/// Decodes `/v1/chain/get_producer_schedule`: the active producers' names, in turn order.
pub fn parse_schedule(body: &[u8]) -> Result<Vec<String>, ProbeError> {
    let fields = object(body)?;
    let active = match fields.get("active") {
        Some(Value::Object(active)) => active,
        Some(other) => return Err(wrong("active", other, "an object")),
        None => return Err(ProbeError::Malformed("no active".into())),
    };
    let producers = match active.get("producers") {
        Some(Value::Array(producers)) => producers,
        Some(other) => return Err(wrong("active.producers", other, "a list")),
        None => return Err(ProbeError::Malformed("no active.producers".into())),
    };
    let names = producers
        .iter()
        .map(|producer| match producer.get("producer_name") {
            Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
            _ => Err(ProbeError::Malformed(
                "a producer without a producer_name".into(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if names.is_empty() {
        return Err(ProbeError::Malformed("an empty active schedule".into()));
    }
    Ok(names)
}

/// `2019-02-22T03:01:04.500` (no zone: UTC); a trailing `Z` is accepted too.
pub fn block_time(text: &str) -> Result<SystemTime, ProbeError> {
    let plain = text.strip_suffix('Z').unwrap_or(text);
    NaiveDateTime::parse_from_str(plain, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|naive| SystemTime::from(Utc.from_utc_datetime(&naive)))
        .map_err(|_| ProbeError::Malformed(format!("head_block_time {text:?} is not a time")))
}

fn object(body: &[u8]) -> Result<Map<String, Value>, ProbeError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(other) => Err(ProbeError::Malformed(format!(
            "{} instead of a JSON object",
            kind(&other)
        ))),
        Err(e) => Err(ProbeError::Malformed(format!(
            "not JSON ({e}; {} bytes)",
            body.len()
        ))),
    }
}

fn string<'a>(fields: &'a Map<String, Value>, key: &str) -> Result<&'a str, ProbeError> {
    match fields.get(key) {
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(wrong(key, other, "a string")),
        None => Err(ProbeError::Malformed(format!("no {key}"))),
    }
}

fn number(fields: &Map<String, Value>, key: &str) -> Result<u64, ProbeError> {
    match fields.get(key) {
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|n| *n <= MAX_PLAUSIBLE)
            .ok_or_else(|| ProbeError::Malformed(format!("{key} {n} is not a block number"))),
        Some(other) => Err(wrong(key, other, "a number")),
        None => Err(ProbeError::Malformed(format!("no {key}"))),
    }
}

fn wrong(key: &str, value: &Value, expected: &str) -> ProbeError {
    ProbeError::Malformed(format!("{key} is {}, not {expected}", kind(value)))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A `get_info` answer of Leap 5 (fields as nodeos sends them).
    const INFO: &str = r#"{
        "server_version": "d133c641",
        "chain_id": "aca376f206b8fc25a6ed44dbdc66547c36c6c33e3a119ffbeaef943642f0e906",
        "head_block_num": 300000123,
        "last_irreversible_block_num": 300000000,
        "last_irreversible_block_id": "11e1a300aaaa",
        "head_block_id": "11e1a37bbbbb",
        "head_block_time": "2023-04-05T06:07:08.500",
        "head_block_producer": "eosnationftw",
        "virtual_block_cpu_limit": 200000000,
        "virtual_block_net_limit": 1048576000,
        "block_cpu_limit": 200000,
        "block_net_limit": 1048576,
        "server_version_string": "v5.0.2",
        "fork_db_head_block_num": 300000123,
        "fork_db_head_block_id": "11e1a37bbbbb",
        "server_full_version_string": "v5.0.2-d133c641",
        "total_cpu_weight": "1",
        "total_net_weight": "1",
        "earliest_available_block_num": 299000000,
        "last_irreversible_block_time": "2023-04-05T06:06:08.000"
    }"#;

    #[test]
    fn get_info_becomes_a_running_status_with_the_head_in_utc() {
        let info = parse_info(INFO.as_bytes()).unwrap();
        assert_eq!(info.head_block_producer, "eosnationftw");
        assert_eq!(info.lib_lag(), 123);
        let status = info.status();
        assert_eq!(status.state, NodeState::Running);
        assert_eq!(status.version, "v5.0.2");
        assert_eq!(status.height, Some(300_000_123));
        // 2023-04-05T06:07:08.500Z
        assert_eq!(
            status.last_block_time,
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_680_674_828_500))
        );
        assert_eq!(status.tip_time, status.last_block_time);
    }

    #[test]
    fn a_half_understood_answer_is_malformed() {
        for (body, why) in [
            ("[]", "a list instead of a JSON object"),
            ("nope", "not JSON"),
            (
                r#"{"chain_id":"x","head_block_num":"12","head_block_time":"2023-04-05T06:07:08.500","head_block_producer":"a","last_irreversible_block_num":1,"server_version":"v"}"#,
                "head_block_num is a string, not a number",
            ),
            (
                r#"{"chain_id":"x","head_block_num":12,"head_block_time":"yesterday","head_block_producer":"a","last_irreversible_block_num":1,"server_version":"v"}"#,
                "not a time",
            ),
            (
                r#"{"chain_id":"x","head_block_num":12,"head_block_time":"2023-04-05T06:07:08.500","last_irreversible_block_num":1,"server_version":"v"}"#,
                "no head_block_producer",
            ),
            (
                r#"{"chain_id":"x","head_block_num":-1,"head_block_time":"2023-04-05T06:07:08.500","head_block_producer":"a","last_irreversible_block_num":1,"server_version":"v"}"#,
                "not a block number",
            ),
        ] {
            match parse_info(body.as_bytes()) {
                Err(ProbeError::Malformed(detail)) => {
                    assert!(detail.contains(why), "{body}: {detail}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn paused_is_a_bare_boolean() {
        assert_eq!(parse_paused(b"true"), Ok(true));
        assert_eq!(parse_paused(b"false\n"), Ok(false));
        assert!(matches!(
            parse_paused(b"\"true\""),
            Err(ProbeError::Malformed(_))
        ));
        assert!(matches!(parse_paused(b""), Err(ProbeError::Malformed(_))));
    }

    #[test]
    fn the_schedule_is_the_active_producers_in_turn_order() {
        let body = r#"{"active":{"version":7,"producers":[
            {"producer_name":"alpha","authority":[0,{"threshold":1,"keys":[{"key":"EOS6...","weight":1}]}]},
            {"producer_name":"bravo","authority":[0,{"threshold":1,"keys":[]}]}
        ]},"pending":null,"proposed":null}"#;
        assert_eq!(parse_schedule(body.as_bytes()).unwrap(), ["alpha", "bravo"]);
        for bad in [
            r#"{"active":{"version":1,"producers":[]}}"#,
            r#"{"active":{"version":1,"producers":[{"authority":[]}]}}"#,
            r#"{"pending":null}"#,
        ] {
            assert!(
                matches!(
                    parse_schedule(bad.as_bytes()),
                    Err(ProbeError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn block_times_have_no_zone_and_are_utc() {
        let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(block_time("1970-01-01T00:00:01.500"), Ok(at(1_500)));
        assert_eq!(block_time("1970-01-01T00:00:01"), Ok(at(1_000)));
        assert_eq!(block_time("1970-01-01T00:00:01.500Z"), Ok(at(1_500)));
        assert!(block_time("1970-01-01 00:00:01").is_err());
    }
}

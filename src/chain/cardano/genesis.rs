//! Cardano's time without any outside service, pure: the Shelley genesis (`systemStart`,
//! `slotLength`, `epochLength`, `slotsPerKESPeriod`, `maxKESEvolutions`) gives the slot of now,
//! the reference a node's `slotNum` is compared with; the pool's leader slots come from the JSON
//! of `cardano-cli query leadership-schedule` (`[{"slotNumber": .., "slotTime": ..}]`).
//!
//! Simplification, said here: the slot of now assumes Shelley-era slots since `systemStart` (a
//! chain whose earlier era had other slot lengths, as mainnet's Byron, needs that era's offset;
//! the genesis of a test network or of the simulator has none).

use std::time::{Duration, SystemTime};

use serde_json::Value;

/// The genesis facts nodekeeper needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Genesis {
    /// `systemStart`.
    pub system_start: SystemTime,
    /// `slotLength`.
    pub slot_length: Duration,
    /// `epochLength`, in slots.
    pub epoch_length: u64,
    /// `slotsPerKESPeriod`.
    pub slots_per_kes_period: u64,
    /// `maxKESEvolutions`.
    pub max_kes_evolutions: u64,
}

/// Why a genesis or a schedule file cannot be read; names the key, never a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct FileError(String);

impl FileError {
    /// A problem in words (naming the key).
    pub fn new(message: impl Into<String>) -> FileError {
        FileError(message.into())
    }
}

impl Genesis {
    /// Reads a Shelley genesis JSON.
    pub fn parse(text: &str) -> Result<Genesis, FileError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| FileError(format!("not JSON: {e}")))?;
        let start = value
            .get("systemStart")
            .and_then(Value::as_str)
            .ok_or_else(|| FileError("systemStart: missing or not a string".into()))?;
        let system_start = chrono::DateTime::parse_from_rfc3339(start)
            .map(SystemTime::from)
            .map_err(|_| FileError(format!("systemStart {start:?} is not an RFC 3339 time")))?;
        let slot_length = value
            .get("slotLength")
            .and_then(Value::as_f64)
            .filter(|secs| secs.is_finite() && *secs > 0.0 && *secs <= 3600.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| FileError("slotLength: not a number of seconds in (0, 3600]".into()))?;
        let whole = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_u64)
                .filter(|n| *n > 0)
                .ok_or_else(|| FileError(format!("{key}: not a positive whole number")))
        };
        Ok(Genesis {
            system_start,
            slot_length,
            epoch_length: whole("epochLength")?,
            slots_per_kes_period: whole("slotsPerKESPeriod")?,
            max_kes_evolutions: whole("maxKESEvolutions")?,
        })
    }

    /// The slot of `now` (0 before `systemStart`).
    pub fn slot_at(&self, now: SystemTime) -> u64 {
        let since = now
            .duration_since(self.system_start)
            .unwrap_or(Duration::ZERO);
        let slot = since.as_nanos() / self.slot_length.as_nanos().max(1);
        u64::try_from(slot).unwrap_or(u64::MAX)
    }

    /// When `slot` begins.
    pub fn slot_time(&self, slot: u64) -> SystemTime {
        let nanos = self.slot_length.as_nanos().saturating_mul(u128::from(slot));
        let offset = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        crate::time::saturating_add(self.system_start, offset)
    }

    /// The epoch of `slot`.
    pub fn epoch_of(&self, slot: u64) -> u64 {
        slot / self.epoch_length
    }

    /// The KES period of `slot`.
    pub fn kes_period_of(&self, slot: u64) -> u64 {
        slot / self.slots_per_kes_period
    }
}

/// Reads `cardano-cli query leadership-schedule` JSON: the pool's slots, ascending.
pub fn parse_schedule(text: &str) -> Result<Vec<u64>, FileError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| FileError(format!("not JSON: {e}")))?;
    let Value::Array(entries) = value else {
        return Err(FileError("not a list of {slotNumber, slotTime}".into()));
    };
    let mut slots = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            entry
                .get("slotNumber")
                .and_then(Value::as_u64)
                .ok_or_else(|| FileError(format!("[{i}].slotNumber: missing or not a slot")))
        })
        .collect::<Result<Vec<u64>, FileError>>()?;
    slots.sort_unstable();
    slots.dedup();
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS: &str = r#"{
        "activeSlotsCoeff": 0.05,
        "epochLength": 432000,
        "maxKESEvolutions": 62,
        "networkMagic": 764824073,
        "slotLength": 1,
        "slotsPerKESPeriod": 129600,
        "systemStart": "2017-09-23T21:44:51Z",
        "securityParam": 2160
    }"#;

    #[test]
    fn the_slot_of_now_comes_from_the_genesis() {
        let genesis = Genesis::parse(GENESIS).unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_506_203_091);
        assert_eq!(genesis.system_start, start);
        assert_eq!(genesis.slot_at(start), 0);
        assert_eq!(genesis.slot_at(start + Duration::from_millis(1_999)), 1);
        assert_eq!(genesis.slot_at(start - Duration::from_secs(5)), 0);
        assert_eq!(
            genesis.slot_time(86_400),
            start + Duration::from_secs(86_400)
        );
        assert_eq!(genesis.epoch_of(432_000), 1);
        assert_eq!(genesis.kes_period_of(129_600 * 3 + 5), 3);
        // Sub-second slots (test networks, the simulator).
        let fast =
            Genesis::parse(&GENESIS.replace("\"slotLength\": 1", "\"slotLength\": 0.2")).unwrap();
        assert_eq!(fast.slot_at(start + Duration::from_secs(1)), 5);
    }

    #[test]
    fn a_bad_genesis_names_the_key() {
        for (from, to, key) in [
            ("\"slotLength\": 1", "\"slotLength\": 0", "slotLength"),
            (
                "\"epochLength\": 432000",
                "\"epochLength\": \"x\"",
                "epochLength",
            ),
            ("2017-09-23T21:44:51Z", "yesterday", "systemStart"),
            ("\"maxKESEvolutions\": 62,", "", "maxKESEvolutions"),
        ] {
            let error = Genesis::parse(&GENESIS.replace(from, to)).unwrap_err();
            assert!(error.0.starts_with(key), "{error}");
        }
    }

    #[test]
    fn the_schedule_is_its_slot_numbers_in_order() {
        let text = r#"[
            {"slotNumber": 4073, "slotTime": "2022-10-01T00:01:13Z"},
            {"slotNumber": 2011, "slotTime": "2022-10-01T00:00:31Z"}
        ]"#;
        assert_eq!(parse_schedule(text).unwrap(), [2011, 4073]);
        assert_eq!(parse_schedule("[]").unwrap(), Vec::<u64>::new());
        assert!(parse_schedule(r#"{"slotNumber": 1}"#).is_err());
        let error = parse_schedule(r#"[{"slotTime": "x"}]"#).unwrap_err();
        assert_eq!(error.0, "[0].slotNumber: missing or not a slot");
    }
}

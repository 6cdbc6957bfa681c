//! The files the cardano simulator reads and writes: the Shelley genesis and the leadership schedule it writes for
//! tests and the daemon's configuration, the credential files it reads (at boot and on SIGHUP), and the
//! append-only forge-event log.
//!
//! Shapes: the genesis holds the Shelley genesis fields nodekeeper needs (`systemStart` as ISO 8601 UTC,
//! `slotLength` in seconds, `epochLength`, `slotsPerKESPeriod`, `maxKESEvolutions`, `activeSlotsCoeff`, …); the
//! schedule is what `cardano-cli query leadership-schedule --out-file` writes: `[{"slotNumber": N, "slotTime":
//! "…Z"}]`, ascending, times as aeson encodes a `UTCTime`. Events are one JSON line per forged block, opened with
//! `O_APPEND` and written in a single `write`, so lines of concurrent processes never interleave.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Number, Value, json};

use super::chain::{ACTIVE_SLOTS_COEFF, ChainParams};
use super::config::CredentialPaths;
use super::node::{Credentials, ForgeEvent};

/// Formats a time as aeson encodes a `UTCTime`: `2023-11-14T22:13:20Z`, or `…:20.1Z` with the fraction's trailing
/// zeros dropped.
pub fn aeson_time(time: DateTime<Utc>) -> String {
    let text = time.to_rfc3339_opts(SecondsFormat::Nanos, true);
    match text.split_once('.') {
        Some((whole, fraction)) => {
            let digits = fraction.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{whole}Z")
            } else {
                format!("{whole}.{digits}Z")
            }
        }
        None => text,
    }
}

/// The slot length in seconds as a JSON number: an integer when whole (`1`), else a decimal (`0.2`).
fn seconds_number(millis: u64) -> Value {
    if millis.is_multiple_of(1000) {
        Value::Number(Number::from(millis / 1000))
    } else {
        json!(millis as f64 / 1000.0)
    }
}

/// The Shelley genesis of the chain.
pub fn genesis(params: &ChainParams) -> Value {
    // The ledger wants epochLength >= 10 k / f.
    let security_param =
        ((params.epoch_length() as f64 * ACTIVE_SLOTS_COEFF / 10.0).floor() as u64).max(1);
    json!({
        "activeSlotsCoeff": ACTIVE_SLOTS_COEFF,
        "epochLength": params.epoch_length(),
        "genDelegs": {},
        "initialFunds": {},
        "maxKESEvolutions": params.max_kes_evolutions(),
        "maxLovelaceSupply": 45_000_000_000_000_000u64,
        "networkId": "Testnet",
        "networkMagic": 42,
        "protocolParams": {
            "a0": 0.3,
            "decentralisationParam": 0,
            "eMax": 18,
            "extraEntropy": {"tag": "NeutralNonce"},
            "keyDeposit": 2_000_000,
            "maxBlockBodySize": 65_536,
            "maxBlockHeaderSize": 1100,
            "maxTxSize": 16_384,
            "minFeeA": 44,
            "minFeeB": 155_381,
            "minPoolCost": 340_000_000,
            "minUTxOValue": 1_000_000,
            "nOpt": 500,
            "poolDeposit": 500_000_000,
            "protocolVersion": {"major": 8, "minor": 0},
            "rho": 0.003,
            "tau": 0.2
        },
        "securityParam": security_param,
        "slotLength": seconds_number(params.slot_length_ms()),
        "slotsPerKESPeriod": params.slots_per_kes_period(),
        "staking": {"pools": {}, "stake": {}},
        "systemStart": aeson_time(params.system_start()),
        "updateQuorum": 5
    })
}

/// The pool's leadership schedule of `epoch`, as `cardano-cli query leadership-schedule --out-file` writes it.
pub fn leadership_schedule(params: &ChainParams, epoch: u64) -> Value {
    Value::Array(
        params
            .leader_schedule(epoch)
            .into_iter()
            .map(|slot| json!({"slotNumber": slot, "slotTime": aeson_time(params.slot_time(slot))}))
            .collect(),
    )
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

/// Reads the three credential files (contents are opaque: any readable file counts).
pub fn read_credentials(paths: Option<&CredentialPaths>) -> Credentials {
    let Some(paths) = paths else {
        return Credentials::NotConfigured;
    };
    let mut missing = Vec::new();
    for path in [&paths.kes, &paths.vrf, &paths.opcert] {
        match std::fs::read(path) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                missing.push(path.display().to_string());
            }
            Err(error) => {
                return Credentials::Unreadable(format!(
                    "CredentialsReadError {:?}: {error}",
                    path.display().to_string()
                ));
            }
        }
    }
    if missing.is_empty() {
        Credentials::Present
    } else {
        Credentials::Missing(missing)
    }
}

/// Errors of appending an event.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// The file could not be opened or written.
    #[error("cannot append to the events file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Fewer bytes than the line were written.
    #[error("short write to the events file {}", path.display())]
    ShortWrite {
        /// The file.
        path: PathBuf,
    },
    /// The event could not be serialised (never happens for plain data).
    #[error("cannot serialise a forge event")]
    Json(#[from] serde_json::Error),
}

/// An append-only file of forge events.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
}

impl EventLog {
    /// A log at `path`; the file is created on the first event.
    pub fn new(path: PathBuf) -> EventLog {
        EventLog { path }
    }

    /// Appends `{"node":…,"slot":…,"epoch":…,"slot_in_epoch":…,"block":…,"time":…}\n` in a single write.
    pub fn append(&self, event: &ForgeEvent) -> Result<(), EventLogError> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        let io_error = |source| EventLogError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_error)?;
        let written = file.write(&line).map_err(io_error)?;
        if written != line.len() {
            return Err(EventLogError::ShortWrite {
                path: self.path.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(slot_length_ms: u64) -> ChainParams {
        ChainParams::try_new(1_700_000_000, slot_length_ms, 600, 129_600, 62, 3, 0.05).unwrap()
    }

    #[test]
    fn times_are_encoded_like_aeson() {
        let p = params(100);
        assert_eq!(aeson_time(p.system_start()), "2023-11-14T22:13:20Z");
        assert_eq!(aeson_time(p.slot_time(1)), "2023-11-14T22:13:20.1Z");
        assert_eq!(aeson_time(p.slot_time(25)), "2023-11-14T22:13:22.5Z");
    }

    #[test]
    fn genesis_has_the_shelley_fields() {
        let g = genesis(&params(1000));
        assert_eq!(g["systemStart"], "2023-11-14T22:13:20Z");
        assert_eq!(g["slotLength"], json!(1));
        assert_eq!(g["epochLength"], 600);
        assert_eq!(g["slotsPerKESPeriod"], 129_600);
        assert_eq!(g["maxKESEvolutions"], 62);
        assert_eq!(g["activeSlotsCoeff"], 0.05);
        assert_eq!(g["securityParam"], 3);
        assert_eq!(genesis(&params(200))["slotLength"], json!(0.2));
    }

    #[test]
    fn schedule_lists_the_leader_slots() {
        let p = params(1000);
        let schedule = leadership_schedule(&p, 4);
        let entries = schedule.as_array().unwrap();
        assert_eq!(entries.len(), p.leader_schedule(4).len());
        let first = &entries[0];
        let slot = first["slotNumber"].as_u64().unwrap();
        assert_eq!(p.epoch_of(slot), 4);
        assert_eq!(first["slotTime"], aeson_time(p.slot_time(slot)));
        assert_eq!(first.as_object().unwrap().len(), 2);
    }

    #[test]
    fn credentials_are_present_missing_or_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CredentialPaths {
            kes: dir.path().join("kes.skey"),
            vrf: dir.path().join("vrf.skey"),
            opcert: dir.path().join("node.cert"),
        };
        assert_eq!(read_credentials(None), Credentials::NotConfigured);
        std::fs::write(&paths.kes, "{}").unwrap();
        match read_credentials(Some(&paths)) {
            Credentials::Missing(files) => assert_eq!(files.len(), 2),
            other => panic!("{other:?}"),
        }
        std::fs::write(&paths.vrf, "{}").unwrap();
        std::fs::write(&paths.opcert, "{}").unwrap();
        assert_eq!(read_credentials(Some(&paths)), Credentials::Present);
        std::fs::remove_file(&paths.opcert).unwrap();
        std::fs::create_dir(&paths.opcert).unwrap();
        assert!(matches!(
            read_credentials(Some(&paths)),
            Credentials::Unreadable(_)
        ));
    }

    #[test]
    fn events_are_one_json_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path().join("events.jsonl"));
        for slot in [3, 9] {
            log.append(&ForgeEvent {
                node: "bp1".into(),
                slot,
                epoch: 0,
                slot_in_epoch: slot,
                block: 100 + slot,
                time: "2023-11-14T22:13:20+00:00".into(),
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        assert_eq!(
            text,
            "{\"node\":\"bp1\",\"slot\":3,\"epoch\":0,\"slot_in_epoch\":3,\"block\":103,\"time\":\"2023-11-14T22:13:20+00:00\"}\n\
             {\"node\":\"bp1\",\"slot\":9,\"epoch\":0,\"slot_in_epoch\":9,\"block\":109,\"time\":\"2023-11-14T22:13:20+00:00\"}\n"
        );
    }
}

//! The chain's time and the pool's slots from the two pool-wide files: the Shelley genesis
//! (`genesis::Genesis`) and the leadership schedule (`genesis::parse_schedule`), each read again
//! only when it changed on disk (its size, modification time or inode), and turned into the
//! chain-neutral `SlotClock` and `LeaderLog`s. Errors are `ProbeError::Malformed` naming the file
//! and the key, never the file's contents.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::genesis::{FileError, Genesis, parse_schedule};
use crate::chain::ProbeError;
use crate::slots::{LeaderLog, LogStatus, SlotClock, SlotDate};

/// The handle of a slot in `LeaderLog::enclave_leader_id`: a cardano-node forges or not, so
/// holding the pool's key is one handle, 1.
pub const HANDLE: u32 = 1;

/// What identifies one version of a file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

/// A file read and parsed again only when it changed.
#[derive(Debug)]
pub struct Cached<T> {
    path: PathBuf,
    parse: fn(&str) -> Result<T, FileError>,
    last: Mutex<Option<(Stamp, Arc<T>)>>,
}

impl<T> Cached<T> {
    /// `path`, read with `parse`.
    pub fn new(path: PathBuf, parse: fn(&str) -> Result<T, FileError>) -> Cached<T> {
        Cached {
            path,
            parse,
            last: Mutex::new(None),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed file, read again when it changed since the last read.
    pub async fn get(&self) -> Result<Arc<T>, ProbeError> {
        use std::os::unix::fs::MetadataExt as _;
        let unreadable = |error: std::io::Error| {
            ProbeError::Malformed(format!("{}: cannot read: {error}", self.path.display()))
        };
        let meta = tokio::fs::metadata(&self.path).await.map_err(unreadable)?;
        let stamp = Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
        };
        if let Some((seen, value)) = &*self.lock()
            && *seen == stamp
        {
            return Ok(Arc::clone(value));
        }
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(unreadable)?;
        let value =
            Arc::new((self.parse)(&text).map_err(|error| {
                ProbeError::Malformed(format!("{}: {error}", self.path.display()))
            })?);
        *self.lock() = Some((stamp, Arc::clone(&value)));
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Stamp, Arc<T>)>> {
        self.last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The genesis and schedule files of the pool, shared by its nodes.
#[derive(Debug)]
pub struct ScheduleFiles {
    genesis: Cached<Genesis>,
    schedule: Cached<Vec<u64>>,
}

impl ScheduleFiles {
    /// The files at these paths (nothing is read yet).
    pub fn new(genesis_file: PathBuf, schedule_file: PathBuf) -> ScheduleFiles {
        ScheduleFiles {
            genesis: Cached::new(genesis_file, Genesis::parse),
            schedule: Cached::new(schedule_file, parse_schedule),
        }
    }

    /// The genesis.
    pub async fn genesis(&self) -> Result<Arc<Genesis>, ProbeError> {
        self.genesis.get().await
    }

    /// The chain's clock: `systemStart`, `slotLength`, `epochLength`.
    pub async fn clock(&self) -> Result<SlotClock, ProbeError> {
        let genesis = self.genesis().await?;
        clock(&genesis).ok_or_else(|| {
            ProbeError::Malformed(format!(
                "{}: slotLength or epochLength is 0",
                self.genesis.path().display()
            ))
        })
    }

    /// The pool's slots of the schedule file as leader logs at `now`.
    pub async fn slots(&self, now: SystemTime) -> Result<Vec<LeaderLog>, ProbeError> {
        let genesis = self.genesis().await?;
        let slots = self.schedule.get().await?;
        Ok(leader_logs(&genesis, &slots, now))
    }
}

/// The genesis as a `SlotClock`.
pub fn clock(genesis: &Genesis) -> Option<SlotClock> {
    SlotClock::new(
        genesis.system_start,
        genesis.slot_length,
        genesis.epoch_length,
    )
}

/// One `LeaderLog` per slot: its date from the genesis' epoch length, `scheduled_at` from the
/// genesis, finished once the slot is over at `now`. cardano-node keeps no log of its leader
/// checks, so the status stays `Pending` (the outcome is the metrics' and the chain's business).
pub fn leader_logs(genesis: &Genesis, slots: &[u64], now: SystemTime) -> Vec<LeaderLog> {
    slots
        .iter()
        .map(|&slot| {
            let scheduled_at = genesis.slot_time(slot);
            LeaderLog {
                date: SlotDate {
                    epoch: slot / genesis.epoch_length,
                    slot: slot % genesis.epoch_length,
                },
                scheduled_at,
                finished: crate::time::saturating_add(scheduled_at, genesis.slot_length) <= now,
                status: LogStatus::Pending,
                enclave_leader_id: HANDLE,
            }
        })
        .collect()
}

/// The slot length a waiting loop uses when the genesis cannot be read: mainnet's.
pub const FALLBACK_SLOT: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS: &str = r#"{"systemStart": "2023-11-14T22:13:20Z", "slotLength": 0.1,
        "epochLength": 600, "slotsPerKESPeriod": 129600, "maxKESEvolutions": 62}"#;

    #[tokio::test]
    async fn files_are_read_again_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = dir.path().join("genesis.json");
        let schedule = dir.path().join("schedule.json");
        std::fs::write(&genesis, GENESIS).unwrap();
        std::fs::write(&schedule, r#"[{"slotNumber": 1205, "slotTime": "x"}]"#).unwrap();
        let files = ScheduleFiles::new(genesis.clone(), schedule.clone());
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let now = start + Duration::from_secs(121);
        let logs = files.slots(now).await.unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].date, SlotDate { epoch: 2, slot: 5 });
        assert_eq!(logs[0].scheduled_at, start + Duration::from_millis(120_500));
        assert!(logs[0].finished);
        assert_eq!(logs[0].enclave_leader_id, HANDLE);
        let clock = files.clock().await.unwrap();
        assert_eq!(clock.slot_duration, Duration::from_millis(100));
        assert_eq!(clock.slots_per_epoch, 600);
        assert_eq!(clock.block0, start);

        // A new schedule (another size) is read again; a future slot is not finished.
        std::fs::write(
            &schedule,
            r#"[{"slotNumber": 1300, "slotTime": "x"}, {"slotNumber": 1205, "slotTime": "x"}]"#,
        )
        .unwrap();
        let logs = files.slots(now).await.unwrap();
        let slots: Vec<u64> = logs
            .iter()
            .map(|log| log.date.epoch * 600 + log.date.slot)
            .collect();
        assert_eq!(slots, [1205, 1300]);
        assert!(!logs[1].finished);
    }

    #[tokio::test]
    async fn errors_name_the_file_and_key_never_contents() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = dir.path().join("genesis.json");
        let schedule = dir.path().join("schedule.json");
        std::fs::write(
            &genesis,
            GENESIS.replace("\"epochLength\": 600", "\"epochLength\": \"s3cr3t\""),
        )
        .unwrap();
        std::fs::write(&schedule, "[]").unwrap();
        let files = ScheduleFiles::new(genesis.clone(), schedule.clone());
        match files.clock().await {
            Err(ProbeError::Malformed(detail)) => {
                assert!(
                    detail.contains("genesis.json") && detail.contains("epochLength"),
                    "{detail}"
                );
                assert!(!detail.contains("s3cr3t"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&genesis, GENESIS).unwrap();
        std::fs::write(&schedule, r#"[{"slotTime": "s3cr3t"}]"#).unwrap();
        match files.slots(SystemTime::UNIX_EPOCH).await {
            Err(ProbeError::Malformed(detail)) => {
                assert!(
                    detail.contains("schedule.json") && detail.contains("slotNumber"),
                    "{detail}"
                );
                assert!(!detail.contains("s3cr3t"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(&schedule).unwrap();
        match files.slots(SystemTime::UNIX_EPOCH).await {
            Err(ProbeError::Malformed(detail)) => {
                assert!(detail.contains("schedule.json"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }
}

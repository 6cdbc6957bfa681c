//! The cardano-node adapter: one [`Node`] per configured block producer implements the
//! chain-neutral traits. `probe` reads the node's Prometheus text (`probe`, `metrics`), and with
//! the Shelley genesis (`genesis_file`) gives the tip's time (its `slotNum`'s); leader
//! control is dynamic block forging: the pool's credential files put at the node's paths or
//! removed from there (`credentials`), then SIGHUP through supervisord, demotions verified by the
//! forge counters; the schedule comes from the pool's Shelley genesis and leadership-schedule
//! files (`genesis`, `schedule`).
//!
//! Verification of a demotion: after the SIGHUP the adapter waits a slot, then samples the
//! metrics: `forging_enabled` 0 (cardano-node 8.10 on, set by the reconfiguration itself) settles
//! it; otherwise `Forge_forge_about_to_lead` (`Forge_about_to_lead` under the new tracing; it
//! moves every slot while block forging is enabled) must stand still between two samples two
//! slots apart, within [`VERIFY_SLOTS`] slots. Where a node exports neither counter,
//! `Forge_forged` stands in (weaker: it moves on leader slots only). The node's log line
//! (`Performing block forging reconfiguration: Disabling block forging`) is not read: the
//! `Supervisor` trait has no log tail.

pub mod credentials;
pub mod genesis;
pub mod metrics;
pub mod probe;
pub mod schedule;
pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::command::command_words;
use super::{
    BootVerdict, BoxFuture, ChainNode, Holding, KeyExpiry, LeaderControl, LeaderFailure, NodeState,
    NodeStatus, ProbeError, Schedule, Variant,
};
use crate::slots::{LeaderLog, SlotClock};
use crate::supervisor::{Fault, ProcessState, Supervisor};
use crate::time::{Clock as _, SystemClock};
pub use credentials::Credentials;
pub use metrics::Metrics;
pub use probe::MetricsProbe;
pub use schedule::ScheduleFiles;
pub use settings::{DEFAULT_METRICS_URL, Pool, Settings};

/// The default of `leadership.kes_alert_periods`: under this many `remainingKESPeriods` a node's
/// operational certificate deserves an alert (14 periods: three weeks on mainnet). The policy
/// decides (`policy::kes`).
pub const DEFAULT_KES_ALERT_PERIODS: u64 = 14;

/// How many slots after its SIGHUP a demotion waits at most for the forge counters to stop.
pub const VERIFY_SLOTS: u32 = 8;

/// The cardano-node flag that makes a node with credentials start as a plain node.
pub const NON_PRODUCING_FLAG: &str = "--start-as-non-producing-node";

/// The credential flags, KES key, VRF key, certificate.
pub const CREDENTIAL_FLAGS: [&str; 3] = [
    "--shelley-kes-key",
    "--shelley-vrf-key",
    "--shelley-operational-certificate",
];

/// The pool's files as the nodes use them: made once per pool, shared by its nodes.
#[derive(Debug)]
pub struct PoolFiles {
    credentials: Credentials,
    schedule: ScheduleFiles,
}

impl PoolFiles {
    /// The files of `pool` (nothing is read yet).
    pub fn new(pool: &Pool) -> PoolFiles {
        PoolFiles {
            credentials: Credentials::pool(&pool.credentials_dir),
            schedule: ScheduleFiles::new(pool.genesis_file.clone(), pool.schedule_file.clone()),
        }
    }
}

/// One cardano-node block producer.
pub struct Node {
    settings: Settings,
    pool: Option<Arc<PoolFiles>>,
    supervisor: Arc<dyn Supervisor>,
    program: String,
    probe: MetricsProbe,
    last: Mutex<Option<Metrics>>,
    /// A KES period's length from the genesis, read by a probe that found KES metrics.
    kes_period: Mutex<Option<Duration>>,
    /// `settings.genesis_file`, read again when it changes: the tip's time.
    genesis: Option<schedule::Cached<genesis::Genesis>>,
}

impl Node {
    /// The node of `settings`, run by `supervisor` as program `program` (its supervisord name,
    /// `group:name` in a group), read with `probe` (one per process, cloned). With `pool`, its
    /// schedule is served, and its leader control when `settings.credentials` is set too.
    pub fn new(
        settings: Settings,
        pool: Option<Arc<PoolFiles>>,
        supervisor: Arc<dyn Supervisor>,
        program: impl Into<String>,
        probe: &MetricsProbe,
    ) -> Node {
        Node {
            pool,
            supervisor,
            program: program.into(),
            probe: probe.clone(),
            last: Mutex::new(None),
            kes_period: Mutex::new(None),
            genesis: settings
                .genesis_file
                .clone()
                .map(|path| schedule::Cached::new(path, genesis::Genesis::parse)),
            settings,
        }
    }

    /// The metrics of the latest successful probe (`None` before one).
    pub fn last_metrics(&self) -> Option<Metrics> {
        self.lock_last().clone()
    }

    /// `remainingKESPeriods` of the latest successful probe: KES periods left on the node's
    /// operational certificate. `None` before a probe, or while the node exports none (it has not
    /// loaded credentials since it started).
    pub fn remaining_kes_periods(&self) -> Option<u64> {
        self.lock_last()
            .as_ref()
            .and_then(|m| m.remaining_kes_periods)
    }

    /// The KES period's length, `slotsPerKESPeriod` × `slotLength` of the pool's genesis (`None`
    /// without a pool, or when the genesis cannot be read within `timeout`).
    async fn read_kes_period(&self, timeout: Duration) -> Option<Duration> {
        // The node's own genesis (`genesis_file`, with or without leadership), else the pool's.
        let genesis = match (&self.genesis, &self.pool) {
            (Some(genesis), _) => tokio::time::timeout(timeout, genesis.get())
                .await
                .ok()?
                .ok()?,
            (None, Some(pool)) => tokio::time::timeout(timeout, pool.schedule.genesis())
                .await
                .ok()?
                .ok()?,
            (None, None) => return None,
        };
        let slots = u32::try_from(genesis.slots_per_kes_period).ok()?;
        Some(genesis.slot_length.saturating_mul(slots))
    }

    fn lock_last(&self) -> std::sync::MutexGuard<'_, Option<Metrics>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn metrics(&self, timeout: Duration) -> Result<Metrics, ProbeError> {
        let metrics = self
            .probe
            .metrics(&self.settings.metrics_url, timeout)
            .await?;
        *self.lock_last() = Some(metrics.clone());
        Ok(metrics)
    }

    fn managed(&self) -> Option<(&Credentials, &PoolFiles)> {
        Some((self.settings.credentials.as_ref()?, self.pool.as_deref()?))
    }

    /// The slot length from the genesis (mainnet's when it cannot be read).
    async fn slot_length(&self) -> Duration {
        match &self.pool {
            Some(pool) => pool
                .schedule
                .genesis()
                .await
                .map(|g| g.slot_length)
                .unwrap_or(schedule::FALLBACK_SLOT),
            None => schedule::FALLBACK_SLOT,
        }
    }

    /// SIGHUP through supervisord. `Ok(false)`: the program is not running (nothing to reload).
    async fn sighup(&self) -> Result<bool, LeaderFailure> {
        let what = || format!("SIGHUP to {} through supervisord", self.program);
        match self.supervisor.signal(&self.program, "HUP").await {
            Ok(true) => Ok(true),
            Ok(false) => Err(LeaderFailure {
                what: what(),
                error: ProbeError::Connect("supervisord answered false".into()),
            }),
            Err(e) if matches!(e.fault(), Some(Fault::NotRunning(_))) => Ok(false),
            Err(e) => Err(LeaderFailure {
                what: what(),
                error: ProbeError::Connect(e.to_string()),
            }),
        }
    }

    /// Why the pool's files at the node's paths are stale (no process of the node loaded them),
    /// if they are: the program is not running (it is down: whatever it loaded went with it), or
    /// the files are older than the running process, its supervisord command does not boot it
    /// forging (`--start-as-non-producing-node`, or a wrapper), and the node exports no forge or
    /// KES metric (no SIGHUP loaded them since its start: a node forging with them exports those).
    /// `None` whenever this cannot be told.
    async fn stale_files(&self, timeout: Duration) -> Option<String> {
        let (paths, _) = self.managed()?;
        let programs = [self.program.clone()];
        let info = tokio::time::timeout(timeout, self.supervisor.process_infos(&programs))
            .await
            .ok()?
            .ok()?
            .into_iter()
            .next()?
            .ok()?;
        match info.state {
            ProcessState::Stopped
            | ProcessState::Exited
            | ProcessState::Fatal
            | ProcessState::Backoff => {
                return Some(format!("the program is {} (not running)", info.state));
            }
            ProcessState::Running => {}
            ProcessState::Starting | ProcessState::Stopping | ProcessState::Unknown => {
                return None;
            }
        }
        // supervisord's start, in whole seconds: at or before the process really started.
        let started = u64::try_from(info.start).ok().filter(|secs| *secs > 0)?;
        let started = std::time::UNIX_EPOCH + Duration::from_secs(started);
        let owned = paths.clone();
        let newest = files(timeout, move || {
            owned
                .paths()
                .iter()
                .filter_map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
                .max()
        })
        .await
        .ok()??;
        if newest >= started {
            return None;
        }
        // Only a node whose command is known to boot it non-producing (cardano-node itself with
        // --start-as-non-producing-node) cannot have loaded them at its start: one that boots
        // forging did, and a wrapper may have passed anything.
        let configs = tokio::time::timeout(timeout, self.supervisor.program_configs())
            .await
            .ok()?
            .ok()?;
        let command = configs
            .iter()
            .find(|c| c.name == self.program || format!("{}:{}", c.group, c.name) == self.program)?
            .command
            .clone();
        if boot_verdict(Some(&command)).with_key != Some(false) {
            return None;
        }
        let metrics = self.metrics(timeout).await.ok()?;
        let loaded = metrics.remaining_kes_periods.is_some()
            || metrics.about_to_lead.is_some()
            || metrics.forged.is_some()
            || metrics.forging_enabled == Some(1);
        (metrics.status(probe::VERSION).state == NodeState::Running && !loaded).then(|| {
            "they predate its process, which exports no forge or KES metric (it did not load them)"
                .to_string()
        })
    }

    /// Waits until the forge counters show block forging disabled, or [`VERIFY_SLOTS`] slots.
    async fn forging_stopped(&self, timeout: Duration) -> Result<(), ProbeError> {
        let slot = self.slot_length().await;
        let deadline = Instant::now() + slot * VERIFY_SLOTS;
        // The signal lands and the slot being checked ends.
        tokio::time::sleep(slot).await;
        let mut before = self.forge_count(timeout).await?;
        loop {
            tokio::time::sleep(slot * 2).await;
            let after = self.forge_count(timeout).await?;
            let (name, from, to) = match (before, after) {
                (Some((name, from)), Some((_, to))) if from != to => (name, from, to),
                // Still, or never exported (a node that never loaded credentials).
                _ => return Ok(()),
            };
            if Instant::now() + slot * 2 > deadline {
                return Err(ProbeError::Malformed(format!(
                    "{name} still moves ({from} -> {to}) {VERIFY_SLOTS} slots after the \
                     SIGHUP with the credential files removed: the node still forges"
                )));
            }
            before = after;
        }
    }

    /// The counter that shows forging, by name; `None` when the node says forging is disabled
    /// (`forging_enabled` 0), exports no forge counter or is down; `Err` while the node replays
    /// (SIGHUP is not effective until its consensus starts).
    async fn forge_count(
        &self,
        timeout: Duration,
    ) -> Result<Option<(&'static str, u64)>, ProbeError> {
        let metrics = match self.metrics(timeout).await {
            Ok(metrics) => metrics,
            // Nothing listens: the node is down, and boots without the files.
            Err(ProbeError::Refused) => return Ok(None),
            Err(e) => return Err(e),
        };
        if metrics.status(probe::VERSION).state != NodeState::Running {
            return Err(ProbeError::Malformed(
                "the node is replaying (slotNum 0): a SIGHUP is not effective until its \
                 consensus starts, and it may forge with what it loaded at boot"
                    .into(),
            ));
        }
        if metrics.forging_enabled == Some(0) {
            return Ok(None);
        }
        Ok(match (metrics.about_to_lead, metrics.forged) {
            (Some(count), _) => Some(("Forge_forge_about_to_lead", count)),
            (None, Some(count)) => Some(("Forge_forged", count)),
            (None, None) => None,
        })
    }
}

/// Runs blocking file work off the async threads, under `timeout` (a hung network mount).
async fn files<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ProbeError> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(join)) => Err(ProbeError::Local(format!("file task failed: {join}"))),
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}

fn unreachable_paths(error: credentials::FileFailure) -> ProbeError {
    ProbeError::Connect(format!(
        "the node's credential paths are out of nodekeeper's reach: {error}"
    ))
}

impl ChainNode for Node {
    fn probe(&self, timeout: Duration) -> BoxFuture<'_, Result<NodeStatus, ProbeError>> {
        Box::pin(async move {
            let metrics = self.metrics(timeout).await?;
            if metrics.remaining_kes_periods.is_some() {
                let period = self.read_kes_period(timeout).await;
                *self.kes_period.lock().unwrap_or_else(|p| p.into_inner()) = period;
            }
            let mut status = metrics.status(probe::VERSION);
            if let Some(genesis) = &self.genesis
                && status.state == NodeState::Running
            {
                // An unreadable genesis leaves the tip judged by its height alone: it says
                // nothing about the node (`config check` reads the file).
                status.tip_time = match genesis.get().await {
                    Ok(genesis) => metrics.tip_time(&genesis, SystemClock.now()),
                    Err(_) => None,
                };
            }
            Ok(status)
        })
    }

    fn key_expiry(&self) -> Option<KeyExpiry> {
        let periods = self.remaining_kes_periods()?;
        let period = *self.kes_period.lock().unwrap_or_else(|p| p.into_inner());
        Some(KeyExpiry { periods, period })
    }

    fn leader(&self) -> Option<&dyn LeaderControl> {
        self.managed().map(|_| self as &dyn LeaderControl)
    }

    fn schedule(&self) -> Option<&dyn Schedule> {
        self.pool.as_ref().map(|_| self as &dyn Schedule)
    }

    fn boots_producing(&self, command: Option<&str>) -> BootVerdict {
        boot_verdict(command)
    }

    fn config_file(&self, _variant: Variant) -> Option<(&Path, &Value)> {
        None
    }
}

impl LeaderControl for Node {
    /// Any of the three files at the node's paths: it holds (a partial set too, since whether
    /// the node loaded them before one went missing cannot be told; a demotion cleans it up).
    fn holding(&self, timeout: Duration) -> BoxFuture<'_, Result<Holding, ProbeError>> {
        Box::pin(async move {
            let Some((paths, _)) = self.managed() else {
                return Err(ProbeError::Connect("no credential paths configured".into()));
            };
            let read = paths.clone();
            let found = files(timeout, move || credentials::present(&read))
                .await?
                .map_err(unreachable_paths)?;
            if !found.contains(&true) {
                return Ok(Holding::passive());
            }
            if let Some(why) = self.stale_files(timeout).await {
                let owned = paths.clone();
                let left = files(timeout, move || {
                    let _ = credentials::remove(&owned);
                    credentials::present(&owned)
                })
                .await;
                if let Ok(Ok(left)) = left
                    && !left.contains(&true)
                {
                    tracing::warn!(
                        node = %self.program,
                        "removed the pool's files left at its credential paths: {why}"
                    );
                    return Ok(Holding::passive());
                }
            }
            Ok(Holding(vec![schedule::HANDLE]))
        })
    }

    /// Removes the files at the node's paths, checks they are gone, sends SIGHUP and waits for
    /// the forge counters to stop. A node that is not running is not signalled (it boots without
    /// the files).
    fn demote<'a>(
        &'a self,
        _holding: &'a Holding,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Vec<LeaderFailure>>> {
        Box::pin(async move {
            let failed = |what: String, error: ProbeError| vec![LeaderFailure { what, error }];
            let Some((paths, _)) = self.managed() else {
                return Err(failed(
                    "credential files".into(),
                    ProbeError::Connect("no credential paths configured".into()),
                ));
            };
            let owned = paths.clone();
            let removed = files(timeout, move || {
                let failures = credentials::remove(&owned);
                (failures, credentials::present(&owned))
            })
            .await;
            let (failures, left) = match removed {
                Ok(result) => result,
                Err(error) => return Err(failed("removing the credential files".into(), error)),
            };
            let mut failures: Vec<LeaderFailure> = failures
                .into_iter()
                .map(|failure| LeaderFailure {
                    what: format!("removing {}", failure.path.display()),
                    error: ProbeError::Connect(failure.error.to_string()),
                })
                .collect();
            match left {
                Ok(found) => {
                    for (path, _) in paths.paths().iter().zip(found).filter(|(_, there)| *there) {
                        failures.push(LeaderFailure {
                            what: format!("{}", path.display()),
                            error: ProbeError::Connect("still there after removal".into()),
                        });
                    }
                }
                Err(error) => failures.push(LeaderFailure {
                    what: "credential files".into(),
                    error: unreachable_paths(error),
                }),
            }
            if !failures.is_empty() {
                // Not signalled: the node would reload a set that is still there.
                return Err(failures);
            }
            match self.sighup().await {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(failure) => return Err(vec![failure]),
            }
            self.forging_stopped(timeout)
                .await
                .map_err(|error| failed("block forging after SIGHUP".into(), error))
        })
    }

    /// Copies the pool's three files to the node's paths (0600) and sends SIGHUP. Refused while
    /// the node replays (`Status(503)`: the signal would not take effect), and when it is not
    /// running.
    fn promote(&self, timeout: Duration) -> BoxFuture<'_, Result<Holding, ProbeError>> {
        Box::pin(async move {
            let Some((paths, pool)) = self.managed() else {
                return Err(ProbeError::Connect("no credential paths configured".into()));
            };
            let metrics = self.metrics(timeout).await?;
            if metrics.status(probe::VERSION).state != NodeState::Running {
                return Err(ProbeError::Status(503));
            }
            let (from, to) = (pool.credentials.clone(), paths.clone());
            files(timeout, move || credentials::install(&from, &to))
                .await?
                .map_err(|error| {
                    ProbeError::Connect(format!("installing the credential files: {error}"))
                })?;
            match self.sighup().await {
                Ok(true) => Ok(Holding(vec![schedule::HANDLE])),
                Ok(false) => Err(ProbeError::Refused),
                Err(failure) => Err(failure.error),
            }
        })
    }
}

impl Schedule for Node {
    fn chain_time(&self, timeout: Duration) -> BoxFuture<'_, Result<SlotClock, ProbeError>> {
        Box::pin(async move {
            let Some(pool) = &self.pool else {
                return Err(ProbeError::Connect("no genesis file configured".into()));
            };
            within(timeout, pool.schedule.clock()).await
        })
    }

    fn pool_slots(&self, timeout: Duration) -> BoxFuture<'_, Result<Vec<LeaderLog>, ProbeError>> {
        Box::pin(async move {
            let Some(pool) = &self.pool else {
                return Err(ProbeError::Connect("no schedule file configured".into()));
            };
            within(timeout, pool.schedule.slots(SystemClock.now())).await
        })
    }
}

async fn within<T>(
    timeout: Duration,
    work: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err(ProbeError::Timeout(timeout)))
}

/// The program's base name (`/usr/local/bin/cardano-node` -> `cardano-node`).
fn base_name(word: &str) -> &str {
    Path::new(word)
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default()
}

fn has_flag(words: &[String], flag: &str) -> bool {
    words.iter().any(|word| {
        word == flag
            || word
                .strip_prefix(flag)
                .is_some_and(|rest| rest.starts_with('='))
    })
}

fn flag_value<'a>(words: &'a [String], flag: &str) -> Option<&'a str> {
    words.iter().enumerate().find_map(|(at, word)| {
        if word == flag {
            words.get(at + 1).map(String::as_str)
        } else {
            word.strip_prefix(flag)
                .and_then(|rest| rest.strip_prefix('='))
        }
    })
}

/// The credential paths a cardano-node command line names (all three flags), e.g. to fill
/// `Settings::credentials` from the supervisord command.
pub fn credential_paths(command: &str) -> Option<Credentials> {
    let words = script_words(command);
    let [kes, vrf, opcert] = CREDENTIAL_FLAGS.map(|flag| flag_value(&words, flag));
    Some(Credentials {
        kes: PathBuf::from(kes?),
        vrf: PathBuf::from(vrf?),
        opcert: PathBuf::from(opcert?),
    })
}

/// Shells whose `-c` script is read as words.
const SHELLS: [&str; 4] = ["sh", "bash", "dash", "zsh"];

/// The command's words; for a shell's `-c '...'`, the script's words in place of the script.
fn script_words(command: &str) -> Vec<String> {
    let words = command_words(command);
    let shell = words
        .first()
        .is_some_and(|program| SHELLS.contains(&base_name(program)));
    let Some(at) = words.iter().position(|word| word == "-c").filter(|_| shell) else {
        return words;
    };
    let mut flat = words[..at].to_vec();
    if let Some(script) = words.get(at + 1) {
        flat.extend(command_words(script));
    }
    flat.extend(words.iter().skip(at + 2).cloned());
    flat
}

/// Whether a node whose supervisord command is `command` boots forging: cardano-node itself with
/// `--start-as-non-producing-node` does not, with credential flags and without it does, without
/// credential flags does not; a shell script naming cardano-node is judged by the same flags
/// where they are visible in it (unknown when it passes none: it may expand them from variables);
/// any other program is a wrapper that may pass anything.
pub fn boot_verdict(command: Option<&str>) -> BootVerdict {
    let Some(command) = command else {
        return BootVerdict::new(
            None,
            "its supervisord command is not read yet (until it is, it may)",
        );
    };
    let words = script_words(command);
    let program = words
        .first()
        .map(|word| base_name(word))
        .unwrap_or_default();
    let direct = program.starts_with("cardano-node");
    let in_script = !direct
        && SHELLS.contains(&program)
        && words
            .iter()
            .skip(1)
            .any(|word| base_name(word).starts_with("cardano-node"));
    if !direct && !in_script {
        return BootVerdict::new(
            None,
            format!(
                "its supervisord command runs {program:?}, not cardano-node itself: a wrapper \
                 may pass the credential flags"
            ),
        );
    }
    let how = if direct {
        "its supervisord command runs cardano-node"
    } else {
        "its supervisord command runs cardano-node from a shell script"
    };
    if has_flag(&words, NON_PRODUCING_FLAG) {
        return BootVerdict::new(Some(false), format!("{how} with {NON_PRODUCING_FLAG}"));
    }
    if let Some(flag) = CREDENTIAL_FLAGS.iter().find(|flag| has_flag(&words, flag)) {
        return BootVerdict::new(
            Some(true),
            format!("{how} with {flag} and without {NON_PRODUCING_FLAG}"),
        );
    }
    if direct {
        BootVerdict::new(Some(false), format!("{how} without credential flags"))
    } else {
        BootVerdict::new(
            None,
            format!("{how} without visible credential flags: the script may expand them"),
        )
    }
}

#[cfg(test)]
mod tests;

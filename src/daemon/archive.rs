//! Backups and restores of a node's data directory as jobs of the loop: the policy's rules
//! (`policy::backup`) decide whether and which node, this shell carries it out. A job stops the
//! node through supervisord, archives or restores its `data_dir` off the loop (the `backup`
//! engine, in `spawn_blocking`, progress in the snapshot and the log), starts it again, and
//! appends `stop`, `backup`/`restore` and `start` rows to the restart log. After a restore the
//! old directory is kept until the node has been in sync for `backup.keep_old_for`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use super::Daemon;
use super::act::{Finished, JobDone, Kind, RowContext};
use super::disk::{self, RowSink};
use crate::backup::{self, BackupError, Entry, Manifest, ManifestBase, Progress};
use crate::events::Event;
use crate::policy::backup::{self as rules, ExitWatch, PoolView, Refusal, RestoreReason};
use crate::policy::{NodeFacts, NodeObservation, Outcome, PoolFacts, ProgramSeen};
use crate::restart_log::{RestartAction, RestartRow};
use crate::status::{ArchiveLine, Snapshot};
use crate::supervisor::{Fault, ProcessState, Supervisor, SupervisorError};
use crate::time::Clock;

/// How often a long backup or restore writes a progress line to the log.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a backup or restore runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// An operator asked (the API or `nodekeeper backup`/`restore`), with their words.
    Operator(Option<String>),
    /// `backup.every` came round.
    Scheduled,
    /// `backup.auto_restore`: the node cannot start from its database.
    Automatic(RestoreReason),
}

impl Why {
    fn words(&self) -> String {
        match self {
            Why::Operator(None) => "operator".to_string(),
            Why::Operator(Some(note)) => format!("operator: {note}"),
            Why::Scheduled => "scheduled".to_string(),
            Why::Automatic(reason) => format!("automatic: {reason}"),
        }
    }
}

/// What a job does to the data directory.
#[derive(Clone, Debug)]
pub enum Work {
    /// Archive it into `target` and keep the newest `keep` archives of the node there.
    Backup {
        /// The target directory.
        target: PathBuf,
        /// Archives kept per node.
        keep: usize,
        /// The manifest's facts known before the stop.
        base: ManifestBase,
    },
    /// Replace it with an archive's contents: `from` when given, else the newest good archive
    /// of the node in `dir`, else of its chain (an automatic restore skips corrupted ones).
    Restore {
        /// The archive the operator named.
        from: Option<PathBuf>,
        /// The target directory searched otherwise.
        dir: PathBuf,
        /// The node's chain.
        chain: String,
        /// For an automatic restore on the chain's corrupt-database signal: the text its log
        /// tail must hold.
        marker: Option<&'static str>,
    },
}

/// One backup or restore of one node, owned so it runs in a task.
pub struct ArchiveJob {
    /// The node.
    pub node: String,
    /// Its supervisord program.
    pub program: String,
    /// Its supervisord.
    pub supervisor: Arc<dyn Supervisor>,
    /// The restart log.
    pub log: Arc<dyn RowSink>,
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// Backup or restore.
    pub work: Work,
    /// Why.
    pub why: Why,
    /// For the rows.
    pub context: RowContext,
    /// For timestamps.
    pub clock: Arc<dyn Clock>,
    /// Where progress goes (the snapshot reads it).
    pub progress: Arc<Mutex<Option<ArchiveLine>>>,
    /// The snapshot, updated with each progress report between ticks.
    pub snapshot: Arc<RwLock<Snapshot>>,
}

/// What an archive job did, besides how the node was left.
#[derive(Clone, Debug)]
pub enum ArchiveOutcome {
    /// A backup was written (and retention removed these older archives).
    BackedUp {
        /// The manifest written.
        manifest: Box<Manifest>,
        /// The archive file.
        archive: PathBuf,
        /// How long the archive took.
        took: Duration,
        /// Archives removed by retention.
        pruned: Vec<PathBuf>,
    },
    /// The data directory was restored; the old one is kept for later removal.
    Restored {
        /// The archive restored.
        archive: PathBuf,
        /// The old directory set aside.
        old: Option<PathBuf>,
    },
    /// It failed (the node was started again if it had been stopped).
    Failed(String),
    /// Nothing was done and the node was not touched (the archive did not verify, there is
    /// none, the log tail does not show the corrupt-database signal).
    Refused(String),
}

impl ArchiveJob {
    fn row(&self, action: RestartAction, reason: String) -> RestartRow {
        RestartRow {
            node: self.node.clone(),
            timestamp: self.clock.now(),
            action,
            uptime_secs: match action {
                RestartAction::Stop => self.context.uptime_secs,
                _ => None,
            },
            reason,
            program: self.program.clone(),
            height: self.context.height,
            reference_height: self.context.reference_height,
            supervisor_state: self
                .context
                .program_state
                .map(|state| state.name().to_string())
                .unwrap_or_default(),
            exit_status: self.context.exit_status,
        }
    }

    async fn record(&self, action: RestartAction, reason: String) {
        if let Err(e) = disk::append(&self.log, self.row(action, reason)).await {
            error!(node = %self.node, "cannot append to the restart log: {e}");
        }
    }

    fn kind(&self) -> &'static str {
        match self.work {
            Work::Backup { .. } => "backup",
            Work::Restore { .. } => "restore",
        }
    }

    fn phase(&self, phase: &str, path: &Path) {
        let line = ArchiveLine {
            node: self.node.clone(),
            kind: self.kind().to_string(),
            phase: phase.to_string(),
            path: path.display().to_string(),
            bytes: 0,
            files: 0,
            elapsed_secs: 0,
            why: self.why.words(),
        };
        publish(&self.progress, &self.snapshot, Some(line));
    }

    /// A progress callback for the engine: the snapshot at each report, the log every 10 s.
    fn reporter(&self) -> impl FnMut(Progress) + Send + 'static {
        let (progress, snapshot, node) = (
            Arc::clone(&self.progress),
            Arc::clone(&self.snapshot),
            self.node.clone(),
        );
        let kind = self.kind();
        let mut logged = Duration::ZERO;
        move |report: Progress| {
            let line = progress.lock().ok().and_then(|line| line.clone());
            if let Some(mut line) = line {
                line.bytes = report.bytes;
                line.files = report.files;
                line.elapsed_secs = report.elapsed.as_secs();
                publish(&progress, &snapshot, Some(line));
            }
            if !report.done && report.elapsed >= logged + LOG_EVERY {
                logged = report.elapsed;
                info!(
                    node = %node,
                    "{kind} of {node}: {} MB, {} files, {} s",
                    report.bytes / 1_000_000,
                    report.files,
                    report.elapsed.as_secs()
                );
            }
        }
    }

    /// Runs the job to its end: how the node was left, and what was done.
    pub async fn run(self) -> (Finished, ArchiveOutcome) {
        let started = tokio::time::Instant::now();
        let result = match self.work.clone() {
            Work::Backup { target, keep, base } => self.backup(target, keep, base).await,
            Work::Restore {
                from,
                dir,
                chain,
                marker,
            } => self.restore(from, dir, chain, marker).await,
        };
        publish(&self.progress, &self.snapshot, None);
        info!(node = %self.node, "{} job ended after {:.1} s", self.kind(), started.elapsed().as_secs_f64());
        result
    }

    /// Stops the node (its `stop` row first); `Err` when the stop failed (and whether it may have
    /// happened).
    async fn stop_node(&self, reason: &str) -> Result<(), Finished> {
        self.record(RestartAction::Stop, reason.to_string()).await;
        match self.supervisor.stop(&self.program).await {
            Ok(_)
            | Err(SupervisorError::Fault {
                fault: Fault::NotRunning(_),
                ..
            }) => Ok(()),
            Err(e) => {
                error!(node = %self.node, "{reason}: stop failed: {e}");
                Err(Finished {
                    outcome: Outcome::Failed {
                        left_stopped: e.may_have_acted(),
                    },
                    error: Some(format!("stop failed: {e}")),
                })
            }
        }
    }

    /// Starts the node again (its `start` row first).
    async fn start_node(&self, reason: &str) -> Finished {
        self.record(RestartAction::Start, reason.to_string()).await;
        match self.supervisor.start(&self.program).await {
            Ok(_)
            | Err(SupervisorError::Fault {
                fault: Fault::AlreadyStarted(_),
                ..
            }) => Finished {
                outcome: Outcome::Done,
                error: None,
            },
            Err(e) => {
                error!(node = %self.node, "{reason}: start failed: {e}");
                // Left stopped by nodekeeper: the policy starts it.
                Finished {
                    outcome: Outcome::Failed { left_stopped: true },
                    error: Some(format!("start failed: {e}")),
                }
            }
        }
    }

    async fn backup(
        &self,
        target: PathBuf,
        keep: usize,
        base: ManifestBase,
    ) -> (Finished, ArchiveOutcome) {
        let reason = format!("backup ({})", self.why.words());
        self.phase("stopping", &target);
        if let Err(finished) = self.stop_node(&reason).await {
            let error = finished.error.clone().unwrap_or_default();
            return (finished, ArchiveOutcome::Failed(error));
        }
        self.phase("archiving", &target);
        let mut report = self.reporter();
        let (data_dir, node) = (self.data_dir.clone(), self.node.clone());
        let began = tokio::time::Instant::now();
        let written = tokio::task::spawn_blocking(move || {
            let manifest = backup::create(&data_dir, &target, &base, &mut report)?;
            let archive = target.join(&manifest.archive);
            // Retention after a good archive only: a failed backup never costs an old one.
            let pruned = backup::prune(&target, &node, keep)?;
            Ok::<_, BackupError>((manifest, archive, pruned))
        })
        .await
        .unwrap_or_else(|e| {
            Err(BackupError::Io {
                action: "run the backup of",
                path: self.data_dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        });
        let took = began.elapsed();
        let outcome = match written {
            Ok((manifest, archive, pruned)) => {
                self.record(
                    RestartAction::Backup,
                    format!(
                        "backup to {} ({} MB in {:.1} s)",
                        archive.display(),
                        manifest.bytes / 1_000_000,
                        took.as_secs_f64()
                    ),
                )
                .await;
                for old in &pruned {
                    info!(node = %self.node, "retention removed {}", old.display());
                }
                ArchiveOutcome::BackedUp {
                    manifest: Box::new(manifest),
                    archive,
                    took,
                    pruned,
                }
            }
            Err(e) => {
                let error = chain_error(&e);
                self.record(RestartAction::Backup, format!("backup failed: {error}"))
                    .await;
                ArchiveOutcome::Failed(error)
            }
        };
        self.phase("starting", &self.data_dir);
        let finished = self.start_node(&reason).await;
        (finished, outcome)
    }

    async fn restore(
        &self,
        from: Option<PathBuf>,
        dir: PathBuf,
        chain: String,
        marker: Option<&'static str>,
    ) -> (Finished, ArchiveOutcome) {
        let untouched = |why: String| {
            (
                Finished {
                    outcome: Outcome::Done,
                    error: Some(why.clone()),
                },
                ArchiveOutcome::Refused(why),
            )
        };
        if let Some(marker) = marker {
            match self.supervisor.tail_log(&self.program, 8192).await {
                Ok(tail) if crate::chain::corrupt_database_seen(marker, &tail) => {}
                Ok(_) => {
                    return untouched(format!(
                        "not restored: the exit status says a corrupt database but the log tail lacks {marker:?}"
                    ));
                }
                Err(e) => {
                    return untouched(format!(
                        "not restored: the log tail cannot be read to confirm a corrupt database: {e}"
                    ));
                }
            }
        }
        self.phase("verifying", from.as_deref().unwrap_or(&dir));
        let automatic = matches!(self.why, Why::Automatic(_));
        let (node, named) = (self.node.clone(), from.clone());
        // The archive is verified before the node is touched: a corrupted one is refused.
        let chosen = tokio::task::spawn_blocking(move || {
            choose(named.as_deref(), &dir, &node, &chain, automatic)
        })
        .await
        .unwrap_or_else(|e| Err(format!("the verification failed: {e}")));
        let entry = match chosen {
            Ok(entry) => entry,
            Err(why) => {
                let why = format!("restore refused: {why}");
                self.record(RestartAction::Restore, why.clone()).await;
                return untouched(why);
            }
        };
        let reason = format!("restore ({})", self.why.words());
        self.phase("stopping", &entry.archive);
        if let Err(finished) = self.stop_node(&reason).await {
            let error = finished.error.clone().unwrap_or_default();
            return (finished, ArchiveOutcome::Failed(error));
        }
        self.phase("restoring", &entry.archive);
        let mut report = self.reporter();
        let (data_dir, archive, manifest) = (
            self.data_dir.clone(),
            entry.archive.clone(),
            entry.manifest.clone(),
        );
        let now = self.clock.now();
        let restored = tokio::task::spawn_blocking(move || {
            backup::restore(&archive, &manifest, &data_dir, now, &mut report)
        })
        .await
        .unwrap_or_else(|e| {
            Err(BackupError::Io {
                action: "run the restore of",
                path: self.data_dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        });
        let outcome = match restored {
            Ok(restored) => {
                let words = match &self.why {
                    Why::Automatic(why) => format!("automatic restore ({why})"),
                    _ => "restore".to_string(),
                };
                self.record(
                    RestartAction::Restore,
                    format!(
                        "{words} from {} (height {})",
                        entry.archive.display(),
                        entry
                            .manifest
                            .height
                            .map_or("unknown".to_string(), |h| h.to_string())
                    ),
                )
                .await;
                ArchiveOutcome::Restored {
                    archive: entry.archive.clone(),
                    old: restored.old,
                }
            }
            Err(e) => {
                let error = chain_error(&e);
                self.record(RestartAction::Restore, format!("restore failed: {error}"))
                    .await;
                ArchiveOutcome::Failed(error)
            }
        };
        self.phase("starting", &self.data_dir);
        let finished = self.start_node(&reason).await;
        (finished, outcome)
    }
}

/// The error and its causes, one line.
fn chain_error(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The progress line in its cell and in the snapshot.
fn publish(
    cell: &Arc<Mutex<Option<ArchiveLine>>>,
    snapshot: &Arc<RwLock<Snapshot>>,
    line: Option<ArchiveLine>,
) {
    if let Ok(mut cell) = cell.lock() {
        cell.clone_from(&line);
    }
    if let Ok(mut snapshot) = snapshot.write() {
        snapshot.archive = line;
    }
}

/// The archive a restore takes, verified: the one named (its manifest beside it), else the
/// newest good archive of the node in `dir`, else of its chain. An automatic restore skips
/// corrupted archives for older ones; an operator's is refused with the corrupted one named.
fn choose(
    named: Option<&Path>,
    dir: &Path,
    node: &str,
    chain: &str,
    skip_corrupt: bool,
) -> Result<Entry, String> {
    if let Some(archive) = named {
        let entry = named_entry(archive).map_err(|e| chain_error(&e))?;
        backup::verify(&entry.archive, &entry.manifest).map_err(|e| chain_error(&e))?;
        return Ok(entry);
    }
    let listing = backup::list(dir).map_err(|e| chain_error(&e))?;
    let mut candidates: Vec<&Entry> = listing.of_node(node).collect();
    candidates.extend(listing.of_chain(chain).filter(|e| e.manifest.node != node));
    if candidates.is_empty() {
        return Err(format!(
            "no archive of {node} or of another {chain} node in {}",
            dir.display()
        ));
    }
    let mut problems = Vec::new();
    for entry in candidates {
        match backup::verify(&entry.archive, &entry.manifest) {
            Ok(()) => return Ok(entry.clone()),
            Err(e) if skip_corrupt => {
                warn!(node = %node, "skipping an archive that does not verify: {}", chain_error(&e));
                problems.push(chain_error(&e));
            }
            Err(e) => {
                return Err(format!("{}; name another with --from", chain_error(&e)));
            }
        }
    }
    Err(format!("no archive verifies: {}", problems.join("; ")))
}

/// The entry of an archive named by path: its manifest is `NAME.manifest.json` beside it.
fn named_entry(archive: &Path) -> Result<Entry, BackupError> {
    let name = archive
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_suffix(backup::manifest::ARCHIVE_SUFFIX))
        .ok_or_else(|| BackupError::Io {
            action: "read",
            path: archive.to_path_buf(),
            source: std::io::Error::other("an archive's name ends with .tar.zst"),
        })?;
    let manifest_path = crate::backup::parent_of(archive)
        .join(format!("{name}{}", backup::manifest::MANIFEST_SUFFIX));
    let manifest = Manifest::read(&manifest_path)?;
    Ok(Entry {
        archive: archive.to_path_buf(),
        created_at: chrono::DateTime::parse_from_rfc3339(&manifest.created_at)
            .map(|t| t.with_timezone(&chrono::Utc).into())
            .unwrap_or(SystemTime::UNIX_EPOCH),
        manifest_path,
        manifest,
    })
}

/// A data directory a restore set aside, removed once its node has been in sync long enough.
#[derive(Clone, Debug)]
struct SetAside {
    node: String,
    path: PathBuf,
    in_sync_since: Option<SystemTime>,
}

/// What a listing of `backup.dir` told (refreshed off the loop).
#[derive(Debug, Default)]
struct Listed {
    /// Chains with a good archive.
    chains: BTreeSet<String>,
    /// The newest good archive's time.
    newest: Option<SystemTime>,
    /// A listing has completed (the schedule waits for the first one).
    done: bool,
}

/// What the loop keeps of backups and restores between events.
#[derive(Default)]
pub struct Archives {
    /// The job in flight's progress (one at a time).
    pub progress: Arc<Mutex<Option<ArchiveLine>>>,
    /// The node an archive job runs for.
    pub running: Option<String>,
    /// Each node's exits, for the automatic restore.
    watches: BTreeMap<String, ExitWatch>,
    /// When the last backup by this daemon succeeded (any node).
    last_success: Option<SystemTime>,
    /// The last listing of `backup.dir`.
    listed: Arc<Mutex<Listed>>,
    /// Old data directories waiting for their node to be in sync.
    set_aside: Vec<SetAside>,
    /// The first listing was asked for.
    listing_asked: bool,
    /// Nodes whose backup in flight is a scheduled one.
    scheduled: BTreeSet<String>,
    /// Nodes whose restore in flight is automatic, with why.
    automatic: BTreeMap<String, String>,
}

impl Archives {
    /// Lists `backup.dir` off the loop: which chains have a good archive, and the newest one's
    /// time (the schedule counts from it after a restart of the daemon).
    pub fn refresh(&self, dir: PathBuf) {
        let listed = Arc::clone(&self.listed);
        tokio::task::spawn_blocking(move || match backup::list(&dir) {
            Ok(listing) => {
                if let Ok(mut listed) = listed.lock() {
                    listed.done = true;
                    listed.newest = listing.good.iter().map(|e| e.created_at).max();
                    listed.chains = listing
                        .good
                        .iter()
                        .map(|e| e.manifest.chain.clone())
                        .collect();
                }
            }
            Err(e) => {
                warn!("backup.dir: {}", chain_error(&e));
                if let Ok(mut listed) = listed.lock() {
                    listed.done = true;
                }
            }
        });
    }

    fn listed(&self) -> bool {
        self.listed.lock().is_ok_and(|listed| listed.done)
    }

    fn has_chain(&self, chain: &str) -> bool {
        self.listed
            .lock()
            .is_ok_and(|listed| listed.chains.contains(chain))
    }

    /// When the last backup succeeded, as far as this daemon or the directory tells.
    fn last_backup(&self) -> Option<SystemTime> {
        let listed = self.listed.lock().ok().and_then(|listed| listed.newest);
        self.last_success.max(listed)
    }
}

impl Daemon {
    /// The rules' view of the pool after the last tick.
    fn pool_view<'a>(
        &'a self,
        with_data_dir: &'a BTreeSet<String>,
        facts: &'a PoolFacts,
    ) -> PoolView<'a> {
        PoolView {
            facts,
            state: &self.policy,
            leader: &self.rt.policy.leader,
            busy: self.jobs.nodes(),
            archiving: self.archives.running.as_deref(),
            with_data_dir,
        }
    }

    fn with_data_dir(&self) -> BTreeSet<String> {
        self.rt
            .config
            .nodes
            .iter()
            .filter(|node| node.data_dir.is_some())
            .map(|node| node.name.clone())
            .collect()
    }

    /// An operator's backup of `node` into `to` (else `backup.dir`): the rules decide, then the
    /// job starts.
    pub(super) fn request_backup(
        &mut self,
        node: &str,
        to: Option<PathBuf>,
        note: Option<String>,
    ) -> Result<String, String> {
        let Some(settings) = self.rt.config.backup.clone() else {
            return Err("backups are not configured: add a [backup] table with dir".to_string());
        };
        let with = self.with_data_dir();
        let facts = self.last.facts.clone();
        let now = self.clock.now();
        rules::may_back_up(&settings.rules, &self.pool_view(&with, &facts), node, now)
            .map_err(|refusal: Refusal| refusal.to_string())?;
        let target = to.unwrap_or(settings.dir.clone());
        self.start_backup(node, target, Why::Operator(note))
    }

    fn start_backup(&mut self, node: &str, target: PathBuf, why: Why) -> Result<String, String> {
        let Some(settings) = self.rt.config.backup.clone() else {
            return Err("backups are not configured".to_string());
        };
        let observation = self.last.observation.as_ref();
        let height = self.last.facts.node(node).and_then(|facts| facts.height);
        let probe = observation
            .and_then(|o| o.nodes.iter().find(|seen| seen.name == node))
            .and_then(|seen| seen.probe.as_ref())
            .and_then(|probe| probe.as_ref().ok());
        let Some(config) = self.rt.config.node(node) else {
            return Err(format!("no node {node:?} in the configuration"));
        };
        let base = ManifestBase {
            chain: config.chain.name().to_string(),
            node: node.to_string(),
            height,
            head: probe.and_then(|status| status.tip_hash.clone()),
            version: probe
                .map(|status| status.version.clone())
                .filter(|v| !v.is_empty())
                .or_else(|| config.version.clone()),
            created_at: self.clock.now(),
        };
        let keep = usize::try_from(settings.keep).unwrap_or(usize::MAX);
        let message = format!("{node}: backup into {} started", target.display());
        self.spawn_archive(node, Work::Backup { target, keep, base }, why)?;
        Ok(message)
    }

    /// An operator's restore of `node` from `from` (else the newest archive of the node, else of
    /// its chain, in `backup.dir`).
    pub(super) fn request_restore(
        &mut self,
        node: &str,
        from: Option<PathBuf>,
        note: Option<String>,
    ) -> Result<String, String> {
        let Some(settings) = self.rt.config.backup.clone() else {
            return Err("backups are not configured: add a [backup] table with dir".to_string());
        };
        let with = self.with_data_dir();
        let facts = self.last.facts.clone();
        let now = self.clock.now();
        rules::may_restore(&self.pool_view(&with, &facts), node, now)
            .map_err(|refusal: Refusal| refusal.to_string())?;
        let chain = self
            .rt
            .config
            .node(node)
            .map(|n| n.chain.name().to_string())
            .unwrap_or_default();
        self.spawn_archive(
            node,
            Work::Restore {
                from,
                dir: settings.dir.clone(),
                chain,
                marker: None,
            },
            Why::Operator(note),
        )?;
        Ok(format!("{node}: restore started"))
    }

    /// Starts an archive job on `node`.
    fn spawn_archive(&mut self, node: &str, work: Work, why: Why) -> Result<(), String> {
        if self.options.dry_run {
            info!(node = %node, "dry run: would {}: {}", match work { Work::Backup { .. } => "back up", Work::Restore { .. } => "restore" }, why.words());
            return Err("a dry run executes nothing".to_string());
        }
        let (Some(log), Some(settings)) = (&self.out.log, self.rt.config.node(node)) else {
            return Err(format!("no node {node:?} in the configuration"));
        };
        let Some(data_dir) = settings.data_dir.clone() else {
            return Err(format!("{node} has no data_dir"));
        };
        let Some(supervisor) = self.rt.supervisors.get(&settings.supervisor) else {
            return Err(format!("{node}: its supervisord is not configured"));
        };
        let context = self
            .last
            .observation
            .as_ref()
            .map(|observation| RowContext::of(node, observation, &self.last.facts))
            .unwrap_or_default();
        let kind = match work {
            Work::Backup { .. } => Kind::Backup,
            Work::Restore { .. } => Kind::Restore,
        };
        match &work {
            Work::Backup { target, .. } => {
                warn!(node = %node, "backing up {node} into {} ({}): it stops meanwhile", target.display(), why.words())
            }
            Work::Restore { from, .. } => {
                warn!(node = %node, "restoring {node} from {} ({}): it stops meanwhile", from.as_deref().map_or("the newest archive".to_string(), |p| p.display().to_string()), why.words())
            }
        }
        let job = ArchiveJob {
            node: node.to_string(),
            program: settings.program.clone(),
            supervisor: Arc::clone(supervisor),
            log: Arc::clone(log),
            data_dir,
            work,
            why,
            context,
            clock: Arc::clone(&self.clock),
            progress: Arc::clone(&self.archives.progress),
            snapshot: Arc::clone(&self.out.snapshot),
        };
        self.out.last_restarts.insert(
            node.to_string(),
            crate::status::LastRestart {
                at: crate::time::rfc3339(self.clock.now()),
                action: kind.as_str().into(),
                reason: job.why.words(),
            },
        );
        self.archives.running = Some(node.to_string());
        self.observer.touch(node);
        self.jobs.spawn_archive(node, kind, job);
        Ok(())
    }

    /// An archive job ended: the log, the events, the metrics, the schedule, the old directory.
    pub(super) fn on_archive_finished(&mut self, node: &str, kind: Kind, outcome: &ArchiveOutcome) {
        self.archives.running = None;
        let now = self.clock.now();
        let scheduled = matches!(kind, Kind::Backup) && self.archives.scheduled.remove(node);
        match outcome {
            ArchiveOutcome::BackedUp {
                manifest,
                archive,
                took,
                ..
            } => {
                info!(node = %node, "backed up {node} into {} ({} bytes, {:.1} s)", archive.display(), manifest.bytes, took.as_secs_f64());
                self.archives.last_success = Some(now);
                self.out
                    .metrics
                    .record_backup(node, true, manifest.bytes, now);
                self.out.emit(Event::BackupDone {
                    node: node.to_string(),
                    archive: archive.display().to_string(),
                    height: manifest.height,
                    bytes: manifest.bytes,
                    took: *took,
                    scheduled,
                });
            }
            ArchiveOutcome::Restored { archive, old } => {
                let automatic = self.archives.automatic.remove(node);
                info!(node = %node, "restored {node} from {}", archive.display());
                self.out
                    .metrics
                    .record_restore(node, true, automatic.is_some());
                self.out.emit(Event::NodeRestored {
                    node: node.to_string(),
                    archive: archive.display().to_string(),
                    reason: automatic.clone().unwrap_or_else(|| "operator".to_string()),
                    automatic: automatic.is_some(),
                });
                // It runs from another database now: a hold for its crashes or its hopeless exit
                // ends (an operator's stays).
                if self.policy.release_after_restore(node) {
                    info!(node = %node, "{node} is no longer held: it was restored");
                }
                if let Some(old) = old {
                    info!(node = %node, "the old data directory stays as {} until {node} has been in sync for {:?}", old.display(), self.keep_old_for());
                    self.archives.set_aside.push(SetAside {
                        node: node.to_string(),
                        path: old.clone(),
                        in_sync_since: None,
                    });
                }
            }
            ArchiveOutcome::Failed(error) | ArchiveOutcome::Refused(error) => {
                warn!(node = %node, "{}: {error}", kind.as_str());
                if kind == Kind::Backup {
                    self.out.metrics.record_backup(node, false, 0, now);
                    self.out.emit(Event::BackupFailed {
                        node: node.to_string(),
                        error: error.clone(),
                        scheduled,
                    });
                } else {
                    let automatic = self.archives.automatic.remove(node);
                    self.out
                        .metrics
                        .record_restore(node, false, automatic.is_some());
                    self.out.emit(Event::RestoreFailed {
                        node: node.to_string(),
                        error: error.clone(),
                        automatic: automatic.is_some(),
                    });
                }
            }
        }
        if matches!(
            outcome,
            ArchiveOutcome::BackedUp { .. } | ArchiveOutcome::Restored { .. }
        ) {
            // The node was started again: boot grace, as after any start.
            self.policy.note_maintenance_start(node, now);
        }
        if let Some(settings) = &self.rt.config.backup {
            self.archives.refresh(settings.dir.clone());
        }
    }

    fn keep_old_for(&self) -> Duration {
        self.rt
            .config
            .backup
            .as_ref()
            .map_or(Duration::ZERO, |settings| settings.keep_old_for)
    }

    /// After each tick: a due scheduled backup, old data directories removed once their node
    /// has been in sync long enough.
    pub(super) fn after_tick_archives(&mut self) {
        let Some(settings) = self.rt.config.backup.clone() else {
            return;
        };
        if !self.archives.listing_asked {
            self.archives.listing_asked = true;
            self.archives.refresh(settings.dir.clone());
        }
        let Some(now) = self.last.observation.as_ref().map(|o| o.now) else {
            return;
        };
        let facts = self.last.facts.clone();
        // Old directories.
        let keep_old_for = settings.keep_old_for;
        let mut remove = Vec::new();
        self.archives.set_aside.retain_mut(|aside| {
            let in_sync = facts.node(&aside.node).is_some_and(|f| f.in_sync);
            if !in_sync {
                aside.in_sync_since = None;
                return true;
            }
            let since = *aside.in_sync_since.get_or_insert(now);
            if now.duration_since(since).unwrap_or_default() >= keep_old_for {
                remove.push(aside.clone());
                return false;
            }
            true
        });
        for aside in remove {
            tokio::task::spawn_blocking(move || match backup::remove_old(&aside.path) {
                Ok(()) => {
                    info!(node = %aside.node, "{} has been in sync long enough: removed the old data directory {}", aside.node, aside.path.display())
                }
                Err(e) => warn!(node = %aside.node, "{}", chain_error(&e)),
            });
        }
        // The schedule, once the directory was read (it counts from the newest archive).
        if self.archives.running.is_none() && self.archives.listed() {
            let with = self.with_data_dir();
            let last = self.archives.last_backup();
            let due =
                rules::scheduled_backup(&settings.rules, &self.pool_view(&with, &facts), last, now);
            if let Some(node) = due {
                match self.start_backup(&node, settings.dir.clone(), Why::Scheduled) {
                    Ok(_) => {
                        self.archives.scheduled.insert(node);
                    }
                    Err(e) => warn!(node = %node, "scheduled backup not started: {e}"),
                }
            }
        }
    }

    /// Before the policy decides on a round: each node's exits are counted, and a node that
    /// cannot start from its database (`backup.auto_restore`) is restored instead of restarted
    /// (its job makes it busy, so the policy leaves it alone). In sync is the last tick's.
    pub(super) fn watch_exits(&mut self, nodes: &[NodeObservation], now: SystemTime) {
        let Some(settings) = self.rt.config.backup.clone() else {
            return;
        };
        let busy = self.jobs.nodes().clone();
        let mut restore = None;
        for seen in nodes {
            let facts = self
                .last
                .facts
                .node(&seen.name)
                .cloned()
                .unwrap_or_else(|| NodeFacts {
                    name: seen.name.clone(),
                    height: None,
                    lag: None,
                    in_sync: false,
                    why_not: None,
                    stale: None,
                    up: false,
                    known: false,
                });
            // The last tick's verdict, unless the program is not running now (an exit seen
            // this round counts).
            let running =
                matches!(&seen.program, ProgramSeen::Known(p) if p.state == ProcessState::Running);
            let facts = NodeFacts {
                in_sync: facts.in_sync && running,
                ..facts
            };
            let running_job = self.archives.running.is_some();
            let chain = self
                .rt
                .config
                .node(&seen.name)
                .and_then(|config| config.data_dir.as_ref().map(|_| config.chain.name()));
            let has = chain.filter(|chain| self.archives.has_chain(chain));
            let watch = self.archives.watches.entry(seen.name.clone()).or_default();
            watch.observe(settings.rules.early_exit, seen, &facts, now);
            if restore.is_some() || busy.contains(&seen.name) || running_job {
                continue;
            }
            let Some(chain) = chain else {
                continue;
            };
            if let Some(reason) = rules::auto_restore(&settings.rules, watch, has) {
                let marker = match (&reason, self.rt.nodes.get(&seen.name)) {
                    (RestoreReason::CorruptDatabase(_), Some(adapter)) => {
                        adapter.corrupt_database_marker()
                    }
                    _ => None,
                };
                watch.note_restored();
                restore = Some((seen.name.clone(), chain.to_string(), reason, marker));
            }
        }
        let Some((name, chain, reason, marker)) = restore else {
            return;
        };
        warn!(node = %name, "{name} {reason}: restoring it from the newest archive of {chain} (backup.auto_restore)");
        let why = reason.to_string();
        match self.spawn_archive(
            &name,
            Work::Restore {
                from: None,
                dir: settings.dir.clone(),
                chain,
                marker,
            },
            Why::Automatic(reason),
        ) {
            Ok(()) => {
                self.archives.automatic.insert(name, why);
            }
            Err(e) => warn!(node = %name, "automatic restore not started: {e}"),
        }
    }

    /// The API's progress line for the snapshot a tick builds.
    pub(super) fn archive_line(&self) -> Option<ArchiveLine> {
        self.archives
            .progress
            .lock()
            .ok()
            .and_then(|line| line.clone())
    }
}

/// A job's result for the loop.
pub fn done(node: String, kind: Kind, result: (Finished, ArchiveOutcome)) -> JobDone {
    let (finished, outcome) = result;
    JobDone {
        node,
        kind,
        finished,
        archive: Some(Box::new(outcome)),
    }
}

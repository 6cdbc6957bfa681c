//! `nodekeeper backup NODE [--to DIR]` and `nodekeeper restore NODE [--from ARCHIVE]`: asked of
//! the running daemon (it knows which node holds the key, the guard windows and what is in
//! flight, and it serialises the job with its own actions); the command follows the job,
//! printing its progress, until it ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::Failure;
use super::ctl::daemon_api;
use crate::api::{ApiClient, ApiClientError};
use crate::status::{ActionState, NodeAction};

/// `nodekeeper backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The node (`nodes[].name`); it must have a `data_dir`.
    pub node: String,
    /// The target directory (local or mounted) instead of `backup.dir`.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Why, kept with the action and logged.
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the action's id and return at once instead of following it to its end.
    #[arg(long)]
    pub no_wait: bool,
}

/// `nodekeeper restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The node (`nodes[].name`); it must have a `data_dir`.
    pub node: String,
    /// The archive (`NAME.tar.zst`, its `NAME.manifest.json` beside it) instead of the newest
    /// good archive of the node (else of its chain) in `backup.dir`.
    #[arg(long, value_name = "ARCHIVE")]
    pub from: Option<PathBuf>,
    /// Why, kept with the action and logged.
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the action's id and return at once instead of following it to its end.
    #[arg(long)]
    pub no_wait: bool,
}

/// Runs `backup`.
pub async fn backup(source: &super::ConfigSourceArgs, args: BackupArgs) -> Result<u8, Failure> {
    let to = args.to.as_deref().map(absolute).transpose()?;
    ask(
        source,
        &args.node,
        NodeAction::Backup,
        args.reason.as_deref(),
        to,
        args.no_wait,
    )
    .await
}

/// Runs `restore`.
pub async fn restore(source: &super::ConfigSourceArgs, args: RestoreArgs) -> Result<u8, Failure> {
    let from = args.from.as_deref().map(absolute).transpose()?;
    ask(
        source,
        &args.node,
        NodeAction::Restore,
        args.reason.as_deref(),
        from,
        args.no_wait,
    )
    .await
}

/// The daemon runs on this host: a relative path is made absolute here.
fn absolute(path: &Path) -> Result<String, Failure> {
    let path = std::path::absolute(path)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| Failure::usage(format!("{}: not UTF-8", path.display())))
}

async fn ask(
    source: &super::ConfigSourceArgs,
    node: &str,
    action: NodeAction,
    reason: Option<&str>,
    path: Option<String>,
    no_wait: bool,
) -> Result<u8, Failure> {
    let config = source.load()?;
    let token = crate::api::token(config.api.token.as_ref(), &crate::api::token_path(&config))
        .map_err(Failure::usage)?;
    let api = daemon_api(&config, token, Duration::from_secs(10))?;
    let verb = action.as_str();
    let view = api
        .archive_action(node, action, reason, path.as_deref(), false)
        .await
        .map_err(|e| refused(&api, node, verb, e))?;
    if no_wait {
        println!("{node}: {verb} started (action {})", view.id);
        return Ok(0);
    }
    follow(&api, node, verb, view.id, view.state).await
}

fn refused(api: &ApiClient, node: &str, verb: &str, error: ApiClientError) -> Failure {
    match error {
        e @ ApiClientError::Unreachable => Failure::runtime(format!(
            "cannot reach the nodekeeper daemon at {}: {e} (a {verb} goes through `nodekeeper run`, which knows which node holds the key)",
            api.base()
        )),
        ApiClientError::Transport(e) => {
            Failure::runtime(format!("the nodekeeper daemon at {}: {e}", api.base()))
        }
        e => Failure::runtime(format!(
            "the daemon at {} refused to {verb} {node}: {e}",
            api.base()
        )),
    }
}

/// Follows the action to its end, printing the progress the status shows every few seconds.
async fn follow(
    api: &ApiClient,
    node: &str,
    verb: &str,
    id: String,
    mut state: ActionState,
) -> Result<u8, Failure> {
    let mut last_line = String::new();
    let mut misses = 0;
    loop {
        match state {
            ActionState::Done { message } => {
                println!("{message}");
                return Ok(0);
            }
            ActionState::Failed { error } => {
                return Err(Failure::runtime(format!(
                    "{verb} of {node} failed: {error}"
                )));
            }
            ActionState::Running => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(status) = api.status().await
            && let Some(line) = status.archive.filter(|line| line.node == node)
        {
            let text = format!(
                "{node}: {} {}: {} MB, {} files, {} s",
                line.kind,
                line.phase,
                line.bytes / 1_000_000,
                line.files,
                line.elapsed_secs
            );
            if text != last_line {
                eprintln!("{text}");
                last_line = text;
            }
        }
        state = match api.action(&id).await {
            Ok(view) => {
                misses = 0;
                view.state
            }
            Err(e) => {
                misses += 1;
                if misses >= 30 {
                    return Err(Failure::runtime(format!(
                        "lost track of the {verb} of {node} (action {id}): {e}; the daemon's log and `nodekeeper log` tell how it ended"
                    )));
                }
                ActionState::Running
            }
        };
    }
}

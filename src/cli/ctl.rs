//! `nodekeeper ctl`: supervisorctl's everyday commands (status, start, stop, restart, tail, pid)
//! over the typed client, with one clear line per error and exit codes 0/1/2. With a nodekeeper
//! configuration given (`-c`, `NODEKEEPER_CONFIG` or `--jmanager-config`) and its daemon
//! answering, `start`, `stop` and `restart` of configured nodes go through the daemon's API, so
//! they are serialised with its own actions; `hold` and `release` always do.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{ConnectionArgs, EXIT_FAILURE, Failure};
use crate::api::{ApiClient, ApiClientError};
use crate::status::{ActionState, ActionView, NodeAction};
use crate::supervisor::{Client, Fault, ProcessInfo, SupervisorError};

/// `nodekeeper ctl`: options and command.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// How to reach supervisord.
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// The command.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// The `ctl` commands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Show programs: name, state, and `pid N, uptime H:MM:SS` or supervisord's description.
    Status {
        /// Programs to show (`name`, `group:name` or `group:*`); all when none is given.
        names: Vec<String>,
    },
    /// Start programs and wait until they are up (startsecs).
    ///
    /// With a nodekeeper configuration (-c) whose daemon answers, configured nodes are started
    /// through the daemon's API (a hold ends); otherwise through supervisord directly.
    Start {
        /// Programs to start, or `all`.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop programs and wait until they are down (stopwaitsecs).
    ///
    /// With a nodekeeper configuration (-c) whose daemon answers, configured nodes are stopped
    /// through the daemon's API (and held, so it does not start them again); otherwise through
    /// supervisord directly.
    Stop {
        /// Programs to stop, or `all`.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop then start programs (supervisord has no restart call).
    ///
    /// With a nodekeeper configuration (-c) whose daemon answers, configured nodes are restarted
    /// through the daemon's API (never racing its own actions; a node it is acting on is refused);
    /// otherwise, or when the daemon does not answer, through supervisord directly.
    Restart {
        /// Programs to restart, or `all`.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print the end of a program's stdout log; `-f` keeps following it.
    Tail {
        /// Keep printing what the program writes, until interrupted.
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many bytes of the end of the log to print first.
        #[arg(long, default_value_t = 1600)]
        bytes: u32,
        /// The program.
        name: String,
    },
    /// Print supervisord's PID, or a program's (`0` when not running), or every program's (`all`).
    Pid {
        /// A program, or `all`.
        name: Option<String>,
    },
    /// Ask the running daemon to leave a node alone (no start, stop or restart) until released.
    Hold {
        /// The node (as configured).
        node: String,
    },
    /// Ask the running daemon to manage a held node again (a stopped node is started).
    Release {
        /// The node (as configured).
        node: String,
    },
}

/// Runs a `ctl` command.
pub async fn run(source: &super::ConfigSourceArgs, args: CtlArgs) -> Result<u8, Failure> {
    match &args.command {
        CtlCommand::Hold { node } => return daemon_request(source, node, NodeAction::Hold).await,
        CtlCommand::Release { node } => {
            return daemon_request(source, node, NodeAction::Release).await;
        }
        CtlCommand::Start { names } => {
            let action = NodeAction::Start;
            if let Some(code) = through_daemon(source, names, action, &args.connection).await? {
                return Ok(code);
            }
        }
        CtlCommand::Stop { names } => {
            let action = NodeAction::Stop;
            if let Some(code) = through_daemon(source, names, action, &args.connection).await? {
                return Ok(code);
            }
        }
        CtlCommand::Restart { names } => {
            let action = NodeAction::Restart;
            if let Some(code) = through_daemon(source, names, action, &args.connection).await? {
                return Ok(code);
            }
        }
        _ => {}
    }
    let client = args.connection.client()?;
    match args.command {
        CtlCommand::Status { names } => status(&client, &names).await,
        CtlCommand::Start { names } => control(&client, &names, Verb::Start).await,
        CtlCommand::Stop { names } => control(&client, &names, Verb::Stop).await,
        CtlCommand::Restart { names } => control(&client, &names, Verb::Restart).await,
        CtlCommand::Tail {
            follow,
            bytes,
            name,
        } => tail(&client, &name, i64::from(bytes), follow).await,
        CtlCommand::Pid { name } => pid(&client, name.as_deref()).await,
        CtlCommand::Hold { .. } | CtlCommand::Release { .. } => unreachable!("handled above"),
    }
}

/// `hold` and `release` go to the daemon's API, found through the configuration.
async fn daemon_request(
    source: &super::ConfigSourceArgs,
    node: &str,
    action: NodeAction,
) -> Result<u8, Failure> {
    let config = source.load()?;
    let token = crate::api::token(config.api.token.as_ref(), &crate::api::token_path(&config))
        .map_err(Failure::usage)?;
    let api = daemon_api(&config, token, Duration::from_secs(10))?;
    let verb = action.as_str();
    let answer = api.node_action(node, action, None, true).await;
    match answer.map(|view| answered(node, action, view)) {
        Ok(Ok(line)) => {
            println!("{line}");
            Ok(0)
        }
        Ok(Err(message)) => Err(Failure::runtime(format!(
            "the daemon at {} could not {verb} {node}: {message}",
            api.base()
        ))),
        Err(e @ ApiClientError::Unreachable) => Err(Failure::runtime(format!(
            "cannot reach the nodekeeper daemon at {}: {e} (is `nodekeeper run` running?)",
            api.base()
        ))),
        Err(ApiClientError::Transport(e)) => Err(Failure::runtime(format!(
            "the nodekeeper daemon at {}: {e}",
            api.base()
        ))),
        Err(e) => Err(Failure::runtime(format!(
            "the daemon at {} refused to {verb} {node}: {e}",
            api.base()
        ))),
    }
}

/// The running daemon's API as `ctl` calls it: at the configured listen address, with `token`.
pub(super) fn daemon_api(
    config: &crate::config::Config,
    token: String,
    timeout: Duration,
) -> Result<ApiClient, Failure> {
    let api = ApiClient::new(&config.api.listen.to_string(), timeout)
        .map_err(|e| Failure::runtime(e.to_string()))?;
    Ok(api.with_token(token))
}

/// The line to print for an action the daemon answered (done, or still in flight), or why it
/// failed.
fn answered(node: &str, action: NodeAction, view: ActionView) -> Result<String, String> {
    match view.state {
        ActionState::Done { message } => Ok(message),
        ActionState::Running => Ok(format!(
            "{node}: {} still in flight (action {})",
            action.as_str(),
            view.id
        )),
        ActionState::Failed { error } => Err(error),
    }
}

/// `start`, `stop` and `restart` through the daemon, when a nodekeeper configuration is given
/// (`-c`, `NODEKEEPER_CONFIG`, `--jmanager-config`), every name is one of its nodes (or `all`),
/// a token is known and the daemon answers. `None`: use supervisord directly.
async fn through_daemon(
    source: &super::ConfigSourceArgs,
    names: &[String],
    action: NodeAction,
    connection: &ConnectionArgs,
) -> Result<Option<u8>, Failure> {
    if source.config.is_none() && source.jmanager_config.is_none() {
        return Ok(None);
    }
    let config = source.load()?;
    let nodes: Vec<String> = if names == ["all"] {
        config.nodes.iter().map(|node| node.name.clone()).collect()
    } else if names.iter().all(|name| config.node(name).is_some()) {
        names.to_vec()
    } else {
        return Ok(None);
    };
    // The daemon creates its token file when it starts: without one it is not running. Unlike
    // `hold`, this never creates the file.
    let token = match &config.api.token {
        Some(secret) => secret.expose().to_string(),
        None => match std::fs::read_to_string(crate::api::token_path(&config)) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
            _ => return Ok(None),
        },
    };
    // A stop and a start, each up to --wait-timeout, plus the daemon's own margin.
    let timeout = Duration::from_secs_f64(connection.wait_timeout) * 2 + Duration::from_secs(10);
    let api = daemon_api(&config, token, timeout)?;
    let answers = concurrently(&nodes, |node| {
        let api = api.clone();
        async move { api.node_action(&node, action, None, true).await }
    })
    .await?;
    if answers
        .iter()
        .all(|answer| matches!(answer, Err(ApiClientError::Unreachable)))
    {
        eprintln!(
            "note: the nodekeeper daemon at {} does not answer; using supervisord directly",
            api.base()
        );
        return Ok(None);
    }
    let mut code = 0;
    let mut out = std::io::stdout().lock();
    for (node, answer) in nodes.iter().zip(answers) {
        let _ = match answer.map(|view| answered(node, action, view)) {
            Ok(Ok(line)) => writeln!(out, "{line}"),
            Ok(Err(message)) => {
                code = EXIT_FAILURE;
                writeln!(out, "{node}: ERROR ({message})")
            }
            Err(e @ (ApiClientError::Unreachable | ApiClientError::Transport(_))) => {
                code = EXIT_FAILURE;
                writeln!(out, "{node}: ERROR (the daemon at {}: {e})", api.base())
            }
            Err(e) => {
                code = EXIT_FAILURE;
                writeln!(out, "{node}: ERROR (the daemon refused: {e})")
            }
        };
    }
    Ok(Some(code))
}

/// Runs `task` for every name at once and returns the results in the names' order.
async fn concurrently<T, F>(names: &[String], task: impl Fn(String) -> F) -> Result<Vec<T>, Failure>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for (index, name) in names.iter().enumerate() {
        let running = task(name.clone());
        tasks.spawn(async move { (index, running.await) });
    }
    let mut results: Vec<Option<T>> = (0..names.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            Err(e) => return Err(Failure::runtime(format!("internal error: {e}"))),
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// One line of `status`, or the error line of a name that does not resolve.
enum StatusLine {
    Process(ProcessInfo),
    Error { name: String, message: String },
}

async fn status(client: &Client, names: &[String]) -> Result<u8, Failure> {
    let mut lines = Vec::new();
    if names.is_empty() {
        lines.extend(
            client
                .get_all_process_info()
                .await?
                .into_iter()
                .map(StatusLine::Process),
        );
    } else {
        let (groups, plain): (Vec<&String>, Vec<&String>) =
            names.iter().partition(|name| name.ends_with(":*"));
        let all = if groups.is_empty() {
            Vec::new()
        } else {
            client.get_all_process_info().await?
        };
        let plain: Vec<String> = plain.into_iter().cloned().collect();
        let mut plain_results = if plain.is_empty() {
            Vec::new()
        } else {
            client.get_process_infos(&plain).await?
        }
        .into_iter();
        // Keep the order the operator asked for.
        for name in names {
            if let Some(group) = name.strip_suffix(":*") {
                let members: Vec<_> = all.iter().filter(|info| info.group == group).collect();
                if members.is_empty() {
                    lines.push(StatusLine::Error {
                        name: name.clone(),
                        message: "no such group".into(),
                    });
                }
                lines.extend(members.into_iter().cloned().map(StatusLine::Process));
            } else {
                match plain_results.next() {
                    Some(Ok(info)) => lines.push(StatusLine::Process(info)),
                    Some(Err(fault)) => lines.push(StatusLine::Error {
                        name: name.clone(),
                        message: fault_words(&fault),
                    }),
                    None => {}
                }
            }
        }
    }
    let width = lines
        .iter()
        .map(|line| match line {
            StatusLine::Process(info) => info.namespec().len(),
            StatusLine::Error { name, .. } => name.len(),
        })
        .max()
        .unwrap_or(0)
        .max(30)
        + 3;
    let mut out = std::io::stdout().lock();
    let mut code = 0;
    for line in &lines {
        let _ = match line {
            StatusLine::Process(info) => writeln!(
                out,
                "{:<width$}{:<10}{}",
                info.namespec(),
                info.statename,
                info.description
            ),
            StatusLine::Error { name, message } => {
                code = EXIT_FAILURE;
                writeln!(out, "{name}: ERROR ({message})")
            }
        };
    }
    Ok(code)
}

/// supervisorctl's wording of a fault, for `name: ERROR (...)` lines.
fn fault_words(fault: &Fault) -> String {
    match fault {
        Fault::BadName(_) => "no such process".into(),
        Fault::AlreadyStarted(_) => "already started".into(),
        Fault::NotRunning(_) => "not running".into(),
        Fault::SpawnError(_) => "spawn error".into(),
        Fault::AbnormalTermination(_) => "abnormal termination".into(),
        Fault::NoFile(detail) | Fault::NotExecutable(detail) => detail.clone(),
        Fault::ShutdownState => "supervisord is shutting down".into(),
        other => other.to_string(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Verb {
    Start,
    Stop,
    Restart,
}

/// What happened to one program; `ok` decides the exit code.
struct Outcome {
    name: String,
    words: String,
    ok: bool,
}

async fn control(client: &Client, names: &[String], verb: Verb) -> Result<u8, Failure> {
    let targets = resolve_targets(client, names).await?;
    // Programs are handled concurrently (a pool restart should not take N x stopwaitsecs), and
    // reported in the order asked.
    let outcomes = concurrently(&targets, |name| {
        let client = client.clone();
        async move { act(&client, &name, verb).await }
    })
    .await?;
    let mut code = 0;
    let mut out = std::io::stdout().lock();
    for outcome in outcomes {
        match outcome {
            Ok(outcome) => {
                let _ = writeln!(out, "{}: {}", outcome.name, outcome.words);
                if !outcome.ok {
                    code = EXIT_FAILURE;
                }
            }
            // Not about this program: supervisord itself failed (unreachable, timeout, 401...).
            Err(e) => return Err(Failure::from(e)),
        }
    }
    Ok(code)
}

/// `all` means every program supervisord knows and `GROUP:*` every process of that group, as
/// with supervisorctl; other names are taken as given.
async fn resolve_targets(client: &Client, names: &[String]) -> Result<Vec<String>, Failure> {
    if names.iter().any(|name| name == "all") {
        if names.len() > 1 {
            return Err(Failure::usage(
                "`all` cannot be combined with program names",
            ));
        }
        return Ok(client
            .get_all_process_info()
            .await?
            .iter()
            .map(ProcessInfo::namespec)
            .collect());
    }
    if !names.iter().any(|name| name.ends_with(":*")) {
        return Ok(names.to_vec());
    }
    let all = client.get_all_process_info().await?;
    let mut targets = Vec::new();
    for name in names {
        match name.strip_suffix(":*") {
            Some(group) => {
                let members: Vec<String> = all
                    .iter()
                    .filter(|info| info.group == group)
                    .map(ProcessInfo::namespec)
                    .collect();
                if members.is_empty() {
                    // supervisord answers for it (no such group).
                    targets.push(name.clone());
                }
                targets.extend(members);
            }
            None => targets.push(name.clone()),
        }
    }
    Ok(targets)
}

async fn act(client: &Client, name: &str, verb: Verb) -> Result<Outcome, SupervisorError> {
    let outcome = |words: &str, ok: bool| Outcome {
        name: name.to_string(),
        words: words.to_string(),
        ok,
    };
    let failed = |fault: &Fault| Outcome {
        name: name.to_string(),
        words: match fault {
            Fault::BadName(_) if name.ends_with(":*") => "ERROR (no such group)".to_string(),
            fault => format!("ERROR ({})", fault_words(fault)),
        },
        ok: false,
    };
    if matches!(verb, Verb::Stop | Verb::Restart) {
        match client.stop_process(name, true).await {
            Ok(_) => {
                if matches!(verb, Verb::Stop) {
                    return Ok(outcome("stopped", true));
                }
            }
            // Stopping what is not running leaves it as asked: not a failure.
            Err(SupervisorError::Fault {
                fault: Fault::NotRunning(_),
                ..
            }) => {
                if matches!(verb, Verb::Stop) {
                    return Ok(outcome("not running", true));
                }
            }
            Err(SupervisorError::Fault { fault, .. }) => return Ok(failed(&fault)),
            Err(e) => return Err(e),
        }
    }
    match client.start_process(name, true).await {
        Ok(_) => Ok(outcome("started", true)),
        Err(SupervisorError::Fault {
            fault: Fault::AlreadyStarted(_),
            ..
        }) => Ok(outcome("already started", true)),
        Err(SupervisorError::Fault { fault, .. }) => Ok(failed(&fault)),
        Err(e) => Err(e),
    }
}

async fn tail(client: &Client, name: &str, bytes: i64, follow: bool) -> Result<u8, Failure> {
    let first = client.tail_process_stdout_log(name, 0, bytes).await?;
    let mut out = std::io::stdout();
    let _ = out.write_all(first.data.as_bytes());
    let _ = out.flush();
    if !follow {
        return Ok(0);
    }
    let mut offset = first.next_offset;
    loop {
        // Following a file has no event to wait for over XML-RPC: poll its size.
        tokio::time::sleep(Duration::from_millis(500)).await;
        // With length 0, tail answers no data and the current size.
        let size = client
            .tail_process_stdout_log(name, offset, 0)
            .await?
            .next_offset;
        if size < offset {
            eprintln!("{name}: log rotated or cleared, following from its start");
            offset = 0;
        }
        if size > offset {
            let data = client
                .read_process_stdout_log(name, offset, size - offset)
                .await?;
            let _ = out.write_all(data.as_bytes());
            let _ = out.flush();
            offset = size;
        }
    }
}

async fn pid(client: &Client, name: Option<&str>) -> Result<u8, Failure> {
    match name {
        None => println!("{}", client.get_pid().await?),
        Some("all") => {
            for info in client.get_all_process_info().await? {
                println!("{} {}", info.namespec(), info.pid);
            }
        }
        Some(name) => match client.get_process_info(name).await {
            Ok(info) => println!("{}", info.pid),
            Err(SupervisorError::Fault { fault, .. }) => {
                println!("{name}: ERROR ({})", fault_words(&fault));
                return Ok(EXIT_FAILURE);
            }
            Err(e) => return Err(e.into()),
        },
    }
    Ok(0)
}

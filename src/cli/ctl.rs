//! `nodekeeper ctl`: supervisorctl's everyday commands (status, start, stop, restart, tail, pid)
//! over the typed client, with one clear line per error and exit codes 0/1/2.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{ConnectionArgs, EXIT_FAILURE, Failure};
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
    Start {
        /// Programs to start, or `all`.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop programs and wait until they are down (stopwaitsecs).
    Stop {
        /// Programs to stop, or `all`.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop then start programs (supervisord has no restart call).
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
        CtlCommand::Hold { node } => return daemon_request(source, node, "hold").await,
        CtlCommand::Release { node } => return daemon_request(source, node, "release").await,
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
    verb: &str,
) -> Result<u8, Failure> {
    let config = source.load()?;
    let token = crate::api::token(config.api.token.as_ref(), &crate::api::token_path(&config))
        .map_err(Failure::usage)?;
    let base = format!("http://{}", config.api.listen);
    let url = format!("{base}/v1/nodes/{node}/{verb}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let response = client
        .post(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| {
            Failure::runtime(format!(
                "cannot reach the nodekeeper daemon at {base}: {} (is `nodekeeper run` running?)",
                if e.is_connect() {
                    "connection refused".to_string()
                } else {
                    e.to_string()
                }
            ))
        })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        print!("{text}");
        Ok(0)
    } else {
        Err(Failure::runtime(format!(
            "the daemon at {base} refused to {verb} {node}: HTTP {}: {}",
            status.as_u16(),
            text.trim()
        )))
    }
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
    let mut tasks = tokio::task::JoinSet::new();
    for (index, name) in targets.iter().enumerate() {
        let client = client.clone();
        let name = name.clone();
        tasks.spawn(async move { (index, act(&client, &name, verb).await) });
    }
    let mut outcomes: Vec<Option<Result<Outcome, SupervisorError>>> =
        (0..targets.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, outcome)) => outcomes[index] = Some(outcome),
            Err(e) => return Err(Failure::runtime(format!("internal error: {e}"))),
        }
    }
    let mut code = 0;
    let mut out = std::io::stdout().lock();
    for outcome in outcomes.into_iter().flatten() {
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

/// `all` means every program supervisord knows; other names are taken as given.
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
    Ok(names.to_vec())
}

async fn act(client: &Client, name: &str, verb: Verb) -> Result<Outcome, SupervisorError> {
    let outcome = |words: &str, ok: bool| Outcome {
        name: name.to_string(),
        words: words.to_string(),
        ok,
    };
    let failed = |fault: &Fault| Outcome {
        name: name.to_string(),
        words: format!("ERROR ({})", fault_words(fault)),
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

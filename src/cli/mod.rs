//! The command line: argument parsing (`clap`), logging setup, and the mapping of outcomes to exit
//! codes (0 success, 1 runtime failure, 2 usage or configuration error). Commands live in their own
//! files; this module only dispatches.

mod alert;
mod backup;
mod config;
mod connection;
mod ctl;
mod edit;
mod fence;
mod listen;
mod log;
mod run;
mod supervisor_conf;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use config::ConfigSourceArgs;
pub use connection::ConnectionArgs;

/// Exit code of a runtime failure: supervisord unreachable, a fault, a node that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage or configuration error (the same code clap uses).
pub const EXIT_USAGE: u8 = 2;

/// nodekeeper keeps blockchain nodes run by supervisord running, in sync and safe.
#[derive(Debug, Parser)]
#[command(name = "nodekeeper", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `nodekeeper=debug`); env `RUST_LOG`.
    #[arg(long, global = true, env = "RUST_LOG", default_value = "warn")]
    pub log: String,

    /// Where the configuration comes from.
    #[command(flatten)]
    pub source: ConfigSourceArgs,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Control supervisord programs directly, like supervisorctl.
    Ctl(ctl::CtlArgs),
    /// Check, show, render and write the configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print (or write into a directory) supervisord `[program:NAME]` sections for the nodes.
    SupervisorConf(supervisor_conf::SupervisorConfArgs),
    /// supervisord's event listener: passes process state events to the daemon (run by
    /// supervisord as an `[eventlistener:...]`, see `supervisor-conf`).
    Listen(listen::ListenArgs),
    /// The host's fence with `[cluster]`: demotes this instance's nodes once the local daemon's
    /// lease deadline passed (run by supervisord beside the nodes, see `supervisor-conf`).
    Fence(fence::FenceArgs),
    /// Keep the nodes running and in sync: the daemon.
    Run(run::RunArgs),
    /// One table of the pool: program state, node state, height, lag, last restart and why.
    Status(run::StatusArgs),
    /// Email alerts: `alert test` sends a test mail with the current configuration.
    #[command(subcommand)]
    Alert(alert::AlertCommand),
    /// Analyse restart logs (nodekeeper's and jmanager's restarts.csv).
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Back a node's data directory up through the running daemon: stopped, archived with a
    /// manifest, started again (never the node that holds the key, never near a slot).
    Backup(backup::BackupArgs),
    /// Restore a node's data directory from a verified archive through the running daemon.
    Restore(backup::RestoreArgs),
}

/// A failure that ends a command: the message is printed as one line on stderr and the code is
/// the process exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code, `EXIT_FAILURE` or `EXIT_USAGE`.
    pub code: u8,
    /// One line, no trailing period.
    pub message: String,
}

impl Failure {
    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A runtime failure (exit 1).
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

impl From<crate::supervisor::SupervisorError> for Failure {
    fn from(error: crate::supervisor::SupervisorError) -> Failure {
        Failure::runtime(error.to_string())
    }
}

/// Parses the command line, runs the command and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let outcome = runtime.block_on(run(cli));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Runs one parsed command. `Ok(code)` lets a command report partial failure (e.g. one of several
/// programs did not start) after printing its own lines.
pub async fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Ctl(args) => ctl::run(&cli.source, args).await,
        Command::Config(command) => config::run(&cli.source, command).await,
        Command::SupervisorConf(args) => supervisor_conf::run(&cli.source, args),
        Command::Listen(args) => listen::run(&cli.source, args).await,
        Command::Backup(args) => backup::backup(&cli.source, args).await,
        Command::Restore(args) => backup::restore(&cli.source, args).await,
        Command::Fence(args) => fence::run(&cli.source, args).await,
        Command::Run(args) => run::run(&cli.source, args).await,
        Command::Status(args) => run::status(&cli.source, args).await,
        Command::Alert(command) => alert::run(&cli.source, command).await,
        Command::Log(command) => log::run(command),
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Logs go to stderr so that command output on stdout stays machine-readable.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

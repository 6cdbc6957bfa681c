//! `nodekeeper listen`: the supervisord event listener (an `[eventlistener:...]` program that
//! `supervisor-conf` generates). Speaks the protocol on stdin and a private copy of stdout; fd 1
//! itself is pointed at stderr first, so that nothing printed by accident (a log line, a panic
//! message of a dependency) can reach supervisord and break the protocol.

use std::os::fd::{AsFd as _, OwnedFd};
use std::path::PathBuf;

use clap::Args;

use super::Failure;
use super::config::ConfigSourceArgs;
use crate::listener::serve::{ServeOptions, serve};
use crate::listener::socket_path;

/// Options of `nodekeeper listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The supervisord this listener runs under (a name of the configuration's supervisors).
    #[arg(long, value_name = "NAME", default_value = crate::config::model::DEFAULT_SUPERVISOR)]
    pub supervisor: String,

    /// The daemon's event socket; default: `nodekeeper-events.sock` beside the configuration's
    /// restart log (the configuration is then read).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Runs `nodekeeper listen` until supervisord closes stdin (0) or is out of step with it (1).
pub async fn run(source: &ConfigSourceArgs, args: ListenArgs) -> Result<u8, Failure> {
    let protocol = take_stdout()?;
    let socket = match args.socket {
        Some(socket) => socket,
        None => {
            let config = source.load()?;
            if !config.supervisors.contains_key(&args.supervisor) {
                let known: Vec<&str> = config.supervisors.keys().map(String::as_str).collect();
                return Err(Failure::usage(format!(
                    "{}: no supervisord named {:?} (known: {})",
                    config.path.display(),
                    args.supervisor,
                    known.join(", ")
                )));
            }
            socket_path(&config.restart_log)
        }
    };
    tracing::info!(
        "listening to supervisord {:?}, forwarding to {}",
        args.supervisor,
        socket.display()
    );
    let output = tokio::fs::File::from_std(std::fs::File::from(protocol));
    let options = ServeOptions {
        supervisor: args.supervisor,
        socket,
        watch_siblings: true,
    };
    match serve(tokio::io::stdin(), output, options).await {
        Ok(summary) => {
            tracing::info!(
                "{} event(s): {} delivered, {} dropped",
                summary.n_events,
                summary.n_delivered,
                summary.n_dropped
            );
            Ok(0)
        }
        Err(e) => Err(Failure::runtime(crate::describe::chain(&e))),
    }
}

/// A private copy of fd 1 (close-on-exec) for the protocol; fd 1 then points at stderr.
fn take_stdout() -> Result<OwnedFd, Failure> {
    let fail = |e: rustix::io::Errno| Failure::runtime(format!("cannot set up stdout: {e}"));
    let protocol = rustix::io::fcntl_dupfd_cloexec(std::io::stdout().as_fd(), 3).map_err(fail)?;
    rustix::stdio::dup2_stdout(std::io::stderr().as_fd()).map_err(fail)?;
    Ok(protocol)
}

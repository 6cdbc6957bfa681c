//! `nodekeeper supervisor-conf`: the `[program:NAME]` sections supervisord needs for the configured
//! nodes (and for nodekeeper itself), the host's fence (`nodekeeper fence`) with `[cluster]`, and
//! one `[eventlistener:...]` (`nodekeeper listen`) per supervisord running nodes, printed or
//! written one file per program.

use std::path::{Path, PathBuf};

use clap::Args;

use super::Failure;
use super::config::ConfigSourceArgs;
use crate::config::{Config, NodeSettings};
use crate::listener::socket_path;
use crate::supervisor::Endpoint;
use crate::supervisor::conf::{self as supervisor_conf, ListenerSpec, ProgramSpec};

/// Options of `nodekeeper supervisor-conf`.
#[derive(Debug, Args)]
pub struct SupervisorConfArgs {
    /// Write one NAME.conf per program into this directory (an `[include]` of supervisord)
    /// instead of printing; unchanged files are left alone.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Leave out the `[program:nodekeeper]` section (the event listeners stay).
    #[arg(long)]
    pub no_nodekeeper: bool,

    /// The nodekeeper binary its program and the event listeners run; default: this binary.
    #[arg(long, value_name = "PATH")]
    pub nodekeeper_binary: Option<PathBuf>,

    /// Run every generated program and listener as USER (`user=`; supervisord must run as root).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
}

/// The program of one node: its binary with its generated config and extra arguments.
pub fn node_program(node: &NodeSettings) -> ProgramSpec {
    let mut command = vec![node.binary.to_string_lossy().into_owned()];
    command.extend(node.chain.program_args(&node.args));
    let mut spec = ProgramSpec::node(
        &node.program,
        command,
        node.node_dir.clone(),
        node.log_file.clone(),
    );
    spec.startsecs = node.startsecs;
    spec.stopwaitsecs = node.stopwaitsecs;
    spec
}

/// Every program and listener section for `config`, as (file name, text): the nodes' programs,
/// `[program:nodekeeper]` when `include_nodekeeper`, `[program:nodekeeper-fence]` with
/// `[cluster]`, then one event listener per supervisord that runs nodes, each running `binary` as
/// `user` when given.
pub fn program_files(
    config: &Config,
    binary: &Path,
    include_nodekeeper: bool,
    user: Option<&str>,
) -> Result<Vec<(String, String)>, Failure> {
    let mut specs: Vec<ProgramSpec> = config.nodes.iter().map(node_program).collect();
    if include_nodekeeper {
        let config_path = std::path::absolute(&config.path)
            .map_err(|e| Failure::runtime(format!("{}: {e}", config.path.display())))?;
        let directory = config_path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        let log = directory.join("nodekeeper.log");
        specs.push(ProgramSpec::nodekeeper(
            binary,
            &config_path,
            directory,
            log,
        ));
    }
    let socket = std::path::absolute(socket_path(&config.restart_log))
        .map_err(|e| Failure::runtime(format!("{}: {e}", config.restart_log.display())))?;
    if config.cluster.is_some() {
        // The host's fence runs beside the nodes, under the default supervisord, and logs beside
        // the event listener.
        let config_path = std::path::absolute(&config.path)
            .map_err(|e| Failure::runtime(format!("{}: {e}", config.path.display())))?;
        let directory = config_path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        let log = socket.with_file_name(format!("{}.log", supervisor_conf::FENCE_PROGRAM));
        specs.push(ProgramSpec::fence(binary, &config_path, directory, log));
    }
    let mut listeners = Vec::new();
    for supervisor in config.supervisors.keys() {
        let n_nodes = config
            .nodes
            .iter()
            .filter(|node| &node.supervisor == supervisor)
            .count();
        if n_nodes > 0 {
            listeners.push(ListenerSpec::nodekeeper(
                binary, supervisor, &socket, n_nodes,
            ));
        }
    }
    for spec in &mut specs {
        spec.user = user.map(str::to_string);
    }
    for listener in &mut listeners {
        listener.user = user.map(str::to_string);
    }
    let mut problems = Vec::new();
    for spec in &specs {
        problems.extend(supervisor_conf::check_program(spec));
    }
    for listener in &listeners {
        problems.extend(supervisor_conf::check_listener(listener));
    }
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(Failure::usage(lines.join("\nerror: ")));
    }
    let mut files = Vec::new();
    for spec in &specs {
        let text =
            supervisor_conf::render_program(spec).map_err(|e| Failure::usage(e.to_string()))?;
        files.push((spec.file_name(), text));
    }
    for listener in &listeners {
        let text = supervisor_conf::render_listener(listener)
            .map_err(|e| Failure::usage(e.to_string()))?;
        files.push((listener.file_name(), text));
    }
    Ok(files)
}

/// Runs `nodekeeper supervisor-conf`.
pub fn run(source: &ConfigSourceArgs, args: SupervisorConfArgs) -> Result<u8, Failure> {
    let config = source.load()?;
    let binary = match &args.nodekeeper_binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()
            .map_err(|e| Failure::runtime(format!("cannot find the nodekeeper binary: {e}")))?,
    };
    let files = program_files(&config, &binary, !args.no_nodekeeper, args.user.as_deref())?;
    match args.dir {
        Some(dir) => {
            let written = supervisor_conf::write_dir(&dir, &files).map_err(|e| {
                Failure::runtime(format!("cannot write into {}: {e}", dir.display()))
            })?;
            for (name, _) in &files {
                let path = dir.join(name);
                let words = if written.contains(&path) {
                    "written"
                } else {
                    "unchanged"
                };
                println!("{} {words}", path.display());
            }
        }
        None => {
            let default = config
                .supervisors
                .get(crate::config::model::DEFAULT_SUPERVISOR);
            let (inet, unix) = match default.map(|s| &s.endpoint) {
                Some(Endpoint::Http(url)) => (
                    Some(format!(
                        "{}:{}",
                        url.host_str().unwrap_or("127.0.0.1"),
                        url.port_or_known_default().unwrap_or(9001)
                    )),
                    None,
                ),
                Some(Endpoint::Unix(path)) => (None, Some(path.clone())),
                None => (None, None),
            };
            let user = default
                .and_then(|s| s.credentials.as_ref())
                .map(|(user, _)| user.as_str());
            print!(
                "{}",
                supervisor_conf::render_server_hints(inet.as_deref(), unix.as_deref(), user)
            );
            for (_, text) in files {
                println!();
                print!("{text}");
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_supervisor_has_one_name() {
        assert_eq!(
            crate::supervisor::conf::DEFAULT_SUPERVISOR,
            crate::config::model::DEFAULT_SUPERVISOR
        );
    }
}

//! `nodekeeper supervisor-conf`: the `[program:NAME]` sections supervisord needs for the configured
//! nodes (and for nodekeeper itself), printed or written one file per program.

use std::path::PathBuf;

use clap::Args;

use super::Failure;
use super::config::ConfigSourceArgs;
use crate::config::{Config, NodeSettings};
use crate::supervisor::Endpoint;
use crate::supervisor::conf::{self as supervisor_conf, ProgramSpec};

/// Options of `nodekeeper supervisor-conf`.
#[derive(Debug, Args)]
pub struct SupervisorConfArgs {
    /// Write one NAME.conf per program into this directory (an `[include]` of supervisord)
    /// instead of printing; unchanged files are left alone.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Leave out the `[program:nodekeeper]` section.
    #[arg(long)]
    pub no_nodekeeper: bool,

    /// The nodekeeper binary its program runs; default: this binary.
    #[arg(long, value_name = "PATH")]
    pub nodekeeper_binary: Option<PathBuf>,
}

/// The program of one node: its binary with its generated config and extra arguments.
pub fn node_program(node: &NodeSettings) -> ProgramSpec {
    let mut command = vec![node.binary.to_string_lossy().into_owned()];
    command.extend(node.jormungandr().config_args());
    command.extend(node.args.iter().cloned());
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

/// Every program section for `config`, as (file name, text).
/// `nodekeeper` is the binary of its own program, when included.
pub fn program_files(
    config: &Config,
    nodekeeper: Option<&std::path::Path>,
) -> Result<Vec<(String, String)>, Failure> {
    let mut specs: Vec<ProgramSpec> = config.nodes.iter().map(node_program).collect();
    if let Some(binary) = nodekeeper {
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
    let mut problems = Vec::new();
    for spec in &specs {
        problems.extend(supervisor_conf::check_program(spec));
    }
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(Failure::usage(lines.join("\nerror: ")));
    }
    specs
        .iter()
        .map(|spec| {
            supervisor_conf::render_program(spec)
                .map(|text| (spec.file_name(), text))
                .map_err(|e| Failure::usage(e.to_string()))
        })
        .collect()
}

/// Runs `nodekeeper supervisor-conf`.
pub fn run(source: &ConfigSourceArgs, args: SupervisorConfArgs) -> Result<u8, Failure> {
    let config = source.load()?;
    let binary = match (&args.nodekeeper_binary, args.no_nodekeeper) {
        (_, true) => None,
        (Some(binary), false) => Some(binary.clone()),
        (None, false) => Some(
            std::env::current_exe()
                .map_err(|e| Failure::runtime(format!("cannot find the nodekeeper binary: {e}")))?,
        ),
    };
    let files = program_files(&config, binary.as_deref())?;
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

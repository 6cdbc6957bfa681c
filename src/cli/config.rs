//! `nodekeeper config ...` and `nodekeeper supervisor-conf`: check, show, render, diff and write
//! the configuration and what is generated from it. Nothing is written unless the whole
//! configuration is valid.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{EXIT_USAGE, Failure};
use crate::config::model::ConfigSource;
use crate::config::{self, Config, ConfigErrors, nodefile};

/// Where the configuration comes from; shared by every command that reads it.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigSourceArgs {
    /// nodekeeper's config file (TOML, or YAML/JSON by extension). Default: ./nodekeeper.toml,
    /// then /etc/nodekeeper/nodekeeper.toml.
    #[arg(
        short = 'c',
        long = "config",
        env = "NODEKEEPER_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Read jmanager's config instead (its exact layout); needs --config-template.
    #[arg(long, global = true, value_name = "FILE")]
    pub jmanager_config: Option<PathBuf>,

    /// jmanager's node config template, with --jmanager-config.
    #[arg(long, global = true, value_name = "FILE")]
    pub config_template: Option<PathBuf>,
}

impl ConfigSourceArgs {
    /// The source these options name.
    pub fn source(&self) -> Result<ConfigSource, Failure> {
        match (&self.jmanager_config, &self.config_template) {
            (Some(jmanager), Some(template)) => {
                return Ok(ConfigSource::Jmanager {
                    config: jmanager.clone(),
                    template: template.clone(),
                });
            }
            (Some(_), None) => {
                return Err(Failure::usage(
                    "--jmanager-config needs --config-template (jmanager's config_template.json)",
                ));
            }
            (None, Some(_)) => {
                return Err(Failure::usage(
                    "--config-template is only used with --jmanager-config",
                ));
            }
            (None, None) => {}
        }
        if let Some(path) = &self.config {
            return Ok(ConfigSource::File(path.clone()));
        }
        for candidate in ["nodekeeper.toml", "/etc/nodekeeper/nodekeeper.toml"] {
            let path = PathBuf::from(candidate);
            if path.exists() {
                return Ok(ConfigSource::File(path));
            }
        }
        Err(Failure::usage(
            "no configuration: give -c FILE (or NODEKEEPER_CONFIG), or --jmanager-config FILE \
             --config-template FILE; see configs/nodekeeper.toml",
        ))
    }

    /// Like [`ConfigSourceArgs::load`], and the host must be ready for it too (node directories
    /// exist): for commands that write node configs or run nodes.
    pub fn load_for_host(&self) -> Result<Config, Failure> {
        let config = self.load()?;
        let problems = config::model::host_problems(&config, &config::process_env());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(config_failure(&problems))
        }
    }

    /// Loads and validates the configuration, printing notices (keys of a jmanager file that are
    /// not used) to stderr. Any problem is a usage failure listing every problem.
    pub fn load(&self) -> Result<Config, Failure> {
        let source = self.source()?;
        let env = config::process_env();
        match config::model::load_source(&source, &env) {
            Ok((config, notices)) => {
                for notice in notices {
                    eprintln!("note: {notice}");
                }
                Ok(config)
            }
            Err(errors) => Err(config_failure(&errors)),
        }
    }
}

/// Every problem, one per line, then exit 2.
pub fn config_failure(errors: &ConfigErrors) -> Failure {
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    let count = lines.len();
    Failure {
        code: EXIT_USAGE,
        message: format!(
            "{}\nerror: {count} problem{} in the configuration; nothing was changed",
            lines.join("\nerror: "),
            if count == 1 { "" } else { "s" }
        ),
    }
}

/// `nodekeeper config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate everything and report every problem (file, key, what was expected); exit 2 if any.
    Check,
    /// Print the effective configuration (file + environment, defaults filled in), secrets
    /// redacted.
    Show {
        /// JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Print a node's generated config (template merged with its overrides).
    Render {
        /// The node; every node (as one JSON object by name) when omitted.
        node: Option<String>,
        /// The default (fallback) variant: trusted peers replaced by the default trusted peers.
        #[arg(long)]
        default: bool,
    },
    /// Show what writing the node configs would change on disk.
    Diff {
        /// The node; every node when omitted.
        node: Option<String>,
    },
    /// Write the node configs that changed (atomically, mode 0600).
    Write {
        /// The node; every node when omitted.
        node: Option<String>,
    },
    /// Convert jmanager's files (--jmanager-config, --config-template) into a nodekeeper TOML file.
    ImportJmanager {
        /// Write to this file instead of stdout (refuses to overwrite).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Runs `nodekeeper config ...`.
pub async fn run(source: &ConfigSourceArgs, command: ConfigCommand) -> Result<u8, Failure> {
    if let ConfigCommand::ImportJmanager { output } = command {
        return import_jmanager(source, output);
    }
    let config = match command {
        ConfigCommand::Check | ConfigCommand::Write { .. } => source.load_for_host()?,
        _ => source.load()?,
    };
    match command {
        ConfigCommand::Check => {
            let names: Vec<&str> = config.nodes.iter().map(|node| node.name.as_str()).collect();
            println!(
                "{}: ok: {} node{} ({})",
                config.path.display(),
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            );
            Ok(0)
        }
        ConfigCommand::Show { json } => {
            let raw = config::model::redacted(&config.raw);
            let text = if json {
                serde_json::to_string_pretty(&raw).map_err(|e| Failure::runtime(e.to_string()))?
            } else {
                match toml::to_string(&raw) {
                    Ok(text) => text,
                    Err(e) => {
                        eprintln!("note: shown as JSON: TOML cannot express it ({e})");
                        serde_json::to_string_pretty(&raw)
                            .map_err(|e| Failure::runtime(e.to_string()))?
                    }
                }
            };
            println!("{}", text.trim_end());
            Ok(0)
        }
        ConfigCommand::Render { node, default } => {
            let pick = |node: &crate::config::NodeSettings| {
                if default {
                    node.fallback_config.clone()
                } else {
                    node.config.clone()
                }
            };
            let value = match node {
                Some(name) => pick(find_node(&config, &name)?),
                None => serde_json::Value::Object(
                    config
                        .nodes
                        .iter()
                        .map(|node| (node.name.clone(), pick(node)))
                        .collect(),
                ),
            };
            print!("{}", nodefile::render(&value));
            Ok(0)
        }
        ConfigCommand::Diff { node } => {
            let mut out = std::io::stdout().lock();
            for node in selected(&config, node.as_deref())? {
                match nodefile::diff(&node.config_path, &node.config) {
                    Ok(None) => {
                        let _ = writeln!(
                            out,
                            "{}: {} is up to date",
                            node.name,
                            node.config_path.display()
                        );
                    }
                    Ok(Some(diff)) => {
                        let _ = write!(out, "{diff}");
                    }
                    Err(e) => return Err(Failure::runtime(e.to_string())),
                }
            }
            Ok(0)
        }
        ConfigCommand::Write { node } => {
            for node in selected(&config, node.as_deref())? {
                let outcome = nodefile::write_if_changed(&node.config_path, &node.config)
                    .map_err(|e| Failure::runtime(e.to_string()))?;
                let words = match outcome {
                    nodefile::WriteOutcome::Written => "written",
                    nodefile::WriteOutcome::Unchanged => "unchanged",
                };
                println!("{}: {} {words}", node.name, node.config_path.display());
            }
            Ok(0)
        }
        ConfigCommand::ImportJmanager { .. } => unreachable!("handled above"),
    }
}

fn find_node<'a>(
    config: &'a Config,
    name: &str,
) -> Result<&'a crate::config::NodeSettings, Failure> {
    config.node(name).ok_or_else(|| {
        let names: Vec<&str> = config.nodes.iter().map(|node| node.name.as_str()).collect();
        Failure::usage(format!(
            "no node {name:?} in the configuration (nodes: {})",
            names.join(", ")
        ))
    })
}

fn selected<'a>(
    config: &'a Config,
    name: Option<&str>,
) -> Result<Vec<&'a crate::config::NodeSettings>, Failure> {
    match name {
        Some(name) => Ok(vec![find_node(config, name)?]),
        None => Ok(config.nodes.iter().collect()),
    }
}

fn import_jmanager(source: &ConfigSourceArgs, output: Option<PathBuf>) -> Result<u8, Failure> {
    let (Some(jmanager), Some(template)) = (&source.jmanager_config, &source.config_template)
    else {
        return Err(Failure::usage(
            "import-jmanager needs --jmanager-config FILE and --config-template FILE",
        ));
    };
    let import = config::jmanager::import(jmanager, template).map_err(|e| config_failure(&e))?;
    for notice in &import.notices {
        eprintln!("note: {notice}");
    }
    let text = config::jmanager::to_toml_from(&import.raw, jmanager).map_err(Failure::usage)?;
    match output {
        None => print!("{text}"),
        Some(path) => {
            // The converted file may hold the SMTP password jmanager kept inline: 0600, and an
            // existing file is never replaced.
            match crate::files::create_new(&path, text.as_bytes(), 0o600) {
                Ok(crate::files::CreateOutcome::Created) => eprintln!("wrote {}", path.display()),
                Ok(crate::files::CreateOutcome::Existed) => {
                    return Err(Failure::runtime(format!(
                        "cannot create {}: it exists already",
                        path.display()
                    )));
                }
                Err(e) => return Err(Failure::runtime(crate::describe::chain(&e))),
            }
        }
    }
    Ok(0)
}

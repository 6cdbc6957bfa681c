//! `nodekeeper config ...` and `nodekeeper supervisor-conf`: check, show, render, diff and write
//! the configuration and what is generated from it. Nothing is written unless the whole
//! configuration is valid.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{EXIT_USAGE, Failure};
use crate::config::model::ConfigSource;
use crate::config::{self, Config, ConfigErrors, HostFiles, SkippedCheck, nodefile};

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
        self.load_checked(HostFiles::Check, true)
            .map(|(config, _)| config)
    }

    /// Loads and validates the configuration, printing notices (keys of a jmanager file that are
    /// not used) to stderr. Any problem is a usage failure listing every problem.
    pub fn load(&self) -> Result<Config, Failure> {
        self.load_checked(HostFiles::Check, false)
            .map(|(config, _)| config)
    }

    /// Loads and validates the configuration under `host_files`, with the host's node
    /// directories too when `for_host`. Returns the checks skipped ([`HostFiles::Skip`]); when
    /// the configuration is invalid they are printed to stderr as notes before the problems.
    pub fn load_checked(
        &self,
        host_files: HostFiles,
        for_host: bool,
    ) -> Result<(Config, Vec<SkippedCheck>), Failure> {
        let source = self.source()?;
        let env = config::process_env();
        let loaded = config::load_source_with(&source, &env, host_files);
        let mut skipped = loaded.skipped;
        let (config, notices) = match loaded.result {
            Ok(loaded) => loaded,
            Err(errors) => {
                for check in &skipped {
                    eprintln!("note: {check}");
                }
                return Err(config_failure(&errors));
            }
        };
        for notice in notices {
            eprintln!("note: {notice}");
        }
        if for_host {
            match host_files {
                HostFiles::Check => {
                    let problems = config::model::host_problems(&config, &env);
                    if !problems.is_empty() {
                        return Err(config_failure(&problems));
                    }
                }
                HostFiles::Skip => skipped.extend(config::model::skipped_host_checks(&config)),
            }
        }
        Ok((config, skipped))
    }
}

/// `--skip-host-files`, of the commands that only read the configuration.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct HostFilesArgs {
    /// Skip the checks of files that exist only on the deployed host (password, token, leader
    /// secret, PoolTool id and SMTP CA files, the alert templates directory, node directories),
    /// naming each check skipped: for an example, or a configuration checked away from its host.
    #[arg(long)]
    pub skip_host_files: bool,
}

impl HostFilesArgs {
    fn host_files(self) -> HostFiles {
        if self.skip_host_files {
            HostFiles::Skip
        } else {
            HostFiles::Check
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
    Check {
        /// Host files.
        #[command(flatten)]
        host: HostFilesArgs,
    },
    /// Print the effective configuration (file + environment, defaults filled in), secrets
    /// redacted.
    Show {
        /// JSON instead of TOML.
        #[arg(long)]
        json: bool,
        /// Host files.
        #[command(flatten)]
        host: HostFilesArgs,
    },
    /// Print a node's generated config (template merged with its overrides).
    Render {
        /// The node; every node (as one JSON object by name) when omitted.
        node: Option<String>,
        /// The default (fallback) variant: trusted peers replaced by the default trusted peers.
        #[arg(long)]
        default: bool,
        /// Host files.
        #[command(flatten)]
        host: HostFilesArgs,
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
    /// Edit the configuration safely, like visudo: a copy opens in $VISUAL or $EDITOR (else vi),
    /// is checked on save and reopened with its problems until valid (or the edit is aborted:
    /// save it unchanged or empty), then replaces the file atomically, keeping FILE.bak, and
    /// what the running daemon will change when it reloads is printed. With --jmanager-config
    /// and --config-template, edits jmanager_config.json (or, with --template, the template).
    Edit(super::edit::EditArgs),
    /// Convert jmanager's files (--jmanager-config, --config-template) into a nodekeeper TOML file.
    ImportJmanager {
        /// Write to this file instead of stdout (refuses to overwrite).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Runs `nodekeeper config ...`.
pub async fn run(source: &ConfigSourceArgs, command: ConfigCommand) -> Result<u8, Failure> {
    let command = match command {
        ConfigCommand::ImportJmanager { output } => return import_jmanager(source, output),
        // The file may be invalid now: editing is how it gets fixed.
        ConfigCommand::Edit(args) => return super::edit::run(source, args).await,
        command => command,
    };
    let (config, skipped) = match &command {
        ConfigCommand::Check { host } => source.load_checked(host.host_files(), true)?,
        ConfigCommand::Write { .. } => (source.load_for_host()?, Vec::new()),
        ConfigCommand::Show { host, .. } | ConfigCommand::Render { host, .. } => {
            source.load_checked(host.host_files(), false)?
        }
        _ => (source.load()?, Vec::new()),
    };
    match command {
        ConfigCommand::Check { .. } => {
            for check in &skipped {
                println!("{check}");
            }
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
        ConfigCommand::Show { json, .. } => {
            for check in &skipped {
                eprintln!("note: {check}");
            }
            // The effective file + environment, read again in the file's shape: `Config` holds
            // resolved settings only.
            let mut raw = config::model::load_raw_source(&source.source()?, &config::process_env())
                .map_err(|errors| config_failure(&errors))?;
            let defaulted = tip_defaults_shown(&mut raw, &config);
            let text = shown_text(&config::model::redacted(&raw), json)?;
            println!("{}", text.trim_end());
            if !json {
                if !defaulted.is_empty() {
                    println!("\n{}", defaulted.trim_end());
                }
                println!("{}", boot_comments(&config).await.trim_end());
            }
            Ok(0)
        }
        ConfigCommand::Render { node, default, .. } => {
            for check in &skipped {
                eprintln!("note: {check}");
            }
            // Only Jormungandr nodes have a generated config file.
            let pick = |node: &crate::config::NodeSettings| match node.jormungandr() {
                Some(settings) if default => settings.fallback_config.clone(),
                Some(settings) => settings.config.clone(),
                None => serde_json::Value::Null,
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
                let Some(settings) = node.jormungandr() else {
                    let _ = writeln!(out, "{}: no generated config file", node.name);
                    continue;
                };
                match nodefile::diff(&settings.config_path, &settings.config) {
                    Ok(None) => {
                        let _ = writeln!(
                            out,
                            "{}: {} is up to date",
                            node.name,
                            settings.config_path.display()
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
                let Some(settings) = node.jormungandr() else {
                    println!("{}: no generated config file", node.name);
                    continue;
                };
                let outcome = nodefile::write_if_changed(&settings.config_path, &settings.config)
                    .map_err(|e| Failure::runtime(e.to_string()))?;
                let words = match outcome {
                    nodefile::WriteOutcome::Written => "written",
                    nodefile::WriteOutcome::Unchanged => "unchanged",
                };
                println!("{}: {} {words}", node.name, settings.config_path.display());
            }
            Ok(0)
        }
        ConfigCommand::ImportJmanager { .. } | ConfigCommand::Edit(_) => {
            unreachable!("handled above")
        }
    }
}

/// What is concluded about each node booting with the pool's key, as TOML comments: from its
/// configuration and its supervisord's command line (each supervisord asked once, briefly; one
/// that does not answer leaves the verdict to the configuration alone).
async fn boot_comments(config: &Config) -> String {
    use std::fmt::Write as _;
    let mut commands: BTreeMap<&str, Result<BTreeMap<String, String>, String>> = BTreeMap::new();
    for (name, settings) in &config.supervisors {
        let mut settings = settings.clone();
        settings.timeout = settings.timeout.min(std::time::Duration::from_secs(2));
        let read = match settings.client() {
            Ok(client) => client
                .get_all_config_info()
                .await
                .map(|programs| {
                    programs
                        .into_iter()
                        .map(|p| (crate::supervisor::namespec(&p.group, &p.name), p.command))
                        .collect()
                })
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        commands.insert(name, read);
    }
    let mut out = String::from(
        "\n# Booting with the pool's key (a node that may is never started near a pool slot while \
         another may lead;\n# the daemon also learns from each node's first answer after a boot):\n",
    );
    for node in &config.nodes {
        let command = match commands.get(node.supervisor.as_str()) {
            Some(Ok(programs)) => programs.get(&node.program).map(String::as_str),
            _ => None,
        };
        let verdict = node.chain.boots_producing(command);
        let word = match verdict.with_key {
            Some(true) => "may boot holding the key",
            Some(false) => "boots without the key",
            None => "may boot holding the key (unknown)",
        };
        let _ = writeln!(out, "#   {}: {word}: {}", node.name, verdict.why);
    }
    for (name, read) in &commands {
        if let Err(e) = read {
            let _ = writeln!(
                out,
                "#   (supervisord {name} did not answer: judged without its command lines: {e})"
            );
        }
    }
    out
}

/// Fills the tip thresholds the file leaves out with the effective values (the pool's chain's
/// defaults, as `config` resolved them), and says why in comment lines (empty when both are set).
fn tip_defaults_shown(raw: &mut config::raw::RawConfig, config: &Config) -> String {
    use config::raw::ChainName;
    let chain = raw
        .nodes
        .first()
        .and_then(|node| node.chain)
        .unwrap_or(raw.node_defaults.chain);
    let (timeout_why, diff_why) = match chain {
        ChainName::Jormungandr => ("jmanager's", "jmanager's"),
        ChainName::Nodeos => (
            "a block every 0.5 s, a missed producer turn is a 6 s gap, failover scripts alert at \
             about 30 s",
            "10 s of blocks, more than one missed turn (12 blocks)",
        ),
        ChainName::Cardano => (
            "a block every 20 s on average, P(gap > 300 s) is about 3e-7",
            "about 100 s of blocks; healthy nodes of a pool differ by a block or two",
        ),
    };
    let t = &mut raw.thresholds;
    let mut shown = String::new();
    if t.tip_timeout.is_none() {
        t.tip_timeout = Some(config.thresholds.tip_timeout);
        shown.push_str(&format!(
            "# thresholds.tip_timeout = {}: the {} default ({timeout_why})\n",
            humantime::format_duration(config.thresholds.tip_timeout),
            chain.as_str()
        ));
    }
    if t.tip_diff_threshold.is_none() {
        t.tip_diff_threshold = Some(config.thresholds.tip_diff_threshold);
        shown.push_str(&format!(
            "# thresholds.tip_diff_threshold = {}: the {} default ({diff_why})\n",
            config.thresholds.tip_diff_threshold,
            chain.as_str()
        ));
    }
    shown
}

/// `raw` as `config show` prints it: TOML, or JSON with `json` or when TOML cannot express it
/// (a note says so).
pub fn shown_text(raw: &config::raw::RawConfig, json: bool) -> Result<String, Failure> {
    let as_json = || serde_json::to_string_pretty(raw).map_err(|e| Failure::runtime(e.to_string()));
    if json {
        return as_json();
    }
    match toml::to_string(raw) {
        Ok(text) => Ok(text),
        Err(e) => {
            eprintln!("note: shown as JSON: TOML cannot express it ({e})");
            as_json()
        }
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

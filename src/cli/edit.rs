//! `nodekeeper config edit`: edits the configuration the way `visudo` or `kubectl edit` do. The
//! file is copied beside itself (mode 0600), `$VISUAL`, else `$EDITOR`, else `vi` opens the copy,
//! and the whole configuration is checked with the copy in place of the file, host checks
//! included, as `config check` does. A rejected copy is reopened with its problems as comment
//! lines at the top (see `config::edit` for the abort rule); only a valid one replaces the file,
//! atomically, with the same owner and mode (group and others lose access when it holds a secret
//! inline), keeping the previous version as `FILE.bak`. Then it prints what the running daemon
//! will change when it reloads: the node config files it rewrites and the effective settings.
//! A broken file never reaches the daemon.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use clap::Args;

use super::Failure;
use super::config::{ConfigSourceArgs, shown_text};
use crate::config::edit::{self, Verdict};
use crate::config::model::{self, ConfigSource};
use crate::config::{self, Config, Env, HostFiles, nodefile};

/// Options of `config edit`.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct EditArgs {
    /// With --jmanager-config and --config-template: edit config_template.json instead of
    /// jmanager_config.json.
    #[arg(long)]
    pub template: bool,
}

/// Which file of the source is edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// nodekeeper's file, or jmanager's `jmanager_config.json`.
    Config,
    /// jmanager's `config_template.json`.
    Template,
}

/// The file of `source` that `target` names.
fn target_path(source: &ConfigSource, target: Target) -> &Path {
    match (source, target) {
        (ConfigSource::File(path), _) => path,
        (ConfigSource::Jmanager { config, .. }, Target::Config) => config,
        (ConfigSource::Jmanager { template, .. }, Target::Template) => template,
    }
}

/// `source` with `copy` read in place of the file `target` names.
fn with_copy(source: &ConfigSource, target: Target, copy: &Path) -> ConfigSource {
    match (source, target) {
        (ConfigSource::File(_), _) => ConfigSource::File(copy.to_path_buf()),
        (ConfigSource::Jmanager { template, .. }, Target::Config) => ConfigSource::Jmanager {
            config: copy.to_path_buf(),
            template: template.clone(),
        },
        (ConfigSource::Jmanager { config, .. }, Target::Template) => ConfigSource::Jmanager {
            config: config.clone(),
            template: copy.to_path_buf(),
        },
    }
}

/// The edited copy; removed when dropped unless kept.
struct EditCopy {
    path: PathBuf,
    keep: bool,
}

impl EditCopy {
    /// Creates the copy of `path` (mode 0600, exclusively) holding `text`.
    fn create(path: &Path, text: &str) -> Result<EditCopy, Failure> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut attempt = 0;
        loop {
            let tag = format!("{}-{attempt}", std::process::id());
            let copy_path = edit::copy_path(path, &tag);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&copy_path)
            {
                Ok(mut file) => {
                    let copy = EditCopy {
                        path: copy_path,
                        keep: false,
                    };
                    file.write_all(text.as_bytes())
                        .map_err(|e| copy.failure("write", &e))?;
                    return Ok(copy);
                }
                // A leftover of an edit that was killed: try the next name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Failure::runtime(format!(
                        "cannot create a copy of {} to edit ({}): {e}",
                        path.display(),
                        copy_path.display()
                    )));
                }
            }
        }
    }

    fn failure(&self, what: &str, error: &std::io::Error) -> Failure {
        Failure::runtime(format!("cannot {what} {}: {error}", self.path.display()))
    }

    fn read(&self) -> Result<String, Failure> {
        std::fs::read_to_string(&self.path).map_err(|e| self.failure("read", &e))
    }

    fn write(&self, text: &str) -> Result<(), Failure> {
        std::fs::write(&self.path, text).map_err(|e| self.failure("write", &e))
    }
}

impl Drop for EditCopy {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Runs `config edit`: 0 when the file was replaced or left unchanged, 1 when the edit was
/// aborted or failed (the file is then as it was), 2 for a usage error.
pub async fn run(source_args: &ConfigSourceArgs, args: EditArgs) -> Result<u8, Failure> {
    let source = source_args.source()?;
    let target = match (&source, args.template) {
        (_, false) => Target::Config,
        (ConfigSource::Jmanager { .. }, true) => Target::Template,
        (ConfigSource::File(_), true) => {
            return Err(Failure::usage(
                "--template edits jmanager's config_template.json: give --jmanager-config FILE \
                 --config-template FILE",
            ));
        }
    };
    let path = target_path(&source, target).to_path_buf();
    let env = config::process_env();
    let original_bytes = std::fs::read(&path)
        .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", path.display())))?;
    let original = String::from_utf8(original_bytes.clone())
        .map_err(|_| Failure::runtime(format!("{}: not UTF-8 text", path.display())))?;
    let metadata = std::fs::metadata(&path)
        .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", path.display())))?;
    // What the daemon runs with now (when the file is valid), for the summary at the end.
    let before = Effective::of(&source, &env);

    // While the editor runs, Ctrl-C is the editor's: nodekeeper must outlive it to clean up.
    let _interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    let mut copy = EditCopy::create(&path, &original)?;
    let mut last_attempt: Option<String> = None;
    let edited = loop {
        run_editor(&copy.path, &path).await?;
        let text = copy.read()?;
        let edited = edit::strip_problems(&text).to_string();
        match edit::judge(&edited, &original, last_attempt.as_deref()) {
            Verdict::Unchanged => {
                println!("{}: no changes", path.display());
                return Ok(0);
            }
            Verdict::Emptied => {
                return Err(Failure::runtime(format!(
                    "edit aborted (the copy was emptied): {} was not changed",
                    path.display()
                )));
            }
            Verdict::SameAsLastAttempt => {
                copy.write(&edited)?;
                copy.keep = true;
                return Err(Failure::runtime(format!(
                    "edit aborted (saved again unchanged): {} was not changed; your last attempt \
                     is kept in {}",
                    path.display(),
                    copy.path.display()
                )));
            }
            Verdict::Check => {}
        }
        // The copy is checked without the header, which JSON could not even parse.
        copy.write(&edited)?;
        let problems = problems_of(&with_copy(&source, target, &copy.path), &env, &copy, &path);
        if problems.is_empty() {
            break edited;
        }
        eprintln!(
            "{}: {} problem{}; reopening the editor",
            path.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        copy.write(&edit::with_problems(&edited, &path, &problems))?;
        last_attempt = Some(edited);
    };

    // Replacing a symbolic link would cut it: the file it points to is replaced (the copy stays
    // beside the link, where relative paths resolve as the daemon resolves them).
    let target_file = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    // Someone else may have changed the file meanwhile: never overwrite that unseen.
    if std::fs::read(&target_file).ok().as_deref() != Some(original_bytes.as_slice()) {
        copy.write(&edited)?;
        copy.keep = true;
        return Err(Failure::runtime(format!(
            "{} changed on disk during the edit: it was not replaced; your version is kept in {}",
            path.display(),
            copy.path.display()
        )));
    }
    // A password or token in the file: readable by its owner only (the backup too).
    let mode = metadata.mode() & 0o7777;
    let private = |source: &ConfigSource| {
        if target == Target::Config && model::source_has_inline_secret(source) {
            mode & !0o077
        } else {
            mode
        }
    };
    let backup_mode = private(&source);
    let new_mode = private(&with_copy(&source, target, &copy.path));
    let owner = Some((metadata.uid(), metadata.gid()));
    let backup = edit::backup_path(&target_file);
    crate::files::replace(&backup, &original_bytes, backup_mode, owner).map_err(|e| {
        Failure::runtime(format!(
            "cannot keep the previous version as {}: {e}; {} was not changed",
            backup.display(),
            path.display()
        ))
    })?;
    crate::files::replace(&target_file, edited.as_bytes(), new_mode, owner).map_err(|e| {
        Failure::runtime(format!(
            "cannot replace {}: {e}; it was not changed",
            path.display()
        ))
    })?;
    drop(copy);
    println!(
        "{}: replaced (the previous version is {})",
        path.display(),
        backup.display()
    );
    if new_mode != mode {
        println!(
            "{}: mode {new_mode:04o} (was {mode:04o}): it holds a secret",
            path.display()
        );
    }
    let after = Effective::of(&source, &env);
    print_changes(&before, &after);
    Ok(0)
}

/// Opens the editor on `copy` and waits for it. A failed editor aborts the edit.
async fn run_editor(copy: &Path, file: &Path) -> Result<(), Failure> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string());
    // Through the shell, as git does, so that `EDITOR="code --wait"` works.
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg(&editor)
        .arg(copy)
        .status()
        .await
        .map_err(|e| Failure::runtime(format!("cannot run the editor {editor:?}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::runtime(format!(
            "the editor {editor:?} failed ({status}): {} was not changed",
            file.display()
        )))
    }
}

/// Every problem of the configuration read with the copy in place of `file`, as `config check`
/// reports them (host checks included), naming `file` rather than the copy.
fn problems_of(source: &ConfigSource, env: &Env, copy: &EditCopy, file: &Path) -> Vec<String> {
    let errors = match config::load_source_with(source, env, HostFiles::Check).result {
        Ok((config, _)) => model::host_problems(&config, env),
        Err(errors) => errors,
    };
    let copy_name = copy.path.display().to_string();
    let file_name = file.display().to_string();
    errors
        .0
        .into_iter()
        .map(|mut error| {
            if error.origin == copy_name {
                error.origin = file_name.clone();
            }
            error.message = error.message.replace(&copy_name, &file_name);
            error.to_string()
        })
        .collect()
}

/// The configuration as the daemon reads it: validated, and as `config show` prints it.
struct Effective {
    config: Option<Config>,
    shown: Option<String>,
}

impl Effective {
    fn of(source: &ConfigSource, env: &Env) -> Effective {
        let config = config::load_source(source, env)
            .ok()
            .map(|(config, _)| config);
        let shown = config.as_ref().and_then(|_| {
            let raw = model::load_raw_source(source, env).ok()?;
            shown_text(&model::redacted(&raw), false).ok()
        });
        Effective { config, shown }
    }
}

/// What the running daemon will change when it reloads: the node config files it rewrites (as
/// `config diff`) and the effective settings (as `config show`, secrets redacted).
fn print_changes(before: &Effective, after: &Effective) {
    let Some(config) = &after.config else {
        // Only when another file changed meanwhile: the same text was just checked.
        println!("note: the configuration no longer loads: run `nodekeeper config check`");
        return;
    };
    println!("when the running daemon reloads it:");
    let mut up_to_date = Vec::new();
    for node in &config.nodes {
        let Some(settings) = node.jormungandr() else {
            continue;
        };
        match nodefile::diff(&settings.config_path, &settings.config) {
            Ok(None) => up_to_date.push(node.name.as_str()),
            Ok(Some(diff)) => {
                println!("{}: rewrites {}", node.name, settings.config_path.display());
                print!("{diff}");
            }
            Err(e) => println!("{}: {e}", node.name),
        }
    }
    if !up_to_date.is_empty() {
        println!("node configs up to date: {}", up_to_date.join(", "));
    }
    match (&before.shown, &after.shown) {
        (Some(old), Some(new)) => {
            match edit::text_diff(old, new, "settings (before)", "settings (after)") {
                Some(diff) => print!("{diff}"),
                None => println!("settings: no change"),
            }
        }
        (None, _) => println!("settings: no diff: the previous configuration was invalid"),
        (_, None) => {}
    }
}

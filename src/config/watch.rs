//! Hot reload: notices when the configuration's files change on disk and re-reads them. A valid new
//! configuration replaces the old one; an invalid one is returned as its full error list and the
//! caller keeps the old configuration. Nothing here touches nodes.
//!
//! Polling (a few small files, every couple of seconds) rather than inotify: it also sees editors
//! that replace a file by rename, files on network mounts, and a template that appears later.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use super::error::{ConfigError, ConfigErrors};
use super::load::Env;
use super::model::{Config, ConfigSource, load_source};

/// What the files held when last read: a hash of each file's bytes, `None` when unreadable.
type Fingerprint = BTreeMap<PathBuf, Option<u64>>;

/// Watches the files of one configuration.
#[derive(Debug)]
pub struct Watcher {
    source: ConfigSource,
    fingerprint: Fingerprint,
}

/// The outcome of a poll that found a change.
#[derive(Debug)]
pub enum Reload {
    /// The files changed and the new configuration is valid.
    Valid {
        /// The new configuration.
        config: Box<Config>,
        /// Notices (unused jmanager keys).
        notices: Vec<ConfigError>,
    },
    /// The files changed but the new configuration is invalid; keep the old one.
    Rejected(ConfigErrors),
}

impl Watcher {
    /// Watches the files `config` was loaded from (the config file or jmanager's two files, every
    /// node template, and the leader secret's file).
    pub fn new(source: ConfigSource, config: &Config) -> Watcher {
        let fingerprint = fingerprint(&files_of(&source, Some(config)));
        Watcher {
            source,
            fingerprint,
        }
    }

    /// Re-reads the configuration when any watched file changed since the last poll; `None` when
    /// nothing changed. A rejected configuration is reported once, not on every poll: the next
    /// report comes with the next change.
    pub fn poll(&mut self, env: &Env) -> Option<Reload> {
        let watched: Vec<PathBuf> = self.fingerprint.keys().cloned().collect();
        let now = fingerprint(&watched);
        if now == self.fingerprint {
            return None;
        }
        Some(self.read(env, now))
    }

    /// Re-reads the configuration whether or not a watched file changed (SIGHUP: every file the
    /// configuration reads, password files included, is read again).
    pub fn reload(&mut self, env: &Env) -> Reload {
        let watched: Vec<PathBuf> = self.fingerprint.keys().cloned().collect();
        let now = fingerprint(&watched);
        self.read(env, now)
    }

    fn read(&mut self, env: &Env, now: Fingerprint) -> Reload {
        match load_source(&self.source, env) {
            Ok((config, notices)) => {
                // The new configuration may use other templates: watch those from now on.
                self.fingerprint = fingerprint(&files_of(&self.source, Some(&config)));
                Reload::Valid {
                    config: Box::new(config),
                    notices,
                }
            }
            Err(errors) => {
                self.fingerprint = now;
                Reload::Rejected(errors)
            }
        }
    }
}

fn files_of(source: &ConfigSource, config: Option<&Config>) -> Vec<PathBuf> {
    let mut files = match source {
        ConfigSource::File(path) => vec![path.clone()],
        ConfigSource::Jmanager { config, template } => vec![config.clone(), template.clone()],
    };
    if let Some(config) = config {
        files.extend(
            config
                .nodes
                .iter()
                .filter_map(|node| node.jormungandr())
                .map(|settings| settings.template_path.clone()),
        );
        // The pool's leader secret is read again on a reload: a new one is taken at once.
        files.extend(config.leadership.secret_file.iter().cloned());
    }
    files.sort();
    files.dedup();
    files
}

fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files
        .iter()
        .map(|path| {
            let hash = std::fs::read(path).ok().map(|bytes| {
                let mut hasher = DefaultHasher::new();
                bytes.hash(&mut hasher);
                hasher.finish()
            });
            (path.clone(), hash)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str =
        r#"{"rest": {"listen": "127.0.0.1:3100"}, "p2p": {"trusted_peers": []}}"#;

    fn config_text(tip_timeout: &str) -> String {
        format!(
            "[node_defaults]\ntemplate = \"template.json\"\nnode_dir = \".\"\n\
             [thresholds]\ntip_timeout = {tip_timeout}\n\
             [[nodes]]\nname = \"n1\"\n[nodes.overrides]\nrest = {{ listen = \"127.0.0.1:3101\" }}\n"
        )
    }

    #[test]
    fn reports_changes_once_and_keeps_quiet_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("n1")).unwrap();
        let path = dir.path().join("nodekeeper.toml");
        std::fs::write(&path, config_text("90")).unwrap();
        std::fs::write(dir.path().join("template.json"), TEMPLATE).unwrap();
        let env = Env::new();
        let source = ConfigSource::File(path.clone());
        let (config, _) = load_source(&source, &env).unwrap();
        let mut watcher = Watcher::new(source, &config);
        assert!(watcher.poll(&env).is_none(), "nothing changed");

        std::fs::write(&path, config_text("120")).unwrap();
        match watcher.poll(&env) {
            Some(Reload::Valid { config, .. }) => {
                assert_eq!(config.thresholds.tip_timeout.as_secs(), 120);
            }
            other => panic!("expected a valid reload, got {other:?}"),
        }
        assert!(watcher.poll(&env).is_none());

        std::fs::write(&path, config_text("\"soon\"")).unwrap();
        match watcher.poll(&env) {
            Some(Reload::Rejected(errors)) => {
                assert!(
                    errors.to_string().contains("thresholds.tip_timeout"),
                    "{errors}"
                );
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(watcher.poll(&env).is_none(), "a rejection is reported once");

        // A change of the template alone is a change of the configuration.
        std::fs::write(&path, config_text("90")).unwrap();
        assert!(matches!(watcher.poll(&env), Some(Reload::Valid { .. })));
        std::fs::write(
            dir.path().join("template.json"),
            TEMPLATE.replace("3100", "3200"),
        )
        .unwrap();
        assert!(matches!(watcher.poll(&env), Some(Reload::Valid { .. })));
        std::fs::remove_file(dir.path().join("template.json")).unwrap();
        assert!(matches!(watcher.poll(&env), Some(Reload::Rejected(_))));
    }
}

//! Hot reload, all or nothing: every couple of seconds the configuration's files are checked; a
//! changed and valid configuration becomes a whole new `Runtime` (clients, adapters and leader
//! secret, policy settings, PoolTool reporter and reference feed, alert settings, API token), swapped in only when
//! every part was built; anything rejected (an invalid file, a part that cannot be built) is
//! logged with every problem and leaves every part as it was. Node configs that changed are
//! rewritten; running nodes are not restarted for it.

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use super::runtime::{Parts, Runtime};
use super::{Daemon, RunOptions};
use crate::config::watch::{Reload, Watcher};
use crate::config::{Config, ConfigSource, Env};
use crate::events::Event;

/// How often the configuration files are checked for changes.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The watched files, the environment they are read with, and how parts are made.
pub struct Reloader {
    watcher: Watcher,
    env: Env,
    parts: Arc<dyn Parts>,
}

impl Reloader {
    /// Watches the files `config` was loaded from.
    pub fn new(source: ConfigSource, env: Env, parts: Arc<dyn Parts>, config: &Config) -> Reloader {
        Reloader {
            watcher: Watcher::new(source, config),
            env,
            parts,
        }
    }
}

/// Keeps the running value of the keys whose change needs a restart of nodekeeper (the files it
/// opened at start, what it serves, whether it manages leadership), warning about each changed one.
fn keep_restart_keys(running: &Config, new: &mut Config) {
    let mut kept = Vec::new();
    if new.restart_log != running.restart_log {
        new.restart_log.clone_from(&running.restart_log);
        kept.push("restart_log.path");
    }
    if new.leadership.enabled != running.leadership.enabled {
        new.leadership.enabled = running.leadership.enabled;
        kept.push("leadership.enabled");
    }
    if new.leadership.state_file != running.leadership.state_file {
        new.leadership
            .state_file
            .clone_from(&running.leadership.state_file);
        kept.push("leadership.state_file");
    }
    if new.api.listen != running.api.listen {
        new.api.listen = running.api.listen;
        kept.push("api.listen");
    }
    if new.email.enabled != running.email.enabled {
        new.email.enabled = running.email.enabled;
        kept.push("email.enabled");
    }
    if new.cluster != running.cluster {
        // The etcd session was started with the running settings (the nodes of the instance
        // follow the file: `nodes[].instance` may move a node between instances).
        new.cluster.clone_from(&running.cluster);
        kept.push("cluster");
    }
    for key in kept {
        warn!("{key} changes take effect when nodekeeper restarts");
    }
}

impl Daemon {
    /// Looks at the configuration files; swaps a new runtime in, or rejects the change.
    pub(super) fn on_reload(&mut self) {
        let Some(reload) = self.reloader.watcher.poll(&self.reloader.env) else {
            return;
        };
        self.take(reload);
    }

    /// SIGHUP: reads the configuration again, every file of it, changed or not.
    pub(super) fn on_hangup(&mut self) {
        info!("SIGHUP: reading the configuration again");
        let reload = self.reloader.watcher.reload(&self.reloader.env);
        self.take(reload);
    }

    fn take(&mut self, reload: Reload) {
        let (config, notices) = match reload {
            Reload::Rejected(errors) => {
                error!(
                    "configuration change rejected, keeping the running configuration:\n{errors}"
                );
                self.out.emit(Event::ConfigReloadRejected {
                    errors: errors.to_string(),
                });
                return;
            }
            Reload::Valid { config, notices } => (config, notices),
        };
        for notice in notices {
            warn!("{notice}");
        }
        self.apply(*config);
    }

    /// Hands each channel's new setup to its running worker (by name). A channel added or
    /// removed needs a restart: its worker, outbox and dedupe state exist from the start.
    fn reconfigure_channels(&self, setups: Vec<(String, crate::alert::Setup)>) {
        let running = &self.out.alerts.channels;
        for name in running.keys() {
            if !setups.iter().any(|(new, _)| new == name) {
                warn!(
                    "alerts: channel {name} was removed; it keeps sending until nodekeeper's next start"
                );
            }
        }
        for (name, setup) in setups {
            match running.get(&name) {
                Some(worker) if !worker.apply(setup) => warn!(
                    "alerts: channel {name} did not take its new settings; they apply at the next change"
                ),
                Some(_) => {}
                None => warn!(
                    "alerts: channel {name} was added; it starts with nodekeeper's next start"
                ),
            }
        }
    }

    /// Builds the runtime of `config` and swaps it in whole, or rejects it whole.
    pub(super) fn apply(&mut self, mut config: Config) {
        keep_restart_keys(&self.rt.config, &mut config);
        let options = RunOptions {
            dry_run: self.options.dry_run,
            once: self.options.once,
        };
        let mut next = match Runtime::build(&config, self.reloader.parts.as_ref(), options) {
            Ok(next) => next,
            Err(problems) => {
                let errors = problems.join("\n");
                error!(
                    "configuration change rejected, keeping the running configuration:\n{errors}"
                );
                self.out.emit(Event::ConfigReloadRejected { errors });
                return;
            }
        };
        // What does not change carries its state over: PoolTool's report trackers (an epoch's
        // slots are sent once) and the reference's last value.
        if self.rt.config.pooltool == config.pooltool {
            next.reporter = self.rt.reporter.take();
        }
        if self.rt.config.pooltool == config.pooltool
            && self.rt.config.reference_url == config.reference_url
        {
            next.reference = self.rt.reference.take();
        }
        if let Some(token) = &next.token
            && let Ok(mut cell) = self.out.token.write()
        {
            cell.clone_from(token);
        }
        if let (Some(setup), Some(alerts)) = (next.alerts.take(), &self.out.alerts.email)
            && !alerts.apply(setup)
        {
            warn!(
                "the alert worker did not take the new [email] settings; they apply at the next change"
            );
        }
        self.reconfigure_channels(std::mem::take(&mut next.channels));
        self.rt = next;
        let configured = |name: &str| self.rt.supervisors.contains_key(name);
        self.observer.outages.retain(configured);
        info!("configuration reloaded");
        if !self.options.dry_run {
            self.write_node_configs();
        }
    }
}

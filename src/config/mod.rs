//! nodekeeper's configuration: loading (file + environment), validation reporting every problem with
//! its file and key, node config generation from a template, and the jmanager drop-in.
//!
//! Three steps (see ARCHITECTURE.md): `load` reads the file and the environment into the serde
//! shape of `raw`, collecting shape problems; `validate` checks values and resolves defaults into a
//! `Config` (the types are in `model`), merging each node's template and overrides with `merge`; `nodefile` writes the
//! generated node configs; `edit` holds the rules of `config edit`.

pub mod duration;
pub mod edit;
pub mod error;
mod fields;
pub mod jmanager;
pub mod load;
pub mod merge;
pub mod model;
pub mod nodefile;
pub mod raw;
pub mod validate;
pub mod watch;

pub use crate::supervisor::SupervisorSettings;
pub use error::{ConfigError, ConfigErrors};
pub use load::{Env, load_raw, load_raw_text, process_env};
pub use model::{
    Config, ConfigSource, HostFiles, LeadershipSettings, NodeSettings, PoolToolSettings,
    SkippedCheck, Thresholds, load, load_source, load_source_with,
};

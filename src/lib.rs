//! nodekeeper keeps a fleet of blockchain nodes, each a program of an external supervisord, running,
//! in sync and safe.
//!
//! Layout, one line per module:
//! - `supervisor`: typed async client of supervisord's XML-RPC API (http and unix-socket transports),
//!   and the generated `[program:x]` sections (`supervisor::conf`).
//! - `config`: nodekeeper's config, node config generation (template + overrides), the jmanager drop-in.
//! - `api`: the daemon's HTTP API (health, status, restarts, metrics; node actions behind a bearer token).
//! - `metrics`: the daemon's Prometheus metrics (`prometheus-client`), updated by the loop each tick.
//! - `daemon`: the shell around the policy: one event loop that observes, asks the policy, acts, records.
//! - `events`: what the daemon reports to listeners (alerts).
//! - `alert`: email alerts: templates (pure rendering), dedupe, a retrying queue, SMTP (`Mailer`).
//! - `status`: the pool's status snapshot and its table.
//! - `policy`: the pure decision policy: observations in, actions out (no I/O, no clock).
//! - `chain`: the chain-neutral view of a node and the chain adapters (Jormungandr REST v0 first).
//! - `pooltool`: PoolTool: reporting the tip (`sharemytip`) and the per-epoch slot schedule
//!   (`sendlogs`), and reading its majority max, the external reference tip (`pooltool::reference`).
//! - `restart_log`: the append-only CSV restart log.
//! - `analyze`: restart-log analysis (`log analyze`): fast parsing, the pure report, table/JSON/CSV/SVG.
//! - `http`: what the HTTP clients share (bodies read under a size limit).
//! - `secret`: `Secret`, a password or token that `Debug` and `Display` never show.
//! - `backoff`: the one exponential backoff, a validated value (pure arithmetic).
//! - `files`: the one atomic file writer (write if changed, create once).
//! - `describe`: short, safe descriptions of errors and foreign data for messages.
//! - `time`: the wall clock behind a trait (and one that follows tokio's paused time), RFC 3339.
//! - `cli`: the command-line surface (`clap`) and the `ctl` commands; `main.rs` only calls `cli::main`.
//! - `slots`: chain time (epochs, slots) from a node's settings; typed leadership log entries.

pub mod alert;
pub mod analyze;
pub mod api;
pub mod backoff;
pub mod chain;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod describe;
pub mod events;
pub mod files;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod pooltool;
pub mod restart_log;
pub mod secret;
pub mod slots;
pub mod status;
pub mod supervisor;
pub mod time;

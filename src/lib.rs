//! nodekeeper keeps a fleet of blockchain nodes, each a program of an external supervisord, running,
//! in sync and safe.
//!
//! Layout, one line per module, from the one that decides to the ones below it (ARCHITECTURE.md has
//! the map and the invariants):
//! - `policy`: the pure decision policy, the one place that decides: observations and operator
//!   requests in, facts and actions out (no I/O, no clock).
//! - `daemon`: the shell around the policy: one event loop that observes, asks the policy, executes
//!   and records; it never decides.
//! - `chain`: the chain-neutral view of a node and the chain adapter traits; `chain::jormungandr`
//!   is the first adapter (REST API v0).
//! - `supervisor`: typed async client of supervisord's XML-RPC API (http and unix-socket
//!   transports), the `Supervisor` trait the daemon uses, the generated `[program:x]` sections.
//! - `config`: nodekeeper's configuration (file + environment, every problem named), node config
//!   generation (template + overrides), the jmanager drop-in, hot reload's watcher, `config edit`.
//! - `pooltool`: PoolTool: reporting the tip (`sharemytip`) and the per-epoch slot schedule
//!   (`sendlogs`), and reading its majority max, the external reference tip (`pooltool::reference`).
//! - `alert`: email alerts: templates (pure rendering), dedupe, a retrying queue, SMTP (`Mailer`).
//! - `api`: the daemon's HTTP API (health, status, restarts, metrics; node actions behind a bearer
//!   token) and its typed client.
//! - `listener`: supervisord's event listener (`nodekeeper listen`: events and exit hints to the
//!   daemon over a unix socket) and the daemon's inbox for them.
//! - `cluster`: several instances, one etcd: the lease, the election, fenced promotions.
//! - `metrics`: the daemon's Prometheus metrics (`prometheus-client`), updated by the loop each tick.
//! - `restart_log`: the append-only CSV restart log and its one record format.
//! - `analyze`: restart-log analysis (`log analyze`): fast parsing, the pure report, table/JSON/CSV/SVG.
//! - `status`: what the daemon publishes: the status snapshot and its table, operator actions.
//! - `events`: what the daemon reports to listeners (alerts).
//! - `slots`: chain time (epochs, slots) from a node's settings; typed leadership log entries.
//! - `http`: what the HTTP clients share (bodies read under a size limit).
//! - `secret`: `Secret`, a password or token that `Debug` and `Display` never show.
//! - `backup`: backups of a node's data directory: archives (tar + zstd, SHA-256, a JSON manifest),
//!   a target's listing and retention, the verified restore swapped in by rename.
//! - `backoff`: the one exponential backoff, a validated value (pure arithmetic).
//! - `files`: the one atomic file writer (write if changed, replace, create once).
//! - `describe`: short, safe descriptions of errors and foreign data for messages.
//! - `time`: the wall clock behind a trait (and one that follows tokio's paused time), RFC 3339.
//! - `cli`: the command-line surface (`clap`); `main.rs` only calls `cli::main`.

pub mod alert;
pub mod analyze;
pub mod api;
pub mod backoff;
pub mod backup;
pub mod chain;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod describe;
pub mod events;
pub mod files;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod policy;
pub mod pooltool;
pub mod restart_log;
pub mod secret;
pub mod slots;
pub mod status;
pub mod supervisor;
pub mod time;

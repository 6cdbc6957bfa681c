//! Typed async client of supervisord's XML-RPC API (`/RPC2`), over TCP (`http://`) or a unix socket
//! (`unix://`). Owns the wire format, the transport rules and the error taxonomy; it never decides
//! anything about nodes and never panics on what a server sends.
//!
//! `dxr` is the XML-RPC codec (values, method calls, responses, faults); the HTTP exchange is ours, so
//! that status codes (401 arrives as HTML), a response size limit and per-call timeouts are typed
//! errors rather than guesses from an error string. See ARCHITECTURE.md for why.
//!
//! `SupervisorSettings` is what the configuration resolves for one supervisord; it makes the
//! `Client`. `conf` renders the `[program:x]` sections supervisord needs for the nodes and
//! nodekeeper.
//!
//! [`Supervisor`] is the narrow interface the daemon drives a supervisord through (observe its
//! programs, start, stop, signal, read a log's tail); [`Client`] implements it over XML-RPC, and
//! the daemon's shell tests implement it in memory.

mod client;
pub mod conf;
mod endpoint;
mod error;
mod settings;
mod transport;
mod types;

pub use client::{CallResult, Client, ClientOptions};
pub use endpoint::{Endpoint, EndpointError};
pub use error::{Fault, SupervisorError};
pub use settings::SupervisorSettings;
pub use types::{
    GroupResult, ProcessInfo, ProcessState, ProgramConfig, ReloadDiff, SupervisorState, TailChunk,
    namespec,
};

use crate::chain::BoxFuture;

/// What the daemon asks of one supervisord. Every call has its own timeout (the client's
/// `timeout`, or `wait_timeout` for the calls that wait for the program).
pub trait Supervisor: Send + Sync {
    /// Where it is, as shown in messages.
    fn endpoint(&self) -> &str;

    /// `getProcessInfo` of each program in one request, in order; an unknown program is
    /// `Err(Fault::BadName)` in its place.
    fn process_infos<'a>(
        &'a self,
        programs: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Result<ProcessInfo, Fault>>, SupervisorError>>;

    /// `getAllConfigInfo`: every program's configuration (its command line, above all).
    fn program_configs(&self) -> BoxFuture<'_, Result<Vec<ProgramConfig>, SupervisorError>>;

    /// `startProcess(program, wait=true)`: returns once it is RUNNING (after `startsecs`) or
    /// failed.
    fn start<'a>(&'a self, program: &'a str) -> BoxFuture<'a, Result<bool, SupervisorError>>;

    /// `stopProcess(program, wait=true)`: returns once it is STOPPED.
    fn stop<'a>(&'a self, program: &'a str) -> BoxFuture<'a, Result<bool, SupervisorError>>;

    /// `signalProcess(program, signal)`; `signal` is a name (`HUP`) or a number.
    fn signal<'a>(
        &'a self,
        program: &'a str,
        signal: &'a str,
    ) -> BoxFuture<'a, Result<bool, SupervisorError>>;

    /// The last `bytes` bytes of the program's stdout log and of its stderr log, stdout first
    /// (`tailProcessStdoutLog`, `tailProcessStderrLog`): what it printed before it exited, for the
    /// chain's corrupt-database signal. A log that does not exist gives nothing; an unknown
    /// program is `Fault::BadName`.
    fn tail_log<'a>(
        &'a self,
        program: &'a str,
        bytes: u32,
    ) -> BoxFuture<'a, Result<String, SupervisorError>>;
}

impl Supervisor for Client {
    fn endpoint(&self) -> &str {
        Client::endpoint(self)
    }

    fn process_infos<'a>(
        &'a self,
        programs: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Result<ProcessInfo, Fault>>, SupervisorError>> {
        Box::pin(self.get_process_infos(programs))
    }

    fn program_configs(&self) -> BoxFuture<'_, Result<Vec<ProgramConfig>, SupervisorError>> {
        Box::pin(self.get_all_config_info())
    }

    fn start<'a>(&'a self, program: &'a str) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        Box::pin(self.start_process(program, true))
    }

    fn stop<'a>(&'a self, program: &'a str) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        Box::pin(self.stop_process(program, true))
    }

    fn signal<'a>(
        &'a self,
        program: &'a str,
        signal: &'a str,
    ) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        Box::pin(self.signal_process(program, signal))
    }

    fn tail_log<'a>(
        &'a self,
        program: &'a str,
        bytes: u32,
    ) -> BoxFuture<'a, Result<String, SupervisorError>> {
        Box::pin(Client::tail_log(self, program, bytes))
    }
}

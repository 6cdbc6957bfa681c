//! Typed async client of supervisord's XML-RPC API (`/RPC2`), over TCP (`http://`) or a unix socket
//! (`unix://`). Owns the wire format, the transport rules and the error taxonomy; it never decides
//! anything about nodes and never panics on what a server sends.
//!
//! `dxr` is the XML-RPC codec (values, method calls, responses, faults); the HTTP exchange is ours, so
//! that status codes (401 arrives as HTML), a response size limit and per-call timeouts are typed
//! errors rather than guesses from an error string. See ARCHITECTURE.md for why.
//!
//! `SupervisorSettings` is what the configuration resolves for one supervisord; it makes the
//! `Client`. `conf` renders the `[program:x]` sections supervisord needs for the nodes and nodekeeper.

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
    GroupResult, ProcessInfo, ProcessState, ReloadDiff, SupervisorState, TailChunk, namespec,
};

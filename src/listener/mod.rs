//! The supervisord event listener (`nodekeeper listen`) and the daemon's side of it, the inbox.
//!
//! supervisord runs `nodekeeper listen` as an `[eventlistener:...]` subscribed to
//! `PROCESS_STATE`; the listener passes each event, and a hint the moment a sibling program
//! exits, to the daemon over a unix socket beside the restart log, and answers supervisord OK
//! once the daemon has the event or is found away. Events only make the daemon observe sooner:
//! they decide nothing, and polling still reconciles whatever is lost.
//!
//! - `protocol`: the pure protocol (header, payload length in characters, state payloads).
//! - `serve`: the listener's loop on stdin and stdout.
//! - `link`: the listener's connection to the inbox (acknowledged within 200 ms, or dropped).
//! - `siblings`: exit hints from pidfds of the listener's sibling processes.
//! - `inbox`: the daemon's socket, its bounded queue and the serial tracker.

pub mod inbox;
pub mod link;
pub mod protocol;
pub mod serve;
pub mod siblings;

pub use inbox::{Continuity, Inbox, InboxError, Notice, ProgramEvent, SerialTracker, socket_path};

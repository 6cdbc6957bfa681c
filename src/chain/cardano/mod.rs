//! The cardano-node chain adapter, so far its pure parts: what the node's Prometheus text says
//! (`metrics`) and the chain's time and the pool's slots from the genesis and the leadership
//! schedule files (`genesis`). The HTTP exchange, the `ChainNode`/`LeaderControl` implementation
//! (dynamic block forging: credential files placed or removed, then SIGHUP through supervisord)
//! and its configuration come with it (issue 13).

pub mod genesis;
pub mod metrics;
pub mod settings;

pub use settings::{Credentials, PoolFiles, Settings};

//! The Jormungandr adapter: its REST API v0 (`probe`: node stats; `leaders`: the enclave's leader
//! ids, promotion and demotion, leadership logs and chain settings; `blocks`: a block's first
//! bytes, for PoolTool's tip report) and its node secret (`secret`).

pub mod blocks;
pub mod leaders;
pub mod probe;
pub mod secret;

pub use blocks::JormungandrBlocks;
pub use probe::JormungandrProbe;

//! The Jormungandr adapter: its REST API v0 (`probe`: node stats; `leaders`: the enclave's leader
//! ids, promotion and demotion, leadership logs and chain settings) and its node secret (`secret`).

pub mod leaders;
pub mod probe;
pub mod secret;

pub use probe::JormungandrProbe;

//! The nodeos (Antelope: EOS/Vaulta, WAX, Telos) chain adapter, so far its pure parts: what the
//! node's HTTP answers mean (`wire`) and when the pool's producer may change hands (`rounds`).
//! The HTTP exchange, the `ChainNode`/`LeaderControl` implementation (pause = demote, resume =
//! promote, `/v1/producer/paused` = holding) and its configuration come with it (issue 13).

pub mod rounds;
pub mod settings;
pub mod wire;

pub use settings::Settings;

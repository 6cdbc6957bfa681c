//! PoolTool: reporting the pool's tip (`sharemytip`) and, once per epoch, its slot schedule
//! (`sendlogs`) with its verification commitment (none, sha256 hash or gpg), and reading PoolTool's
//! majority max, the external reference tip (`reference`). Nothing here decides about nodes, blocks
//! the daemon loop or fails the daemon; nothing here calls a node: the one node call a tip report
//! needs goes through `TipHeaders`, which the chain adapter implements.
//!
//! Rooms:
//! - `wire`: what goes over the wire, pure but for the one exchange: identity, the tip header
//!   decoding, the `sharemytip` address, the slot list as committed, the `sendlogs` body per mode,
//!   judging PoolTool's answer.
//! - `due`: when to send, pure (`now` is passed in): `TipTracker`, `SlotsTracker`, slot windows.
//! - `keys`: the per-epoch key files (`leader_slots_E`, `hash_E`, `passphrase_E`), created once.
//! - `gpg`: the gpg subprocess of gpg mode.
//! - `reporter`: `Reporter`, polled once per tick; spawns due sends, never awaits them.
//! - `reference`: the majority max: fetch, parse and the pure `ReferenceTracker`.
//!
//! Wire facts (see `pooltool-api.md` and jmanager §1.7):
//! - `sharemytip` is a GET with query parameters; the tip block's header (the node serves the block
//!   as raw bytes, Jormungandr at `GET {rest}/v0/block/{hash}`) gives `lastepoch`/`lastslot`/
//!   `lastparent`/`lastpool` at byte offsets 8, 12, 52 and 84 of the block (u16 length prefix
//!   included).
//! - `sendlogs` is a JSON POST whose values are all strings, as the shell scripts send them.
//!
//! The slot list that is hashed, encrypted and kept in `leader_slots_{epoch}` is one deterministic
//! compact JSON text: `[{"scheduled_at_date":"E.S","scheduled_at_time":"<RFC 3339>"},…]`, the
//! leader node's entries of exactly that epoch (any status), sorted by slot, duplicates removed.
//! The key names are Jormungandr's own (`/leaders/logs`), the fields PoolTool reads, and so is the
//! time's rendering (`time::rfc3339_numeric_offset`). The hash is the sha256 of exactly the bytes
//! of that file, and `last_epoch_slots` is the previous epoch's file sent as a *string* (like
//! `send_slots.sh`'s `jq --arg`), so PoolTool can hash what it receives and compare it with last
//! epoch's `this_epoch_hash` byte for byte.

pub mod due;
pub mod gpg;
pub mod keys;
pub mod reference;
pub mod reporter;
pub mod settings;
pub mod wire;

pub use due::{SlotsDecision, SlotsTracker, TipSent, TipTracker};
pub use reporter::{HeaderFuture, Reporter, ReporterStatus, SlotsInput, TipHeaders, TipInput};
pub use settings::{PoolToolSettings, SlotsVerification};
pub use wire::{ExchangeError, ReportError, TipHeader};

#[cfg(test)]
mod fixtures;

//! The lease deadline file (`cluster-lease` beside the restart log): the daemon writes the moment,
//! on the host's monotonic clock, after which it holds nothing (half a lease after its last
//! renewal); the host's fence (`nodekeeper fence`) demotes the host's nodes once it passed.
//!
//! STUB: lands with the fence work.

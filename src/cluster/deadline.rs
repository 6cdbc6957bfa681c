//! The lease deadline file (`cluster-lease` beside the restart log): the daemon writes the moment,
//! on the host's monotonic clock, after which it holds nothing (half a lease after its last
//! renewal); the host's fence (`nodekeeper fence`) demotes the host's nodes once it passed.
//!
//! STUB: lands with the fence work.

use std::path::Path;
use std::time::Duration;

/// The host's monotonic clock now (stub).
pub fn monotonic_now() -> Duration {
    Duration::ZERO
}

/// Writes the deadline (stub).
pub fn write(_path: &Path, _deadline: Option<Duration>) -> std::io::Result<()> {
    Ok(())
}

/// The file beside the restart log (stub).
pub fn path(restart_log: &Path) -> std::path::PathBuf {
    restart_log.with_file_name("cluster-lease")
}

//! The simulated Jormungandr node's data directory (`--data-dir`): created if missing, a
//! `blocks.log` that grows by one record (a few hundred bytes) per block while the node follows the
//! chain, and the corrupt-database marker that the `corrupt-db` fault leaves and every later start
//! refuses, as a database that will not open (status 1, one error line on stderr). A restore that
//! replaces the directory removes the marker with it.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The block file, relative to `--data-dir`.
pub const BLOCKS_LOG: &str = "blocks.log";
/// The corrupt-database marker, relative to `--data-dir`.
pub const CORRUPT_MARKER: &str = "sim-corrupt-db";
/// What a start prints (stderr) when the marker is there.
pub const CORRUPT_DB_MESSAGE: &str =
    "storage error: cannot open the block database (sim-corrupt-db): database corrupted";
/// One record's size in bytes, newline included.
pub const RECORD_BYTES: usize = 256;
/// At most this many records are appended at once (a node far behind catches up over a few
/// calls; the file needs to grow, not to hold every block).
const MAX_RECORDS_PER_CALL: u64 = 64;

/// The database in `dir` will not open: the corrupt-database marker is there.
pub fn is_corrupt(dir: &Path) -> bool {
    dir.join(CORRUPT_MARKER).exists()
}

/// Leaves the corrupt-database marker in `dir`.
pub fn write_corrupt_marker(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(CORRUPT_MARKER), format!("{CORRUPT_DB_MESSAGE}\n"))
}

/// The `corrupt-db` fault, now: the marker left in `dir` (when there is one), the error line,
/// exit status 1.
pub fn corrupt_and_exit(dir: Option<&Path>) -> ! {
    if let Some(dir) = dir
        && let Err(error) = write_corrupt_marker(dir)
    {
        tracing::error!(dir = %dir.display(), %error, "cannot write the corrupt-db marker");
    }
    eprintln!("nodekeeper-sim: {CORRUPT_DB_MESSAGE}");
    std::process::exit(1)
}

/// Appends block records to `blocks.log`.
#[derive(Debug)]
pub struct BlockLog {
    path: PathBuf,
    file: File,
    last: Option<u64>,
}

impl BlockLog {
    /// Opens (creates) `blocks.log` in `dir` for appending.
    pub fn open(dir: &Path) -> std::io::Result<BlockLog> {
        let path = dir.join(BLOCKS_LOG);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(BlockLog {
            path,
            file,
            last: None,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record per height above the last one written, up to `height` (the first call
    /// writes `height` only), with `hash` (hex) in each; one write per call, unbuffered.
    pub fn record(&mut self, height: u64, hash: &str) -> std::io::Result<()> {
        let from = match self.last {
            Some(last) if height <= last => return Ok(()),
            Some(last) => (last + 1).max(height.saturating_sub(MAX_RECORDS_PER_CALL - 1)),
            None => height,
        };
        let mut bytes = Vec::with_capacity(RECORD_BYTES * (height - from + 1) as usize);
        for h in from..=height {
            bytes.extend_from_slice(&record(h, hash));
        }
        self.file.write_all(&bytes)?;
        self.file.flush()?;
        self.last = Some(height);
        Ok(())
    }
}

/// One record: `height hash` and padding to `RECORD_BYTES`, newline-terminated.
fn record(height: u64, hash: &str) -> Vec<u8> {
    let mut line = format!("{height} {hash} ").into_bytes();
    line.resize(RECORD_BYTES - 1, b'.');
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_grows_a_record_per_new_height_and_never_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = BlockLog::open(dir.path()).unwrap();
        let size = || {
            std::fs::metadata(dir.path().join(BLOCKS_LOG))
                .unwrap()
                .len()
        };
        log.record(100, "ab").unwrap();
        assert_eq!(size(), RECORD_BYTES as u64);
        log.record(100, "ab").unwrap();
        log.record(99, "ab").unwrap();
        assert_eq!(size(), RECORD_BYTES as u64);
        log.record(103, "cd").unwrap();
        assert_eq!(size(), 4 * RECORD_BYTES as u64);
        let text = std::fs::read_to_string(log.path()).unwrap();
        let heights: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(heights, ["100", "101", "102", "103"]);
        // A jump far ahead writes a bounded number of records.
        log.record(10_000, "ef").unwrap();
        assert_eq!(size(), (4 + MAX_RECORDS_PER_CALL) * RECORD_BYTES as u64);
        // A second process appends to the same file.
        let mut again = BlockLog::open(dir.path()).unwrap();
        again.record(10_001, "ef").unwrap();
        assert_eq!(size(), (5 + MAX_RECORDS_PER_CALL) * RECORD_BYTES as u64);
    }

    #[test]
    fn the_marker_makes_the_database_refuse_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert!(!is_corrupt(&data));
        write_corrupt_marker(&data).unwrap();
        assert!(is_corrupt(&data));
        std::fs::remove_file(data.join(CORRUPT_MARKER)).unwrap();
        assert!(!is_corrupt(&data));
    }
}

//! The per-epoch key files that hash and gpg modes commit with: `leader_slots_{epoch}` (the slot
//! list as committed), `hash_{epoch}` and `passphrase_{epoch}`, in a directory of mode 0700. Each
//! file is created once (`files::create_new`, mode 0600) and then only read, so a restarted daemon
//! commits to the same list, hash and passphrase, and the next epoch reveals exactly what was
//! committed. Blocking file I/O: the reporter runs it on a blocking thread.

use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::settings::SlotsVerification;
use super::wire::{ReportError, count_slots, sha256_hex};
use crate::describe;
use crate::files::{self, CreateOutcome};

/// The mode of a key file: it holds a secret, or the commitment to one.
pub const KEY_FILE_MODE: u32 = 0o600;

/// The mode of the key directory.
pub const KEY_DIR_MODE: u32 = 0o700;

/// A per-epoch key file: `{dir}/{kind}_{epoch}` (`leader_slots`, `hash`, `passphrase`).
pub fn key_file(dir: &Path, kind: &str, epoch: u64) -> PathBuf {
    dir.join(format!("{kind}_{epoch}"))
}

/// The content of a key file, trailing whitespace removed; `None` when it does not exist.
fn read_key(path: &Path) -> io::Result<Option<String>> {
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|mut file| file.read_to_string(&mut text));
    match read {
        Ok(_) => Ok(Some(text.trim_end().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at_path(path, e)),
    }
}

/// `error`, its message prefixed with `path`.
fn at_path(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// The content of `path` if it exists; otherwise `make()`'s, created atomically with mode 0600
/// (never seen half-written, never rewritten: when another writer created it first, its content is
/// the one kept).
fn key_once(path: &Path, make: impl FnOnce() -> io::Result<String>) -> Result<String, String> {
    if let Some(text) = read_key(path).map_err(|e| e.to_string())? {
        return Ok(text);
    }
    let text = make().map_err(|e| at_path(path, e).to_string())?;
    match files::create_new(path, text.as_bytes(), KEY_FILE_MODE) {
        Ok(CreateOutcome::Created) => Ok(text),
        Ok(CreateOutcome::Existed) => read_key(path)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{}: vanished after it was created", path.display())),
        Err(e) => Err(describe::chain(&e)),
    }
}

/// Creates the key directory (and its parents) with mode 0700 when missing.
fn key_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(KEY_DIR_MODE)
        .create(dir)
        .map_err(|e| at_path(dir, e))
}

/// A fresh passphrase: 32 random bytes, base64 (like `openssl rand -base64 32`).
fn new_passphrase() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The commitment's inputs read or created from the key files.
#[derive(Debug)]
pub enum Prepared {
    /// No verification: nothing to commit.
    None,
    /// Hash mode.
    Hash {
        /// sha256 hex of this epoch's list (from `hash_{epoch}`).
        this_epoch_hash: String,
        /// The previous epoch's list (`leader_slots_{epoch - 1}`), `""` when unknown.
        last_epoch_slots: String,
    },
    /// GPG mode.
    Gpg {
        /// This epoch's list as committed, to encrypt.
        slots: String,
        /// This epoch's passphrase (`passphrase_{epoch}`).
        passphrase: String,
        /// The previous epoch's passphrase, `""` when unknown.
        previous_epoch_key: String,
    },
}

/// Reads or creates `epoch`'s key files for `mode` (blocking file I/O). Returns the number of
/// assigned slots (of the committed list) and the commitment's inputs. In hash and gpg modes the
/// list is kept in `leader_slots_{epoch}` and reused, so that a restarted daemon commits to the
/// same list; the hash and passphrase files likewise.
pub fn prepare(
    mode: SlotsVerification,
    dir: &Path,
    epoch: u64,
    fresh: String,
) -> Result<(usize, Prepared), ReportError> {
    let io_failed = |e: io::Error| ReportError::KeyFiles(e.to_string());
    let failed = ReportError::KeyFiles;
    if mode == SlotsVerification::None {
        let count = count_slots(&fresh).unwrap_or_default();
        return Ok((count, Prepared::None));
    }
    key_dir(dir).map_err(io_failed)?;
    let slots_path = key_file(dir, "leader_slots", epoch);
    let slots = key_once(&slots_path, || Ok(fresh)).map_err(failed)?;
    let count = count_slots(&slots).ok_or_else(|| {
        ReportError::KeyFiles(format!("{} is not a JSON list", slots_path.display()))
    })?;
    let previous = epoch.checked_sub(1);
    let previous_key = |kind: &str| -> Result<String, ReportError> {
        match previous {
            Some(previous) => Ok(read_key(&key_file(dir, kind, previous))
                .map_err(io_failed)?
                .unwrap_or_default()),
            None => Ok(String::new()),
        }
    };
    let prepared = match mode {
        SlotsVerification::None => Prepared::None,
        SlotsVerification::Hash => Prepared::Hash {
            this_epoch_hash: key_once(&key_file(dir, "hash", epoch), || {
                Ok(sha256_hex(slots.as_bytes()))
            })
            .map_err(failed)?,
            last_epoch_slots: previous_key("leader_slots")?,
        },
        SlotsVerification::Gpg => Prepared::Gpg {
            passphrase: key_once(&key_file(dir, "passphrase", epoch), new_passphrase)
                .map_err(failed)?,
            previous_epoch_key: previous_key("passphrase")?,
            slots,
        },
    };
    Ok((count, prepared))
}

#[cfg(test)]
mod tests;

//! The durable outbox: the mails not delivered yet, in a JSON file (`alert-outbox.json` beside
//! the restart log unless `email.outbox` says otherwise), mode 0600, replaced atomically through
//! `files` whenever the queue changes, so a mail raised before a stop, a crash or a failed
//! shutdown is delivered by the next run, with its original Date. A file that cannot be read is
//! moved aside to `NAME.corrupt` (with a warning) and the outbox starts empty.
//!
//! Must not: run on the worker's task (`load` and `save` are blocking; the worker calls them
//! through `spawn_blocking`); drop a mail it read.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::mailer::{Mail, Meta};
use super::queue::{Class, Queued};
use crate::files::{self, WriteFailure};

/// The outbox file's name beside the restart log.
pub const FILE_NAME: &str = "alert-outbox.json";

/// The file's mode: the mails may name hosts and errors.
const MODE: u32 = 0o600;

const VERSION: u32 = 1;

/// The outbox at `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbox {
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    version: u32,
    mails: Vec<StoredMail>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredMail {
    label: String,
    class: Class,
    subject: String,
    body: String,
    /// Seconds since the Unix epoch of the Date header (when the alert was raised).
    date: u64,
    /// And its nanoseconds.
    date_nanos: u32,
    /// What the alert reports (channels); absent in older files and in email's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta: Option<Meta>,
}

/// The default outbox beside `restart_log`.
pub fn default_path(restart_log: &Path) -> PathBuf {
    match restart_log.parent() {
        Some(dir) => dir.join(FILE_NAME),
        None => PathBuf::from(FILE_NAME),
    }
}

/// The file's bytes for `mails`, oldest first.
pub fn encode<'a>(mails: impl Iterator<Item = &'a Queued>) -> Vec<u8> {
    let stored = Stored {
        version: VERSION,
        mails: mails
            .map(|queued| {
                let since = queued
                    .mail
                    .date
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                StoredMail {
                    label: queued.label.clone(),
                    class: queued.class,
                    subject: queued.mail.subject.clone(),
                    body: queued.mail.body.clone(),
                    date: since.as_secs(),
                    date_nanos: since.subsec_nanos(),
                    meta: queued.mail.meta.clone(),
                }
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&stored).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The mails of the file's `bytes`, or why they cannot be read.
pub fn decode(bytes: &[u8]) -> Result<Vec<Queued>, String> {
    let stored: Stored = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if stored.version != VERSION {
        return Err(format!("version {}, expected {VERSION}", stored.version));
    }
    stored
        .mails
        .into_iter()
        .map(|stored| {
            let date = UNIX_EPOCH
                .checked_add(Duration::new(stored.date, 0))
                .and_then(|date| date.checked_add(Duration::from_nanos(stored.date_nanos.into())))
                .ok_or_else(|| format!("a date out of range: {}", stored.date))?;
            Ok(Queued {
                label: stored.label,
                class: stored.class,
                mail: Mail {
                    subject: stored.subject,
                    body: stored.body,
                    date,
                    meta: stored.meta,
                },
            })
        })
        .collect()
}

impl Outbox {
    /// Opens the outbox at `path` and returns the mails it holds (none when it does not exist).
    /// A file that cannot be read or understood is moved aside to `NAME.corrupt`, with a
    /// warning; the outbox then starts empty. Blocking.
    pub fn load(path: &Path) -> (Outbox, Vec<Queued>) {
        let outbox = Outbox {
            path: path.to_path_buf(),
        };
        let problem = match std::fs::read(path) {
            Ok(bytes) => match decode(&bytes) {
                Ok(mails) => return (outbox, mails),
                Err(e) => e,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (outbox, Vec::new()),
            Err(e) => e.to_string(),
        };
        let aside = outbox.corrupt_path();
        match std::fs::rename(path, &aside) {
            Ok(()) => tracing::warn!(
                "alerts: cannot read the outbox {} ({problem}); moved aside to {}, starting empty",
                path.display(),
                aside.display()
            ),
            Err(e) => tracing::warn!(
                "alerts: cannot read the outbox {} ({problem}), nor move it aside to {} ({e}); \
                 starting empty",
                path.display(),
                aside.display()
            ),
        }
        (outbox, Vec::new())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where an unreadable file is moved: `NAME.corrupt`.
    pub fn corrupt_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_os_string();
        name.push(".corrupt");
        PathBuf::from(name)
    }

    /// Writes `mails` (the whole queue), atomically, mode 0600, unless the file holds them
    /// already. Blocking.
    pub fn save(&self, mails: &[u8]) -> Result<(), WriteFailure> {
        files::write_if_changed(&self.path, mails, MODE).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::SystemTime;

    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn queued(label: &str, class: Class, date: SystemTime) -> Queued {
        Queued {
            label: label.into(),
            class,
            mail: Mail {
                subject: format!("[nodekeeper] {label}"),
                body: "line one\nline \"two\" é\n".into(),
                date,
                meta: None,
            },
        }
    }

    #[test]
    fn mails_survive_a_round_trip_with_their_date_and_class() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = default_path(&dir.path().join("restarts.csv"));
        assert_eq!(path, dir.path().join("alert-outbox.json"));
        let (outbox, mails) = Outbox::load(&path);
        assert!(mails.is_empty());
        let mails = vec![
            queued(
                "node_held (node1)",
                Class::StateChange,
                at(1_795_311_547, 123),
            ),
            queued(
                "restart_crashed (node2)",
                Class::Ordinary,
                at(1_795_311_548, 0),
            ),
        ];
        let mut mails = mails;
        // A channel's alert keeps what it reports (the webhook's JSON, ntfy's headers).
        mails[1].mail.meta = Some(Meta {
            event: "node_restarted".into(),
            node: Some("node2".into()),
            reason: Some("crashed".into()),
            severity: crate::alert::Severity::Warning,
        });
        outbox.save(&encode(mails.iter())).expect("saved");
        let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (_, loaded) = Outbox::load(&path);
        assert_eq!(loaded, mails);
    }

    #[test]
    fn an_unreadable_outbox_is_moved_aside_and_the_outbox_starts_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alert-outbox.json");
        std::fs::write(&path, "{\"version\": 1, \"mails\": [tor").expect("write");
        let (outbox, mails) = Outbox::load(&path);
        assert!(mails.is_empty());
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_to_string(outbox.corrupt_path()).expect("kept aside"),
            "{\"version\": 1, \"mails\": [tor"
        );
        assert_eq!(
            outbox.corrupt_path(),
            dir.path().join("alert-outbox.json.corrupt")
        );
    }

    #[test]
    fn another_version_is_not_read() {
        assert!(decode(b"{\"version\": 2, \"mails\": []}").is_err());
        assert_eq!(decode(b"{\"version\": 1, \"mails\": []}"), Ok(Vec::new()));
    }
}

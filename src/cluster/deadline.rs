//! The lease deadline file (`cluster-lease` beside the restart log): the daemon writes the moment,
//! on the host's monotonic clock, after which it holds nothing (half a lease after its last
//! renewal); the host's fence (`nodekeeper fence`) demotes the host's nodes once it passed. Also
//! the fence's pure rules: what a reading of the file means now ([`verdict`]) and when to ask the
//! nodes ([`Pace`]).
//!
//! The file is one line, `pid=<daemon pid> deadline_ns=<CLOCK_MONOTONIC ns>` or `pid=<pid> none`
//! (no lease: hold nothing). It only matters while the host is up (the clock restarts with it),
//! so it is replaced atomically but never synced.

use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file's name, in the restart log's directory.
pub const FILE_NAME: &str = "cluster-lease";

/// How often the fence asks the nodes while the deadline stays passed (a node that boots with
/// the key is demoted again).
pub const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// Where the deadline file is: [`FILE_NAME`] in `restart_log`'s directory.
pub fn path(restart_log: &Path) -> PathBuf {
    restart_log
        .parent()
        .unwrap_or(Path::new(""))
        .join(FILE_NAME)
}

/// The host's `CLOCK_MONOTONIC` now, as a duration since its origin (the host's boot): the one
/// clock the daemon and the fence share.
pub fn monotonic_now() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// What the file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// The daemon that wrote it.
    pub pid: u32,
    /// The monotonic reading after which it holds nothing; `None`: it has no lease.
    pub until: Option<Duration>,
}

/// The file's line for `deadline` (with its newline).
pub fn format(deadline: &Deadline) -> String {
    match deadline.until {
        Some(until) => format!("pid={} deadline_ns={}\n", deadline.pid, until.as_nanos()),
        None => format!("pid={} none\n", deadline.pid),
    }
}

/// Parses the file's text: one line, surrounding whitespace ignored.
pub fn parse(text: &str) -> Result<Deadline, String> {
    let line = text.trim();
    if line.is_empty() {
        return Err("empty".to_string());
    }
    if line.lines().count() > 1 {
        return Err("more than one line".to_string());
    }
    let mut words = line.split_ascii_whitespace();
    let pid = match words.next().and_then(|word| word.strip_prefix("pid=")) {
        Some(pid) => pid
            .parse::<u32>()
            .map_err(|_| format!("pid {:?} is not a process id", excerpt(pid)))?,
        None => return Err("does not start with pid=".to_string()),
    };
    let until = match words.next() {
        Some("none") => None,
        Some(word) => match word.strip_prefix("deadline_ns=") {
            Some(ns) => {
                let ns = ns
                    .parse::<u64>()
                    .map_err(|_| format!("deadline_ns {:?} is not a number", excerpt(ns)))?;
                Some(Duration::from_nanos(ns))
            }
            None => {
                return Err(format!(
                    "{:?} is neither deadline_ns=N nor none",
                    excerpt(word)
                ));
            }
        },
        None => return Err("no deadline_ns=N or none after the pid".to_string()),
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected {:?} at the end", excerpt(extra)));
    }
    Ok(Deadline { pid, until })
}

fn excerpt(word: &str) -> String {
    word.chars().take(32).collect()
}

/// Writes this process's deadline (a [`monotonic_now`] reading; `None`: no lease, hold nothing)
/// into `path`: a temporary file beside it, then a rename, so a reader sees the old line or the
/// new one. Not synced: the file only matters while the host is up.
pub fn write(path: &Path, deadline: Option<Duration>) -> io::Result<()> {
    let line = format(&Deadline {
        pid: std::process::id(),
        until: deadline,
    });
    let temporary = path.with_file_name(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temporary)?;
        file.write_all(line.as_bytes())?;
        drop(file);
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Why the deadline file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// It exists but cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Its content is not a deadline line.
    #[error("{}: line 1: {problem}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// Reads the deadline file; `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<Deadline>, ReadError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ReadError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse(&text)
        .map(Some)
        .map_err(|problem| ReadError::Malformed {
            path: path.to_path_buf(),
            problem,
        })
}

/// What a reading of the file means at `now` for the host's nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The local nodekeeper's lease is surely alive: its nodes may hold the key for `left` more.
    Fresh {
        /// Until the deadline.
        left: Duration,
    },
    /// No node of the host may hold the key.
    Demote {
        /// Why, for the log.
        why: String,
    },
}

/// The verdict of `reading` (what [`read`] returned) at the monotonic reading `now`: fresh only
/// while a deadline is written and not yet reached; a missing or unreadable file, `none`, or a
/// deadline reached all demote.
pub fn verdict(reading: &Result<Option<Deadline>, ReadError>, now: Duration) -> Verdict {
    match reading {
        Ok(Some(Deadline {
            until: Some(until), ..
        })) if now < *until => Verdict::Fresh { left: *until - now },
        Ok(Some(Deadline {
            until: Some(until), ..
        })) => Verdict::Demote {
            why: format!(
                "the local nodekeeper's lease deadline passed {} ms ago",
                (now - *until).as_millis()
            ),
        },
        Ok(Some(Deadline { pid, until: None })) => Verdict::Demote {
            why: format!("no nodekeeper lease (pid {pid} holds none)"),
        },
        Ok(None) => Verdict::Demote {
            why: "no nodekeeper lease (no deadline file)".to_string(),
        },
        Err(e) => Verdict::Demote {
            why: format!("no nodekeeper lease ({e})"),
        },
    }
}

/// What the fence does after one reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing: the lease is fresh, or the nodes were asked less than [`RECHECK_EVERY`] ago.
    Wait,
    /// The deadline is fresh again after an episode (or at the first reading): say so once.
    Fresh,
    /// Ask every node and demote any that holds; `first` at the start of an episode.
    Sweep {
        /// The first sweep of this episode.
        first: bool,
    },
}

/// The fence's pace: a sweep at once when the deadline passes, then one every
/// [`RECHECK_EVERY`] while it stays passed; nothing while it is fresh.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pace {
    /// `Some(last sweep)` during an episode (the deadline passed).
    episode: Option<Duration>,
    /// A verdict was seen already.
    started: bool,
}

impl Pace {
    /// The step after `verdict` at the monotonic reading `now`.
    pub fn step(&mut self, verdict: &Verdict, now: Duration) -> Step {
        let first_reading = !self.started;
        self.started = true;
        match (verdict, self.episode) {
            (Verdict::Fresh { .. }, Some(_)) => {
                self.episode = None;
                Step::Fresh
            }
            (Verdict::Fresh { .. }, None) if first_reading => Step::Fresh,
            (Verdict::Fresh { .. }, None) => Step::Wait,
            (Verdict::Demote { .. }, None) => {
                self.episode = Some(now);
                Step::Sweep { first: true }
            }
            (Verdict::Demote { .. }, Some(last)) if now.saturating_sub(last) >= RECHECK_EVERY => {
                self.episode = Some(now);
                Step::Sweep { first: false }
            }
            (Verdict::Demote { .. }, Some(_)) => Step::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_deadline_and_none_round_trip() {
        for deadline in [
            Deadline {
                pid: 4321,
                until: Some(Duration::new(12_345, 678_901_234)),
            },
            Deadline {
                pid: 1,
                until: None,
            },
        ] {
            assert_eq!(parse(&format(&deadline)), Ok(deadline));
        }
        assert_eq!(
            format(&Deadline {
                pid: 7,
                until: Some(Duration::from_nanos(1_500_000_000))
            }),
            "pid=7 deadline_ns=1500000000\n"
        );
        assert_eq!(
            parse("pid=7 none"),
            Ok(Deadline {
                pid: 7,
                until: None
            })
        );
    }

    #[test]
    fn garbage_is_refused_with_what_is_wrong() {
        for (text, problem) in [
            ("", "empty"),
            ("\n", "empty"),
            ("deadline_ns=5", "does not start with pid="),
            ("pid=x deadline_ns=5", "pid \"x\" is not a process id"),
            ("pid=-1 none", "pid \"-1\" is not a process id"),
            ("pid=3", "no deadline_ns=N or none after the pid"),
            ("pid=3 deadline_ns=", "deadline_ns \"\" is not a number"),
            (
                "pid=3 deadline_ns=1e9",
                "deadline_ns \"1e9\" is not a number",
            ),
            ("pid=3 later", "\"later\" is neither deadline_ns=N nor none"),
            ("pid=3 none extra", "unexpected \"extra\" at the end"),
            ("pid=3 none\npid=4 none", "more than one line"),
        ] {
            assert_eq!(parse(text), Err(problem.to_string()), "{text:?}");
        }
    }

    #[test]
    fn write_then_read_gives_this_process_and_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(&dir.path().join("restarts.csv"));
        assert_eq!(file, dir.path().join("cluster-lease"));
        assert!(read(&file).unwrap().is_none());
        write(&file, Some(secs(90))).unwrap();
        assert_eq!(
            read(&file).unwrap(),
            Some(Deadline {
                pid: std::process::id(),
                until: Some(secs(90))
            })
        );
        write(&file, None).unwrap();
        assert_eq!(read(&file).unwrap().unwrap().until, None);
        std::fs::write(&file, "garbage").unwrap();
        let error = read(&file).unwrap_err().to_string();
        assert!(error.contains("cluster-lease: line 1: "), "{error}");
        // Only the file itself is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_now();
        let b = monotonic_now();
        assert!(b >= a && a > Duration::ZERO);
    }

    #[test]
    fn only_a_deadline_not_yet_reached_is_fresh() {
        let at = |until: Option<u64>| -> Result<Option<Deadline>, ReadError> {
            Ok(Some(Deadline {
                pid: 9,
                until: until.map(secs),
            }))
        };
        assert_eq!(
            verdict(&at(Some(100)), secs(99)),
            Verdict::Fresh { left: secs(1) }
        );
        assert_eq!(
            verdict(&at(Some(100)), Duration::from_millis(100_250)),
            Verdict::Demote {
                why: "the local nodekeeper's lease deadline passed 250 ms ago".into()
            }
        );
        assert!(matches!(
            verdict(&at(Some(100)), secs(100)),
            Verdict::Demote { .. }
        ));
        let Verdict::Demote { why } = verdict(&at(None), secs(1)) else {
            panic!("none is fresh")
        };
        assert!(why.starts_with("no nodekeeper lease"), "{why}");
        let Verdict::Demote { why } = verdict(&Ok(None), secs(1)) else {
            panic!("a missing file is fresh")
        };
        assert!(why.starts_with("no nodekeeper lease"), "{why}");
        let unreadable = Err(ReadError::Malformed {
            path: PathBuf::from("/x/cluster-lease"),
            problem: "empty".into(),
        });
        let Verdict::Demote { why } = verdict(&unreadable, secs(1)) else {
            panic!("garbage is fresh")
        };
        assert!(why.contains("/x/cluster-lease: line 1: empty"), "{why}");
    }

    #[test]
    fn the_fence_sweeps_at_once_then_every_second_and_idles_while_fresh() {
        let fresh = Verdict::Fresh { left: secs(3) };
        let passed = Verdict::Demote { why: "x".into() };
        let mut pace = Pace::default();
        let ms = Duration::from_millis;
        assert_eq!(pace.step(&fresh, ms(0)), Step::Fresh);
        assert_eq!(pace.step(&fresh, ms(250)), Step::Wait);
        assert_eq!(pace.step(&passed, ms(500)), Step::Sweep { first: true });
        assert_eq!(pace.step(&passed, ms(750)), Step::Wait);
        assert_eq!(pace.step(&passed, ms(1250)), Step::Wait);
        assert_eq!(pace.step(&passed, ms(1500)), Step::Sweep { first: false });
        assert_eq!(pace.step(&fresh, ms(1750)), Step::Fresh);
        assert_eq!(pace.step(&fresh, ms(2000)), Step::Wait);
        assert_eq!(pace.step(&passed, ms(2250)), Step::Sweep { first: true });
        // A fence started without a lease sweeps at once.
        assert_eq!(
            Pace::default().step(&passed, ms(0)),
            Step::Sweep { first: true }
        );
    }
}

//! The daemon's side of the event listener: a unix stream socket (mode 0600) on which each
//! `nodekeeper listen` delivers supervisord's process state events and exit hints, one JSON line
//! each. An event line is answered `ok SERIAL` once the event is in the inbox's bounded queue,
//! which is what lets the listener answer supervisord OK; a hint is not answered. The daemon
//! takes [`Notice`]s with [`Inbox::next`] and tells lost events by [`SerialTracker`].
//!
//! It decides nothing: an event only tells the daemon which program to observe now.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::supervisor::ProcessState;

/// The socket's file name, in the restart log's directory.
pub const SOCKET_NAME: &str = "nodekeeper-events.sock";

/// How many notices wait in the queue at most; an event line is acknowledged only once queued.
pub const QUEUE: usize = 256;

/// The longest line read from a listener.
const MAX_LINE: u64 = 64 * 1024;

/// Where the daemon's inbox is: [`SOCKET_NAME`] in `restart_log`'s directory.
pub fn socket_path(restart_log: &Path) -> PathBuf {
    restart_log
        .parent()
        .unwrap_or(Path::new(""))
        .join(SOCKET_NAME)
}

/// One `PROCESS_STATE_*` event of one supervisord, as its listener forwarded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgramEvent {
    /// The supervisord (a key of the configuration's supervisors) whose listener sent it.
    pub supervisor: String,
    /// supervisord's global event serial (shared by every listener pool).
    pub serial: u64,
    /// The serial within the listener's pool: consecutive unless events were lost.
    pub pool_serial: u64,
    /// `processname`.
    pub program: String,
    /// `groupname`.
    pub group: String,
    /// The state it left.
    pub from_state: ProcessState,
    /// The state it entered.
    pub state: ProcessState,
    /// EXITED only: whether the exit code was one of the program's `exitcodes`.
    pub expected: Option<bool>,
    /// The process id (RUNNING, STOPPING, STOPPED, EXITED).
    pub pid: Option<u32>,
    /// Start attempts so far (STARTING, BACKOFF).
    pub tries: Option<u32>,
}

/// What the inbox delivers; also the line a listener writes (JSON, tagged by `kind`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// A program changed state (acknowledged to the listener).
    Event(ProgramEvent),
    /// A sibling process of the listener (a program of `supervisor`, or another listener) has
    /// exited, seen through its pidfd, before supervisord reaped it: ask supervisord now.
    /// Unacknowledged; it may name a pid the daemon does not know.
    Exited {
        /// The supervisord whose listener saw it.
        supervisor: String,
        /// The process id that exited.
        pid: u32,
    },
}

/// Why the inbox could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// Another process (another daemon) listens on the socket.
    #[error("{} is in use by another process (is another daemon running?)", path.display())]
    InUse {
        /// The socket.
        path: PathBuf,
    },
    /// The path exists and is not a socket: it is not removed.
    #[error("{} exists and is not a socket", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Binding, setting the mode or renaming failed.
    #[error("cannot bind the event socket {}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The daemon's event inbox: a bound socket and the tasks serving its connections. Dropping it
/// stops the tasks and removes the socket (when the file is still its own).
#[derive(Debug)]
pub struct Inbox {
    path: PathBuf,
    /// The socket file's (device, inode), to remove only our own.
    identity: (u64, u64),
    receiver: mpsc::Receiver<Notice>,
    /// Kept so that the queue never closes: [`Inbox::next`] never ends.
    _sender: mpsc::Sender<Notice>,
    accept: JoinHandle<()>,
}

impl Inbox {
    /// Binds the socket at `path` with mode 0600 (bound under a temporary name, then renamed, so
    /// it is never reachable with another mode). A socket nobody listens on is replaced; a live
    /// one is [`InboxError::InUse`]; any other file is [`InboxError::NotASocket`].
    pub async fn bind(path: &Path) -> Result<Inbox, InboxError> {
        let io_error = |source| InboxError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path).await {
                Ok(_) => {
                    return Err(InboxError::InUse {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(io_error(e)),
            },
            Ok(_) => {
                return Err(InboxError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e)),
        }
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        let listener = UnixListener::bind(&temporary).map_err(io_error)?;
        let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&temporary, path))
            .and_then(|()| std::fs::symlink_metadata(path));
        let meta = match placed {
            Ok(meta) => meta,
            Err(e) => {
                let _ = std::fs::remove_file(&temporary);
                return Err(io_error(e));
            }
        };
        let (sender, receiver) = mpsc::channel(QUEUE);
        let accept = tokio::spawn(accept_loop(listener, sender.clone()));
        Ok(Inbox {
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            receiver,
            _sender: sender,
            accept,
        })
    }

    /// The next notice, in arrival order. Cancel-safe (a notice not returned stays queued);
    /// never ends: without listeners it waits forever.
    pub async fn next(&mut self) -> Notice {
        match self.receiver.recv().await {
            Some(notice) => notice,
            // Unreachable: the inbox holds a sender.
            None => std::future::pending().await,
        }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection's task.
        self.accept.abort();
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.identity
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn accept_loop(listener: UnixListener, sender: mpsc::Sender<Notice>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, sender.clone()));
                }
                Err(e) => {
                    // EMFILE and the like: wait rather than spin.
                    tracing::warn!("event socket: cannot accept a listener's connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads one listener's lines: an event is acknowledged (`ok SERIAL`) once queued, waiting for
/// room; a hint is queued when there is room, else dropped. A line that does not read ends the
/// connection.
async fn serve_connection(stream: UnixStream, sender: mpsc::Sender<Notice>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("event socket: a listener's connection failed: {e}");
                return;
            }
        }
        let notice: Notice = match serde_json::from_slice(&line) {
            Ok(notice) => notice,
            Err(e) => {
                tracing::warn!(
                    "event socket: a line that is not an event ({e}): {}",
                    crate::describe::excerpt(&String::from_utf8_lossy(&line), 80)
                );
                return;
            }
        };
        match notice {
            Notice::Event(event) => {
                let serial = event.serial;
                if sender.send(Notice::Event(event)).await.is_err() {
                    return;
                }
                let ack = format!("ok {serial}\n");
                if writer.write_all(ack.as_bytes()).await.is_err() {
                    return;
                }
            }
            hint @ Notice::Exited { .. } => {
                let _ = sender.try_send(hint);
            }
        }
    }
}

/// Whether events were lost before the one just seen, judged by the listener pool's serial
/// (the global serial also counts other pools' events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// The first event seen from this supervisord: what came before is unknown.
    First,
    /// The pool serial following the previous one.
    Next,
    /// The previous pool serial again: supervisord resent an event its listener did not answer
    /// (the listener was restarted while it had it).
    Repeat,
    /// `missed` pool serials were skipped: events lost (a buffer overflow, or a listener that
    /// could not reach the daemon).
    Gap {
        /// How many events were skipped.
        missed: u64,
    },
    /// The pool serial went back: supervisord was restarted (or the pool recreated).
    Restarted,
}

impl Continuity {
    /// Whether the daemon may have missed events before this one and should observe everything
    /// ([`Continuity::First`], [`Continuity::Gap`] and [`Continuity::Restarted`]).
    pub fn missed_some(&self) -> bool {
        matches!(
            self,
            Continuity::First | Continuity::Gap { .. } | Continuity::Restarted
        )
    }
}

/// The last pool serial seen per supervisord.
#[derive(Debug, Clone, Default)]
pub struct SerialTracker {
    last: HashMap<String, u64>,
}

impl SerialTracker {
    /// A tracker that has seen nothing.
    pub fn new() -> SerialTracker {
        SerialTracker::default()
    }

    /// Notes `event` and says how it follows the previous one of its supervisord.
    pub fn note(&mut self, event: &ProgramEvent) -> Continuity {
        let serial = event.pool_serial;
        match self.last.insert(event.supervisor.clone(), serial) {
            None => Continuity::First,
            Some(last) if serial == last.wrapping_add(1) => Continuity::Next,
            Some(last) if serial == last => Continuity::Repeat,
            Some(last) if serial > last => Continuity::Gap {
                missed: serial - last - 1,
            },
            Some(_) => Continuity::Restarted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn event(supervisor: &str, serial: u64, pool_serial: u64) -> ProgramEvent {
        ProgramEvent {
            supervisor: supervisor.to_string(),
            serial,
            pool_serial,
            program: "node1".into(),
            group: "node1".into(),
            from_state: ProcessState::Running,
            state: ProcessState::Exited,
            expected: Some(false),
            pid: Some(42),
            tries: None,
        }
    }

    #[test]
    fn the_socket_is_beside_the_restart_log() {
        assert_eq!(
            socket_path(Path::new("/var/lib/nk/restarts.csv")),
            Path::new("/var/lib/nk/nodekeeper-events.sock")
        );
        assert_eq!(
            socket_path(Path::new("restarts.csv")),
            Path::new("nodekeeper-events.sock")
        );
    }

    #[test]
    fn serials_per_supervisor() {
        let mut tracker = SerialTracker::new();
        let cases = [
            ("a", 10, 5, Continuity::First),
            ("a", 12, 6, Continuity::Next),
            ("b", 13, 0, Continuity::First),
            ("a", 20, 6, Continuity::Repeat),
            ("a", 30, 9, Continuity::Gap { missed: 2 }),
            ("b", 31, 1, Continuity::Next),
            ("a", 2, 0, Continuity::Restarted),
            ("a", 3, 1, Continuity::Next),
        ];
        for (supervisor, serial, pool_serial, expected) in cases {
            let continuity = tracker.note(&event(supervisor, serial, pool_serial));
            assert_eq!(continuity, expected, "{supervisor} {pool_serial}");
        }
        assert!(Continuity::First.missed_some());
        assert!(Continuity::Gap { missed: 1 }.missed_some());
        assert!(Continuity::Restarted.missed_some());
        assert!(!Continuity::Next.missed_some());
        assert!(!Continuity::Repeat.missed_some());
    }

    #[test]
    fn a_notice_is_one_json_line() {
        let line = serde_json::to_string(&Notice::Event(event("default", 21, 10))).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.contains(r#""kind":"event""#), "{line}");
        assert!(line.contains(r#""state":"EXITED""#), "{line}");
        let back: Notice = serde_json::from_str(&line).unwrap();
        assert_eq!(back, Notice::Event(event("default", 21, 10)));
        let hint: Notice =
            serde_json::from_str(r#"{"kind":"exited","supervisor":"x","pid":7}"#).unwrap();
        assert_eq!(
            hint,
            Notice::Exited {
                supervisor: "x".into(),
                pid: 7
            }
        );
    }

    async fn exchange(path: &Path, line: &str) -> String {
        let stream = UnixStream::connect(path).await.unwrap();
        let (reader, mut writer) = stream.into_split();
        writer.write_all(line.as_bytes()).await.unwrap();
        let mut answer = String::new();
        BufReader::new(reader).read_line(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn an_event_is_acknowledged_once_queued_and_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        let mut inbox = Inbox::bind(&path).await.unwrap();
        assert_eq!(inbox.path(), path);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut line = serde_json::to_string(&Notice::Event(event("default", 21, 10))).unwrap();
        line.push('\n');
        assert_eq!(exchange(&path, &line).await, "ok 21\n");
        assert_eq!(inbox.next().await, Notice::Event(event("default", 21, 10)));
    }

    #[tokio::test]
    async fn a_full_queue_holds_the_acknowledgement_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        let mut inbox = Inbox::bind(&path).await.unwrap();
        let stream = UnixStream::connect(&path).await.unwrap();
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader);
        for serial in 0..=QUEUE as u64 {
            let mut line =
                serde_json::to_string(&Notice::Event(event("d", serial, serial))).unwrap();
            line.push('\n');
            writer.write_all(line.as_bytes()).await.unwrap();
        }
        let mut answer = String::new();
        for serial in 0..QUEUE as u64 {
            answer.clear();
            reader.read_line(&mut answer).await.unwrap();
            assert_eq!(answer, format!("ok {serial}\n"));
        }
        // The queue is full: the last event waits, unacknowledged.
        answer.clear();
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            reader.read_line(&mut answer),
        )
        .await;
        assert!(waited.is_err(), "acknowledged before queued: {answer:?}");
        // Taking one makes room: it is queued, then acknowledged.
        assert!(matches!(inbox.next().await, Notice::Event(e) if e.serial == 0));
        reader.read_line(&mut answer).await.unwrap();
        assert_eq!(answer, format!("ok {QUEUE}\n"));
    }

    #[tokio::test]
    async fn binding_replaces_a_dead_socket_and_refuses_a_live_one_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        // A dead socket: bound, then its listener closed without removing the file.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let inbox = Inbox::bind(&path).await.unwrap();
        assert!(matches!(
            Inbox::bind(&path).await,
            Err(InboxError::InUse { .. })
        ));
        drop(inbox);
        assert!(!path.exists(), "the socket is removed on drop");

        // The file is no longer its own (another bound it after): left alone.
        let inbox = Inbox::bind(&path).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        let _other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(inbox);
        assert!(path.exists(), "someone else's socket was removed");

        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            Inbox::bind(&file).await,
            Err(InboxError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
        assert!(matches!(
            Inbox::bind(&dir.path().join("missing/x.sock")).await,
            Err(InboxError::Io { .. })
        ));
    }

    #[tokio::test]
    async fn a_bad_line_ends_only_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        let mut inbox = Inbox::bind(&path).await.unwrap();
        assert_eq!(exchange(&path, "garbage\n").await, "");
        let mut line = serde_json::to_string(&Notice::Exited {
            supervisor: "d".into(),
            pid: 9,
        })
        .unwrap();
        line.push('\n');
        let mut stream = UnixStream::connect(&path).await.unwrap();
        stream.write_all(line.as_bytes()).await.unwrap();
        assert_eq!(
            inbox.next().await,
            Notice::Exited {
                supervisor: "d".into(),
                pid: 9
            }
        );
    }
}

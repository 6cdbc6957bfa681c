//! The listener's connection to the daemon's inbox (`inbox`): events sent and acknowledged
//! within [`ACK_TIMEOUT`], hints sent without waiting. The daemon being away is normal (not
//! started yet, restarting, stopped): an event that cannot be delivered is dropped and counted,
//! logged at most every [`LOG_EVERY`], and the link reconnects by itself. It never blocks longer
//! than [`ACK_TIMEOUT`], so the listener never holds supervisord up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use super::inbox::{Notice, ProgramEvent};

/// How long the daemon has to acknowledge an event before it is dropped.
pub const ACK_TIMEOUT: Duration = Duration::from_millis(200);

/// How long the link leaves the daemon alone after it failed to acknowledge in time.
pub const PAUSE: Duration = Duration::from_secs(1);

/// Dropped events are logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why an event was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// No socket at the path: the daemon is not running.
    NoSocket,
    /// The socket exists but nobody listens: the daemon is gone.
    Refused,
    /// Connected, but no acknowledgement within [`ACK_TIMEOUT`].
    Timeout,
    /// Within [`PAUSE`] after a timeout: not tried.
    Paused,
    /// The connection failed otherwise.
    Failed,
}

impl DropReason {
    fn describe(self) -> &'static str {
        match self {
            DropReason::NoSocket => "no socket",
            DropReason::Refused => "connection refused",
            DropReason::Timeout => "no acknowledgement within 200 ms",
            DropReason::Paused => "not tried for 1 s after a timeout",
            DropReason::Failed => "connection failed",
        }
    }
}

struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// A connection to the inbox at a path, made when needed.
pub struct Link {
    path: PathBuf,
    connection: Option<Connection>,
    paused_until: Option<Instant>,
    n_dropped: u64,
    n_unlogged: u64,
    last_reason: Option<DropReason>,
    last_log: Option<Instant>,
}

impl Link {
    /// A link to the inbox at `path`; nothing is connected yet.
    pub fn new(path: &Path) -> Link {
        Link {
            path: path.to_path_buf(),
            connection: None,
            paused_until: None,
            n_dropped: 0,
            n_unlogged: 0,
            last_reason: None,
            last_log: None,
        }
    }

    /// Events dropped so far.
    pub fn n_dropped(&self) -> u64 {
        self.n_dropped
    }

    /// Sends `event` and waits (at most [`ACK_TIMEOUT`]) until the daemon acknowledged it; true
    /// when it did. Otherwise the event is dropped and counted.
    pub async fn forward(&mut self, event: &ProgramEvent) -> bool {
        let now = Instant::now();
        if self.paused_until.is_some_and(|until| now < until) {
            self.dropped(DropReason::Paused, now);
            return false;
        }
        self.paused_until = None;
        let mut line = match serde_json::to_string(&Notice::Event(event.clone())) {
            Ok(line) => line,
            // Cannot happen (plain data), and is not worth stopping for.
            Err(_) => return false,
        };
        line.push('\n');
        match tokio::time::timeout(ACK_TIMEOUT, self.deliver(&line, event.serial)).await {
            Ok(Ok(())) => {
                if self.last_reason.take().is_some() {
                    tracing::info!(
                        "the daemon at {} acknowledges events again ({} dropped in all)",
                        self.path.display(),
                        self.n_dropped
                    );
                    self.n_unlogged = 0;
                }
                true
            }
            Ok(Err(reason)) => {
                self.dropped(reason, now);
                false
            }
            Err(_) => {
                self.connection = None;
                self.paused_until = Some(Instant::now() + PAUSE);
                self.dropped(DropReason::Timeout, now);
                false
            }
        }
    }

    /// Sends `notice` without waiting for an answer (a hint); false when it could not be sent.
    pub async fn send(&mut self, notice: &Notice) -> bool {
        let Ok(mut line) = serde_json::to_string(notice) else {
            return false;
        };
        line.push('\n');
        let sent = tokio::time::timeout(ACK_TIMEOUT, async {
            for _attempt in 0..2 {
                let connection = match self.connection().await {
                    Ok(connection) => connection,
                    Err(_) => return false,
                };
                if connection.writer.write_all(line.as_bytes()).await.is_ok() {
                    return true;
                }
                self.connection = None;
            }
            false
        })
        .await;
        if !matches!(sent, Ok(true)) {
            self.connection = None;
            return false;
        }
        true
    }

    /// Writes `line` and reads until `ok SERIAL`; a connection that fails is made again once (the
    /// daemon may have restarted since the last event).
    async fn deliver(&mut self, line: &str, serial: u64) -> Result<(), DropReason> {
        let ack = format!("ok {serial}");
        let mut reason = DropReason::Failed;
        for _attempt in 0..2 {
            let connection = self.connection().await?;
            if connection.writer.write_all(line.as_bytes()).await.is_ok() {
                let mut answer = String::new();
                loop {
                    answer.clear();
                    match connection.reader.read_line(&mut answer).await {
                        Ok(0) | Err(_) => break,
                        // Only an answer for an earlier event could differ: skip it.
                        Ok(_) if answer.trim_end() == ack => return Ok(()),
                        Ok(_) => {}
                    }
                }
            }
            self.connection = None;
            reason = DropReason::Failed;
        }
        Err(reason)
    }

    async fn connection(&mut self) -> Result<&mut Connection, DropReason> {
        if self.connection.is_none() {
            let stream = UnixStream::connect(&self.path)
                .await
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => DropReason::NoSocket,
                    std::io::ErrorKind::ConnectionRefused => DropReason::Refused,
                    _ => DropReason::Failed,
                })?;
            let (reader, writer) = stream.into_split();
            self.connection = Some(Connection {
                reader: BufReader::new(reader),
                writer,
            });
        }
        self.connection.as_mut().ok_or(DropReason::Failed)
    }

    fn dropped(&mut self, reason: DropReason, now: Instant) {
        self.n_dropped += 1;
        self.n_unlogged += 1;
        self.last_reason = Some(reason);
        if self
            .last_log
            .is_none_or(|last| now.duration_since(last) >= LOG_EVERY)
        {
            tracing::warn!(
                "the daemon's event socket {} is not answering ({}): {} event(s) dropped since \
                 the last message, {} in all; supervisord is answered OK all the same, and the \
                 daemon's polling catches up",
                self.path.display(),
                reason.describe(),
                self.n_unlogged,
                self.n_dropped
            );
            self.n_unlogged = 0;
            self.last_log = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::inbox::{Inbox, SOCKET_NAME};
    use crate::supervisor::ProcessState;

    fn event(serial: u64) -> ProgramEvent {
        ProgramEvent {
            supervisor: "default".into(),
            serial,
            pool_serial: serial,
            program: "node1".into(),
            group: "node1".into(),
            from_state: ProcessState::Starting,
            state: ProcessState::Running,
            expected: None,
            pid: Some(7),
            tries: None,
        }
    }

    #[tokio::test]
    async fn without_a_daemon_events_are_dropped_at_once_and_flow_when_it_comes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        let mut link = Link::new(&path);
        let started = Instant::now();
        assert!(!link.forward(&event(1)).await);
        assert_eq!(link.last_reason, Some(DropReason::NoSocket));
        // A dead socket: refused.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(!link.forward(&event(2)).await);
        assert_eq!(link.last_reason, Some(DropReason::Refused));
        assert!(
            started.elapsed() < ACK_TIMEOUT,
            "dropping took {:?}",
            started.elapsed()
        );
        assert_eq!(link.n_dropped(), 2);

        let mut inbox = Inbox::bind(&path).await.unwrap();
        assert!(link.forward(&event(3)).await);
        assert!(matches!(inbox.next().await, Notice::Event(e) if e.serial == 3));
        // The daemon restarts: the old connection is dead, the link makes a new one.
        drop(inbox);
        let mut inbox = Inbox::bind(&path).await.unwrap();
        assert!(link.forward(&event(4)).await);
        assert!(matches!(inbox.next().await, Notice::Event(e) if e.serial == 4));
    }

    #[tokio::test]
    async fn a_daemon_that_does_not_acknowledge_is_left_alone_for_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        // Accepts connections (the kernel does) but never reads nor answers.
        let _silent = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut link = Link::new(&path);
        let started = Instant::now();
        assert!(!link.forward(&event(1)).await);
        let took = started.elapsed();
        assert!(took >= ACK_TIMEOUT && took < ACK_TIMEOUT * 3, "{took:?}");
        assert_eq!(link.last_reason, Some(DropReason::Timeout));
        let started = Instant::now();
        assert!(!link.forward(&event(2)).await);
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(link.last_reason, Some(DropReason::Paused));
        assert_eq!(link.n_dropped(), 2);
    }
}

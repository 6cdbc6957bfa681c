//! `nodekeeper listen`'s loop: speaks supervisord's event-listener protocol on the given input
//! and output (stdin and a private copy of stdout) and passes each `PROCESS_STATE_*` event to the
//! daemon's inbox through a [`Link`]. Every event is answered `RESULT 2\nOK`, after the daemon
//! acknowledged it or gave up on (at most 200 ms): never FAIL, never a wait that holds
//! supervisord up. Other events are answered OK and ignored.

use std::path::PathBuf;

use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};

use super::inbox::{Continuity, ProgramEvent, SerialTracker};
use super::link::Link;
use super::protocol::{self, HeaderError, PayloadCounter};
use super::siblings::{Watch, Watcher};
use crate::supervisor::ProcessState;

/// What the loop needs to know.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The supervisord this listener belongs to (a key of the configuration's supervisors).
    pub supervisor: String,
    /// The daemon's inbox.
    pub socket: PathBuf,
    /// Watch sibling processes for exit hints (see `siblings`).
    pub watch_siblings: bool,
}

/// What a loop that ended cleanly (supervisord closed stdin) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events answered.
    pub n_events: u64,
    /// Process state events the daemon acknowledged.
    pub n_delivered: u64,
    /// Process state events dropped (the daemon away or slow).
    pub n_dropped: u64,
}

/// Why the loop stopped: the listener is out of step with supervisord and must be restarted.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A header line that does not read.
    #[error("supervisord sent a bad event header")]
    Header(#[from] HeaderError),
    /// The input ended inside an event.
    #[error("the input ended inside an event")]
    Truncated,
    /// Reading or writing failed.
    #[error("the event protocol's input or output failed")]
    Io(#[from] std::io::Error),
}

/// Runs the protocol until `input` ends (`Ok`) or is out of step (`Err`).
pub async fn serve<R, W>(input: R, output: W, options: ServeOptions) -> Result<Summary, ServeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = BufReader::new(input);
    let mut output = output;
    let mut link = Link::new(&options.socket);
    let watcher = options
        .watch_siblings
        .then(|| Watcher::spawn(&options.supervisor, &options.socket));
    let mut serials = SerialTracker::new();
    let mut summary = Summary::default();
    let mut header = Vec::new();
    let mut payload = Vec::new();
    loop {
        output.write_all(protocol::READY).await?;
        output.flush().await?;

        header.clear();
        let limit = protocol::MAX_HEADER as u64 + 1;
        if (&mut input)
            .take(limit)
            .read_until(b'\n', &mut header)
            .await?
            == 0
        {
            tracing::info!("supervisord closed the event stream");
            summary.n_dropped = link.n_dropped();
            return Ok(summary);
        }
        if header.last() != Some(&b'\n') {
            return Err(if header.len() as u64 >= limit {
                HeaderError::TooLong.into()
            } else {
                ServeError::Truncated
            });
        }
        let header = protocol::parse_header(&header)?;

        payload.clear();
        let mut counter = PayloadCounter::new(header.len);
        while !counter.is_done() {
            let buffered = input.fill_buf().await?;
            if buffered.is_empty() {
                return Err(ServeError::Truncated);
            }
            let taken = counter.take(buffered);
            payload.extend_from_slice(&buffered[..taken]);
            input.consume(taken);
        }
        summary.n_events += 1;
        tracing::trace!(
            "event {} (pool serial {}): {}",
            header.serial,
            header.pool_serial,
            header.event_name
        );

        if protocol::state_of_event(&header.event_name).is_some() {
            match protocol::parse_state_payload(&header.event_name, &payload) {
                Ok(state) => {
                    let event = ProgramEvent {
                        supervisor: options.supervisor.clone(),
                        serial: header.serial,
                        pool_serial: header.pool_serial,
                        program: state.program,
                        group: state.group,
                        from_state: state.from_state,
                        state: state.state,
                        expected: state.expected,
                        pid: state.pid,
                        tries: state.tries,
                    };
                    match serials.note(&event) {
                        Continuity::Gap { missed } => tracing::warn!(
                            "supervisord's pool serial skipped from {} to {}: {missed} event(s) \
                             lost (its event buffer overflowed?)",
                            event.pool_serial - missed - 1,
                            event.pool_serial
                        ),
                        Continuity::Restarted => tracing::info!(
                            "supervisord's pool serial went back to {}: supervisord restarted",
                            event.pool_serial
                        ),
                        Continuity::First | Continuity::Next | Continuity::Repeat => {}
                    }
                    if let Some(watcher) = &watcher {
                        match (event.state, event.pid) {
                            (ProcessState::Running, Some(pid)) => watcher.ask(Watch::Pid(pid)),
                            (ProcessState::Starting | ProcessState::Running, _) => {
                                watcher.ask(Watch::Rescan)
                            }
                            _ => {}
                        }
                    }
                    if link.forward(&event).await {
                        summary.n_delivered += 1;
                    }
                }
                Err(e) => tracing::warn!(
                    "supervisord sent a {} event that does not read ({e}); answered OK",
                    header.event_name
                ),
            }
        }
        output.write_all(protocol::RESULT_OK).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::inbox::{Inbox, Notice, SOCKET_NAME};

    fn event_bytes(serial: u64, pool_serial: u64, name: &str, payload: &str) -> Vec<u8> {
        format!(
            "ver:3.0 server:supervisor serial:{serial} pool:nodekeeper-events poolserial:{pool_serial} \
             eventname:{name} len:{}\n{payload}",
            payload.chars().count()
        )
        .into_bytes()
    }

    fn options(socket: PathBuf) -> ServeOptions {
        ServeOptions {
            supervisor: "default".into(),
            socket,
            watch_siblings: false,
        }
    }

    /// Feeds `events` and returns what the listener wrote, with how it ended.
    async fn run(socket: PathBuf, events: Vec<Vec<u8>>) -> (String, Result<Summary, ServeError>) {
        let (mut to_listener, input) = tokio::io::duplex(1 << 16);
        let (output, mut from_listener) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(serve(input, output, options(socket)));
        for event in events {
            to_listener.write_all(&event).await.unwrap();
        }
        drop(to_listener);
        let outcome = task.await.unwrap();
        let mut written = String::new();
        from_listener.read_to_string(&mut written).await.unwrap();
        (written, outcome)
    }

    #[tokio::test]
    async fn events_reach_the_inbox_and_are_answered_ok() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join(SOCKET_NAME);
        let mut inbox = Inbox::bind(&socket).await.unwrap();
        let events = vec![
            event_bytes(
                21,
                10,
                "PROCESS_STATE_EXITED",
                "processname:schläfer groupname:schläfer from_state:RUNNING expected:0 pid:2766",
            ),
            event_bytes(22, 11, "TICK_5", "when:1795302895"),
            event_bytes(
                23,
                12,
                "PROCESS_STATE_STARTING",
                "processname:schläfer groupname:schläfer from_state:EXITED tries:0",
            ),
        ];
        let (written, outcome) = run(socket, events).await;
        assert_eq!(
            written,
            "READY\nRESULT 2\nOKREADY\nRESULT 2\nOKREADY\nRESULT 2\nOKREADY\n"
        );
        assert_eq!(
            outcome.unwrap(),
            Summary {
                n_events: 3,
                n_delivered: 2,
                n_dropped: 0
            }
        );
        let Notice::Event(exited) = inbox.next().await else {
            panic!("not an event")
        };
        assert_eq!(exited.program, "schläfer");
        assert_eq!(exited.state, ProcessState::Exited);
        assert_eq!(exited.expected, Some(false));
        assert_eq!(exited.pid, Some(2766));
        assert_eq!((exited.serial, exited.pool_serial), (21, 10));
        let Notice::Event(starting) = inbox.next().await else {
            panic!("not an event")
        };
        assert_eq!(starting.state, ProcessState::Starting);
        assert_eq!(starting.tries, Some(0));
    }

    #[tokio::test]
    async fn without_the_daemon_every_event_is_answered_ok() {
        let dir = tempfile::tempdir().unwrap();
        let events = (0..100)
            .map(|n| {
                event_bytes(
                    n,
                    n,
                    "PROCESS_STATE_RUNNING",
                    &format!("processname:n groupname:n from_state:STARTING pid:{n}"),
                )
            })
            .collect();
        let started = tokio::time::Instant::now();
        let (written, outcome) = run(dir.path().join(SOCKET_NAME), events).await;
        assert_eq!(
            written,
            format!("READY\n{}", "RESULT 2\nOKREADY\n".repeat(100))
        );
        assert_eq!(outcome.unwrap().n_dropped, 100);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_bad_header_stops_the_loop() {
        let dir = tempfile::tempdir().unwrap();
        let (written, outcome) = run(
            dir.path().join(SOCKET_NAME),
            vec![b"this is not a header\n".to_vec()],
        )
        .await;
        assert_eq!(written, "READY\n");
        assert!(matches!(outcome, Err(ServeError::Header(_))), "{outcome:?}");
        let (_, outcome) = run(
            dir.path().join(SOCKET_NAME),
            vec![b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:X len:10\nabc".to_vec()],
        )
        .await;
        assert!(matches!(outcome, Err(ServeError::Truncated)), "{outcome:?}");
    }

    /// A bad payload of a well-framed event is logged and answered OK: the stream is in step.
    #[tokio::test]
    async fn a_bad_payload_is_answered_ok() {
        let dir = tempfile::tempdir().unwrap();
        let (written, outcome) = run(
            dir.path().join(SOCKET_NAME),
            vec![event_bytes(1, 1, "PROCESS_STATE_RUNNING", "nonsense")],
        )
        .await;
        assert_eq!(written, "READY\nRESULT 2\nOKREADY\n");
        assert_eq!(outcome.unwrap().n_events, 1);
    }
}

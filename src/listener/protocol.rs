//! supervisord's event-listener protocol, the pure part: the header line of an event, the length
//! of its payload (in characters, as supervisord counts it) and the `PROCESS_STATE_*` payloads.
//! Nothing here reads or writes; every function takes bytes and returns a value or a typed error,
//! and never panics on what supervisord (or anyone writing to the listener's stdin) sends.

use crate::supervisor::ProcessState;

/// What a listener writes when it is ready for the next event.
pub const READY: &[u8] = b"READY\n";

/// What a listener writes when it has handled an event: `RESULT 2\nOK`. It is never `FAIL`:
/// supervisord would send the event again, and the daemon reconciles by polling anyway.
pub const RESULT_OK: &[u8] = b"RESULT 2\nOK";

/// The longest header line accepted (supervisord's are about 100 bytes).
pub const MAX_HEADER: usize = 1024;

/// The longest payload accepted, in characters. A `PROCESS_STATE` payload is about 100; other
/// events (logs, communication) are capped by supervisord's `*_capture_maxbytes`.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The prefix of every process state event's name.
pub const PROCESS_STATE_PREFIX: &str = "PROCESS_STATE_";

/// The header line supervisord sends before each event's payload:
/// `ver:3.0 server:supervisor serial:21 pool:listener poolserial:10 eventname:PROCESS_STATE_EXITED len:84`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version (`3.0`).
    pub ver: String,
    /// supervisord's identifier (`supervisor`, or its `identifier=`).
    pub server: String,
    /// The event's serial, global to supervisord (shared by every listener pool).
    pub serial: u64,
    /// The listener pool's name.
    pub pool: String,
    /// The event's serial within this pool: consecutive unless events were lost.
    pub pool_serial: u64,
    /// The event type (`PROCESS_STATE_EXITED`, `TICK_5`, ...).
    pub event_name: String,
    /// The payload's length **in characters** (supervisord 4.x takes `len()` of a Python `str`).
    pub len: usize,
}

/// A header supervisord should not have sent: the listener is out of step with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Not UTF-8 text.
    #[error("the event header is not UTF-8")]
    NotUtf8,
    /// Longer than [`MAX_HEADER`].
    #[error("the event header is longer than {MAX_HEADER} bytes")]
    TooLong,
    /// A token without `:`.
    #[error("the event header has a token without ':' ({token:?})")]
    BadToken {
        /// The token, truncated.
        token: String,
    },
    /// A required key is missing.
    #[error("the event header has no {key}")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A number that does not parse.
    #[error("the event header's {key} is not a number ({value:?})")]
    BadNumber {
        /// The key.
        key: &'static str,
        /// Its value, truncated.
        value: String,
    },
    /// `len` above [`MAX_PAYLOAD`].
    #[error("the event header's len {len} is above {MAX_PAYLOAD}")]
    TooLarge {
        /// The length given.
        len: usize,
    },
}

/// A `PROCESS_STATE_*` payload that does not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not UTF-8 text.
    #[error("the payload is not UTF-8")]
    NotUtf8,
    /// The event name is not `PROCESS_STATE_<a state>`.
    #[error("{event:?} is not a process state event")]
    NotProcessState {
        /// The event name, truncated.
        event: String,
    },
    /// A token without `:`.
    #[error("the payload has a token without ':' ({token:?})")]
    BadToken {
        /// The token, truncated.
        token: String,
    },
    /// A required key is missing.
    #[error("the payload has no {key}")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A value that does not parse.
    #[error("the payload's {key} is not valid ({value:?})")]
    BadValue {
        /// The key.
        key: &'static str,
        /// Its value, truncated.
        value: String,
    },
}

/// A `PROCESS_STATE_*` event's payload:
/// `processname:x groupname:x from_state:RUNNING expected:0 pid:2766`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatePayload {
    /// The state entered (from the event name).
    pub state: ProcessState,
    /// `processname`.
    pub program: String,
    /// `groupname`.
    pub group: String,
    /// `from_state`.
    pub from_state: ProcessState,
    /// `expected` (EXITED only): whether the exit code was one of `exitcodes`.
    pub expected: Option<bool>,
    /// `pid` (RUNNING, STOPPING, STOPPED, EXITED).
    pub pid: Option<u32>,
    /// `tries` (STARTING, BACKOFF).
    pub tries: Option<u32>,
}

/// At most 60 characters of `text`, for error messages.
fn excerpt(text: &str) -> String {
    text.chars().take(60).collect()
}

/// Reads the header line `line` (its trailing `\n` optional).
pub fn parse_header(line: &[u8]) -> Result<Header, HeaderError> {
    if line.len() > MAX_HEADER {
        return Err(HeaderError::TooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| HeaderError::NotUtf8)?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut ver = None;
    let mut server = None;
    let mut serial = None;
    let mut pool = None;
    let mut pool_serial = None;
    let mut event_name = None;
    let mut len = None;
    for token in text.split(' ').filter(|token| !token.is_empty()) {
        let Some((key, value)) = token.split_once(':') else {
            return Err(HeaderError::BadToken {
                token: excerpt(token),
            });
        };
        match key {
            "ver" => ver = Some(value),
            "server" => server = Some(value),
            "serial" => serial = Some(number("serial", value)?),
            "pool" => pool = Some(value),
            "poolserial" => pool_serial = Some(number("poolserial", value)?),
            "eventname" => event_name = Some(value),
            "len" => len = Some(number("len", value)?),
            // Keys a later protocol version may add are not ours to refuse.
            _ => {}
        }
    }
    let missing = |key| HeaderError::Missing { key };
    let len = usize::try_from(len.ok_or(missing("len"))?).unwrap_or(usize::MAX);
    if len > MAX_PAYLOAD {
        return Err(HeaderError::TooLarge { len });
    }
    Ok(Header {
        ver: ver.ok_or(missing("ver"))?.to_string(),
        server: server.ok_or(missing("server"))?.to_string(),
        serial: serial.ok_or(missing("serial"))?,
        pool: pool.ok_or(missing("pool"))?.to_string(),
        pool_serial: pool_serial.ok_or(missing("poolserial"))?,
        event_name: event_name.ok_or(missing("eventname"))?.to_string(),
        len,
    })
}

fn number(key: &'static str, value: &str) -> Result<u64, HeaderError> {
    value.parse().map_err(|_| HeaderError::BadNumber {
        key,
        value: excerpt(value),
    })
}

/// The state a `PROCESS_STATE_*` event name announces; `None` for any other event.
pub fn state_of_event(event_name: &str) -> Option<ProcessState> {
    event_name
        .strip_prefix(PROCESS_STATE_PREFIX)
        .and_then(ProcessState::from_name)
}

/// Reads the payload of the `PROCESS_STATE_*` event `event_name`.
pub fn parse_state_payload(event_name: &str, payload: &[u8]) -> Result<StatePayload, PayloadError> {
    let state = state_of_event(event_name).ok_or_else(|| PayloadError::NotProcessState {
        event: excerpt(event_name),
    })?;
    let text = std::str::from_utf8(payload).map_err(|_| PayloadError::NotUtf8)?;
    // supervisord ends some payloads with a line break; a process state payload is one line.
    let text = text.trim_end_matches('\n');
    let mut program = None;
    let mut group = None;
    let mut from_state = None;
    let mut expected = None;
    let mut pid = None;
    let mut tries = None;
    for token in text.split(' ').filter(|token| !token.is_empty()) {
        let Some((key, value)) = token.split_once(':') else {
            return Err(PayloadError::BadToken {
                token: excerpt(token),
            });
        };
        let bad = |key| PayloadError::BadValue {
            key,
            value: excerpt(value),
        };
        match key {
            "processname" => program = Some(value.to_string()),
            "groupname" => group = Some(value.to_string()),
            "from_state" => {
                from_state = Some(ProcessState::from_name(value).ok_or_else(|| bad("from_state"))?)
            }
            "expected" => {
                expected = Some(match value {
                    "0" => false,
                    "1" => true,
                    _ => return Err(bad("expected")),
                })
            }
            "pid" => pid = Some(value.parse().map_err(|_| bad("pid"))?),
            "tries" => tries = Some(value.parse().map_err(|_| bad("tries"))?),
            _ => {}
        }
    }
    let missing = |key| PayloadError::Missing { key };
    Ok(StatePayload {
        state,
        program: program.ok_or(missing("processname"))?,
        group: group.ok_or(missing("groupname"))?,
        from_state: from_state.ok_or(missing("from_state"))?,
        expected,
        pid,
        tries,
    })
}

/// Counts a payload's bytes as they arrive, until it holds `len` characters (UTF-8 sequences)
/// and the last one is complete: supervisord 4.3 sends `len` as Python's `len()` of the payload
/// string, so a program named `schläfer` gets `len:66` for 68 bytes. Reading `len` bytes would
/// leave the listener out of step with supervisord. A byte that cannot start a UTF-8 sequence
/// counts as one character.
#[derive(Clone, Debug)]
pub struct PayloadCounter {
    wanted: usize,
    chars: usize,
    continuations: u8,
}

impl PayloadCounter {
    /// A counter for a payload of `len` characters.
    pub fn new(len: usize) -> PayloadCounter {
        PayloadCounter {
            wanted: len,
            chars: 0,
            continuations: 0,
        }
    }

    /// Whether the payload is complete.
    pub fn is_done(&self) -> bool {
        self.chars >= self.wanted && self.continuations == 0
    }

    /// Counts `byte`, the next byte of the payload; returns [`PayloadCounter::is_done`].
    pub fn push(&mut self, byte: u8) -> bool {
        if self.continuations > 0 && (0x80..0xC0).contains(&byte) {
            self.continuations -= 1;
            return self.is_done();
        }
        // A new character (or a stray byte, which is one).
        self.chars += 1;
        self.continuations = match byte {
            0xC0..=0xDF => 1,
            0xE0..=0xEF => 2,
            0xF0..=0xF7 => 3,
            _ => 0,
        };
        self.is_done()
    }

    /// How many of `bytes` complete the payload: all of them when it is still not done after
    /// the last. Bytes after that belong to what follows.
    pub fn take(&mut self, bytes: &[u8]) -> usize {
        if self.is_done() {
            return 0;
        }
        for (index, byte) in bytes.iter().enumerate() {
            if self.push(*byte) {
                return index + 1;
            }
        }
        bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "ver:3.0 server:supervisor serial:21 pool:listener poolserial:10 eventname:PROCESS_STATE_EXITED len:84\n";

    #[test]
    fn a_header_reads() {
        assert_eq!(
            parse_header(HEADER.as_bytes()),
            Ok(Header {
                ver: "3.0".into(),
                server: "supervisor".into(),
                serial: 21,
                pool: "listener".into(),
                pool_serial: 10,
                event_name: "PROCESS_STATE_EXITED".into(),
                len: 84,
            })
        );
    }

    #[test]
    fn bad_headers_are_typed_errors() {
        let cases: [(&[u8], HeaderError); 5] = [
            (b"\xff\xfe", HeaderError::NotUtf8),
            (
                b"READY",
                HeaderError::BadToken {
                    token: "READY".into(),
                },
            ),
            (
                b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:E",
                HeaderError::Missing { key: "len" },
            ),
            (
                b"ver:3.0 server:s serial:x pool:p poolserial:1 eventname:E len:1",
                HeaderError::BadNumber {
                    key: "serial",
                    value: "x".into(),
                },
            ),
            (
                b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:E len:99999999999",
                HeaderError::TooLarge { len: 99999999999 },
            ),
        ];
        for (line, error) in cases {
            assert_eq!(parse_header(line), Err(error), "{line:?}");
        }
        assert_eq!(parse_header(&[b'a'; 2000]), Err(HeaderError::TooLong));
    }

    #[test]
    fn state_payloads_read() {
        let exited = parse_state_payload(
            "PROCESS_STATE_EXITED",
            b"processname:x groupname:g from_state:RUNNING expected:0 pid:2766",
        )
        .unwrap();
        assert_eq!(
            exited,
            StatePayload {
                state: ProcessState::Exited,
                program: "x".into(),
                group: "g".into(),
                from_state: ProcessState::Running,
                expected: Some(false),
                pid: Some(2766),
                tries: None,
            }
        );
        let backoff = parse_state_payload(
            "PROCESS_STATE_BACKOFF",
            "processname:schläfer groupname:schläfer from_state:STARTING tries:1".as_bytes(),
        )
        .unwrap();
        assert_eq!(backoff.state, ProcessState::Backoff);
        assert_eq!(backoff.program, "schläfer");
        assert_eq!(backoff.tries, Some(1));
        assert_eq!(backoff.pid, None);
    }

    #[test]
    fn bad_payloads_are_typed_errors() {
        assert_eq!(
            parse_state_payload("TICK_5", b"when:1"),
            Err(PayloadError::NotProcessState {
                event: "TICK_5".into()
            })
        );
        assert_eq!(
            parse_state_payload("PROCESS_STATE_EXITED", b"processname:x from_state:RUNNING"),
            Err(PayloadError::Missing { key: "groupname" })
        );
        assert_eq!(
            parse_state_payload(
                "PROCESS_STATE_EXITED",
                b"processname:x groupname:x from_state:RUNNING expected:2"
            ),
            Err(PayloadError::BadValue {
                key: "expected",
                value: "2".into()
            })
        );
        assert_eq!(
            parse_state_payload(
                "PROCESS_STATE_RUNNING",
                b"processname:x groupname:x from_state:SLEEPING"
            ),
            Err(PayloadError::BadValue {
                key: "from_state",
                value: "SLEEPING".into()
            })
        );
    }

    /// The bug of supervisord 4.3 this counter exists for: `len` counts characters.
    #[test]
    fn the_payload_length_counts_characters_not_bytes() {
        let payload = "processname:schläfer groupname:schläfer from_state:RUNNING pid:12";
        let next = "ver:3.0 ...";
        let chars = payload.chars().count();
        assert!(payload.len() > chars);
        let stream = format!("{payload}{next}");
        let mut counter = PayloadCounter::new(chars);
        assert_eq!(counter.take(stream.as_bytes()), payload.len());
        assert!(counter.is_done());
        assert_eq!(counter.take(b"more"), 0);

        // Byte by byte, a character of 4 bytes last.
        let payload = "a€😀";
        let mut counter = PayloadCounter::new(3);
        let bytes = payload.as_bytes();
        for byte in &bytes[..bytes.len() - 1] {
            assert!(!counter.push(*byte));
        }
        assert!(counter.push(bytes[bytes.len() - 1]));

        assert!(PayloadCounter::new(0).is_done());
        // A stray continuation byte is one character.
        assert_eq!(PayloadCounter::new(2).take(b"\x80\x80\x80"), 2);
    }

    /// Tiny deterministic generator (xorshift) for the mutation test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Mangled headers and payloads (bytes replaced, removed, duplicated, cut) give a value or an
    /// error, never a panic.
    #[test]
    fn mangled_bytes_never_panic() {
        let payload =
            "processname:schläfer groupname:g from_state:RUNNING expected:0 pid:2766 tries:3";
        let interesting = b": \n0123456789\xc3\xa4\xff\x80-";
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut n_ok = 0;
        for round in 0..20_000 {
            let original = if round % 2 == 0 {
                HEADER.as_bytes()
            } else {
                payload.as_bytes()
            };
            let mut bytes = original.to_vec();
            for _ in 0..1 + rng.below(4) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] = interesting[rng.below(interesting.len())],
                    1 => {
                        bytes.remove(at);
                    }
                    2 => bytes.insert(at, bytes[at]),
                    _ => bytes.truncate(at),
                }
            }
            if parse_header(&bytes).is_ok() {
                n_ok += 1;
            }
            if parse_state_payload("PROCESS_STATE_EXITED", &bytes).is_ok() {
                n_ok += 1;
            }
            let mut counter = PayloadCounter::new(rng.below(100));
            let taken = counter.take(&bytes);
            assert!(taken <= bytes.len());
        }
        // Some mutations keep the text valid: the test exercised both outcomes.
        assert!(n_ok > 0);
    }
}

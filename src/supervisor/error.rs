//! What can go wrong talking to supervisord: its faults (typed by code), and the transport failures
//! that are not faults (refused, timeout, 401, non-XML, oversized answers). Messages are one line and
//! name the endpoint or the program.

use std::time::Duration;

/// A fault supervisord answered with (`supervisor.xmlrpc.Faults`). The string is the detail after
/// the code's name, usually the process name (`BAD_NAME: nosuch` gives `BadName("nosuch")`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// 1: the method does not exist.
    #[error("unknown method (UNKNOWN_METHOD)")]
    UnknownMethod,
    /// 2: wrong number of arguments.
    #[error("incorrect parameters (INCORRECT_PARAMETERS)")]
    IncorrectParameters,
    /// 3: an argument was refused.
    #[error("bad arguments (BAD_ARGUMENTS)")]
    BadArguments,
    /// 4
    #[error("signature unsupported (SIGNATURE_UNSUPPORTED)")]
    SignatureUnsupported,
    /// 6: supervisord is restarting or shutting down.
    #[error("supervisord is shutting down or restarting (SHUTDOWN_STATE)")]
    ShutdownState,
    /// 10: no such process or group.
    #[error("{0}: no such process (BAD_NAME)")]
    BadName(String),
    /// 11: no such signal.
    #[error("{0}: bad signal (BAD_SIGNAL)")]
    BadSignal(String),
    /// 20: the command was not found.
    #[error("{0} (NO_FILE)")]
    NoFile(String),
    /// 21: the command is not executable.
    #[error("{0} (NOT_EXECUTABLE)")]
    NotExecutable(String),
    /// 30: the process is in an unknown state.
    #[error("{0} (FAILED)")]
    Failed(String),
    /// 40: the process left STARTING without a spawn error (someone stopped it).
    #[error("{0}: abnormal termination while starting (ABNORMAL_TERMINATION)")]
    AbnormalTermination(String),
    /// 50: the process died before `startsecs`.
    #[error("{0}: exited before it was up (SPAWN_ERROR)")]
    SpawnError(String),
    /// 60: start in STARTING, RUNNING or BACKOFF.
    #[error("{0}: already started (ALREADY_STARTED)")]
    AlreadyStarted(String),
    /// 70: stop (or signal) of a process that is not running.
    #[error("{0}: not running (NOT_RUNNING)")]
    NotRunning(String),
    /// 90: `addProcessGroup` of an active group.
    #[error("{0}: group already added (ALREADY_ADDED)")]
    AlreadyAdded(String),
    /// 91: `removeProcessGroup` of a group that runs.
    #[error("{0}: group still running (STILL_RUNNING)")]
    StillRunning(String),
    /// 92: the configuration files could not be reread.
    #[error("cannot reread the configuration: {0} (CANT_REREAD)")]
    CantReread(String),
    /// Any other code.
    #[error("fault {code}: {string}")]
    Other {
        /// The fault code.
        code: i32,
        /// The fault string as sent.
        string: String,
    },
}

impl Fault {
    /// Types a fault from its code and string. The detail is what follows `NAME: ` in the string.
    pub fn from_code(code: i32, string: &str) -> Fault {
        let detail = match string.split_once(": ") {
            Some((_, rest)) => rest.to_string(),
            None => String::new(),
        };
        match code {
            1 => Fault::UnknownMethod,
            2 => Fault::IncorrectParameters,
            3 => Fault::BadArguments,
            4 => Fault::SignatureUnsupported,
            6 => Fault::ShutdownState,
            10 => Fault::BadName(detail),
            11 => Fault::BadSignal(detail),
            20 => Fault::NoFile(detail),
            21 => Fault::NotExecutable(detail),
            30 => Fault::Failed(string.to_string()),
            40 => Fault::AbnormalTermination(detail),
            50 => Fault::SpawnError(detail),
            60 => Fault::AlreadyStarted(detail),
            70 => Fault::NotRunning(detail),
            90 => Fault::AlreadyAdded(detail),
            91 => Fault::StillRunning(detail),
            92 => Fault::CantReread(detail),
            _ => Fault::Other {
                code,
                string: string.to_string(),
            },
        }
    }

    /// The numeric code.
    pub fn code(&self) -> i32 {
        match self {
            Fault::UnknownMethod => 1,
            Fault::IncorrectParameters => 2,
            Fault::BadArguments => 3,
            Fault::SignatureUnsupported => 4,
            Fault::ShutdownState => 6,
            Fault::BadName(_) => 10,
            Fault::BadSignal(_) => 11,
            Fault::NoFile(_) => 20,
            Fault::NotExecutable(_) => 21,
            Fault::Failed(_) => 30,
            Fault::AbnormalTermination(_) => 40,
            Fault::SpawnError(_) => 50,
            Fault::AlreadyStarted(_) => 60,
            Fault::NotRunning(_) => 70,
            Fault::AlreadyAdded(_) => 90,
            Fault::StillRunning(_) => 91,
            Fault::CantReread(_) => 92,
            Fault::Other { code, .. } => *code,
        }
    }
}

/// Any failure of one XML-RPC call. Every message names the endpoint (or the program, for faults)
/// and fits on one line.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// Nothing listens there (ECONNREFUSED), or the socket file does not exist.
    #[error("cannot reach supervisord at {endpoint}: {why}")]
    Unreachable {
        /// The endpoint, as displayed.
        endpoint: String,
        /// `connection refused`, `no such socket file`, `permission denied`, ...
        why: String,
    },
    /// No complete answer within the call's timeout (a hung server, or a slow blocking call).
    #[error("supervisord at {endpoint} did not answer {method} within {}", fmt_duration(*.timeout))]
    Timeout {
        /// The endpoint, as displayed.
        endpoint: String,
        /// The XML-RPC method.
        method: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// HTTP 401: wrong or missing user name or password.
    #[error(
        "supervisord at {endpoint} refused the credentials (HTTP 401): check the user name and password"
    )]
    Unauthorized {
        /// The endpoint, as displayed.
        endpoint: String,
    },
    /// Any other HTTP status than 200 (400 for malformed requests, 500 for a type error, ...).
    #[error("supervisord at {endpoint} answered HTTP {status} to {method}")]
    HttpStatus {
        /// The endpoint, as displayed.
        endpoint: String,
        /// The XML-RPC method.
        method: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The answer was not a well-formed XML-RPC response of the expected shape.
    #[error("supervisord at {endpoint} sent a malformed answer to {method}: {detail}")]
    Malformed {
        /// The endpoint, as displayed.
        endpoint: String,
        /// The XML-RPC method.
        method: String,
        /// What was wrong, with at most a short excerpt of the body.
        detail: String,
    },
    /// The answer was larger than the client's limit; it was not read further.
    #[error("supervisord at {endpoint} sent more than {limit} bytes in answer to {method}")]
    TooLarge {
        /// The endpoint, as displayed.
        endpoint: String,
        /// The XML-RPC method.
        method: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// Another transport failure (connection reset mid-answer, ...).
    #[error("supervisord at {endpoint}: {method} failed: {why}")]
    Transport {
        /// The endpoint, as displayed.
        endpoint: String,
        /// The XML-RPC method.
        method: String,
        /// What the HTTP layer said.
        why: String,
    },
    /// supervisord answered with a fault.
    #[error("{fault}")]
    Fault {
        /// The XML-RPC method that faulted.
        method: String,
        /// The typed fault.
        fault: Fault,
    },
}

impl SupervisorError {
    /// The fault, when supervisord answered with one.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            SupervisorError::Fault { fault, .. } => Some(fault),
            _ => None,
        }
    }

    /// True when supervisord could not be asked at all or is going away: the caller should retry
    /// later with backoff rather than conclude anything about a process.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            SupervisorError::Unreachable { .. }
                | SupervisorError::Timeout { .. }
                | SupervisorError::Transport { .. }
                | SupervisorError::Fault {
                    fault: Fault::ShutdownState,
                    ..
                }
        )
    }

    /// False only when supervisord surely did not carry the call out: nothing was sent (refused,
    /// no socket, wrong credentials) or it answered with a fault. A timeout, a dropped connection
    /// or an unreadable answer leave it open: a `stopProcess` may have stopped the program.
    pub fn may_have_acted(&self) -> bool {
        !matches!(
            self,
            SupervisorError::Unreachable { .. }
                | SupervisorError::Unauthorized { .. }
                | SupervisorError::Fault { .. }
        )
    }

    /// A short stable label for metrics and logs (`unreachable`, `timeout`, `fault`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            SupervisorError::Unreachable { .. } => "unreachable",
            SupervisorError::Timeout { .. } => "timeout",
            SupervisorError::Unauthorized { .. } => "unauthorized",
            SupervisorError::HttpStatus { .. } => "http_status",
            SupervisorError::Malformed { .. } => "malformed",
            SupervisorError::TooLarge { .. } => "too_large",
            SupervisorError::Transport { .. } => "transport",
            SupervisorError::Fault { .. } => "fault",
        }
    }
}

fn fmt_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{} s", millis / 1000)
    } else {
        format!("{millis} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_typed_from_the_strings_supervisord_sends() {
        let cases = [
            (10, "BAD_NAME: nosuch", Fault::BadName("nosuch".into())),
            (
                60,
                "ALREADY_STARTED: node1",
                Fault::AlreadyStarted("node1".into()),
            ),
            (70, "NOT_RUNNING: node1", Fault::NotRunning("node1".into())),
            (
                50,
                "SPAWN_ERROR: quitter",
                Fault::SpawnError("quitter".into()),
            ),
            (
                40,
                "ABNORMAL_TERMINATION: slow",
                Fault::AbnormalTermination("slow".into()),
            ),
            (6, "SHUTDOWN_STATE", Fault::ShutdownState),
            (
                20,
                "NO_FILE: can't find command '/nonexistent'",
                Fault::NoFile("can't find command '/nonexistent'".into()),
            ),
            (
                92,
                "CANT_REREAD: program section x does not specify a command",
                Fault::CantReread("program section x does not specify a command".into()),
            ),
            (
                77,
                "SOMETHING: new",
                Fault::Other {
                    code: 77,
                    string: "SOMETHING: new".into(),
                },
            ),
        ];
        for (code, string, expected) in cases {
            let fault = Fault::from_code(code, string);
            assert_eq!(fault, expected);
            assert_eq!(fault.code(), code);
        }
    }

    #[test]
    fn messages_name_the_program_or_the_endpoint() {
        let fault = SupervisorError::Fault {
            method: "supervisor.startProcess".into(),
            fault: Fault::BadName("node9".into()),
        };
        assert_eq!(fault.to_string(), "node9: no such process (BAD_NAME)");
        let refused = SupervisorError::Unreachable {
            endpoint: "http://127.0.0.1:9001/RPC2".into(),
            why: "connection refused".into(),
        };
        assert_eq!(
            refused.to_string(),
            "cannot reach supervisord at http://127.0.0.1:9001/RPC2: connection refused"
        );
        let timeout = SupervisorError::Timeout {
            endpoint: "unix:///tmp/s.sock".into(),
            method: "supervisor.getState".into(),
            timeout: Duration::from_millis(1500),
        };
        assert_eq!(
            timeout.to_string(),
            "supervisord at unix:///tmp/s.sock did not answer supervisor.getState within 1500 ms"
        );
        assert!(timeout.is_unavailable() && refused.is_unavailable() && !fault.is_unavailable());
    }
}

//! The nodeos sim's fault vocabulary and its two spellings: a control-file line (`stuck`, `lag 5`, `slow 500`,
//! `refuse-pause`, …) and the JSON body of `POST /sim/fault` (`{"fault":"lag","blocks":5}`). The words are the
//! Jormungandr sim's where they apply. What a fault *does* lives in `node` (head, production) and `api` (hang,
//! slow, refuse-pause, and the exits).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// A fault requested for the simulated nodeos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Healthy.
    #[default]
    None,
    /// The process exits with status 1 at once.
    Crash,
    /// The head is frozen where it was when the fault was set; the node makes no blocks.
    Stuck,
    /// The head is `blocks` behind the chain; the node makes no blocks.
    Lag {
        /// How many blocks behind.
        blocks: u64,
    },
    /// Every `/v1` request hangs (`/sim/*` still answers); the node makes no blocks.
    Hang,
    /// Every `/v1` answer is delayed.
    Slow {
        /// The delay in milliseconds.
        delay_ms: u64,
    },
    /// Back to syncing: far behind while set, then catching up over `--bootstrap-secs` once cleared.
    Bootstrap,
    /// `/v1/producer/pause` answers OK but the node stays unpaused and keeps producing.
    RefusePause,
    /// The process exits with status 2 printing nodeos's dirty-database message, leaving a marker in
    /// `--data-dir` (if any) so every later start does the same until the marker is removed.
    DirtyDb,
}

/// Errors of parsing a fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultError {
    /// Not a known fault.
    #[error("unknown fault {0:?}")]
    Unknown(String),
    /// A fault that needs a number did not get one.
    #[error("fault {0} needs a number ({1})")]
    MissingNumber(&'static str, &'static str),
    /// A number did not parse.
    #[error("invalid number {0:?}")]
    BadNumber(String),
    /// Extra words after the fault.
    #[error("unexpected text after the fault: {0:?}")]
    Trailing(String),
}

impl Fault {
    /// Builds a fault from its name and the optional numbers of a `POST /sim/fault` body.
    pub fn from_parts(
        name: &str,
        blocks: Option<u64>,
        delay_ms: Option<u64>,
    ) -> Result<Fault, FaultError> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Fault::None,
            "crash" => Fault::Crash,
            "stuck" => Fault::Stuck,
            "lag" => Fault::Lag {
                blocks: blocks.ok_or(FaultError::MissingNumber("lag", "blocks"))?,
            },
            "hang" => Fault::Hang,
            "slow" => Fault::Slow {
                delay_ms: delay_ms.ok_or(FaultError::MissingNumber("slow", "delay_ms"))?,
            },
            "bootstrap" => Fault::Bootstrap,
            "refuse-pause" => Fault::RefusePause,
            "dirty-db" => Fault::DirtyDb,
            other => return Err(FaultError::Unknown(other.to_string())),
        })
    }

    /// Whether the fault ends the process.
    pub fn exits(self) -> bool {
        matches!(self, Fault::Crash | Fault::DirtyDb)
    }
}

/// Parses one control-file line; an empty line means `none`.
impl FromStr for Fault {
    type Err = FaultError;

    fn from_str(line: &str) -> Result<Fault, FaultError> {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or("none");
        let number = match words.next() {
            Some(word) => Some(
                word.parse::<u64>()
                    .map_err(|_| FaultError::BadNumber(word.to_string()))?,
            ),
            None => None,
        };
        let rest: Vec<&str> = words.collect();
        if !rest.is_empty() {
            return Err(FaultError::Trailing(rest.join(" ")));
        }
        let fault = Fault::from_parts(name, number, number)?;
        if number.is_some() && !matches!(fault, Fault::Lag { .. } | Fault::Slow { .. }) {
            return Err(FaultError::Trailing(line.trim().to_string()));
        }
        Ok(fault)
    }
}

/// The control-file spelling, e.g. `lag 5`.
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::None => f.write_str("none"),
            Fault::Crash => f.write_str("crash"),
            Fault::Stuck => f.write_str("stuck"),
            Fault::Lag { blocks } => write!(f, "lag {blocks}"),
            Fault::Hang => f.write_str("hang"),
            Fault::Slow { delay_ms } => write!(f, "slow {delay_ms}"),
            Fault::Bootstrap => f.write_str("bootstrap"),
            Fault::RefusePause => f.write_str("refuse-pause"),
            Fault::DirtyDb => f.write_str("dirty-db"),
        }
    }
}

/// The body of `POST /sim/fault`: `{"fault":"lag","blocks":5}`, `{"fault":"slow","delay_ms":500}`, ….
#[derive(Debug, Deserialize)]
pub struct FaultRequest {
    /// The fault name.
    pub fault: String,
    /// Blocks behind, for `lag`.
    #[serde(default)]
    pub blocks: Option<u64>,
    /// Delay in milliseconds, for `slow`.
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

impl FaultRequest {
    /// The requested fault.
    pub fn fault(&self) -> Result<Fault, FaultError> {
        Fault::from_parts(&self.fault, self.blocks, self.delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_display_back() {
        for line in [
            "none",
            "crash",
            "stuck",
            "lag 5",
            "hang",
            "slow 500",
            "bootstrap",
            "refuse-pause",
            "dirty-db",
        ] {
            let fault: Fault = line.parse().unwrap();
            assert_eq!(fault.to_string(), line);
        }
        assert_eq!("".parse::<Fault>(), Ok(Fault::None));
        assert_eq!(" LAG  7\n".parse::<Fault>(), Ok(Fault::Lag { blocks: 7 }));
        assert!(Fault::Crash.exits() && Fault::DirtyDb.exits() && !Fault::Hang.exits());
    }

    #[test]
    fn bad_lines_are_errors() {
        assert_eq!(
            "lag".parse::<Fault>(),
            Err(FaultError::MissingNumber("lag", "blocks"))
        );
        assert!(matches!(
            "slow x".parse::<Fault>(),
            Err(FaultError::BadNumber(_))
        ));
        assert!(matches!(
            "refuse_pause".parse::<Fault>(),
            Err(FaultError::Unknown(_))
        ));
        assert!(matches!(
            "fork".parse::<Fault>(),
            Err(FaultError::Unknown(_))
        ));
        assert!(matches!(
            "stuck 3".parse::<Fault>(),
            Err(FaultError::Trailing(_))
        ));
        assert!(matches!(
            "lag 3 4".parse::<Fault>(),
            Err(FaultError::Trailing(_))
        ));
    }

    #[test]
    fn requests_name_their_numbers() {
        let request: FaultRequest = serde_json::from_str(r#"{"fault":"lag","blocks":4}"#).unwrap();
        assert_eq!(request.fault(), Ok(Fault::Lag { blocks: 4 }));
        let request: FaultRequest = serde_json::from_str(r#"{"fault":"slow"}"#).unwrap();
        assert!(request.fault().is_err());
        let request: FaultRequest = serde_json::from_str(r#"{"fault":"dirty-db"}"#).unwrap();
        assert_eq!(request.fault(), Ok(Fault::DirtyDb));
    }
}

//! Injectable faults: their names and the two ways to request them.
//!
//! Owns the [`Fault`] vocabulary, the control-file line syntax (`stuck`, `lag 5`, `slow 500`, `slow-leaders 1500`,
//! …) and the JSON body of `POST /sim/fault`. What a fault *does* lives in `node` (chain view, leadership) and
//! `api` (hang, slow, slow-leaders, refuse-promotion).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// A fault requested for the simulated node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Healthy: follows the main chain.
    #[default]
    None,
    /// Height and tip frozen where they were when the fault was set; the state stays `Running`.
    Stuck,
    /// Height is `blocks` behind the main chain.
    Lag {
        /// How many blocks behind.
        blocks: u64,
    },
    /// Back to (or stays in) `Bootstrapping`.
    Bootstrap,
    /// Every `/api/v0/*` request is accepted and never answered.
    Hang,
    /// Every `/api/v0/*` answer is delayed.
    Slow {
        /// The delay in milliseconds.
        delay_ms: u64,
    },
    /// Only the leader routes (`/api/v0/leaders`, `/api/v0/leaders/{id}`, `/api/v0/leaders/logs`) answer late;
    /// the rest of the API stays prompt.
    SlowLeaders {
        /// The delay in milliseconds.
        delay_ms: u64,
    },
    /// `POST /api/v0/leaders` answers 500 and adds no leader; listing and demoting still work.
    RefusePromotion,
    /// The process exits with status 1.
    Crash,
    /// The database goes bad: the process leaves the corrupt-database marker in `--data-dir` and
    /// exits with status 1, and every later start exits 1 the same way until the marker is gone.
    CorruptDb,
    /// The node follows a private branch that grows slowly.
    Fork,
}

/// Errors of parsing a fault from a control-file line or a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultError {
    /// The fault name is not one of the known ones.
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
            "stuck" => Fault::Stuck,
            "lag" => Fault::Lag {
                blocks: blocks.ok_or(FaultError::MissingNumber("lag", "blocks"))?,
            },
            "bootstrap" => Fault::Bootstrap,
            "hang" => Fault::Hang,
            "slow" => Fault::Slow {
                delay_ms: delay_ms.ok_or(FaultError::MissingNumber("slow", "delay_ms"))?,
            },
            "slow-leaders" => Fault::SlowLeaders {
                delay_ms: delay_ms.ok_or(FaultError::MissingNumber("slow-leaders", "delay_ms"))?,
            },
            "refuse-promotion" => Fault::RefusePromotion,
            "crash" => Fault::Crash,
            "corrupt-db" => Fault::CorruptDb,
            "fork" => Fault::Fork,
            other => return Err(FaultError::Unknown(other.to_string())),
        })
    }
}

/// Parses one control-file line: `none`, `stuck`, `lag N`, `bootstrap`, `hang`, `slow MS`, `slow-leaders MS`,
/// `refuse-promotion`, `crash`, `corrupt-db` or `fork`.
/// An empty line means `none`.
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
        if number.is_some()
            && !matches!(
                fault,
                Fault::Lag { .. } | Fault::Slow { .. } | Fault::SlowLeaders { .. }
            )
        {
            return Err(FaultError::Trailing(line.trim().to_string()));
        }
        Ok(fault)
    }
}

/// Formats the fault in the control-file syntax, e.g. `lag 5`.
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::None => f.write_str("none"),
            Fault::Stuck => f.write_str("stuck"),
            Fault::Lag { blocks } => write!(f, "lag {blocks}"),
            Fault::Bootstrap => f.write_str("bootstrap"),
            Fault::Hang => f.write_str("hang"),
            Fault::Slow { delay_ms } => write!(f, "slow {delay_ms}"),
            Fault::SlowLeaders { delay_ms } => write!(f, "slow-leaders {delay_ms}"),
            Fault::RefusePromotion => f.write_str("refuse-promotion"),
            Fault::Crash => f.write_str("crash"),
            Fault::CorruptDb => f.write_str("corrupt-db"),
            Fault::Fork => f.write_str("fork"),
        }
    }
}

/// The JSON body of `POST /sim/fault`: `{"fault":"lag","blocks":5}`, `{"fault":"slow","delay_ms":500}`,
/// `{"fault":"slow-leaders","delay_ms":1500}`, `{"fault":"refuse-promotion"}`, ….
#[derive(Debug, Deserialize)]
pub struct FaultRequest {
    /// The fault name.
    pub fault: String,
    /// Blocks behind, for `lag`.
    #[serde(default)]
    pub blocks: Option<u64>,
    /// Delay in milliseconds, for `slow` and `slow-leaders`.
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
    fn control_lines_parse_and_display_back() {
        for line in [
            "none",
            "stuck",
            "lag 5",
            "bootstrap",
            "hang",
            "slow 500",
            "slow-leaders 1500",
            "refuse-promotion",
            "crash",
            "corrupt-db",
            "fork",
        ] {
            let fault: Fault = line.parse().unwrap();
            assert_eq!(fault.to_string(), line);
        }
        assert_eq!("".parse::<Fault>(), Ok(Fault::None));
        assert_eq!(
            "  LAG   7 \n".parse::<Fault>(),
            Ok(Fault::Lag { blocks: 7 })
        );
        assert_eq!(
            " Slow-Leaders 250\n".parse::<Fault>(),
            Ok(Fault::SlowLeaders { delay_ms: 250 })
        );
        assert_eq!(
            "refuse-promotion\n".parse::<Fault>(),
            Ok(Fault::RefusePromotion)
        );
    }

    #[test]
    fn bad_control_lines_are_errors() {
        assert_eq!(
            "lag".parse::<Fault>(),
            Err(FaultError::MissingNumber("lag", "blocks"))
        );
        assert!(matches!(
            "lag x".parse::<Fault>(),
            Err(FaultError::BadNumber(_))
        ));
        assert!(matches!(
            "explode".parse::<Fault>(),
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
        assert_eq!(
            "slow-leaders".parse::<Fault>(),
            Err(FaultError::MissingNumber("slow-leaders", "delay_ms"))
        );
        assert!(matches!(
            "slow-leaders fast".parse::<Fault>(),
            Err(FaultError::BadNumber(_))
        ));
        assert!(matches!(
            "refuse-promotion 1".parse::<Fault>(),
            Err(FaultError::Trailing(_))
        ));
        // The words are hyphenated, not run together or underscored.
        assert!(matches!(
            "slow_leaders 5".parse::<Fault>(),
            Err(FaultError::Unknown(_))
        ));
        assert!(matches!(
            "refusepromotion".parse::<Fault>(),
            Err(FaultError::Unknown(_))
        ));
    }

    #[test]
    fn requests_name_their_numbers() {
        let request: FaultRequest =
            serde_json::from_str(r#"{"fault":"slow","delay_ms":250}"#).unwrap();
        assert_eq!(request.fault(), Ok(Fault::Slow { delay_ms: 250 }));
        let request: FaultRequest =
            serde_json::from_str(r#"{"fault":"lag","delay_ms":250}"#).unwrap();
        assert!(request.fault().is_err());
        let request: FaultRequest =
            serde_json::from_str(r#"{"fault":"slow-leaders","delay_ms":1500}"#).unwrap();
        assert_eq!(request.fault(), Ok(Fault::SlowLeaders { delay_ms: 1500 }));
        let request: FaultRequest = serde_json::from_str(r#"{"fault":"slow-leaders"}"#).unwrap();
        assert_eq!(
            request.fault(),
            Err(FaultError::MissingNumber("slow-leaders", "delay_ms"))
        );
        let request: FaultRequest =
            serde_json::from_str(r#"{"fault":"refuse-promotion"}"#).unwrap();
        assert_eq!(request.fault(), Ok(Fault::RefusePromotion));
    }
}

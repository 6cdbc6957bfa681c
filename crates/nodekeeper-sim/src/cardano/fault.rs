//! The simulated cardano-node's faults: their names and the two ways to request them.
//!
//! Owns the [`Fault`] vocabulary, the control-file line syntax (`stuck`, `lag 5`, `slow 500`, `ignore-sighup`,
//! `kes 3`, …;
//! the same words as the Jormungandr simulator where they apply) and the JSON body of `POST /sim/fault`. What a
//! fault *does* lives in `node` (chain view, forging, SIGHUP) and `api` (hang, slow).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// A fault requested for the simulated node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Healthy: follows the chain.
    #[default]
    None,
    /// The tip (slot and block) frozen where it was when the fault was set; the node cannot forge.
    Stuck,
    /// The node's view is `slots` slots behind the clock; the node cannot forge.
    Lag {
        /// How many slots behind.
        slots: u64,
    },
    /// Back to (or stays in) replaying: `slotNum` 0, no forging, SIGHUP not effective.
    Bootstrap,
    /// `GET /metrics` is accepted and never answered; `/sim/*` still answers and the node keeps forging.
    Hang,
    /// `GET /metrics` answers late.
    Slow {
        /// The delay in milliseconds.
        delay_ms: u64,
    },
    /// SIGHUP does nothing: no credential re-read, no log line.
    IgnoreSighup,
    /// The process exits with status 1.
    Crash,
    /// The operational certificate is about to expire: `remainingKESPeriods` reads `remaining` (while the node
    /// exports KES metrics at all); everything else is as healthy. `none` stands for a new certificate: the real
    /// count again.
    Kes {
        /// KES periods left.
        remaining: u64,
    },
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
        slots: Option<u64>,
        delay_ms: Option<u64>,
        remaining: Option<u64>,
    ) -> Result<Fault, FaultError> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Fault::None,
            "stuck" => Fault::Stuck,
            "lag" => Fault::Lag {
                slots: slots.ok_or(FaultError::MissingNumber("lag", "slots"))?,
            },
            "bootstrap" => Fault::Bootstrap,
            "hang" => Fault::Hang,
            "slow" => Fault::Slow {
                delay_ms: delay_ms.ok_or(FaultError::MissingNumber("slow", "delay_ms"))?,
            },
            "ignore-sighup" => Fault::IgnoreSighup,
            "crash" => Fault::Crash,
            "kes" => Fault::Kes {
                remaining: remaining.ok_or(FaultError::MissingNumber("kes", "remaining"))?,
            },
            other => return Err(FaultError::Unknown(other.to_string())),
        })
    }
}

/// Parses one control-file line: `none`, `stuck`, `lag N`, `bootstrap`, `hang`, `slow MS`, `ignore-sighup`,
/// `crash` or `kes N`. An empty line means `none`.
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
        let fault = Fault::from_parts(name, number, number, number)?;
        if number.is_some()
            && !matches!(
                fault,
                Fault::Lag { .. } | Fault::Slow { .. } | Fault::Kes { .. }
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
            Fault::Lag { slots } => write!(f, "lag {slots}"),
            Fault::Bootstrap => f.write_str("bootstrap"),
            Fault::Hang => f.write_str("hang"),
            Fault::Slow { delay_ms } => write!(f, "slow {delay_ms}"),
            Fault::IgnoreSighup => f.write_str("ignore-sighup"),
            Fault::Crash => f.write_str("crash"),
            Fault::Kes { remaining } => write!(f, "kes {remaining}"),
        }
    }
}

/// The JSON body of `POST /sim/fault`: `{"fault":"lag","slots":5}` (`blocks` is accepted for `slots`, as the
/// Jormungandr simulator spells it), `{"fault":"slow","delay_ms":500}`, `{"fault":"ignore-sighup"}`,
/// `{"fault":"kes","remaining":3}`, ….
#[derive(Debug, Deserialize)]
pub struct FaultRequest {
    /// The fault name.
    pub fault: String,
    /// Slots behind, for `lag`.
    #[serde(default, alias = "blocks")]
    pub slots: Option<u64>,
    /// Delay in milliseconds, for `slow`.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// KES periods left, for `kes`.
    #[serde(default)]
    pub remaining: Option<u64>,
}

impl FaultRequest {
    /// The requested fault.
    pub fn fault(&self) -> Result<Fault, FaultError> {
        Fault::from_parts(&self.fault, self.slots, self.delay_ms, self.remaining)
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
            "ignore-sighup",
            "crash",
            "kes 3",
        ] {
            let fault: Fault = line.parse().unwrap();
            assert_eq!(fault.to_string(), line);
        }
        assert_eq!("".parse::<Fault>(), Ok(Fault::None));
        assert_eq!(" LAG  7 \n".parse::<Fault>(), Ok(Fault::Lag { slots: 7 }));
        assert_eq!("Ignore-SIGHUP".parse::<Fault>(), Ok(Fault::IgnoreSighup));
    }

    #[test]
    fn bad_control_lines_are_errors() {
        assert_eq!(
            "lag".parse::<Fault>(),
            Err(FaultError::MissingNumber("lag", "slots"))
        );
        assert!(matches!(
            "lag x".parse::<Fault>(),
            Err(FaultError::BadNumber(_))
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
        assert!(matches!(
            "ignore_sighup".parse::<Fault>(),
            Err(FaultError::Unknown(_))
        ));
    }

    #[test]
    fn requests_name_their_numbers() {
        let request: FaultRequest = serde_json::from_str(r#"{"fault":"lag","slots":9}"#).unwrap();
        assert_eq!(request.fault(), Ok(Fault::Lag { slots: 9 }));
        let request: FaultRequest = serde_json::from_str(r#"{"fault":"lag","blocks":4}"#).unwrap();
        assert_eq!(request.fault(), Ok(Fault::Lag { slots: 4 }));
        let request: FaultRequest =
            serde_json::from_str(r#"{"fault":"lag","delay_ms":4}"#).unwrap();
        assert!(request.fault().is_err());
        let request: FaultRequest =
            serde_json::from_str(r#"{"fault":"slow","delay_ms":250}"#).unwrap();
        assert_eq!(request.fault(), Ok(Fault::Slow { delay_ms: 250 }));
        let request: FaultRequest =
            serde_json::from_str(r#"{"fault":"kes","remaining":2}"#).unwrap();
        assert_eq!(request.fault(), Ok(Fault::Kes { remaining: 2 }));
        assert_eq!(
            "kes".parse::<Fault>(),
            Err(FaultError::MissingNumber("kes", "remaining"))
        );
    }
}

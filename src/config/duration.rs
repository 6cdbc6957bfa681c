//! Durations in config files: a number of seconds (`90`, as jmanager wrote them) or a string with a
//! unit (`"90s"`, `"30m"`, `"1h 30m"`, `"500ms"`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Serializes as a humantime string (`"1m 30s"`).
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*duration).to_string())
}

/// Deserializes seconds (integer or float) or a string with units.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

/// An optional duration (`#[serde(default, with = "duration::option")]`): absent is `None`.
pub mod option {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Serializes `Some` as the duration, `None` as nothing (none).
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Deserializes a present value as a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::deserialize(deserializer).map(Some)
    }
}

struct DurationVisitor;

const EXPECTED: &str =
    "a duration: a number of seconds or a string like \"90s\", \"30m\", \"500ms\"";

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(secs))
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
        u64::try_from(secs).map(Duration::from_secs).map_err(|_| {
            E::custom(format!(
                "expected {EXPECTED}, got the negative number {secs}"
            ))
        })
    }

    fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
        Duration::try_from_secs_f64(secs)
            .map_err(|_| E::custom(format!("expected {EXPECTED}, got {secs}")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        // A bare number in a string (from an environment variable) is seconds too.
        if let Ok(secs) = text.trim().parse::<f64>() {
            return self.visit_f64(secs);
        }
        humantime::parse_duration(text.trim())
            .map_err(|e| E::custom(format!("expected {EXPECTED}, got {text:?} ({e})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        d: Duration,
    }

    fn parse(json: &str) -> Result<Duration, String> {
        serde_json::from_str::<Holder>(&format!("{{\"d\": {json}}}"))
            .map(|h| h.d)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_seconds_and_units() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("\"90s\""), Ok(Duration::from_secs(90)));
        assert_eq!(parse("\"30m\""), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("\"500ms\""), Ok(Duration::from_millis(500)));
        assert_eq!(parse("\"120\""), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn rejects_with_what_was_expected() {
        for bad in ["-5", "\"soon\"", "true", "[1]"] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("a duration"), "{bad}: {error}");
        }
    }
}

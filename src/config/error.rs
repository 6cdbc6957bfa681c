//! Configuration problems: each names where it came from (a file or an environment variable), the
//! key path, and what was expected. Loading collects all of them before giving up.

use std::fmt;

/// One problem in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the value came from: a file path, or `environment NODEKEEPER__X__Y`.
    pub origin: String,
    /// The key path (`thresholds.tip_timeout`, `nodes[1].overrides.rest.listen`), empty for a
    /// problem with the whole file.
    pub key: String,
    /// What is wrong and what was expected; lowercase, no trailing period.
    pub message: String,
}

impl ConfigError {
    /// A problem at `key` of `origin`.
    pub fn new(
        origin: impl Into<String>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            origin: origin.into(),
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.key, self.message)
        }
    }
}

/// Every problem found; never empty when returned as an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Records a problem.
    pub fn push(&mut self, error: ConfigError) {
        self.0.push(error);
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Err(self)` when anything was recorded, else `Ok(value)`.
    pub fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The closest of `candidates` to `word`, when close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["tip_timeout", "tip_diff_threshold", "api_failures"];
        assert_eq!(did_you_mean("tip_timout", &keys), Some("tip_timeout"));
        assert_eq!(did_you_mean("api_failure", &keys), Some("api_failures"));
        assert_eq!(did_you_mean("colour", &keys), None);
    }

    #[test]
    fn displays_origin_key_and_message() {
        let error = ConfigError::new("a.toml", "api.listen", "expected an address");
        assert_eq!(error.to_string(), "a.toml: api.listen: expected an address");
        let error = ConfigError::new("a.toml", "", "cannot read: gone");
        assert_eq!(error.to_string(), "a.toml: cannot read: gone");
    }
}

//! `Secret`: a password or token read from the configuration, a file or the environment. Its
//! `Debug` and `Display` never show it, so a secret inside any settings struct cannot reach a log
//! line or an error message by accident; the one place that sends it calls `expose`.

use std::fmt;

/// A secret. Its `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_it() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(<redacted>)");
        assert_eq!(
            format!("{:#?}", ("user", secret.clone())),
            "(\n    \"user\",\n    <redacted>,\n)"
        );
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn equal_by_value() {
        assert_eq!(Secret::new("a"), Secret::new(String::from("a")));
        assert_ne!(Secret::new("a"), Secret::new("b"));
    }
}

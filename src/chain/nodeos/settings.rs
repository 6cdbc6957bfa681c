//! What the configuration resolves for one nodeos node (`chain = "nodeos"`), and what can be told
//! of it without asking it: whether it boots producing, and the arguments its generated program
//! gets.

use reqwest::Url;

use crate::chain::BootVerdict;
use crate::chain::jormungandr::command_words;

/// One nodeos node's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Its HTTP API base (`http-server-address`), e.g. `http://127.0.0.1:8888`.
    pub rest_url: Url,
    /// Our producer account when leadership is on (`[leadership] producer`).
    pub producer: Option<String>,
}

impl Settings {
    /// The arguments nodekeeper's generated program adds before the operator's: with leadership
    /// on, every node boots paused (`--pause-on-startup`) and only the chosen one is resumed.
    pub fn program_args(&self) -> Vec<String> {
        match self.producer {
            Some(_) => vec!["--pause-on-startup".to_string()],
            None => Vec::new(),
        }
    }

    /// Whether the node boots producing, from the command line its supervisord runs.
    pub fn boots_producing(&self, command: Option<&str>) -> BootVerdict {
        let Some(command) = command else {
            return BootVerdict::new(
                None,
                "its supervisord command is not read yet (until it is, it may)",
            );
        };
        let words = shell_words(command);
        if words.iter().any(|word| word == "--pause-on-startup") {
            return BootVerdict::new(
                Some(false),
                "its supervisord command passes --pause-on-startup",
            );
        }
        match program_name(&words) {
            Some(name) if name == "nodeos" => BootVerdict::new(
                Some(true),
                "its supervisord command runs nodeos without --pause-on-startup: it produces at once",
            ),
            other => BootVerdict::new(
                None,
                format!(
                    "its supervisord command runs {:?}, not nodeos itself: a wrapper may pass anything",
                    other.unwrap_or_default()
                ),
            ),
        }
    }
}

/// A supervisord command's words, a `sh -c '...'` script's words included.
pub(crate) fn shell_words(command: &str) -> Vec<String> {
    command_words(command)
        .into_iter()
        .flat_map(|word| {
            if word.contains(char::is_whitespace) {
                command_words(&word)
            } else {
                vec![word]
            }
        })
        .collect()
}

/// The file name of the program a command runs.
pub(crate) fn program_name(words: &[String]) -> Option<String> {
    let program = words.first()?;
    std::path::Path::new(program)
        .file_name()
        .and_then(|name| name.to_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_boots_paused_only_with_pause_on_startup() {
        let settings = Settings {
            rest_url: Url::parse("http://127.0.0.1:8888").unwrap(),
            producer: Some("nkpool".into()),
        };
        assert_eq!(settings.program_args(), ["--pause-on-startup"]);
        for (command, with_key) in [
            (
                Some("/usr/bin/nodeos --data-dir /d --pause-on-startup"),
                Some(false),
            ),
            (Some("nodeos --data-dir /d"), Some(true)),
            (
                Some("/bin/sh -c 'exec nodeos --pause-on-startup'"),
                Some(false),
            ),
            (Some("/opt/bp/start.sh"), None),
            (None, None),
        ] {
            assert_eq!(
                settings.boots_producing(command).with_key,
                with_key,
                "{command:?}"
            );
        }
        let without = Settings {
            producer: None,
            ..settings
        };
        assert!(without.program_args().is_empty());
    }
}

//! Whether a nodeos node boots producing, judged from the command line its supervisord runs:
//! nodeos itself with `--pause-on-startup` (or its short form `-x`) boots paused; nodeos without it
//! boots producing; anything else (a wrapper script, `sh -c ...`) may pass anything, so it cannot
//! be told. Pure.
//!
//! A nodeos command without the flag is taken to boot producing even though its `config.ini` may
//! say `pause-on-startup = true` (nodekeeper does not read that file): the verdict errs on the side
//! the policy treats as dangerous.

use std::path::Path;

use crate::chain::BootVerdict;
use crate::chain::command::command_words;

/// The verdict for `command` (`None`: not read yet).
pub fn boots_producing(command: Option<&str>) -> BootVerdict {
    let Some(command) = command else {
        return BootVerdict::new(
            None,
            "its supervisord command is not read yet (until it is, it may)",
        );
    };
    let words = command_words(command);
    let program = words.first().map(String::as_str).unwrap_or_default();
    let binary = Path::new(program)
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    if binary != "nodeos" {
        return BootVerdict::new(
            None,
            format!(
                "its supervisord command runs {binary:?}, not nodeos itself: a wrapper may or may \
                 not pass --pause-on-startup"
            ),
        );
    }
    if words[1..]
        .iter()
        .any(|word| word == "--pause-on-startup" || word == "-x")
    {
        BootVerdict::new(
            Some(false),
            "its supervisord command runs nodeos with --pause-on-startup: it boots paused",
        )
    } else {
        BootVerdict::new(
            Some(true),
            "its supervisord command runs nodeos without --pause-on-startup: it boots producing",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_like_supervisords() {
        assert_eq!(
            command_words(r#"/bin/sh -c 'exec nodeos --pause-on-startup' "a b" x\ y"#),
            vec![
                "/bin/sh",
                "-c",
                "exec nodeos --pause-on-startup",
                "a b",
                "x y"
            ]
        );
        assert!(command_words("   ").is_empty());
    }

    #[test]
    fn the_boot_verdict_comes_from_the_command() {
        for (command, expected) in [
            (None, None),
            (
                Some("/usr/local/bin/nodeos --data-dir /d --config-dir /c --pause-on-startup"),
                Some(false),
            ),
            (Some("nodeos -x --data-dir /d"), Some(false)),
            (
                Some("/usr/local/bin/nodeos --data-dir /d --config-dir /c"),
                Some(true),
            ),
            (Some("\"/opt/eosio/bin/nodeos\" -e -p nkpool"), Some(true)),
            // Only a flag of nodeos's own counts, not a value that looks like it.
            (Some("nodeos --agent-name=--pause-on-startup"), Some(true)),
            // A wrapper may pass anything.
            (Some("/home/bp/start.sh"), None),
            (Some("/home/bp/start.sh --pause-on-startup"), None),
            (Some("/bin/sh -c 'exec nodeos --pause-on-startup'"), None),
            (Some("nodeos-wrapper --pause-on-startup"), None),
            (Some(""), None),
        ] {
            let verdict = boots_producing(command);
            assert_eq!(verdict.with_key, expected, "{command:?}: {}", verdict.why);
            assert!(!verdict.why.is_empty());
        }
    }
}

//! The rules of `nodekeeper config edit`, pure: the problem header put on top of a rejected edit
//! (and stripped again before the next check, also from JSON, which has no comments), what an
//! edited copy means (unchanged, an abort, a new attempt), the name of the copy, and the diff of
//! two texts. The command itself (editor, files) is `cli::edit`.
//!
//! The abort rule: after a rejected attempt, saving the copy unchanged (or quitting without
//! saving) or emptying it aborts; the file is left as it was.

use std::path::{Path, PathBuf};

/// What every line of the problem header starts with.
pub const HEADER_PREFIX: &str = "# nodekeeper:";

/// `text` under a header naming `file` and every problem, and how to go on or abort.
pub fn with_problems(text: &str, file: &Path, problems: &[String]) -> String {
    let count = problems.len();
    let mut header = vec![format!(
        "{HEADER_PREFIX} {} was not changed: this edit has {count} problem{}:",
        file.display(),
        if count == 1 { "" } else { "s" }
    )];
    for problem in problems {
        // A problem is one line; should one ever hold a line break, every line stays a comment.
        for line in problem.lines() {
            header.push(format!("{HEADER_PREFIX}   {line}"));
        }
    }
    header.push(format!(
        "{HEADER_PREFIX} fix them and save to check again; to abort, save this unchanged or empty."
    ));
    header.push(format!(
        "{HEADER_PREFIX} lines starting with \"{HEADER_PREFIX}\" at the top are removed before checking."
    ));
    let mut out = header.join("\n");
    out.push('\n');
    out.push_str(text);
    out
}

/// `text` without the leading lines of a problem header.
pub fn strip_problems(text: &str) -> &str {
    let mut rest = text;
    while rest.starts_with(HEADER_PREFIX) {
        rest = match rest.find('\n') {
            Some(end) => &rest[end + 1..],
            None => "",
        };
    }
    rest
}

/// What an edited copy (its problem header stripped) asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The same as the file: nothing to do.
    Unchanged,
    /// Emptied: abort.
    Emptied,
    /// The same as the attempt rejected last time: abort.
    SameAsLastAttempt,
    /// A new text: check it.
    Check,
}

/// The verdict on `edited`, given the file's `original` text and the attempt rejected last,
/// if any. Trailing white space does not count (editors add a final newline).
pub fn judge(edited: &str, original: &str, last_attempt: Option<&str>) -> Verdict {
    let edited = edited.trim_end();
    if edited == original.trim_end() {
        Verdict::Unchanged
    } else if edited.trim().is_empty() {
        Verdict::Emptied
    } else if last_attempt.is_some_and(|last| last.trim_end() == edited) {
        Verdict::SameAsLastAttempt
    } else {
        Verdict::Check
    }
}

/// The copy edited in place of `path`: beside it (relative paths inside resolve the same), hidden,
/// with the same extension (the format goes by it), unique by `tag`: `DIR/.NAME.edit-TAG.EXT`.
pub fn copy_path(path: &Path, tag: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(extension) => format!(".{stem}.edit-{tag}.{}", extension.to_string_lossy()),
        None => format!(".{stem}.edit-{tag}"),
    };
    path.with_file_name(name)
}

/// `path` with `.bak` appended: where the previous version is kept.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

/// A unified diff from `old` to `new` with the two header names; `None` when they are equal.
pub fn text_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> Option<String> {
    if old == new {
        return None;
    }
    Some(
        similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(2)
            .header(old_name, new_name)
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_stripped_again_exactly() {
        for text in [
            "[supervisor]\nurl = \"x\"\n",
            "{\n  \"a\": 1\n}\n",
            "",
            "# a comment of the operator's\nkey = 1\n",
        ] {
            let problems = vec![
                "nodekeeper.toml: supervisor.url: unsupported scheme \"ftp\"".to_string(),
                "two\nlines".to_string(),
            ];
            let shown = with_problems(
                text,
                Path::new("/etc/nodekeeper/nodekeeper.toml"),
                &problems,
            );
            assert!(shown.starts_with(
                "# nodekeeper: /etc/nodekeeper/nodekeeper.toml was not changed: this edit has 2 problems:\n\
                 # nodekeeper:   nodekeeper.toml: supervisor.url: unsupported scheme \"ftp\"\n\
                 # nodekeeper:   two\n# nodekeeper:   lines\n"
            ), "{shown}");
            assert!(shown.contains("to abort, save this unchanged or empty"));
            assert_eq!(strip_problems(&shown), text);
            assert_eq!(strip_problems(text), text, "nothing to strip");
        }
        // Only the leading block goes; a header line further down is the operator's.
        let text = "# nodekeeper: x\nkey = 1\n# nodekeeper: y\n";
        assert_eq!(strip_problems(text), "key = 1\n# nodekeeper: y\n");
        assert_eq!(strip_problems("# nodekeeper: no newline"), "");
        // A comment that merely starts with the name stays.
        let text = "# nodekeeper's configuration\n";
        assert_eq!(strip_problems(text), text);
    }

    #[test]
    fn verdicts() {
        let original = "a = 1\n";
        assert_eq!(judge("a = 1\n", original, None), Verdict::Unchanged);
        assert_eq!(judge("a = 1", original, None), Verdict::Unchanged);
        assert_eq!(judge("a = 1\n\n", original, None), Verdict::Unchanged);
        assert_eq!(judge("a = 2\n", original, None), Verdict::Check);
        assert_eq!(judge("", original, None), Verdict::Emptied);
        assert_eq!(judge(" \n\n", original, Some("a = 2\n")), Verdict::Emptied);
        assert_eq!(
            judge("a = 2\n", original, Some("a = 2")),
            Verdict::SameAsLastAttempt
        );
        assert_eq!(judge("a = 3\n", original, Some("a = 2\n")), Verdict::Check);
        // Going back to the file as it is ends the edit with nothing to do.
        assert_eq!(
            judge("a = 1\n", original, Some("a = 2\n")),
            Verdict::Unchanged
        );
    }

    #[test]
    fn the_copy_sits_beside_the_file_with_its_extension() {
        assert_eq!(
            copy_path(Path::new("/etc/nodekeeper/nodekeeper.toml"), "42"),
            Path::new("/etc/nodekeeper/.nodekeeper.edit-42.toml")
        );
        assert_eq!(
            copy_path(Path::new("config_template.json"), "1-2"),
            Path::new(".config_template.edit-1-2.json")
        );
        assert_eq!(
            backup_path(Path::new("/x/jmanager_config.json")),
            Path::new("/x/jmanager_config.json.bak")
        );
    }

    #[test]
    fn diff_of_two_texts() {
        assert_eq!(text_diff("a\n", "a\n", "old", "new"), None);
        let diff = text_diff("a\nb\n", "a\nc\n", "old", "new").unwrap();
        assert!(diff.starts_with("--- old\n+++ new\n"), "{diff}");
        assert!(diff.contains("-b\n+c\n"), "{diff}");
    }
}

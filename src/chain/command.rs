//! What can be read from the command line a supervisord program runs, as supervisord splits it:
//! its words, a `sh -c '...'` script's words included, and the program it runs. Shared by the
//! adapters' boot verdicts. Pure.

/// A command line split into words the way supervisord does (shell-like: whitespace, with single
/// and double quotes and backslashes).
pub fn command_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `command`'s words with a `sh -c '...'` script's words spliced in.
pub fn shell_words(command: &str) -> Vec<String> {
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

/// The file name of the program `words` run (`/usr/bin/nodeos` -> `nodeos`).
pub fn program_name(words: &[String]) -> Option<String> {
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
    fn command_lines_split_like_supervisords() {
        assert_eq!(
            command_words(r#"/bin/sh -c 'exec jormungandr --secret "/a b/s.yaml"' x\ y"#),
            vec![
                "/bin/sh",
                "-c",
                r#"exec jormungandr --secret "/a b/s.yaml""#,
                "x y"
            ]
        );
        assert!(command_words("   ").is_empty());
    }

    #[test]
    fn a_scripts_words_count_and_the_program_is_its_file_name() {
        let words = shell_words("/bin/sh -c 'exec /usr/bin/nodeos --pause-on-startup'");
        assert_eq!(
            words,
            [
                "/bin/sh",
                "-c",
                "exec",
                "/usr/bin/nodeos",
                "--pause-on-startup"
            ]
        );
        assert_eq!(program_name(&words).as_deref(), Some("sh"));
        assert_eq!(program_name(&[]), None);
    }
}

//! Short, safe descriptions for messages: an error with its causes on one line, the innermost cause
//! of an error chain, the I/O error kind inside it, and quoted excerpts of foreign data (never a whole body, which could be huge or hold
//! secrets).

use std::error::Error;
use std::io;

/// The kind of the first `std::io::Error` in `error`'s source chain (connection refused, not found,
/// permission denied...).
pub fn io_error_kind(error: &(dyn Error + 'static)) -> Option<io::ErrorKind> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            return Some(io_error.kind());
        }
        source = cause.source();
    }
    None
}

/// Whether `error`'s source chain holds an I/O error of nodekeeper's own host running out of a
/// resource (too many open files in the process or the system, no buffer space, no memory): it
/// says nothing about the peer that was asked.
pub fn is_local_exhaustion(error: &(dyn Error + 'static)) -> bool {
    // Linux errno values: ENOMEM 12, ENFILE 23, EMFILE 24, ENOBUFS 105.
    const EXHAUSTED: [i32; 4] = [12, 23, 24, 105];
    let mut source: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io_error) = cause.downcast_ref::<io::Error>()
            && (io_error
                .raw_os_error()
                .is_some_and(|code| EXHAUSTED.contains(&code))
                || io_error.kind() == io::ErrorKind::OutOfMemory)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The message of the innermost cause of `error` (the outer layers only repeat the URL).
pub fn innermost(error: &(dyn Error + 'static)) -> String {
    let mut last: &dyn Error = error;
    while let Some(cause) = last.source() {
        last = cause;
    }
    last.to_string()
}

/// `error` and each of its causes, outermost first, joined by `: ` (what `{:#}` of an
/// `anyhow::Error` prints), for messages that are plain text.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `text` quoted and cut to `limit` characters, with `…` when cut.
pub fn excerpt(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(limit).collect();
        format!("{head:?}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connect failed")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn running_out_of_descriptors_is_local_a_refusal_is_not() {
        let emfile = Wrapped(io::Error::from_raw_os_error(24));
        assert!(is_local_exhaustion(&emfile));
        assert!(is_local_exhaustion(&io::Error::from_raw_os_error(23)));
        let refused = Wrapped(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(!is_local_exhaustion(&refused));
    }

    #[test]
    fn excerpts_are_quoted_and_cut() {
        assert_eq!(excerpt("abc", 5), "\"abc\"");
        assert_eq!(excerpt("abcdefgh", 3), "\"abc\"…");
        assert_eq!(excerpt("a\nb", 5), "\"a\\nb\"");
    }

    #[test]
    fn finds_the_io_kind_and_innermost_cause() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("outer")
            }
        }
        impl Error for Outer {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(
            io_error_kind(&error),
            Some(io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(innermost(&error), "refused");
        assert_eq!(chain(&error), "outer: refused");
        assert_eq!(chain(&error.0), "refused");
    }
}

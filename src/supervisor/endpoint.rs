//! Where supervisord listens: an `http://host:port[/RPC2]` URL or a `unix:///path.sock` socket.

use std::fmt;
use std::path::PathBuf;

/// A parsed supervisord endpoint. Displayed as the URL the operator gave, normalised
/// (`http://127.0.0.1:9001/RPC2`, `unix:///run/supervisor.sock`), never with credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `[inet_http_server]`: the full URL of the XML-RPC handler, e.g. `http://127.0.0.1:9001/RPC2`.
    Http(reqwest::Url),
    /// `[unix_http_server]`: the path of the socket file.
    Unix(PathBuf),
}

/// Why an endpoint string was rejected; a usage error (exit code 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// Not a URL at all, or an unsupported scheme.
    #[error(
        "invalid supervisord URL {url:?}: {why} (expected http://HOST:PORT/RPC2 or unix:///PATH.sock)"
    )]
    Invalid {
        /// What the operator gave.
        url: String,
        /// What is wrong with it.
        why: String,
    },
}

impl Endpoint {
    /// Parses `http://host:port`, `http://host:port/RPC2` or `unix:///abs/path.sock`.
    ///
    /// Credentials inside the URL are refused: they would end up in logs and process lists; the
    /// user name and password have their own options.
    pub fn parse(text: &str) -> Result<Endpoint, EndpointError> {
        // Whatever is wrong, the URL is shown without its user name and password: this message
        // is printed and may be logged.
        let invalid = |why: &str| EndpointError::Invalid {
            url: crate::http::redact_url(text),
            why: why.to_string(),
        };
        if let Some(path) = text.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid("the socket path is empty"));
            }
            if !path.starts_with('/') {
                return Err(invalid("the socket path must be absolute (unix:///path)"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if !text.contains("://") {
            return Err(invalid("no scheme"));
        }
        let mut url = reqwest::Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(invalid(
                    "https is not supported; bind supervisord to loopback or use its unix socket",
                ));
            }
            other => return Err(invalid(&format!("unsupported scheme {other:?}"))),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials do not belong in the URL; use --user and the password file or \
                 environment",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a query or fragment is not expected"));
        }
        if url.path() == "/" || url.path().is_empty() {
            url.set_path("/RPC2");
        }
        Ok(Endpoint::Http(url))
    }

    /// The URL the HTTP request is sent to. A unix socket still needs an HTTP request target; the
    /// host part is only a placeholder there.
    pub(crate) fn request_url(&self) -> reqwest::Url {
        match self {
            Endpoint::Http(url) => url.clone(),
            Endpoint::Unix(_) => {
                reqwest::Url::parse("http://localhost/RPC2").expect("constant URL parses")
            }
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Http(url) => write!(f, "{url}"),
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_operators_write() {
        let check = |text: &str, shown: &str| {
            let endpoint = Endpoint::parse(text).unwrap();
            assert_eq!(endpoint.to_string(), shown, "{text}");
        };
        check("http://127.0.0.1:9001", "http://127.0.0.1:9001/RPC2");
        check("http://127.0.0.1:9001/", "http://127.0.0.1:9001/RPC2");
        check("http://127.0.0.1:9001/RPC2", "http://127.0.0.1:9001/RPC2");
        check("http://localhost:9001/RPC2", "http://localhost:9001/RPC2");
        check("unix:///tmp/supervisor.sock", "unix:///tmp/supervisor.sock");
    }

    #[test]
    fn rejects_what_it_cannot_serve_with_a_reason() {
        for (text, why) in [
            ("", "no scheme"),
            ("127.0.0.1:9001", "no scheme"),
            ("http://", "empty host"),
            ("https://127.0.0.1:9001/RPC2", "https is not supported"),
            ("ftp://host/", "unsupported scheme"),
            (
                "http://user:secret@127.0.0.1:9001",
                "credentials do not belong",
            ),
            ("unix://", "empty"),
            ("unix://relative.sock", "absolute"),
            ("http://127.0.0.1:9001/RPC2?x=1", "query"),
            // Refused for another reason, the credentials are still not echoed.
            (
                "https://user:secret@127.0.0.1:9001/RPC2",
                "https is not supported",
            ),
            ("ftp://user:secret@host/", "unsupported scheme"),
            ("http://user:secret@[::1", "invalid"),
        ] {
            let error = Endpoint::parse(text).unwrap_err().to_string();
            assert!(error.contains(why), "{text:?}: {error}");
            assert!(!error.contains("secret"), "password leaked: {error}");
        }
    }
}

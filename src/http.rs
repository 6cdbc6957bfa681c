//! What the HTTP clients (supervisord, node probes, PoolTool, the API client) share: the one
//! client builder (no proxy, nodekeeper's user agent, no redirect from https to http), reading an
//! answer's body under a size limit, the JSON GET of the node probe and the reference source, and
//! two helpers for every URL the configuration holds: `is_loopback_host` (no DNS) and
//! `redact_url` (a URL's user name and password never reach a message).

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the limit (announced or streamed).
    TooLarge,
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

/// Reads `response`'s body, at most `limit` bytes of it.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let capacity = response
        .content_length()
        .map_or(8 * 1024, |length| length as usize);
    let mut body = Vec::with_capacity(capacity);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why a JSON GET produced no body.
#[derive(Debug)]
pub enum GetError {
    /// The connection failed (before or while reading).
    Transport(reqwest::Error),
    /// An HTTP status other than 200.
    Status(u16),
    /// Larger than the limit.
    TooLarge,
}

/// `GET url` asking for JSON; the body of a 200 answer, at most `limit` bytes of it.
pub async fn get_json(
    client: &reqwest::Client,
    url: reqwest::Url,
    limit: usize,
) -> Result<Vec<u8>, GetError> {
    let response = client
        .get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(GetError::Transport)?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(GetError::Status(status.as_u16()));
    }
    read_limited(response, limit).await.map_err(|e| match e {
        BodyError::TooLarge => GetError::TooLarge,
        BodyError::Transport(e) => GetError::Transport(e),
    })
}

/// Whether `host` (a URL's host, or an address without its port) names this machine without
/// asking DNS: `localhost`, a name under `.localhost` (RFC 6761), or a loopback IP address
/// (`127.0.0.0/8`, `::1`, also written in brackets or as an IPv4-mapped IPv6 address). A trailing
/// dot is allowed. Anything else, including a name that might resolve to loopback, is not.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = unbracketed.parse::<std::net::IpAddr>() {
        return match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        };
    }
    let host = host.to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// `url` as it may be shown in a message, a log line or `config show`: any user name and
/// password (`scheme://user:pass@host`) replaced by nothing. Works on text that is not a valid URL
/// too (the credentials of a URL refused for another reason must not be echoed either): the
/// userinfo is whatever sits between `://` and the last `@` of the authority.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => format!("{}{}", &url[..authority_start], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Whether a redirect to `next`, after the requests to `previous` (the first one included), may be
/// followed: never from `https` to anything else (a downgrade would send in clear what was meant
/// to be encrypted), and at most `max` of them. `Err` says why not.
pub fn redirect_verdict(
    previous: &[reqwest::Url],
    next: &reqwest::Url,
    max: usize,
) -> Result<(), String> {
    if previous.iter().any(|url| url.scheme() == "https") && next.scheme() != "https" {
        return Err(format!(
            "refused a redirect from https to {}",
            redact_url(next.as_str())
        ));
    }
    if previous.len() > max {
        return Err(format!("more than {max} redirects"));
    }
    Ok(())
}

/// The redirect policy of every HTTP client of nodekeeper: [`redirect_verdict`] with `max`.
pub fn redirect_policy(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        match redirect_verdict(attempt.previous(), attempt.url(), max) {
            Ok(()) => attempt.follow(),
            Err(why) => attempt.error(why),
        }
    })
}

/// The start of every HTTP client nodekeeper builds: no proxy from the environment,
/// nodekeeper's user agent, and [`redirect_policy`] (at most 5, never https → http). Callers add
/// their own settings (timeouts, pooling, a socket) and may narrow the redirects further.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .user_agent(concat!("nodekeeper/", env!("CARGO_PKG_VERSION")))
        .redirect(redirect_policy(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_known_without_dns() {
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "node.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.com",
            "localhost.example.com",
            "mylocalhost",
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "192.168.1.1",
            "[2001:db8::1]",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn userinfo_is_cut_from_urls_valid_or_not() {
        for (url, shown) in [
            (
                "http://user:hunter2@host:9001/RPC2",
                "http://host:9001/RPC2",
            ),
            ("https://hunter2@host", "https://host"),
            ("ftp://u:p@h/x?y=1", "ftp://h/x?y=1"),
            ("http://u:p@[::1]:80", "http://[::1]:80"),
            ("http://u:p@@host/a@b", "http://host/a@b"),
            ("http://u:hunter2@ho st:x", "http://ho st:x"),
            ("http://host/path@x", "http://host/path@x"),
            ("unix:///run/s.sock", "unix:///run/s.sock"),
            ("no scheme@host", "no scheme@host"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    /// A server answering every request with a redirect to `location`, then 200 at `/done`.
    async fn redirecting(location: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let location = location.clone();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let n = stream.read(&mut buffer).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buffer[..n]).to_string();
                    let answer = if request.starts_with("GET /done") {
                        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                            .to_string()
                    } else {
                        format!(
                            "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                    };
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        format!("http://{address}")
    }

    #[test]
    fn a_redirect_from_https_to_http_is_refused() {
        let url = |text: &str| reqwest::Url::parse(text).unwrap();
        let https = url("https://pooltool.example/a");
        let http = url("http://user:pw@pooltool.example/b");
        let why = redirect_verdict(std::slice::from_ref(&https), &http, 5).unwrap_err();
        assert_eq!(
            why,
            "refused a redirect from https to http://pooltool.example/b"
        );
        // Once https, always https, even through an https hop.
        let hops = [https.clone(), url("https://other.example/")];
        assert!(redirect_verdict(&hops, &http, 5).is_err());
        assert_eq!(
            redirect_verdict(std::slice::from_ref(&https), &https, 5),
            Ok(())
        );
        assert_eq!(
            redirect_verdict(std::slice::from_ref(&http), &https, 5),
            Ok(())
        );
        assert_eq!(
            redirect_verdict(std::slice::from_ref(&http), &http, 5),
            Ok(())
        );
        let many = vec![http.clone(); 6];
        assert!(redirect_verdict(&many, &http, 5).is_err());
    }

    #[tokio::test]
    async fn the_clients_follow_an_http_redirect() {
        let client = client_builder().build().unwrap();
        let done = redirecting(String::new()).await;
        let start = redirecting(format!("{done}/done")).await;
        let answer = client.get(format!("{start}/start")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
    }
}

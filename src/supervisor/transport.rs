//! One XML-RPC exchange over HTTP: encode with `dxr`, POST to `/RPC2` (TCP or unix socket), enforce
//! the call's timeout and the response size limit, classify HTTP-level failures, decode the answer.
//!
//! Over TCP no connection is kept idle for reuse: supervisord writes answers in 4 KB chunks without
//! TCP_NODELAY, so a reused connection stalls ~40 ms (Nagle + delayed ACK) on any answer over 4 KB,
//! while a fresh loopback connection costs ~0.1 ms. Over a unix socket there is no Nagle, so the
//! connection is kept.

use std::io;
use std::time::Duration;

use dxr::{FaultResponse, MethodCall, MethodResponse, Value};

use super::endpoint::Endpoint;
use super::error::{Fault, SupervisorError};
use crate::describe;

/// How long to wait for a TCP connection or a unix socket to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP side of the client: one per endpoint and set of credentials.
#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    url: reqwest::Url,
    shown: String,
    credentials: Option<(String, String)>,
    max_response_bytes: usize,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is deliberately left out.
        f.debug_struct("Transport")
            .field("endpoint", &self.shown)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(
        endpoint: &Endpoint,
        credentials: Option<(String, String)>,
        max_response_bytes: usize,
    ) -> Result<Transport, SupervisorError> {
        let builder = crate::http::client_builder().connect_timeout(CONNECT_TIMEOUT);
        let builder = match endpoint {
            Endpoint::Http(_) => builder.pool_max_idle_per_host(0).tcp_nodelay(true),
            Endpoint::Unix(path) => builder.unix_socket(path.clone()),
        };
        let http = builder.build().map_err(|e| SupervisorError::Transport {
            endpoint: endpoint.to_string(),
            method: String::from("(client setup)"),
            why: e.to_string(),
        })?;
        Ok(Transport {
            http,
            url: endpoint.request_url(),
            shown: endpoint.to_string(),
            credentials,
            max_response_bytes,
        })
    }

    /// The endpoint as displayed in messages.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Calls `method` and returns its value; a fault is `SupervisorError::Fault`.
    pub(crate) async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value, SupervisorError> {
        let body = encode(method, params).map_err(|why| SupervisorError::Transport {
            endpoint: self.shown.clone(),
            method: method.to_string(),
            why,
        })?;
        let bytes = match tokio::time::timeout(timeout, self.exchange(method, body)).await {
            Ok(result) => result?,
            Err(_elapsed) => {
                return Err(SupervisorError::Timeout {
                    endpoint: self.shown.clone(),
                    method: method.to_string(),
                    timeout,
                });
            }
        };
        match decode(&bytes) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(fault)) => Err(SupervisorError::Fault {
                method: method.to_string(),
                fault,
            }),
            Err(detail) => Err(SupervisorError::Malformed {
                endpoint: self.shown.clone(),
                method: method.to_string(),
                detail,
            }),
        }
    }

    /// Sends the request and reads the body, at most `max_response_bytes` of it.
    async fn exchange(&self, method: &str, body: String) -> Result<Vec<u8>, SupervisorError> {
        let mut request = self
            .http
            .post(self.url.clone())
            .header("Content-Type", "text/xml")
            .body(body);
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.classify(method, &e))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(SupervisorError::Unauthorized {
                endpoint: self.shown.clone(),
            });
        }
        if status != reqwest::StatusCode::OK {
            return Err(SupervisorError::HttpStatus {
                endpoint: self.shown.clone(),
                method: method.to_string(),
                status: status.as_u16(),
            });
        }
        crate::http::read_limited(response, self.max_response_bytes)
            .await
            .map_err(|e| match e {
                crate::http::BodyError::TooLarge => SupervisorError::TooLarge {
                    endpoint: self.shown.clone(),
                    method: method.to_string(),
                    limit: self.max_response_bytes,
                },
                crate::http::BodyError::Transport(e) => self.classify(method, &e),
            })
    }

    /// Turns a reqwest error into the taxonomy: refused / missing socket / permission are
    /// `Unreachable`; anything else is a `Transport` failure with the innermost cause.
    fn classify(&self, method: &str, error: &reqwest::Error) -> SupervisorError {
        let io_kind = describe::io_error_kind(error);
        let unreachable = |why: &str| SupervisorError::Unreachable {
            endpoint: self.shown.clone(),
            why: why.to_string(),
        };
        match io_kind {
            Some(io::ErrorKind::ConnectionRefused) => return unreachable("connection refused"),
            Some(io::ErrorKind::NotFound) => return unreachable("no such socket file"),
            Some(io::ErrorKind::PermissionDenied) => return unreachable("permission denied"),
            _ => {}
        }
        if error.is_connect() {
            if error.is_timeout() {
                return unreachable("connection timed out");
            }
            return unreachable(&describe::innermost(error));
        }
        SupervisorError::Transport {
            endpoint: self.shown.clone(),
            method: method.to_string(),
            why: describe::innermost(error),
        }
    }
}

/// The request body: `<?xml version="1.0"?>` and the method call.
pub(crate) fn encode(method: &str, params: Vec<Value>) -> Result<String, String> {
    let call = MethodCall {
        name: method.into(),
        params,
    };
    let xml = call.to_xml().map_err(|e| e.to_string())?;
    Ok(format!("<?xml version=\"1.0\"?>\n{xml}\n"))
}

/// Decodes a response body: `Ok(Ok(value))`, `Ok(Err(fault))`, or `Err(why)` when it is not an
/// XML-RPC response. Never panics, whatever the bytes.
pub(crate) fn decode(bytes: &[u8]) -> Result<Result<Value, Fault>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {}, body of {} bytes)",
            e.valid_up_to(),
            bytes.len()
        )
    })?;
    // A fault is a `<fault>` element; try it first, as dxr's own client does, because a fault
    // body would otherwise fail to parse as a `<params>` response with a less helpful error.
    if text.contains("<fault>")
        && let Ok(fault) = FaultResponse::from_xml(text)
    {
        let fault = fault.fault;
        return Ok(Err(Fault::from_code(fault.code(), fault.string())));
    }
    match MethodResponse::from_xml(text) {
        Ok(response) => Ok(Ok(response.value)),
        Err(_) => Err(format!(
            "not an XML-RPC methodResponse (body of {} bytes starting {})",
            bytes.len(),
            excerpt(text)
        )),
    }
}

/// The first characters of a body, whitespace collapsed, quoted: enough to recognise an HTML error
/// page or a wrong service, never the whole body.
fn excerpt(text: &str) -> String {
    describe::excerpt(&text.split_whitespace().collect::<Vec<_>>().join(" "), 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET_STATE: &str = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n\
        <value><struct>\n<member>\n<name>statecode</name>\n<value><int>1</int></value>\n</member>\n\
        <member>\n<name>statename</name>\n<value><string>RUNNING</string></value>\n</member>\n\
        </struct></value>\n</param>\n</params>\n</methodResponse>\n";

    const FAULT: &str = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n\
        <member>\n<name>faultCode</name>\n<value><int>10</int></value>\n</member>\n<member>\n\
        <name>faultString</name>\n<value><string>BAD_NAME: nosuch</string></value>\n</member>\n\
        </struct></value>\n</fault>\n</methodResponse>\n";

    const TAIL: &str = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n\
        <value><array><data>\n<value><string>dying\ndying\n</string></value>\n\
        <value><int>36</int></value>\n<value><boolean>1</boolean></value>\n</data></array></value>\n\
        </param>\n</params>\n</methodResponse>\n";

    #[test]
    fn decodes_supervisords_exact_bodies() {
        let value = decode(GET_STATE.as_bytes()).unwrap().unwrap();
        assert_eq!(
            crate::supervisor::SupervisorState::from_value(&value).unwrap(),
            crate::supervisor::SupervisorState::Running
        );
        let fault = decode(FAULT.as_bytes()).unwrap().unwrap_err();
        assert_eq!(fault, Fault::BadName("nosuch".into()));
        let tail = decode(TAIL.as_bytes()).unwrap().unwrap();
        let chunk = crate::supervisor::TailChunk::from_value(&tail).unwrap();
        assert_eq!(chunk.data, "dying\ndying\n");
        assert_eq!((chunk.next_offset, chunk.overflow), (36, true));
    }

    #[test]
    fn an_html_error_page_is_malformed_with_a_short_excerpt() {
        let html = "<html><head><title>Error response</title></head><body><h1>Error response</h1>\
            <p>Error code 400.</p><p>Message: Bad Request.</p>"
            .repeat(100);
        let why = decode(html.as_bytes()).unwrap_err();
        assert!(why.starts_with("not an XML-RPC methodResponse"), "{why}");
        assert!(why.len() < 200, "excerpt too long: {why}");
    }

    #[test]
    fn non_utf8_is_malformed() {
        let why = decode(&[0x3c, 0xff, 0xfe, 0x00]).unwrap_err();
        assert!(why.contains("not UTF-8"), "{why}");
    }

    #[test]
    fn encodes_a_call_supervisord_accepts() {
        let body = encode(
            "supervisor.startProcess",
            vec![Value::String("node1".into()), Value::Boolean(true)],
        )
        .unwrap();
        assert!(body.starts_with("<?xml version=\"1.0\"?>"));
        assert!(body.contains("<methodName>supervisor.startProcess</methodName>"));
        assert!(body.contains("node1"));
    }

    /// Random bytes and random mutations of real bodies: decoding must return, never panic.
    #[test]
    fn decode_never_panics_on_any_bytes() {
        let seeds = [GET_STATE, FAULT, TAIL, "", "<", "<methodResponse>"];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // xorshift64*: deterministic, no dependency.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for round in 0..20_000 {
            let seed = seeds[round % seeds.len()].as_bytes();
            let mut bytes = seed.to_vec();
            let n_mutations = 1 + (next() % 8) as usize;
            for _ in 0..n_mutations {
                let op = next() % 4;
                let at = if bytes.is_empty() {
                    0
                } else {
                    (next() as usize) % bytes.len()
                };
                match op {
                    0 if !bytes.is_empty() => bytes[at] = next() as u8,
                    1 => bytes.insert(at, b"<>/\"'&;"[(next() % 7) as usize]),
                    2 if !bytes.is_empty() => {
                        bytes.truncate(at);
                    }
                    _ => bytes.insert(at, next() as u8),
                }
            }
            let _ = decode(&bytes);
        }
    }
}

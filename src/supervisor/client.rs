//! The typed methods of supervisord's XML-RPC API, on top of the transport.

use std::time::Duration;

use dxr::Value;

use super::endpoint::Endpoint;
use super::error::{Fault, SupervisorError};
use super::transport::Transport;
use super::types::{
    GroupResult, ProcessInfo, ProgramConfig, ReloadDiff, ShapeError, SupervisorState, TailChunk,
    as_bool, as_int, as_string,
};

/// Limits of a client. Every call has a timeout; calls that block in supervisord until a process
/// is up or down (`wait=true`) get the longer one, which must exceed the programs' `startsecs` and
/// `stopwaitsecs` (a client-side timeout does not cancel the action in supervisord).
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Timeout of calls that answer at once (state, info, logs, reread).
    pub timeout: Duration,
    /// Timeout of start/stop calls made with `wait=true`.
    pub wait_timeout: Duration,
    /// Answers larger than this many bytes are refused (`TooLarge`) without being read further.
    pub max_response_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(300),
            // ~1.3 KB per process: 64 MiB is far above any real supervisord, and bounded.
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The result of one call inside `system.multicall`: a value or a fault.
pub type CallResult = Result<Value, Fault>;

/// An async client of one supervisord. Cheap to clone; holds no connection open over TCP.
#[derive(Clone, Debug)]
pub struct Client {
    transport: Transport,
    options: ClientOptions,
}

impl Client {
    /// A client of `endpoint`, authenticating as `user` with `password` when given.
    pub fn new(
        endpoint: &Endpoint,
        credentials: Option<(String, String)>,
        options: ClientOptions,
    ) -> Result<Client, SupervisorError> {
        let transport = Transport::new(endpoint, credentials, options.max_response_bytes)?;
        Ok(Client { transport, options })
    }

    /// The endpoint as displayed in messages (`http://127.0.0.1:9001/RPC2`, `unix:///x.sock`).
    pub fn endpoint(&self) -> &str {
        self.transport.shown()
    }

    async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, SupervisorError> {
        self.transport
            .call(method, params, self.options.timeout)
            .await
    }

    async fn call_waiting(
        &self,
        method: &str,
        params: Vec<Value>,
        wait: bool,
    ) -> Result<Value, SupervisorError> {
        let timeout = if wait {
            self.options.wait_timeout
        } else {
            self.options.timeout
        };
        self.transport.call(method, params, timeout).await
    }

    fn shape<T>(&self, method: &str, result: Result<T, ShapeError>) -> Result<T, SupervisorError> {
        result.map_err(|e| SupervisorError::Malformed {
            endpoint: self.endpoint().to_string(),
            method: method.to_string(),
            detail: e.0,
        })
    }

    async fn call_bool(&self, method: &str, params: Vec<Value>) -> Result<bool, SupervisorError> {
        let value = self.call(method, params).await?;
        self.shape(method, as_bool(&value, method))
    }

    /// `supervisor.getState`: supervisord's own state.
    pub async fn get_state(&self) -> Result<SupervisorState, SupervisorError> {
        const METHOD: &str = "supervisor.getState";
        let value = self.call(METHOD, vec![]).await?;
        self.shape(METHOD, SupervisorState::from_value(&value))
    }

    /// `supervisor.getPID`: supervisord's process id.
    pub async fn get_pid(&self) -> Result<i32, SupervisorError> {
        const METHOD: &str = "supervisor.getPID";
        let value = self.call(METHOD, vec![]).await?;
        self.shape(METHOD, as_int(&value, METHOD))
    }

    /// `supervisor.getAllProcessInfo`: every process, sorted by group then name. Costs supervisord
    /// ~0.5 ms of CPU per process; prefer [`Client::get_process_infos`] for a few known names.
    pub async fn get_all_process_info(&self) -> Result<Vec<ProcessInfo>, SupervisorError> {
        const METHOD: &str = "supervisor.getAllProcessInfo";
        let value = self.call(METHOD, vec![]).await?;
        self.shape(METHOD, ProcessInfo::list_from_value(&value))
    }

    /// `supervisor.getAllConfigInfo`: every program's configuration (name, group, command).
    pub async fn get_all_config_info(&self) -> Result<Vec<ProgramConfig>, SupervisorError> {
        const METHOD: &str = "supervisor.getAllConfigInfo";
        let value = self.call(METHOD, vec![]).await?;
        self.shape(METHOD, ProgramConfig::list_from_value(&value))
    }

    /// `supervisor.getProcessInfo(name)`; `name` is `proc` or `group:proc`.
    pub async fn get_process_info(&self, name: &str) -> Result<ProcessInfo, SupervisorError> {
        const METHOD: &str = "supervisor.getProcessInfo";
        let value = self.call(METHOD, vec![Value::String(name.into())]).await?;
        self.shape(METHOD, ProcessInfo::from_value(&value))
    }

    /// The info of several processes in one request (`system.multicall` of `getProcessInfo`),
    /// in the order of `names`; an unknown name is `Err(Fault::BadName)` in its place.
    pub async fn get_process_infos(
        &self,
        names: &[String],
    ) -> Result<Vec<Result<ProcessInfo, Fault>>, SupervisorError> {
        const METHOD: &str = "supervisor.getProcessInfo";
        let calls = names
            .iter()
            .map(|name| (METHOD.to_string(), vec![Value::String(name.clone())]))
            .collect();
        let results = self.multicall(calls).await?;
        results
            .into_iter()
            .map(|result| match result {
                Ok(value) => self.shape(METHOD, ProcessInfo::from_value(&value)).map(Ok),
                Err(fault) => Ok(Err(fault)),
            })
            .collect()
    }

    /// `supervisor.startProcess(name, wait)`. With `wait`, returns once the process is RUNNING
    /// (after `startsecs`) or failed (SPAWN_ERROR, ABNORMAL_TERMINATION).
    pub async fn start_process(&self, name: &str, wait: bool) -> Result<bool, SupervisorError> {
        const METHOD: &str = "supervisor.startProcess";
        let params = vec![Value::String(name.into()), Value::Boolean(wait)];
        let value = self.call_waiting(METHOD, params, wait).await?;
        self.shape(METHOD, as_bool(&value, METHOD))
    }

    /// `supervisor.stopProcess(name, wait)`. With `wait`, returns once the process is STOPPED
    /// (supervisord SIGKILLs it after `stopwaitsecs`).
    pub async fn stop_process(&self, name: &str, wait: bool) -> Result<bool, SupervisorError> {
        const METHOD: &str = "supervisor.stopProcess";
        let params = vec![Value::String(name.into()), Value::Boolean(wait)];
        let value = self.call_waiting(METHOD, params, wait).await?;
        self.shape(METHOD, as_bool(&value, METHOD))
    }

    /// `supervisor.startAllProcesses(wait)`: starts every process not already running.
    pub async fn start_all_processes(
        &self,
        wait: bool,
    ) -> Result<Vec<GroupResult>, SupervisorError> {
        const METHOD: &str = "supervisor.startAllProcesses";
        let value = self
            .call_waiting(METHOD, vec![Value::Boolean(wait)], wait)
            .await?;
        self.shape(METHOD, GroupResult::list_from_value(&value))
    }

    /// `supervisor.stopAllProcesses(wait)`: stops every running process.
    pub async fn stop_all_processes(
        &self,
        wait: bool,
    ) -> Result<Vec<GroupResult>, SupervisorError> {
        const METHOD: &str = "supervisor.stopAllProcesses";
        let value = self
            .call_waiting(METHOD, vec![Value::Boolean(wait)], wait)
            .await?;
        self.shape(METHOD, GroupResult::list_from_value(&value))
    }

    /// `supervisor.signalProcess(name, signal)`; `signal` is a name (`HUP`) or a number.
    pub async fn signal_process(&self, name: &str, signal: &str) -> Result<bool, SupervisorError> {
        self.call_bool(
            "supervisor.signalProcess",
            vec![Value::String(name.into()), Value::String(signal.into())],
        )
        .await
    }

    /// `supervisor.tailProcessStdoutLog(name, offset, length)`. Mind its semantics: it returns the
    /// *last* `length` bytes whenever fewer than `length` new bytes follow `offset`; with
    /// `length = 0` it returns no data and the current size as `next_offset`.
    pub async fn tail_process_stdout_log(
        &self,
        name: &str,
        offset: i64,
        length: i64,
    ) -> Result<TailChunk, SupervisorError> {
        self.tail_process_log(LogStream::Stdout, name, offset, length)
            .await
    }

    /// `supervisor.tailProcessStderrLog(name, offset, length)`, with the semantics of
    /// [`Client::tail_process_stdout_log`]. A program whose stderr is redirected to stdout (or
    /// has no stderr log file) answers no data.
    pub async fn tail_process_stderr_log(
        &self,
        name: &str,
        offset: i64,
        length: i64,
    ) -> Result<TailChunk, SupervisorError> {
        self.tail_process_log(LogStream::Stderr, name, offset, length)
            .await
    }

    async fn tail_process_log(
        &self,
        stream: LogStream,
        name: &str,
        offset: i64,
        length: i64,
    ) -> Result<TailChunk, SupervisorError> {
        let method = stream.tail_method();
        let value = self
            .call(
                method,
                vec![Value::String(name.into()), int(offset), int(length)],
            )
            .await?;
        self.shape(method, TailChunk::from_value(&value))
    }

    /// The last `bytes` bytes of `name`'s stdout log, then those of its stderr log, joined by a
    /// line break when the first does not end with one. A log that does not exist (stderr
    /// redirected, `NONE`, nothing written yet) gives nothing; an unknown program is
    /// `Fault::BadName`.
    ///
    /// supervisord decodes the bytes before it answers, and fails (HTTP 500) when the tail begins
    /// inside a multibyte character: the tail is then asked again up to 3 bytes shorter, which
    /// starts it on a character boundary. A tail that holds bytes that are not UTF-8 cannot be
    /// read through supervisord at all: that stays the HTTP 500 error.
    pub async fn tail_log(&self, name: &str, bytes: u32) -> Result<String, SupervisorError> {
        let stdout = self.tail_of(LogStream::Stdout, name, bytes).await?;
        let stderr = self.tail_of(LogStream::Stderr, name, bytes).await?;
        Ok(join_tails(stdout, &stderr))
    }

    /// The last `bytes` bytes of one log, as [`Client::tail_log`] reads them.
    async fn tail_of(
        &self,
        stream: LogStream,
        name: &str,
        bytes: u32,
    ) -> Result<String, SupervisorError> {
        // A UTF-8 character is at most 4 bytes: one of 4 consecutive starts is a boundary.
        const MAX_SHORTENING: i64 = 3;
        let mut length = i64::from(bytes);
        loop {
            // Offset 0 with `length` below the size: the last `length` bytes (§7.6 of the notes).
            match self.tail_process_log(stream, name, 0, length).await {
                Ok(chunk) => return Ok(chunk.data),
                // supervisord 4.3 answers a missing file with no data; other servers fault.
                Err(SupervisorError::Fault {
                    fault: Fault::NoFile(_),
                    ..
                }) => return Ok(String::new()),
                Err(SupervisorError::HttpStatus { status: 500, .. })
                    if length > 1 && i64::from(bytes) - length < MAX_SHORTENING =>
                {
                    length -= 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `supervisor.readProcessStdoutLog(name, offset, length)`: `length` bytes from `offset`
    /// (`length = 0`: to the end).
    pub async fn read_process_stdout_log(
        &self,
        name: &str,
        offset: i64,
        length: i64,
    ) -> Result<String, SupervisorError> {
        const METHOD: &str = "supervisor.readProcessStdoutLog";
        let value = self
            .call(
                METHOD,
                vec![Value::String(name.into()), int(offset), int(length)],
            )
            .await?;
        self.shape(METHOD, as_string(&value, METHOD))
    }

    /// `supervisor.reloadConfig` (supervisorctl's `reread`): rereads the files and returns what
    /// changed. Applies nothing.
    pub async fn reload_config(&self) -> Result<ReloadDiff, SupervisorError> {
        const METHOD: &str = "supervisor.reloadConfig";
        let value = self.call(METHOD, vec![]).await?;
        self.shape(METHOD, ReloadDiff::from_value(&value))
    }

    /// `supervisor.addProcessGroup(name)`: activates a group from the reread configuration;
    /// supervisord starts its `autostart=true` programs at once.
    pub async fn add_process_group(&self, name: &str) -> Result<bool, SupervisorError> {
        self.call_bool(
            "supervisor.addProcessGroup",
            vec![Value::String(name.into())],
        )
        .await
    }

    /// `supervisor.removeProcessGroup(name)`: the group must be stopped (else STILL_RUNNING).
    pub async fn remove_process_group(&self, name: &str) -> Result<bool, SupervisorError> {
        self.call_bool(
            "supervisor.removeProcessGroup",
            vec![Value::String(name.into())],
        )
        .await
    }

    /// supervisorctl's `update`: reread, then stop and remove removed groups, stop, remove and
    /// re-add changed groups, add added groups. Returns the diff that was applied. Stopping a
    /// group that is not running is not an error.
    pub async fn update(&self) -> Result<ReloadDiff, SupervisorError> {
        let diff = self.reload_config().await?;
        for group in diff.removed.iter().chain(&diff.changed) {
            self.stop_group_quietly(group).await?;
            self.remove_process_group(group).await?;
        }
        for group in diff.changed.iter().chain(&diff.added) {
            match self.add_process_group(group).await {
                Ok(_)
                | Err(SupervisorError::Fault {
                    fault: Fault::AlreadyAdded(_),
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(diff)
    }

    async fn stop_group_quietly(&self, group: &str) -> Result<(), SupervisorError> {
        const METHOD: &str = "supervisor.stopProcessGroup";
        let params = vec![Value::String(group.into()), Value::Boolean(true)];
        match self.call_waiting(METHOD, params, true).await {
            Ok(_) => Ok(()),
            Err(SupervisorError::Fault {
                fault: Fault::NotRunning(_),
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `system.multicall`: several calls in one request, answered in order. supervisord answers a
    /// success as the bare value (not the one-element array of the convention) and a fault as an
    /// inline `{faultCode, faultString}` struct; both are handled here.
    pub async fn multicall(
        &self,
        calls: Vec<(String, Vec<Value>)>,
    ) -> Result<Vec<CallResult>, SupervisorError> {
        const METHOD: &str = "system.multicall";
        let n_calls = calls.len();
        let requests = calls
            .into_iter()
            .map(|(name, params)| {
                Value::Struct(
                    [
                        ("methodName".to_string(), Value::String(name)),
                        ("params".to_string(), Value::Array(params)),
                    ]
                    .into_iter()
                    .collect(),
                )
            })
            .collect();
        let value = self.call(METHOD, vec![Value::Array(requests)]).await?;
        let items = self.shape(
            METHOD,
            super::types::as_array(&value, METHOD).map(<[Value]>::to_vec),
        )?;
        if items.len() != n_calls {
            return Err(SupervisorError::Malformed {
                endpoint: self.endpoint().to_string(),
                method: METHOD.to_string(),
                detail: format!("{} results for {n_calls} calls", items.len()),
            });
        }
        items
            .into_iter()
            .map(|item| self.shape(METHOD, classify_multicall_item(item)))
            .collect()
    }
}

fn classify_multicall_item(item: Value) -> Result<CallResult, ShapeError> {
    if let Value::Struct(members) = &item
        && let (Some(code), Some(string)) = (members.get("faultCode"), members.get("faultString"))
    {
        let code = as_int(code, "multicall fault code")?;
        let string = as_string(string, "multicall fault string")?;
        return Ok(Err(Fault::from_code(code, &string)));
    }
    // A struct without faultCode is a successful struct value (e.g. getProcessInfo).
    Ok(Ok(item))
}

/// One of a program's two logs.
#[derive(Clone, Copy, Debug)]
enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    fn tail_method(self) -> &'static str {
        match self {
            LogStream::Stdout => "supervisor.tailProcessStdoutLog",
            LogStream::Stderr => "supervisor.tailProcessStderrLog",
        }
    }
}

/// `stdout` then `stderr`, with a line break between them when `stdout` does not end with one
/// (so that a line of one never runs into a line of the other).
fn join_tails(mut stdout: String, stderr: &str) -> String {
    if !stdout.is_empty() && !stderr.is_empty() && !stdout.ends_with('\n') {
        stdout.push('\n');
    }
    stdout.push_str(stderr);
    stdout
}

/// XML-RPC ints are 32-bit; offsets beyond that are clamped (logs are rotated long before).
fn int(value: i64) -> Value {
    Value::Integer(value.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_are_joined_stdout_first_on_separate_lines() {
        assert_eq!(join_tails("out\n".into(), "err\n"), "out\nerr\n");
        assert_eq!(join_tails("out".into(), "err"), "out\nerr");
        assert_eq!(join_tails(String::new(), "err"), "err");
        assert_eq!(join_tails("out".into(), ""), "out");
        assert_eq!(join_tails(String::new(), ""), "");
    }

    #[test]
    fn multicall_items_are_bare_values_or_inline_faults() {
        let fault = Value::Struct(
            [
                ("faultCode".to_string(), Value::Integer(10)),
                (
                    "faultString".to_string(),
                    Value::String("BAD_NAME: nosuch".into()),
                ),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(
            classify_multicall_item(fault).unwrap(),
            Err(Fault::BadName("nosuch".into()))
        );
        let bare = Value::Boolean(true);
        assert_eq!(classify_multicall_item(bare.clone()).unwrap(), Ok(bare));
        let info = Value::Struct(
            [("name".to_string(), Value::String("node1".into()))]
                .into_iter()
                .collect(),
        );
        assert_eq!(classify_multicall_item(info.clone()).unwrap(), Ok(info));
    }
}

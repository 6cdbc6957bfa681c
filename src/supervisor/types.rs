//! The typed values supervisord answers with: process states, process info, reread diffs, group
//! results and log tails. Conversions from XML-RPC values never panic; a wrong shape is an error.

use std::collections::BTreeMap;
use std::fmt;

use dxr::Value;

/// A process state as supervisord numbers it (`supervisor.states.ProcessStates`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProcessState {
    /// 0: stopped by request, or never started.
    Stopped,
    /// 10: spawned, not yet up for `startsecs`.
    Starting,
    /// 20: up.
    Running,
    /// 30: exited too quickly, supervisord will retry.
    Backoff,
    /// 40: stop requested, waiting for the process to exit.
    Stopping,
    /// 100: exited on its own after having been RUNNING.
    Exited,
    /// 200: could not be started after `startretries`; supervisord gives up.
    Fatal,
    /// 1000: supervisord does not know (should not happen).
    Unknown,
}

impl ProcessState {
    /// Every state, in code order.
    pub const ALL: [ProcessState; 8] = [
        ProcessState::Stopped,
        ProcessState::Starting,
        ProcessState::Running,
        ProcessState::Backoff,
        ProcessState::Stopping,
        ProcessState::Exited,
        ProcessState::Fatal,
        ProcessState::Unknown,
    ];

    /// The numeric code supervisord uses.
    pub const fn code(self) -> i32 {
        match self {
            ProcessState::Stopped => 0,
            ProcessState::Starting => 10,
            ProcessState::Running => 20,
            ProcessState::Backoff => 30,
            ProcessState::Stopping => 40,
            ProcessState::Exited => 100,
            ProcessState::Fatal => 200,
            ProcessState::Unknown => 1000,
        }
    }

    /// The state for a code, `None` for a code supervisord does not define.
    pub fn from_code(code: i32) -> Option<ProcessState> {
        ProcessState::ALL
            .into_iter()
            .find(|state| state.code() == code)
    }

    /// The state named `name` as supervisord writes it (`RUNNING`; in events, the part after
    /// `PROCESS_STATE_`), `None` for a name it does not define.
    pub fn from_name(name: &str) -> Option<ProcessState> {
        ProcessState::ALL
            .into_iter()
            .find(|state| state.name() == name)
    }

    /// The name supervisord shows (`RUNNING`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            ProcessState::Stopped => "STOPPED",
            ProcessState::Starting => "STARTING",
            ProcessState::Running => "RUNNING",
            ProcessState::Backoff => "BACKOFF",
            ProcessState::Stopping => "STOPPING",
            ProcessState::Exited => "EXITED",
            ProcessState::Fatal => "FATAL",
            ProcessState::Unknown => "UNKNOWN",
        }
    }

    /// STARTING, RUNNING or BACKOFF: the states in which `startProcess` answers ALREADY_STARTED
    /// and `stopProcess` is accepted.
    pub const fn is_running_for_start(self) -> bool {
        matches!(
            self,
            ProcessState::Starting | ProcessState::Running | ProcessState::Backoff
        )
    }

    /// EXITED, FATAL or BACKOFF: the process died (or keeps dying) without being asked to.
    pub const fn is_crashed(self) -> bool {
        matches!(
            self,
            ProcessState::Exited | ProcessState::Fatal | ProcessState::Backoff
        )
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The state of supervisord itself (`getState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SupervisorState {
    /// 2
    Fatal,
    /// 1
    Running,
    /// 0
    Restarting,
    /// -1
    Shutdown,
}

impl SupervisorState {
    fn from_code(code: i32) -> Option<SupervisorState> {
        match code {
            2 => Some(SupervisorState::Fatal),
            1 => Some(SupervisorState::Running),
            0 => Some(SupervisorState::Restarting),
            -1 => Some(SupervisorState::Shutdown),
            _ => None,
        }
    }
}

/// One process as `getProcessInfo` / `getAllProcessInfo` describe it (14 keys on the wire).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProcessInfo {
    /// Process name (`node1`).
    pub name: String,
    /// Group name; equals `name` for a plain `[program:x]`.
    pub group: String,
    /// Epoch seconds of the last start, 0 if never started.
    pub start: i64,
    /// Epoch seconds of the last stop, 0 if never stopped.
    pub stop: i64,
    /// supervisord's clock, epoch seconds.
    pub now: i64,
    /// The state.
    pub state: ProcessState,
    /// The state's name as sent (kept for display of unknown codes).
    pub statename: String,
    /// Why the last spawn failed, or empty.
    pub spawnerr: String,
    /// Exit status; 0 when unknown, -1 when killed by a signal.
    pub exitstatus: i32,
    /// Path of the stdout log.
    pub stdout_logfile: String,
    /// Path of the stderr log.
    pub stderr_logfile: String,
    /// PID, 0 if not running.
    pub pid: u32,
    /// supervisord's human description (`pid 123, uptime 0:01:02`); for display only.
    pub description: String,
}

impl ProcessInfo {
    /// `group:name`, or `name` when the group is the program itself: the name to call it by.
    pub fn namespec(&self) -> String {
        namespec(&self.group, &self.name)
    }

    /// Seconds since the last start as supervisord's own clock tells, when RUNNING.
    pub fn uptime_secs(&self) -> Option<i64> {
        (self.state == ProcessState::Running && self.start > 0)
            .then(|| (self.now - self.start).max(0))
    }
}

/// `group:name`, or `name` when the group is the program itself.
pub fn namespec(group: &str, name: &str) -> String {
    if group == name {
        name.to_string()
    } else {
        format!("{group}:{name}")
    }
}

/// What `getAllConfigInfo` says of one program: the parts nodekeeper reads.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProgramConfig {
    /// Process name.
    pub name: String,
    /// Group name.
    pub group: String,
    /// The command line supervisord runs, as configured.
    pub command: String,
}

/// The result of `reloadConfig` (supervisorctl's `reread`): what `update` would apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadDiff {
    /// Groups present in the files but not active.
    pub added: Vec<String>,
    /// Groups whose configuration changed.
    pub changed: Vec<String>,
    /// Groups active but gone from the files.
    pub removed: Vec<String>,
}

/// One entry of a group operation's result (`startProcessGroup`, `startProcess("g:*")`, ...).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GroupResult {
    /// Process name.
    pub name: String,
    /// Group name.
    pub group: String,
    /// A fault code; 80 is SUCCESS.
    pub status: i32,
    /// `OK`, or the fault text.
    pub description: String,
}

/// A chunk of a process log, from `tailProcessStdoutLog`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailChunk {
    /// The bytes, decoded by supervisord.
    pub data: String,
    /// The offset to ask from next time.
    pub next_offset: i64,
    /// True when more was written than asked for since `offset` (data was skipped).
    pub overflow: bool,
}

/// A value was not of the shape expected; the message names what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ShapeError(pub(crate) String);

type Struct = BTreeMap<String, Value>;

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) => "int",
        Value::Boolean(_) => "boolean",
        Value::String(_) => "string",
        Value::Double(_) => "double",
        Value::DateTime(_) => "dateTime",
        Value::Base64(_) => "base64",
        Value::Struct(_) => "struct",
        Value::Array(_) => "array",
        _ => "other value",
    }
}

fn wrong(what: &str, expected: &str, value: &Value) -> ShapeError {
    ShapeError(format!("{what}: expected {expected}, got {}", kind(value)))
}

pub(crate) fn as_struct<'a>(value: &'a Value, what: &str) -> Result<&'a Struct, ShapeError> {
    match value {
        Value::Struct(members) => Ok(members),
        other => Err(wrong(what, "a struct", other)),
    }
}

pub(crate) fn as_array<'a>(value: &'a Value, what: &str) -> Result<&'a [Value], ShapeError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(wrong(what, "an array", other)),
    }
}

pub(crate) fn as_bool(value: &Value, what: &str) -> Result<bool, ShapeError> {
    match value {
        Value::Boolean(b) => Ok(*b),
        other => Err(wrong(what, "a boolean", other)),
    }
}

pub(crate) fn as_int(value: &Value, what: &str) -> Result<i32, ShapeError> {
    match value {
        Value::Integer(i) => Ok(*i),
        other => Err(wrong(what, "an int", other)),
    }
}

pub(crate) fn as_string(value: &Value, what: &str) -> Result<String, ShapeError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(wrong(what, "a string", other)),
    }
}

fn member<'a>(members: &'a Struct, key: &str, what: &str) -> Result<&'a Value, ShapeError> {
    members
        .get(key)
        .ok_or_else(|| ShapeError(format!("{what}: missing member {key:?}")))
}

fn int_member(members: &Struct, key: &str, what: &str) -> Result<i32, ShapeError> {
    as_int(member(members, key, what)?, &format!("{what}.{key}"))
}

fn string_member(members: &Struct, key: &str, what: &str) -> Result<String, ShapeError> {
    as_string(member(members, key, what)?, &format!("{what}.{key}"))
}

fn string_list(value: &Value, what: &str) -> Result<Vec<String>, ShapeError> {
    as_array(value, what)?
        .iter()
        .map(|item| as_string(item, what))
        .collect()
}

impl ProcessInfo {
    pub(crate) fn from_value(value: &Value) -> Result<ProcessInfo, ShapeError> {
        let what = "process info";
        let members = as_struct(value, what)?;
        let state_code = int_member(members, "state", what)?;
        let state = ProcessState::from_code(state_code).unwrap_or(ProcessState::Unknown);
        let pid = int_member(members, "pid", what)?;
        Ok(ProcessInfo {
            name: string_member(members, "name", what)?,
            group: string_member(members, "group", what)?,
            start: int_member(members, "start", what)?.into(),
            stop: int_member(members, "stop", what)?.into(),
            now: int_member(members, "now", what)?.into(),
            state,
            statename: string_member(members, "statename", what)?,
            spawnerr: string_member(members, "spawnerr", what)?,
            exitstatus: int_member(members, "exitstatus", what)?,
            stdout_logfile: string_member(members, "stdout_logfile", what)?,
            stderr_logfile: string_member(members, "stderr_logfile", what)?,
            pid: u32::try_from(pid).unwrap_or(0),
            description: string_member(members, "description", what)?,
        })
    }

    pub(crate) fn list_from_value(value: &Value) -> Result<Vec<ProcessInfo>, ShapeError> {
        as_array(value, "process info list")?
            .iter()
            .map(ProcessInfo::from_value)
            .collect()
    }
}

impl ProgramConfig {
    pub(crate) fn list_from_value(value: &Value) -> Result<Vec<ProgramConfig>, ShapeError> {
        let what = "config info";
        as_array(value, "config info list")?
            .iter()
            .map(|item| {
                let members = as_struct(item, what)?;
                Ok(ProgramConfig {
                    name: string_member(members, "name", what)?,
                    group: string_member(members, "group", what)?,
                    command: string_member(members, "command", what)?,
                })
            })
            .collect()
    }
}

impl SupervisorState {
    pub(crate) fn from_value(value: &Value) -> Result<SupervisorState, ShapeError> {
        let what = "supervisor state";
        let code = int_member(as_struct(value, what)?, "statecode", what)?;
        SupervisorState::from_code(code)
            .ok_or_else(|| ShapeError(format!("{what}: unknown statecode {code}")))
    }
}

impl ReloadDiff {
    /// `reloadConfig` answers `[[added, changed, removed]]`.
    pub(crate) fn from_value(value: &Value) -> Result<ReloadDiff, ShapeError> {
        let what = "reloadConfig result";
        let outer = as_array(value, what)?;
        let [inner] = outer else {
            return Err(ShapeError(format!(
                "{what}: expected one element, got {}",
                outer.len()
            )));
        };
        let lists = as_array(inner, what)?;
        let [added, changed, removed] = lists else {
            return Err(ShapeError(format!(
                "{what}: expected [added, changed, removed], got {} lists",
                lists.len()
            )));
        };
        Ok(ReloadDiff {
            added: string_list(added, what)?,
            changed: string_list(changed, what)?,
            removed: string_list(removed, what)?,
        })
    }
}

impl GroupResult {
    pub(crate) fn list_from_value(value: &Value) -> Result<Vec<GroupResult>, ShapeError> {
        let what = "group result";
        as_array(value, what)?
            .iter()
            .map(|item| {
                let members = as_struct(item, what)?;
                Ok(GroupResult {
                    name: string_member(members, "name", what)?,
                    group: string_member(members, "group", what)?,
                    status: int_member(members, "status", what)?,
                    description: string_member(members, "description", what)?,
                })
            })
            .collect()
    }
}

impl TailChunk {
    pub(crate) fn from_value(value: &Value) -> Result<TailChunk, ShapeError> {
        let what = "tail result";
        match as_array(value, what)? {
            [data, offset, overflow] => Ok(TailChunk {
                data: as_string(data, what)?,
                next_offset: as_int(offset, what)?.into(),
                overflow: as_bool(overflow, what)?,
            }),
            other => Err(ShapeError(format!(
                "{what}: expected [string, int, boolean], got {} items",
                other.len()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_codes_round_trip() {
        for state in ProcessState::ALL {
            assert_eq!(ProcessState::from_code(state.code()), Some(state));
        }
        assert_eq!(ProcessState::from_code(5), None);
        assert_eq!(ProcessState::Running.to_string(), "RUNNING");
        assert!(ProcessState::Backoff.is_crashed() && ProcessState::Backoff.is_running_for_start());
        assert!(!ProcessState::Stopped.is_crashed());
    }

    #[test]
    fn namespec_omits_a_group_equal_to_the_name() {
        assert_eq!(namespec("node1", "node1"), "node1");
        assert_eq!(namespec("pool", "node1"), "pool:node1");
    }

    #[test]
    fn reload_diff_rejects_a_wrong_shape() {
        let value = Value::Array(vec![Value::Integer(1)]);
        let error = ReloadDiff::from_value(&value).unwrap_err().to_string();
        assert!(error.contains("expected an array, got int"), "{error}");
    }
}

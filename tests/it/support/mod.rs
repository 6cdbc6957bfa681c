//! Test harness: a real supervisord (from the project's virtualenv, see scripts/lib.sh) started in
//! a temporary directory on a free loopback port with a user name and password, serving both
//! `[inet_http_server]` and `[unix_http_server]`, with simulated nodes or plain commands as its
//! programs. Dropping it stops supervisord and every program, also when a test panics.

#![allow(dead_code)]

pub mod etcd;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use nodekeeper::api::ApiClient;
use nodekeeper::supervisor::{Client, ClientOptions, Endpoint, ProcessState, SupervisorState};
use tokio::time::Instant;

/// The nodekeeper binary under test.
pub const NODEKEEPER: &str = env!("CARGO_BIN_EXE_nodekeeper");

/// The simulated node binary: `NODEKEEPER_SIM_BIN` if set, else `nodekeeper-sim` built next to
/// this test binary (`target/<profile>/`).
///
/// It belongs to the workspace's other package, so Cargo builds it for `cargo test --workspace`
/// (what scripts/test.sh runs) but not for `cargo test` of this package alone. When it is missing,
/// or older than a source file of the simulator crate, this panics with the command that builds
/// it, rather than run the tests against no simulator or an old one.
pub fn sim_binary() -> &'static str {
    static SIM: OnceLock<String> = OnceLock::new();
    SIM.get_or_init(|| {
        if let Some(path) = std::env::var_os("NODEKEEPER_SIM_BIN") {
            return path.to_string_lossy().into_owned();
        }
        let exe = std::env::current_exe().expect("the test binary's path");
        // target/<profile>/deps/it-HASH → target/<profile>/nodekeeper-sim
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary is in target/<profile>/deps");
        let path = dir.join(format!("nodekeeper-sim{}", std::env::consts::EXE_SUFFIX));
        let build = "build it with `cargo build -p nodekeeper-sim` (add --release, --target … as \
                     for these tests), or run `cargo test --workspace`, which builds it, or set \
                     NODEKEEPER_SIM_BIN";
        let built = match std::fs::metadata(&path).and_then(|meta| meta.modified()) {
            Ok(built) => built,
            Err(_) => panic!("the simulator {} is not built: {build}", path.display()),
        };
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/nodekeeper-sim");
        if let Some((source, _)) = newest_source(&crate_dir).filter(|(_, at)| *at > built) {
            panic!(
                "the simulator {} is older than {}: {build}",
                path.display(),
                source.display()
            );
        }
        path.to_string_lossy().into_owned()
    })
}

/// The most recently modified `*.rs` or `Cargo.toml` below `dir`, with its time.
fn newest_source(dir: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path.is_dir() {
            newest_source(&path)
        } else if path.extension().is_some_and(|ext| ext == "rs")
            || path.file_name().is_some_and(|name| name == "Cargo.toml")
        {
            entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .map(|at| (path, at))
        } else {
            None
        };
        if let Some((path, at)) = candidate
            && newest.as_ref().is_none_or(|(_, seen)| at > *seen)
        {
            newest = Some((path, at));
        }
    }
    newest
}

/// The user name every test supervisord requires.
pub const USER: &str = "keeper";

/// Where supervisord is: `NODEKEEPER_SUPERVISORD`, else the project's `.venv` (made by
/// scripts/test.sh).
pub fn supervisord_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NODEKEEPER_SUPERVISORD") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/supervisord");
    assert!(
        path.exists(),
        "supervisord not found at {}: run scripts/test.sh (it installs supervisord into .venv) \
         or set NODEKEEPER_SUPERVISORD",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (bound, then released for the caller to use).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// One `[program:x]` section.
#[derive(Clone, Debug)]
pub struct Program {
    /// Program name.
    pub name: String,
    /// Its command line.
    pub command: String,
    /// `autostart`.
    pub autostart: bool,
    /// `startsecs`.
    pub startsecs: u32,
    /// `startretries`.
    pub startretries: u32,
    /// `stopwaitsecs`.
    pub stopwaitsecs: u32,
}

impl Program {
    /// A program running `command`, started with supervisord, up after 1 s.
    pub fn new(name: &str, command: &str) -> Program {
        Program {
            name: name.to_string(),
            command: command.to_string(),
            autostart: true,
            startsecs: 1,
            startretries: 0,
            stopwaitsecs: 5,
        }
    }

    /// Not started with supervisord.
    pub fn manual(mut self) -> Program {
        self.autostart = false;
        self
    }

    /// `startsecs`.
    pub fn startsecs(mut self, secs: u32) -> Program {
        self.startsecs = secs;
        self
    }

    /// `startretries`.
    pub fn startretries(mut self, n: u32) -> Program {
        self.startretries = n;
        self
    }

    fn section(&self, logs: &Path) -> String {
        format!(
            "[program:{name}]\ncommand={command}\nautostart={autostart}\nautorestart=false\n\
             startsecs={startsecs}\nstartretries={startretries}\nstopsignal=TERM\n\
             stopwaitsecs={stopwaitsecs}\nstopasgroup=true\nkillasgroup=true\n\
             redirect_stderr=true\nstdout_logfile={log}\nstdout_logfile_maxbytes=1MB\n\
             stdout_logfile_backups=1\n\n",
            name = self.name,
            command = self.command,
            autostart = self.autostart,
            startsecs = self.startsecs,
            startretries = self.startretries,
            stopwaitsecs = self.stopwaitsecs,
            log = logs.join(format!("{}.log", self.name)).display(),
        )
    }
}

/// A simulated node's program and REST address.
#[derive(Clone, Debug)]
pub struct SimNode {
    /// Program (and node) name.
    pub name: String,
    /// `127.0.0.1:PORT` of its REST API.
    pub listen: String,
    /// Its data directory (`--data-dir`), with `Builder::sim_data_dirs`.
    pub data_dir: Option<PathBuf>,
}

impl SimNode {
    /// Base URL of its REST API v0.
    pub fn api(&self) -> String {
        format!("http://{}/api/v0", self.listen)
    }
}

/// Builds a test supervisord.
#[derive(Debug, Default)]
pub struct Builder {
    programs: Vec<Program>,
    n_sims: usize,
    include_dir: bool,
    sim_startsecs: Option<u32>,
    sim_stop_delay: Option<u32>,
    sim_args: String,
    sim_secret: bool,
    slots_per_epoch: Option<u64>,
    sections: Vec<String>,
    block0: Option<i64>,
    sim_prefix: Option<String>,
    sim_data_dirs: bool,
}

impl Builder {
    /// Each simulated node writes a data directory (`DIR/NAME.data`, `--data-dir`), which the
    /// daemon's configuration names as its `data_dir`; the sims run as `DIR/jormungandr` (a
    /// symlink to the simulator) without `--secret`, so that the adapter knows from their command
    /// that they boot without the key, as a passive node's does.
    pub fn sim_data_dirs(mut self) -> Builder {
        self.sim_data_dirs = true;
        self
    }

    /// The simulated chain's genesis (Unix seconds; default 10 minutes ago): supervisords that
    /// stand for hosts of one pool share it.
    pub fn block0(mut self, secs: i64) -> Builder {
        self.block0 = Some(secs);
        self
    }

    /// Simulated nodes are named `{prefix}1`, `{prefix}2`, ... (default `node`).
    pub fn sim_prefix(mut self, prefix: &str) -> Builder {
        self.sim_prefix = Some(prefix.to_string());
        self
    }

    /// Adds `text` to supervisord.conf as it is (e.g. a generated `[eventlistener:x]` section).
    pub fn section(mut self, text: &str) -> Builder {
        self.sections.push(text.to_string());
        self
    }

    /// Adds a program.
    pub fn program(mut self, program: Program) -> Builder {
        self.programs.push(program);
        self
    }

    /// Adds `n` simulated nodes `node1..nodeN` following one chain, with fast boot.
    pub fn sims(mut self, n: usize) -> Builder {
        self.n_sims = n;
        self
    }

    /// `startsecs` of the simulated nodes' programs (default 1).
    pub fn sim_startsecs(mut self, secs: u32) -> Builder {
        self.sim_startsecs = Some(secs);
        self
    }

    /// The simulated nodes take `secs` to stop (their program is a shell that waits that long
    /// after SIGTERM, the way a real node flushes its database): supervisord shows them STOPPING
    /// meanwhile.
    pub fn sim_stop_delay(mut self, secs: u32) -> Builder {
        self.sim_stop_delay = Some(secs);
        self
    }

    /// Every simulated node boots as a leader: `--secret DIR/node_secret.yaml` (the pool's
    /// secret, [`Supervisord::secret_path`]).
    pub fn sim_secret(mut self) -> Builder {
        self.sim_secret = true;
        self
    }

    /// Slots per epoch of the simulated chain (default 60; slots last 1 s).
    pub fn slots_per_epoch(mut self, n: u64) -> Builder {
        self.slots_per_epoch = Some(n);
        self
    }

    /// Extra arguments of every simulated node (e.g. `--secret FILE --pool-slots-per-epoch 6`).
    pub fn sim_args(mut self, args: &str) -> Builder {
        self.sim_args = args.to_string();
        self
    }

    /// Adds an `[include]` of `DIR/conf.d/*.conf`, for reread/update tests.
    pub fn include_dir(mut self) -> Builder {
        self.include_dir = true;
        self
    }

    /// Starts supervisord and waits until it answers and every autostart program is RUNNING.
    pub async fn start(self) -> Supervisord {
        let mut last_error = String::new();
        // A free port can be taken by someone else between probing and binding: retry.
        for _attempt in 0..3 {
            match self.try_start().await {
                Ok(supervisord) => return supervisord,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start a test supervisord: {last_error}");
    }

    async fn try_start(&self) -> Result<Supervisord, String> {
        let dir = tempfile::Builder::new()
            .prefix("nk-it-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
        let port = free_port();
        let password = format!("pw-{}-{}", std::process::id(), port);
        let socket = dir.path().join("s.sock");
        let mut programs = self.programs.clone();
        let now = nodekeeper::time::Clock::now(&nodekeeper::time::SystemClock);
        let block0 = self
            .block0
            .unwrap_or_else(|| chrono::DateTime::<chrono::Utc>::from(now).timestamp() - 600);
        let events = dir.path().join("leader-events.jsonl");
        let secret_path = dir.path().join("node_secret.yaml");
        std::fs::write(&secret_path, POOL_SECRET_YAML).map_err(|e| e.to_string())?;
        let slots_per_epoch = self.slots_per_epoch.unwrap_or(60);
        let secret_arg = if self.sim_secret {
            format!("--secret {}", secret_path.display())
        } else {
            String::new()
        };
        let mut sims = Vec::new();
        for index in 1..=self.n_sims {
            let name = format!("{}{index}", self.sim_prefix.as_deref().unwrap_or("node"));
            let listen = format!("127.0.0.1:{}", free_port());
            let data_dir = self
                .sim_data_dirs
                .then(|| dir.path().join(format!("{name}.data")));
            let data_arg = data_dir
                .as_ref()
                .map(|data| format!(" --data-dir {}", data.display()))
                .unwrap_or_default();
            let binary = if self.sim_data_dirs {
                let link = dir.path().join("jormungandr");
                if !link.exists() {
                    std::os::unix::fs::symlink(sim_binary(), &link).map_err(|e| e.to_string())?;
                }
                link.display().to_string()
            } else {
                sim_binary().to_string()
            };
            let sim = format!(
                "{} --name {name} --listen {listen} --block0-time {block0} \
                 --slot-duration 1 --slots-per-epoch {slots_per_epoch} --bootstrap-secs 0.3 \
                 --events {} --control {} {} {}",
                binary,
                events.display(),
                dir.path().join(format!("{name}.control")).display(),
                secret_arg,
                self.sim_args
            ) + &data_arg;
            let command = match self.sim_stop_delay {
                // supervisord signals the whole process group (stopasgroup): the simulator exits
                // at once, the shell only after the delay, and supervisord waits for the shell.
                Some(secs) => {
                    format!("/bin/sh -c \"trap 'sleep {secs}; exit 0' TERM; {sim} & wait $!\"")
                }
                None => sim,
            };
            programs.push(Program::new(&name, &command).startsecs(self.sim_startsecs.unwrap_or(1)));
            sims.push(SimNode {
                name,
                listen,
                data_dir,
            });
        }
        let mut conf = format!(
            "[unix_http_server]\nfile={socket}\nchmod=0700\nusername={USER}\npassword={password}\n\n\
             [inet_http_server]\nport=127.0.0.1:{port}\nusername={USER}\npassword={password}\n\n\
             [supervisord]\nnodaemon=true\nlogfile={dir}/supervisord.log\npidfile={dir}/supervisord.pid\n\
             childlogdir={logs}\nloglevel=info\n\n\
             [rpcinterface:supervisor]\n\
             supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n",
            socket = socket.display(),
            dir = dir.path().display(),
            logs = logs.display(),
        );
        if self.include_dir {
            let conf_d = dir.path().join("conf.d");
            std::fs::create_dir_all(&conf_d).map_err(|e| e.to_string())?;
            let _ = write!(conf, "[include]\nfiles = {}/*.conf\n\n", conf_d.display());
        }
        for program in &programs {
            conf.push_str(&program.section(&logs));
        }
        for section in &self.sections {
            conf.push_str(section);
            conf.push('\n');
        }
        let conf_path = dir.path().join("supervisord.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let child = Command::new(supervisord_binary())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn supervisord: {e}"))?;
        let mut supervisord = Supervisord {
            dir,
            port,
            password,
            socket,
            child,
            programs,
            sims,
            block0,
            events,
            slots_per_epoch,
        };
        supervisord.wait_until_up().await?;
        Ok(supervisord)
    }
}

/// The pool's node secret the simulated nodes and the daemon use (YAML, as for `--secret`).
pub const POOL_SECRET_YAML: &str = "genesis:\n  sig_key: kes25519-12-sk1itpool\n  vrf_key: vrf_sk1itpool\n  node_id: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

/// A running test supervisord. Dropping it shuts supervisord and its programs down.
#[derive(Debug)]
pub struct Supervisord {
    dir: tempfile::TempDir,
    /// Its inet_http_server port on 127.0.0.1.
    pub port: u16,
    /// The password of [`USER`].
    pub password: String,
    /// The unix socket path.
    pub socket: PathBuf,
    child: Child,
    /// The programs it was configured with.
    pub programs: Vec<Program>,
    /// The simulated nodes among them.
    pub sims: Vec<SimNode>,
    /// The simulated chain's genesis (Unix seconds; 1 s slots, 60 slots per epoch).
    pub block0: i64,
    /// Slots per epoch of the simulated chain.
    pub slots_per_epoch: u64,
    /// The simulated nodes' leader-event log (JSON lines: node, epoch, slot, height, time).
    pub events: PathBuf,
}

impl Supervisord {
    /// A builder.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The temporary directory holding its config, socket and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the control file of the simulator `name` (`lag 20`, `none`, …): the running
    /// process applies it within 200 ms, and every process started later starts with it, so a
    /// fault can outlive a restart.
    pub fn set_control(&self, name: &str, line: &str) {
        let path = self.dir.path().join(format!("{name}.control"));
        std::fs::write(&path, format!("{line}\n"))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// The pool's secret file (written for every supervisord; used with `sim_secret`).
    pub fn secret_path(&self) -> PathBuf {
        self.dir.path().join("node_secret.yaml")
    }

    /// `http://127.0.0.1:PORT/RPC2`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/RPC2", self.port)
    }

    /// `unix://DIR/s.sock`.
    pub fn unix_url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// supervisord's own PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client over TCP with the right credentials.
    pub fn client(&self) -> Client {
        self.client_at(&self.url())
    }

    /// A client of `url` with the right credentials.
    pub fn client_at(&self, url: &str) -> Client {
        Client::new(
            &Endpoint::parse(url).expect("test URL parses"),
            Some((USER.to_string(), self.password.clone())),
            ClientOptions {
                timeout: Duration::from_secs(10),
                wait_timeout: Duration::from_secs(30),
                ..ClientOptions::default()
            },
        )
        .expect("client builds")
    }

    /// `nodekeeper ctl` pointed at this supervisord over TCP, with the password in the environment.
    pub fn ctl(&self) -> tokio::process::Command {
        self.ctl_at(&self.url())
    }

    /// `nodekeeper ctl` pointed at `url`, with this supervisord's credentials.
    pub fn ctl_at(&self, url: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(NODEKEEPER);
        command
            .arg("ctl")
            .env_clear()
            .env("NODEKEEPER_SUPERVISOR_URL", url)
            .env("NODEKEEPER_SUPERVISOR_USER", USER)
            .env("NODEKEEPER_SUPERVISOR_PASSWORD", &self.password)
            .kill_on_drop(true)
            .stdin(Stdio::null());
        command
    }

    /// Waits until `name` is in `state`, polling; panics with the last state seen at the deadline.
    pub async fn wait_for_state(&self, name: &str, state: ProcessState, within: Duration) {
        let client = self.client();
        let deadline = Instant::now() + within;
        let mut last = None;
        while Instant::now() < deadline {
            match client.get_process_info(name).await {
                Ok(info) if info.state == state => return,
                Ok(info) => last = Some(info.state),
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name} not {state} within {within:?}; last seen {last:?}");
    }

    /// The supervisord main log, for failure messages.
    pub fn main_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("supervisord.log")).unwrap_or_default()
    }

    async fn wait_until_up(&mut self) -> Result<(), String> {
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "supervisord exited with {status}; its log:\n{}",
                    self.main_log()
                ));
            }
            if let Ok(SupervisorState::Running) = client.get_state().await {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "supervisord did not answer within 20 s; its log:\n{}",
                    self.main_log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        // Autostart programs come up about 1 s after supervisord starts, then take startsecs.
        for program in self.programs.iter().filter(|p| p.autostart) {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match client.get_process_info(&program.name).await {
                    Ok(info) if info.state == ProcessState::Running => break,
                    Ok(info) if Instant::now() > deadline => {
                        return Err(format!(
                            "{} is {} after 20 s; supervisord log:\n{}",
                            program.name,
                            info.state,
                            self.main_log()
                        ));
                    }
                    Err(e) if Instant::now() > deadline => return Err(e.to_string()),
                    _ => tokio::time::sleep(Duration::from_millis(25)).await,
                }
            }
        }
        Ok(())
    }

    /// The pid of every program that has one, by program name (`0` when not running).
    pub async fn pids(&self) -> std::collections::BTreeMap<String, u32> {
        self.client()
            .get_all_process_info()
            .await
            .expect("getAllProcessInfo")
            .into_iter()
            .map(|info| (info.name, info.pid))
            .collect()
    }

    /// Kills supervisord with SIGKILL (no chance to stop its programs) and kills the programs it
    /// leaves behind (each is a process group leader), waiting until their REST ports are free.
    /// [`Supervisord::start_again`] brings it back.
    pub async fn kill9(&mut self) {
        let pids: Vec<u32> = self
            .pids()
            .await
            .into_values()
            .filter(|pid| *pid > 0)
            .collect();
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        // The orphans are reaped by init: wait until their REST ports are free again.
        for sim in &self.sims {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(&sim.listen).is_ok() {
                assert!(
                    Instant::now() < deadline,
                    "{} still listens on {} after SIGKILL",
                    sim.name,
                    sim.listen
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// [`Supervisord::kill9`] then [`Supervisord::start_again`] at once: an outage as short as
    /// supervisord's start-up.
    pub async fn kill_and_restart(&mut self) {
        self.kill9().await;
        self.start_again().await;
    }

    /// Starts supervisord again with the same configuration, port and password (after
    /// [`Supervisord::kill9`]) and waits until its autostart programs are RUNNING.
    pub async fn start_again(&mut self) {
        self.child = Command::new(supervisord_binary())
            .arg("-c")
            .arg(self.dir().join("supervisord.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn supervisord again");
        if let Err(e) = self.wait_until_up().await {
            panic!("supervisord did not come back: {e}");
        }
    }

    /// Stops supervisord (SIGTERM: it stops every program first) and waits for it to exit.
    pub fn shutdown(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Output of a finished command.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs a command to completion (at most 60 s) and captures its output.
pub async fn run(command: &mut tokio::process::Command) -> Output {
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("command finished within 60 s")
        .expect("command ran");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `within`.
pub async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An HTTP client that ignores proxy settings (everything in the tests is on loopback).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("http client")
}

impl SimNode {
    /// Switches the simulator's fault (`POST /sim/fault`), e.g.
    /// `json!({"fault": "lag", "blocks": 20})`; panics unless it answers 200.
    pub async fn fault(&self, fault: serde_json::Value) {
        let response = http()
            .post(format!("http://{}/sim/fault", self.listen))
            .header("content-type", "application/json")
            .body(fault.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /sim/fault {fault} to {}: {e}", self.name));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "POST /sim/fault {fault} to {}: {status}: {body}",
            self.name
        );
    }

    /// `GET /sim/state`, or `None` while the simulator does not answer.
    pub async fn state(&self) -> Option<serde_json::Value> {
        let response = http()
            .get(format!("http://{}/sim/state", self.listen))
            .send()
            .await
            .ok()?;
        serde_json::from_slice(&response.bytes().await.ok()?).ok()
    }
}

/// The trusted peer of the nodes' normal config (in the template).
pub const NORMAL_PEER: &str = "/ip4/198.51.100.1/tcp/3000";
/// The trusted peer of the default (fallback) config (`node_defaults.default_trusted_peers`).
pub const FALLBACK_PEER: &str = "/ip4/192.0.2.1/tcp/3000";

/// A nodekeeper configuration managing a test supervisord's simulated nodes, written into the
/// supervisord's temporary directory (`DIR/nk/nodekeeper.json`), with the node directories, the
/// restart log and the API token beside it.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// The directory of the config file.
    pub dir: PathBuf,
    /// The config file.
    pub path: PathBuf,
    /// `127.0.0.1:PORT` of the daemon's API.
    pub api_listen: String,
    /// The restart log.
    pub restart_log: PathBuf,
}

/// Merges `patch` into `base`: objects key by key, anything else replaces.
fn merge_json(base: &mut serde_json::Value, patch: &serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                merge_json(
                    base.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

impl DaemonConfig {
    /// Small thresholds for quick tests: tick 200 ms, probe timeout 500 ms, hang timeout 1.5 s,
    /// tip timeout 3 s, 7 blocks, bootstrap timeout 4 s, boot grace 2 s, stagger 1 s, 3 restarts
    /// per minute.
    pub fn thresholds() -> serde_json::Value {
        serde_json::json!({
            "tick_interval": "200ms",
            "probe_timeout": "500ms",
            "hang_timeout": "1500ms",
            "tip_timeout": "3s",
            "tip_diff_threshold": 7,
            "bootstrap_timeout": "4s",
            "boot_grace": "2s",
            "all_down_stagger": "1s",
            "max_restarts": 3,
            "restart_window": "1m",
        })
    }

    /// Writes the configuration for every simulated node of `supervisord`, with `patch` merged
    /// into it (e.g. `json!({"thresholds": {"boot_grace": "4s"}})`).
    pub fn write(supervisord: &Supervisord, patch: serde_json::Value) -> DaemonConfig {
        let dir = supervisord.dir().join("nk");
        std::fs::create_dir_all(&dir).expect("create the daemon's directory");
        let template = serde_json::json!({
            "log": [{"format": "plain", "level": "info", "output": "stderr"}],
            "p2p": {
                "listen_address": "/ip4/127.0.0.1/tcp/3000",
                "trusted_peers": [{"address": NORMAL_PEER, "id": "normal"}],
            },
            "rest": {"listen": "127.0.0.1:3100"},
            "storage": "./storage",
        });
        std::fs::write(dir.join("template.json"), template.to_string()).expect("write template");
        let password_file = dir.join("supervisor.password");
        std::fs::write(&password_file, format!("{}\n", supervisord.password))
            .expect("write password file");
        let mut nodes = Vec::new();
        for sim in &supervisord.sims {
            std::fs::create_dir_all(dir.join("nodes").join(&sim.name)).expect("node dir");
            let mut node = serde_json::json!({
                "name": sim.name,
                "overrides": {"rest": {"listen": sim.listen}},
            });
            if let Some(data_dir) = &sim.data_dir {
                node["data_dir"] = serde_json::json!(data_dir);
            }
            nodes.push(node);
        }
        let api_listen = format!("127.0.0.1:{}", free_port());
        let mut config = serde_json::json!({
            "supervisor": {
                "url": supervisord.url(),
                "user": USER,
                "password_file": "supervisor.password",
                "timeout": "5s",
                "wait_timeout": "30s",
            },
            "node_defaults": {
                "template": "template.json",
                "node_dir": "nodes",
                "default_trusted_peers": [{"address": FALLBACK_PEER, "id": "fallback"}],
                "startsecs": 1,
                "stopwaitsecs": 5,
            },
            "nodes": nodes,
            "thresholds": DaemonConfig::thresholds(),
            "restart_log": {"path": "restarts.csv"},
            "api": {"listen": api_listen},
        });
        merge_json(&mut config, &patch);
        let path = dir.join("nodekeeper.json");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&config).expect("config serialises"),
        )
        .expect("write nodekeeper.json");
        DaemonConfig {
            restart_log: dir.join("restarts.csv"),
            dir,
            path,
            api_listen,
        }
    }

    /// Where nodekeeper writes `node`'s generated config.
    pub fn node_config(&self, node: &str) -> PathBuf {
        self.dir
            .join("nodes")
            .join(node)
            .join(format!("{node}.json"))
    }

    /// The trusted peers' addresses in `node`'s generated config (`None`: no file yet).
    pub fn trusted_peers(&self, node: &str) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.node_config(node)).ok()?;
        let config: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(
            config["p2p"]["trusted_peers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|peer| peer["address"].as_str().map(str::to_string))
                .collect(),
        )
    }

    /// Every restart-log row (none while there is no file); panics if a row does not parse.
    pub fn rows(&self) -> Vec<nodekeeper::restart_log::RestartRow> {
        if !self.restart_log.exists() {
            return Vec::new();
        }
        let (rows, problems) = nodekeeper::restart_log::read_rows(&self.restart_log)
            .unwrap_or_else(|e| panic!("restart log {}: {e}", self.restart_log.display()));
        assert!(
            problems.is_empty(),
            "restart log {} has unreadable rows: {problems:?}\n{}",
            self.restart_log.display(),
            std::fs::read_to_string(&self.restart_log).unwrap_or_default()
        );
        rows
    }

    /// `nodekeeper ARGS -c CONFIG` with a clean environment.
    pub fn nodekeeper(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(NODEKEEPER);
        command
            .args(args)
            .arg("-c")
            .arg(&self.path)
            .env_clear()
            .kill_on_drop(true)
            .stdin(Stdio::null());
        command
    }

    /// `nodekeeper status --json`, parsed; panics unless it exits 0.
    pub async fn status(&self) -> serde_json::Value {
        let output = run(&mut self.nodekeeper(&["status", "--json"])).await;
        assert_eq!(output.code, 0, "nodekeeper status --json: {output:?}");
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|e| panic!("nodekeeper status --json: {e}: {}", output.stdout))
    }

    /// The line of `node` in `nodekeeper status --json`.
    pub async fn node_status(&self, node: &str) -> serde_json::Value {
        let status = self.status().await;
        status["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|line| line["name"] == node)
            .cloned()
            .unwrap_or_else(|| panic!("no {node} in the status: {status}"))
    }

    /// A client of the daemon's API (60 s per call) with the token the daemon wrote beside its
    /// configuration (none before the daemon wrote it).
    pub fn api(&self) -> ApiClient {
        let api = ApiClient::new(&self.api_listen, Duration::from_secs(60)).expect("API client");
        match std::fs::read_to_string(self.dir.join("api.token")) {
            Ok(token) => api.with_token(token.trim()),
            Err(_) => api,
        }
    }

    /// `nodekeeper ctl VERB NODE` (hold or release, through the daemon's API).
    pub async fn ctl(&self, verb: &str, node: &str) -> Output {
        run(&mut self.nodekeeper(&["ctl", verb, node])).await
    }

    /// Starts `nodekeeper run ARGS` with `RUST_LOG=info`, its stderr in `DIR/daemon-N.log`, and
    /// waits until it has published its first status (or, in a dry run, announced itself).
    pub async fn start(&self, args: &[&str]) -> Daemon {
        let n = (1..)
            .find(|n| !self.dir.join(format!("daemon-{n}.log")).exists())
            .expect("a free log name");
        let log = self.dir.join(format!("daemon-{n}.log"));
        let stderr = std::fs::File::create(&log).expect("create the daemon log");
        let child = Command::new(NODEKEEPER)
            .arg("run")
            .args(args)
            .arg("-c")
            .arg(&self.path)
            .env_clear()
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn nodekeeper run");
        let mut daemon = Daemon {
            child,
            log,
            config: self.clone(),
        };
        let with_api = !args.contains(&"--dry-run");
        let api = ApiClient::new(&self.api_listen, Duration::from_secs(3)).expect("API client");
        wait_until("the daemon to start", Duration::from_secs(20), || {
            let ready = if daemon.exited() {
                panic!(
                    "the daemon exited at start-up; its log:\n{}",
                    daemon.log_text()
                );
            } else if !with_api {
                daemon.log_text().contains("nodekeeper running")
            } else {
                false
            };
            let api = &api;
            async move {
                if !with_api {
                    return ready.then_some(());
                }
                let status = api.status().await.ok()?;
                (!status.nodes.is_empty()).then_some(())
            }
        })
        .await;
        daemon
    }
}

/// A running `nodekeeper run`. Dropping it kills it (SIGKILL).
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// Its stderr (the log).
    pub log: PathBuf,
    /// Its configuration.
    pub config: DaemonConfig,
}

impl Daemon {
    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the log contains `needle`; panics with the log at the deadline.
    pub async fn wait_for_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log_text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the daemon did not log {needle:?} within {within:?}; its log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends it `signal` (`HUP`, `TERM`, ...).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it with SIGTERM and returns its exit code.
    pub async fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop on SIGTERM; its log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// SIGKILL to `pid` (a supervisord child), as a crash.
pub fn kill_pid(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -KILL {pid}");
}

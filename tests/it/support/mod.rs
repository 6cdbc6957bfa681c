//! Test harness: a real supervisord (from the project's virtualenv, see scripts/lib.sh) started in
//! a temporary directory on a free loopback port with a user name and password, serving both
//! `[inet_http_server]` and `[unix_http_server]`, with simulated nodes or plain commands as its
//! programs. Dropping it stops supervisord and every program, also when a test panics.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nodekeeper::supervisor::{Client, ClientOptions, Endpoint, ProcessState, SupervisorState};
use tokio::time::Instant;

/// The nodekeeper binary under test.
pub const NODEKEEPER: &str = env!("CARGO_BIN_EXE_nodekeeper");
/// The simulated node binary.
pub const SIM: &str = env!("CARGO_BIN_EXE_nodekeeper-sim");

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
}

impl Builder {
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
        let now = nodekeeper::clock::Clock::now(&nodekeeper::clock::SystemClock);
        let block0 = chrono::DateTime::<chrono::Utc>::from(now).timestamp() - 600;
        let events = dir.path().join("leader-events.jsonl");
        let mut sims = Vec::new();
        for index in 1..=self.n_sims {
            let name = format!("node{index}");
            let listen = format!("127.0.0.1:{}", free_port());
            programs.push(Program::new(
                &name,
                &format!(
                    "{SIM} --name {name} --listen {listen} --block0-time {block0} \
                     --slot-duration 1 --slots-per-epoch 60 --bootstrap-secs 0.3 \
                     --events {}",
                    events.display()
                ),
            ));
            sims.push(SimNode { name, listen });
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
        };
        supervisord.wait_until_up().await?;
        Ok(supervisord)
    }
}

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

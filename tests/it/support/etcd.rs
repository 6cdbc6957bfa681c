//! Test harness: a real etcd cluster of three members on loopback (free ports, a temporary data
//! directory per member), started from `NODEKEEPER_ETCD` (scripts/lib.sh exports it; else `etcd`
//! in PATH). A member can be stopped, killed and started again by index. Dropping the cluster
//! kills every member, also when a test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use super::free_port;

/// The etcd binary: `NODEKEEPER_ETCD`, else `etcd` in PATH.
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("NODEKEEPER_ETCD").map_or_else(|| PathBuf::from("etcd"), PathBuf::from)
}

/// One member: its ports and, while it runs, its process.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
}

impl EtcdCluster {
    /// Starts a three-member cluster and waits until every member reports healthy.
    pub async fn start() -> EtcdCluster {
        EtcdCluster::start_with(3).await
    }

    /// Starts a cluster of `n` members and waits until every member reports healthy.
    pub async fn start_with(n: usize) -> EtcdCluster {
        let mut last_error = String::new();
        // A free port can be taken by someone else between probing and binding: retry.
        for _attempt in 0..3 {
            match EtcdCluster::try_start(n).await {
                Ok(cluster) => return cluster,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start a test etcd cluster: {last_error}");
    }

    async fn try_start(n: usize) -> Result<EtcdCluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("nk-etcd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let members: Vec<Member> = (0..n)
            .map(|index| Member {
                name: format!("m{index}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("nk-{}-{}", std::process::id(), members[0].client_port);
        let mut cluster = EtcdCluster {
            dir,
            members,
            initial_cluster,
            token,
        };
        for index in 0..n {
            cluster.spawn(index)?;
        }
        cluster.wait_healthy(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    fn spawn(&mut self, index: usize) -> Result<(), String> {
        let data_dir = self.dir.path().join(&self.members[index].name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(index))
            .map_err(|e| e.to_string())?;
        let member = &self.members[index];
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let child = Command::new(etcd_binary())
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .args(["--log-level", "warn"])
            // A test cluster's data is thrown away: no fsync on a shared, busy disk.
            .arg("--unsafe-no-fsync")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", etcd_binary().display()))?;
        self.members[index].child = Some(child);
        Ok(())
    }

    fn log_path(&self, index: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[index].name))
    }

    /// The temporary directory holding the members' data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How many members it has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The client URL of member `index` (`http://127.0.0.1:PORT`).
    pub fn client_url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[index].client_port)
    }

    /// Every member's client URL.
    pub fn client_urls(&self) -> Vec<String> {
        (0..self.members.len())
            .map(|i| self.client_url(i))
            .collect()
    }

    /// Whether member `index` runs.
    pub fn is_running(&self, index: usize) -> bool {
        self.members[index].child.is_some()
    }

    /// The members' logs, for failure messages.
    pub fn logs(&self) -> String {
        (0..self.members.len())
            .map(|i| {
                format!(
                    "--- {}:\n{}",
                    self.members[i].name,
                    std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
                )
            })
            .collect()
    }

    /// Stops member `index` with SIGTERM and waits until it exited.
    pub fn stop_member(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Freezes member `index` with SIGSTOP: its connections stay open and nothing answers (a
    /// partition as its clients see it). [`EtcdCluster::resume_member`] thaws it.
    pub fn pause_member(&mut self, index: usize) {
        self.signal(index, "-STOP");
    }

    /// Thaws member `index` (SIGCONT) and waits until it reports healthy.
    pub async fn resume_member(&mut self, index: usize) {
        self.signal(index, "-CONT");
        if let Err(e) = self.wait_healthy(Duration::from_secs(30)).await {
            panic!("etcd member {index} did not come back: {e}");
        }
    }

    fn signal(&self, index: usize, signal: &str) {
        if let Some(child) = &self.members[index].child {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// Kills member `index` with SIGKILL and waits until it is gone.
    pub fn kill_member(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `index` again (with its data) and waits until it reports healthy.
    pub async fn start_member(&mut self, index: usize) {
        if self.members[index].child.is_none() {
            self.spawn(index).expect("spawn the etcd member again");
        }
        if let Err(e) = self.wait_healthy(Duration::from_secs(30)).await {
            panic!("etcd member {index} did not come back: {e}");
        }
    }

    /// Stops every member.
    pub fn stop(&mut self) {
        for index in 0..self.members.len() {
            self.stop_member(index);
        }
    }

    /// Waits until every running member answers `/health` with `"health":"true"`.
    pub async fn wait_healthy(&mut self, within: Duration) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + within;
        for index in 0..self.members.len() {
            while let Some(child) = self.members[index].child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.members[index].child = None;
                    return Err(format!(
                        "etcd member {index} exited with {status}; logs:\n{}",
                        self.logs()
                    ));
                }
                let url = format!("{}/health", self.client_url(index));
                if let Ok(answer) = http.get(&url).send().await
                    && let Ok(body) = answer.text().await
                    && body.contains("\"health\":\"true\"")
                {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "etcd member {index} not healthy within {within:?}; logs:\n{}",
                        self.logs()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            // A frozen member would not die of SIGKILL before it is thawed.
            self.signal(index, "-CONT");
            self.kill_member(index);
        }
    }
}

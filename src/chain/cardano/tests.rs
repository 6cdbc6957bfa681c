//! The adapter's own parts without a node: boot verdicts, command parsing, and the leader
//! control's file handling against an in-memory supervisord and a node that is down.

use std::sync::Mutex;

use super::*;
use crate::supervisor::{ProcessInfo, ProgramConfig, SupervisorError};
use reqwest::Url;

#[test]
fn the_boot_verdict_follows_the_flags() {
    let creds = "--shelley-kes-key /k/kes.skey --shelley-vrf-key /k/vrf.skey \
                 --shelley-operational-certificate /k/node.cert";
    for (command, expected) in [
        (None, None),
        (
            Some(format!(
                "/usr/local/bin/cardano-node run --config c.json {creds} {NON_PRODUCING_FLAG}"
            )),
            Some(false),
        ),
        (Some(format!("cardano-node run {creds}")), Some(true)),
        (
            Some("cardano-node run --shelley-kes-key=/k/kes.skey".to_string()),
            Some(true),
        ),
        (
            Some("cardano-node run --config c.json --topology t.json".to_string()),
            Some(false),
        ),
        (
            Some("/opt/cardano/cnode/scripts/cnode.sh".to_string()),
            None,
        ),
        (Some(format!("/opt/start.sh {creds}")), None),
        (
            Some(format!("/bin/sh -c 'exec cardano-node run {creds}'")),
            Some(true),
        ),
        (
            Some(format!(
                "/bin/bash -c \"cardano-node run {creds} {NON_PRODUCING_FLAG}\""
            )),
            Some(false),
        ),
        (
            Some("/bin/sh -c 'exec cardano-node run $CREDS'".to_string()),
            None,
        ),
        // A look-alike flag is not the flag.
        (
            Some("cardano-node run --shelley-kes-keys /x".to_string()),
            Some(false),
        ),
    ] {
        let verdict = boot_verdict(command.as_deref());
        assert_eq!(verdict.with_key, expected, "{command:?}: {}", verdict.why);
        assert!(!verdict.why.is_empty());
    }
}

#[test]
fn credential_paths_come_from_the_command() {
    let command = "cardano-node run --shelley-kes-key /k/kes.skey --shelley-vrf-key=/k/vrf.skey \
                   --shelley-operational-certificate '/k/my cert' --start-as-non-producing-node";
    assert_eq!(
        credential_paths(command),
        Some(Credentials {
            kes: "/k/kes.skey".into(),
            vrf: "/k/vrf.skey".into(),
            opcert: "/k/my cert".into(),
        })
    );
    assert_eq!(
        credential_paths("cardano-node run --shelley-kes-key /k"),
        None
    );
}

/// A supervisord that records signals and answers each with `answer`.
struct FakeSupervisor {
    signals: Mutex<Vec<(String, String)>>,
    running: bool,
}

impl Supervisor for FakeSupervisor {
    fn endpoint(&self) -> &str {
        "fake"
    }

    fn process_infos<'a>(
        &'a self,
        _programs: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Result<ProcessInfo, Fault>>, SupervisorError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn program_configs(&self) -> BoxFuture<'_, Result<Vec<ProgramConfig>, SupervisorError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn start<'a>(&'a self, _program: &'a str) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        Box::pin(async { Ok(true) })
    }

    fn stop<'a>(&'a self, _program: &'a str) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        Box::pin(async { Ok(true) })
    }

    fn signal<'a>(
        &'a self,
        program: &'a str,
        signal: &'a str,
    ) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        self.signals
            .lock()
            .unwrap()
            .push((program.to_string(), signal.to_string()));
        let running = self.running;
        Box::pin(async move {
            if running {
                Ok(true)
            } else {
                Err(SupervisorError::Fault {
                    method: "supervisor.signalProcess".into(),
                    fault: Fault::NotRunning(program.to_string()),
                })
            }
        })
    }

    fn tail_log<'a>(
        &'a self,
        _program: &'a str,
        _bytes: u32,
    ) -> BoxFuture<'a, Result<String, SupervisorError>> {
        Box::pin(async { Ok(String::new()) })
    }
}

fn refused_url() -> Url {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    Url::parse(&format!("http://127.0.0.1:{port}/metrics")).unwrap()
}

#[tokio::test]
async fn demotion_removes_only_the_nodes_files_and_signals() {
    let dir = tempfile::tempdir().unwrap();
    let pool_dir = dir.path().join("pool");
    std::fs::create_dir_all(&pool_dir).unwrap();
    for name in credentials::POOL_FILES {
        std::fs::write(pool_dir.join(name), "secret").unwrap();
    }
    let genesis = dir.path().join("genesis.json");
    std::fs::write(
        &genesis,
        r#"{"systemStart": "2023-11-14T22:13:20Z", "slotLength": 0.01, "epochLength": 600,
            "slotsPerKESPeriod": 129600, "maxKESEvolutions": 62}"#,
    )
    .unwrap();
    let node_dir = dir.path().join("bp1");
    std::fs::create_dir_all(&node_dir).unwrap();
    let paths = Credentials {
        kes: node_dir.join("kes.skey"),
        vrf: node_dir.join("vrf.skey"),
        opcert: node_dir.join("node.cert"),
    };
    let pool = Arc::new(PoolFiles::new(&Pool {
        credentials_dir: pool_dir.clone(),
        schedule_file: dir.path().join("schedule.json"),
        genesis_file: genesis,
    }));
    let supervisor = Arc::new(FakeSupervisor {
        signals: Mutex::new(Vec::new()),
        running: true,
    });
    let node = Node::new(
        Settings {
            metrics_url: refused_url(),
            credentials: Some(paths.clone()),
            pool: None,
            genesis_file: None,
        },
        Some(pool),
        supervisor.clone(),
        "bp1",
        &MetricsProbe::new(),
    );
    let leader = node.leader().expect("leader control");
    let timeout = Duration::from_secs(2);
    assert_eq!(leader.holding(timeout).await.unwrap(), Holding::passive());
    // A partial set counts as held: the node may have loaded it before one file went.
    std::fs::write(&paths.vrf, "secret").unwrap();
    assert_eq!(leader.holding(timeout).await.unwrap(), Holding(vec![1]));
    credentials::install(&Credentials::pool(&pool_dir), &paths).unwrap();
    assert_eq!(leader.holding(timeout).await.unwrap(), Holding(vec![1]));

    // The node is down (nothing listens): the files go, the signal is sent, nothing forges.
    leader.demote(&Holding(vec![1]), timeout).await.unwrap();
    assert_eq!(leader.holding(timeout).await.unwrap(), Holding::passive());
    for name in credentials::POOL_FILES {
        assert!(
            pool_dir.join(name).exists(),
            "the pool's {name} was removed"
        );
    }
    assert_eq!(
        *supervisor.signals.lock().unwrap(),
        [("bp1".to_string(), "HUP".to_string())]
    );
    // Promotion asks the node first: down, it is refused and nothing is installed.
    assert_eq!(leader.promote(timeout).await, Err(ProbeError::Refused));
    assert_eq!(leader.holding(timeout).await.unwrap(), Holding::passive());
}

#[tokio::test]
async fn a_node_without_credentials_or_pool_has_no_leader_control() {
    let supervisor = Arc::new(FakeSupervisor {
        signals: Mutex::new(Vec::new()),
        running: false,
    });
    let node = Node::new(
        Settings::new(),
        None,
        supervisor,
        "relay",
        &MetricsProbe::new(),
    );
    assert!(node.leader().is_none());
    assert!(node.schedule().is_none());
    assert!(node.config_file(Variant::Normal).is_none());
    assert_eq!(node.settings.metrics_url.as_str(), DEFAULT_METRICS_URL);
    assert_eq!(node.remaining_kes_periods(), None);
    let unreachable = Credentials {
        kes: "/nonexistent-nodekeeper-dir/kes.skey".into(),
        vrf: "/nonexistent-nodekeeper-dir/vrf.skey".into(),
        opcert: "/nonexistent-nodekeeper-dir/node.cert".into(),
    };
    let pool = Arc::new(PoolFiles::new(&Pool {
        credentials_dir: "/nonexistent-pool".into(),
        schedule_file: "/nonexistent-pool/s.json".into(),
        genesis_file: "/nonexistent-pool/g.json".into(),
    }));
    let node = Node::new(
        Settings {
            metrics_url: refused_url(),
            credentials: Some(unreachable),
            pool: None,
            genesis_file: None,
        },
        Some(pool),
        Arc::new(FakeSupervisor {
            signals: Mutex::new(Vec::new()),
            running: false,
        }),
        "far",
        &MetricsProbe::new(),
    );
    match node.leader().unwrap().holding(Duration::from_secs(1)).await {
        Err(ProbeError::Connect(why)) => {
            assert!(why.contains("out of nodekeeper's reach"), "{why}");
            assert!(why.contains("/nonexistent-nodekeeper-dir"), "{why}");
        }
        other => panic!("{other:?}"),
    }
}

/// A node whose metrics are `text` with `{n}` replaced by a counter that moves at every request.
async fn metrics_server(text: &'static str) -> Url {
    use std::sync::atomic::{AtomicU64, Ordering};
    let counter = Arc::new(AtomicU64::new(100));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { text.replace("{n}", &n.to_string()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Url::parse(&format!("http://{address}/metrics")).unwrap()
}

async fn demote_against(text: &'static str) -> Result<(), Vec<LeaderFailure>> {
    let dir = tempfile::tempdir().unwrap();
    let genesis = dir.path().join("genesis.json");
    std::fs::write(
        &genesis,
        r#"{"systemStart": "2023-11-14T22:13:20Z", "slotLength": 0.01, "epochLength": 600,
            "slotsPerKESPeriod": 129600, "maxKESEvolutions": 62}"#,
    )
    .unwrap();
    let pool = Arc::new(PoolFiles::new(&Pool {
        credentials_dir: dir.path().join("pool"),
        schedule_file: dir.path().join("schedule.json"),
        genesis_file: genesis,
    }));
    let node = Node::new(
        Settings {
            metrics_url: metrics_server(text).await,
            credentials: Some(Credentials::pool(dir.path())),
            pool: None,
            genesis_file: None,
        },
        Some(pool),
        Arc::new(FakeSupervisor {
            signals: Mutex::new(Vec::new()),
            running: true,
        }),
        "bp1",
        &MetricsProbe::new(),
    );
    node.leader()
        .unwrap()
        .demote(&Holding(vec![1]), Duration::from_secs(2))
        .await
}

#[tokio::test]
async fn a_demotion_is_judged_by_the_forge_metrics() {
    const RUNNING: &str =
        "cardano_node_metrics_slotNum_int 5\ncardano_node_metrics_blockNum_int 5\n";
    // The counter moves at every look: still forging.
    let failures = demote_against(concat!(
        "cardano_node_metrics_slotNum_int 5\ncardano_node_metrics_blockNum_int 5\n",
        "cardano_node_metrics_Forge_forge_about_to_lead_int {n}\n"
    ))
    .await
    .unwrap_err();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].what, "block forging after SIGHUP");
    assert!(
        matches!(&failures[0].error, ProbeError::Malformed(why) if why.contains("still forges")),
        "{failures:?}"
    );
    // The new tracing's name counts alike.
    assert!(
        demote_against(concat!(
            "cardano_node_metrics_slotNum_int 5\ncardano_node_metrics_blockNum_int 5\n",
            "cardano_node_metrics_Forge_about_to_lead_counter {n}\n"
        ))
        .await
        .is_err()
    );
    // forging_enabled 0 settles it, whatever the counter does (cardano-node #6576).
    demote_against(concat!(
        "cardano_node_metrics_slotNum_int 5\ncardano_node_metrics_blockNum_int 5\n",
        "cardano_node_metrics_Forge_forge_about_to_lead_int {n}\n",
        "cardano_node_metrics_forging_enabled 0\n"
    ))
    .await
    .unwrap();
    // No forge metrics at all: the node never loaded credentials.
    demote_against(RUNNING).await.unwrap();
    // A replaying node cannot take the SIGHUP yet.
    let failures =
        demote_against("cardano_node_metrics_slotNum_int 0\ncardano_node_metrics_blockNum_int 0\n")
            .await
            .unwrap_err();
    assert!(
        matches!(&failures[0].error, ProbeError::Malformed(why) if why.contains("replaying")),
        "{failures:?}"
    );
}

/// A supervisord whose program `bp1` is RUNNING since `start` (epoch seconds) with `command`.
struct RunningSupervisor {
    command: String,
    start: i64,
}

impl Supervisor for RunningSupervisor {
    fn endpoint(&self) -> &str {
        "fake"
    }

    fn process_infos<'a>(
        &'a self,
        _programs: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Result<ProcessInfo, Fault>>, SupervisorError>> {
        let info = ProcessInfo {
            name: "bp1".into(),
            group: "bp1".into(),
            start: self.start,
            stop: 0,
            now: self.start,
            state: ProcessState::Running,
            statename: "RUNNING".into(),
            spawnerr: String::new(),
            exitstatus: 0,
            stdout_logfile: String::new(),
            stderr_logfile: String::new(),
            pid: 4242,
            description: String::new(),
        };
        Box::pin(async move { Ok(vec![Ok(info)]) })
    }

    fn program_configs(&self) -> BoxFuture<'_, Result<Vec<ProgramConfig>, SupervisorError>> {
        let config = ProgramConfig {
            name: "bp1".into(),
            group: "bp1".into(),
            command: self.command.clone(),
        };
        Box::pin(async move { Ok(vec![config]) })
    }

    fn start<'a>(&'a self, _program: &'a str) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        Box::pin(async { Ok(true) })
    }

    fn stop<'a>(&'a self, _program: &'a str) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        Box::pin(async { Ok(true) })
    }

    fn signal<'a>(
        &'a self,
        _program: &'a str,
        _signal: &'a str,
    ) -> BoxFuture<'a, Result<bool, SupervisorError>> {
        Box::pin(async { Ok(true) })
    }

    fn tail_log<'a>(
        &'a self,
        _program: &'a str,
        _bytes: u32,
    ) -> BoxFuture<'a, Result<String, SupervisorError>> {
        Box::pin(async { Ok(String::new()) })
    }
}

/// What `holding` concludes, and whether the files are still at the node's paths, for pool files
/// left there before a RUNNING process (started 100 s from now) run by `command` that exports no
/// forge or KES metric.
async fn stale_files_behind(command: &str) -> (Holding, bool) {
    const PLAIN_NODE: &str = "cardano_node_metrics_slotNum_int 5000\n\
                              cardano_node_metrics_blockNum_int 240\n";
    let dir = tempfile::tempdir().unwrap();
    let paths = Credentials::pool(&dir.path().join("bp1"));
    std::fs::create_dir_all(dir.path().join("bp1")).unwrap();
    for path in paths.paths() {
        std::fs::write(path, "{}").unwrap();
    }
    let pool = Arc::new(PoolFiles::new(&Pool {
        credentials_dir: dir.path().join("pool"),
        schedule_file: dir.path().join("schedule.json"),
        genesis_file: dir.path().join("genesis.json"),
    }));
    let now = crate::time::SystemClock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let node = Node::new(
        Settings {
            metrics_url: metrics_server(PLAIN_NODE).await,
            credentials: Some(paths.clone()),
            pool: None,
            genesis_file: None,
        },
        Some(pool),
        Arc::new(RunningSupervisor {
            command: command.into(),
            start: i64::try_from(now).unwrap() + 100,
        }),
        "bp1",
        &MetricsProbe::new(),
    );
    let holding = node
        .leader()
        .unwrap()
        .holding(Duration::from_secs(2))
        .await
        .unwrap();
    let left = paths.paths().iter().all(|path| path.exists());
    (holding, left)
}

#[tokio::test]
async fn stale_files_are_removed_only_behind_cardano_nodes_own_non_producing_command() {
    // cardano-node itself, started non-producing: it cannot have loaded files older than its
    // process, and shows no forge or KES metric, so they are stale: removed, it holds nothing.
    let own = "/usr/local/bin/cardano-node run --config c.json --shelley-kes-key /k \
               --shelley-vrf-key /v --shelley-operational-certificate /o \
               --start-as-non-producing-node";
    assert_eq!(
        stale_files_behind(own).await,
        (Holding::passive(), false),
        "cardano-node's own non-producing command"
    );
    // The same node behind a wrapper script: its command says nothing about the flags it passes
    // (it may have started cardano-node forging with them), so the files stay and the node is
    // taken to hold the key (a demotion, not a silent removal, takes it away).
    assert_eq!(
        stale_files_behind("/opt/pool/bin/start-bp1.sh --mainnet").await,
        (Holding(vec![schedule::HANDLE]), true),
        "a wrapper's command"
    );
    // A shell script that names cardano-node without visible flags: unknown as well.
    assert_eq!(
        stale_files_behind("/bin/sh -c 'exec cardano-node run $CARDANO_ARGS'").await,
        (Holding(vec![schedule::HANDLE]), true),
        "a script expanding its flags"
    );
}

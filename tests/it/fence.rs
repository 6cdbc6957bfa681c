//! The host's fence (`nodekeeper fence`) under a real supervisord, as `supervisor-conf` generates
//! it, beside two simulated Jormungandr nodes of instance "a": idle while the lease deadline file
//! is fresh, a demotion soon after the deadline passed, again when a node takes the key while it
//! stays passed, and exit 2 without `[cluster]`. The fence never talks to etcd: the endpoint is a
//! dummy.

use std::path::Path;
use std::time::Duration;

use nodekeeper::cluster::deadline;
use nodekeeper::supervisor::ProcessState;
use serde_json::json;
use tokio::time::Instant;

use crate::support::{DaemonConfig, NODEKEEPER, SimNode, Supervisord, http, run, wait_until};

/// The node's leader ids (`None`: no answer).
async fn leaders(sim: &SimNode) -> Option<Vec<u32>> {
    let response = http()
        .get(format!("{}/leaders", sim.api()))
        .timeout(Duration::from_millis(800))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    serde_json::from_slice(&response.bytes().await.ok()?).ok()
}

/// Gives `sim` the pool's key over REST (`POST /leaders`), once it is up.
async fn promote(sup: &Supervisord, sim: &SimNode) {
    let body = nodekeeper::chain::jormungandr::secret::load(&sup.secret_path())
        .expect("the pool's secret")
        .to_json_body();
    wait_until(
        &format!("{} to accept a promotion", sim.name),
        Duration::from_secs(20),
        || {
            let body = body.clone();
            async move {
                let response = http()
                    .post(format!("{}/leaders", sim.api()))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .ok()?;
                response.status().is_success().then_some(())
            }
        },
    )
    .await;
    assert!(
        leaders(sim).await.is_some_and(|ids| !ids.is_empty()),
        "{} holds no key after its promotion",
        sim.name
    );
}

/// Writes the deadline file `offset_ms` from now on the monotonic clock (negative: passed).
fn write_deadline(file: &Path, offset_ms: i64) {
    let now = deadline::monotonic_now();
    let at = if offset_ms >= 0 {
        now + Duration::from_millis(offset_ms.unsigned_abs())
    } else {
        now - Duration::from_millis(offset_ms.unsigned_abs())
    };
    deadline::write(file, Some(at)).expect("write the deadline file");
}

/// Waits until `sim` holds no key; returns how long it took.
async fn wait_demoted(sim: &SimNode, within: Duration, log: &Path) -> Duration {
    let started = Instant::now();
    let deadline = started + within;
    loop {
        if leaders(sim).await.is_some_and(|ids| ids.is_empty()) {
            return started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{} still holds the key after {within:?}; the fence's log:\n{}",
            sim.name,
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_fence_demotes_the_hosts_nodes_once_the_lease_deadline_passed() {
    let sup = Supervisord::builder().sims(2).include_dir().start().await;
    let secret = sup.secret_path().display().to_string();
    let nodes: Vec<_> = sup
        .sims
        .iter()
        .map(|sim| {
            json!({
                "name": sim.name,
                "instance": "a",
                "overrides": {"rest": {"listen": sim.listen}},
            })
        })
        .collect();
    let config = DaemonConfig::write(
        &sup,
        json!({
            "nodes": nodes,
            "leadership": {"enabled": true, "secret_file": secret},
            "cluster": {"name": "a", "etcd": ["http://127.0.0.1:1"]},
        }),
    );
    let file = deadline::path(&config.restart_log);
    write_deadline(&file, 10_000);
    let node1 = &sup.sims[0];
    promote(&sup, node1).await;

    // The fence as supervisor-conf generates it, added to the nodes' supervisord.
    let generated = config.dir.join("generated");
    std::fs::create_dir_all(&generated).expect("create the directory of generated programs");
    let output = run(&mut config.nodekeeper(&[
        "supervisor-conf",
        "--no-nodekeeper",
        "--nodekeeper-binary",
        NODEKEEPER,
        "--dir",
        generated.to_str().expect("a UTF-8 path"),
    ]))
    .await;
    assert_eq!(output.code, 0, "supervisor-conf: {output:?}");
    let text = std::fs::read_to_string(generated.join("nodekeeper-fence.conf"))
        .expect("supervisor-conf wrote nodekeeper-fence.conf with [cluster]");
    assert!(
        text.contains(&format!(
            "command={NODEKEEPER} fence -c {}",
            config.path.display()
        )),
        "{text}"
    );
    std::fs::copy(
        generated.join("nodekeeper-fence.conf"),
        sup.dir().join("conf.d").join("nodekeeper-fence.conf"),
    )
    .expect("copy into the include directory");
    let diff = sup.client().update().await.expect("update");
    assert_eq!(diff.added, ["nodekeeper-fence"], "{}", sup.main_log());
    sup.wait_for_state(
        "nodekeeper-fence",
        ProcessState::Running,
        Duration::from_secs(15),
    )
    .await;
    let log = config.dir.join("nodekeeper-fence.log");

    // (1) A fresh deadline: the fence leaves the producer alone.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert!(
            leaders(node1).await.is_some_and(|ids| !ids.is_empty()),
            "node1 lost the key under a fresh deadline; the fence's log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let info = sup
        .client()
        .get_process_info("nodekeeper-fence")
        .await
        .expect("the fence's info");
    assert_eq!(
        info.state,
        ProcessState::Running,
        "the fence exited: {info:?}"
    );

    // (2) The deadline passed: node1 demoted within 1.5 s, one line naming it and why.
    write_deadline(&file, -1);
    let took = wait_demoted(node1, Duration::from_millis(1500), &log).await;
    eprintln!("demoted {took:?} after the deadline passed");
    wait_until(
        "the fence to log the demotion",
        Duration::from_secs(5),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            async move {
                (text.contains("node1: demoted")
                    && text.contains("the local nodekeeper's lease deadline passed"))
                .then_some(())
            }
        },
    )
    .await;

    // (3) node1 takes the key again while the deadline stays passed: demoted again.
    promote(&sup, node1).await;
    wait_demoted(node1, Duration::from_secs(3), &log).await;
    assert_eq!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("node1: demoted")
            .count(),
        2
    );
    assert!(
        leaders(&sup.sims[1])
            .await
            .is_some_and(|ids| ids.is_empty()),
        "node2 holds a key"
    );

    // SIGTERM (supervisord's stop): exit 0.
    sup.client()
        .stop_process("nodekeeper-fence", true)
        .await
        .expect("stop the fence");
    let info = sup
        .client()
        .get_process_info("nodekeeper-fence")
        .await
        .expect("the fence's info");
    assert_eq!(
        (info.state, info.exitstatus),
        (ProcessState::Stopped, 0),
        "{info:?}"
    );
}

#[tokio::test]
async fn a_fence_without_cluster_exits_2_before_touching_a_node() {
    let sup = Supervisord::builder().sims(1).start().await;
    let config = DaemonConfig::write(&sup, json!({}));
    let output = run(tokio::process::Command::new(NODEKEEPER)
        .args(["fence", "-c"])
        .arg(&config.path)
        .env_clear()
        .kill_on_drop(true))
    .await;
    assert_eq!(output.code, 2, "{output:?}");
    assert!(
        output.stderr.contains("nodekeeper fence needs [cluster]")
            && output.stderr.contains("nodekeeper.json"),
        "{output:?}"
    );
}

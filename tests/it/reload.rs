//! Hot reload in the running daemon: a valid change of the configuration files takes effect and
//! rewrites the node configs that changed, without restarting running nodes; an invalid one is
//! rejected with every problem logged, and the old configuration is kept.

use std::time::Duration;

use serde_json::json;

use crate::support::{DaemonConfig, Supervisord, wait_until};

fn rewrite(config: &DaemonConfig, change: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config.path).unwrap()).unwrap();
    change(&mut value);
    std::fs::write(&config.path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

fn node_json(config: &DaemonConfig, node: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(config.node_config(node)).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn a_valid_change_applies_without_restarts_and_an_invalid_one_is_rejected() {
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let daemon = config.start(&[]).await;
    wait_until(
        "node1's config written",
        Duration::from_secs(10),
        || async { config.trusted_peers("node1").map(|_| ()) },
    )
    .await;
    let pids = supervisord.pids().await;

    // A new override for node1: its file is rewritten, nobody is restarted.
    rewrite(&config, |value| {
        value["nodes"][0]["overrides"]["mempool"] = json!({"pool_max_entries": 123});
    });
    wait_until(
        "node1's config rewritten",
        Duration::from_secs(15),
        || async {
            (node_json(&config, "node1")["mempool"]["pool_max_entries"] == 123).then_some(())
        },
    )
    .await;
    daemon
        .wait_for_log("configuration reloaded", Duration::from_secs(5))
        .await;
    assert!(
        node_json(&config, "node2").get("mempool").is_none(),
        "only node1 changed"
    );

    // A template change reaches every node.
    let template_path = config.dir.join("template.json");
    let mut template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&template_path).unwrap()).unwrap();
    template["leadership"] = json!({"logs_capacity": 4096});
    std::fs::write(&template_path, template.to_string()).unwrap();
    wait_until(
        "the template change in node2's config",
        Duration::from_secs(15),
        || async {
            (node_json(&config, "node2")["leadership"]["logs_capacity"] == 4096).then_some(())
        },
    )
    .await;

    // Broken: two problems, both logged; the old configuration stays (node1 keeps 123).
    rewrite(&config, |value| {
        value["thresholds"]["tip_timeout"] = json!("soon");
        value["nodes"][1]["overrides"]["mempool"] = json!({"pool_max_entries": 456});
        value["api"]["bogus"] = json!(1);
    });
    daemon
        .wait_for_log("configuration change rejected", Duration::from_secs(15))
        .await;
    let log = daemon.log_text();
    assert!(log.contains("thresholds.tip_timeout"), "{log}");
    assert!(log.contains("api.bogus"), "{log}");
    assert!(
        node_json(&config, "node2").get("mempool").is_none(),
        "a rejected configuration must not be applied"
    );
    assert_eq!(
        node_json(&config, "node1")["mempool"]["pool_max_entries"],
        123
    );
    assert_eq!(supervisord.pids().await, pids, "no node was restarted");
    assert!(
        config.rows().is_empty(),
        "no restart-log rows: {:?}",
        config.rows()
    );

    // The daemon is still managing the pool with the old configuration.
    supervisord.sims[1].fault(json!({"fault": "crash"})).await;
    wait_until("node2 started again", Duration::from_secs(15), || async {
        config
            .rows()
            .iter()
            .any(|row| row.node == "node2" && row.reason.starts_with("crashed"))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn sighup_reads_the_configuration_again_and_the_daemon_keeps_running() {
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let mut daemon = config.start(&[]).await;
    wait_until(
        "node1's config written",
        Duration::from_secs(10),
        || async { config.trusted_peers("node1").map(|_| ()) },
    )
    .await;
    // Unchanged files: a SIGHUP still reads them all again.
    daemon.signal("HUP");
    daemon
        .wait_for_log(
            "SIGHUP: reading the configuration again",
            Duration::from_secs(5),
        )
        .await;
    daemon
        .wait_for_log("configuration reloaded", Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !daemon.exited(),
        "SIGHUP ended the daemon:\n{}",
        daemon.log_text()
    );
    // It keeps managing the pool: a crashed node is started again.
    let before = supervisord.pids().await;
    supervisord.sims[1].fault(json!({"fault": "crash"})).await;
    wait_until("node2 runs again", Duration::from_secs(20), || async {
        let pids = supervisord.pids().await;
        (pids
            .get("node2")
            .is_some_and(|pid| Some(pid) != before.get("node2") && *pid != 0))
        .then_some(())
    })
    .await;
    assert_eq!(daemon.terminate().await, Some(0));
}

/// Waits until the daemon has logged `needle` `count` times.
async fn wait_for_count(daemon: &crate::support::Daemon, needle: &str, count: usize) {
    wait_until(
        &format!("{count} × {needle:?} in the log"),
        Duration::from_secs(15),
        || async { (daemon.log_text().matches(needle).count() >= count).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_rejected_reload_never_shows_a_secret_and_an_absurd_duration_never_crashes() {
    let supervisord = Supervisord::builder().sims(2).start().await;
    let mut config = DaemonConfig::write(&supervisord, json!({}));
    // The same configuration as TOML, whose parse errors used to quote the source line.
    let value: toml::Table =
        serde_json::from_str(&std::fs::read_to_string(&config.path).unwrap()).unwrap();
    let good = toml::to_string(&value).unwrap();
    config.path = config.dir.join("nodekeeper.toml");
    std::fs::write(&config.path, &good).unwrap();
    let daemon = config.start(&[]).await;
    let rejected = "configuration change rejected";

    // A password with an unclosed quote: the error names the line, the column and the key, and
    // neither the log nor anything else shows the password.
    let broken = format!("{good}\n[email]\npassword = \"hunter2\n");
    let line = broken.lines().count();
    std::fs::write(&config.path, &broken).unwrap();
    wait_for_count(&daemon, rejected, 1).await;
    let log = daemon.log_text();
    assert!(
        log.contains(&format!(
            "line {line}, column 12 (key email.password): invalid TOML"
        )),
        "{log}"
    );
    assert!(
        !log.contains("hunter2"),
        "the password reached the log:\n{log}"
    );

    // A huge tick interval (it used to pass the check and crash the loop on overflow): rejected,
    // naming the key and its bound.
    std::fs::write(
        &config.path,
        good.replace(
            "tick_interval = \"200ms\"",
            "tick_interval = 9223372036854775807",
        ),
    )
    .unwrap();
    wait_for_count(&daemon, rejected, 2).await;
    let log = daemon.log_text();
    assert!(
        log.contains("thresholds.tick_interval: ") && log.contains("expected at most 10m"),
        "{log}"
    );

    // The daemon keeps running on the old configuration: a crashed node is started again.
    let before = supervisord.pids().await;
    supervisord.sims[1].fault(json!({"fault": "crash"})).await;
    wait_until("node2 runs again", Duration::from_secs(20), || async {
        let pids = supervisord.pids().await;
        (pids
            .get("node2")
            .is_some_and(|pid| Some(pid) != before.get("node2") && *pid != 0))
        .then_some(())
    })
    .await;
    assert!(
        !daemon.log_text().contains("panicked"),
        "{}",
        daemon.log_text()
    );
}

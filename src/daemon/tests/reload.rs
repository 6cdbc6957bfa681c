//! Hot reload, all or nothing: each reloadable part is shown to change, and a rejected change
//! (an invalid file, a part that cannot be built) leaves every part as it was.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{Pool, until};
use crate::daemon::RunOptions;
use crate::events::Event;

fn pool() -> Pool {
    Pool::new(
        &["node1", "node2"],
        json!({
            "leadership": {"enabled": true, "secret_file": "secret.yaml", "switch_margin": 3},
            "pooltool": {
                "enabled": true,
                "user_id": "00000000-0000-0000-0000-000000000000",
                "pool_id": "ab",
                "genesis_hash": "cd",
                "status_url": "http://127.0.0.1:9/stats.json",
            },
            "email": {
                "enabled": true,
                "smtp_server": "127.0.0.1",
                "port": 2525,
                "security": "plain",
                "from": "nodekeeper@example.org",
                "to": ["ops@example.org"],
                "dedupe_window": "15m",
            },
        }),
    )
}

fn token(shared: &super::Shared) -> String {
    shared.token.read().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn a_valid_change_reaches_every_part() {
    let mut pool = pool();
    let (mut daemon, shared) = pool.daemon(RunOptions::default());
    assert_eq!(token(&shared), "first-token-0123456789");
    let before = pool.builds();
    assert_eq!(
        before,
        [
            "supervisor default http://127.0.0.1:9001/RPC2",
            "node node1 http://127.0.0.1:3101/api secret 0123abcd",
            "node node2 http://127.0.0.1:3102/api secret 0123abcd",
        ]
    );
    pool.rewrite(json!({
        "supervisor": {"url": "http://127.0.0.1:9002/RPC2"},
        "nodes": [
            {"name": "node1", "overrides": {"rest": {"listen": "127.0.0.1:4101"}}},
            {"name": "node2", "overrides": {"rest": {"listen": "127.0.0.1:4102"}}},
        ],
        "thresholds": {"tip_diff_threshold": 20},
        "leadership": {"secret_file": "secret2.yaml", "switch_margin": 5},
        "pooltool": {"status_url": "http://127.0.0.1:9/other.json", "tip_url": "http://127.0.0.1:9/tip"},
        "api": {"token": "second-token-0123456789"},
        "email": {"dedupe_window": "5m"},
    }));
    assert!(shared.alert_setup().is_none());
    daemon.on_reload();
    // Clients and adapters (with the new secret) are built anew ...
    assert_eq!(
        pool.builds()[before.len()..],
        [
            "supervisor default http://127.0.0.1:9002/RPC2",
            "node node1 http://127.0.0.1:4101/api secret 4567cdef",
            "node node2 http://127.0.0.1:4102/api secret 4567cdef",
        ]
    );
    // ... the policy's thresholds and leadership settings, the PoolTool reporter and reference
    // feed, and the API token changed with them.
    assert_eq!(daemon.rt.policy.thresholds.tip_diff_threshold, 20);
    assert_eq!(daemon.rt.policy.leader.switch_margin, 5);
    let feed = daemon.rt.reference.as_ref().expect("a reference feed");
    assert_eq!(feed.source.url().as_str(), "http://127.0.0.1:9/other.json");
    assert!(daemon.rt.reporter.is_some());
    assert_eq!(daemon.rt.config.pooltool.tip_url, "http://127.0.0.1:9/tip");
    assert_eq!(token(&shared), "second-token-0123456789");
    // The alert worker was handed its new settings.
    let alerts = shared
        .alert_setup()
        .expect("the alert worker is reconfigured");
    assert_eq!(alerts.options().dedupe_window, Duration::from_secs(300));
}

#[tokio::test(start_paused = true)]
async fn an_invalid_file_or_a_part_that_cannot_be_built_changes_nothing() {
    let mut pool = pool();
    let (mut daemon, shared) = pool.daemon(RunOptions::default());
    let supervisors = daemon.rt.supervisors.clone();
    let config = Arc::clone(&daemon.rt.config);
    let builds = pool.builds().len();

    // An invalid value: rejected by validation, with the event.
    pool.rewrite(json!({
        "thresholds": {"tip_diff_threshold": "many"},
        "api": {"token": "second-token-0123456789"},
    }));
    daemon.on_reload();
    assert!(Arc::ptr_eq(&config, &daemon.rt.config));
    assert_eq!(token(&shared), "first-token-0123456789");
    assert_eq!(pool.builds().len(), builds);
    let events = shared.events();
    assert!(
        matches!(events.last(), Some(Event::ConfigReloadRejected { errors }) if errors.contains("tip_diff_threshold")),
        "{events:?}"
    );

    // A valid file whose supervisord client cannot be built: the whole change is rejected,
    // the token and the thresholds included.
    pool.parts
        .refuse
        .lock()
        .unwrap()
        .insert("http://127.0.0.1:9003/RPC2".into());
    pool.rewrite(json!({
        "supervisor": {"url": "http://127.0.0.1:9003/RPC2"},
        "thresholds": {"tip_diff_threshold": 30},
    }));
    daemon.on_reload();
    assert!(Arc::ptr_eq(&config, &daemon.rt.config));
    assert_eq!(daemon.rt.policy.thresholds.tip_diff_threshold, 7);
    assert_eq!(token(&shared), "first-token-0123456789");
    for (name, client) in &supervisors {
        assert!(Arc::ptr_eq(client, &daemon.rt.supervisors[name]));
    }
    assert!(
        shared.alert_setup().is_none(),
        "the alert worker was reconfigured"
    );
    let events = shared.events();
    assert!(
        matches!(events.last(), Some(Event::ConfigReloadRejected { errors }) if errors.contains("cannot build")),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_running_loop_reloads_within_a_few_seconds() {
    let mut pool = Pool::new(&["node1"], json!({}));
    let running = pool.run();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pool.rewrite(json!({"api": {"token": "second-token-0123456789"}}));
    until(
        "the new token is in force",
        Duration::from_secs(10),
        || async { (token(&running.shared) == "second-token-0123456789").then_some(()) },
    )
    .await;
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_secret_in_the_same_file_is_read_again() {
    let pool = pool();
    let (mut daemon, _shared) = pool.daemon(RunOptions::default());
    let before = pool.builds().len();
    std::fs::write(
        pool.dir.join("secret.yaml"),
        std::fs::read_to_string(pool.dir.join("secret2.yaml")).unwrap(),
    )
    .unwrap();
    daemon.on_reload();
    assert_eq!(
        pool.builds()[before..],
        [
            "supervisor default http://127.0.0.1:9001/RPC2",
            "node node1 http://127.0.0.1:3101/api secret 4567cdef",
            "node node2 http://127.0.0.1:3102/api secret 4567cdef",
        ]
    );
}

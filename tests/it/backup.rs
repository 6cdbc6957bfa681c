//! Backups and restores of node data with a real supervisord and simulated nodes that write a
//! data directory: `nodekeeper backup`/`restore` through the daemon, the refusals, retention, a
//! corrupted archive refused, and the automatic restore of a node whose database will not open.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nodekeeper::backup::{self, Manifest};
use nodekeeper::restart_log::{RestartAction, RestartRow};
use nodekeeper::status::NodeAction;
use serde_json::json;

use crate::support::{DaemonConfig, Supervisord, run, wait_until};

/// The pool's `[backup]` for these tests: archives in `DIR/backups`, `extra` merged in.
fn config_with_backups(
    supervisord: &Supervisord,
    extra: serde_json::Value,
) -> (DaemonConfig, PathBuf) {
    let dir = supervisord.dir().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let mut backup = json!({"dir": dir, "keep": 2, "keep_old_for": "1s"});
    if let (Some(backup), Some(extra)) = (backup.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            backup.insert(key.clone(), value.clone());
        }
    }
    let config = DaemonConfig::write(supervisord, json!({"backup": backup}));
    (config, dir)
}

async fn wait_in_sync(config: &DaemonConfig, nodes: &[&str]) {
    wait_until("the nodes in sync", Duration::from_secs(30), || async {
        let status = config.status().await;
        nodes
            .iter()
            .all(|node| {
                status["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|line| {
                        line["name"] == *node
                            && line["program_state"] == "RUNNING"
                            && line["busy"] == false
                            && line["lag"].as_u64().is_some_and(|lag| lag <= 2)
                    })
            })
            .then_some(())
    })
    .await;
}

fn rows_of(config: &DaemonConfig, node: &str) -> Vec<(RestartAction, String)> {
    config
        .rows()
        .into_iter()
        .filter(|row: &RestartRow| row.node == node)
        .map(|row| (row.action, row.reason))
        .collect()
}

/// The good archives of `node` in `dir`, newest first.
fn archives(dir: &Path, node: &str) -> Vec<backup::Entry> {
    backup::list(dir).unwrap().of_node(node).cloned().collect()
}

#[tokio::test]
async fn a_passive_node_is_backed_up_kept_by_retention_and_restored_but_never_from_a_corrupted_archive()
 {
    let supervisord = Supervisord::builder().sims(2).sim_data_dirs().start().await;
    let (config, dir) = config_with_backups(&supervisord, json!({}));
    let _daemon = config.start(&[]).await;
    wait_in_sync(&config, &["node1", "node2"]).await;
    let data = supervisord.sims[1].data_dir.clone().unwrap();
    wait_until(
        "node2's data directory",
        Duration::from_secs(10),
        || async {
            std::fs::metadata(data.join("blocks.log"))
                .ok()
                .filter(|m| m.len() > 0)
                .map(|_| ())
        },
    )
    .await;
    let before = supervisord.pids().await;

    // A backup through the CLI: stopped, archived, started again.
    let output =
        run(&mut config.nodekeeper(&["backup", "node2", "--reason", "before upgrade"])).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert!(
        output.stdout.contains("node2: backed up into"),
        "{output:?}"
    );
    let first = archives(&dir, "node2");
    assert_eq!(first.len(), 1, "{first:?}");
    let manifest: &Manifest = &first[0].manifest;
    assert_eq!(manifest.chain, "jormungandr");
    assert_eq!(manifest.node, "node2");
    assert!(manifest.height.is_some_and(|h| h > 0), "{manifest:?}");
    assert!(manifest.head.is_some(), "{manifest:?}");
    backup::verify(&first[0].archive, manifest).unwrap();
    let name = first[0]
        .archive
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        name.starts_with(&format!("jormungandr-node2-{}-", manifest.height.unwrap())),
        "{name}"
    );
    let rows = rows_of(&config, "node2");
    let actions: Vec<RestartAction> = rows.iter().map(|(action, _)| *action).collect();
    assert_eq!(
        actions,
        [
            RestartAction::Stop,
            RestartAction::Backup,
            RestartAction::Start
        ],
        "{rows:?}"
    );
    assert!(rows[1].1.starts_with("backup to "), "{rows:?}");
    assert!(rows[0].1.contains("before upgrade"), "{rows:?}");
    let after = supervisord.pids().await;
    assert_ne!(
        after["node2"], before["node2"],
        "node2 was stopped and started"
    );
    assert_eq!(after["node1"], before["node1"], "node1 was left alone");

    // Retention: two more backups, two archives kept, the oldest gone.
    for _ in 0..2 {
        wait_in_sync(&config, &["node1", "node2"]).await;
        let output = run(&mut config.nodekeeper(&["backup", "node2"])).await;
        assert_eq!(output.code, 0, "{output:?}");
    }
    let kept = archives(&dir, "node2");
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(!first[0].archive.exists(), "the oldest archive was removed");
    assert!(!first[0].manifest_path.exists());

    // A corrupted archive is refused before the node is touched.
    let corrupted = kept[0].archive.clone();
    let mut bytes = std::fs::read(&corrupted).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&corrupted, bytes).unwrap();
    wait_in_sync(&config, &["node1", "node2"]).await;
    let pids = supervisord.pids().await;
    let output =
        run(&mut config.nodekeeper(&["restore", "node2", "--from", corrupted.to_str().unwrap()]))
            .await;
    assert_eq!(output.code, 1, "{output:?}");
    assert!(output.stderr.contains("is corrupted"), "{output:?}");
    assert_eq!(
        supervisord.pids().await["node2"],
        pids["node2"],
        "node2 untouched"
    );
    let last = rows_of(&config, "node2").pop().unwrap();
    assert_eq!(last.0, RestartAction::Restore);
    assert!(last.1.starts_with("restore refused:"), "{last:?}");

    // The good one restores: into a new directory swapped in, the old one set aside, then removed
    // once node2 has been in sync for keep_old_for.
    let good = kept[1].archive.clone();
    std::fs::write(data.join("written-after-the-backup"), b"x").unwrap();
    let output =
        run(&mut config.nodekeeper(&["restore", "node2", "--from", good.to_str().unwrap()])).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert!(output.stdout.contains("node2: restored from"), "{output:?}");
    assert!(
        !data.join("written-after-the-backup").exists(),
        "the archive's contents replaced the directory"
    );
    assert!(data.join("blocks.log").exists());
    let tail: Vec<RestartAction> = rows_of(&config, "node2")
        .iter()
        .rev()
        .take(3)
        .map(|r| r.0)
        .collect();
    assert_eq!(
        tail,
        [
            RestartAction::Start,
            RestartAction::Restore,
            RestartAction::Stop
        ]
    );
    let parent = data.parent().unwrap().to_path_buf();
    let set_aside = || {
        std::fs::read_dir(&parent)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("node2.data.old-")
            })
            .count()
    };
    wait_in_sync(&config, &["node1", "node2"]).await;
    wait_until(
        "the old data directory removed",
        Duration::from_secs(20),
        || async { (set_aside() == 0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_backup_is_refused_when_the_pool_cannot_spare_the_node_or_without_a_data_dir() {
    let supervisord = Supervisord::builder().sims(2).sim_data_dirs().start().await;
    let (config, dir) = config_with_backups(&supervisord, json!({}));
    let _daemon = config.start(&[]).await;
    wait_in_sync(&config, &["node1", "node2"]).await;
    let api = config.api();

    // node1 is held and stopped: node2 is the only node in sync, and backup.min_in_sync is 1.
    let output = run(&mut config.nodekeeper(&["ctl", "stop", "node1"])).await;
    assert_eq!(output.code, 0, "{output:?}");
    // Once a tick has seen it stopped.
    wait_until("node1 seen stopped", Duration::from_secs(10), || async {
        (config.node_status("node1").await["program_state"] == "STOPPED").then_some(())
    })
    .await;
    let refused = api
        .archive_action("node2", NodeAction::Backup, None, None, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("0 other node(s) in sync"), "{refused}");
    // The held node itself is refused too.
    let refused = api
        .archive_action("node1", NodeAction::Backup, None, None, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("is held"), "{refused}");
    // A relative target is refused by the API (the CLI makes it absolute).
    let refused = api
        .archive_action(
            "node2",
            NodeAction::Backup,
            None,
            Some("relative/dir"),
            true,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("absolute path"), "{refused}");
    assert!(archives(&dir, "node2").is_empty());
    assert!(
        rows_of(&config, "node2").is_empty(),
        "node2 was not touched"
    );
}

#[tokio::test]
async fn a_node_whose_database_will_not_open_is_restored_by_itself_once() {
    let supervisord = Supervisord::builder().sims(2).sim_data_dirs().start().await;
    let (config, dir) = config_with_backups(
        &supervisord,
        json!({"auto_restore": true, "early_exit": "10s"}),
    );
    let _daemon = config.start(&[]).await;
    wait_in_sync(&config, &["node1", "node2"]).await;
    let view = config
        .api()
        .archive_action("node2", NodeAction::Backup, None, None, true)
        .await
        .unwrap();
    assert!(
        matches!(view.state, nodekeeper::status::ActionState::Done { .. }),
        "{view:?}"
    );
    assert_eq!(archives(&dir, "node2").len(), 1);
    wait_in_sync(&config, &["node1", "node2"]).await;

    // The database goes bad: every start exits at once, until the directory is restored.
    supervisord.sims[1]
        .fault(json!({"fault": "corrupt-db"}))
        .await;
    let data = supervisord.sims[1].data_dir.clone().unwrap();
    wait_until(
        "node2 restored by itself",
        Duration::from_secs(60),
        || async {
            rows_of(&config, "node2")
                .iter()
                .any(|(action, reason)| {
                    *action == RestartAction::Restore && reason.starts_with("automatic restore (")
                })
                .then_some(())
        },
    )
    .await;
    wait_in_sync(&config, &["node1", "node2"]).await;
    assert!(!data.join("sim-corrupt-db").exists());
    let restores = rows_of(&config, "node2")
        .into_iter()
        .filter(|(action, _)| *action == RestartAction::Restore)
        .collect::<Vec<_>>();
    assert_eq!(restores.len(), 1, "{restores:?}");
    assert!(
        restores[0]
            .1
            .contains("exited within 10 s of a start 2 times in a row"),
        "{restores:?}"
    );
}

#[tokio::test]
async fn the_node_that_holds_the_key_is_never_backed_up_nor_any_node_inside_a_guard_window() {
    use crate::leadership::{
        POOL_SLOTS, SLOTS_PER_EPOCH, leadership_patch, safe_moment, slot_gaps, sole_leader,
        wait_for_sole_leader,
    };
    let sup = Supervisord::builder()
        .sims(2)
        .sim_secret()
        .slots_per_epoch(SLOTS_PER_EPOCH)
        .sim_args(&format!("--pool-slots-per-epoch {POOL_SLOTS}"))
        .sim_data_dirs()
        .start()
        .await;
    let dir = sup.dir().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let config = DaemonConfig::write(
        &sup,
        leadership_patch(&sup, json!({"backup": {"dir": dir, "keep": 2}})),
    );
    let daemon = config.start(&[]).await;
    let leader = wait_for_sole_leader(&sup, Duration::from_secs(30)).await;
    let other = sup
        .sims
        .iter()
        .find(|s| s.name != leader)
        .unwrap()
        .name
        .clone();
    let api = config.api();

    // The producer: refused, whatever the moment.
    let refused = api
        .archive_action(&leader, NodeAction::Backup, None, None, true)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(409), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("holds or may hold the leader key"),
        "{refused}"
    );

    // A passive node right before a pool slot (or the epoch's rollover): refused, not now.
    wait_until(
        "a pool slot less than a second away",
        Duration::from_secs(90),
        || async {
            let (next, _) = slot_gaps(&sup);
            (next > 0.2 && next < 1.0).then_some(())
        },
    )
    .await;
    let refused = api
        .archive_action(&other, NodeAction::Backup, None, None, true)
        .await
        .unwrap_err();
    assert_eq!(
        refused.status(),
        Some(409),
        "{refused}\n{}",
        daemon.log_text()
    );
    assert!(refused.to_string().contains("not now:"), "{refused}");
    assert!(archives(&dir, &other).is_empty());

    // The same node away from slots: backed up, and the key never moved.
    safe_moment(&sup, 12.0).await;
    let view = api
        .archive_action(&other, NodeAction::Backup, None, None, true)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log_text()));
    assert!(
        matches!(view.state, nodekeeper::status::ActionState::Done { .. }),
        "{view:?}"
    );
    assert_eq!(archives(&dir, &other).len(), 1);
    // The restarted node boots with the secret here (every node of this pool does), and is
    // demoted again; the leader keeps the key throughout.
    wait_until(
        "the leader alone holding the key",
        Duration::from_secs(20),
        || async { (sole_leader(&sup).await == Some(leader.clone())).then_some(()) },
    )
    .await;
    assert!(
        rows_of(&config, &leader).is_empty(),
        "the leader was not touched"
    );
}

#[tokio::test]
async fn a_scheduled_backup_takes_a_passive_node_in_sync_once_per_period() {
    let supervisord = Supervisord::builder().sims(3).sim_data_dirs().start().await;
    // No archive yet: the first one is due as soon as the nodes are in sync.
    let (config, dir) = config_with_backups(&supervisord, json!({"every": "5m"}));
    let _daemon = config.start(&[]).await;
    let name = wait_until("a scheduled backup", Duration::from_secs(40), || async {
        let listing = backup::list(&dir).ok()?;
        listing
            .good
            .first()
            .map(|entry| entry.manifest.node.clone())
    })
    .await;
    wait_in_sync(&config, &["node1", "node2", "node3"]).await;
    let rows = rows_of(&config, &name);
    assert!(
        rows.iter().any(
            |(action, reason)| *action == RestartAction::Stop && reason == "backup (scheduled)"
        ),
        "{rows:?}"
    );
    // Not again within `every`, while the pool ticks every 200 ms.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(backup::list(&dir).unwrap().good.len(), 1);
    }
}

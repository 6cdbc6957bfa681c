//! Leadership against a real supervisord and simulated nodes that all boot with the pool's
//! secret (so every start can bring up a second leader): one leader per slot over several
//! epochs with faults (read from the simulators' leader-event log), and the safe side of a
//! refused promotion, a slow leaders API and a PoolTool outage, each with its log line; the
//! operator's `POST /v1/leader/{name}`.

use std::collections::BTreeMap;
use std::time::Duration;

use nodekeeper::status::ActionState;
use nodekeeper_sim::chain::ChainParams;
use serde_json::{Value, json};

use crate::support::{DaemonConfig, Supervisord, http, wait_until};

pub(crate) const SLOTS_PER_EPOCH: u64 = 40;
pub(crate) const POOL_SLOTS: u64 = 4;

/// The pool's slots of `epoch`, as the simulators compute them (seed 0).
fn pool_slots(sup: &Supervisord, epoch: u64) -> Vec<u64> {
    ChainParams::try_new(sup.block0, 1, SLOTS_PER_EPOCH, 0, POOL_SLOTS, None)
        .expect("chain params")
        .pool_schedule(epoch)
}

fn now_secs() -> f64 {
    let now = nodekeeper::time::Clock::now(&nodekeeper::time::SystemClock);
    now.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The absolute slot now.
fn abs_slot(sup: &Supervisord) -> u64 {
    (now_secs() - sup.block0 as f64) as u64
}

/// Seconds from now to the next pool slot, and since the last one.
pub(crate) fn slot_gaps(sup: &Supervisord) -> (f64, f64) {
    let now = now_secs() - sup.block0 as f64;
    let epoch = now as u64 / SLOTS_PER_EPOCH;
    let mut times = Vec::new();
    for e in epoch.saturating_sub(1)..=epoch + 1 {
        for slot in pool_slots(sup, e) {
            times.push((e * SLOTS_PER_EPOCH + slot) as f64);
        }
    }
    let next = times
        .iter()
        .filter(|t| **t > now)
        .fold(f64::MAX, |a, t| a.min(t - now));
    let last = times
        .iter()
        .filter(|t| **t <= now)
        .fold(f64::MAX, |a, t| a.min(now - t));
    // The epoch rollover is guarded too.
    let rollover = ((epoch + 1) * SLOTS_PER_EPOCH) as f64 - now;
    let since_rollover = now - (epoch * SLOTS_PER_EPOCH) as f64;
    (next.min(rollover), last.min(since_rollover))
}

/// Waits for a moment with no pool slot or rollover within `ahead` s and none in the last 4 s.
pub(crate) async fn safe_moment(sup: &Supervisord, ahead: f64) {
    wait_until("a moment away from slots", Duration::from_secs(120), || {
        let (next, last) = slot_gaps(sup);
        async move { (next >= ahead && last >= 4.0).then_some(()) }
    })
    .await;
}

/// `GET /leaders` of every simulator: name → ids (`None`: no answer).
async fn leaders(sup: &Supervisord) -> BTreeMap<String, Option<Vec<u32>>> {
    let client = http();
    let mut out = BTreeMap::new();
    for sim in &sup.sims {
        let ids = async {
            let response = client
                .get(format!("{}/leaders", sim.api()))
                .timeout(Duration::from_millis(800))
                .send()
                .await
                .ok()?;
            if !response.status().is_success() {
                return None;
            }
            serde_json::from_slice::<Vec<u32>>(&response.bytes().await.ok()?).ok()
        }
        .await;
        out.insert(sim.name.clone(), ids);
    }
    out
}

/// The node holding the key when exactly one does.
pub(crate) async fn sole_leader(sup: &Supervisord) -> Option<String> {
    let holders: Vec<String> = leaders(sup)
        .await
        .into_iter()
        .filter(|(_, ids)| ids.as_ref().is_some_and(|ids| !ids.is_empty()))
        .map(|(name, _)| name)
        .collect();
    (holders.len() == 1).then(|| holders[0].clone())
}

/// The leader-event log: (epoch, slot) → the nodes that produced a block in it.
fn events(sup: &Supervisord) -> BTreeMap<(u64, u64), Vec<String>> {
    let text = std::fs::read_to_string(&sup.events).unwrap_or_default();
    let mut out: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).expect("an event line is JSON");
        out.entry((
            event["epoch"].as_u64().unwrap(),
            event["slot"].as_u64().unwrap(),
        ))
        .or_default()
        .push(event["node"].as_str().unwrap().to_string());
    }
    out
}

/// Leadership enabled with small windows, every node booting with the secret.
pub(crate) fn leadership_patch(sup: &Supervisord, extra: Value) -> Value {
    let secret = sup.secret_path().display().to_string();
    let mut patch = json!({
        "node_defaults": {"args": ["--secret", secret]},
        "leadership": {
            "enabled": true,
            "secret_file": secret,
            "slot_window": 2,
            "schedule_refresh_min_gap": "5s",
            "state_file": "leader-state.json",
        },
        "thresholds": {"max_restarts": 30, "restart_window": "10m"},
    });
    merge(&mut patch, &extra);
    patch
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

pub(crate) async fn pool(n: usize) -> Supervisord {
    Supervisord::builder()
        .sims(n)
        .sim_secret()
        .slots_per_epoch(SLOTS_PER_EPOCH)
        .sim_args(&format!("--pool-slots-per-epoch {POOL_SLOTS}"))
        .start()
        .await
}

pub(crate) async fn wait_for_sole_leader(sup: &Supervisord, within: Duration) -> String {
    wait_until("exactly one node to hold the key", within, || {
        sole_leader(sup)
    })
    .await
}

/// Samples every node's `/leaders` until `stop`, recording instants where two nodes held the
/// key, with the absolute slot: a sampled check beside the event log.
fn watch_holders(sup: &Supervisord) -> (Watcher, tokio::sync::watch::Sender<bool>) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let apis: Vec<(String, String)> = sup.sims.iter().map(|s| (s.name.clone(), s.api())).collect();
    let block0 = sup.block0;
    let handle = tokio::spawn(async move {
        let client = http();
        let mut doubles = Vec::new();
        while !*stopped.borrow() {
            let mut holders = Vec::new();
            let at = now_secs() - block0 as f64;
            for (name, api) in &apis {
                let ids = client
                    .get(format!("{api}/leaders"))
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await;
                if let Ok(response) = ids
                    && let Ok(bytes) = response.bytes().await
                    && let Ok(ids) = serde_json::from_slice::<Vec<u32>>(&bytes)
                    && !ids.is_empty()
                {
                    holders.push(name.clone());
                }
            }
            if holders.len() > 1 {
                doubles.push((at, holders));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stopped.changed() => {}
            }
        }
        doubles
    });
    (handle, stop)
}

/// Waits until `leader` (the crashed leader, back with its secret) is the only holder again.
async fn leads_again(sup: &Supervisord, leader: &str) {
    wait_until(
        "the old leader to lead again",
        Duration::from_secs(20),
        || async move { sole_leader(sup).await.filter(|l| l == leader) },
    )
    .await;
}

type Watcher = tokio::task::JoinHandle<Vec<(f64, Vec<String>)>>;

/// Stops the holder watch and asserts it never saw two holders.
async fn no_two_holders(watcher: Watcher, stop: tokio::sync::watch::Sender<bool>, log: &str) {
    stop.send_replace(true);
    let doubles = watcher.await.unwrap();
    assert!(doubles.is_empty(), "two holders: {doubles:?}\n{log}");
}

/// Three nodes over three full epochs with a leader crash, a lagging leader, a hung passive
/// node and a `kill -9` of the daemon: no slot is led twice, every pool slot of those epochs is
/// led, nodes that missed an epoch's schedule are refreshed, and sampled `/leaders` never shows
/// two holders near a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_per_slot_over_three_epochs_with_faults() {
    let sup = pool(3).await;
    let config = DaemonConfig::write(&sup, leadership_patch(&sup, json!({})));
    let mut daemon = config.start(&[]).await;
    let first = wait_for_sole_leader(&sup, Duration::from_secs(30)).await;
    let (watcher, stop_watching) = watch_holders(&sup);
    let start_epoch = abs_slot(&sup) / SLOTS_PER_EPOCH + 1;
    let end_epoch = start_epoch + 3;
    let sim = |name: &str| sup.sims.iter().find(|s| s.name == name).unwrap().clone();

    // 1. The leader crashes: another node leads, the crashed one comes back passive.
    safe_moment(&sup, 12.0).await;
    sim(&first).fault(json!({"fault": "crash"})).await;
    let second = wait_until("another node to lead", Duration::from_secs(15), || {
        let first = first.clone();
        let sup = &sup;
        async move { sole_leader(sup).await.filter(|l| *l != first) }
    })
    .await;

    // 2. The leader lags: the key moves first, then the laggard is restarted.
    safe_moment(&sup, 12.0).await;
    sim(&second)
        .fault(json!({"fault": "lag", "blocks": 20}))
        .await;
    let third = wait_until(
        "the key to leave the lagging node",
        Duration::from_secs(15),
        || {
            let second = second.clone();
            let sup = &sup;
            async move { sole_leader(sup).await.filter(|l| *l != second) }
        },
    )
    .await;
    wait_until(
        "the laggard to be restarted",
        Duration::from_secs(20),
        || {
            let rows = config.rows();
            let second = second.clone();
            async move {
                rows.iter()
                    .any(|r| r.node == second && r.reason.starts_with("lag"))
                    .then_some(())
            }
        },
    )
    .await;

    // 3. A passive node hangs: it is restarted; the leader keeps the key.
    safe_moment(&sup, 10.0).await;
    let passive = sup.sims.iter().find(|s| s.name != third).unwrap().clone();
    passive.fault(json!({"fault": "hang"})).await;
    wait_until(
        "the hung node to be restarted",
        Duration::from_secs(20),
        || {
            let rows = config.rows();
            let name = passive.name.clone();
            async move {
                rows.iter()
                    .any(|r| r.node == name && r.reason.starts_with("hung"))
                    .then_some(())
            }
        },
    )
    .await;

    // 4. The daemon is killed and started again: it promotes nobody new while one leads.
    safe_moment(&sup, 10.0).await;
    let before = sole_leader(&sup).await;
    let first_log = daemon.log_text();
    daemon.kill9();
    let daemon = config.start(&[]).await;
    daemon
        .wait_for_log("leadership state restored", Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sole_leader(&sup).await, before, "{}", daemon.log_text());

    // Run to the end of the last epoch (plus the slot-settling second).
    wait_until("three full epochs", Duration::from_secs(200), || {
        let done = abs_slot(&sup) > end_epoch * SLOTS_PER_EPOCH;
        async move { done.then_some(()) }
    })
    .await;
    stop_watching.send_replace(true);
    let doubles = watcher.await.unwrap();
    let log = daemon.log_text();
    let led = events(&sup);

    // No slot was led by two nodes, ever.
    let forks: Vec<_> = led.iter().filter(|(_, nodes)| nodes.len() > 1).collect();
    assert!(forks.is_empty(), "slots led twice: {forks:?}\n{log}");
    // Every pool slot of the three epochs was led by some node.
    let mut missed = Vec::new();
    for epoch in start_epoch..end_epoch {
        for slot in pool_slots(&sup, epoch) {
            if !led.contains_key(&(epoch, slot)) {
                missed.push(format!("{epoch}.{slot}"));
            }
        }
    }
    assert!(
        missed.is_empty(),
        "pool slots not led: {missed:?}; led: {led:?}\n{log}"
    );
    // Sampled: two holders only ever far from a slot (an extra leader demoted within a tick).
    for (at, holders) in &doubles {
        let epoch = *at as u64 / SLOTS_PER_EPOCH;
        // Inside the guard window: 2 slots (2 s) either side of a pool slot.
        let near = pool_slots(&sup, epoch)
            .iter()
            .any(|s| ((epoch * SLOTS_PER_EPOCH + s) as f64 - at).abs() <= 2.0);
        assert!(
            !near,
            "{holders:?} held the key at {at:.1} s after block0, next to a pool slot\n{log}"
        );
    }
    // Nodes that missed a new epoch's schedule were refreshed, and the log says why.
    assert!(
        config
            .rows()
            .iter()
            .any(|r| r.reason.starts_with("schedule refresh")),
        "no schedule refresh in {:?}",
        config.rows()
    );
    // The first daemon handed the key over twice (crash, lag), and said so.
    assert!(
        first_log.matches("hand the leader key").count() >= 2,
        "{first_log}"
    );
}

/// A promotion refused by the chosen node: logged, nobody else holds the key meanwhile, and
/// the crashed leader comes back as the only holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_promotion_leaves_no_second_leader() {
    let sup = pool(2).await;
    let config = DaemonConfig::write(&sup, leadership_patch(&sup, json!({})));
    let daemon = config.start(&[]).await;
    let leader = wait_for_sole_leader(&sup, Duration::from_secs(30)).await;
    let other = sup.sims.iter().find(|s| s.name != leader).unwrap().clone();
    let (watcher, stop) = watch_holders(&sup);
    other.fault(json!({"fault": "refuse-promotion"})).await;
    safe_moment(&sup, 10.0).await;
    let sim = sup.sims.iter().find(|s| s.name == leader).unwrap().clone();
    sim.fault(json!({"fault": "crash"})).await;
    daemon
        .wait_for_log(
            &format!("promotion refused by {}", other.name),
            Duration::from_secs(15),
        )
        .await;
    // The crashed leader restarts with the secret and is the only holder.
    leads_again(&sup, &leader).await;
    assert_eq!(leaders(&sup).await[&other.name], Some(vec![]));
    no_two_holders(watcher, stop, &daemon.log_text()).await;
    let led = events(&sup);
    assert!(led.values().all(|nodes| nodes.len() == 1), "{led:?}");
}

/// The leader's leaders API answers too slowly to be read: an operator's hand-over to another
/// node waits (the leader can be neither demoted nor verified), the log says which node blocks,
/// and nothing is promoted until the API answers again; then the key moves. Never two holders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_leaders_api_blocks_promotion() {
    let sup = pool(2).await;
    let config = DaemonConfig::write(&sup, leadership_patch(&sup, json!({})));
    let daemon = config.start(&[]).await;
    let leader = wait_for_sole_leader(&sup, Duration::from_secs(30)).await;
    let other = sup.sims.iter().find(|s| s.name != leader).unwrap().clone();
    let sim = sup.sims.iter().find(|s| s.name == leader).unwrap().clone();
    let api = config.api();
    let (watcher, stop) = watch_holders(&sup);
    // Its leader routes answer after 2 s, longer than the probe timeout.
    sim.fault(json!({"fault": "slow-leaders", "delay_ms": 2000}))
        .await;
    let accepted = api.leader(&other.name, false).await.unwrap();
    // Running: the client has checked that the status is 202.
    assert_eq!(accepted.state, ActionState::Running);
    daemon
        .wait_for_log(
            &format!(
                "promotion of {} waits: {leader} may hold the key and cannot be verified",
                other.name
            ),
            Duration::from_secs(60),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !daemon
            .log_text()
            .contains(&format!("{} promoted", other.name)),
        "{}",
        daemon.log_text()
    );
    // The API answers again: the key moves.
    sim.fault(json!({"fault": "none"})).await;
    wait_until("the other node to lead", Duration::from_secs(60), || {
        let sup = &sup;
        let name = other.name.clone();
        async move { sole_leader(sup).await.filter(|l| *l == name) }
    })
    .await;
    no_two_holders(watcher, stop, &daemon.log_text()).await;
}

/// PoolTool down (status, tip and slot endpoints refuse connections): reports fail with a log
/// line and are retried, leadership carries on with one leader, and no node is restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooltool_outage_changes_nothing_but_the_log() {
    let sup = pool(2).await;
    let dead = format!("http://127.0.0.1:{}", crate::support::free_port());
    let config = DaemonConfig::write(
        &sup,
        leadership_patch(
            &sup,
            json!({"pooltool": {
                "enabled": true,
                "status_url": format!("{dead}/stats.json"),
                "tip_url": format!("{dead}/sharemytip"),
                "slots_url": format!("{dead}/sendlogs"),
                "tip_interval": "1s",
                "send_slots_after": "1s",
                "user_id": "00000000-0000-0000-0000-000000000000",
                "pool_id": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                "genesis_hash": "8e4d2a343f3dcf9330ad9035b3e8d168e6728904262f2c434a4f8f934ec7b676",
            }}),
        ),
    );
    let daemon = config.start(&[]).await;
    wait_for_sole_leader(&sup, Duration::from_secs(30)).await;
    daemon
        .wait_for_log("PoolTool tip report failed", Duration::from_secs(20))
        .await;
    daemon
        .wait_for_log(
            "sending the slot schedule to PoolTool failed",
            Duration::from_secs(60),
        )
        .await;
    daemon
        .wait_for_log("reference tip unavailable", Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(sole_leader(&sup).await.is_some(), "{}", daemon.log_text());
    assert!(config.rows().is_empty(), "{:?}", config.rows());
}

/// `POST /v1/leader/{name}`: the key moves to the named node at a safe moment; 409 for a node
/// that cannot lead; `nodekeeper status` shows the leader and the next slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_hands_the_key_over_through_the_api() {
    let sup = pool(2).await;
    let config = DaemonConfig::write(&sup, leadership_patch(&sup, json!({})));
    let daemon = config.start(&[]).await;
    let leader = wait_for_sole_leader(&sup, Duration::from_secs(30)).await;
    let other = sup.sims.iter().find(|s| s.name != leader).unwrap().clone();
    let api = config.api();
    let body = api
        .leader(&other.name, true)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log_text()));
    // Done: the client has checked that the status is 200.
    assert!(
        matches!(body.state, ActionState::Done { .. }),
        "{body:?}\n{}",
        daemon.log_text()
    );
    assert_eq!(sole_leader(&sup).await, Some(other.name.clone()));
    // It stays: the old leader is not ahead by the switch margin.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sole_leader(&sup).await, Some(other.name.clone()));
    // Asking for the leader again: done at once.
    let again = api.leader(&other.name, false).await.unwrap();
    assert!(matches!(again.state, ActionState::Done { .. }), "{again:?}");
    // A lagging node cannot lead.
    let old = sup.sims.iter().find(|s| s.name == leader).unwrap().clone();
    old.fault(json!({"fault": "lag", "blocks": 30})).await;
    wait_until(
        "the laggard to show its lag",
        Duration::from_secs(10),
        || {
            let config = config.clone();
            let leader = leader.clone();
            async move {
                let line = config.node_status(&leader).await;
                line["lag"]
                    .as_u64()
                    .is_some_and(|lag| lag > 7)
                    .then_some(())
            }
        },
    )
    .await;
    let refused = api.leader(&leader, false).await.unwrap_err();
    assert_eq!(refused.status(), Some(409), "{refused}");
    // The status: leader flag, the pool's next slot, each node's schedule.
    let status = config.status().await;
    let line = &status["leadership"];
    assert_eq!(line["leader"], other.name.as_str(), "{status}");
    assert!(line["next_slot"].is_string(), "{status}");
    let nodes = status["nodes"].as_array().unwrap();
    let flagged: Vec<&Value> = nodes.iter().filter(|n| n["leader"] == true).collect();
    assert_eq!(flagged.len(), 1, "{status}");
    assert!(nodes.iter().all(|n| n["schedule"].is_string()), "{status}");
    let table = crate::support::run(&mut config.nodekeeper(&["status"])).await;
    assert!(table.stdout.contains("leader: "), "{}", table.stdout);
    assert!(table.stdout.contains("next slot"), "{}", table.stdout);
    // Without the daemon, `nodekeeper status` reads the nodes and the persisted state itself.
    let mut daemon = daemon;
    assert_eq!(daemon.terminate().await, Some(0));
    let table = crate::support::run(&mut config.nodekeeper(&["status"])).await;
    assert!(
        table
            .stdout
            .contains(&format!("leader: {}; epoch", other.name)),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains(&format!("{} *", other.name)),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("slot"), "{}", table.stdout);
}

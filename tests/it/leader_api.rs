//! nodekeeper's Jormungandr leader client (`LeaderApi`) over real HTTP against the simulator's
//! router, served in this process on `127.0.0.1:0`: promotion and demotion, a node not yet
//! running, leadership logs and chain settings. (Moved from the unit tests of
//! `chain::jormungandr::leaders`: the library cannot use the simulator, which depends on it.)

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, TimeDelta, Utc};
use nodekeeper::chain::ProbeError;
use nodekeeper::chain::jormungandr::leaders::LeaderApi;
use nodekeeper::chain::jormungandr::secret::LeaderSecret;
use nodekeeper::slots::{LogStatus, SlotClock};
use nodekeeper::time::{Clock as _, SystemClock};
use nodekeeper_sim::api::{Shared, router};
use nodekeeper_sim::chain::ChainParams;
use nodekeeper_sim::node::{Node, NodeConfig};
use reqwest::Url;
use tokio::net::TcpListener;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

const FAST: Duration = Duration::from_secs(2);
const SLOTS_PER_EPOCH: u64 = 600;
const BOOT: TimeDelta = TimeDelta::milliseconds(300);

fn secret(node_id: &str) -> LeaderSecret {
    LeaderSecret::Genesis {
        sig_key: "kes25519-12-sk1SECRETSECRET".into(),
        vrf_key: "vrf_sk1SECRETSECRET".into(),
        node_id: node_id.into(),
    }
}

/// A simulated node on a chain of 1 s slots and 600-slot epochs, half of them the pool's, with
/// block0 three epochs and two slots ago, so a schedule computed now has slots left. It is
/// `Running` `bootstrap` after the call. Returns its API base and its block0 (Unix seconds).
async fn simulated(secret: Option<LeaderSecret>, bootstrap: TimeDelta) -> (Url, i64) {
    let now = DateTime::<Utc>::from(SystemClock.now());
    let block0 = now.timestamp() - 3 * SLOTS_PER_EPOCH as i64 - 2;
    let params = ChainParams::try_new(block0, 1, SLOTS_PER_EPOCH, 11, 300, None).unwrap();
    let node = Node::new(
        NodeConfig {
            name: "leaders-test".into(),
            params,
            version: "jormungandr 0.9.0-sim".into(),
            bootstrap,
            secret,
        },
        now,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = router(Arc::new(Shared::new(node, None)));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (
        Url::parse(&format!("http://{address}/api")).unwrap(),
        block0,
    )
}

/// Polls `GET /leaders` until the node is `Running` (503 before); its answer then.
async fn until_running(api: &LeaderApi, url: &Url) -> Vec<u32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match api.leaders(url, FAST).await {
            Ok(leaders) => return leaders,
            Err(ProbeError::Status(503)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("the node never ran: {other:?}"),
        }
    }
}

#[tokio::test]
async fn promotes_and_demotes_over_http() {
    let api = LeaderApi::new();
    let (url, _) = simulated(None, BOOT).await;
    assert_eq!(until_running(&api, &url).await, Vec::<u32>::new());
    let pool = secret("0123abcd");
    assert_eq!(api.promote(&url, &pool, FAST).await, Ok(1));
    assert_eq!(api.leaders(&url, FAST).await, Ok(vec![1]));
    assert_eq!(
        api.promote(&url, &pool, FAST).await,
        Ok(1),
        "same pool, same id"
    );
    assert_eq!(api.leaders(&url, FAST).await, Ok(vec![1]));
    assert_eq!(api.demote(&url, 1, FAST).await, Ok(true));
    assert_eq!(api.demote(&url, 1, FAST).await, Ok(false));
    assert_eq!(api.leaders(&url, FAST).await, Ok(vec![]));
    assert_eq!(api.promote(&url, &secret("other"), FAST).await, Ok(1));
}

#[tokio::test]
async fn a_node_not_running_answers_with_its_status() {
    let api = LeaderApi::new();
    let (url, _) = simulated(Some(secret("pool")), TimeDelta::hours(1)).await;
    assert_eq!(api.leaders(&url, FAST).await, Err(ProbeError::Status(503)));
    assert_eq!(
        api.promote(&url, &secret("pool"), FAST).await,
        Err(ProbeError::Status(503))
    );
    assert_eq!(
        api.demote(&url, 1, FAST).await,
        Err(ProbeError::Status(503))
    );
    assert_eq!(api.logs(&url, FAST).await, Err(ProbeError::Status(503)));
    assert_eq!(api.settings(&url, FAST).await, Err(ProbeError::Status(503)));
}

#[tokio::test]
async fn reads_logs_and_settings_over_http() {
    let api = LeaderApi::new();
    let (url, block0) = simulated(Some(secret("pool")), BOOT).await;
    assert_eq!(until_running(&api, &url).await, vec![1]);

    let clock = api.settings(&url, FAST).await.unwrap();
    assert_eq!(
        clock,
        SlotClock::new(
            at(u64::try_from(block0).unwrap()),
            Duration::from_secs(1),
            SLOTS_PER_EPOCH
        )
        .unwrap()
    );

    let logs = api.logs(&url, FAST).await.unwrap();
    let epoch = clock.epoch_at(SystemClock.now());
    assert_eq!(epoch, 3);
    assert!(
        logs.iter().any(|log| log.status == LogStatus::Pending),
        "{logs:?}"
    );
    for log in &logs {
        assert_eq!(log.date.epoch, epoch, "{log:?}");
        assert_eq!(log.enclave_leader_id, 1, "{log:?}");
        assert_eq!(clock.date_time(log.date), log.scheduled_at, "{log:?}");
        assert_eq!(log.finished, log.status != LogStatus::Pending, "{log:?}");
    }
}

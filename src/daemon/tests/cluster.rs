//! `[cluster]` in the shell, with paused time: the session's view (a fake behind the `Cluster`
//! trait) gates promotions, a promotion is fenced first, and a lease no longer renewed demotes the
//! instance's producer at half the lease.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Calls, Pool, until, wait};
use crate::chain::BoxFuture;
use crate::cluster::InstanceSnapshot;
use crate::cluster::session::{Cluster, ClusterView, FenceError};

const MINUTE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(10);

/// A session whose view the test sets; fences and resignations go to the pool's calls.
struct FakeCluster {
    view: watch::Sender<ClusterView>,
    calls: Calls,
    published: Mutex<Vec<InstanceSnapshot>>,
}

impl FakeCluster {
    fn new(calls: Calls) -> Arc<FakeCluster> {
        Arc::new(FakeCluster {
            view: watch::Sender::new(ClusterView::unknown(TTL)),
            calls,
            published: Mutex::new(Vec::new()),
        })
    }

    fn set(&self, change: impl FnOnce(&mut ClusterView)) {
        self.view.send_modify(change);
    }

    /// Elected, renewed now.
    fn elect(&self) {
        self.set(|view| {
            view.renewed = Some(Instant::now());
            view.elected = Some(7);
            view.leader = Some("a".into());
            view.reachable = true;
        });
    }
}

impl Cluster for FakeCluster {
    fn view(&self) -> watch::Receiver<ClusterView> {
        self.view.subscribe()
    }
    fn publish(&self, snapshot: InstanceSnapshot) {
        self.published.lock().unwrap().push(snapshot);
    }
    fn fence(&self, node: &str) -> BoxFuture<'_, Result<(), FenceError>> {
        let elected = self.view.borrow().elected;
        self.calls.push(format!("fence {node}"));
        Box::pin(async move {
            match elected {
                Some(_) => Ok(()),
                None => Err(FenceError::NotLeader(None)),
            }
        })
    }
    fn resign(&self) {
        self.calls.push("resign".into());
    }
    fn request(&self, node: &str) {
        self.calls.push(format!("request {node}"));
    }
}

fn cluster_pool() -> (Pool, Arc<FakeCluster>) {
    let node = |name: &str, port: u16| json!({"name": name, "instance": "a", "overrides": {"rest": {"listen": format!("127.0.0.1:{port}")}}});
    let mut pool = Pool::new(
        &["node1", "node2"],
        json!({
            "leadership": {"enabled": true, "secret_file": "secret.yaml", "slot_window": 3},
            "nodes": [node("node1", 3101), node("node2", 3102)],
            "cluster": {"name": "a", "etcd": ["http://127.0.0.1:2379"]},
        }),
    );
    let cluster = FakeCluster::new(pool.calls.clone());
    pool.cluster = Some(Arc::clone(&cluster) as Arc<dyn Cluster>);
    (pool, cluster)
}

#[tokio::test(start_paused = true)]
async fn only_an_elected_instance_promotes_and_it_fences_the_promotion_first() {
    let (pool, cluster) = cluster_pool();
    let running = pool.run();
    // No lease, not elected: nothing is promoted.
    wait(Duration::from_secs(20)).await;
    assert!(
        pool.calls.matching("promote").is_empty(),
        "{:?}",
        pool.calls.all()
    );
    cluster.elect();
    until("a node is promoted", MINUTE, || async {
        (!pool.calls.matching("promote").is_empty()).then_some(())
    })
    .await;
    assert_eq!(pool.calls.all(), ["fence node1", "promote node1"]);
    // The instance publishes that it may hold the key; the status names the instance.
    until("the snapshot says it may hold the key", MINUTE, || async {
        cluster
            .published
            .lock()
            .unwrap()
            .last()
            .is_some_and(|s| s.may_hold && s.instance == "a")
            .then_some(())
    })
    .await;
    let line = running.shared.line("node1");
    assert_eq!(line.instance.as_deref(), Some("a"));
    let cluster_line = running.shared.snapshot.read().unwrap().cluster.clone();
    assert!(
        cluster_line.is_some_and(|c| c.election == "elected" && c.instance == "a"),
        "the status names the election"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lease_no_longer_renewed_demotes_the_producer_at_half_the_lease() {
    let (pool, cluster) = cluster_pool();
    cluster.elect();
    let running = pool.run();
    until("a node is promoted", MINUTE, || async {
        (!pool.calls.matching("promote").is_empty()).then_some(())
    })
    .await;
    // Renewals stop (etcd unreachable): the view changes no more.
    let last = Instant::now();
    cluster.set(|view| view.renewed = Some(last));
    until("the producer is demoted", MINUTE, || async {
        (!pool.calls.matching("demote").is_empty()).then_some(())
    })
    .await;
    let after = last.elapsed();
    assert!(
        after >= TTL / 2 && after <= TTL / 2 + Duration::from_millis(1500),
        "demoted {after:?} after the last renewal (lease_ttl {TTL:?})"
    );
    assert!(pool.node("node1").enclave().is_empty());
    // Renewed again, still elected: it produces again.
    cluster.elect();
    until("promoted again", MINUTE, || async {
        (pool.calls.matching("promote").len() == 2).then_some(())
    })
    .await;
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn another_instance_elected_means_this_one_demotes_what_it_holds() {
    let (pool, cluster) = cluster_pool();
    cluster.elect();
    let running = pool.run();
    until("a node is promoted", MINUTE, || async {
        (!pool.calls.matching("promote").is_empty()).then_some(())
    })
    .await;
    cluster.set(|view| {
        view.elected = None;
        view.leader = Some("b".into());
    });
    until(
        "the producer is demoted",
        Duration::from_secs(3),
        || async { (!pool.calls.matching("demote").is_empty()).then_some(()) },
    )
    .await;
    wait(Duration::from_secs(20)).await;
    assert_eq!(
        pool.calls.matching("promote").len(),
        1,
        "{:?}",
        pool.calls.all()
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_node_behind_another_instances_nodes_is_restarted_for_lag() {
    let (pool, cluster) = cluster_pool();
    cluster.elect();
    let running = pool.run();
    until("the pool is observed", MINUTE, || async {
        running.shared.line("node1").height.map(|_| ())
    })
    .await;
    wait(Duration::from_secs(5)).await;
    assert!(pool.rows().is_empty(), "{:?}", pool.rows());
    // Another instance publishes a Running node 50 blocks ahead of every node here.
    let ahead = pool.node("node1").pool_height() + 50;
    cluster.set(|view| {
        view.peers.insert(
            "b".into(),
            InstanceSnapshot {
                instance: "b".into(),
                nodes: vec![crate::status::NodeLine {
                    name: "b1".into(),
                    node_state: "Running".into(),
                    height: Some(ahead),
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
    });
    until(
        "a node of this instance is restarted for lag",
        MINUTE,
        || async {
            pool.rows()
                .iter()
                .any(|row| row.contains("lag"))
                .then_some(())
        },
    )
    .await;
    // The whole pool in the status: the other instance's node, with its instance.
    until("the status shows b1@b", MINUTE, || async {
        running
            .shared
            .snapshot
            .read()
            .unwrap()
            .nodes
            .iter()
            .any(|line| line.name == "b1" && line.instance.as_deref() == Some("b"))
            .then_some(())
    })
    .await;
    running.stop().await;
}

//! The etcd session of an instance against a real three-member etcd cluster on loopback: the
//! election, the peers' snapshots, the fenced producer write, a crash, a member cut away, a
//! voluntary resignation.

use std::collections::BTreeMap;
use std::time::Duration;

use nodekeeper::cluster::session::{self, Cluster, ClusterView, FenceError, Session};
use nodekeeper::cluster::{ClusterSettings, InstanceSnapshot};
use tokio::time::Instant;

use crate::support::etcd::EtcdCluster;

/// Short, so that expiries come quickly; long enough for a busy two-core machine.
const TTL: Duration = Duration::from_secs(3);

fn settings(name: &str, endpoints: Vec<String>) -> ClusterSettings {
    ClusterSettings {
        name: name.to_string(),
        endpoints,
        ca_file: None,
        client_cert: None,
        credentials: None,
        lease_ttl: TTL,
        prefix: "/nk-test".to_string(),
        instances: BTreeMap::from([
            ("a".to_string(), vec!["node1".to_string()]),
            ("b".to_string(), vec!["node2".to_string()]),
        ]),
    }
}

fn snapshot(name: &str) -> InstanceSnapshot {
    InstanceSnapshot {
        instance: name.to_string(),
        taken_at: "2026-01-01T00:00:00Z".to_string(),
        may_hold: false,
        candidates: vec![format!("node-of-{name}")],
        ..InstanceSnapshot::default()
    }
}

/// Polls `session`'s view until `condition` holds; panics with the last view after `within`.
async fn wait_for(
    session: &Session,
    within: Duration,
    what: &str,
    condition: impl Fn(&ClusterView) -> bool,
) -> ClusterView {
    let mut view = session.view();
    let deadline = Instant::now() + within;
    loop {
        let current = view.borrow_and_update().clone();
        if condition(&current) {
            return current;
        }
        if tokio::time::timeout_at(deadline, view.changed())
            .await
            .is_err()
        {
            panic!("{what}: not within {within:?}; last view {current:#?}");
        }
    }
}

fn elected(session: &Session) -> bool {
    session.view().borrow().elected.is_some()
}

/// Waits until exactly one of the two is elected and both see it as the leader; the elected one
/// first.
async fn one_elected<'s>(
    a: &'s Session,
    b: &'s Session,
    within: Duration,
) -> (&'s Session, &'s Session, &'static str) {
    let deadline = Instant::now() + within;
    loop {
        let (va, vb) = (a.view().borrow().clone(), b.view().borrow().clone());
        match (va.elected, vb.elected) {
            (Some(_), None) if vb.leader.as_deref() == Some("a") => return (a, b, "a"),
            (None, Some(_)) if va.leader.as_deref() == Some("b") => return (b, a, "b"),
            (Some(_), Some(_)) => panic!("both elected: {va:#?} {vb:#?}"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no single election within {within:?}: {va:#?} {vb:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_elect_one_see_each_other_fence_resign_and_take_over_a_crash() {
    let etcd = EtcdCluster::start().await;
    let a = session::start(settings("a", etcd.client_urls()));
    let b = session::start(settings("b", etcd.client_urls()));
    a.publish(snapshot("a"));
    b.publish(snapshot("b"));

    let (leader, follower, leader_name) = one_elected(&a, &b, Duration::from_secs(15)).await;
    let follower_name = if leader_name == "a" { "b" } else { "a" };
    for (session, peer) in [(&a, "b"), (&b, "a")] {
        let view = wait_for(
            session,
            Duration::from_secs(10),
            "the peer's snapshot",
            |v| v.peers.contains_key(peer),
        )
        .await;
        assert_eq!(view.peers[peer], snapshot(peer));
        assert!(view.reachable && view.renewed.is_some());
        assert!(view.lease_fresh(Instant::now()));
    }

    // The fenced write: the elected instance records its node, the other is refused.
    leader
        .fence("n1")
        .await
        .expect("the elected instance fences");
    wait_for(follower, Duration::from_secs(5), "the producer", |v| {
        v.producer.as_deref() == Some(&format!("n1@{leader_name}"))
    })
    .await;
    assert_eq!(follower.fence("n2").await, Err(FenceError::NotLeader(None)));

    // A request for a node of a reaches a (only), which clears it.
    b.request("node1");
    wait_for(
        &a,
        Duration::from_secs(5),
        "the request seen by its owner",
        |v| v.requested.as_deref() == Some("node1"),
    )
    .await;
    assert_eq!(b.view().borrow().requested, None);
    a.clear_request();
    wait_for(&a, Duration::from_secs(5), "the request cleared", |v| {
        v.requested.is_none()
    })
    .await;

    // A resignation hands the election to the other instance.
    let old_token = leader.view().borrow().elected;
    leader.resign();
    wait_for(
        follower,
        Duration::from_secs(10),
        "elected after a resignation",
        |v| v.elected.is_some(),
    )
    .await;
    wait_for(leader, Duration::from_secs(10), "the other leads", |v| {
        v.elected.is_none() && v.leader.as_deref() == Some(follower_name)
    })
    .await;
    assert!(old_token.is_some());
    assert_eq!(leader.fence("n1").await, Err(FenceError::NotLeader(None)));
    follower.fence("n2").await.expect("the new leader fences");

    // A crash of the elected instance (its lease is not revoked): the other is elected once the
    // lease expired.
    let (crashed, survivor) = if elected(&a) { (a, b) } else { (b, a) };
    let crashed_at = Instant::now();
    crashed.abort();
    wait_for(
        &survivor,
        TTL + Duration::from_secs(5),
        "elected after a crash",
        |v| v.elected.is_some(),
    )
    .await;
    assert!(
        crashed_at.elapsed() >= TTL / 2,
        "elected before the crashed lease could expire"
    );
    wait_for(
        &survivor,
        Duration::from_secs(5),
        "the crashed peer gone",
        |v| v.peers.is_empty(),
    )
    .await;
    survivor.shutdown().await;
}

/// How an instance is cut from etcd.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Its only member is stopped: connections refused.
    Stop,
    /// Its only member is frozen (SIGSTOP): nothing answers, nothing fails.
    Freeze,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_member_stops_stops_leading_by_half_its_lease_and_the_other_takes_over() {
    cut_from_etcd(Cut::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_member_hangs_stops_leading_by_half_its_lease_and_the_other_takes_over() {
    cut_from_etcd(Cut::Freeze).await;
}

async fn cut_from_etcd(cut: Cut) {
    let mut etcd = EtcdCluster::start().await;
    let a = session::start(settings("a", vec![etcd.client_url(0)]));
    wait_for(&a, Duration::from_secs(15), "a elected", |v| {
        v.elected.is_some()
    })
    .await;
    let b = session::start(settings("b", vec![etcd.client_url(1)]));
    b.publish(snapshot("b"));
    wait_for(&a, Duration::from_secs(10), "b's snapshot", |v| {
        v.peers.contains_key("b")
    })
    .await;
    assert!(!elected(&b));

    match cut {
        Cut::Stop => etcd.stop_member(0),
        Cut::Freeze => etcd.pause_member(0),
    }
    let stopped_at = Instant::now();
    let view = wait_for(&a, TTL, "the lease no longer fresh", |v| {
        !v.lease_fresh(Instant::now()) && !v.reachable
    })
    .await;
    assert!(view.failures > 0, "the failed calls are counted");
    let renewed = view.renewed.expect("the last renewal stays known");
    assert!(
        renewed <= stopped_at + TTL / 5,
        "renewed after the member stopped"
    );
    assert!(
        stopped_at.elapsed() <= TTL / 2 + TTL / 5 + Duration::from_secs(1),
        "freshness lasted {:?}",
        stopped_at.elapsed()
    );
    // A member stopped may have been etcd's leader: a new one extends every lease once.
    wait_for(&b, TTL * 2 + Duration::from_secs(5), "b elected", |v| {
        v.elected.is_some()
    })
    .await;
    assert!(
        stopped_at.elapsed() >= TTL / 2,
        "b elected before a's lease could expire"
    );

    // a still holds its old token; once its member is back the fence with it fails.
    assert!(elected(&a) || a.view().borrow().renewed.is_none());
    match cut {
        Cut::Stop => etcd.start_member(0).await,
        Cut::Freeze => etcd.resume_member(0).await,
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match a.fence("node1").await {
            Err(FenceError::NotLeader(_)) => break,
            Err(FenceError::Unreachable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("a fence with a stale token: {other:?}"),
        }
    }
    // Back: a new lease, not elected, the election's leader is b.
    wait_for(&a, Duration::from_secs(10), "a back, following b", |v| {
        v.reachable
            && v.lease_fresh(Instant::now())
            && v.elected.is_none()
            && v.leader.as_deref() == Some("b")
    })
    .await;
    b.shutdown().await;
    // A clean stop revokes the lease: no waiting for it to expire.
    wait_for(
        &a,
        TTL - Duration::from_secs(1),
        "a elected at b's clean stop",
        |v| v.elected.is_some() && !v.peers.contains_key("b"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_alone_that_resigns_is_elected_again_with_a_new_token_and_keeps_it() {
    let etcd = EtcdCluster::start_with(1).await;
    let a = session::start(settings("a", etcd.client_urls()));
    let first = wait_for(&a, Duration::from_secs(15), "a elected", |v| {
        v.elected.is_some()
    })
    .await
    .elected;
    a.resign();
    let second = wait_for(&a, Duration::from_secs(10), "a elected again", |v| {
        v.elected.is_some_and(|token| Some(token) != first)
    })
    .await
    .elected;
    // The resignation deleted a key of the same name (one key per lease): its deletion, which
    // the watch reports before the fenced write below, must not count against the new one.
    a.fence("node1").await.expect("the new token fences");
    let view = wait_for(&a, Duration::from_secs(5), "the producer seen", |v| {
        v.producer.as_deref() == Some("node1@a")
    })
    .await;
    assert_eq!(view.elected, second);
    assert_eq!(view.leader.as_deref(), Some("a"));
}

//! Several hosts (`[cluster]`), with real parts: a three-member etcd on loopback, two "hosts"
//! (each its own supervisord with one simulated Jormungandr node, its own `nodekeeper run` and
//! its own `nodekeeper fence`), one pool file per host that differs only in `cluster.name` and
//! the etcd member the instance talks to. Both simulated nodes are asked `GET /leaders` every
//! 100 ms throughout: never two producers, in every scenario.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::etcd::EtcdCluster;
use crate::support::{Daemon, DaemonConfig, SimNode, Supervisord, http, wait_until};

/// The lease of these tests (short, so that each scenario takes seconds).
const TTL: Duration = Duration::from_secs(4);
/// The tick of `DaemonConfig::thresholds`.
const TICK: Duration = Duration::from_millis(200);

struct Host {
    name: &'static str,
    sup: Supervisord,
    config: DaemonConfig,
    daemon: Option<Daemon>,
    fence: Option<tokio::process::Child>,
}

impl Host {
    fn sim(&self) -> &SimNode {
        &self.sup.sims[0]
    }

    fn start_fence(&mut self) {
        let log = std::fs::File::create(self.config.dir.join("fence.log")).expect("fence log");
        let child = tokio::process::Command::new(crate::support::NODEKEEPER)
            .args(["fence", "-c"])
            .arg(&self.config.path)
            .env_clear()
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nodekeeper fence");
        self.fence = Some(child);
    }

    fn log(&self) -> String {
        self.daemon
            .as_ref()
            .map(Daemon::log_text)
            .unwrap_or_default()
    }

    /// SIGKILL of the daemon (the fence and the nodes live on).
    fn kill_daemon(&mut self) {
        self.daemon = None;
    }

    /// The whole host: daemon, fence, supervisord and its nodes, with SIGKILL.
    async fn lose(&mut self) {
        self.daemon = None;
        if let Some(mut fence) = self.fence.take() {
            let _ = fence.kill().await;
        }
        self.sup.kill9().await;
    }
}

struct Pool {
    etcd: EtcdCluster,
    hosts: Vec<Host>,
    sampler: Sampler,
}

/// Starts etcd, two hosts, their fences and daemons; waits for exactly one producer.
async fn pool() -> Pool {
    let etcd = EtcdCluster::start().await;
    let now = nodekeeper::time::Clock::now(&nodekeeper::time::SystemClock);
    let block0 = chrono::DateTime::<chrono::Utc>::from(now).timestamp() - 600;
    let mut sups = Vec::new();
    for name in ["a", "b"] {
        sups.push(
            Supervisord::builder()
                .sims(1)
                .sim_prefix(name)
                .block0(block0)
                .start()
                .await,
        );
    }
    let nodes: Vec<serde_json::Value> = ["a", "b"]
        .iter()
        .zip(&sups)
        .map(|(name, sup)| {
            json!({
                "name": sup.sims[0].name,
                "instance": name,
                "overrides": {"rest": {"listen": sup.sims[0].listen}},
            })
        })
        .collect();
    let mut hosts = Vec::new();
    for (index, (name, sup)) in ["a", "b"].into_iter().zip(sups).enumerate() {
        let config = DaemonConfig::write(
            &sup,
            json!({
                "nodes": nodes,
                "leadership": {
                    "enabled": true,
                    "secret_file": sup.secret_path(),
                    "slot_window": 2,
                    "state_file": "leader-state.json",
                },
                "cluster": {
                    "name": name,
                    "etcd": [etcd.client_url(index)],
                    "lease_ttl": format!("{}s", TTL.as_secs()),
                },
            }),
        );
        for node in ["a1", "b1"] {
            std::fs::create_dir_all(config.dir.join("nodes").join(node)).expect("node dir");
        }
        hosts.push(Host {
            name,
            sup,
            config,
            daemon: None,
            fence: None,
        });
    }
    for host in &mut hosts {
        host.start_fence();
        host.daemon = Some(host.config.start(&[]).await);
    }
    let sampler = Sampler::start(hosts.iter().map(|h| h.sim().api()).collect());
    let pool = Pool {
        etcd,
        hosts,
        sampler,
    };
    wait_until("one producer", Duration::from_secs(90), || {
        let producing = pool.sampler.producing();
        async move { (producing.iter().filter(|p| **p).count() == 1).then_some(()) }
    })
    .await;
    pool
}

impl Pool {
    /// The host whose node produces now.
    fn producer(&self) -> usize {
        let producing = self.sampler.producing();
        producing
            .iter()
            .position(|p| *p)
            .unwrap_or_else(|| panic!("no producer: {producing:?}"))
    }

    /// Waits until host `index`'s node produces; how long from `since`.
    async fn wait_producing(&self, index: usize, since: Instant, within: Duration) -> Duration {
        let sampler = &self.sampler;
        let logs = || {
            self.hosts
                .iter()
                .map(|h| format!("--- {} ---\n{}", h.name, h.log()))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let deadline = Instant::now() + within;
        loop {
            if sampler.producing()[index] {
                return since.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "host {} does not produce {within:?} later; logs:\n{}",
                self.hosts[index].name,
                logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until host `index`'s node holds nothing; how long from `since`.
    async fn wait_passive(&self, index: usize, since: Instant, within: Duration) -> Duration {
        let deadline = Instant::now() + within;
        loop {
            if !self.sampler.producing()[index] {
                return since.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "host {} still produces {within:?} later; its log:\n{}",
                self.hosts[index].name,
                self.hosts[index].log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn assert_never_two(&self) {
        let overlaps = self.sampler.overlaps.load(Ordering::SeqCst);
        assert_eq!(
            overlaps,
            0,
            "two producers in {overlaps} samples (every 100 ms); logs:\n{}",
            self.hosts
                .iter()
                .map(|h| format!("--- {} ---\n{}", h.name, h.log()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.sampler.stop.store(true, Ordering::SeqCst);
    }
}

/// Asks every simulated node `GET /leaders` every 100 ms: who produces, and how many samples
/// had two producers.
struct Sampler {
    last: Arc<Mutex<Vec<bool>>>,
    overlaps: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    fn start(apis: Vec<String>) -> Sampler {
        let last = Arc::new(Mutex::new(vec![false; apis.len()]));
        let overlaps = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, o, s) = (Arc::clone(&last), Arc::clone(&overlaps), Arc::clone(&stop));
        tokio::spawn(async move {
            let client = http();
            while !s.load(Ordering::SeqCst) {
                let mut producing = Vec::new();
                for api in &apis {
                    let answer = client
                        .get(format!("{api}/leaders"))
                        .timeout(Duration::from_millis(500))
                        .send()
                        .await;
                    let ids = match answer {
                        Ok(response) => response
                            .bytes()
                            .await
                            .ok()
                            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                            .and_then(|v| v.as_array().map(Vec::len))
                            .unwrap_or(0),
                        Err(_) => 0,
                    };
                    producing.push(ids > 0);
                }
                if producing.iter().filter(|p| **p).count() > 1 {
                    o.fetch_add(1, Ordering::SeqCst);
                }
                *l.lock().unwrap() = producing;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Sampler {
            last,
            overlaps,
            stop,
        }
    }

    fn producing(&self) -> Vec<bool> {
        self.last.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_host_is_replaced_within_the_lease_and_never_two_producers() {
    let mut pool = pool().await;
    let lost = pool.producer();
    let other = 1 - lost;
    let since = Instant::now();
    pool.hosts[lost].lose().await;
    let took = pool
        .wait_producing(other, since, TTL + Duration::from_secs(15))
        .await;
    eprintln!("host loss -> the other host produces: {took:?} (lease_ttl {TTL:?})");
    assert!(
        took <= TTL + 2 * TICK + Duration::from_millis(1500),
        "the other host took {took:?} (lease_ttl {TTL:?} + 2 ticks)"
    );
    pool.assert_never_two();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_is_fenced_on_its_host_and_replaced_never_two_producers() {
    let mut pool = pool().await;
    let killed = pool.producer();
    let other = 1 - killed;
    let since = Instant::now();
    pool.hosts[killed].kill_daemon();
    // Its node keeps running: the host's fence demotes it at the lease deadline.
    let fenced = pool
        .wait_passive(killed, since, TTL + Duration::from_secs(5))
        .await;
    let took = pool
        .wait_producing(other, since, TTL + Duration::from_secs(15))
        .await;
    eprintln!("instance killed -> fenced {fenced:?}, the other host produces {took:?}");
    assert!(
        fenced <= TTL / 2 + Duration::from_secs(1),
        "fenced after {fenced:?}"
    );
    assert!(
        took <= TTL + Duration::from_secs(4),
        "replaced after {took:?}"
    );
    let fence_log = std::fs::read_to_string(pool.hosts[killed].config.dir.join("fence.log"))
        .unwrap_or_default();
    assert!(
        fence_log.contains("demoted"),
        "the fence's log:\n{fence_log}"
    );
    pool.assert_never_two();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_instance_demotes_by_half_the_lease_and_the_other_takes_over() {
    let mut pool = pool().await;
    let cut = pool.producer();
    let other = 1 - cut;
    let since = Instant::now();
    // Each instance talks to its own member: stopping it cuts that instance off etcd.
    pool.etcd.stop_member(cut);
    let demoted = pool
        .wait_passive(cut, since, TTL + Duration::from_secs(5))
        .await;
    let took = pool
        .wait_producing(other, since, TTL + Duration::from_secs(15))
        .await;
    eprintln!("partition -> demoted {demoted:?}, the other host produces {took:?}");
    assert!(
        demoted <= TTL / 2 + TICK + Duration::from_millis(800),
        "demoted {demoted:?} after the partition (lease_ttl / 2 = {:?})",
        TTL / 2
    );
    pool.hosts[cut]
        .daemon
        .as_ref()
        .unwrap()
        .wait_for_log("may not lead any more", Duration::from_secs(5))
        .await;
    pool.assert_never_two();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_for_a_minute_stops_promotions_only_and_one_producer_comes_back() {
    let mut pool = pool().await;
    let producer = pool.producer();
    let rows: Vec<usize> = pool.hosts.iter().map(|h| h.config.rows().len()).collect();
    let pids: Vec<_> = {
        let mut pids = Vec::new();
        for host in &pool.hosts {
            pids.push(host.sup.pids().await);
        }
        pids
    };
    let since = Instant::now();
    for member in 0..pool.etcd.len() {
        pool.etcd.stop_member(member);
    }
    // The producer keeps producing until its lease deadline, then demotes.
    let demoted = pool
        .wait_passive(producer, since, TTL + Duration::from_secs(5))
        .await;
    assert!(
        // The last renewal sent is up to a keep-alive period (lease_ttl / 5) before the outage.
        // It demotes at its deadline (lease_ttl / 2 after its last renewal), not before; and,
        // what safety needs, before the lease can expire and another instance be elected
        // (lease_ttl after that renewal, at least lease_ttl - lease_ttl / 5 after the outage).
        demoted >= TTL / 2 - TTL / 5 - Duration::from_millis(100) && demoted < TTL - TTL / 5,
        "the producer stopped {demoted:?} after etcd went down (deadline: lease_ttl / 2, \
         the lease may expire from {:?})",
        TTL - TTL / 5
    );
    // The rest of the minute: nothing is restarted, nobody produces.
    while since.elapsed() < Duration::from_secs(60) {
        assert!(
            pool.sampler.producing().iter().all(|p| !p),
            "a node produces while etcd is down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (index, host) in pool.hosts.iter().enumerate() {
        assert_eq!(
            host.config.rows().len(),
            rows[index],
            "{} restarted a node",
            host.name
        );
        assert_eq!(
            host.sup.pids().await,
            pids[index],
            "{}'s nodes were restarted",
            host.name
        );
        let log = host.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("etcd unreachable"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one line per outage on {}: {lines:#?}",
            host.name
        );
    }
    pool.etcd.start_all().await;
    let back = Instant::now();
    wait_until(
        "one producer again",
        TTL * 4 + Duration::from_secs(20),
        || {
            let producing = pool.sampler.producing();
            async move { (producing.iter().filter(|p| **p).count() == 1).then_some(()) }
        },
    )
    .await;
    eprintln!(
        "etcd down 60 s: the producer demoted {demoted:?} after; one producer {:?} after etcd was back",
        back.elapsed()
    );
    pool.assert_never_two();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_moves_the_key_to_a_node_of_the_other_host() {
    let pool = pool().await;
    let from = pool.producer();
    let to = 1 - from;
    let target = pool.hosts[to].sim().name.clone();
    // Asked on the elected instance, for the other host's node: it resigns, the other takes over.
    let view = pool.hosts[from]
        .config
        .api()
        .leader(&target, false)
        .await
        .expect("the request is accepted");
    assert!(
        matches!(&view.state, nodekeeper::status::ActionState::Done { message }
            if message.contains("asked it to take over")),
        "{view:?}"
    );
    let took = pool
        .wait_producing(to, Instant::now(), Duration::from_secs(60))
        .await;
    eprintln!("operator move to the other host: {took:?}");
    assert!(
        !pool.sampler.producing()[from],
        "the old producer still produces"
    );
    pool.assert_never_two();
}

//! Measures why the supervisor client opens a fresh TCP connection per call: `getAllProcessInfo`
//! against a real supervisord over (a) our client on TCP (no idle pooling), (b) our client on the
//! unix socket (pooled), and (c) a keep-alive HTTP client reusing one TCP connection, the design we
//! avoid. Run with `cargo bench --bench transport` (supervisord from `.venv`, see scripts/lib.sh).

// A benchmark measures real elapsed time.
#![allow(clippy::disallowed_types)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use nodekeeper::supervisor::Client;
use support::{Program, Supervisord, USER};

const ROUNDS: usize = 200;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn p90(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() * 9 / 10]
}

async fn time_client(client: &Client) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        client
            .get_all_process_info()
            .await
            .expect("getAllProcessInfo");
        samples.push(started.elapsed());
    }
    samples
}

async fn time_keep_alive(supervisord: &Supervisord) -> Vec<Duration> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let body = "<?xml version=\"1.0\"?>\n<methodCall><methodName>supervisor.getAllProcessInfo\
                </methodName><params/></methodCall>\n";
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let response = http
            .post(supervisord.url())
            .basic_auth(USER, Some(&supervisord.password))
            .header("Content-Type", "text/xml")
            .body(body)
            .send()
            .await
            .expect("post");
        let bytes = response.bytes().await.expect("body");
        assert!(
            bytes.len() > 4096,
            "answer must exceed 4 KB to show the stall"
        );
        samples.push(started.elapsed());
    }
    samples
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("getAllProcessInfo latency, {ROUNDS} calls each, median / p90");
    println!(
        "{:>9}  {:>22}  {:>22}  {:>22}",
        "programs", "client, TCP, fresh", "client, unix socket", "keep-alive TCP (avoided)"
    );
    for n_programs in [15, 200] {
        let mut builder = Supervisord::builder();
        for index in 0..n_programs {
            builder = builder
                .program(Program::new(&format!("p{index:03}"), "/bin/sleep 100000").startsecs(0));
        }
        let supervisord = builder.start().await;
        let tcp = time_client(&supervisord.client()).await;
        let unix = time_client(&supervisord.client_at(&supervisord.unix_url())).await;
        let keep_alive = time_keep_alive(&supervisord).await;
        let show = |samples: Vec<Duration>| {
            format!(
                "{:>7.2} / {:>7.2} ms",
                median(samples.clone()).as_secs_f64() * 1e3,
                p90(samples).as_secs_f64() * 1e3
            )
        };
        println!(
            "{n_programs:>9}  {:>22}  {:>22}  {:>22}",
            show(tcp),
            show(unix),
            show(keep_alive)
        );
    }
}

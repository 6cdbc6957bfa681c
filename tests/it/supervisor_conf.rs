//! Integration tests of the generated supervisord program files: rendered from `ProgramSpec`s,
//! written with `write_dir` into a real supervisord's include directory and activated through
//! `Client::update`. Simulated nodes report the argv and environment they received, which checks
//! the quoting end to end. Every wait polls a condition against a deadline.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nodekeeper::supervisor::conf::{ProgramSpec, render_program, write_dir};
use nodekeeper::supervisor::{ProcessState, ReloadDiff};
use tokio::time::Instant;

use crate::support::{Supervisord, free_port, sim_binary};

/// Deadline of a single wait.
const WAIT: Duration = Duration::from_secs(15);

/// A version string passed as one argv element: quotes, `%`, an expansion and a would-be comment.
const ARGV_VERSION: &str = "jormungandr 0.9.0 \"sim\" it's 100% %(ENV_HOME)s a ;b #c";
/// A version string passed through the environment: a quote, `%`, an expansion, `,` and `=`.
const ENV_VERSION: &str = "jormungandr 0.9.0 it's 50% %(ENV_HOME)s k=v, w";

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after [`WAIT`].
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node program running the simulator on a free port, in `DIR/pool dir 100%/NAME` (a space and
/// a `%` in every path), logging to `NAME 100%.log` there.
fn sim_spec(base: &Path, name: &str) -> (ProgramSpec, String) {
    let directory = base.join("pool dir 100%").join(name);
    std::fs::create_dir_all(&directory).expect("node directory");
    let listen = format!("127.0.0.1:{}", free_port());
    let command = [
        sim_binary(),
        "--name",
        name,
        "--listen",
        &listen,
        "--bootstrap-secs",
        "0.3",
    ]
    .map(String::from)
    .to_vec();
    let log = directory.join(format!("{name} 100%.log"));
    let mut spec = ProgramSpec::node(name, command, directory, log);
    // Quick start and stop: the simulator has no database to flush.
    spec.startsecs = 1;
    spec.stopwaitsecs = 5;
    spec.environment = vec![("RUST_LOG".into(), "warn".into())];
    (spec, listen)
}

fn files(specs: &[&ProgramSpec]) -> Vec<(String, String)> {
    specs
        .iter()
        .map(|spec| {
            let text = render_program(spec).unwrap_or_else(|e| panic!("{e}"));
            (spec.file_name(), text)
        })
        .collect()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// The `version` a simulated node reports, once it answers.
async fn reported_version(http: &reqwest::Client, listen: &str) -> String {
    let url = format!("http://{listen}/api/v0/node/stats");
    poll(&format!("GET {url}"), || async {
        let response = http.get(&url).send().await.ok()?;
        let body: serde_json::Value = serde_json::from_str(&response.text().await.ok()?).ok()?;
        body.get("version")?.as_str().map(str::to_string)
    })
    .await
}

#[tokio::test]
async fn generated_programs_are_added_started_and_changed_by_update() {
    let supervisord = Supervisord::builder().include_dir().start().await;
    let client = supervisord.client();
    let conf_d = supervisord.dir().join("conf.d");

    let (mut node1, listen1) = sim_spec(supervisord.dir(), "node1");
    node1
        .command
        .extend(["--version-string".to_string(), ARGV_VERSION.to_string()]);
    let (mut node2, listen2) = sim_spec(supervisord.dir(), "node2");
    node2.environment.push((
        "NODEKEEPER_SIM_VERSION_STRING".into(),
        ENV_VERSION.to_string(),
    ));

    let written = write_dir(&conf_d, &files(&[&node1, &node2])).expect("write conf.d");
    assert_eq!(
        written,
        [conf_d.join("node1.conf"), conf_d.join("node2.conf")]
    );

    let mut diff = client.update().await.expect("update");
    diff.added.sort();
    assert_eq!(
        diff,
        ReloadDiff {
            added: vec!["node1".into(), "node2".into()],
            changed: vec![],
            removed: vec![],
        },
        "{}",
        supervisord.main_log()
    );
    for name in ["node1", "node2"] {
        supervisord
            .wait_for_state(name, ProcessState::Running, WAIT)
            .await;
    }

    // supervisord logs where the spec says, `%` and spaces included.
    let infos = client.get_all_process_info().await.expect("process info");
    for spec in [&node1, &node2] {
        let info = infos
            .iter()
            .find(|info| info.name == spec.name)
            .unwrap_or_else(|| panic!("{} missing from {infos:?}", spec.name));
        assert_eq!(
            Path::new(&info.stdout_logfile),
            spec.stdout_logfile,
            "{info:?}"
        );
        let log: PathBuf = spec.stdout_logfile.clone();
        poll(&format!("{} to log its address", spec.name), || {
            let log = log.clone();
            async move {
                std::fs::read_to_string(&log)
                    .ok()
                    .filter(|text| text.contains("listening on"))
            }
        })
        .await;
    }

    // The nodes received exactly the argv element and the environment value of their specs.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("http client");
    assert_eq!(reported_version(&http, &listen1).await, ARGV_VERSION);
    assert_eq!(reported_version(&http, &listen2).await, ENV_VERSION);

    // Writing the same files again changes nothing, and supervisord sees no difference.
    assert_eq!(
        write_dir(&conf_d, &files(&[&node1, &node2])).expect("rewrite conf.d"),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        client.update().await.expect("update"),
        ReloadDiff::default()
    );

    // A change to one program: only its file is written, and update reports it changed and
    // restarts it, leaving the other alone.
    let pid1 = client.get_process_info("node1").await.expect("node1").pid;
    let pid2 = client.get_process_info("node2").await.expect("node2").pid;
    node2.stopwaitsecs = 6;
    let written = write_dir(&conf_d, &files(&[&node1, &node2])).expect("write conf.d");
    assert_eq!(written, [conf_d.join("node2.conf")]);
    let diff = client.update().await.expect("update");
    assert_eq!(
        diff,
        ReloadDiff {
            added: vec![],
            changed: vec!["node2".into()],
            removed: vec![],
        }
    );
    supervisord
        .wait_for_state("node2", ProcessState::Running, WAIT)
        .await;
    let info2 = client.get_process_info("node2").await.expect("node2");
    assert_ne!(info2.pid, pid2, "node2 was not restarted");
    assert_eq!(
        client.get_process_info("node1").await.expect("node1").pid,
        pid1,
        "node1 was restarted"
    );
    assert_eq!(
        sorted(infos.iter().map(|info| info.name.clone()).collect()),
        ["node1", "node2"]
    );
}

/// `supervisor-conf/` in the repository is what `nodekeeper supervisor-conf` generates from the
/// shipped example configuration: regenerate it and compare. The event listener's paths are
/// absolute (the socket beside the restart log, beside the configuration): the committed file
/// shows them as if the configuration were `/etc/nodekeeper/nodekeeper.toml`.
#[tokio::test]
async fn the_committed_example_is_what_the_shipped_config_generates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let output = crate::support::run(
        tokio::process::Command::new(crate::support::NODEKEEPER)
            .current_dir(root.join("configs"))
            .env_clear()
            .env("NODEKEEPER_SUPERVISOR_PASSWORD", "x")
            .args([
                "supervisor-conf",
                "-c",
                "nodekeeper.toml",
                "--no-nodekeeper",
                "--nodekeeper-binary",
                "/usr/local/bin/nodekeeper",
                "--dir",
            ])
            .arg(out.path()),
    )
    .await;
    assert_eq!(output.code, 0, "{output:?}");
    let configs = format!("{}/", root.join("configs").display());
    let mut names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["node1.conf", "node2.conf", "nodekeeper-events.conf"]
    );
    for name in names {
        let generated = std::fs::read_to_string(out.path().join(&name))
            .unwrap()
            .replace(&configs, "/etc/nodekeeper/");
        let committed = std::fs::read_to_string(root.join("supervisor-conf").join(&name)).unwrap();
        assert_eq!(
            generated, committed,
            "supervisor-conf/{name} is stale: regenerate it (see supervisor-conf/README.md)"
        );
    }
}

/// `--user` puts `user=` on every program and listener; a second supervisord running nodes gets
/// its own listener, and `--no-nodekeeper` leaves out only `[program:nodekeeper]`.
#[tokio::test]
async fn every_section_runs_as_the_user_and_each_supervisord_gets_a_listener() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(root.join("configs/nodekeeper.toml")).unwrap();
    // node2 moves to a second supervisord.
    let config = shipped
        .replace(
            "[[nodes]]\nname = \"node2\"\n",
            "[[nodes]]\nname = \"node2\"\nsupervisor = \"host2\"\n",
        )
        .replace(
            "[versions]",
            "[supervisors.host2]\nurl = \"http://127.0.0.1:9002/RPC2\"\n\n[versions]",
        );
    assert_ne!(config, shipped);
    std::fs::write(dir.path().join("nodekeeper.toml"), config).unwrap();
    let template = "jormungandr-template.json";
    std::fs::copy(
        root.join("configs").join(template),
        dir.path().join(template),
    )
    .unwrap();
    for (extra, expected) in [
        (
            None,
            vec![
                "node1",
                "node2",
                "nodekeeper",
                "nodekeeper-events",
                "nodekeeper-events-host2",
            ],
        ),
        (
            Some("--no-nodekeeper"),
            vec![
                "node1",
                "node2",
                "nodekeeper-events",
                "nodekeeper-events-host2",
            ],
        ),
    ] {
        let mut command = tokio::process::Command::new(crate::support::NODEKEEPER);
        command
            .current_dir(dir.path())
            .env_clear()
            .env("NODEKEEPER_SUPERVISOR_PASSWORD", "x")
            .args(["supervisor-conf", "-c", "nodekeeper.toml", "--user", "pool"])
            .args(extra);
        let output = crate::support::run(&mut command).await;
        assert_eq!(output.code, 0, "{output:?}");
        let sections: Vec<&str> = output
            .stdout
            .lines()
            .filter_map(|line| {
                line.strip_prefix("[program:")
                    .or_else(|| line.strip_prefix("[eventlistener:"))
            })
            .map(|rest| rest.trim_end_matches(']'))
            .collect();
        assert_eq!(sections, expected, "{}", output.stdout);
        assert_eq!(
            output.stdout.matches("\nuser=pool\n").count(),
            expected.len(),
            "{}",
            output.stdout
        );
        assert!(
            output
                .stdout
                .contains(" listen --supervisor host2 --socket "),
            "{}",
            output.stdout
        );
    }
}

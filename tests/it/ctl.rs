//! Integration tests of `nodekeeper ctl` and the supervisor client against a real supervisord,
//! over TCP and over the unix socket, including every error the client distinguishes.

use std::time::Duration;

use nodekeeper::supervisor::{
    Client, ClientOptions, Endpoint, Fault, ProcessState, SupervisorError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Output, Program, Supervisord, run};

const SLEEPER: &str = "/bin/sleep 100000";

async fn two_sleepers() -> Supervisord {
    Supervisord::builder()
        .program(Program::new("alpha", SLEEPER))
        .program(Program::new("beta", SLEEPER))
        .start()
        .await
}

fn assert_status_line(output: &Output, name: &str, state: &str) {
    let line = output
        .stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no status line for {name} in:\n{}", output.stdout));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns[1], state, "{line}");
    if state == "RUNNING" {
        // supervisorctl's columns: name padded to 33, state padded to 10, description.
        assert_eq!(line.find(state), Some(33), "{line:?}");
        assert!(
            line[43..].starts_with("pid ") && line.contains(", uptime "),
            "{line:?}"
        );
    }
}

#[tokio::test]
async fn status_over_tcp_and_unix_socket_shows_every_program() {
    let supervisord = two_sleepers().await;
    for url in [supervisord.url(), supervisord.unix_url()] {
        let output = run(supervisord.ctl_at(&url).arg("status")).await;
        assert_eq!(output.code, 0, "{url}: {output:?}");
        assert_status_line(&output, "alpha", "RUNNING");
        assert_status_line(&output, "beta", "RUNNING");
        assert_eq!(output.stdout.lines().count(), 2, "{}", output.stdout);
    }
    // The pid column is the real pid.
    let info = supervisord
        .client()
        .get_process_info("alpha")
        .await
        .unwrap();
    let output = run(supervisord.ctl().args(["status", "alpha"])).await;
    assert!(
        output.stdout.contains(&format!("pid {},", info.pid)),
        "{output:?}"
    );
    assert_eq!(output.stdout.lines().count(), 1);
}

#[tokio::test]
async fn status_of_an_unknown_name_is_an_error_line_and_exit_1() {
    let supervisord = two_sleepers().await;
    let output = run(supervisord.ctl().args(["status", "alpha", "nosuch"])).await;
    assert_eq!(output.code, 1, "{output:?}");
    assert_status_line(&output, "alpha", "RUNNING");
    assert!(
        output.stdout.contains("nosuch: ERROR (no such process)"),
        "{output:?}"
    );
}

#[tokio::test]
async fn stop_start_restart_change_the_state_in_supervisord() {
    let supervisord = two_sleepers().await;
    let client = supervisord.client();
    let pid_before = client.get_process_info("alpha").await.unwrap().pid;

    let output = run(supervisord.ctl().args(["stop", "alpha"])).await;
    assert_eq!(
        (output.code, output.stdout.as_str()),
        (0, "alpha: stopped\n")
    );
    let alpha = client.get_process_info("alpha").await.unwrap();
    assert_eq!(alpha.state, ProcessState::Stopped);
    assert_eq!(
        client.get_process_info("beta").await.unwrap().state,
        ProcessState::Running,
        "beta must be left alone"
    );
    let output = run(supervisord.ctl().args(["stop", "alpha"])).await;
    assert_eq!(
        (output.code, output.stdout.as_str()),
        (0, "alpha: not running\n")
    );

    let output = run(supervisord.ctl().args(["start", "alpha"])).await;
    assert_eq!(
        (output.code, output.stdout.as_str()),
        (0, "alpha: started\n")
    );
    let alpha = client.get_process_info("alpha").await.unwrap();
    assert_eq!(alpha.state, ProcessState::Running);
    assert_ne!(alpha.pid, pid_before);
    let output = run(supervisord.ctl().args(["start", "alpha"])).await;
    assert_eq!(
        (output.code, output.stdout.as_str()),
        (0, "alpha: already started\n")
    );

    let pid_before = alpha.pid;
    let output = run(supervisord.ctl().args(["restart", "alpha"])).await;
    assert_eq!(
        (output.code, output.stdout.as_str()),
        (0, "alpha: started\n")
    );
    let alpha = client.get_process_info("alpha").await.unwrap();
    assert_eq!(alpha.state, ProcessState::Running);
    assert_ne!(alpha.pid, pid_before, "restart must give a new process");
}

#[tokio::test]
async fn all_targets_every_program_concurrently() {
    let supervisord = two_sleepers().await;
    let client = supervisord.client();
    let output = run(supervisord.ctl().args(["stop", "all"])).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(output.stdout, "alpha: stopped\nbeta: stopped\n");
    for info in client.get_all_process_info().await.unwrap() {
        assert_eq!(info.state, ProcessState::Stopped, "{}", info.name);
    }
    let output = run(supervisord.ctl().args(["restart", "all"])).await;
    assert_eq!(output.stdout, "alpha: started\nbeta: started\n");
    for info in client.get_all_process_info().await.unwrap() {
        assert_eq!(info.state, ProcessState::Running, "{}", info.name);
    }
    let output = run(supervisord.ctl().args(["start", "all", "alpha"])).await;
    assert_eq!(output.code, 2, "{output:?}");
}

#[tokio::test]
async fn a_group_star_targets_every_process_of_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let supervisord = Supervisord::builder()
        .program(Program::new("alpha", SLEEPER))
        .section(&format!(
            "[program:pair]\ncommand={SLEEPER}\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)d\n\
             autostart=false\nstartsecs=0\nstdout_logfile={}\n\n",
            dir.path().join("pair.log").display()
        ))
        .start()
        .await;
    let output = run(supervisord.ctl().args(["start", "pair:*"])).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(
        output.stdout,
        "pair:pair_0: started\npair:pair_1: started\n"
    );
    let output = run(supervisord.ctl().args(["stop", "pair:*", "alpha"])).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(
        output.stdout,
        "pair:pair_0: stopped\npair:pair_1: stopped\nalpha: stopped\n"
    );
    let output = run(supervisord.ctl().args(["start", "nosuch:*"])).await;
    assert_eq!(output.code, 1, "{output:?}");
    assert_eq!(output.stdout, "nosuch:*: ERROR (no such group)\n");
}

#[tokio::test]
async fn unknown_names_and_spawn_errors_exit_1_and_name_the_program() {
    let supervisord = Supervisord::builder()
        .program(Program::new("alpha", SLEEPER))
        .program(Program::new("quitter", "/bin/sh -c 'exit 3'").manual())
        .start()
        .await;
    for verb in ["start", "stop", "restart"] {
        let output = run(supervisord.ctl().args([verb, "nosuch"])).await;
        assert_eq!(output.code, 1, "{verb}: {output:?}");
        assert_eq!(output.stdout, "nosuch: ERROR (no such process)\n", "{verb}");
    }
    let output = run(supervisord.ctl().args(["start", "quitter", "alpha"])).await;
    assert_eq!(output.code, 1, "{output:?}");
    assert_eq!(
        output.stdout,
        "quitter: ERROR (spawn error)\nalpha: already started\n"
    );
}

#[tokio::test]
async fn tail_prints_the_log_and_follows_it() {
    let supervisord = Supervisord::builder()
        .program(Program::new(
            "chatty",
            "/bin/sh -c 'i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.2; done'",
        ))
        .start()
        .await;
    let output = run(supervisord.ctl().args(["tail", "chatty"])).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert!(output.stdout.contains("line-1\n"), "{output:?}");

    let mut child = supervisord
        .ctl()
        .args(["tail", "-f", "--bytes", "10", "chatty"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let first_count = output.stdout.matches("line-").count();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // Lines written after the follow started must arrive, each whole and in order.
    let wanted = format!("line-{}\n", first_count + 8);
    while !seen.contains(&wanted) {
        let mut buffer = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stdout.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("tail -f did not show {wanted:?}; saw {seen:?}"))
            .unwrap();
        assert!(n > 0, "tail -f ended early; saw {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    let _ = child.kill().await;
    let numbers: Vec<u32> = seen
        .lines()
        .filter_map(|line| line.strip_prefix("line-")?.parse().ok())
        .collect();
    assert!(
        numbers.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "gaps or repeats: {numbers:?}"
    );

    let output = run(supervisord.ctl().args(["tail", "nosuch"])).await;
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output.stderr.contains("nosuch: no such process"),
        "{output:?}"
    );
}

#[tokio::test]
async fn pid_of_supervisord_of_a_program_and_of_all() {
    let supervisord = two_sleepers().await;
    let output = run(supervisord.ctl().arg("pid")).await;
    assert_eq!(output.stdout.trim(), supervisord.pid().to_string());
    let alpha = supervisord
        .client()
        .get_process_info("alpha")
        .await
        .unwrap();
    let output = run(supervisord.ctl().args(["pid", "alpha"])).await;
    assert_eq!(output.stdout.trim(), alpha.pid.to_string());
    let output = run(supervisord.ctl().args(["pid", "all"])).await;
    assert!(
        output.stdout.contains(&format!("alpha {}\n", alpha.pid)),
        "{output:?}"
    );
    let output = run(supervisord.ctl().args(["pid", "nosuch"])).await;
    assert_eq!(output.code, 1, "{output:?}");
}

#[tokio::test]
async fn a_wrong_password_is_a_401_error_not_a_fault() {
    let supervisord = two_sleepers().await;
    for url in [supervisord.url(), supervisord.unix_url()] {
        let output = run(supervisord
            .ctl_at(&url)
            .env("NODEKEEPER_SUPERVISOR_PASSWORD", "wrong")
            .arg("status"))
        .await;
        assert_eq!(output.code, 1, "{output:?}");
        assert_eq!(
            output.stderr,
            format!(
                "error: supervisord at {url} refused the credentials (HTTP 401): check the user \
                 name and password\n"
            )
        );
        assert!(!output.stderr.contains("wrong"), "password leaked");
    }
    let bad = Client::new(
        &Endpoint::parse(&supervisord.url()).unwrap(),
        Some(("keeper".into(), "wrong".into())),
        ClientOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        bad.get_state().await,
        Err(SupervisorError::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn supervisord_not_running_is_one_clear_line() {
    let port = crate::support::free_port();
    let url = format!("http://127.0.0.1:{port}/RPC2");
    let output = run(tokio::process::Command::new(crate::support::NODEKEEPER)
        .args(["ctl", "--supervisor", &url, "status"])
        .env_clear())
    .await;
    assert_eq!(output.code, 1, "{output:?}");
    assert_eq!(
        output.stderr,
        format!("error: cannot reach supervisord at {url}: connection refused\n")
    );
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("missing.sock");
    let url = format!("unix://{}", socket.display());
    let output = run(tokio::process::Command::new(crate::support::NODEKEEPER)
        .args(["ctl", "--supervisor", &url, "status"])
        .env_clear())
    .await;
    assert_eq!(output.code, 1, "{output:?}");
    assert_eq!(
        output.stderr,
        format!("error: cannot reach supervisord at {url}: no such socket file\n")
    );
}

/// A loopback server that answers every request with `response` (or never, when `None`).
async fn scripted_server(response: Option<Vec<u8>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = vec![0u8; 64 * 1024];
            let _ = socket.read(&mut buffer).await;
            match &response {
                Some(bytes) => {
                    let _ = socket.write_all(bytes).await;
                    let _ = socket.shutdown().await;
                }
                // Accept, read, never answer: keep the socket open.
                None => held.push(socket),
            }
        }
    });
    format!("http://127.0.0.1:{port}/RPC2")
}

fn http_200(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn garbage_answers_are_malformed_errors() {
    for (body, why) in [
        ("this is not xml", "not an XML-RPC methodResponse"),
        (
            "<?xml version='1.0'?><methodResponse><params>",
            "not an XML-RPC methodResponse",
        ),
        (
            "<?xml version='1.0'?><methodResponse><params><param><value><int>7</int></value>\
             </param></params></methodResponse>",
            "process info list: expected an array, got int",
        ),
    ] {
        let url = scripted_server(Some(http_200(body))).await;
        let output = run(tokio::process::Command::new(crate::support::NODEKEEPER)
            .args(["ctl", "--supervisor", &url, "status"])
            .env_clear())
        .await;
        assert_eq!(output.code, 1, "{output:?}");
        assert!(
            output.stderr.starts_with(&format!(
                "error: supervisord at {url} sent a malformed answer to supervisor.getAllProcessInfo: "
            )) && output.stderr.contains(why),
            "{body}: {output:?}"
        );
        assert_eq!(output.stderr.lines().count(), 1);
    }
    let url = scripted_server(Some(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ))
    .await;
    let output = run(tokio::process::Command::new(crate::support::NODEKEEPER)
        .args(["ctl", "--supervisor", &url, "pid"])
        .env_clear())
    .await;
    assert_eq!(
        output.stderr,
        format!("error: supervisord at {url} answered HTTP 500 to supervisor.getPID\n")
    );
}

#[tokio::test]
async fn a_hung_server_times_out() {
    let url = scripted_server(None).await;
    let started = tokio::time::Instant::now();
    let output = run(tokio::process::Command::new(crate::support::NODEKEEPER)
        .args(["ctl", "--supervisor", &url, "--timeout", "0.5", "status"])
        .env_clear())
    .await;
    assert_eq!(output.code, 1, "{output:?}");
    assert_eq!(
        output.stderr,
        format!(
            "error: supervisord at {url} did not answer supervisor.getAllProcessInfo within 500 ms\n"
        )
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let body = format!(
        "<?xml version='1.0'?><methodResponse><params><param><value><string>{}</string></value>\
         </param></params></methodResponse>",
        "x".repeat(100_000)
    );
    let url = scripted_server(Some(http_200(&body))).await;
    let small = ClientOptions {
        max_response_bytes: 10_000,
        ..ClientOptions::default()
    };
    let client = Client::new(&Endpoint::parse(&url).unwrap(), None, small).unwrap();
    let error = client.get_pid().await.unwrap_err();
    assert!(
        matches!(error, SupervisorError::TooLarge { limit: 10_000, .. }),
        "{error}"
    );
    // Without a Content-Length the limit holds while reading the stream.
    let chunked =
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n{body}");
    let url = scripted_server(Some(chunked.into_bytes())).await;
    let client = Client::new(
        &Endpoint::parse(&url).unwrap(),
        None,
        ClientOptions {
            max_response_bytes: 10_000,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let error = client.get_pid().await.unwrap_err();
    assert!(matches!(error, SupervisorError::TooLarge { .. }), "{error}");
}

#[tokio::test]
async fn usage_errors_exit_2_before_sending_anything() {
    // (arguments, environment, what the message must say)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (
            &["--supervisor", "ftp://x", "status"],
            &[],
            "unsupported scheme",
        ),
        (
            &[
                "--supervisor",
                "http://u:hunter2@127.0.0.1:1/RPC2",
                "status",
            ],
            &[],
            "credentials do not belong in the URL",
        ),
        (&["--user", "keeper", "status"], &[], "without a password"),
        (
            &["status"],
            &[("NODEKEEPER_SUPERVISOR_PASSWORD", "x")],
            "without a user name",
        ),
        (
            &[
                "--user",
                "keeper",
                "--password-file",
                "/nonexistent/pw",
                "status",
            ],
            &[],
            "cannot read password file /nonexistent/pw",
        ),
        (&["start"], &[], "required"),
    ];
    for (args, env, why) in cases {
        let output = run(tokio::process::Command::new(crate::support::NODEKEEPER)
            .arg("ctl")
            .args(args)
            .env_clear()
            .envs(env.iter().copied()))
        .await;
        assert_eq!(output.code, 2, "{args:?}: {output:?}");
        assert!(output.stderr.contains(why), "{args:?}: {output:?}");
        assert!(!output.stderr.contains("hunter2"), "password leaked");
    }
}

#[tokio::test]
async fn password_file_works_like_the_environment() {
    let supervisord = two_sleepers().await;
    let file = supervisord.dir().join("password");
    std::fs::write(&file, format!("{}\n", supervisord.password)).unwrap();
    let output = run(tokio::process::Command::new(crate::support::NODEKEEPER)
        .args([
            "ctl",
            "--supervisor",
            &supervisord.url(),
            "--user",
            "keeper",
        ])
        .arg("--password-file")
        .arg(&file)
        .arg("status")
        .env_clear())
    .await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_status_line(&output, "alpha", "RUNNING");
}

#[tokio::test]
async fn client_covers_state_signal_multicall_and_backoff_fatal() {
    let supervisord = Supervisord::builder()
        .program(Program::new("alpha", SLEEPER))
        .program(
            // startsecs well above the process's life, even on a loaded machine: it must never
            // count as RUNNING (which would make it EXITED instead of BACKOFF/FATAL).
            Program::new("flaky", "/bin/sh -c 'exit 1'")
                .manual()
                .startsecs(10)
                .startretries(1),
        )
        .start()
        .await;
    let client = supervisord.client();
    assert_eq!(client.get_pid().await.unwrap(), supervisord.pid() as i32);

    // multicall: bare values and inline faults, in order.
    let results = client
        .get_process_infos(&["alpha".into(), "nosuch".into(), "alpha:alpha".into()])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap().state, ProcessState::Running);
    assert_eq!(results[1], Err(Fault::BadName("nosuch".into())));
    assert_eq!(results[2].as_ref().unwrap().name, "alpha");

    // A signal that kills the program: it ends up EXITED (autorestart is off).
    assert!(client.signal_process("alpha", "KILL").await.unwrap());
    supervisord
        .wait_for_state("alpha", ProcessState::Exited, Duration::from_secs(5))
        .await;
    let error = client.signal_process("alpha", "HUP").await.unwrap_err();
    assert_eq!(error.fault(), Some(&Fault::NotRunning("alpha".into())));
    let error = client.signal_process("nosuch", "HUP").await.unwrap_err();
    assert_eq!(error.fault(), Some(&Fault::BadName("nosuch".into())));

    // A program that always dies goes BACKOFF then FATAL; FATAL can be started again.
    let error = client.start_process("flaky", true).await.unwrap_err();
    assert_eq!(error.fault(), Some(&Fault::SpawnError("flaky".into())));
    supervisord
        .wait_for_state("flaky", ProcessState::Fatal, Duration::from_secs(10))
        .await;
    let error = client.stop_process("flaky", true).await.unwrap_err();
    assert_eq!(error.fault(), Some(&Fault::NotRunning("flaky".into())));
}

#[tokio::test]
async fn reread_and_update_add_change_and_remove_groups() {
    let supervisord = Supervisord::builder()
        .program(Program::new("alpha", SLEEPER))
        .include_dir()
        .start()
        .await;
    let client = supervisord.client_at(&supervisord.unix_url());
    let conf_d = supervisord.dir().join("conf.d");
    let section = |name: &str, command: &str| {
        format!(
            "[program:{name}]\ncommand={command}\nautostart=true\nstartsecs=0\nautorestart=false\n\
             stdout_logfile={}/{name}.log\n",
            supervisord.dir().display()
        )
    };
    assert_eq!(client.reload_config().await.unwrap(), Default::default());

    std::fs::write(conf_d.join("gamma.conf"), section("gamma", SLEEPER)).unwrap();
    let diff = client.update().await.unwrap();
    assert_eq!(diff.added, vec!["gamma".to_string()]);
    supervisord
        .wait_for_state("gamma", ProcessState::Running, Duration::from_secs(5))
        .await;

    let pid = client.get_process_info("gamma").await.unwrap().pid;
    std::fs::write(
        conf_d.join("gamma.conf"),
        section("gamma", "/bin/sleep 200000"),
    )
    .unwrap();
    let diff = client.update().await.unwrap();
    assert_eq!(diff.changed, vec!["gamma".to_string()]);
    supervisord
        .wait_for_state("gamma", ProcessState::Running, Duration::from_secs(5))
        .await;
    assert_ne!(client.get_process_info("gamma").await.unwrap().pid, pid);

    std::fs::remove_file(conf_d.join("gamma.conf")).unwrap();
    let diff = client.update().await.unwrap();
    assert_eq!(diff.removed, vec!["gamma".to_string()]);
    let error = client.get_process_info("gamma").await.unwrap_err();
    assert_eq!(error.fault(), Some(&Fault::BadName("gamma".into())));
    assert_eq!(
        client.get_process_info("alpha").await.unwrap().state,
        ProcessState::Running,
        "update must not touch unchanged groups"
    );

    std::fs::write(
        conf_d.join("broken.conf"),
        "[program:broken]\nautostart=true\n",
    )
    .unwrap();
    let error = client.reload_config().await.unwrap_err();
    assert!(
        matches!(error.fault(), Some(Fault::CantReread(why)) if why.contains("does not specify a command")),
        "{error}"
    );
}

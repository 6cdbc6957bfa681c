//! Email alerts against a real SMTP server: `tests/it/smtp_sink.py` (aiosmtpd, from the project's
//! `.venv`, installed by scripts/test.sh) started per test on a free loopback port, writing every
//! message it receives to a directory. Plain SMTP with credentials, implicit TLS and STARTTLS with
//! a private CA (rcgen), a self-signed relay (CA:TRUE) refused as a CA file and reached with its
//! pinned fingerprint, a password in clear refused, `nodekeeper alert test`, template validation
//! through `config check`, the worker's dedupe window and retries on the wire, the daemon mailing
//! a crash and an outage, and undelivered mails kept in the outbox across a SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nodekeeper::alert::{
    AlertWorker, EmailSettings, Facts, Fingerprint, SmtpMailer, SmtpSecurity, TemplateSettings,
    Templates, WorkerOptions,
};
use nodekeeper::backoff::ExponentialBackoff;
use nodekeeper::events::Event;
use nodekeeper::secret::Secret;
use nodekeeper::time::SystemClock;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::time::Instant;

use crate::support::{DaemonConfig, NODEKEEPER, Supervisord, free_port, run, wait_until};

const SMTP_USER: &str = "alerts@example.org";
pub(crate) const SMTP_PASSWORD: &str = "s3cret-smtp";
const FROM: &str = "nodekeeper <alerts@example.org>";
const TO: [&str; 2] = ["ops@example.org", "oncall@example.net"];

/// The project's Python with aiosmtpd: beside `NODEKEEPER_SUPERVISORD` when set, else `.venv`.
fn python() -> PathBuf {
    let python = std::env::var_os("NODEKEEPER_SUPERVISORD")
        .map(|supervisord| Path::new(&supervisord).with_file_name("python"))
        .filter(|python| python.exists())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let found = std::process::Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "aiosmtpd not found with {}: run scripts/test.sh (it installs aiosmtpd into .venv), or \
         `.venv/bin/python -m pip install aiosmtpd`",
        python.display()
    );
    python
}

/// How the test server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Plain,
    Tls,
    Starttls,
}

/// A private CA and a server certificate it signed for `localhost` and `127.0.0.1`, as PEM files.
pub(crate) struct Pki {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

pub(crate) fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nodekeeper test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params")
        .signed_by(&server_key, &ca)
        .expect("server certificate");
    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&pki.ca, ca.pem()).expect("write CA");
    std::fs::write(&pki.cert, server.pem()).expect("write certificate");
    std::fs::write(&pki.key, server_key.serialize_pem()).expect("write key");
    pki
}

/// One message the server received.
#[derive(Debug)]
pub(crate) struct Received {
    meta: Value,
}

impl Received {
    /// Every value of header `name` (case-insensitive).
    fn headers(&self, name: &str) -> Vec<String> {
        self.meta["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|pair| {
                pair[0]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .filter_map(|pair| pair[1].as_str().map(str::to_string))
            .collect()
    }

    fn header(&self, name: &str) -> String {
        let values = self.headers(name);
        assert_eq!(
            values.len(),
            1,
            "header {name}: {values:?} in {:#}",
            self.meta
        );
        values[0].clone()
    }

    pub(crate) fn subject(&self) -> String {
        self.header("Subject")
    }

    pub(crate) fn body(&self) -> String {
        self.meta["body"].as_str().unwrap_or_default().to_string()
    }
}

/// `tests/it/smtp_sink.py`, killed on drop.
pub(crate) struct SmtpSink {
    _child: tokio::process::Child,
    dir: tempfile::TempDir,
    pub(crate) port: u16,
}

impl SmtpSink {
    pub(crate) async fn start(mode: Mode, pki: Option<&Pki>, port: u16) -> SmtpSink {
        let dir = tempfile::Builder::new()
            .prefix("nk-smtp-")
            .tempdir()
            .expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/smtp_sink.py");
        let mut command = tokio::process::Command::new(python());
        command
            .arg(script)
            .arg("--dir")
            .arg(dir.path())
            .args(["--port", &port.to_string()])
            .args(["--user", SMTP_USER, "--password", SMTP_PASSWORD])
            .args([
                "--mode",
                match mode {
                    Mode::Plain => "plain",
                    Mode::Tls => "tls",
                    Mode::Starttls => "starttls",
                },
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(pki) = pki {
            command
                .arg("--cert")
                .arg(&pki.cert)
                .arg("--key")
                .arg(&pki.key);
        }
        let mut child = command.spawn().expect("spawn smtp_sink.py");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("smtp_sink.py printed its port within 20 s")
        .expect("read smtp_sink.py's port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("smtp_sink.py did not start: {line:?}"));
        SmtpSink {
            _child: child,
            dir,
            port,
        }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read the sink's directory")
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| Received {
                meta: serde_json::from_str(&std::fs::read_to_string(path).expect("read"))
                    .expect("the sink writes JSON"),
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived; returns them all.
    pub(crate) async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        wait_until(&format!("{n} mail(s)"), within, || async {
            let received = self.received();
            (received.len() >= n).then_some(received)
        })
        .await
    }

    /// Asserts that no more than `n` messages arrive during `period`.
    async fn assert_stays(&self, n: usize, period: Duration) {
        let deadline = Instant::now() + period;
        while Instant::now() < deadline {
            let received = self.received();
            assert!(
                received.len() <= n,
                "expected {n} mail(s), got: {:?}",
                received.iter().map(Received::subject).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The `[email]` section for `port`.
pub(crate) fn email_section(mode: Mode, port: u16, extra: Value) -> Value {
    let mut email = json!({
        "enabled": true,
        "smtp_server": "localhost",
        "port": port,
        "security": match mode {
            Mode::Plain => "plain",
            Mode::Tls => "tls",
            Mode::Starttls => "starttls",
        },
        "user": SMTP_USER,
        "password_file": "smtp.password",
        "from": FROM,
        "to": TO,
    });
    if let (Value::Object(email), Value::Object(extra)) = (&mut email, extra) {
        email.extend(extra);
    }
    email
}

/// A minimal valid configuration with `email`, in a temporary directory.
fn config_dir(email: Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("template.json"),
        json!({"rest": {"listen": "127.0.0.1:3100"}}).to_string(),
    )
    .expect("write template");
    std::fs::write(
        dir.path().join("smtp.password"),
        format!("{SMTP_PASSWORD}\n"),
    )
    .expect("write password");
    let config = json!({
        "node_defaults": {"template": "template.json", "node_dir": "."},
        "nodes": [{"name": "node1", "overrides": {"rest": {"listen": "127.0.0.1:3101"}}}],
        "email": email,
    });
    std::fs::write(
        dir.path().join("nodekeeper.json"),
        serde_json::to_string_pretty(&config).expect("json"),
    )
    .expect("write config");
    dir
}

fn nodekeeper(dir: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(NODEKEEPER);
    command
        .args(args)
        .arg("-c")
        .arg(dir.join("nodekeeper.json"))
        .env_clear()
        .kill_on_drop(true)
        .stdin(Stdio::null());
    command
}

/// Settings for the library-level tests, as the configuration would resolve them.
fn settings(port: u16) -> EmailSettings {
    EmailSettings {
        enabled: true,
        smtp_server: Some("127.0.0.1".into()),
        port,
        security: SmtpSecurity::Plain,
        user: Some(SMTP_USER.into()),
        password: Some(Secret::new(SMTP_PASSWORD)),
        from: Some(FROM.into()),
        to: TO.iter().map(|to| to.to_string()).collect(),
        tls_ca_file: None,
        tls_pin_sha256: None,
        allow_insecure: false,
        outbox: None,
        templates: TemplateSettings::default(),
        dedupe_window: Duration::from_secs(15 * 60),
    }
}

fn crashed(node: &str) -> Event {
    Event::NodeRestarted {
        node: node.into(),
        reason: "crashed".into(),
        detail: "crashed (EXITED)".into(),
        restart: false,
    }
}

#[tokio::test]
async fn alert_test_sends_one_mail_with_proper_headers_to_every_recipient() {
    let sink = SmtpSink::start(Mode::Plain, None, 0).await;
    let dir = config_dir(email_section(Mode::Plain, sink.port, json!({})));
    let output = run(&mut nodekeeper(dir.path(), &["alert", "test"])).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(
        output.stdout,
        format!(
            "test mail sent through localhost:{} to ops@example.org, oncall@example.net\n",
            sink.port
        )
    );
    let mail = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 1);
    let mail = &mail[0];
    // One message, both recipients in the envelope and the To header, authenticated.
    assert_eq!(mail.meta["mail_from"], "alerts@example.org");
    assert_eq!(mail.meta["rcpt_tos"], json!(TO));
    assert_eq!(mail.meta["login"], SMTP_USER);
    assert_eq!(mail.meta["tls"], false);
    assert_eq!(mail.header("From"), FROM);
    assert_eq!(mail.header("To"), TO.join(", "));
    assert!(mail.subject().starts_with("[nodekeeper] test mail from "));
    let date = mail.header("Date");
    assert!(
        chrono::DateTime::parse_from_rfc2822(&date).is_ok(),
        "Date: {date}"
    );
    let id = mail.header("Message-ID");
    assert!(
        id.starts_with('<') && id.ends_with('>') && id.contains('@'),
        "{id}"
    );
    assert!(
        mail.header("Content-Type").starts_with("text/plain"),
        "{:#}",
        mail.meta
    );
    assert!(
        mail.body()
            .contains(&format!("sent through localhost:{}", sink.port)),
        "{}",
        mail.body()
    );
    // The password is nowhere in what the command printed.
    assert!(!output.stderr.contains(SMTP_PASSWORD) && !output.stdout.contains(SMTP_PASSWORD));
}

#[tokio::test]
async fn alert_test_fails_with_one_line_naming_the_server() {
    let port = free_port();
    let dir = config_dir(email_section(Mode::Plain, port, json!({})));
    let output = run(&mut nodekeeper(dir.path(), &["alert", "test"])).await;
    assert_eq!(output.code, 1, "{output:?}");
    assert_eq!(output.stderr.lines().count(), 1, "{output:?}");
    assert!(
        output.stderr.starts_with(&format!(
            "error: cannot send mail through localhost:{port}: "
        )),
        "{output:?}"
    );
    assert!(
        output.stderr.to_lowercase().contains("connection refused"),
        "{output:?}"
    );

    // Wrong credentials: also a runtime failure naming the server.
    let sink = SmtpSink::start(Mode::Plain, None, 0).await;
    let dir = config_dir(email_section(Mode::Plain, sink.port, json!({})));
    std::fs::write(dir.path().join("smtp.password"), "wrong\n").expect("write");
    let output = run(&mut nodekeeper(dir.path(), &["alert", "test"])).await;
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output.stderr.starts_with(&format!(
            "error: cannot send mail through localhost:{}: ",
            sink.port
        )),
        "{output:?}"
    );
    assert!(output.stderr.contains("535"), "{output:?}");
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn implicit_tls_and_starttls_work_with_a_private_ca_and_fail_without_it() {
    let certificates = tempfile::tempdir().expect("tempdir");
    let pki = pki(certificates.path());
    for mode in [Mode::Tls, Mode::Starttls] {
        let sink = SmtpSink::start(mode, Some(&pki), 0).await;
        let trusted = config_dir(email_section(
            mode,
            sink.port,
            json!({"tls_ca_file": pki.ca.display().to_string()}),
        ));
        let output = run(&mut nodekeeper(trusted.path(), &["alert", "test"])).await;
        assert_eq!(output.code, 0, "{mode:?}: {output:?}");
        let mail = sink.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(mail[0].meta["tls"], true, "{mode:?}");
        assert_eq!(mail[0].meta["login"], SMTP_USER, "{mode:?}");

        // Without the CA, the server's certificate is refused: nothing is sent.
        let untrusted = config_dir(email_section(mode, sink.port, json!({})));
        let output = run(&mut nodekeeper(untrusted.path(), &["alert", "test"])).await;
        assert_eq!(output.code, 1, "{mode:?}: {output:?}");
        assert!(
            output.stderr.starts_with(&format!(
                "error: cannot send mail through localhost:{}: ",
                sink.port
            )),
            "{mode:?}: {output:?}"
        );
        assert!(
            output.stderr.to_lowercase().contains("certificate"),
            "{mode:?}: {output:?}"
        );
        assert_eq!(sink.received().len(), 1, "{mode:?}");
    }
}

#[tokio::test]
async fn an_unknown_placeholder_is_a_configuration_error_naming_the_template() {
    let templates = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        templates.path().join("node_held.txt"),
        "Subject: {{node_name}} held\n\n{{node_name}}: {{raeson}}\n",
    )
    .expect("write");
    let dir = config_dir(email_section(
        Mode::Plain,
        25,
        json!({
            "templates_dir": templates.path().display().to_string(),
            "templates": {"stuck": {"subject": "Stuck ({time})", "message": "{node_name}"}},
        }),
    ));
    let output = run(&mut nodekeeper(dir.path(), &["config", "check"])).await;
    assert_eq!(output.code, 2, "{output:?}");
    let file = templates.path().join("node_held.txt");
    assert!(
        output.stderr.contains(&format!(
            "email.templates_dir: {} (template node_held), body: unknown placeholder \
             {{{{raeson}}}} (did you mean {{{{reason}}}}?)",
            file.display()
        )),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains(
            "email.templates.stuck.subject: template stuck, subject: unknown placeholder {time} \
             (did you mean {timeout}?)"
        ),
        "{}",
        output.stderr
    );
    // `alert test` refuses the same configuration with the same words.
    let output = run(&mut nodekeeper(dir.path(), &["alert", "test"])).await;
    assert_eq!(output.code, 2, "{output:?}");
    assert!(output.stderr.contains("{{raeson}}"), "{output:?}");
}

#[tokio::test]
async fn the_worker_mails_once_per_window_and_counts_the_rest() {
    let sink = SmtpSink::start(Mode::Plain, None, 0).await;
    let window = Duration::from_secs(3);
    let worker = AlertWorker::spawn(
        SmtpMailer::try_new(&settings(sink.port)).expect("mailer"),
        Templates::shipped().expect("templates"),
        Facts {
            dedupe_window: window,
            ..Facts::test()
        },
        Arc::new(SystemClock),
        WorkerOptions::new(window),
    );
    let sender = worker.sender();
    let start = Instant::now();
    for event in [
        crashed("node1"),
        crashed("node1"),
        crashed("node2"),
        crashed("node1"),
    ] {
        sender.try_send(event).expect("queued");
    }
    let mails = sink.wait_for(2, Duration::from_secs(10)).await;
    let subjects: Vec<String> = mails.iter().map(Received::subject).collect();
    assert!(subjects[0].starts_with("[nodekeeper] node1 crashed and was started ("));
    assert!(subjects[1].starts_with("[nodekeeper] node2 crashed and was started ("));
    assert!(mails[0].body().contains("Reason: crashed (EXITED)"));
    assert!(!mails[0].body().contains("not mailed"));
    // Inside the window, nothing more.
    sink.assert_stays(2, window.saturating_sub(start.elapsed()))
        .await;
    // After it, the next one carries the count.
    sender.try_send(crashed("node1")).expect("queued");
    let mails = sink.wait_for(3, Duration::from_secs(10)).await;
    assert!(mails[2].subject().starts_with("[nodekeeper] node1 crashed"));
    assert!(
        mails[2]
            .body()
            .contains("2 more alert(s) like this one for node1 were not mailed in the last 3s."),
        "{}",
        mails[2].body()
    );
    drop(sender);
    worker.finish(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_server_that_is_down_is_retried_with_backoff_without_blocking_the_sender() {
    let port = free_port();
    let worker = AlertWorker::spawn(
        SmtpMailer::try_new(&settings(port)).expect("mailer"),
        Templates::shipped().expect("templates"),
        Facts::test(),
        Arc::new(SystemClock),
        WorkerOptions {
            retry: ExponentialBackoff::try_new(
                Duration::from_millis(300),
                Duration::from_secs(1),
                0.0,
            )
            .expect("a valid backoff"),
            ..WorkerOptions::new(Duration::from_secs(900))
        },
    );
    let sender = worker.sender();
    let start = std::time::Instant::now();
    sender.try_send(crashed("node1")).expect("queued");
    sender
        .try_send(Event::NodeRecovered {
            node: "node1".into(),
        })
        .expect("queued");
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "try_send took {:?}",
        start.elapsed()
    );
    // Let a few attempts fail (connection refused), then bring the server up on that port.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sink = SmtpSink::start(Mode::Plain, None, port).await;
    let mails = sink.wait_for(2, Duration::from_secs(10)).await;
    assert!(mails[0].subject().contains("node1 crashed"));
    assert!(mails[1].subject().contains("node1 recovered"));
    sink.assert_stays(2, Duration::from_millis(500)).await;
    drop(sender);
    worker.finish(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_daemon_mails_a_crash_and_one_pair_of_mails_per_supervisord_outage() {
    let sink = SmtpSink::start(Mode::Plain, None, 0).await;
    let mut supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(
        &supervisord,
        json!({"email": email_section(Mode::Plain, sink.port, json!({"dedupe_window": "1m"}))}),
    );
    std::fs::write(
        config.dir.join("smtp.password"),
        format!("{SMTP_PASSWORD}\n"),
    )
    .expect("write password");
    let daemon = config.start(&[]).await;

    supervisord.sims[1].fault(json!({"fault": "crash"})).await;
    let mails = sink.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(
        mails[0].subject().split(" (").next(),
        Some("[nodekeeper] node2 crashed and was started"),
        "{}",
        daemon.log_text()
    );
    assert!(mails[0].body().contains("Reason: crashed (EXITED)"));

    // An outage of supervisord: one mail when it starts, one when it ends, not one per tick.
    // It lasts until the daemon has noticed it (a restart quicker than a tick goes unseen).
    supervisord.kill9().await;
    daemon
        .wait_for_log("cannot observe supervisord", Duration::from_secs(30))
        .await;
    supervisord.start_again().await;
    let about_supervisord = || {
        sink.received()
            .into_iter()
            .map(|mail| mail.subject())
            .filter(|subject| subject.contains("supervisord"))
            .collect::<Vec<_>>()
    };
    wait_until(
        "the outage's two mails",
        Duration::from_secs(30),
        || async { (about_supervisord().len() >= 2).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let subjects = about_supervisord();
    assert_eq!(subjects.len(), 2, "{subjects:?}\n{}", daemon.log_text());
    assert!(
        subjects[0].starts_with("[nodekeeper] supervisord default unreachable ("),
        "{subjects:?}"
    );
    assert!(
        subjects[1].starts_with("[nodekeeper] supervisord default reachable again ("),
        "{subjects:?}"
    );
}

/// A self-signed certificate for `localhost` and `127.0.0.1` carrying CA:TRUE, as `openssl req
/// -x509` makes them: the certificate and key files, and its SHA-256 fingerprint.
struct SelfSigned {
    cert: PathBuf,
    key: PathBuf,
    fingerprint: Fingerprint,
}

fn self_signed(dir: &Path) -> SelfSigned {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "relay.example.org");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    let files = SelfSigned {
        cert: dir.join("relay.pem"),
        key: dir.join("relay.key"),
        fingerprint: Fingerprint::of(cert.der()),
    };
    std::fs::write(&files.cert, cert.pem()).expect("write certificate");
    std::fs::write(&files.key, key.serialize_pem()).expect("write key");
    files
}

#[tokio::test]
async fn a_self_signed_relay_is_refused_as_a_ca_file_and_reached_with_its_pin() {
    let certificates = tempfile::tempdir().expect("tempdir");
    let relay = self_signed(certificates.path());
    let as_pki = Pki {
        ca: relay.cert.clone(),
        cert: relay.cert.clone(),
        key: relay.key.clone(),
    };
    let other = Fingerprint::of(b"another certificate");
    for mode in [Mode::Tls, Mode::Starttls] {
        let sink = SmtpSink::start(mode, Some(&as_pki), 0).await;
        let error_start = format!("error: cannot send mail through localhost:{}: ", sink.port);

        // As a trust anchor, rustls refuses it: a CA certificate is no server's.
        let as_ca = config_dir(email_section(
            mode,
            sink.port,
            json!({"tls_ca_file": relay.cert.display().to_string()}),
        ));
        let output = run(&mut nodekeeper(as_ca.path(), &["alert", "test"])).await;
        assert_eq!(output.code, 1, "{mode:?}: {output:?}");
        assert!(
            output.stderr.starts_with(&error_start),
            "{mode:?}: {output:?}"
        );
        assert!(
            output
                .stderr
                .contains("invalid peer certificate: CaUsedAsEndEntity"),
            "{mode:?}: {output:?}"
        );

        // Pinned (openssl's line), it is trusted whatever its CA flag: the mail goes, over TLS.
        let pinned = config_dir(email_section(
            mode,
            sink.port,
            json!({"tls_pin_sha256": format!("sha256 Fingerprint={}", relay.fingerprint)}),
        ));
        let output = run(&mut nodekeeper(pinned.path(), &["alert", "test"])).await;
        assert_eq!(output.code, 0, "{mode:?}: {output:?}");
        let mail = sink.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(mail[0].meta["tls"], true, "{mode:?}");
        assert_eq!(mail[0].meta["login"], SMTP_USER, "{mode:?}");

        // Another pin: refused, naming what the server presented.
        let wrong = config_dir(email_section(
            mode,
            sink.port,
            json!({"tls_pin_sha256": other.to_string().replace(':', "").to_lowercase()}),
        ));
        let output = run(&mut nodekeeper(wrong.path(), &["alert", "test"])).await;
        assert_eq!(output.code, 1, "{mode:?}: {output:?}");
        assert!(
            output.stderr.starts_with(&error_start),
            "{mode:?}: {output:?}"
        );
        assert!(
            output.stderr.contains("invalid peer certificate")
                && output.stderr.contains(&relay.fingerprint.to_string()),
            "{mode:?}: {output:?}"
        );
        assert!(!output.stderr.contains(SMTP_PASSWORD));
        assert_eq!(sink.received().len(), 1, "{mode:?}");
    }
}

#[tokio::test]
async fn a_password_in_clear_to_a_remote_relay_is_a_configuration_error() {
    let dir = config_dir(json!({
        "enabled": true,
        "smtp_server": "relay.example.org",
        "security": "plain",
        "password_file": "smtp.password",
        "from": FROM,
        "to": TO,
    }));
    for command in [&["config", "check"][..], &["alert", "test"][..]] {
        let output = run(&mut nodekeeper(dir.path(), command)).await;
        assert_eq!(output.code, 2, "{command:?}: {output:?}");
        assert!(
            output.stderr.contains("email.security")
                && output.stderr.contains("email.allow_insecure"),
            "{command:?}: {output:?}"
        );
        assert!(!output.stderr.contains(SMTP_PASSWORD), "{output:?}");
    }
}

/// The mails of the outbox file at `path` (none when it is missing).
fn outbox_mails(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|outbox| outbox["mails"].as_array().cloned())
        .unwrap_or_default()
}

#[tokio::test]
async fn undelivered_alerts_survive_sigterm_and_the_next_run_delivers_them_with_their_date() {
    let port = free_port();
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(
        &supervisord,
        json!({"email": email_section(Mode::Plain, port, json!({}))}),
    );
    std::fs::write(
        config.dir.join("smtp.password"),
        format!("{SMTP_PASSWORD}\n"),
    )
    .expect("write password");
    let outbox = config.dir.join("alert-outbox.json");
    let mut daemon = config.start(&[]).await;

    // The relay is down: the crash's mail waits in the outbox beside the restart log.
    supervisord.sims[1].fault(json!({"fault": "crash"})).await;
    let kept = wait_until(
        "the mail in the outbox",
        Duration::from_secs(30),
        || async {
            let mails = outbox_mails(&outbox);
            (!mails.is_empty()).then_some(mails)
        },
    )
    .await;
    assert_eq!(daemon.terminate().await, Some(0), "{}", daemon.log_text());
    let after_stop = outbox_mails(&outbox);
    assert_eq!(after_stop, kept, "{}", daemon.log_text());
    assert!(
        kept[0]["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("[nodekeeper] node2 crashed and was started")),
        "{kept:?}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&outbox)
        .expect("outbox")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let raised = kept[0]["date"].as_i64().expect("a date");
    assert!(
        daemon.log_text().contains("kept in"),
        "{}",
        daemon.log_text()
    );
    drop(daemon);

    // The relay is back; the next run delivers the mail first, dated when it was raised.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let sink = SmtpSink::start(Mode::Plain, None, port).await;
    let daemon = config.start(&[]).await;
    let mails = sink.wait_for(1, Duration::from_secs(30)).await;
    assert!(
        mails[0]
            .subject()
            .starts_with("[nodekeeper] node2 crashed and was started"),
        "{}",
        daemon.log_text()
    );
    let date = chrono::DateTime::parse_from_rfc2822(&mails[0].header("Date")).expect("a Date");
    assert_eq!(date.timestamp(), raised);
    wait_until("an empty outbox", Duration::from_secs(10), || async {
        outbox_mails(&outbox).is_empty().then_some(())
    })
    .await;
}

//! Integration tests of `nodekeeper config ...` through the real binary over real files: the
//! broken-config corpus (`tests/corpus/broken/`, every case exits 2, names its file and key and
//! writes nothing), the shipped examples (`configs/`), environment overrides, and jmanager's files.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::support::{NODEKEEPER, Output, run};

/// One broken configuration of the corpus.
struct Case {
    /// The file under `tests/corpus/broken/`; `jmanager-*.json` is jmanager's layout.
    file: &'static str,
    /// Every problem it must report, in any order: the key path the message names (empty for a
    /// problem of the whole file) and a text the same message must contain.
    problems: &'static [(&'static str, &'static str)],
}

const fn case(file: &'static str, problems: &'static [(&'static str, &'static str)]) -> Case {
    Case { file, problems }
}

/// The corpus, as described in `tests/corpus/broken/README.md`.
const CASES: &[Case] = &[
    case("syntax.toml", &[("", "line 5")]),
    case(
        "password-unclosed.toml",
        &[(
            "",
            "line 5, column 12 (key supervisor.password): invalid TOML",
        )],
    ),
    case("syntax.yaml", &[("", "line 7")]),
    case("syntax.json", &[("", "line 6")]),
    case(
        "type-tip-diff-threshold.toml",
        &[("thresholds.tip_diff_threshold", "\"seven\"")],
    ),
    case(
        "type-duration.yaml",
        &[("thresholds.tip_timeout", "\"soon\"")],
    ),
    case(
        "type-nodes-not-list.toml",
        &[("nodes", "expected a list"), ("nodes", "at least one node")],
    ),
    case(
        "unknown-key.toml",
        &[("thresholds.tip_timout", "did you mean `tip_timeout`?")],
    ),
    case(
        "unknown-section.yaml",
        &[("threshold", "did you mean `thresholds`?")],
    ),
    case(
        "unknown-node-key.json",
        &[("nodes[0].overides", "did you mean `overrides`?")],
    ),
    case(
        "duplicate-node.json",
        &[("nodes[1].name", "duplicate node name \"node1\"")],
    ),
    case(
        "same-rest-port.toml",
        &[("nodes[1].rest_url", "REST port 3101")],
    ),
    case(
        "template-missing.toml",
        &[("node_defaults.template", "no-such-template.json")],
    ),
    // KNOWN BUG: an invalid template is reported as `error: .../invalid-template.json: invalid
    // JSON: trailing comma at line 4 column 5`, naming neither the config file nor the key that
    // points at the template (src/config/model.rs, `Validator::template`, the `Ok(_)` and `Err(e)`
    // arms push `ConfigError::new(path, "", ...)` instead of `self.error(key, ...)`). It should be
    // `error: .../template-invalid.toml: node_defaults.template: invalid-template.json: invalid
    // JSON: ...`. Fails until fixed.
    case(
        "template-invalid.toml",
        &[("node_defaults.template", "invalid-template.json")],
    ),
    case(
        "password-file-missing.toml",
        &[("supervisor.password_file", "no-such.password")],
    ),
    case(
        "password-file-empty.toml",
        &[("supervisor.password_file", "is empty")],
    ),
    case(
        "override-type-rest.toml",
        &[("nodes[0].overrides.rest", "from object to string")],
    ),
    case(
        "override-type-trusted-peers.yaml",
        &[(
            "nodes[0].overrides.p2p.trusted_peers",
            "from array to string",
        )],
    ),
    case("nodes-empty.toml", &[("nodes", "at least one node")]),
    case(
        "cluster-node-without-instance.toml",
        &[("nodes[1].instance", "every node names the instance")],
    ),
    case(
        "backup-auto-restore-without-dir.toml",
        &[("backup.dir", "backup.auto_restore needs archives")],
    ),
    case("backup-keep-zero.toml", &[("backup.keep", "at least 1")]),
    case(
        "backup-node-unknown.toml",
        &[("backup.node", "\"node9\" is not a configured node")],
    ),
    case(
        "backup-node-without-data-dir.toml",
        &[("backup.node", "\"node1\" has no data_dir")],
    ),
    case(
        "backup-every-too-short.toml",
        &[("backup.every", "expected at least 5m")],
    ),
    // KNOWN BUG: a bad `supervisor.url` also reports `nodes[0].supervisor: "default" is not a
    // [supervisors.NAME] section`, which is false: the node uses [supervisor], which exists but
    // failed validation (src/config/model.rs, `Validator::nodes`: the check
    // `!supervisors.contains_key(..) && !raw.supervisors.contains_key(..)` forgets
    // DEFAULT_SUPERVISOR). Only the url problem should be reported. Fails until fixed.
    case(
        "supervisor-url-ftp.toml",
        &[("supervisor.url", "unsupported scheme \"ftp\"")],
    ),
    // KNOWN BUG: the same false second problem as supervisor-url-ftp.toml. Fails until fixed.
    case(
        "supervisor-url-credentials.toml",
        &[("supervisor.url", "credentials do not belong in the URL")],
    ),
    case(
        "rest-url-bad.toml",
        &[("nodes[0].rest_url", "expected an http:// URL")],
    ),
    case(
        "tip-timeout-zero.toml",
        &[("thresholds.tip_timeout", "positive")],
    ),
    case(
        "api-failures-zero.yaml",
        &[("thresholds.api_failures", "positive")],
    ),
    case(
        "max-restarts-negative.json",
        &[("thresholds.max_restarts", "-1")],
    ),
    case(
        "version-unknown.toml",
        &[("nodes[0].version", "\"0.8.19\" is not in [versions]")],
    ),
    case("node-dir-unset.toml", &[("nodes[0].node_dir", "not set")]),
    case(
        "node-dir-absent.toml",
        &[("nodes[0].node_dir", "does not exist")],
    ),
    case(
        "api-listen-public.toml",
        &[("api.listen", "not a loopback address")],
    ),
    case(
        "user-without-password.toml",
        &[("supervisor.user", "needs a password")],
    ),
    case(
        "password-and-file.toml",
        &[("supervisor.password_file", "not both")],
    ),
    case(
        "email-no-recipients.toml",
        &[("email.to", "at least one recipient")],
    ),
    case(
        "pooltool-no-user-id.toml",
        &[("pooltool.user_id", "required")],
    ),
    case(
        "leadership-secret-invalid.toml",
        &[(
            "leadership.secret_file",
            "not-a-node-secret.yaml is not a node secret: the genesis secret has no node_id",
        )],
    ),
    case(
        "jmanager-missing-sections.json",
        &[
            ("common_config.jormungandr", "missing"),
            ("nodes_config", "missing"),
        ],
    ),
    case(
        "jmanager-node-without-path.json",
        &[("nodes_config[0].jmanager_settings.node_path", "missing")],
    ),
];

/// Files of the corpus that are not cases.
const HELPERS: &[&str] = &[
    "README.md",
    "template.json",
    "invalid-template.json",
    "empty.password",
    "supervisor.password",
    "not-a-node-secret.yaml",
];

/// Secrets written in the corpus; no output may contain them.
const SECRETS: &[&str] = &[
    "hunter2",
    "inline-secret",
    "corpus-password-1",
    "sk1corpusleak",
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/broken")
}

/// The nodekeeper binary with an empty environment (plus `env`), run in `dir`.
fn nodekeeper(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(NODEKEEPER);
    command.env_clear().current_dir(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Copies the files of `from` (recursively) into `to`, which must not exist.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every entry under `root` (directories included, so that a file created and removed again
/// shows in its directory's mtime): relative path → (size, mtime, mode).
type Snapshot = BTreeMap<PathBuf, (u64, SystemTime, u32)>;

fn snapshot(root: &Path) -> Snapshot {
    fn walk(root: &Path, dir: &Path, into: &mut Snapshot) {
        let metadata = std::fs::metadata(dir).unwrap();
        into.insert(
            dir.strip_prefix(root).unwrap().to_path_buf(),
            (
                metadata.len(),
                metadata.modified().unwrap(),
                metadata.permissions().mode(),
            ),
        );
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, into);
            } else {
                let metadata = entry.metadata().unwrap();
                into.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    (
                        metadata.len(),
                        metadata.modified().unwrap(),
                        metadata.permissions().mode(),
                    ),
                );
            }
        }
    }
    let mut snapshot = Snapshot::new();
    walk(root, root, &mut snapshot);
    snapshot
}

/// What is wrong with a refused run's output, given the origin its messages must start with and
/// the problems expected; empty when it is right.
fn refusal_problems(output: &Output, origin: &str, expected: &[(&str, &str)]) -> Vec<String> {
    let mut wrong = Vec::new();
    if output.code != 2 {
        wrong.push(format!("exit code {} instead of 2", output.code));
    }
    if !output.stdout.is_empty() {
        wrong.push(format!("printed to stdout: {:?}", output.stdout));
    }
    for secret in SECRETS {
        if output.stdout.contains(secret) || output.stderr.contains(secret) {
            wrong.push(format!("shows the secret {secret:?}"));
        }
    }
    let errors: Vec<&str> = output
        .stderr
        .lines()
        .filter_map(|line| line.strip_prefix("error: "))
        .collect();
    let Some((summary, problems)) = errors.split_last() else {
        wrong.push("no `error:` line".to_string());
        return wrong;
    };
    let count = expected.len();
    let want = format!(
        "{count} problem{} in the configuration; nothing was changed",
        if count == 1 { "" } else { "s" }
    );
    if *summary != want {
        wrong.push(format!("last line {summary:?}, expected {want:?}"));
    }
    for problem in problems {
        if !problem.starts_with(&format!("{origin}: ")) {
            wrong.push(format!(
                "problem does not start with the file {origin}: {problem:?}"
            ));
        }
    }
    for (key, mention) in expected {
        let start = if key.is_empty() {
            format!("{origin}: ")
        } else {
            format!("{origin}: {key}: ")
        };
        if !problems
            .iter()
            .any(|problem| problem.starts_with(&start) && problem.contains(mention))
        {
            wrong.push(format!(
                "no problem starting {start:?} and mentioning {mention:?}"
            ));
        }
    }
    wrong
}

#[test]
fn every_corpus_file_is_a_case_or_a_helper() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    let listed: BTreeSet<String> = CASES
        .iter()
        .map(|case| case.file)
        .chain(HELPERS.iter().copied())
        .map(String::from)
        .collect();
    assert_eq!(
        on_disk, listed,
        "add new files to CASES or HELPERS (and the README)"
    );
    assert!(CASES.len() >= 20, "the issue asks for at least 20 cases");
    let readme = std::fs::read_to_string(corpus_dir().join("README.md")).unwrap();
    for case in CASES {
        assert!(
            readme.contains(&format!("| `{}` |", case.file)),
            "{} is not described in the README",
            case.file
        );
    }
}

#[tokio::test]
async fn broken_configs_exit_2_name_file_and_key_and_write_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("broken");
    copy_dir(&corpus_dir(), &dir);
    let template = dir.join("template.json");
    let mut failures = Vec::new();
    for case in CASES {
        let path = dir.join(case.file);
        let origin = path.display().to_string();
        let before = snapshot(temp.path());
        let mut runs: Vec<(&str, Command)> = Vec::new();
        if case.file.starts_with("jmanager-") {
            let source = |command: &mut Command| {
                command
                    .arg("--jmanager-config")
                    .arg(&path)
                    .arg("--config-template")
                    .arg(&template);
            };
            for name in ["check", "write"] {
                let mut command = nodekeeper(&dir, &[]);
                command.args(["config", name]);
                source(&mut command);
                runs.push((name, command));
            }
            let mut command = nodekeeper(&dir, &[]);
            command
                .args(["config", "import-jmanager", "--output"])
                .arg(dir.join("imported.toml"));
            source(&mut command);
            runs.push(("import-jmanager", command));
        } else {
            for name in ["check", "write"] {
                let mut command = nodekeeper(&dir, &[]);
                command.args(["config", name, "-c"]).arg(&path);
                runs.push((name, command));
            }
        }
        for (name, mut command) in runs {
            let output = run(&mut command).await;
            let mut wrong = refusal_problems(&output, &origin, case.problems);
            let after = snapshot(temp.path());
            if after != before {
                let changed: Vec<String> = before
                    .keys()
                    .chain(after.keys())
                    .filter(|path| before.get(*path) != after.get(*path))
                    .map(|path| path.display().to_string())
                    .collect();
                wrong.push(format!("changed {changed:?}"));
            }
            if !wrong.is_empty() {
                failures.push(format!(
                    "{} (config {name}):\n    {}\n    stderr: {}",
                    case.file,
                    wrong.join("\n    "),
                    output.stderr.trim_end().replace('\n', "\n      ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The shipped example (`configs/nodekeeper.toml` and its template) in a temporary directory,
/// with `nodes/node1` and `nodes/node2` for node directories.
struct Example {
    temp: tempfile::TempDir,
}

impl Example {
    fn new() -> Example {
        let temp = tempfile::tempdir().unwrap();
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        for file in ["nodekeeper.toml", "jormungandr-template.json"] {
            std::fs::copy(configs.join(file), temp.path().join(file)).unwrap();
        }
        for node in ["node1", "node2"] {
            std::fs::create_dir_all(temp.path().join("nodes").join(node)).unwrap();
        }
        Example { temp }
    }

    fn dir(&self) -> &Path {
        self.temp.path()
    }

    fn nodes(&self) -> PathBuf {
        self.dir().join("nodes")
    }

    fn config_file(&self) -> PathBuf {
        self.dir().join("nodekeeper.toml")
    }

    fn template(&self) -> Value {
        let text = std::fs::read_to_string(self.dir().join("jormungandr-template.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// `nodekeeper config ARGS -c nodekeeper.toml` with the password and node directory from the
    /// environment, plus `env`.
    async fn config(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.config_of(&self.config_file(), args, "x", env).await
    }

    async fn config_of(
        &self,
        file: &Path,
        args: &[&str],
        password: &str,
        env: &[(&str, &str)],
    ) -> Output {
        let nodes = self.nodes().display().to_string();
        let mut all = vec![
            ("NODEKEEPER_SUPERVISOR_PASSWORD", password),
            ("NODEKEEPER__NODE_DEFAULTS__NODE_DIR", nodes.as_str()),
        ];
        all.extend_from_slice(env);
        let mut command = nodekeeper(self.dir(), &all);
        command.arg("config").args(args).arg("-c").arg(file);
        run(&mut command).await
    }
}

/// The template with node1's overrides of the example merged in by hand.
fn example_node1(template: &Value) -> Value {
    let mut expected = template.clone();
    expected["rest"]["listen"] = json!("127.0.0.1:3101");
    expected["p2p"]["listen_address"] = json!("/ip4/0.0.0.0/tcp/3001");
    expected["p2p"]["public_address"] = json!("/ip4/203.0.113.10/tcp/3001");
    expected["storage"] = json!("/var/lib/jormungandr/node1/storage");
    expected
}

fn example_default_peers() -> Value {
    json!([{"address": "/ip4/52.9.77.197/tcp/3000", "id": "ed25519_pk1..."}])
}

fn parse_json(output: &Output) -> Value {
    assert_eq!(output.code, 0, "{output:?}");
    serde_json::from_str(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", output.stdout))
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn shipped_example_checks_and_renders_the_merged_template() {
    let example = Example::new();
    let output = example.config(&["check"], &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert!(
        output.stdout.contains("ok: 2 nodes (node1, node2)"),
        "{output:?}"
    );

    let template = example.template();
    let rendered = parse_json(&example.config(&["render", "node1"], &[]).await);
    assert_eq!(rendered, example_node1(&template));
    assert_eq!(rendered["rest"]["listen"], "127.0.0.1:3101");
    assert_eq!(
        rendered["p2p"]["trusted_peers"],
        template["p2p"]["trusted_peers"]
    );
    assert_eq!(
        keys(&rendered),
        keys(&template),
        "the template's key order is kept"
    );

    let fallback = parse_json(&example.config(&["render", "node1", "--default"], &[]).await);
    assert_eq!(fallback["p2p"]["trusted_peers"], example_default_peers());
    assert_ne!(
        fallback["p2p"]["trusted_peers"],
        template["p2p"]["trusted_peers"]
    );
    let mut expected = example_node1(&template);
    expected["p2p"]["trusted_peers"] = example_default_peers();
    assert_eq!(fallback, expected, "only the trusted peers differ");

    let output = example.config(&["render", "node3"], &[]).await;
    assert_eq!(output.code, 2, "{output:?}");
    assert!(output.stderr.contains("node3"), "{output:?}");
}

#[tokio::test]
async fn shipped_example_diff_then_write_then_unchanged() {
    let example = Example::new();
    let files =
        ["node1", "node2"].map(|node| example.nodes().join(node).join(format!("{node}.json")));

    let output = example.config(&["diff"], &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    for file in &files {
        assert!(
            output
                .stdout
                .contains(&format!("+++ {} (rendered)", file.display())),
            "{output:?}"
        );
        assert!(!file.exists(), "diff wrote {}", file.display());
    }

    let output = example.config(&["write"], &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    for (node, file) in ["node1", "node2"].iter().zip(&files) {
        assert!(
            output
                .stdout
                .contains(&format!("{node}: {} written", file.display())),
            "{output:?}"
        );
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
        let render = example.config(&["render", node], &[]).await;
        assert_eq!(std::fs::read_to_string(file).unwrap(), render.stdout);
    }

    let output = example.config(&["diff"], &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    for (node, file) in ["node1", "node2"].iter().zip(&files) {
        assert!(
            output
                .stdout
                .contains(&format!("{node}: {} is up to date", file.display())),
            "{output:?}"
        );
    }

    let before = snapshot(&example.nodes());
    let output = example.config(&["write"], &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    for (node, file) in ["node1", "node2"].iter().zip(&files) {
        assert!(
            output
                .stdout
                .contains(&format!("{node}: {} unchanged", file.display())),
            "{output:?}"
        );
    }
    assert_eq!(
        snapshot(&example.nodes()),
        before,
        "an unchanged write touches nothing"
    );
}

#[tokio::test]
async fn shipped_example_show_redacts_and_loads_back() {
    let example = Example::new();
    // A distinctive password, so that "it never appears" means something.
    let password = "pw-7f3a9c";
    let output = example
        .config_of(&example.config_file(), &["show"], password, &[])
        .await;
    assert_eq!(output.code, 0, "{output:?}");
    assert!(!output.stdout.contains(password), "{}", output.stdout);
    assert!(!output.stderr.contains(password), "{}", output.stderr);
    let shown: toml::Table = toml::from_str(&output.stdout).unwrap();
    assert_eq!(shown["supervisor"]["password"].as_str(), Some("<redacted>"));
    assert_eq!(
        shown["node_defaults"]["node_dir"].as_str(),
        Some(example.nodes().to_str().unwrap()),
        "show prints effective values"
    );
    assert_eq!(shown["thresholds"]["tip_timeout"].as_str(), Some("1m 30s"));
    // What is concluded about each node booting with the key, and why (no supervisord answers
    // here: the configuration alone, and unknown counts as "may").
    for node in ["node1", "node2"] {
        assert!(
            output
                .stdout
                .lines()
                .any(|line| line.starts_with(&format!("#   {node}: may boot holding the key"))),
            "{}",
            output.stdout
        );
    }

    let file = example.dir().join("shown.toml");
    std::fs::write(&file, &output.stdout).unwrap();
    let output = example.config_of(&file, &["check"], password, &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert!(
        output.stdout.contains("ok: 2 nodes (node1, node2)"),
        "{output:?}"
    );
    let original = example.config(&["render"], &[]).await;
    let reloaded = example.config_of(&file, &["render"], password, &[]).await;
    assert_eq!(parse_json(&reloaded), parse_json(&original));

    let output = example
        .config_of(&example.config_file(), &["show", "--json"], password, &[])
        .await;
    let shown = parse_json(&output);
    assert!(!output.stdout.contains(password), "{}", output.stdout);
    assert_eq!(shown["supervisor"]["password"], "<redacted>");
}

#[tokio::test]
async fn environment_overrides_show_and_their_errors_name_the_variable() {
    let example = Example::new();
    let output = example
        .config(
            &["check"],
            &[("NODEKEEPER__THRESHOLDS__TIP_TIMEOUT", "abc")],
        )
        .await;
    assert_eq!(output.code, 2, "{output:?}");
    assert!(
        output.stderr.contains(
            "error: environment NODEKEEPER__THRESHOLDS__TIP_TIMEOUT: thresholds.tip_timeout: "
        ),
        "{output:?}"
    );
    assert!(output.stderr.contains("\"abc\""), "{output:?}");

    let output = example
        .config(&["show"], &[("NODEKEEPER__API__LISTEN", "127.0.0.1:9999")])
        .await;
    assert_eq!(output.code, 0, "{output:?}");
    let shown: toml::Table = toml::from_str(&output.stdout).unwrap();
    assert_eq!(shown["api"]["listen"].as_str(), Some("127.0.0.1:9999"));

    // The variable wins over the file, and a bad value is blamed on it, not on the file.
    let output = example
        .config(&["check"], &[("NODEKEEPER__API__LISTEN", "0.0.0.0:9999")])
        .await;
    assert_eq!(output.code, 2, "{output:?}");
    assert!(
        output
            .stderr
            .contains("error: environment NODEKEEPER__API__LISTEN: api.listen: "),
        "{output:?}"
    );
}

#[tokio::test]
async fn unknown_keys_from_the_environment_name_the_variable() {
    let example = Example::new();
    let output = example
        .config(&["check"], &[("NODEKEEPER__THRESHOLDS__TIP_TIMOUT", "5")])
        .await;
    assert_eq!(output.code, 2, "{output:?}");
    assert!(
        output.stderr.contains(
            "error: environment NODEKEEPER__THRESHOLDS__TIP_TIMOUT: thresholds.tip_timout: \
             unknown key; did you mean `tip_timeout`?"
        ),
        "{output:?}"
    );

    let output = example
        .config(&["check"], &[("NODEKEEPER__COLOURS__X", "5")])
        .await;
    assert_eq!(output.code, 2, "{output:?}");
    // KNOWN BUG: an unknown section set from the environment is blamed on the file
    // (`error: .../nodekeeper.toml: colours: unknown key; expected one of: ...`):
    // src/config/load.rs `Origins::of` only looks for the variable named exactly after the key
    // (`NODEKEEPER__COLOURS`), although its doc says "or a key under it". It should name
    // `environment NODEKEEPER__COLOURS__X`. Fails until fixed.
    assert!(
        output
            .stderr
            .contains("error: environment NODEKEEPER__COLOURS__X: colours"),
        "{output:?}"
    );
}

/// jmanager rendered the default config by mutating the normal one, so after a fallback every
/// later normal config kept the default peers. Here each rendering stands alone.
#[tokio::test]
async fn rendering_the_default_config_leaves_the_normal_one_unchanged() {
    let example = Example::new();
    let normal = example.config(&["render", "node1"], &[]).await;
    assert_eq!(normal.code, 0, "{normal:?}");
    let fallback = parse_json(&example.config(&["render", "node1", "--default"], &[]).await);
    assert_eq!(fallback["p2p"]["trusted_peers"], example_default_peers());
    let again = example.config(&["render", "node1"], &[]).await;
    assert_eq!(again.stdout, normal.stdout);

    // All nodes at once, default then normal, and the written files stay up to date.
    let output = example.config(&["write"], &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    let all_default = parse_json(&example.config(&["render", "--default"], &[]).await);
    let all_normal = parse_json(&example.config(&["render"], &[]).await);
    let template = example.template();
    for node in ["node1", "node2"] {
        assert_eq!(
            all_default[node]["p2p"]["trusted_peers"],
            example_default_peers()
        );
        assert_eq!(
            all_normal[node]["p2p"]["trusted_peers"],
            template["p2p"]["trusted_peers"]
        );
    }
    assert_eq!(
        all_normal["node1"],
        serde_json::from_str::<Value>(&normal.stdout).unwrap()
    );
    let output = example.config(&["diff"], &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(
        output.stdout.matches("is up to date").count(),
        2,
        "{output:?}"
    );
}

/// jmanager's example files in a temporary directory, with its paths moved into it and the node
/// directories and id files it names created.
struct JmanagerExample {
    temp: tempfile::TempDir,
}

impl JmanagerExample {
    fn new() -> JmanagerExample {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/jmanager");
        let text = std::fs::read_to_string(configs.join("jmanager_config.json")).unwrap();
        let text = text.replace("/home/pool/jormungandr", dir.to_str().unwrap());
        std::fs::write(dir.join("jmanager_config.json"), text).unwrap();
        std::fs::copy(
            configs.join("config_template.json"),
            dir.join("config_template.json"),
        )
        .unwrap();
        for node in ["node_one", "node_two"] {
            std::fs::create_dir(dir.join(node)).unwrap();
        }
        std::fs::write(dir.join("stake_pool_id"), "0011223344556677\n").unwrap();
        std::fs::write(
            dir.join("genesis_hash"),
            "8e4d2a343f3dcf9330ad9035b3e8d168e6728904262f2c434a4f8f934ec7b676\n",
        )
        .unwrap();
        std::fs::write(dir.join("node_secret.yaml"), "genesis:\n  sig_key: kes25519-12-sk1x\n  vrf_key: vrf_sk1x\n  node_id: 0011223344556677\n").unwrap();
        JmanagerExample { temp }
    }

    fn dir(&self) -> &Path {
        self.temp.path()
    }

    fn imported(&self) -> PathBuf {
        self.dir().join("imported.toml")
    }

    /// `nodekeeper config ARGS --jmanager-config ... --config-template ...`.
    async fn config(&self, args: &[&str]) -> Output {
        let mut command = nodekeeper(self.dir(), &[]);
        command
            .arg("config")
            .args(args)
            .arg("--jmanager-config")
            .arg(self.dir().join("jmanager_config.json"))
            .arg("--config-template")
            .arg(self.dir().join("config_template.json"));
        run(&mut command).await
    }

    async fn import(&self) -> Output {
        let imported = self.imported().display().to_string();
        let output = self
            .config(&["import-jmanager", "--output", &imported])
            .await;
        assert_eq!(output.code, 0, "{output:?}");
        output
    }
}

#[tokio::test]
async fn jmanager_example_checks_and_its_import_loads_back() {
    let example = JmanagerExample::new();
    let output = example.config(&["check"]).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert!(
        output.stdout.contains("ok: 2 nodes (node_one, node_two)"),
        "{output:?}"
    );

    example.import().await;
    let mut command = nodekeeper(example.dir(), &[]);
    command
        .args(["config", "check", "-c"])
        .arg(example.imported());
    let output = run(&mut command).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert!(
        output.stdout.contains("ok: 2 nodes (node_one, node_two)"),
        "{output:?}"
    );

    // The import renders the same node configs as reading jmanager's files directly.
    let direct = parse_json(&example.config(&["render"]).await);
    let mut command = nodekeeper(example.dir(), &[]);
    command
        .args(["config", "render", "-c"])
        .arg(example.imported());
    let imported = parse_json(&run(&mut command).await);
    assert_eq!(imported, direct);
    assert_eq!(direct["node_one"]["rest"]["listen"], "127.0.0.1:3101");

    // Refuses to overwrite.
    let imported = example.imported().display().to_string();
    let before = snapshot(example.dir());
    let output = example
        .config(&["import-jmanager", "--output", &imported])
        .await;
    assert_ne!(output.code, 0, "{output:?}");
    assert_eq!(snapshot(example.dir()), before);
}

#[tokio::test]
async fn jmanager_import_header_names_both_sources() {
    let example = JmanagerExample::new();
    example.import().await;
    let text = std::fs::read_to_string(example.imported()).unwrap();
    // The header names both of jmanager's files (it once named only the template).
    let header: String = text
        .lines()
        .take_while(|line| line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(header.contains("jmanager_config.json"), "{header}");
    assert!(header.contains("config_template.json"), "{header}");
}

#[tokio::test]
async fn jmanager_import_file_is_readable_by_its_owner_only() {
    let example = JmanagerExample::new();
    example.import().await;
    let text = std::fs::read_to_string(example.imported()).unwrap();
    // KNOWN BUG: the converted file holds jmanager's SMTP password (email.password) but is
    // created with the umask's mode (0644 under umask 022): src/cli/config.rs `import_jmanager`
    // opens it with `OpenOptions::new().write(true).create_new(true)` and no `.mode(0o600)`. It
    // should be readable by its owner only, like the node configs. Fails until fixed.
    assert!(
        text.contains("password = "),
        "the example has an SMTP password"
    );
    let mode = std::fs::metadata(example.imported())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

/// Every example configuration under `configs/`, as the arguments that select it (relative to the
/// repository): nodekeeper's files (`-c`), and each directory holding jmanager's pair. Anything
/// else there must be a known non-configuration file, so that a new example cannot go unchecked.
fn shipped_examples() -> Vec<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut examples = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(root.join("configs")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let relative = format!("configs/{name}");
        if entry.file_type().unwrap().is_dir() {
            if entry.path().join("jmanager_config.json").exists() {
                examples.push(vec![
                    "--jmanager-config".to_string(),
                    format!("{relative}/jmanager_config.json"),
                    "--config-template".to_string(),
                    format!("{relative}/config_template.json"),
                ]);
            } else {
                others.push(name);
            }
        } else if [".toml", ".yaml", ".yml"]
            .iter()
            .any(|extension| name.ends_with(extension))
        {
            examples.push(vec!["-c".to_string(), relative]);
        } else {
            others.push(name);
        }
    }
    others.sort();
    assert_eq!(
        others,
        [
            "README.md",
            "grafana",
            "jormungandr-template.json",
            "prometheus",
            "templates"
        ],
        "a new file in configs/: an example to check here, or a known non-configuration file"
    );
    examples.sort();
    assert!(examples.len() >= 2, "{examples:?}");
    examples
}

/// `nodekeeper ARGS` in the repository, with an empty environment, as in a fresh clone.
async fn in_repository(args: &[String]) -> Output {
    let mut command = nodekeeper(Path::new(env!("CARGO_MANIFEST_DIR")), &[]);
    command.args(args);
    run(&mut command).await
}

#[tokio::test]
async fn every_shipped_example_checks_with_skip_host_files() {
    for example in shipped_examples() {
        let mut args: Vec<String> =
            vec!["config".into(), "check".into(), "--skip-host-files".into()];
        args.extend(example.iter().cloned());
        let output = in_repository(&args).await;
        assert_eq!(output.code, 0, "{example:?}: {output:?}");
        assert!(output.stdout.contains(": ok: "), "{example:?}: {output:?}");
        assert!(!output.stderr.contains("error"), "{example:?}: {output:?}");
        // Every check skipped is named, each on its own line, before the verdict.
        let skipped: Vec<&str> = output
            .stdout
            .lines()
            .filter(|line| line.starts_with("not checked (host file): "))
            .collect();
        assert!(!skipped.is_empty(), "{example:?}: {output:?}");
        for line in &skipped {
            assert!(line.contains(" = /"), "{line}");
        }
        assert_eq!(
            skipped.len() + 1,
            output.stdout.lines().count(),
            "{example:?}: {output:?}"
        );
        // show and render read the example too.
        for command in [
            &["config", "show", "--skip-host-files"][..],
            &["config", "render", "--skip-host-files"],
        ] {
            let mut args: Vec<String> = command.iter().map(|arg| arg.to_string()).collect();
            args.extend(example.iter().cloned());
            let output = in_repository(&args).await;
            assert_eq!(output.code, 0, "{args:?}: {output:?}");
            assert!(
                output.stderr.contains("note: not checked (host file): "),
                "{args:?}: {output:?}"
            );
        }
    }

    let nodekeeper_toml = ["-c".to_string(), "configs/nodekeeper.toml".to_string()];
    let mut args = vec![
        "config".to_string(),
        "check".to_string(),
        "--skip-host-files".to_string(),
    ];
    args.extend(nodekeeper_toml.iter().cloned());
    let output = in_repository(&args).await;
    for line in [
        "not checked (host file): supervisor.password_file = /etc/nodekeeper/supervisor.password",
        "not checked (host file): nodes[0].node_dir = /var/lib/jormungandr/node1",
        "configs/nodekeeper.toml: ok: 2 nodes (node1, node2)",
    ] {
        assert!(
            output.stdout.lines().any(|l| l == line),
            "{line}: {output:?}"
        );
    }
    // Without the flag nothing changes: the host's files are checked (when this machine is not
    // that host).
    if !Path::new("/etc/nodekeeper/supervisor.password").exists() {
        let mut args = vec!["config".to_string(), "check".to_string()];
        args.extend(nodekeeper_toml.iter().cloned());
        let output = in_repository(&args).await;
        assert_eq!(output.code, 2, "{output:?}");
        assert!(
            output.stderr.contains(
                "error: configs/nodekeeper.toml: supervisor.password_file: cannot read \
                 /etc/nodekeeper/supervisor.password"
            ),
            "{output:?}"
        );
        assert!(!output.stdout.contains("not checked"), "{output:?}");
    }
}

#[tokio::test]
async fn skip_host_files_still_reports_real_problems() {
    let example = Example::new();
    let password = "pw-skip-4c1e";
    let text = std::fs::read_to_string(example.config_file())
        .unwrap()
        .replace("tip_timeout = \"90s\"", "tip_timeout = \"0s\"")
        .replace("\"0.9.0\" = ", "\"0.9.1\" = ");
    std::fs::write(example.config_file(), text).unwrap();
    let output = example
        .config_of(
            &example.config_file(),
            &["check", "--skip-host-files"],
            password,
            &[("NODEKEEPER__API__TOKEN_FILE", "/etc/nodekeeper/api.token")],
        )
        .await;
    let origin = example.config_file().display().to_string();
    let wrong = refusal_problems(
        &output,
        &origin,
        &[
            ("thresholds.tip_timeout", "positive"),
            ("nodes[0].version", "\"0.9.0\" is not in [versions]"),
        ],
    );
    assert!(wrong.is_empty(), "{wrong:?}: {output:?}");
    assert!(!output.stderr.contains(password), "{output:?}");
    // The password came from the environment, so its file is not read and not skipped; the token
    // file is a host file.
    assert!(
        output
            .stderr
            .contains("note: not checked (host file): api.token_file = /etc/nodekeeper/api.token"),
        "{output:?}"
    );
    assert!(
        !output.stderr.contains("supervisor.password_file"),
        "{output:?}"
    );

    // A problem of the values beside a host file is reported, the file itself is not read.
    let text = std::fs::read_to_string(example.config_file())
        .unwrap()
        .replace("tip_timeout = \"0s\"", "tip_timeout = \"90s\"")
        .replace("\"0.9.1\" = ", "\"0.9.0\" = ")
        .replace(
            "password_file = \"/etc/nodekeeper/supervisor.password\"",
            "password_file = \"/etc/nodekeeper/supervisor.password\"\npassword = \"inline-secret\"",
        );
    std::fs::write(example.config_file(), text).unwrap();
    let mut command = nodekeeper(example.dir(), &[]);
    command
        .args(["config", "check", "--skip-host-files", "-c"])
        .arg(example.config_file());
    let output = run(&mut command).await;
    let wrong = refusal_problems(
        &output,
        &origin,
        &[(
            "supervisor.password_file",
            "give either password or password_file, not both",
        )],
    );
    assert!(wrong.is_empty(), "{wrong:?}: {output:?}");
}

/// An `$EDITOR` for `config edit`: a shell script that, on its Nth call, keeps what it was given
/// as `seen.N` and applies the sed script `edit.N.sed` when there is one (without one it leaves
/// the copy unchanged, as an operator quitting without saving).
struct Editor {
    temp: tempfile::TempDir,
}

impl Editor {
    fn new() -> Editor {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().display();
        let script = format!(
            "#!/bin/sh\nset -e\nn=$(( $(cat {dir}/calls 2>/dev/null || echo 0) + 1 ))\n\
             echo \"$n\" > {dir}/calls\ncp \"$1\" {dir}/seen.$n\n\
             if [ -f {dir}/edit.$n.sed ]; then sed -i -f {dir}/edit.$n.sed \"$1\"; fi\n"
        );
        let path = temp.path().join("editor.sh");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Editor { temp }
    }

    /// On call `n`, apply `sed` (a sed script) to the copy.
    fn on_call(&self, n: usize, sed: &str) {
        std::fs::write(self.temp.path().join(format!("edit.{n}.sed")), sed).unwrap();
    }

    fn script(&self) -> String {
        self.temp.path().join("editor.sh").display().to_string()
    }

    fn calls(&self) -> usize {
        std::fs::read_to_string(self.temp.path().join("calls"))
            .map(|text| text.trim().parse().unwrap())
            .unwrap_or(0)
    }

    /// What the editor was given on call `n`.
    fn seen(&self, n: usize) -> String {
        std::fs::read_to_string(self.temp.path().join(format!("seen.{n}"))).unwrap()
    }

    /// The environment that makes `config edit` use it: `$VISUAL` wins over `$EDITOR`.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("VISUAL", self.script()),
            ("EDITOR", "false".to_string()),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
        ]
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The edit copies left in `dir`.
fn edit_copies(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains(".edit-"))
        .collect()
}

impl Example {
    /// `nodekeeper config edit ARGS -c nodekeeper.toml` with `editor`.
    async fn edit(&self, editor: &Editor, args: &[&str]) -> Output {
        let env = editor.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut all = vec!["edit"];
        all.extend_from_slice(args);
        self.config_of(&self.config_file(), &all, "pw-edit-5d2b", &env)
            .await
    }
}

#[tokio::test]
async fn config_edit_replaces_the_file_with_a_valid_edit_keeps_a_backup_and_prints_the_diff() {
    let example = Example::new();
    assert_eq!(example.config(&["write"], &[]).await.code, 0);
    let file = example.config_file();
    let original = std::fs::read(&file).unwrap();
    let mode_before = mode(&file);
    let nodes_before = snapshot(&example.nodes());
    let editor = Editor::new();
    editor.on_call(
        1,
        "s/tip_timeout = \"90s\"/tip_timeout = \"120s\"/\ns/127.0.0.1:3101/127.0.0.1:3111/\n",
    );
    let output = example.edit(&editor, &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(editor.calls(), 1);
    assert_eq!(
        editor.seen(1).as_bytes(),
        original,
        "the editor got the file"
    );

    let expected = String::from_utf8(original.clone())
        .unwrap()
        .replace("tip_timeout = \"90s\"", "tip_timeout = \"120s\"")
        .replace("127.0.0.1:3101", "127.0.0.1:3111");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
    let backup = example.dir().join("nodekeeper.toml.bak");
    assert_eq!(std::fs::read(&backup).unwrap(), original);
    assert_eq!(mode(&file), mode_before);
    assert_eq!(mode(&backup), mode_before);
    assert!(edit_copies(example.dir()).is_empty());
    assert_eq!(
        snapshot(&example.nodes()),
        nodes_before,
        "the node configs are the daemon's to write"
    );

    let stdout = &output.stdout;
    let node1 = example.nodes().join("node1/node1.json");
    for line in [
        format!(
            "{}: replaced (the previous version is {})",
            file.display(),
            backup.display()
        ),
        format!("node1: rewrites {}", node1.display()),
        format!("--- {} (on disk)", node1.display()),
        "-        \"listen\": \"127.0.0.1:3101\"".to_string(),
        "+        \"listen\": \"127.0.0.1:3111\"".to_string(),
        "node configs up to date: node2".to_string(),
        "--- settings (before)".to_string(),
        "-tip_timeout = \"1m 30s\"".to_string(),
        "+tip_timeout = \"2m\"".to_string(),
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in {output:?}");
    }
    assert!(!stdout.contains("pw-edit-5d2b") && !output.stderr.contains("pw-edit-5d2b"));

    // What edit promised is what the daemon's files will become.
    let diff = example.config(&["diff"], &[]).await;
    assert!(
        diff.stdout
            .contains("+        \"listen\": \"127.0.0.1:3111\""),
        "{diff:?}"
    );
}

#[tokio::test]
async fn config_edit_reopens_an_invalid_edit_with_its_problems_as_comments() {
    let example = Example::new();
    let file = example.config_file();
    let original = std::fs::read_to_string(&file).unwrap();
    let editor = Editor::new();
    editor.on_call(1, "s/tip_timeout = \"90s\"/tip_timeout = \"0s\"/\n");
    // The second call sees the problem on top and fixes the value.
    editor.on_call(2, "s/tip_timeout = \"0s\"/tip_timeout = \"100s\"/\n");
    let output = example.edit(&editor, &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(editor.calls(), 2);
    assert!(
        output.stderr.contains(&format!(
            "{}: 1 problem; reopening the editor",
            file.display()
        )),
        "{output:?}"
    );

    let reopened = editor.seen(2);
    let header: Vec<&str> = reopened
        .lines()
        .take_while(|line| line.starts_with("# nodekeeper:"))
        .collect();
    assert_eq!(
        header[0],
        format!(
            "# nodekeeper: {} was not changed: this edit has 1 problem:",
            file.display()
        )
    );
    assert_eq!(
        header[1],
        format!(
            "# nodekeeper:   {}: thresholds.tip_timeout: expected a positive duration, got 0",
            file.display()
        ),
        "the problem names the file, not the copy"
    );
    assert!(
        header
            .iter()
            .any(|line| line.contains("to abort, save this unchanged or empty")),
        "{header:?}"
    );
    assert_eq!(
        reopened
            .lines()
            .skip(header.len())
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
        original.replace("tip_timeout = \"90s\"", "tip_timeout = \"0s\""),
        "below the header: the rejected attempt"
    );

    let now = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        now,
        original.replace("tip_timeout = \"90s\"", "tip_timeout = \"100s\""),
        "the header is gone"
    );
    assert!(edit_copies(example.dir()).is_empty());
}

#[tokio::test]
async fn config_edit_abort_leaves_the_file_as_it_was() {
    let example = Example::new();
    let file = example.config_file();
    let backup = example.dir().join("nodekeeper.toml.bak");

    // Every file as it was (the directory's own mtime shows the copy made and removed beside
    // the file).
    let files = || {
        let mut files = snapshot(example.dir());
        files.remove(Path::new(""));
        files
    };

    // No change at all: nothing is touched.
    let before = files();
    let editor = Editor::new();
    let output = example.edit(&editor, &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(
        output.stdout.trim(),
        format!("{}: no changes", file.display())
    );
    assert_eq!(files(), before);

    // Emptied: aborted, nothing left behind.
    let editor = Editor::new();
    editor.on_call(1, "d\n");
    let output = example.edit(&editor, &[]).await;
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output
            .stderr
            .contains("edit aborted (the copy was emptied)"),
        "{output:?}"
    );
    assert_eq!(files(), before);

    // Rejected, then saved again unchanged: aborted; the attempt is kept beside the file.
    let original = std::fs::read(&file).unwrap();
    let editor = Editor::new();
    editor.on_call(1, "s/^url = .*/url = \"ftp:\\/\\/127.0.0.1:9001\"/\n");
    let output = example.edit(&editor, &[]).await;
    assert_eq!(output.code, 1, "{output:?}");
    assert_eq!(editor.calls(), 2);
    assert!(
        editor.seen(2).contains("supervisor.url: "),
        "{}",
        editor.seen(2)
    );
    assert!(
        output
            .stderr
            .contains("edit aborted (saved again unchanged)"),
        "{output:?}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), original, "byte-identical");
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        before[Path::new("nodekeeper.toml")].1
    );
    assert!(!backup.exists());
    let copies = edit_copies(example.dir());
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(output.stderr.contains(&copies[0]), "{output:?}");
    let kept = example.dir().join(&copies[0]);
    assert_eq!(mode(&kept), 0o600);
    assert!(
        std::fs::read_to_string(&kept)
            .unwrap()
            .contains("url = \"ftp://127.0.0.1:9001\"")
    );

    // An editor that fails aborts too.
    let editor = Editor::new();
    let mut env = editor.env();
    env[0].1 = "exit 3; :".to_string();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let output = example.config_of(&file, &["edit"], "x", &env).await;
    assert_eq!(output.code, 1, "{output:?}");
    assert!(output.stderr.contains("failed"), "{output:?}");
    assert_eq!(std::fs::read(&file).unwrap(), original);
    assert_eq!(edit_copies(example.dir()).len(), 1, "only the kept attempt");
}

impl JmanagerExample {
    /// `nodekeeper config edit ARGS` on jmanager's pair with `editor`.
    async fn edit(&self, editor: &Editor, args: &[&str]) -> Output {
        let env = editor.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut command = nodekeeper(self.dir(), &env);
        command
            .args(["config", "edit"])
            .args(args)
            .arg("--jmanager-config")
            .arg(self.dir().join("jmanager_config.json"))
            .arg("--config-template")
            .arg(self.dir().join("config_template.json"));
        run(&mut command).await
    }
}

#[tokio::test]
async fn config_edit_edits_each_of_jmanagers_files_and_checks_them_together() {
    let example = JmanagerExample::new();
    let config_file = example.dir().join("jmanager_config.json");
    std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let editor = Editor::new();
    editor.on_call(
        1,
        "s/\"tip_diff_threshold\": 7/\"tip_diff_threshold\": 9/\n",
    );
    let output = example.edit(&editor, &[]).await;
    assert_eq!(output.code, 0, "{output:?}");
    let text = std::fs::read_to_string(&config_file).unwrap();
    assert!(text.contains("\"tip_diff_threshold\": 9"), "{text}");
    assert!(example.dir().join("jmanager_config.json.bak").exists());
    assert_eq!(
        mode(&config_file),
        0o600,
        "jmanager's file holds the SMTP password inline: its owner's only"
    );
    assert!(
        output
            .stdout
            .contains("-tip_diff_threshold = 7\n+tip_diff_threshold = 9\n"),
        "{output:?}"
    );
    assert!(
        !output.stdout.contains("<sender email account password>"),
        "{output:?}"
    );

    // The template: an override of node_one no longer fits the edited template (a number
    // becomes text), so the pair is rejected together; JSON has no comments, and the problem
    // lines are stripped before the next check.
    let template = example.dir().join("config_template.json");
    let original = std::fs::read_to_string(&template).unwrap();
    let editor = Editor::new();
    editor.on_call(
        1,
        "s/\"max_connections\": 768/\"max_connections\": \"many\"/\n",
    );
    editor.on_call(
        2,
        "s/\"max_connections\": \"many\"/\"max_connections\": 700/\n",
    );
    let output = example.edit(&editor, &["--template"]).await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(editor.calls(), 2);
    let reopened = editor.seen(2);
    assert!(reopened.starts_with("# nodekeeper: "), "{reopened}");
    assert!(
        reopened.contains(
            "nodes[0].overrides.p2p.max_connections: changes the type of the template's value"
        ),
        "{reopened}"
    );
    let now = std::fs::read_to_string(&template).unwrap();
    assert_eq!(
        now,
        original.replace("\"max_connections\": 768", "\"max_connections\": 700")
    );
    serde_json::from_str::<Value>(&now).expect("valid JSON");
    assert_eq!(
        std::fs::read_to_string(example.dir().join("config_template.json.bak")).unwrap(),
        original
    );
    assert!(output.stdout.contains("node_two: rewrites "), "{output:?}");
    assert!(output.stdout.contains("settings: no change"), "{output:?}");
    assert!(edit_copies(example.dir()).is_empty());

    // --template needs jmanager's pair.
    let other = Example::new();
    let output = other.edit(&Editor::new(), &["--template"]).await;
    assert_eq!(output.code, 2, "{output:?}");
}

#[tokio::test]
async fn an_absurd_duration_for_any_key_exits_2_naming_the_key_and_its_bound() {
    let example = Example::new();
    let mut failures = Vec::new();
    for (key, _, most) in nodekeeper::config::validate::DURATION_BOUNDS {
        let variable = format!("NODEKEEPER__{}", key.replace('.', "__").to_uppercase());
        let output = example
            .config(&["check"], &[(variable.as_str(), "100000000h")])
            .await;
        let bound = format!(
            "is too long: expected at most {}",
            humantime::format_duration(*most)
        );
        let named = output
            .stderr
            .lines()
            .any(|line| line.contains(&format!("{key}: ")) && line.contains(&bound));
        if output.code != 2 || !named {
            failures.push(format!("{key}: exit {}: {}", output.code, output.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

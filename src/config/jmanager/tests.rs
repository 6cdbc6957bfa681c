//! The jmanager drop-in on jmanager's own files: the example converted key by key, unused and
//! unknown keys as notices, every problem named with its file and jmanager key, in one run.

use super::*;
use crate::config::load::{Env, Origins};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/jmanager/jmanager_config.json"
);
const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/jmanager/config_template.json"
);

fn example() -> Value {
    serde_json::from_str(&std::fs::read_to_string(EXAMPLE).unwrap()).unwrap()
}

/// The value at a `.`-separated path of `document` (list indices as numbers), created as an
/// object when missing.
fn at<'v>(document: &'v mut Value, path: &str) -> &'v mut Value {
    path.split('.')
        .fold(document, |value, part| match part.parse::<usize>() {
            Ok(index) => &mut value[index],
            Err(_) => &mut value[part],
        })
}

fn remove(document: &mut Value, path: &str) {
    let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
    let parent = if parent.is_empty() {
        document
    } else {
        at(document, parent)
    };
    match parent {
        Value::Object(map) => {
            map.shift_remove(name)
                .unwrap_or_else(|| panic!("no {path}"));
        }
        Value::Array(items) => {
            items.remove(name.parse().unwrap());
        }
        _ => panic!("{path}: not a container"),
    }
}

/// Imports `text` as `jmanager_config.json` (with the example template) from a temp dir that
/// is also the working directory, so messages name the file as `jmanager_config.json`.
fn import_text(text: &str) -> (Result<Import, ConfigErrors>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jmanager_config.json"), text).unwrap();
    let result = import_in(
        Path::new("jmanager_config.json"),
        Path::new(TEMPLATE),
        dir.path(),
    );
    (result, dir)
}

fn import_value(document: &Value) -> Result<Import, ConfigErrors> {
    import_text(&serde_json::to_string_pretty(document).unwrap()).0
}

fn lines(errors: &[ConfigError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn converts_the_example() {
    let import = import_in(
        Path::new(EXAMPLE),
        Path::new(TEMPLATE),
        Path::new("/elsewhere"),
    )
    .unwrap();
    let raw = &import.raw;
    let secs = Duration::from_secs;
    assert_eq!(raw.supervisor.url, "http://localhost:9001/RPC2");
    assert_eq!(raw.supervisor.user, None);
    assert!(raw.leadership.enabled);
    assert_eq!(
        raw.leadership.secret_file.as_deref(),
        Some(Path::new("/home/pool/jormungandr/node_secret.yaml"))
    );
    assert_eq!(raw.leadership.schedule_refresh_min_gap, secs(600));
    assert_eq!(
        raw.restart_log.path,
        Path::new("/home/pool/jormungandr/restarts.csv")
    );
    assert_eq!(raw.thresholds.tip_timeout, Some(secs(90)));
    assert_eq!(raw.thresholds.tip_diff_threshold, Some(7));
    assert_eq!(raw.thresholds.bootstrap_timeout, secs(650));
    assert_eq!(
        raw.thresholds.tick_interval,
        secs(1),
        "untouched keys keep nodekeeper's defaults"
    );

    let pooltool = &raw.pooltool;
    assert!(pooltool.enabled);
    assert_eq!(
        pooltool.user_id.as_deref(),
        Some("00000000-0000-4000-8000-000000000000")
    );
    assert_eq!(
        pooltool.pool_id_file.as_deref(),
        Some(Path::new("/home/pool/jormungandr/stake_pool_id"))
    );
    assert_eq!(
        pooltool.genesis_hash_file.as_deref(),
        Some(Path::new("/home/pool/jormungandr/genesis_hash"))
    );
    assert_eq!(pooltool.send_slots_after, secs(180));
    assert_eq!(
        pooltool.status_url,
        "https://pooltool.s3-us-west-2.amazonaws.com/stats/stats.json"
    );
    assert_eq!(pooltool.status_refresh, secs(60));
    assert_eq!(pooltool.tip_url, "https://api.pooltool.io/v0/sharemytip");
    assert_eq!(pooltool.tip_interval, secs(15));
    assert_eq!(pooltool.slots_url, "https://api.pooltool.io/v0/sendlogs");
    assert_eq!(
        pooltool.key_path.as_deref(),
        Some(Path::new("/home/pool/jormungandr/keystorage"))
    );
    assert_eq!(pooltool.slots_verification, SlotsVerification::Gpg);
    assert_eq!(pooltool.gpg.as_deref(), Some(Path::new("gpg")));

    let email = &raw.email;
    assert!(email.enabled);
    assert_eq!(email.security, SmtpSecurity::Tls);
    assert_eq!(email.port, Some(465));
    assert_eq!(email.smtp_server.as_deref(), Some("smtp.example.com"));
    assert_eq!(email.from.as_deref(), Some("alerts@example.com"));
    assert_eq!(email.user.as_deref(), Some("alerts@example.com"));
    assert_eq!(
        email.password.as_deref(),
        Some("<sender email account password>")
    );
    assert_eq!(email.to, ["operator@example.com"]);
    assert_eq!(
        email.templates.keys().collect::<Vec<_>>(),
        ["bootstrap_restart", "slots_assigned", "stuck"]
    );
    assert_eq!(
        email.templates["stuck"].subject,
        "[POOL] Node stuck - restarting ({timestamp})"
    );
    assert!(
        email.templates["slots_assigned"]
            .message
            .ends_with("{slots_count} slots assigned:\n{slots}")
    );

    assert_eq!(
        raw.node_defaults.template.as_deref(),
        Some(Path::new(TEMPLATE))
    );
    assert_eq!(raw.nodes.len(), 2);
    let one = &raw.nodes[0];
    assert_eq!(one.name, "node_one");
    assert_eq!(one.program.as_deref(), Some("jnode_one"));
    assert_eq!(
        one.node_dir.as_deref(),
        Some(Path::new("/home/pool/jormungandr/node_one"))
    );
    let peers = one.default_trusted_peers.as_ref().unwrap();
    assert_eq!(peers.len(), 3);
    assert_eq!(peers[0].address, "/ip4/52.9.132.248/tcp/3000");
    assert_eq!(
        peers[0].id.as_deref(),
        Some("671a9e7a5c739532668511bea823f0f5c5557c99b813456c")
    );
    assert_eq!(one.overrides["rest"]["listen"], "127.0.0.1:3101");
    assert_eq!(one.overrides["p2p"]["max_connections"], 1024);
    assert_eq!(
        one.overrides.keys().collect::<Vec<_>>(),
        ["p2p", "rest", "storage"],
        "override order kept"
    );
    let two = &raw.nodes[1];
    assert_eq!(
        (two.name.as_str(), two.program.as_deref()),
        ("node_two", Some("jnode_two"))
    );
    assert_eq!(two.default_trusted_peers.as_ref().unwrap().len(), 2);
    assert_eq!(two.rest_url, None, "derived from rest.listen by validation");
}

#[test]
fn example_notices_are_the_unused_keys() {
    let import = import_in(Path::new(EXAMPLE), Path::new(TEMPLATE), Path::new("/")).unwrap();
    let keys: Vec<&str> = import
        .notices
        .iter()
        .map(|notice| notice.key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "common_config.manager.epoch_start_time",
            "common_config.jormungandr.timeouts.refresh_interval",
            "common_config.jormungandr.timeouts.leaders_refresh_interval",
            "common_config.jormungandr.timeouts.tip_timeout",
        ]
    );
    assert!(import.notices.iter().all(|notice| notice.origin == EXAMPLE));
    let text = lines(&import.notices).join("\n");
    assert!(text.contains("epoch_start_time: not used: nodekeeper computes epoch boundaries from the node's /api/v0/settings"), "{text}");
    assert!(text.contains("refresh_interval: not used: nodekeeper polls every node once per thresholds.tick_interval"), "{text}");
    assert!(text.contains("tip_timeout: now enforced"), "{text}");
}

#[test]
fn unknown_and_unused_keys_become_notices_with_suggestions() {
    let mut document = example();
    at(&mut document, "colour").clone_from(&Value::from("blue"));
    at(
        &mut document,
        "common_config.jormungandr.timeouts.tip_timout",
    )
    .clone_from(&Value::from(60));
    at(&mut document, "common_config.manager.leaders_for_new_epoch").clone_from(&Value::from(1));
    at(
        &mut document,
        "common_config.email.templates.leader.subject",
    )
    .clone_from(&Value::from("leader"));
    at(&mut document, "common_config.email.templates.stuck.subject")
        .clone_from(&Value::from("stuck ({time})"));
    at(&mut document, "nodes_config.0.priority").clone_from(&Value::from(1));
    at(
        &mut document,
        "nodes_config.1.jmanager_settings.suprvisor_service_name",
    )
    .clone_from(&Value::from("x"));
    at(
        &mut document,
        "nodes_config.1.jmanager_settings.default_trusted_peers.0.port",
    )
    .clone_from(&Value::from(3000));
    let import = import_value(&document).unwrap();
    let notices = lines(&import.notices);
    let expected = [
        "jmanager_config.json: colour: not used: not a jmanager key (jmanager's keys here: common_config, nodes_config)",
        "jmanager_config.json: common_config.manager.leaders_for_new_epoch: not used: jmanager itself stopped reading this key (commit 6cd2609)",
        "jmanager_config.json: common_config.jormungandr.timeouts.tip_timout: not used: not a jmanager key; did you mean `tip_timeout`?",
        "jmanager_config.json: common_config.email.templates.leader: not used: jmanager accepted this template but never sent it",
        "jmanager_config.json: common_config.email.templates.stuck.subject: placeholder {time} was not filled in by jmanager (it failed to send this email); placeholders here: {timestamp}",
        "jmanager_config.json: nodes_config[0].priority: not used: jmanager itself stopped reading this key (commit 6cd2609)",
        "jmanager_config.json: nodes_config[1].jmanager_settings.suprvisor_service_name: not used: not a jmanager key; did you mean `supervisor_service_name`?",
        "jmanager_config.json: nodes_config[1].jmanager_settings.default_trusted_peers[0].port: not used: not a jmanager key (jmanager's keys here: address, id)",
    ];
    for line in expected {
        assert!(
            notices.contains(&line.to_string()),
            "missing {line:?} in {notices:#?}"
        );
    }
    assert_eq!(notices.len(), expected.len() + 4, "{notices:#?}");
    // Notices do not stop the conversion of what is known.
    assert_eq!(
        import.raw.thresholds.tip_timeout,
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        import.raw.email.templates["stuck"].subject,
        "stuck ({time})"
    );
    assert!(!import.raw.email.templates.contains_key("leader"));
}

#[test]
fn each_error_names_the_file_and_jmanager_key() {
    type Mutation = fn(&mut Value);
    let cases: [(&str, Mutation, &str); 16] = [
        (
            "no common_config",
            |d| remove(d, "common_config"),
            "common_config: missing: jmanager requires this section",
        ),
        (
            "no jormungandr",
            |d| remove(d, "common_config.jormungandr"),
            "common_config.jormungandr: missing: jmanager requires this section",
        ),
        (
            "no nodes_config",
            |d| remove(d, "nodes_config"),
            "nodes_config: missing: jmanager requires the list of nodes",
        ),
        (
            "node without name",
            |d| remove(d, "nodes_config.1.node_name"),
            "nodes_config[1].node_name: missing: every node needs a name",
        ),
        (
            "node without settings",
            |d| remove(d, "nodes_config.0.jmanager_settings"),
            "nodes_config[0].jmanager_settings: missing: jmanager requires this section",
        ),
        (
            "node without node_path",
            |d| remove(d, "nodes_config.0.jmanager_settings.node_path"),
            "nodes_config[0].jmanager_settings.node_path: missing: the node's directory",
        ),
        (
            "threshold in words",
            |d| *at(d, "common_config.jormungandr.tip_diff_threshold") = "seven".into(),
            "common_config.jormungandr.tip_diff_threshold: expected a non-negative whole number, got \"seven\"",
        ),
        (
            "nodes not a list",
            |d| *at(d, "nodes_config") = serde_json::json!({"node_name": "a"}),
            "nodes_config: expected a list of nodes, got an object",
        ),
        (
            "node not an object",
            |d| *at(d, "nodes_config.1") = "node_two".into(),
            "nodes_config[1]: expected a node object, got \"node_two\"",
        ),
        (
            "negative timeout",
            |d| *at(d, "common_config.manager.timeout_between_restarts") = (-5).into(),
            "common_config.manager.timeout_between_restarts: expected a non-negative number of seconds, got -5",
        ),
        (
            "section not an object",
            |d| *at(d, "common_config.pooltool") = serde_json::json!([1]),
            "common_config.pooltool: expected an object, got a list",
        ),
        (
            "switch as text",
            |d| *at(d, "common_config.email.email_alerts") = "yes".into(),
            "common_config.email.email_alerts: expected 1 (on) or 0 (off), got \"yes\"",
        ),
        (
            "port too large",
            |d| *at(d, "common_config.email.port") = 70000.into(),
            "common_config.email.port: expected a port number (0-65535), got 70000",
        ),
        (
            "overrides not an object",
            |d| *at(d, "nodes_config.0.config") = serde_json::json!([]),
            "nodes_config[0].config: expected an object (merged onto the template), got a list",
        ),
        (
            "peers not a list",
            |d| *at(d, "nodes_config.0.jmanager_settings.default_trusted_peers") = "none".into(),
            "nodes_config[0].jmanager_settings.default_trusted_peers: expected a list of {address, id}, got \"none\"",
        ),
        (
            "template without message",
            |d| remove(d, "common_config.email.templates.stuck.message"),
            "common_config.email.templates.stuck.message: missing: a template needs a subject and a message",
        ),
    ];
    for (name, mutate, expected) in cases {
        let mut document = example();
        mutate(&mut document);
        let errors = lines(&import_value(&document).expect_err(name).0);
        assert_eq!(errors.len(), 1, "{name}: {errors:#?}");
        assert!(
            errors[0].starts_with(&format!("jmanager_config.json: {expected}")),
            "{name}: {errors:#?}"
        );
    }
}

#[test]
fn secret_without_common_dir_is_an_error() {
    let mut document = example();
    remove(&mut document, "common_config.jormungandr.common_dir");
    let errors = lines(&import_value(&document).unwrap_err().0);
    assert_eq!(
        errors,
        [
            "jmanager_config.json: common_config.jormungandr.common_dir: missing: jmanager read secret from {common_dir}/{secret}",
            "jmanager_config.json: common_config.jormungandr.common_dir: missing: jmanager read restarts_log_filename from {common_dir}/{restarts_log_filename}",
        ]
    );
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let mut document = example();
    remove(&mut document, "common_config.jormungandr");
    *at(&mut document, "common_config.manager.send_slots_within") = "3m".into();
    remove(&mut document, "nodes_config.0.node_name");
    *at(&mut document, "nodes_config.1.jmanager_settings.node_path") = 42.into();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jm.json"), document.to_string()).unwrap();
    let errors = import_in(
        Path::new("jm.json"),
        Path::new("missing_template.json"),
        dir.path(),
    )
    .unwrap_err();
    let errors = lines(&errors.0);
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert!(
        errors[0].starts_with("missing_template.json: cannot read the node config template: "),
        "{errors:#?}"
    );
    assert_eq!(
        errors[1],
        "jm.json: common_config.manager.send_slots_within: expected a non-negative number of seconds, got \"3m\""
    );
    assert_eq!(
        errors[2],
        "jm.json: common_config.jormungandr: missing: jmanager requires this section"
    );
    assert_eq!(
        errors[3],
        "jm.json: nodes_config[0].node_name: missing: every node needs a name"
    );
    assert_eq!(
        errors[4],
        "jm.json: nodes_config[1].jmanager_settings.node_path: expected a string, got 42"
    );
}

#[test]
fn unreadable_and_invalid_files_name_the_file() {
    let (result, _dir) = import_text("{\n  \"common_config\": {\n    \"manager\": {,\n  }\n}\n");
    let errors = lines(&result.unwrap_err().0);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("jmanager_config.json: invalid JSON: "),
        "{errors:#?}"
    );
    assert!(errors[0].ends_with("at line 3 column 17"), "{errors:#?}");

    let (result, _dir) = import_text("[1, 2]");
    assert_eq!(
        lines(&result.unwrap_err().0),
        [
            "jmanager_config.json: expected a JSON object with common_config and nodes_config, got a list"
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    let errors = import_in(Path::new("absent.json"), Path::new(TEMPLATE), dir.path()).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(
        (errors.0[0].origin.as_str(), errors.0[0].key.as_str()),
        ("absent.json", "")
    );
    assert!(errors.0[0].message.starts_with("cannot read: "), "{errors}");
}

#[test]
fn the_template_must_be_a_json_object() {
    for (text, expected) in [
        (
            "[{\"log\": []}]",
            "t.json: expected a JSON object (a node config template), got a list",
        ),
        (
            "{\"log\": [",
            "t.json: invalid JSON: EOF while parsing a list at line 1 column 9",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.json"), text).unwrap();
        let errors = import_in(Path::new(EXAMPLE), Path::new("t.json"), dir.path()).unwrap_err();
        assert_eq!(lines(&errors.0), [expected]);
    }
}

#[test]
fn relative_paths_resolve_against_the_working_directory() {
    let mut document = example();
    *at(&mut document, "common_config.jormungandr.common_dir") = "./pool".into();
    *at(&mut document, "common_config.jormungandr.secret") = "/secret.yaml".into();
    *at(&mut document, "common_config.manager.pool_id_file") = "pool/id".into();
    *at(&mut document, "common_config.pooltool.send_slots.key_path") = "../keys".into();
    *at(&mut document, "nodes_config.0.jmanager_settings.node_path") = "node_one".into();
    let (result, dir) = import_text(&document.to_string());
    let raw = result.unwrap().raw;
    let cwd = dir.path();
    assert_eq!(
        raw.leadership.secret_file,
        Some(cwd.join("pool/secret.yaml")),
        "jmanager joined with '/'"
    );
    assert_eq!(raw.restart_log.path, cwd.join("pool/restarts.csv"));
    assert_eq!(raw.pooltool.pool_id_file, Some(cwd.join("pool/id")));
    assert_eq!(raw.pooltool.key_path, Some(cwd.join("../keys")));
    assert_eq!(raw.nodes[0].node_dir, Some(cwd.join("node_one")));
    assert_eq!(
        raw.nodes[1].node_dir.as_deref(),
        Some(Path::new("/home/pool/jormungandr/node_two"))
    );

    let relative_template = import_in(
        Path::new(EXAMPLE),
        Path::new("data/jmanager/./config_template.json"),
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests")),
    );
    assert_eq!(
        relative_template
            .unwrap()
            .raw
            .node_defaults
            .template
            .as_deref(),
        Some(Path::new(TEMPLATE))
    );
}

#[test]
fn slots_verification_follows_jmanager_precedence() {
    for (gpg, hash, expected) in [
        (1, 0, SlotsVerification::Gpg),
        (1, 1, SlotsVerification::Gpg),
        (0, 1, SlotsVerification::Hash),
        (0, 0, SlotsVerification::None),
        (2, 0, SlotsVerification::None),
    ] {
        let mut document = example();
        *at(
            &mut document,
            "common_config.pooltool.send_slots.verify_slots_gpg",
        ) = gpg.into();
        *at(
            &mut document,
            "common_config.pooltool.send_slots.verify_slots_hash",
        ) = hash.into();
        let pooltool = import_value(&document).unwrap().raw.pooltool;
        assert_eq!(
            pooltool.slots_verification, expected,
            "gpg={gpg} hash={hash}"
        );
        assert_eq!(pooltool.gpg.is_some(), expected == SlotsVerification::Gpg);
    }
}

#[test]
fn placeholder_user_id_leaves_pooltool_off_and_email_switch_off() {
    let mut document = example();
    *at(&mut document, "common_config.pooltool.user_id") = USER_ID_PLACEHOLDER.into();
    *at(&mut document, "common_config.email.email_alerts") = 0.into();
    *at(&mut document, "common_config.email.recipient") =
        serde_json::json!(["a@example.com", "b@example.com"]);
    remove(&mut document, "common_config.jormungandr.secret");
    let import = import_value(&document).unwrap();
    assert!(!import.raw.pooltool.enabled);
    assert!(!import.raw.email.enabled);
    assert_eq!(import.raw.email.to, ["a@example.com", "b@example.com"]);
    assert!(
        !import.raw.leadership.enabled,
        "no secret, no leader management"
    );
    assert!(lines(&import.notices).contains(
            &"jmanager_config.json: common_config.pooltool.user_id: still jmanager's placeholder: pooltool.enabled is set to false".to_string()
        ));
}

#[test]
fn supervisor_credentials_move_out_of_the_url() {
    let mut document = example();
    *at(
        &mut document,
        "common_config.jormungandr.supervisor_rest_api_url",
    ) = "http://jm:s3cret@127.0.0.1:9001/RPC2".into();
    let import = import_value(&document).unwrap();
    assert_eq!(import.raw.supervisor.url, "http://127.0.0.1:9001/RPC2");
    assert_eq!(import.raw.supervisor.user.as_deref(), Some("jm"));
    assert_eq!(import.raw.supervisor.password.as_deref(), Some("s3cret"));
    assert!(
        import
            .notices
            .iter()
            .any(|n| n.key == "common_config.jormungandr.supervisor_rest_api_url")
    );
}

#[test]
fn lists_jmanager_merged_differently_are_reported() {
    let mut document = example();
    // The template has one trusted peer and one log output: jmanager kept the template's
    // surplus log element, and merged the peer element by element.
    *at(&mut document, "nodes_config.0.config.log") = serde_json::json!([]);
    *at(&mut document, "nodes_config.1.config.log") = serde_json::json!([{"level": "debug"}]);
    let import = import_value(&document).unwrap();
    let list_notices: Vec<&ConfigError> = import
        .notices
        .iter()
        .filter(|n| n.message.starts_with("lists now replace"))
        .collect();
    let keys: Vec<&str> = list_notices.iter().map(|n| n.key.as_str()).collect();
    assert_eq!(
        keys,
        ["nodes_config[0].config.log", "nodes_config[1].config.log"],
        "{list_notices:#?}"
    );
    assert!(
        list_notices[1]
            .message
            .contains(r#"gave [{"format":"plain","level":"debug","output":"stderr"}]"#),
        "{list_notices:#?}"
    );
    // Same-shaped trusted peers merge to the override's values: nothing to report.
    assert!(!keys.iter().any(|key| key.contains("trusted_peers")));

    let mut jmanager = serde_json::json!({"a": [1, 2, {"x": 1}], "b": [{"x": 1, "y": 2}]});
    jmanager_fill(
        &mut jmanager,
        &serde_json::json!({"a": [9], "b": [{"x": 5}, {"x": 6}], "c": 3}),
    );
    assert_eq!(
        jmanager,
        serde_json::json!({"a": [1, 2, {"x": 1}], "b": [{"x": 5, "y": 2}, {"x": 6}], "c": 3})
    );
}

#[test]
fn python_format_fields() {
    assert_eq!(
        format_fields("{a} {{literal}} {b:>4} {c!r} x}"),
        ["a", "b", "c"]
    );
    assert!(format_fields("no fields {").is_empty());
}

#[test]
fn toml_round_trips_through_nodekeepers_loader() {
    let import = import_in(Path::new(EXAMPLE), Path::new(TEMPLATE), Path::new("/")).unwrap();
    let mut raw = import.raw;
    // Every kind of value an override can hold, and a multi-line string.
    raw.nodes[0]
        .overrides
        .insert("float".into(), serde_json::json!(0.25));
    raw.nodes[0]
        .overrides
        .insert("flag".into(), serde_json::json!(true));
    raw.nodes[0].overrides.insert(
        "MixedCase".into(),
        serde_json::json!({"Inner": [1, "two", [3]]}),
    );
    raw.thresholds.tip_timeout = Some(Duration::from_millis(1500));
    let text = to_toml_from(&raw, Path::new(EXAMPLE)).unwrap();
    assert!(
            text.starts_with(&format!("# nodekeeper configuration converted from jmanager's files\n#   {EXAMPLE}\n#   {TEMPLATE}\n# by ")),
            "{text}"
        );
    assert!(
        text.contains("\n# by `nodekeeper config import-jmanager` on 20"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodekeeper.toml");
    std::fs::write(&path, &text).unwrap();
    let (loaded, errors) = crate::config::load_raw(&path, &Env::new());
    assert!(errors.is_empty(), "{errors}\n{text}");
    assert_eq!(loaded, raw, "{text}");
    assert!(to_toml(&raw).unwrap().starts_with(&format!(
        "# nodekeeper configuration converted from jmanager's files\n#   {TEMPLATE}\n# by "
    )));
}

#[test]
fn toml_refuses_null_naming_each_key() {
    let mut document = example();
    *at(&mut document, "nodes_config.0.config.p2p.public_id") = Value::Null;
    *at(&mut document, "nodes_config.1.config.log") = serde_json::json!([{"output": null}]);
    let import = import_value(&document).unwrap();
    assert_eq!(
        import.raw.nodes[0].overrides["p2p"]["public_id"],
        Value::Null,
        "null overwrites, as in jmanager"
    );
    let error = to_toml(&import.raw).unwrap_err();
    assert_eq!(
        error,
        "nodes[0].overrides.p2p.public_id, nodes[1].overrides.log[0].output: null cannot be written in \
             TOML; remove the key from the jmanager config or give it a value"
    );
}

#[test]
fn validation_accepts_the_converted_example_when_its_files_exist() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let mut document = example();
    *at(&mut document, "common_config.jormungandr.common_dir") = base.to_str().unwrap().into();
    for (key, file, content) in [
        (
            "common_config.manager.pool_id_file",
            "stake_pool_id",
            "a".repeat(64),
        ),
        (
            "common_config.manager.genesis_hash_file",
            "genesis_hash",
            "b".repeat(64),
        ),
    ] {
        std::fs::write(base.join(file), content).unwrap();
        *at(&mut document, key) = base.join(file).to_str().unwrap().into();
    }
    std::fs::write(
        base.join("node_secret.yaml"),
        "genesis:\n  sig_key: kes25519-12-sk1x\n  vrf_key: vrf_sk1x\n  node_id: 0011223344556677\n",
    )
    .unwrap();
    for (index, name) in ["node_one", "node_two"].into_iter().enumerate() {
        std::fs::create_dir(base.join(name)).unwrap();
        *at(
            &mut document,
            &format!("nodes_config.{index}.jmanager_settings.node_path"),
        ) = base.join(name).to_str().unwrap().into();
    }
    let path = base.join("jmanager_config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&document).unwrap()).unwrap();
    let import = import(&path, Path::new(TEMPLATE)).unwrap();
    let env = Env::new();
    let origins = Origins::new(&path, &env);
    let mut errors = ConfigErrors::default();
    let (config, _, _) = crate::config::validate::validate(
        import.raw,
        &path,
        &origins,
        &mut errors,
        crate::config::HostFiles::Check,
    );
    assert!(errors.is_empty(), "{errors}");
    assert_eq!(config.nodes.len(), 2);
    assert_eq!(
        config.nodes[0].jormungandr().unwrap().rest_url.as_str(),
        "http://127.0.0.1:3101/api"
    );
    assert_eq!(config.nodes[1].program, "jnode_two");
    assert_eq!(
        config.nodes[0].jormungandr().unwrap().config["p2p"]["max_connections"],
        1024,
        "override merged onto the template"
    );
    assert_eq!(
        config.nodes[1].jormungandr().unwrap().config["p2p"]["max_connections"],
        768,
        "template value kept"
    );
    assert_eq!(
        config.nodes[0].jormungandr().unwrap().fallback_config["p2p"]["trusted_peers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        config.pooltool.pool_id.as_deref(),
        Some("a".repeat(64).as_str())
    );

    // Without the node directories, the host check names them.
    for name in ["node_one", "node_two"] {
        std::fs::remove_dir(base.join(name)).unwrap();
    }
    let errors = crate::config::model::host_problems(&config, &Env::new());
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["nodes[0].node_dir", "nodes[1].node_dir"], "{errors}");
}

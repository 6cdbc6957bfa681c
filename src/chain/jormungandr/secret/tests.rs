//! Node secrets: jcli's YAML and JSON shapes, malformed ones refused, the promotion body, files
//! loaded, and errors that name the file but never its content.

use super::*;

const YAML: &str = "\
# written by jcli
genesis:
  sig_key: kes25519-12-sk1qqq
  vrf_key: \"vrf_sk1abc\"
  node_id: 0123abcd
";

#[test]
fn parses_the_jcli_yaml_shape() {
    let secret = parse_file_text(YAML).unwrap();
    assert_eq!(
        secret,
        LeaderSecret::Genesis {
            sig_key: "kes25519-12-sk1qqq".into(),
            vrf_key: "vrf_sk1abc".into(),
            node_id: "0123abcd".into(),
        }
    );
    assert_eq!(secret.identity(), "0123abcd");
    assert!(!format!("{secret:?}").contains("sk1"));
}

#[test]
fn parses_bft_and_json() {
    let bft = parse_file_text("bft:\n    signing_key: ed25519_sk1x\n").unwrap();
    assert_eq!(bft.identity(), "ed25519_sk1x");
    let json = parse_json(r#"{"bft":null,"genesis":{"sig_key":"a","vrf_key":"b","node_id":"c"}}"#)
        .unwrap();
    assert_eq!(json.identity(), "c");
    assert_eq!(
        parse_file_text(r#" {"bft":{"signing_key":"k"}}"#)
            .unwrap()
            .identity(),
        "k"
    );
}

#[test]
fn rejects_incomplete_or_malformed_secrets() {
    assert_eq!(parse_file_text(""), Err(SecretError::NoSection));
    assert_eq!(
        parse_file_text("genesis:\n  sig_key: a\n  vrf_key: b\n"),
        Err(SecretError::MissingField {
            section: "genesis",
            field: "node_id"
        })
    );
    assert_eq!(
        parse_file_text("genesis:\n  just words\n"),
        Err(SecretError::BadLine(2))
    );
    assert!(matches!(parse_json("{not json"), Err(SecretError::Json(_))));
    assert_eq!(parse_json("{}"), Err(SecretError::NoSection));
    assert!(parse_json("[1,2]").is_err());
}

#[test]
fn the_post_body_has_the_api_shape_and_round_trips() {
    let genesis = LeaderSecret::Genesis {
        sig_key: "kes25519-12-sk1qqq".into(),
        vrf_key: "vrf_sk1abc".into(),
        node_id: "0123abcd".into(),
    };
    assert_eq!(
        genesis.to_json_body(),
        r#"{"genesis":{"sig_key":"kes25519-12-sk1qqq","vrf_key":"vrf_sk1abc","node_id":"0123abcd"}}"#
    );
    let bft = LeaderSecret::Bft {
        signing_key: "ed25519_sk1x".into(),
    };
    assert_eq!(
        bft.to_json_body(),
        r#"{"bft":{"signing_key":"ed25519_sk1x"}}"#
    );
    let odd = LeaderSecret::Genesis {
        sig_key: "quote\" back\\slash".into(),
        vrf_key: "ünïcode\ttab".into(),
        node_id: "id".into(),
    };
    for secret in [genesis, bft, odd] {
        assert_eq!(parse_json(&secret.to_json_body()), Ok(secret.clone()));
    }
}

#[test]
fn json_errors_never_quote_the_input() {
    for text in [
        r#"{"genesis":"kes25519-12-sk1LEAK"}"#,
        r#"{"bft":{"signing_key":["ed25519_sk1LEAK"]}}"#,
        r#"{"genesis":{"sig_key":"kes25519-12-sk1LEAK","vrf_key":7}}"#,
        r#"{"genesis":{"sig_key":"kes25519-12-sk1LEAK" "vrf"}}"#,
        r#"{"genesis":{"sig_key":"kes25519-12-sk1LEAK"#,
    ] {
        let error = parse_json(text).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, SecretError::Json(_)), "{text}: {message}");
        assert!(!message.contains("LEAK"), "{text}: {message}");
        assert!(message.contains("line 1 column"), "{message}");
    }
}

fn write(dir: &Path, name: &str, content: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn load_reads_yaml_and_json_files() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = write(dir.path(), "node_secret.yaml", YAML.as_bytes());
    assert_eq!(load(&yaml).unwrap().identity(), "0123abcd");
    let json = write(
        dir.path(),
        "node_secret.json",
        b"{\"bft\":{\"signing_key\":\"ed25519_sk1x\"}}\n",
    );
    assert_eq!(
        load(&json),
        Ok(LeaderSecret::Bft {
            signing_key: "ed25519_sk1x".into()
        })
    );
}

#[test]
fn load_errors_name_the_file_and_never_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let key = "kes25519-12-sk1LEAKLEAKLEAK";
    let too_large = format!("genesis:\n  sig_key: {key}\n{}", "#".repeat(70_000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "missing-field.yaml",
            format!("genesis:\n  sig_key: {key}\n  vrf_key: vrf_sk1LEAK\n").into_bytes(),
            "the genesis secret has no node_id",
        ),
        (
            "bad-line.yaml",
            format!("genesis:\n  {key}\n").into_bytes(),
            "line 2 is not a `key: value` pair",
        ),
        (
            "no-section.yaml",
            format!("secret: {key}\n").into_bytes(),
            "no genesis or bft section",
        ),
        (
            "wrong-shape.json",
            format!(r#"{{"genesis":"{key}"}}"#).into_bytes(),
            "invalid secret json: a value has the wrong type",
        ),
        (
            "broken.json",
            format!(r#"{{"genesis":{{"sig_key":"{key}""#).into_bytes(),
            "invalid secret json",
        ),
        (
            "binary.yaml",
            [
                b"genesis:\n  sig_key: ".as_slice(),
                key.as_bytes(),
                b"\xff\n",
            ]
            .concat(),
            "not UTF-8 text",
        ),
        (
            "huge.yaml",
            too_large.into_bytes(),
            "larger than 65536 bytes",
        ),
    ];
    for (name, content, expected) in cases {
        let path = write(dir.path(), name, &content);
        let error = load(&path).unwrap_err();
        assert!(
            error.contains(&path.display().to_string()),
            "{name}: {error}"
        );
        assert!(error.contains(expected), "{name}: {error}");
        assert!(!error.contains("LEAK"), "{name}: {error}");
    }
    let missing = dir.path().join("absent.yaml");
    let error = load(&missing).unwrap_err();
    assert!(
        error.starts_with(&format!("cannot read {}: ", missing.display())),
        "{error}"
    );
}

//! Node secrets: what `jormungandr --secret` reads (YAML) and what `POST /api/v0/leaders` takes (JSON).
//!
//! Owns [`LeaderSecret`], its two parsers, its `POST /api/v0/leaders` body ([`LeaderSecret::to_json_body`]) and
//! reading a secret file ([`load`]). The YAML parser is deliberately small: it understands the two-level shape jcli
//! writes (`genesis:` or `bft:` followed by indented `key: value` lines, values optionally quoted, `#` comments)
//! and nothing more, so it needs no YAML crate.
//!
//! Secrets are never logged: `Debug` shows only the pool id, and no error of this module (nor of [`load`]) carries
//! any text of the secret; they name a line, a field or a JSON position at most.

use std::io::Read as _;
use std::path::Path;

use serde::Deserialize;

/// The largest secret file read; the one jcli writes is a few hundred bytes.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A leader key held by the node's enclave.
#[derive(Clone, PartialEq, Eq)]
pub enum LeaderSecret {
    /// A Genesis-Praos pool secret.
    Genesis {
        /// The KES signing key.
        sig_key: String,
        /// The VRF secret key.
        vrf_key: String,
        /// The pool id (node id), hex.
        node_id: String,
    },
    /// A BFT leader secret.
    Bft {
        /// The ed25519 signing key.
        signing_key: String,
    },
}

impl LeaderSecret {
    /// What makes two secrets "the same leader": the pool id for Genesis, the key for BFT.
    pub fn identity(&self) -> &str {
        match self {
            LeaderSecret::Genesis { node_id, .. } => node_id,
            LeaderSecret::Bft { signing_key } => signing_key,
        }
    }

    /// The JSON body of `POST /api/v0/leaders`: `{"genesis":{"sig_key":…,"vrf_key":…,"node_id":…}}` or
    /// `{"bft":{"signing_key":…}}`. It holds the secret: send it, never log it.
    pub fn to_json_body(&self) -> String {
        let body = match self {
            LeaderSecret::Genesis {
                sig_key,
                vrf_key,
                node_id,
            } => serde_json::json!({
                "genesis": {"sig_key": sig_key, "vrf_key": vrf_key, "node_id": node_id}
            }),
            LeaderSecret::Bft { signing_key } => {
                serde_json::json!({"bft": {"signing_key": signing_key}})
            }
        };
        body.to_string()
    }
}

/// Secrets stay out of logs and debug output.
impl std::fmt::Debug for LeaderSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaderSecret::Genesis { node_id, .. } => {
                write!(f, "Genesis {{ node_id: {node_id:?}, .. }}")
            }
            LeaderSecret::Bft { .. } => f.write_str("Bft { .. }"),
        }
    }
}

/// Errors of parsing a node secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// Neither a `genesis` nor a `bft` section.
    #[error("no genesis or bft section in the secret")]
    NoSection,
    /// A required key is missing or empty.
    #[error("the {section} secret has no {field}")]
    MissingField {
        /// `genesis` or `bft`.
        section: &'static str,
        /// The missing key.
        field: &'static str,
    },
    /// A line is not `key: value`.
    #[error("line {0} is not a `key: value` pair")]
    BadLine(usize),
    /// The JSON does not have the secret's shape. The detail names the kind of problem and its position only:
    /// serde's own message may quote a value, which could be a key.
    #[error("invalid secret json: {0}")]
    Json(String),
}

/// The JSON shape: jcli's `NodeSecret { bft: Option<…>, genesis: Option<…> }`.
#[derive(Debug, Default, Deserialize)]
struct SecretDto {
    #[serde(default)]
    genesis: Option<GenesisDto>,
    #[serde(default)]
    bft: Option<BftDto>,
}

#[derive(Debug, Default, Deserialize)]
struct GenesisDto {
    #[serde(default)]
    sig_key: Option<String>,
    #[serde(default)]
    vrf_key: Option<String>,
    #[serde(default)]
    node_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct BftDto {
    #[serde(default)]
    signing_key: Option<String>,
}

impl SecretDto {
    fn into_secret(self) -> Result<LeaderSecret, SecretError> {
        // Like the enclave, a Genesis key wins when both are present.
        if let Some(genesis) = self.genesis {
            return Ok(LeaderSecret::Genesis {
                sig_key: required(genesis.sig_key, "genesis", "sig_key")?,
                vrf_key: required(genesis.vrf_key, "genesis", "vrf_key")?,
                node_id: required(genesis.node_id, "genesis", "node_id")?,
            });
        }
        if let Some(bft) = self.bft {
            return Ok(LeaderSecret::Bft {
                signing_key: required(bft.signing_key, "bft", "signing_key")?,
            });
        }
        Err(SecretError::NoSection)
    }
}

fn required(
    value: Option<String>,
    section: &'static str,
    field: &'static str,
) -> Result<String, SecretError> {
    match value {
        Some(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
        _ => Err(SecretError::MissingField { section, field }),
    }
}

/// Parses the JSON body of `POST /api/v0/leaders`.
pub fn parse_json(text: &str) -> Result<LeaderSecret, SecretError> {
    let dto: SecretDto = serde_json::from_str(text).map_err(|error| json_error(&error))?;
    dto.into_secret()
}

/// A description of a JSON error without serde's message, which may quote the input.
fn json_error(error: &serde_json::Error) -> SecretError {
    let what = match error.classify() {
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Eof => "the JSON ends early",
        serde_json::error::Category::Data => "a value has the wrong type",
        serde_json::error::Category::Io => "the JSON cannot be read",
    };
    SecretError::Json(format!(
        "{what} at line {} column {}",
        error.line(),
        error.column()
    ))
}

/// Reads the file given to `jormungandr --secret` (the YAML jcli writes, or the same secret as JSON).
///
/// The error names `path` and what is wrong (unreadable, too large, not UTF-8, which field or line is
/// wrong) and never any of the file's content, so it can be logged and shown.
pub fn load(path: &Path) -> Result<LeaderSecret, String> {
    let shown = path.display();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|error| format!("cannot read {shown}: {error}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{shown} is not a node secret: larger than {MAX_FILE_BYTES} bytes"
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{shown} is not a node secret: not UTF-8 text"))?;
    parse_file_text(&text).map_err(|error| format!("{shown} is not a node secret: {error}"))
}

/// Parses a `--secret` file: the YAML shape jcli writes, or the same secret as JSON.
pub fn parse_file_text(text: &str) -> Result<LeaderSecret, SecretError> {
    if text.trim_start().starts_with('{') {
        return parse_json(text);
    }
    let mut dto = SecretDto::default();
    let mut section: Option<String> = None;
    for (index, raw_line) in text.lines().enumerate() {
        let line = strip_comment(raw_line);
        if line.trim().is_empty() || line.trim() == "---" {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        let (key, value) = line
            .split_once(':')
            .ok_or(SecretError::BadLine(index + 1))?;
        let key = key.trim();
        let value = unquote(value.trim());
        if !indented {
            section = Some(key.to_string());
            match key {
                "genesis" => dto.genesis = Some(GenesisDto::default()),
                "bft" => dto.bft = Some(BftDto::default()),
                // Unknown top-level keys are ignored, like serde ignores unknown fields.
                _ => {}
            }
            continue;
        }
        let value = Some(value.to_string());
        match (section.as_deref(), key) {
            (Some("genesis"), "sig_key") => dto.genesis.get_or_insert_default().sig_key = value,
            (Some("genesis"), "vrf_key") => dto.genesis.get_or_insert_default().vrf_key = value,
            (Some("genesis"), "node_id") => dto.genesis.get_or_insert_default().node_id = value,
            (Some("bft"), "signing_key") => dto.bft.get_or_insert_default().signing_key = value,
            _ => {}
        }
    }
    dto.into_secret()
}

fn strip_comment(line: &str) -> &str {
    // Keys and bech32/hex values never contain '#', so a plain cut is enough.
    match line.find('#') {
        Some(at) => &line[..at],
        None => line,
    }
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
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
        let json =
            parse_json(r#"{"bft":null,"genesis":{"sig_key":"a","vrf_key":"b","node_id":"c"}}"#)
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
}

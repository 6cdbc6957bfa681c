//! Node secrets: what `jormungandr --secret` reads (YAML) and what `POST /api/v0/leaders` takes (JSON).
//!
//! Owns [`LeaderSecret`] and its two parsers. The YAML parser is deliberately small: it understands the
//! two-level shape jcli writes (`genesis:` or `bft:` followed by indented `key: value` lines, values optionally
//! quoted, `#` comments) and nothing more, so it needs no YAML crate. Secrets are never logged.

use serde::Deserialize;

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
    /// The JSON does not have the secret's shape.
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
    let dto: SecretDto =
        serde_json::from_str(text).map_err(|error| SecretError::Json(error.to_string()))?;
    dto.into_secret()
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
}

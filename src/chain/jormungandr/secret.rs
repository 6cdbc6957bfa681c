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
mod tests;

//! Pseudonymization keys: a secret with an id, read from a file or an environment variable.
//!
//! The key file is TOML with two fields, `id` (printable, recorded in audit events and in the
//! de-identification method so a rotation can be traced) and `secret` (hex or base64, at least
//! 32 bytes). `radstream keygen` writes one.

use std::path::Path;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a key could not be loaded. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pseudonymization key from {source_name}: {problem}")]
pub struct KeyError {
    /// The file path or environment variable name.
    pub source_name: String,
    /// What is wrong.
    pub problem: String,
}

/// A keyed-hash secret and its id.
#[derive(Clone)]
pub struct DeidKey {
    id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for DeidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeidKey").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    id: String,
    secret: String,
}

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

impl DeidKey {
    /// A key from its parts.
    pub fn new(id: impl Into<String>, secret: Vec<u8>) -> Result<Self, KeyError> {
        let id = id.into();
        let err = |problem: &str| KeyError { source_name: "arguments".into(), problem: problem.into() };
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(err("the key id must be 1 to 64 printable ASCII characters without spaces"));
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(err("the secret must be at least 32 bytes"));
        }
        Ok(Self { id, secret })
    }

    /// Parses the TOML key format; `source_name` names the origin in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, KeyError> {
        let err = |problem: String| KeyError { source_name: source_name.to_string(), problem };
        let file: KeyFile = toml_like(text).map_err(err)?;
        let secret =
            decode_secret(file.secret.trim()).ok_or_else(|| err("`secret` is neither hex nor base64".to_string()))?;
        Self::new(file.id, secret).map_err(|e| err(e.problem))
    }

    /// Reads a key file.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyError { source_name: name.clone(), problem: e.to_string() })?;
        Self::parse(&text, &name)
    }

    /// Reads a key from an environment variable holding the key file's text.
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let text =
            std::env::var(var).map_err(|_| KeyError { source_name: format!("${var}"), problem: "not set".into() })?;
        Self::parse(&text, &format!("${var}"))
    }

    /// A fresh random key, as key-file text.
    pub fn generate_file_text(id: &str) -> String {
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&random_u64().to_le_bytes());
        }
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "# radstream pseudonymization key. Keep it on the trusted side only.\nid = \"{id}\"\nsecret = \"{hex}\"\n"
        )
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 over the parts, each prefixed by its length so that different splits of the
    /// same bytes never collide.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        for p in parts {
            mac.update(&(p.len() as u32).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

fn random_u64() -> u64 {
    // The OS CSPRNG through std's hasher seeds is not exposed; read /dev/urandom where it exists.
    use std::io::Read;
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut b).is_ok() {
            return u64::from_le_bytes(b);
        }
    }
    panic!("no /dev/urandom: cannot generate a key securely on this system")
}

fn toml_like(text: &str) -> Result<KeyFile, String> {
    // A two-field format does not warrant a TOML dependency in this crate: `name = "value"`
    // lines, `#` comments.
    let (mut id, mut secret) = (None, None);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) =
            line.split_once('=').ok_or_else(|| format!("line {}: expected `name = \"value\"`", n + 1))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| format!("line {}: the value must be in double quotes", n + 1))?;
        match name.trim() {
            "id" => id = Some(value.to_string()),
            "secret" => secret = Some(value.to_string()),
            other => return Err(format!("line {}: unknown field `{other}` (expected `id` and `secret`)", n + 1)),
        }
    }
    Ok(KeyFile { id: id.ok_or("missing `id`")?, secret: secret.ok_or("missing `secret`")? })
}

fn decode_secret(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect();
    }
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests;

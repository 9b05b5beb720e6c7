//! How an object is named in log lines, error messages and dead-letter reasons.
//!
//! Upstream object keys often carry a medical record number or an accession number
//! (`studies/<MRN>/<accession>/1.dcm`). By default a key is shown as it is, which is what an
//! operator needs to find the object; a deployment that must keep keys out of its logs sets a
//! secret once at start-up ([`hash_object_keys`]) and every name then shows the bucket and a
//! keyed hash of the key instead: HMAC-SHA256 with that secret, the first 16 bytes in hex, so the
//! same key always gives the same name (lines about one object can still be followed) and no one
//! without the secret can test a guessed MRN against it. The structured location inside an event
//! or a dead letter is not a log line and keeps the key: `dlq replay` needs it.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

static SECRET: OnceLock<Vec<u8>> = OnceLock::new();

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// Why [`hash_object_keys`] refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyHashError {
    /// The secret is too short to resist guessing.
    #[error("the object key hash secret has {0} bytes; at least {MIN_SECRET_BYTES} are needed (32 random bytes, e.g. `head -c 32 /dev/urandom | base64`)")]
    TooShort(usize),
    /// The process already names objects with another secret.
    #[error("object keys are already hashed with another secret in this process")]
    AlreadySet,
}

/// From now on, every object of this process is named by the keyed hash of its key. Once per
/// process; setting the same secret again is accepted.
pub fn hash_object_keys(secret: &[u8]) -> Result<(), KeyHashError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(KeyHashError::TooShort(secret.len()));
    }
    let set = SECRET.get_or_init(|| secret.to_vec());
    if set.as_slice() == secret {
        Ok(())
    } else {
        Err(KeyHashError::AlreadySet)
    }
}

/// Whether object keys are shown hashed in this process.
pub fn object_keys_hashed() -> bool {
    SECRET.get().is_some()
}

/// `bucket/key`, or `bucket/hmac-<32 hex digits>` once [`hash_object_keys`] was called.
pub fn object_name(bucket: &str, key: &str) -> String {
    name_with(SECRET.get().map(Vec::as_slice), bucket, key)
}

pub(crate) fn name_with(secret: Option<&[u8]>, bucket: &str, key: &str) -> String {
    let Some(secret) = secret else {
        return format!("{bucket}/{key}");
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts a key of any length");
    mac.update(key.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{bucket}/hmac-{hex}")
}

#[cfg(test)]
mod tests;

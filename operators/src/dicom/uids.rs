//! UIDs derived from hashes (PS3.5 B.2, the `2.25` root): every operator that makes a UID
//! deterministically (result objects, key objects, pseudonyms) turns its digest into one here,
//! so that the encoding is the same everywhere.

use sha2::{Digest, Sha256};

/// PS3.5 9.1: at most 64 characters, digits in dot-separated components. What a value must be
/// before a file path or an object key is made of it (no `/`, no `..`).
pub fn is_uid(text: &str) -> bool {
    text.len() <= 64 && text.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

/// `2.25.` and the decimal value of the first 128 bits of `digest` (which must have at least 16
/// bytes; a shorter one is zero-padded): at most 44 characters, no leading zero.
pub fn uid_from_digest(digest: &[u8]) -> String {
    let mut first = [0u8; 16];
    let n = digest.len().min(16);
    first[..n].copy_from_slice(&digest[..n]);
    format!("2.25.{}", u128::from_be_bytes(first))
}

/// The UID of SHA-256 over `fields`, each length-prefixed (64-bit big endian), so that no
/// choice of field values can make two different lists hash the same bytes.
pub fn uid_of_fields(fields: &[&str]) -> String {
    let mut hash = Sha256::new();
    for field in fields {
        hash.update((field.len() as u64).to_be_bytes());
        hash.update(field.as_bytes());
    }
    uid_from_digest(&hash.finalize())
}

/// The UID of SHA-256(`domain`, 0x00, `uid`): the same for the same source UID, and no one
/// else's.
pub fn uid_of_domain(domain: &str, uid: &str) -> String {
    uid_from_digest(&Sha256::new().chain_update(domain).chain_update([0u8]).chain_update(uid).finalize())
}

#[cfg(test)]
mod tests;

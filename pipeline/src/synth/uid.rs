//! UIDs for synthetic objects.
//!
//! A UID is `<root>.<n>` where `n` is a 128-bit number. The bits of `n` pack the
//! seed, the kind of UID and the study/series/instance indices, and are then
//! scrambled by a bijection on `u128`. Packing makes UIDs unique by construction
//! (no hash collisions to reason about); scrambling makes them look like the
//! random `2.25.<uuid>` UIDs that real systems produce, so nothing downstream can
//! come to rely on their order.

use super::error::SynthError;

/// Implementation Class UID written in the file meta of every synthetic file.
///
/// A `2.25` (UUID-derived) UID that identifies radstream as the implementation.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.186935231620938372209546418337420571457";

/// Implementation Version Name written beside [`IMPLEMENTATION_CLASS_UID`].
pub const IMPLEMENTATION_VERSION_NAME: &str = "RADSTREAM_SYNTH";

/// Longest number `u128` formats to, in decimal digits.
const MAX_SUFFIX_DIGITS: usize = 39;
/// DICOM caps a UID at 64 characters; the root must leave room for `.` and the suffix.
pub(super) const MAX_ROOT_LEN: usize = 64 - 1 - MAX_SUFFIX_DIGITS;

const STUDY_BITS: u32 = 29;
const SERIES_BITS: u32 = 8;
const INSTANCE_BITS: u32 = 24;

/// Largest number of studies whose indices fit in a UID.
pub(super) const MAX_STUDIES: usize = 1 << STUDY_BITS;
/// Largest number of series per study whose indices fit in a UID.
pub(super) const MAX_SERIES: usize = 1 << SERIES_BITS;
/// Largest number of instances per series whose indices fit in a UID.
pub(super) const MAX_INSTANCES: usize = 1 << INSTANCE_BITS;

/// What a UID names; part of the packed bits so that, say, a study and its
/// first series never share a UID.
#[derive(Clone, Copy, Debug)]
pub(super) enum UidKind {
    Study = 1,
    Series = 2,
    Instance = 3,
    FrameOfReference = 4,
}

/// The UID of one object. `study`, `series` and `instance` must be below
/// [`MAX_STUDIES`], [`MAX_SERIES`] and [`MAX_INSTANCES`] (checked by
/// `SynthOptions::validate`); indices that do not apply are 0.
pub(super) fn synth_uid(root: &str, seed: u64, kind: UidKind, study: usize, series: usize, instance: usize) -> String {
    debug_assert!(study < MAX_STUDIES && series < MAX_SERIES && instance < MAX_INSTANCES);
    // seed:64 | kind:3 | study:29 | series:8 | instance:24 = 128 bits.
    let packed = (u128::from(seed) << 64)
        | ((kind as u128) << (STUDY_BITS + SERIES_BITS + INSTANCE_BITS))
        | ((study as u128) << (SERIES_BITS + INSTANCE_BITS))
        | ((series as u128) << INSTANCE_BITS)
        | instance as u128;
    format!("{root}.{}", scramble(packed))
}

/// A bijection on `u128`: xor-shifts and multiplications by odd constants are
/// each invertible modulo 2^128.
fn scramble(mut x: u128) -> u128 {
    const K1: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;
    const K2: u128 = 0xbf58_476d_1ce4_e5b9_94d0_49bb_1331_11eb;
    x ^= x >> 67;
    x = x.wrapping_mul(K1);
    x ^= x >> 59;
    x = x.wrapping_mul(K2);
    x ^= x >> 64;
    x
}

/// Checks that `root` is a UID prefix: dot-separated numeric components without
/// leading zeros, short enough to leave room for the generated suffix.
pub(super) fn validate_root(root: &str) -> Result<(), SynthError> {
    let invalid = |reason: &'static str| SynthError::InvalidUidRoot { root: root.to_owned(), reason };
    if root.is_empty() {
        return Err(invalid("it is empty"));
    }
    if root.len() > MAX_ROOT_LEN {
        return Err(invalid("it is longer than 24 characters"));
    }
    for component in root.split('.') {
        if component.is_empty() {
            return Err(invalid("it has an empty component"));
        }
        if !component.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("it has a character other than digits and dots"));
        }
        if component.len() > 1 && component.starts_with('0') {
            return Err(invalid("a component has a leading zero"));
        }
    }
    Ok(())
}

/// Whether `uid` is a syntactically valid DICOM UID (PS3.5 §9.1).
#[cfg(test)]
pub(super) fn is_valid_uid(uid: &str) -> bool {
    uid.len() <= 64
        && uid
            .split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && !(c.len() > 1 && c.starts_with('0')))
}

#[cfg(test)]
mod tests;

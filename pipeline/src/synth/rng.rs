//! The seeded random streams every part of a synthetic study draws from.

/// Independent random streams, so that adding a draw to one (say, a new
/// patient attribute) does not shift the values of the others.
#[derive(Clone, Copy)]
pub(super) enum Stream {
    Study = 1,
    Patient = 2,
    Pixels = 3,
    Lesion = 4,
}

/// A generator keyed by the seed, the stream and the indices of what it is for.
pub(super) fn stream_rng(seed: u64, stream: Stream, indices: &[u64]) -> fastrand::Rng {
    let mut key = splitmix64(seed ^ (stream as u64).rotate_left(32));
    for &index in indices {
        key = splitmix64(key ^ index);
    }
    fastrand::Rng::with_seed(key)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

use super::*;

/// Inverse of [`scramble`], to show that it is a bijection.
fn unscramble(mut x: u128) -> u128 {
    fn inverse(k: u128) -> u128 {
        // Newton iteration for the inverse modulo 2^128 of an odd number.
        let mut inv = k;
        for _ in 0..7 {
            inv = inv.wrapping_mul(2u128.wrapping_sub(k.wrapping_mul(inv)));
        }
        inv
    }
    fn unshift(y: u128, s: u32) -> u128 {
        let mut x = y;
        for _ in 0..(128 / s + 1) {
            x = y ^ (x >> s);
        }
        x
    }
    const K1: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;
    const K2: u128 = 0xbf58_476d_1ce4_e5b9_94d0_49bb_1331_11eb;
    x = unshift(x, 64);
    x = x.wrapping_mul(inverse(K2));
    x = unshift(x, 59);
    x = x.wrapping_mul(inverse(K1));
    unshift(x, 67)
}

#[test]
fn scramble_is_invertible() {
    for x in [0u128, 1, 42, u128::MAX, 1 << 64, 0xdead_beef << 70] {
        assert_eq!(unscramble(scramble(x)), x);
    }
}

#[test]
fn implementation_uid_is_valid() {
    assert!(is_valid_uid(IMPLEMENTATION_CLASS_UID));
    let suffix: u128 = IMPLEMENTATION_CLASS_UID["2.25.".len()..].parse().unwrap();
    assert!(suffix > 0);
    assert!(IMPLEMENTATION_VERSION_NAME.len() <= 16);
}

#[test]
fn roots_are_checked() {
    assert!(validate_root("2.25").is_ok());
    assert!(validate_root("1.2.826.0.1.3680043.10").is_ok());
    for bad in ["", "2..25", "2.25.", "2.025", "2.25a", "1.2.3.4.5.6.7.8.9.10.11.12.13"] {
        assert!(validate_root(bad).is_err(), "{bad:?} accepted");
    }
    let longest = synth_uid("1.2.840.10008.999.99999", u64::MAX, UidKind::Study, 0, 0, 0);
    assert!(is_valid_uid(&longest), "{longest}");
}

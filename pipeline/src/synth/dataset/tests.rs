use super::*;

#[test]
fn decimal_strings_are_short_and_trimmed() {
    assert_eq!(decimal_string(5.0), "5");
    assert_eq!(decimal_string(-0.00001), "0");
    assert_eq!(decimal_string(0.9765625), "0.9766");
    assert_eq!(decimal_string(-1024.0), "-1024");
    assert_eq!(decimal_string(-190.25), "-190.25");
}

#[test]
fn times_are_hhmmss() {
    assert_eq!(time_string(7 * 3600 + 5 * 60 + 9), "070509");
    assert_eq!(time_string(100_000), "235959");
}

use super::*;

#[test]
fn shifts_across_months_years_and_leap_days() {
    assert_eq!(shift_da(b"20240301", -1), b"20240229");
    assert_eq!(shift_da(b"20230101", -1), b"20221231");
    assert_eq!(shift_da(b"19700101", 0), b"19700101");
    assert_eq!(shift_da(b"20000229\\20000301", -366), b"19990228\\19990301 ".to_vec());
}

#[test]
fn partial_or_malformed_values_are_emptied() {
    assert!(shift_da(b"2024", -10).is_empty());
    assert!(shift_da(b"2024.01.01", -10).is_empty());
    assert!(shift_da(b"20241301", -10).is_empty());
    assert!(shift_dt(b"2024", -10).is_empty());
}

#[test]
fn keeps_the_time_of_a_datetime() {
    assert_eq!(shift_dt(b"20240101123000.5+0100", -1), b"20231231123000.5+0100 ".to_vec());
}

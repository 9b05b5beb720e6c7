use super::*;

#[test]
fn unix_times_become_da_and_tm_in_utc() {
    assert_eq!(utc_date_time(0), ("19700101".into(), "000000".into()));
    assert_eq!(utc_date_time(951_782_400_000 + 86_399_000), ("20000229".into(), "235959".into()));
    assert_eq!(utc_date_time(-1_000), ("19691231".into(), "235959".into()));
}

#[test]
fn da_and_tm_values_are_recognised() {
    assert!(is_da("20240131") && !is_da("2024013") && !is_da("2024-1-31"));
    assert!(is_tm("12") && is_tm("1230") && is_tm("123059.123456"));
    assert!(!is_tm("123") && !is_tm("1230.5") && !is_tm("123059.1234567"));
}

#[test]
fn dicom_dates_and_times_become_unix_milliseconds() {
    assert_eq!(unix_ms_of_date_time("19700101", ""), Some(0));
    assert_eq!(unix_ms_of_date_time("20261128", "071530.25"), Some(1_795_850_130_250));
    assert_eq!(unix_ms_of_date_time("20000229", "12"), Some(951_825_600_000));
    assert_eq!(unix_ms_of_date_time("2026112", "1200"), None);
    assert_eq!(unix_ms_of_date_time("20261328", ""), None);
    assert_eq!(unix_ms_of_date_time("20261128", "25"), None);
    assert_eq!(unix_ms_of_date_time("20261128", "1:00"), None);
}

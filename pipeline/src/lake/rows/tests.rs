use radstream_operators::pseudonymize::{DeidKey, Deidentifier, ProfileOptions};

use super::*;
use crate::lake::test_support::{event, uids, NOV_28, SERIES, SOP, STUDY};

#[test]
fn rows_carry_the_operators_pseudonyms_and_no_original_uid() {
    let uids = uids();
    let row = OutcomeRow::new(&event(NOV_28, true), 0, 17, &uids);
    let deid = Deidentifier::new(DeidKey::new("lake-test", vec![7u8; 32]).unwrap(), ProfileOptions::default());
    assert_eq!(row.study_uid_pseudo.as_deref(), Some(deid.pseudonymize_uid(STUDY.as_bytes()).as_str()));
    assert_eq!(row.sop_uid_pseudo.as_deref(), Some(deid.pseudonymize_uid(SOP.as_bytes()).as_str()));
    assert_eq!(row.series_uid_pseudo.as_deref(), Some(deid.pseudonymize_uid(SERIES.as_bytes()).as_str()));
    assert!(row.sop_uid_pseudo.as_deref().unwrap().starts_with("2.25."));
    assert_eq!((row.model_partition(), row.series_revision), ("ct-head-bleed", Some(2)));
    let text = format!("{row:?}");
    assert!(!text.contains(STUDY), "an original UID reached the row: {text}");

    let none = OutcomeRow::new(&event(NOV_28, false), 0, 18, &uids);
    assert_eq!((none.model_partition(), none.model_version.as_deref()), (NO_MODEL, None));
    assert!(none.findings.is_empty() && none.series_uid_pseudo.is_none());
}

#[test]
fn utc_dates() {
    assert_eq!(utc_date(0), "1970-01-01");
    assert_eq!(utc_date(NOV_28), "2026-11-28");
    assert_eq!(utc_date(NOV_28 + 14 * 3_600_000 - 1), "2026-11-28");
    assert_eq!(utc_date(NOV_28 + 14 * 3_600_000), "2026-11-29");
    assert_eq!(utc_date(-1), "1969-12-31");
}

use radstream_schemas::records::{Feedback, Verdict};

use super::*;
use crate::lake::test_support::{event, uids, NOV_28};

#[test]
fn file_keys_are_hive_partition_paths() {
    assert_eq!(
        outcome_file_key("lake/", "2026-11-28", "ct-head-bleed", 3, 10, 99),
        "lake/date=2026-11-28/model=ct-head-bleed/part-3-10-99.parquet"
    );
    assert_eq!(
        outcome_file_key("", "2026-11-28", "a/b c=1", 0, 1, 1),
        "date=2026-11-28/model=a%2Fb%20c%3D1/part-0-1-1.parquet"
    );
    assert_eq!(feedback_file_key("lake/", "2026-11-28", 0, 5, 6), "lake/feedback/date=2026-11-28/part-0-5-6.parquet");
}

#[test]
fn the_buffer_writes_one_file_per_date_model_and_partition() {
    let uids = uids();
    let mut buffer = LakeBuffer::default();
    buffer.push_outcome(OutcomeRow::new(&event(NOV_28, true), 0, 5, &uids));
    buffer.push_outcome(OutcomeRow::new(&event(NOV_28, true), 0, 9, &uids));
    buffer.push_outcome(OutcomeRow::new(&event(NOV_28, false), 0, 7, &uids));
    buffer.push_outcome(OutcomeRow::new(&event(NOV_28 + 86_400_000, true), 1, 3, &uids));
    buffer.push_feedback(FeedbackRow {
        feedback: Feedback {
            sop_uid_pseudo: "2.25.1".into(),
            model: "ct-head-bleed".into(),
            version: "0.1.0".into(),
            finding_code: "1386000".into(),
            verdict: Verdict::Reject,
            time_ms: NOV_28,
        },
        feedback_partition: 0,
        feedback_offset: 0,
    });
    assert_eq!(buffer.rows(), 5);
    let files = buffer.files("lake/").unwrap();
    let keys: Vec<(&str, &str, usize)> = files.iter().map(|f| (f.table, f.key.as_str(), f.rows)).collect();
    assert_eq!(
        keys,
        [
            ("outcomes", "lake/date=2026-11-28/model=ct-head-bleed/part-0-5-9.parquet", 2),
            ("outcomes", "lake/date=2026-11-28/model=none/part-0-7-7.parquet", 1),
            ("outcomes", "lake/date=2026-11-29/model=ct-head-bleed/part-1-3-3.parquet", 1),
            ("feedback", "lake/feedback/date=2026-11-28/part-0-0-0.parquet", 1),
        ]
    );
    // Deterministic: the same rows make the same bytes, so a re-write replaces a file by
    // its twin.
    assert_eq!(files[0].bytes, buffer.files("lake/").unwrap()[0].bytes);
}

#[test]
fn the_bound_is_reached_by_rows_or_by_bytes() {
    let uids = uids();
    let row = |offset| OutcomeRow::new(&event(NOV_28, true), 0, offset, &uids);
    let mut buffer = LakeBuffer::default();
    let by_rows = BufferLimit::rows(3);
    assert_eq!(by_rows.bytes, MAX_BUFFERED_BYTES);
    let one = row(0).approx_bytes();
    assert!(one > 200, "a row with a finding and two stages holds a few hundred bytes: {one}");
    let by_bytes = BufferLimit { rows: 1000, bytes: one * 2 };
    buffer.push_outcome(row(0));
    assert!(!by_rows.reached(&buffer) && !by_bytes.reached(&buffer));
    buffer.push_outcome(row(1));
    assert_eq!(buffer.bytes(), one * 2);
    assert!(!by_rows.reached(&buffer) && by_bytes.reached(&buffer));
    buffer.push_outcome(row(2));
    assert!(by_rows.reached(&buffer));
    assert_eq!(buffer.rows(), 3);
}

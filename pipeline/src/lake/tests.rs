use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use radstream_schemas::{ModelResults, OutcomeKind, SeriesRecord};

use super::*;

const STUDY: &str = "1.2.826.0.1.3680043.8.498.1";
const SOP: &str = "1.2.826.0.1.3680043.8.498.1.1.1";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.1.1";

fn uids() -> UidPseudonymizer {
    UidPseudonymizer::new(DeidKey::new("lake-test", vec![7u8; 32]).unwrap())
}

fn event(time_ms: i64, with_model: bool) -> OutcomeEvent {
    OutcomeEvent {
        outcome: OutcomeKind::Delivered,
        source_topic: "dicom.instances".into(),
        source_partition: 2,
        source_offset: 41,
        object_key: Some(format!("bucket/{STUDY}/{SOP}.dcm")),
        study_instance_uid: Some(STUDY.into()),
        sop_instance_uid: Some(SOP.into()),
        branch: Some("ct".into()),
        detail: None,
        end_to_end_ms: 812.5,
        pipeline_ms: 400.25,
        time_ms,
        results: with_model.then(|| ModelResults {
            model: "ct-head-bleed".into(),
            version: "0.1.0".into(),
            sha256: "ab".repeat(32),
            findings: vec![FindingRecord {
                label: "intracranial hemorrhage".into(),
                code_system: "SCT".into(),
                code: "1386000".into(),
                frame: 0,
                score: 0.93,
                critical: true,
            }],
            series: Some(SeriesRecord {
                series_instance_uid: SERIES.into(),
                revision: 2,
                reason: "expected_count".into(),
                instances: 1,
                expected: Some(1),
                slices: 1,
                flagged_instances: vec![SOP.into()],
            }),
        }),
        stages: vec![
            StageLatency { operator: "route".into(), ms: 1.5 },
            StageLatency { operator: "infer".into(), ms: 300.0 },
        ],
    }
}

// 2026-11-28T10:00:00Z
const NOV_28: i64 = 1_795_860_000_000;

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
fn dates_and_partition_paths() {
    assert_eq!(utc_date(0), "1970-01-01");
    assert_eq!(utc_date(NOV_28), "2026-11-28");
    assert_eq!(utc_date(NOV_28 + 14 * 3_600_000 - 1), "2026-11-28");
    assert_eq!(utc_date(NOV_28 + 14 * 3_600_000), "2026-11-29");
    assert_eq!(utc_date(-1), "1969-12-31");
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
fn parquet_round_trip() {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float32Type, Int64Type, TimestampMillisecondType};
    let uids = uids();
    let rows =
        [OutcomeRow::new(&event(NOV_28, true), 0, 1, &uids), OutcomeRow::new(&event(NOV_28 + 5, false), 0, 2, &uids)];
    let bytes = to_parquet(&outcome_batch(&rows).unwrap()).unwrap();
    assert!(!bytes.windows(STUDY.len()).any(|w| w == STUDY.as_bytes()), "an original UID is in the file");
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(batch.schema(), outcome_schema());
    assert_eq!(batch.num_rows(), 2);
    let col = |name: &str| batch.column_by_name(name).unwrap().clone();
    assert_eq!(col("time").as_primitive::<TimestampMillisecondType>().value(1), NOV_28 + 5);
    let sop = col("sop_uid_pseudo");
    assert_eq!(sop.as_string::<i32>().value(0), rows[0].sop_uid_pseudo.as_deref().unwrap());
    let version = col("model_version");
    assert_eq!((version.as_string::<i32>().value(0), version.is_null(1)), ("0.1.0", true));
    let findings = col("findings");
    let findings = findings.as_list::<i32>();
    assert_eq!((findings.value_length(0), findings.value_length(1)), (1, 0));
    let first = findings.value(0);
    let first = first.as_struct();
    assert_eq!(first.column_by_name("code").unwrap().as_string::<i32>().value(0), "1386000");
    assert_eq!(first.column_by_name("score").unwrap().as_primitive::<Float32Type>().value(0), 0.93);
    assert!(first.column_by_name("critical").unwrap().as_boolean().value(0));
    let stages = col("stages");
    let stages = stages.as_list::<i32>().value(0);
    let operators = stages.as_struct().column_by_name("operator").unwrap().as_string::<i32>().clone();
    assert_eq!(operators.iter().flatten().collect::<Vec<_>>(), ["route", "infer"]);
    assert_eq!(col("series_revision").as_primitive::<Int64Type>().value(0), 2);
    assert_eq!(col("outcome_offset").as_primitive::<Int64Type>().values().to_vec(), [1, 2]);
}

#[test]
fn the_agreement_ratio_is_accepts_over_all_verdicts() {
    let metrics = LakeMetrics::new();
    let verdict = |version: &str, verdict| Feedback {
        sop_uid_pseudo: "2.25.9".into(),
        model: "ct-head-bleed".into(),
        version: version.into(),
        finding_code: "1386000".into(),
        verdict,
        time_ms: NOV_28,
    };
    for v in [Verdict::Accept, Verdict::Accept, Verdict::Reject, Verdict::Modify] {
        metrics.verdict(&verdict("0.1.0", v));
    }
    metrics.verdict(&verdict("0.2.0", Verdict::Accept));
    let text = metrics.render();
    assert!(text.contains(r#"radstream_model_agreement_ratio{model="ct-head-bleed",version="0.1.0"} 0.5"#), "{text}");
    assert!(text.contains(r#"radstream_model_agreement_ratio{model="ct-head-bleed",version="0.2.0"} 1"#), "{text}");
    assert!(
        text.contains(r#"radstream_model_feedback_total{model="ct-head-bleed",verdict="accept",version="0.1.0"} 2"#),
        "{text}"
    );
}

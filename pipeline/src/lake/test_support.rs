//! What the lake's tests share: a pseudonymizer with a fixed key and an outcome event.

use radstream_operators::pseudonymize::DeidKey;
use radstream_schemas::{FindingRecord, ModelResults, OutcomeEvent, OutcomeKind, SeriesRecord, StageLatency};

use crate::lake::rows::UidPseudonymizer;

pub(crate) const STUDY: &str = "1.2.826.0.1.3680043.8.498.1";
pub(crate) const SOP: &str = "1.2.826.0.1.3680043.8.498.1.1.1";
pub(crate) const SERIES: &str = "1.2.826.0.1.3680043.8.498.1.1";

pub(crate) fn uids() -> UidPseudonymizer {
    UidPseudonymizer::new(DeidKey::new("lake-test", vec![7u8; 32]).unwrap())
}

pub(crate) fn event(time_ms: i64, with_model: bool) -> OutcomeEvent {
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
pub(crate) const NOV_28: i64 = 1_795_860_000_000;

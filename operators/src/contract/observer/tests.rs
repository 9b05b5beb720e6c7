use super::*;

#[test]
fn all_lists_every_variant_once_in_declaration_order() {
    // Implicit discriminants count the variants in declaration order: a variant missing from
    // `ALL`, listed twice or out of order shows as a gap here (except one appended last and not
    // listed, which the runtime's table test finds as a row that links to no listed variant).
    for (i, metric) in OperatorMetric::ALL.iter().enumerate() {
        assert_eq!(*metric as usize, i, "{metric:?}");
    }
}

#[test]
fn labels_and_values_agree_with_the_docs() {
    for metric in OperatorMetric::ALL {
        let labels = metric.labels();
        assert!(!labels.is_empty(), "{metric:?}");
        let mut unique = labels.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), labels.len(), "{metric:?} names a label twice");
    }
    assert_eq!(OperatorMetric::DestinationRequests.labels(), ["destination", "status_class"]);
    assert_eq!(OperatorMetric::ComputeBackend.labels(), ["operator", "backend", "reason"]);
    assert_eq!(OperatorMetric::SeriesRuns.labels(), ["model", "reason"]);
    assert_eq!(OperatorMetric::ResultObjects.value(), MetricValue::Increment);
    assert_eq!(OperatorMetric::SeriesHeld.value(), MetricValue::Delta);
    assert_eq!(OperatorMetric::ModelQueueDelay.value(), MetricValue::Observation);
}

#[test]
fn the_memory_recorder_keeps_recordings_in_order() {
    let recorder = MemoryRecorder::default();
    NoopRecorder.record(OperatorMetric::ResultObjects, &["sr"], 1.0);
    recorder.record(OperatorMetric::DestinationRetries, &["pacs"], 1.0);
    recorder.record(OperatorMetric::ResultObjects, &["seg"], 2.0);
    let all = recorder.recordings();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0],
        Recording { metric: OperatorMetric::DestinationRetries, labels: vec!["pacs".into()], value: 1.0 }
    );
    assert_eq!(recorder.of(OperatorMetric::ResultObjects), [all[1].clone()]);
}

#[test]
fn all_lists_every_variant() {
    use OperatorMetric::*;
    // An exhaustive match: a new variant does not compile here until it is named, and once it is
    // named the loop below fails until `ALL` lists it too (the runtime's table and the docs are
    // checked against `ALL`).
    let named = |metric: OperatorMetric| match metric {
        DestinationRequests
        | DestinationRequestDuration
        | DestinationRetries
        | ComputeBackend
        | ModelBatchImages
        | ModelRunDuration
        | ModelQueueDelay
        | SeriesRuns
        | SeriesHeld
        | ResultObjects => metric,
    };
    let every = [
        DestinationRequests,
        DestinationRequestDuration,
        DestinationRetries,
        ComputeBackend,
        ModelBatchImages,
        ModelRunDuration,
        ModelQueueDelay,
        SeriesRuns,
        SeriesHeld,
        ResultObjects,
    ];
    for metric in every {
        assert!(OperatorMetric::ALL.contains(&named(metric)), "{metric:?} is missing from OperatorMetric::ALL");
    }
    assert_eq!(OperatorMetric::ALL.len(), every.len(), "OperatorMetric::ALL lists a variant twice");
}

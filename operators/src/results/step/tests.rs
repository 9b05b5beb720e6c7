use super::*;

use dicom_dictionary_std::uids;
use dicom_object::FileMetaTableBuilder;
use radstream_schemas::{ObjectLocation, SeriesRecord};

use crate::contract::ModelIdentity;

const STUDY: &str = "1.2.826.0.1.3680043.8.498.31";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.32";

/// An instance of the synthetic CT series (header only: a report needs no pixels) with
/// `result` on it.
fn envelope(ticket: u64, sop: &str, result: Option<InferenceResult>) -> Envelope {
    let header = super::super::test_support::ct_header(STUDY, SERIES, sop);
    let file = header.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)).unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    let location = ObjectLocation { bucket: "b".into(), key: format!("{sop}.dcm"), size: None, etag: None };
    let mut envelope = Envelope::from_part10(ticket, location, Bytes::from(bytes)).unwrap();
    envelope.results = result.map(Arc::new);
    envelope
}

fn series_result(flagged: &[&str]) -> InferenceResult {
    InferenceResult {
        model: ModelIdentity { name: "ct-head-bleed-3d".into(), version: "0.1.0".into(), sha256: "0f".repeat(32) },
        scores: vec![vec![0.1]],
        findings: Vec::new(),
        series: Some(SeriesRecord {
            series_instance_uid: SERIES.into(),
            revision: 1,
            reason: "expected_count".into(),
            instances: 2,
            expected: Some(2),
            slices: 2,
            flagged_instances: flagged.iter().map(|s| s.to_string()).collect(),
        }),
        masks: None,
        mask_size: None,
    }
}

#[tokio::test]
async fn a_series_gets_one_report_built_once_and_carried_by_each_instance() {
    let recorder = Arc::new(crate::contract::MemoryRecorder::default());
    let mut step = ResultsConfig::default().build().unwrap().with_observer(recorder.clone());
    let result = series_result(&[]);
    let batch = vec![envelope(1, "2.25.41", Some(result.clone())), envelope(2, "2.25.42", Some(result))];
    let done = step.process_batch(batch).await;
    let sets: Vec<Arc<ResultSet>> = done
        .iter()
        .map(|p| {
            assert!(matches!(p.outcome, Outcome::Forward), "{:?}", p.outcome);
            Arc::clone(p.envelope.outputs.as_ref().unwrap())
        })
        .collect();
    for set in &sets {
        assert_eq!(set.objects.len(), 1, "a negative series: its report alone");
        assert_eq!(set.objects[0].kind, ResultKind::Sr);
        assert_eq!(set.series, Some((SERIES.to_string(), 1)));
    }
    let (a, b) = (&sets[0].objects[0], &sets[1].objects[0]);
    assert_eq!(a.sop_instance_uid, b.sop_instance_uid);
    assert_eq!(a.bytes.as_ptr(), b.bytes.as_ptr(), "built once, shared");
    assert!(dicom_object::from_reader(&a.bytes[128..]).is_ok());
    let built: Vec<_> = recorder.recordings().into_iter().map(|r| (r.metric, r.labels, r.value)).collect();
    assert_eq!(built, [(OperatorMetric::ResultObjects, vec!["sr".to_string()], 1.0)], "counted once, when built");
}

#[tokio::test]
async fn negatives_are_dropped_when_asked_and_a_missing_result_is_a_config_error() {
    let mut step = ResultsConfig { negatives: Negatives::Drop, ..ResultsConfig::default() }.build().unwrap();
    let done =
        step.process_batch(vec![envelope(1, "2.25.41", Some(series_result(&[]))), envelope(2, "2.25.42", None)]).await;
    assert!(matches!(&done[0].outcome, Outcome::Drop { rule } if rule == NO_FINDINGS_RULE), "{:?}", done[0].outcome);
    assert!(done[0].envelope.outputs.is_none());
    let Outcome::Fail(error) = &done[1].outcome else { panic!("{:?}", done[1].outcome) };
    assert_eq!(error.class, ErrorClass::Config);
    assert!(error.reason.contains("2.25.42.dcm") && error.reason.contains("infer"), "{}", error.reason);
    assert!(!error.reason.contains("SYNTH"), "no patient data: {}", error.reason);
}

#[test]
fn nothing_to_make_is_a_config_error() {
    let none = ResultsConfig { sr: false, seg: false, overlay: false, negatives: Negatives::Report };
    assert_eq!(none.validate().unwrap_err().key, "sr");
    let config: ResultsConfig = toml::from_str("negatives = \"drop\"\noverlay = false").unwrap();
    assert!(config.sr && config.seg && !config.overlay && config.negatives == Negatives::Drop);
    assert!(toml::from_str::<ResultsConfig>("negative = \"drop\"").is_err());
}

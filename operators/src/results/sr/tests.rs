//! Tests of the TID 1500 document: its content, its determinism, and what external readers
//! (dciodvfy, pydicom, highdicom) say about it.

use radstream_schemas::SeriesRecord;

use super::*;
use crate::contract::{Code, CodeSystem, ModelIdentity};
use crate::parse_header;
use crate::results::test_support::{self, assert_no_dciodvfy_errors, items, txt};

const STUDY: &str = "1.2.826.0.1.3680043.8.498.11";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.12";
const SOP: &str = "1.2.826.0.1.3680043.8.498.13";
/// 2024-01-31T10:00:00Z.
const EVENT_TIME_MS: i64 = 1_706_695_200_000;

fn ct_header() -> InMemDicomObject {
    test_support::ct_header(STUDY, SERIES, SOP)
}

fn model(version: &str) -> ModelIdentity {
    ModelIdentity { name: "ct-head-bleed".into(), version: version.into(), sha256: "0f".repeat(32) }
}

fn bleed(frame: usize) -> Finding {
    Finding {
        label: "intracranial hemorrhage".into(),
        code: Code { system: CodeSystem::SnomedCt, value: "1386000".into(), meaning: "Intracranial hemorrhage".into() },
        frame,
        score: 0.9375,
        threshold: 0.5,
        critical: true,
    }
}

fn instance_result(version: &str, findings: Vec<Finding>) -> InferenceResult {
    InferenceResult {
        model: model(version),
        scores: vec![vec![0.9375]],
        findings,
        series: None,
        masks: None,
        mask_size: None,
    }
}

fn series_instances(n: usize) -> Vec<InstanceRef> {
    (1..=n)
        .map(|i| InstanceRef {
            sop_class_uid: uids::CT_IMAGE_STORAGE.into(),
            sop_instance_uid: format!("1.2.826.0.1.3680043.8.498.20.{i}"),
        })
        .collect()
}

fn series_result(instances: &[InstanceRef]) -> InferenceResult {
    InferenceResult {
        model: model("2.0.0"),
        scores: vec![vec![0.75]],
        findings: vec![Finding { score: 0.75, critical: false, ..bleed(0) }],
        series: Some(SeriesRecord {
            series_instance_uid: SERIES.into(),
            revision: 1,
            reason: "expected_count".into(),
            instances: instances.len(),
            expected: Some(instances.len()),
            slices: instances.len(),
            flagged_instances: vec![instances[1].sop_instance_uid.clone(), instances[2].sop_instance_uid.clone()],
        }),
        masks: None,
        mask_size: None,
    }
}

fn bytes_of(doc: &SrDocument) -> Vec<u8> {
    doc.to_bytes().unwrap()
}

/// Every content item of the tree, depth first.
fn all_content(obj: &InMemDicomObject) -> Vec<&InMemDicomObject> {
    let mut out = Vec::new();
    if let Ok(children) = obj.element(tags::CONTENT_SEQUENCE) {
        for child in children.items().unwrap() {
            out.push(child);
            out.extend(all_content(child));
        }
    }
    out
}

fn concept_value(item: &InMemDicomObject, tag: Tag) -> Option<String> {
    item.element(tag).ok()?.items()?.first().and_then(|c| txt(c, tags::CODE_VALUE))
}

/// Referenced SOP Instance UIDs (with frame numbers) of the IMAGE items named `name`.
fn image_refs(root: &InMemDicomObject, name: &str) -> Vec<(String, Option<String>)> {
    all_content(root)
        .into_iter()
        .filter(|i| txt(i, tags::VALUE_TYPE).as_deref() == Some("IMAGE"))
        .filter(|i| concept_value(i, tags::CONCEPT_NAME_CODE_SEQUENCE).as_deref() == Some(name))
        .map(|i| {
            let r = &items(i, tags::REFERENCED_SOP_SEQUENCE)[0];
            (txt(r, tags::REFERENCED_SOP_INSTANCE_UID).unwrap(), txt(r, tags::REFERENCED_FRAME_NUMBER))
        })
        .collect()
}

#[test]
fn one_finding_sr_references_the_source_and_passes_dciodvfy() {
    let doc = build_sr(&ct_header(), &instance_result("1.0.0", vec![bleed(0)]), &[], EVENT_TIME_MS).unwrap();
    let bytes = bytes_of(&doc);
    let sr = parse_header(&bytes).unwrap();
    assert_eq!(sr.meta().media_storage_sop_class_uid(), uids::COMPREHENSIVE3_DSR_STORAGE);
    assert_eq!(sr.meta().transfer_syntax(), uids::EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(txt(&sr, tags::SOP_INSTANCE_UID), Some(doc.sop_instance_uid.clone()));
    assert_eq!(txt(&sr, tags::SERIES_INSTANCE_UID), Some(doc.series_instance_uid.clone()));
    assert_eq!(txt(&sr, tags::STUDY_INSTANCE_UID).as_deref(), Some(STUDY));
    assert_eq!(txt(&sr, tags::PATIENT_ID).as_deref(), Some("SYNTH-0001"));
    assert_eq!(txt(&sr, tags::ACCESSION_NUMBER).as_deref(), Some("SYNTH-ACC-1"));
    assert_eq!(txt(&sr, tags::MODALITY).as_deref(), Some("SR"));
    assert_eq!(txt(&sr, tags::SERIES_NUMBER).as_deref(), Some("7003"));
    assert_eq!(txt(&sr, tags::INSTANCE_NUMBER).as_deref(), Some("17"));
    assert_eq!(txt(&sr, tags::SERIES_DESCRIPTION).as_deref(), Some("AI results: ct-head-bleed 1.0.0"));
    assert_eq!(txt(&sr, tags::CONTENT_DATE).as_deref(), Some("20240131"));
    assert_eq!(txt(&sr, tags::CONTENT_TIME).as_deref(), Some("100000"));
    assert_eq!(txt(&sr, tags::VERIFICATION_FLAG).as_deref(), Some("UNVERIFIED"));

    let evidence = &items(&sr, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE)[0];
    assert_eq!(txt(evidence, tags::STUDY_INSTANCE_UID).as_deref(), Some(STUDY));
    let series = &items(evidence, tags::REFERENCED_SERIES_SEQUENCE)[0];
    assert_eq!(txt(series, tags::SERIES_INSTANCE_UID).as_deref(), Some(SERIES));
    let sop = &items(series, tags::REFERENCED_SOP_SEQUENCE)[0];
    assert_eq!(txt(sop, tags::REFERENCED_SOP_INSTANCE_UID).as_deref(), Some(SOP));

    let content = all_content(&sr);
    let find = |name: &str| {
        content.iter().find(|i| concept_value(i, tags::CONCEPT_NAME_CODE_SEQUENCE).as_deref() == Some(name))
    };
    assert_eq!(find("121005").and_then(|i| concept_value(i, tags::CONCEPT_CODE_SEQUENCE)).as_deref(), Some("121007"));
    assert_eq!(find("121012").and_then(|i| txt(i, tags::UID)), Some(device_observer_uid(&model("1.0.0"))));
    assert_eq!(find("121013").and_then(|i| txt(i, tags::TEXT_VALUE)).as_deref(), Some("ct-head-bleed"));
    assert_eq!(find("121014").and_then(|i| txt(i, tags::TEXT_VALUE)).as_deref(), Some("radstream"));
    assert_eq!(find("111003").and_then(|i| txt(i, tags::TEXT_VALUE)).as_deref(), Some("1.0.0"));
    assert_eq!(
        find("121058").and_then(|i| concept_value(i, tags::CONCEPT_CODE_SEQUENCE)).as_deref(),
        Some("363679005")
    );
    assert_eq!(find("121071").and_then(|i| concept_value(i, tags::CONCEPT_CODE_SEQUENCE)).as_deref(), Some("1386000"));
    assert_eq!(
        find("1386000").and_then(|i| concept_value(i, tags::CONCEPT_CODE_SEQUENCE)).as_deref(),
        Some("52101004")
    );
    let probability = find("122157").expect("a probability");
    let measured = &items(probability, tags::MEASURED_VALUE_SEQUENCE)[0];
    assert_eq!(txt(measured, tags::NUMERIC_VALUE).as_deref(), Some("0.9375"));
    assert_eq!(image_refs(&sr, "260753009"), vec![(SOP.to_string(), None)], "image library");
    assert_eq!(image_refs(&sr, "121112"), vec![(SOP.to_string(), None)], "the finding's image");

    assert_no_dciodvfy_errors("SR", "Comprehensive3DSR", "one-finding", &bytes);
}

/// What the Python readers check in each document: `finding` (one group with the bleed, its
/// probability and qualitative evaluation), `negative` (one group finding "Negative"), `series`
/// (one group with the bleed on two flagged instances).
const READERS_SCRIPT: &str = r#"
import sys
import pydicom
path, study, mode = sys.argv[1:4]
ds = pydicom.dcmread(path)
assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34", ds.SOPClassUID
assert ds.StudyInstanceUID == study
try:
    import highdicom as hd
except ImportError:
    print("highdicom: not installed")
    sys.exit(0)
sr = hd.sr.srread(path)
assert isinstance(sr, hd.sr.Comprehensive3DSR), type(sr)
report = sr.content
observer = report.get_observer_contexts()[0]
assert observer.observer_type.value == "121007", observer.observer_type
assert observer.observer_identifying_attributes.name == "ct-head-bleed"
groups = report.get_image_measurement_groups()
assert len(groups) == 1, groups
group = groups[0]
evaluations = [(e.name.value, e.value.value) for e in group.get_qualitative_evaluations()]
sources = [i.referenced_sop_instance_uid for i in group.source_images]
if mode == "negative":
    assert group.finding_type.value == "260385009", group.finding_type
else:
    assert group.finding_type.value == "1386000", group.finding_type
    assert ("1386000", "52101004") in evaluations, evaluations
    probability = group.get_measurements()[0]
    assert probability.name.value == "122157", probability.name
    expected = 0.9375 if mode == "finding" else 0.75
    assert abs(probability.value - expected) < 1e-9, probability.value
    assert len(sources) == (1 if mode == "finding" else 2), sources
print("highdicom:", mode, "finding", group.finding_type.value, "evaluations", evaluations, "sources", len(sources))
"#;

/// pydicom reads the document; highdicom, where installed (pip install highdicom), parses it
/// as TID 1500 and finds the model, the finding and its probability.
fn assert_python_readers_agree(mode: &str, bytes: &[u8]) {
    test_support::assert_python_readers_agree(
        "SR",
        mode,
        bytes,
        READERS_SCRIPT,
        &[STUDY.to_string(), mode.to_string()],
    );
}

#[test]
fn pydicom_and_highdicom_read_it() {
    let header = ct_header();
    let finding = build_sr(&header, &instance_result("1.0.0", vec![bleed(0)]), &[], EVENT_TIME_MS).unwrap();
    assert_python_readers_agree("finding", &bytes_of(&finding));
    let negative = build_sr(&header, &instance_result("1.0.0", vec![]), &[], EVENT_TIME_MS).unwrap();
    assert_python_readers_agree("negative", &bytes_of(&negative));
    let instances = series_instances(5);
    let series = build_sr(&header, &series_result(&instances), &instances, EVENT_TIME_MS).unwrap();
    assert_python_readers_agree("series", &bytes_of(&series));
}

#[test]
fn same_inputs_same_bytes_other_version_other_uids() {
    let header = ct_header();
    let a = build_sr(&header, &instance_result("1.0.0", vec![bleed(0)]), &[], EVENT_TIME_MS).unwrap();
    let b = build_sr(&header, &instance_result("1.0.0", vec![bleed(0)]), &[], EVENT_TIME_MS).unwrap();
    assert_eq!(bytes_of(&a), bytes_of(&b), "a replay gives the same bytes");
    assert_eq!((&a.series_instance_uid, &a.sop_instance_uid), (&b.series_instance_uid, &b.sop_instance_uid));
    assert!(a.sop_instance_uid.starts_with("2.25.") && a.sop_instance_uid.len() <= 64);
    assert_ne!(a.sop_instance_uid, a.series_instance_uid);

    let other = build_sr(&header, &instance_result("1.0.1", vec![bleed(0)]), &[], EVENT_TIME_MS).unwrap();
    assert_ne!(a.series_instance_uid, other.series_instance_uid);
    assert_ne!(a.sop_instance_uid, other.sop_instance_uid);

    // The same model on another instance of the series: same result series, another document.
    let mut next = ct_header();
    next.put(text(tags::SOP_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.14"));
    let c = build_sr(&next, &instance_result("1.0.0", vec![bleed(0)]), &[], EVENT_TIME_MS).unwrap();
    assert_eq!(a.series_instance_uid, c.series_instance_uid);
    assert_ne!(a.sop_instance_uid, c.sop_instance_uid);
}

#[test]
fn no_findings_sr_says_negative_and_passes_dciodvfy() {
    let doc = build_sr(&ct_header(), &instance_result("1.0.0", vec![]), &[], EVENT_TIME_MS).unwrap();
    let bytes = bytes_of(&doc);
    let sr = parse_header(&bytes).unwrap();
    let negative = all_content(&sr)
        .into_iter()
        .find(|i| concept_value(i, tags::CONCEPT_NAME_CODE_SEQUENCE).as_deref() == Some("121071"))
        .and_then(|i| concept_value(i, tags::CONCEPT_CODE_SEQUENCE));
    assert_eq!(negative.as_deref(), Some("260385009"));
    assert_eq!(image_refs(&sr, "121112"), vec![(SOP.to_string(), None)]);
    assert_no_dciodvfy_errors("SR", "Comprehensive3DSR", "no-findings", &bytes);
}

#[test]
fn series_sr_references_every_instance_and_passes_dciodvfy() {
    let instances = series_instances(5);
    let mut header = ct_header();
    header.put(text(tags::SOP_INSTANCE_UID, VR::UI, &instances[0].sop_instance_uid));
    let result = series_result(&instances);
    let doc = build_sr(&header, &result, &instances, EVENT_TIME_MS).unwrap();
    let bytes = bytes_of(&doc);
    let sr = parse_header(&bytes).unwrap();
    assert_eq!(txt(&sr, tags::INSTANCE_NUMBER).as_deref(), Some("1"));
    let library: Vec<String> = image_refs(&sr, "260753009").into_iter().map(|(uid, _)| uid).collect();
    let all: Vec<String> = instances.iter().map(|i| i.sop_instance_uid.clone()).collect();
    assert_eq!(library, all, "the image library holds the whole series, once each");
    let flagged: Vec<String> = image_refs(&sr, "121112").into_iter().map(|(uid, _)| uid).collect();
    assert_eq!(flagged, all[1..3].to_vec(), "the finding references the flagged instances");
    let evidence = &items(&sr, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE)[0];
    let series = &items(evidence, tags::REFERENCED_SERIES_SEQUENCE)[0];
    assert_eq!(items(series, tags::REFERENCED_SOP_SEQUENCE).len(), 5);

    // Another instance of the series carrying the same series result makes the same document.
    let mut other = ct_header();
    other.put(text(tags::SOP_INSTANCE_UID, VR::UI, &instances[3].sop_instance_uid));
    let again = build_sr(&other, &result, &instances, EVENT_TIME_MS).unwrap();
    assert_eq!(again.sop_instance_uid, doc.sop_instance_uid);
    assert_eq!(bytes_of(&again), bytes, "one document per series result");

    assert_no_dciodvfy_errors("SR", "Comprehensive3DSR", "series", &bytes);
}

#[test]
fn multi_frame_findings_name_their_frame() {
    let mut header = ct_header();
    header.put(text(tags::SOP_CLASS_UID, VR::UI, uids::ENHANCED_CT_IMAGE_STORAGE));
    header.put(text(tags::NUMBER_OF_FRAMES, VR::IS, "40"));
    let doc = build_sr(&header, &instance_result("1.0.0", vec![bleed(6)]), &[], EVENT_TIME_MS).unwrap();
    let bytes = bytes_of(&doc);
    let sr = parse_header(&bytes).unwrap();
    assert_eq!(image_refs(&sr, "121112"), vec![(SOP.to_string(), Some("7".to_string()))]);
    assert_no_dciodvfy_errors("SR", "Comprehensive3DSR", "multi-frame", &bytes);
}

#[test]
fn bad_inputs_are_errors_without_patient_data() {
    let mut header = ct_header();
    header.remove_element(tags::SOP_INSTANCE_UID);
    let error = build_sr(&header, &instance_result("1.0.0", vec![bleed(0)]), &[], EVENT_TIME_MS).unwrap_err();
    assert!(matches!(error, SrError::MissingAttribute("SOPInstanceUID")), "{error}");
    assert!(!error.to_string().contains("SYNTH"));
    let nan = Finding { score: f32::NAN, ..bleed(0) };
    let error = build_sr(&ct_header(), &instance_result("1.0.0", vec![nan]), &[], EVENT_TIME_MS).unwrap_err();
    assert!(matches!(error, SrError::NonFiniteScore { index: 0 }), "{error}");
}

#[test]
fn value_helpers() {
    assert_eq!(decimal_string(0.9375), "0.9375");
    assert_eq!(decimal_string(1.0), "1.0");
    assert_eq!(decimal_string(0.0), "0.0");
    assert_eq!(decimal_string(1e-9), "0.0");
    assert!(decimal_string(-3.4e38).len() <= 16, "{}", decimal_string(-3.4e38));
    assert_eq!(long_string(&"x".repeat(70)).len(), 64);
    assert_eq!(utc_date_time(0), ("19700101".into(), "000000".into()));
    assert_eq!(utc_date_time(-1_000), ("19691231".into(), "235959".into()));
}

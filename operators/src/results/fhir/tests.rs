//! Tests of the FHIR bundle: its content, its determinism, its references, and what the
//! official FHIR R4 JSON schema says about it.

use std::process::Command;

use radstream_schemas::SeriesRecord;

use super::*;
use crate::contract::Finding;

const STUDY: &str = "1.2.826.0.1.3680043.8.498.11";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.12";
const SOP: &str = "1.2.826.0.1.3680043.8.498.13";
const SR_SOP: &str = "2.25.1234567890";
const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const PATIENT: &str = "Patient/pseudo-7f3a9c";
/// 2024-01-31T10:00:00.250Z.
const EVENT_TIME_MS: i64 = 1_706_695_200_250;

fn model(version: &str) -> ModelIdentity {
    ModelIdentity { name: "ct-head-bleed".into(), version: version.into(), sha256: "ab".repeat(32) }
}

fn finding(label: &str, system: CodeSystem, value: &str, score: f32, critical: bool) -> Finding {
    Finding {
        label: label.into(),
        code: Code { system, value: value.into(), meaning: label.into() },
        frame: 0,
        score,
        threshold: 0.5,
        critical,
    }
}

fn result(model: &ModelIdentity, findings: Vec<Finding>, series: Option<SeriesRecord>) -> InferenceResult {
    InferenceResult {
        model: model.clone(),
        scores: vec![findings.iter().map(|f| f.score).collect()],
        findings,
        series,
        masks: None,
        mask_size: None,
    }
}

fn hemorrhage(critical: bool) -> Finding {
    finding("intracranial hemorrhage", CodeSystem::SnomedCt, "1386000", 0.9, critical)
}

fn instance() -> InstanceRef {
    InstanceRef { sop_class_uid: CT_IMAGE_STORAGE.into(), sop_instance_uid: SOP.into() }
}

fn head() -> Code {
    Code { system: CodeSystem::SnomedCt, value: "69536005".into(), meaning: "Head".into() }
}

fn study<'a>(
    model: &'a ModelIdentity,
    results: &'a [SourceResult<'a>],
    body_site: Option<&'a Code>,
) -> StudyResults<'a> {
    StudyResults {
        study_instance_uid: STUDY,
        patient: PatientRef::Reference(PATIENT),
        model,
        results,
        body_site,
        time_ms: EVENT_TIME_MS,
    }
}

fn entries(bundle: &FhirBundle) -> &Vec<Value> {
    bundle.bundle["entry"].as_array().unwrap()
}

fn resources<'a>(bundle: &'a FhirBundle, resource_type: &str) -> Vec<&'a Value> {
    entries(bundle).iter().map(|e| &e["resource"]).filter(|r| r["resourceType"] == resource_type).collect()
}

/// Every `reference` anywhere under `value`.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("reference", Value::String(r)) => out.push(r.clone()),
                    _ => references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Every `urn:uuid:` reference names an entry's fullUrl; the others are the patient.
fn assert_references_resolve(bundle: &FhirBundle) {
    let full_urls: Vec<&str> = entries(bundle).iter().map(|e| e["fullUrl"].as_str().unwrap()).collect();
    let mut unique = full_urls.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), full_urls.len(), "fullUrls are not unique: {full_urls:?}");
    let mut refs = Vec::new();
    references(&bundle.bundle, &mut refs);
    assert!(!refs.is_empty());
    for r in &refs {
        if r.starts_with("urn:uuid:") {
            assert!(full_urls.contains(&r.as_str()), "{r} is no entry of the bundle");
        } else {
            assert_eq!(r, PATIENT);
        }
    }
}

fn assert_study_identifier(bundle: &FhirBundle) {
    let studies = resources(bundle, "ImagingStudy");
    assert_eq!(studies.len(), 1);
    assert_eq!(studies[0]["identifier"][0]["system"], "urn:dicom:uid");
    assert_eq!(studies[0]["identifier"][0]["value"], format!("urn:oid:{STUDY}"));
    let study_entry = entries(bundle).iter().find(|e| e["resource"]["resourceType"] == "ImagingStudy").unwrap();
    assert_eq!(study_entry["request"]["method"], "POST");
    assert_eq!(study_entry["request"]["ifNoneExist"], format!("identifier=urn:dicom:uid|urn:oid:{STUDY}"));
}

fn assert_well_formed(bundle: &FhirBundle) {
    assert_eq!(bundle.bundle["resourceType"], "Bundle");
    assert_eq!(bundle.bundle["type"], "transaction");
    for entry in entries(bundle) {
        let full_url = entry["fullUrl"].as_str().unwrap();
        let uuid = full_url.strip_prefix("urn:uuid:").unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "5", "version 5 layout: {uuid}");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "RFC variant: {uuid}");
        let method = entry["request"]["method"].as_str().unwrap();
        let url = entry["request"]["url"].as_str().unwrap();
        let resource_type = entry["resource"]["resourceType"].as_str().unwrap();
        if method == "PUT" {
            // Conditional update on the resource's own identifier, which is not its fullUrl: a
            // server that rewrites the fullUrl in every string (Medplum) would break it.
            let own = &entry["resource"]["identifier"][0];
            assert_eq!(own["system"], "urn:ietf:rfc:3986");
            assert_eq!(url, format!("{resource_type}?identifier=urn:ietf:rfc:3986|{}", own["value"].as_str().unwrap()));
            assert!(
                !serde_json::to_string(&entry["resource"]).unwrap().contains(full_url),
                "{full_url} in {resource_type}"
            );
        } else {
            assert_eq!((method, url), ("POST", "ImagingStudy"));
        }
    }
    assert_study_identifier(bundle);
    assert_references_resolve(bundle);
}

/// Validates each bundle against the schema's whole (its `oneOf` of every resource); where that
/// fails, validates each entry's resource against its own definition, for a message that says
/// what is wrong.
const SCHEMA_SCRIPT: &str = r##"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft6Validator)
print("validator:", cls.__name__)
failed = False
for path in sys.argv[2:]:
    bundle = json.load(open(path))
    if cls(schema).is_valid(bundle):
        print("valid:", path)
        continue
    failed = True
    print("INVALID:", path)
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        sub = dict(schema)
        sub.pop("oneOf", None)
        sub["$ref"] = "#/definitions/" + resource.get("resourceType", "?")
        for error in cls(sub).iter_errors(resource):
            print("  ", resource.get("resourceType"), list(error.absolute_path), error.message[:300])
sys.exit(1 if failed else 0)
"##;

/// What the FHIR R4 JSON schema that `infra/stack.sh install` puts in
/// `RADSTREAM_TEST_FHIR_R4_SCHEMA` says of the bundles: whether it accepts all of them, and its
/// report; `None` (a skip through `radstream_test_gate`) where the schema or Python's jsonschema
/// is not there.
fn schema_check(bundles: &[(&str, &Value)]) -> Option<(bool, String)> {
    let Some(schema) = std::env::var_os("RADSTREAM_TEST_FHIR_R4_SCHEMA").filter(|s| !s.is_empty()) else {
        radstream_test_gate::missing("the FHIR R4 JSON schema (RADSTREAM_TEST_FHIR_R4_SCHEMA) to validate the bundles");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = bundles
        .iter()
        .map(|(name, bundle)| {
            let path = dir.path().join(format!("{name}.json"));
            std::fs::write(&path, serde_json::to_vec(bundle).unwrap()).unwrap();
            path
        })
        .collect();
    let python = std::env::var("RADSTREAM_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = match Command::new(&python).arg("-c").arg(SCHEMA_SCRIPT).arg(&schema).args(&paths).output() {
        Ok(output) => output,
        Err(e) => {
            radstream_test_gate::missing(&format!("{python} to validate the bundles (it does not run: {e})"));
            return None;
        }
    };
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if !radstream_test_gate::needs(
        &format!("Python's jsonschema module for {python} to validate the bundles"),
        !report.contains("No module named 'jsonschema'"),
    ) {
        return None;
    }
    Some((output.status.success(), report))
}

fn assert_schema_valid(bundles: &[(&str, &FhirBundle)]) {
    let bundles: Vec<(&str, &Value)> = bundles.iter().map(|(name, b)| (*name, &b.bundle)).collect();
    if let Some((valid, report)) = schema_check(&bundles) {
        assert!(valid, "the FHIR R4 schema rejects a bundle:\n{report}");
        eprint!("{report}");
    }
}

#[test]
fn a_critical_finding_is_an_observation_the_report_concludes() {
    let m = model("1.0.0");
    let inst = instance();
    let r = result(&m, vec![hemorrhage(true)], None);
    let sources = [SourceResult {
        series_instance_uid: SERIES,
        modality: Some("CT"),
        instance: Some(&inst),
        result: &r,
        sr_sop_instance_uid: Some(SR_SOP),
    }];
    let site = head();
    let bundle = build_fhir_bundle(&study(&m, &sources, Some(&site))).unwrap();
    assert_well_formed(&bundle);
    let types: Vec<&str> = entries(&bundle).iter().map(|e| e["resource"]["resourceType"].as_str().unwrap()).collect();
    assert_eq!(types, ["ImagingStudy", "Device", "Observation", "DiagnosticReport"]);

    let study = resources(&bundle, "ImagingStudy")[0];
    assert_eq!(study["status"], "available");
    assert_eq!(study["subject"]["reference"], PATIENT);
    assert_eq!(study["series"][0]["uid"], SERIES);
    assert_eq!(study["series"][0]["modality"]["code"], "CT");
    assert_eq!(study["series"][0]["instance"][0]["uid"], SOP);
    assert_eq!(study["series"][0]["instance"][0]["sopClass"]["code"], format!("urn:oid:{CT_IMAGE_STORAGE}"));

    let device = resources(&bundle, "Device")[0];
    assert_eq!(device["deviceName"][0]["name"], "ct-head-bleed");
    assert_eq!(device["version"][0]["value"], "1.0.0");
    assert_eq!(device["identifier"][1]["value"], m.sha256);

    let obs = resources(&bundle, "Observation")[0];
    assert_eq!(obs["status"], "preliminary");
    assert_eq!(obs["code"]["coding"][0]["system"], "http://snomed.info/sct");
    assert_eq!(obs["code"]["coding"][0]["code"], "1386000");
    assert_eq!(obs["valueQuantity"]["value"], json!(0.9));
    assert_eq!(obs["valueQuantity"]["system"], "http://unitsofmeasure.org");
    assert_eq!(obs["valueQuantity"]["code"], "1");
    let interpretation: Vec<&Value> =
        obs["interpretation"].as_array().unwrap().iter().map(|c| &c["coding"][0]["code"]).collect();
    assert_eq!(interpretation, [&json!("POS"), &json!("AA")]);
    assert_eq!(obs["bodySite"]["coding"][0]["code"], "69536005");
    assert_eq!(obs["subject"]["reference"], PATIENT);
    assert_eq!(obs["issued"], "2024-01-31T10:00:00.250Z");
    // The SR's measurement group of the finding, by its Tracking UID.
    assert_eq!(obs["identifier"][1]["value"], format!("urn:oid:{}", tracking_uid(SR_SOP, 0, &m)));

    let report = resources(&bundle, "DiagnosticReport")[0];
    assert_eq!(report["status"], "preliminary");
    assert_eq!(report["code"]["coding"][0]["code"], "18748-4");
    assert_eq!(report["conclusionCode"][0]["coding"][0]["code"], "1386000");
    assert_eq!(report["result"].as_array().unwrap().len(), 1);
    assert_eq!(report["identifier"][1], json!({ "system": "urn:dicom:uid", "value": format!("urn:oid:{SR_SOP}") }));
    assert_eq!(report["extension"][0]["url"], AI_DEVICE_EXTENSION);
    assert!(report["conclusion"].as_str().unwrap().contains("critical"));

    assert_schema_valid(&[("critical", &bundle)]);
}

#[test]
fn no_findings_give_a_negative_report_without_observations() {
    let m = model("1.0.0");
    let inst = instance();
    let r = result(&m, vec![], None);
    let sources = [SourceResult {
        series_instance_uid: SERIES,
        modality: None,
        instance: Some(&inst),
        result: &r,
        sr_sop_instance_uid: None,
    }];
    let bundle = build_fhir_bundle(&study(&m, &sources, None)).unwrap();
    assert_well_formed(&bundle);
    assert!(resources(&bundle, "Observation").is_empty());
    // Without a known modality the series cannot be listed (R4 requires it).
    assert!(resources(&bundle, "ImagingStudy")[0].get("series").is_none());
    let report = resources(&bundle, "DiagnosticReport")[0];
    assert_eq!(report["conclusionCode"], json!([concept(SNOMED, "260385009", "Negative")]));
    assert!(report.get("result").is_none());
    assert_eq!(report["identifier"].as_array().unwrap().len(), 1);
    assert_schema_valid(&[("negative", &bundle)]);
}

#[test]
fn a_series_result_lists_the_series_and_every_finding() {
    let m = model("2.1.0");
    let record = SeriesRecord {
        series_instance_uid: SERIES.into(),
        revision: 2,
        reason: "quiet_time".into(),
        instances: 40,
        expected: None,
        slices: 40,
        flagged_instances: vec![SOP.into()],
    };
    let r = result(
        &m,
        vec![hemorrhage(false), finding("mass effect", CodeSystem::RadLex, "RID4700", 0.625, false)],
        Some(record),
    );
    let other_series = "1.2.826.0.1.3680043.8.498.14";
    let empty = result(&m, vec![], None);
    let other_instance =
        InstanceRef { sop_class_uid: CT_IMAGE_STORAGE.into(), sop_instance_uid: "1.2.826.0.1.3680043.8.498.15".into() };
    let sources = [
        SourceResult {
            series_instance_uid: SERIES,
            modality: Some("CT"),
            instance: None,
            result: &r,
            sr_sop_instance_uid: Some(SR_SOP),
        },
        SourceResult {
            series_instance_uid: other_series,
            modality: Some("CT"),
            instance: Some(&other_instance),
            result: &empty,
            sr_sop_instance_uid: None,
        },
    ];
    let bundle = build_fhir_bundle(&study(&m, &sources, None)).unwrap();
    assert_well_formed(&bundle);
    let observations = resources(&bundle, "Observation");
    assert_eq!(observations.len(), 2);
    assert_eq!(observations[1]["code"]["coding"][0]["system"], "http://radlex.org");
    assert_eq!(observations[1]["valueQuantity"]["value"], json!(0.625));
    assert_eq!(observations[1]["interpretation"].as_array().unwrap().len(), 1, "not critical: POS only");
    let series = resources(&bundle, "ImagingStudy")[0]["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert!(series[0].get("instance").is_none(), "a series result names no instance");
    let report = resources(&bundle, "DiagnosticReport")[0];
    assert_eq!(report["conclusionCode"].as_array().unwrap().len(), 2);
    assert!(!report["conclusion"].as_str().unwrap().contains("critical"));
    assert_schema_valid(&[("series", &bundle)]);
}

#[test]
fn the_same_input_gives_the_same_bytes_and_another_model_other_ids() {
    let build = |m: &ModelIdentity| {
        let inst = instance();
        let r = result(m, vec![hemorrhage(true)], None);
        let sources = [SourceResult {
            series_instance_uid: SERIES,
            modality: Some("CT"),
            instance: Some(&inst),
            result: &r,
            sr_sop_instance_uid: Some(SR_SOP),
        }];
        build_fhir_bundle(&study(m, &sources, None)).unwrap()
    };
    let a = build(&model("1.0.0"));
    assert_eq!(a.to_json(), build(&model("1.0.0")).to_json());
    let b = build(&model("1.0.1"));
    for (x, y) in entries(&a).iter().zip(entries(&b)) {
        assert_ne!(x["fullUrl"], y["fullUrl"]);
    }
    // The study's identifier stays the study's.
    assert_eq!(entries(&a)[0]["resource"]["identifier"], entries(&b)[0]["resource"]["identifier"]);
}

#[test]
fn bad_input_is_refused() {
    let m = model("1.0.0");
    let other = model("9");
    let nan = result(&m, vec![finding("x", CodeSystem::SnomedCt, "1", f32::NAN, false)], None);
    let foreign = result(&other, vec![], None);
    let ok = result(&m, vec![], None);
    let source = |r| SourceResult {
        series_instance_uid: SERIES,
        modality: None,
        instance: None,
        result: r,
        sr_sop_instance_uid: None,
    };
    let sources = [source(&ok), source(&nan)];
    assert_eq!(build_fhir_bundle(&study(&m, &sources, None)), Err(FhirError::NonFiniteScore { result: 1, finding: 0 }));
    let sources = [source(&foreign)];
    assert_eq!(build_fhir_bundle(&study(&m, &sources, None)), Err(FhirError::ModelMismatch { index: 0 }));
    let sources = [source(&ok)];
    for patient in ["Patient/", "Practitioner/1", "Patient/a b", "patient/1", "Patient/1/_history/2"] {
        let s = StudyResults { patient: PatientRef::Reference(patient), ..study(&m, &sources, None) };
        assert_eq!(build_fhir_bundle(&s), Err(FhirError::PatientReference), "{patient}");
    }
}

#[test]
fn a_patient_by_identifier_is_a_logical_reference_on_every_resource() {
    let m = model("1.0.0");
    let (inst, r) = (instance(), result(&m, vec![hemorrhage(true)], None));
    let sources = [SourceResult {
        series_instance_uid: SERIES,
        modality: Some("CT"),
        instance: Some(&inst),
        result: &r,
        sr_sop_instance_uid: None,
    }];
    let patient = PatientRef::Identifier { system: "urn:oid:1.2.826.0.1.3680043.8.498.99", value: "PID-0042" };
    let bundle = build_fhir_bundle(&StudyResults { patient, ..study(&m, &sources, None) }).unwrap();
    let expected = json!({ "type": "Patient", "identifier": { "system": "urn:oid:1.2.826.0.1.3680043.8.498.99", "value": "PID-0042" } });
    for kind in ["ImagingStudy", "Observation", "DiagnosticReport"] {
        for resource in resources(&bundle, kind) {
            assert_eq!(resource["subject"], expected, "{kind}");
        }
    }
    assert!(resources(&bundle, "Patient").is_empty(), "the bundle must not create or change the patient");
    assert_schema_valid(&[("patient-identifier", &bundle)]);
    for (system, value) in [("", "PID"), ("urn:x", ""), ("urn: x", "PID"), ("urn:x", " PID")] {
        let s = StudyResults { patient: PatientRef::Identifier { system, value }, ..study(&m, &sources, None) };
        assert_eq!(build_fhir_bundle(&s), Err(FhirError::PatientReference), "{system:?} {value:?}");
    }
}

#[test]
fn instants_are_utc_with_milliseconds() {
    assert_eq!(fhir_instant(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(fhir_instant(EVENT_TIME_MS), "2024-01-31T10:00:00.250Z");
    assert_eq!(fhir_instant(-1), "1969-12-31T23:59:59.999Z");
}

/// The schema check is not vacuous: a code outside its value set and an element R4 does not
/// have are refused.
#[test]
fn the_schema_check_rejects_a_broken_bundle() {
    let m = model("1.0.0");
    let r = result(&m, vec![hemorrhage(false)], None);
    let sources = [SourceResult {
        series_instance_uid: SERIES,
        modality: None,
        instance: None,
        result: &r,
        sr_sop_instance_uid: None,
    }];
    let bundle = build_fhir_bundle(&study(&m, &sources, None)).unwrap().bundle;
    let mut bad_status = bundle.clone();
    bad_status["entry"][2]["resource"]["status"] = json!("guessed");
    let mut unknown_element = bundle.clone();
    unknown_element["entry"][3]["resource"]["device"] = json!({ "reference": "Device/1" });
    for (name, broken) in [("bad-status", &bad_status), ("unknown-element", &unknown_element)] {
        if let Some((valid, report)) = schema_check(&[(name, broken)]) {
            assert!(!valid, "the schema accepts the {name} bundle:\n{report}");
            eprint!("{report}");
        }
    }
}

//! FHIR R4 transaction bundles of a study's model results.
//!
//! One bundle per set of results of one study and model, for the EHR: what the PACS gets as
//! SR objects, as FHIR resources. The `fhir` sink sends one per result (an instance's, or a
//! whole series'); a caller may gather a study's results into one. The DiagnosticReport is
//! keyed on the results it covers, so bundles of different instances never overwrite each
//! other's report.
//!
//! ```text
//! ImagingStudy      identifier urn:dicom:uid | urn:oid:<StudyInstanceUID>; the series the model saw
//! Device            the model: name, version, the SHA-256 of its file
//! Observation       one per finding: its code, the probability, POS (and AA when critical),
//!                   derivedFrom the ImagingStudy, device the Device
//! DiagnosticReport  preliminary; conclusionCode the findings' codes or (260385009, SCT,
//!                   "Negative"); result the Observations; imagingStudy; the SR documents by
//!                   their SOPInstanceUID as identifiers; the Device by an extension
//! ```
//!
//! The patient is only referenced: the caller passes the reference (a pseudonym here, the
//! real patient after re-linking on the trusted side), so nothing here knows who it is.
//!
//! **Replays.** Every resource's identifier (and, apart, its `fullUrl`) is a UUID derived from the study,
//! the model's identity and the resource's role, and the content time is an argument, so the
//! same input gives the same bytes. The resources radstream owns (Device, Observation,
//! DiagnosticReport) go as conditional updates (`PUT Type?identifier=…`): a replay updates
//! them in place, and a later run (a series re-run on a late instance) replaces what the
//! earlier one said instead of adding to it. The ImagingStudy is not ours alone: the PACS's or
//! the EHR's own FHIR feed may have made it with more detail than we know, so it goes as a
//! conditional create (`POST` with `ifNoneExist`), which creates it only when no study with
//! that identifier exists and otherwise points our references at the existing one.
//!
//! **The device on the report.** R4's `DiagnosticReport.performer` and `resultsInterpreter`
//! may not reference a Device, and the report has no `device`; the Observations carry it in
//! `Observation.device`, and the report names it in the extension [`AI_DEVICE_EXTENSION`]
//! (a report without findings has no Observation to carry it). A `Provenance` with the Device
//! as agent would say it in core R4, but it has no identifier, so a replay would duplicate it.
//!
//! Building is pure: no I/O, no clock.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::sr::InstanceRef;
use super::uids::tracking_uid;
use crate::contract::{Code, CodeSystem, InferenceResult, ModelIdentity};

/// Changes every derived UUID when bumped: only for a change of what a UUID identifies.
const DOMAIN: &str = "radstream fhir uuid v1";
/// The identifier system of DICOM UIDs (`urn:oid:` values), as FHIR's ImagingStudy uses it.
pub const DICOM_UID_SYSTEM: &str = "urn:dicom:uid";
/// FHIR's identifier system for URIs: our resources' identifiers are their `urn:uuid:`.
const URI_SYSTEM: &str = "urn:ietf:rfc:3986";
/// The extension on the DiagnosticReport that references the model's Device (see the module
/// documentation for why not `performer`).
pub const AI_DEVICE_EXTENSION: &str = "urn:radstream:fhir:StructureDefinition:ai-device";
/// Device.manufacturer, as in the SR's device observer.
const MANUFACTURER: &str = super::sr::MANUFACTURER;

const SNOMED: &str = "http://snomed.info/sct";
const RADLEX: &str = "http://radlex.org";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const DIAGNOSTIC_SERVICE: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";

/// One model result of the study: what the model said about one instance or one series, and
/// where it came from.
#[derive(Debug, Clone, Copy)]
pub struct SourceResult<'a> {
    /// SeriesInstanceUID of the series the result is about.
    pub series_instance_uid: &'a str,
    /// The series' Modality (`CT`, `MR`, …), when known: FHIR's ImagingStudy lists a series only
    /// with its modality.
    pub modality: Option<&'a str>,
    /// The instance of a result of one instance; `None` for a result of a whole series.
    pub instance: Option<&'a InstanceRef>,
    /// What the model said. Its model must be the bundle's.
    pub result: &'a InferenceResult,
    /// SOPInstanceUID of the SR document built from this result, when one was: the report
    /// names it, and each Observation carries its measurement group's Tracking UID.
    pub sr_sop_instance_uid: Option<&'a str>,
}

/// Who the results are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientRef<'a> {
    /// A literal reference, `Patient/<id>`, where the caller knows the server's id.
    Reference(&'a str),
    /// A logical reference by business identifier (R4 `Reference.identifier`): the DICOM
    /// PatientID under its issuer's system, for an EHR whose Patient ids the pipeline does not
    /// know. Nothing in the bundle creates or changes the Patient.
    Identifier {
        /// The identifier's system (a URI: the issuer of the PatientID).
        system: &'a str,
        /// The PatientID.
        value: &'a str,
    },
}

impl PatientRef<'_> {
    /// The `subject` of the bundle's resources.
    fn to_json(self) -> Value {
        match self {
            PatientRef::Reference(reference) => json!({ "reference": reference }),
            PatientRef::Identifier { system, value } => {
                json!({ "type": "Patient", "identifier": { "system": system, "value": value } })
            }
        }
    }
}

/// Everything one bundle is built from.
#[derive(Debug, Clone, Copy)]
pub struct StudyResults<'a> {
    /// StudyInstanceUID of the study, as the PACS knows it.
    pub study_instance_uid: &'a str,
    /// The patient: a literal reference or a logical one by identifier. Re-linking it is the
    /// trusted side's job, so it is taken as given.
    pub patient: PatientRef<'a>,
    /// The model whose results these are.
    pub model: &'a ModelIdentity,
    /// The results, in the order their Observations are to appear.
    pub results: &'a [SourceResult<'a>],
    /// The body site the model looks at (from its manifest), put on every Observation.
    pub body_site: Option<&'a Code>,
    /// Issue time of the report and its observations, Unix time in milliseconds (UTC): pass
    /// the event's time, not the clock, so that a replay gives the same bytes.
    pub time_ms: i64,
}

/// Why a bundle could not be built. Never carries patient data.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FhirError {
    /// The patient reference is not `Patient/<id>` with a FHIR id (1-64 of `A-Za-z0-9-.`), or
    /// an identifier without a system or a value.
    #[error("the patient reference is not of the form Patient/<id>, or its identifier lacks a system or a value")]
    PatientReference,
    /// A result was made by another model than the bundle's.
    #[error("result {index} was made by another model than the bundle's")]
    ModelMismatch {
        /// The result's place in the input.
        index: usize,
    },
    /// A score is NaN or infinite: JSON has no number for it.
    #[error("finding {finding} of result {result} has a score that is not a finite number")]
    NonFiniteScore {
        /// The result's place in the input.
        result: usize,
        /// The finding's place in the result.
        finding: usize,
    },
}

/// A built transaction bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct FhirBundle {
    /// The Bundle resource.
    pub bundle: Value,
}

impl FhirBundle {
    /// The bundle as compact JSON: the same input gives the same bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.bundle).expect("a serde_json::Value always serializes")
    }
}

/// A resource of the bundle and its derived UUID.
struct Entry {
    uuid: String,
    resource: Value,
    request: Value,
}

impl Entry {
    /// The entry's `fullUrl`: a UUID of its own, derived from the identifier's but not equal to
    /// it. A server that rewrites every occurrence of a fullUrl in the bundle (Medplum does, in
    /// plain strings too) would otherwise rewrite the identifier value, and the conditional
    /// update would never match again: each replay would add a copy.
    fn full_url(&self) -> String {
        format!("urn:uuid:{}", uuid_of(&[DOMAIN, "full-url", &self.uuid]))
    }

    fn into_json(self) -> Value {
        json!({ "fullUrl": self.full_url(), "resource": self.resource, "request": self.request })
    }
}

/// Builds the transaction bundle of `study`: ImagingStudy, Device, one Observation per finding
/// (results in the order given, findings in each result's order) and the DiagnosticReport.
pub fn build_fhir_bundle(study: &StudyResults<'_>) -> Result<FhirBundle, FhirError> {
    check_patient(study.patient)?;
    for (index, source) in study.results.iter().enumerate() {
        if source.result.model != *study.model {
            return Err(FhirError::ModelMismatch { index });
        }
        if let Some(finding) = source.result.findings.iter().position(|f| !f.score.is_finite()) {
            return Err(FhirError::NonFiniteScore { result: index, finding });
        }
    }
    let issued = fhir_instant(study.time_ms);
    let patient = study.patient.to_json();

    let imaging_study = imaging_study(study);
    let device = device(study);
    let study_ref = json!({ "reference": imaging_study.full_url() });
    let device_ref = json!({ "reference": device.full_url() });

    let mut observations = Vec::new();
    for source in study.results {
        let source_uid = source.instance.map_or(source.series_instance_uid, |i| i.sop_instance_uid.as_str());
        for (index, finding) in source.result.findings.iter().enumerate() {
            let uuid = derived_uuid(study, "observation", &format!("{source_uid}/{index}"));
            let mut identifier = vec![uri_identifier(&uuid)];
            if let Some(sr) = source.sr_sop_instance_uid {
                identifier.push(dicom_identifier(&tracking_uid(sr, index, study.model)));
            }
            let mut interpretation = vec![concept(INTERPRETATION, "POS", "Positive")];
            if finding.critical {
                interpretation.push(concept(INTERPRETATION, "AA", "Critical abnormal"));
            }
            let mut resource = json!({
                "resourceType": "Observation",
                "identifier": identifier,
                "status": "preliminary",
                "category": [concept(OBSERVATION_CATEGORY, "imaging", "Imaging")],
                "code": code_concept(&finding.code),
                "subject": patient,
                "effectiveDateTime": issued,
                "issued": issued,
                "valueQuantity": probability(finding.score),
                "interpretation": interpretation,
                // Below the threshold the model calls the finding absent: the "normal" range.
                "referenceRange": [{
                    "high": probability(finding.threshold),
                    "text": "the model's decision threshold",
                }],
                "device": device_ref,
                "derivedFrom": [study_ref],
            });
            if let Some(site) = study.body_site {
                resource["bodySite"] = code_concept(site);
            }
            observations.push(Entry { request: conditional_update("Observation", &uuid), uuid, resource });
        }
    }

    let report = report(study, &issued, &patient, &study_ref, &device_ref, &observations);
    let entries: Vec<Value> =
        [imaging_study, device].into_iter().chain(observations).chain([report]).map(Entry::into_json).collect();
    Ok(FhirBundle { bundle: json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries }) })
}

fn imaging_study(study: &StudyResults<'_>) -> Entry {
    let uuid = derived_uuid(study, "imaging-study", "");
    let study_identifier = format!("urn:oid:{}", study.study_instance_uid);
    let mut series: Vec<(&str, &str, Vec<&InstanceRef>)> = Vec::new();
    for source in study.results {
        let Some(modality) = source.modality else { continue };
        let at = match series.iter().position(|(uid, ..)| *uid == source.series_instance_uid) {
            Some(at) => at,
            None => {
                series.push((source.series_instance_uid, modality, Vec::new()));
                series.len() - 1
            }
        };
        if let Some(instance) = source.instance {
            let instances = &mut series[at].2;
            if !instances.iter().any(|i| i.sop_instance_uid == instance.sop_instance_uid) {
                instances.push(instance);
            }
        }
    }
    let mut resource = json!({
        "resourceType": "ImagingStudy",
        "identifier": [{ "system": DICOM_UID_SYSTEM, "value": study_identifier }],
        "status": "available",
        "subject": study.patient.to_json(),
    });
    if !series.is_empty() {
        let series: Vec<Value> = series
            .into_iter()
            .map(|(uid, modality, instances)| {
                let mut s = json!({ "uid": uid, "modality": { "system": DCM, "code": modality } });
                if !instances.is_empty() {
                    let instances: Vec<Value> = instances
                        .into_iter()
                        .map(|i| {
                            json!({
                                "uid": i.sop_instance_uid,
                                "sopClass": { "system": URI_SYSTEM, "code": format!("urn:oid:{}", i.sop_class_uid) },
                            })
                        })
                        .collect();
                    s["instance"] = Value::Array(instances);
                }
                s
            })
            .collect();
        resource["series"] = Value::Array(series);
    }
    let request = json!({
        "method": "POST",
        "url": "ImagingStudy",
        "ifNoneExist": format!("identifier={DICOM_UID_SYSTEM}|{study_identifier}"),
    });
    Entry { uuid, resource, request }
}

fn device(study: &StudyResults<'_>) -> Entry {
    let model = study.model;
    // The Device is the model, whatever the study: its UUID does not depend on the study.
    let uuid = uuid_of(&[DOMAIN, "device", &model.name, &model.version, &model.sha256]);
    let resource = json!({
        "resourceType": "Device",
        "identifier": [
            uri_identifier(&uuid),
            { "type": { "text": "SHA-256 of the model file" }, "value": model.sha256 },
        ],
        "status": "active",
        "manufacturer": MANUFACTURER,
        "deviceName": [{ "name": model.name, "type": "model-name" }],
        "type": { "text": "AI model" },
        "version": [{ "value": model.version }],
    });
    Entry { request: conditional_update("Device", &uuid), uuid, resource }
}

fn report(
    study: &StudyResults<'_>,
    issued: &str,
    patient: &Value,
    study_ref: &Value,
    device_ref: &Value,
    observations: &[Entry],
) -> Entry {
    // One report per set of results: a bundle of one instance's result reports on that
    // instance, one of a series' on that series, one of a whole study's on all of it. A report
    // keyed on the study alone would be overwritten by each instance's bundle in turn.
    let covered: Vec<&str> = study
        .results
        .iter()
        .map(|s| s.instance.map_or(s.series_instance_uid, |i| i.sop_instance_uid.as_str()))
        .collect();
    let uuid = derived_uuid(study, "diagnostic-report", &covered.join("\\"));
    let mut identifier = vec![uri_identifier(&uuid)];
    for sr in study.results.iter().filter_map(|s| s.sr_sop_instance_uid) {
        let sr = dicom_identifier(sr);
        if !identifier.contains(&sr) {
            identifier.push(sr);
        }
    }
    let mut codes: Vec<Value> = Vec::new();
    let mut critical = false;
    for finding in study.results.iter().flat_map(|s| &s.result.findings) {
        critical |= finding.critical;
        let code = code_concept(&finding.code);
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let conclusion = if codes.is_empty() {
        codes.push(concept(SNOMED, "260385009", "Negative"));
        format!("{} {}: no findings (preliminary, not verified by a person)", study.model.name, study.model.version)
    } else {
        let mut labels: Vec<&str> = Vec::new();
        for finding in study.results.iter().flat_map(|s| &s.result.findings) {
            if !labels.contains(&finding.label.as_str()) {
                labels.push(&finding.label);
            }
        }
        format!(
            "{} {}: {}{} (preliminary, not verified by a person)",
            study.model.name,
            study.model.version,
            labels.join(", "),
            if critical { "; critical" } else { "" }
        )
    };
    let mut resource = json!({
        "resourceType": "DiagnosticReport",
        "extension": [{ "url": AI_DEVICE_EXTENSION, "valueReference": device_ref }],
        "identifier": identifier,
        "status": "preliminary",
        "category": [concept(DIAGNOSTIC_SERVICE, "RAD", "Radiology")],
        "code": concept(LOINC, "18748-4", "Diagnostic imaging study"),
        "subject": patient,
        "effectiveDateTime": issued,
        "issued": issued,
        "imagingStudy": [study_ref],
        "conclusion": conclusion,
        "conclusionCode": codes,
    });
    if !observations.is_empty() {
        let results: Vec<Value> = observations.iter().map(|o| json!({ "reference": o.full_url() })).collect();
        resource["result"] = Value::Array(results);
    }
    Entry { request: conditional_update("DiagnosticReport", &uuid), uuid, resource }
}

/// `PUT Type?identifier=urn:ietf:rfc:3986|urn:uuid:<uuid>`: creates the resource or replaces
/// the one an earlier run of the same input made.
fn conditional_update(resource_type: &str, uuid: &str) -> Value {
    json!({ "method": "PUT", "url": format!("{resource_type}?identifier={URI_SYSTEM}|urn:uuid:{uuid}") })
}

fn uri_identifier(uuid: &str) -> Value {
    json!({ "system": URI_SYSTEM, "value": format!("urn:uuid:{uuid}") })
}

fn dicom_identifier(uid: &str) -> Value {
    json!({ "system": DICOM_UID_SYSTEM, "value": format!("urn:oid:{uid}") })
}

fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": system, "code": code, "display": display }] })
}

fn code_concept(code: &Code) -> Value {
    let system = match code.system {
        CodeSystem::SnomedCt => SNOMED,
        CodeSystem::RadLex => RADLEX,
    };
    json!({ "coding": [{ "system": system, "code": code.value, "display": code.meaning }], "text": code.meaning })
}

/// A probability as a UCUM dimensionless quantity. The f32 goes through its shortest decimal
/// form, so 0.9 is written `0.9`, not `0.8999999761581421`.
fn probability(score: f32) -> Value {
    let value: f64 = score.to_string().parse().expect("a finite f32 prints as a decimal");
    json!({ "value": value, "unit": "1", "system": UCUM, "code": "1" })
}

/// `Patient/<id>`, the id as FHIR's `id` type allows it; or an identifier with a system and a
/// value (FHIR strings: not empty, no surrounding whitespace).
fn check_patient(patient: PatientRef<'_>) -> Result<(), FhirError> {
    match patient {
        PatientRef::Reference(reference) => {
            let id = reference.strip_prefix("Patient/").ok_or(FhirError::PatientReference)?;
            let valid =
                (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            valid.then_some(()).ok_or(FhirError::PatientReference)
        }
        PatientRef::Identifier { system, value } => {
            let string = |s: &str| !s.is_empty() && s.trim() == s;
            (string(system) && !system.contains(char::is_whitespace) && string(value))
                .then_some(())
                .ok_or(FhirError::PatientReference)
        }
    }
}

/// An R4 `instant` (`YYYY-MM-DDThh:mm:ss.sssZ`) of a Unix time in milliseconds.
fn fhir_instant(ms: i64) -> String {
    let (year, month, day, h, m, s) = crate::dicom::datetime::utc_fields(ms);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z", ms.rem_euclid(1000))
}

/// The UUID of the resource of `role` (and `part`, where a role has several) of the bundle of
/// this study and model.
fn derived_uuid(study: &StudyResults<'_>, role: &str, part: &str) -> String {
    let model = study.model;
    uuid_of(&[DOMAIN, role, study.study_instance_uid, part, &model.name, &model.version, &model.sha256])
}

/// A name-based UUID (RFC 9562 layout, version 5 bits and variant set) from the first 128 bits
/// of SHA-256 over the length-prefixed fields.
fn uuid_of(fields: &[&str]) -> String {
    let mut hash = Sha256::new();
    for field in fields {
        hash.update((field.len() as u64).to_be_bytes());
        hash.update(field.as_bytes());
    }
    let digest = hash.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests;

//! What the result objects' tests share: temporary files, dciodvfy, and the Python readers
//! (pydicom, highdicom) run on an object.

use std::path::Path;
use std::process::Command;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use crate::element_text;

/// Writes `bytes` to a temporary `.dcm` file that lives as long as the returned guard.
pub(crate) fn temp_file(kind: &str, name: &str, bytes: &[u8]) -> tempfile::TempPath {
    let file = tempfile::Builder::new().prefix(&format!("radstream-{kind}-{name}-")).suffix(".dcm").tempfile().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file.into_temp_path()
}

/// dciodvfy's whole report on the object `name` of `kind` (`SR`, `SEG`), asserting no `Error`
/// line and that it recognised `iod`; a skip of the check (`radstream_test_gate`) where dciodvfy
/// is not installed (a failure under `RADSTREAM_REQUIRE_STACK=1`). `RADSTREAM_KEEP_RESULTS_DIR` keeps the
/// objects for a look with a viewer.
pub(crate) fn assert_no_dciodvfy_errors(kind: &str, iod: &str, name: &str, bytes: &[u8]) {
    if let Ok(dir) = std::env::var("RADSTREAM_KEEP_RESULTS_DIR") {
        std::fs::write(Path::new(&dir).join(format!("{kind}-{name}.dcm")), bytes).unwrap();
    }
    let dciodvfy = Path::new("/usr/bin/dciodvfy");
    if !radstream_test_gate::needs(
        &format!("/usr/bin/dciodvfy (Debian's dicom3tools) to validate the {kind}"),
        dciodvfy.exists(),
    ) {
        return;
    }
    let path = temp_file(kind, name, bytes);
    let output = Command::new(dciodvfy).arg(&*path).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("Error")).collect();
    assert!(
        errors.is_empty(),
        "dciodvfy on the {name} {kind} found errors; its whole report (warnings too):\n{report}"
    );
    assert!(report.contains(iod), "dciodvfy recognised the IOD:\n{report}");
    eprintln!("dciodvfy on the {name} {kind}:\n{report}");
}

/// Runs `script` with the stack's Python (`RADSTREAM_TEST_PYTHON`, else python3) on the object,
/// with `args` after its path, and asserts it succeeded. Without Python, pydicom or highdicom
/// (the script prints `highdicom: not installed`): a skip of that check (`radstream_test_gate`;
/// a failure under `RADSTREAM_REQUIRE_STACK=1`).
pub(crate) fn assert_python_readers_agree(kind: &str, name: &str, bytes: &[u8], script: &str, args: &[String]) {
    let path = temp_file(kind, name, bytes);
    let python = std::env::var("RADSTREAM_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = match Command::new(&python).arg("-c").arg(script).arg(&*path).args(args).output() {
        Ok(output) => output,
        Err(e) => {
            radstream_test_gate::missing(&format!("{python} to read the {kind} back (it does not run: {e})"));
            return;
        }
    };
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let modules = !(report.contains("No module named 'pydicom'") || report.contains("No module named 'numpy'"));
    if !radstream_test_gate::needs(&format!("pydicom and numpy for {python} to read the {kind} back"), modules) {
        return;
    }
    assert!(output.status.success(), "python readers on the {name} {kind} failed:\n{report}");
    radstream_test_gate::needs(
        &format!("highdicom for {python} to read the {kind} back (pip install highdicom)"),
        !report.contains("highdicom: not installed"),
    );
    eprint!("{report}");
}

/// The text of an attribute.
pub(crate) fn txt(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    element_text(obj, tag)
}

/// The items of a sequence (which must be there).
pub(crate) fn items(obj: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    obj.element(tag).unwrap().items().unwrap()
}

/// The identifying header of a synthetic CT instance (patient, study, series, instance; no
/// real data): what a result object copies and references.
pub(crate) fn ct_header(study: &str, series: &str, sop: &str) -> InMemDicomObject {
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    InMemDicomObject::from_element_iter([
        text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"),
        text(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, sop),
        text(tags::STUDY_DATE, VR::DA, "20240131"),
        text(tags::STUDY_TIME, VR::TM, "101500"),
        text(tags::ACCESSION_NUMBER, VR::SH, "SYNTH-ACC-1"),
        text(tags::MODALITY, VR::CS, "CT"),
        text(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "Synthetic^Referrer"),
        text(tags::PATIENT_NAME, VR::PN, "Synthetic^Patient"),
        text(tags::PATIENT_ID, VR::LO, "SYNTH-0001"),
        text(tags::PATIENT_BIRTH_DATE, VR::DA, "19700101"),
        text(tags::PATIENT_SEX, VR::CS, "O"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, study),
        text(tags::SERIES_INSTANCE_UID, VR::UI, series),
        text(tags::STUDY_ID, VR::SH, "SYNTH-S1"),
        text(tags::SERIES_NUMBER, VR::IS, "3"),
        text(tags::INSTANCE_NUMBER, VR::IS, "17"),
    ])
}

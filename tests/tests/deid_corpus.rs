//! The de-identifier over pydicom's bundled test files (every transfer syntax and character
//! set it ships, multi-byte ones included), checked by an independent reader: pydicom must
//! read every output, find the patient replaced and the character set kept.
//!
//! A few of pydicom's files carry no SOP Class or SOP Instance UID: they are not instances, and
//! the de-identifier refuses them (it writes nothing that is not an instance as one). pydicom
//! then gives each the UIDs and file meta it lacks, and the completed copy, which keeps the
//! construct the file exists for (private sequences, a UN-encoded sequence, character sets in
//! sequences), is de-identified and checked like the rest.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use radstream_operators::pseudonymize::{DeidKey, Deidentifier, ProfileOptions};

/// Files that are not Part-10 objects (no preamble and meta group) or are cut short: they must fail with a clear error.
const NOT_PART10_OR_BROKEN: &[&str] = &[
    "ExplVR_BigEndNoMeta.dcm",
    "ExplVR_LitEndNoMeta.dcm",
    "no_meta.dcm",
    "MR_truncated.dcm",
    "rtplan_truncated.dcm",
    "rtstruct.dcm",
];

const CHECK: &str = r#"
import json, sys, pydicom
pairs = json.load(open(sys.argv[1]))
problems = []
for src, dst in pairs:
    a = pydicom.dcmread(src, force=True)
    b = pydicom.dcmread(dst)
    name = str(a.get("PatientName", "") or "")
    if b.get("PatientIdentityRemoved") != "YES":
        problems.append(f"{dst}: PatientIdentityRemoved is not YES")
    if name and str(b.get("PatientName", "")) == name:
        problems.append(f"{dst}: PatientName unchanged")
    if a.get("SpecificCharacterSet") != b.get("SpecificCharacterSet"):
        problems.append(f"{dst}: SpecificCharacterSet changed")
    if "SOPInstanceUID" in a and not str(b.SOPInstanceUID).startswith("2.25."):
        problems.append(f"{dst}: SOPInstanceUID not pseudonymized")
    if "PixelData" in a and a.PixelData != b.PixelData:
        problems.append(f"{dst}: PixelData bytes differ")
    b.walk(lambda ds, el: el.value)  # decodes every value in every character set
    private = []
    b.walk(lambda ds, el: private.append(str(el.tag)) if el.tag.is_private else None)
    if private:
        problems.append(f"{dst}: private attributes left: {private[:5]}")
print(json.dumps(problems))
"#;

/// Gives each listed file the SOP Class UID (Secondary Capture), SOP Instance UID and file meta
/// it lacks, writes the copy to the output folder and says what it added.
const COMPLETE: &str = r#"
import json, os, sys, pydicom
from pydicom.uid import generate_uid, ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian
done = []
for src in json.load(open(sys.argv[1])):
    ds = pydicom.dcmread(src, force=True)
    added = []
    if not ds.get("SOPClassUID"):
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        added.append("SOPClassUID")
    if not ds.get("SOPInstanceUID"):
        ds.SOPInstanceUID = generate_uid(prefix=None, entropy_srcs=[os.path.basename(src)])
        added.append("SOPInstanceUID")
    ds.ensure_file_meta()
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        added.append("TransferSyntaxUID")
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    pydicom.dataset.validate_file_meta(ds.file_meta, enforce_standard=True)
    dst = os.path.join(sys.argv[2], os.path.basename(src))
    ds.save_as(dst, enforce_file_format=True)
    done.append([src, dst, added])
print(json.dumps(done))
"#;

#[test]
fn every_bundled_test_file_is_deidentified_or_refused_clearly() {
    let Some(data) = radstream_tests::pydicom_data() else {
        radstream_tests::skip_without("python3 with pydicom");
        return;
    };
    let deid = Deidentifier::new(DeidKey::new("test", vec![9; 32]).unwrap(), ProfileOptions::default());
    let out_dir = tempfile::tempdir().unwrap();
    let mut pairs = Vec::new();
    let mut refused = Vec::new();
    let mut files = radstream_tests::dcm_files(&data.join("test_files"));
    files.extend(radstream_tests::dcm_files(&data.join("charset_files")));
    assert!(files.len() > 80, "pydicom's test files not found under {}", data.display());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let input = Bytes::from(std::fs::read(path).unwrap());
        match deid.deidentify(&input) {
            Ok(out) => {
                let dst = out_dir.path().join(&name);
                std::fs::write(&dst, out.to_bytes()).unwrap();
                pairs.push((path.display().to_string(), dst.display().to_string()));
            }
            Err(e) => refused.push((path.clone(), format!("{name}: {e}"))),
        }
    }
    // Not instances: refused with the reason, then completed by pydicom and de-identified.
    type Refusals = Vec<(PathBuf, String)>;
    let (not_instances, refused): (Refusals, Refusals) =
        refused.into_iter().partition(|(_, reason)| reason.contains("not a DICOM instance: no "));
    let completed_dir = tempfile::tempdir().unwrap();
    let list = completed_dir.path().join("incomplete.json");
    std::fs::write(&list, serde_json::to_vec(&not_instances.iter().map(|(p, _)| p).collect::<Vec<_>>()).unwrap())
        .unwrap();
    let complete = Command::new(radstream_tests::python())
        .args(["-c", COMPLETE])
        .arg(&list)
        .arg(completed_dir.path())
        .output()
        .unwrap();
    assert!(complete.status.success(), "{}", String::from_utf8_lossy(&complete.stderr));
    let completed: Vec<(String, String, Vec<String>)> = serde_json::from_slice(&complete.stdout).unwrap();
    assert_eq!(completed.len(), not_instances.len());
    for (src, copy, added) in &completed {
        // pydicom, reading independently, agrees that a UID was missing.
        assert!(
            added.iter().any(|a| a.starts_with("SOP")),
            "{src} was refused as not an instance but has both SOP UIDs"
        );
        let input = Bytes::from(std::fs::read(copy).unwrap());
        let out = deid.deidentify(&input).unwrap_or_else(|e| panic!("{copy}, completed by pydicom: {e}"));
        let dst = out_dir.path().join(Path::new(copy).file_name().unwrap());
        std::fs::write(&dst, out.to_bytes()).unwrap();
        pairs.push((copy.clone(), dst.display().to_string()));
    }
    let refused: Vec<String> = refused.into_iter().map(|(_, reason)| reason).collect();
    let unexpected: Vec<&String> =
        refused.iter().filter(|r| !NOT_PART10_OR_BROKEN.iter().any(|n| r.starts_with(&format!("{n}:")))).collect();
    assert!(unexpected.is_empty(), "refused well-formed files: {unexpected:#?}");
    assert_eq!(refused.len(), NOT_PART10_OR_BROKEN.len(), "{refused:#?}");
    // The files this test exists for: Latin-1, UTF-8 and ISO 2022 (Japanese, multi-byte)
    // character sets, private sequences nested in private sequences, a UN-encoded sequence,
    // big endian, deflated.
    for name in [
        "chrFren.dcm",
        "chrX1.dcm",
        "chrH31.dcm",
        "chrJapMulti.dcm",
        "priv_SQ.dcm",
        "nested_priv_SQ.dcm",
        "UN_sequence.dcm",
        "MR_small_bigendian.dcm",
        "image_dfl.dcm",
    ] {
        assert!(pairs.iter().any(|(src, _)| src.ends_with(&format!("/{name}"))), "{name} was not de-identified");
    }
    let list = out_dir.path().join("pairs.json");
    std::fs::write(&list, serde_json::to_vec(&pairs).unwrap()).unwrap();
    let check = Command::new(radstream_tests::python()).args(["-c", CHECK]).arg(&list).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let problems: Vec<String> = serde_json::from_slice(&check.stdout).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(completed.len() >= 6, "pydicom's files without SOP UIDs (priv_SQ.dcm and others) not found: {completed:?}");
    eprintln!(
        "{} files de-identified and read back by pydicom ({} of them refused as not instances until pydicom completed \
         them); {} refused as expected",
        pairs.len(),
        completed.len(),
        refused.len()
    );
}

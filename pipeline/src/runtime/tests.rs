use super::*;

#[test]
fn non_dicom_bytes_are_rejected_with_a_reason() {
    let err = parse_header(b"this is not a DICOM file at all, just text").unwrap_err();
    assert!(err.contains("DICM"), "{err}");
}

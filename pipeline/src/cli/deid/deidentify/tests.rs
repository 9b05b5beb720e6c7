use bytes::Bytes;
use radstream_operators::pseudonymize::Deidentified;

use super::*;

#[test]
fn rename_names_by_uids_and_refuses_what_is_not_a_uid() {
    let mut d = Deidentified {
        parts: vec![],
        burned_in_annotation: None,
        study_instance_uid: "2.25.1".into(),
        series_instance_uid: "2.25.2".into(),
        sop_instance_uid: "2.25.3".into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
        modality: None,
        links: Default::default(),
    };
    assert_eq!(uid_path(&d).unwrap(), Path::new("2.25.1/2.25.2/2.25.3.dcm"));
    for bad in ["", "..", "1.2/../3", "1..2", "1.2 "] {
        d.series_instance_uid = bad.into();
        assert!(uid_path(&d).unwrap_err().starts_with("SeriesInstanceUID"), "{bad:?}");
    }
}

#[test]
fn atomic_writes_concatenate_parts_and_leave_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a/b/c.dcm");
    let n =
        write_atomically(&dest, &[Bytes::from_static(b"head"), Bytes::new(), Bytes::from_static(b"pixels")]).unwrap();
    assert_eq!(n, 10);
    assert_eq!(std::fs::read(&dest).unwrap(), b"headpixels");
    assert_eq!(std::fs::read_dir(dir.path().join("a/b")).unwrap().count(), 1);
}

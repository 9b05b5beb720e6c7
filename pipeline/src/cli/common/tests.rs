use super::*;

#[test]
fn output_names_drop_a_dcm_extension_only() {
    assert_eq!(stem("a/b/x.dcm"), PathBuf::from("a/b/x"));
    assert_eq!(stem("X.DCM"), PathBuf::from("X"));
    assert_eq!(stem("1.2.840.5"), PathBuf::from("1.2.840.5"));
    assert_eq!(with_suffix(Path::new("out/1.2.3"), ".f0.png"), PathBuf::from("out/1.2.3.f0.png"));
}

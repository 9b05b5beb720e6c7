use super::*;

#[test]
fn keygen_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    assert_eq!(keygen("k1", &path), ExitCode::SUCCESS);
    let first = std::fs::read_to_string(&path).unwrap();
    assert_eq!(DeidKey::from_file(&path).unwrap().id(), "k1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(keygen("k2", &path), ExitCode::from(2));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
    assert_eq!(keygen("has space", &dir.path().join("k3")), ExitCode::from(2));
    assert!(!dir.path().join("k3").exists());
}

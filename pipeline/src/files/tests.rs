use std::io::Write;

use super::*;

#[test]
fn a_failed_write_leaves_neither_file_nor_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a/b.dcm");
    write_atomically(&dest, |f| f.write_all(b"whole")).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
    let err = write_atomically(&dest, |f| {
        f.write_all(b"half")?;
        Err(std::io::Error::other("disk full"))
    });
    assert!(err.is_err());
    assert_eq!(std::fs::read(&dest).unwrap(), b"whole", "the previous file stays");
    assert_eq!(std::fs::read_dir(dest.parent().unwrap()).unwrap().count(), 1, "no temporary left");
}

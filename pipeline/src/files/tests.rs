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

#[cfg(unix)]
#[test]
fn a_walk_ends_on_a_link_cycle_and_lists_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("in");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("a/b/x.dcm"), b"x").unwrap();
    std::fs::write(root.join("y.dcm"), b"y").unwrap();
    // in/a/b/up -> in (a cycle), in/a/self -> in/a (a cycle of one).
    std::os::unix::fs::symlink(&root, root.join("a/b/up")).unwrap();
    std::os::unix::fs::symlink(root.join("a"), root.join("a/self")).unwrap();

    let everything = walk(&root, WalkMode::Everything).unwrap();
    let mut names: Vec<_> = everything.files.iter().map(|f| f.relative.to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["a/b/x.dcm", "y.dcm"]);
    assert_eq!(everything.skipped.len(), 2, "{:?}", everything.skipped);

    let regular = walk(&root, WalkMode::RegularFiles).unwrap();
    assert_eq!(regular.files.len(), 2);
    assert!(regular.skipped.iter().all(|s| s.contains("a link to a folder is not followed")), "{:?}", regular.skipped);

    let collected = collect_files(&[root.clone(), root.join("y.dcm")]).unwrap();
    let names: Vec<_> = collected.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(names, ["a/b/x.dcm", "y.dcm", "y.dcm"]);
}

#[test]
fn a_missing_folder_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let e = collect_files(std::slice::from_ref(&missing)).unwrap_err();
    assert!(e.to_string().starts_with(&missing.display().to_string()), "{e}");
}

#[test]
fn every_item_is_worked_once_in_order() {
    let items: Vec<usize> = (0..50).collect();
    let out = on_threads(&items, 4, |i, item| i * 100 + item);
    assert_eq!(out, items.iter().map(|i| Some(i * 101)).collect::<Vec<_>>());
    assert_eq!(worker_threads(None, 0), 1);
    assert_eq!(worker_threads(NonZeroUsize::new(8), 3), 3);
}

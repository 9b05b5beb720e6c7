use super::*;

fn input(source: &str, stem: &str) -> InputFile {
    InputFile { source: PathBuf::from(source), stem: PathBuf::from(stem) }
}

#[test]
fn a_series_is_named_after_the_folder_of_its_first_file() {
    // Below a study folder given as INPUT: the path below it.
    assert_eq!(series_name(&input("in/study/s1/a.dcm", "s1/a"), &[]), PathBuf::from("s1"));
    // Directly in a series folder given as INPUT, or a file given by itself: the folder's name.
    assert_eq!(series_name(&input("in/study/s1/a.dcm", "a"), &[]), PathBuf::from("s1"));
    // Two series in one folder.
    let taken = [PathBuf::from("s1"), PathBuf::from("s1-2")];
    assert_eq!(series_name(&input("in/study/s1/b.dcm", "b"), &taken), PathBuf::from("s1-3"));
}

//! `radstream keygen` and `radstream deid` from the command line, without servers: synthetic
//! studies and pydicom's bundled test files in, de-identified files out, checked by pydicom.

use radstream_tests::{lossy_text as text, path_str as s, run_radstream as radstream, show_output as show};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `--option` names, as `deid --help` must list them.
const OPTION_NAMES: [&str; 7] = [
    "retain-safe-private",
    "retain-uids",
    "retain-device-identity",
    "retain-institution-identity",
    "retain-patient-characteristics",
    "retain-longitudinal-modified-dates",
    "clean-descriptors",
];

/// Identifiers `radstream synth` writes: patient name, patient ID, accession number prefixes.
const SYNTH_PHI: [&[u8]; 3] = [b"SYNTH^PATIENT", b"SYN0", b"SYNA"];

fn keygen(dir: &Path, id: &str) -> PathBuf {
    let path = dir.join(format!("{id}.key"));
    let out = radstream(&["keygen", "--id", id, "--out", s(&path)]);
    assert!(out.status.success(), "{}", show(&out));
    path
}

fn synth(dir: &Path, studies: usize, seed: u64) -> PathBuf {
    let out = radstream(&["synth", "--studies", &studies.to_string(), "--seed", &seed.to_string(), "--out", s(dir)]);
    assert!(out.status.success(), "{}", show(&out));
    dir.to_path_buf()
}

/// `deid` with a key file over `inputs` into `out`, plus `extra` flags.
fn deid(key: &Path, out: &Path, inputs: &[&Path], extra: &[&str]) -> Output {
    let mut args = vec!["deid", "--key-file", s(key), "--out", s(out)];
    args.extend_from_slice(extra);
    args.extend(inputs.iter().map(|p| s(p)));
    radstream(&args)
}

/// Every file below `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The number on the summary line that starts with `name`.
fn summary_field(stdout: &str, name: &str) -> usize {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no `{name}` line in the summary:\n{stdout}"));
    line.split_whitespace().last().unwrap().parse().unwrap_or_else(|_| panic!("{line}"))
}

/// pydicom's bundled test files folder, or `None` (a skip of the calling test, through
/// `radstream_test_gate`) when python3 or pydicom is missing. Under `RADSTREAM_REQUIRE_STACK=1`
/// (CI, which installs pydicom) it must be there.
fn pydicom_test_files() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = FOUND
        .get_or_init(|| {
            let out = Command::new(radstream_tests::python())
                .args(["-c", "import pydicom,os;print(os.path.dirname(pydicom.__file__))"])
                .output()
                .ok()
                .filter(|o| o.status.success());
            let dir = out.map(|o| PathBuf::from(text(&o.stdout).trim()).join("data/test_files"));
            dir.filter(|d| d.join("CT_small.dcm").is_file())
        })
        .clone();
    // Every caller's test, not only the first: each one skips the pydicom checks.
    radstream_test_gate::needs("python3 with pydicom and its test files (pip install pydicom)", found.is_some());
    found
}

/// Reads every file with pydicom (every element, nested ones included) and checks
/// PatientIdentityRemoved; panics naming the files that fail. Skipped without pydicom.
fn check_with_pydicom(files: &[PathBuf]) {
    if pydicom_test_files().is_none() {
        return;
    }
    const SCRIPT: &str = r#"
import sys, pydicom
bad = []
for p in sys.argv[1:]:
    try:
        ds = pydicom.dcmread(p)
        ds.walk(lambda d, e: e.value)
        ds.file_meta.TransferSyntaxUID
        if ds.get("PatientIdentityRemoved") != "YES":
            bad.append(p + ": PatientIdentityRemoved is " + repr(ds.get("PatientIdentityRemoved")))
    except Exception as e:
        bad.append(p + ": " + type(e).__name__ + ": " + str(e))
print("\n".join(bad))
sys.exit(1 if bad else 0)
"#;
    assert!(!files.is_empty());
    let out = Command::new(radstream_tests::python()).arg("-c").arg(SCRIPT).args(files).output().expect("run python3");
    assert!(out.status.success(), "pydicom rejects outputs:\n{}", show(&out));
}

/// Checks with pydicom that every file in `files` (relative to `root`) is named
/// `StudyInstanceUID/SeriesInstanceUID/SOPInstanceUID.dcm` by the UIDs inside it. Skipped
/// without pydicom.
fn check_named_by_uids(root: &Path, files: &[PathBuf]) {
    if pydicom_test_files().is_none() {
        return;
    }
    const SCRIPT: &str = r#"
import os, sys, pydicom
bad = []
for p in sys.argv[2:]:
    ds = pydicom.dcmread(os.path.join(sys.argv[1], p))
    named = os.path.join(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID + ".dcm")
    if p != named:
        bad.append(p + ": its UIDs name it " + named)
print("\n".join(bad))
sys.exit(1 if bad else 0)
"#;
    assert!(!files.is_empty());
    let out = Command::new(radstream_tests::python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(root)
        .args(files)
        .output()
        .expect("run python3");
    assert!(out.status.success(), "outputs not named by their UIDs:\n{}", show(&out));
}

/// `files_under(dir)`, each checked to be three parts deep and to end in `.dcm`.
fn uid_named_files_under(dir: &Path) -> Vec<PathBuf> {
    let files = files_under(dir);
    for rel in &files {
        assert_eq!(rel.components().count(), 3, "{}: not STUDY/SERIES/SOP.dcm", rel.display());
        assert_eq!(rel.extension(), Some(OsStr::new("dcm")), "{}", rel.display());
    }
    files
}

#[test]
fn keygen_writes_a_private_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deid.key");
    let out = radstream(&["keygen", "--id", "2026-11", "--out", s(&path)]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(s(&path)), "says where it wrote: {stdout}");
    assert!(stdout.contains("trusted side"), "reminds where the key belongs: {stdout}");
    let key = std::fs::read_to_string(&path).unwrap();
    assert!(key.contains("id = \"2026-11\""), "{key}");
    assert!(!stdout.contains(key.lines().find(|l| l.starts_with("secret")).unwrap()), "the secret is not printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let again = radstream(&["keygen", "--id", "other", "--out", s(&path)]);
    assert_eq!(again.status.code(), Some(2), "{}", show(&again));
    assert!(text(&again.stderr).contains("exists"), "{}", show(&again));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), key, "the existing key is untouched");

    let other = keygen(dir.path(), "other");
    assert_ne!(
        std::fs::read_to_string(other).unwrap().lines().last(),
        key.lines().last(),
        "every key has its own secret"
    );
}

#[test]
fn deid_usage_errors_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k1");
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("a")).unwrap();
    std::fs::write(input.join("a/b.dcm"), b"not dicom").unwrap();
    let out = dir.path().join("out");

    let expect_2 = |args: &[&str], says: &str| {
        let o = radstream(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        assert!(text(&o.stderr).contains(says), "{args:?} should say {says:?}: {}", show(&o));
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    };
    let missing = dir.path().join("missing.key");
    expect_2(&["deid", "--key-file", s(&missing), "--out", s(&out), s(&input)], "missing.key");
    expect_2(
        &["deid", "--key-env", "RADSTREAM_TEST_NO_SUCH_KEY_VAR", "--out", s(&out), s(&input)],
        "RADSTREAM_TEST_NO_SUCH_KEY_VAR",
    );
    expect_2(&["deid", "--out", s(&out), s(&input)], "--key-file");
    expect_2(
        &["deid", "--key-file", s(&key), "--key-env", "RADSTREAM_KEY", "--out", s(&out), s(&input)],
        "cannot be used with",
    );
    expect_2(
        &["deid", "--key-file", s(&key), "--option", "retain-everything", "--out", s(&out), s(&input)],
        "retain-uids",
    );
    expect_2(&["deid", "--key-file", s(&key), "--jobs", "0", "--out", s(&out), s(&input)], "--jobs");
    let safe = |extra: &[&str], says: &str| {
        let mut args = vec!["deid", "--key-file", s(&key), "--out", s(&out)];
        args.extend_from_slice(extra);
        args.push(s(&input));
        expect_2(&args, says);
    };
    safe(&["--option", "retain-safe-private"], "add --safe-private");
    safe(&["--safe-private", "GEMS_ACQU_01:0019:23"], "only used with --option retain-safe-private");
    for (value, says) in [
        ("GEMS_ACQU_01:0018:23", "odd"),
        ("GEMS_ACQU_01:1023", "two hex digits"),
        ("GEMS_ACQU_01:19:23", "four hex digits"),
        ("GEMS_ACQU_01", "CREATOR:GROUP:ELEMENT"),
    ] {
        safe(&["--option", "retain-safe-private", "--safe-private", value], says);
    }
    expect_2(
        &["deid", "--key-file", s(&key), "--burned-in", "quarantine", "--out", s(&out), s(&input)],
        "--quarantine-dir",
    );
    let quarantine = out.join("review");
    expect_2(
        &[
            "deid",
            "--key-file",
            s(&key),
            "--burned-in",
            "quarantine",
            "--quarantine-dir",
            s(&quarantine),
            "--out",
            s(&out),
            s(&input),
        ],
        "overlap",
    );
    expect_2(&["deid", "--key-file", s(&key), "--out", s(&out), s(&dir.path().join("no-such-input"))], "no-such-input");

    // --out inside or equal to an input folder: the outputs would become inputs.
    for inside in [input.join("deid"), input.join("a"), input.clone(), dir.path().join("in/./a/../new")] {
        let o = deid(&key, &inside, &[&input], &[]);
        assert_eq!(o.status.code(), Some(2), "{}: {}", inside.display(), show(&o));
        assert!(text(&o.stderr).contains("inside the input folder"), "{}", show(&o));
    }
    assert!(!input.join("deid").exists() && !input.join("new").exists());
    assert_eq!(files_under(&input), [PathBuf::from("a/b.dcm")], "the input is untouched");
}

#[test]
fn deid_help_lists_the_options_and_an_example() {
    let out = radstream(&["--help"]);
    let help = text(&out.stdout);
    for command in ["deid", "keygen"] {
        assert!(help.contains(command), "--help lists {command}: {help}");
    }
    let out = radstream(&["deid", "--help"]);
    assert!(out.status.success(), "{}", show(&out));
    let help = text(&out.stdout);
    let flags = ["--key-file", "--key-env", "--burned-in", "--quarantine-dir", "--jobs", "--rename", "--safe-private"];
    for name in OPTION_NAMES.iter().chain(&flags) {
        assert!(help.contains(name), "deid --help names {name}: {help}");
    }
    assert!(help.contains("name files by original UIDs"), "says when --rename is the choice: {help}");
    assert!(help.contains("Example") && help.contains("radstream deid --key-file"), "{help}");
}

#[test]
fn deid_accepts_underscores_and_names_each_file_that_fails() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k1");
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("notes")).unwrap();
    let junk = input.join("notes/readme.txt");
    std::fs::write(&junk, b"not a DICOM file").unwrap();
    let out = dir.path().join("out");
    let o = deid(&key, &out, &[&input], &["--option", "retain_uids", "--option", "clean-descriptors"]);
    assert_eq!(o.status.code(), Some(1), "a file that fails makes the exit status 1: {}", show(&o));
    let stderr = text(&o.stderr);
    assert!(stderr.lines().any(|l| l.starts_with(&format!("{}: ", junk.display()))), "{}", show(&o));
    assert!(!out.join("notes/readme.txt").exists());
    let stdout = text(&o.stdout);
    assert_eq!(summary_field(&stdout, "failed"), 1, "{stdout}");
    assert_eq!(summary_field(&stdout, "written"), 0, "{stdout}");
    assert!(stdout.contains("retain-uids, clean-descriptors"), "the summary names the options: {stdout}");
}

#[test]
fn deid_synthetic_studies_keeps_the_layout_and_removes_the_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (keygen(dir.path(), "k1"), keygen(dir.path(), "k2"));
    let input = synth(&dir.path().join("in"), 3, 11);
    let inputs = files_under(&input);
    assert!(inputs.len() > 5 && inputs.iter().any(|p| p.components().count() > 1), "{inputs:?}");
    for phi in SYNTH_PHI {
        assert!(
            inputs.iter().any(|p| contains(&std::fs::read(input.join(p)).unwrap(), phi)),
            "the synthetic inputs carry {} to remove",
            text(phi)
        );
    }

    let out1 = dir.path().join("out1");
    let o = deid(&k1, &out1, &[&input], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(summary_field(&text(&o.stdout), "written"), inputs.len(), "{}", show(&o));
    assert_eq!(files_under(&out1), inputs, "the relative layout is kept, nothing else is left behind");
    for rel in &inputs {
        let bytes = std::fs::read(out1.join(rel)).unwrap();
        for phi in SYNTH_PHI {
            assert!(!contains(&bytes, phi), "{} still holds {}", rel.display(), text(phi));
        }
    }
    check_with_pydicom(&inputs.iter().map(|p| out1.join(p)).collect::<Vec<_>>());

    // The same key gives the same bytes, whatever the threading; another key other bytes.
    let out2 = dir.path().join("out2");
    let o = deid(&k1, &out2, &[&input], &["--jobs", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out3 = dir.path().join("out3");
    let o = deid(&k2, &out3, &[&input], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    for rel in &inputs {
        let first = std::fs::read(out1.join(rel)).unwrap();
        assert!(first == std::fs::read(out2.join(rel)).unwrap(), "{}: same key, different bytes", rel.display());
        assert!(first != std::fs::read(out3.join(rel)).unwrap(), "{}: other key, same bytes", rel.display());
    }

    // A file argument is written under its own name.
    let single = &inputs[0];
    let out4 = dir.path().join("out4");
    let o = deid(&k1, &out4, &[&input.join(single)], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let name = PathBuf::from(single.file_name().unwrap());
    assert_eq!(files_under(&out4), std::slice::from_ref(&name));
    assert_eq!(std::fs::read(out4.join(&name)).unwrap(), std::fs::read(out1.join(single)).unwrap());
}

#[test]
fn deid_names_a_truncated_input_and_writes_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k1");
    let input = synth(&dir.path().join("in"), 1, 12);
    let inputs = files_under(&input);
    assert!(inputs.len() > 1, "{inputs:?}");
    let truncated_rel = &inputs[inputs.len() / 2];
    let truncated = input.join(truncated_rel);
    let bytes = std::fs::read(&truncated).unwrap();
    // Pixel Data is the last element: without its last bytes the file is short of its length.
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();

    let out = dir.path().join("out");
    let o = deid(&key, &out, &[&input], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let stderr = text(&o.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&format!("{}: ", truncated.display())))
        .unwrap_or_else(|| panic!("the truncated file is named: {}", show(&o)));
    assert!(line.contains("failed"), "{line}");
    assert_eq!(stderr.lines().filter(|l| l.contains(": failed")).count(), 1, "only that file failed: {stderr}");
    let expected: Vec<_> = inputs.iter().filter(|p| *p != truncated_rel).cloned().collect();
    assert_eq!(files_under(&out), expected, "the others are written, no partial or temporary file is left");
    let stdout = text(&o.stdout);
    assert_eq!((summary_field(&stdout, "written"), summary_field(&stdout, "failed")), (expected.len(), 1));
}

#[test]
fn deid_pydicom_test_files_with_burned_in_rejection_and_quarantine() {
    let Some(test_files) = pydicom_test_files() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k1");
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    // JPEG2000.dcm is Secondary Capture without BurnedInAnnotation: suspected of burned-in text.
    let clean = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm"];
    let suspected = "JPEG2000.dcm";
    for name in clean.iter().chain([&suspected]) {
        std::fs::copy(test_files.join(name), input.join(name)).unwrap();
    }

    let out = dir.path().join("out");
    let o = deid(&key, &out, &[&input], &[]);
    assert_eq!(o.status.code(), Some(1), "a rejected file makes the exit status 1: {}", show(&o));
    let rejection = format!("{}: rejected: BurnedInAnnotation is absent", input.join(suspected).display());
    assert!(text(&o.stderr).lines().any(|l| l.starts_with(&rejection)), "{}", show(&o));
    assert_eq!(summary_field(&text(&o.stdout), "rejected"), 1, "{}", show(&o));
    let expected: Vec<PathBuf> = clean.iter().map(PathBuf::from).collect();
    assert_eq!(files_under(&out), expected);

    let (out2, review) = (dir.path().join("out2"), dir.path().join("review"));
    let o = deid(&key, &out2, &[&input], &["--burned-in", "quarantine", "--quarantine-dir", s(&review)]);
    assert_eq!(o.status.code(), Some(0), "quarantined files count as handled: {}", show(&o));
    assert_eq!(summary_field(&text(&o.stdout), "quarantined"), 1, "{}", show(&o));
    assert_eq!(files_under(&out2), expected);
    assert_eq!(files_under(&review), [PathBuf::from(suspected)]);

    let outputs: Vec<PathBuf> = clean
        .iter()
        .map(|n| out.join(n))
        .chain(clean.iter().map(|n| out2.join(n)))
        .chain([review.join(suspected)])
        .collect();
    for p in &outputs {
        assert!(
            !contains(&std::fs::read(p).unwrap(), b"CompressedSamples"),
            "{}: the patient name is left",
            p.display()
        );
    }
    check_with_pydicom(&outputs);
}

#[test]
fn deid_rename_names_outputs_by_their_pseudonymized_uids() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k1");
    let input = synth(&dir.path().join("in"), 2, 13);
    let inputs = files_under(&input);
    // synth names folders and files by the original UIDs: the names are identifiers themselves.
    let input_names: HashSet<&OsStr> = inputs.iter().flat_map(|p| p.iter()).collect();

    let plain = dir.path().join("plain");
    let o = deid(&key, &plain, &[&input], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let renamed = dir.path().join("renamed");
    let o = deid(&key, &renamed, &[&input], &["--rename"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let stdout = text(&o.stdout);
    assert_eq!(summary_field(&stdout, "written"), inputs.len(), "{stdout}");
    assert!(stdout.contains("named by pseudonymized UIDs"), "{stdout}");

    let outputs = uid_named_files_under(&renamed);
    assert_eq!(outputs.len(), inputs.len(), "{outputs:?}");
    for rel in &outputs {
        assert!(rel.iter().all(|part| !input_names.contains(part)), "{} reuses an input's name", rel.display());
    }
    // The same bytes as without --rename, named otherwise.
    let contents = |root: &Path, files: &[PathBuf]| {
        let mut all: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(root.join(p)).unwrap()).collect();
        all.sort();
        all
    };
    assert!(contents(&plain, &inputs) == contents(&renamed, &outputs), "--rename changed the contents");
    check_named_by_uids(&renamed, &outputs);
    check_with_pydicom(&outputs.iter().map(|p| renamed.join(p)).collect::<Vec<_>>());

    // The same instance twice: one copy is written, the other fails and replaces nothing.
    let dup = dir.path().join("dup");
    std::fs::create_dir_all(&dup).unwrap();
    std::fs::copy(input.join(&inputs[0]), dup.join("copy.dcm")).unwrap();
    let twice = dir.path().join("twice");
    let o = deid(&key, &twice, &[&input, &dup], &["--rename"]);
    assert_eq!(o.status.code(), Some(1), "a second copy of an instance is a failure: {}", show(&o));
    let stdout = text(&o.stdout);
    assert_eq!((summary_field(&stdout, "written"), summary_field(&stdout, "failed")), (inputs.len(), 1), "{stdout}");
    let stderr = text(&o.stderr);
    let failed: Vec<&str> = stderr.lines().filter(|l| l.contains(": failed: ")).collect();
    assert_eq!(failed.len(), 1, "{stderr}");
    let copies = [input.join(&inputs[0]), dup.join("copy.dcm")];
    assert!(
        copies.iter().any(|c| failed[0].starts_with(&format!("{}: failed: the same instance", c.display()))),
        "names one of the two copies and why: {stderr}"
    );
    assert_eq!(files_under(&twice), outputs);
    assert!(contents(&twice, &outputs) == contents(&renamed, &outputs));
}

#[test]
fn deid_rename_names_quarantined_files_by_uids_too() {
    let Some(test_files) = pydicom_test_files() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k1");
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    // JPEG2000.dcm is Secondary Capture without BurnedInAnnotation: quarantined.
    for name in ["CT_small.dcm", "JPEG2000.dcm"] {
        std::fs::copy(test_files.join(name), input.join(name)).unwrap();
    }
    let (out, review) = (dir.path().join("out"), dir.path().join("review"));
    let o = deid(&key, &out, &[&input], &["--rename", "--burned-in", "quarantine", "--quarantine-dir", s(&review)]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    for (root, n) in [(&out, 1), (&review, 1)] {
        let files = uid_named_files_under(root);
        assert_eq!(files.len(), n, "{}: {files:?}", root.display());
        check_named_by_uids(root, &files);
    }
}

#[test]
fn deid_retain_safe_private_keeps_only_the_allowed_private_elements() {
    let Some(test_files) = pydicom_test_files() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k1");
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let source = input.join("ct.dcm");
    // CT_small.dcm carries GE private blocks in nine groups; add one whose creator holds a
    // colon, to allow by name without its group.
    const ADD_BLOCK: &str = r#"
import sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
block = ds.private_block(0x0051, "ACME:CT 1.0", create=True)
block.add_new(0x10, "LO", "kept")
block.add_new(0x11, "LO", "removed")
ds.save_as(sys.argv[2])
"#;
    let o = Command::new(radstream_tests::python())
        .arg("-c")
        .arg(ADD_BLOCK)
        .arg(test_files.join("CT_small.dcm"))
        .arg(&source)
        .output()
        .expect("run python3");
    assert!(o.status.success(), "{}", show(&o));

    // Prints how many private elements the input has, then each private element of the output
    // and whether its value is the input's.
    const COMPARE: &str = r#"
import sys, pydicom
private = lambda ds: {str(e.tag): e.value for e in ds.iterall() if e.tag.is_private}
before, after = private(pydicom.dcmread(sys.argv[1])), private(pydicom.dcmread(sys.argv[2]))
print("before", len(before))
for tag, value in sorted(after.items()):
    print(tag, "same" if before.get(tag) == value else "changed")
"#;
    let gems = ["(0019,0010) same", "(0019,1023) same"];
    let acme = ["(0051,0010) same", "(0051,1010) same"];
    let cases: [(&[&str], Vec<&str>); 2] = [
        (&["GEMS_ACQU_01:0019:23"], gems.to_vec()),
        (&["GEMS_ACQU_01:23", "ACME:CT 1.0:10"], gems.iter().chain(&acme).copied().collect()),
    ];
    for (i, (rules, kept)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("out{i}"));
        let mut extra = vec!["--option", "retain-safe-private"];
        for rule in *rules {
            extra.extend(["--safe-private", rule]);
        }
        let o = deid(&key, &out, &[&input], &extra);
        assert_eq!(o.status.code(), Some(0), "{rules:?}: {}", show(&o));
        assert!(text(&o.stdout).contains("retain-safe-private"), "{}", show(&o));
        let o = Command::new(radstream_tests::python())
            .arg("-c")
            .arg(COMPARE)
            .arg(&source)
            .arg(out.join("ct.dcm"))
            .output()
            .expect("run python3");
        assert!(o.status.success(), "{}", show(&o));
        let report = text(&o.stdout);
        let mut lines = report.lines();
        let before: usize = lines.next().and_then(|l| l.strip_prefix("before ")).unwrap().parse().unwrap();
        assert!(before > 100, "the input has private elements to remove: {report}");
        assert_eq!(lines.collect::<Vec<_>>(), *kept, "{rules:?}: exactly these remain, unchanged");
        check_with_pydicom(&[out.join("ct.dcm")]);
    }
}

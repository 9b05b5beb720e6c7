use std::path::PathBuf;
use std::process::ExitCode;

use radstream_operators::pseudonymize::ProfileOption;

use super::options::parse_safe_private;
use super::plan::{BurnedInPolicy, DeidCommand, KeySource};

const KEY: &str = "id = \"test\"\nsecret = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), KEY).unwrap();
        for f in ["in/a/b.dcm", "in/c.dcm", "in/DICOMDIR", "single/x.dcm"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"not dicom").unwrap();
        }
        Fixture { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn command(&self, out: &str, inputs: &[&str]) -> DeidCommand {
        DeidCommand {
            key: KeySource::File(self.path("key")),
            options: vec![],
            safe_private: vec![],
            burned_in: BurnedInPolicy::Reject,
            quarantine_dir: None,
            jobs: None,
            rename: false,
            out: self.path(out),
            inputs: inputs.iter().map(|i| self.path(i)).collect(),
        }
    }
}

#[test]
fn folders_keep_their_layout_and_files_their_name() {
    let f = Fixture::new();
    let plan = f.command("out", &["in", "single/x.dcm"]).plan().unwrap();
    let relative: Vec<_> = plan.inputs().iter().map(|i| i.relative.to_str().unwrap().to_string()).collect();
    assert_eq!(relative, ["DICOMDIR", "a/b.dcm", "c.dcm", "x.dcm"]);
    assert_eq!(plan.inputs()[1].source, f.path("in/a/b.dcm"));
}

#[test]
fn outputs_may_not_overlap_inputs() {
    let f = Fixture::new();
    for out in ["in", "in/new/deeper", "in/a", "in/./a/../new"] {
        let e = f.command(out, &["in"]).plan().unwrap_err();
        assert!(e.0.contains("inside the input folder"), "{out}: {e}");
    }
    let e = f.command("key", &["in"]).plan().unwrap_err();
    assert!(e.0.contains("not a folder"), "{e}");
    let e = f.command("single", &["single/x.dcm"]).plan().unwrap_err();
    assert!(e.0.contains("is inside --out"), "{e}");
    f.command("out", &["in"]).plan().unwrap();
    f.command("in2", &["in"]).plan().unwrap();

    let mut c = f.command("out", &["in"]);
    c.burned_in = BurnedInPolicy::Quarantine;
    c.quarantine_dir = Some(f.path("out/q"));
    assert!(c.plan().unwrap_err().0.contains("overlap"));
    c.quarantine_dir = Some(f.path("in/q"));
    assert!(c.plan().unwrap_err().0.contains("--quarantine-dir"));
    c.quarantine_dir = Some(f.path("q"));
    c.plan().unwrap();
    c.quarantine_dir = None;
    assert!(c.plan().unwrap_err().0.contains("needs --quarantine-dir"));
}

#[test]
fn two_inputs_for_one_output_are_refused() {
    let f = Fixture::new();
    std::fs::write(f.path("in/x.dcm"), b"x").unwrap();
    let e = f.command("out", &["in", "single"]).plan().unwrap_err();
    assert!(e.0.contains("would both be written"), "{e}");
}

#[test]
fn with_rename_inputs_may_share_a_name() {
    let f = Fixture::new();
    std::fs::write(f.path("in/x.dcm"), b"x").unwrap();
    let mut c = f.command("out", &["in", "single"]);
    c.rename = true;
    assert_eq!(c.plan().unwrap().inputs().len(), 5);
}

#[test]
fn safe_private_goes_with_its_option() {
    let f = Fixture::new();
    let mut c = f.command("out", &["in"]);
    c.options = vec![ProfileOption::RetainSafePrivate];
    let e = c.plan().unwrap_err();
    assert!(e.0.starts_with("--option retain-safe-private") && e.0.contains("add --safe-private"), "{e}");
    c.safe_private = vec![parse_safe_private("GEMS_ACQU_01:0019:23").unwrap()];
    c.plan().unwrap();
    c.options.clear();
    let e = c.plan().unwrap_err();
    assert!(e.0.starts_with("--safe-private is only used with --option retain-safe-private"), "{e}");
    c.options = vec![ProfileOption::RetainSafePrivate];
    c.safe_private[0].group = Some("0010".into());
    assert!(c.plan().unwrap_err().0.starts_with("--safe-private: "));
}

#[test]
fn key_and_option_problems_are_usage_errors() {
    let f = Fixture::new();
    let mut c = f.command("out", &["in"]);
    c.key = KeySource::File(f.path("missing-key"));
    assert!(c.plan().unwrap_err().0.contains("missing-key"));
    c.key = KeySource::Env("RADSTREAM_TEST_DEID_KEY_THAT_IS_NOT_SET".into());
    assert!(c.plan().unwrap_err().0.contains("not set"));
    let mut c = f.command("out", &["in"]);
    c.options = vec![ProfileOption::RetainSafePrivate];
    assert!(c.plan().unwrap_err().0.starts_with("--option"));
    let c = f.command("out", &["in/nothing-here"]);
    assert!(c.plan().is_err());
}

#[test]
fn files_that_fail_are_reported_and_nothing_is_written() {
    let f = Fixture::new();
    let plan = f.command("out", &["in"]).plan().unwrap();
    let report = plan.execute(|_, _| {});
    assert_eq!(report.failed(), 3);
    assert_eq!(report.exit_code(), ExitCode::FAILURE);
    let notes = report.notes();
    assert!(notes.iter().any(|n| n.starts_with(&format!("{}: failed: ", f.path("in/c.dcm").display()))));
    assert!(!f.path("out").join("c.dcm").exists());
}

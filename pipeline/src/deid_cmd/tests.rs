use super::*;

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
fn safe_private_values_split_from_the_right() {
    let rule = |creator: &str, group: Option<&str>, element: &str| SafePrivateRule {
        creator: creator.into(),
        group: group.map(String::from),
        element: element.into(),
    };
    assert_eq!(parse_safe_private("GEMS_ACQU_01:0019:23").unwrap(), rule("GEMS_ACQU_01", Some("0019"), "23"));
    assert_eq!(parse_safe_private("GEMS_ACQU_01:23").unwrap(), rule("GEMS_ACQU_01", None, "23"));
    assert_eq!(
        parse_safe_private("SIEMENS CT VA0  COAD :0019:a0").unwrap(),
        rule("SIEMENS CT VA0  COAD", Some("0019"), "a0")
    );
    assert_eq!(parse_safe_private("ACME:CT 1.0:0029:10").unwrap(), rule("ACME:CT 1.0", Some("0029"), "10"));
    assert_eq!(parse_safe_private("ACME:CT:10").unwrap(), rule("ACME:CT", None, "10"));
    for (value, says) in [
        ("GEMS", "expected CREATOR"),
        ("GEMS:1023", "two hex digits"),
        ("GEMS:+1", "two hex digits"),
        ("GEMS:0019:", "two hex digits"),
        ("GEMS:19:23", "four hex digits"),
        ("GEMS:0018:23", "odd"),
        ("GEMS:0007:23", "odd"),
        (":0019:23", "empty"),
        ("  :23", "empty"),
    ] {
        let e = parse_safe_private(value).unwrap_err();
        assert!(e.contains(says), "{value}: {e}");
        assert!(!e.contains("safe_private["), "{value}: speaks config-file: {e}");
    }
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

#[test]
fn option_names_parse_with_dashes_or_underscores() {
    let cmd = clap::Command::new("t");
    for o in ProfileOption::ALL {
        assert_eq!(ProfileOptionParser.parse_ref(&cmd, None, OsStr::new(o.name())).unwrap(), o);
        let underscored = o.name().replace('-', "_");
        assert_eq!(ProfileOptionParser.parse_ref(&cmd, None, OsStr::new(&underscored)).unwrap(), o);
    }
    assert!(ProfileOptionParser.parse_ref(&cmd, None, OsStr::new("retain-everything")).is_err());
}

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

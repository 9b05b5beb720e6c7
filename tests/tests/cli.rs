//! The `radstream` command line, without servers: validate, route --dry-run, synth, demo.

use std::process::Command;

use radstream_tests::{radstream_bin, run_radstream as radstream};

const CONFIG: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"
input_topic = "dicom.instances"

[[operators]]
type = "route"
default_action = "drop"

[[operators.rules]]
name = "ct-chest"
modality = ["CT"]
branch = "chest-ct"

[[operators.rules]]
name = "radiographs"
modality = ["CR", "DX"]
branch = "xr"

[[operators]]
type = "stow"
url = "http://127.0.0.1:8042/dicom-web"
"#;

#[test]
fn validate_accepts_a_good_config_and_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, CONFIG).unwrap();
    let out = radstream(&["validate", "--config", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("route -> stow"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, CONFIG.replace("http://127.0.0.1:8042/dicom-web", "ftp://pacs")).unwrap();
    let out = radstream(&["validate", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("operators[1].url"), "the error names the key: {err}");

    let out = radstream(&["validate", "--config", dir.path().join("missing.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn validate_applies_environment_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let out = Command::new(radstream_bin())
        .args(["validate", "--config", path.to_str().unwrap()])
        .env("RADSTREAM__RUNTIME__BATCH_SIZE", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runtime.batch_size"));
}

#[test]
fn route_dry_run_prints_the_matching_rule_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let studies = dir.path().join("studies");
    let out = radstream(&["synth", "--studies", "3", "--out", studies.to_str().unwrap(), "--seed", "7"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.path().join("studies/not-dicom.dcm"), b"hello").unwrap();

    let out = radstream(&["route", "--dry-run", "--config", config.to_str().unwrap(), studies.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() > 3, "{stdout}");
    let modality_of = |line: &str| line.split('\t').nth(1).unwrap_or("").to_string();
    assert!(lines.iter().any(|l| modality_of(l) == "ct-chest" && l.ends_with("forward -> chest-ct")), "{stdout}");
    assert!(lines.iter().any(|l| modality_of(l) == "radiographs" && l.ends_with("forward -> xr")), "{stdout}");
    assert!(lines.iter().any(|l| l.contains("(default)\tdrop")), "MR matches no rule and is dropped: {stdout}");
    assert!(lines.iter().any(|l| l.contains("not-dicom.dcm\t(unreadable)")), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "an unreadable file makes the exit status 1");
}

#[test]
fn help_lists_every_command() {
    let out = radstream(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for command in [
        "run",
        "validate",
        "route",
        "demo",
        "synth",
        "publish",
        "keygen",
        "deid",
        "preprocess",
        "infer",
        "dlq",
        "loadgen",
    ] {
        assert!(text.contains(command), "--help lists {command}: {text}");
    }
}

#[test]
fn demo_runs_the_whole_chain_and_the_model_flags_exactly_the_planted_bleeds() {
    let dir = tempfile::tempdir().unwrap();
    let port = radstream_tests::free_port().to_string();
    // From a folder with no `models/` in it: the demo brings its model along.
    let elsewhere = tempfile::tempdir().unwrap();
    // Seed 1 (the default), 4 studies: study 0 is a head CT with a planted bleed, study 3 a clean
    // head CT, 1 and 2 are a radiograph and an MR, which no model takes.
    let out = Command::new(radstream_bin())
        .current_dir(elsewhere.path())
        .env_remove("RADSTREAM_LOG")
        .args([
            "demo",
            "--studies",
            "4",
            "--out",
            dir.path().to_str().unwrap(),
            "--metrics-listen",
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |name: &str| -> &str {
        stdout.lines().map(str::trim_start).find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {stdout}"))
    };
    // The numbers of a summary line, in order.
    let numbers = |name: &str| -> Vec<u64> {
        line(name)[name.len()..].split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect()
    };
    let field = |name: &str| numbers(name)[0];
    let (total, delivered, dropped, dead) =
        (field("instances in"), field("delivered"), field("dropped"), field("dead-lettered"));
    assert!(total > 0 && delivered > 0, "{stdout}");
    assert_eq!(delivered + dropped + dead, total, "every instance ends in exactly one place: {stdout}");
    assert_eq!(dead, 0, "{stdout}");
    // What was delivered is in the DICOMweb-like folder: per slice with a finding its SR, SEG
    // and overlay, filed under the source's study; and one FHIR bundle per such slice.
    let stored: Vec<_> = walk(&dir.path().join("dicomweb/studies"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    assert_eq!(stored.len() as u64, 3 * delivered, "{stored:?}");
    let bundles =
        walk(&dir.path().join("fhir")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")).count();
    assert_eq!(bundles as u64, delivered);

    assert!(line("model").contains("ct-head-bleed 0.1.0 (sha256 8a822531f4ae)"), "{stdout}");
    assert!(dir.path().join("models/demo/ct-head-bleed.onnx").is_file(), "the model is written beside the outputs");
    let with_findings = field("with findings");
    assert!(with_findings > 0, "{stdout}");
    assert_eq!(with_findings, delivered, "the slices with findings are the ones with results: {stdout}");
    assert_eq!(field("critical"), with_findings, "the bleed finding is critical: {stdout}");
    assert_eq!(field("studies flagged"), 1, "{stdout}");
    let [found, planted, clean_flagged] = numbers("ground truth")[..] else { panic!("ground truth: {stdout}") };
    assert_eq!((found, planted, clean_flagged), (1, 1, 0), "exactly the planted study is flagged: {stdout}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn run_refuses_an_invalid_config_with_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, CONFIG.replace("input_topic = \"dicom.instances\"", "input_topic = \"bad topic!\"")).unwrap();
    let out = radstream(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kafka.input_topic"));
}

#[test]
fn run_exits_2_when_an_operator_cannot_be_built() {
    // Valid config, but the pseudonymization key file does not exist: found when the operator
    // is built, before any event is read, and reported like any configuration error.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deid.toml");
    let missing = dir.path().join("no-such.key");
    let config = CONFIG.replace(
        "[[operators]]\ntype = \"stow\"",
        &format!("[[operators]]\ntype = \"pseudonymize\"\nkey_file = {:?}\n\n[[operators]]\ntype = \"stow\"", missing),
    );
    std::fs::write(&path, config.replace("default_action = \"drop\"", "default_action = \"drop\"\n")).unwrap();
    let out = radstream(&["validate", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "validate does not read files: {}", String::from_utf8_lossy(&out.stderr));
    let out = radstream(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("operator 1 (pseudonymize): key_file") && stderr.contains("no-such.key"), "{stderr}");
}

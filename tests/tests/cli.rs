//! The `radstream` command line, without servers: validate, route --dry-run, synth, demo.

use std::collections::BTreeSet;
use std::process::Command;

use dicom_core::header::Header as _;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;
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

/// The commands `radstream --help` lists: the first word of each entry of its `Commands:`
/// section (an entry starts two spaces in; its wrapped description lines further).
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim_end() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The commands the source has: one module per command in `pipeline/src/cli.rs` (its
/// `pub mod` lines), less `common`, which the commands share.
fn cli_modules() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline/src/cli.rs");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod ")?.strip_suffix(';'))
        .filter(|name| *name != "common")
        .map(str::to_string)
        .collect()
}

#[test]
fn help_lists_every_command() {
    let out = radstream(&["--help"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut listed = listed_commands(&text);
    listed.sort();
    // Every command module is a command of the binary, by its own name, and nothing else is
    // (but clap's `help`).
    let mut expected = cli_modules();
    expected.push("help".into());
    expected.sort();
    assert_eq!(listed, expected, "the commands of --help against pipeline/src/cli.rs:\n{text}");
    // The ones this tree has, named here too, so that neither list can come out empty unnoticed.
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
        "lake",
    ] {
        assert!(listed.iter().any(|c| c == command), "--help lists {command}: {text}");
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
            "--seed",
            "1",
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

    // The summary names the model file the demo wrote (the hash of its bytes, computed here).
    let onnx = std::fs::read(dir.path().join("models/demo/ct-head-bleed.onnx"))
        .expect("the model is written beside the outputs");
    let sha256: String = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&onnx))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(line("model").contains(&format!("ct-head-bleed 0.1.0 (sha256 {})", &sha256[..12])), "{stdout}");
    let with_findings = field("with findings");
    assert!(with_findings > 0, "{stdout}");
    assert_eq!(with_findings, delivered, "the slices with findings are the ones with results: {stdout}");
    assert_eq!(field("critical"), with_findings, "the bleed finding is critical: {stdout}");
    assert_eq!(field("studies flagged"), 1, "{stdout}");
    let [found, planted, clean_flagged] = numbers("ground truth")[..] else { panic!("ground truth: {stdout}") };
    assert_eq!((found, planted, clean_flagged), (1, 1, 0), "exactly the planted study is flagged: {stdout}");

    // Per slice, against `synth --ground-truth` rather than the demo's own study-level score:
    // the result objects cite as their source images exactly the slices the bleed was planted on,
    // one slice each. The demo model flags no neighbour of a planted slice (seed 1: two planted
    // slices, two SRs), so the bound is exact, not a tolerance.
    let truth_file = elsewhere.path().join("ground-truth.json");
    let synth_dir = elsewhere.path().join("synth");
    let (synth_dir_arg, truth_arg) = (synth_dir.to_str().unwrap(), truth_file.to_str().unwrap());
    let out =
        radstream(&["synth", "--studies", "4", "--seed", "1", "--out", synth_dir_arg, "--ground-truth", truth_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(&truth_file).unwrap()).unwrap();
    let planted_slices: BTreeSet<String> = truth["studies"]
        .as_array()
        .expect("studies")
        .iter()
        .filter_map(|s| s["lesion"]["instances"].as_array())
        .flatten()
        .map(|i| i["sop_instance_uid"].as_str().expect("sop_instance_uid").to_string())
        .collect();
    assert!(!planted_slices.is_empty(), "synth planted nothing: {truth}");
    let objects: Vec<_> = stored.iter().map(|p| dicom_object::open_file(p).unwrap()).collect();
    let made: BTreeSet<String> = objects.iter().map(|o| text(o, tags::SOP_INSTANCE_UID)).collect();
    for (kind, class) in [("SR", SR_CLASS), ("SEG", SEG_CLASS), ("overlay", SC_CLASS)] {
        let mut cited = BTreeSet::new();
        for object in objects.iter().filter(|o| text(o, tags::SOP_CLASS_UID) == class) {
            // What it references, less the result objects themselves (an SR may cite its SEG).
            let sources: BTreeSet<String> = referenced_instances(object).difference(&made).cloned().collect();
            assert_eq!(sources.len(), 1, "a {kind} cites one source slice, this one {sources:?}");
            assert!(cited.insert(sources.into_iter().next().unwrap()), "two {kind}s cite the same slice");
        }
        assert_eq!(cited, planted_slices, "the {kind}s cite other slices than synth planted the bleed on");
    }
}

const SR_CLASS: &str = "1.2.840.10008.5.1.4.1.1.88.34";
const SEG_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.4";
const SC_CLASS: &str = "1.2.840.10008.5.1.4.1.1.7";

fn text(object: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    object.element(tag).map(value_text).unwrap_or_default()
}

fn value_text(element: &InMemElement) -> String {
    element.to_str().map(|s| s.trim_end_matches(['\0', ' ']).to_string()).unwrap_or_default()
}

/// Every ReferencedSOPInstanceUID (0008,1155) at any depth: in an SR the content items and the
/// evidence, in a SEG the derivation images, in an overlay the source images.
fn referenced_instances(object: &InMemDicomObject) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for element in object.iter() {
        if element.tag() == tags::REFERENCED_SOP_INSTANCE_UID {
            out.insert(value_text(element));
        } else if let Some(items) = element.value().items() {
            out.extend(items.iter().flat_map(referenced_instances));
        }
    }
    out
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
    // A research PACS takes the pseudonymized instances without a relink: said so in [chain].
    let config = format!("{config}\n[chain]\npseudonymized_destinations = [\"stow\"]\n");
    std::fs::write(&path, config.replace("default_action = \"drop\"", "default_action = \"drop\"\n")).unwrap();
    let out = radstream(&["validate", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "validate does not read files: {}", String::from_utf8_lossy(&out.stderr));
    let out = radstream(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("operator 1 (pseudonymize): key_file") && stderr.contains("no-such.key"), "{stderr}");
}

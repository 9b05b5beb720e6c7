use super::*;

/// The test model's manifest with `sha256`.
pub(crate) fn tiny_manifest(sha256: &str) -> String {
    format!(
        r#"
name = "tiny"
version = "1.2.3"
file = "tiny.onnx"
sha256 = "{sha256}"
task = "classification"
validated_with = ["0.1.0"]

[input]
modalities = ["CT"]
input = "slice"
size = [8, 8]
window = {{ center = 40, width = 80 }}
channels = 1

[tensors]
input = "image"
outputs = ["score", "flag", "mask"]

[[findings]]
output = "score"
label = "bright"
code = {{ system = "SCT", value = "1386000", meaning = "Intracranial hemorrhage" }}
threshold = 0.5
critical = true

[[findings]]
output = "flag"
index = 1
label = "dark"
code = {{ system = "RADLEX", value = "RID4700", meaning = "dark" }}
threshold = 0.6
"#
    )
}

pub(crate) fn tiny_hash() -> String {
    sha256_hex(&std::fs::read(testdata().join("tiny.onnx")).unwrap())
}

pub(crate) fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/infer/testdata")
}

#[test]
fn a_manifest_parses_and_its_input_takes_the_model_name() {
    let m = ModelManifest::from_toml(&tiny_manifest(&tiny_hash())).unwrap();
    assert_eq!((m.name.as_str(), m.version.as_str(), m.task), ("tiny", "1.2.3", Task::Classification));
    assert_eq!(m.input.name, "tiny");
    assert_eq!(m.input.image_shape(), [1, 8, 8]);
    assert_eq!(m.findings[1].index, 1);
    assert_eq!(m.findings[1].code.system.designator(), "RADLEX");
    assert!(m.findings[0].critical && !m.findings[1].critical);
}

#[test]
fn bad_fields_are_named() {
    let good = tiny_manifest(&tiny_hash());
    for (from, to, key, says) in [
        ("sha256 = \"", "sha256 = \"XY", "sha256", "64 lowercase hex"),
        ("version = \"1.2.3\"", "version = \"\"", "version", "empty"),
        ("output = \"score\"", "output = \"scores\"", "findings[0].output", "not one of tensors.outputs"),
        ("threshold = 0.5", "threshold = 1.5", "findings[0].threshold", "between 0 and 1"),
        ("value = \"1386000\"", "value = \"RID1\"", "findings[0].code.value", "SNOMED CT"),
        ("value = \"RID4700\"", "value = \"4700\"", "findings[1].code.value", "RadLex"),
        ("channels = 1", "channels = 2", "input.channels", "1 or 3"),
        ("validated_with = [\"0.1.0\"]", "validated_with = []", "validated_with", "versions"),
        (
            "outputs = [\"score\", \"flag\", \"mask\"]",
            "outputs = [\"score\", \"score\"]",
            "tensors.outputs[1]",
            "twice",
        ),
    ] {
        let text = good.replacen(from, to, 1);
        assert_ne!(text, good, "{from}");
        let e = ModelManifest::from_toml(&text).unwrap_err();
        assert_eq!(e.key, key, "{from} -> {to}: {e}");
        assert!(e.problem.contains(says), "{from} -> {to}: {e}");
    }
    let e = ModelManifest::from_toml(&good.replacen("channels = 1", "channels = 1\nchanels = 3", 1)).unwrap_err();
    assert_eq!(e.key, "input");
    assert!(e.problem.contains("chanels"), "{e}");
    let e =
        ModelManifest::from_toml(&good.replacen("task = \"classification\"", "task = \"regression\"", 1)).unwrap_err();
    assert!(e.problem.contains("regression"), "{e}");
}

#[test]
fn load_checks_the_hash_and_refuses_another_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(testdata().join("tiny.onnx"), dir.path().join("tiny.onnx")).unwrap();
    let path = dir.path().join("tiny.model.toml");
    std::fs::write(&path, tiny_manifest(&tiny_hash())).unwrap();
    let verified = ModelManifest::load(&path).unwrap();
    assert_eq!(verified.manifest.file, dir.path().join("tiny.onnx"));
    assert_eq!(sha256_hex(&verified.onnx), tiny_hash());

    let wrong = "0".repeat(64);
    std::fs::write(&path, tiny_manifest(&wrong)).unwrap();
    let e = ModelManifest::load(&path).unwrap_err();
    assert!(e.key.ends_with("tiny.model.toml.sha256"), "{e}");
    for part in [&tiny_hash(), &wrong, &dir.path().join("tiny.onnx").display().to_string()] {
        assert!(e.problem.contains(part.as_str()), "{e} lacks {part}");
    }

    std::fs::remove_file(dir.path().join("tiny.onnx")).unwrap();
    let e = ModelManifest::load(&path).unwrap_err();
    assert!(e.key.ends_with(".file") && e.problem.contains("cannot read"), "{e}");
}

#[test]
fn the_hash_is_sha256() {
    // FIPS 180-2's "abc".
    assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

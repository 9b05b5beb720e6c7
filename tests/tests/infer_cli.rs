//! `radstream infer` from the command line, without servers: synthetic studies in, a findings
//! table and `.findings.json` files out. Runs the operators crate's tiny test model
//! (`operators/src/infer/testdata/tiny.onnx`: score = mean of sigmoid(2x - 1) over the 8×8
//! preprocessed image), checked against the same preprocessing from `radstream preprocess`; and
//! the demo model when `models/demo/ct-head-bleed.onnx` is there and its manifest has its hash.

use std::path::{Path, PathBuf};

use radstream_operators::infer::manifest::sha256_hex;
use radstream_tests::{
    files_ending, lossy_text as text, path_str as s, run_radstream as radstream, show_output as show,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

const INPUT: &str = r#"
modalities = ["CT"]
input = "slice"
size = [8, 8]
window = { center = 40, width = 80 }
normalization = { kind = "min_max", min = 0, max = 1 }
channels = 1
"#;

/// The tiny model and its manifest in `dir`; returns the manifest and the model's hash.
fn tiny_model(dir: &Path, sha256: Option<&str>) -> (PathBuf, String) {
    let onnx = std::fs::read(repo("operators/src/infer/testdata/tiny.onnx")).unwrap();
    let hash = sha256_hex(&onnx);
    std::fs::write(dir.join("tiny.onnx"), &onnx).unwrap();
    let manifest = format!(
        "name = \"tiny\"\nversion = \"1.0.0\"\nfile = \"tiny.onnx\"\nsha256 = \"{}\"\ntask = \"classification\"\n\
         validated_with = [\"0.1.0\"]\n\n[input]{INPUT}\n[tensors]\ninput = \"image\"\noutputs = [\"score\"]\n\n\
         [[findings]]\noutput = \"score\"\nlabel = \"bright\"\n\
         code = {{ system = \"SCT\", value = \"1386000\", meaning = \"Intracranial hemorrhage\" }}\n\
         threshold = 0.5\ncritical = true\n",
        sha256.unwrap_or(&hash)
    );
    let path = dir.join("tiny.model.toml");
    std::fs::write(&path, manifest).unwrap();
    (path, hash)
}

/// The `[N, 1, 8, 8]` values of a `.npy` file `radstream preprocess` wrote.
fn npy_values(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    bytes[10 + header_len..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn synthetic_studies_get_findings_tables_and_json_from_the_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out, pre) = (dir.path().join("in"), dir.path().join("out"), dir.path().join("pre"));
    let synth = radstream(&["synth", "--studies", "2", "--seed", "5", "--out", s(&input)]);
    assert!(synth.status.success(), "{}", show(&synth));
    let (manifest, hash) = tiny_model(dir.path(), None);

    let run = radstream(&["infer", "--model", s(&manifest), "--out", s(&out), s(&input)]);
    assert!(run.status.success(), "{}", show(&run));
    let stdout = text(&run.stdout);
    assert!(stdout.starts_with("file "), "{stdout}");
    assert!(stdout.contains("0 failed") && stdout.contains("model tiny 1.0.0 on the CPU"), "{stdout}");

    // The same preprocessing, written by `radstream preprocess`, to compute the scores by hand.
    let spec = dir.path().join("tiny.preprocess.toml");
    std::fs::write(&spec, format!("name = \"tiny\"{INPUT}")).unwrap();
    let preprocessed = radstream(&["preprocess", "--device", "cpu", "--model", s(&spec), "--out", s(&pre), s(&input)]);
    assert!(preprocessed.status.success(), "{}", show(&preprocessed));

    let jsons = files_ending(&out, ".findings.json");
    assert!(!jsons.is_empty(), "no findings written\n{}", show(&run));
    assert_eq!(jsons.len(), files_ending(&pre, ".npy").len(), "one findings file per CT file");
    let mut rows = 0;
    for json in &jsons {
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        assert_eq!(doc["model"]["name"], "tiny");
        assert_eq!(doc["model"]["version"], "1.0.0");
        assert_eq!(doc["model"]["sha256"], hash.as_str());
        let relative = json.strip_prefix(&out).unwrap().to_string_lossy().replace(".findings.json", ".npy");
        let values = npy_values(&pre.join(relative));
        let frames = doc["frames"].as_array().unwrap();
        assert_eq!(frames.len() * 64, values.len());
        for (frame, image) in frames.iter().zip(values.chunks_exact(64)) {
            let want = image.iter().map(|&x| 1.0 / (1.0 + f64::from(1.0 - 2.0 * x).exp())).sum::<f64>() / 64.0;
            let score = &frame["scores"][0];
            let got = score["score"].as_f64().unwrap();
            assert!((got - want).abs() < 1e-5, "{}: {got} vs {want}", json.display());
            assert_eq!(score["above_threshold"].as_bool().unwrap(), got >= 0.5);
            rows += 1;
        }
        let findings = doc["findings"].as_array().unwrap();
        let above = frames.iter().filter(|f| f["scores"][0]["above_threshold"] == true).count();
        assert_eq!(findings.len(), above);
        for f in findings {
            assert_eq!((f["label"].as_str(), f["critical"].as_bool()), (Some("bright"), Some(true)));
            assert_eq!(f["code"]["value"], "1386000");
        }
    }
    assert_eq!(stdout.lines().count(), 1 + rows + 1, "header, a row per frame, summary:\n{stdout}");
}

#[test]
fn a_model_file_with_another_hash_or_a_3d_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    let synth = radstream(&["synth", "--studies", "1", "--seed", "6", "--out", s(&input)]);
    assert!(synth.status.success(), "{}", show(&synth));

    let wrong = "ab".repeat(32);
    let (manifest, hash) = tiny_model(dir.path(), Some(wrong.as_str()));
    let run = radstream(&["infer", "--model", s(&manifest), "--out", s(&out), s(&input)]);
    assert_eq!(run.status.code(), Some(2), "{}", show(&run));
    let stderr = text(&run.stderr);
    assert!(stderr.contains(&hash) && stderr.contains(&wrong) && stderr.contains("tiny.onnx"), "{stderr}");
    assert!(!out.exists(), "nothing is written on a usage error");

    let (manifest, _) = tiny_model(dir.path(), None);
    let series = std::fs::read_to_string(&manifest).unwrap().replace("input = \"slice\"", "input = \"series\"");
    std::fs::write(&manifest, series).unwrap();
    let run = radstream(&["infer", "--model", s(&manifest), "--out", s(&out), s(&input)]);
    assert_eq!(run.status.code(), Some(2), "{}", show(&run));
    assert!(text(&run.stderr).contains("series"), "{}", show(&run));
    assert!(!out.exists());
}

#[test]
fn the_demo_model_runs_when_it_is_there() {
    let manifest = repo("models/ct-head-bleed.model.toml");
    let onnx = repo("models/demo/ct-head-bleed.onnx");
    let Ok(model) = std::fs::read(&onnx) else {
        radstream_tests::skip_without("models/demo/ct-head-bleed.onnx (the demo model)");
        return;
    };
    if !std::fs::read_to_string(&manifest).unwrap().contains(&sha256_hex(&model)) {
        radstream_tests::skip_without("the demo model's hash in models/ct-head-bleed.model.toml");
        return;
    }
    // Six studies: a head CT with a planted bleed (study 0) and a clean one (study 3), among CR
    // and MR. The model must flag exactly the slices the bleed is on.
    let dir = tempfile::tempdir().unwrap();
    let (input, out, truth) = (dir.path().join("in"), dir.path().join("out"), dir.path().join("truth.json"));
    let synth = radstream(&["synth", "--studies", "6", "--seed", "7", "--out", s(&input), "--ground-truth", s(&truth)]);
    assert!(synth.status.success(), "{}", show(&synth));
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    let planted: std::collections::BTreeSet<String> = truth["studies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|study| study["lesion"]["instances"].as_array())
        .flatten()
        .map(|instance| instance["sop_instance_uid"].as_str().unwrap().to_string())
        .collect();
    assert!(!planted.is_empty(), "synth planted no lesion: {truth}");
    let clean_head_ct =
        truth["studies"].as_array().unwrap().iter().any(|study| {
            study["modality"] == "CT" && study["body_part_examined"] == "HEAD" && study["lesion"].is_null()
        });
    assert!(clean_head_ct, "synth made no clean head CT: {truth}");

    let run = radstream(&["infer", "--model", s(&manifest), "--out", s(&out), s(&input)]);
    assert!(run.status.success(), "{}", show(&run));
    assert!(text(&run.stdout).contains("intracranial hemorrhage"), "{}", show(&run));
    let mut flagged = std::collections::BTreeSet::new();
    let written = files_ending(&out, ".findings.json");
    assert!(!written.is_empty());
    for path in &written {
        let result: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(result["model"]["name"], "ct-head-bleed");
        assert_eq!(result["model"]["sha256"].as_str(), Some(sha256_hex(&model).as_str()));
        if !result["findings"].as_array().unwrap().is_empty() {
            // Synth names each file by its SOPInstanceUID.
            let sop = Path::new(result["file"].as_str().unwrap()).file_stem().unwrap().to_string_lossy().into_owned();
            flagged.insert(sop);
        }
    }
    assert_eq!(flagged, planted, "the demo model must flag exactly the planted slices");
}

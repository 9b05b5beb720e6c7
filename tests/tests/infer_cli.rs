//! `radstream infer` from the command line, without servers: synthetic studies in, a findings
//! table and `.findings.json` files out. Runs the operators crate's tiny test models
//! (`operators/src/infer/testdata/tiny.onnx`: score = mean of sigmoid(2x - 1) over the 8×8
//! preprocessed image; `tiny_volume.onnx`: the same per slice of a series, the series' score
//! the largest), checked against the same preprocessing from `radstream preprocess`; and the
//! demo models (2D and 3D) when `models/demo/*.onnx` are there and their manifests have their
//! hashes.

use std::collections::{BTreeMap, BTreeSet};
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

/// The tiny series model's preprocessing: a window low enough that the middle slices of a head
/// or body (fat and soft tissue over 0.5 after it) score over 0.5 and the outer ones do not.
const VOLUME_INPUT: &str = r#"
modalities = ["CT"]
input = "series"
size = [8, 8]
window = { center = -300, width = 80 }
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

/// The tiny model of whole series and its manifest in `dir`; returns the manifest and the
/// model's hash.
fn tiny_volume_model(dir: &Path) -> (PathBuf, String) {
    let onnx = std::fs::read(repo("operators/src/infer/testdata/tiny_volume.onnx")).unwrap();
    let hash = sha256_hex(&onnx);
    std::fs::write(dir.join("tiny_volume.onnx"), &onnx).unwrap();
    let input = VOLUME_INPUT;
    let manifest = format!(
        "name = \"tiny-volume\"\nversion = \"0.0.1\"\nfile = \"tiny_volume.onnx\"\nsha256 = \"{hash}\"\n\
         task = \"classification\"\nvalidated_with = [\"0.1.0\"]\n\n[input]{input}\n[tensors]\ninput = \"volume\"\n\
         outputs = [\"score\", \"per_slice\"]\nslice_scores = \"per_slice\"\n\n[[findings]]\noutput = \"score\"\n\
         label = \"bright\"\ncode = {{ system = \"SCT\", value = \"1386000\", meaning = \"Intracranial hemorrhage\" }}\n\
         threshold = 0.5\n"
    );
    let path = dir.join("tiny_volume.model.toml");
    std::fs::write(&path, manifest).unwrap();
    (path, hash)
}

/// The axial series folders of the CT studies of a synthetic run (`<study>/<series>/<sop>.dcm`),
/// by study: the series of more than one file (a CT study's other series is its one-slice
/// TOPOGRAM localizer).
fn ct_axial_series(input: &Path, truth: &serde_json::Value) -> BTreeMap<String, PathBuf> {
    let mut axial = BTreeMap::new();
    for study in truth["studies"].as_array().unwrap().iter().filter(|study| study["modality"] == "CT") {
        let uid = study["study_instance_uid"].as_str().unwrap();
        let folders: Vec<PathBuf> = std::fs::read_dir(input.join(uid))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|series| std::fs::read_dir(series).unwrap().count() > 1)
            .collect();
        assert_eq!(folders.len(), 1, "study {uid}: one axial series besides the localizer: {folders:?}");
        axial.insert(uid.to_string(), folders.into_iter().next().unwrap());
    }
    axial
}

/// Synthetic studies and their ground truth under `dir`.
fn synth_with_truth(dir: &Path, studies: &str, seed: &str) -> (PathBuf, serde_json::Value) {
    let (input, truth) = (dir.join("in"), dir.join("truth.json"));
    let synth =
        radstream(&["synth", "--studies", studies, "--seed", seed, "--out", s(&input), "--ground-truth", s(&truth)]);
    assert!(synth.status.success(), "{}", show(&synth));
    (input, serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap())
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
    assert!(stdout.contains("0 failed") && stdout.contains("model tiny 1.0.0 (tract on the CPU)"), "{stdout}");

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
fn a_model_file_with_another_hash_or_of_another_input_kind_is_refused() {
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

    // A manifest that says "series" for a model of slices: the model's input is not a volume.
    let (manifest, _) = tiny_model(dir.path(), None);
    let series = std::fs::read_to_string(&manifest).unwrap().replace("input = \"slice\"", "input = \"series\"");
    std::fs::write(&manifest, series).unwrap();
    let run = radstream(&["infer", "--model", s(&manifest), "--out", s(&out), s(&input)]);
    assert_eq!(run.status.code(), Some(2), "{}", show(&run));
    let stderr = text(&run.stderr);
    assert!(stderr.contains("4 dimensions") && stderr.contains("[1, C, D, H, W]"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_series_model_runs_once_per_series_and_its_scores_are_the_preprocessed_slices() {
    let dir = tempfile::tempdir().unwrap();
    let (input, truth) = synth_with_truth(dir.path(), "6", "11");
    let (out, pre) = (dir.path().join("out"), dir.path().join("pre"));
    let (manifest, hash) = tiny_volume_model(dir.path());

    // The whole run: split per series (localizers too), CR and MR skipped.
    let run = radstream(&["infer", "--model", s(&manifest), "--out", s(&out), s(&input)]);
    assert!(run.status.success(), "{}", show(&run));
    let stdout = text(&run.stdout);
    assert!(stdout.starts_with("series "), "{stdout}");
    let ct_studies: Vec<&str> = truth["studies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|study| study["modality"] == "CT")
        .map(|study| study["study_instance_uid"].as_str().unwrap())
        .collect();
    let ct_series: Vec<PathBuf> = ct_studies
        .iter()
        .flat_map(|study| std::fs::read_dir(input.join(study)).unwrap().map(|entry| entry.unwrap().path()))
        .collect();
    let ct_files: usize = ct_series.iter().map(|series| std::fs::read_dir(series).unwrap().count()).sum();
    let all_files = files_ending(&input, ".dcm").len();
    assert!(
        stdout.contains(&format!("{} series from {ct_files} of {all_files} files", ct_series.len()))
            && stdout.contains(&format!("{} skipped", all_files - ct_files))
            && stdout.contains("0 failed"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1 + ct_series.len() + 1, "header, a row per series, summary:\n{stdout}");

    // The same stacking, written by `radstream preprocess` (volumes named as infer names them).
    let spec = dir.path().join("tiny_volume.preprocess.toml");
    std::fs::write(&spec, format!("name = \"tiny-volume\"{VOLUME_INPUT}")).unwrap();
    let preprocessed = radstream(&["preprocess", "--device", "cpu", "--model", s(&spec), "--out", s(&pre), s(&input)]);
    assert!(preprocessed.status.success(), "{}", show(&preprocessed));

    let jsons = files_ending(&out, ".findings.json");
    assert_eq!(jsons.len(), ct_series.len(), "one findings file per CT series: {jsons:?}");
    let mut flagged_series = 0;
    for json in &jsons {
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        assert_eq!(doc["model"]["name"], "tiny-volume");
        assert_eq!(doc["model"]["version"], "0.0.1");
        assert_eq!(doc["model"]["sha256"], hash.as_str());
        // `<study>/<series>`: synth names each folder by its UID.
        let name = json.strip_prefix(&out).unwrap().to_string_lossy().replace(".findings.json", "");
        let series = &doc["series"];
        assert_eq!(
            Some(series["series_instance_uid"].as_str().unwrap()),
            Path::new(&name).file_name().unwrap().to_str()
        );
        assert_eq!(doc["file"].as_str().unwrap(), input.join(&name).display().to_string());
        let values = npy_values(&pre.join(format!("{name}.npy")));
        let sidecar: serde_json::Value =
            serde_json::from_slice(&std::fs::read(pre.join(format!("{name}.json"))).unwrap()).unwrap();
        let slices = doc["slices"].as_array().unwrap();
        assert_eq!(slices.len() * 64, values.len());
        assert_eq!(series["slices"].as_u64(), Some(slices.len() as u64));
        assert_eq!(series["instances"].as_u64(), Some(std::fs::read_dir(input.join(&name)).unwrap().count() as u64));
        let (mut best, mut flagged) = (0.0f64, Vec::new());
        for ((slice, image), stacked) in
            slices.iter().zip(values.chunks_exact(64)).zip(sidecar["slices"].as_array().unwrap())
        {
            assert_eq!(slice["file"], stacked["file"], "{name}: the same slice order as `radstream preprocess`");
            let want = image.iter().map(|&x| 1.0 / (1.0 + f64::from(1.0 - 2.0 * x).exp())).sum::<f64>() / 64.0;
            let got = slice["score"].as_f64().unwrap();
            assert!((got - want).abs() < 1e-5, "{name}: {got} vs {want}");
            assert_eq!(slice["above_threshold"].as_bool(), Some(got >= 0.5));
            best = best.max(got);
            if got >= 0.5 {
                flagged.push(slice["sop_instance_uid"].as_str().unwrap().to_string());
            }
        }
        let score = doc["frames"][0]["scores"][0]["score"].as_f64().unwrap();
        assert!((score - best).abs() < 1e-5, "{name}: the series' score is its largest slice's: {score} vs {best}");
        let flagged_instances: Vec<String> =
            series["flagged_instances"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(flagged_instances, flagged, "{name}");
        assert_eq!(doc["findings"].as_array().unwrap().len(), usize::from(score >= 0.5), "{name}");
        flagged_series += usize::from(score >= 0.5);
    }
    // Both kinds of row, or the test checks less than it says (if synth's anatomy changed,
    // move VOLUME_INPUT's window).
    assert!(
        0 < flagged_series && flagged_series < jsons.len(),
        "{flagged_series} of {} series flagged\n{stdout}",
        jsons.len()
    );
    assert!(stdout.contains("yes") && stdout.contains(".dcm"), "flagged rows name their files:\n{stdout}");

    // Series folders given one by one: named after their folders, side by side.
    let (axial, out2) = (ct_axial_series(&input, &truth), dir.path().join("out2"));
    let mut args = vec!["infer", "--model", s(&manifest), "--out", s(&out2)];
    args.extend(axial.values().map(|folder| s(folder)));
    let run = radstream(&args);
    assert!(run.status.success(), "{}", show(&run));
    let written: BTreeSet<PathBuf> = files_ending(&out2, ".findings.json").into_iter().collect();
    let want: BTreeSet<PathBuf> = axial
        .values()
        .map(|folder| out2.join(format!("{}.findings.json", folder.file_name().unwrap().to_string_lossy())))
        .collect();
    assert_eq!(written, want);
}

#[test]
fn a_series_runs_without_its_unreadable_files_and_copies_which_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (input, truth) = synth_with_truth(dir.path(), "1", "12");
    let (manifest, _) = tiny_volume_model(dir.path());
    let axial = ct_axial_series(&input, &truth).into_values().next().unwrap();
    let series = dir.path().join("series");
    std::fs::create_dir(&series).unwrap();
    let files = radstream_tests::dcm_files(&axial);
    for file in &files {
        std::fs::copy(file, series.join(file.file_name().unwrap())).unwrap();
    }
    std::fs::write(series.join("notes.dcm"), "not DICOM").unwrap();
    std::fs::copy(&files[0], series.join("copy.dcm")).unwrap();
    let out = dir.path().join("out");

    let run = radstream(&["infer", "--model", s(&manifest), "--out", s(&out), s(&series)]);
    assert_eq!(run.status.code(), Some(1), "{}", show(&run));
    let stderr = text(&run.stderr);
    assert!(stderr.contains("notes.dcm: ") && stderr.contains("not a Part-10"), "{stderr}");
    assert!(stderr.contains("copy.dcm: the same SOPInstanceUID as ") && stderr.contains("a copy"), "{stderr}");
    assert!(text(&run.stdout).contains("1 series from "), "{}", show(&run));
    assert!(text(&run.stdout).contains("2 failed"), "{}", show(&run));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("series.findings.json")).unwrap()).unwrap();
    assert_eq!(doc["series"]["slices"].as_u64(), Some(files.len() as u64), "the copy is not stacked twice");

    // No DICOM file at all: no series, the file failed.
    let junk = dir.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("x.dcm"), "not DICOM").unwrap();
    let run = radstream(&["infer", "--model", s(&manifest), "--out", s(&out), s(&junk)]);
    assert_eq!(run.status.code(), Some(1), "{}", show(&run));
    assert!(text(&run.stdout).contains("0 series from 0 of 1 files"), "{}", show(&run));
}

#[test]
fn the_demo_series_model_flags_exactly_the_planted_slices_when_it_is_there() {
    let manifest = repo("models/ct-head-bleed-3d.model.toml");
    let Ok(model) = std::fs::read(repo("models/demo/ct-head-bleed-3d.onnx")) else {
        radstream_tests::skip_without("models/demo/ct-head-bleed-3d.onnx (the demo series model)");
        return;
    };
    let sha256 = sha256_hex(&model);
    if !std::fs::read_to_string(&manifest).unwrap().contains(&sha256) {
        radstream_tests::skip_without("the demo series model's hash in models/ct-head-bleed-3d.model.toml");
        return;
    }
    // Fifteen studies, of them five CT: head CTs with a planted bleed (studies 0 and 9) and
    // without (3 and 12), an abdomen CT; CR and MR. Only the CTs' axial series are given.
    let dir = tempfile::tempdir().unwrap();
    let (input, truth) = synth_with_truth(dir.path(), "15", "9");
    let out = dir.path().join("out");
    let studies = truth["studies"].as_array().unwrap();
    let planted: BTreeMap<String, BTreeSet<String>> = studies
        .iter()
        .filter_map(|study| study["lesion"].as_object())
        .map(|lesion| {
            let sops = lesion["instances"].as_array().unwrap().iter();
            let sops = sops.map(|instance| instance["sop_instance_uid"].as_str().unwrap().to_string());
            (lesion["series_instance_uid"].as_str().unwrap().to_string(), sops.collect())
        })
        .collect();
    assert!(planted.len() >= 2, "synth planted fewer than two lesions: {truth}");
    let head_ct = |uid: &str| {
        studies.iter().any(|study| study["study_instance_uid"] == uid && study["body_part_examined"] == "HEAD")
    };
    let axial = ct_axial_series(&input, &truth);
    let clean_head_cts = axial.iter().filter(|(study, folder)| {
        head_ct(study) && !planted.contains_key(folder.file_name().unwrap().to_str().unwrap())
    });
    assert!(clean_head_cts.count() > 0, "synth made no clean head CT: {truth}");

    let mut args = vec!["infer", "--model", s(&manifest), "--out", s(&out)];
    args.extend(axial.values().map(|folder| s(folder)));
    let run = radstream(&args);
    assert!(run.status.success(), "{}", show(&run));
    let stdout = text(&run.stdout);
    assert!(stdout.contains("intracranial hemorrhage") && stdout.contains("yes (critical)"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1 + axial.len() + 1, "a row per series:\n{stdout}");
    for (study, folder) in &axial {
        let uid = folder.file_name().unwrap().to_str().unwrap();
        let path = out.join(format!("{uid}.findings.json"));
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["model"]["name"], "ct-head-bleed-3d");
        assert_eq!(doc["model"]["version"], "0.1.0");
        assert_eq!(doc["model"]["sha256"].as_str(), Some(sha256.as_str()));
        assert_eq!(doc["series"]["series_instance_uid"], uid);
        let findings = doc["findings"].as_array().unwrap();
        let flagged: BTreeSet<String> = doc["series"]["flagged_instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sop| sop.as_str().unwrap().to_string())
            .collect();
        match planted.get(uid) {
            Some(sops) => {
                assert_eq!(findings.len(), 1, "{uid}: the series with a planted bleed is flagged");
                assert_eq!(findings[0]["label"], "intracranial hemorrhage");
                assert_eq!(findings[0]["critical"], true);
                assert_eq!(&flagged, sops, "{uid}: exactly the planted slices' instances");
            }
            None => {
                let what = if head_ct(study) { "head" } else { "body" };
                assert!(findings.is_empty() && flagged.is_empty(), "{uid}: a clean {what} CT is flagged: {doc}")
            }
        }
    }
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

    // On tract, and on ONNX Runtime when its library is there (pip's CPU wheel in CI).
    let ort = std::env::var("RADSTREAM_ONNXRUNTIME_LIB").ok().filter(|l| !l.is_empty());
    radstream_test_gate::needs_under(
        &["RADSTREAM_REQUIRE_ONNXRUNTIME", radstream_test_gate::REQUIRE_STACK],
        "ONNX Runtime's library in RADSTREAM_ONNXRUNTIME_LIB to run the model on it too (pip install onnxruntime)",
        ort.is_some(),
    );
    for backend in ["tract", "onnxruntime"].into_iter().filter(|b| *b == "tract" || ort.is_some()) {
        let out = out.join(backend);
        let run = radstream(&["infer", "--model", s(&manifest), "--backend", backend, "--out", s(&out), s(&input)]);
        assert!(run.status.success(), "{}", show(&run));
        assert!(text(&run.stdout).contains("intracranial hemorrhage"), "{}", show(&run));
        assert!(text(&run.stdout).contains(&format!("({backend} on the CPU)")), "{}", show(&run));
        let mut flagged = std::collections::BTreeSet::new();
        let written = files_ending(&out, ".findings.json");
        assert!(!written.is_empty());
        for path in &written {
            let result: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            assert_eq!(result["model"]["name"], "ct-head-bleed");
            assert_eq!(result["model"]["sha256"].as_str(), Some(sha256_hex(&model).as_str()));
            if !result["findings"].as_array().unwrap().is_empty() {
                // Synth names each file by its SOPInstanceUID.
                let sop =
                    Path::new(result["file"].as_str().unwrap()).file_stem().unwrap().to_string_lossy().into_owned();
                flagged.insert(sop);
            }
        }
        assert_eq!(flagged, planted, "{backend}: the demo model must flag exactly the planted slices");
    }
}

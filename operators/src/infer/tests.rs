//! Tests of the CPU backend, the model loader and the operator on `testdata/tiny.onnx`
//! (`testdata/make_tiny.py`): `mask = sigmoid(2x - 1)`, `score = mean(mask)`,
//! `flag = [score, 1 - score]`, on `[N, 1, 8, 8]`.

use bytes::Bytes;
use radstream_schemas::ObjectLocation;

use super::manifest::tests::{testdata, tiny_hash, tiny_manifest};
use super::*;
use crate::RetryHint;

const PER: usize = 64;

fn tiny_onnx() -> Vec<u8> {
    std::fs::read(testdata().join("tiny.onnx")).unwrap()
}

fn outputs() -> Vec<String> {
    ["score", "flag", "mask"].map(String::from).to_vec()
}

/// Image `i` of the test batches: a ramp that differs from image to image.
fn image(i: usize) -> Vec<f32> {
    (0..PER).map(|p| ((p * 7 + i * 13) % 17) as f32 / 16.0).collect()
}

/// The tiny model's score, by hand.
fn expected_score(image: &[f32]) -> f32 {
    let sum: f64 = image.iter().map(|&x| 1.0 / (1.0 + (-(2.0 * f64::from(x) - 1.0)).exp())).sum();
    (sum / image.len() as f64) as f32
}

fn loaded() -> LoadedModel {
    let manifest = ModelManifest::from_toml(&tiny_manifest(&tiny_hash())).unwrap();
    LoadedModel::from_verified(VerifiedModel { manifest, onnx: tiny_onnx() }).unwrap()
}

#[test]
fn the_backend_matches_a_hand_computation_and_batch_sizes_agree() {
    let model = CpuModel::load(&tiny_onnx(), "image", &outputs(), [1, 8, 8]).unwrap();
    assert_eq!(model.fixed_batch(), None);
    assert_eq!(model.output_shapes()[1], vec![None, Some(2)]);
    let n = 11;
    let batch: Vec<f32> = (0..n).flat_map(image).collect();
    let all = model.run(&batch, n).unwrap();
    assert_eq!(all[0].shape, vec![n, 1]);
    assert_eq!(all[1].shape, vec![n, 2]);
    assert_eq!(all[2].shape, vec![n, 1, 8, 8]);
    for i in 0..n {
        let one = model.run(&image(i), 1).unwrap();
        let want = expected_score(&image(i));
        assert!((all[0].image(i)[0] - want).abs() < 1e-6, "image {i}: {} vs {want}", all[0].image(i)[0]);
        assert!((all[1].image(i)[1] - (1.0 - want)).abs() < 1e-6);
        let x = image(i)[5];
        assert!((all[2].image(i)[5] - 1.0 / (1.0 + (1.0 - 2.0 * x).exp())).abs() < 1e-6);
        for (batched, single) in all.iter().zip(&one) {
            assert_eq!(batched.image(i), single.image(0), "image {i}: batch of {n} and of 1 differ");
        }
    }
    // Blank and white images: sigmoid(-1) and sigmoid(1).
    let out = model.run(&[vec![0.0; PER], vec![1.0; PER]].concat(), 2).unwrap();
    assert!((out[0].data[0] - 0.268_941_42).abs() < 1e-6 && (out[0].data[1] - 0.731_058_6).abs() < 1e-6);
    assert!(matches!(model.run(&batch, n + 1), Err(BackendError::Run(_))));
}

#[test]
fn a_model_with_a_fixed_batch_runs_any_number_of_images() {
    let fixed = std::fs::read(testdata().join("tiny_batch2.onnx")).unwrap();
    let fixed = CpuModel::load(&fixed, "image", &outputs(), [1, 8, 8]).unwrap();
    assert_eq!(fixed.fixed_batch(), Some(2));
    let open = CpuModel::load(&tiny_onnx(), "image", &outputs(), [1, 8, 8]).unwrap();
    for n in [1, 2, 5] {
        let batch: Vec<f32> = (0..n).flat_map(image).collect();
        let (a, b) = (fixed.run(&batch, n).unwrap(), open.run(&batch, n).unwrap());
        assert_eq!(a, b, "{n} images");
        assert_eq!(a[2].shape, vec![n, 1, 8, 8]);
    }
}

#[test]
fn the_backend_refuses_a_model_that_does_not_fit_the_manifest() {
    let e = CpuModel::load(&tiny_onnx(), "image", &outputs(), [1, 16, 16]).unwrap_err().to_string();
    assert!(e.contains("[N, 1, 8, 8]") && e.contains("[N, 1, 16, 16]"), "{e}");
    let e = CpuModel::load(&tiny_onnx(), "pixels", &outputs(), [1, 8, 8]).unwrap_err().to_string();
    assert!(e.contains("pixels"), "{e}");
    let e = CpuModel::load(&tiny_onnx(), "image", &["scores".to_string()], [1, 8, 8]).unwrap_err().to_string();
    assert!(e.contains("scores"), "{e}");
    assert!(CpuModel::load(b"not onnx", "image", &outputs(), [1, 8, 8]).is_err());
}

#[test]
fn a_finding_must_be_a_column_of_an_n_by_k_output() {
    let text = tiny_manifest(&tiny_hash());
    let load = |text: &str| {
        let manifest = ModelManifest::from_toml(text).unwrap();
        LoadedModel::from_verified(VerifiedModel { manifest, onnx: tiny_onnx() }).unwrap_err()
    };
    let e = load(&text.replacen("index = 1", "index = 2", 1));
    assert_eq!(e.key, "findings[1].index", "{e}");
    let e = load(&text.replacen("output = \"score\"", "output = \"mask\"", 1));
    assert_eq!(e.key, "findings[0].output", "{e}");
    assert!(e.problem.contains("[N, K]"), "{e}");
}

#[test]
fn runs_are_cut_at_max_batch_and_instances_may_span_two() {
    let spans = |runs: Vec<Vec<RunPart>>| -> Vec<Vec<(usize, usize, usize)>> {
        runs.into_iter().map(|r| r.into_iter().map(|p| (p.item, p.frames.start, p.frames.end)).collect()).collect()
    };
    assert_eq!(
        spans(plan_runs(&[1, 1, 1, 1, 1], 2)),
        vec![vec![(0, 0, 1), (1, 0, 1)], vec![(2, 0, 1), (3, 0, 1)], vec![(4, 0, 1)]]
    );
    assert_eq!(spans(plan_runs(&[3, 2], 4)), vec![vec![(0, 0, 3), (1, 0, 1)], vec![(1, 1, 2)]]);
    assert_eq!(spans(plan_runs(&[9], 4)), vec![vec![(0, 0, 4)], vec![(0, 4, 8)], vec![(0, 8, 9)]]);
    assert_eq!(spans(plan_runs(&[], 4)), Vec::<Vec<_>>::new());
    for (frames, max) in [(vec![5, 1, 7, 2], 3), (vec![1; 20], 8), (vec![4, 4], 4)] {
        let runs = plan_runs(&frames, max);
        assert!(runs.iter().all(|r| (1..=max).contains(&r.iter().map(|p| p.frames.len()).sum())));
        let total: usize = runs.iter().flatten().map(|p| p.frames.len()).sum();
        assert_eq!(total, frames.iter().sum::<usize>());
    }
}

#[test]
fn results_carry_the_model_and_only_scores_over_threshold_are_findings() {
    let model = loaded();
    let tensor = Tensor::new([3, 1, 8, 8], [vec![1.0; PER], vec![0.0; PER], image(0)].concat()).unwrap();
    let result = model.infer(&tensor, 2).unwrap();
    assert_eq!(result.model, ModelIdentity { name: "tiny".into(), version: "1.2.3".into(), sha256: tiny_hash() });
    assert_eq!(result.scores.len(), 3);
    // Frame 0 (white) is "bright" (0.73 >= 0.5), frame 1 (blank) is "dark" (1 - 0.27 >= 0.6).
    let found: Vec<(&str, usize, bool)> =
        result.findings.iter().map(|f| (f.label.as_str(), f.frame, f.critical)).collect();
    let ramp = expected_score(&image(0));
    let mut want = vec![("bright", 0, true), ("dark", 1, false)];
    if ramp >= 0.5 {
        want.push(("bright", 2, true));
    }
    if 1.0 - ramp >= 0.6 {
        want.push(("dark", 2, false));
    }
    assert_eq!(found, want);
    assert_eq!(result.findings[0].code.value, "1386000");
    assert!(result.critical());
    assert!(model.check_tensor([2, 1, 8, 8]).is_ok());
    let e = model.check_tensor([2, 3, 8, 8]).unwrap_err();
    assert!(e.contains("[2, 3, 8, 8]") && e.contains("[N, 1, 8, 8]"), "{e}");
}

fn part10(sop: &str) -> Bytes {
    crate::test_support::header_only_part10(sop, "CT")
}

/// An envelope `ticket` with `tensor` and `priority`.
fn envelope(ticket: u64, tensor: Option<Tensor>, priority: Priority) -> Envelope {
    let location = ObjectLocation { bucket: "in".into(), key: format!("{ticket}.dcm"), size: None, etag: None };
    let mut e = Envelope::from_part10(ticket, location, part10(&format!("1.2.3.4.{ticket}"))).unwrap();
    e.event.priority = priority;
    e.tensor = tensor.map(Arc::new);
    e
}

#[tokio::test]
async fn the_operator_runs_stat_first_in_runs_of_max_batch_and_attaches_results() {
    let model = Arc::new(loaded());
    let mut op = Infer::new(Arc::clone(&model), 3);
    // Tickets 0..6: 2 frames each (so runs of 3 split instances), 2 and 5 STAT.
    let tensors: Vec<Tensor> =
        (0..6).map(|t| Tensor::new([2, 1, 8, 8], [image(2 * t), image(2 * t + 1)].concat()).unwrap()).collect();
    let batch: Vec<Envelope> = tensors
        .iter()
        .enumerate()
        .map(|(t, tensor)| {
            let priority = if t == 2 || t == 5 { Priority::Stat } else { Priority::Routine };
            envelope(t as u64, Some(tensor.clone()), priority)
        })
        .collect();
    let out = op.process_batch(batch).await;
    let order: Vec<u64> = out.iter().map(|p| p.envelope.ticket).collect();
    assert_eq!(order, vec![2, 5, 0, 1, 3, 4], "STAT first, arrival order within a priority");
    for p in &out {
        assert!(matches!(p.outcome, Outcome::Forward), "{:?}", p.outcome);
        let t = p.envelope.ticket as usize;
        let result = p.envelope.results.as_ref().unwrap();
        assert_eq!(result.model.name, "tiny");
        assert_eq!(result.model.version, "1.2.3");
        assert_eq!(result.model.sha256, tiny_hash());
        // The same scores as the instance alone, whichever run its frames fell in.
        assert_eq!(result, &Arc::new(model.infer(&tensors[t], 8).unwrap()));
        for frame in 0..2 {
            assert!((result.scores[frame][0] - expected_score(&image(2 * t + frame))).abs() < 1e-6);
        }
    }
}

#[tokio::test]
async fn the_operator_dead_letters_a_missing_or_misshapen_tensor() {
    let mut op = Infer::new(Arc::new(loaded()), 8);
    let good = Tensor::new([1, 1, 8, 8], image(0)).unwrap();
    let wrong = Tensor::new([1, 1, 4, 16], image(0)).unwrap();
    let batch = vec![
        envelope(0, None, Priority::Routine),
        envelope(1, Some(wrong), Priority::Stat),
        envelope(2, Some(good), Priority::Routine),
    ];
    let mut out = op.process_batch(batch).await;
    out.sort_by_key(|p| p.envelope.ticket);
    let failure = |p: &Processed| match &p.outcome {
        Outcome::Fail(e) => {
            assert_eq!((e.class, e.retry), (ErrorClass::Config, RetryHint::DeadLetter));
            e.reason.clone()
        }
        other => panic!("expected a dead letter, got {other:?}"),
    };
    let missing = failure(&out[0]);
    assert!(missing.starts_with("in/0.dcm: no input tensor") && missing.contains("`preprocess`"), "{missing}");
    let misshapen = failure(&out[1]);
    assert!(misshapen.starts_with("in/1.dcm:") && misshapen.contains("[1, 1, 4, 16]"), "{misshapen}");
    assert!(misshapen.contains("[N, 1, 8, 8]"), "{misshapen}");
    assert!(matches!(out[2].outcome, Outcome::Forward));
    assert!(out[0].envelope.results.is_none() && out[1].envelope.results.is_none());
    assert!(out[2].envelope.results.is_some());
}

#[test]
fn the_operator_config_is_checked_and_registered() {
    let chain: crate::OperatorConfig =
        toml::from_str("type = \"infer\"\nmodel = \"models/ct-head-bleed.model.toml\"").unwrap();
    assert_eq!(chain.kind(), "infer");
    chain.validate().unwrap();
    let crate::OperatorConfig::Infer(config) = chain else { panic!("not infer") };
    assert_eq!(config.max_batch, 8);
    let zero = InferConfig { max_batch: 0, ..config.clone() };
    assert_eq!(zero.validate().unwrap_err().key, "max_batch");
    assert!(toml::from_str::<InferConfig>("model = \"m\"\nmax_bach = 2").is_err());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.onnx"), tiny_onnx()).unwrap();
    let path = dir.path().join("tiny.model.toml");
    std::fs::write(&path, tiny_manifest(&tiny_hash())).unwrap();
    let op = InferConfig { model: path.clone(), max_batch: 4 }.build().unwrap();
    assert_eq!(op.model().identity().sha256, tiny_hash());
    std::fs::write(&path, tiny_manifest(&"a".repeat(64))).unwrap();
    let e = InferConfig { model: path, max_batch: 4 }.build().unwrap_err();
    assert!(e.key.starts_with("model.") && e.key.ends_with(".sha256"), "{e}");
}

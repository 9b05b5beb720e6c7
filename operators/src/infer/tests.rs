//! Tests of the CPU backend, the model loader and the operator on `testdata/tiny.onnx`
//! (`testdata/make_tiny.py`): `mask = sigmoid(2x - 1)`, `score = mean(mask)`,
//! `flag = [score, 1 - score]`, on `[N, 1, 8, 8]`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use radstream_schemas::{ErrorClass, ObjectLocation, Priority};

use super::manifest::sha256_hex;
use super::manifest::tests::{testdata, tiny_hash, tiny_manifest};
use super::*;
use crate::contract::{Envelope, ModelIdentity, Operator, Outcome, Processed};
use crate::preprocess::Tensor;
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
    let op = InferConfig { model: path.clone(), ..config.clone() }.build().unwrap();
    assert_eq!(op.model().identity().sha256, tiny_hash());
    std::fs::write(&path, tiny_manifest(&"a".repeat(64))).unwrap();
    let e = InferConfig { model: path, ..config.clone() }.build().unwrap_err();
    assert!(e.key.starts_with("model.") && e.key.ends_with(".sha256"), "{e}");
}

// --- Models of whole series: `testdata/tiny_volume.onnx`, per-slice score = mean of
// sigmoid(2x - 1), series score = the largest.

fn volume_manifest() -> String {
    let hash = sha256_hex(&std::fs::read(testdata().join("tiny_volume.onnx")).unwrap());
    format!(
        r#"
name = "tiny-volume"
version = "0.0.1"
file = "tiny_volume.onnx"
sha256 = "{hash}"
task = "classification"
validated_with = ["0.1.0"]

[input]
modalities = ["CT"]
input = "series"
size = [8, 8]
window = {{ center = 40, width = 80 }}
channels = 1

[tensors]
input = "volume"
outputs = ["score", "per_slice"]
slice_scores = "per_slice"

[[findings]]
output = "score"
label = "bright"
code = {{ system = "SCT", value = "1386000", meaning = "Intracranial hemorrhage" }}
threshold = 0.5
"#
    )
}

fn volume_model() -> Arc<LoadedModel> {
    let manifest = ModelManifest::from_toml(&volume_manifest()).unwrap();
    Arc::new(
        LoadedModel::from_verified(VerifiedModel {
            manifest,
            onnx: std::fs::read(testdata().join("tiny_volume.onnx")).unwrap(),
        })
        .unwrap(),
    )
}

/// Instance `n` of series `series`: one axial slice at z = `z`, all `value`; `expected` in the
/// event when given.
fn slice_envelope(ticket: u64, series: &str, z: f64, value: f32, expected: Option<i32>) -> Envelope {
    let mut e = envelope(ticket, Some(Tensor::new([1, 1, 8, 8], vec![value; PER]).unwrap()), Priority::Routine);
    e.event.series_instance_uid = series.into();
    e.event.expected_series_instances = expected;
    e.geometry = Some(Arc::from(vec![radstream_kernels::SliceGeometry {
        position: [0.0, 0.0, z],
        orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    }]));
    e
}

fn series_op(quiet_secs: f64) -> Infer {
    Infer::new(volume_model(), 8).with_series(SeriesConfig { quiet_secs, ..SeriesConfig::default() })
}

fn series_of(p: &Processed) -> &radstream_schemas::SeriesRecord {
    p.envelope.results.as_ref().expect("a result").series.as_ref().expect("a series result")
}

#[test]
fn a_volume_model_loads_and_runs_any_depth() {
    let model = volume_model();
    assert!(model.is_series());
    for depth in [1, 3, 7] {
        // Slice k is all k / depth: the last is the brightest.
        let volume: Vec<f32> = (0..depth).flat_map(|k| vec![k as f32 / depth as f32; PER]).collect();
        let (scores, per_slice) = model.series_scores(volume, depth).unwrap();
        let per_slice = per_slice.unwrap();
        assert_eq!(per_slice.len(), depth);
        for (k, s) in per_slice.iter().enumerate() {
            assert!((s - expected_score(&[k as f32 / depth as f32])).abs() < 1e-6, "depth {depth} slice {k}");
        }
        assert_eq!(scores, vec![per_slice[depth - 1]]);
    }
}

#[tokio::test]
async fn a_series_is_run_once_complete_with_its_slices_in_patient_order() {
    let mut op = series_op(60.0);
    // Arriving out of order: z = 10, 0, 5; only the slice at z = 10 is bright.
    let out = op.process_batch(vec![slice_envelope(1, "s1", 10.0, 1.0, Some(3))]).await;
    assert!(out.is_empty(), "held until the series is complete");
    assert_eq!(op.assembler.as_ref().unwrap().held(), 1);
    assert!(op.next_wake().is_some());
    let out =
        op.process_batch(vec![slice_envelope(2, "s1", 0.0, 0.0, None), slice_envelope(3, "s1", 5.0, 0.0, None)]).await;
    assert_eq!(out.len(), 3, "the whole series is answered at once");
    for p in &out {
        assert!(matches!(p.outcome, Outcome::Forward), "{:?}", p.outcome);
        let s = series_of(p);
        assert_eq!(
            (s.revision, s.reason.as_str(), s.instances, s.expected, s.slices),
            (1, "expected_count", 3, Some(3), 3)
        );
        assert_eq!(s.flagged_instances, vec!["1.2.3.4.1".to_string()], "the bright slice's instance");
        let result = p.envelope.results.as_ref().unwrap();
        assert_eq!(result.findings.len(), 1);
        assert!((result.findings[0].score - 0.731_058_6).abs() < 1e-5);
    }
    assert!(Arc::ptr_eq(out[0].envelope.results.as_ref().unwrap(), out[2].envelope.results.as_ref().unwrap()));
    assert_eq!(op.assembler.as_ref().unwrap().held(), 0);
    assert_eq!(op.next_wake(), None);
}

#[tokio::test]
async fn without_an_expected_count_a_series_runs_after_its_quiet_time_and_a_late_instance_supersedes_it() {
    // The operator reads the real clock (std's Instant), so nothing here races a sleep: the
    // quiet time's end is checked against the time the assembler is handed, and the test waits
    // for the operator's own wake time before waking it.
    let quiet = Duration::from_millis(50);
    let mut op = series_op(quiet.as_secs_f64());
    let before = std::time::Instant::now();
    let out =
        op.process_batch(vec![slice_envelope(1, "s1", 0.0, 0.0, None), slice_envelope(2, "s1", 5.0, 0.0, None)]).await;
    let after = std::time::Instant::now();
    assert!(out.is_empty());
    let due = op.next_wake().expect("a held series asks to be woken");
    assert!(before + quiet <= due && due <= after + quiet, "due a quiet time after its last instance");
    let assembler = op.assembler.as_mut().unwrap();
    assert!(assembler.due(due - Duration::from_millis(1)).is_empty(), "not quiet yet");
    tokio::time::sleep_until(due.into()).await;
    let first = op.wake().await;
    assert_eq!(first.len(), 2);
    let s = series_of(&first[0]);
    assert_eq!((s.revision, s.reason.as_str(), s.instances), (1, "quiet_time", 2));
    assert!(first[0].envelope.results.as_ref().unwrap().findings.is_empty(), "dark slices: nothing found");

    // The late slice is bright: the re-run over all three finds it and supersedes revision 1.
    let out = op.process_batch(vec![slice_envelope(3, "s1", 10.0, 1.0, None)]).await;
    assert!(out.is_empty(), "a re-opened series waits like a new one");
    let due = op.next_wake().expect("the re-opened series asks to be woken");
    assert!(op.assembler.as_mut().unwrap().due(due - Duration::from_millis(1)).is_empty(), "not quiet yet");
    tokio::time::sleep_until(due.into()).await;
    let late = op.wake().await;
    assert_eq!(late.len(), 1, "only the late instance is answered again");
    assert_eq!(late[0].envelope.ticket, 3);
    let s = series_of(&late[0]);
    assert_eq!((s.revision, s.instances, s.slices), (2, 3, 3));
    assert_eq!(s.flagged_instances, vec!["1.2.3.4.3".to_string()]);
    assert_eq!(late[0].envelope.results.as_ref().unwrap().findings.len(), 1);
}

#[tokio::test]
async fn duplicates_are_dropped_and_held_instances_are_given_back_at_close() {
    let mut op = series_op(60.0);
    assert!(op.process_batch(vec![slice_envelope(1, "s1", 0.0, 0.0, None)]).await.is_empty());
    // The same SOP again (a re-delivery): the older copy is answered as a duplicate.
    let mut again = slice_envelope(2, "s1", 0.0, 0.0, None);
    again.event.sop_instance_uid = "1.2.3.4.1".into();
    let out = op.process_batch(vec![again]).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].envelope.ticket, 1);
    assert!(matches!(&out[0].outcome, Outcome::Drop { rule } if rule == DUPLICATE_DROP_RULE));
    assert!(op.process_batch(vec![slice_envelope(3, "s2", 0.0, 0.0, None)]).await.is_empty());
    let held = op.on_close().await;
    let mut tickets: Vec<u64> = held.iter().map(|e| e.ticket).collect();
    tickets.sort_unstable();
    assert_eq!(tickets, [2, 3], "nothing of an incomplete series is answered");
}

#[tokio::test]
async fn at_the_held_limit_the_longest_waiting_series_runs_early() {
    let mut op = Infer::new(volume_model(), 8).with_series(SeriesConfig {
        max_held_instances: 2,
        quiet_secs: 60.0,
        ..SeriesConfig::default()
    });
    assert!(op.process_batch(vec![slice_envelope(1, "old", 0.0, 0.0, None)]).await.is_empty());
    assert!(op.process_batch(vec![slice_envelope(2, "new", 0.0, 0.0, None)]).await.is_empty());
    let out = op.process_batch(vec![slice_envelope(3, "new", 5.0, 0.0, None)]).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].envelope.ticket, 1);
    assert_eq!(series_of(&out[0]).reason, "capacity");
}

#[tokio::test]
async fn a_late_instance_of_an_evicted_series_and_unfit_slices_are_dead_lettered_with_reasons() {
    let mut op = Infer::new(volume_model(), 8).with_series(SeriesConfig {
        max_retained_instances: 1,
        quiet_secs: 60.0,
        ..SeriesConfig::default()
    });
    let out =
        op.process_batch(vec![slice_envelope(1, "a", 0.0, 0.0, Some(2)), slice_envelope(2, "a", 5.0, 0.0, None)]).await;
    assert_eq!(out.len(), 2);
    // Series "a" (2 instances) is over the retention limit of 1: evicted; a late instance of it
    // cannot be run with the rest.
    let out = op.process_batch(vec![slice_envelope(3, "a", 10.0, 0.0, None)]).await;
    let Outcome::Fail(e) = &out[0].outcome else { panic!("{:?}", out[0].outcome) };
    assert_eq!(e.class, ErrorClass::LateInstance);
    assert!(e.reason.contains("series a") && e.reason.contains("re-send every instance"), "{}", e.reason);

    // Slices of another orientation are not one volume.
    let mut tilted = slice_envelope(5, "b", 5.0, 0.0, None);
    tilted.geometry = Some(Arc::from(vec![radstream_kernels::SliceGeometry {
        position: [0.0, 0.0, 5.0],
        orientation: [1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    }]));
    let out = op.process_batch(vec![slice_envelope(4, "b", 0.0, 0.0, Some(2)), tilted]).await;
    assert_eq!(out.len(), 2);
    for p in &out {
        let Outcome::Fail(e) = &p.outcome else { panic!("{:?}", p.outcome) };
        assert_eq!(e.class, ErrorClass::MalformedDicom);
        assert!(e.reason.contains("not one volume"), "{}", e.reason);
    }
    // No geometry: no series preprocess before infer.
    let mut bare = slice_envelope(6, "c", 0.0, 0.0, None);
    bare.geometry = None;
    let out = op.process_batch(vec![bare]).await;
    let Outcome::Fail(e) = &out[0].outcome else { panic!("{:?}", out[0].outcome) };
    assert_eq!(e.class, ErrorClass::Config);
}

#[tokio::test]
async fn envelopes_routed_to_another_model_pass_untouched_and_queue_delay_is_reported() {
    let recorder = Arc::new(crate::contract::MemoryRecorder::default());
    let mut op = Infer::new(Arc::new(loaded()), 8).with_observer(recorder.clone());
    assert_eq!(op.models(), vec!["tiny".to_string()]);
    assert_eq!(op.batching().unwrap().max_items, 8);
    let mut other = envelope(1, None, Priority::Routine);
    other.model = Some("another-model".into());
    let mut mine = envelope(2, Some(Tensor::new([1, 1, 8, 8], image(0)).unwrap()), Priority::Routine);
    mine.model = Some("tiny".into());
    mine.queued_at = std::time::Instant::now() - Duration::from_millis(30);
    let out = op.process_batch(vec![other, mine]).await;
    assert_eq!(out.len(), 2);
    for p in &out {
        assert!(matches!(p.outcome, Outcome::Forward));
        assert_eq!(p.envelope.results.is_some(), p.envelope.ticket == 2);
    }
    let delays = recorder.of(crate::contract::OperatorMetric::ModelQueueDelay);
    assert_eq!(delays.len(), 1, "only the model's own envelopes waited for it");
    assert_eq!(delays[0].labels, ["tiny"]);
    assert!(delays[0].value >= 0.03, "{}", delays[0].value);
    let images = recorder.of(crate::contract::OperatorMetric::ModelBatchImages);
    assert_eq!(images.iter().map(|r| (r.labels.join(","), r.value)).collect::<Vec<_>>(), [("tiny".to_string(), 1.0)]);
    assert_eq!(recorder.of(crate::contract::OperatorMetric::ModelRunDuration).len(), 1);
    let backend = recorder.of(crate::contract::OperatorMetric::ComputeBackend);
    assert_eq!(backend.len(), 1, "said once, when the operator got its recorder");
    assert_eq!((backend[0].labels[0].as_str(), backend[0].value), ("infer", 1.0));
}

// --- The ONNX Runtime backend against tract, on pip's onnxruntime (CPU): RADSTREAM_ONNXRUNTIME_LIB
// names its library; without it these tests are skipped (radstream_test_gate), or fail under
// RADSTREAM_REQUIRE_ONNXRUNTIME=1 or RADSTREAM_REQUIRE_STACK=1 (infra/test.sh sets all three).

#[cfg(feature = "onnxruntime")]
mod onnxruntime {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::preprocess::device::DeviceChoice;

    fn library() -> Option<PathBuf> {
        let library = std::env::var_os(ONNXRUNTIME_LIB_ENV).filter(|v| !v.is_empty());
        radstream_test_gate::needs_under(
            &["RADSTREAM_REQUIRE_ONNXRUNTIME", radstream_test_gate::REQUIRE_STACK],
            &format!("ONNX Runtime's library in {ONNXRUNTIME_LIB_ENV} (pip install onnxruntime; its capi/libonnxruntime.so.*)"),
            library.is_some(),
        );
        library.map(PathBuf::from)
    }

    fn choice(library: PathBuf, device: DeviceChoice) -> BackendChoice {
        BackendChoice { kind: BackendKind::Onnxruntime, device, library: Some(library) }
    }

    fn max_difference(a: &[Output], b: &[Output]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(a, b)| {
                assert_eq!(a.shape, b.shape);
                a.data.iter().zip(&b.data).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
            })
            .fold(0.0, f32::max)
    }

    #[test]
    fn onnxruntime_gives_tracts_numbers_on_images_fixed_batches_and_volumes() {
        let Some(lib) = library() else { return };
        let manifest = |text: &str| ModelManifest::from_toml(text).unwrap();
        let ort = choice(lib, DeviceChoice::Cpu);
        // Images, open batch.
        let tiny = manifest(&tiny_manifest(&tiny_hash()));
        let (t, o) = (
            ModelBackend::load(&tiny, &tiny_onnx(), &BackendChoice::default()).unwrap(),
            ModelBackend::load(&tiny, &tiny_onnx(), &ort).unwrap(),
        );
        assert_eq!(o.placement(), ("cpu", "cpu_requested", "onnxruntime"));
        assert_eq!(o.output_shapes()[1], vec![None, Some(2)]);
        for n in [1, 3, 8] {
            let batch: Vec<f32> = (0..n).flat_map(image).collect();
            let d = max_difference(&t.run(&batch, n).unwrap(), &o.run(&batch, n).unwrap());
            assert!(d < 1e-6, "batch of {n}: {d}");
        }
        // A fixed batch of 2, run in padded chunks.
        let fixed = std::fs::read(testdata().join("tiny_batch2.onnx")).unwrap();
        let (t, o) = (
            ModelBackend::load(&tiny, &fixed, &BackendChoice::default()).unwrap(),
            ModelBackend::load(&tiny, &fixed, &ort).unwrap(),
        );
        let batch: Vec<f32> = (0..5).flat_map(image).collect();
        assert!(max_difference(&t.run(&batch, 5).unwrap(), &o.run(&batch, 5).unwrap()) < 1e-6);
        // A volume of any depth.
        let volume = manifest(&volume_manifest());
        let onnx = std::fs::read(testdata().join("tiny_volume.onnx")).unwrap();
        let (t, o) = (
            ModelBackend::load(&volume, &onnx, &BackendChoice::default()).unwrap(),
            ModelBackend::load(&volume, &onnx, &ort).unwrap(),
        );
        for depth in [1, 4] {
            let data: Vec<f32> = (0..depth).flat_map(image).collect();
            let d = max_difference(&t.run_volume(data.clone(), depth).unwrap(), &o.run_volume(data, depth).unwrap());
            assert!(d < 1e-6, "depth {depth}: {d}");
        }
        // Shapes the manifest does not make are refused the same way.
        let wrong =
            ModelManifest::from_toml(&tiny_manifest(&tiny_hash()).replace("size = [8, 8]", "size = [16, 16]")).unwrap();
        let e = ModelBackend::load(&wrong, &tiny_onnx(), &ort).unwrap_err().to_string();
        assert!(e.contains("[N, 1, 8, 8]") && e.contains("[N, 1, 16, 16]"), "{e}");
    }

    #[test]
    fn the_demo_models_score_the_same_on_onnxruntime_and_the_gpu_falls_back_with_a_reason() {
        let Some(lib) = library() else { return };
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        for name in ["ct-head-bleed", "ct-head-bleed-3d"] {
            let path = models.join(format!("{name}.model.toml"));
            let tract = LoadedModel::load(&path).unwrap();
            // device = "auto" with the CPU wheel: no CUDA provider, so the CPU one, and why.
            let ort = LoadedModel::load_on(&path, &choice(lib.clone(), DeviceChoice::Auto)).unwrap();
            assert_eq!(ort.backend().placement(), ("cpu", "gpu_unavailable", "onnxruntime"), "{name}");
            let per = 256 * 256;
            // A bright disc on a brain-window grey: one bleed-like slice among three.
            let slice = |bright: bool| -> Vec<f32> {
                (0..per)
                    .map(|p| {
                        let (r, c) = ((p / 256) as f32 - 128.0, (p % 256) as f32 - 128.0);
                        if bright && r * r + c * c < 400.0 {
                            0.95
                        } else {
                            0.4
                        }
                    })
                    .collect()
            };
            let data: Vec<f32> = [slice(false), slice(true), slice(false)].concat();
            let (a, b) = if tract.is_series() {
                (tract.series_scores(data.clone(), 3).unwrap(), ort.series_scores(data, 3).unwrap())
            } else {
                ((tract.scores(&data, 3).unwrap().concat(), None), (ort.scores(&data, 3).unwrap().concat(), None))
            };
            for (x, y) in a.0.iter().zip(&b.0).chain(a.1.iter().flatten().zip(b.1.iter().flatten())) {
                assert!((x - y).abs() < 1e-5, "{name}: tract {x}, onnxruntime {y}");
            }
        }
    }

    #[test]
    fn the_operator_config_takes_the_backend_and_checks_it() {
        let config: InferConfig = toml::from_str(
            "model = \"m.toml\"\nbackend = \"onnxruntime\"\ndevice = \"cpu\"\nonnxruntime_lib = \"/x.so\"",
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.backend_choice().library.as_deref(), Some(Path::new("/x.so")));
        let tract: InferConfig = toml::from_str("model = \"m.toml\"\nonnxruntime_lib = \"/x.so\"").unwrap();
        assert_eq!(tract.validate().unwrap_err().key, "onnxruntime_lib");
        let tract: InferConfig = toml::from_str("model = \"m.toml\"\ndevice = \"cpu\"").unwrap();
        assert_eq!(tract.validate().unwrap_err().key, "device");
        // A library that is not there is named (also when another one is open already).
        let missing = BackendChoice {
            kind: BackendKind::Onnxruntime,
            device: DeviceChoice::Cpu,
            library: Some("/nonexistent/libonnxruntime.so".into()),
        };
        let manifest = ModelManifest::from_toml(&tiny_manifest(&tiny_hash())).unwrap();
        let e = ModelBackend::load(&manifest, &tiny_onnx(), &missing).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/libonnxruntime.so"), "{e}");
    }
}

#[test]
fn a_mask_output_travels_with_the_result_and_is_checked_at_load() {
    let text = tiny_manifest(&tiny_hash()).replace(
        "outputs = [\"score\", \"flag\", \"mask\"]",
        "outputs = [\"score\", \"flag\", \"mask\"]\nmask = \"mask\"",
    );
    let manifest = ModelManifest::from_toml(&text).unwrap();
    let model = LoadedModel::from_verified(VerifiedModel { manifest, onnx: tiny_onnx() }).unwrap();
    assert_eq!(model.mask_size(), Some([8, 8]));
    let tensor = Tensor::new([2, 1, 8, 8], [image(0), image(1)].concat()).unwrap();
    let result = model.infer(&tensor, 1).unwrap();
    let masks = result.masks.as_ref().unwrap();
    assert_eq!((masks.len(), result.mask_size), (2, Some([8, 8])));
    for (frame, mask) in masks.iter().enumerate() {
        for (x, m) in image(frame).iter().zip(mask.iter()) {
            assert!((m - 1.0 / (1.0 + (1.0 - 2.0 * x).exp())).abs() < 1e-6, "frame {frame}");
        }
    }
    // Without a mask output, none; a mask that is not an output, or not [N, 1, H, W], is refused.
    assert!(loaded().infer(&tensor, 8).unwrap().masks.is_none());
    let e = ModelManifest::from_toml(&text.replace("mask = \"mask\"", "mask = \"masks\"")).unwrap_err();
    assert_eq!(e.key, "tensors.mask");
    let manifest = ModelManifest::from_toml(&text.replace("mask = \"mask\"", "mask = \"flag\"")).unwrap();
    let e = LoadedModel::from_verified(VerifiedModel { manifest, onnx: tiny_onnx() }).unwrap_err();
    assert_eq!(e.key, "tensors.mask");
}

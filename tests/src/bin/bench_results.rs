//! Benchmark of the result objects (issue 6): what building the SR, SEG and overlay of a model
//! result costs, and what storing them in the PACS costs, each beside its baseline in the same run.
//!
//! 1. **Per instance** (`--only instance`): a synthetic 512×512 head CT slice with a planted bleed
//!    (study 0 of `synth` always has one; the slice with the widest disc is taken), a fresh study
//!    per round. Timed on it, each the median of `--iterations` calls: the preprocessing
//!    (`preprocess_object` with the model's spec) and the model (`LoadedModel::infer`, the
//!    demo `ct-head-bleed`), the baseline; then `build_sr`, `build_seg` (the model's mask) and
//!    `build_overlay`, each with its `to_bytes()`, and the `results` step's `process_batch`
//!    (the three together, on a blocking thread, as the chain runs it).
//! 2. **Per series** (`--only series`): a report of a whole series (`build_sr` with a
//!    `SeriesRecord`, a library of `--library` instances, of which `--slices` flagged, then all
//!    of them flagged), and a multi-frame segmentation over `--slices` slices of one synthetic
//!    series (`build_seg` with one `SegSource` per slice; every slice carries the planted slice's
//!    model mask, so every slice gets a frame). Per series and per slice.
//! 3. **STOW** (`--only stow`): the real sink (`StowConfig` → `StowSink`, basic auth) against the
//!    stack's Orthanc, one envelope per `process_batch`: the envelope with the `results` step's
//!    objects (SR, SEG, overlay: three requests) against the same envelope without them (the
//!    source instance itself, one request), and each of the three objects on its own. A fresh
//!    synthetic study per round, so Orthanc never answers "already stored"; which side goes
//!    first alternates by round. Needs the stack (`infra/stack.sh up; source .stack/env`).
//!
//! Prints tables on stderr and JSON lines on stdout (one per round and part).
//!
//! usage: bench_results [--models DIR] [--rounds 11] [--iterations 5] [--slices 40]
//!                      [--library 300] [--only instance|series|stow]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use radstream_operators::contract::envelope::content_time_ms;
use radstream_operators::contract::{InferenceResult, ResultKind, ResultSet};
use radstream_operators::infer::LoadedModel;
use radstream_operators::preprocess::preprocess_object;
use radstream_operators::results::overlay::{build_overlay, OverlayFinding, OverlaySource};
use radstream_operators::results::{
    build_seg, build_sr, InstanceRef, MaskShape, ResultsConfig, SegSource, SegmentConcept,
};
use radstream_operators::stow::{StowAuth, StowConfig, StowSink};
use radstream_operators::{BuildContext, Envelope, Operator, Outcome};
use radstream_pipeline::synth::{self, SynthInstance, SynthOptions};
use radstream_schemas::{ObjectLocation, SeriesRecord};
use serde_json::json;

const USAGE: &str = "usage: bench_results [--models DIR] [--rounds R] [--iterations N] [--slices N] \
                     [--library N] [--only instance|series|stow]";

/// Rows and columns of the source images: `target_instance_bytes` that `synth` turns into 512.
const TARGET_BYTES_512: usize = 512 * 512 * 2 + 3 * 1024;

struct Args {
    models: PathBuf,
    rounds: usize,
    iterations: usize,
    slices: usize,
    library: usize,
    only: Option<String>,
}

fn args() -> Result<Args> {
    let mut a =
        Args { models: PathBuf::from("models"), rounds: 11, iterations: 5, slices: 40, library: 300, only: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--models" => a.models = value()?.into(),
            "--rounds" => a.rounds = value()?.parse()?,
            "--iterations" => a.iterations = value()?.parse()?,
            "--slices" => a.slices = value()?.parse()?,
            "--library" => a.library = value()?.parse()?,
            "--only" => a.only = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    ensure!(a.rounds > 0 && a.iterations > 0 && a.slices > 0, "rounds, iterations and slices must be positive");
    ensure!(a.library >= a.slices, "--library must be at least --slices");
    Ok(a)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of `n` timed calls of `f`, in ms, and its last answer.
fn timed<T>(n: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut times = Vec::with_capacity(n);
    let mut last = None;
    for _ in 0..n {
        let t = Instant::now();
        let out = std::hint::black_box(f()?);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        last = Some(out);
    }
    Ok((median(&mut times), last.expect("n > 0")))
}

/// The planted slice (widest disc) of study 0 of a fresh 512×512 synthetic run, as an envelope.
fn planted_slice(seed: u64) -> Result<Envelope> {
    let opts = SynthOptions { studies: 1, seed, target_instance_bytes: Some(TARGET_BYTES_512), ..Default::default() };
    let slice = synth::generate(&opts)
        .filter(|i| i.lesion.is_some())
        .max_by(|a, b| {
            let radius = |i: &SynthInstance| i.lesion.as_ref().map_or(0.0, |l| l.radius);
            radius(a).total_cmp(&radius(b))
        })
        .context("study 0 of a synthetic run always has a planted bleed")?;
    envelope(0, slice)
}

/// A new envelope of the same object, carrying the same model result (`Envelope` is not `Clone`).
fn copy(e: &Envelope) -> Result<Envelope> {
    let mut copy =
        Envelope::from_part10(e.ticket, e.event.object.clone(), e.object().clone()).map_err(anyhow::Error::msg)?;
    copy.results = e.results.clone();
    Ok(copy)
}

fn envelope(ticket: u64, instance: SynthInstance) -> Result<Envelope> {
    let location = ObjectLocation { bucket: "bench".into(), key: instance.relative_path, size: None, etag: None };
    Envelope::from_part10(ticket, location, Bytes::from(instance.bytes)).map_err(anyhow::Error::msg)
}

/// The model's result on `envelope`, with its mask; fails when the planted bleed is missed.
fn infer(model: &LoadedModel, envelope: &Envelope) -> Result<InferenceResult> {
    let tensor = preprocess_object(&model.manifest().input, envelope.object()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = model.infer(&tensor, 8)?;
    ensure!(!result.findings.is_empty(), "the model missed the planted bleed (scores {:?})", result.scores);
    ensure!(result.masks.is_some() && result.mask_size.is_some(), "the model gave no mask");
    Ok(result)
}

/// The mask of frame 0 and its shape.
fn mask(result: &InferenceResult) -> Result<(Arc<[f32]>, MaskShape)> {
    let masks = result.masks.as_ref().context("a mask")?;
    let [rows, columns] = result.mask_size.context("a mask size")?;
    Ok((Arc::clone(&masks[0]), MaskShape { rows, columns }))
}

fn sr_bytes(envelope: &Envelope, result: &InferenceResult, library: &[InstanceRef]) -> Result<usize> {
    let sr = build_sr(envelope.header(), result, library, content_time_ms(envelope, result))?;
    Ok(sr.to_bytes()?.len())
}

fn seg_bytes(sources: &[SegSource<'_>], shape: MaskShape, result: &InferenceResult, time: i64) -> Result<usize> {
    let first = result.findings.first().context("a finding")?;
    let seg = build_seg(sources, shape, first.threshold, SegmentConcept::from(first), &result.model, time)?;
    Ok(seg.to_bytes()?.len())
}

fn overlay_bytes(envelope: &Envelope, result: &InferenceResult) -> Result<usize> {
    let (mask, shape) = mask(result)?;
    let findings: Vec<OverlayFinding<'_>> = result
        .findings
        .iter()
        .map(|f| OverlayFinding { label: &f.label, score: f.score, threshold: f.threshold })
        .collect();
    let source = OverlaySource { header: envelope.header(), object: envelope.object(), frame: 0 };
    let overlay =
        build_overlay(&source, Some((&mask, shape)), &findings, &result.model, content_time_ms(envelope, result))?;
    Ok(overlay.to_bytes()?.len())
}

/// The `results` step on one envelope: its objects.
async fn results_step(envelope: Envelope) -> Result<Envelope> {
    let mut step = ResultsConfig::default().build()?;
    let mut out = step.process_batch(vec![envelope]).await;
    ensure!(out.len() == 1, "{} envelopes came back", out.len());
    let p = out.pop().expect("one");
    ensure!(matches!(p.outcome, Outcome::Forward), "results step: {:?}", p.outcome);
    Ok(p.envelope)
}

fn load_model(a: &Args) -> Result<Arc<LoadedModel>> {
    let model = LoadedModel::load(&a.models.join("ct-head-bleed.model.toml")).map_err(anyhow::Error::msg)?;
    Ok(Arc::new(model))
}

async fn per_instance(a: &Args, model: &LoadedModel, base_seed: u64) -> Result<()> {
    eprintln!(
        "\n== per instance: 512x512 head CT slice with a planted bleed, ct-head-bleed (tract, CPU); \
         {} rounds (a fresh study each), median of {} calls per round ==",
        a.rounds, a.iterations
    );
    // Warm-up: the model's plan for batch 1, the allocator, the step's blocking pool.
    let warm = planted_slice(base_seed)?;
    let result = infer(model, &warm)?;
    let mut warm = warm;
    warm.results = Some(Arc::new(result));
    results_step(warm).await?;

    let names = ["preprocess", "inference", "sr", "seg", "overlay", "results step"];
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let (mut sums, mut ratios, mut sizes) = (Vec::new(), Vec::new(), [0usize; 3]);
    for round in 1..=a.rounds {
        let mut envelope = planted_slice(base_seed + round as u64)?;
        let spec = &model.manifest().input;
        let (pre, tensor) =
            timed(a.iterations, || preprocess_object(spec, envelope.object()).map_err(|e| anyhow::anyhow!("{e}")))?;
        let (inference, result) = timed(a.iterations, || Ok(model.infer(&tensor, 8)?))?;
        ensure!(!result.findings.is_empty(), "round {round}: the model missed the planted bleed");
        let (mask, shape) = mask(&result)?;
        let time = content_time_ms(&envelope, &result);
        let (sr, sr_len) = timed(a.iterations, || sr_bytes(&envelope, &result, &[]))?;
        let sources = [SegSource { header: envelope.header(), frame: 0, mask: &mask }];
        let (seg, seg_len) = timed(a.iterations, || seg_bytes(&sources, shape, &result, time))?;
        let (overlay, overlay_len) = timed(a.iterations, || overlay_bytes(&envelope, &result))?;
        envelope.results = Some(Arc::new(result));
        let mut step_times = Vec::new();
        let mut objects = 0;
        for _ in 0..a.iterations {
            let input = copy(&envelope)?;
            let t = Instant::now();
            let out = results_step(input).await?;
            step_times.push(t.elapsed().as_secs_f64() * 1e3);
            objects = out.outputs.as_ref().map_or(0, |o| o.objects.len());
        }
        ensure!(objects == 3, "round {round}: the results step made {objects} objects, not SR, SEG and overlay");
        let step = median(&mut step_times);
        let sum = sr + seg + overlay;
        eprintln!(
            "round {round:>2}: preprocess {pre:.2} ms, inference {inference:.2} ms | sr {sr:.2}, seg {seg:.2}, \
             overlay {overlay:.2}, sum {sum:.2} ms; results step {step:.2} ms; sum / inference {:.3}",
            sum / inference
        );
        println!(
            "{}",
            json!({"part": "instance", "round": round, "preprocess_ms": pre, "inference_ms": inference, "sr_ms": sr,
                   "seg_ms": seg, "overlay_ms": overlay, "sum_ms": sum, "step_ms": step,
                   "sr_bytes": sr_len, "seg_bytes": seg_len, "overlay_bytes": overlay_len,
                   "source_bytes": envelope.object().len()})
        );
        for (v, x) in per.iter_mut().zip([pre, inference, sr, seg, overlay, step]) {
            v.push(x);
        }
        sums.push(sum);
        ratios.push(sum / inference);
        sizes = [sr_len, seg_len, overlay_len];
    }
    let inference = median(&mut per[1].clone());
    eprintln!("\n| per instance (median of {} rounds) | ms | / inference | object bytes |", a.rounds);
    eprintln!("|---|---:|---:|---:|");
    for (i, name) in names.iter().enumerate() {
        let ms = median(&mut per[i]);
        let bytes = if (2..5).contains(&i) { sizes[i - 2].to_string() } else { String::new() };
        eprintln!("| {name} | {ms:.2} | {:.3} | {bytes} |", ms / inference);
    }
    eprintln!("| sr + seg + overlay | {:.2} | {:.3} | |", median(&mut sums), median(&mut ratios));
    eprintln!("(the last line's ratio is the median of the per-round ratios)");
    Ok(())
}

async fn per_series(a: &Args, model: &LoadedModel, base_seed: u64) -> Result<()> {
    eprintln!(
        "\n== per series: SR of a series result ({} instances in the library) and a SEG over {} slices \
         (512x512); {} rounds, median of {} calls per round ==",
        a.library, a.slices, a.rounds, a.iterations
    );
    // The model's mask of a planted slice, carried by every slice of the series below.
    let planted = planted_slice(base_seed)?;
    let instance_result = infer(model, &planted)?;
    let (mask, shape) = mask(&instance_result)?;
    let first = instance_result.findings.first().context("a finding")?.clone();

    let opts = SynthOptions {
        studies: 1,
        seed: base_seed ^ 0x5e_41e5,
        target_instance_bytes: Some(TARGET_BYTES_512),
        instances_per_series: Some(a.slices),
        ..Default::default()
    };
    let truth = synth::ground_truth(&opts)?;
    let axial = truth.studies[0].lesion.as_ref().context("study 0 has a planted bleed")?.series_instance_uid.clone();
    let mut slices: Vec<SynthInstance> = synth::generate(&opts).filter(|i| i.series_instance_uid == axial).collect();
    slices.sort_by_key(|i| i.instance_number);
    ensure!(slices.len() == a.slices, "{} slices in the axial series", slices.len());
    let envelopes: Vec<Envelope> =
        slices.into_iter().enumerate().map(|(i, s)| envelope(i as u64, s)).collect::<Result<_>>()?;
    let source = &envelopes[0];
    let class = source.event.sop_class_uid.clone();
    let library: Vec<InstanceRef> = envelopes
        .iter()
        .map(|e| e.event.sop_instance_uid.clone())
        .chain((envelopes.len()..a.library).map(|i| format!("2.25.{}", 10u128.pow(30) + i as u128)))
        .map(|sop_instance_uid| InstanceRef { sop_class_uid: class.clone(), sop_instance_uid })
        .collect();
    let series_result = |flagged: usize| InferenceResult {
        model: instance_result.model.clone(),
        scores: vec![vec![first.score]],
        findings: vec![first.clone()],
        series: Some(SeriesRecord {
            series_instance_uid: source.event.series_instance_uid.clone(),
            revision: 1,
            reason: "expected_count".into(),
            instances: a.library,
            expected: Some(a.library),
            slices: a.library,
            flagged_instances: library[..flagged].iter().map(|i| i.sop_instance_uid.clone()).collect(),
        }),
        masks: None,
        mask_size: None,
    };
    let flagged_few = series_result(a.slices);
    let flagged_all = series_result(a.library);
    let time = content_time_ms(source, &flagged_few);
    let sources: Vec<SegSource<'_>> =
        envelopes.iter().map(|e| SegSource { header: e.header(), frame: 0, mask: &mask }).collect();
    // Warm-up.
    sr_bytes(source, &flagged_few, &library)?;
    seg_bytes(&sources, shape, &instance_result, time)?;

    let (mut few, mut all, mut seg, mut seg_one) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sizes = [0usize; 4];
    for round in 1..=a.rounds {
        let (t_few, few_len) = timed(a.iterations, || sr_bytes(source, &flagged_few, &library))?;
        let (t_all, all_len) = timed(a.iterations, || sr_bytes(source, &flagged_all, &library))?;
        let (t_seg, seg_len) = timed(a.iterations, || seg_bytes(&sources, shape, &instance_result, time))?;
        let (t_one, one_len) = timed(a.iterations, || seg_bytes(&sources[..1], shape, &instance_result, time))?;
        eprintln!(
            "round {round:>2}: series SR ({} flagged) {t_few:.2} ms, series SR ({} flagged) {t_all:.2} ms, \
             SEG of {} slices {t_seg:.2} ms, SEG of 1 slice {t_one:.2} ms",
            a.slices, a.library, a.slices
        );
        println!(
            "{}",
            json!({"part": "series", "round": round, "library": a.library, "slices": a.slices,
                   "sr_flagged_slices_ms": t_few, "sr_flagged_all_ms": t_all, "seg_ms": t_seg, "seg_one_slice_ms": t_one,
                   "sr_flagged_slices_bytes": few_len, "sr_flagged_all_bytes": all_len, "seg_bytes": seg_len,
                   "seg_one_slice_bytes": one_len})
        );
        few.push(t_few);
        all.push(t_all);
        seg.push(t_seg);
        seg_one.push(t_one);
        sizes = [few_len, all_len, seg_len, one_len];
    }
    eprintln!("\n| per series (median of {} rounds) | ms per series | ms per slice | object bytes |", a.rounds);
    eprintln!("|---|---:|---:|---:|");
    let rows = [
        (format!("series SR, {} in the library, {} flagged", a.library, a.slices), &mut few, a.library),
        (format!("series SR, {} in the library, all flagged", a.library), &mut all, a.library),
        (format!("SEG, {} slices (one frame each)", a.slices), &mut seg, a.slices),
        ("SEG, 1 slice (baseline)".to_string(), &mut seg_one, 1),
    ];
    for ((name, v, per), bytes) in rows.into_iter().zip(sizes) {
        let ms = median(v);
        eprintln!("| {name} | {ms:.2} | {:.3} | {bytes} |", ms / per as f64);
    }
    Ok(())
}

fn stow_sink() -> Result<StowSink> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .with_context(|| format!("{name} is not set: `infra/stack.sh up; source .stack/env`"))
    };
    let base = var("RADSTREAM_TEST_ORTHANC_URL")?;
    var("RADSTREAM_TEST_ORTHANC_PASSWORD")?;
    let mut config = StowConfig::new(format!("{}/dicom-web", base.trim_end_matches('/')));
    config.auth = StowAuth::Basic {
        username: var("RADSTREAM_TEST_ORTHANC_USER")?,
        password_env: Some("RADSTREAM_TEST_ORTHANC_PASSWORD".into()),
        password_file: None,
    };
    Ok(config.build(&BuildContext::default())?)
}

/// STOWs one envelope through the sink; the milliseconds it took.
async fn stow(sink: &mut StowSink, envelope: Envelope) -> Result<f64> {
    let t = Instant::now();
    let mut out = sink.process_batch(vec![envelope]).await;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    ensure!(out.len() == 1, "{} envelopes came back", out.len());
    let p = out.pop().expect("one");
    ensure!(matches!(p.outcome, Outcome::Forward), "stow: {:?}", p.outcome);
    Ok(ms)
}

/// A fresh planted slice with its result objects built (`outputs` set).
async fn with_results(model: &LoadedModel, seed: u64) -> Result<Envelope> {
    let mut envelope = planted_slice(seed)?;
    envelope.results = Some(Arc::new(infer(model, &envelope)?));
    let envelope = results_step(envelope).await?;
    let objects = envelope.outputs.as_ref().map_or(0, |o| o.objects.len());
    ensure!(objects == 3, "the results step made {objects} objects, not SR, SEG and overlay");
    Ok(envelope)
}

async fn stow_part(a: &Args, model: &LoadedModel, base_seed: u64) -> Result<()> {
    eprintln!(
        "\n== STOW to the stack's Orthanc through the stow sink: result objects against the source instance; \
         {} rounds, fresh UIDs every request ==",
        a.rounds
    );
    let mut sink = stow_sink()?;
    // Warm-up: the connection, Orthanc's first writes into a new study.
    let warm = with_results(model, base_seed.wrapping_add(1_000_000)).await?;
    let source_only = copy(&warm)?;
    stow(&mut sink, source_only).await?;
    stow(&mut sink, warm).await?;

    let kinds = [ResultKind::Sr, ResultKind::Seg, ResultKind::Overlay];
    let (mut source_ms, mut set_ms, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut single_ms, mut singles_sum): (Vec<Vec<f64>>, Vec<f64>) = (vec![Vec::new(); 3], Vec::new());
    let mut sizes = [0usize; 4];
    for round in 1..=a.rounds {
        // Two fresh instances: one for the source and its whole result set, one for each result
        // object on its own (a result's UIDs derive from its source's).
        let with = with_results(model, base_seed + 2 * round as u64).await?;
        let source_only = copy(&with)?;
        let other = with_results(model, base_seed + 2 * round as u64 + 1).await?;
        let set = Arc::clone(other.outputs.as_ref().expect("checked"));
        let alone: Vec<Envelope> = kinds
            .iter()
            .map(|&kind| {
                let object = set.objects.iter().find(|o| o.kind == kind).expect("checked").clone();
                let mut e = copy(&other)?;
                e.outputs = Some(Arc::new(ResultSet { objects: vec![object], series: None }));
                Ok(e)
            })
            .collect::<Result<_>>()?;
        let objects = &with.outputs.as_ref().expect("checked").objects;
        sizes = [
            with.object().len(),
            objects[0].bytes.len(),
            objects.iter().find(|o| o.kind == ResultKind::Seg).map_or(0, |o| o.bytes.len()),
            objects.iter().find(|o| o.kind == ResultKind::Overlay).map_or(0, |o| o.bytes.len()),
        ];
        let (t_source, t_set) = if round % 2 == 1 {
            let s = stow(&mut sink, source_only).await?;
            (s, stow(&mut sink, with).await?)
        } else {
            let r = stow(&mut sink, with).await?;
            (stow(&mut sink, source_only).await?, r)
        };
        let mut singles = [0.0; 3];
        for (i, e) in alone.into_iter().enumerate() {
            singles[i] = stow(&mut sink, e).await?;
            single_ms[i].push(singles[i]);
        }
        let sum: f64 = singles.iter().sum();
        eprintln!(
            "round {round:>2}: source {t_source:.2} ms | SR+SEG+overlay {t_set:.2} ms (x{:.2}) | alone: sr {:.2}, \
             seg {:.2}, overlay {:.2}, sum {sum:.2} ms",
            t_set / t_source,
            singles[0],
            singles[1],
            singles[2]
        );
        println!(
            "{}",
            json!({"part": "stow", "round": round, "source_ms": t_source, "results_ms": t_set,
                   "sr_alone_ms": singles[0], "seg_alone_ms": singles[1], "overlay_alone_ms": singles[2],
                   "source_bytes": sizes[0], "sr_bytes": sizes[1], "seg_bytes": sizes[2], "overlay_bytes": sizes[3]})
        );
        source_ms.push(t_source);
        set_ms.push(t_set);
        ratios.push(t_set / t_source);
        singles_sum.push(sum);
    }
    let source = median(&mut source_ms.clone());
    eprintln!("\n| STOW through the sink (median of {} rounds) | ms per instance | / source STOW | bytes |", a.rounds);
    eprintln!("|---|---:|---:|---:|");
    eprintln!("| source instance alone (baseline, 1 request) | {source:.2} | 1.000 | {} |", sizes[0]);
    let set = median(&mut set_ms);
    eprintln!(
        "| SR + SEG + overlay (3 requests) | {set:.2} | {:.3} | {} |",
        median(&mut ratios),
        sizes[1] + sizes[2] + sizes[3]
    );
    for (i, name) in ["SR alone", "SEG alone", "overlay alone"].iter().enumerate() {
        let ms = median(&mut single_ms[i]);
        eprintln!("| {name} | {ms:.2} | {:.3} | {} |", ms / source, sizes[i + 1]);
    }
    eprintln!(
        "| sum of the three alone | {:.2} | {:.3} | |",
        median(&mut singles_sum),
        median(&mut singles_sum) / source
    );
    eprintln!("(SR + SEG + overlay's ratio is the median of the per-round ratios; the others' are over the median)");
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let a = args()?;
    let want = |part: &str| a.only.as_deref().is_none_or(|only| only == part);
    eprintln!("bench_results: {} (radstream {})", std::env::consts::ARCH, env!("CARGO_PKG_VERSION"));
    let model = load_model(&a)?;
    let base_seed = radstream_tests::unique_seed() >> 8;
    if want("instance") {
        per_instance(&a, &model, base_seed).await?;
    }
    if want("series") {
        per_series(&a, &model, base_seed).await?;
    }
    if want("stow") {
        stow_part(&a, &model, base_seed.wrapping_add(10_000)).await?;
    }
    Ok(())
}

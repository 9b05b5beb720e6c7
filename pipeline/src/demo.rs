//! `radstream demo`: the whole chain with nothing to install or start.
//!
//! An in-process Kafka-protocol broker (librdkafka's mock cluster; used here and only here), a
//! local-filesystem object store, synthetic studies, the demo head CT bleed model (embedded in
//! the binary and written beside the other outputs, so the demo runs from any folder), and a
//! local folder laid out like a DICOMweb store behind a real STOW-RS endpoint (or a real PACS
//! with `--pacs-url`). The chain ends as a deployment's does: result objects (SR, SEG,
//! overlay) to the PACS, FHIR R4 bundles (here to `fhir/` in the output folder). The pipeline itself is the production runtime, unchanged. The summary
//! scores the model's flagged studies against the bleeds `synth` planted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::mocking::MockCluster;
use tokio::sync::watch;

use radstream_operators::infer::ModelManifest;

use crate::config::Config;
use crate::folder_pacs::FolderPacs;
use crate::observe::metrics::Metrics;
use crate::publish::{self, PublishOptions};
use crate::runtime::pipeline;
use crate::runtime::stats::RunStats;
use crate::synth::{self, SynthOptions};

/// Options of `radstream demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Synthetic studies to generate.
    pub studies: usize,
    /// Output folder (objects, the DICOMweb-like store); a temporary folder when absent.
    pub out: Option<PathBuf>,
    /// A real PACS's DICOMweb base URL instead of the local folder store.
    pub pacs_url: Option<String>,
    /// Where `/metrics` is served while the demo runs.
    pub metrics_listen: String,
    /// Seed of the synthetic studies.
    pub seed: u64,
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoSummary {
    /// Instances published.
    pub instances: u64,
    /// The run's counts and latencies.
    pub stats: Arc<RunStats>,
    /// Wall time of the pipeline run.
    pub elapsed: Duration,
    /// Where the results are, when they were kept (`--out`).
    pub out: Option<PathBuf>,
    /// The model that ran.
    pub model: DemoModel,
    /// StudyInstanceUIDs of the studies `synth` planted a bleed in.
    pub planted_studies: BTreeSet<String>,
}

/// The identity of the demo's model, as its manifest (checked against the file) gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoModel {
    /// The manifest's name.
    pub name: String,
    /// The manifest's version.
    pub version: String,
    /// SHA-256 of the ONNX file.
    pub sha256: String,
}

/// How the studies the model flagged compare with the planted ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoScore {
    /// Studies with a planted bleed.
    pub planted: usize,
    /// Planted studies the model flagged.
    pub found: usize,
    /// Studies without a planted bleed that the model flagged.
    pub clean_flagged: usize,
}

const DEMO_TOPIC: &str = "radstream.demo.instances";
const DEMO_BUCKET: &str = "radstream-demo";

/// The demo model, embedded so that the demo needs no checkout: its manifest (which names the
/// ONNX file relative to itself), its preprocessing spec and the ONNX file.
const MODEL_MANIFEST: &str = include_str!("../../models/ct-head-bleed.model.toml");
const PREPROCESS_SPEC: &str = include_str!("../../models/ct-head-bleed.preprocess.toml");
const MODEL_ONNX: &[u8] = include_bytes!("../../models/demo/ct-head-bleed.onnx");

/// Where [`write_demo_model`] put the demo model's files.
#[derive(Debug, Clone)]
pub struct DemoModelFiles {
    /// The model manifest (`<dir>/ct-head-bleed.model.toml`).
    pub manifest: PathBuf,
    /// The preprocessing spec (`<dir>/ct-head-bleed.preprocess.toml`).
    pub preprocess_spec: PathBuf,
}

/// Writes the embedded demo model under `dir` (`dir/demo/ct-head-bleed.onnx`, where the
/// manifest's `file` points) and returns where its manifest and spec are.
pub fn write_demo_model(dir: &Path) -> anyhow::Result<DemoModelFiles> {
    let manifest = ModelManifest::from_toml(MODEL_MANIFEST).context("the embedded demo model manifest")?;
    let onnx = dir.join(&manifest.file);
    let files = DemoModelFiles {
        manifest: dir.join("ct-head-bleed.model.toml"),
        preprocess_spec: dir.join("ct-head-bleed.preprocess.toml"),
    };
    for (path, bytes) in [
        (&files.manifest, MODEL_MANIFEST.as_bytes()),
        (&files.preprocess_spec, PREPROCESS_SPEC.as_bytes()),
        (&onnx, MODEL_ONNX),
    ] {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(files)
}

/// The demo's pipeline configuration: the same TOML a deployment would use.
pub fn demo_config(
    brokers: &str,
    objects_root: &Path,
    model: &DemoModelFiles,
    pacs_url: &str,
    fhir_dir: &Path,
    metrics_listen: &str,
) -> anyhow::Result<Config> {
    let text = format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "radstream-demo"
input_topic = "{DEMO_TOPIC}"
format = "json"
dead_letter_topic = "radstream.demo.dead-letter"
outcome_topic = "radstream.demo.outcomes"

# librdkafka's mock broker holds each fetch for the full wait; keep it short for the demo.
[kafka.consumer]
"fetch.wait.max.ms" = "10"

[objects]
kind = "local"
root = {root}

[metrics]
listen = "{metrics_listen}"

# The demo runs one model, a head CT bleed detector, so only axial head CT goes on. What no
# model takes is dropped here, by a rule that says why (the drop counter's `rule` label),
# rather than sent down a chain whose preprocess would drop it as the wrong modality.
[[operators]]
type = "route"
default_action = "drop"

[[operators.rules]]
name = "skip-localizers"
series_description = "(?i)scout|localizer|survey|topogram"
action = "drop"

[[operators.rules]]
name = "head-ct"
modality = ["CT"]
body_part = ["HEAD", "BRAIN"]
model = "ct-head-bleed"

[[operators.rules]]
name = "no-model-for-other-ct"
modality = ["CT"]
action = "drop"

[[operators.rules]]
name = "no-model-for-mr"
modality = ["MR"]
action = "drop"

[[operators.rules]]
name = "no-model-for-radiographs"
modality = ["CR", "DX"]
action = "drop"

[[operators]]
type = "preprocess"
spec_file = {spec}

[[operators]]
type = "infer"
model = {manifest}

# Per slice with a finding: a TID 1500 SR, a SEG of the bleed and an overlay. A slice without
# findings makes nothing (counted under the drop rule `no_findings`).
[[operators]]
type = "results"
negatives = "drop"

# The PACS gets the result objects, filed into the source's study.
[[operators]]
type = "stow"
url = "{pacs_url}"

# The EHR's share: one FHIR R4 transaction bundle per result, here written to a folder.
[[operators]]
type = "fhir"
dir = {fhir_dir}
body_site = {{ system = "SCT", value = "69536005", meaning = "Head" }}
"#,
        fhir_dir = toml_path(fhir_dir),
        root = toml_path(objects_root),
        spec = toml_path(&model.preprocess_spec),
        manifest = toml_path(&model.manifest),
    );
    Ok(Config::from_toml_str(&text, Path::new("<demo>"), std::env::vars())?)
}

fn toml_path(path: &Path) -> toml::Value {
    toml::Value::String(path.display().to_string())
}

/// Runs the demo end to end.
pub async fn run(opts: DemoOptions) -> anyhow::Result<DemoSummary> {
    let (out, _tmp) = match &opts.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            (dir.clone(), None)
        }
        None => {
            let tmp = tempfile::Builder::new().prefix("radstream-demo-").tempdir()?;
            (tmp.path().to_path_buf(), Some(tmp))
        }
    };
    let incoming = out.join("incoming");
    let objects_root = out.join("objects");
    eprintln!("radstream demo: generating {} synthetic studies in {}", opts.studies, incoming.display());
    let synth_opts = SynthOptions { studies: opts.studies, seed: opts.seed, ..Default::default() };
    let instances = synth::write_to_dir(&synth_opts, &incoming)?;
    let total = instances.len() as u64;
    let planted_studies = synth::ground_truth(&synth_opts)?
        .studies
        .into_iter()
        .filter(|s| s.lesion.is_some())
        .map(|s| s.study_instance_uid)
        .collect();
    let model_files = write_demo_model(&out.join("models"))?;
    // Read back as the infer operator reads it: the identity shown is the file's, hash checked.
    let manifest = ModelManifest::load(&model_files.manifest)?.manifest;
    let model = DemoModel { name: manifest.name, version: manifest.version, sha256: manifest.sha256 };

    let cluster = MockCluster::new(3).context("starting the in-process Kafka mock cluster")?;
    cluster.create_topic(DEMO_TOPIC, 6, 1).context("creating the demo topic")?;
    let brokers = cluster.bootstrap_servers();

    let mut folder_pacs = None;
    let pacs_url = match &opts.pacs_url {
        Some(url) => url.clone(),
        None => {
            let pacs = FolderPacs::start(out.join("dicomweb")).await?;
            let url = pacs.base_url();
            folder_pacs = Some(pacs);
            url
        }
    };
    let config =
        demo_config(&brokers, &objects_root, &model_files, &pacs_url, &out.join("fhir"), &opts.metrics_listen)?;

    let metrics = Metrics::new();
    let readiness = Arc::new(crate::observe::http::Readiness::default());
    readiness.destinations_ok.store(true, Ordering::Relaxed);
    if !config.metrics.listen.is_empty() {
        match crate::observe::http::serve(&config.metrics.listen, metrics.clone(), readiness).await {
            Ok(addr) => eprintln!("radstream demo: metrics at http://{addr}/metrics"),
            Err(e) => eprintln!("radstream demo: metrics endpoint not started ({}: {e})", config.metrics.listen),
        }
    }

    let stats = Arc::new(RunStats::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn(pipeline::run(config.clone(), metrics.clone(), stats.clone(), stop_rx));
    // Publish only once the worker owns its partitions, so latencies show the pipeline, not the
    // consumer group's join.
    let joined = Instant::now() + Duration::from_secs(60);
    while metrics.assigned_partitions.get() == 0 && !run.is_finished() && Instant::now() < joined {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} instances finished ({per_sec}, eta {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    let publish_opts = PublishOptions {
        bucket: DEMO_BUCKET.into(),
        prefix: String::new(),
        priority: radstream_schemas::Priority::Routine,
        source: Some("SYNTH_CT_1".into()),
        concurrency: 16,
        skip_events: false,
    };
    let files = publish::collect_files(std::slice::from_ref(&incoming))?;
    let started = Instant::now();
    let mut publishing = Some({
        let (kafka, objects) = (config.kafka.clone(), config.objects.clone());
        tokio::spawn(async move { publish::publish(&kafka, &objects, files, &publish_opts, || {}).await })
    });
    let deadline = Instant::now() + Duration::from_secs(120 + total / 10);
    while stats.finished() < total {
        if run.is_finished() || Instant::now() > deadline {
            break;
        }
        if publishing.as_ref().is_some_and(|h| h.is_finished()) {
            publishing.take().expect("checked").await.context("publishing task")??;
        }
        bar.set_position(stats.finished());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.set_position(stats.finished());
    bar.finish();
    let elapsed = started.elapsed();
    let _ = stop_tx.send(true);
    if let Some(publishing) = publishing {
        publishing.await.context("publishing task")??;
    }
    run.await.context("pipeline task")??;
    if let Some(pacs) = folder_pacs {
        pacs.stop().await;
    }
    if stats.finished() < total {
        anyhow::bail!("only {} of {total} instances finished before the demo's deadline", stats.finished());
    }
    let out = _tmp.is_none().then_some(out);
    Ok(DemoSummary { instances: total, stats, elapsed, out, model, planted_studies })
}

impl DemoSummary {
    /// The studies the model flagged against the planted ones.
    pub fn score(&self) -> DemoScore {
        let flagged = self.stats.flagged_studies();
        let found = flagged.intersection(&self.planted_studies).count();
        DemoScore { planted: self.planted_studies.len(), found, clean_flagged: flagged.len() - found }
    }

    /// The summary table printed at the end of the demo.
    pub fn table(&self) -> String {
        let s = &self.stats;
        let q = |p| s.latency_quantile_ms(p).map(|v| format!("{v:.1} ms")).unwrap_or_else(|| "-".into());
        let rate = s.finished() as f64 / self.elapsed.as_secs_f64().max(1e-9);
        let score = self.score();
        let m = &self.model;
        format!(
            "\n  instances in     {:>8}\n  delivered        {:>8}\n  dropped          {:>8}\n  dead-lettered    {:>8}\n  \
             latency p50      {:>8}\n  latency p99      {:>8}\n  throughput       {:>8.1} instances/s\n  \
             model            {} {} (sha256 {})\n  \
             with findings    {:>8} instances\n  critical         {:>8} instances\n  studies flagged  {:>8}\n  \
             ground truth     {} of {} planted studies found, {} clean studies flagged\n  output           {}\n",
            self.instances,
            s.delivered.load(Ordering::Relaxed),
            s.dropped.load(Ordering::Relaxed),
            s.dead_lettered.load(Ordering::Relaxed),
            q(0.5),
            q(0.99),
            rate,
            m.name,
            m.version,
            m.sha256.get(..12).unwrap_or(&m.sha256),
            s.instances_with_findings.load(Ordering::Relaxed),
            s.critical_instances.load(Ordering::Relaxed),
            s.flagged_studies().len(),
            score.found,
            score.planted,
            score.clean_flagged,
            match &self.out {
                Some(dir) => format!(
                    "{} (dicomweb/ holds the SR, SEG and overlay of each finding; fhir/ the R4 bundles)",
                    dir.display()
                ),
                None => "removed with its temporary folder; pass --out DIR to keep it".into(),
            },
        )
    }
}

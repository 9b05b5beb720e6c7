//! `radstream demo`: the whole chain with nothing to install or start.
//!
//! An in-process Kafka-protocol broker (librdkafka's mock cluster; used here and only here), a
//! local-filesystem object store, synthetic studies, and a local folder laid out like a
//! DICOMweb store behind a real STOW-RS endpoint (or a real PACS with `--pacs-url`). The
//! pipeline itself is the production runtime, unchanged.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::mocking::MockCluster;
use tokio::sync::watch;

use crate::config::Config;
use crate::folder_pacs::FolderPacs;
use crate::metrics::Metrics;
use crate::publish::{self, PublishOptions};
use crate::runtime::{self, RunStats};
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
}

const DEMO_TOPIC: &str = "radstream.demo.instances";
const DEMO_BUCKET: &str = "radstream-demo";

/// The demo's pipeline configuration: the same TOML a deployment would use.
pub fn demo_config(brokers: &str, objects_root: &Path, pacs_url: &str, metrics_listen: &str) -> anyhow::Result<Config> {
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

[[operators]]
type = "route"
default_action = "drop"

[[operators.rules]]
name = "skip-localizers"
series_description = "(?i)scout|localizer|survey|topogram"
action = "drop"

[[operators.rules]]
name = "ct"
modality = ["CT"]
branch = "ct-triage"

[[operators.rules]]
name = "mr"
modality = ["MR"]
branch = "mr-triage"

[[operators.rules]]
name = "radiographs"
modality = ["CR", "DX"]
branch = "xr-triage"

[[operators]]
type = "stow"
url = "{pacs_url}"
"#,
        root = toml::Value::String(objects_root.display().to_string()),
    );
    Ok(Config::from_toml_str(&text, Path::new("<demo>"), std::env::vars())?)
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
    let config = demo_config(&brokers, &objects_root, &pacs_url, &opts.metrics_listen)?;

    let metrics = Metrics::new();
    let readiness = Arc::new(crate::http::Readiness::default());
    readiness.destinations_ok.store(true, Ordering::Relaxed);
    if !config.metrics.listen.is_empty() {
        match crate::http::serve(&config.metrics.listen, metrics.clone(), readiness).await {
            Ok(addr) => eprintln!("radstream demo: metrics at http://{addr}/metrics"),
            Err(e) => eprintln!("radstream demo: metrics endpoint not started ({}: {e})", config.metrics.listen),
        }
    }

    let stats = Arc::new(RunStats::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn(runtime::run(config.clone(), metrics.clone(), stats.clone(), stop_rx));
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
    Ok(DemoSummary { instances: total, stats, elapsed, out })
}

impl DemoSummary {
    /// The summary table printed at the end of the demo.
    pub fn table(&self) -> String {
        let s = &self.stats;
        let q = |p| s.latency_quantile_ms(p).map(|v| format!("{v:.1} ms")).unwrap_or_else(|| "-".into());
        let rate = s.finished() as f64 / self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "\n  instances in     {:>8}\n  delivered        {:>8}\n  dropped          {:>8}\n  dead-lettered    {:>8}\n  \
             latency p50      {:>8}\n  latency p99      {:>8}\n  throughput       {:>8.1} instances/s\n  output           {}\n",
            self.instances,
            s.delivered.load(Ordering::Relaxed),
            s.dropped.load(Ordering::Relaxed),
            s.dead_lettered.load(Ordering::Relaxed),
            q(0.5),
            q(0.99),
            rate,
            match &self.out {
                Some(dir) => format!("{} (dicomweb/ holds what was delivered)", dir.display()),
                None => "removed with its temporary folder; pass --out DIR to keep it".into(),
            },
        )
    }
}

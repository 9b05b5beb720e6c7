//! Benchmark: the pipeline against the PACS's own ceiling, side by side in one run.
//!
//! 1. Ceiling: the same kind of files STOW-RSed straight to Orthanc by a plain HTTP client at
//!    concurrency C (one instance per request, as the pipeline's sink sends them).
//! 2. Pipeline: the files in S3, their events on Kafka, `radstream`'s runtime (in process, the
//!    production code path: consume → fetch → parse → route → STOW → outcome → offset store)
//!    with C STOW tasks.
//!
//! Throughput: R rounds of a burst (all events at once) through each side, alternating which
//! goes first; the median of the per-round ratios is the figure. Latency: a paced stream at a
//! quarter of the ceiling's rate (`--rate` to choose), event → PACS acknowledgement and Kafka
//! read → acknowledgement, against the plain client's request latency at the same pace. Every
//! phase uses its own freshly generated instances so the PACS never sees a duplicate. Needs the
//! test stack (`infra/stack.sh up; eval "$(infra/stack.sh env)"`).
//!
//! usage: bench_pipeline [--rounds 3] [--instances 1000] [--paced 300] [--concurrency 8] [--kib 512] [--rate R]
//!                       [--local-objects]
//! (`--local-objects`: the pipeline reads objects from a local folder instead of the S3 server)
//! (`--rate`: events per second of the paced phase; default a quarter of the measured ceiling)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt};
use radstream_pipeline::config::{Config, ObjectStoreKind};
use radstream_pipeline::observe::metrics::Metrics;
use radstream_pipeline::publish::{self, PublishOptions, Published};
use radstream_pipeline::runtime::{self, RunStats};
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::Priority;
use radstream_tests::{create_topic, unique, unique_seed, Pacs, Stack, WorkerConfig};
use rdkafka::producer::FutureProducer;

struct Args {
    rounds: usize,
    local_objects: bool,
    rate: Option<f64>,
    instances: usize,
    paced: usize,
    concurrency: usize,
    kib: usize,
}

fn args() -> Result<Args> {
    let mut a =
        Args { rounds: 3, local_objects: false, rate: None, instances: 1000, paced: 300, concurrency: 8, kib: 512 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().context("flag needs a value")?.parse::<usize>().context("not a number");
        match flag.as_str() {
            "--instances" => a.instances = value()?,
            "--rounds" => a.rounds = value()?,
            "--paced" => a.paced = value()?,
            "--concurrency" => a.concurrency = value()?,
            "--kib" => a.kib = value()?,
            "--local-objects" => a.local_objects = true,
            "--rate" => a.rate = Some(it.next().context("--rate needs a value")?.parse().context("not a number")?),
            "-h" | "--help" => {
                println!("usage: bench_pipeline [--rounds R] [--instances N] [--paced N] [--concurrency C] [--kib K] [--rate R] [--local-objects]");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// `n` fresh synthetic instances of about `kib` KiB, written under `dir`.
fn make_files(dir: &Path, n: usize, kib: usize) -> Result<Vec<(PathBuf, String)>> {
    let out = dir.join(unique("set"));
    // 8 instances per series keeps studies realistic and the count exact after truncation.
    let opts = SynthOptions {
        studies: n / 8 + 2,
        seed: unique_seed(),
        target_instance_bytes: Some(kib * 1024),
        instances_per_series: Some(8),
        ..Default::default()
    };
    synth::write_to_dir(&opts, &out)?;
    let mut files = publish::collect_files(&[out])?;
    if files.len() < n {
        bail!("synth produced {} files, need {n}", files.len());
    }
    files.truncate(n);
    Ok(files)
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

struct PhaseResult {
    n: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
}

impl PhaseResult {
    fn rate(&self) -> f64 {
        self.n as f64 / self.seconds
    }
    fn p(&mut self, q: f64) -> f64 {
        quantile(&mut self.latencies_ms, q)
    }
}

/// The ceiling: plain STOW-RS, one instance per request, `concurrency` requests in flight,
/// optionally paced to `rate` requests per second.
async fn direct_stow(
    pacs: &Pacs,
    files: &[(PathBuf, String)],
    concurrency: usize,
    rate: Option<f64>,
) -> Result<PhaseResult> {
    let client = reqwest::Client::new();
    let bodies: Vec<Vec<u8>> = files.iter().map(|(p, _)| std::fs::read(p)).collect::<Result<_, _>>()?;
    let boundary = "radstream-bench-boundary-7d1f0c";
    let url = format!("{}/studies", pacs.dicomweb());
    let started = Instant::now();
    let latencies: Vec<Result<f64>> = stream::iter(bodies.into_iter().enumerate())
        .map(|(i, dcm)| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let mut body = Vec::with_capacity(dcm.len() + 128);
                body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
                body.extend_from_slice(&dcm);
                body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
                let t = Instant::now();
                let resp = client
                    .post(&url)
                    .basic_auth(&pacs.user, Some(&pacs.password))
                    .header(
                        "Content-Type",
                        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
                    )
                    .header("Accept", "application/dicom+json")
                    .body(body)
                    .send()
                    .await?;
                let status = resp.status();
                resp.bytes().await?;
                if !status.is_success() {
                    bail!("direct STOW answered HTTP {status}");
                }
                Ok(t.elapsed().as_secs_f64() * 1e3)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    Ok(PhaseResult { n: files.len(), seconds, latencies_ms: latencies.into_iter().collect::<Result<_>>()? })
}

/// The pipeline: files uploaded to S3 first (not timed), then events produced (all at once, or
/// paced), the runtime consuming them; measured from the first event to the last outcome.
async fn pipeline(
    stack: &Stack,
    dir: &Path,
    files: Vec<(PathBuf, String)>,
    concurrency: usize,
    rate: Option<f64>,
    local_objects: bool,
) -> Result<PhaseResult> {
    let mut worker = WorkerConfig::new(stack, "bench", stack.pacs());
    // The same number of STOW requests in flight as the plain client: `concurrency` sink tasks
    // sending one request at a time.
    worker.runtime_extra = format!("batch_size = 1\nparallelism = {{ stow = {concurrency} }}");
    worker.stow_extra = "concurrency = 1".into();
    create_topic(&stack.kafka, &worker.topic, 6).await?;
    create_topic(&stack.kafka, &worker.dead_letter_topic, 1).await?;
    create_topic(&stack.kafka, &worker.outcome_topic, 1).await?;
    let text = worker.toml();
    std::env::set_var("RADSTREAM_TEST_PACS_PASSWORD", &stack.orthanc_password);
    let mut config = Config::from_toml_str(&text, Path::new("bench.toml"), Vec::new())?;
    config.metrics.listen = String::new();
    if local_objects {
        config.objects.kind = ObjectStoreKind::Local;
        config.objects.root = Some(dir.join("objects"));
    }
    std::fs::write(dir.join("bench-pipeline.toml"), &text)?;

    let n = files.len();
    let opts = PublishOptions {
        bucket: stack.bucket.clone(),
        prefix: worker.topic.clone(),
        priority: Priority::Routine,
        source: Some("BENCH".into()),
        concurrency: 16,
        skip_events: true,
    };
    let published: Vec<Published> = publish::publish(&config.kafka, &config.objects, files, &opts, || {}).await?;

    let stats = Arc::new(RunStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics = Metrics::new();
    let run = tokio::spawn(runtime::run(config.clone(), metrics.clone(), stats.clone(), stop_rx));
    // Let the consumer join its group before the clock starts.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let producer: FutureProducer =
        radstream_pipeline::kafka::producer_config(&stack.kafka, &Default::default()).create()?;
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let producing = {
        let (producer, sent, topic, format) =
            (producer.clone(), sent.clone(), worker.topic.clone(), config.kafka.format);
        tokio::spawn(async move {
            stream::iter(published.into_iter().enumerate())
                .for_each_concurrent(64, |(i, p)| {
                    let (producer, sent, topic) = (producer.clone(), sent.clone(), topic.clone());
                    async move {
                        if let Some(rate) = rate {
                            tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
                        }
                        let mut event = p.event;
                        event.event_time_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
                        if publish::send_event(&producer, &topic, format, &event).await.is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while stats.finished() < n as u64 {
        if Instant::now() > deadline || run.is_finished() {
            bail!("pipeline finished {} of {n} before the deadline", stats.finished());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    producing.await?;
    stop_tx.send(true).ok();
    run.await??;
    let delivered = stats.delivered.load(Ordering::Relaxed) as usize;
    if delivered != n {
        bail!("only {delivered} of {n} delivered (dead letters: {})", stats.dead_lettered.load(Ordering::Relaxed));
    }
    let latencies_ms = [0.5, 0.99]
        .iter()
        .map(|q| stats.latency_quantile_ms(*q).unwrap_or(f64::NAN))
        .chain([0.5, 0.99].iter().map(|q| stats.pipeline_quantile_ms(*q).unwrap_or(f64::NAN)))
        .collect();
    eprintln!("  stage means: {}", stage_means(&metrics));
    Ok(PhaseResult { n, seconds, latencies_ms })
}

/// Mean time per instance in each stage, from the runtime's own histograms.
fn stage_means(metrics: &Metrics) -> String {
    let text = metrics.render();
    let value = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let mean_ms = |base: &str| 1e3 * value(&format!("{base}_sum")) / value(&format!("{base}_count")).max(1.0);
    format!(
        "S3 fetch {:.1} ms, STOW request {:.1} ms, Kafka read to outcome {:.1} ms, route batch {:.2} ms",
        mean_ms("radstream_object_fetch_duration_seconds"),
        mean_ms("radstream_destination_request_duration_seconds"),
        mean_ms("radstream_pipeline_duration_seconds"),
        mean_ms("radstream_operator_batch_duration_seconds{operator=\"route\"}"),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let a = args()?;
    let Some(stack) = Stack::get() else {
        bail!("the test stack is not running: infra/stack.sh up; eval \"$(infra/stack.sh env)\"")
    };
    let dir = tempfile::tempdir()?;
    let store = if a.local_objects { "local folder" } else { "S3 (moto)" };
    println!(
        "radstream pipeline benchmark: {} rounds, {} instances of ~{} KiB per phase, concurrency {}, objects from {store}",
        a.rounds, a.instances, a.kib, a.concurrency
    );
    println!();
    println!("| round | phase | instances/s | MB/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    let (mut direct_rates, mut pipe_rates) = (Vec::new(), Vec::new());
    for round in 1..=a.rounds {
        eprintln!("round {round}: generating fresh instances...");
        let direct_files = make_files(dir.path(), a.instances, a.kib)?;
        let pipe_files = make_files(dir.path(), a.instances, a.kib)?;
        let mean_kib = direct_files.iter().map(|(p, _)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum::<u64>()
            as f64
            / direct_files.len() as f64
            / 1024.0;
        let mbps = |r: f64| r * mean_kib / 1024.0;
        // Alternate which side goes first, so drift on a noisy machine does not favour one.
        let (mut direct, pipe) = if round % 2 == 1 {
            eprintln!("round {round}: direct STOW ceiling, then pipeline...");
            let d = direct_stow(&stack.pacs(), &direct_files, a.concurrency, None).await?;
            (d, pipeline(&stack, dir.path(), pipe_files, a.concurrency, None, a.local_objects).await?)
        } else {
            eprintln!("round {round}: pipeline, then direct STOW ceiling...");
            let p = pipeline(&stack, dir.path(), pipe_files, a.concurrency, None, a.local_objects).await?;
            (direct_stow(&stack.pacs(), &direct_files, a.concurrency, None).await?, p)
        };
        println!(
            "| {round} | direct STOW (ceiling) | {:.1} | {:.1} | {:.1} ms request | {:.1} ms |",
            direct.rate(),
            mbps(direct.rate()),
            direct.p(0.5),
            direct.p(0.99)
        );
        println!(
            "| {round} | pipeline | {:.1} | {:.1} | {:.0} ms event→ack (queued) | {:.0} ms |",
            pipe.rate(),
            mbps(pipe.rate()),
            pipe.latencies_ms[0],
            pipe.latencies_ms[1]
        );
        ratios.push(pipe.rate() / direct.rate());
        direct_rates.push(direct.rate());
        pipe_rates.push(pipe.rate());
    }
    println!();
    println!(
        "**Throughput: pipeline {:.1}/s, ceiling {:.1}/s (medians); median per-round ratio pipeline / ceiling = {:.3}** (rounds: {})",
        median(pipe_rates),
        median(direct_rates.clone()),
        median(ratios.clone()),
        ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ")
    );

    let rate = a.rate.unwrap_or(median(direct_rates) / 4.0);
    eprintln!("paced at {rate:.1}/s...");
    let mut direct_paced =
        direct_stow(&stack.pacs(), &make_files(dir.path(), a.paced, a.kib)?, a.concurrency, Some(rate)).await?;
    let pipe_paced = pipeline(
        &stack,
        dir.path(),
        make_files(dir.path(), a.paced, a.kib)?,
        a.concurrency,
        Some(rate),
        a.local_objects,
    )
    .await?;
    let (d50, d99) = (direct_paced.p(0.5), direct_paced.p(0.99));
    let (e50, e99) = (pipe_paced.latencies_ms[0], pipe_paced.latencies_ms[1]);
    let (r50, r99) = (pipe_paced.latencies_ms[2], pipe_paced.latencies_ms[3]);
    println!();
    println!("| paced: {} instances at {rate:.1}/s | p50 | p99 |", a.paced);
    println!("|---|---|---|");
    println!("| direct STOW request (the PACS's own time) | {d50:.1} ms | {d99:.1} ms |");
    println!("| pipeline, Kafka read → PACS ack | {r50:.1} ms | {r99:.1} ms |");
    println!("| pipeline, event produced → PACS ack | {e50:.1} ms | {e99:.1} ms |");
    println!("| **radstream overhead (read → ack minus PACS time)** | **{:.1} ms** | {:.1} ms |", r50 - d50, r99 - d99);
    println!(
        "| overhead incl. Kafka delivery (event → ack minus PACS time) | {:.1} ms | {:.1} ms |",
        e50 - d50,
        e99 - d99
    );
    Ok(())
}

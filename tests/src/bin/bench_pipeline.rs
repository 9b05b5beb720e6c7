//! Benchmark: the pipeline against the PACS's own ceiling, side by side in one run.
//!
//! 1. Ceiling: the same kind of files STOW-RSed straight to Orthanc by a plain HTTP client at
//!    concurrency C (one instance per request, as the pipeline's sink sends them).
//! 2. Pipeline: the files in S3, their events on Kafka, `radstream`'s runtime (in process, the
//!    production code path: consume → fetch → parse → route → STOW → outcome → offset store)
//!    with C STOW tasks.
//!
//! Every phase sends fresh instances, so the PACS never sees a duplicate, but the two sides of a
//! round get **twins**: one synthetic set generated twice from the same seed under two UID roots,
//! so instance `i` of the direct side and instance `i` of the pipeline side have the same
//! modality, size, header and pixel data and differ only in their UIDs.
//!
//! Throughput: R rounds of a burst (all events at once) through each side, alternating which
//! goes first (odd rounds the direct side, even rounds the pipeline); the median of the
//! per-round ratios is the figure.
//!
//! Latency: a paced stream at a quarter of the ceiling's rate (`--rate` to choose), split into K
//! rounds (`--paced-rounds`, default 4) that alternate which side goes first the same way. In
//! each round twin `i` is sent at the same offset (`i / rate`) in both phases, and the pair
//! (pipeline latency of twin `i`) − (direct request time of twin `i`) is one sample of
//! radstream's overhead. The overhead printed is the **median of those per-pair differences**
//! over every round, with its interquartile range and per-round medians, not a difference of two
//! medians (that figure, which this benchmark printed before 2026-12-08, is printed beside it for
//! comparison). The pipeline's per-instance latencies are read back from the run's outcome topic
//! (`end_to_end_ms`, `pipeline_ms` of each outcome, matched by SOPInstanceUID).
//!
//! `--raw-out PATH` writes every sample as JSON lines: a `run` record (the arguments), then
//! `burst_phase` (one per phase), `burst_sample` (one per instance), `paced_pair` (one per
//! twin pair) and a closing `summary` record. Needs the test stack (`infra/stack.sh up; set -a;
//! source .stack/env; set +a`).
//!
//! usage: bench_pipeline [--rounds 3] [--instances 1000] [--paced 300] [--paced-rounds 4]
//!                       [--concurrency 8] [--kib 512] [--rate R] [--local-objects] [--raw-out PATH]
//! (`--local-objects`: the pipeline reads objects from a local folder instead of the S3 server)
//! (`--rate`: events per second of the paced phase; default a quarter of the measured ceiling)
//! (`--paced`: instances of the paced phase per side, over all paced rounds)

use std::collections::HashMap;
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
use radstream_schemas::{OutcomeKind, Priority};
use radstream_tests::raw_out::{machine, RawOut};
use radstream_tests::{create_topic, read_outcomes, unique, unique_seed, Pacs, Stack, WorkerConfig};
use rdkafka::producer::FutureProducer;
use serde_json::json;

struct Args {
    rounds: usize,
    local_objects: bool,
    rate: Option<f64>,
    instances: usize,
    paced: usize,
    paced_rounds: usize,
    concurrency: usize,
    kib: usize,
    raw_out: Option<PathBuf>,
}

const USAGE: &str = "usage: bench_pipeline [--rounds R] [--instances N] [--paced N] [--paced-rounds K] [--concurrency C] [--kib K] [--rate R] [--local-objects] [--raw-out PATH]";

fn args() -> Result<Args> {
    let mut a = Args {
        rounds: 3,
        local_objects: false,
        rate: None,
        instances: 1000,
        paced: 300,
        paced_rounds: 4,
        concurrency: 8,
        kib: 512,
        raw_out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut text = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--instances" => a.instances = text()?.parse().context("--instances: not a number")?,
            "--rounds" => a.rounds = text()?.parse().context("--rounds: not a number")?,
            "--paced" => a.paced = text()?.parse().context("--paced: not a number")?,
            "--paced-rounds" => a.paced_rounds = text()?.parse().context("--paced-rounds: not a number")?,
            "--concurrency" => a.concurrency = text()?.parse().context("--concurrency: not a number")?,
            "--kib" => a.kib = text()?.parse().context("--kib: not a number")?,
            "--rate" => a.rate = Some(text()?.parse().context("--rate: not a number")?),
            "--raw-out" => a.raw_out = Some(PathBuf::from(text()?)),
            "--local-objects" => a.local_objects = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    if a.rounds == 0 || a.paced_rounds == 0 || a.paced < a.paced_rounds || a.instances == 0 {
        bail!(
            "--rounds and --paced-rounds must be at least 1, --paced at least --paced-rounds, --instances at least 1"
        );
    }
    Ok(a)
}

/// One round's instances for both sides: the same synthetic set twice, under two UID roots.
struct Twins {
    direct: Vec<(PathBuf, String)>,
    pipeline: Vec<(PathBuf, String)>,
    mean_kib: f64,
}

/// `n` fresh twin pairs of about `kib` KiB, written under `dir`.
fn make_twins(dir: &Path, n: usize, kib: usize) -> Result<Twins> {
    let base = dir.join(unique("twins"));
    let seed = unique_seed();
    let mut sides = Vec::new();
    for root in ["2.25.1", "2.25.2"] {
        // 8 instances per series keeps studies realistic and the count exact after truncation.
        let opts = SynthOptions {
            studies: n / 8 + 2,
            seed,
            uid_root: root.into(),
            target_instance_bytes: Some(kib * 1024),
            instances_per_series: Some(8),
        };
        let out = base.join(root);
        let written = synth::write_to_dir(&opts, &out)?;
        if written.len() < n {
            bail!("synth produced {} files, need {n}", written.len());
        }
        // In generation order (not sorted by path, which holds the UIDs), so twin i is index i.
        let files: Vec<(PathBuf, String)> = written
            .into_iter()
            .take(n)
            .map(|w| (w.relative_path.split('/').fold(out.clone(), |p, part| p.join(part)), w.relative_path))
            .collect();
        sides.push(files);
    }
    let pipeline = sides.pop().expect("two sides");
    let direct = sides.pop().expect("two sides");
    let bytes: u64 = direct.iter().map(|(p, _)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
    Ok(Twins { mean_kib: bytes as f64 / n as f64 / 1024.0, direct, pipeline })
}

/// Nearest-rank quantile of `v` (sorted in place); NaN when empty.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    quantile(&mut v, 0.5)
}

/// The plain client's phase: per instance (in file order) its request time.
struct DirectResult {
    seconds: f64,
    request_ms: Vec<f64>,
}

/// The pipeline's phase: per instance (in file order) event produced → PACS ack and Kafka read
/// → PACS ack, from its outcome; `None` where the outcome was not read back.
struct PipelineResult {
    seconds: f64,
    per_instance: Vec<Option<(f64, f64)>>,
}

impl PipelineResult {
    fn event_to_ack(&self) -> Vec<f64> {
        self.per_instance.iter().flatten().map(|p| p.0).collect()
    }
}

/// The ceiling: plain STOW-RS, one instance per request, `concurrency` requests in flight,
/// optionally paced to `rate` requests per second (instance `i` at `i / rate`).
async fn direct_stow(
    pacs: &Pacs,
    files: &[(PathBuf, String)],
    concurrency: usize,
    rate: Option<f64>,
) -> Result<DirectResult> {
    let client = reqwest::Client::new();
    let bodies: Vec<Vec<u8>> = files.iter().map(|(p, _)| std::fs::read(p)).collect::<Result<_, _>>()?;
    let boundary = "radstream-bench-boundary-7d1f0c";
    let url = format!("{}/studies", pacs.dicomweb());
    let started = Instant::now();
    let latencies: Vec<Result<(usize, f64)>> = stream::iter(bodies.into_iter().enumerate())
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
                Ok((i, t.elapsed().as_secs_f64() * 1e3))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    // Back into file order, so that sample i is twin i.
    let mut request_ms = vec![f64::NAN; files.len()];
    for r in latencies {
        let (i, ms) = r?;
        request_ms[i] = ms;
    }
    Ok(DirectResult { seconds, request_ms })
}

/// The pipeline: files uploaded to S3 first (not timed), then events produced (all at once, or
/// paced: event `i` at `i / rate`), the runtime consuming them; measured from the first event to
/// the last outcome. Per-instance latencies come back from the outcome topic.
async fn pipeline(
    stack: &Stack,
    dir: &Path,
    files: Vec<(PathBuf, String)>,
    concurrency: usize,
    rate: Option<f64>,
    local_objects: bool,
) -> Result<PipelineResult> {
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
    // `publish` keeps the files' order, so published[i] is file i.
    let published: Vec<Published> = publish::publish(&config.kafka, &config.objects, files, &opts, || {}).await?;
    let sops: Vec<String> = published.iter().map(|p| p.event.sop_instance_uid.clone()).collect();

    let stats = Arc::new(RunStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics = Metrics::new();
    let run = tokio::spawn(runtime::run(config.clone(), metrics.clone(), stats.clone(), stop_rx));
    // Let the consumer join its group and own every partition before the clock starts (a fixed
    // 3 s wait, before 2026-12-08, sometimes left the first events of a paced phase waiting
    // for the join); then a second more for its first fetches.
    let joined = Instant::now() + Duration::from_secs(60);
    while metrics.assigned_partitions.get() < 6 && !run.is_finished() && Instant::now() < joined {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if metrics.assigned_partitions.get() < 6 {
        bail!("the pipeline's consumer owned {} of 6 partitions after 60 s", metrics.assigned_partitions.get());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

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
    eprintln!("  stage means: {}", stage_means(&metrics));

    let (brokers, topic) = (stack.kafka.clone(), worker.outcome_topic.clone());
    let outcomes =
        tokio::task::spawn_blocking(move || read_outcomes(&brokers, &topic, n, Duration::from_secs(90))).await??;
    let by_sop: HashMap<String, (f64, f64)> = outcomes
        .into_iter()
        .filter(|o| o.outcome == OutcomeKind::Delivered)
        .filter_map(|o| Some((o.sop_instance_uid?, (o.end_to_end_ms, o.pipeline_ms))))
        .collect();
    let per_instance: Vec<Option<(f64, f64)>> = sops.iter().map(|s| by_sop.get(s).copied()).collect();
    let missing = per_instance.iter().filter(|p| p.is_none()).count();
    if missing > 0 {
        eprintln!("  warning: {missing} of {n} outcomes not read back; those instances have no per-instance figure");
    }
    Ok(PipelineResult { seconds, per_instance })
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

/// Which side goes first in round `round` (1-based): the direct side in odd rounds.
fn direct_first(round: usize) -> bool {
    round % 2 == 1
}

fn first_name(round: usize) -> &'static str {
    if direct_first(round) {
        "direct"
    } else {
        "pipeline"
    }
}

/// Runs one round's two phases in the round's order.
async fn round_phases(
    stack: &Stack,
    dir: &Path,
    a: &Args,
    twins: Twins,
    round: usize,
    rate: Option<f64>,
) -> Result<(DirectResult, PipelineResult)> {
    let Twins { direct: direct_files, pipeline: pipe_files, .. } = twins;
    if direct_first(round) {
        let d = direct_stow(&stack.pacs(), &direct_files, a.concurrency, rate).await?;
        Ok((d, pipeline(stack, dir, pipe_files, a.concurrency, rate, a.local_objects).await?))
    } else {
        let p = pipeline(stack, dir, pipe_files, a.concurrency, rate, a.local_objects).await?;
        Ok((direct_stow(&stack.pacs(), &direct_files, a.concurrency, rate).await?, p))
    }
}

/// `median [p25 – p75]` of `v`, in ms.
fn median_iqr(v: &[f64]) -> (f64, f64, f64, f64) {
    let mut v = v.to_vec();
    (quantile(&mut v, 0.5), quantile(&mut v, 0.25), quantile(&mut v, 0.75), quantile(&mut v, 0.99))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let a = args()?;
    let Some(stack) = Stack::get() else {
        bail!("the test stack is not running: infra/stack.sh up; set -a; source .stack/env; set +a")
    };
    let mut raw = RawOut::create(a.raw_out.as_deref())?;
    let start = machine();
    let dir = tempfile::tempdir()?;
    let store = if a.local_objects { "local folder" } else { "S3 (moto)" };
    raw.record(json!({
        "record": "run",
        "bench": "bench_pipeline",
        "rounds": a.rounds,
        "instances": a.instances,
        "paced": a.paced,
        "paced_rounds": a.paced_rounds,
        "concurrency": a.concurrency,
        "kib": a.kib,
        "rate": a.rate,
        "objects": store,
        "order": "alternate: odd rounds direct first, even rounds pipeline first",
        "unix_ms": SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64,
        "machine": start,
    }))?;
    println!(
        "machine: {} cores, {}, load average at the start {}",
        start["cores"],
        start["cpu_model"].as_str().unwrap_or("?"),
        start["loadavg"].as_str().unwrap_or("?")
    );
    println!(
        "radstream pipeline benchmark: {} rounds, {} instances of ~{} KiB per phase, concurrency {}, objects from {store}",
        a.rounds, a.instances, a.kib, a.concurrency
    );
    println!("(twin instances on both sides of a round; order alternates: odd rounds direct first, even rounds pipeline first)");
    println!();
    println!("| round | first | phase | instances/s | MB/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    let (mut direct_rates, mut pipe_rates) = (Vec::new(), Vec::new());
    for round in 1..=a.rounds {
        eprintln!("round {round}: generating fresh twin instances...");
        let twins = make_twins(dir.path(), a.instances, a.kib)?;
        let mean_kib = twins.mean_kib;
        let mbps = |r: f64| r * mean_kib / 1024.0;
        eprintln!("round {round}: {} first...", first_name(round));
        let (direct, pipe) = round_phases(&stack, dir.path(), &a, twins, round, None).await?;
        let (d_rate, p_rate) = (a.instances as f64 / direct.seconds, a.instances as f64 / pipe.seconds);
        let (mut d_ms, mut e_ms) = (direct.request_ms.clone(), pipe.event_to_ack());
        println!(
            "| {round} | {} | direct STOW (ceiling) | {d_rate:.1} | {:.1} | {:.1} ms request | {:.1} ms |",
            first_name(round),
            mbps(d_rate),
            quantile(&mut d_ms, 0.5),
            quantile(&mut d_ms, 0.99)
        );
        println!(
            "| {round} | {} | pipeline | {p_rate:.1} | {:.1} | {:.0} ms event→ack (queued) | {:.0} ms |",
            first_name(round),
            mbps(p_rate),
            quantile(&mut e_ms, 0.5),
            quantile(&mut e_ms, 0.99)
        );
        let position = |side_direct: bool| if side_direct == direct_first(round) { 1 } else { 2 };
        for (side, seconds, rate) in [("direct", direct.seconds, d_rate), ("pipeline", pipe.seconds, p_rate)] {
            raw.record(json!({
                "record": "burst_phase", "round": round, "first": first_name(round), "side": side,
                "position": position(side == "direct"), "instances": a.instances, "seconds": seconds,
                "instances_per_s": rate, "mean_kib": mean_kib,
            }))?;
        }
        for (i, ms) in direct.request_ms.iter().enumerate() {
            raw.record(
                json!({"record": "burst_sample", "round": round, "side": "direct", "index": i, "request_ms": ms}),
            )?;
        }
        for (i, p) in pipe.per_instance.iter().enumerate() {
            raw.record(json!({
                "record": "burst_sample", "round": round, "side": "pipeline", "index": i,
                "event_to_ack_ms": p.map(|p| p.0), "read_to_ack_ms": p.map(|p| p.1),
            }))?;
        }
        ratios.push(p_rate / d_rate);
        direct_rates.push(d_rate);
        pipe_rates.push(p_rate);
    }
    println!();
    let throughput_ratio = median(ratios.clone());
    println!(
        "**Throughput: pipeline {:.1}/s, ceiling {:.1}/s (medians); median per-round ratio pipeline / ceiling = {throughput_ratio:.3}** (rounds: {})",
        median(pipe_rates.clone()),
        median(direct_rates.clone()),
        ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ")
    );

    let rate = a.rate.unwrap_or(median(direct_rates.clone()) / 4.0);
    let (mut all_direct, mut all_read, mut all_event) = (Vec::new(), Vec::new(), Vec::new());
    let (mut pair_read, mut pair_event) = (Vec::new(), Vec::new());
    let mut per_round = Vec::new();
    for round in 1..=a.paced_rounds {
        // The paced instances shared out over the rounds, the remainder to the first ones.
        let n = a.paced / a.paced_rounds + usize::from(round <= a.paced % a.paced_rounds);
        eprintln!("paced round {round}: {n} twins at {rate:.1}/s, {} first...", first_name(round));
        let twins = make_twins(dir.path(), n, a.kib)?;
        let (direct, pipe) = round_phases(&stack, dir.path(), &a, twins, round, Some(rate)).await?;
        let mut round_read = Vec::new();
        for (i, (d, p)) in direct.request_ms.iter().zip(&pipe.per_instance).enumerate() {
            raw.record(json!({
                "record": "paced_pair", "round": round, "first": first_name(round), "index": i, "rate": rate,
                "direct_request_ms": d, "pipeline_event_to_ack_ms": p.map(|p| p.0),
                "pipeline_read_to_ack_ms": p.map(|p| p.1),
            }))?;
            all_direct.push(*d);
            if let Some((event, read)) = p {
                all_read.push(*read);
                all_event.push(*event);
                pair_read.push(read - d);
                pair_event.push(event - d);
                round_read.push(read - d);
            }
        }
        per_round.push((round, first_name(round), round_read.len(), median(round_read)));
    }
    let (mut dd, mut rr, mut ee) = (all_direct.clone(), all_read.clone(), all_event.clone());
    let (d50, d99) = (quantile(&mut dd, 0.5), quantile(&mut dd, 0.99));
    let (r50, r99) = (quantile(&mut rr, 0.5), quantile(&mut rr, 0.99));
    let (e50, e99) = (quantile(&mut ee, 0.5), quantile(&mut ee, 0.99));
    let (o50, o25, o75, o99) = median_iqr(&pair_read);
    let (k50, k25, k75, k99) = median_iqr(&pair_event);
    println!();
    println!(
        "| paced: {} twin pairs at {rate:.1}/s in {} rounds (first: {}) | p50 | p99 |",
        a.paced,
        a.paced_rounds,
        (1..=a.paced_rounds).map(first_name).collect::<Vec<_>>().join(", ")
    );
    println!("|---|---|---|");
    println!("| direct STOW request (the PACS's own time) | {d50:.1} ms | {d99:.1} ms |");
    println!("| pipeline, Kafka read → PACS ack | {r50:.1} ms | {r99:.1} ms |");
    println!("| pipeline, event produced → PACS ack | {e50:.1} ms | {e99:.1} ms |");
    println!();
    println!(
        "| per twin pair: pipeline − direct request ({} pairs) | median | IQR (p25 – p75) | p99 |",
        pair_read.len()
    );
    println!("|---|---|---|---|");
    println!("| **radstream overhead (Kafka read → ack)** | **{o50:.1} ms** | {o25:.1} – {o75:.1} ms | {o99:.1} ms |");
    println!("| overhead incl. Kafka delivery (event → ack) | {k50:.1} ms | {k25:.1} – {k75:.1} ms | {k99:.1} ms |");
    println!();
    println!(
        "per-round median overhead (read → ack): {}",
        per_round
            .iter()
            .map(|(r, f, n, m)| format!("round {r} ({f} first, {n} pairs) {m:.1} ms"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!(
        "(difference of the two medians, the figure printed before 2026-12-08: read → ack {:.1} ms, event → ack {:.1} ms)",
        r50 - d50,
        e50 - d50
    );
    let end = machine();
    println!("(load average at the end: {})", end["loadavg"].as_str().unwrap_or("?"));
    raw.record(json!({
        "record": "summary",
        "machine_at_end": end,
        "throughput_pipeline_median": median(pipe_rates),
        "throughput_direct_median": median(direct_rates),
        "throughput_ratio_median": throughput_ratio,
        "throughput_ratios": ratios,
        "paced_rate": rate,
        "paced_pairs": pair_read.len(),
        "direct_request_ms": {"p50": d50, "p99": d99},
        "pipeline_read_to_ack_ms": {"p50": r50, "p99": r99},
        "pipeline_event_to_ack_ms": {"p50": e50, "p99": e99},
        "overhead_read_to_ack_ms": {"median": o50, "p25": o25, "p75": o75, "p99": o99},
        "overhead_event_to_ack_ms": {"median": k50, "p25": k25, "p75": k75, "p99": k99},
        "overhead_per_round_median_ms": per_round.iter().map(|(r, f, n, m)| json!({"round": r, "first": f, "pairs": n, "median": m})).collect::<Vec<_>>(),
    }))?;
    raw.finish()?;
    Ok(())
}

//! Scale benchmarks on the real broker (tansu of `infra/stack.sh up`), with worker processes of
//! the real `radstream` binary and a local-folder object store (so the S3 stand-in is not what
//! is measured):
//!
//! * `workers`: one against two workers of a consumer group draining the same backlog (each
//!   round a fresh group over the same events), chain route → preprocess (the demo head CT
//!   spec) → export to the local store;
//! * `failover`: two workers under a steady stream; one is killed (SIGKILL); the time until the
//!   survivor owns every partition and until the dead worker's partitions deliver again;
//! * `stat`: STAT events sent behind a backlog of ROUTINE ones: their latency against the
//!   ROUTINE ones';
//! * `memory`: one worker reading a backlog of 100,000 events (chain route → export of every
//!   instance, tiny images): its resident memory sampled every second.
//!
//! Only `workers` and `stat` have a baseline in the same run (one worker; the ROUTINE events);
//! `failover` and `memory` are measured against a target, not against a baseline.
//!
//! In `workers` the order of the 1-worker and 2-worker runs alternates from round to round
//! (`--order alternate`, the default: 1 then 2 in odd rounds, 2 then 1 in even rounds), so that
//! drift on a shared machine does not always favour the same count; `--order fixed` runs 1
//! before 2 in every round (the order before 2026-12-08). The two-over-one ratio is taken per
//! round, and the median of those ratios is the figure.
//!
//! `--raw-out PATH` writes every sample as JSON lines: a `run` record (the arguments), then
//! `workers_run` (one per drain), `failover_round`, `stat_outcome` (one per outcome) with a
//! `stat_summary`, and `memory_sample` (one per second).
//!
//! `cargo build --release -p radstream-tests --bin bench_scale -p radstream-pipeline &&
//! set -a && source .stack/env && set +a && <target>/release/bench_scale [--only NAME]
//! [--rounds 3] [--order alternate|fixed] [--backlog-studies 60] [--memory-events 100000]
//! [--raw-out PATH]` (`--rounds` for `workers` and `failover`; `--backlog-studies` sizes the
//! `workers` backlog, 60 studies being about 9,300 events).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use radstream_pipeline::loadgen::{self, LoadgenOptions};
use radstream_schemas::OutcomeEvent;
use radstream_tests::raw_out::{machine, RawOut};
use radstream_tests::{create_topic, metric_at, read_topic, unique, Worker};
use serde_json::json;

const PARTITIONS: i32 = 4;

/// Which worker counts run in round `round` (0-based), in order.
fn worker_order(round: usize, alternate: bool) -> [usize; 2] {
    if alternate && round % 2 == 1 {
        [2, 1]
    } else {
        [1, 2]
    }
}

struct Setup {
    brokers: String,
    dir: tempfile::TempDir,
    topic: String,
    outcomes: String,
}

impl Setup {
    async fn new(name: &str) -> Result<Self> {
        let brokers = std::env::var("RADSTREAM_TEST_KAFKA").context("source .stack/env first")?;
        let topic = unique(name);
        let outcomes = format!("{topic}-outcomes");
        create_topic(&brokers, &topic, PARTITIONS).await?;
        create_topic(&brokers, &outcomes, 1).await?;
        create_topic(&brokers, &format!("{topic}-dlq"), 1).await?;
        Ok(Self { brokers, dir: tempfile::tempdir()?, topic, outcomes })
    }

    fn objects(&self) -> PathBuf {
        self.dir.path().join("objects")
    }

    /// A worker config: the group, the chain, session timeout.
    fn config(&self, group: &str, chain: &str, session_ms: u32) -> Result<PathBuf> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = format!(
            r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
input_topic = "{topic}"
dead_letter_topic = "{topic}-dlq"
outcome_topic = "{outcomes}"
session_timeout_ms = {session_ms}
commit_interval_ms = 500

[kafka.consumer]
"fetch.wait.max.ms" = "10"

[objects]
kind = "local"
root = "{root}"

[runtime]
drain_deadline_secs = 10
{chain}
"#,
            brokers = self.brokers,
            topic = self.topic,
            outcomes = self.outcomes,
            root = self.objects().display(),
            chain = chain.replace("{spec}", &repo.join("models/ct-head-bleed.preprocess.toml").display().to_string()),
        );
        let path = self.dir.path().join(format!("{group}.toml"));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    fn kafka_objects(
        &self,
    ) -> Result<(radstream_pipeline::config::KafkaConfig, radstream_pipeline::config::ObjectsConfig)> {
        let path = self.config("publisher", EXPORT_ALL, 6000)?;
        let config = radstream_pipeline::config::Config::load(&path, Vec::<(String, String)>::new())?;
        Ok((config.kafka, config.objects))
    }

    /// Sends `studies` synthetic studies (series of at most `max` instances) as fast as it can.
    async fn backlog(&self, studies: usize, max: usize, bytes: usize, stat_share: f64, seed: u64) -> Result<u64> {
        let (kafka, objects) = self.kafka_objects()?;
        let opts = LoadgenOptions {
            studies,
            rate: 100_000.0,
            stat_share,
            max_series_instances: max,
            seed,
            instance_bytes: Some(bytes),
            bucket: "bench".into(),
            prefix: "in".into(),
            concurrency: 64,
        };
        Ok(loadgen::run(&kafka, &objects, &opts, || {}).await?.events)
    }
}

const EXPORT_ALL: &str = r#"
[[operators]]
type = "route"
default_action = "forward"
default_branch = "all"

[[operators]]
type = "export"
bucket = "out"
"#;

const PREPROCESS_CT: &str = r#"
[[operators]]
type = "route"
default_action = "forward"
default_branch = "all"

[[operators]]
type = "preprocess"
spec_file = "{spec}"
device = "cpu"

[[operators]]
type = "export"
bucket = "out"
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Outcomes counted by the workers (delivered + dropped + dead-lettered).
async fn finished(workers: &[Worker]) -> f64 {
    let mut n = 0.0;
    for w in workers {
        n += metric_at(&w.metrics, "radstream_outcomes_total").await;
    }
    n
}

async fn wait_finished(workers: &[Worker], n: u64, timeout: Duration) -> Result<Duration> {
    Ok(drain(workers, n, timeout).await?.0)
}

/// Waits until `n` are finished; returns the whole time and the steady rate: events per second
/// between 10% and 90% finished (so the consumer group's join is not counted).
async fn drain(workers: &[Worker], n: u64, timeout: Duration) -> Result<(Duration, f64)> {
    let start = Instant::now();
    let (mut t10, mut t90) = (None, None);
    loop {
        let done = finished(workers).await;
        let now = start.elapsed();
        if t10.is_none() && done >= 0.1 * n as f64 {
            t10 = Some((now, done));
        }
        if t90.is_none() && done >= 0.9 * n as f64 {
            t90 = Some((now, done));
        }
        if done >= n as f64 {
            break;
        }
        ensure!(now < timeout, "{done} of {n} finished in {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ((a, da), (b, db)) = (t10.expect("reached"), t90.expect("reached"));
    Ok((start.elapsed(), (db - da) / (b - a).as_secs_f64().max(1e-3)))
}

async fn workers_bench(rounds: usize, alternate: bool, studies: usize, raw: &mut RawOut) -> Result<()> {
    let setup = Setup::new("scale-workers").await?;
    let events = setup.backlog(studies, 150, 40_000, 0.0, 11).await?;
    println!("== one against two workers: {events} events backlog, {PARTITIONS} partitions, route -> preprocess -> export ==");
    println!(
        "(order: {})",
        (0..rounds).map(|r| format!("{:?}", worker_order(r, alternate))).collect::<Vec<_>>().join(", ")
    );
    let (mut one, mut two) = (vec![f64::NAN; rounds], vec![f64::NAN; rounds]);
    for round in 0..rounds {
        for (position, count) in worker_order(round, alternate).into_iter().enumerate() {
            let group = unique(&format!("g{count}"));
            let config = setup.config(&group, PREPROCESS_CT, 6000)?;
            let workers: Vec<Worker> = (0..count)
                .map(|i| Worker::start(&config, "", setup.dir.path(), &format!("{group}-{i}")))
                .collect::<Result<_>>()?;
            let (took, rate) = drain(&workers, events, Duration::from_secs(600)).await?;
            println!(
                "round {}: {count} worker(s) ({}): all in {:.1} s (group join included); {rate:.0} events/s from 10% to 90%",
                round + 1,
                if position == 0 { "first" } else { "second" },
                took.as_secs_f64()
            );
            raw.record(json!({
                "record": "workers_run", "round": round + 1, "position": position + 1, "workers": count,
                "events": events, "seconds_all": took.as_secs_f64(), "events_per_s_10_to_90": rate,
                "loadavg": machine()["loadavg"],
            }))?;
            if count == 1 {
                one[round] = rate
            } else {
                two[round] = rate
            }
            drop(workers);
        }
    }
    let ratios: Vec<f64> = one.iter().zip(&two).map(|(a, b)| b / a).collect();
    println!("\n| round | order | 1 worker, events/s | 2 workers, events/s | 2 / 1 |\n|---|---|---:|---:|---:|");
    for round in 0..rounds {
        let [a, b] = worker_order(round, alternate);
        println!("| {} | {a} then {b} | {:.0} | {:.0} | {:.2} |", round + 1, one[round], two[round], ratios[round]);
    }
    println!(
        "| **median of {rounds}** | | **{:.0}** | **{:.0}** | **{:.2}** |",
        median(one.clone()),
        median(two.clone()),
        median(ratios.clone())
    );
    println!(
        "two over one: median of the per-round ratios {:.2}x (rounds: {})\n",
        median(ratios.clone()),
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

async fn failover_bench(rounds: usize, raw: &mut RawOut) -> Result<()> {
    let setup = Setup::new("scale-failover").await?;
    println!("== failover: two workers under a steady stream, one SIGKILLed; session.timeout.ms = 3000 ==");
    let mut owned_all = Vec::new();
    let mut flowing = Vec::new();
    for round in 0..rounds {
        let group = unique("failover");
        let config = setup.config(&group, EXPORT_ALL, 3000)?;
        let mut first = Worker::start(&config, "", setup.dir.path(), &format!("{group}-a"))?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let second = Worker::start(&config, "", setup.dir.path(), &format!("{group}-b"))?;
        // A steady stream, 100 events/s, while the group settles and after the kill.
        let (kafka, objects) = setup.kafka_objects()?;
        let stream = tokio::spawn(async move {
            // Longer than the run (it is stopped at the end), so events keep coming after the kill.
            let opts = LoadgenOptions {
                studies: 600,
                rate: 100.0,
                stat_share: 0.0,
                max_series_instances: 20,
                seed: 100 + round as u64,
                instance_bytes: Some(8_000),
                bucket: "bench".into(),
                prefix: "stream".into(),
                concurrency: 16,
            };
            loadgen::run(&kafka, &objects, &opts, || {}).await
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        ensure!(!stream.is_finished(), "the stream stopped at once: {:?}", stream.await);
        let settle = Instant::now();
        while metric_at(&second.metrics, "radstream_assigned_partitions").await == 0.0
            || metric_at(&first.metrics, "radstream_assigned_partitions").await == 0.0
        {
            ensure!(settle.elapsed() < Duration::from_secs(60), "the group did not settle");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        // tansu 0.6 reassigns only when the member that joined second dies (README): kill it.
        let mut second = second;
        let killed = Instant::now();
        second.kill();
        while metric_at(&first.metrics, "radstream_assigned_partitions").await < PARTITIONS as f64 {
            ensure!(killed.elapsed() < Duration::from_secs(60), "the survivor never got every partition");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all = killed.elapsed();
        // Flowing again: the survivor's outcome rate exceeds what its own partitions gave.
        let outcomes = &setup.outcomes;
        let since_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64
            - all.as_millis() as i64;
        // (A reader joins as a new consumer each time, which can take tansu several seconds.)
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut again = None;
        while again.is_none() && Instant::now() < deadline {
            let records = read_topic(&setup.brokers, outcomes, usize::MAX, Duration::from_secs(15))?;
            // Per partition, its first outcome after the kill; flowing again when all have one.
            let mut first_after: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
            for o in records.iter().filter_map(|r| serde_json::from_slice::<OutcomeEvent>(r).ok()) {
                if o.time_ms >= since_ms {
                    let t = first_after.entry(o.source_partition).or_insert(o.time_ms);
                    *t = (*t).min(o.time_ms);
                }
            }
            if std::env::var_os("BENCH_DEBUG").is_some() {
                eprintln!("{} outcomes read; first after the kill per partition: {first_after:?}", records.len());
            }
            if first_after.len() == PARTITIONS as usize {
                let latest = first_after.values().copied().max().unwrap_or(since_ms);
                again = Some(Duration::from_millis((latest - since_ms).max(0) as u64));
            }
        }
        let again = again.context("not every partition delivered again within 90 s")?;
        println!(
            "round {}: every partition owned by the survivor {:.2} s after the kill; each partition delivering again by {:.2} s",
            round + 1,
            all.as_secs_f64(),
            again.as_secs_f64()
        );
        raw.record(json!({
            "record": "failover_round", "round": round + 1, "owned_all_s": all.as_secs_f64(),
            "delivering_again_s": again.as_secs_f64(),
        }))?;
        owned_all.push(all.as_secs_f64());
        flowing.push(again.as_secs_f64());
        first.kill();
        stream.abort();
    }
    println!(
        "\n| from SIGKILL to | median of {rounds} (s) |\n|---|---:|\n| survivor owns every partition | {:.2} |\n| each partition delivering again | {:.2} |\n",
        median(owned_all),
        median(flowing)
    );
    Ok(())
}

async fn stat_bench(raw: &mut RawOut) -> Result<()> {
    let setup = Setup::new("scale-stat").await?;
    let routine = setup.backlog(80, 150, 40_000, 0.0, 21).await?;
    let stat = setup.backlog(2, 10, 40_000, 1.0, 22).await?;
    println!("== STAT behind a backlog: {routine} ROUTINE events, then {stat} STAT, one worker, route -> preprocess -> export ==");
    let config = setup.config(&unique("stat"), PREPROCESS_CT, 6000)?;
    let worker = Worker::start(&config, "", setup.dir.path(), "stat")?;
    wait_finished(std::slice::from_ref(&worker), routine + stat, Duration::from_secs(900)).await?;
    let records = read_topic(&setup.brokers, &setup.outcomes, (routine + stat) as usize, Duration::from_secs(30))?;
    let outcomes: Vec<OutcomeEvent> = records.iter().filter_map(|r| serde_json::from_slice(r).ok()).collect();
    // The STAT studies are the last two: their instances are the last `stat` events published.
    let m = &worker.metrics;
    let stat_count = metric_at(m, "radstream_end_to_end_seconds_count{outcome=\"delivered\",priority=\"stat\"}").await;
    let stat_sum = metric_at(m, "radstream_end_to_end_seconds_sum{outcome=\"delivered\",priority=\"stat\"}").await;
    let routine_count =
        metric_at(m, "radstream_end_to_end_seconds_count{outcome=\"delivered\",priority=\"routine\"}").await;
    let routine_sum =
        metric_at(m, "radstream_end_to_end_seconds_sum{outcome=\"delivered\",priority=\"routine\"}").await;
    let e2e: Vec<f64> = outcomes.iter().map(|o| o.end_to_end_ms).collect();
    for o in &outcomes {
        raw.record(json!({
            "record": "stat_outcome", "source_partition": o.source_partition, "source_offset": o.source_offset,
            "outcome": o.outcome.as_str(), "end_to_end_ms": o.end_to_end_ms, "time_ms": o.time_ms,
        }))?;
    }
    raw.record(json!({
        "record": "stat_summary", "routine_events": routine, "stat_events": stat,
        "routine_delivered": routine_count, "routine_mean_s": routine_sum / routine_count.max(1.0),
        "stat_delivered": stat_count, "stat_mean_s": stat_sum / stat_count.max(1.0), "outcomes_read": e2e.len(),
    }))?;
    println!(
        "\n| priority | delivered | mean event -> outcome (s) |\n|---|---:|---:|\n| ROUTINE | {routine_count} | {:.2} |\n| STAT | {stat_count} | {:.2} |\n(all {} outcomes: median {:.2} s, max {:.2} s)\n",
        routine_sum / routine_count.max(1.0),
        stat_sum / stat_count.max(1.0),
        e2e.len(),
        median(e2e.clone()) / 1000.0,
        e2e.iter().copied().fold(0.0, f64::max) / 1000.0
    );
    Ok(())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

async fn memory_bench(target: u64, raw: &mut RawOut) -> Result<()> {
    let setup = Setup::new("scale-memory").await?;
    let started = Instant::now();
    let mut events = 0;
    let mut seed = 31;
    while events < target {
        events += setup.backlog(100, 500, 5_200, 0.0, seed).await?;
        seed += 1;
    }
    println!(
        "== resident memory: one worker reading a backlog of {events} events (sent in {:.0} s), route -> export ==",
        started.elapsed().as_secs_f64()
    );
    let config = setup.config(&unique("memory"), EXPORT_ALL, 6000)?;
    let worker = Worker::start(&config, "", setup.dir.path(), "memory")?;
    let pid = worker.pid();
    let begin = Instant::now();
    let mut samples = Vec::new();
    loop {
        let done = finished(std::slice::from_ref(&worker)).await;
        if let Some(kib) = rss_kib(pid) {
            samples.push((begin.elapsed().as_secs_f64(), done, kib));
        }
        if done >= events as f64 || begin.elapsed() > Duration::from_secs(1800) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for s in &samples {
        raw.record(json!({"record": "memory_sample", "t_s": s.0, "finished": s.1, "rss_kib": s.2, "events": events}))?;
    }
    let max = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let quarter = samples.len() / 4;
    let early = median(samples[quarter..2 * quarter.max(1)].iter().map(|s| s.2 as f64).collect());
    let late = median(samples[3 * quarter..].iter().map(|s| s.2 as f64).collect());
    for s in samples.iter().step_by((samples.len() / 12).max(1)) {
        println!("t = {:>6.1} s: {:>7} of {events} finished, RSS {:>6.1} MiB", s.0, s.1, s.2 as f64 / 1024.0);
    }
    println!(
        "\n| resident memory | MiB |\n|---|---:|\n| max | {:.1} |\n| median, second quarter of the run | {:.1} |\n| median, last quarter | {:.1} |\n({} events in {:.0} s)\n",
        max as f64 / 1024.0,
        early / 1024.0,
        late / 1024.0,
        events,
        begin.elapsed().as_secs_f64()
    );
    Ok(())
}

const USAGE: &str = "usage: bench_scale [--only workers|failover|stat|memory] [--rounds N] [--order alternate|fixed] [--backlog-studies N] [--memory-events N] [--raw-out PATH]";

#[tokio::main]
async fn main() -> Result<()> {
    let (mut only, mut rounds, mut alternate, mut studies, mut memory_events, mut raw_out) =
        (None, 3usize, true, 60usize, 100_000u64, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut text = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--only" => only = Some(text()?),
            "--rounds" => rounds = text()?.parse().context("--rounds: not a number")?,
            "--order" => {
                alternate = match text()?.as_str() {
                    "alternate" => true,
                    "fixed" => false,
                    other => anyhow::bail!("--order {other}: alternate or fixed"),
                }
            }
            "--backlog-studies" => studies = text()?.parse().context("--backlog-studies: not a number")?,
            "--memory-events" => memory_events = text()?.parse().context("--memory-events: not a number")?,
            "--raw-out" => raw_out = Some(PathBuf::from(text()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => anyhow::bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    ensure!(rounds > 0, "--rounds must be at least 1");
    let mut raw = RawOut::create(raw_out.as_deref())?;
    raw.record(json!({
        "record": "run", "bench": "bench_scale", "only": only, "rounds": rounds,
        "order": if alternate { "alternate" } else { "fixed" }, "backlog_studies": studies,
        "memory_events": memory_events,
        "unix_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64,
        "machine": machine(),
    }))?;
    let start = machine();
    println!(
        "machine: {} cores, {}, load average at the start {}",
        start["cores"],
        start["cpu_model"].as_str().unwrap_or("?"),
        start["loadavg"].as_str().unwrap_or("?")
    );
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if run("workers") {
        workers_bench(rounds, alternate, studies, &mut raw).await?;
    }
    if run("failover") {
        failover_bench(rounds, &mut raw).await?;
    }
    if run("stat") {
        stat_bench(&mut raw).await?;
    }
    if run("memory") {
        memory_bench(memory_events, &mut raw).await?;
    }
    let end = machine();
    println!("(load average at the end: {})", end["loadavg"].as_str().unwrap_or("?"));
    raw.record(json!({"record": "end", "machine": end}))?;
    Ok(())
}

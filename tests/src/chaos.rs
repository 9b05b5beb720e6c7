//! The chaos run: events through two workers (route → stow) on the real stack while things
//! break, then an accounting of every event. `src/bin/chaos.rs` runs it by hand (10,000 events,
//! every fault); `tests/tests/chaos.rs` runs a smaller one in CI (no broker restart there).
//!
//! * the PACS (an Orthanc of the run's own) sits behind a fault proxy that answers a share of
//!   STOW requests with 503 and lets a share time out (held past the sink's 5 s request timeout);
//! * the PACS is down for a while (Orthanc stopped, then started again on its data);
//! * optionally the broker restarts (the stack's tansu killed and started again by
//!   `infra/stack.sh up`);
//! * a worker is killed with SIGKILL and a new one started;
//! * 1% of the objects are corrupt (text where a DICOM file should be).
//!
//! At the end every event must be in exactly one place: its instance in the PACS once (by
//! SOPInstanceUID, QIDO-RS) or its reason in the dead-letter topic.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes as Body;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use futures::StreamExt;
use radstream_pipeline::publish;
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::{DeadLetter, ObjectLocation};

use crate::{free_port, read_topic, unique_seed, OwnOrthanc, Pacs, Stack, Worker, WorkerConfig};

/// What to break and how much.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Events to send.
    pub events: usize,
    /// Share of STOW requests answered 503.
    pub errors: f64,
    /// Share of STOW requests held past the sink's timeout.
    pub timeouts: f64,
    /// How long the PACS is down.
    pub pacs_down: Duration,
    /// Restart the stack's broker (never in CI: other tests share it).
    pub restart_broker: bool,
    /// Give up accounting after this long.
    pub deadline: Duration,
}

/// Where every event ended.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    /// Events sent.
    pub events: usize,
    /// Rows of the accounting table: where, how many.
    pub rows: BTreeMap<String, usize>,
    /// Events in exactly one place.
    pub accounted: usize,
    /// Events in the PACS more than once.
    pub duplicates: usize,
    /// Events both in the PACS and dead-lettered.
    pub both: usize,
    /// Events nowhere.
    pub missing: usize,
    /// Dead letters in the topic (an event re-read after a crash may be dead-lettered again).
    pub dead_letters: usize,
    /// What the fault proxy did: 503s, timeouts, forwarded requests.
    pub injected: (u64, u64, u64),
    /// The timeline, as it happened.
    pub timeline: Vec<String>,
}

impl ChaosReport {
    /// The accounting table (Markdown).
    pub fn table(&self) -> String {
        let mut out = String::from("| where | events |\n|---|---:|\n");
        for (row, n) in &self.rows {
            out.push_str(&format!("| {row} | {n} |\n"));
        }
        out.push_str(&format!(
            "| in the PACS more than once | {} |\n| in the PACS and dead-lettered | {} |\n| nowhere (lost) | {} |\n",
            self.duplicates, self.both, self.missing
        ));
        out.push_str(&format!(
            "\n{} events: {} accounted ({:.2}%), {} duplicates, {} lost; {} dead letters in all; proxy: {} injected \
             503s, {} injected timeouts, {} forwarded\n",
            self.events,
            self.accounted,
            100.0 * self.accounted as f64 / self.events.max(1) as f64,
            self.duplicates,
            self.missing,
            self.dead_letters,
            self.injected.0,
            self.injected.1,
            self.injected.2
        ));
        out
    }
}

struct Faults {
    orthanc: String,
    errors: f64,
    timeouts: f64,
    injected_errors: AtomicU64,
    injected_timeouts: AtomicU64,
    forwarded: AtomicU64,
}

/// The fault proxy: a share of requests fail or hang, the rest go to Orthanc as they came.
async fn proxy(
    faults: Arc<Faults>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, HeaderMap, Body) {
    let draw = fastrand::f64();
    if method == Method::POST && draw < faults.errors {
        faults.injected_errors.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new(), Body::from_static(b"injected"));
    }
    if method == Method::POST && draw < faults.errors + faults.timeouts {
        faults.injected_timeouts.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(8)).await;
        return (StatusCode::GATEWAY_TIMEOUT, HeaderMap::new(), Body::from_static(b"injected"));
    }
    faults.forwarded.fetch_add(1, Ordering::Relaxed);
    let url = format!("{}{}", faults.orthanc, uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut request = reqwest::Client::new().request(method, url).body(body.to_vec());
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut out = HeaderMap::new();
            if let Some(ct) = response.headers().get("content-type") {
                out.insert("content-type", ct.clone());
            }
            (status, out, response.bytes().await.unwrap_or_default())
        }
        Err(_) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), Body::from_static(b"pacs down")),
    }
}

/// Runs the chaos run on `stack`.
pub async fn run(stack: &Stack, opts: &ChaosOptions) -> Result<ChaosReport> {
    let events = opts.events;
    let mut timeline = Vec::new();
    let dir = tempfile::tempdir()?;
    let mut orthanc = OwnOrthanc::start(stack, dir.path()).await?;
    let faults = Arc::new(Faults {
        orthanc: orthanc.pacs.base.clone(),
        errors: opts.errors,
        timeouts: opts.timeouts,
        injected_errors: AtomicU64::new(0),
        injected_timeouts: AtomicU64::new(0),
        forwarded: AtomicU64::new(0),
    });
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let router = {
        let faults = Arc::clone(&faults);
        axum::Router::new()
            .fallback(move |method, uri, headers, body| proxy(Arc::clone(&faults), method, uri, headers, body))
    };
    tokio::spawn(async move { axum::serve(listener, router).await });
    let proxied = Pacs { base: format!("http://127.0.0.1:{port}"), ..orthanc.pacs.clone() };

    let mut worker = WorkerConfig::new(stack, "chaos", proxied);
    worker.stow_extra = "timeout_secs = 5\nconcurrency = 16".into();
    worker.stow_retry_deadline_secs = 600;
    worker.create_topics(stack, 4).await?;
    let config_path = worker.write(dir.path())?;
    let config = worker.parsed()?;

    // The events: synthetic studies, small images, every 100th object corrupt.
    let synth_opts =
        SynthOptions { studies: 2_000, seed: unique_seed(), target_instance_bytes: Some(6_000), ..Default::default() };
    let instances: Vec<synth::SynthInstance> = synth::generate(&synth_opts).take(events).collect();
    let producer: rdkafka::producer::FutureProducer =
        radstream_pipeline::kafka::producer_config(&stack.kafka, &Default::default()).create()?;
    let store = radstream_pipeline::objects::ObjectFetcher::new(config.objects.clone());
    let publish_opts = worker.publish_options(stack);
    let started = Instant::now();
    let mut corrupt = 0;
    let sent: Vec<(String, String)> = futures::stream::iter(instances.into_iter().enumerate())
        .map(|(k, instance)| {
            let (producer, store, publish_opts, worker) = (&producer, &store, &publish_opts, &worker);
            async move {
                let key = format!("{}/{}", worker.topic, instance.relative_path);
                let location = ObjectLocation { bucket: publish_opts.bucket.clone(), key, size: None, etag: None };
                let event = publish::event_for(&instance.bytes, location.clone(), publish_opts)?;
                let bytes =
                    if k % 100 == 99 { bytes::Bytes::from_static(b"not a DICOM file") } else { instance.bytes.into() };
                store.put(&location, bytes).await.map_err(|e| anyhow::anyhow!(e.reason))?;
                publish::send_event(producer, &worker.topic, worker.parsed()?.kafka.format, &event).await?;
                Ok::<_, anyhow::Error>((event.sop_instance_uid, event.study_instance_uid))
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    corrupt += sent.len() / 100;
    timeline.push(format!(
        "sent {} events ({corrupt} with corrupt objects) in {:.0} s",
        sent.len(),
        started.elapsed().as_secs_f64()
    ));

    let mut a = Worker::start(&config_path, &orthanc.pacs.password, dir.path(), "chaos-a")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut b = Worker::start(&config_path, &orthanc.pacs.password, dir.path(), "chaos-b")?;
    let t0 = Instant::now();
    let log = |timeline: &mut Vec<String>, what: &str| {
        timeline.push(format!("t = {:>5.1} s: {what}", t0.elapsed().as_secs_f64()));
        eprintln!("{}", timeline.last().expect("just pushed"));
    };

    tokio::time::sleep(Duration::from_secs(10)).await;
    log(&mut timeline, &format!("PACS down (Orthanc stopped) for {} s", opts.pacs_down.as_secs()));
    orthanc.stop();
    tokio::time::sleep(opts.pacs_down).await;
    orthanc.restart().await?;
    log(&mut timeline, "PACS back");
    tokio::time::sleep(Duration::from_secs(10)).await;
    log(&mut timeline, "worker b killed with SIGKILL; a new one started");
    b.kill();
    let mut b2 = Worker::start(&config_path, &orthanc.pacs.password, dir.path(), "chaos-b2")?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    if opts.restart_broker {
        log(&mut timeline, "broker restart: tansu killed, then infra/stack.sh up");
        let stack_dir = std::env::var("RADSTREAM_STACK_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.stack"));
        let pid = std::fs::read_to_string(stack_dir.join("pids/tansu.pid")).context("the stack's tansu pid")?;
        std::process::Command::new("kill").args(["-KILL", pid.trim()]).status()?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let up = std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/stack.sh"))
            .arg("up")
            .output()?;
        anyhow::ensure!(up.status.success(), "stack.sh up: {}", String::from_utf8_lossy(&up.stderr));
        log(&mut timeline, "broker back");
    }

    // Account, until every event is in one place or 15 minutes passed.
    let studies: Vec<String> = {
        let mut s: Vec<String> = sent.iter().map(|(_, study)| study.clone()).collect();
        s.sort();
        s.dedup();
        s
    };
    let deadline = Instant::now() + opts.deadline;
    let table = loop {
        let in_pacs: HashMap<String, usize> = orthanc.pacs.count_instances(&studies).await.unwrap_or_default();
        let letters: Vec<DeadLetter> =
            read_topic(&stack.kafka, &worker.dead_letter_topic, usize::MAX, Duration::from_secs(10))?
                .iter()
                .filter_map(|v| serde_json::from_slice(v).ok())
                .collect();
        let mut dead: HashMap<&str, &DeadLetter> = HashMap::new();
        for l in &letters {
            if let Some(sop) = &l.sop_instance_uid {
                dead.insert(sop.as_str(), l);
            }
        }
        let mut rows: BTreeMap<String, usize> = BTreeMap::new();
        let (mut missing, mut duplicates, mut both) = (0, 0, 0);
        for (sop, _) in &sent {
            let n = in_pacs.get(sop).copied().unwrap_or(0);
            match (n, dead.get(sop.as_str())) {
                (1, None) => *rows.entry("in the PACS once".into()).or_default() += 1,
                (0, Some(l)) => *rows.entry(format!("dead letter: {}", l.error_class.as_str())).or_default() += 1,
                (0, None) => missing += 1,
                (1, Some(_)) => both += 1,
                _ => duplicates += 1,
            }
        }
        let accounted: usize = rows.values().sum();
        if missing == 0 || Instant::now() > deadline {
            break (rows, accounted, missing, duplicates, both, letters.len());
        }
        eprintln!("t = {:>5.1} s: {accounted} accounted, {missing} not yet", t0.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_secs(15)).await;
    };
    let (rows, accounted, missing, duplicates, both, letters) = table;
    for w in [&mut a, &mut b2] {
        let _ = w.terminate(Duration::from_secs(30));
    }
    Ok(ChaosReport {
        events: sent.len(),
        rows,
        accounted,
        duplicates,
        both,
        missing,
        dead_letters: letters,
        injected: (
            faults.injected_errors.load(Ordering::Relaxed),
            faults.injected_timeouts.load(Ordering::Relaxed),
            faults.forwarded.load(Ordering::Relaxed),
        ),
        timeline,
    })
}

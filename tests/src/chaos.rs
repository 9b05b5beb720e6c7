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
//! At the end every event must be in exactly one place: its instance in the PACS (by
//! SOPInstanceUID, QIDO-RS) or its reason in the dead-letter topic. The fault proxy is the
//! recording proxy of [`crate::pacs_proxy`]: it counts the stores the PACS reported per
//! instance, so re-sends (allowed by at-least-once delivery after the SIGKILL, or after a STOW
//! whose answer the sink gave up waiting for) are reported, and any other is a failure.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use radstream_pipeline::publish;
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::{DeadLetter, ObjectLocation};

use crate::pacs_proxy::{PacsProxy, ProxyCounts, ProxyOptions, Resends};
use crate::{read_topic, unique_seed, OwnOrthanc, Stack, Worker, WorkerConfig};

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
    /// Re-sends: instances the PACS said it stored more than once, counted at the proxy in
    /// front of it (Orthanc itself keeps one copy, so reading it back can never show them).
    pub resends: Resends,
    /// Why the re-send check failed, if it did: an instance stored twice with no crash or
    /// client timeout to explain it.
    pub unexplained_resend: Option<String>,
    /// Events both in the PACS and dead-lettered.
    pub both: usize,
    /// Events nowhere.
    pub missing: usize,
    /// Dead letters in the topic (an event re-read after a crash may be dead-lettered again).
    pub dead_letters: usize,
    /// What the fault proxy did: 503s, timeouts, forwarded requests.
    pub proxy: ProxyCounts,
    /// The timeline, as it happened.
    pub timeline: Vec<String>,
}

impl ChaosReport {
    /// Every event in exactly one place (the PACS or the dead-letter topic), nothing lost, and
    /// every re-send one that at-least-once delivery allows (see [`PacsProxy::ensure_resends_explained`]).
    pub fn all_accounted(&self) -> bool {
        self.missing == 0
            && self.both == 0
            && self.accounted == self.events
            && self.unexplained_resend.is_none()
            && !self.rows.contains_key("in the PACS, no store seen at the proxy")
    }

    /// The accounting table (Markdown).
    pub fn table(&self) -> String {
        let mut out = String::from("| where | events |\n|---|---:|\n");
        for (row, n) in &self.rows {
            out.push_str(&format!("| {row} | {n} |\n"));
        }
        out.push_str(&format!(
            "| in the PACS and dead-lettered | {} |\n| nowhere (lost) | {} |\n",
            self.both, self.missing
        ));
        out.push_str(&format!(
            "\n{} events: {} accounted ({:.2}%), {} lost; {} dead letters in all.\nRe-sends (stores counted per SOP \
             Instance UID at the proxy): {} instances stored more than once, {} extra stores; {} after an answer the \
             client never heard (its timeout, or the killed worker), {} after a change of owner (another worker \
             re-read it, or a rebalance came between); unexplained: {}.\nProxy: {} injected 503s, {} injected timeouts, {} forwarded.\n",
            self.events,
            self.accounted,
            100.0 * self.accounted as f64 / self.events.max(1) as f64,
            self.missing,
            self.dead_letters,
            self.resends.instances,
            self.resends.extra_stores,
            self.resends.after_unanswered,
            self.resends.after_rebalance,
            self.unexplained_resend.as_deref().unwrap_or("none"),
            self.proxy.injected_errors,
            self.proxy.injected_timeouts,
            self.proxy.forwarded,
        ));
        out
    }
}

/// Runs the chaos run on `stack`.
pub async fn run(stack: &Stack, opts: &ChaosOptions) -> Result<ChaosReport> {
    let events = opts.events;
    let mut timeline = Vec::new();
    let dir = tempfile::tempdir()?;
    let mut orthanc = OwnOrthanc::start(stack, dir.path()).await?;
    let proxy_opts = ProxyOptions { errors: opts.errors, timeouts: opts.timeouts, ..ProxyOptions::default() };
    let proxy = PacsProxy::start(&orthanc.pacs, proxy_opts).await?;
    let proxied = proxy.pacs.clone();

    let mut worker = WorkerConfig::new(stack, "chaos", proxied);
    worker.stow_extra = "timeout_secs = 5\nconcurrency = 16".into();
    worker.stow_retry_deadline_secs = 600;
    worker.create_topics(stack, 4).await?;
    // One config per worker process, each storing under its own proxy prefix, so that the proxy
    // records who stored what.
    let config_for = |tag: &str| -> Result<std::path::PathBuf> {
        let mut w = worker.clone();
        w.pacs = proxy.pacs_for(tag);
        let path = dir.path().join(format!("{tag}.toml"));
        std::fs::write(&path, w.toml())?;
        Ok(path)
    };
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

    let mut disruptions = vec![Instant::now()];
    let mut a = Worker::start(&config_for("a")?, &orthanc.pacs.password, dir.path(), "chaos-a")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    disruptions.push(Instant::now());
    let mut b = Worker::start(&config_for("b")?, &orthanc.pacs.password, dir.path(), "chaos-b")?;
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
    disruptions.push(Instant::now());
    let mut b2 = Worker::start(&config_for("b2")?, &orthanc.pacs.password, dir.path(), "chaos-b2")?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    if opts.restart_broker {
        log(&mut timeline, "broker restart: tansu killed, then infra/stack.sh up");
        disruptions.push(Instant::now());
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
        let stored = proxy.store_counts();
        let mut rows: BTreeMap<String, usize> = BTreeMap::new();
        let (mut missing, mut both) = (0, 0);
        for (sop, _) in &sent {
            let in_pacs = in_pacs.contains_key(sop);
            let stores = stored.get(sop).copied().unwrap_or(0);
            match (in_pacs, dead.get(sop.as_str())) {
                (true, None) if stores == 1 => *rows.entry("in the PACS, stored once".into()).or_default() += 1,
                (true, None) if stores == 0 => {
                    *rows.entry("in the PACS, no store seen at the proxy".into()).or_default() += 1
                }
                (true, None) => *rows.entry(format!("in the PACS, stored {stores} times")).or_default() += 1,
                (false, Some(l)) => *rows.entry(format!("dead letter: {}", l.error_class.as_str())).or_default() += 1,
                (false, None) => missing += 1,
                (true, Some(_)) => both += 1,
            }
        }
        let accounted: usize = rows.values().sum();
        if missing == 0 || Instant::now() > deadline {
            break (rows, accounted, missing, both, letters.len());
        }
        eprintln!("t = {:>5.1} s: {accounted} accounted, {missing} not yet", t0.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_secs(15)).await;
    };
    let (rows, accounted, missing, both, letters) = table;
    // A store can still land after the accounting (a request of the killed worker held by the
    // proxy); the workers are stopped first so that the re-send check sees everything.
    for w in [&mut a, &mut b2] {
        let _ = w.terminate(Duration::from_secs(30));
    }
    let (resends, unexplained_resend) = match proxy.ensure_resends_explained(&disruptions) {
        Ok(r) => (r, None),
        Err(e) => (Resends::default(), Some(e.to_string())),
    };
    Ok(ChaosReport {
        events: sent.len(),
        rows,
        accounted,
        resends,
        unexplained_resend,
        both,
        missing,
        dead_letters: letters,
        proxy: proxy.counts(),
        timeline,
    })
}

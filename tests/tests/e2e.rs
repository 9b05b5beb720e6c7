//! End-to-end tests on the real stack: tansu (Kafka protocol), moto (S3 API), Orthanc
//! (DICOMweb), and `radstream run` worker processes. Run through `infra/test.sh`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};
use radstream_pipeline::publish::{self, PublishOptions, Published};
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::{DeadLetter, ErrorClass, ObjectLocation, OutcomeEvent, OutcomeKind, Priority};
use radstream_tests::*;

const PARTITIONS: i32 = 6;

struct Run {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    worker: WorkerConfig,
    config_path: std::path::PathBuf,
    published: Vec<Published>,
}

impl Run {
    fn studies(&self) -> HashSet<String> {
        self.published.iter().map(|p| p.event.study_instance_uid.clone()).collect()
    }

    fn sops(&self) -> HashSet<String> {
        self.published.iter().map(|p| p.event.sop_instance_uid.clone()).collect()
    }
}

/// Creates the topics, writes the config, and publishes `studies` synthetic studies.
async fn prepare(stack: &Stack, name: &str, pacs: Pacs, studies: usize) -> Result<Run> {
    let dir = tempfile::tempdir()?;
    let worker = WorkerConfig::new(stack, name, pacs);
    worker.create_topics(stack, PARTITIONS).await?;
    let config_path = worker.write(dir.path())?;
    let published = if studies > 0 { publish_studies(stack, &worker, dir.path(), studies).await? } else { Vec::new() };
    Ok(Run { dir: dir.path().to_path_buf(), _dir: dir, worker, config_path, published })
}

async fn publish_studies(stack: &Stack, worker: &WorkerConfig, dir: &Path, studies: usize) -> Result<Vec<Published>> {
    let files_dir = dir.join(format!("studies-{}", unique_seed()));
    let opts = SynthOptions { studies, seed: unique_seed(), ..Default::default() };
    synth::write_to_dir(&opts, &files_dir)?;
    let config = worker.parsed()?;
    let files = publish::collect_files(&[files_dir])?;
    let opts = PublishOptions {
        bucket: stack.bucket.clone(),
        prefix: worker.topic.clone(),
        priority: Priority::Routine,
        source: Some("E2E_TEST".into()),
        concurrency: 16,
        skip_events: false,
    };
    publish::publish(&config.kafka, &config.objects, files, &opts, || {}).await
}

fn outcomes(stack: &Stack, w: &WorkerConfig, expected: usize) -> Result<Vec<OutcomeEvent>> {
    read_topic(&stack.kafka, &w.outcome_topic, expected, Duration::from_secs(30))?
        .iter()
        .map(|v| Ok(serde_json::from_slice(v)?))
        .collect()
}

fn dead_letters(stack: &Stack, w: &WorkerConfig, expected: usize) -> Result<Vec<DeadLetter>> {
    read_topic(&stack.kafka, &w.dead_letter_topic, expected, Duration::from_secs(30))?
        .iter()
        .map(|v| Ok(serde_json::from_slice(v)?))
        .collect()
}

/// Nothing was dead-lettered: the dead-letter topic's watermarks (exact, no read that could
/// come back empty too early) and the worker's own count agree on zero.
async fn ensure_no_dead_letters(stack: &Stack, w: &WorkerConfig, worker: &Worker) -> Result<()> {
    // First the worker has finished every input event: offsets commit only after an event's
    // destination (the PACS, or the dead-letter topic) has it.
    let ends = high_watermarks(&stack.kafka, &w.topic, PARTITIONS)?;
    wait_until(Duration::from_secs(30), "the worker to commit its whole input", || async {
        committed_offsets(&stack.kafka, &w.group, &w.topic, PARTITIONS)
            .is_ok_and(|c| ends.iter().all(|(p, end)| *end == 0 || c.get(p) == Some(end)))
    })
    .await?;
    let in_topic = topic_len(&stack.kafka, &w.dead_letter_topic)?;
    let counted = worker.metric("radstream_dead_letters_total").await;
    ensure!(in_topic == 0 && counted == 0.0, "expected no dead letters: {in_topic} in the topic, {counted} counted");
    Ok(())
}

#[test]
fn the_phi_check_finds_synthetic_identifiers() {
    assert!(assert_no_phi("x", "patient SYNTH^PATIENT^0007 seen").is_err());
    assert!(assert_no_phi("x", "id=SYN0007").is_err());
    assert!(assert_no_phi("x", "acc SYNA00000007").is_err());
    assert!(assert_no_phi("x", "source SYNTH_CT_1, object radstream-test/e2e/1.2.3.dcm").is_ok());
}

/// Every published instance is in the PACS exactly once.
async fn assert_all_in_pacs_once(pacs: &Pacs, run: &Run) -> Result<()> {
    let counts = pacs.count_instances(&run.studies()).await?;
    let expected = run.sops();
    let missing: Vec<_> = expected.iter().filter(|s| !counts.contains_key(*s)).collect();
    ensure!(
        missing.is_empty(),
        "{} of {} instances missing from the PACS, e.g. {:?}",
        missing.len(),
        expected.len(),
        missing.first()
    );
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    ensure!(repeated.is_empty(), "instances listed more than once: {repeated:?}");
    ensure!(
        counts.len() == expected.len(),
        "the PACS holds {} instances of these studies, expected {}",
        counts.len(),
        expected.len()
    );
    Ok(())
}

/// Waits until every published instance is in the PACS.
async fn wait_all_in_pacs(pacs: &Pacs, run: &Run, timeout: Duration, workers: &[&Worker]) -> Result<()> {
    let expected = run.sops();
    let studies = run.studies();
    let result = wait_until(timeout, "every instance in the PACS", || async {
        pacs.count_instances(&studies).await.map(|c| expected.iter().all(|s| c.contains_key(s))).unwrap_or(false)
    })
    .await;
    if result.is_err() {
        for w in workers {
            eprintln!("--- worker log tail ---\n{}", w.log_tail());
        }
    }
    result
}

async fn wait_delivered(worker: &Worker, at_least: f64, timeout: Duration) -> Result<()> {
    wait_until(timeout, &format!("{at_least} deliveries"), || async {
        worker.metric("radstream_outcomes_total").await >= at_least
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_instances_over_six_partitions_reach_the_pacs_exactly_once() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let run = prepare(&stack, "e2e-bulk", proxy.pacs.clone(), 40).await?;
    let n = run.published.len();
    ensure!(n >= 200, "the synthetic set should have several hundred instances, has {n}");
    let mut worker = Worker::start(&run.config_path, &stack.orthanc_password, &run.dir, "bulk")?;
    wait_all_in_pacs(&stack.pacs(), &run, Duration::from_secs(240), &[&worker]).await?;
    assert_all_in_pacs_once(&stack.pacs(), &run).await?;

    let outcomes = outcomes(&stack, &run.worker, n)?;
    let delivered: HashSet<_> = outcomes
        .iter()
        .filter(|o| o.outcome == OutcomeKind::Delivered)
        .filter_map(|o| o.sop_instance_uid.clone())
        .collect();
    ensure!(delivered == run.sops(), "every instance has a delivered outcome ({} of {n})", delivered.len());
    let partitions: HashSet<_> = outcomes.iter().map(|o| o.source_partition).collect();
    ensure!(partitions.len() > 1, "events were spread over partitions: {partitions:?}");
    ensure_no_dead_letters(&stack, &run.worker, &worker).await?;
    proxy.ensure_each_stored_once(&run.sops())?;

    ensure!(worker.readyz().await == 200, "a worker with partitions and a reachable PACS is ready");
    let metrics = reqwest::get(format!("http://{}/metrics", worker.metrics)).await?.text().await?;
    for name in [
        "radstream_end_to_end_seconds_bucket",
        "radstream_destination_requests_total",
        "radstream_operator_events_total",
    ] {
        ensure!(metrics.contains(name), "/metrics exposes {name}");
    }
    ensure!(!metrics.contains(&run.published[0].event.sop_instance_uid), "no UID in any metric label");
    assert_no_phi("/metrics", &metrics)?;
    assert_no_phi("the worker log", &std::fs::read_to_string(&worker.log)?)?;

    // SIGTERM drains, commits and exits 0: the committed offsets reach the end of every partition.
    let status = worker.terminate(Duration::from_secs(40))?;
    ensure!(status.success(), "SIGTERM should exit 0, got {status}; log:\n{}", worker.log_tail());
    let committed = committed_offsets(&stack.kafka, &run.worker.group, &run.worker.topic, PARTITIONS)?;
    let ends = high_watermarks(&stack.kafka, &run.worker.topic, PARTITIONS)?;
    for (p, end) in &ends {
        if *end > 0 {
            ensure!(committed.get(p) == Some(end), "partition {p}: committed {:?}, end {end}", committed.get(p));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_missing_objects_are_dead_lettered_while_the_rest_flow() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let run = prepare(&stack, "e2e-dlq", proxy.pacs.clone(), 3).await?;
    let config = run.worker.parsed()?;
    let producer: rdkafka::producer::FutureProducer =
        radstream_pipeline::kafka::producer_config(&stack.kafka, &Default::default()).create()?;
    let store = radstream_pipeline::objects::ObjectFetcher::new(config.objects.clone());

    // A corrupt object: text where a Part-10 file should be, announced with a plausible event.
    let template = run.published[0].event.clone();
    let corrupt_key = format!("{}/corrupt/not-dicom.dcm", run.worker.topic);
    let corrupt_loc = ObjectLocation { bucket: stack.bucket.clone(), key: corrupt_key.clone(), size: None, etag: None };
    store
        .put(&corrupt_loc, bytes::Bytes::from_static(b"this is not a DICOM file"))
        .await
        .map_err(|e| anyhow::anyhow!(e.reason))?;
    let mut corrupt = template.clone();
    corrupt.object = corrupt_loc;
    corrupt.sop_instance_uid = "2.25.1111".into();
    publish::send_event(&producer, &run.worker.topic, config.kafka.format, &corrupt).await?;

    // A missing object.
    let missing_key = format!("{}/missing/never-uploaded.dcm", run.worker.topic);
    let mut missing = template.clone();
    missing.object = ObjectLocation { bucket: stack.bucket.clone(), key: missing_key.clone(), size: None, etag: None };
    missing.sop_instance_uid = "2.25.2222".into();
    publish::send_event(&producer, &run.worker.topic, config.kafka.format, &missing).await?;

    // And a message that is not an event at all.
    let record = rdkafka::producer::FutureRecord::to(&run.worker.topic).key("garbage").payload("{not json");
    producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e)?;

    let worker = Worker::start(&run.config_path, &stack.orthanc_password, &run.dir, "dlq")?;
    wait_all_in_pacs(&stack.pacs(), &run, Duration::from_secs(120), &[&worker]).await?;
    assert_all_in_pacs_once(&stack.pacs(), &run).await?;

    proxy.ensure_each_stored_once(&run.sops())?;
    let letters = dead_letters(&stack, &run.worker, 3)?;
    ensure!(letters.len() == 3, "three dead letters expected, got {}: {letters:?}", letters.len());
    let by_class: HashMap<ErrorClass, &DeadLetter> = letters.iter().map(|l| (l.error_class, l)).collect();
    let bad = by_class.get(&ErrorClass::MalformedDicom).expect("corrupt object dead-lettered as malformed_dicom");
    ensure!(bad.reason.contains(&corrupt_key), "reason names the object: {}", bad.reason);
    ensure!(bad.operator == "parse", "{}", bad.operator);
    let gone = by_class.get(&ErrorClass::MissingObject).expect("missing object dead-lettered as missing_object");
    ensure!(gone.reason.contains(&missing_key) && gone.reason.contains("does not exist"), "{}", gone.reason);
    let garbage = by_class.get(&ErrorClass::MalformedEvent).expect("undecodable message dead-lettered");
    use base64::Engine;
    let original = base64::engine::general_purpose::STANDARD.decode(&garbage.original_value_base64)?;
    ensure!(original == b"{not json", "the dead letter keeps the original bytes for replay");
    for letter in &letters {
        assert_no_phi("a dead letter", &serde_json::to_string(letter)?)?;
    }
    assert_no_phi("the worker log", &std::fs::read_to_string(&worker.log)?)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pacs_outage_mid_run_loses_and_duplicates_nothing() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let orthanc_dir = tempfile::tempdir()?;
    let mut orthanc = OwnOrthanc::start(&stack, orthanc_dir.path()).await?;
    let proxy = PacsProxy::start(&orthanc.pacs, ProxyOptions::default()).await?;
    let mut run = prepare(&stack, "e2e-outage", proxy.pacs.clone(), 8).await?;
    let worker = Worker::start(&run.config_path, &orthanc.pacs.password, &run.dir, "outage")?;
    wait_delivered(&worker, run.published.len() as f64 / 2.0, Duration::from_secs(120)).await?;
    orthanc.stop();
    // Events keep arriving while the PACS is down.
    let more = publish_studies(&stack, &run.worker, &run.dir, 8).await?;
    run.published.extend(more);
    wait_until(Duration::from_secs(15), "/readyz to report the PACS outage", || async { worker.readyz().await == 503 })
        .await?;
    wait_until(Duration::from_secs(30), "STOW retries during the outage", || async {
        worker.metric("radstream_destination_retries_total").await > 0.0
    })
    .await?;
    let during = worker.metric("radstream_destination_retries_total").await;
    orthanc.restart().await?;
    wait_all_in_pacs(&orthanc.pacs, &run, Duration::from_secs(180), &[&worker]).await?;
    assert_all_in_pacs_once(&orthanc.pacs, &run).await?;
    ensure!(during > 0.0, "the outage should have caused STOW retries");
    // An outage within the retry deadline dead-letters nothing and stores nothing twice.
    ensure_no_dead_letters(&stack, &run.worker, &worker).await?;
    proxy.ensure_each_stored_once(&run.sops())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_resumes_from_committed_offsets() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let run = prepare(&stack, "e2e-sigkill", proxy.pacs.clone(), 24).await?;
    let n = run.published.len() as f64;
    let mut first = Worker::start(&run.config_path, &stack.orthanc_password, &run.dir, "sigkill-1")?;
    wait_delivered(&first, (n / 4.0).ceil(), Duration::from_secs(120)).await?;
    // Mid-stream, once the worker has committed something (auto-commit runs every 500 ms here).
    let (kafka, group, topic) = (stack.kafka.clone(), run.worker.group.clone(), run.worker.topic.clone());
    wait_until(Duration::from_secs(30), "a first offset commit", || {
        let (kafka, group, topic) = (kafka.clone(), group.clone(), topic.clone());
        async move { committed_offsets(&kafka, &group, &topic, PARTITIONS).is_ok_and(|c| c.values().any(|o| *o > 0)) }
    })
    .await?;
    first.kill();
    // A replacement starts at once, as a restarted pod would, and waits on the broker until the
    // dead member's session (6 s) expired and the group gave it every partition.
    let committed = committed_offsets(&stack.kafka, &run.worker.group, &run.worker.topic, PARTITIONS)?;
    let ends = high_watermarks(&stack.kafka, &run.worker.topic, PARTITIONS)?;
    let left: i64 = ends.iter().map(|(p, end)| end - committed.get(p).copied().filter(|c| *c >= 0).unwrap_or(0)).sum();
    ensure!(left < n as i64, "the first worker committed nothing: {committed:?}");

    let second_started = std::time::Instant::now();
    let second = Worker::start(&run.config_path, &stack.orthanc_password, &run.dir, "sigkill-2")?;
    wait_until(Duration::from_secs(90), "the replacement to own every partition", || async {
        second.metric("radstream_assigned_partitions").await == f64::from(PARTITIONS)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", second.log_tail()))?;
    wait_all_in_pacs(&stack.pacs(), &run, Duration::from_secs(240), &[&second]).await?;
    assert_all_in_pacs_once(&stack.pacs(), &run).await?;
    let outcomes = outcomes(&stack, &run.worker, run.published.len())?;
    let delivered: HashSet<_> = outcomes.iter().filter_map(|o| o.sop_instance_uid.clone()).collect();
    ensure!(delivered == run.sops(), "every instance has an outcome after the restart");
    // The second worker read exactly what was not committed: from the committed offsets on.
    wait_until(Duration::from_secs(30), "the second worker to read the rest", || async {
        second.metric("radstream_events_received_total").await >= left as f64
    })
    .await?;
    let reread = second.metric("radstream_events_received_total").await;
    ensure!(reread == left as f64, "the second worker read {reread} events, {left} were uncommitted");
    // At least once: what the first worker stored but had not committed is stored again, once,
    // and nothing else. Counted at the proxy, where deliveries happen: the PACS keeps one copy.
    let stores = proxy.stores();
    let by_first = stores.values().filter(|s| s.iter().any(|s| s.at < second_started)).count() as i64;
    let resent = proxy.ensure_resends_explained(&[second_started])?.instances;
    let (n, left) = (run.published.len() as i64, left);
    ensure!(
        stores.len() as i64 == n && resent as i64 == by_first - (n - left),
        "{} instances stored, {n} published; the first worker stored {by_first} and committed {}, so {} re-sends \
         were due, {resent} seen",
        stores.len(),
        n - left,
        by_first - (n - left)
    );
    eprintln!("re-sent after the SIGKILL: {resent} of {left} uncommitted events (the rest the first had not stored)");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_partitions_and_one_takes_over_when_the_other_dies() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let run = prepare(&stack, "e2e-group", proxy.pacs.clone(), 0).await?;
    let owns = |w: &Worker, n: i32| {
        let w = w.metrics.clone();
        async move { metric_at(&w, "radstream_assigned_partitions").await == f64::from(n) }
    };
    // The first worker joins alone and leads the group. tansu 0.6 does not recover a group whose
    // leader dies (the dead member stays leader and every rejoin fails), so the worker that is
    // killed below is the second one; see README, "Known broker limitations".
    let first = Worker::start(&run.config_path, &stack.orthanc_password, &run.dir, "group-first")?;
    wait_until(Duration::from_secs(60), "the first worker to own every partition", || owns(&first, PARTITIONS))
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", first.log_tail()))?;
    let mut second = Worker::start(&run.config_path, &stack.orthanc_password, &run.dir, "group-second")?;
    wait_until(Duration::from_secs(60), "the partitions to be shared", || async {
        let (a, b) =
            (first.metric("radstream_assigned_partitions").await, second.metric("radstream_assigned_partitions").await);
        a > 0.0 && b > 0.0 && a + b == f64::from(PARTITIONS)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nfirst:\n{}\nsecond:\n{}", first.log_tail(), second.log_tail()))?;

    let mut run = run;
    run.published = publish_studies(&stack, &run.worker, &run.dir, 24).await?;
    let n = run.published.len();
    wait_until(Duration::from_secs(120), "both workers to deliver", || async {
        first.metric("radstream_outcomes_total").await > 0.0 && second.metric("radstream_outcomes_total").await > 0.0
    })
    .await?;
    second.kill();
    let killed = std::time::Instant::now();
    wait_until(Duration::from_secs(60), "the survivor to own every partition again", || owns(&first, PARTITIONS))
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", first.log_tail()))?;
    wait_all_in_pacs(&stack.pacs(), &run, Duration::from_secs(240), &[&first]).await?;
    assert_all_in_pacs_once(&stack.pacs(), &run).await?;
    let outcomes = outcomes(&stack, &run.worker, n)?;
    let delivered: HashSet<_> = outcomes
        .iter()
        .filter(|o| o.outcome == OutcomeKind::Delivered)
        .filter_map(|o| o.sop_instance_uid.clone())
        .collect();
    ensure!(delivered == run.sops(), "every instance has a delivered outcome ({} of {n})", delivered.len());
    let stored: HashSet<String> = proxy.stores().into_keys().collect();
    ensure!(stored == run.sops(), "the proxy saw {} instances stored, {n} published", stored.len());
    let resent = proxy.ensure_resends_explained(&[killed])?.instances;
    eprintln!("re-sent after the SIGKILL of the second worker: {resent} of {n}");
    Ok(())
}

/// S3 event notifications (the AWS/MinIO shape, URL-encoded keys) name only the object; the
/// pipeline reads the DICOM metadata from the object itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_event_notifications_are_processed_from_the_object_header() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let mut run = prepare(&stack, "e2e-s3note", proxy.pacs.clone(), 0).await?;
    run.worker.kafka_extra = "format = \"s3_notification\"".into();
    run.config_path = run.worker.write(&run.dir)?;

    // Upload only (no instance events), under keys with spaces and a plus sign.
    let files_dir = run.dir.join("s3note");
    synth::write_to_dir(&SynthOptions { studies: 2, seed: unique_seed(), ..Default::default() }, &files_dir)?;
    let config = run.worker.parsed()?;
    let opts = PublishOptions {
        bucket: stack.bucket.clone(),
        prefix: format!("{}/scanner one+two", run.worker.topic),
        priority: Priority::Routine,
        source: None,
        concurrency: 8,
        skip_events: true,
    };
    run.published =
        publish::publish(&config.kafka, &config.objects, publish::collect_files(&[files_dir])?, &opts, || {}).await?;
    let producer: rdkafka::producer::FutureProducer =
        radstream_pipeline::kafka::producer_config(&stack.kafka, &Default::default()).create()?;
    // Two objects per notification, as S3 may batch them; plus a delete that must be ignored.
    for pair in run.published.chunks(2) {
        let records: Vec<_> = pair
            .iter()
            .map(|p| {
                let key: String = p.event.object.key.replace('+', "%2B").replace(' ', "+");
                serde_json::json!({
                    "eventName": "ObjectCreated:Put",
                    "eventTime": "2026-11-27T10:00:00.000Z",
                    "s3": {"bucket": {"name": p.event.object.bucket}, "object": {"key": key, "size": p.event.object.size}}
                })
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "Records": records }))?;
        let record = rdkafka::producer::FutureRecord::to(&run.worker.topic).key("s3").payload(&body);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e)?;
    }
    let delete = serde_json::json!({"Records": [{"eventName": "ObjectRemoved:Delete", "eventTime": "2026-11-27T10:00:00Z",
        "s3": {"bucket": {"name": stack.bucket}, "object": {"key": "gone.dcm"}}}]});
    let body = serde_json::to_vec(&delete)?;
    producer
        .send(rdkafka::producer::FutureRecord::to(&run.worker.topic).key("s3").payload(&body), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)?;

    let worker = Worker::start(&run.config_path, &stack.orthanc_password, &run.dir, "s3note")?;
    wait_all_in_pacs(&stack.pacs(), &run, Duration::from_secs(120), &[&worker]).await?;
    assert_all_in_pacs_once(&stack.pacs(), &run).await?;
    let outcomes = outcomes(&stack, &run.worker, run.published.len() + 1)?;
    let dropped: Vec<_> = outcomes.iter().filter(|o| o.outcome == OutcomeKind::Dropped).collect();
    ensure!(dropped.len() == 1 && dropped[0].detail.as_deref() == Some("no_created_object"), "{dropped:?}");
    let delivered: HashSet<_> = outcomes.iter().filter_map(|o| o.sop_instance_uid.clone()).collect();
    ensure!(delivered == run.sops(), "UIDs were read from the objects");
    proxy.ensure_each_stored_once(&run.sops())?;
    Ok(())
}

/// The Confluent wire format (magic byte, schema id, Avro binary), schema from a local file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_avro_events_flow_with_a_local_schema_file() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let mut run = prepare(&stack, "e2e-avro", proxy.pacs.clone(), 0).await?;
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/avro/instance_event.v1.avsc");
    run.worker.kafka_extra = format!("format = \"confluent_avro\"\nschema_file = {:?}", schema.display().to_string());
    run.config_path = run.worker.write(&run.dir)?;
    run.published = publish_studies(&stack, &run.worker, &run.dir, 3).await?;
    let worker = Worker::start(&run.config_path, &stack.orthanc_password, &run.dir, "avro")?;
    wait_all_in_pacs(&stack.pacs(), &run, Duration::from_secs(120), &[&worker]).await?;
    assert_all_in_pacs_once(&stack.pacs(), &run).await?;
    let raw = read_topic(&stack.kafka, &run.worker.topic, run.published.len(), Duration::from_secs(10))?;
    ensure!(raw.iter().all(|v| v.first() == Some(&0)), "the input topic really carried Confluent-framed Avro");
    ensure_no_dead_letters(&stack, &run.worker, &worker).await?;
    proxy.ensure_each_stored_once(&run.sops())?;
    Ok(())
}

/// A chain whose STOW sink authenticates with a bearer token read from `token_file`.
fn bearer_chain(pacs: &Pacs, token_file: &Path) -> String {
    format!(
        r#"
[[operators]]
type = "stow"
url = "{url}"
retry_deadline_secs = 30
initial_backoff_ms = 100
max_backoff_ms = 1000

[operators.auth]
kind = "bearer"
token_file = "{token}"
"#,
        url = pacs.dicomweb(),
        token = token_file.display()
    )
}

/// The STOW sink's bearer auth against a PACS that demands a token: a proxy in front of Orthanc
/// that answers 401 without the right `Authorization: Bearer` and presents Orthanc's own
/// credentials upstream. With the token every instance is stored once; with a wrong one the PACS
/// refuses, and each instance is dead-lettered as rejected with a reason that says what to check
/// and never shows the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stow_with_a_bearer_token_stores_and_a_wrong_token_is_refused_and_dead_lettered() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let token = format!("test-token-{}", unique_seed());
    let opts = ProxyOptions { bearer_token: Some(token.clone()), ..ProxyOptions::default() };
    let proxy = PacsProxy::start(&stack.pacs(), opts).await?;

    // The right token.
    let mut run = prepare(&stack, "e2e-bearer", proxy.pacs.clone(), 0).await?;
    let token_file = run.dir.join("pacs.token");
    std::fs::write(&token_file, format!("{token}\n"))?;
    std::fs::write(&run.config_path, run.worker.toml_with_operators(&bearer_chain(&proxy.pacs, &token_file)))?;
    run.published = publish_studies(&stack, &run.worker, &run.dir, 2).await?;
    let worker = Worker::start(&run.config_path, "unused", &run.dir, "bearer")?;
    wait_all_in_pacs(&stack.pacs(), &run, Duration::from_secs(120), &[&worker]).await?;
    proxy.ensure_each_stored_once(&run.sops())?;
    ensure!(worker.readyz().await == 200, "the readiness probe passes with the token");
    ensure!(proxy.counts().refused == 0, "nothing refused with the right token: {:?}", proxy.counts());
    ensure_no_dead_letters(&stack, &run.worker, &worker).await?;

    // A wrong token: refused by the PACS, dead-lettered, nothing stored.
    let mut wrong = prepare(&stack, "e2e-bearer-wrong", proxy.pacs.clone(), 0).await?;
    let wrong_file = wrong.dir.join("pacs.token");
    std::fs::write(&wrong_file, "not-the-token")?;
    std::fs::write(&wrong.config_path, wrong.worker.toml_with_operators(&bearer_chain(&proxy.pacs, &wrong_file)))?;
    wrong.published = publish_studies(&stack, &wrong.worker, &wrong.dir, 1).await?;
    let refused_before = proxy.counts().refused;
    let worker = Worker::start(&wrong.config_path, "unused", &wrong.dir, "bearer-wrong")?;
    let letters = dead_letters(&stack, &wrong.worker, wrong.published.len())?;
    ensure!(letters.len() == wrong.published.len(), "{} dead letters for {}", letters.len(), wrong.published.len());
    for letter in &letters {
        ensure!(letter.error_class == ErrorClass::PacsRejected, "{letter:?}");
        ensure!(letter.reason.contains("401") && letter.reason.contains("auth"), "{}", letter.reason);
        ensure!(!letter.reason.contains("not-the-token"), "the reason shows the token: {}", letter.reason);
    }
    ensure!(proxy.counts().refused > refused_before, "the proxy refused the wrong token");
    let stored = proxy.store_counts();
    ensure!(wrong.sops().iter().all(|s| !stored.contains_key(s)), "an instance was stored with a wrong token");
    ensure!(worker.readyz().await == 503, "the readiness probe fails with a wrong token");
    let log = std::fs::read_to_string(&worker.log)?;
    ensure!(!log.contains("not-the-token") && !log.contains(&token), "a token is in the worker log");
    Ok(())
}

//! Hostile input on the real stack (issue 16): every file of `radstream_tests::hostile` (100,000
//! nested sequences, plain and deflated; a gigabyte declared in a deflated and in a big-endian
//! data set; a JPEG stream declaring 65500 x 65500 in a 16 x 16 CT; a bare preamble; an object
//! without SOP UIDs; a truncated one) is published as an event among ordinary synthetic
//! studies, on the partition of an ordinary study, to a worker running route → preprocess →
//! stow. Each hostile instance must be dead-lettered once with its class and reason, every
//! ordinary CT must reach the PACS exactly once, the worker must keep running (no restart) with
//! its peak memory under 512 MiB, the group's committed offsets must reach the end of every
//! partition, and nothing of the synthetic patients, the canary one included, may appear in the
//! log, a metric or a dead letter.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{ensure, Result};
use radstream_pipeline::publish;
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::{DeadLetter, ObjectLocation};
use radstream_tests::hostile::{self, Ids, CANARY_ID, CANARY_NAME};
use radstream_tests::*;

const PARTITIONS: i32 = 3;
const PEAK_LIMIT_KIB: u64 = 512 * 1024;

/// The worker's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).ok_or_else(|| anyhow::anyhow!("no VmHWM"))?;
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_are_dead_lettered_with_reasons_while_ordinary_instances_are_delivered() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let worker = WorkerConfig::new(&stack, "hostile", proxy.pacs.clone());
    worker.create_topics(&stack, PARTITIONS).await?;
    let toml =
        worker.toml_with_operators(&format!("{}{}", preprocess_chain("ct-head-bleed", "cpu"), worker.stow_toml()));
    let config_path = dir.path().join("worker.toml");
    std::fs::write(&config_path, &toml)?;
    let config = worker.parsed()?;
    let opts = worker.publish_options(&stack);

    let mut run = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "hostile")?;
    wait_until(Duration::from_secs(60), "the worker is ready", || async { run.readyz().await == 200 }).await?;

    // Ordinary studies before the hostile events and after them.
    let (before, after) = (dir.path().join("before"), dir.path().join("after"));
    synth::write_to_dir(&SynthOptions { studies: 2, seed: unique_seed(), ..Default::default() }, &before)?;
    synth::write_to_dir(&SynthOptions { studies: 2, seed: unique_seed() + 1, ..Default::default() }, &after)?;
    let mut published =
        publish::publish(&config.kafka, &config.objects, publish::collect_files(&[before])?, &opts, || {}).await?;

    // The hostile files, each on the partition of an ordinary CT study.
    let template = published.iter().find(|p| p.event.modality == "CT").expect("a CT study").event.clone();
    let ids = Ids {
        study: template.study_instance_uid.clone(),
        series: template.series_instance_uid.clone(),
        sop: format!("2.25.{}", unique_seed()),
    };
    let files = hostile::files(&ids);
    let fetcher = radstream_pipeline::objects::ObjectFetcher::new(config.objects.clone());
    let producer: rdkafka::producer::FutureProducer =
        radstream_pipeline::kafka::producer_config(&stack.kafka, &Default::default()).create()?;
    let mut sent_at = HashMap::new();
    for file in &files {
        let location = ObjectLocation {
            bucket: stack.bucket.clone(),
            key: format!("{}/hostile/{}", worker.topic, file.name),
            size: None,
            etag: None,
        };
        fetcher.put(&location, bytes::Bytes::from(file.bytes.clone())).await.map_err(|e| anyhow::anyhow!(e.reason))?;
        let mut event = template.clone();
        event.object = location;
        event.sop_instance_uid = file.sop.clone();
        sent_at.insert(file.sop.clone(), now_ms());
        publish::send_event(&producer, &worker.topic, config.kafka.format, &event).await?;
    }
    published.extend(
        publish::publish(&config.kafka, &config.objects, publish::collect_files(&[after])?, &opts, || {}).await?,
    );

    let total = (published.len() + files.len()) as f64;
    let finished = wait_until(Duration::from_secs(180), "every event finished", || async {
        run.metric("radstream_outcomes_total").await >= total
    })
    .await;
    if finished.is_err() {
        eprintln!("--- worker log tail ---\n{}", run.log_tail());
    }
    finished?;

    // Every hostile instance: one dead letter, with its class and reason, naming the object.
    let letters: Vec<DeadLetter> =
        read_topic(&stack.kafka, &worker.dead_letter_topic, files.len(), Duration::from_secs(30))?
            .iter()
            .map(|v| Ok(serde_json::from_slice(v)?))
            .collect::<Result<_>>()?;
    ensure!(
        letters.len() == files.len(),
        "{} dead letters for {} hostile files: {letters:#?}",
        letters.len(),
        files.len()
    );
    let mut latencies = Vec::new();
    for file in &files {
        let letter = letters
            .iter()
            .find(|l| l.sop_instance_uid.as_deref() == Some(file.sop.as_str()) || l.reason.contains(file.name))
            .ok_or_else(|| anyhow::anyhow!("no dead letter for {}: {letters:#?}", file.name))?;
        ensure!(letter.error_class == file.class, "{}: {letter:?}", file.name);
        ensure!(
            letter.reason.contains(file.reason),
            "{}: the reason should say {:?}: {}",
            file.name,
            file.reason,
            letter.reason
        );
        ensure!(letter.reason.contains(file.name), "{}: the reason names the object: {}", file.name, letter.reason);
        latencies.push((file.name, letter.time_ms - sent_at[&file.sop]));
    }

    // Every ordinary CT in the PACS exactly once; other modalities are counted drops.
    let ct: HashSet<String> =
        published.iter().filter(|p| p.event.modality == "CT").map(|p| p.event.sop_instance_uid.clone()).collect();
    let studies: HashSet<String> = published.iter().map(|p| p.event.study_instance_uid.clone()).collect();
    let in_pacs: HashSet<String> = stack.pacs().count_instances(&studies).await?.keys().cloned().collect();
    ensure!(in_pacs == ct, "the PACS should hold the {} ordinary CT instances, holds {}", ct.len(), in_pacs.len());
    proxy.ensure_each_stored_once(&ct)?;

    // The offsets reach the end of every partition: nothing of the hostile events stalls one.
    let ends = high_watermarks(&stack.kafka, &worker.topic, PARTITIONS)?;
    let committed = wait_until(Duration::from_secs(60), "the committed offsets reach the high watermarks", || async {
        // A partition no event landed on has nothing to commit.
        committed_offsets(&stack.kafka, &worker.group, &worker.topic, PARTITIONS)
            .is_ok_and(|c| ends.iter().all(|(p, end)| c.get(p) == Some(end) || (*end == 0 && c.get(p) < Some(&0))))
    })
    .await;
    if committed.is_err() {
        let now = committed_offsets(&stack.kafka, &worker.group, &worker.topic, PARTITIONS);
        eprintln!("committed {now:?}, high watermarks {ends:?}\n--- worker log tail ---\n{}", run.log_tail());
    }
    committed?;

    // The same process throughout, within its memory bound.
    ensure!(run.is_running(), "the worker exited: {}", run.log_tail());
    let peak = peak_rss_kib(run.pid())?;
    ensure!(peak < PEAK_LIMIT_KIB, "the worker's peak RSS is {} MiB", peak / 1024);

    // Nothing of a patient anywhere.
    let log = std::fs::read_to_string(&run.log)?;
    let metrics = reqwest::get(format!("http://{}/metrics", run.metrics)).await?.text().await?;
    let letters_text = serde_json::to_string(&letters)?;
    for (what, text) in [("the worker log", &log), ("the metrics", &metrics), ("the dead letters", &letters_text)] {
        assert_no_phi(what, text)?;
        ensure!(!text.contains(CANARY_NAME) && !text.contains(CANARY_ID), "{what} holds the canary patient");
    }
    let status = run.terminate(Duration::from_secs(30))?;
    ensure!(status.success(), "the worker should exit 0 on SIGTERM: {status:?}");
    latencies.sort_by_key(|(_, ms)| *ms);
    eprintln!(
        "{} hostile files dead-lettered among {} ordinary events; dead letter written after the event was sent: {}; \
         worker peak RSS {} MiB",
        files.len(),
        published.len(),
        latencies.iter().map(|(n, ms)| format!("{n} {ms} ms")).collect::<Vec<_>>().join(", "),
        peak / 1024
    );
    Ok(())
}

/// `objects.key_hash_secret_file`: upstream keys that hold an MRN or an accession number never
/// reach the worker's log, its metrics or a dead letter's reason; each object is named by its
/// bucket and the HMAC-SHA256 of its key (the expected names computed by Python's hmac), while
/// the dead letter's original event still holds the key, so a replay finds the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_keys_holding_identifiers_are_shown_as_keyed_hashes_when_asked() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let worker = WorkerConfig::new(&stack, "keyhash", stack.pacs());
    worker.create_topics(&stack, 1).await?;
    let secret_path = dir.path().join("key-hash.secret");
    std::fs::write(&secret_path, "a test secret of thirty-two bytes\n")?;
    let toml = worker.toml().replace(
        "max_retries = 2\n",
        &format!("max_retries = 2\nkey_hash_secret_file = \"{}\"\n", secret_path.display()),
    );
    let config_path = dir.path().join("worker.toml");
    std::fs::write(&config_path, &toml)?;
    let config = worker.parsed()?;

    let ids = Ids { study: "2.25.9101".into(), series: "2.25.9102".into(), sop: format!("2.25.{}", unique_seed()) };
    let nested = hostile::files(&ids).into_iter().find(|f| f.name == "nested.dcm").unwrap();
    let keys = [
        format!("{}/MRN12345/ACC998877/missing.dcm", worker.topic),
        format!("{}/MRN12345/ACC998877/nested.dcm", worker.topic),
    ];
    let fetcher = radstream_pipeline::objects::ObjectFetcher::new(config.objects.clone());
    let location = |key: &str| ObjectLocation { bucket: stack.bucket.clone(), key: key.into(), size: None, etag: None };
    fetcher
        .put(&location(&keys[1]), bytes::Bytes::from(nested.bytes.clone()))
        .await
        .map_err(|e| anyhow::anyhow!(e.reason))?;
    let producer: rdkafka::producer::FutureProducer =
        radstream_pipeline::kafka::producer_config(&stack.kafka, &Default::default()).create()?;
    for (n, key) in keys.iter().enumerate() {
        let event = radstream_schemas::InstanceEvent {
            study_instance_uid: ids.study.clone(),
            series_instance_uid: ids.series.clone(),
            sop_instance_uid: format!("{}.{n}", ids.sop),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            modality: "CT".into(),
            body_part_examined: None,
            instance_number: None,
            expected_series_instances: None,
            priority: radstream_schemas::Priority::Routine,
            source: None,
            event_time_ms: now_ms(),
            object: location(key),
        };
        publish::send_event(&producer, &worker.topic, config.kafka.format, &event).await?;
    }

    let run = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "keyhash")?;
    let letters: Vec<DeadLetter> = read_topic(&stack.kafka, &worker.dead_letter_topic, 2, Duration::from_secs(60))?
        .iter()
        .map(|v| Ok(serde_json::from_slice(v)?))
        .collect::<Result<_>>()?;
    ensure!(letters.len() == 2, "two dead letters expected: {letters:#?}");
    const HMAC: &str = "import hmac, hashlib, sys\n\
        secret = open(sys.argv[1], 'rb').read().rstrip(b'\\n')\n\
        for key in sys.argv[2:]: print(hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:32])\n";
    let out = std::process::Command::new(python()).args(["-c", HMAC]).arg(&secret_path).args(&keys).output()?;
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<String> =
        String::from_utf8(out.stdout)?.lines().map(|h| format!("{}/hmac-{h}", stack.bucket)).collect();
    for (name, letter) in names.iter().zip([&letters[0], &letters[1]]) {
        let letter = letters.iter().find(|l| l.reason.contains(name.as_str())).unwrap_or(letter);
        ensure!(letter.reason.contains(name.as_str()), "the reason names the object by {name}: {}", letter.reason);
        ensure!(!letter.reason.contains("MRN12345") && !letter.reason.contains("ACC998877"), "{}", letter.reason);
        ensure!(letter.object_key.as_deref().is_none_or(|k| !k.contains("MRN12345")), "{letter:?}");
        // The original event is kept byte for byte: a replay still finds the object.
        ensure!(letter.original_value_base64.len() > 20, "{letter:?}");
    }
    wait_until(Duration::from_secs(30), "both events finished", || async {
        run.metric("radstream_outcomes_total").await >= 2.0
    })
    .await?;
    let log = std::fs::read_to_string(&run.log)?;
    let metrics = reqwest::get(format!("http://{}/metrics", run.metrics)).await?.text().await?;
    for (what, text) in [("the worker log", &log), ("the metrics", &metrics)] {
        ensure!(!text.contains("MRN12345") && !text.contains("ACC998877"), "{what} shows an object key: {text}");
    }
    ensure!(log.contains("hmac-"), "the log names the objects by their hashes");
    Ok(())
}

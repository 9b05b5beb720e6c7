//! `radstream loadgen` against the real stack: every event it says it sent is on the input
//! topic with its own object in the bucket (every one fetched: the instance the event names),
//! the instances of a study share its priority, the STAT count matches its summary, and no
//! series is longer than `--max-instances`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use radstream_schemas::{InstanceEvent, Priority};
use radstream_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_sends_what_it_says_with_study_priorities_and_bounded_series() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let worker = WorkerConfig::new(&stack, "loadgen", stack.pacs());
    worker.create_topics(&stack, 2).await?;
    let config = worker.write(dir.path())?;
    let out = Command::new(radstream_bin())
        .args(["loadgen", "--config", path_str(&config), "--bucket", &stack.bucket, "--prefix", &worker.topic])
        .args(["--rate", "400", "--studies", "6", "--max-instances", "6", "--stat-share", "0.5"])
        .args(["--instance-bytes", "20000", "--seed", &unique_seed().to_string()])
        .env_remove("RADSTREAM_LOG")
        .output()?;
    ensure!(out.status.success(), "{}", show_output(&out));
    let summary = lossy_text(&out.stdout);
    let numbers: Vec<u64> =
        summary.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).take(4).collect();
    let [events, stat_events, studies, stat_studies] = numbers[..] else { anyhow::bail!("summary: {summary}") };
    ensure!(studies == 6, "{summary}");

    let sent: Vec<InstanceEvent> = read_topic(&stack.kafka, &worker.topic, events as usize, Duration::from_secs(30))?
        .iter()
        .map(|v| serde_json::from_slice(v))
        .collect::<Result<_, _>>()?;
    ensure!(sent.len() as u64 == events, "{} events on the topic, the summary says {events}", sent.len());
    let stat = sent.iter().filter(|e| e.priority == Priority::Stat).count() as u64;
    ensure!(stat == stat_events, "{stat} STAT events on the topic, the summary says {stat_events}");
    let mut priorities: BTreeMap<&str, BTreeSet<bool>> = BTreeMap::new();
    let mut series: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &sent {
        priorities.entry(&e.study_instance_uid).or_default().insert(e.priority == Priority::Stat);
        *series.entry(&e.series_instance_uid).or_default() += 1;
        ensure!(e.object.key.starts_with(&worker.topic) && e.source.as_deref() == Some("LOADGEN"), "{e:?}");
    }
    ensure!(priorities.len() as u64 == studies, "{} studies on the topic", priorities.len());
    ensure!(priorities.values().all(|p| p.len() == 1), "a study with mixed priorities: {priorities:?}");
    let stat_on_topic = priorities.values().filter(|p| p.contains(&true)).count() as u64;
    ensure!(stat_on_topic == stat_studies, "{stat_on_topic} STAT studies, the summary says {stat_studies}");
    ensure!(series.values().all(|&n| n <= 6), "a series longer than --max-instances: {series:?}");

    // Every object is in the bucket, each event's own.
    let keys: BTreeSet<&str> = sent.iter().map(|e| e.object.key.as_str()).collect();
    ensure!(keys.len() == sent.len(), "{} objects named by {} events", keys.len(), sent.len());
    let objects = radstream_pipeline::objects::ObjectFetcher::new(worker.parsed()?.objects);
    for e in &sent {
        let (bytes, _) = objects
            .fetch(&e.object)
            .await
            .map_err(|e| anyhow::anyhow!(e.reason))
            .with_context(|| format!("fetching {}", e.object.key))?;
        ensure!(bytes.len() > 128 && &bytes[128..132] == b"DICM", "{} is not a Part-10 object", e.object.key);
        let header = radstream_operators::parse_header(&bytes).map_err(anyhow::Error::msg)?;
        let sop = radstream_operators::element_text(&header, dicom_dictionary_std::tags::SOP_INSTANCE_UID);
        ensure!(sop.as_deref() == Some(e.sop_instance_uid.as_str()), "{}: SOP {sop:?}, event {e:?}", e.object.key);
    }
    let out = Command::new(radstream_bin())
        .args(["loadgen", "--config", path_str(&config), "--bucket", &stack.bucket, "--rate", "0", "--studies", "1"])
        .output()?;
    ensure!(out.status.code() == Some(2), "--rate 0 is a usage error: {}", show_output(&out));
    Ok(())
}

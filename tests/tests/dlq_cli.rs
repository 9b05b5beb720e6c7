//! `radstream dlq list` and `radstream dlq replay` on the real stack: an event whose object was
//! never uploaded is dead-lettered as `missing_object`; `list` finds it by class, operator and
//! time; a dry run sends nothing; once the object is uploaded (the fix), `replay` sends the
//! original event back and the instance reaches the PACS, once.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use radstream_pipeline::publish;
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::{ObjectLocation, OutcomeKind};
use radstream_tests::*;

fn dlq(args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(radstream_bin()).arg("dlq").args(args).env_remove("RADSTREAM_LOG").output()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_is_listed_then_replayed_after_the_fix_and_delivered_once() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let worker = WorkerConfig::new(&stack, "dlq-cli", stack.pacs());
    worker.create_topics(&stack, 2).await?;
    let config_path = worker.write(dir.path())?;
    let config_arg = path_str(&config_path).to_string();
    let config = worker.parsed()?;

    // One CT instance, announced under a key that is not uploaded yet.
    let opts = SynthOptions { studies: 1, seed: unique_seed(), ..Default::default() };
    let instance = synth::generate(&opts).find(|i| i.modality == "CT").context("a CT instance")?;
    let key = format!("{}/late/{}.dcm", worker.topic, instance.sop_instance_uid);
    let location = ObjectLocation { bucket: stack.bucket.clone(), key: key.clone(), size: None, etag: None };
    let event = publish::event_for(&instance.bytes, location.clone(), &worker.publish_options(&stack))?;
    let producer: rdkafka::producer::FutureProducer =
        radstream_pipeline::kafka::producer_config(&stack.kafka, &Default::default()).create()?;
    publish::send_event(&producer, &worker.topic, config.kafka.format, &event).await?;

    let started_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let run = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "dlq-cli")?;
    let first = read_outcomes(&stack.kafka, &worker.outcome_topic, 1, Duration::from_secs(60))?;
    ensure!(first.len() == 1 && first[0].outcome == OutcomeKind::DeadLettered, "{first:?}\n{}", run.log_tail());

    // list: by class, by operator, by time; the JSON form carries the original event.
    let out = dlq(&["list", "--config", &config_arg, "--class", "missing_object"])?;
    ensure!(out.status.success(), "{}", show_output(&out));
    let stdout = lossy_text(&out.stdout);
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    ensure!(rows.len() == 1, "one row expected:\n{stdout}");
    ensure!(rows[0].contains("missing_object") && rows[0].contains(&key), "{}", rows[0]);
    ensure!(rows[0].contains(&instance.sop_instance_uid), "{}", rows[0]);
    for (args, expected) in [
        (vec!["--class", "pacs_unavailable"], 0),
        (vec!["--operator", "stow"], 0),
        (vec!["--until", "1970-01-02T00:00:00Z"], 0),
        (vec!["--since", "10m"], 1),
    ] {
        let mut all = vec!["list", "--config", &config_arg, "--json"];
        all.extend(args.iter().copied());
        let out = dlq(&all)?;
        ensure!(out.status.success(), "{}", show_output(&out));
        let n = lossy_text(&out.stdout).lines().count();
        ensure!(n == expected, "{args:?}: {n} letters, expected {expected}:\n{}", show_output(&out));
    }
    let out = dlq(&["list", "--config", &config_arg, "--class", "no_such_class"])?;
    ensure!(out.status.code() == Some(2), "a bad class is a usage error: {}", show_output(&out));

    // A dry run sends nothing.
    let before = high_watermarks(&stack.kafka, &worker.topic, 2)?;
    let out = dlq(&["replay", "--config", &config_arg, "--class", "missing_object", "--dry-run"])?;
    ensure!(out.status.success() && lossy_text(&out.stderr).contains("would replay 1"), "{}", show_output(&out));
    ensure!(high_watermarks(&stack.kafka, &worker.topic, 2)? == before, "the dry run sent something");

    // The fix: the object is uploaded. Then the replay delivers it.
    radstream_pipeline::objects::ObjectFetcher::new(config.objects.clone())
        .put(&location, bytes::Bytes::from(instance.bytes.clone()))
        .await
        .map_err(|e| anyhow::anyhow!(e.reason))?;
    let since = format!(
        "{}s",
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64 - started_ms) / 1000
            + 60
    );
    let out = dlq(&["replay", "--config", &config_arg, "--class", "missing_object", "--since", &since])?;
    ensure!(out.status.success() && lossy_text(&out.stderr).contains("replayed 1"), "{}", show_output(&out));
    let all = read_outcomes(&stack.kafka, &worker.outcome_topic, 2, Duration::from_secs(60))?;
    ensure!(all.len() == 2, "{all:?}\n{}", run.log_tail());
    ensure!(all[1].outcome == OutcomeKind::Delivered, "the replayed event: {:?}", all[1]);
    let stored = stack.pacs().study_instances(&instance.study_instance_uid).await?;
    ensure!(stored == [instance.sop_instance_uid.clone()], "the PACS holds {stored:?}");
    assert_no_phi("dlq list", &stdout)?;
    Ok(())
}

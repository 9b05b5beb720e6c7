//! Issue 16, items 4 and 8 on the real stack: the runtime's waits with `radstream run` worker
//! processes (tansu, moto, Orthanc). Run through `infra/test.sh`.
//!
//! * A notification (one Kafka message) naming more objects than `runtime.max_in_flight` is
//!   delivered in full and its offset committed; it used to wedge the consume loop for good
//!   (and the next worker of the group, reading the same message).
//! * While the schema registry is down, a Confluent Avro event waits for it, nothing is
//!   dead-lettered, the worker stays healthy, and SIGTERM still ends the worker at once with
//!   the event uncommitted; it used to be dead-lettered after four tries.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{ensure, Result};
use radstream_pipeline::publish::{self, PublishOptions};
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::wire::{self, SchemaSet};
use radstream_schemas::{InstanceEvent, ObjectLocation, OutcomeKind, Priority};
use radstream_tests::*;
use rdkafka::producer::{FutureProducer, FutureRecord};

const MAX_IN_FLIGHT: usize = 4;

fn producer(stack: &Stack) -> Result<FutureProducer> {
    Ok(radstream_pipeline::kafka::producer_config(&stack.kafka, &Default::default()).create()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_with_more_records_than_max_in_flight_is_delivered_and_committed() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let mut worker = WorkerConfig::new(&stack, "hostile-bignote", proxy.pacs.clone());
    worker.kafka_extra = "format = \"s3_notification\"".into();
    worker.runtime_extra = format!("max_in_flight = {MAX_IN_FLIGHT}");
    worker.create_topics(&stack, 1).await?;
    let config_path = worker.write(dir.path())?;

    // Upload only (no instance events); then one notification naming every object.
    let files_dir = dir.path().join("objects");
    let synth_opts =
        SynthOptions { studies: 2, seed: unique_seed(), instances_per_series: Some(6), ..Default::default() };
    synth::write_to_dir(&synth_opts, &files_dir)?;
    let opts = PublishOptions {
        bucket: stack.bucket.clone(),
        prefix: worker.topic.clone(),
        priority: Priority::Routine,
        source: None,
        concurrency: 8,
        skip_events: true,
    };
    let config = worker.parsed()?;
    let published =
        publish::publish(&config.kafka, &config.objects, publish::collect_files(&[files_dir])?, &opts, || {}).await?;
    let n = published.len();
    ensure!(n > 2 * MAX_IN_FLIGHT, "the notification must name more objects than max_in_flight: {n}");
    let records: Vec<_> = published
        .iter()
        .map(|p| {
            serde_json::json!({
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-11-27T10:00:00.000Z",
                "s3": {"bucket": {"name": p.event.object.bucket}, "object": {"key": p.event.object.key, "size": p.event.object.size}}
            })
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "Records": records }))?;
    let record = FutureRecord::to(&worker.topic).key("s3").payload(&body);
    producer(&stack)?.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e)?;

    let mut running = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "bignote")?;
    let outcomes = read_outcomes(&stack.kafka, &worker.outcome_topic, n, Duration::from_secs(120))?;
    let delivered: HashSet<_> = outcomes
        .iter()
        .filter(|o| o.outcome == OutcomeKind::Delivered)
        .filter_map(|o| o.sop_instance_uid.clone())
        .collect();
    let sops: HashSet<_> = published.iter().map(|p| p.event.sop_instance_uid.clone()).collect();
    ensure!(delivered == sops, "{} of {n} delivered; worker log:\n{}", delivered.len(), running.log_tail());
    proxy.ensure_each_stored_once(&sops)?;
    let end = high_watermarks(&stack.kafka, &worker.topic, 1)?;
    wait_until(Duration::from_secs(30), "the notification's offset committed", || async {
        committed_offsets(&stack.kafka, &worker.group, &worker.topic, 1).is_ok_and(|c| c == end)
    })
    .await?;
    let status = running.terminate(Duration::from_secs(30))?;
    ensure!(status.success(), "{status}: {}", running.log_tail());
    Ok(())
}

fn event() -> InstanceEvent {
    InstanceEvent {
        object: ObjectLocation { bucket: "incoming".into(), key: "never-fetched.dcm".into(), size: None, etag: None },
        study_instance_uid: "1.2.826.0.1.3680043.8.498.1".into(),
        series_instance_uid: "1.2.826.0.1.3680043.8.498.2".into(),
        sop_instance_uid: "1.2.826.0.1.3680043.8.498.3".into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
        modality: "CT".into(),
        body_part_examined: None,
        instance_number: None,
        expected_series_instances: None,
        priority: Priority::Routine,
        source: None,
        event_time_ms: 1_704_067_200_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_registry_outage_pauses_the_input_and_sigterm_still_ends_the_worker() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    // Nothing listens there: every lookup is a connect error.
    let registry = format!("http://127.0.0.1:{}", free_port());
    let mut worker = WorkerConfig::new(&stack, "hostile-registry", stack.pacs());
    worker.kafka_extra = format!("format = \"confluent_avro\"\nschema_registry_url = \"{registry}\"");
    worker.create_topics(&stack, 1).await?;
    let config_path = worker.write(dir.path())?;
    let value = wire::encode_confluent(&event(), 42, &SchemaSet::v1())?;
    let record = FutureRecord::to(&worker.topic).key("avro").payload(&value);
    producer(&stack)?.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e)?;

    let mut running = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "registry")?;
    let log = running.log.clone();
    wait_until(Duration::from_secs(60), "the worker waiting for the registry", || {
        let log = log.clone();
        async move {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.matches("schema registry unavailable").count() >= 3
        }
    })
    .await?;
    ensure!(topic_len(&stack.kafka, &worker.dead_letter_topic)? == 0, "dead-lettered while the registry was down");
    let health = reqwest::get(format!("http://{}/healthz", running.metrics)).await?.status().as_u16();
    ensure!(health == 200, "a registry outage is not the worker's failure: /healthz {health}");

    let status = running.terminate(Duration::from_secs(10))?;
    ensure!(status.success(), "{status}: {}", running.log_tail());
    ensure!(topic_len(&stack.kafka, &worker.dead_letter_topic)? == 0, "dead-lettered on shutdown");
    let committed = committed_offsets(&stack.kafka, &worker.group, &worker.topic, 1)?;
    ensure!(committed.get(&0).is_none_or(|&o| o < 1), "the waiting event was committed: {committed:?}");
    Ok(())
}

//! `radstream publish`: upload DICOM files to the object store and announce each with an
//! `InstanceEvent` keyed by StudyInstanceUID, as a modality gateway or an upload service would.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use radstream_operators::{event_from_header, parse_header};
use radstream_schemas::wire::{self, SchemaSet};
use radstream_schemas::{EventFormat, InstanceEvent, ObjectLocation, Priority};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::{KafkaConfig, ObjectsConfig};
use crate::kafka::config::producer_config;
use crate::objects::ObjectFetcher;

/// What to publish and where.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Bucket to upload into.
    pub bucket: String,
    /// Key prefix (`prefix/<relative path>`).
    pub prefix: String,
    /// Priority stamped on the events.
    pub priority: Priority,
    /// Source (AE title) stamped on the events.
    pub source: Option<String>,
    /// Uploads and sends in flight at once.
    pub concurrency: usize,
    /// Upload only, produce no events.
    pub skip_events: bool,
}

/// One published instance.
#[derive(Debug, Clone)]
pub struct Published {
    /// The event that was produced.
    pub event: InstanceEvent,
}

/// Every file under each path, sorted, relative paths kept for keys (the walker every command
/// over folders uses, at the path the end-to-end tests know).
pub use crate::files::collect_files;

/// Builds the event for a Part-10 object at `location` from its header.
pub fn event_for(bytes: &[u8], location: ObjectLocation, opts: &PublishOptions) -> anyhow::Result<InstanceEvent> {
    let key = location.display_key();
    let header = parse_header(bytes).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let location = ObjectLocation { size: Some(bytes.len() as i64), ..location };
    event_from_header(&header, location, now, opts.priority, opts.source.clone()).map_err(anyhow::Error::msg)
}

/// Encodes an event in the topic's format (`confluent_avro` uses schema id 1 and the v1 schema
/// unless a registry assigned another).
pub fn encode(format: EventFormat, event: &InstanceEvent, schema_id: u32) -> anyhow::Result<Vec<u8>> {
    Ok(match format {
        EventFormat::Json => wire::encode_json(event),
        EventFormat::ConfluentAvro => wire::encode_confluent(event, schema_id, &SchemaSet::v1())?,
        EventFormat::S3Notification => {
            anyhow::bail!("publish produces instance events; S3 notifications come from the store")
        }
    })
}

/// Uploads every file and produces its event; calls `progress` after each.
pub async fn publish(
    kafka: &KafkaConfig,
    objects: &ObjectsConfig,
    files: Vec<(PathBuf, String)>,
    opts: &PublishOptions,
    progress: impl Fn() + Send + Sync,
) -> anyhow::Result<Vec<Published>> {
    let producer: FutureProducer = producer_config(&kafka.brokers, &kafka.producer).create()?;
    let store = Arc::new(ObjectFetcher::new(objects.clone()));
    let progress = &progress;
    stream::iter(files)
        .map(|(path, rel)| {
            let (producer, store, opts) = (producer.clone(), store.clone(), opts.clone());
            async move {
                let bytes =
                    Bytes::from(tokio::fs::read(&path).await.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
                let key =
                    if opts.prefix.is_empty() { rel } else { format!("{}/{rel}", opts.prefix.trim_end_matches('/')) };
                let location = ObjectLocation { bucket: opts.bucket.clone(), key, size: None, etag: None };
                let mut event = event_for(&bytes, location.clone(), &opts)?;
                event.object.etag = store.put(&location, bytes).await.map_err(|e| anyhow::anyhow!(e.reason))?;
                if !opts.skip_events {
                    send_event(&producer, &kafka.input_topic, kafka.format, &event).await?;
                }
                progress();
                Ok::<_, anyhow::Error>(Published { event })
            }
        })
        .buffered(opts.concurrency.max(1))
        .try_collect()
        .await
}

/// Produces one event keyed by its StudyInstanceUID and waits for the broker's ack.
pub async fn send_event(
    producer: &FutureProducer,
    topic: &str,
    format: EventFormat,
    event: &InstanceEvent,
) -> anyhow::Result<()> {
    let payload = encode(format, event, 1)?;
    let record = FutureRecord::to(topic).key(&event.study_instance_uid).payload(&payload);
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    Ok(())
}

/// Where `radstream publish` found nothing to send.
pub fn ensure_not_empty(files: &[(PathBuf, String)], paths: &[PathBuf]) -> anyhow::Result<()> {
    if files.is_empty() {
        anyhow::bail!(
            "no files found under {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

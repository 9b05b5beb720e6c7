//! What the runtime lends operators (`radstream_operators::contract::services`): Kafka topics to produce
//! side outputs to, the object store to write objects to, and readers of compacted topics.
//!
//! Operators see only the traits; these are their Kafka and `object_store` implementations.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use radstream_operators::contract::services::{
    ObjectWriter, ServiceError, TableFollower, TableReader, TableSubscriber, TopicWriter,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::config::{KafkaConfig, ObjectsConfig};
use crate::kafka::config::{producer_config, table_consumer};
use crate::objects::ObjectFetcher;

/// Longest a send waits for room in the producer's queue; delivery itself is bounded by the
/// producer's `message.timeout.ms`.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest [`KafkaTableReader::follow`] waits for the topic's metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one poll of a table consumer blocks, and so how late it notices a stop.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Produces side outputs to Kafka with the pipeline's producer settings (`acks=all`,
/// idempotence), waiting for each acknowledgement.
pub struct KafkaTopicWriter {
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaTopicWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTopicWriter").finish_non_exhaustive()
    }
}

impl KafkaTopicWriter {
    /// A producer for `config.brokers` with `config.producer`'s extra properties.
    pub fn new(config: &KafkaConfig) -> KafkaResult<Self> {
        Ok(Self { producer: producer_config(&config.brokers, &config.producer).create()? })
    }
}

#[async_trait]
impl TopicWriter for KafkaTopicWriter {
    async fn send(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), ServiceError> {
        let record = FutureRecord::to(topic).key(key).payload(&value);
        match self.producer.send(record, Timeout::After(QUEUE_TIMEOUT)).await {
            Ok(_) => Ok(()),
            Err((error, _)) => Err(produce_error(topic, &error)),
        }
    }
}

/// A failed send, classified: librdkafka has already retried what it retries, so only failures
/// that a later attempt may not hit again (timeouts, brokers down) are marked retryable.
fn produce_error(topic: &str, error: &KafkaError) -> ServiceError {
    use RDKafkaErrorCode as Code;
    let (message, retryable) = match error.rdkafka_error_code() {
        Some(Code::UnknownTopicOrPartition | Code::UnknownTopic | Code::UnknownPartition) => {
            ("the topic does not exist; create it (topics are not created on first use)".to_string(), false)
        }
        Some(Code::TopicAuthorizationFailed | Code::ClusterAuthorizationFailed) => {
            (format!("{error}; check the producer's credentials and the topic's ACLs"), false)
        }
        Some(
            Code::MessageSizeTooLarge
            | Code::InvalidMessageSize
            | Code::InvalidMessage
            | Code::InvalidRecord
            | Code::InvalidTopic
            | Code::Fatal,
        ) => (error.to_string(), false),
        _ => (error.to_string(), true),
    };
    ServiceError { destination: topic.to_string(), message, retryable }
}

/// Writes objects to the store the pipeline reads from, with the same `objects` settings
/// (endpoint, credentials, timeouts, retries), to any bucket.
#[derive(Debug)]
pub struct StoreObjectWriter {
    store: ObjectFetcher,
}

impl StoreObjectWriter {
    /// A writer for the configured store; stores are built lazily, per bucket.
    pub fn new(config: ObjectsConfig) -> Self {
        Self { store: ObjectFetcher::new(config) }
    }
}

#[async_trait]
impl ObjectWriter for StoreObjectWriter {
    async fn put(&self, bucket: &str, key: &str, parts: Vec<Bytes>) -> Result<(), ServiceError> {
        self.store.put_parts(bucket, key, parts).await.map(drop).map_err(|e| ServiceError {
            destination: format!("{bucket}/{key}"),
            message: e.reason,
            retryable: e.retryable,
        })
    }
}

/// Reads compacted topics from their beginning, each with its own consumer that joins no
/// consumer group and commits nothing: every worker reads the whole table.
///
/// Consumers stop when the reader is dropped (the runtime keeps it for as long as it runs).
pub struct KafkaTableReader {
    brokers: String,
    consumer_extra: BTreeMap<String, String>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for KafkaTableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTableReader").field("brokers", &self.brokers).finish_non_exhaustive()
    }
}

impl KafkaTableReader {
    /// A reader for `config.brokers`, with `config.consumer`'s extra properties applied to every
    /// table consumer (security settings, `fetch.wait.max.ms`, ...).
    pub fn new(config: &KafkaConfig) -> Self {
        Self {
            brokers: config.brokers.clone(),
            consumer_extra: config.consumer.clone(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn consumer_config(&self) -> ClientConfig {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let unique = format!("radstream-table-{}-{n}-{:016x}", std::process::id(), fastrand::u64(..));
        table_consumer(&self.brokers, &self.consumer_extra, &unique)
    }
}

impl Drop for KafkaTableReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl TableReader for KafkaTableReader {
    fn follow(
        &self,
        topic: &str,
        subscriber: Arc<dyn TableSubscriber>,
    ) -> Result<Arc<dyn TableFollower>, ServiceError> {
        let error =
            |message: String, retryable: bool| ServiceError { destination: topic.to_string(), message, retryable };
        let consumer: BaseConsumer =
            self.consumer_config().create().map_err(|e| error(format!("cannot create a consumer: {e}"), false))?;
        // Blocking, but only while operators are built, before the pipeline reads anything.
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(|e| error(format!("cannot read the topic's metadata: {e}"), true))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .filter(|t| t.error() != Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART))
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        if partitions.is_empty() {
            return Err(error(
                "the topic does not exist; create it (with cleanup.policy=compact) before starting the pipeline".into(),
                false,
            ));
        }
        let mut assignment = TopicPartitionList::new();
        for &partition in &partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .map_err(|e| error(format!("cannot assign partition {partition}: {e}"), false))?;
        }
        consumer.assign(&assignment).map_err(|e| error(format!("cannot assign the partitions: {e}"), false))?;

        let consumer = Arc::new(consumer);
        let (positions, positions_rx) = watch::channel(HashMap::new());
        let last_error = Arc::new(Mutex::new(None));
        let poller = TablePoller {
            topic: topic.to_string(),
            consumer: consumer.clone(),
            subscriber,
            positions,
            last_error: last_error.clone(),
            stop: self.stop.clone(),
        };
        std::thread::Builder::new()
            .name("radstream-table".into())
            .spawn(move || poller.run())
            .map_err(|e| error(format!("cannot start the reader thread: {e}"), false))?;
        debug!(topic, partitions = partitions.len(), "following a compacted topic");
        Ok(Arc::new(KafkaTableFollower {
            topic: topic.to_string(),
            consumer,
            partitions,
            positions: positions_rx,
            last_error,
        }))
    }
}

/// The background half of a follower: applies every record, in order, and publishes the next
/// offset to read per partition.
struct TablePoller {
    topic: String,
    consumer: Arc<BaseConsumer>,
    subscriber: Arc<dyn TableSubscriber>,
    positions: watch::Sender<HashMap<i32, i64>>,
    last_error: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
}

impl TablePoller {
    fn run(self) {
        while !self.stop.load(Ordering::Relaxed) {
            match self.consumer.poll(POLL_INTERVAL) {
                None | Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Ok(message)) => {
                    self.subscriber.apply(message.key().unwrap_or_default(), message.payload());
                    let (partition, next) = (message.partition(), message.offset() + 1);
                    self.positions.send_modify(|p| {
                        p.insert(partition, next);
                    });
                }
                Some(Err(e)) => {
                    let text = e.to_string();
                    let mut last = self.last_error.lock().expect("last error lock poisoned");
                    // librdkafka repeats an error on every poll while it lasts; log each once.
                    if last.as_deref() != Some(text.as_str()) {
                        warn!(topic = %self.topic, error = %text, "reading a compacted topic failed; retrying");
                        *last = Some(text);
                    }
                }
            }
        }
        debug!(topic = %self.topic, "stopped following a compacted topic");
    }
}

/// A running reader of one compacted topic.
pub struct KafkaTableFollower {
    topic: String,
    consumer: Arc<BaseConsumer>,
    partitions: Vec<i32>,
    positions: watch::Receiver<HashMap<i32, i64>>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for KafkaTableFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTableFollower")
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TableFollower for KafkaTableFollower {
    /// Waits until the next offset to read of every partition reaches the high watermark it had
    /// when this was called. An offset that holds no record (a transaction marker, or a
    /// compacted-away tombstone at the very end of a partition) is not seen; radstream's
    /// producers are idempotent, not transactional, so only the second can occur, and then
    /// catching up fails with a timeout rather than returning early.
    async fn catch_up(&self, timeout: Duration) -> Result<(), ServiceError> {
        let error =
            |message: String, retryable: bool| ServiceError { destination: self.topic.clone(), message, retryable };
        let deadline = tokio::time::Instant::now() + timeout;
        let (consumer, topic, partitions) = (self.consumer.clone(), self.topic.clone(), self.partitions.clone());
        // (partition, low, high): a partition whose records were all deleted starts at `low`.
        let watermarks = tokio::task::spawn_blocking(move || {
            partitions
                .into_iter()
                .map(|p| {
                    // Each request gets what is left, so the thread is not held past the deadline.
                    let left = deadline.into_std().saturating_duration_since(std::time::Instant::now());
                    consumer.fetch_watermarks(&topic, p, left).map(|(low, high)| (p, low, high))
                })
                .collect::<KafkaResult<Vec<_>>>()
        });
        let watermarks = match tokio::time::timeout_at(deadline, watermarks).await {
            Err(_) => return Err(error(format!("cannot read the end offsets within {timeout:?}"), true)),
            Ok(Err(e)) => return Err(error(format!("reading the end offsets failed: {e}"), true)),
            Ok(Ok(Err(e))) => return Err(error(format!("cannot read the end offsets: {e}"), true)),
            Ok(Ok(Ok(w))) => w,
        };
        let behind = |positions: &HashMap<i32, i64>| -> i64 {
            watermarks.iter().map(|&(p, low, high)| (high - positions.get(&p).copied().unwrap_or(low)).max(0)).sum()
        };
        let mut positions = self.positions.clone();
        // The positions lock is released (the `Ref` dropped) before anything else reads them.
        let waited =
            tokio::time::timeout_at(deadline, positions.wait_for(|p| behind(p) == 0)).await.map(|r| r.map(drop));
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(error("the reader stopped (the pipeline is shutting down)".into(), false)),
            Err(_) => {
                let left = behind(&self.positions.borrow());
                let last = self.last_error.lock().expect("last error lock poisoned").clone();
                let last = last.map(|e| format!("; last consumer error: {e}")).unwrap_or_default();
                Err(error(format!("not caught up after {timeout:?}: {left} record(s) still to read{last}"), true))
            }
        }
    }
}

#[cfg(test)]
mod tests;

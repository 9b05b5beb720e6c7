//! The running lake: reads the outcome and feedback topics, buffers rows, uploads files and
//! commits what they hold. The buffer is bounded ([`BufferLimit`]): while the object store
//! does not take the files, the lake pauses its partitions (it keeps polling, so it stays in its
//! consumer group) and resumes once the files are written.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use radstream_operators::contract::Backoff;
use radstream_schemas::records::Feedback;
use radstream_schemas::{DecodeError, OutcomeEvent};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::config::{Config, LakeConfig};
use crate::kafka::config::{lake_consumer, lake_group};
use crate::lake::buffer::{BufferLimit, LakeBuffer};
use crate::lake::error::LakeError;
use crate::lake::rows::{FeedbackRow, OutcomeRow, UidPseudonymizer};
use crate::objects::ObjectFetcher;
use crate::observe::http::serve_lake;
use crate::observe::metrics::LakeMetrics;

/// Which of the lake's topics a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Outcomes,
    Feedback,
}

/// What the lake does to its partitions besides reading them: the Kafka consumer, or a
/// recorder in the tests.
trait LakePartitions {
    /// Commits `offsets` (synchronously).
    fn commit_read(&self, offsets: &TopicPartitionList) -> KafkaResult<()>;
    /// Stops fetching every assigned partition (the consumer keeps polling).
    fn pause_reading(&self) -> KafkaResult<()>;
    /// Fetches every assigned partition again, from where it was paused.
    fn resume_reading(&self) -> KafkaResult<()>;
}

impl LakePartitions for StreamConsumer {
    fn commit_read(&self, offsets: &TopicPartitionList) -> KafkaResult<()> {
        self.commit(offsets, CommitMode::Sync)
    }

    fn pause_reading(&self) -> KafkaResult<()> {
        self.pause(&self.assignment()?)
    }

    fn resume_reading(&self) -> KafkaResult<()> {
        self.resume(&self.assignment()?)
    }
}

/// The running lake: its consumer, buffer and positions.
struct Lake<P: LakePartitions = StreamConsumer> {
    lake: LakeConfig,
    outcome_topic: String,
    uids: UidPseudonymizer,
    objects: ObjectFetcher,
    consumer: P,
    metrics: LakeMetrics,
    buffer: LakeBuffer,
    /// How much the buffer may hold before the lake writes it, or stops reading.
    limit: BufferLimit,
    /// Whether the partitions are paused because the buffer is full and cannot be written.
    paused: bool,
    /// Next offset to commit per topic and partition: read since the last commit.
    read: BTreeMap<(String, i32), i64>,
    /// After a failed upload, when to try again.
    retry_at: Option<Instant>,
    /// Failed uploads in a row, for the wait before the next ([`UPLOAD_RETRY`]).
    upload_failures: u32,
}

/// The wait before trying a failed lake upload again: 1 s doubling to 60 s, with no attempt limit
/// (the rows stay buffered and uncommitted until written). No jitter: the lake retries its own
/// files, not a request many callers share.
const UPLOAD_RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).without_jitter();

/// The wait before reading the lake's topics again after a consumer error: 500 ms, however many
/// in a row (librdkafka reconnects on its own; the wait only keeps a lasting error from spinning).
const RECV_RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_millis(500)).without_jitter();

/// Runs the lake of `config` until `shutdown` completes, then writes what it holds, commits
/// and returns.
pub async fn run(config: &Config, shutdown: impl std::future::Future<Output = ()>) -> Result<(), LakeError> {
    let lake_config = config.lake.clone().ok_or(LakeError::NotConfigured)?;
    let uids = UidPseudonymizer::from_config(&lake_config)?;
    let metrics = LakeMetrics::new();
    if !lake_config.metrics_listen.is_empty() {
        let addr = serve_lake(&lake_config.metrics_listen, metrics.clone())
            .await
            .map_err(|source| LakeError::Listen { listen: lake_config.metrics_listen.clone(), source })?;
        info!(%addr, "serving /metrics and /healthz");
    }
    let k = &config.kafka;
    let c = lake_consumer(k);
    let consumer: StreamConsumer = c.create()?;
    let mut topics = vec![k.outcome_topic.as_str()];
    topics.extend(lake_config.feedback_topic.as_deref());
    consumer.subscribe(&topics)?;
    info!(?topics, group = %lake_group(k), bucket = %lake_config.bucket, prefix = %lake_config.prefix, "lake started");
    let mut lake = Lake {
        limit: BufferLimit::rows(lake_config.flush_rows),
        paused: false,
        lake: lake_config,
        outcome_topic: k.outcome_topic.clone(),
        uids,
        objects: ObjectFetcher::new(config.objects.clone()),
        consumer,
        metrics,
        buffer: LakeBuffer::default(),
        read: BTreeMap::new(),
        retry_at: None,
        upload_failures: 0,
    };
    let mut recv_errors = 0u32;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            message = lake.consumer.recv() => match message {
                Ok(m) => {
                    recv_errors = 0;
                    let m = m.detach();
                    lake.take(m.topic(), m.partition(), m.offset(), m.payload().unwrap_or_default());
                    lake.after_take().await?;
                }
                Err(e) => {
                    warn!(error = %e, "reading the lake's topics failed; retrying");
                    recv_errors = recv_errors.saturating_add(1);
                    tokio::time::sleep(RECV_RETRY.delay(recv_errors, None)).await;
                }
            },
            _ = tick.tick() => lake.on_tick().await?,
        }
    }
    info!(rows = lake.buffer.rows(), "shutdown requested: writing the buffered rows");
    lake.retry_at = None;
    lake.flush().await?;
    if lake.buffer.rows() > 0 {
        warn!(rows = lake.buffer.rows(), "stopping with rows not written; they are read again on the next start");
    }
    Ok(())
}

/// `payload` as a `document`; the error names the position and the kind of problem, never a
/// value (serde_json's own message quotes the value it choked on, which may be patient data).
fn read_record<T: DeserializeOwned>(document: &'static str, payload: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(payload).map_err(|e| radstream_schemas::wire::json_error(document, &e))
}

impl<P: LakePartitions> Lake<P> {
    /// After a record was taken: a full buffer is written; one that cannot be (the store is
    /// down) stops the reading until it is.
    async fn after_take(&mut self) -> Result<(), LakeError> {
        if self.limit.reached(&self.buffer) {
            self.flush().await?;
            if self.limit.reached(&self.buffer) {
                // Again on every record that still arrives: a rebalance may have assigned
                // partitions that are not paused yet.
                self.pause();
            }
        }
        Ok(())
    }

    /// The periodic check: writes rows that waited `flush_secs`, commits what was read without
    /// rows, and retries the write a paused lake waits for.
    async fn on_tick(&mut self) -> Result<(), LakeError> {
        let due = self.buffer.age() >= Duration::from_secs(self.lake.flush_secs)
            || (self.buffer.rows() == 0 && !self.read.is_empty())
            || self.paused;
        if due {
            self.flush().await?;
        }
        Ok(())
    }

    fn pause(&mut self) {
        match self.consumer.pause_reading() {
            Ok(()) if !self.paused => {
                self.paused = true;
                warn!(
                    rows = self.buffer.rows(),
                    bytes = self.buffer.bytes(),
                    "the lake's buffer is full and the object store does not take its files: reading paused until \
                     they are written (check the object store)"
                );
            }
            Ok(()) => {}
            Err(e) => warn!(error = %e, "pausing the lake's partitions failed; trying again with the next record"),
        }
    }

    fn resume(&mut self) {
        if !self.paused {
            return;
        }
        match self.consumer.resume_reading() {
            Ok(()) => {
                self.paused = false;
                info!("the lake's files are written: reading resumed");
            }
            Err(e) => warn!(error = %e, "resuming the lake's partitions failed; trying again on the next tick"),
        }
    }

    /// Takes one record into the buffer (or counts it unreadable); it becomes committable.
    fn take(&mut self, topic: &str, partition: i32, offset: i64, payload: &[u8]) {
        self.read.insert((topic.to_string(), partition), offset + 1);
        let table = if topic == self.outcome_topic { Table::Outcomes } else { Table::Feedback };
        match table {
            Table::Outcomes => match read_record::<OutcomeEvent>("outcome record", payload) {
                Ok(event) => self.buffer.push_outcome(OutcomeRow::new(&event, partition, offset, &self.uids)),
                Err(e) => {
                    self.metrics.unreadable.with_label_values(&["outcomes"]).inc();
                    warn!(topic, partition, offset, error = %e, "not an outcome record; skipped");
                }
            },
            Table::Feedback => match read_record::<Feedback>("feedback record", payload) {
                Ok(feedback) => {
                    self.metrics.verdict(&feedback);
                    self.buffer.push_feedback(FeedbackRow {
                        feedback,
                        feedback_partition: partition,
                        feedback_offset: offset,
                    });
                }
                Err(e) => {
                    self.metrics.unreadable.with_label_values(&["feedback"]).inc();
                    warn!(topic, partition, offset, error = %e, "not a feedback record; skipped");
                }
            },
        }
        self.metrics.buffered.set(self.buffer.rows() as i64);
    }

    /// Uploads every buffered row, then commits what was read. A retryable upload failure keeps
    /// the buffer for a later try (with backoff); any other is fatal, with nothing committed.
    async fn flush(&mut self) -> Result<(), LakeError> {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        if self.buffer.rows() > 0 {
            let buffer = std::mem::take(&mut self.buffer);
            let prefix = self.lake.prefix.clone();
            let (buffer, files) = tokio::task::spawn_blocking(move || {
                let files = buffer.files(&prefix);
                (buffer, files)
            })
            .await
            .expect("encoding lake files panicked");
            self.buffer = buffer;
            for file in files? {
                let written = self.objects.put_parts(&self.lake.bucket, &file.key, vec![file.bytes.clone()]).await;
                match written {
                    Ok(_) => {
                        self.metrics.files.with_label_values(&[file.table]).inc();
                        self.metrics.rows.with_label_values(&[file.table]).inc_by(file.rows as u64);
                        info!(key = %file.key, rows = file.rows, bytes = file.bytes.len(), "lake file written");
                    }
                    Err(e) if e.retryable => {
                        self.upload_failures = self.upload_failures.saturating_add(1);
                        let wait = UPLOAD_RETRY.delay(self.upload_failures, None);
                        warn!(key = %file.key, error = %e, retry_in_s = wait.as_secs(), "writing a lake file failed; keeping the rows");
                        self.retry_at = Some(Instant::now() + wait);
                        return Ok(());
                    }
                    Err(e) => return Err(LakeError::Upload(e)),
                }
            }
            self.buffer = LakeBuffer::default();
            self.metrics.buffered.set(0);
        }
        self.retry_at = None;
        self.upload_failures = 0;
        self.resume();
        if !self.read.is_empty() {
            let mut offsets = TopicPartitionList::new();
            for ((topic, partition), next) in &self.read {
                offsets.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
            }
            // The rows are in the lake whatever happens here: a failed commit means they are
            // read and written again (the same file names), not lost.
            match self.consumer.commit_read(&offsets) {
                Ok(()) => self.read.clear(),
                Err(e) => {
                    warn!(error = %e, "committing the lake's offsets failed; they are committed with the next files")
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

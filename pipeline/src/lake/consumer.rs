//! The running lake: reads the outcome and feedback topics, buffers rows, uploads files and
//! commits what they hold.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use radstream_operators::contract::Backoff;
use radstream_schemas::records::Feedback;
use radstream_schemas::OutcomeEvent;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::config::{Config, LakeConfig};
use crate::kafka::config::{lake_consumer, lake_group};
use crate::lake::buffer::LakeBuffer;
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

/// The running lake: its consumer, buffer and positions.
struct Lake {
    lake: LakeConfig,
    outcome_topic: String,
    uids: UidPseudonymizer,
    objects: ObjectFetcher,
    consumer: StreamConsumer,
    metrics: LakeMetrics,
    buffer: LakeBuffer,
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
                    if lake.buffer.rows() >= lake.lake.flush_rows {
                        lake.flush().await?;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "reading the lake's topics failed; retrying");
                    recv_errors = recv_errors.saturating_add(1);
                    tokio::time::sleep(RECV_RETRY.delay(recv_errors, None)).await;
                }
            },
            _ = tick.tick() => {
                let due = lake.buffer.age() >= Duration::from_secs(lake.lake.flush_secs)
                    || (lake.buffer.rows() == 0 && !lake.read.is_empty());
                if due {
                    lake.flush().await?;
                }
            }
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

impl Lake {
    /// Takes one record into the buffer (or counts it unreadable); it becomes committable.
    fn take(&mut self, topic: &str, partition: i32, offset: i64, payload: &[u8]) {
        self.read.insert((topic.to_string(), partition), offset + 1);
        let table = if topic == self.outcome_topic { Table::Outcomes } else { Table::Feedback };
        match table {
            Table::Outcomes => match serde_json::from_slice::<OutcomeEvent>(payload) {
                Ok(event) => self.buffer.push_outcome(OutcomeRow::new(&event, partition, offset, &self.uids)),
                Err(e) => {
                    self.metrics.unreadable.with_label_values(&["outcomes"]).inc();
                    warn!(topic, partition, offset, error = %e, "not an outcome record; skipped");
                }
            },
            Table::Feedback => match serde_json::from_slice::<Feedback>(payload) {
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
        if !self.read.is_empty() {
            let mut offsets = TopicPartitionList::new();
            for ((topic, partition), next) in &self.read {
                offsets.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
            }
            // The rows are in the lake whatever happens here: a failed commit means they are
            // read and written again (the same file names), not lost.
            match self.consumer.commit(&offsets, CommitMode::Sync) {
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

//! What the runtime lends operators that write beside the main flow: Kafka topics (audit events,
//! re-identification links, announcements of exported objects), an object store, and read access
//! to compacted topics. Operators see only these traits, never a Kafka client: the runtime
//! implements them (`radstream-pipeline`), tests and tools may implement them in memory.
//!
//! Every write is awaited until the destination acknowledged it, so an envelope that an operator
//! forwards has its side outputs durable before its offset can commit.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

/// A side output failed. The message names the destination (topic or `bucket/key`), never
/// patient data.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{destination}: {message}")]
pub struct ServiceError {
    /// Topic or `bucket/key`.
    pub destination: String,
    /// What went wrong.
    pub message: String,
    /// True when trying again may help (timeouts, broker or store unavailable).
    pub retryable: bool,
}

/// Produces records to Kafka topics.
#[async_trait]
pub trait TopicWriter: Send + Sync {
    /// Produces one record and waits for the broker's acknowledgement (`acks=all`).
    async fn send(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), ServiceError>;
}

/// Writes objects to the object store the pipeline reads from (same endpoint and credentials,
/// any bucket).
#[async_trait]
pub trait ObjectWriter: Send + Sync {
    /// Writes `parts`, concatenated, as `bucket/key`, replacing any existing object.
    async fn put(&self, bucket: &str, key: &str, parts: Vec<Bytes>) -> Result<(), ServiceError>;
}

/// Receives every record of a followed compacted topic, in offset order per partition.
pub trait TableSubscriber: Send + Sync {
    /// One record; `value` is `None` for a tombstone.
    fn apply(&self, key: &[u8], value: Option<&[u8]>);
}

/// A running reader of a compacted topic.
#[async_trait]
pub trait TableFollower: Send + Sync {
    /// Returns once every record that was in the topic when this was called has been applied,
    /// or fails after `timeout`.
    async fn catch_up(&self, timeout: Duration) -> Result<(), ServiceError>;
}

/// Opens readers of compacted topics.
pub trait TableReader: Send + Sync {
    /// Starts reading `topic` from its beginning into `subscriber`, in the background, for as
    /// long as the pipeline runs.
    fn follow(&self, topic: &str, subscriber: Arc<dyn TableSubscriber>)
        -> Result<Arc<dyn TableFollower>, ServiceError>;
}

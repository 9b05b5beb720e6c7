//! The producer of dead letters and outcomes.

use std::time::Duration;

use radstream_operators::contract::Backoff;
use rdkafka::error::KafkaResult;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use tracing::warn;

use crate::config::KafkaConfig;
use crate::kafka::config::producer_config;

/// The waits between tries of a dead letter or outcome: 100 ms doubling to 10 s, with no attempt
/// limit or deadline (the event cannot be committed before its record is durable). No jitter:
/// one producer retries its own sends, and librdkafka already spreads its reconnects.
const SEND_RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).without_jitter();

/// Produces dead letters and outcomes.
#[derive(Clone)]
pub struct Outputs {
    producer: FutureProducer,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Outcome topic.
    pub outcome_topic: String,
}

impl Outputs {
    /// Creates the producer.
    pub fn new(config: &KafkaConfig) -> KafkaResult<Self> {
        Ok(Self {
            producer: producer_config(&config.brokers, &config.producer).create()?,
            dead_letter_topic: config.dead_letter_topic.clone(),
            outcome_topic: config.outcome_topic.clone(),
        })
    }

    /// Sends `record` as JSON and waits for the broker's acknowledgement, retrying until it
    /// succeeds: an event may only be committed once its dead letter or outcome is durable.
    pub async fn send_json<T: Serialize>(&self, topic: &str, key: Option<&str>, record: &T) {
        let payload = serde_json::to_vec(record).expect("records serialize to JSON");
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let mut rec = FutureRecord::<str, [u8]>::to(topic).payload(&payload);
            if let Some(key) = key {
                rec = rec.key(key);
            }
            match self.producer.send(rec, Duration::from_secs(30)).await {
                Ok(_) => return,
                Err((e, _)) => {
                    // Never gives up (see SEND_RETRY), so only the wait is asked, not whether to retry.
                    let delay = SEND_RETRY.delay(attempt, None);
                    warn!(topic, error = %e, retry_in_ms = delay.as_millis() as u64, "producing to an output topic failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Waits until every queued message is delivered (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) {
        use rdkafka::producer::Producer;
        if let Err(e) = self.producer.flush(timeout) {
            warn!(error = %e, "flushing the output producer failed");
        }
    }
}

#[cfg(test)]
mod tests;

//! The producer of dead letters and outcomes.

use std::time::Duration;

use rdkafka::error::KafkaResult;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use tracing::warn;

use crate::config::KafkaConfig;
use crate::kafka::config::producer_config;

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
        let mut delay = Duration::from_millis(100);
        loop {
            let mut rec = FutureRecord::<str, [u8]>::to(topic).payload(&payload);
            if let Some(key) = key {
                rec = rec.key(key);
            }
            match self.producer.send(rec, Duration::from_secs(30)).await {
                Ok(_) => return,
                Err((e, _)) => {
                    warn!(topic, error = %e, retry_in_ms = delay.as_millis() as u64, "producing to an output topic failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
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

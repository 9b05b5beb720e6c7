//! The producer of dead letters and outcomes.

use std::future::Future;
use std::time::Duration;

use radstream_operators::contract::Backoff;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use tokio::sync::watch;
use tracing::warn;

use crate::config::KafkaConfig;
use crate::kafka::config::producer_config;

/// The waits between tries of a dead letter or outcome after a transient failure: 100 ms
/// doubling to 10 s, with no attempt limit or deadline (the event cannot be committed before its
/// record is durable); only the end of the drain ends them. No jitter: one producer retries its
/// own sends, and librdkafka already spreads its reconnects.
const SEND_RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).without_jitter();

/// Why a record was not produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The record is larger than the producer or the topic accepts: sending it again cannot
    /// help, a smaller record might.
    TooLarge {
        /// The record's size.
        bytes: usize,
        /// What the producer said.
        error: String,
    },
    /// The broker refuses every record of the topic (authorization, unknown topic, bad
    /// credentials): the worker cannot go on. The text says what is wrong and what to do.
    Permanent(String),
    /// The drain ended (`halt` turned true) while a transient failure was being retried.
    Halted,
}

/// What a failed send means for the next try.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// Worth trying again after a wait: a broker down, a timeout, a full queue.
    Transient,
    /// The record itself is too large.
    TooLarge,
    /// No record of this topic will get through; the text says what to do.
    Permanent(String),
}

/// Sorts a producer error by what trying again can do. librdkafka already retries what it
/// knows to be retriable within `message.timeout.ms`; what reaches us is sorted here.
fn classify(topic: &str, error: &KafkaError) -> Failure {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(C::MessageSizeTooLarge | C::MessageBatchTooLarge) => Failure::TooLarge,
        Some(
            C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::DelegationTokenAuthorizationFailed,
        ) => Failure::Permanent(format!(
            "the broker refuses this worker's writes to topic {topic} ({error}): grant the worker's Kafka \
             principal Write and Describe on it, or fix the credentials in kafka.producer"
        )),
        Some(C::Authentication | C::SaslAuthenticationFailed) => Failure::Permanent(format!(
            "the broker refuses this worker's credentials while producing to topic {topic} ({error}): fix the \
             SASL/SSL settings in kafka.producer"
        )),
        Some(C::UnknownTopic | C::UnknownTopicOrPartition | C::UnknownTopicId | C::InvalidTopic) => {
            Failure::Permanent(format!(
                "topic {topic} does not exist on the brokers ({error}): create it, or set kafka.dead_letter_topic \
                 and kafka.outcome_topic to topics that exist"
            ))
        }
        Some(C::PolicyViolation | C::UnsupportedVersion | C::Fatal) => Failure::Permanent(format!(
            "the producer cannot write to topic {topic} ({error}): check the broker's log and the settings in \
             kafka.producer, then restart the worker"
        )),
        _ => Failure::Transient,
    }
}

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

    /// Sends `record` as JSON and waits for the broker's acknowledgement: an event may only be
    /// committed once its dead letter or outcome is durable. A transient failure is tried
    /// again (see [`SEND_RETRY`]) until `halt` turns true; a record too large, or a topic that
    /// refuses every record, ends the send at once with the reason.
    pub async fn send_json<T: Serialize>(
        &self,
        topic: &str,
        key: Option<&str>,
        record: &T,
        halt: watch::Receiver<bool>,
    ) -> Result<(), SendError> {
        let payload = serde_json::to_vec(record).expect("records serialize to JSON");
        send_with_retry(topic, payload.len(), SEND_RETRY, halt, || async {
            let mut rec = FutureRecord::<str, [u8]>::to(topic).payload(&payload);
            if let Some(key) = key {
                rec = rec.key(key);
            }
            self.producer.send(rec, Duration::from_secs(30)).await.map(|_| ()).map_err(|(e, _)| e)
        })
        .await
    }

    /// Waits until every queued message is delivered (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) {
        use rdkafka::producer::Producer;
        if let Err(e) = self.producer.flush(timeout) {
            warn!(error = %e, "flushing the output producer failed");
        }
    }
}

/// Tries `send` (a record of `bytes` to `topic`) until it succeeds, fails for good, or `halt`
/// turns true during a wait.
async fn send_with_retry<F, Fut>(
    topic: &str,
    bytes: usize,
    backoff: Backoff,
    mut halt: watch::Receiver<bool>,
    mut send: F,
) -> Result<(), SendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), KafkaError>>,
{
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        let error = match send().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match classify(topic, &error) {
            Failure::TooLarge => return Err(SendError::TooLarge { bytes, error: error.to_string() }),
            Failure::Permanent(reason) => return Err(SendError::Permanent(reason)),
            Failure::Transient => {}
        }
        // Never gives up on its own (see SEND_RETRY), so only the wait is asked, not whether to retry.
        let delay = backoff.delay(attempt, None);
        warn!(topic, %error, retry_in_ms = delay.as_millis() as u64, "producing to an output topic failed; retrying");
        if *halt.borrow_and_update() {
            return Err(SendError::Halted);
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            Ok(_) = halt.wait_for(|&h| h) => return Err(SendError::Halted),
        }
    }
}

#[cfg(test)]
mod tests;

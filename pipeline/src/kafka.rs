//! Kafka clients: the consumer (with rebalance tracking and lag statistics) and the producer of
//! dead letters and outcomes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;
use serde::Serialize;
use tracing::{info, warn};

use crate::acks::AckTracker;
use crate::config::KafkaConfig;
use crate::metrics::Metrics;

/// Consumer context: keeps the ack tracker in step with the assignment and exports lag.
pub struct SourceContext {
    /// The tracker of in-flight offsets.
    pub tracker: Arc<Mutex<AckTracker>>,
    metrics: Metrics,
    topic: String,
}

impl SourceContext {
    fn partitions<'a>(&'a self, tpl: &'a TopicPartitionList) -> impl Iterator<Item = i32> + 'a {
        tpl.elements().into_iter().filter(|e| e.topic() == self.topic).map(|e| e.partition())
    }
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // librdkafka reports partition -1 (internal) and lag -1 when unknown.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics.consumer_lag.with_label_values(&[topic, &partition.to_string()]).set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut tracker = self.tracker.lock().expect("tracker lock poisoned");
            for partition in self.partitions(tpl).collect::<Vec<_>>() {
                let abandoned = tracker.revoke(partition);
                self.metrics.consumer_lag.with_label_values(&[&self.topic, &partition.to_string()]).set(0);
                info!(partition, abandoned, "partition revoked; its in-flight work will not be committed here");
            }
            self.metrics.assigned_partitions.set(tracker.assigned() as i64);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut tracker = self.tracker.lock().expect("tracker lock poisoned");
                let assigned: Vec<i32> = self.partitions(tpl).collect();
                for &partition in &assigned {
                    tracker.assign(partition);
                }
                self.metrics.assigned_partitions.set(tracker.assigned() as i64);
                info!(?assigned, total = tracker.assigned(), "partitions assigned");
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // NoOffset just means nothing new was stored since the last commit.
            if !matches!(e.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::NoOffset)) {
                warn!(error = %e, "offset commit failed; it is retried on the next interval");
            }
        }
    }
}

/// The consumer type used by the pipeline.
pub type SourceConsumer = StreamConsumer<SourceContext>;

/// Builds the consumer: consumer group, cooperative-sticky assignment, auto-commit of offsets
/// that the pipeline stores explicitly (never of offsets merely read).
pub fn consumer(
    config: &KafkaConfig,
    tracker: Arc<Mutex<AckTracker>>,
    metrics: Metrics,
) -> KafkaResult<SourceConsumer> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", config.commit_interval_ms.to_string())
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", (config.session_timeout_ms / 4).max(250).to_string())
        .set("statistics.interval.ms", "5000")
        .set("client.id", format!("radstream-{}", std::process::id()));
    for (k, v) in &config.consumer {
        c.set(k, v);
    }
    let context = SourceContext { tracker, metrics, topic: config.input_topic.clone() };
    c.create_with_context(context)
}

/// Producer settings shared by the pipeline's outputs and by `radstream publish`: acks from all
/// in-sync replicas and idempotence, so a retried send is never duplicated.
pub fn producer_config(brokers: &str, extra: &std::collections::BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "120000");
    for (k, v) in extra {
        c.set(k, v);
    }
    c
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

//! The pipeline's consumer of the input topic, with rebalance tracking and lag statistics.

use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;
use tracing::{info, warn};

use crate::config::KafkaConfig;
use crate::kafka::config::worker_consumer;
use crate::observe::metrics::Metrics;
use crate::runtime::acks::AckTracker;

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

/// Builds the consumer ([`worker_consumer`]'s settings) with its context.
pub fn consumer(
    config: &KafkaConfig,
    tracker: Arc<Mutex<AckTracker>>,
    metrics: Metrics,
) -> KafkaResult<SourceConsumer> {
    let c = worker_consumer(config);
    let context = SourceContext { tracker, metrics, topic: config.input_topic.clone() };
    c.create_with_context(context)
}

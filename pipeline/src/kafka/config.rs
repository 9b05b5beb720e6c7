//! One builder of librdkafka client configuration per role. Each sets radstream's defaults,
//! then the user's extra properties (`kafka.consumer` or `kafka.producer`), then the settings
//! at-least-once delivery depends on ([`crate::kafka::settings`]), so no extra property can
//! turn those off. Every `ClientConfig` of the pipeline comes from here.

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;

use crate::config::KafkaConfig;
use crate::kafka::settings::{ACKS, AUTO_COMMIT_KEY, IDEMPOTENCE, ISOLATION, OFFSET_RESET, OFFSET_STORE};

/// Defaults, then `extra`, then `fixed`: the order that lets an extra property tune anything
/// but what `fixed` guarantees.
fn layered(defaults: &[(&str, String)], extra: &BTreeMap<String, String>, fixed: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in defaults {
        c.set(*k, v);
    }
    for (k, v) in extra {
        c.set(k, v);
    }
    for (k, v) in fixed {
        c.set(*k, *v);
    }
    c
}

fn heartbeat_ms(session_timeout_ms: u32) -> String {
    (session_timeout_ms / 4).max(250).to_string()
}

/// The worker's consumer: its consumer group, cooperative-sticky assignment, and auto-commit of
/// the offsets the pipeline stores explicitly (never of offsets merely read).
pub fn worker_consumer(config: &KafkaConfig) -> ClientConfig {
    let mut c = layered(
        &[
            ("bootstrap.servers", config.brokers.clone()),
            ("partition.assignment.strategy", "cooperative-sticky".into()),
            ("session.timeout.ms", config.session_timeout_ms.to_string()),
            ("heartbeat.interval.ms", heartbeat_ms(config.session_timeout_ms)),
            ("statistics.interval.ms", "5000".into()),
            ("client.id", format!("radstream-{}", std::process::id())),
        ],
        &config.consumer,
        &[(AUTO_COMMIT_KEY, "true"), OFFSET_STORE, ISOLATION, OFFSET_RESET],
    );
    // From radstream's own keys, after the extras too: the lake's and `dlq`'s groups are
    // derived from `group_id`, and an interval of 0 would turn committing off.
    c.set("group.id", &config.group_id);
    c.set("auto.commit.interval.ms", config.commit_interval_ms.to_string());
    c
}

/// The lake's consumer: group `<group_id>-lake`, committing itself once files are uploaded.
pub fn lake_consumer(config: &KafkaConfig) -> ClientConfig {
    let mut c = layered(
        &[
            ("bootstrap.servers", config.brokers.clone()),
            ("session.timeout.ms", config.session_timeout_ms.to_string()),
            ("heartbeat.interval.ms", heartbeat_ms(config.session_timeout_ms)),
            ("client.id", format!("radstream-lake-{}", std::process::id())),
        ],
        &config.consumer,
        &[(AUTO_COMMIT_KEY, "false"), ISOLATION, OFFSET_RESET],
    );
    c.set("group.id", lake_group(config));
    c
}

/// The lake's consumer group.
pub fn lake_group(config: &KafkaConfig) -> String {
    format!("{}-lake", config.group_id)
}

/// `radstream dlq`'s reader: a group of its own that commits nothing.
pub fn dlq_consumer(config: &KafkaConfig) -> ClientConfig {
    let mut c = layered(
        &[("bootstrap.servers", config.brokers.clone()), ("enable.partition.eof", "false".into())],
        &config.consumer,
        // It assigns each partition from its low watermark; earliest again where retention
        // moved that on before the read.
        &[(AUTO_COMMIT_KEY, "false"), ISOLATION, OFFSET_RESET],
    );
    c.set("group.id", format!("radstream-dlq-{}", std::process::id()));
    c
}

/// A reader of a compacted topic: `unique` is its client id and its group, so no group offsets
/// are read or written and every reader starts from the beginning.
pub fn table_consumer(brokers: &str, extra: &BTreeMap<String, String>, unique: &str) -> ClientConfig {
    let mut c = layered(
        &[
            ("bootstrap.servers", brokers.to_string()),
            // Brokers that hold a fetch for the whole wait (tansu 0.6.0) would otherwise delay
            // every catch-up by librdkafka's default 500 ms.
            ("fetch.wait.max.ms", "10".into()),
            ("client.id", unique.to_string()),
        ],
        extra,
        &[(AUTO_COMMIT_KEY, "false"), OFFSET_STORE, ISOLATION, OFFSET_RESET],
    );
    c.set("group.id", unique);
    c
}

/// Producer settings shared by the pipeline's outputs and by `radstream publish`: acks from all
/// in-sync replicas and idempotence, so a retried send is never duplicated.
pub fn producer_config(brokers: &str, extra: &BTreeMap<String, String>) -> ClientConfig {
    layered(
        &[
            ("bootstrap.servers", brokers.to_string()),
            ("linger.ms", "2".into()),
            ("message.timeout.ms", "120000".into()),
        ],
        extra,
        &[ACKS, IDEMPOTENCE],
    )
}

#[cfg(test)]
mod tests;

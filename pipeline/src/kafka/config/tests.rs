use std::collections::BTreeMap;

use super::*;

fn kafka(consumer: &[(&str, &str)], producer: &[(&str, &str)]) -> KafkaConfig {
    let text = "brokers = \"b:9092\"\ninput_topic = \"in\"\n";
    let mut k: KafkaConfig = toml::from_str(text).expect("a minimal kafka section");
    k.consumer = consumer.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    k.producer = producer.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    k
}

fn get<'a>(c: &'a ClientConfig, key: &str) -> Option<&'a str> {
    c.get(key)
}

#[test]
fn extras_tune_defaults_but_never_the_at_least_once_settings() {
    let k = kafka(
        &[("enable.auto.offset.store", "true"), ("enable.auto.commit", "false"), ("session.timeout.ms", "9000")],
        &[("acks", "1"), ("enable.idempotence", "false"), ("linger.ms", "7")],
    );
    let worker = worker_consumer(&k);
    assert_eq!(get(&worker, "enable.auto.offset.store"), Some("false"));
    assert_eq!(get(&worker, "enable.auto.commit"), Some("true"));
    assert_eq!(get(&worker, "session.timeout.ms"), Some("9000"), "an extra property tunes a default");
    for c in [lake_consumer(&k), dlq_consumer(&k), table_consumer("b:9092", &k.consumer, "t-1")] {
        assert_eq!(get(&c, "enable.auto.commit"), Some("false"));
    }
    assert_eq!(get(&table_consumer("b:9092", &k.consumer, "t-1"), "group.id"), Some("t-1"));
    let producer = producer_config(&k.brokers, &k.producer);
    assert_eq!(get(&producer, "acks"), Some("all"));
    assert_eq!(get(&producer, "enable.idempotence"), Some("true"));
    assert_eq!(get(&producer, "linger.ms"), Some("7"));
}

/// `validate` refuses these extras; the builders hold the line even for a config that skipped it.
#[test]
fn extras_never_change_where_a_consumer_starts_what_it_reads_or_its_group() {
    let k = kafka(
        &[
            ("isolation.level", "read_uncommitted"),
            ("auto.offset.reset", "latest"),
            ("group.id", "someone-else"),
            ("auto.commit.interval.ms", "0"),
        ],
        &[],
    );
    let consumers = [
        ("worker", worker_consumer(&k), "radstream"),
        ("lake", lake_consumer(&k), "radstream-lake"),
        ("table", table_consumer("b:9092", &k.consumer, "t-1"), "t-1"),
    ];
    for (role, c, group) in &consumers {
        assert_eq!(get(c, "isolation.level"), Some("read_committed"), "{role}");
        assert_eq!(get(c, "auto.offset.reset"), Some("earliest"), "{role}");
        assert_eq!(get(c, "group.id"), Some(*group), "{role}");
    }
    let dlq = dlq_consumer(&k);
    assert_eq!(get(&dlq, "auto.offset.reset"), Some("earliest"));
    assert_eq!(get(&dlq, "isolation.level"), Some("read_committed"));
    assert!(get(&dlq, "group.id").is_some_and(|g| g.starts_with("radstream-dlq-")), "{:?}", get(&dlq, "group.id"));
    assert_eq!(get(&consumers[0].1, "auto.commit.interval.ms"), Some("1000"), "kafka.commit_interval_ms");
}

#[test]
fn defaults_are_the_ones_each_role_had() {
    let k = kafka(&[], &[]);
    let worker = worker_consumer(&k);
    assert_eq!(get(&worker, "group.id"), Some("radstream"));
    assert_eq!(get(&worker, "partition.assignment.strategy"), Some("cooperative-sticky"));
    assert_eq!(get(&lake_consumer(&k), "group.id"), Some("radstream-lake"));
    assert_eq!(get(&dlq_consumer(&k), "enable.partition.eof"), Some("false"));
    assert_eq!(get(&producer_config("b:9092", &BTreeMap::new()), "message.timeout.ms"), Some("120000"));
}

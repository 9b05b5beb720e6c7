use std::collections::BTreeMap;

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn harmless_extras_pass() {
    let consumer = map(&[
        ("security.protocol", "SASL_SSL"),
        ("enable.auto.offset.store", "false"),
        ("isolation.level", "read_committed"),
        ("auto.offset.reset", "earliest"),
        ("fetch.wait.max.ms", "10"),
    ]);
    let producer = map(&[
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("linger.ms", "5"),
        ("max.in.flight.requests.per.connection", "5"),
        ("retries", "10"),
        ("queuing.strategy", "fifo"),
    ]);
    assert!(check_extras(&consumer, &producer).is_ok());
    assert!(check_extras(&BTreeMap::new(), &map(&[("request.required.acks", "-1")])).is_ok());
    // librdkafka's other spellings of the same safe values.
    let consumer = map(&[("enable.auto.offset.store", "0"), ("auto.offset.reset", "smallest")]);
    let producer = map(&[("enable.idempotence", "1"), ("max.in.flight", "1"), ("message.send.max.retries", "3")]);
    assert!(check_extras(&consumer, &producer).is_ok());
    assert!(check_extras(&map(&[("auto.offset.reset", "Beginning")]), &BTreeMap::new()).is_ok());
}

#[test]
fn extras_that_turn_at_least_once_off_are_rejected_by_name() {
    let cases = [
        (map(&[("enable.auto.commit", "true")]), BTreeMap::new(), "kafka.consumer.\"enable.auto.commit\""),
        (map(&[("enable.auto.offset.store", "true")]), BTreeMap::new(), "kafka.consumer.\"enable.auto.offset.store\""),
        (BTreeMap::new(), map(&[("acks", "1")]), "kafka.producer.\"acks\""),
        (BTreeMap::new(), map(&[("request.required.acks", "0")]), "kafka.producer.\"request.required.acks\""),
        (BTreeMap::new(), map(&[("enable.idempotence", "false")]), "kafka.producer.\"enable.idempotence\""),
    ];
    for (consumer, producer, key) in cases {
        let e = check_extras(&consumer, &producer).expect_err(key);
        assert!(e.to_string().contains(key), "{e} names {key}");
    }
}

/// Each consumer property that would skip, re-read without end, or hand over events that never
/// happened, under each name librdkafka knows it by; the error names the key as written.
#[test]
fn consumer_extras_that_skip_or_stall_events_are_rejected_by_name() {
    let cases = [
        ("auto.commit.enable", "true", "remove it"),
        ("enable.auto.offset.store", "t", "must be false"),
        ("isolation.level", "read_uncommitted", "read_committed"),
        ("auto.offset.reset", "latest", "skip every event"),
        ("auto.offset.reset", "largest", "skip every event"),
        ("auto.offset.reset", "end", "skip every event"),
        ("auto.offset.reset", "error", "stop the partition"),
        ("auto.offset.reset", "none", "must be earliest"),
        ("auto.commit.interval.ms", "0", "kafka.commit_interval_ms"),
        ("offset.store.method", "file", "consumer group"),
        ("group.id", "other", "kafka.group_id"),
    ];
    for (name, value, advice) in cases {
        let e = check_extras(&map(&[(name, value)]), &BTreeMap::new()).expect_err(name);
        let key = format!("kafka.consumer.\"{name}\"");
        assert_eq!(e.key, key, "{name} = {value}: {e}");
        assert!(e.problem.contains(advice), "{name} = {value}: {e}");
    }
}

#[test]
fn producer_extras_that_lose_or_duplicate_sends_are_rejected_by_name() {
    let cases = [
        ("acks", "ALL ", true),
        ("max.in.flight.requests.per.connection", "6", false),
        ("max.in.flight", "1000000", false),
        ("max.in.flight", "0", false),
        ("retries", "0", false),
        ("message.send.max.retries", "0", false),
        ("retries", "many", false),
        ("queuing.strategy", "lifo", false),
        ("transactional.id", "radstream", false),
        ("enable.idempotence", "f", false),
    ];
    for (name, value, admitted) in cases {
        let result = check_extras(&BTreeMap::new(), &map(&[(name, value)]));
        if admitted {
            assert!(result.is_ok(), "{name} = {value}: {result:?}");
            continue;
        }
        let e = result.expect_err(name);
        assert_eq!(e.key, format!("kafka.producer.\"{name}\""), "{name} = {value}: {e}");
        assert!(e.problem.contains("remove it"), "says what to do: {e}");
    }
}

/// A consumer property in the producer table (or the other way round) means nothing to that
/// client, and the checks of one role do not judge the other's table.
#[test]
fn each_table_is_judged_by_its_own_rules() {
    assert!(check_extras(&map(&[("acks", "0")]), &BTreeMap::new()).is_ok());
    assert!(check_extras(&BTreeMap::new(), &map(&[("auto.offset.reset", "latest")])).is_ok());
}

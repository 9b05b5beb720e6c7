use std::collections::BTreeMap;

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn harmless_extras_pass() {
    let consumer = map(&[("security.protocol", "SASL_SSL"), ("enable.auto.offset.store", "false")]);
    let producer = map(&[("acks", "all"), ("enable.idempotence", "true"), ("linger.ms", "5")]);
    assert!(check_extras(&consumer, &producer).is_ok());
    assert!(check_extras(&BTreeMap::new(), &map(&[("request.required.acks", "-1")])).is_ok());
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

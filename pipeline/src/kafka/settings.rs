//! The client settings at-least-once delivery depends on, and the check that no extra
//! property of the config (`kafka.consumer`, `kafka.producer`) contradicts them.
//!
//! The builders in [`crate::kafka::config`] apply the user's extra properties first and these
//! last, so a contradicting line could not take effect anyway; rejecting it in `validate` says
//! so instead of ignoring it silently. Pure: no I/O, so `radstream validate` can call it.

use std::collections::BTreeMap;

use radstream_operators::ConfigError;

/// Offsets become committable only when the pipeline stores them, after every output of an
/// event is finished; librdkafka must never store an offset merely because it was read.
pub const OFFSET_STORE: (&str, &str) = ("enable.auto.offset.store", "false");

/// The worker commits stored offsets on an interval; the lake, the table readers and `dlq`
/// commit themselves (or nothing), so the key is radstream's to set per client.
pub const AUTO_COMMIT_KEY: &str = "enable.auto.commit";

/// A send counts as done only once every in-sync replica has it.
pub const ACKS: (&str, &str) = ("acks", "all");

/// A retried send is never written twice.
pub const IDEMPOTENCE: (&str, &str) = ("enable.idempotence", "true");

/// librdkafka's alias of `acks`.
const ACKS_ALIAS: &str = "request.required.acks";

fn same(value: &str, expected: &str) -> bool {
    value.trim().eq_ignore_ascii_case(expected)
}

/// Rejects an extra consumer or producer property that contradicts what at-least-once delivery
/// needs, naming the key (`kafka.consumer."enable.auto.commit"`).
pub fn check_extras(
    consumer: &BTreeMap<String, String>,
    producer: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let key = |section: &str, name: &str| format!("kafka.{section}.\"{name}\"");
    for (name, value) in consumer {
        if name == AUTO_COMMIT_KEY {
            return Err(ConfigError::new(
                key("consumer", name),
                "radstream sets it per client (the worker commits only the offsets it stored, the lake and \
                 `dlq` commit themselves): remove it",
            ));
        }
        if name == OFFSET_STORE.0 && !same(value, OFFSET_STORE.1) {
            return Err(ConfigError::new(
                key("consumer", name),
                "must be false: an offset is stored only once every output of its event is finished",
            ));
        }
    }
    for (name, value) in producer {
        if (name == ACKS.0 || name == ACKS_ALIAS) && !(same(value, ACKS.1) || same(value, "-1")) {
            return Err(ConfigError::new(
                key("producer", name),
                "must be all: an outcome or dead letter counts as written only once every in-sync replica has it",
            ));
        }
        if name == IDEMPOTENCE.0 && !same(value, IDEMPOTENCE.1) {
            return Err(ConfigError::new(key("producer", name), "must be true: a retried send must not be duplicated"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

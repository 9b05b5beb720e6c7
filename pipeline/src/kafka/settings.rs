//! The client settings at-least-once delivery depends on, and the check that no extra
//! property of the config (`kafka.consumer`, `kafka.producer`) contradicts them.
//!
//! The builders in [`crate::kafka::config`] apply the user's extra properties first and these
//! last, so a contradicting line could not take effect anyway; rejecting it in `validate` says
//! so instead of ignoring it silently. Pure: no I/O, so `radstream validate` can call it.
//!
//! Each rule names a property with every librdkafka alias of it (`acks` and
//! `request.required.acks` are one setting), since either spelling reaches the same field.

use std::collections::BTreeMap;

use radstream_operators::ConfigError;

/// Offsets become committable only when the pipeline stores them, after every output of an
/// event is finished; librdkafka must never store an offset merely because it was read.
pub const OFFSET_STORE: (&str, &str) = ("enable.auto.offset.store", "false");

/// The worker commits stored offsets on an interval; the lake, the table readers and `dlq`
/// commit themselves (or nothing), so the key is radstream's to set per client.
pub const AUTO_COMMIT_KEY: &str = "enable.auto.commit";

/// Only messages their producer committed: `read_uncommitted` would hand the worker events
/// of aborted transactions, which never happened as far as their producer is concerned.
/// librdkafka's default too; set explicitly so no extra property can change it.
pub const ISOLATION: (&str, &str) = ("isolation.level", "read_committed");

/// Where a partition without a committed offset (a new group, expired group offsets) or with
/// one out of range (retention deleted events not yet processed) starts: at its oldest event.
/// `latest` would skip every event not yet processed, silently; `error` would stop the
/// partition. Reading old events again is what at-least-once allows; skipping them is not.
pub const OFFSET_RESET: (&str, &str) = ("auto.offset.reset", "earliest");

/// A send counts as done only once every in-sync replica has it.
pub const ACKS: (&str, &str) = ("acks", "all");

/// A retried send is never written twice.
pub const IDEMPOTENCE: (&str, &str) = ("enable.idempotence", "true");

/// What an extra property may hold.
enum Allowed {
    /// radstream sets it per client (or from its own key): the property is refused whatever
    /// it holds.
    Never,
    /// One of these spellings (case and surrounding blanks ignored).
    OneOf(&'static [&'static str]),
    /// A whole number in this range.
    Within(i64, i64),
}

/// One property at-least-once depends on: every name librdkafka knows it by, what it may
/// hold, and what to do instead.
struct Rule {
    names: &'static [&'static str],
    allowed: Allowed,
    advice: &'static str,
}

/// librdkafka's spellings of true and false.
const TRUE: &[&str] = &["true", "t", "1"];
const FALSE: &[&str] = &["false", "f", "0"];

const CONSUMER_RULES: &[Rule] = &[
    Rule {
        // `auto.commit.enable` is the legacy topic-level alias of the same switch.
        names: &[AUTO_COMMIT_KEY, "auto.commit.enable"],
        allowed: Allowed::Never,
        advice: "radstream sets it per client (the worker commits only the offsets it stored, the lake and \
                 `dlq` commit themselves): remove it",
    },
    Rule {
        names: &[OFFSET_STORE.0],
        allowed: Allowed::OneOf(FALSE),
        advice: "must be false: an offset is stored only once every output of its event is finished; remove it",
    },
    Rule {
        names: &["auto.commit.interval.ms"],
        allowed: Allowed::Never,
        advice: "set kafka.commit_interval_ms instead and remove this (0 here would turn committing off, and the \
                 worker would read every event again after each restart)",
    },
    Rule {
        names: &[ISOLATION.0],
        allowed: Allowed::OneOf(&["read_committed"]),
        advice: "must be read_committed (radstream's setting): read_uncommitted hands the worker events of \
                 aborted transactions; remove it",
    },
    Rule {
        names: &[OFFSET_RESET.0],
        allowed: Allowed::OneOf(&["earliest", "smallest", "beginning"]),
        advice: "must be earliest (radstream's setting): where a partition has no committed offset or it is out \
                 of range, latest would skip every event not yet processed and error would stop the partition; \
                 remove it",
    },
    Rule {
        names: &["offset.store.method"],
        allowed: Allowed::OneOf(&["broker"]),
        advice: "offsets are committed to the consumer group on the brokers: remove it",
    },
    Rule {
        names: &["group.id"],
        allowed: Allowed::Never,
        advice: "set kafka.group_id instead and remove this: the lake's group and `dlq`'s are derived from it, \
                 and a group.id here would put every client in one group",
    },
];

const PRODUCER_RULES: &[Rule] = &[
    Rule {
        names: &[ACKS.0, "request.required.acks"],
        allowed: Allowed::OneOf(&["all", "-1"]),
        advice: "must be all: an outcome or dead letter counts as written only once every in-sync replica has it; \
                 remove it",
    },
    Rule {
        names: &[IDEMPOTENCE.0],
        allowed: Allowed::OneOf(TRUE),
        advice: "must be true: a retried send must not be duplicated; remove it",
    },
    Rule {
        names: &["max.in.flight.requests.per.connection", "max.in.flight"],
        allowed: Allowed::Within(1, 5),
        advice: "must be between 1 and 5: the idempotent producer keeps order and refuses to start with more \
                 requests in flight; remove it (librdkafka then uses 5)",
    },
    Rule {
        names: &["message.send.max.retries", "retries"],
        allowed: Allowed::Within(1, i32::MAX as i64),
        advice: "must be at least 1: the idempotent producer needs retries, and without them a send that fails \
                 once is given up; remove it (librdkafka then retries until message.timeout.ms)",
    },
    Rule {
        names: &["queuing.strategy"],
        allowed: Allowed::OneOf(&["fifo"]),
        advice: "must be fifo: lifo reorders messages, which the idempotent producer refuses; remove it",
    },
    Rule {
        names: &["transactional.id"],
        allowed: Allowed::Never,
        advice: "radstream's producers are not transactional: every send outside a transaction would fail; \
                 remove it",
    },
];

impl Allowed {
    fn admits(&self, value: &str) -> bool {
        let value = value.trim();
        match self {
            Allowed::Never => false,
            Allowed::OneOf(spellings) => spellings.iter().any(|s| value.eq_ignore_ascii_case(s)),
            Allowed::Within(min, max) => value.parse::<i64>().is_ok_and(|v| (*min..=*max).contains(&v)),
        }
    }
}

fn check(section: &str, extras: &BTreeMap<String, String>, rules: &[Rule]) -> Result<(), ConfigError> {
    for (name, value) in extras {
        let known = rules.iter().find(|r| r.names.iter().any(|n| name.trim().eq_ignore_ascii_case(n)));
        if let Some(rule) = known.filter(|r| !r.allowed.admits(value)) {
            return Err(ConfigError::new(format!("kafka.{section}.\"{name}\""), rule.advice));
        }
    }
    Ok(())
}

/// Rejects an extra consumer or producer property that contradicts what at-least-once delivery
/// needs, naming the key (`kafka.consumer."enable.auto.commit"`) and saying what to do.
pub fn check_extras(
    consumer: &BTreeMap<String, String>,
    producer: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    check("consumer", consumer, CONSUMER_RULES)?;
    check("producer", producer, PRODUCER_RULES)
}

#[cfg(test)]
mod tests;

//! `radstream dlq list` and `radstream dlq replay`: the dead-letter topic for the people who fix
//! what landed there.
//!
//! Both read the config's `kafka.dead_letter_topic` from its start to the end it had when the
//! command started (a snapshot: letters written meanwhile wait for the next run), outside any
//! consumer group, committing nothing. Filters: reason class, operator, and a time range on
//! when the letter was written. `replay` sends each matching letter's original message, byte
//! for byte with its original key, back to the input topic (or `--to-topic`), with a header
//! `radstream-replay-of: <topic>/<partition>/<offset>` that says where it came from; `--dry-run`
//! lists what it would send and sends nothing.
//!
//! A replayed event runs the whole chain again: what failed for a reason that was fixed (the
//! PACS is back, the object was uploaded, the config corrected) now goes through, and what
//! still fails is dead-lettered again. The results of one event have the same UIDs every time,
//! so a PACS keeps one copy however often it is replayed. Letters are never removed from the
//! topic (it is a log): use `--since` to leave earlier ones out.

use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use radstream_schemas::{DeadLetter, ErrorClass};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::kafka::config::{dlq_consumer, producer_config};

/// Which dead letters a command takes.
#[derive(Debug, Clone, Default)]
pub struct DlqFilter {
    /// Reason classes (`missing_object`, `pacs_unavailable`, ...); empty: all.
    pub classes: Vec<ErrorClass>,
    /// Operators (or runtime stages) that failed; empty: all.
    pub operators: Vec<String>,
    /// Written at or after (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Written before (Unix milliseconds).
    pub until_ms: Option<i64>,
}

impl DlqFilter {
    fn matches(&self, letter: &DeadLetter) -> bool {
        (self.classes.is_empty() || self.classes.contains(&letter.error_class))
            && (self.operators.is_empty() || self.operators.contains(&letter.operator))
            && self.since_ms.is_none_or(|t| letter.time_ms >= t)
            && self.until_ms.is_none_or(|t| letter.time_ms < t)
    }
}

/// A dead letter and where it is in the topic.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Located {
    /// Partition of the dead-letter topic.
    pub partition: i32,
    /// Offset in it.
    pub offset: i64,
    /// The letter.
    #[serde(flatten)]
    pub letter: DeadLetter,
}

/// What a read found.
#[derive(Debug, Default)]
pub struct DlqRead {
    /// The letters that match, in partition then offset order.
    pub matching: Vec<Located>,
    /// Letters read in all.
    pub total: usize,
    /// Records that are not dead letters (not JSON of that shape), by place.
    pub unreadable: Vec<(i32, i64)>,
}

/// Reads the dead-letter topic up to its current end.
pub fn read(kafka: &KafkaConfig, filter: &DlqFilter, timeout: Duration) -> anyhow::Result<DlqRead> {
    let topic = &kafka.dead_letter_topic;
    let config = dlq_consumer(kafka);
    let consumer: BaseConsumer = config.create().context("creating a Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("reading the metadata of {topic} from {}", kafka.brokers))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        bail!("the dead-letter topic {topic} does not exist on {} (kafka.dead_letter_topic)", kafka.brokers);
    }
    let mut ends = std::collections::BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .with_context(|| format!("reading the offsets of {topic} partition {p}"))?;
        if high > low {
            ends.insert(p, high);
            assignment.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    let mut found = DlqRead::default();
    if ends.is_empty() {
        return Ok(found);
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut next: std::collections::BTreeMap<i32, i64> = ends.keys().map(|&p| (p, 0)).collect();
    while next.iter().any(|(p, at)| *at < ends[p]) {
        if std::time::Instant::now() > deadline {
            bail!("reading {topic} did not reach its end within {} s", timeout.as_secs());
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message.with_context(|| format!("reading {topic}"))?;
        let (partition, offset) = (message.partition(), message.offset());
        if offset >= ends[&partition] {
            next.insert(partition, offset + 1);
            continue;
        }
        next.insert(partition, offset + 1);
        match message.payload().map(serde_json::from_slice::<DeadLetter>) {
            Some(Ok(letter)) => {
                found.total += 1;
                if filter.matches(&letter) {
                    found.matching.push(Located { partition, offset, letter });
                }
            }
            _ => found.unreadable.push((partition, offset)),
        }
    }
    found.matching.sort_by_key(|l| (l.partition, l.offset));
    Ok(found)
}

/// Refuses a replay that holds a letter without its original message (a letter that was too
/// large for the dead-letter topic is written without it): nothing is sent, and the error says
/// where the original is.
pub fn check_replayable(kafka: &KafkaConfig, letters: &[Located]) -> anyhow::Result<()> {
    for located in letters {
        let l = &located.letter;
        if l.original_value_base64.is_empty() {
            anyhow::bail!(
                "the dead letter at {}/{}/{} holds no original message (it was too large for the dead-letter \
                 topic); nothing was sent: its original is at {}/{}/{}, send that again after the fix, or leave \
                 this letter out with --class, --operator or --since/--until",
                kafka.dead_letter_topic,
                located.partition,
                located.offset,
                l.source_topic,
                l.source_partition,
                l.source_offset
            );
        }
    }
    Ok(())
}

/// Sends each letter's original message to `topic`; returns how many were sent. Sends nothing
/// when one letter has no original ([`check_replayable`]).
pub async fn replay(kafka: &KafkaConfig, letters: &[Located], topic: &str) -> anyhow::Result<usize> {
    check_replayable(kafka, letters)?;
    let producer: FutureProducer =
        producer_config(&kafka.brokers, &kafka.producer).create().context("creating a Kafka producer")?;
    let engine = base64::engine::general_purpose::STANDARD;
    for located in letters {
        let letter = &located.letter;
        let value = engine.decode(&letter.original_value_base64).with_context(|| {
            format!("the dead letter at {}/{} holds no readable original message", located.partition, located.offset)
        })?;
        let origin = format!("{}/{}/{}", kafka.dead_letter_topic, located.partition, located.offset);
        let headers = OwnedHeaders::new().insert(Header { key: "radstream-replay-of", value: Some(origin.as_str()) });
        let mut record = FutureRecord::<str, [u8]>::to(topic).payload(&value).headers(headers);
        if let Some(key) = &letter.original_key {
            record = record.key(key);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("sending the dead letter at {origin} to {topic}: {e}"))?;
    }
    Ok(letters.len())
}

/// The letters as a table: time, place, class, operator, attempts, object, SOP instance, reason.
pub fn table(letters: &[Located]) -> String {
    let mut out =
        String::from("time (UTC)\tpartition/offset\tclass\toperator\tattempts\tobject\tsop_instance_uid\treason\n");
    for l in letters {
        let d = &l.letter;
        out.push_str(&format!(
            "{}\t{}/{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            utc(d.time_ms),
            l.partition,
            l.offset,
            d.error_class.as_str(),
            d.operator,
            d.attempts,
            d.object_key.as_deref().unwrap_or("-"),
            d.sop_instance_uid.as_deref().unwrap_or("-"),
            d.reason.replace(['\t', '\n'], " "),
        ));
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn utc(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (y, m, d) = radstream_operators::dicom::calendar::civil_from_days(seconds.div_euclid(86_400));
    let s = seconds.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", s / 3600, s / 60 % 60, s % 60, ms.rem_euclid(1000))
}

/// A time for `--since`/`--until`: RFC 3339 in UTC (`2026-11-28T07:00:00Z`, seconds and
/// fraction optional) or an age (`90s`, `30m`, `2h`, `7d`) before `now_ms`.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is neither a UTC time like 2026-11-28T07:00:00Z nor an age like 30m, 2h or 7d");
    if text.len() >= 10 && text.as_bytes()[4] == b'-' {
        return parse_utc(text).ok_or_else(bad);
    }
    let unit_ms = match text.chars().last() {
        Some('s') => 1_000,
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => return Err(bad()),
    };
    let amount: i64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    amount.checked_mul(unit_ms).filter(|age| *age >= 0).map(|age| now_ms - age).ok_or_else(bad)
}

/// `YYYY-MM-DD[THH:MM[:SS[.fff]]]Z`.
fn parse_utc(text: &str) -> Option<i64> {
    let body = text.strip_suffix('Z').or_else(|| text.strip_suffix('z'))?;
    let (date, time) = body.split_once(['T', 't']).unwrap_or((body, "00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut t = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next().unwrap_or(Some(0))?);
    let valid = (1..=12).contains(&mo) && (1..=31).contains(&da) && h < 24 && mi < 60 && s < 61;
    let ms = if fraction.is_empty() {
        0
    } else {
        format!("{:0<3}", &fraction[..fraction.len().min(3)]).parse::<i64>().ok()?
    };
    let days = radstream_operators::dicom::calendar::days_from_civil(y, mo as u32, da as u32);
    valid.then_some(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms)
}

#[cfg(test)]
mod tests;

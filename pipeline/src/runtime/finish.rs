//! The finisher: produces each instance's outcome (and dead letter), then acknowledges it so
//! its offset is stored in order.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use radstream_schemas::{DeadLetter, OutcomeEvent, OutcomeKind};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::warn;

use crate::kafka::outputs::SendError;
use crate::runtime::acks::AckResult;
use crate::runtime::shared::{now_ms, Completion, Finish, Shared};

/// Produces each instance's outcome (and dead letter), then acknowledges it.
pub(crate) async fn finisher(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Completion>) {
    let mut pending = FuturesUnordered::new();
    loop {
        tokio::select! {
            c = rx.recv() => match c {
                Some(c) => pending.push(finish_one(shared.clone(), c)),
                None => break,
            },
            Some(()) = pending.next(), if !pending.is_empty() => {}
        }
    }
    while pending.next().await.is_some() {}
}

async fn finish_one(shared: Arc<Shared>, c: Completion) {
    let Some(f) = shared.in_flight.lock().expect("in-flight lock").remove(&c.ticket) else {
        return;
    };
    let m = &shared.metrics;
    let topic = shared.config.kafka.input_topic.clone();
    let original = shared.tracker.lock().expect("tracker lock").message(&f.msg).cloned();
    if original.is_none() {
        // Revoked while in flight: another worker owns the partition now.
        m.in_flight.dec();
        return;
    }
    let (kind, detail) = match &c.finish {
        Finish::Delivered => (OutcomeKind::Delivered, None),
        Finish::Dropped { rule, .. } => (OutcomeKind::Dropped, Some(rule.clone())),
        Finish::DeadLetter { class, .. } => (OutcomeKind::DeadLettered, Some(class.as_str().to_string())),
    };
    let time_ms = now_ms();
    let end_to_end_ms = (time_ms - f.event_time_ms).max(0) as f64;
    let pipeline_ms = f.received_at.elapsed().as_secs_f64() * 1e3;
    let outcome = OutcomeEvent {
        outcome: kind,
        source_topic: topic.clone(),
        source_partition: f.msg.partition,
        source_offset: f.msg.offset,
        object_key: f.object_key.clone(),
        study_instance_uid: f.study_uid.clone(),
        sop_instance_uid: f.sop_uid.clone(),
        branch: c.branch.clone(),
        detail,
        end_to_end_ms,
        pipeline_ms,
        time_ms,
        results: c.results.clone(),
        stages: c.stages.clone(),
    };
    let key = f.study_uid.as_deref();
    // Not sent (the drain ended, or the topic refuses every record and the worker stops): the
    // event stays uncommitted and is read again.
    let left_uncommitted = || m.in_flight.dec();
    match &c.finish {
        Finish::DeadLetter { operator, class, reason, attempts } => {
            let original = original.as_ref().expect("checked above");
            let letter = DeadLetter {
                source_topic: topic.clone(),
                source_partition: f.msg.partition,
                source_offset: f.msg.offset,
                original_value_base64: base64_encode(&original.value),
                original_key: original.key.clone(),
                error_class: *class,
                reason: reason.clone(),
                operator: operator.clone(),
                attempts: *attempts,
                object_key: f.object_key.clone(),
                sop_instance_uid: f.sop_uid.clone(),
                time_ms,
            };
            warn!(operator = %operator, error_class = class.as_str(), object = f.object_key.as_deref().unwrap_or("-"),
                  partition = f.msg.partition, offset = f.msg.offset, %reason, "dead-lettered");
            let outputs = &shared.outputs;
            let (letter_sent, outcome_sent) = tokio::join!(
                produce(&shared, &outputs.dead_letter_topic, key, &letter, without_original),
                produce(&shared, &outputs.outcome_topic, key, &outcome, without_results)
            );
            if letter_sent.and(outcome_sent).is_err() {
                return left_uncommitted();
            }
            m.dead_letters.with_label_values(&[operator, class.as_str()]).inc();
            shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        Finish::Dropped { operator, rule } => {
            if produce(&shared, &shared.outputs.outcome_topic, key, &outcome, without_results).await.is_err() {
                return left_uncommitted();
            }
            m.events_dropped.with_label_values(&[operator, rule]).inc();
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Finish::Delivered => {
            if produce(&shared, &shared.outputs.outcome_topic, key, &outcome, without_results).await.is_err() {
                return left_uncommitted();
            }
            shared.stats.delivered.fetch_add(1, Ordering::Relaxed);
            shared.stats.record_latency(end_to_end_ms, pipeline_ms);
            if let Some(results) = &c.results {
                shared.stats.record_findings(results, f.study_uid.as_deref());
            }
        }
    }
    m.outcomes.with_label_values(&[kind.as_str()]).inc();
    m.end_to_end.with_label_values(&[kind.as_str(), f.priority.as_label()]).observe(end_to_end_ms / 1e3);
    m.pipeline_duration.with_label_values(&[kind.as_str()]).observe(pipeline_ms / 1e3);

    // Store under the tracker lock so offsets of one partition are stored in increasing order.
    let mut tracker = shared.tracker.lock().expect("tracker lock");
    if let AckResult::Commit { partition, offset } = tracker.finish(&f.msg) {
        let mut tpl = TopicPartitionList::new();
        let stored = tpl
            .add_partition_offset(&topic, partition, Offset::Offset(offset))
            .and_then(|()| shared.consumer.store_offsets(&tpl));
        match stored {
            Ok(()) => m.offset_stores.with_label_values(&["ok"]).inc(),
            Err(e) => {
                m.offset_stores.with_label_values(&["error"]).inc();
                warn!(partition, offset, error = %e, "storing the offset failed; the work will be re-read after a rebalance");
            }
        }
    }
    drop(tracker);
    m.in_flight.dec();
}

/// Produces `record` to `topic`. One too large for the topic is sent once more as
/// `smaller(record, its size)` (a record without its optional parts), so that the event still
/// gets its outcome or dead letter; a topic that refuses every record stops the worker
/// ([`Shared::fail`]). `Err` when nothing was sent.
async fn produce<T: Serialize>(
    shared: &Shared,
    topic: &str,
    key: Option<&str>,
    record: &T,
    smaller: fn(&T, usize) -> T,
) -> Result<(), ()> {
    let outputs = &shared.outputs;
    let (bytes, error) = match outputs.send_json(topic, key, record, shared.halt.subscribe()).await {
        Ok(()) => return Ok(()),
        Err(SendError::TooLarge { bytes, error }) => (bytes, error),
        Err(e) => {
            unsent(shared, topic, e);
            return Err(());
        }
    };
    warn!(topic, bytes, %error, "record too large for the output topic; sending it without its optional parts");
    let smaller = smaller(record, bytes);
    outputs.send_json(topic, key, &smaller, shared.halt.subscribe()).await.map_err(|e| unsent(shared, topic, e))
}

fn unsent(shared: &Shared, topic: &str, error: SendError) {
    match error {
        SendError::Permanent(reason) => shared.fail(reason),
        SendError::TooLarge { bytes, error } => shared.fail(format!(
            "a record for topic {topic} is too large even without its optional parts ({bytes} bytes; {error}): \
             raise message.max.bytes in kafka.producer and the topic's max.message.bytes"
        )),
        SendError::Halted => warn!(topic, "drain over before the record was sent; its event stays uncommitted"),
    }
}

/// A dead letter too large for its topic (its original value is the bulk): the same letter
/// without the original value, its reason saying where the value still is.
fn without_original(letter: &DeadLetter, bytes: usize) -> DeadLetter {
    let mut smaller = letter.clone();
    smaller.original_value_base64 = String::new();
    smaller.reason = format!(
        "{}; the original message is left out of this dead letter (with it, {bytes} bytes, it is too large for the \
         dead-letter topic): read it at {}/{}/{} while the topic retains it",
        letter.reason, letter.source_topic, letter.source_partition, letter.source_offset
    );
    smaller
}

/// An outcome too large for its topic (a model's results are the bulk): the same outcome
/// without the results and stage times.
fn without_results(outcome: &OutcomeEvent, _bytes: usize) -> OutcomeEvent {
    OutcomeEvent { results: None, stages: Vec::new(), ..outcome.clone() }
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests;

//! The finisher: produces each instance's outcome (and dead letter), then acknowledges it so
//! its offset is stored in order.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use radstream_schemas::{DeadLetter, OutcomeEvent, OutcomeKind};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::warn;

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
            tokio::join!(
                outputs.send_json(&outputs.dead_letter_topic, key, &letter),
                outputs.send_json(&outputs.outcome_topic, key, &outcome)
            );
            m.dead_letters.with_label_values(&[operator, class.as_str()]).inc();
            shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        Finish::Dropped { operator, rule } => {
            shared.outputs.send_json(&shared.outputs.outcome_topic, key, &outcome).await;
            m.events_dropped.with_label_values(&[operator, rule]).inc();
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Finish::Delivered => {
            shared.outputs.send_json(&shared.outputs.outcome_topic, key, &outcome).await;
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

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

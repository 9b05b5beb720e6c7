//! An operator stage: batches, the operator, and the routing of what it says of each envelope.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use radstream_operators::contract::batching::{gather, Step};
use radstream_operators::contract::Backoff;
use radstream_operators::{Batching, Envelope, Gatherer, Operator, Outcome, Processed, RetryHint};
use radstream_schemas::ErrorClass;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::runtime::shared::{stage_latencies, Completion, Finish, Shared};

/// The wait before an operator's retry of a batch when the failure named none (`Retry { after:
/// None }`): 200 ms doubling to 6.4 s. No jitter: the stage retries its own batch, the envelopes
/// of a batch together; the attempt limit is the config's `runtime.operator_max_attempts`.
const OPERATOR_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(6_400)).without_jitter();

/// Runs one operator: gathers batches (its own batching policy, or the runtime's), routes each
/// envelope by its outcome, retries what the operator marks retryable, dead-letters the rest.
///
/// A panic in the operator (in `process_batch`, or in a blocking task it awaits) is caught:
/// every envelope of the batch is dead-lettered as `internal` naming the operator, and the
/// stage goes on. The panic's message is neither logged nor put in the reason: it may quote
/// patient data (the panic hook of `radstream run` logs only its location).
pub(crate) async fn operator_stage(
    shared: Arc<Shared>,
    kind: &'static str,
    mut op: Box<dyn Operator>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Envelope>>>,
    next: Option<mpsc::Sender<Envelope>>,
    completions: mpsc::UnboundedSender<Completion>,
) {
    let rt = &shared.config.runtime;
    let policy =
        op.batching().unwrap_or_else(|| Batching::new(rt.batch_size, Duration::from_millis(rt.batch_linger_ms)));
    let mut gatherer = Gatherer::new(policy);
    let mut closed = false;
    let router = StageRouter { shared: &shared, kind, next: next.as_ref(), completions: &completions };
    let m = &shared.metrics;
    loop {
        let step = {
            // Gather while holding the stage's queue; sibling tasks wait their turn.
            let mut rx = rx.lock().await;
            gather(&mut gatherer, &mut rx, op.next_wake(), &mut closed).await
        };
        match step {
            Step::Closed => break,
            Step::Wake => {
                let Ok(processed) = AssertUnwindSafe(op.wake()).catch_unwind().await else {
                    // What it held is inside it: those instances can get no outcome here.
                    shared.fail(format!(
                        "operator {kind} panicked while releasing the instances it held; they get no outcome and \
                         their partition stops committing until the worker restarts and reads them again. This is \
                         a bug in radstream: report it with the worker's log"
                    ));
                    return;
                };
                // Held envelopes are not retried: a failure here is final.
                if router.route(processed, rt.operator_max_attempts).await.is_err() {
                    return;
                }
            }
            Step::Batch => {
                let batch = gatherer.take();
                let now = Instant::now();
                let delay = m.operator_queue_delay.with_label_values(&[kind]);
                for e in &batch {
                    delay.observe(now.saturating_duration_since(e.queued_at).as_secs_f64());
                }
                let (live, revoked): (Vec<_>, Vec<_>) = batch.into_iter().partition(|e| shared.is_live(e.ticket));
                revoked.into_iter().for_each(|e| shared.abandon(e.ticket));
                let mut todo = live;
                let mut attempt = 1u32;
                while !todo.is_empty() {
                    router.count("in", todo.len());
                    m.operator_batch_size.with_label_values(&[kind]).observe(todo.len() as f64);
                    let started = Instant::now();
                    let tickets: Vec<(u64, Option<String>)> =
                        todo.iter().map(|e| (e.ticket, e.branch.clone())).collect();
                    let processed = AssertUnwindSafe(op.process_batch(todo)).catch_unwind().await;
                    m.operator_batch_duration.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
                    let Ok(processed) = processed else {
                        router.panicked(tickets, attempt);
                        break;
                    };
                    let Ok((retry, retry_after)) = router.route(processed, attempt).await else { return };
                    if !retry.is_empty() {
                        tokio::time::sleep(retry_after).await;
                    }
                    attempt += 1;
                    todo = retry;
                }
            }
        }
    }
    let held = match AssertUnwindSafe(op.on_close()).catch_unwind().await {
        Ok(held) => held,
        Err(_) => {
            // Whatever it held stays uncommitted, as on any close: it is read again after restart.
            error!(operator = kind, "operator panicked while closing");
            Vec::new()
        }
    };
    if !held.is_empty() {
        info!(operator = kind, held = held.len(), "held instances left uncommitted; they are read again after restart");
    }
    for envelope in held {
        shared.abandon(envelope.ticket);
    }
}

/// Sends a stage's processed envelopes on by their outcome.
struct StageRouter<'a> {
    shared: &'a Shared,
    kind: &'static str,
    next: Option<&'a mpsc::Sender<Envelope>>,
    completions: &'a mpsc::UnboundedSender<Completion>,
}

impl StageRouter<'_> {
    fn count(&self, outcome: &str, n: usize) {
        self.shared.metrics.operator_events.with_label_values(&[self.kind, outcome]).inc_by(n as u64);
    }

    /// The operator panicked on a batch (at `attempt`): every envelope of it is dead-lettered
    /// as `internal`, naming the operator and nothing of the panic.
    fn panicked(&self, tickets: Vec<(u64, Option<String>)>, attempt: u32) {
        let kind = self.kind;
        let n = tickets.len();
        error!(operator = kind, instances = n, attempt, "operator panicked; its batch is dead-lettered as internal");
        self.count("failed", n);
        for (ticket, branch) in tickets {
            let reason = format!(
                "operator {kind} panicked on a batch of {n} instances holding this one (attempt {attempt}); this is a \
                 bug in radstream: report it with the worker's log, then replay the dead letter once it is fixed"
            );
            let finish =
                Finish::DeadLetter { operator: kind.into(), class: ErrorClass::Internal, reason, attempts: attempt };
            let _ = self.completions.send(Completion { ticket, finish, branch, results: None, stages: Vec::new() });
        }
    }

    /// Routes `processed` (at `attempt`); returns the envelopes to retry and how long to wait
    /// first, or `Err` when the next stage is gone.
    async fn route(&self, processed: Vec<Processed>, attempt: u32) -> Result<(Vec<Envelope>, Duration), ()> {
        let (kind, rt) = (self.kind, &self.shared.config.runtime);
        let mut retry = Vec::new();
        let mut retry_after = Duration::ZERO;
        for mut p in processed {
            let ticket = p.envelope.ticket;
            let branch = p.envelope.branch.clone();
            if !matches!(&p.outcome, Outcome::Fail(e) if matches!(e.retry, RetryHint::Retry { .. }) && attempt < rt.operator_max_attempts)
            {
                let spent = p.envelope.queued_at.elapsed().as_secs_f64() * 1000.0;
                p.envelope.stage_ms.push((kind, spent));
            }
            let stages = stage_latencies(&p.envelope);
            match p.outcome {
                Outcome::Forward => {
                    self.count("forwarded", 1);
                    match self.next {
                        Some(next) => {
                            let mut envelope = p.envelope;
                            envelope.queued_at = Instant::now();
                            if next.send(envelope).await.is_err() {
                                error!(operator = kind, "next stage stopped unexpectedly");
                                return Err(());
                            }
                        }
                        None => {
                            let results = p.envelope.results.as_ref().map(|r| r.record());
                            let finish = Finish::Delivered;
                            let _ = self.completions.send(Completion { ticket, finish, branch, results, stages });
                        }
                    }
                }
                Outcome::Drop { rule } => {
                    self.count("dropped", 1);
                    // A drop after the model ran (no findings) still records what it said.
                    let results = p.envelope.results.as_ref().map(|r| r.record());
                    let finish = Finish::Dropped { operator: kind.into(), rule };
                    let _ = self.completions.send(Completion { ticket, finish, branch, results, stages });
                }
                Outcome::Fail(e) => match e.retry {
                    RetryHint::Retry { after } if attempt < rt.operator_max_attempts => {
                        self.count("retried", 1);
                        warn!(operator = kind, object = %p.envelope.object_key(), attempt, reason = %e.reason, "operator failed; retrying");
                        // The operator's own wait, where it named one, wins whole (a server's
                        // Retry-After is not cut to our cap).
                        retry_after = retry_after.max(after.unwrap_or_else(|| OPERATOR_RETRY.delay(attempt, None)));
                        retry.push(p.envelope);
                    }
                    _ => {
                        self.count("failed", 1);
                        let attempts = e.attempts.max(attempt);
                        let finish =
                            Finish::DeadLetter { operator: kind.into(), class: e.class, reason: e.reason, attempts };
                        let _ = self.completions.send(Completion { ticket, finish, branch, results: None, stages });
                    }
                },
            }
        }
        Ok((retry, retry_after))
    }
}

#[cfg(test)]
mod tests;

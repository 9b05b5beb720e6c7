//! What the stages share: the in-flight table, the consumer, the outputs, and the records that
//! travel from the stages to the finisher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use radstream_operators::Envelope;
use radstream_schemas::{ErrorClass, InstanceEvent, ObjectLocation, Priority};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tracing::error;

use crate::config::Config;
use crate::kafka::outputs::Outputs;
use crate::kafka::source::SourceConsumer;
use crate::observe::http::Readiness;
use crate::observe::metrics::Metrics;
use crate::runtime::acks::{AckTracker, MessageRef};
use crate::runtime::stats::RunStats;

/// Everything the stages share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) metrics: Metrics,
    pub(crate) stats: Arc<RunStats>,
    pub(crate) tracker: Arc<Mutex<AckTracker>>,
    pub(crate) in_flight: Mutex<HashMap<u64, InFlight>>,
    pub(crate) consumer: Arc<SourceConsumer>,
    pub(crate) outputs: Outputs,
    /// Turns true on shutdown (the caller's signal) or on a failure: the source stops reading
    /// and every wait of the source ends.
    pub(crate) stop: watch::Sender<bool>,
    /// Turns true once the drain is over (its deadline passed, or nothing is left): retries
    /// of the outputs give up, leaving their events uncommitted.
    pub(crate) halt: watch::Sender<bool>,
    /// Why the worker cannot go on, the first reason given; `/healthz` reports it.
    pub(crate) failure: OnceLock<String>,
    /// What `/healthz` and `/readyz` answer from.
    pub(crate) readiness: Arc<Readiness>,
    /// `runtime.max_in_flight_bytes`, in KiB permits: each fetched object holds its size from
    /// before it is read until its in-flight entry goes.
    pub(crate) held_bytes: Arc<Semaphore>,
}

/// The permits of [`Shared::held_bytes`] that `runtime.max_in_flight_bytes` makes.
pub(crate) fn held_bytes_permits(max_in_flight_bytes: u64) -> usize {
    usize::try_from(max_in_flight_bytes / 1024).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS)
}

/// The permits an object of `size` bytes holds out of `total`: its KiB, at least one, and at
/// most all of them (an object larger than the budget goes alone).
pub(crate) fn permits_for(size: u64, total: usize) -> u32 {
    let kib = usize::try_from(size.div_ceil(1024)).unwrap_or(usize::MAX);
    u32::try_from(kib.clamp(1, total)).unwrap_or(u32::MAX)
}

/// What the runtime keeps about one instance between its read and its outcome.
pub(crate) struct InFlight {
    pub(crate) msg: MessageRef,
    pub(crate) _permit: OwnedSemaphorePermit,
    pub(crate) received_at: Instant,
    pub(crate) event_time_ms: i64,
    pub(crate) priority: Priority,
    pub(crate) object_key: Option<String>,
    pub(crate) study_uid: Option<String>,
    pub(crate) sop_uid: Option<String>,
    /// The object's share of `runtime.max_in_flight_bytes`, once it is fetched.
    pub(crate) held: Option<OwnedSemaphorePermit>,
}

/// How an instance ended.
#[derive(Debug)]
pub(crate) enum Finish {
    Delivered,
    Dropped { operator: String, rule: String },
    DeadLetter { operator: String, class: ErrorClass, reason: String, attempts: u32 },
}

#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) ticket: u64,
    pub(crate) finish: Finish,
    pub(crate) branch: Option<String>,
    /// What a model said of the instance, for the outcome record.
    pub(crate) results: Option<radstream_schemas::ModelResults>,
    /// Time in each stage it reached.
    pub(crate) stages: Vec<radstream_schemas::StageLatency>,
}

/// The envelope's stage times, as the outcome record carries them.
pub(crate) fn stage_latencies(envelope: &Envelope) -> Vec<radstream_schemas::StageLatency> {
    envelope
        .stage_ms
        .iter()
        .map(|&(operator, ms)| radstream_schemas::StageLatency { operator: operator.to_string(), ms })
        .collect()
}

/// One instance to fetch: what the event said, or only where the object is.
pub(crate) struct FetchItem {
    pub(crate) ticket: u64,
    pub(crate) location: ObjectLocation,
    pub(crate) event: Option<InstanceEvent>,
    pub(crate) event_time_ms: i64,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Shared {
    pub(crate) fn is_live(&self, ticket: u64) -> bool {
        let msg = match self.in_flight.lock().expect("in-flight lock").get(&ticket) {
            Some(f) => f.msg,
            None => return false,
        };
        self.tracker.lock().expect("tracker lock").is_live(&msg)
    }

    /// The worker cannot go on (a stage task died, an output topic refuses every record):
    /// `/healthz` turns unhealthy, the source stops, in-flight work drains and
    /// [`run`](crate::runtime::run) returns the (first) reason, so the process exits non-zero.
    /// `reason` must say what is wrong and what to do, and hold nothing about a patient.
    pub(crate) fn fail(&self, reason: String) {
        if self.failure.set(reason.clone()).is_ok() {
            error!(%reason, "the worker cannot go on: stopping");
            self.readiness.fail(reason);
        }
        self.stop.send_replace(true);
    }

    /// Drops an instance whose partition was revoked: no outcome, no commit.
    pub(crate) fn abandon(&self, ticket: u64) {
        if self.in_flight.lock().expect("in-flight lock").remove(&ticket).is_some() {
            self.metrics.in_flight.dec();
        }
    }
}

/// Resolves once `signal` is true (at once if it already is); never while its sender lives
/// and it is false. Select on it beside every wait that a stop must end.
pub(crate) async fn stopped(signal: &mut watch::Receiver<bool>) {
    if signal.wait_for(|&on| on).await.is_err() {
        // The sender is gone with the pipeline: nothing will turn it on.
        std::future::pending::<()>().await;
    }
}

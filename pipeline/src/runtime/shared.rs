//! What the stages share: the in-flight table, the consumer, the outputs, and the records that
//! travel from the stages to the finisher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use radstream_operators::Envelope;
use radstream_schemas::{ErrorClass, InstanceEvent, ObjectLocation, Priority};
use tokio::sync::OwnedSemaphorePermit;

use crate::config::Config;
use crate::kafka::outputs::Outputs;
use crate::kafka::source::SourceConsumer;
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

    /// Drops an instance whose partition was revoked: no outcome, no commit.
    pub(crate) fn abandon(&self, ticket: u64) {
        if self.in_flight.lock().expect("in-flight lock").remove(&ticket).is_some() {
            self.metrics.in_flight.dec();
        }
    }
}

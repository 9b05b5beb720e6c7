//! The metrics operators record, and the one interface they record them through.
//!
//! Operators say *what* happened ([`OperatorMetric`], bounded label values, a number); the
//! runtime owns metric names, help texts, buckets and the exposition. The runtime's
//! implementation of [`Recorder`] (`Metrics` in `pipeline/src/observe/metrics.rs`) finds the
//! metric's row in its one table of every metric and records `value` as that row's kind asks.
//!
//! # Adding a metric to an operator
//!
//! 1. One variant of [`OperatorMetric`] here: its doc says the label names, in order, and how
//!    `value` is used; [`OperatorMetric::labels`] and [`OperatorMetric::value`] say the same in
//!    code, and [`OperatorMetric::ALL`] lists it.
//! 2. One row in the runtime's metric table (`ALL` in `pipeline/src/observe/metrics.rs`): name,
//!    kind, help and the same label names, linked to the variant with
//!    `.recorded_by(OperatorMetric::…)`. The runtime registers it from the row (a histogram
//!    with its latency buckets unless `Metrics::new` registers it with others). Then regenerate
//!    `docs/metrics.md` as that file says.
//!
//! The operator keeps the `Arc<dyn Recorder>` of its [`BuildContext`](super::build::BuildContext)
//! (`ctx.observer`) and calls `record(OperatorMetric::…, &[label values…], value)`. No trait
//! method, no metric name in this crate; the runtime's tests check that every variant has
//! exactly one row, with the same labels and a kind that fits [`OperatorMetric::value`], and
//! that recording it shows in `/metrics`.

use std::sync::Mutex;

/// Every metric an operator records. Label values are bounded (operator kinds, model names from
/// the manifests, fixed reason strings); never a UID or anything about a patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperatorMetric {
    /// One HTTP request to a destination finished. Labels `destination` (`pacs`, `fhir`),
    /// `status_class` (`2xx`, `4xx`, `5xx`, or `error` when no response came). Counter: `value`
    /// is the increment, 1 per request.
    DestinationRequests,
    /// The latency of one HTTP request to a destination. Label `destination`. Histogram:
    /// `value` is the observation, in seconds.
    DestinationRequestDuration,
    /// A request to a destination will be retried. Label `destination`. Counter: `value` is the
    /// increment, 1 per retry.
    DestinationRetries,
    /// An operator instance starts or stops computing on a device. Labels `operator`
    /// (`preprocess`, `infer`), `backend` (`cpu`, `cuda`), `reason` (a bounded value such as
    /// `gpu_unavailable`). Gauge: `value` is the delta: 1 when the instance is built, -1 then 1
    /// when it has to move.
    ComputeBackend,
    /// A model ran once. Label `model` (the manifest's name). Histogram: `value` is the
    /// observation, the number of images of the run.
    ModelBatchImages,
    /// The model's own time of one run, without preprocessing. Label `model`. Histogram:
    /// `value` is the observation, in seconds.
    ModelRunDuration,
    /// An image waited from being queued for a model to its model run. Label `model`.
    /// Histogram: `value` is the observation, in seconds.
    ModelQueueDelay,
    /// A series model ran a series. Labels `model`, `reason` (`expected_count`, `quiet_time`,
    /// `capacity`, `late_instance`). Counter: `value` is the increment, 1 per run.
    SeriesRuns,
    /// The instances a series model holds changed. Label `model`. Gauge: `value` is the delta
    /// (instances added minus instances let go).
    SeriesHeld,
    /// Result objects were built. Label `kind` (`sr`, `seg`, `overlay`). Counter: `value` is the
    /// increment, the number of objects.
    ResultObjects,
}

/// How [`Recorder::record`] uses `value` for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricValue {
    /// Added to a counter: a whole number, never negative.
    Increment,
    /// Added to a gauge: a whole number, negative to take away.
    Delta,
    /// One observation of a histogram.
    Observation,
}

impl OperatorMetric {
    /// Every variant, in declaration order, so that the runtime's tests can check each against
    /// its table. A new variant goes here too (a test checks the order).
    pub const ALL: &'static [OperatorMetric] = &[
        Self::DestinationRequests,
        Self::DestinationRequestDuration,
        Self::DestinationRetries,
        Self::ComputeBackend,
        Self::ModelBatchImages,
        Self::ModelRunDuration,
        Self::ModelQueueDelay,
        Self::SeriesRuns,
        Self::SeriesHeld,
        Self::ResultObjects,
    ];

    /// The label names, in the order [`Recorder::record`] takes their values (as each variant's
    /// doc says). The runtime's table must register the same names in the same order.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            Self::DestinationRequests => &["destination", "status_class"],
            Self::DestinationRequestDuration | Self::DestinationRetries => &["destination"],
            Self::ComputeBackend => &["operator", "backend", "reason"],
            Self::ModelBatchImages | Self::ModelRunDuration | Self::ModelQueueDelay | Self::SeriesHeld => &["model"],
            Self::SeriesRuns => &["model", "reason"],
            Self::ResultObjects => &["kind"],
        }
    }

    /// How `value` is used (as each variant's doc says).
    pub fn value(self) -> MetricValue {
        match self {
            Self::DestinationRequests | Self::DestinationRetries | Self::SeriesRuns | Self::ResultObjects => {
                MetricValue::Increment
            }
            Self::ComputeBackend | Self::SeriesHeld => MetricValue::Delta,
            Self::DestinationRequestDuration
            | Self::ModelBatchImages
            | Self::ModelRunDuration
            | Self::ModelQueueDelay => MetricValue::Observation,
        }
    }
}

/// Where operators record their metrics: the runtime's metrics, or nothing ([`NoopRecorder`]).
pub trait Recorder: Send + Sync {
    /// Records `value` for `metric`, with one value per label of [`OperatorMetric::labels`], in
    /// that order. Never fails: a recorder that cannot record (say, the wrong number of label
    /// values) says so in its log and drops the recording, as a metric must not fail an instance.
    fn record(&self, metric: OperatorMetric, labels: &[&str], value: f64);
}

/// A recorder that records nothing (for tests and tools).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopRecorder;

impl Recorder for NoopRecorder {
    fn record(&self, _: OperatorMetric, _: &[&str], _: f64) {}
}

/// One call of [`Recorder::record`], as [`MemoryRecorder`] keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// What was recorded.
    pub metric: OperatorMetric,
    /// The label values, in the order of [`OperatorMetric::labels`].
    pub labels: Vec<String>,
    /// The value.
    pub value: f64,
}

/// A recorder that keeps every recording, so that tests and tools can read what an operator
/// recorded without a metrics registry.
#[derive(Debug, Default)]
pub struct MemoryRecorder(Mutex<Vec<Recording>>);

impl MemoryRecorder {
    /// Every recording so far, oldest first.
    pub fn recordings(&self) -> Vec<Recording> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The recordings of `metric` so far, oldest first.
    pub fn of(&self, metric: OperatorMetric) -> Vec<Recording> {
        self.recordings().into_iter().filter(|r| r.metric == metric).collect()
    }
}

impl Recorder for MemoryRecorder {
    fn record(&self, metric: OperatorMetric, labels: &[&str], value: f64) {
        let recording = Recording { metric, labels: labels.iter().map(|l| l.to_string()).collect(), value };
        // A test that panicked while holding the lock leaves the list as it was: still readable.
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(recording);
    }
}

#[cfg(test)]
mod tests;

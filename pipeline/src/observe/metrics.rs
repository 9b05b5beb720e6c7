//! Every metric radstream exports, of every process (the worker, `radstream lake`), defined in
//! one place: [`ALL`] lists each with its type, help text and labels, the registration below
//! takes them from there, and `docs/metrics.md` is rendered from it (a test keeps it in step).
//!
//! Operators record their metrics through the contract's one [`Recorder`] method, naming an
//! [`OperatorMetric`]; the row that says `.recorded_by(OperatorMetric::…)` is that metric
//! ([`def_of`]), and [`Metrics`]' one implementation records the value as the row's kind asks.
//! Adding a metric to an operator is one variant there and one row here (see
//! `radstream_operators::contract::observer`): [`Metrics::new`] registers such a row from the
//! table, and needs a line only for a histogram whose buckets are not the latency ones.
//!
//! Names follow Prometheus conventions: the `radstream_` prefix, base units (`_seconds`,
//! `_bytes`) and `_total` for counters. Labels take bounded values only (operator kinds, outcome
//! and error classes, rule names from config, partition numbers); never a UID or anything about
//! a patient.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{
    exponential_buckets, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use radstream_operators::contract::{MetricValue, OperatorMetric, Recorder};
use radstream_schemas::records::{Feedback, Verdict};

use MetricKind::{Counter, Gauge, Histogram as Hist};

/// The Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

impl MetricKind {
    /// The name Prometheus' `# TYPE` line gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }

    /// The kind whose update is the contract's `value` use: a counter's increment, a gauge's
    /// delta, a histogram's observation.
    pub fn of_value(value: MetricValue) -> Self {
        match value {
            MetricValue::Increment => MetricKind::Counter,
            MetricValue::Delta => MetricKind::Gauge,
            MetricValue::Observation => MetricKind::Histogram,
        }
    }
}

/// The process that exports a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// `radstream run` (and `radstream demo`).
    Worker,
    /// `radstream lake`.
    Lake,
}

/// One metric: what dashboards, alerts and the docs refer to.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The full name.
    pub name: &'static str,
    /// Its type.
    pub kind: MetricKind,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Label names, in registration order.
    pub labels: &'static [&'static str],
    /// Who exports it.
    pub process: Process,
    /// The contract's name for it where operators record it (through [`Recorder`]); `None`
    /// where only the runtime does.
    pub recorded_by_operators: Option<OperatorMetric>,
}

impl MetricDef {
    /// This metric, recorded by operators as `metric`.
    const fn recorded_by(self, metric: OperatorMetric) -> MetricDef {
        MetricDef { recorded_by_operators: Some(metric), ..self }
    }
}

const fn worker(
    name: &'static str,
    kind: MetricKind,
    help: &'static str,
    labels: &'static [&'static str],
) -> MetricDef {
    MetricDef { name, kind, help, labels, process: Process::Worker, recorded_by_operators: None }
}

const fn lake(name: &'static str, kind: MetricKind, help: &'static str, labels: &'static [&'static str]) -> MetricDef {
    MetricDef { name, kind, help, labels, process: Process::Lake, recorded_by_operators: None }
}

/// Kafka messages read from the input topic.
pub const EVENTS_RECEIVED: MetricDef =
    worker("radstream_events_received_total", Counter, "Kafka messages read from the input topic", &[]);

/// Envelopes per operator and outcome (`in`, `forwarded`, `dropped`, `failed`, `retried`).
pub const OPERATOR_EVENTS: MetricDef =
    worker("radstream_operator_events_total", Counter, "Envelopes per operator and outcome", &["operator", "outcome"]);

/// Time an operator spent on one batch.
pub const OPERATOR_BATCH_DURATION: MetricDef =
    worker("radstream_operator_batch_duration_seconds", Hist, "Time an operator spent on one batch", &["operator"]);

/// Envelopes per batch handed to an operator.
pub const OPERATOR_BATCH_SIZE: MetricDef =
    worker("radstream_operator_batch_size", Hist, "Envelopes per batch", &["operator"]);

/// Intentional drops by operator and rule.
pub const EVENTS_DROPPED: MetricDef =
    worker("radstream_events_dropped_total", Counter, "Intentional drops by operator and rule", &["operator", "rule"]);

/// Final outcome per instance (`delivered`, `dropped`, `dead_lettered`).
pub const OUTCOMES: MetricDef = worker("radstream_outcomes_total", Counter, "Final outcome per instance", &["outcome"]);

/// Event time (the instance landing) to outcome, by outcome and priority.
pub const END_TO_END: MetricDef = worker(
    "radstream_end_to_end_seconds",
    Hist,
    "Event time to outcome (PACS acknowledgement for delivered instances)",
    &["outcome", "priority"],
);

/// Kafka read to outcome: the pipeline's own share of the latency.
pub const PIPELINE_DURATION: MetricDef =
    worker("radstream_pipeline_duration_seconds", Hist, "Kafka read to outcome", &["outcome"]);

/// Instances read but not yet finished.
pub const IN_FLIGHT: MetricDef =
    worker("radstream_in_flight_instances", Gauge, "Instances read but not yet finished", &[]);

/// Consumer lag per partition, from librdkafka statistics.
pub const CONSUMER_LAG: MetricDef = worker(
    "radstream_consumer_lag_messages",
    Gauge,
    "Consumer lag per partition (librdkafka statistics)",
    &["topic", "partition"],
);

/// Partitions assigned to this process.
pub const ASSIGNED_PARTITIONS: MetricDef =
    worker("radstream_assigned_partitions", Gauge, "Partitions assigned to this process", &[]);

/// Offset stores (an offset becomes committable), by result.
pub const OFFSET_STORES: MetricDef =
    worker("radstream_offset_stores_total", Counter, "Offsets made committable, by result", &["result"]);

/// Object fetch latency.
pub const OBJECT_FETCH_DURATION: MetricDef =
    worker("radstream_object_fetch_duration_seconds", Hist, "Object fetch latency", &[]);

/// Object bytes fetched.
pub const OBJECT_FETCH_BYTES: MetricDef =
    worker("radstream_object_fetch_bytes_total", Counter, "Object bytes fetched", &[]);

/// Requests to destinations (the PACS) by status class.
pub const DESTINATION_REQUESTS: MetricDef = worker(
    "radstream_destination_requests_total",
    Counter,
    "Requests to destinations by status class",
    &["destination", "status_class"],
)
.recorded_by(OperatorMetric::DestinationRequests);

/// Destination request latency.
pub const DESTINATION_REQUEST_DURATION: MetricDef =
    worker("radstream_destination_request_duration_seconds", Hist, "Destination request latency", &["destination"])
        .recorded_by(OperatorMetric::DestinationRequestDuration);

/// Destination request retries.
pub const DESTINATION_RETRIES: MetricDef =
    worker("radstream_destination_retries_total", Counter, "Destination request retries", &["destination"])
        .recorded_by(OperatorMetric::DestinationRetries);

/// Dead letters by stage/operator and error class.
pub const DEAD_LETTERS: MetricDef = worker(
    "radstream_dead_letters_total",
    Counter,
    "Dead letters by operator (or stage) and error class",
    &["operator", "error_class"],
);

/// Operator instances computing on a device (`backend` `cpu` or `cuda`), by why (`reason`:
/// `gpu_started`, `cpu_requested`, `cuda_not_built`, `gpu_unavailable`, `gpu_failed`).
pub const COMPUTE_BACKEND: MetricDef = worker(
    "radstream_compute_backend",
    Gauge,
    "Operator instances computing on a device, by the reason it was chosen",
    &["operator", "backend", "reason"],
)
.recorded_by(OperatorMetric::ComputeBackend);

/// Images per model run, by model.
pub const MODEL_BATCH_IMAGES: MetricDef =
    worker("radstream_model_batch_images", Hist, "Images per model run, by model", &["model"])
        .recorded_by(OperatorMetric::ModelBatchImages);

/// Time of one model run (the model alone), by model.
pub const MODEL_RUN_DURATION: MetricDef = worker(
    "radstream_model_run_duration_seconds",
    Hist,
    "Time of one model run (the model alone), by model",
    &["model"],
)
.recorded_by(OperatorMetric::ModelRunDuration);

/// Time an envelope waited in a stage's queue before its operator took it, by operator.
pub const OPERATOR_QUEUE_DELAY: MetricDef = worker(
    "radstream_operator_queue_delay_seconds",
    Hist,
    "Time an envelope waited in a stage's queue, by operator",
    &["operator"],
);

/// Time an image waited for its model run (queue and batching), by model.
pub const MODEL_QUEUE_DELAY: MetricDef =
    worker("radstream_model_queue_delay_seconds", Hist, "Time an image waited for its model run, by model", &["model"])
        .recorded_by(OperatorMetric::ModelQueueDelay);

/// Result objects the `results` step built, by kind (`sr`, `seg`, `overlay`).
pub const RESULT_OBJECTS: MetricDef =
    worker("radstream_result_objects_total", Counter, "Result objects built for the PACS, by kind", &["kind"])
        .recorded_by(OperatorMetric::ResultObjects);

/// Series runs of a 3D model, by model and why the series was run (`expected_count`,
/// `quiet_time`, `capacity`, `late_instance`).
pub const SERIES_RUNS: MetricDef = worker(
    "radstream_series_runs_total",
    Counter,
    "Series runs of a 3D model, by why the series was run",
    &["model", "reason"],
)
.recorded_by(OperatorMetric::SeriesRuns);

/// Instances a series model holds while their series is incomplete, by model.
pub const SERIES_HELD_INSTANCES: MetricDef =
    worker("radstream_series_held_instances", Gauge, "Instances held while their series is incomplete", &["model"])
        .recorded_by(OperatorMetric::SeriesHeld);

/// 1, labelled with the version.
pub const BUILD_INFO: MetricDef = worker("radstream_build_info", Gauge, "radstream build information", &["version"]);

/// Rows written to lake files, by table (`outcomes`, `feedback`).
pub const LAKE_ROWS: MetricDef = lake("radstream_lake_rows_total", Counter, "Rows written to lake files.", &["table"]);

/// Parquet files uploaded, by table.
pub const LAKE_FILES: MetricDef =
    lake("radstream_lake_files_total", Counter, "Parquet files uploaded to the lake.", &["table"]);

/// Records that are not outcome or feedback JSON, skipped, by table.
pub const LAKE_UNREADABLE: MetricDef =
    lake("radstream_lake_unreadable_records_total", Counter, "Records skipped as unreadable.", &["table"]);

/// Rows read and not yet in an uploaded file.
pub const LAKE_BUFFERED: MetricDef =
    lake("radstream_lake_buffered_rows", Gauge, "Rows read and not yet uploaded.", &[]);

/// Verdicts seen by this process, by model, version and verdict.
pub const MODEL_FEEDBACK: MetricDef =
    lake("radstream_model_feedback_total", Counter, "Verdicts on findings seen.", &["model", "version", "verdict"]);

/// Accepted verdicts over all verdicts seen by this process since it started, by model and
/// version.
pub const MODEL_AGREEMENT: MetricDef = lake(
    "radstream_model_agreement_ratio",
    Gauge,
    "Accepted verdicts over all verdicts seen by this process since it started.",
    &["model", "version"],
);

/// Every metric of every process, in the order `docs/metrics.md` lists them.
pub const ALL: &[MetricDef] = &[
    EVENTS_RECEIVED,
    OPERATOR_EVENTS,
    OPERATOR_BATCH_DURATION,
    OPERATOR_BATCH_SIZE,
    EVENTS_DROPPED,
    OUTCOMES,
    END_TO_END,
    PIPELINE_DURATION,
    IN_FLIGHT,
    CONSUMER_LAG,
    ASSIGNED_PARTITIONS,
    OFFSET_STORES,
    OBJECT_FETCH_DURATION,
    OBJECT_FETCH_BYTES,
    DESTINATION_REQUESTS,
    DESTINATION_REQUEST_DURATION,
    DESTINATION_RETRIES,
    DEAD_LETTERS,
    COMPUTE_BACKEND,
    MODEL_BATCH_IMAGES,
    MODEL_RUN_DURATION,
    OPERATOR_QUEUE_DELAY,
    MODEL_QUEUE_DELAY,
    RESULT_OBJECTS,
    SERIES_RUNS,
    SERIES_HELD_INSTANCES,
    BUILD_INFO,
    LAKE_ROWS,
    LAKE_FILES,
    LAKE_UNREADABLE,
    LAKE_BUFFERED,
    MODEL_FEEDBACK,
    MODEL_AGREEMENT,
];

/// The row of the metric operators record as `metric`: the one in [`ALL`] linked to it with
/// `.recorded_by`. `None` only for a variant without a row, which this file's tests rule out.
pub fn def_of(metric: OperatorMetric) -> Option<&'static MetricDef> {
    ALL.iter().find(|def| def.recorded_by_operators == Some(metric))
}

/// A registered labelled metric, of any kind, as [`Metrics`] records into it for operators.
#[derive(Clone)]
enum Handle {
    Counter(IntCounterVec),
    Gauge(IntGaugeVec),
    FloatGauge(GaugeVec),
    Histogram(HistogramVec),
}

/// Where [`Recorder::record`] puts one [`OperatorMetric`]: its row and its collector.
#[derive(Clone)]
struct Target {
    def: &'static MetricDef,
    handle: Handle,
}

/// Registers metrics built from their [`MetricDef`]. The definitions are constants, so a
/// failure here is a bug in this file, found by its tests, never by input.
#[derive(Default)]
struct Registrar {
    registry: Registry,
    /// Every labelled metric registered so far, by name, for [`Registrar::operator_targets`].
    handles: RefCell<HashMap<&'static str, Handle>>,
}

impl Registrar {
    fn register<M: Collector + Clone + 'static>(&self, def: &MetricDef, metric: prometheus::Result<M>) -> M {
        let metric = metric.unwrap_or_else(|e| panic!("{}: invalid definition: {e}", def.name));
        if let Err(e) = self.registry.register(Box::new(metric.clone())) {
            panic!("{}: registered twice: {e}", def.name);
        }
        metric
    }

    fn opts(def: &MetricDef) -> Opts {
        Opts::new(def.name, def.help)
    }

    fn counter(&self, def: &MetricDef) -> IntCounter {
        self.register(def, IntCounter::with_opts(Self::opts(def)))
    }

    fn keep<M: Clone>(&self, def: &MetricDef, metric: M, handle: fn(M) -> Handle) -> M {
        self.handles.borrow_mut().insert(def.name, handle(metric.clone()));
        metric
    }

    fn counter_vec(&self, def: &MetricDef) -> IntCounterVec {
        self.keep(def, self.register(def, IntCounterVec::new(Self::opts(def), def.labels)), Handle::Counter)
    }

    fn gauge(&self, def: &MetricDef) -> IntGauge {
        self.register(def, IntGauge::with_opts(Self::opts(def)))
    }

    fn gauge_vec(&self, def: &MetricDef) -> IntGaugeVec {
        self.keep(def, self.register(def, IntGaugeVec::new(Self::opts(def), def.labels)), Handle::Gauge)
    }

    fn float_gauge_vec(&self, def: &MetricDef) -> GaugeVec {
        self.keep(def, self.register(def, GaugeVec::new(Self::opts(def), def.labels)), Handle::FloatGauge)
    }

    fn histogram(&self, def: &MetricDef, buckets: Vec<f64>) -> Histogram {
        self.register(def, Histogram::with_opts(HistogramOpts::new(def.name, def.help).buckets(buckets)))
    }

    fn histogram_vec(&self, def: &MetricDef, buckets: Vec<f64>) -> HistogramVec {
        let opts = HistogramOpts::new(def.name, def.help).buckets(buckets);
        self.keep(def, self.register(def, HistogramVec::new(opts, def.labels)), Handle::Histogram)
    }

    /// Where each metric operators record goes. The rows of [`ALL`] recorded by operators and
    /// not registered yet are registered here by their kind (histograms with
    /// [`latency_buckets`]), so that such a metric needs no code beyond its row.
    fn operator_targets(&self, process: Process) -> HashMap<OperatorMetric, Target> {
        let mut targets = HashMap::new();
        for def in ALL.iter().filter(|def| def.process == process) {
            let Some(metric) = def.recorded_by_operators else { continue };
            let registered = self.handles.borrow().get(def.name).cloned();
            let handle = match registered {
                Some(handle) => handle,
                None => match def.kind {
                    Counter => Handle::Counter(self.counter_vec(def)),
                    Gauge => Handle::Gauge(self.gauge_vec(def)),
                    Hist => Handle::Histogram(self.histogram_vec(def, latency_buckets())),
                },
            };
            targets.insert(metric, Target { def, handle });
        }
        targets
    }
}

/// The text exposition of every metric in `registry`.
fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    // Encoding into a Vec cannot fail, and the text format is UTF-8.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Handles to every metric of the worker, registered in one registry: those the runtime
/// records as fields, those operators record behind the [`Recorder`] implementation.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// The metrics operators record, by the contract's name.
    recorded: Arc<HashMap<OperatorMetric, Target>>,
    /// See [`EVENTS_RECEIVED`].
    pub events_received: IntCounter,
    /// See [`OPERATOR_EVENTS`].
    pub operator_events: IntCounterVec,
    /// See [`OPERATOR_BATCH_DURATION`].
    pub operator_batch_duration: HistogramVec,
    /// See [`OPERATOR_BATCH_SIZE`].
    pub operator_batch_size: HistogramVec,
    /// See [`EVENTS_DROPPED`].
    pub events_dropped: IntCounterVec,
    /// See [`OUTCOMES`].
    pub outcomes: IntCounterVec,
    /// See [`END_TO_END`].
    pub end_to_end: HistogramVec,
    /// See [`PIPELINE_DURATION`].
    pub pipeline_duration: HistogramVec,
    /// See [`IN_FLIGHT`].
    pub in_flight: IntGauge,
    /// See [`CONSUMER_LAG`].
    pub consumer_lag: IntGaugeVec,
    /// See [`ASSIGNED_PARTITIONS`].
    pub assigned_partitions: IntGauge,
    /// See [`OFFSET_STORES`].
    pub offset_stores: IntCounterVec,
    /// See [`OBJECT_FETCH_DURATION`].
    pub object_fetch_duration: Histogram,
    /// See [`OBJECT_FETCH_BYTES`].
    pub object_fetch_bytes: IntCounter,
    /// See [`DEAD_LETTERS`].
    pub dead_letters: IntCounterVec,
    /// See [`OPERATOR_QUEUE_DELAY`].
    pub operator_queue_delay: HistogramVec,
}

fn latency_buckets() -> Vec<f64> {
    // 1 ms .. 60 s, doubling, with bounds exactly at the SLO thresholds (2 s and 30 s), so the
    // SLO rules (infra/prometheus) read `le="2"` and `le="30"` without interpolation.
    vec![0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0]
}

fn queue_buckets() -> Vec<f64> {
    // 50 µs .. ~3.3 s: the batcher's delays are in milliseconds. The layout is constant and valid.
    exponential_buckets(0.000_05, 2.0, 17).unwrap_or_default()
}

impl Metrics {
    /// Creates and registers every metric of the worker.
    pub fn new() -> Self {
        let r = Registrar::default();
        let build_info = r.gauge_vec(&BUILD_INFO);
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let small = || vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
        // Metrics operators record whose buckets are not the default; the others are
        // registered by `operator_targets`.
        r.histogram_vec(&MODEL_BATCH_IMAGES, small());
        r.histogram_vec(&MODEL_QUEUE_DELAY, queue_buckets());
        Self {
            events_received: r.counter(&EVENTS_RECEIVED),
            operator_events: r.counter_vec(&OPERATOR_EVENTS),
            operator_batch_duration: r.histogram_vec(&OPERATOR_BATCH_DURATION, latency_buckets()),
            operator_batch_size: r.histogram_vec(&OPERATOR_BATCH_SIZE, small()),
            events_dropped: r.counter_vec(&EVENTS_DROPPED),
            outcomes: r.counter_vec(&OUTCOMES),
            end_to_end: r.histogram_vec(&END_TO_END, latency_buckets()),
            pipeline_duration: r.histogram_vec(&PIPELINE_DURATION, latency_buckets()),
            in_flight: r.gauge(&IN_FLIGHT),
            consumer_lag: r.gauge_vec(&CONSUMER_LAG),
            assigned_partitions: r.gauge(&ASSIGNED_PARTITIONS),
            offset_stores: r.counter_vec(&OFFSET_STORES),
            object_fetch_duration: r.histogram(&OBJECT_FETCH_DURATION, latency_buckets()),
            object_fetch_bytes: r.counter(&OBJECT_FETCH_BYTES),
            dead_letters: r.counter_vec(&DEAD_LETTERS),
            operator_queue_delay: r.histogram_vec(&OPERATOR_QUEUE_DELAY, queue_buckets()),
            recorded: Arc::new(r.operator_targets(Process::Worker)),
            registry: r.registry,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder for Metrics {
    /// Records into the collector of `metric`'s row as the row's kind asks: a counter adds the
    /// increment, a gauge the delta, a histogram observes the value. A recording that does not
    /// fit (a metric this process does not export, the wrong number of label values, a counter
    /// going down, a value that is not a number) is dropped with a warning that names the
    /// metric and nothing else: a metric never fails an instance, and label values stay out of
    /// the log.
    fn record(&self, metric: OperatorMetric, labels: &[&str], value: f64) {
        let Some(Target { def, handle }) = self.recorded.get(&metric) else {
            tracing::warn!(metric = ?metric, "an operator recorded a metric this process does not export; dropped");
            return;
        };
        let recorded = match (def.kind, handle) {
            (Counter, Handle::Counter(vec)) => match whole(value).and_then(|n| u64::try_from(n).ok()) {
                Some(n) => vec.get_metric_with_label_values(labels).map(|c| c.inc_by(n)).map_err(|_| LABELS),
                None => Err("a counter's increment must be a whole number, not negative"),
            },
            (Gauge, Handle::Gauge(vec)) => match whole(value) {
                Some(n) => vec.get_metric_with_label_values(labels).map(|g| g.add(n)).map_err(|_| LABELS),
                None => Err("a gauge's delta must be a whole number"),
            },
            (Gauge, Handle::FloatGauge(vec)) => finite(value)
                .and_then(|v| vec.get_metric_with_label_values(labels).map(|g| g.add(v)).map_err(|_| LABELS)),
            (Hist, Handle::Histogram(vec)) => finite(value)
                .and_then(|v| vec.get_metric_with_label_values(labels).map(|h| h.observe(v)).map_err(|_| LABELS)),
            _ => Err("the metric is registered as another kind than its definition says"),
        };
        if let Err(why) = recorded {
            tracing::warn!(metric = def.name, why, "an operator's recording was dropped");
        }
    }
}

/// Why a recording with the wrong number of label values was dropped (the only error
/// `get_metric_with_label_values` returns for a registered metric).
const LABELS: &str = "the label values do not match the metric's labels";

/// `value`, if it is a number (a histogram's sum or a gauge would stay NaN or infinite for good).
fn finite(value: f64) -> Result<f64, &'static str> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err("the value is not a finite number")
    }
}

/// `value` as a whole number, if it is one (counters and integer gauges count whole things).
fn whole(value: f64) -> Option<i64> {
    let whole = value.is_finite() && value.fract() == 0.0 && value.abs() < i64::MAX as f64;
    whole.then_some(value as i64)
}

/// The lake's metrics, in a registry of its own (the lake is its own process).
#[derive(Clone)]
pub struct LakeMetrics {
    registry: Registry,
    /// See [`LAKE_ROWS`].
    pub rows: IntCounterVec,
    /// See [`LAKE_FILES`].
    pub files: IntCounterVec,
    /// See [`LAKE_UNREADABLE`].
    pub unreadable: IntCounterVec,
    /// See [`LAKE_BUFFERED`].
    pub buffered: IntGauge,
    feedback: IntCounterVec,
    agreement: GaugeVec,
    verdicts: Arc<Mutex<VerdictCounts>>,
}

/// Accepted and all verdicts, by model and version.
type VerdictCounts = HashMap<(String, String), (u64, u64)>;

impl std::fmt::Debug for LakeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LakeMetrics")
    }
}

impl Default for LakeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl LakeMetrics {
    /// Registers every lake metric.
    pub fn new() -> Self {
        let r = Registrar::default();
        Self {
            rows: r.counter_vec(&LAKE_ROWS),
            files: r.counter_vec(&LAKE_FILES),
            unreadable: r.counter_vec(&LAKE_UNREADABLE),
            feedback: r.counter_vec(&MODEL_FEEDBACK),
            buffered: r.gauge(&LAKE_BUFFERED),
            agreement: r.float_gauge_vec(&MODEL_AGREEMENT),
            verdicts: Default::default(),
            registry: r.registry,
        }
    }

    /// Counts one verdict and updates its model version's agreement ratio.
    pub fn verdict(&self, f: &Feedback) {
        self.feedback.with_label_values(&[&f.model, &f.version, f.verdict.as_str()]).inc();
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        let (accepted, all) = verdicts.entry((f.model.clone(), f.version.clone())).or_default();
        *all += 1;
        if f.verdict == Verdict::Accept {
            *accepted += 1;
        }
        self.agreement.with_label_values(&[&f.model, &f.version]).set(*accepted as f64 / *all as f64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

#[cfg(test)]
mod tests;

//! Every metric radstream exports, defined in one place.
//!
//! Names follow Prometheus conventions: the `radstream_` prefix, base units (`_seconds`,
//! `_bytes`) and `_total` for counters. Labels take bounded values only (operator kinds, outcome
//! and error classes, rule names from config, partition numbers); never a UID or anything about
//! a patient.

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Metric names, so dashboards, alerts and docs can refer to one list.
pub mod names {
    /// Kafka messages read from the input topic.
    pub const EVENTS_RECEIVED: &str = "radstream_events_received_total";
    /// Envelopes per operator and outcome (`in`, `forwarded`, `dropped`, `failed`, `retried`).
    pub const OPERATOR_EVENTS: &str = "radstream_operator_events_total";
    /// Time an operator spent on one batch.
    pub const OPERATOR_BATCH_DURATION: &str = "radstream_operator_batch_duration_seconds";
    /// Envelopes per batch handed to an operator.
    pub const OPERATOR_BATCH_SIZE: &str = "radstream_operator_batch_size";
    /// Intentional drops by operator and rule.
    pub const EVENTS_DROPPED: &str = "radstream_events_dropped_total";
    /// Final outcome per instance (`delivered`, `dropped`, `dead_lettered`).
    pub const OUTCOMES: &str = "radstream_outcomes_total";
    /// Event time (the instance landing) to outcome, by outcome and priority.
    pub const END_TO_END: &str = "radstream_end_to_end_seconds";
    /// Kafka read to outcome: the pipeline's own share of the latency.
    pub const PIPELINE_DURATION: &str = "radstream_pipeline_duration_seconds";
    /// Instances read but not yet finished.
    pub const IN_FLIGHT: &str = "radstream_in_flight_instances";
    /// Consumer lag per partition, from librdkafka statistics.
    pub const CONSUMER_LAG: &str = "radstream_consumer_lag_messages";
    /// Partitions assigned to this process.
    pub const ASSIGNED_PARTITIONS: &str = "radstream_assigned_partitions";
    /// Offset stores (an offset becomes committable), by result.
    pub const OFFSET_STORES: &str = "radstream_offset_stores_total";
    /// Object fetch latency.
    pub const OBJECT_FETCH_DURATION: &str = "radstream_object_fetch_duration_seconds";
    /// Object bytes fetched.
    pub const OBJECT_FETCH_BYTES: &str = "radstream_object_fetch_bytes_total";
    /// Requests to destinations (the PACS) by status class.
    pub const DESTINATION_REQUESTS: &str = "radstream_destination_requests_total";
    /// Destination request latency.
    pub const DESTINATION_REQUEST_DURATION: &str = "radstream_destination_request_duration_seconds";
    /// Destination request retries.
    pub const DESTINATION_RETRIES: &str = "radstream_destination_retries_total";
    /// Dead letters by stage/operator and error class.
    pub const DEAD_LETTERS: &str = "radstream_dead_letters_total";
    /// Operator instances computing on a device (`backend` `cpu` or `cuda`), by why (`reason`:
    /// `gpu_started`, `cpu_requested`, `cuda_not_built`, `gpu_unavailable`, `gpu_failed`).
    pub const COMPUTE_BACKEND: &str = "radstream_compute_backend";
    /// Images per model run, by model.
    pub const MODEL_BATCH_IMAGES: &str = "radstream_model_batch_images";
    /// Time of one model run (the model alone), by model.
    pub const MODEL_RUN_DURATION: &str = "radstream_model_run_duration_seconds";
    /// Time an envelope waited in a stage's queue before its operator took it, by operator.
    pub const OPERATOR_QUEUE_DELAY: &str = "radstream_operator_queue_delay_seconds";
    /// Time an image waited for its model run (queue and batching), by model.
    pub const MODEL_QUEUE_DELAY: &str = "radstream_model_queue_delay_seconds";
    /// Series runs of a 3D model, by model and why the series was run (`expected_count`,
    /// `quiet_time`, `capacity`, `late_instance`).
    pub const SERIES_RUNS: &str = "radstream_series_runs_total";
    /// Instances a series model holds while their series is incomplete, by model.
    pub const SERIES_HELD_INSTANCES: &str = "radstream_series_held_instances";
    /// Result objects the `results` step built, by kind (`sr`, `seg`, `overlay`).
    pub const RESULT_OBJECTS: &str = "radstream_result_objects_total";
    /// 1, labelled with the version.
    pub const BUILD_INFO: &str = "radstream_build_info";
}

/// Handles to every metric, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// See [`names::EVENTS_RECEIVED`].
    pub events_received: IntCounter,
    /// See [`names::OPERATOR_EVENTS`].
    pub operator_events: IntCounterVec,
    /// See [`names::OPERATOR_BATCH_DURATION`].
    pub operator_batch_duration: HistogramVec,
    /// See [`names::OPERATOR_BATCH_SIZE`].
    pub operator_batch_size: HistogramVec,
    /// See [`names::EVENTS_DROPPED`].
    pub events_dropped: IntCounterVec,
    /// See [`names::OUTCOMES`].
    pub outcomes: IntCounterVec,
    /// See [`names::END_TO_END`].
    pub end_to_end: HistogramVec,
    /// See [`names::PIPELINE_DURATION`].
    pub pipeline_duration: HistogramVec,
    /// See [`names::IN_FLIGHT`].
    pub in_flight: IntGauge,
    /// See [`names::CONSUMER_LAG`].
    pub consumer_lag: IntGaugeVec,
    /// See [`names::ASSIGNED_PARTITIONS`].
    pub assigned_partitions: IntGauge,
    /// See [`names::OFFSET_STORES`].
    pub offset_stores: IntCounterVec,
    /// See [`names::OBJECT_FETCH_DURATION`].
    pub object_fetch_duration: Histogram,
    /// See [`names::OBJECT_FETCH_BYTES`].
    pub object_fetch_bytes: IntCounter,
    /// See [`names::DESTINATION_REQUESTS`].
    pub destination_requests: IntCounterVec,
    /// See [`names::DESTINATION_REQUEST_DURATION`].
    pub destination_request_duration: HistogramVec,
    /// See [`names::DESTINATION_RETRIES`].
    pub destination_retries: IntCounterVec,
    /// See [`names::DEAD_LETTERS`].
    pub dead_letters: IntCounterVec,
    /// See [`names::COMPUTE_BACKEND`].
    pub compute_backend: IntGaugeVec,
    /// See [`names::MODEL_BATCH_IMAGES`].
    pub model_batch_images: HistogramVec,
    /// See [`names::MODEL_RUN_DURATION`].
    pub model_run_duration: HistogramVec,
    /// See [`names::OPERATOR_QUEUE_DELAY`].
    pub operator_queue_delay: HistogramVec,
    /// See [`names::MODEL_QUEUE_DELAY`].
    pub model_queue_delay: HistogramVec,
    /// See [`names::SERIES_RUNS`].
    pub series_runs: IntCounterVec,
    /// See [`names::RESULT_OBJECTS`].
    pub result_objects: IntCounterVec,
    /// See [`names::SERIES_HELD_INSTANCES`].
    pub series_held: IntGaugeVec,
}

fn latency_buckets() -> Vec<f64> {
    // 1 ms .. 60 s, doubling, with bounds exactly at the SLO thresholds (2 s and 30 s), so the
    // SLO rules (infra/prometheus) read `le="2"` and `le="30"` without interpolation.
    vec![0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0]
}

fn queue_buckets() -> Vec<f64> {
    // 50 µs .. ~3.3 s: the batcher's delays are in milliseconds.
    exponential_buckets(0.000_05, 2.0, 17).expect("static bucket layout")
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("metric definitions are static and valid");
                registry.register(Box::new(m.clone())).expect("each metric is registered once");
                m
            }};
        }
        use names::*;
        let h = |name: &str, help: &str| HistogramOpts::new(name, help).buckets(latency_buckets());
        let build_info = reg!(IntGaugeVec::new(Opts::new(BUILD_INFO, "radstream build information"), &["version"]));
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Self {
            events_received: reg!(IntCounter::new(EVENTS_RECEIVED, "Kafka messages read from the input topic")),
            operator_events: reg!(IntCounterVec::new(
                Opts::new(OPERATOR_EVENTS, "Envelopes per operator and outcome"),
                &["operator", "outcome"]
            )),
            operator_batch_duration: reg!(HistogramVec::new(
                h(OPERATOR_BATCH_DURATION, "Time an operator spent on one batch"),
                &["operator"]
            )),
            operator_batch_size: reg!(HistogramVec::new(
                HistogramOpts::new(OPERATOR_BATCH_SIZE, "Envelopes per batch")
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
                &["operator"]
            )),
            events_dropped: reg!(IntCounterVec::new(
                Opts::new(EVENTS_DROPPED, "Intentional drops by operator and rule"),
                &["operator", "rule"]
            )),
            outcomes: reg!(IntCounterVec::new(Opts::new(OUTCOMES, "Final outcome per instance"), &["outcome"])),
            end_to_end: reg!(HistogramVec::new(
                h(END_TO_END, "Event time to outcome (PACS acknowledgement for delivered instances)"),
                &["outcome", "priority"]
            )),
            pipeline_duration: reg!(HistogramVec::new(h(PIPELINE_DURATION, "Kafka read to outcome"), &["outcome"])),
            in_flight: reg!(IntGauge::new(IN_FLIGHT, "Instances read but not yet finished")),
            consumer_lag: reg!(IntGaugeVec::new(
                Opts::new(CONSUMER_LAG, "Consumer lag per partition (librdkafka statistics)"),
                &["topic", "partition"]
            )),
            assigned_partitions: reg!(IntGauge::new(ASSIGNED_PARTITIONS, "Partitions assigned to this process")),
            offset_stores: reg!(IntCounterVec::new(
                Opts::new(OFFSET_STORES, "Offsets made committable, by result"),
                &["result"]
            )),
            object_fetch_duration: reg!(Histogram::with_opts(h(OBJECT_FETCH_DURATION, "Object fetch latency"))),
            object_fetch_bytes: reg!(IntCounter::new(OBJECT_FETCH_BYTES, "Object bytes fetched")),
            destination_requests: reg!(IntCounterVec::new(
                Opts::new(DESTINATION_REQUESTS, "Requests to destinations by status class"),
                &["destination", "status_class"]
            )),
            destination_request_duration: reg!(HistogramVec::new(
                h(DESTINATION_REQUEST_DURATION, "Destination request latency"),
                &["destination"]
            )),
            destination_retries: reg!(IntCounterVec::new(
                Opts::new(DESTINATION_RETRIES, "Destination request retries"),
                &["destination"]
            )),
            dead_letters: reg!(IntCounterVec::new(
                Opts::new(DEAD_LETTERS, "Dead letters by operator (or stage) and error class"),
                &["operator", "error_class"]
            )),
            compute_backend: reg!(IntGaugeVec::new(
                Opts::new(COMPUTE_BACKEND, "Operator instances computing on a device, by the reason it was chosen"),
                &["operator", "backend", "reason"]
            )),
            model_batch_images: reg!(HistogramVec::new(
                HistogramOpts::new(MODEL_BATCH_IMAGES, "Images per model run, by model")
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
                &["model"]
            )),
            model_run_duration: reg!(HistogramVec::new(
                h(MODEL_RUN_DURATION, "Time of one model run (the model alone), by model"),
                &["model"]
            )),
            operator_queue_delay: reg!(HistogramVec::new(
                HistogramOpts::new(OPERATOR_QUEUE_DELAY, "Time an envelope waited in a stage's queue, by operator")
                    .buckets(queue_buckets()),
                &["operator"]
            )),
            model_queue_delay: reg!(HistogramVec::new(
                HistogramOpts::new(MODEL_QUEUE_DELAY, "Time an image waited for its model run, by model")
                    .buckets(queue_buckets()),
                &["model"]
            )),
            result_objects: reg!(IntCounterVec::new(
                Opts::new(RESULT_OBJECTS, "Result objects built for the PACS, by kind"),
                &["kind"]
            )),
            series_runs: reg!(IntCounterVec::new(
                Opts::new(SERIES_RUNS, "Series runs of a 3D model, by why the series was run"),
                &["model", "reason"]
            )),
            series_held: reg!(IntGaugeVec::new(
                Opts::new(SERIES_HELD_INSTANCES, "Instances held while their series is incomplete"),
                &["model"]
            )),
            registry,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl radstream_operators::config::OperatorObserver for Metrics {
    fn destination_request(&self, destination: &str, status_class: &'static str, seconds: f64) {
        self.destination_requests.with_label_values(&[destination, status_class]).inc();
        self.destination_request_duration.with_label_values(&[destination]).observe(seconds);
    }

    fn destination_retry(&self, destination: &str) {
        self.destination_retries.with_label_values(&[destination]).inc();
    }

    fn compute_backend(&self, operator: &str, backend: &'static str, reason: &'static str, change: i64) {
        self.compute_backend.with_label_values(&[operator, backend, reason]).add(change);
    }

    fn model_run(&self, model: &str, images: usize, seconds: f64) {
        self.model_batch_images.with_label_values(&[model]).observe(images as f64);
        self.model_run_duration.with_label_values(&[model]).observe(seconds);
    }

    fn model_queue_delay(&self, model: &str, seconds: f64) {
        self.model_queue_delay.with_label_values(&[model]).observe(seconds);
    }

    fn series_run(&self, model: &str, reason: &'static str) {
        self.series_runs.with_label_values(&[model, reason]).inc();
    }

    fn result_objects(&self, kind: &'static str, count: u64) {
        self.result_objects.with_label_values(&[kind]).inc_by(count);
    }

    fn series_held(&self, model: &str, change: i64) {
        self.series_held.with_label_values(&[model]).add(change);
    }
}

//! The observations operators report to the runtime's metrics.

/// Observations an operator reports to the runtime's metrics. The runtime owns metric names;
/// operators only say what happened.
pub trait OperatorObserver: Send + Sync {
    /// One HTTP request to a destination finished: `status_class` is `2xx`, `4xx`, `5xx` or
    /// `error` (no response), `seconds` its latency.
    fn destination_request(&self, destination: &str, status_class: &'static str, seconds: f64);

    /// A request will be retried.
    fn destination_retry(&self, destination: &str);

    /// An operator instance starts (`change` 1) or stops (`change` -1) computing on `backend`
    /// (`cpu` or `cuda`) for `reason` (a bounded value such as `gpu_unavailable`): 1 when it is
    /// built, -1 then 1 when it has to move. Observers that do not export it ignore it.
    fn compute_backend(&self, _operator: &str, _backend: &'static str, _reason: &'static str, _change: i64) {}

    /// A model ran once on `images` images in `seconds` (the model's own time, without
    /// preprocessing). `model` is the manifest's name, a bounded label.
    fn model_run(&self, _model: &str, _images: usize, _seconds: f64) {}

    /// An image waited `seconds` from being queued for `model` to its model run.
    fn model_queue_delay(&self, _model: &str, _seconds: f64) {}

    /// A series model ran a series, for `reason` (`expected_count`, `quiet_time`, `capacity`,
    /// `late_instance`).
    fn series_run(&self, _model: &str, _reason: &'static str) {}

    /// The instances a series model holds changed by `change`.
    fn series_held(&self, _model: &str, _change: i64) {}

    /// `count` result objects of `kind` (`sr`, `seg`, `overlay`) were built.
    fn result_objects(&self, _kind: &'static str, _count: u64) {}
}

/// An observer that records nothing (for tests and tools).
#[derive(Debug, Default)]
pub struct NoopObserver;

impl OperatorObserver for NoopObserver {
    fn destination_request(&self, _: &str, _: &'static str, _: f64) {}
    fn destination_retry(&self, _: &str) {}
}

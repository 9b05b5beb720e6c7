//! Operator configuration: the registry of operator kinds, validation errors and build context.

use std::sync::Arc;

use serde::Deserialize;

use crate::alert::AlertConfig;
use crate::export::ExportConfig;
use crate::fhir::FhirConfig;
use crate::infer::InferConfig;
use crate::key_object::KeyObjectConfig;
use crate::preprocess::PreprocessConfig;
use crate::pseudonymize::PseudonymizeConfig;
use crate::relink::RelinkConfig;
use crate::results::ResultsConfig;
use crate::route::RouteConfig;
use crate::services::{ObjectWriter, TableReader, TopicWriter};
use crate::stow::StowConfig;
use crate::Operator;

/// A configuration problem: the key that is wrong and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// Dotted path of the key, for example `operators[1].url`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl ConfigError {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { key: key.into(), problem: problem.into() }
    }

    /// Prefixes the key with the path of the enclosing section.
    pub fn within(mut self, prefix: &str) -> Self {
        self.key = if self.key.is_empty() { prefix.to_string() } else { format!("{prefix}.{}", self.key) };
        self
    }
}

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

/// What an operator may use while it is built.
#[derive(Clone)]
pub struct BuildContext {
    /// Where operators report their observations.
    pub observer: Arc<dyn OperatorObserver>,
    /// Kafka topics for side outputs; `None` where the operator runs without a broker (the
    /// `deid` command, unit tests).
    pub topics: Option<Arc<dyn TopicWriter>>,
    /// The object store for side outputs; `None` where there is none.
    pub objects: Option<Arc<dyn ObjectWriter>>,
    /// Readers of compacted topics; `None` without a broker.
    pub tables: Option<Arc<dyn TableReader>>,
}

impl Default for BuildContext {
    fn default() -> Self {
        Self { observer: Arc::new(NoopObserver), topics: None, objects: None, tables: None }
    }
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext").finish_non_exhaustive()
    }
}

/// One entry of the `[[operators]]` chain, selected by its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OperatorConfig {
    /// Rules on DICOM attributes choose a branch or drop the instance.
    Route(RouteConfig),
    /// PS3.15 Annex E de-identification with keyed pseudonyms and re-identification links.
    Pseudonymize(PseudonymizeConfig),
    /// Restores original UIDs, patient and study on results (trusted side only).
    Relink(RelinkConfig),
    /// Decodes the pixel data and attaches the model's input tensor.
    Preprocess(PreprocessConfig),
    /// Runs a model (named by its manifest) on the preprocessed tensor and attaches the result.
    Infer(InferConfig),
    /// Sends critical findings to a topic at once and raises the instance's priority.
    Alert(AlertConfig),
    /// Result objects (SR, SEG, overlays) of the model's results, for the PACS.
    Results(ResultsConfig),
    /// Replaces the instance with a Key Object Selection document that references it.
    KeyObject(KeyObjectConfig),
    /// Writes the instance to a bucket and optionally announces it on a topic (a sink that
    /// forwards).
    Export(ExportConfig),
    /// STOW-RS to a DICOMweb PACS (a sink).
    Stow(StowConfig),
    /// FHIR R4 bundles of the results, to a topic, a FHIR server or a folder.
    Fhir(FhirConfig),
}

impl OperatorConfig {
    /// The operator kind, used as the `operator` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            OperatorConfig::Route(_) => "route",
            OperatorConfig::Pseudonymize(_) => "pseudonymize",
            OperatorConfig::Relink(_) => "relink",
            OperatorConfig::Preprocess(_) => "preprocess",
            OperatorConfig::Infer(_) => "infer",
            OperatorConfig::Alert(_) => "alert",
            OperatorConfig::Results(_) => "results",
            OperatorConfig::KeyObject(_) => "key_object",
            OperatorConfig::Export(_) => "export",
            OperatorConfig::Stow(_) => "stow",
            OperatorConfig::Fhir(_) => "fhir",
        }
    }

    /// True when the operator delivers to a destination.
    pub fn is_sink(&self) -> bool {
        matches!(self, OperatorConfig::Export(_) | OperatorConfig::Stow(_) | OperatorConfig::Fhir(_))
    }

    /// Checks the configuration without touching the network or the filesystem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            OperatorConfig::Route(c) => c.validate(),
            OperatorConfig::Pseudonymize(c) => c.validate(),
            OperatorConfig::Relink(c) => c.validate(),
            OperatorConfig::Preprocess(c) => c.validate(),
            OperatorConfig::Infer(c) => c.validate(),
            OperatorConfig::Alert(c) => c.validate(),
            OperatorConfig::Results(c) => c.validate(),
            OperatorConfig::KeyObject(c) => c.validate(),
            OperatorConfig::Export(c) => c.validate(),
            OperatorConfig::Stow(c) => c.validate(),
            OperatorConfig::Fhir(c) => c.validate(),
        }
    }

    /// Builds the runtime operator (reads secrets from the environment or files).
    pub fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Operator>, ConfigError> {
        Ok(match self {
            OperatorConfig::Route(c) => Box::new(c.build()?),
            OperatorConfig::Pseudonymize(c) => Box::new(c.build(ctx)?),
            OperatorConfig::Relink(c) => Box::new(c.build(ctx)?),
            OperatorConfig::Preprocess(c) => Box::new(c.build(ctx)?),
            OperatorConfig::Infer(c) => Box::new(c.build()?.with_observer(Arc::clone(&ctx.observer))),
            OperatorConfig::Alert(c) => Box::new(c.build(ctx)?),
            OperatorConfig::Results(c) => Box::new(c.build()?.with_observer(Arc::clone(&ctx.observer))),
            OperatorConfig::KeyObject(c) => Box::new(c.build()?),
            OperatorConfig::Export(c) => Box::new(c.build(ctx)?),
            OperatorConfig::Stow(c) => Box::new(c.build(ctx)?),
            OperatorConfig::Fhir(c) => Box::new(c.build(ctx)?),
        })
    }
}

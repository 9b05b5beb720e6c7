//! What an operator may use while it is built.

use std::sync::Arc;

use super::observer::{NoopRecorder, Recorder};
use super::services::{ObjectWriter, TableReader, TopicWriter};

/// What an operator may use while it is built.
#[derive(Clone)]
pub struct BuildContext {
    /// Where operators record their metrics (see [`super::observer`]): the runtime's metrics,
    /// or nothing.
    pub observer: Arc<dyn Recorder>,
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
        Self { observer: Arc::new(NoopRecorder), topics: None, objects: None, tables: None }
    }
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext").finish_non_exhaustive()
    }
}

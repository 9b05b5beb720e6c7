//! The operator trait.

use async_trait::async_trait;

use crate::{Envelope, OperatorError};

/// What happened to one envelope.
#[derive(Debug)]
pub enum Outcome {
    /// Pass it to the next operator. From a sink (the last operator), it means the destination
    /// acknowledged the instance.
    Forward,
    /// Dropped on purpose; counted, acknowledged, never retried. `rule` is a bounded name from
    /// config (for example the routing rule), safe as a metric label.
    Drop {
        /// The config name of the rule or reason that dropped it.
        rule: String,
    },
    /// Failed; the runtime retries or dead-letters according to the error's hint.
    Fail(OperatorError),
}

/// An envelope and what happened to it.
#[derive(Debug)]
pub struct Processed {
    /// The envelope, returned to the runtime.
    pub envelope: Envelope,
    /// Its outcome.
    pub outcome: Outcome,
}

impl Processed {
    /// Shorthand for a forwarded envelope.
    pub fn forward(envelope: Envelope) -> Self {
        Self { envelope, outcome: Outcome::Forward }
    }
}

/// A stage of the chain. One required method; the rest have defaults.
///
/// The runtime runs each operator in its own task, feeds it batches from a bounded channel and
/// routes every returned envelope by its outcome. An operator returns every envelope it was
/// given, in any order. CPU-heavy work belongs on `tokio::task::spawn_blocking`.
#[async_trait]
pub trait Operator: Send {
    /// Processes a batch.
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed>;

    /// True for operators that deliver to a destination (the chain must end with one).
    fn is_sink(&self) -> bool {
        false
    }

    /// Called when the pipeline drains, after the last batch.
    async fn on_close(&mut self) {}
}

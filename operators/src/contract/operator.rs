//! The operator trait.

use async_trait::async_trait;

use super::batching::Batching;
use super::envelope::Envelope;
use super::error::OperatorError;

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
/// given, in any order: from the same call, or, for an operator that holds envelopes across
/// batches (series assembly), from a later [`wake`](Operator::wake) or
/// [`on_close`](Operator::on_close). CPU-heavy work belongs on `tokio::task::spawn_blocking`.
#[async_trait]
pub trait Operator: Send {
    /// Processes a batch.
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed>;

    /// True for operators that deliver to a destination (the chain must end with one).
    fn is_sink(&self) -> bool {
        false
    }

    /// Its own batching policy (an `infer` operator batches per model); `None`: the runtime's
    /// `batch_size` and `batch_linger_ms`.
    fn batching(&self) -> Option<Batching> {
        None
    }

    /// For an operator that holds envelopes: when [`wake`](Operator::wake) should next run
    /// (for example a series' quiet time ending).
    fn next_wake(&self) -> Option<std::time::Instant> {
        None
    }

    /// Called at [`next_wake`](Operator::next_wake): returns the held envelopes whose time has
    /// come, with their outcomes.
    async fn wake(&mut self) -> Vec<Processed> {
        Vec::new()
    }

    /// Called when the pipeline drains, after the last batch. Returns the envelopes it still
    /// holds: the runtime abandons them (no outcome, offset not committed), so they are read
    /// again after the restart and their state is rebuilt from them.
    async fn on_close(&mut self) -> Vec<Envelope> {
        Vec::new()
    }

    /// For an operator that holds envelopes: the most it holds at once. The runtime warns at
    /// start when `runtime.max_in_flight` does not leave room for that and more.
    fn holds_at_most(&self) -> Option<usize> {
        None
    }

    /// The model names this operator serves (the `name` of its manifest or preprocess spec), so
    /// the runtime can check that every model a routing rule names has a place in the chain.
    fn models(&self) -> Vec<String> {
        Vec::new()
    }
}

//! The operator contract: what every operator and the runtime agree on, and nothing that names
//! an operator. Data flows one way: `contract` <- operators <- `registry`.
//!
//! * [`operator`]: the [`Operator`] trait and what it says about each envelope.
//! * [`envelope`]: the [`Envelope`] that carries one instance through the chain.
//! * [`error`]: operator failures with a retry hint, and configuration problems.
//! * [`build`]: what an operator may use while it is built ([`BuildContext`]).
//! * [`observer`]: the metrics operators record ([`OperatorMetric`]) through one [`Recorder`].
//! * [`services`]: the side outputs the runtime lends (topics, objects, compacted tables).
//! * [`batching`]: how a stage gathers batches.
//! * [`results`]: what a model said ([`InferenceResult`]) and the result objects made of it
//!   ([`ResultSet`]), which envelopes carry between operators.
//! * [`links`]: the re-identification link record that `pseudonymize` writes and `relink` reads.
//! * [`spec`]: [`OperatorSpec`], what each operator's config implements to be registered.
//! * [`backoff`]: the one retry timing every retry loop uses.

pub mod backoff;
pub mod batching;
pub mod build;
pub mod envelope;
pub mod error;
pub mod links;
pub mod observer;
pub mod operator;
pub mod results;
pub mod services;
pub mod spec;

pub use backoff::Backoff;
pub use batching::{Batching, Gatherer};
pub use build::BuildContext;
pub use envelope::Envelope;
pub use error::{ConfigError, OperatorError, RetryHint};
pub use observer::{MemoryRecorder, MetricValue, NoopRecorder, OperatorMetric, Recorder, Recording};
pub use operator::{Operator, Outcome, Processed};
pub use results::{Code, CodeSystem, Finding, InferenceResult, ModelIdentity, ResultKind, ResultObject, ResultSet};
pub use spec::{OperatorSpec, ReadinessProbe};

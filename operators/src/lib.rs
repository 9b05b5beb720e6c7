//! The operator contract and radstream's operators.
//!
//! An operator is a config type (serde, `deny_unknown_fields`, a pure `validate`) plus a runtime
//! type built from it that works on batches of [`Envelope`]s and says what happened to each:
//! forwarded, dropped on purpose, or failed with a hint that tells the runtime whether to retry
//! or dead-letter. Nothing here knows about Kafka offsets: the runtime tracks those through the
//! opaque [`Envelope::ticket`].
//!
//! Dependencies run one way: [`contract`] (the operator trait, the envelope, errors, services)
//! and [`dicom`] (the one DICOM layer) know no operator; each operator module builds on them;
//! [`registry`] is the only module that names every operator.
//!
//! Adding an operator: one new file in this crate (its config implements
//! [`OperatorSpec`]) and one line in [`registry`].

pub mod alert;
pub mod contract;
pub mod dicom;
pub mod export;
pub mod fhir;
#[doc(hidden)]
pub mod fuzzing;
mod http_retry;
pub mod infer;
pub mod key_object;
pub mod preprocess;
pub mod pseudonymize;
pub mod recent;
pub mod registry;
pub mod relink;
pub mod results;
pub mod route;
pub mod stow;
#[cfg(test)]
mod tag;
#[cfg(test)]
mod test_support;

pub use contract::{
    Batching, BuildContext, ConfigError, Envelope, Gatherer, Operator, OperatorError, OperatorSpec, Outcome, Processed,
    ReadinessProbe, RetryHint,
};
pub use dicom::{element_text, event_from_header, parse_header};
pub use radstream_schemas::ErrorClass;
pub use registry::OperatorConfig;

//! The operator contract and radstream's operators.
//!
//! An operator is a config type (serde, `deny_unknown_fields`, a pure `validate`) plus a runtime
//! type built from it that works on batches of [`Envelope`]s and says what happened to each:
//! forwarded, dropped on purpose, or failed with a hint that tells the runtime whether to retry
//! or dead-letter. Nothing here knows about Kafka offsets: the runtime tracks those through the
//! opaque [`Envelope::ticket`].
//!
//! Adding an operator: one new file in this crate and one variant in [`OperatorConfig`].

pub mod alert;
pub mod batching;
pub mod calendar;
pub mod config;
pub mod envelope;
pub mod error;
pub mod export;
pub mod fhir;
mod http_retry;
pub mod infer;
pub mod key_object;
pub mod operator;
pub mod preprocess;
pub mod pseudonymize;
pub mod recent;
pub mod relink;
pub mod results;
pub mod route;
pub mod services;
pub mod stow;
#[cfg(test)]
mod test_support;

pub use batching::{Batching, Gatherer};
pub use config::{BuildContext, ConfigError, OperatorConfig};
pub use envelope::{element_text, event_from_header, parse_header, Envelope};
pub use error::{OperatorError, RetryHint};
pub use operator::{Operator, Outcome, Processed};
pub use radstream_schemas::ErrorClass;

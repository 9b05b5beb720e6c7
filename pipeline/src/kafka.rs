//! Kafka clients: every client configuration radstream builds (one builder per role, so the
//! settings at-least-once delivery depends on are set in one place and last), the pipeline's
//! consumer (with rebalance tracking and lag statistics) and the producer of dead letters and
//! outcomes.

pub mod config;
pub mod outputs;
pub mod settings;
pub mod source;

// The paths these had when `kafka` was one file; other crates (the end-to-end tests) use them.
pub use config::producer_config;
pub use outputs::Outputs;
pub use source::{consumer, SourceConsumer, SourceContext};

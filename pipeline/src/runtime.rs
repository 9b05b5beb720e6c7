//! The runtime: Kafka source → object fetch → operator chain → outcomes, with offsets stored
//! only once every output of an event is finished, in order per partition.
//!
//! ```text
//! consumer ──▶ fetch+parse ──▶ op[0] ──▶ … ──▶ op[n-1] (sink)
//!    │              │            │                 │
//!    └──────────────┴────────────┴─────────────────┴──▶ finisher: outcome / dead letter
//!                                                        produced, then the ack tracker
//!                                                        stores the committable offset
//! ```
//! Stages are tasks joined by bounded channels, and a semaphore bounds the instances in flight,
//! so memory stays bounded whatever the backlog. Parsing runs on the blocking pool.

pub mod acks;
pub mod error;
pub mod fetch;
pub mod finish;
pub mod pipeline;
pub mod shared;
pub mod source;
pub mod stage;
pub mod stats;

// The runtime's API as one path (`radstream_pipeline::runtime::run`), for the binary, the demo
// and the benchmarks.
pub use error::RuntimeError;
pub use pipeline::run;
/// Operators that rewrite an object parse their output with the same function.
pub use radstream_operators::{event_from_header, parse_header};
pub use stats::RunStats;

#[cfg(test)]
mod tests;

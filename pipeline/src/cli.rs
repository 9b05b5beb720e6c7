//! The `radstream` commands, one file each: its clap arguments and its `execute`. What they
//! share is in [`common`] (and the folder walker and thread pool in [`crate::files`]); a command
//! never imports another's helpers.

pub mod common;
pub mod deid;
pub mod demo;
pub mod dlq;
pub mod infer;
pub mod keygen;
pub mod lake;
pub mod loadgen;
pub mod preprocess;
pub mod publish;
pub mod route;
pub mod run;
pub mod synth;
pub mod validate;

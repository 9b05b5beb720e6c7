//! The radstream runtime: configuration, the Kafka source with per-partition ordered
//! acknowledgement, object fetch, the operator chain, outputs, metrics and health, and the
//! tools behind the `radstream` binary (demo, synthetic studies, publishing).

pub mod cli;
pub mod config;
pub mod demo;
pub mod files;
pub mod folder_pacs;
pub mod kafka;
pub mod lake;
pub mod loadgen;
pub mod objects;
pub mod observe;
pub mod publish;
pub mod runtime;
pub mod services;
pub mod synth;

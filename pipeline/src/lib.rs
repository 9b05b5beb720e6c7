//! The radstream runtime: configuration, the Kafka source with per-partition ordered
//! acknowledgement, object fetch, the operator chain, outputs, metrics and health, and the
//! tools behind the `radstream` binary (demo, synthetic studies, publishing).

pub mod acks;
pub mod config;
pub mod deid_cmd;
pub mod demo;
pub mod dlq_cmd;
pub mod files;
pub mod folder_pacs;
pub mod health;
pub mod http;
pub mod infer_cmd;
pub mod kafka;
pub mod lake;
pub mod loadgen;
pub mod metrics;
pub mod objects;
pub mod preprocess_cmd;
pub mod publish;
pub mod runtime;
pub mod services;
pub mod synth;

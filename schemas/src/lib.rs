//! Event schemas and their Rust types.
//!
//! Everything here is pure data: no I/O and no async runtime. The pipeline decides where bytes
//! come from; this crate only says what they mean.
//!
//! * [`InstanceEvent`] — one DICOM instance landed in object storage (Avro record
//!   `radstream.InstanceEvent`, version 1, in `avro/instance_event.v1.avsc`).
//! * [`wire`] — decoding a Kafka message value in one of the supported formats: Confluent
//!   Schema Registry Avro framing, plain JSON of the same record, or an S3 event notification.
//! * [`records`] — what the pipeline writes: dead letters and per-instance outcomes.

pub mod instance_event;
pub mod object_names;
pub mod records;
pub mod s3_notification;
pub mod wire;

pub use instance_event::{InstanceEvent, ObjectLocation, Priority};
pub use records::{
    AuditEvent, AuditOutcome, CriticalAlert, DeadLetter, ErrorClass, Feedback, FindingRecord, ModelResults,
    OutcomeEvent, OutcomeKind, SeriesRecord, StageLatency, Verdict,
};
pub use wire::{DecodeError, EventFormat, EventPayload};

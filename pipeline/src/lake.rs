//! `radstream lake`: the analytics lake. One row per processed instance, read from the outcome
//! topic, written as Parquet files to the object store, partitioned by date and model (Hive
//! style, so DuckDB and Spark read `date` and `model` as columns); and the radiologists'
//! verdicts on findings, from the feedback topic, beside them. See `docs/lake.md`.
//!
//! A separate process with its own consumer group (`<kafka.group_id>-lake`): the workers never
//! wait for it. Offsets are committed only after the files holding their rows are uploaded, so
//! a crash re-reads and re-writes; file names are `part-<partition>-<first>-<last>.parquet`
//! (Kafka offsets of the rows), so a re-write of the same rows replaces the same file, and every
//! row carries its topic position for de-duplicating the rest (see the doc).
//!
//! Rows carry pseudonymized UIDs only, made with the `pseudonymize` operator's key and function,
//! so they join what the PACS holds. The object key is left out (it may name original UIDs), as
//! is everything else that could identify a patient.

pub mod buffer;
pub mod consumer;
pub mod error;
pub mod rows;
pub mod schema;

// The lake's API as one path, for the `lake` command and its tests.
pub use buffer::{feedback_file_key, outcome_file_key, LakeBuffer, LakeFile};
pub use consumer::run;
pub use error::LakeError;
pub use rows::{partition_value, utc_date, FeedbackRow, OutcomeRow, UidPseudonymizer, NO_MODEL};
pub use schema::{feedback_batch, feedback_schema, outcome_batch, outcome_schema, to_parquet};

#[cfg(test)]
mod test_support;

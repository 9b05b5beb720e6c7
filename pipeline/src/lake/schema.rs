//! The Arrow schemas of the lake's files and the Parquet encoding of their rows.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray, TimestampMillisecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::lake::rows::{FeedbackRow, OutcomeRow};

fn finding_fields() -> Fields {
    Fields::from(vec![
        Field::new("label", DataType::Utf8, false),
        Field::new("code_system", DataType::Utf8, false),
        Field::new("code", DataType::Utf8, false),
        Field::new("frame", DataType::Int64, false),
        Field::new("score", DataType::Float32, false),
        Field::new("critical", DataType::Boolean, false),
    ])
}

fn stage_fields() -> Fields {
    Fields::from(vec![Field::new("operator", DataType::Utf8, false), Field::new("ms", DataType::Float64, false)])
}

fn list_item(fields: Fields) -> FieldRef {
    Arc::new(Field::new("item", DataType::Struct(fields), false))
}

fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The schema of outcome files. `date` and `model` are not in it: they are the Hive partition
/// columns, in the path, as Spark's `partitionBy` writes them (a column in both the file and
/// the path is one that readers resolve differently).
pub fn outcome_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", utc_millis(), false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, true),
        Field::new("branch", DataType::Utf8, true),
        Field::new("study_uid_pseudo", DataType::Utf8, true),
        Field::new("sop_uid_pseudo", DataType::Utf8, true),
        Field::new("model_version", DataType::Utf8, true),
        Field::new("model_sha256", DataType::Utf8, true),
        Field::new("findings", DataType::List(list_item(finding_fields())), false),
        Field::new("end_to_end_ms", DataType::Float64, false),
        Field::new("pipeline_ms", DataType::Float64, false),
        Field::new("stages", DataType::List(list_item(stage_fields())), false),
        Field::new("series_uid_pseudo", DataType::Utf8, true),
        Field::new("series_revision", DataType::Int64, true),
        Field::new("outcome_partition", DataType::Int32, false),
        Field::new("outcome_offset", DataType::Int64, false),
    ]))
}

/// The schema of feedback files (`date` is the partition column).
pub fn feedback_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", utc_millis(), false),
        Field::new("sop_uid_pseudo", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("model_version", DataType::Utf8, false),
        Field::new("finding_code", DataType::Utf8, false),
        Field::new("verdict", DataType::Utf8, false),
        Field::new("feedback_partition", DataType::Int32, false),
        Field::new("feedback_offset", DataType::Int64, false),
    ]))
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn list_of(fields: Fields, lengths: impl Iterator<Item = usize>, columns: Vec<ArrayRef>) -> ArrayRef {
    let values = StructArray::new(fields.clone(), columns, None);
    Arc::new(ListArray::new(list_item(fields), OffsetBuffer::from_lengths(lengths), Arc::new(values), None))
}

/// `rows` as one Arrow record batch of [`outcome_schema`].
pub fn outcome_batch(rows: &[OutcomeRow]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let findings = rows.iter().flat_map(|r| r.findings.iter());
    let stages = rows.iter().flat_map(|r| r.stages.iter());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.time_ms)).with_timezone("UTC")),
        strings(rows.iter().map(|r| Some(r.outcome))),
        strings(rows.iter().map(|r| r.detail.as_deref())),
        strings(rows.iter().map(|r| r.branch.as_deref())),
        strings(rows.iter().map(|r| r.study_uid_pseudo.as_deref())),
        strings(rows.iter().map(|r| r.sop_uid_pseudo.as_deref())),
        strings(rows.iter().map(|r| r.model_version.as_deref())),
        strings(rows.iter().map(|r| r.model_sha256.as_deref())),
        list_of(
            finding_fields(),
            rows.iter().map(|r| r.findings.len()),
            vec![
                strings(findings.clone().map(|f| Some(f.label.as_str()))),
                strings(findings.clone().map(|f| Some(f.code_system.as_str()))),
                strings(findings.clone().map(|f| Some(f.code.as_str()))),
                Arc::new(Int64Array::from_iter_values(findings.clone().map(|f| f.frame as i64))),
                Arc::new(Float32Array::from_iter_values(findings.clone().map(|f| f.score))),
                Arc::new(findings.map(|f| Some(f.critical)).collect::<BooleanArray>()),
            ],
        ),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.end_to_end_ms))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.pipeline_ms))),
        list_of(
            stage_fields(),
            rows.iter().map(|r| r.stages.len()),
            vec![
                strings(stages.clone().map(|s| Some(s.operator.as_str()))),
                Arc::new(Float64Array::from_iter_values(stages.map(|s| s.ms))),
            ],
        ),
        strings(rows.iter().map(|r| r.series_uid_pseudo.as_deref())),
        Arc::new(rows.iter().map(|r| r.series_revision.map(i64::from)).collect::<Int64Array>()),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.outcome_partition))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.outcome_offset))),
    ];
    RecordBatch::try_new(outcome_schema(), columns)
}

/// `rows` as one Arrow record batch of [`feedback_schema`].
pub fn feedback_batch(rows: &[FeedbackRow]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let f = || rows.iter().map(|r| &r.feedback);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from_iter_values(f().map(|f| f.time_ms)).with_timezone("UTC")),
        strings(f().map(|f| Some(f.sop_uid_pseudo.as_str()))),
        strings(f().map(|f| Some(f.model.as_str()))),
        strings(f().map(|f| Some(f.version.as_str()))),
        strings(f().map(|f| Some(f.finding_code.as_str()))),
        strings(f().map(|f| Some(f.verdict.as_str()))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.feedback_partition))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.feedback_offset))),
    ];
    RecordBatch::try_new(feedback_schema(), columns)
}

/// `batch` as a Snappy-compressed Parquet file.
pub fn to_parquet(batch: &RecordBatch) -> Result<Bytes, parquet::errors::ParquetError> {
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    writer.write(batch)?;
    Ok(Bytes::from(writer.into_inner()?))
}

#[cfg(test)]
mod tests;

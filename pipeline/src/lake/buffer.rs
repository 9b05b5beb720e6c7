//! Rows read and not yet uploaded, grouped by the file they will be written to, and the keys
//! of those files (the Kafka offsets of their rows, so a re-write replaces the same file).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use bytes::Bytes;

use crate::lake::error::LakeError;
use crate::lake::rows::{partition_value, utc_date, FeedbackRow, OutcomeRow};
use crate::lake::schema::{feedback_batch, outcome_batch, to_parquet};

/// Key of an outcome file: `{prefix}date=D/model=M/part-P-FIRST-LAST.parquet`.
pub fn outcome_file_key(prefix: &str, date: &str, model: &str, partition: i32, first: i64, last: i64) -> String {
    format!("{prefix}date={date}/model={}/part-{partition}-{first}-{last}.parquet", partition_value(model))
}

/// Key of a feedback file: `{prefix}feedback/date=D/part-P-FIRST-LAST.parquet`.
pub fn feedback_file_key(prefix: &str, date: &str, partition: i32, first: i64, last: i64) -> String {
    format!("{prefix}feedback/date={date}/part-{partition}-{first}-{last}.parquet")
}

/// Date, model (empty for feedback) and Kafka partition: what one file holds rows of.
type GroupKey = (String, String, i32);

/// Rows of one file to be: one date, one model, one Kafka partition.
#[derive(Debug)]
struct Group<R> {
    first: i64,
    last: i64,
    rows: Vec<R>,
}

impl<R> Group<R> {
    fn push(groups: &mut BTreeMap<GroupKey, Group<R>>, key: GroupKey, offset: i64, row: R) {
        let group = groups.entry(key).or_insert_with(|| Group { first: offset, last: offset, rows: Vec::new() });
        group.first = group.first.min(offset);
        group.last = group.last.max(offset);
        group.rows.push(row);
    }
}

/// Rows read and not yet uploaded, grouped into the files they will be written as.
#[derive(Debug, Default)]
pub struct LakeBuffer {
    outcomes: BTreeMap<GroupKey, Group<OutcomeRow>>,
    feedback: BTreeMap<GroupKey, Group<FeedbackRow>>,
    rows: usize,
    bytes: usize,
    oldest: Option<Instant>,
}

/// The most memory the lake's buffer holds by default, whatever `lake.flush_rows` says: rows
/// are small (a few hundred bytes), so it is reached only with large findings lists.
pub const MAX_BUFFERED_BYTES: usize = 64 << 20;

/// How much the buffer may hold: reaching either bound writes the files, and while they cannot
/// be written (the object store is down) the lake stops reading until they are, so the buffer
/// neither grows past the bound nor drops a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimit {
    /// Rows (`lake.flush_rows`).
    pub rows: usize,
    /// Approximate bytes of memory the rows hold.
    pub bytes: usize,
}

impl BufferLimit {
    /// `rows` rows or [`MAX_BUFFERED_BYTES`].
    pub fn rows(rows: usize) -> Self {
        Self { rows: rows.max(1), bytes: MAX_BUFFERED_BYTES }
    }

    /// Whether `buffer` holds as much as it may.
    pub fn reached(&self, buffer: &LakeBuffer) -> bool {
        buffer.rows >= self.rows || buffer.bytes >= self.bytes
    }
}

/// One lake file, encoded.
#[derive(Debug, Clone)]
pub struct LakeFile {
    /// `outcomes` or `feedback`.
    pub table: &'static str,
    /// Object key.
    pub key: String,
    /// Rows in it.
    pub rows: usize,
    /// The Parquet bytes.
    pub bytes: Bytes,
}

impl LakeBuffer {
    /// Buffers an outcome row.
    pub fn push_outcome(&mut self, row: OutcomeRow) {
        let key = (utc_date(row.time_ms), row.model_partition().to_string(), row.outcome_partition);
        let offset = row.outcome_offset;
        let bytes = row.approx_bytes();
        Group::push(&mut self.outcomes, key, offset, row);
        self.counted(bytes);
    }

    /// Buffers a feedback row.
    pub fn push_feedback(&mut self, row: FeedbackRow) {
        let key = (utc_date(row.feedback.time_ms), String::new(), row.feedback_partition);
        let offset = row.feedback_offset;
        let bytes = row.approx_bytes();
        Group::push(&mut self.feedback, key, offset, row);
        self.counted(bytes);
    }

    fn counted(&mut self, bytes: usize) {
        self.rows += 1;
        self.bytes += bytes;
        self.oldest.get_or_insert_with(Instant::now);
    }

    /// Rows buffered.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// About how much memory the buffered rows hold.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How long the oldest buffered row has waited.
    pub fn age(&self) -> Duration {
        self.oldest.map(|t| t.elapsed()).unwrap_or_default()
    }

    /// Every buffered row as Parquet files under `prefix`, one per date, model and partition.
    pub fn files(&self, prefix: &str) -> Result<Vec<LakeFile>, LakeError> {
        let mut files = Vec::new();
        let encode = |key: String, batch: Result<RecordBatch, arrow::error::ArrowError>| {
            let batch = batch.map_err(|e| LakeError::Encode { key: key.clone(), reason: e.to_string() })?;
            let bytes =
                to_parquet(&batch).map_err(|e| LakeError::Encode { key: key.clone(), reason: e.to_string() })?;
            Ok::<_, LakeError>((key, bytes))
        };
        for ((date, model, partition), g) in &self.outcomes {
            let key = outcome_file_key(prefix, date, model, *partition, g.first, g.last);
            let (key, bytes) = encode(key, outcome_batch(&g.rows))?;
            files.push(LakeFile { table: "outcomes", key, rows: g.rows.len(), bytes });
        }
        for ((date, _, partition), g) in &self.feedback {
            let key = feedback_file_key(prefix, date, *partition, g.first, g.last);
            let (key, bytes) = encode(key, feedback_batch(&g.rows))?;
            files.push(LakeFile { table: "feedback", key, rows: g.rows.len(), bytes });
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests;

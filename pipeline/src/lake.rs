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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use radstream_operators::calendar::civil_from_days;
use radstream_operators::pseudonymize::{DeidKey, Deidentifier, KeyError, ProfileOptions};
use radstream_schemas::records::{Feedback, Verdict};
use radstream_schemas::{FindingRecord, OutcomeEvent, StageLatency};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::config::{Config, LakeConfig};
use crate::objects::{ObjectFetcher, PutError};

/// The lake's metric names (the lake is its own process with its own registry).
pub mod names {
    /// Rows written to lake files, by table (`outcomes`, `feedback`).
    pub const LAKE_ROWS: &str = "radstream_lake_rows_total";
    /// Parquet files uploaded, by table.
    pub const LAKE_FILES: &str = "radstream_lake_files_total";
    /// Records that are not outcome or feedback JSON, skipped, by table.
    pub const LAKE_UNREADABLE: &str = "radstream_lake_unreadable_records_total";
    /// Rows read and not yet in an uploaded file.
    pub const LAKE_BUFFERED: &str = "radstream_lake_buffered_rows";
    /// Verdicts seen by this process, by model, version and verdict.
    pub const MODEL_FEEDBACK: &str = "radstream_model_feedback_total";
    /// Accepted verdicts over all verdicts seen by this process since it started, by model and
    /// version.
    pub const MODEL_AGREEMENT: &str = "radstream_model_agreement_ratio";
}

/// The partition value of rows without a model result.
pub const NO_MODEL: &str = "none";

/// Why the lake could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The config has no `[lake]` section.
    #[error("the config has no [lake] section: `radstream lake` needs lake.bucket and lake.key_file")]
    NotConfigured,
    /// The pseudonymization key could not be loaded.
    #[error("lake.key_file / lake.key_env: {0}")]
    Key(#[from] KeyError),
    /// A Kafka client could not be created, subscribed or committed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A Parquet file could not be encoded (a bug).
    #[error("encoding {key}: {reason}")]
    Encode {
        /// The lake file's key.
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// Writing a lake file failed and retrying will not help (access denied, no bucket).
    #[error("{0}")]
    Upload(PutError),
    /// The metrics endpoint could not listen.
    #[error("lake.metrics_listen = {listen}: {source}")]
    Listen {
        /// The address.
        listen: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl LakeError {
    /// Whether a configuration change fixes it (the command exits 2 then, like `validate`).
    pub fn is_config(&self) -> bool {
        matches!(self, LakeError::NotConfigured | LakeError::Key(_) | LakeError::Listen { .. })
    }
}

/// Pseudonymizes UIDs exactly as the `pseudonymize` operator does with the same key.
pub struct UidPseudonymizer(Deidentifier);

impl std::fmt::Debug for UidPseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UidPseudonymizer")
    }
}

impl UidPseudonymizer {
    /// A pseudonymizer with `key`.
    pub fn new(key: DeidKey) -> Self {
        Self(Deidentifier::new(key, ProfileOptions::default()))
    }

    /// From the lake section's `key_file` or `key_env`.
    pub fn from_config(lake: &LakeConfig) -> Result<Self, KeyError> {
        let key = match (&lake.key_file, &lake.key_env) {
            (Some(path), _) => DeidKey::from_file(path)?,
            (None, Some(var)) => DeidKey::from_env(var)?,
            (None, None) => {
                return Err(KeyError { source_name: "lake".into(), problem: "set key_file or key_env".into() })
            }
        };
        Ok(Self::new(key))
    }

    /// The pseudonym of `uid`.
    pub fn uid(&self, uid: &str) -> String {
        self.0.pseudonymize_uid(uid.trim_end_matches(['\0', ' ']).as_bytes())
    }
}

/// The UTC date (`YYYY-MM-DD`) of `time_ms` (ms since the epoch).
pub fn utc_date(time_ms: i64) -> String {
    let (year, month, day) = civil_from_days(time_ms.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// A Hive partition value: bytes other than `A-Z a-z 0-9 . _ -` percent-encoded, as Hive and
/// Spark escape them (DuckDB and Spark decode them back).
pub fn partition_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// One processed instance, as the lake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRow {
    /// When the outcome was reached (ms since the epoch).
    pub time_ms: i64,
    /// `delivered`, `dropped` or `dead_lettered`.
    pub outcome: &'static str,
    /// Dropping rule or error class, when not delivered.
    pub detail: Option<String>,
    /// Routing branch, when routed.
    pub branch: Option<String>,
    /// Pseudonymized StudyInstanceUID.
    pub study_uid_pseudo: Option<String>,
    /// Pseudonymized SOPInstanceUID.
    pub sop_uid_pseudo: Option<String>,
    /// The model's name; `None` when no model ran (partition `model=none`).
    pub model: Option<String>,
    /// The model's version.
    pub model_version: Option<String>,
    /// SHA-256 of the model file.
    pub model_sha256: Option<String>,
    /// The findings that reached their threshold.
    pub findings: Vec<FindingRecord>,
    /// Event time to outcome, in milliseconds.
    pub end_to_end_ms: f64,
    /// Kafka read to outcome, in milliseconds.
    pub pipeline_ms: f64,
    /// Time in each stage, in chain order.
    pub stages: Vec<StageLatency>,
    /// Pseudonymized SeriesInstanceUID, for a model of whole series.
    pub series_uid_pseudo: Option<String>,
    /// The series run's revision, for a model of whole series.
    pub series_revision: Option<u32>,
    /// Partition of the outcome topic the row was read from.
    pub outcome_partition: i32,
    /// Offset there: with the partition, the row's identity for de-duplication.
    pub outcome_offset: i64,
}

impl OutcomeRow {
    /// The row of `event`, read at `partition`/`offset` of the outcome topic, with every UID
    /// pseudonymized. The object key is left out: it may hold original UIDs.
    pub fn new(event: &OutcomeEvent, partition: i32, offset: i64, uids: &UidPseudonymizer) -> Self {
        let results = event.results.as_ref();
        let series = results.and_then(|r| r.series.as_ref());
        Self {
            time_ms: event.time_ms,
            outcome: event.outcome.as_str(),
            detail: event.detail.clone(),
            branch: event.branch.clone(),
            study_uid_pseudo: event.study_instance_uid.as_deref().map(|u| uids.uid(u)),
            sop_uid_pseudo: event.sop_instance_uid.as_deref().map(|u| uids.uid(u)),
            model: results.map(|r| r.model.clone()),
            model_version: results.map(|r| r.version.clone()),
            model_sha256: results.map(|r| r.sha256.clone()),
            findings: results.map(|r| r.findings.clone()).unwrap_or_default(),
            end_to_end_ms: event.end_to_end_ms,
            pipeline_ms: event.pipeline_ms,
            stages: event.stages.clone(),
            series_uid_pseudo: series.map(|s| uids.uid(&s.series_instance_uid)),
            series_revision: series.map(|s| s.revision),
            outcome_partition: partition,
            outcome_offset: offset,
        }
    }

    /// The `model` partition value (`none` without a model).
    pub fn model_partition(&self) -> &str {
        self.model.as_deref().unwrap_or(NO_MODEL)
    }
}

/// One verdict, as the lake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRow {
    /// The verdict.
    pub feedback: Feedback,
    /// Partition of the feedback topic.
    pub feedback_partition: i32,
    /// Offset there.
    pub feedback_offset: i64,
}

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
    oldest: Option<Instant>,
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
        Group::push(&mut self.outcomes, key, offset, row);
        self.counted();
    }

    /// Buffers a feedback row.
    pub fn push_feedback(&mut self, row: FeedbackRow) {
        let key = (utc_date(row.feedback.time_ms), String::new(), row.feedback_partition);
        let offset = row.feedback_offset;
        Group::push(&mut self.feedback, key, offset, row);
        self.counted();
    }

    fn counted(&mut self) {
        self.rows += 1;
        self.oldest.get_or_insert_with(Instant::now);
    }

    /// Rows buffered.
    pub fn rows(&self) -> usize {
        self.rows
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

/// The lake's metrics, in a registry of its own.
#[derive(Clone)]
pub struct LakeMetrics {
    registry: Registry,
    rows: IntCounterVec,
    files: IntCounterVec,
    unreadable: IntCounterVec,
    buffered: IntGauge,
    feedback: IntCounterVec,
    agreement: GaugeVec,
    verdicts: Arc<std::sync::Mutex<VerdictCounts>>,
}

/// Accepted and all verdicts, by model and version.
type VerdictCounts = HashMap<(String, String), (u64, u64)>;

impl std::fmt::Debug for LakeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LakeMetrics")
    }
}

impl Default for LakeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl LakeMetrics {
    /// Registers every lake metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let rows = counter(names::LAKE_ROWS, "Rows written to lake files.", &["table"]);
        let files = counter(names::LAKE_FILES, "Parquet files uploaded to the lake.", &["table"]);
        let unreadable = counter(names::LAKE_UNREADABLE, "Records skipped as unreadable.", &["table"]);
        let feedback = counter(names::MODEL_FEEDBACK, "Verdicts on findings seen.", &["model", "version", "verdict"]);
        let buffered = IntGauge::new(names::LAKE_BUFFERED, "Rows read and not yet uploaded.").expect("valid metric");
        registry.register(Box::new(buffered.clone())).expect("registered once");
        let agreement = GaugeVec::new(
            Opts::new(
                names::MODEL_AGREEMENT,
                "Accepted verdicts over all verdicts seen by this process since it started.",
            ),
            &["model", "version"],
        )
        .expect("valid metric");
        registry.register(Box::new(agreement.clone())).expect("registered once");
        Self { registry, rows, files, unreadable, buffered, feedback, agreement, verdicts: Default::default() }
    }

    /// Counts one verdict and updates its model version's agreement ratio.
    pub fn verdict(&self, f: &Feedback) {
        self.feedback.with_label_values(&[&f.model, &f.version, f.verdict.as_str()]).inc();
        let mut verdicts = self.verdicts.lock().expect("verdict lock");
        let (accepted, all) = verdicts.entry((f.model.clone(), f.version.clone())).or_default();
        *all += 1;
        if f.verdict == Verdict::Accept {
            *accepted += 1;
        }
        self.agreement.with_label_values(&[&f.model, &f.version]).set(*accepted as f64 / *all as f64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

/// Serves `/metrics` and `/healthz` on `listen`; returns the bound address.
pub async fn serve_metrics(listen: &str, metrics: LakeMetrics) -> std::io::Result<std::net::SocketAddr> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "lake metrics endpoint stopped");
        }
    });
    Ok(addr)
}

/// Which of the lake's topics a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Outcomes,
    Feedback,
}

/// The running lake: its consumer, buffer and positions.
struct Lake {
    lake: LakeConfig,
    outcome_topic: String,
    uids: UidPseudonymizer,
    objects: ObjectFetcher,
    consumer: StreamConsumer,
    metrics: LakeMetrics,
    buffer: LakeBuffer,
    /// Next offset to commit per topic and partition: read since the last commit.
    read: BTreeMap<(String, i32), i64>,
    /// After a failed upload, when to try again.
    retry_at: Option<Instant>,
    backoff: Duration,
}

/// Runs the lake of `config` until `shutdown` completes, then writes what it holds, commits
/// and returns.
pub async fn run(config: &Config, shutdown: impl std::future::Future<Output = ()>) -> Result<(), LakeError> {
    let lake_config = config.lake.clone().ok_or(LakeError::NotConfigured)?;
    let uids = UidPseudonymizer::from_config(&lake_config)?;
    let metrics = LakeMetrics::new();
    if !lake_config.metrics_listen.is_empty() {
        let addr = serve_metrics(&lake_config.metrics_listen, metrics.clone())
            .await
            .map_err(|source| LakeError::Listen { listen: lake_config.metrics_listen.clone(), source })?;
        info!(%addr, "serving /metrics and /healthz");
    }
    let k = &config.kafka;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("group.id", format!("{}-lake", k.group_id))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", k.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", (k.session_timeout_ms / 4).max(250).to_string())
        .set("client.id", format!("radstream-lake-{}", std::process::id()));
    for (key, value) in &k.consumer {
        c.set(key, value);
    }
    let consumer: StreamConsumer = c.create()?;
    let mut topics = vec![k.outcome_topic.as_str()];
    topics.extend(lake_config.feedback_topic.as_deref());
    consumer.subscribe(&topics)?;
    info!(?topics, group = %format!("{}-lake", k.group_id), bucket = %lake_config.bucket, prefix = %lake_config.prefix, "lake started");
    let mut lake = Lake {
        lake: lake_config,
        outcome_topic: k.outcome_topic.clone(),
        uids,
        objects: ObjectFetcher::new(config.objects.clone()),
        consumer,
        metrics,
        buffer: LakeBuffer::default(),
        read: BTreeMap::new(),
        retry_at: None,
        backoff: Duration::from_secs(1),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            message = lake.consumer.recv() => match message {
                Ok(m) => {
                    let m = m.detach();
                    lake.take(m.topic(), m.partition(), m.offset(), m.payload().unwrap_or_default());
                    if lake.buffer.rows() >= lake.lake.flush_rows {
                        lake.flush().await?;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "reading the lake's topics failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            _ = tick.tick() => {
                let due = lake.buffer.age() >= Duration::from_secs(lake.lake.flush_secs)
                    || (lake.buffer.rows() == 0 && !lake.read.is_empty());
                if due {
                    lake.flush().await?;
                }
            }
        }
    }
    info!(rows = lake.buffer.rows(), "shutdown requested: writing the buffered rows");
    lake.retry_at = None;
    lake.flush().await?;
    if lake.buffer.rows() > 0 {
        warn!(rows = lake.buffer.rows(), "stopping with rows not written; they are read again on the next start");
    }
    Ok(())
}

impl Lake {
    /// Takes one record into the buffer (or counts it unreadable); it becomes committable.
    fn take(&mut self, topic: &str, partition: i32, offset: i64, payload: &[u8]) {
        self.read.insert((topic.to_string(), partition), offset + 1);
        let table = if topic == self.outcome_topic { Table::Outcomes } else { Table::Feedback };
        match table {
            Table::Outcomes => match serde_json::from_slice::<OutcomeEvent>(payload) {
                Ok(event) => self.buffer.push_outcome(OutcomeRow::new(&event, partition, offset, &self.uids)),
                Err(e) => {
                    self.metrics.unreadable.with_label_values(&["outcomes"]).inc();
                    warn!(topic, partition, offset, error = %e, "not an outcome record; skipped");
                }
            },
            Table::Feedback => match serde_json::from_slice::<Feedback>(payload) {
                Ok(feedback) => {
                    self.metrics.verdict(&feedback);
                    self.buffer.push_feedback(FeedbackRow {
                        feedback,
                        feedback_partition: partition,
                        feedback_offset: offset,
                    });
                }
                Err(e) => {
                    self.metrics.unreadable.with_label_values(&["feedback"]).inc();
                    warn!(topic, partition, offset, error = %e, "not a feedback record; skipped");
                }
            },
        }
        self.metrics.buffered.set(self.buffer.rows() as i64);
    }

    /// Uploads every buffered row, then commits what was read. A retryable upload failure keeps
    /// the buffer for a later try (with backoff); any other is fatal, with nothing committed.
    async fn flush(&mut self) -> Result<(), LakeError> {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        if self.buffer.rows() > 0 {
            let buffer = std::mem::take(&mut self.buffer);
            let prefix = self.lake.prefix.clone();
            let (buffer, files) = tokio::task::spawn_blocking(move || {
                let files = buffer.files(&prefix);
                (buffer, files)
            })
            .await
            .expect("encoding lake files panicked");
            self.buffer = buffer;
            for file in files? {
                let written = self.objects.put_parts(&self.lake.bucket, &file.key, vec![file.bytes.clone()]).await;
                match written {
                    Ok(_) => {
                        self.metrics.files.with_label_values(&[file.table]).inc();
                        self.metrics.rows.with_label_values(&[file.table]).inc_by(file.rows as u64);
                        info!(key = %file.key, rows = file.rows, bytes = file.bytes.len(), "lake file written");
                    }
                    Err(e) if e.retryable => {
                        warn!(key = %file.key, error = %e, retry_in_s = self.backoff.as_secs(), "writing a lake file failed; keeping the rows");
                        self.retry_at = Some(Instant::now() + self.backoff);
                        self.backoff = (self.backoff * 2).min(Duration::from_secs(60));
                        return Ok(());
                    }
                    Err(e) => return Err(LakeError::Upload(e)),
                }
            }
            self.buffer = LakeBuffer::default();
            self.metrics.buffered.set(0);
        }
        self.retry_at = None;
        self.backoff = Duration::from_secs(1);
        if !self.read.is_empty() {
            let mut offsets = TopicPartitionList::new();
            for ((topic, partition), next) in &self.read {
                offsets.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
            }
            // The rows are in the lake whatever happens here: a failed commit means they are
            // read and written again (the same file names), not lost.
            match self.consumer.commit(&offsets, CommitMode::Sync) {
                Ok(()) => self.read.clear(),
                Err(e) => {
                    warn!(error = %e, "committing the lake's offsets failed; they are committed with the next files")
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

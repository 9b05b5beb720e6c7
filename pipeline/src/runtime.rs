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

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dicom_dictionary_std::tags;
use futures::stream::{FuturesUnordered, StreamExt};
use radstream_operators::batching::{gather, Step};
use radstream_operators::{
    element_text, Batching, BuildContext, Envelope, Gatherer, Operator, Outcome, Processed, RetryHint,
};
use radstream_schemas::wire::{self, SchemaSet};
use radstream_schemas::{
    DeadLetter, ErrorClass, EventPayload, InstanceEvent, ObjectLocation, OutcomeEvent, OutcomeKind, Priority,
};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, error, info, warn};

use crate::acks::{AckResult, AckTracker, MessageRef};
use crate::config::Config;
use crate::kafka::{self, Outputs, SourceConsumer};
use crate::metrics::Metrics;
use crate::objects::ObjectFetcher;
use crate::services::{KafkaTableReader, KafkaTopicWriter, StoreObjectWriter};

/// Why the pipeline could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A Kafka client could not be created or subscribed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// An operator could not be built from its config (for example a missing secret).
    #[error("operator {index} ({kind}): {source}")]
    Operator {
        /// Position in the chain.
        index: usize,
        /// Operator kind.
        kind: &'static str,
        /// The problem.
        source: radstream_operators::ConfigError,
    },
    /// The local Avro schema file could not be read or parsed.
    #[error("kafka.schema_file: {0}")]
    Schema(String),
    /// A routing rule sends instances to a model that no operator of the chain runs.
    #[error(
        "routing rule names model {model:?} but no infer operator runs it (infer operators run: {})",
        if served.is_empty() { "none".to_string() } else { served.join(", ") }
    )]
    UnservedModel {
        /// The model the rule names.
        model: String,
        /// The models the chain's operators run.
        served: Vec<String>,
    },
}

/// Checks that every model a `route` operator names is run by an operator of the chain
/// (`served`: what the built operators' [`Operator::models`] return).
fn check_routed_models(
    operators: &[radstream_operators::OperatorConfig],
    served: &[String],
) -> Result<(), RuntimeError> {
    for c in operators {
        if let radstream_operators::OperatorConfig::Route(route) = c {
            if let Some(model) = route.models().into_iter().find(|m| !served.contains(m)) {
                return Err(RuntimeError::UnservedModel { model, served: served.to_vec() });
            }
        }
    }
    Ok(())
}

/// Counts and latencies of one run, for summaries.
#[derive(Debug, Default)]
pub struct RunStats {
    /// Messages read.
    pub received: AtomicU64,
    /// Instances delivered.
    pub delivered: AtomicU64,
    /// Instances dropped on purpose.
    pub dropped: AtomicU64,
    /// Instances dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Delivered instances with at least one finding.
    pub instances_with_findings: AtomicU64,
    /// Delivered instances with at least one critical finding.
    pub critical_instances: AtomicU64,
    /// StudyInstanceUIDs of the delivered instances with a finding (the first 100,000).
    flagged_studies: Mutex<BTreeSet<String>>,
    latencies_ms: Mutex<Vec<f64>>,
    pipeline_ms: Mutex<Vec<f64>>,
}

impl RunStats {
    /// Instances finished, whatever their outcome.
    pub fn finished(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
            + self.dropped.load(Ordering::Relaxed)
            + self.dead_lettered.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0..=1) of event-to-outcome latency of delivered instances, in ms.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.latencies_ms.lock().expect("stats lock"), q)
    }

    /// The `q` quantile (0..=1) of Kafka read to PACS acknowledgement (radstream's own share of
    /// the latency, destination included) of delivered instances, in ms.
    pub fn pipeline_quantile_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.pipeline_ms.lock().expect("stats lock"), q)
    }

    /// StudyInstanceUIDs with a finding on a delivered instance (at most the first 100,000).
    pub fn flagged_studies(&self) -> BTreeSet<String> {
        self.flagged_studies.lock().expect("stats lock").clone()
    }

    fn record_findings(&self, results: &radstream_schemas::ModelResults, study_uid: Option<&str>) {
        if results.findings.is_empty() {
            return;
        }
        self.instances_with_findings.fetch_add(1, Ordering::Relaxed);
        if results.findings.iter().any(|f| f.critical) {
            self.critical_instances.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(uid) = study_uid {
            // A summary, not a registry: a long-running worker stops adding.
            let mut studies = self.flagged_studies.lock().expect("stats lock");
            if studies.len() < 100_000 {
                studies.insert(uid.to_string());
            }
        }
    }

    fn record_latency(&self, end_to_end_ms: f64, pipeline_ms: f64) {
        // A summary needs a sample, not every value of a long-running worker.
        for (v, ms) in [(&self.latencies_ms, end_to_end_ms), (&self.pipeline_ms, pipeline_ms)] {
            let mut v = v.lock().expect("stats lock");
            if v.len() < 1_000_000 {
                v.push(ms);
            }
        }
    }
}

fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

/// Everything the stages share.
struct Shared {
    config: Config,
    metrics: Metrics,
    stats: Arc<RunStats>,
    tracker: Arc<Mutex<AckTracker>>,
    in_flight: Mutex<HashMap<u64, InFlight>>,
    consumer: Arc<SourceConsumer>,
    outputs: Outputs,
}

/// What the runtime keeps about one instance between its read and its outcome.
struct InFlight {
    msg: MessageRef,
    _permit: OwnedSemaphorePermit,
    received_at: Instant,
    event_time_ms: i64,
    priority: Priority,
    object_key: Option<String>,
    study_uid: Option<String>,
    sop_uid: Option<String>,
}

/// How an instance ended.
#[derive(Debug)]
enum Finish {
    Delivered,
    Dropped { operator: String, rule: String },
    DeadLetter { operator: String, class: ErrorClass, reason: String, attempts: u32 },
}

#[derive(Debug)]
struct Completion {
    ticket: u64,
    finish: Finish,
    branch: Option<String>,
    /// What a model said of the instance, for the outcome record.
    results: Option<radstream_schemas::ModelResults>,
    /// Time in each stage it reached.
    stages: Vec<radstream_schemas::StageLatency>,
}

/// The envelope's stage times, as the outcome record carries them.
fn stage_latencies(envelope: &Envelope) -> Vec<radstream_schemas::StageLatency> {
    envelope
        .stage_ms
        .iter()
        .map(|&(operator, ms)| radstream_schemas::StageLatency { operator: operator.to_string(), ms })
        .collect()
}

/// One instance to fetch: what the event said, or only where the object is.
struct FetchItem {
    ticket: u64,
    location: ObjectLocation,
    event: Option<InstanceEvent>,
    event_time_ms: i64,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Runs the pipeline until `shutdown` turns true, then drains in-flight work (up to
/// `runtime.drain_deadline_secs`), commits stored offsets and returns.
pub async fn run(
    config: Config,
    metrics: Metrics,
    stats: Arc<RunStats>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    // The table reader stops its consumers when dropped, at the end of this function.
    let ctx = BuildContext {
        observer: Arc::new(metrics.clone()),
        topics: Some(Arc::new(KafkaTopicWriter::new(&config.kafka)?)),
        objects: Some(Arc::new(StoreObjectWriter::new(config.objects.clone()))),
        tables: Some(Arc::new(KafkaTableReader::new(&config.kafka))),
    };
    // One Vec of operator instances per stage (several when the stage runs several tasks).
    let mut stages: Vec<(&'static str, Vec<Box<dyn Operator>>)> = Vec::new();
    for (index, c) in config.operators.iter().enumerate() {
        let tasks = config.runtime.tasks_for(c.kind(), c.is_sink());
        let instances = (0..tasks)
            .map(|_| c.build(&ctx))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| RuntimeError::Operator { index, kind: c.kind(), source })?;
        stages.push((c.kind(), instances));
    }
    let served: Vec<String> = stages.iter().flat_map(|(_, ops)| ops.iter().flat_map(|op| op.models())).collect();
    check_routed_models(&config.operators, &served)?;
    for (kind, ops) in &stages {
        if let Some(held) = ops.iter().filter_map(|op| op.holds_at_most()).max() {
            if config.runtime.max_in_flight <= held {
                warn!(
                    operator = kind,
                    holds_at_most = held,
                    max_in_flight = config.runtime.max_in_flight,
                    "runtime.max_in_flight is not above what the operator may hold (a series model's \
                     series.max_held_instances): a series larger than max_in_flight completes only by its quiet \
                     time, in two runs; raise runtime.max_in_flight"
                );
            }
        }
    }

    let mut schemas = SchemaSet::new();
    if let Some(path) = &config.kafka.schema_file {
        let text =
            std::fs::read_to_string(path).map_err(|e| RuntimeError::Schema(format!("{}: {e}", path.display())))?;
        let schema =
            SchemaSet::parse_schema(&text).map_err(|e| RuntimeError::Schema(format!("{}: {e}", path.display())))?;
        schemas = SchemaSet::with_default(schema);
    }

    let tracker = Arc::new(Mutex::new(AckTracker::default()));
    let consumer = Arc::new(kafka::consumer(&config.kafka, tracker.clone(), metrics.clone())?);
    consumer.subscribe(&[&config.kafka.input_topic])?;
    let outputs = Outputs::new(&config.kafka)?;
    info!(
        topic = %config.kafka.input_topic,
        group = %config.kafka.group_id,
        operators = ?config.operators.iter().map(|o| o.kind()).collect::<Vec<_>>(),
        "pipeline started"
    );

    let rt = config.runtime.clone();
    let shared = Arc::new(Shared {
        config,
        metrics,
        stats,
        tracker,
        in_flight: Mutex::new(HashMap::new()),
        consumer: consumer.clone(),
        outputs: outputs.clone(),
    });

    let (completion_tx, completion_rx) = mpsc::unbounded_channel::<Completion>();
    let (fetch_tx, fetch_rx) = mpsc::channel::<FetchItem>(rt.channel_capacity);
    let mut stage_inputs = Vec::new();
    let mut stage_outputs = Vec::new();
    for _ in 0..stages.len() {
        let (tx, rx) = mpsc::channel::<Envelope>(rt.channel_capacity);
        stage_inputs.push(rx);
        stage_outputs.push(tx);
    }

    let mut tasks = Vec::new();
    let first_stage = stage_outputs[0].clone();
    tasks.push(tokio::spawn(fetch_stage(shared.clone(), fetch_rx, first_stage, completion_tx.clone())));
    let mut next_senders: Vec<Option<mpsc::Sender<Envelope>>> = stage_outputs.into_iter().skip(1).map(Some).collect();
    next_senders.push(None);
    for (((kind, instances), rx), next) in stages.into_iter().zip(stage_inputs).zip(next_senders) {
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for op in instances {
            let stage = operator_stage(shared.clone(), kind, op, rx.clone(), next.clone(), completion_tx.clone());
            tasks.push(tokio::spawn(stage));
        }
    }
    let finisher = tokio::spawn(finisher(shared.clone(), completion_rx));

    consume(shared.clone(), &mut shutdown, fetch_tx, completion_tx, schemas).await;

    let deadline = Duration::from_secs(rt.drain_deadline_secs);
    let in_flight = shared.in_flight.lock().expect("in-flight lock").len();
    info!(in_flight, deadline_secs = rt.drain_deadline_secs, "draining in-flight work");
    let drained = tokio::time::timeout(deadline, async {
        for t in tasks {
            let _ = t.await;
        }
        let _ = finisher.await;
    })
    .await;
    if drained.is_err() {
        let left = shared.in_flight.lock().expect("in-flight lock").len();
        warn!(left, "drain deadline passed; unfinished instances stay uncommitted and will be re-read");
    }
    outputs.flush(Duration::from_secs(10));
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => info!("offsets committed"),
        Err(e) if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::NoOffset) => {}
        Err(e) => warn!(error = %e, "final offset commit failed; uncommitted work will be re-read"),
    }
    info!(
        delivered = shared.stats.delivered.load(Ordering::Relaxed),
        dropped = shared.stats.dropped.load(Ordering::Relaxed),
        dead_lettered = shared.stats.dead_lettered.load(Ordering::Relaxed),
        "pipeline stopped"
    );
    Ok(())
}

/// Reads the input topic until shutdown.
async fn consume(
    shared: Arc<Shared>,
    shutdown: &mut watch::Receiver<bool>,
    fetch_tx: mpsc::Sender<FetchItem>,
    completion_tx: mpsc::UnboundedSender<Completion>,
    mut schemas: SchemaSet,
) {
    let permits = Arc::new(Semaphore::new(shared.config.runtime.max_in_flight));
    let next_ticket = AtomicU64::new(1);
    let format = shared.config.kafka.format;
    let registry = shared.config.kafka.schema_registry_url.clone();
    let http = reqwest::Client::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        // Wait for room before reading, so a backlog stays in Kafka rather than in memory.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.changed() => break,
        };
        let message = tokio::select! {
            m = shared.consumer.recv() => m,
            _ = shutdown.changed() => break,
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "kafka consumer error; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        shared.metrics.events_received.inc();
        shared.stats.received.fetch_add(1, Ordering::Relaxed);
        let value = Bytes::copy_from_slice(message.payload().unwrap_or_default());
        let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let (partition, offset) = (message.partition(), message.offset());
        drop(message);
        let Some(msg) = shared.tracker.lock().expect("tracker lock").track(partition, offset, value.clone(), key)
        else {
            debug!(partition, offset, "message of a partition no longer assigned; skipped");
            continue;
        };

        let mut decoded = wire::decode(format, &value, &schemas);
        if let (Err(wire::DecodeError::UnknownSchemaId(id)), Some(url)) = (&decoded, &registry) {
            match fetch_schema(&http, url, *id).await {
                Ok(schema) => {
                    schemas.insert(*id, schema);
                    decoded = wire::decode(format, &value, &schemas);
                }
                Err(reason) => warn!(schema_id = id, %reason, "schema registry lookup failed"),
            }
        }

        let new_ticket =
            |permit, event_time_ms, priority, object_key: Option<String>, event: Option<&InstanceEvent>| {
                let ticket = next_ticket.fetch_add(1, Ordering::Relaxed);
                shared.metrics.in_flight.inc();
                shared.in_flight.lock().expect("in-flight lock").insert(
                    ticket,
                    InFlight {
                        msg,
                        _permit: permit,
                        received_at: Instant::now(),
                        event_time_ms,
                        priority,
                        object_key,
                        study_uid: event.map(|e| e.study_instance_uid.clone()),
                        sop_uid: event.map(|e| e.sop_instance_uid.clone()),
                    },
                );
                ticket
            };

        let items: Vec<(OwnedSemaphorePermit, FetchItem)> = match decoded {
            Err(e) => {
                let ticket = new_ticket(permit, now_ms(), Priority::Routine, None, None);
                let reason = format!(
                    "event at {}/{partition}/{offset} cannot be decoded as {}: {e}",
                    shared.config.kafka.input_topic,
                    format.as_str()
                );
                let finish = Finish::DeadLetter {
                    operator: "decode".into(),
                    class: ErrorClass::MalformedEvent,
                    reason,
                    attempts: 1,
                };
                let _ =
                    completion_tx.send(Completion { ticket, finish, branch: None, results: None, stages: Vec::new() });
                continue;
            }
            Ok(EventPayload::Instance(event)) => {
                let item = FetchItem {
                    ticket: 0,
                    location: event.object.clone(),
                    event_time_ms: event.event_time_ms,
                    event: Some(event),
                };
                vec![(permit, item)]
            }
            Ok(EventPayload::ObjectsCreated(objects)) if objects.is_empty() => {
                // A notification with no created object (a delete, say): nothing to do.
                let ticket = new_ticket(permit, now_ms(), Priority::Routine, None, None);
                let finish = Finish::Dropped { operator: "decode".into(), rule: "no_created_object".into() };
                let _ =
                    completion_tx.send(Completion { ticket, finish, branch: None, results: None, stages: Vec::new() });
                continue;
            }
            Ok(EventPayload::ObjectsCreated(objects)) => {
                let mut items = Vec::with_capacity(objects.len());
                let mut permit = Some(permit);
                for created in objects {
                    let p = match permit.take() {
                        Some(p) => p,
                        None => permits.clone().acquire_owned().await.expect("semaphore never closed"),
                    };
                    items.push((
                        p,
                        FetchItem {
                            ticket: 0,
                            location: created.location,
                            event: None,
                            event_time_ms: created.event_time_ms,
                        },
                    ));
                }
                items
            }
        };
        let _ = shared.tracker.lock().expect("tracker lock").set_outputs(&msg, items.len() as u32);
        for (permit, mut item) in items {
            let priority = item.event.as_ref().map(|e| e.priority).unwrap_or_default();
            item.ticket = new_ticket(
                permit,
                item.event_time_ms,
                priority,
                Some(item.location.display_key()),
                item.event.as_ref(),
            );
            if fetch_tx.send(item).await.is_err() {
                error!("fetch stage stopped unexpectedly");
                return;
            }
        }
    }
    info!("stopped reading the input topic");
}

async fn fetch_schema(http: &reqwest::Client, base: &str, id: u32) -> Result<apache_avro::Schema, String> {
    #[derive(serde::Deserialize)]
    struct SchemaById {
        schema: String,
    }
    let url = format!("{}/schemas/ids/{id}", base.trim_end_matches('/'));
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=4 {
        // Err((retryable, reason)): a missing id will not appear by asking again.
        let result: Result<apache_avro::Schema, (bool, String)> = async {
            let resp =
                http.get(&url).timeout(Duration::from_secs(10)).send().await.map_err(|e| (true, e.to_string()))?;
            let status = resp.status();
            if !status.is_success() {
                return Err((status.is_server_error(), format!("HTTP {status} from {url}")));
            }
            let body: SchemaById =
                resp.json().await.map_err(|e| (false, format!("unexpected registry answer: {e}")))?;
            SchemaSet::parse_schema(&body.schema).map_err(|e| (false, e.to_string()))
        }
        .await;
        match result {
            Ok(schema) => return Ok(schema),
            Err((retryable, reason)) if !retryable || attempt == 4 => return Err(reason),
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

impl Shared {
    fn is_live(&self, ticket: u64) -> bool {
        let msg = match self.in_flight.lock().expect("in-flight lock").get(&ticket) {
            Some(f) => f.msg,
            None => return false,
        };
        self.tracker.lock().expect("tracker lock").is_live(&msg)
    }

    /// Drops an instance whose partition was revoked: no outcome, no commit.
    fn abandon(&self, ticket: u64) {
        if self.in_flight.lock().expect("in-flight lock").remove(&ticket).is_some() {
            self.metrics.in_flight.dec();
        }
    }
}

/// Fetches objects (bounded concurrency) and parses their headers on the blocking pool.
async fn fetch_stage(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<FetchItem>,
    next: mpsc::Sender<Envelope>,
    completions: mpsc::UnboundedSender<Completion>,
) {
    let fetcher = Arc::new(ObjectFetcher::new(shared.config.objects.clone()));
    let concurrency = shared.config.objects.concurrency;
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let results = stream
        .map(|item| {
            let shared = shared.clone();
            let fetcher = fetcher.clone();
            async move {
                let ticket = item.ticket;
                if !shared.is_live(ticket) {
                    return (ticket, None);
                }
                (ticket, Some(fetch_and_parse(&shared, &fetcher, item).await))
            }
        })
        .buffer_unordered(concurrency);
    let mut results = std::pin::pin!(results);
    while let Some((ticket, result)) = results.next().await {
        match result {
            None => shared.abandon(ticket),
            Some(Ok(mut envelope)) => {
                envelope.queued_at = Instant::now();
                if let Some(f) = shared.in_flight.lock().expect("in-flight lock").get_mut(&ticket) {
                    f.study_uid = Some(envelope.event.study_instance_uid.clone());
                    f.sop_uid = Some(envelope.event.sop_instance_uid.clone());
                }
                if next.send(envelope).await.is_err() {
                    error!("operator stage stopped unexpectedly");
                    return;
                }
            }
            Some(Err((operator, class, reason))) => {
                let finish = Finish::DeadLetter { operator: operator.into(), class, reason, attempts: 1 };
                let _ =
                    completions.send(Completion { ticket, finish, branch: None, results: None, stages: Vec::new() });
            }
        }
    }
}

type StageError = (&'static str, ErrorClass, String);

async fn fetch_and_parse(shared: &Shared, fetcher: &ObjectFetcher, item: FetchItem) -> Result<Envelope, StageError> {
    let (object, took) = fetcher.fetch(&item.location).await.map_err(|e| ("fetch", e.class, e.reason))?;
    shared.metrics.object_fetch_duration.observe(took.as_secs_f64());
    shared.metrics.object_fetch_bytes.inc_by(object.len() as u64);
    let key = item.location.display_key();
    let bytes = object.clone();
    let header = tokio::task::spawn_blocking(move || parse_header(&bytes))
        .await
        .map_err(|e| ("parse", ErrorClass::Internal, format!("header parser task failed: {e}")))?
        .map_err(|e| {
            ("parse", ErrorClass::MalformedDicom, format!("object {key} is not a readable DICOM Part-10 file: {e}"))
        })?;
    let event = match item.event {
        Some(event) => {
            let sop = element_text(&header, tags::SOP_INSTANCE_UID);
            if sop.as_deref() != Some(event.sop_instance_uid.as_str()) {
                return Err((
                    "parse",
                    ErrorClass::EventMismatch,
                    format!(
                        "object {key} holds SOPInstanceUID {} but the event names {}; fix the producer or re-send the event",
                        sop.as_deref().unwrap_or("(none)"),
                        event.sop_instance_uid
                    ),
                ));
            }
            event
        }
        None => event_from_header(&header, item.location, item.event_time_ms, Priority::Routine, None)
            .map_err(|reason| ("parse", ErrorClass::MalformedDicom, reason))?,
    };
    Ok(Envelope {
        ticket: item.ticket,
        event,
        object,
        header,
        branch: None,
        received_at: Instant::now(),
        queued_at: Instant::now(),
        tensor: None,
        results: None,
        model: None,
        geometry: None,
        outputs: None,
        stage_ms: Vec::new(),
    })
}

/// Operators that rewrite an object parse their output with the same function.
pub use radstream_operators::envelope::{event_from_header, parse_header};

/// Runs one operator: gathers batches (its own batching policy, or the runtime's), routes each
/// envelope by its outcome, retries what the operator marks retryable, dead-letters the rest.
async fn operator_stage(
    shared: Arc<Shared>,
    kind: &'static str,
    mut op: Box<dyn Operator>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Envelope>>>,
    next: Option<mpsc::Sender<Envelope>>,
    completions: mpsc::UnboundedSender<Completion>,
) {
    let rt = &shared.config.runtime;
    let policy =
        op.batching().unwrap_or_else(|| Batching::new(rt.batch_size, Duration::from_millis(rt.batch_linger_ms)));
    let mut gatherer = Gatherer::new(policy);
    let mut closed = false;
    let router = StageRouter { shared: &shared, kind, next: next.as_ref(), completions: &completions };
    let m = &shared.metrics;
    loop {
        let step = {
            // Gather while holding the stage's queue; sibling tasks wait their turn.
            let mut rx = rx.lock().await;
            gather(&mut gatherer, &mut rx, op.next_wake(), &mut closed).await
        };
        match step {
            Step::Closed => break,
            Step::Wake => {
                let processed = op.wake().await;
                // Held envelopes are not retried: a failure here is final.
                if router.route(processed, rt.operator_max_attempts).await.is_err() {
                    return;
                }
            }
            Step::Batch => {
                let batch = gatherer.take();
                let now = Instant::now();
                let delay = m.operator_queue_delay.with_label_values(&[kind]);
                for e in &batch {
                    delay.observe(now.saturating_duration_since(e.queued_at).as_secs_f64());
                }
                let (live, revoked): (Vec<_>, Vec<_>) = batch.into_iter().partition(|e| shared.is_live(e.ticket));
                revoked.into_iter().for_each(|e| shared.abandon(e.ticket));
                let mut todo = live;
                let mut attempt = 1u32;
                while !todo.is_empty() {
                    router.count("in", todo.len());
                    m.operator_batch_size.with_label_values(&[kind]).observe(todo.len() as f64);
                    let started = Instant::now();
                    let processed = op.process_batch(todo).await;
                    m.operator_batch_duration.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
                    let Ok((retry, retry_after)) = router.route(processed, attempt).await else { return };
                    if !retry.is_empty() {
                        tokio::time::sleep(retry_after).await;
                    }
                    attempt += 1;
                    todo = retry;
                }
            }
        }
    }
    let held = op.on_close().await;
    if !held.is_empty() {
        info!(operator = kind, held = held.len(), "held instances left uncommitted; they are read again after restart");
    }
    for envelope in held {
        shared.abandon(envelope.ticket);
    }
}

/// Sends a stage's processed envelopes on by their outcome.
struct StageRouter<'a> {
    shared: &'a Shared,
    kind: &'static str,
    next: Option<&'a mpsc::Sender<Envelope>>,
    completions: &'a mpsc::UnboundedSender<Completion>,
}

impl StageRouter<'_> {
    fn count(&self, outcome: &str, n: usize) {
        self.shared.metrics.operator_events.with_label_values(&[self.kind, outcome]).inc_by(n as u64);
    }

    /// Routes `processed` (at `attempt`); returns the envelopes to retry and how long to wait
    /// first, or `Err` when the next stage is gone.
    async fn route(&self, processed: Vec<Processed>, attempt: u32) -> Result<(Vec<Envelope>, Duration), ()> {
        let (kind, rt) = (self.kind, &self.shared.config.runtime);
        let mut retry = Vec::new();
        let mut retry_after = Duration::ZERO;
        for mut p in processed {
            let ticket = p.envelope.ticket;
            let branch = p.envelope.branch.clone();
            if !matches!(&p.outcome, Outcome::Fail(e) if matches!(e.retry, RetryHint::Retry { .. }) && attempt < rt.operator_max_attempts)
            {
                let spent = p.envelope.queued_at.elapsed().as_secs_f64() * 1000.0;
                p.envelope.stage_ms.push((kind, spent));
            }
            let stages = stage_latencies(&p.envelope);
            match p.outcome {
                Outcome::Forward => {
                    self.count("forwarded", 1);
                    match self.next {
                        Some(next) => {
                            let mut envelope = p.envelope;
                            envelope.queued_at = Instant::now();
                            if next.send(envelope).await.is_err() {
                                error!(operator = kind, "next stage stopped unexpectedly");
                                return Err(());
                            }
                        }
                        None => {
                            let results = p.envelope.results.as_ref().map(|r| r.record());
                            let finish = Finish::Delivered;
                            let _ = self.completions.send(Completion { ticket, finish, branch, results, stages });
                        }
                    }
                }
                Outcome::Drop { rule } => {
                    self.count("dropped", 1);
                    // A drop after the model ran (no findings) still records what it said.
                    let results = p.envelope.results.as_ref().map(|r| r.record());
                    let finish = Finish::Dropped { operator: kind.into(), rule };
                    let _ = self.completions.send(Completion { ticket, finish, branch, results, stages });
                }
                Outcome::Fail(e) => match e.retry {
                    RetryHint::Retry { after } if attempt < rt.operator_max_attempts => {
                        self.count("retried", 1);
                        warn!(operator = kind, object = %p.envelope.object_key(), attempt, reason = %e.reason, "operator failed; retrying");
                        retry_after = retry_after.max(after.unwrap_or(Duration::from_millis(100 << attempt.min(6))));
                        retry.push(p.envelope);
                    }
                    _ => {
                        self.count("failed", 1);
                        let attempts = e.attempts.max(attempt);
                        let finish =
                            Finish::DeadLetter { operator: kind.into(), class: e.class, reason: e.reason, attempts };
                        let _ = self.completions.send(Completion { ticket, finish, branch, results: None, stages });
                    }
                },
            }
        }
        Ok((retry, retry_after))
    }
}

/// Produces each instance's outcome (and dead letter), then acknowledges it.
async fn finisher(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Completion>) {
    let mut pending = FuturesUnordered::new();
    loop {
        tokio::select! {
            c = rx.recv() => match c {
                Some(c) => pending.push(finish_one(shared.clone(), c)),
                None => break,
            },
            Some(()) = pending.next(), if !pending.is_empty() => {}
        }
    }
    while pending.next().await.is_some() {}
}

async fn finish_one(shared: Arc<Shared>, c: Completion) {
    let Some(f) = shared.in_flight.lock().expect("in-flight lock").remove(&c.ticket) else {
        return;
    };
    let m = &shared.metrics;
    let topic = shared.config.kafka.input_topic.clone();
    let original = shared.tracker.lock().expect("tracker lock").message(&f.msg).cloned();
    if original.is_none() {
        // Revoked while in flight: another worker owns the partition now.
        m.in_flight.dec();
        return;
    }
    let (kind, detail) = match &c.finish {
        Finish::Delivered => (OutcomeKind::Delivered, None),
        Finish::Dropped { rule, .. } => (OutcomeKind::Dropped, Some(rule.clone())),
        Finish::DeadLetter { class, .. } => (OutcomeKind::DeadLettered, Some(class.as_str().to_string())),
    };
    let time_ms = now_ms();
    let end_to_end_ms = (time_ms - f.event_time_ms).max(0) as f64;
    let pipeline_ms = f.received_at.elapsed().as_secs_f64() * 1e3;
    let outcome = OutcomeEvent {
        outcome: kind,
        source_topic: topic.clone(),
        source_partition: f.msg.partition,
        source_offset: f.msg.offset,
        object_key: f.object_key.clone(),
        study_instance_uid: f.study_uid.clone(),
        sop_instance_uid: f.sop_uid.clone(),
        branch: c.branch.clone(),
        detail,
        end_to_end_ms,
        pipeline_ms,
        time_ms,
        results: c.results.clone(),
        stages: c.stages.clone(),
    };
    let key = f.study_uid.as_deref();
    match &c.finish {
        Finish::DeadLetter { operator, class, reason, attempts } => {
            let original = original.as_ref().expect("checked above");
            let letter = DeadLetter {
                source_topic: topic.clone(),
                source_partition: f.msg.partition,
                source_offset: f.msg.offset,
                original_value_base64: base64_encode(&original.value),
                original_key: original.key.clone(),
                error_class: *class,
                reason: reason.clone(),
                operator: operator.clone(),
                attempts: *attempts,
                object_key: f.object_key.clone(),
                sop_instance_uid: f.sop_uid.clone(),
                time_ms,
            };
            warn!(operator = %operator, error_class = class.as_str(), object = f.object_key.as_deref().unwrap_or("-"),
                  partition = f.msg.partition, offset = f.msg.offset, %reason, "dead-lettered");
            let outputs = &shared.outputs;
            tokio::join!(
                outputs.send_json(&outputs.dead_letter_topic, key, &letter),
                outputs.send_json(&outputs.outcome_topic, key, &outcome)
            );
            m.dead_letters.with_label_values(&[operator, class.as_str()]).inc();
            shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        Finish::Dropped { operator, rule } => {
            shared.outputs.send_json(&shared.outputs.outcome_topic, key, &outcome).await;
            m.events_dropped.with_label_values(&[operator, rule]).inc();
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Finish::Delivered => {
            shared.outputs.send_json(&shared.outputs.outcome_topic, key, &outcome).await;
            shared.stats.delivered.fetch_add(1, Ordering::Relaxed);
            shared.stats.record_latency(end_to_end_ms, pipeline_ms);
            if let Some(results) = &c.results {
                shared.stats.record_findings(results, f.study_uid.as_deref());
            }
        }
    }
    m.outcomes.with_label_values(&[kind.as_str()]).inc();
    m.end_to_end.with_label_values(&[kind.as_str(), f.priority.as_label()]).observe(end_to_end_ms / 1e3);
    m.pipeline_duration.with_label_values(&[kind.as_str()]).observe(pipeline_ms / 1e3);

    // Store under the tracker lock so offsets of one partition are stored in increasing order.
    let mut tracker = shared.tracker.lock().expect("tracker lock");
    if let AckResult::Commit { partition, offset } = tracker.finish(&f.msg) {
        let mut tpl = TopicPartitionList::new();
        let stored = tpl
            .add_partition_offset(&topic, partition, Offset::Offset(offset))
            .and_then(|()| shared.consumer.store_offsets(&tpl));
        match stored {
            Ok(()) => m.offset_stores.with_label_values(&["ok"]).inc(),
            Err(e) => {
                m.offset_stores.with_label_values(&["error"]).inc();
                warn!(partition, offset, error = %e, "storing the offset failed; the work will be re-read after a rebalance");
            }
        }
    }
    drop(tracker);
    m.in_flight.dec();
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests;

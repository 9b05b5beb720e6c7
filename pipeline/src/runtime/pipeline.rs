//! Starts the pipeline: builds the operator chain, connects the stages, reads until shutdown,
//! then drains and commits.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use radstream_operators::{BuildContext, Envelope, Operator};
use radstream_schemas::wire::SchemaSet;
use rdkafka::consumer::{CommitMode, Consumer};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{AbortHandle, JoinHandle};
use tracing::{info, warn};

use crate::config::Config;
use crate::kafka::outputs::Outputs;
use crate::kafka::source::consumer;
use crate::observe::http::Readiness;
use crate::observe::metrics::Metrics;
use crate::runtime::acks::AckTracker;
use crate::runtime::error::{check_routed_models, RuntimeError};
use crate::runtime::fetch::fetch_stage;
use crate::runtime::finish::finisher;
use crate::runtime::shared::{held_bytes_permits, Completion, FetchItem, Shared};
use crate::runtime::source::consume;
use crate::runtime::stage::operator_stage;
use crate::runtime::stats::RunStats;
use crate::services::{KafkaTableReader, KafkaTopicWriter, StoreObjectWriter};

/// Runs the pipeline until `shutdown` turns true, then drains in-flight work (up to
/// `runtime.drain_deadline_secs`), commits stored offsets and returns.
///
/// It stops the same way, and then returns [`RuntimeError::Failed`], when the worker cannot go
/// on: a stage's task died (a panic outside an operator's batch), or an output topic refuses
/// every record.
pub async fn run(
    config: Config,
    metrics: Metrics,
    stats: Arc<RunStats>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    run_reporting(config, metrics, stats, shutdown, Arc::new(Readiness::default())).await
}

/// [`run`], telling `readiness` (what `/healthz` and `/readyz` answer from) as soon as the
/// worker cannot go on.
pub async fn run_reporting(
    config: Config,
    metrics: Metrics,
    stats: Arc<RunStats>,
    mut shutdown: watch::Receiver<bool>,
    readiness: Arc<Readiness>,
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
    let consumer = Arc::new(consumer(&config.kafka, tracker.clone(), metrics.clone())?);
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
        stop: watch::channel(false).0,
        halt: watch::channel(false).0,
        failure: OnceLock::new(),
        readiness,
        held_bytes: Arc::new(Semaphore::new(held_bytes_permits(rt.max_in_flight_bytes))),
    });
    // The caller's shutdown stops the source (a dropped sender counts as one, as it always has).
    let forward_shutdown = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = shutdown.wait_for(|&on| on).await;
            shared.stop.send_replace(true);
        })
    };

    let (completion_tx, completion_rx) = mpsc::unbounded_channel::<Completion>();
    let (fetch_tx, fetch_rx) = mpsc::channel::<FetchItem>(rt.channel_capacity);
    let mut stage_inputs = Vec::new();
    let mut stage_outputs = Vec::new();
    for _ in 0..stages.len() {
        let (tx, rx) = mpsc::channel::<Envelope>(rt.channel_capacity);
        stage_inputs.push(rx);
        stage_outputs.push(tx);
    }

    // Every task is watched: one that dies of a panic stops the worker (`Shared::fail`).
    let mut tasks = Tasks { shared: shared.clone(), watchers: Vec::new(), aborts: Vec::new() };
    let first_stage = stage_outputs[0].clone();
    tasks.spawn("fetch stage".into(), fetch_stage(shared.clone(), fetch_rx, first_stage, completion_tx.clone()));
    let mut next_senders: Vec<Option<mpsc::Sender<Envelope>>> = stage_outputs.into_iter().skip(1).map(Some).collect();
    next_senders.push(None);
    for (((kind, instances), rx), next) in stages.into_iter().zip(stage_inputs).zip(next_senders) {
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for op in instances {
            let stage = operator_stage(shared.clone(), kind, op, rx.clone(), next.clone(), completion_tx.clone());
            tasks.spawn(format!("operator stage of {kind}"), stage);
        }
    }
    tasks.spawn("finisher".into(), finisher(shared.clone(), completion_rx));

    consume(shared.clone(), fetch_tx, completion_tx, schemas).await;
    forward_shutdown.abort();

    let deadline = Duration::from_secs(rt.drain_deadline_secs);
    let in_flight = shared.in_flight.lock().expect("in-flight lock").len();
    info!(in_flight, deadline_secs = rt.drain_deadline_secs, "draining in-flight work");
    let Tasks { watchers, aborts, .. } = tasks;
    let drained = tokio::time::timeout(deadline, async {
        for watcher in watchers {
            let _ = watcher.await;
        }
    })
    .await;
    if drained.is_err() {
        let left = shared.in_flight.lock().expect("in-flight lock").len();
        warn!(left, "drain deadline passed; unfinished instances stay uncommitted and will be re-read");
        // End every wait still going (an output's retry, a stage's send) and the tasks.
        shared.halt.send_replace(true);
        aborts.iter().for_each(AbortHandle::abort);
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
    match shared.failure.get() {
        Some(reason) => Err(RuntimeError::Failed(reason.clone())),
        None => Ok(()),
    }
}

/// The pipeline's tasks, each with a watcher that stops the worker when the task dies of a
/// panic: its instances would get no outcome, and their partitions would stop committing.
struct Tasks {
    shared: Arc<Shared>,
    /// One per task: ends when the task ends.
    watchers: Vec<JoinHandle<()>>,
    aborts: Vec<AbortHandle>,
}

impl Tasks {
    fn spawn(&mut self, what: String, task: impl Future<Output = ()> + Send + 'static) {
        let (handle, watcher) = watched(self.shared.clone(), what, task);
        self.aborts.push(handle);
        self.watchers.push(watcher);
    }
}

/// Spawns `task` and a watcher of it; returns the task's abort handle and the watcher.
pub(crate) fn watched(
    shared: Arc<Shared>,
    what: String,
    task: impl Future<Output = ()> + Send + 'static,
) -> (AbortHandle, JoinHandle<()>) {
    let handle = tokio::spawn(task);
    let abort = handle.abort_handle();
    let watcher = tokio::spawn(async move {
        // The panic's message is not read: it may quote patient data.
        if handle.await.is_err_and(|e| e.is_panic()) {
            shared.fail(format!(
                "the {what} task panicked: the instances it held get no outcome and their partitions stop \
                 committing, so the worker stops, to be restarted and read them again. This is a bug in \
                 radstream: report it with the worker's log"
            ));
        }
    });
    (abort, watcher)
}

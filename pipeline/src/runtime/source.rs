//! The source: reads the input topic, decodes each event (fetching unknown Avro writer schemas
//! from the registry), tracks its offset and hands its objects to the fetch stage.
//!
//! Every wait here (for room, for a message, for the registry, for the fetch stage) also ends
//! on the stop signal, so a SIGTERM (or a failure) always ends the read loop and the drain can
//! begin.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use radstream_operators::contract::Backoff;
use radstream_schemas::wire::{self, SchemaSet};
use radstream_schemas::{ErrorClass, EventPayload, InstanceEvent, Priority};
use rdkafka::message::Message;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, error, info, warn};

use crate::runtime::acks::MessageRef;
use crate::runtime::shared::{now_ms, stopped, Completion, FetchItem, Finish, InFlight, Shared};

/// Reads the input topic until `shared.stop` turns true.
pub(crate) async fn consume(
    shared: Arc<Shared>,
    fetch_tx: mpsc::Sender<FetchItem>,
    completion_tx: mpsc::UnboundedSender<Completion>,
    schemas: SchemaSet,
) {
    let mut stop = shared.stop.subscribe();
    let mut source = Source::new(shared.clone(), fetch_tx, completion_tx, schemas);
    // Consumer errors in a row, for the wait before reading again.
    let mut recv_errors = 0u32;
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        // Wait for room before reading, so a backlog stays in Kafka rather than in memory.
        let permit = tokio::select! {
            p = source.permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            () = stopped(&mut stop) => break,
        };
        let message = tokio::select! {
            m = shared.consumer.recv() => m,
            () = stopped(&mut stop) => break,
        };
        let message = match message {
            Ok(m) => {
                recv_errors = 0;
                m
            }
            Err(e) => {
                warn!(error = %e, "kafka consumer error; retrying");
                recv_errors = recv_errors.saturating_add(1);
                tokio::select! {
                    () = tokio::time::sleep(RECV_RETRY.delay(recv_errors, None)) => continue,
                    () = stopped(&mut stop) => break,
                }
            }
        };
        let value = Bytes::copy_from_slice(message.payload().unwrap_or_default());
        let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let (partition, offset) = (message.partition(), message.offset());
        drop(message);
        if source.handle(permit, partition, offset, value, key).await.is_break() {
            break;
        }
    }
    info!("stopped reading the input topic");
}

/// The wait before reading the input topic again after a consumer error: 200 ms, however many
/// in a row (librdkafka reconnects on its own; the wait only keeps a lasting error from spinning).
const RECV_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(200)).without_jitter();

/// The waits between schema lookups while the registry is unreachable or failing (connect
/// error, timeout, 5xx): 200 ms doubling to 30 s, jittered (every worker of the group waits for
/// the same registry), with no attempt limit: the input waits for the registry rather than
/// dead-letter every event while it is down. Only the stop signal ends the wait.
const REGISTRY_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));

/// What the read loop keeps between messages: the room left, the next ticket, the writer
/// schemas learned, and where each message's instances go.
pub(crate) struct Source {
    shared: Arc<Shared>,
    /// One permit per instance in flight (`runtime.max_in_flight`).
    pub(crate) permits: Arc<Semaphore>,
    next_ticket: u64,
    fetch_tx: mpsc::Sender<FetchItem>,
    completion_tx: mpsc::UnboundedSender<Completion>,
    schemas: SchemaSet,
    http: reqwest::Client,
    registry_retry: Backoff,
    stop: watch::Receiver<bool>,
}

/// The registry could not be asked to the end: the stop signal came first.
struct Stopped;

impl Source {
    pub(crate) fn new(
        shared: Arc<Shared>,
        fetch_tx: mpsc::Sender<FetchItem>,
        completion_tx: mpsc::UnboundedSender<Completion>,
        schemas: SchemaSet,
    ) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(shared.config.runtime.max_in_flight)),
            stop: shared.stop.subscribe(),
            shared,
            next_ticket: 1,
            fetch_tx,
            completion_tx,
            schemas,
            http: reqwest::Client::new(),
            registry_retry: REGISTRY_RETRY,
        }
    }

    /// Handles one message read at `partition`/`offset`, whose room (`permit`) was taken
    /// before reading it. A notification of many objects takes the room of each further object
    /// only as the one before it moves on, so a notification of any size flows whatever
    /// `runtime.max_in_flight` is. `Break` when the stop signal came (the message stays
    /// uncommitted) or the fetch stage is gone.
    pub(crate) async fn handle(
        &mut self,
        permit: OwnedSemaphorePermit,
        partition: i32,
        offset: i64,
        value: Bytes,
        key: Option<String>,
    ) -> ControlFlow<()> {
        let shared = self.shared.clone();
        shared.metrics.events_received.inc();
        shared.stats.received.fetch_add(1, Ordering::Relaxed);
        let Some(msg) = shared.tracker.lock().expect("tracker lock").track(partition, offset, value.clone(), key)
        else {
            debug!(partition, offset, "message of a partition no longer assigned; skipped");
            return ControlFlow::Continue(());
        };

        let format = shared.config.kafka.format;
        let mut decoded = wire::decode(format, &value, &self.schemas);
        let mut registry_answer = None;
        if let (Err(wire::DecodeError::UnknownSchemaId(id)), Some(url)) =
            (&decoded, &shared.config.kafka.schema_registry_url)
        {
            let id = *id;
            match self.writer_schema(url, id).await {
                Ok(Ok(schema)) => {
                    self.schemas.insert(id, schema);
                    decoded = wire::decode(format, &value, &self.schemas);
                }
                Ok(Err(reason)) => {
                    warn!(schema_id = id, %reason, "the schema registry does not know the event's writer schema");
                    registry_answer = Some(reason);
                }
                Err(Stopped) => return ControlFlow::Break(()),
            }
        }

        match decoded {
            Err(e) => {
                let mut reason = format!(
                    "event at {}/{partition}/{offset} cannot be decoded as {}: {e}",
                    shared.config.kafka.input_topic,
                    format.as_str()
                );
                if let Some(answer) = registry_answer {
                    reason.push_str(&format!(" (the schema registry answered: {answer})"));
                }
                let finish = Finish::DeadLetter {
                    operator: "decode".into(),
                    class: ErrorClass::MalformedEvent,
                    reason,
                    attempts: 1,
                };
                self.finish_at_once(msg, permit, finish);
                ControlFlow::Continue(())
            }
            Ok(EventPayload::Instance(event)) => {
                let item = FetchItem {
                    ticket: 0,
                    location: event.object.clone(),
                    event_time_ms: event.event_time_ms,
                    event: Some(event),
                };
                self.send(msg, permit, item).await
            }
            Ok(EventPayload::ObjectsCreated(objects)) if objects.is_empty() => {
                // A notification with no created object (a delete, say): nothing to do.
                let finish = Finish::Dropped { operator: "decode".into(), rule: "no_created_object".into() };
                self.finish_at_once(msg, permit, finish);
                ControlFlow::Continue(())
            }
            Ok(EventPayload::ObjectsCreated(objects)) => {
                // Every instance is counted before the first can finish, so the message is
                // committed only once all of them are.
                let _ = shared.tracker.lock().expect("tracker lock").set_outputs(&msg, objects.len() as u32);
                let mut first = Some(permit);
                for created in objects {
                    let permit = match first.take() {
                        Some(p) => p,
                        None => tokio::select! {
                            p = self.permits.clone().acquire_owned() => p.expect("semaphore never closed"),
                            () = stopped(&mut self.stop) => return ControlFlow::Break(()),
                        },
                    };
                    let item = FetchItem {
                        ticket: 0,
                        location: created.location,
                        event: None,
                        event_time_ms: created.event_time_ms,
                    };
                    self.send(msg, permit, item).await?;
                }
                ControlFlow::Continue(())
            }
        }
    }

    /// Registers one instance of `msg` as in flight (it holds `permit` until it finishes).
    fn ticket(
        &mut self,
        msg: MessageRef,
        permit: OwnedSemaphorePermit,
        event_time_ms: i64,
        priority: Priority,
        object_key: Option<String>,
        event: Option<&InstanceEvent>,
    ) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.shared.metrics.in_flight.inc();
        self.shared.in_flight.lock().expect("in-flight lock").insert(
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
                held: None,
            },
        );
        ticket
    }

    /// A message that ends here, with no instance to fetch.
    fn finish_at_once(&mut self, msg: MessageRef, permit: OwnedSemaphorePermit, finish: Finish) {
        let ticket = self.ticket(msg, permit, now_ms(), Priority::Routine, None, None);
        let _ = self.completion_tx.send(Completion { ticket, finish, branch: None, results: None, stages: Vec::new() });
    }

    /// Hands one instance of `msg` to the fetch stage.
    async fn send(&mut self, msg: MessageRef, permit: OwnedSemaphorePermit, mut item: FetchItem) -> ControlFlow<()> {
        let priority = item.event.as_ref().map(|e| e.priority).unwrap_or_default();
        let key = Some(item.location.display_key());
        item.ticket = self.ticket(msg, permit, item.event_time_ms, priority, key, item.event.as_ref());
        let ticket = item.ticket;
        tokio::select! {
            sent = self.fetch_tx.send(item) => {
                if sent.is_err() {
                    error!("fetch stage stopped unexpectedly");
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            }
            () = stopped(&mut self.stop) => {
                // Never handed over: it gets no outcome, and its message stays uncommitted.
                self.shared.abandon(ticket);
                ControlFlow::Break(())
            }
        }
    }

    /// The writer schema `id` from the registry at `url`: `Ok(Err(reason))` when the registry
    /// answered that it has none (or one that does not parse); while it cannot answer, asked
    /// again and again (see [`REGISTRY_RETRY`]) until the stop signal.
    async fn writer_schema(&mut self, url: &str, id: u32) -> Result<Result<apache_avro::Schema, String>, Stopped> {
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let reason = match fetch_schema(&self.http, url, id).await {
                Ok(schema) => return Ok(Ok(schema)),
                Err(Lookup::Definitive(reason)) => return Ok(Err(reason)),
                Err(Lookup::Unavailable(reason)) => reason,
            };
            let delay = self.registry_retry.delay(attempt, None);
            warn!(schema_id = id, %reason, attempt, retry_in_ms = delay.as_millis() as u64,
                  "schema registry unavailable; the input waits for it (nothing is dead-lettered meanwhile)");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&mut self.stop) => return Err(Stopped),
            }
        }
    }
}

/// Why a schema lookup gave no schema.
#[derive(Debug)]
enum Lookup {
    /// The registry answered, and asking again will not change its answer: it has no schema of
    /// that id (404), or the schema it has does not parse.
    Definitive(String),
    /// The registry could not answer (connect error, timeout, 5xx, an answer that is not the
    /// registry's): ask again later.
    Unavailable(String),
}

/// One lookup of writer schema `id` at the registry `base` (Confluent's `GET /schemas/ids/{id}`).
async fn fetch_schema(http: &reqwest::Client, base: &str, id: u32) -> Result<apache_avro::Schema, Lookup> {
    #[derive(serde::Deserialize)]
    struct SchemaById {
        schema: String,
    }
    let target = format!("{}/schemas/ids/{id}", base.trim_end_matches('/'));
    // Reasons name the URL without credentials a `user:password@` prefix may hold.
    let url = shown_url(&target);
    let resp = http
        .get(&target)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| Lookup::Unavailable(format!("{url}: {}", e.without_url())))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(Lookup::Definitive(format!("HTTP {status} from {url}: no schema of id {id}")));
    }
    if !status.is_success() {
        let hint = if status.is_client_error() {
            "; check kafka.schema_registry_url and the registry's credentials"
        } else {
            ""
        };
        return Err(Lookup::Unavailable(format!("HTTP {status} from {url}{hint}")));
    }
    // A body that is not the registry's JSON is more likely a proxy's page than the registry's
    // answer: ask again rather than dead-letter on it.
    let body: SchemaById = resp
        .json()
        .await
        .map_err(|e| Lookup::Unavailable(format!("unexpected answer from {url}: {}", e.without_url())))?;
    SchemaSet::parse_schema(&body.schema)
        .map_err(|e| Lookup::Definitive(format!("the schema of id {id} at {url} does not parse: {e}")))
}

/// `url` without the user name and password it may hold.
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "the schema registry URL (kafka.schema_registry_url)".into(),
    }
}

#[cfg(test)]
mod tests;

//! The source: reads the input topic, decodes each event (fetching unknown Avro writer schemas
//! from the registry), tracks its offset and hands its objects to the fetch stage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use radstream_operators::contract::Backoff;
use radstream_schemas::wire::{self, SchemaSet};
use radstream_schemas::{ErrorClass, EventPayload, InstanceEvent, Priority};
use rdkafka::message::Message;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, error, info, warn};

use crate::runtime::shared::{now_ms, Completion, FetchItem, Finish, InFlight, Shared};

/// Reads the input topic until shutdown.
pub(crate) async fn consume(
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
    // Consumer errors in a row, for the wait before reading again.
    let mut recv_errors = 0u32;
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
            Ok(m) => {
                recv_errors = 0;
                m
            }
            Err(e) => {
                warn!(error = %e, "kafka consumer error; retrying");
                recv_errors = recv_errors.saturating_add(1);
                tokio::time::sleep(RECV_RETRY.delay(recv_errors, None)).await;
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

/// The wait before reading the input topic again after a consumer error: 200 ms, however many
/// in a row (librdkafka reconnects on its own; the wait only keeps a lasting error from spinning).
const RECV_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(200)).without_jitter();

/// Tries of a schema lookup: 4 in all, 200, 400 and 800 ms apart (no jitter: a worker looks each
/// unknown id up once and keeps the schema); only a transport or server error is tried again.
const SCHEMA_RETRY: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_millis(800)).with_max_attempts(4).without_jitter();

async fn fetch_schema(http: &reqwest::Client, base: &str, id: u32) -> Result<apache_avro::Schema, String> {
    #[derive(serde::Deserialize)]
    struct SchemaById {
        schema: String,
    }
    let url = format!("{}/schemas/ids/{id}", base.trim_end_matches('/'));
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
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
            Err((false, reason)) => return Err(reason),
            Err((true, reason)) => match SCHEMA_RETRY.next_delay(attempt, started.elapsed(), None) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(reason),
            },
        }
    }
}

#[cfg(test)]
mod tests;

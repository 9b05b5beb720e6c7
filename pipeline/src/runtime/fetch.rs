//! The fetch stage: fetches each object and parses its header off the executor.

use std::sync::Arc;
use std::time::Instant;

use dicom_dictionary_std::tags;
use futures::stream::StreamExt;
use radstream_operators::{element_text, event_from_header, parse_header, Envelope};
use radstream_schemas::{ErrorClass, Priority};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tracing::error;

use crate::objects::ObjectFetcher;
use crate::runtime::shared::{held_bytes_permits, permits_for, stopped, Completion, FetchItem, Finish, Shared};

/// Fetches objects (bounded concurrency) and parses their headers on the blocking pool.
pub(crate) async fn fetch_stage(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<FetchItem>,
    next: mpsc::Sender<Envelope>,
    completions: mpsc::UnboundedSender<Completion>,
) {
    let fetcher = Arc::new(ObjectFetcher::new(shared.config.objects.clone()));
    let mut halt = shared.halt.subscribe();
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
            Some(Ok((mut envelope, held))) => {
                envelope.queued_at = Instant::now();
                if let Some(f) = shared.in_flight.lock().expect("in-flight lock").get_mut(&ticket) {
                    f.study_uid = Some(envelope.event.study_instance_uid.clone());
                    f.sop_uid = Some(envelope.event.sop_instance_uid.clone());
                    f.held = Some(held);
                }
                // The drain hands fetched objects on; only its end (`halt`) ends this wait.
                tokio::select! {
                    sent = next.send(envelope) => if sent.is_err() {
                        error!("operator stage stopped unexpectedly");
                        return;
                    },
                    () = stopped(&mut halt) => return,
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

/// Fetches and parses one object, holding its share of `runtime.max_in_flight_bytes` from
/// before it is read; the share goes into its in-flight entry, which gives it back with the
/// outcome.
async fn fetch_and_parse(
    shared: &Shared,
    fetcher: &ObjectFetcher,
    item: FetchItem,
) -> Result<(Envelope, OwnedSemaphorePermit), StageError> {
    let size = match item.location.size.and_then(|s| u64::try_from(s).ok()) {
        Some(size) => size,
        None => fetcher.size(&item.location).await.map_err(|e| ("fetch", e.class, e.reason))?,
    };
    let total = held_bytes_permits(shared.config.runtime.max_in_flight_bytes);
    let held = shared
        .held_bytes
        .clone()
        .acquire_many_owned(permits_for(size, total))
        .await
        .map_err(|_| ("fetch", ErrorClass::Internal, "the in-flight byte budget is closed".to_string()))?;
    let (object, took) = fetcher.fetch(&item.location).await.map_err(|e| ("fetch", e.class, e.reason))?;
    let mut held = held;
    let more = permits_for(object.len() as u64, total).saturating_sub(held.num_permits() as u32);
    if more > 0 {
        // The event understated the size: the object holds what it is.
        if let Ok(extra) = shared.held_bytes.clone().acquire_many_owned(more).await {
            held.merge(extra);
        }
    }
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
    Ok((Envelope::new(item.ticket, event, object, header, Instant::now()), held))
}

#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicUsize;

use axum::http::StatusCode;
use axum::routing::get;
use radstream_schemas::{InstanceEvent, ObjectLocation};

use super::*;
use crate::runtime::tests::test_shared;

/// Awaits `future`, failing (rather than hanging the suite) if it never ends: the waits under
/// test are the ones that used to hang forever.
async fn ends<F: std::future::Future>(future: F, what: &str) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), future).await.unwrap_or_else(|_| panic!("{what} never ended"))
}

/// An S3 notification of `n` created objects, `incoming/0.dcm` to `incoming/{n-1}.dcm`.
fn notification(n: usize) -> Bytes {
    let records: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"eventName":"ObjectCreated:Put","eventTime":"2024-01-01T00:00:00.000Z",
                    "s3":{{"bucket":{{"name":"incoming"}},"object":{{"key":"incoming/{i}.dcm","size":123}}}}}}"#
            )
        })
        .collect();
    Bytes::from(format!(r#"{{"Records":[{}]}}"#, records.join(",")))
}

fn source_of(
    shared: &Arc<Shared>,
    fetch_capacity: usize,
) -> (Source, mpsc::Receiver<FetchItem>, mpsc::UnboundedReceiver<Completion>) {
    let (fetch_tx, fetch_rx) = mpsc::channel(fetch_capacity);
    let (completion_tx, completion_rx) = mpsc::unbounded_channel();
    let mut source = Source::new(shared.clone(), fetch_tx, completion_tx, SchemaSet::new());
    source.registry_retry = Backoff::new(Duration::from_millis(1), Duration::from_millis(1)).without_jitter();
    (source, fetch_rx, completion_rx)
}

/// Waits (yielding) until `shared` has `n` instances in flight.
async fn until_in_flight(shared: &Shared, n: usize) {
    while shared.in_flight.lock().unwrap().len() != n {
        tokio::task::yield_now().await;
    }
}

/// Issue 16, item 4: a notification of more records than `runtime.max_in_flight` used to take
/// every permit before handing any instance on, and waited for ever for the one it could not
/// get (and so did the next worker, reading the same message). Each instance now moves on
/// before the next permit is asked for.
#[tokio::test]
async fn a_notification_of_more_records_than_max_in_flight_flows() {
    let shared = test_shared("max_in_flight = 2\nchannel_capacity = 1", r#"format = "s3_notification""#);
    let (mut source, mut fetch_rx, _completions) = source_of(&shared, 1);
    // The finisher's part: each instance fetched finishes, giving its permit back.
    let finished = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut keys = Vec::new();
            while let Some(item) = fetch_rx.recv().await {
                keys.push(item.location.key);
                shared.in_flight.lock().unwrap().remove(&item.ticket);
            }
            keys
        })
    };
    let permit = source.permits.clone().acquire_owned().await.unwrap();
    let flow = ends(source.handle(permit, 0, 5, notification(7), None), "a notification of 7 records").await;
    assert_eq!(flow, ControlFlow::Continue(()));
    drop(source);
    let keys = finished.await.unwrap();
    assert_eq!(keys, (0..7).map(|i| format!("incoming/{i}.dcm")).collect::<Vec<_>>());

    // The message counts all seven: it is committable only once the last one finishes.
    let msg = MessageRef { partition: 0, offset: 5, epoch: 1 };
    let mut tracker = shared.tracker.lock().unwrap();
    for _ in 0..6 {
        assert_eq!(tracker.finish(&msg), crate::runtime::acks::AckResult::Pending);
    }
    assert_eq!(tracker.finish(&msg), crate::runtime::acks::AckResult::Commit { partition: 0, offset: 6 });
}

/// Issue 16, item 4: a SIGTERM ends the wait for room inside a notification (it had no
/// shutdown branch); the message stays uncommitted.
#[tokio::test]
async fn stop_ends_the_wait_for_room_inside_a_notification() {
    let shared = test_shared("max_in_flight = 1", r#"format = "s3_notification""#);
    let (mut source, mut fetch_rx, _completions) = source_of(&shared, 8);
    let permit = source.permits.clone().acquire_owned().await.unwrap();
    let handled = tokio::spawn(async move { source.handle(permit, 0, 0, notification(3), None).await });
    // The first instance is handed on and never finishes: the second waits for its room.
    let first = ends(fetch_rx.recv(), "the first instance's hand-over").await.unwrap();
    assert_eq!(first.location.key, "incoming/0.dcm");
    shared.stop.send_replace(true);
    let flow = ends(handled, "the wait for room after a stop").await.unwrap();
    assert_eq!(flow, ControlFlow::Break(()));
    assert!(fetch_rx.try_recv().is_err(), "nothing more is handed on after the stop");
}

/// A stop also ends a wait for the fetch stage's channel; the instance never handed over is
/// not left in flight.
#[tokio::test]
async fn stop_ends_the_wait_for_a_full_fetch_channel() {
    let shared = test_shared("max_in_flight = 10", r#"format = "s3_notification""#);
    let (mut source, _fetch_rx, _completions) = source_of(&shared, 1);
    let permit = source.permits.clone().acquire_owned().await.unwrap();
    let handled = tokio::spawn(async move { source.handle(permit, 0, 0, notification(3), None).await });
    // The first fills the channel; the second is ticketed and waits to be sent.
    until_in_flight(&shared, 2).await;
    shared.stop.send_replace(true);
    let flow = ends(handled, "the wait for the fetch channel after a stop").await.unwrap();
    assert_eq!(flow, ControlFlow::Break(()));
    assert_eq!(shared.in_flight.lock().unwrap().len(), 1, "the unsent instance is abandoned");
}

fn sample_event() -> InstanceEvent {
    InstanceEvent {
        object: ObjectLocation { bucket: "incoming".into(), key: "studies/1.dcm".into(), size: None, etag: None },
        study_instance_uid: "1.2.826.0.1.3680043.8.498.1".into(),
        series_instance_uid: "1.2.826.0.1.3680043.8.498.2".into(),
        sop_instance_uid: "1.2.826.0.1.3680043.8.498.3".into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
        modality: "OT".into(),
        body_part_examined: None,
        instance_number: None,
        expected_series_instances: None,
        priority: Priority::Routine,
        source: None,
        event_time_ms: 1_704_067_200_000,
    }
}

/// A stand-in for Confluent Schema Registry's `GET /schemas/ids/{id}` (no registry server can
/// be installed on the test machines): it answers `failures` times with `failure`, then with
/// the v1 schema for id 7 and 404 for any other. Returns its base URL and a count of requests.
async fn registry(failures: usize, failure: StatusCode) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/schemas/ids/{id}",
        get(move |axum::extract::Path(id): axum::extract::Path<u32>| {
            let calls = counted.clone();
            async move {
                if calls.fetch_add(1, Ordering::Relaxed) < failures {
                    return (failure, String::from("busy"));
                }
                if id == 7 {
                    let body =
                        serde_json::json!({ "schema": radstream_schemas::instance_event::INSTANCE_EVENT_V1_AVSC });
                    (StatusCode::OK, body.to_string())
                } else {
                    (StatusCode::NOT_FOUND, r#"{"error_code":40403,"message":"Schema not found"}"#.into())
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, calls)
}

fn avro_shared(base: &str) -> Arc<Shared> {
    test_shared("", &format!("format = \"confluent_avro\"\nschema_registry_url = \"{base}\""))
}

fn avro_event(schema_id: u32) -> Bytes {
    Bytes::from(wire::encode_confluent(&sample_event(), schema_id, &SchemaSet::v1()).unwrap())
}

#[tokio::test]
async fn writer_schemas_are_fetched_by_id_from_a_registry() {
    let (base, _calls) = registry(0, StatusCode::OK).await;
    let http = reqwest::Client::new();
    let schema = fetch_schema(&http, &base, 7).await.unwrap();
    assert_eq!(schema.canonical_form(), SchemaSet::v1().canonical_form());
    let Err(Lookup::Definitive(reason)) = fetch_schema(&http, &base, 8).await else { panic!("404 is definitive") };
    assert!(reason.contains("404"), "{reason}");
    let (busy, _calls) = registry(usize::MAX, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(matches!(fetch_schema(&http, &busy, 7).await, Err(Lookup::Unavailable(r)) if r.contains("503")));
    // Nothing listens there: a connect error.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    assert!(matches!(fetch_schema(&http, &closed, 7).await, Err(Lookup::Unavailable(_))));
}

/// Issue 16, item 8: while the registry fails (5xx), the event waits for it and is then
/// decoded; it used to be dead-lettered after four tries, and so was every event after it.
#[tokio::test]
async fn a_registry_outage_pauses_the_event_instead_of_dead_lettering_it() {
    let (base, calls) = registry(6, StatusCode::SERVICE_UNAVAILABLE).await;
    let shared = avro_shared(&base);
    let (mut source, mut fetch_rx, mut completions) = source_of(&shared, 8);
    let permit = source.permits.clone().acquire_owned().await.unwrap();
    let flow = ends(source.handle(permit, 0, 0, avro_event(7), None), "the registry lookup").await;
    assert_eq!(flow, ControlFlow::Continue(()));
    assert!(completions.try_recv().is_err(), "nothing is dead-lettered");
    let item = fetch_rx.try_recv().expect("the event moves on once the registry answers");
    assert_eq!(item.event.unwrap().sop_instance_uid, sample_event().sop_instance_uid);
    assert_eq!(calls.load(Ordering::Relaxed), 7);
}

/// Only the registry's definitive answer (no such id) dead-letters the event, asked once.
#[tokio::test]
async fn an_unknown_schema_id_is_dead_lettered_with_the_registrys_answer() {
    let (base, calls) = registry(0, StatusCode::OK).await;
    let shared = avro_shared(&base);
    let (mut source, mut fetch_rx, mut completions) = source_of(&shared, 8);
    let permit = source.permits.clone().acquire_owned().await.unwrap();
    assert_eq!(source.handle(permit, 0, 0, avro_event(8), None).await, ControlFlow::Continue(()));
    let completion = completions.try_recv().expect("a dead letter");
    let Finish::DeadLetter { class, reason, .. } = completion.finish else { panic!("{completion:?}") };
    assert_eq!(class, ErrorClass::MalformedEvent);
    assert!(reason.contains("404") && reason.contains("no schema of id 8"), "{reason}");
    assert!(fetch_rx.try_recv().is_err());
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

/// A stop ends the wait for a registry that is down; the event is neither dead-lettered nor
/// committed.
#[tokio::test]
async fn stop_ends_the_wait_for_the_registry() {
    let (base, calls) = registry(usize::MAX, StatusCode::BAD_GATEWAY).await;
    let shared = avro_shared(&base);
    let (mut source, _fetch_rx, mut completions) = source_of(&shared, 8);
    source.registry_retry = Backoff::new(Duration::from_secs(3_600), Duration::from_secs(3_600)).without_jitter();
    let permit = source.permits.clone().acquire_owned().await.unwrap();
    let handled = tokio::spawn(async move { source.handle(permit, 0, 0, avro_event(7), None).await });
    while calls.load(Ordering::Relaxed) == 0 {
        tokio::task::yield_now().await;
    }
    shared.stop.send_replace(true);
    let flow = ends(handled, "the wait for the registry after a stop").await.unwrap();
    assert_eq!(flow, ControlFlow::Break(()));
    assert!(completions.try_recv().is_err(), "nothing is dead-lettered");
}

/// The registry's URL may carry credentials; no reason shows them.
#[tokio::test]
async fn registry_reasons_show_no_credentials() {
    let (base, _calls) = registry(0, StatusCode::OK).await;
    let with_credentials = base.replace("http://", "http://radstream:s3cret@");
    let Err(Lookup::Definitive(reason)) = fetch_schema(&reqwest::Client::new(), &with_credentials, 8).await else {
        panic!("404 is definitive")
    };
    assert!(!reason.contains("s3cret") && reason.contains("/schemas/ids/8"), "{reason}");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://radstream:s3cret@{}", listener.local_addr().unwrap())
    };
    let Err(Lookup::Unavailable(reason)) = fetch_schema(&reqwest::Client::new(), &closed, 7).await else {
        panic!("a connect error is not definitive")
    };
    assert!(!reason.contains("s3cret"), "{reason}");
}

#[test]
fn a_consumer_error_waits_200_ms_however_many_in_a_row() {
    assert!((1..=20).all(|n| RECV_RETRY.delay(n, None) == Duration::from_millis(200)));
}

#[test]
fn the_registry_is_asked_again_200_ms_doubling_to_30_s_and_never_given_up() {
    assert_eq!(REGISTRY_RETRY.max_attempts, 0);
    assert_eq!(REGISTRY_RETRY.ceiling(1), Duration::from_millis(200));
    assert_eq!(REGISTRY_RETRY.ceiling(20), Duration::from_secs(30));
    assert!(REGISTRY_RETRY.next_delay(10_000, Duration::from_secs(86_400), None).is_some());
}

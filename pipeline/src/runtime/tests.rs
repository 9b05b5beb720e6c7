use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use radstream_schemas::Priority;
use tokio::sync::{watch, Semaphore};

use super::*;
use crate::config::Config;
use crate::kafka::outputs::Outputs;
use crate::kafka::source::consumer;
use crate::observe::metrics::Metrics;
use crate::runtime::acks::AckTracker;
use crate::runtime::shared::{held_bytes_permits, InFlight, Shared};

#[test]
fn non_dicom_bytes_are_rejected_with_a_reason() {
    let err = parse_header(b"this is not a DICOM file at all, just text").unwrap_err();
    assert!(err.contains("DICM"), "{err}");
}

/// A `Shared` for the runtime's unit tests: `runtime` and `kafka` are extra lines of those
/// sections. Its Kafka clients point at a port where no broker listens (they are created, never
/// used), and partition 0 is assigned.
pub(crate) fn test_shared(runtime: &str, kafka: &str) -> Arc<Shared> {
    let text = format!(
        r#"
        [kafka]
        brokers = "127.0.0.1:1"
        input_topic = "dicom.instances"
        {kafka}

        [runtime]
        {runtime}

        [[operators]]
        type = "route"
        default_action = "forward"
        default_branch = "all"

        [[operators]]
        type = "stow"
        url = "http://127.0.0.1:1/dicom-web"
        "#
    );
    let config = Config::from_toml_str(&text, Path::new("test.toml"), std::iter::empty()).unwrap();
    let rt_bytes = config.runtime.max_in_flight_bytes;
    let metrics = Metrics::new();
    let tracker = Arc::new(Mutex::new(AckTracker::default()));
    tracker.lock().unwrap().assign(0);
    let consumer = Arc::new(consumer(&config.kafka, tracker.clone(), metrics.clone()).unwrap());
    let outputs = Outputs::new(&config.kafka).unwrap();
    Arc::new(Shared {
        config,
        metrics,
        stats: Arc::default(),
        tracker,
        in_flight: Mutex::new(HashMap::new()),
        consumer,
        outputs,
        stop: watch::channel(false).0,
        halt: watch::channel(false).0,
        failure: OnceLock::new(),
        readiness: Arc::default(),
        held_bytes: Arc::new(Semaphore::new(held_bytes_permits(rt_bytes))),
    })
}

/// Registers `ticket` as an instance in flight of the message at partition 0, offset `ticket`,
/// as the source does, so that the stages take it as live.
pub(crate) fn track_instance(shared: &Shared, ticket: u64) {
    let msg = shared.tracker.lock().unwrap().track(0, ticket as i64, bytes::Bytes::new(), None).unwrap();
    let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
    let in_flight = InFlight {
        msg,
        _permit: permit,
        received_at: Instant::now(),
        event_time_ms: 0,
        priority: Priority::Routine,
        object_key: None,
        study_uid: None,
        sop_uid: None,
        held: None,
    };
    shared.in_flight.lock().unwrap().insert(ticket, in_flight);
}

/// A task that dies of a panic (one outside an operator's batch, which the stage catches)
/// makes the worker unhealthy and stops it, with a reason that names the task and nothing of
/// the panic's message; `run` then returns it as `RuntimeError::Failed` (exit 1).
#[tokio::test]
async fn a_task_that_dies_of_a_panic_makes_the_worker_unhealthy_and_stops_it() {
    let shared = test_shared("", "");
    assert!(shared.readiness.failure().is_none());
    let (_abort, watcher) = pipeline::watched(shared.clone(), "operator stage of stow".into(), async {
        panic!("PatientName DOE^JOHN");
    });
    watcher.await.unwrap();
    let reason = shared.failure.get().expect("the worker failed");
    assert!(reason.contains("the operator stage of stow task panicked"), "{reason}");
    assert!(!reason.contains("DOE^JOHN"), "{reason}");
    assert_eq!(shared.readiness.failure(), Some(reason.as_str()));
    assert!(*shared.stop.borrow(), "the source is told to stop");

    // A task that ends, or is aborted at the drain deadline, is no failure.
    let shared = test_shared("", "");
    let (_abort, watcher) = pipeline::watched(shared.clone(), "finisher".into(), async {});
    watcher.await.unwrap();
    let (abort, watcher) = pipeline::watched(shared.clone(), "fetch stage".into(), std::future::pending());
    abort.abort();
    watcher.await.unwrap();
    assert!(shared.failure.get().is_none());
}

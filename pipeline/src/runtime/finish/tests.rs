use radstream_schemas::ErrorClass;

use super::*;
use crate::runtime::tests::test_shared;

fn letter() -> DeadLetter {
    DeadLetter {
        source_topic: "dicom.instances".into(),
        source_partition: 3,
        source_offset: 41,
        original_value_base64: "A".repeat(2_000_000),
        original_key: None,
        error_class: ErrorClass::MalformedEvent,
        reason: "event at dicom.instances/3/41 cannot be decoded as json".into(),
        operator: "decode".into(),
        attempts: 1,
        object_key: None,
        sop_instance_uid: None,
        time_ms: 0,
    }
}

/// Issue 16, item 8: a dead letter too large for its topic (a message near the size limit
/// grows by a third in base64) is sent without the original value, saying where it still is,
/// rather than retried for ever.
#[test]
fn a_dead_letter_too_large_for_its_topic_leaves_the_original_out_and_says_where_it_is() {
    let smaller = without_original(&letter(), 2_000_400);
    assert!(smaller.original_value_base64.is_empty());
    assert!(
        smaller.reason.starts_with("event at dicom.instances/3/41 cannot be decoded as json; "),
        "{}",
        smaller.reason
    );
    assert!(smaller.reason.contains("2000400 bytes"), "{}", smaller.reason);
    assert!(smaller.reason.contains("read it at dicom.instances/3/41"), "{}", smaller.reason);
    assert_eq!(
        DeadLetter { original_value_base64: String::new(), reason: String::new(), ..letter() },
        DeadLetter { reason: String::new(), ..smaller }
    );
}

/// Issue 16, item 8: a topic that refuses every record stops the worker with the reason (exit
/// 1), instead of a retry for ever that leaves the partition uncommitted and the worker healthy.
#[tokio::test]
async fn a_permanent_producer_error_stops_the_worker_with_what_to_do() {
    let shared = test_shared("", "");
    let reason = "the broker refuses this worker's writes to topic radstream.dlq (...): grant ...";
    unsent(&shared, "radstream.dlq", SendError::Permanent(reason.into()));
    assert_eq!(shared.failure.get().map(String::as_str), Some(reason));
    assert_eq!(shared.readiness.failure(), Some(reason));
    assert!(*shared.stop.borrow());

    // The end of the drain is no failure: the event just stays uncommitted.
    let shared = test_shared("", "");
    unsent(&shared, "radstream.dlq", SendError::Halted);
    assert!(shared.failure.get().is_none());
    unsent(&shared, "radstream.dlq", SendError::TooLarge { bytes: 2_000_000, error: "too large".into() });
    let reason = shared.failure.get().expect("too large even when smaller");
    assert!(reason.contains("raise message.max.bytes"), "{reason}");
}

use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

#[test]
fn an_output_send_waits_100_ms_doubling_to_10_s_and_never_gives_up() {
    let delays: Vec<u128> = (1..=9).map(|attempt| SEND_RETRY.delay(attempt, None).as_millis()).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]);
    assert_eq!(SEND_RETRY.next_delay(u32::MAX - 1, Duration::from_secs(86_400), None), Some(Duration::from_secs(10)));
}

fn produce_error(code: RDKafkaErrorCode) -> KafkaError {
    KafkaError::MessageProduction(code)
}

#[test]
fn producer_errors_are_sorted_by_what_trying_again_can_do() {
    use RDKafkaErrorCode as C;
    for code in [C::MessageTimedOut, C::QueueFull, C::AllBrokersDown, C::NotEnoughReplicas, C::RequestTimedOut] {
        assert_eq!(classify("radstream.outcomes", &produce_error(code)), Failure::Transient, "{code:?}");
    }
    assert_eq!(classify("radstream.outcomes", &produce_error(C::MessageSizeTooLarge)), Failure::TooLarge);
    let Failure::Permanent(reason) = classify("radstream.dlq", &produce_error(C::TopicAuthorizationFailed)) else {
        panic!("authorization is permanent")
    };
    assert!(
        reason.contains("radstream.dlq") && reason.contains("grant the worker's Kafka principal Write"),
        "{reason}"
    );
    let Failure::Permanent(reason) = classify("radstream.dlq", &produce_error(C::UnknownTopicOrPartition)) else {
        panic!("an unknown topic is permanent")
    };
    assert!(reason.contains("does not exist") && reason.contains("kafka.dead_letter_topic"), "{reason}");
}

/// Sends through `send_with_retry` with `failures` (then success), 1 ms apart; returns the
/// result and how many tries it took.
async fn send_failing(failures: Vec<RDKafkaErrorCode>, halt: watch::Receiver<bool>) -> (Result<(), SendError>, u32) {
    let tries = AtomicU32::new(0);
    let fast = Backoff::new(Duration::from_millis(1), Duration::from_millis(1)).without_jitter();
    let result = send_with_retry("radstream.outcomes", 42, fast, halt, || {
        let n = tries.fetch_add(1, Ordering::Relaxed) as usize;
        let outcome = failures.get(n).map_or(Ok(()), |&code| Err(produce_error(code)));
        async move { outcome }
    })
    .await;
    (result, tries.load(Ordering::Relaxed))
}

#[tokio::test]
async fn a_permanent_producer_error_ends_the_send_at_once_with_what_to_do() {
    let (_halt_tx, halt) = watch::channel(false);
    let failures = vec![RDKafkaErrorCode::TopicAuthorizationFailed; 1000];
    let (result, tries) = send_failing(failures, halt).await;
    assert!(matches!(&result, Err(SendError::Permanent(r)) if r.contains("radstream.outcomes")), "{result:?}");
    assert_eq!(tries, 1);
}

#[tokio::test]
async fn a_record_too_large_is_not_sent_again() {
    let (_halt_tx, halt) = watch::channel(false);
    let (result, tries) = send_failing(vec![RDKafkaErrorCode::MessageSizeTooLarge; 1000], halt).await;
    assert!(matches!(result, Err(SendError::TooLarge { bytes: 42, .. })), "{result:?}");
    assert_eq!(tries, 1);
}

#[tokio::test]
async fn a_transient_producer_error_is_tried_again_until_it_passes() {
    let (_halt_tx, halt) = watch::channel(false);
    let failures = vec![RDKafkaErrorCode::MessageTimedOut, RDKafkaErrorCode::AllBrokersDown];
    let (result, tries) = send_failing(failures, halt).await;
    assert_eq!(result, Ok(()));
    assert_eq!(tries, 3);
}

/// The end of the drain ends a retry's wait, however long it is.
#[tokio::test]
async fn halting_ends_the_wait_of_a_transient_retry() {
    let (halt_tx, halt) = watch::channel(false);
    let hour = Backoff::new(Duration::from_secs(3_600), Duration::from_secs(3_600)).without_jitter();
    let tries = AtomicU32::new(0);
    let send = send_with_retry("radstream.outcomes", 42, hour, halt, || {
        tries.fetch_add(1, Ordering::Relaxed);
        async { Err(produce_error(RDKafkaErrorCode::MessageTimedOut)) }
    });
    let halt_soon = async {
        while tries.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        halt_tx.send_replace(true);
        std::future::pending::<()>().await
    };
    let result = tokio::select! {
        r = send => r,
        () = halt_soon => unreachable!(),
    };
    assert_eq!(result, Err(SendError::Halted));
    assert_eq!(tries.load(Ordering::Relaxed), 1);
}

use super::*;

/// The waits the stage had before it used `Backoff`: `100 ms << attempt`, from the sixth
/// attempt on 6.4 s.
#[test]
fn an_operator_retry_without_a_wait_of_its_own_waits_as_before() {
    for attempt in 1..=12u32 {
        let before = Duration::from_millis(100 << attempt.min(6));
        assert_eq!(OPERATOR_RETRY.delay(attempt, None), before, "attempt {attempt}");
    }
}

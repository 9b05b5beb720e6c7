use reqwest::header::HeaderValue;

use super::*;

#[test]
fn retry_after_seconds() {
    let mut headers = HeaderMap::new();
    assert_eq!(retry_after(&headers), None);
    headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
    assert_eq!(retry_after(&headers), None);
}

#[test]
fn next_delay_gives_up_at_max_attempts_or_the_deadline_and_never_waits_past_it() {
    let policy = RetrySettings {
        timeout_secs: 30,
        connect_timeout_secs: 5,
        max_attempts: 3,
        retry_deadline_secs: 10,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
    }
    .policy();
    assert!(policy.next_delay(1, Duration::ZERO, None).is_some());
    assert!(policy.next_delay(3, Duration::ZERO, None).is_none(), "out of attempts");
    assert!(policy.next_delay(1, Duration::from_secs(10), None).is_none(), "past the deadline");
    let near = policy.next_delay(2, Duration::from_millis(9_900), Some(Duration::from_secs(30))).unwrap();
    assert!(near <= Duration::from_millis(100), "cut to the deadline: {near:?}");
    let unlimited = Backoff { max_attempts: 0, ..policy };
    assert!(unlimited.next_delay(1_000, Duration::ZERO, None).is_some());
}

use super::*;

#[test]
fn backoff_doubles_up_to_the_cap_with_full_jitter() {
    let policy = Backoff::new(Duration::from_millis(200), Duration::from_millis(1_000));
    let ceilings: Vec<u128> = (1..=5).map(|r| policy.ceiling(r).as_millis()).collect();
    assert_eq!(ceilings, [200, 400, 800, 1_000, 1_000]);
    assert_eq!(policy.ceiling(200), Duration::from_millis(1_000));
    for retry in 1..50 {
        assert!(policy.delay(retry, None) <= policy.ceiling(retry));
    }
    assert!(policy.delay(1, Some(Duration::from_millis(700))) >= Duration::from_millis(700));
    assert_eq!(policy.delay(1, Some(Duration::from_secs(60))), Duration::from_millis(1_000));
}

#[test]
fn gives_up_at_max_attempts_or_the_deadline_and_never_waits_past_it() {
    let policy = Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
        .with_max_attempts(3)
        .with_deadline(Duration::from_secs(10));
    assert!(policy.next_delay(1, Duration::ZERO, None).is_some());
    assert!(policy.next_delay(3, Duration::ZERO, None).is_none(), "out of attempts");
    assert!(policy.next_delay(1, Duration::from_secs(10), None).is_none(), "past the deadline");
    let near = policy.next_delay(2, Duration::from_millis(9_900), Some(Duration::from_secs(30))).unwrap();
    assert!(near <= Duration::from_millis(100), "cut to the deadline: {near:?}");
    let unlimited = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
    assert!(unlimited.next_delay(1_000, Duration::from_secs(1_000_000), None).is_some());
}

#[test]
fn without_jitter_waits_the_ceiling_but_not_before_retry_after() {
    let policy = Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).without_jitter();
    let delays: Vec<u128> = (1..=9).map(|r| policy.delay(r, None).as_millis()).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]);
    assert_eq!(policy.delay(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
    assert_eq!(policy.delay(4, Some(Duration::from_millis(10))), Duration::from_millis(800));
    assert_eq!(policy.next_delay(2, Duration::ZERO, None), Some(Duration::from_millis(200)));
    assert!(Backoff::new(Duration::from_millis(1), Duration::from_millis(2)).jitter, "jitter is the default");
}

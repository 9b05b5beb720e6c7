use super::*;

#[test]
fn an_output_send_waits_100_ms_doubling_to_10_s_and_never_gives_up() {
    let delays: Vec<u128> = (1..=9).map(|attempt| SEND_RETRY.delay(attempt, None).as_millis()).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]);
    assert_eq!(SEND_RETRY.next_delay(u32::MAX - 1, Duration::from_secs(86_400), None), Some(Duration::from_secs(10)));
}

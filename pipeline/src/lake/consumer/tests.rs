use super::*;

#[test]
fn a_failed_upload_waits_1_s_doubling_to_60_s() {
    let delays: Vec<u64> = (1..=8).map(|failures| UPLOAD_RETRY.delay(failures, None).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert!((1..=20).all(|n| RECV_RETRY.delay(n, None) == Duration::from_millis(500)));
}

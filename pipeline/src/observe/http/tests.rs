use super::*;

#[test]
fn healthz_turns_unhealthy_with_the_reason_once_the_worker_cannot_go_on() {
    let readiness = Readiness::default();
    assert_eq!(health(&readiness), (StatusCode::OK, "ok\n".to_string()));
    readiness.fail("the operator stage task of stow panicked".into());
    readiness.fail("a later reason".into());
    let (status, body) = health(&readiness);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "unhealthy: the operator stage task of stow panicked\n");
}

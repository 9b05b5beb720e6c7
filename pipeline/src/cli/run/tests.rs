use super::*;

#[test]
fn a_worker_that_cannot_go_on_exits_1_with_the_reason() {
    let reason = "the operator stage of stow task panicked";
    let err = exit_code(Err(RuntimeError::Failed(reason.into()))).unwrap_err();
    assert!(err.to_string().contains(reason), "{err}");
    assert_eq!(exit_code(Ok(())).unwrap(), ExitCode::SUCCESS);
    let config_problem = RuntimeError::Schema("schema.avsc: no such file".into());
    assert_eq!(exit_code(Err(config_problem)).unwrap(), ExitCode::from(USAGE_EXIT));
}

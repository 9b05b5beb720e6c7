use super::*;

#[test]
fn a_skip_is_one_tab_separated_line_and_a_note_naming_the_test() {
    let verdict = verdict("radstream_operators", "key_object::tests::dciodvfy_finds_no_errors", "dciodvfy", None);
    assert_eq!(
        verdict,
        Verdict::Skip {
            note: "SKIPPED key_object::tests::dciodvfy_finds_no_errors: needs dciodvfy".into(),
            log_line: "radstream_operators\tkey_object::tests::dciodvfy_finds_no_errors\tdciodvfy\n".into(),
        }
    );
}

#[test]
fn tabs_and_line_breaks_in_what_stay_on_the_line() {
    let Verdict::Skip { log_line, .. } = verdict("b", "t", "a GPU:\tno driver\nat all\r", None) else {
        panic!("not a skip")
    };
    assert_eq!(log_line, "b\tt\ta GPU: no driver at all \n");
}

#[test]
fn under_a_strict_variable_a_missing_prerequisite_fails_naming_it_and_the_variable() {
    let Verdict::Fail(message) = verdict("b", "some_test", "CharLS 2 (libcharls2)", Some(REQUIRE_STACK)) else {
        panic!("not a failure")
    };
    assert!(
        message.starts_with("some_test: RADSTREAM_REQUIRE_STACK=1 but it needs CharLS 2 (libcharls2)"),
        "{message}"
    );
    assert!(message.contains("infra/stack.sh install"), "{message}");
    let Verdict::Fail(message) = verdict("b", "t_cuda", "a GPU", Some(REQUIRE_GPU)) else { panic!("not a failure") };
    assert!(message.contains("RADSTREAM_REQUIRE_GPU=1") && message.contains("gpu-check.sh"), "{message}");
}

#[test]
fn the_binary_is_named_without_cargos_hash() {
    let name = |p: &str| binary_name(Path::new(p));
    assert_eq!(name("/t/debug/deps/radstream_kernels-0123456789abcdef"), "radstream_kernels");
    assert_eq!(name("/t/debug/deps/k8s_manifests-fedcba9876543210"), "k8s_manifests");
    // Not cargo's suffix: kept whole.
    assert_eq!(name("/tmp/.gpu-check/kernels-tests"), "kernels-tests");
    assert_eq!(name("/t/deps/x-0123456789abcdeg"), "x-0123456789abcdeg");
}

#[test]
fn skips_are_appended_as_whole_lines() {
    let dir = std::env::temp_dir().join(format!("radstream-test-gate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("skipped.log");
    let _ = std::fs::remove_file(&log);
    std::thread::scope(|scope| {
        for i in 0..8 {
            let log = &log;
            scope.spawn(move || append(log, &format!("b\tt{i}\t{}\n", "x".repeat(200))).unwrap());
        }
    });
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(text.lines().count(), 8);
    assert!(text.lines().all(|l| l.split('\t').count() == 3 && l.ends_with(&"x".repeat(200))), "{text}");
}

#[test]
fn a_present_prerequisite_is_simply_there() {
    // No environment is read when the prerequisite is present, so this holds in CI too.
    assert!(needs("nothing", true));
    assert!(needs_device("nothing", true));
    assert!(needs_under(&["RADSTREAM_REQUIRE_NOTHING"], "nothing", true));
}

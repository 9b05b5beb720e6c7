use super::*;

#[test]
fn a_routed_model_must_be_run_by_the_chain() {
    let route: radstream_operators::OperatorConfig = toml::from_str(
        r#"
            type = "route"
            [[rules]]
            name = "head-ct"
            modality = ["CT"]
            model = "ct-head-bleed"
            "#,
    )
    .unwrap();
    let operators = [route];
    check_routed_models(&operators, &["ct-head-bleed".to_string()]).unwrap();
    let err = check_routed_models(&operators, &["cxr".to_string(), "ct-chest".to_string()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "routing rule names model \"ct-head-bleed\" but no infer operator runs it (infer operators run: cxr, ct-chest)"
    );
    let err = check_routed_models(&operators, &[]).unwrap_err();
    assert!(err.to_string().ends_with("(infer operators run: none)"), "{err}");
}

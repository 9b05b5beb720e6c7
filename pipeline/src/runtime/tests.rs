use super::*;

/// The registry client against a stand-in that answers like Confluent Schema Registry's
/// `GET /schemas/ids/{id}` (no registry server can be installed on the test machines).
#[tokio::test]
async fn writer_schemas_are_fetched_by_id_from_a_registry() {
    use axum::extract::Path;
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/schemas/ids/{id}",
        get(|Path(id): Path<u32>| async move {
            if id == 7 {
                let body = serde_json::json!({ "schema": radstream_schemas::instance_event::INSTANCE_EVENT_V1_AVSC });
                (axum::http::StatusCode::OK, body.to_string())
            } else {
                (axum::http::StatusCode::NOT_FOUND, r#"{"error_code":40403,"message":"Schema not found"}"#.into())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let http = reqwest::Client::new();
    let schema = fetch_schema(&http, &base, 7).await.unwrap();
    assert_eq!(schema.canonical_form(), SchemaSet::v1().canonical_form());
    let err = fetch_schema(&http, &base, 8).await.unwrap_err();
    assert!(err.contains("404"), "{err}");
}

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

#[test]
fn findings_are_counted_per_instance_and_studies_once() {
    let finding = |critical| radstream_schemas::FindingRecord {
        label: "intracranial hemorrhage".into(),
        code_system: "SCT".into(),
        code: "1386000".into(),
        frame: 0,
        score: 0.9,
        critical,
    };
    let results = |findings| radstream_schemas::ModelResults {
        model: "ct-head-bleed".into(),
        version: "0.1.0".into(),
        sha256: String::new(),
        findings,
        series: None,
    };
    let stats = RunStats::default();
    stats.record_findings(&results(vec![finding(true)]), Some("1.2.3"));
    stats.record_findings(&results(vec![finding(false), finding(false)]), Some("1.2.3"));
    stats.record_findings(&results(vec![]), Some("1.2.4"));
    assert_eq!(stats.instances_with_findings.load(Ordering::Relaxed), 2);
    assert_eq!(stats.critical_instances.load(Ordering::Relaxed), 1);
    assert_eq!(stats.flagged_studies().into_iter().collect::<Vec<_>>(), ["1.2.3"]);
}

#[test]
fn non_dicom_bytes_are_rejected_with_a_reason() {
    let err = parse_header(b"this is not a DICOM file at all, just text").unwrap_err();
    assert!(err.contains("DICM"), "{err}");
}

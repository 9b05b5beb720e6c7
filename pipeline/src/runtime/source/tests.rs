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

/// A server error is asked again, 4 times in all, 200, 400 and 800 ms apart; a 404 only once.
#[tokio::test]
async fn a_failing_registry_is_asked_four_times_then_given_up() {
    use std::sync::atomic::AtomicUsize;

    use axum::routing::get;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/schemas/ids/{id}",
        get(move || {
            let calls = counted.clone();
            async move {
                calls.fetch_add(1, Ordering::Relaxed);
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::from("busy"))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let started = Instant::now();
    let err = fetch_schema(&reqwest::Client::new(), &base, 9).await.unwrap_err();
    assert!(err.contains("503"), "{err}");
    assert_eq!(calls.load(Ordering::Relaxed), 4);
    assert!(started.elapsed() >= Duration::from_millis(1_400), "{:?}", started.elapsed());
}

#[test]
fn a_consumer_error_waits_200_ms_however_many_in_a_row() {
    assert!((1..=20).all(|n| RECV_RETRY.delay(n, None) == Duration::from_millis(200)));
}

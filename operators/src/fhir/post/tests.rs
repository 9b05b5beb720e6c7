use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::contract::{NoopRecorder, OperatorMetric};
use crate::RetryHint;

fn parse(value: Value) -> Result<FhirPostConfig, serde_json::Error> {
    serde_json::from_value(value)
}

fn types(names: &[&str]) -> Vec<Option<String>> {
    names.iter().map(|n| Some(n.to_string())).collect()
}

fn response(statuses: &[&str]) -> Vec<u8> {
    let entries: Vec<Value> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| json!({ "response": { "status": s, "location": format!("Observation/{i}/_history/1") } }))
        .collect();
    serde_json::to_vec(&json!({ "resourceType": "Bundle", "type": "transaction-response", "entry": entries })).unwrap()
}

#[test]
fn config_defaults_and_auth_shapes() {
    let config = parse(json!({ "url": "http://fhir.example/fhir/R4" })).unwrap();
    assert_eq!(config.auth, FhirAuth::None);
    assert_eq!(
        (
            config.timeout_secs,
            config.connect_timeout_secs,
            config.max_attempts,
            config.retry_deadline_secs,
            config.initial_backoff_ms,
            config.max_backoff_ms
        ),
        (30, 5, 0, 300, 200, 10_000)
    );
    config.validate().unwrap();
    let new = FhirPostConfig::new("http://fhir.example/fhir/R4");
    assert_eq!((new.timeout_secs, new.retry_deadline_secs, new.max_backoff_ms), (30, 300, 10_000));

    let bearer =
        parse(json!({ "url": "https://ehr/fhir", "auth": { "kind": "bearer", "token_env": "FHIR_TOKEN" } })).unwrap();
    assert_eq!(bearer.auth.kind(), "bearer");
    bearer.validate().unwrap();
}

#[test]
fn config_rejects_unknown_keys_and_inline_secrets() {
    assert!(parse(json!({ "url": "http://h/fhir", "concurrency": 2 })).is_err());
    assert!(parse(json!({ "url": "http://h/fhir", "auth": { "kind": "bearer", "token": "s3cret" } })).is_err());
    assert!(parse(json!({ "url": "http://h/fhir", "auth": { "kind": "basic", "username": "u" } })).is_err());
}

#[test]
fn config_validation_names_the_key() {
    let key = |config: FhirPostConfig| config.validate().unwrap_err().key;
    assert_eq!(key(FhirPostConfig::new("not a url")), "url");
    assert_eq!(key(FhirPostConfig::new("ftp://h/fhir")), "url");
    assert_eq!(key(FhirPostConfig::new("http://user:pw@h/fhir")), "url");
    assert_eq!(key(FhirPostConfig::new("http://h/fhir?x=1")), "url");
    assert_eq!(key(FhirPostConfig { timeout_secs: 0, ..FhirPostConfig::new("http://h/fhir") }), "timeout_secs");
    assert_eq!(
        key(FhirPostConfig { retry_deadline_secs: 0, ..FhirPostConfig::new("http://h/fhir") }),
        "retry_deadline_secs"
    );
    assert_eq!(
        key(FhirPostConfig { initial_backoff_ms: 500, max_backoff_ms: 100, ..FhirPostConfig::new("http://h/fhir") }),
        "max_backoff_ms"
    );
    let with_auth = |auth| FhirPostConfig { auth, ..FhirPostConfig::new("http://h/fhir") };
    assert_eq!(key(with_auth(FhirAuth::Bearer { token_env: None, token_file: None })), "auth.token_env");
    assert_eq!(
        key(with_auth(FhirAuth::Bearer { token_env: Some("T".into()), token_file: Some("/t".into()) })),
        "auth.token_env"
    );
    assert_eq!(key(with_auth(FhirAuth::Bearer { token_env: Some("A=B".into()), token_file: None })), "auth.token_env");
    assert_eq!(key(with_auth(FhirAuth::Bearer { token_env: None, token_file: Some("".into()) })), "auth.token_file");
}

#[test]
fn build_reads_the_token_and_never_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "  tok-123\n").unwrap();
    let config = FhirPostConfig {
        auth: FhirAuth::Bearer { token_env: None, token_file: Some(path.clone()) },
        ..FhirPostConfig::new("http://127.0.0.1:1/fhir/R4")
    };
    let poster = config.build(Arc::new(NoopRecorder)).unwrap();
    assert_eq!(poster.authorization.as_ref().unwrap().to_str().unwrap(), "Bearer tok-123");
    assert!(poster.authorization.as_ref().unwrap().is_sensitive());
    assert!(!format!("{poster:?}").contains("tok-123"));
    assert_eq!(poster.metadata_url.as_str(), "http://127.0.0.1:1/fhir/R4/metadata");

    std::fs::write(&path, " \n").unwrap();
    let error = config.build(Arc::new(NoopRecorder)).unwrap_err();
    assert_eq!(error.key, "auth.token_file");
    let missing = FhirPostConfig {
        auth: FhirAuth::Bearer { token_env: Some("RADSTREAM_FHIR_POST_TEST_UNSET_TOKEN".into()), token_file: None },
        ..FhirPostConfig::new("http://h/fhir")
    };
    let error = missing.build(Arc::new(NoopRecorder)).unwrap_err();
    assert_eq!(error.key, "auth.token_env");
    assert!(error.problem.contains("RADSTREAM_FHIR_POST_TEST_UNSET_TOKEN is not set"), "{}", error.problem);
}

#[test]
fn an_all_2xx_transaction_response_is_delivered() {
    let verdict =
        classify_response(StatusCode::OK, &response(&["201 Created", "200"]), &types(&["Device", "Observation"]));
    let Verdict::Delivered(entries) = verdict else { panic!("{verdict:?}") };
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].status, "201 Created");
    assert_eq!(entries[1].location.as_deref(), Some("Observation/1/_history/1"));
}

#[test]
fn a_failed_entry_is_a_rejection_that_names_it_without_the_server_text() {
    let mut body: Value = serde_json::from_slice(&response(&["200", "422 Unprocessable Entity"])).unwrap();
    body["entry"][1]["response"]["outcome"] = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": "invariant", "diagnostics": "Patient DOE^JOHN is invalid",
                    "details": { "text": "DOE^JOHN" }, "expression": ["Observation.subject"] }]
    });
    let verdict =
        classify_response(StatusCode::OK, &serde_json::to_vec(&body).unwrap(), &types(&["Device", "Observation"]));
    let Verdict::Rejected(reason) = verdict else { panic!("{verdict:?}") };
    assert!(reason.contains("entry 1 (Observation) answered 422"), "{reason}");
    assert!(reason.contains("error/invariant"), "{reason}");
    assert!(!reason.contains("DOE"), "{reason}");
}

#[test]
fn statuses_are_classified() {
    let outcome = serde_json::to_vec(&json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": "invalid", "diagnostics": "name DOE^JOHN" },
                  { "severity": "fatal", "code": "free text with spaces" }]
    }))
    .unwrap();
    let rejected = classify_response(StatusCode::BAD_REQUEST, &outcome, &[]);
    let Verdict::Rejected(reason) = rejected else { panic!("{rejected:?}") };
    assert!(reason.starts_with("HTTP 400 Bad Request"), "{reason}");
    assert!(reason.contains("error/invalid, fatal/?"), "{reason}");
    assert!(!reason.contains("DOE"), "{reason}");
    for status in [StatusCode::UNAUTHORIZED, StatusCode::NOT_FOUND, StatusCode::CONFLICT, StatusCode::FOUND] {
        assert!(matches!(classify_response(status, b"", &[]), Verdict::Rejected(_)), "{status}");
    }
    for status in [
        StatusCode::REQUEST_TIMEOUT,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        assert!(matches!(classify_response(status, &outcome, &[]), Verdict::Transient(_)), "{status}");
    }
}

#[test]
fn an_unreadable_2xx_is_transient() {
    let transient = |body: &[u8], types: &[Option<String>]| {
        matches!(classify_response(StatusCode::OK, body, types), Verdict::Transient(_))
    };
    assert!(transient(b"<html>proxy</html>", &[]));
    assert!(transient(br#"{"resourceType":"Bundle","type":"batch-response","entry":[]}"#, &[]));
    assert!(transient(br#"{"resourceType":"OperationOutcome"}"#, &[]));
    // An entry count that does not match what was sent, a missing or unreadable status.
    assert!(transient(&response(&["201"]), &types(&["Device", "Observation"])));
    assert!(transient(&response(&["Created"]), &types(&["Device"])));
    assert!(transient(
        br#"{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{}}]}"#,
        &types(&["Device"])
    ));
}

#[test]
fn entry_resource_types_come_from_the_resource_or_the_url() {
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
        { "resource": { "resourceType": "Device" }, "request": { "method": "PUT", "url": "Device?identifier=x" } },
        { "request": { "method": "DELETE", "url": "Observation/1" } },
        { "resource": { "resourceType": "Bad Type!" }, "request": { "method": "POST", "url": "" } },
    ]});
    let got = entry_resource_types(&serde_json::to_vec(&bundle).unwrap());
    assert_eq!(got, vec![Some("Device".to_string()), Some("Observation".to_string()), None]);
    assert!(entry_resource_types(b"not json").is_empty());
}

#[derive(Default)]
struct RecordingObserver {
    requests: Mutex<Vec<(String, &'static str)>>,
    retries: Mutex<Vec<String>>,
}

impl Recorder for RecordingObserver {
    fn record(&self, metric: OperatorMetric, labels: &[&str], value: f64) {
        assert_eq!(labels.len(), metric.labels().len(), "{metric:?}");
        match metric {
            OperatorMetric::DestinationRequests => {
                assert_eq!(value, 1.0);
                let class = ["2xx", "4xx", "5xx", "error"].into_iter().find(|c| *c == labels[1]);
                self.requests.lock().unwrap().push((labels[0].to_string(), class.unwrap_or("unexpected")));
            }
            OperatorMetric::DestinationRequestDuration => assert!(value >= 0.0),
            OperatorMetric::DestinationRetries => {
                assert_eq!(value, 1.0);
                self.retries.lock().unwrap().push(labels[0].to_string());
            }
            other => panic!("the FHIR poster recorded {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_after_max_attempts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = FhirPostConfig {
        max_attempts: 2,
        initial_backoff_ms: 1,
        max_backoff_ms: 5,
        ..FhirPostConfig::new(format!("http://127.0.0.1:{port}/fhir/R4"))
    };
    let observer = Arc::new(RecordingObserver::default());
    let poster = config.build(observer.clone()).unwrap();
    let error = poster.post(br#"{"resourceType":"Bundle","type":"transaction"}"#, "study-1.2.3").await.unwrap_err();
    assert_eq!((error.class, error.retry, error.attempts), (ErrorClass::FhirUnavailable, RetryHint::DeadLetter, 2));
    assert!(error.reason.contains("bundle study-1.2.3"), "{}", error.reason);
    assert_eq!(*observer.requests.lock().unwrap(), vec![("fhir".to_string(), "error"); 2]);
    assert_eq!(*observer.retries.lock().unwrap(), vec!["fhir".to_string()]);
    assert!(poster.probe().await.unwrap_err().contains("/fhir/R4/metadata"));
}

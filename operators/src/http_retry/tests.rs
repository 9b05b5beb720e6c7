use reqwest::header::HeaderValue;

use super::*;

#[test]
fn retry_after_seconds() {
    let mut headers = HeaderMap::new();
    assert_eq!(retry_after(&headers), None);
    headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
    assert_eq!(retry_after(&headers), None);
}

#[test]
fn next_delay_gives_up_at_max_attempts_or_the_deadline_and_never_waits_past_it() {
    let policy = RetrySettings {
        timeout_secs: 30,
        connect_timeout_secs: 5,
        max_attempts: 3,
        retry_deadline_secs: 10,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
    }
    .policy();
    assert!(policy.next_delay(1, Duration::ZERO, None).is_some());
    assert!(policy.next_delay(3, Duration::ZERO, None).is_none(), "out of attempts");
    assert!(policy.next_delay(1, Duration::from_secs(10), None).is_none(), "past the deadline");
    let near = policy.next_delay(2, Duration::from_millis(9_900), Some(Duration::from_secs(30))).unwrap();
    assert!(near <= Duration::from_millis(100), "cut to the deadline: {near:?}");
    let unlimited = Backoff { max_attempts: 0, ..policy };
    assert!(unlimited.next_delay(1_000, Duration::ZERO, None).is_some());
}

#[test]
fn base_url_names_the_url_kind_and_the_secret_in_its_messages() {
    let problem = |raw: &str| base_url(raw, "FHIR base URL", "token").unwrap_err().problem;
    assert!(problem(" not a url").starts_with("\" not a url\" is not a URL: "), "{}", problem(" not a url"));
    assert_eq!(problem("ftp://h/fhir"), "scheme must be http or https, not \"ftp\"");
    assert_eq!(
        problem("http://user:pw@h/fhir"),
        "must not hold credentials; use `auth` with a token from the environment or a file"
    );
    assert_eq!(problem("http://h/fhir#x"), "must be the FHIR base URL, without a query or fragment");
    let error = base_url("http://h/dicom-web?x=1", "DICOMweb base URL", "secret").unwrap_err();
    assert_eq!(
        (error.key.as_str(), error.problem.as_str()),
        ("url", "must be the DICOMweb base URL, without a query or fragment")
    );
    let base = base_url(" https://h/fhir/R4/ ", "FHIR base URL", "token").unwrap();
    assert_eq!(append_segment(&base, "metadata").unwrap().as_str(), "https://h/fhir/R4/metadata");
}

#[test]
fn bearer_reads_the_token_into_a_sensitive_header_and_names_keys_within_auth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, " tok-1\n").unwrap();
    let file = Some(path.clone());
    let value = SecretSource::token(&None, &file).bearer().unwrap();
    assert_eq!((value.to_str().unwrap(), value.is_sensitive()), ("Bearer tok-1", true));

    std::fs::write(&path, "bad\u{1}token").unwrap();
    let error = SecretSource::token(&None, &file).bearer().unwrap_err();
    assert_eq!(error.key, "auth.token_file");
    assert!(!error.problem.contains("token\u{1}"), "{}", error.problem);
    let unset = Some("RADSTREAM_HTTP_RETRY_TEST_UNSET_TOKEN".to_string());
    assert_eq!(SecretSource::token(&unset, &None).bearer().unwrap_err().key, "auth.token_env");
}

#[tokio::test]
async fn deliver_gives_up_with_the_destinations_wording_and_counts_each_request() {
    static TEST: Destination = Destination {
        label: "test",
        server: "test server",
        server_again: "server",
        item: "thing",
        unavailable: ErrorClass::FhirUnavailable,
        max_response_bytes: 1024,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let settings = RetrySettings {
        timeout_secs: 5,
        connect_timeout_secs: 5,
        max_attempts: 2,
        retry_deadline_secs: 60,
        initial_backoff_ms: 1,
        max_backoff_ms: 1,
    };
    let client = build_client(settings.client_builder(), "url").unwrap();
    let recorder = crate::contract::MemoryRecorder::default();
    let sender = Sender {
        client: &client,
        authorization: None,
        retry: &settings.policy(),
        observer: &recorder,
        destination: &TEST,
    };
    let retries = std::sync::atomic::AtomicU32::new(0);
    let error = sender
        .deliver(
            &"thing 1",
            || client.post(url.clone()),
            |_, answer| match answer {
                Ok((status, _)) => Attempt::Done(Ok(status)),
                Err(last) => Attempt::Retry(last),
            },
            |_, _, _| {
                retries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            },
        )
        .await
        .unwrap_err();
    assert_eq!((error.class, error.attempts, retries.into_inner()), (ErrorClass::FhirUnavailable, 2, 1));
    assert!(
        error.reason.starts_with("thing 1: test server unreachable or failing after 2 attempts over "),
        "{}",
        error.reason
    );
    assert!(error.reason.ends_with("); the thing can be replayed once the server is back"), "{}", error.reason);
    assert!(error.reason.contains("(last: connection failed: "), "{}", error.reason);
    let labels = |metric| recorder.of(metric).into_iter().map(|r| r.labels).collect::<Vec<_>>();
    assert_eq!(labels(OperatorMetric::DestinationRequests), vec![vec!["test".to_string(), "error".to_string()]; 2]);
    assert_eq!(labels(OperatorMetric::DestinationRequestDuration).len(), 2);
    assert_eq!(labels(OperatorMetric::DestinationRetries), vec![vec!["test".to_string()]]);

    let probe = sender.probe(&url, "application/json", settings.probe_timeout(), |_| "").await.unwrap_err();
    assert!(probe.starts_with(&format!("GET {url}: connection failed")), "{probe}");
}

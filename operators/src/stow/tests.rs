use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::http::HeaderMap as AxumHeaders;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use radstream_schemas::ObjectLocation;
use tokio::sync::oneshot;

use reqwest::StatusCode;

use super::*;
use crate::contract::OperatorMetric;
use crate::RetryHint;

const SOP_UID: &str = "1.2.826.0.1.3680043.8.498.10";

fn envelope(ticket: u64, sop_instance_uid: &str) -> Envelope {
    let element = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let dataset = InMemDicomObject::from_element_iter([
        element(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE),
        element(tags::SOP_INSTANCE_UID, VR::UI, sop_instance_uid),
        element(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.1"),
        element(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.2"),
        element(tags::MODALITY, VR::CS, "OT"),
    ]);
    let header =
        dataset.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)).unwrap();
    let mut object = Vec::new();
    header.write_all(&mut object).unwrap();
    let size = Some(object.len() as i64);
    let location = ObjectLocation { bucket: "dicom".into(), key: format!("incoming/{ticket}.dcm"), size, etag: None };
    Envelope::from_part10(ticket, location, Bytes::from(object)).unwrap()
}

fn stored_response(sop_instance_uid: &str) -> String {
    serde_json::json!({"00081199": {"vr": "SQ", "Value": [{
        "00081150": {"vr": "UI", "Value": [uids::SECONDARY_CAPTURE_IMAGE_STORAGE]},
        "00081155": {"vr": "UI", "Value": [sop_instance_uid]}
    }]}})
    .to_string()
}

fn failed_response(sop_instance_uid: &str, reason: u16) -> String {
    serde_json::json!({"00081198": {"vr": "SQ", "Value": [{
        "00081150": {"vr": "UI", "Value": [uids::SECONDARY_CAPTURE_IMAGE_STORAGE]},
        "00081155": {"vr": "UI", "Value": [sop_instance_uid]},
        "00081197": {"vr": "US", "Value": [reason]}
    }]}})
    .to_string()
}

#[derive(Debug, Clone)]
struct Recorded {
    content_type: Option<String>,
    accept: Option<String>,
    authorization: Option<String>,
    body: Bytes,
}

/// A local HTTP server standing in for the PACS: `reply(n)` answers the n-th request.
struct FakePacs {
    base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    max_in_flight: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl FakePacs {
    async fn start(delay: Duration, reply: impl Fn(usize) -> (u16, String) + Clone + Send + Sync + 'static) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let (recorded, current, max) = (requests.clone(), in_flight.clone(), max_in_flight.clone());
        let handler = move |headers: AxumHeaders, body: Bytes| {
            let (recorded, current, max, reply) = (recorded.clone(), current.clone(), max.clone(), reply.clone());
            async move {
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                let header = |name: reqwest::header::HeaderName| {
                    headers.get(name).map(|v: &HeaderValue| v.to_str().unwrap().to_string())
                };
                let n = {
                    let mut recorded = recorded.lock().unwrap();
                    recorded.push(Recorded {
                        content_type: header(CONTENT_TYPE),
                        accept: header(ACCEPT),
                        authorization: header(AUTHORIZATION),
                        body,
                    });
                    recorded.len() - 1
                };
                tokio::time::sleep(delay).await;
                current.fetch_sub(1, Ordering::SeqCst);
                let (status, body) = reply(n);
                (StatusCode::from_u16(status).unwrap(), [(CONTENT_TYPE, ACCEPT_DICOM_JSON)], body)
            }
        };
        let app = axum::Router::new().route(
            "/dicom-web/studies",
            axum::routing::post(handler).get(|| async { (StatusCode::OK, [(CONTENT_TYPE, ACCEPT_DICOM_JSON)], "[]") }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self { base_url: format!("http://{addr}/dicom-web"), requests, max_in_flight, _stop: stop }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

#[derive(Default)]
struct RecordingObserver {
    requests: Mutex<Vec<&'static str>>,
    retries: AtomicUsize,
}

impl Recorder for RecordingObserver {
    fn record(&self, metric: OperatorMetric, labels: &[&str], value: f64) {
        assert_eq!(labels.len(), metric.labels().len(), "{metric:?}");
        assert_eq!(labels[0], "pacs", "{metric:?}");
        match metric {
            OperatorMetric::DestinationRequests => {
                assert_eq!(value, 1.0);
                let class = ["2xx", "4xx", "5xx", "error"].into_iter().find(|c| *c == labels[1]);
                self.requests.lock().unwrap().push(class.unwrap_or("unexpected"));
            }
            OperatorMetric::DestinationRequestDuration => assert!(value >= 0.0),
            OperatorMetric::DestinationRetries => {
                assert_eq!(value, 1.0);
                self.retries.fetch_add(1, Ordering::SeqCst);
            }
            other => panic!("STOW-RS recorded {other:?}"),
        }
    }
}

fn fast_config(url: &str) -> StowConfig {
    StowConfig { initial_backoff_ms: 1, max_backoff_ms: 5, ..StowConfig::new(url) }
}

async fn deliver_one(config: &StowConfig, observer: Arc<RecordingObserver>) -> Processed {
    let mut sink = config.build(&BuildContext { observer, ..Default::default() }).unwrap();
    assert!(sink.is_sink());
    let mut processed = sink.process_batch(vec![envelope(7, SOP_UID)]).await;
    assert_eq!(processed.len(), 1);
    let processed = processed.pop().unwrap();
    assert_eq!(processed.envelope.ticket, 7);
    processed
}

fn failure(processed: Processed) -> OperatorError {
    match processed.outcome {
        Outcome::Fail(error) => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn stow_posts_one_well_formed_multipart_part() {
    let pacs = FakePacs::start(Duration::ZERO, |_| (200, stored_response(SOP_UID))).await;
    let observer = Arc::new(RecordingObserver::default());
    let processed = deliver_one(&StowConfig::new(&pacs.base_url), observer.clone()).await;
    assert!(matches!(processed.outcome, Outcome::Forward), "{:?}", processed.outcome);

    let requests = pacs.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let content_type = request.content_type.as_deref().unwrap();
    assert!(content_type.starts_with("multipart/related; type=\"application/dicom\"; boundary="), "{content_type}");
    assert_eq!(request.accept.as_deref(), Some("application/dicom+json"));
    assert_eq!(request.authorization, None);
    let boundary = multipart::related_boundary(content_type).unwrap();
    let parts = multipart::split_parts(&request.body, &boundary).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].content_type(), Some("application/dicom"));
    assert_eq!(parts[0].body, &processed.envelope.object()[..]);
    assert_eq!(*observer.requests.lock().unwrap(), ["2xx"]);
    assert_eq!(observer.retries.load(Ordering::SeqCst), 0);
}

fn with_outputs(mut envelope: Envelope, objects: &[(crate::contract::ResultKind, &str)]) -> Envelope {
    let objects = objects
        .iter()
        .map(|&(kind, uid)| crate::contract::ResultObject {
            kind,
            sop_instance_uid: uid.into(),
            series_instance_uid: "2.25.1".into(),
            bytes: Bytes::from(format!("object {uid}")),
        })
        .collect();
    envelope.outputs = Some(Arc::new(crate::contract::ResultSet { objects, series: None }));
    envelope
}

#[tokio::test]
async fn stow_stores_the_result_objects_instead_of_the_instance_and_each_shared_one_once() {
    use crate::contract::ResultKind::{Overlay, Seg, Sr};
    // The fake answers without a body: this test is about what is sent, not about the answer.
    let pacs = FakePacs::start(Duration::ZERO, |_| (200, String::new())).await;
    let config = StowConfig { assume_stored_without_body: true, ..StowConfig::new(&pacs.base_url) };
    let mut sink = config.build(&BuildContext::default()).unwrap();
    // Two instances of a series: the series' SR is carried by both, each has its own SEG.
    let first = with_outputs(envelope(1, SOP_UID), &[(Sr, "2.25.10"), (Seg, "2.25.11"), (Overlay, "2.25.12")]);
    let second = with_outputs(envelope(2, "1.2.826.0.1.3680043.8.498.20"), &[(Sr, "2.25.10"), (Seg, "2.25.21")]);
    for batch in [vec![first], vec![second]] {
        let done = sink.process_batch(batch).await;
        assert!(done.iter().all(|p| matches!(p.outcome, Outcome::Forward)), "{:?}", done[0].outcome);
    }
    let mut sent: Vec<String> = pacs
        .requests()
        .iter()
        .map(|r| {
            let boundary = multipart::related_boundary(r.content_type.as_deref().unwrap()).unwrap();
            let parts = multipart::split_parts(&r.body, &boundary).unwrap();
            String::from_utf8(parts[0].body.to_vec()).unwrap()
        })
        .collect();
    sent.sort();
    assert_eq!(sent, ["object 2.25.10", "object 2.25.11", "object 2.25.12", "object 2.25.21"]);
}

#[tokio::test]
async fn stow_dead_letters_an_instance_whose_result_object_is_rejected_and_names_the_object() {
    use crate::contract::ResultKind::{Seg, Sr};
    let pacs = FakePacs::start(Duration::ZERO, |_| (400, String::new())).await;
    let mut sink = StowConfig::new(&pacs.base_url).build(&BuildContext::default()).unwrap();
    let done = sink.process_batch(vec![with_outputs(envelope(1, SOP_UID), &[(Sr, "2.25.10"), (Seg, "2.25.11")])]).await;
    let Outcome::Fail(error) = &done[0].outcome else { panic!("{:?}", done[0].outcome) };
    assert_eq!(error.class, ErrorClass::PacsRejected);
    assert!(error.reason.contains("(sr of ") || error.reason.contains("(seg of "), "{}", error.reason);
    assert!(error.reason.contains("2.25.1"), "{}", error.reason);
}

#[tokio::test]
async fn stow_retries_503_then_forwards() {
    let pacs =
        FakePacs::start(Duration::ZERO, |n| if n < 2 { (503, String::new()) } else { (200, stored_response(SOP_UID)) })
            .await;
    let observer = Arc::new(RecordingObserver::default());
    let processed = deliver_one(&fast_config(&pacs.base_url), observer.clone()).await;
    assert!(matches!(processed.outcome, Outcome::Forward), "{:?}", processed.outcome);
    assert_eq!(pacs.requests().len(), 3);
    assert_eq!(*observer.requests.lock().unwrap(), ["5xx", "5xx", "2xx"]);
    assert_eq!(observer.retries.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn stow_dead_letters_a_400_without_retrying() {
    let pacs = FakePacs::start(Duration::ZERO, |_| (400, String::new())).await;
    let observer = Arc::new(RecordingObserver::default());
    let error = failure(deliver_one(&fast_config(&pacs.base_url), observer.clone()).await);
    assert_eq!(error.class, ErrorClass::PacsRejected);
    assert_eq!(error.retry, RetryHint::DeadLetter);
    assert_eq!(error.attempts, 1);
    assert!(error.reason.contains("HTTP 400 Bad Request"), "{}", error.reason);
    assert!(error.reason.contains(SOP_UID) && error.reason.contains("dicom/incoming/7.dcm"), "{}", error.reason);
    assert_eq!(pacs.requests().len(), 1);
    assert_eq!(*observer.requests.lock().unwrap(), ["4xx"]);
}

#[tokio::test]
async fn stow_reports_a_redirect_instead_of_following_it() {
    let pacs = FakePacs::start(Duration::ZERO, |_| (302, String::new())).await;
    let error = failure(deliver_one(&fast_config(&pacs.base_url), Default::default()).await);
    assert_eq!(error.class, ErrorClass::PacsRejected);
    assert!(error.reason.contains("redirect"), "{}", error.reason);
    assert_eq!(pacs.requests().len(), 1);
}

#[tokio::test]
async fn stow_gives_up_at_the_retry_deadline() {
    let pacs = FakePacs::start(Duration::ZERO, |_| (503, String::new())).await;
    let config = StowConfig {
        retry_deadline_secs: 1,
        initial_backoff_ms: 20,
        max_backoff_ms: 100,
        ..StowConfig::new(&pacs.base_url)
    };
    assert_eq!(config.max_attempts, 0, "no attempt limit: only the deadline ends the retries");
    let started = Instant::now();
    // The sink keeps its deadline on the real clock, so the test waits for it. The timeout is
    // a guard against retrying for ever, not a speed check: a busy machine may take longer
    // than the deadline to give up, never a minute.
    let delivered = tokio::time::timeout(Duration::from_secs(60), deliver_one(&config, Default::default())).await;
    let error = failure(delivered.expect("the sink gave up at its retry deadline rather than retrying for ever"));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "gave up before the deadline: {elapsed:?}");
    assert_eq!(error.class, ErrorClass::PacsUnavailable);
    assert_eq!(error.retry, RetryHint::DeadLetter);
    let requests = pacs.requests().len() as u32;
    assert!(requests >= 3, "{requests} requests");
    assert_eq!(error.attempts, requests);
    // The time it reports is the time it took: at least the deadline, at most what we measured.
    let over = error
        .reason
        .split_once(&format!("after {requests} attempts over "))
        .and_then(|(_, rest)| rest.split_once(" s")?.0.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no \"after {requests} attempts over N s\": {}", error.reason));
    assert!(over >= 1.0 && over <= elapsed.as_secs_f64() + 0.05, "over {over} s, measured {elapsed:?}");
    assert!(error.reason.contains("last: HTTP 503 Service Unavailable"), "{}", error.reason);
    assert!(error.reason.contains("replayed once the PACS is back"), "{}", error.reason);
}

#[tokio::test]
async fn stow_stops_after_max_attempts() {
    let pacs = FakePacs::start(Duration::ZERO, |_| (429, String::new())).await;
    let config = StowConfig { max_attempts: 3, ..fast_config(&pacs.base_url) };
    let error = failure(deliver_one(&config, Default::default()).await);
    assert_eq!(error.class, ErrorClass::PacsUnavailable);
    assert_eq!(error.attempts, 3);
    assert_eq!(pacs.requests().len(), 3);
}

#[tokio::test]
async fn stow_reports_a_refused_connection_as_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let observer = Arc::new(RecordingObserver::default());
    let config = StowConfig { max_attempts: 2, ..fast_config(&format!("http://{addr}/dicom-web")) };
    let error = failure(deliver_one(&config, observer.clone()).await);
    assert_eq!(error.class, ErrorClass::PacsUnavailable);
    assert_eq!(error.attempts, 2);
    assert!(error.reason.contains("last: connection failed"), "{}", error.reason);
    assert_eq!(*observer.requests.lock().unwrap(), ["error", "error"]);
    assert_eq!(observer.retries.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn stow_sends_basic_auth_from_the_environment() {
    let pacs = FakePacs::start(Duration::ZERO, |_| (200, stored_response(SOP_UID))).await;
    std::env::set_var("RADSTREAM_TEST_STOW_BASIC_PASSWORD", "s3cret\n");
    let config = StowConfig {
        auth: StowAuth::Basic {
            username: "orthanc".into(),
            password_env: Some("RADSTREAM_TEST_STOW_BASIC_PASSWORD".into()),
            password_file: None,
        },
        ..StowConfig::new(&pacs.base_url)
    };
    let processed = deliver_one(&config, Default::default()).await;
    assert!(matches!(processed.outcome, Outcome::Forward));
    // base64("orthanc:s3cret"): the trailing newline of the variable is trimmed.
    assert_eq!(pacs.requests()[0].authorization.as_deref(), Some("Basic b3J0aGFuYzpzM2NyZXQ="));
}

#[tokio::test]
async fn stow_sends_a_bearer_token_from_a_file() {
    let pacs = FakePacs::start(Duration::ZERO, |_| (200, stored_response(SOP_UID))).await;
    let path = std::env::temp_dir().join(format!("radstream-stow-token-{}", std::process::id()));
    std::fs::write(&path, "  tok.en-123 \n").unwrap();
    let config = StowConfig {
        auth: StowAuth::Bearer { token_env: None, token_file: Some(path.clone()) },
        ..StowConfig::new(&pacs.base_url)
    };
    let processed = deliver_one(&config, Default::default()).await;
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(processed.outcome, Outcome::Forward), "{:?}", processed.outcome);
    assert_eq!(pacs.requests()[0].authorization.as_deref(), Some("Bearer tok.en-123"));
}

#[tokio::test]
async fn stow_does_not_count_a_2xx_that_does_not_name_the_instance_as_delivered() {
    // What a web application firewall or SSO page in front of the PACS answers: 200 and a page.
    let login_page = "<html><body>Session expired for Jane Doe</body></html>";
    for (body, last) in [
        (String::new(), "last: HTTP 200 OK with an empty body"),
        (login_page.to_string(), "last: HTTP 200 OK with an HTML or XML body (not a STOW-RS response)"),
        (stored_response("2.25.999"), "last: HTTP 200 OK with a JSON response that does not list this instance"),
    ] {
        let pacs = FakePacs::start(Duration::ZERO, move |_| (200, body.clone())).await;
        let config = StowConfig { max_attempts: 2, ..fast_config(&pacs.base_url) };
        let error = failure(deliver_one(&config, Default::default()).await);
        assert_eq!(error.class, ErrorClass::PacsUnavailable, "{}", error.reason);
        assert_eq!(error.retry, RetryHint::DeadLetter);
        assert_eq!(error.attempts, 2);
        assert_eq!(pacs.requests().len(), 2, "retried as transient");
        assert!(error.reason.contains(last), "{}", error.reason);
        assert!(!error.reason.contains("Jane Doe"), "the reason never quotes the body: {}", error.reason);
    }
}

#[tokio::test]
async fn stow_counts_an_empty_2xx_as_stored_only_when_the_pacs_is_configured_so() {
    let pacs =
        FakePacs::start(Duration::ZERO, |n| if n == 0 { (204, String::new()) } else { (200, "<html/>".into()) }).await;
    let config = StowConfig { assume_stored_without_body: true, max_attempts: 2, ..fast_config(&pacs.base_url) };
    let processed = deliver_one(&config, Default::default()).await;
    assert!(matches!(processed.outcome, Outcome::Forward), "{:?}", processed.outcome);
    assert_eq!(pacs.requests().len(), 1);
    // An HTML page is not "no body", opt-in or not.
    let error = failure(deliver_one(&config, Default::default()).await);
    assert_eq!(error.class, ErrorClass::PacsUnavailable);
    assert!(error.reason.contains("last: HTTP 200 OK with an HTML or XML body"), "{}", error.reason);
}

#[tokio::test]
async fn stow_counts_a_duplicate_sop_instance_as_delivered() {
    let pacs = FakePacs::start(Duration::ZERO, |_| (409, failed_response(SOP_UID, 0x0111))).await;
    let processed = deliver_one(&fast_config(&pacs.base_url), Default::default()).await;
    assert!(matches!(processed.outcome, Outcome::Forward), "{:?}", processed.outcome);
    assert_eq!(pacs.requests().len(), 1);
}

#[tokio::test]
async fn stow_retries_out_of_resources_and_rejects_a_mismatched_data_set() {
    let pacs = FakePacs::start(Duration::ZERO, |n| {
        if n == 0 {
            (409, failed_response(SOP_UID, 0xA700))
        } else {
            (200, stored_response(SOP_UID))
        }
    })
    .await;
    let processed = deliver_one(&fast_config(&pacs.base_url), Default::default()).await;
    assert!(matches!(processed.outcome, Outcome::Forward), "{:?}", processed.outcome);
    assert_eq!(pacs.requests().len(), 2);

    let pacs = FakePacs::start(Duration::ZERO, |_| (409, failed_response(SOP_UID, 0xA900))).await;
    let error = failure(deliver_one(&fast_config(&pacs.base_url), Default::default()).await);
    assert_eq!(error.class, ErrorClass::PacsRejected);
    assert!(error.reason.contains("0xA900") && error.reason.contains("does not match SOP class"), "{}", error.reason);
    assert_eq!(pacs.requests().len(), 1);
}

#[tokio::test]
async fn stow_delivers_a_batch_with_bounded_concurrency() {
    let pacs = FakePacs::start(Duration::from_millis(30), |_| (200, String::new())).await;
    let config = StowConfig { concurrency: 3, assume_stored_without_body: true, ..StowConfig::new(&pacs.base_url) };
    let mut sink = config.build(&BuildContext::default()).unwrap();
    let batch = (0..10).map(|i| envelope(i, &format!("{SOP_UID}.{i}"))).collect();
    let processed = sink.process_batch(batch).await;
    let mut tickets: Vec<u64> = processed.iter().map(|p| p.envelope.ticket).collect();
    tickets.sort_unstable();
    assert_eq!(tickets, (0..10).collect::<Vec<_>>());
    assert!(processed.iter().all(|p| matches!(p.outcome, Outcome::Forward)));
    assert_eq!(pacs.requests().len(), 10);
    let max = pacs.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=3).contains(&max), "max in flight {max}");
}

#[tokio::test]
async fn probe_queries_the_pacs() {
    let pacs = FakePacs::start(Duration::ZERO, |_| (200, String::new())).await;
    let sink = StowConfig::new(&pacs.base_url).build(&BuildContext::default()).unwrap();
    sink.probe().await.unwrap();
    assert!(pacs.requests().is_empty(), "a probe stores nothing");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let sink = StowConfig::new(format!("http://{addr}/dicom-web")).build(&BuildContext::default()).unwrap();
    let error = sink.probe().await.unwrap_err();
    assert!(error.contains("/dicom-web/studies?limit=1: connection failed"), "{error}");

    let sink = StowConfig::new(format!("{}/elsewhere", pacs.base_url)).build(&BuildContext::default()).unwrap();
    let error = sink.probe().await.unwrap_err();
    assert!(error.contains("HTTP 404") && error.contains("`url`"), "{error}");
}

fn parse(json: serde_json::Value) -> Result<StowConfig, serde_json::Error> {
    serde_json::from_value(json)
}

#[test]
fn config_defaults_and_auth_shapes() {
    let config = parse(serde_json::json!({"url": "http://127.0.0.1:8042/dicom-web/"})).unwrap();
    config.validate().unwrap();
    assert_eq!(config.auth, StowAuth::None);
    assert_eq!(
        (config.timeout_secs, config.connect_timeout_secs, config.concurrency, config.max_attempts),
        (30, 5, 8, 0)
    );
    assert_eq!((config.retry_deadline_secs, config.initial_backoff_ms, config.max_backoff_ms), (300, 200, 10_000));
    assert_eq!(config.studies_url().unwrap().as_str(), "http://127.0.0.1:8042/dicom-web/studies");
    assert!(!config.assume_stored_without_body, "a success must name the instance unless opted in");
    let opted_in = parse(serde_json::json!({"url": "http://x", "assume_stored_without_body": true})).unwrap();
    assert!(opted_in.assume_stored_without_body);

    let config = parse(serde_json::json!({
        "url": "https://pacs.example/dicom-web",
        "auth": {"kind": "basic", "username": "radstream", "password_file": "/run/secrets/pacs"}
    }))
    .unwrap();
    config.validate().unwrap();

    let config = parse(serde_json::json!({
        "url": "https://pacs.example/dicom-web",
        "auth": {"kind": "bearer", "token_env": "PACS_TOKEN"}
    }))
    .unwrap();
    config.validate().unwrap();
    assert_eq!(config.auth.kind(), "bearer");
}

#[test]
fn config_rejects_unknown_keys_and_inline_secrets() {
    assert!(parse(serde_json::json!({"url": "http://x", "timeout": 3})).is_err());
    let inline = serde_json::json!({"url": "http://x", "auth": {"kind": "basic", "username": "u", "password": "p"}});
    assert!(parse(inline).is_err());
    assert!(parse(serde_json::json!({"url": "http://x", "auth": {"kind": "digest"}})).is_err());
}

#[test]
fn config_validation_names_the_key() {
    let key_of = |json: serde_json::Value| parse(json).unwrap().validate().unwrap_err().key;
    assert_eq!(key_of(serde_json::json!({"url": "not a url"})), "url");
    assert_eq!(key_of(serde_json::json!({"url": "ftp://pacs/dicom-web"})), "url");
    assert_eq!(key_of(serde_json::json!({"url": "http://user:pw@pacs/dicom-web"})), "url");
    assert_eq!(key_of(serde_json::json!({"url": "http://pacs/dicom-web?x=1"})), "url");
    assert_eq!(key_of(serde_json::json!({"url": "http://pacs", "concurrency": 0})), "concurrency");
    assert_eq!(key_of(serde_json::json!({"url": "http://pacs", "timeout_secs": 0})), "timeout_secs");
    assert_eq!(key_of(serde_json::json!({"url": "http://pacs", "retry_deadline_secs": 0})), "retry_deadline_secs");
    assert_eq!(key_of(serde_json::json!({"url": "http://pacs", "max_backoff_ms": 100})), "max_backoff_ms");
    assert_eq!(key_of(serde_json::json!({"url": "http://pacs", "ca_file": ""})), "ca_file");
    let basic = |auth: serde_json::Value| key_of(serde_json::json!({"url": "http://pacs", "auth": auth}));
    assert_eq!(basic(serde_json::json!({"kind": "basic", "username": "u"})), "auth.password_env");
    assert_eq!(
        basic(serde_json::json!({"kind": "basic", "username": "u", "password_env": "A", "password_file": "/f"})),
        "auth.password_env"
    );
    assert_eq!(basic(serde_json::json!({"kind": "basic", "username": "", "password_env": "A"})), "auth.username");
    assert_eq!(basic(serde_json::json!({"kind": "basic", "username": "a:b", "password_env": "A"})), "auth.username");
    assert_eq!(basic(serde_json::json!({"kind": "basic", "username": "u", "password_env": ""})), "auth.password_env");
    assert_eq!(basic(serde_json::json!({"kind": "bearer", "token_file": ""})), "auth.token_file");
    assert_eq!(basic(serde_json::json!({"kind": "bearer"})), "auth.token_env");
}

#[test]
fn build_names_a_missing_secret_without_revealing_one() {
    let config = StowConfig {
        auth: StowAuth::Basic {
            username: "u".into(),
            password_env: Some("RADSTREAM_TEST_STOW_UNSET_VARIABLE".into()),
            password_file: None,
        },
        ..StowConfig::new("http://127.0.0.1:1/dicom-web")
    };
    let error = config.build(&BuildContext::default()).unwrap_err();
    assert_eq!(error.key, "auth.password_env");
    assert!(error.problem.contains("RADSTREAM_TEST_STOW_UNSET_VARIABLE is not set"), "{error}");

    let path = std::env::temp_dir().join(format!("radstream-stow-bad-token-{}", std::process::id()));
    std::fs::write(&path, "secret\u{1}value").unwrap();
    let config = StowConfig {
        auth: StowAuth::Bearer { token_env: None, token_file: Some(path.clone()) },
        ..StowConfig::new("http://127.0.0.1:1/dicom-web")
    };
    let error = config.build(&BuildContext::default()).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(error.key, "auth.token_file");
    assert!(!error.to_string().contains("secret"), "{error}");

    let config = StowConfig {
        auth: StowAuth::Bearer { token_env: None, token_file: Some("/nonexistent/radstream/token".into()) },
        ..StowConfig::new("http://127.0.0.1:1/dicom-web")
    };
    let error = config.build(&BuildContext::default()).unwrap_err();
    assert_eq!(error.key, "auth.token_file");
    assert!(error.problem.contains("/nonexistent/radstream/token"), "{error}");

    let config = StowConfig { ca_file: Some("/nonexistent/ca.pem".into()), ..StowConfig::new("https://pacs") };
    assert_eq!(config.build(&BuildContext::default()).unwrap_err().key, "ca_file");
}

#[test]
fn debug_output_hides_the_secret() {
    std::env::set_var("RADSTREAM_TEST_STOW_DEBUG_TOKEN", "very-secret-token");
    let config = StowConfig {
        auth: StowAuth::Bearer { token_env: Some("RADSTREAM_TEST_STOW_DEBUG_TOKEN".into()), token_file: None },
        ..StowConfig::new("http://127.0.0.1:1/dicom-web")
    };
    let sink = config.build(&BuildContext::default()).unwrap();
    let debug = format!("{sink:?}");
    assert!(!debug.contains("very-secret-token") && debug.contains("bearer"), "{debug}");
}

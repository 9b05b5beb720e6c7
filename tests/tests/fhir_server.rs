//! The FHIR transaction bundles against a real FHIR R4 server: the stack's Medplum-based test
//! server (`infra/fhir/`, `RADSTREAM_TEST_FHIR_URL`). A bundle posted with `FhirPoster` must be
//! taken whole, be findable by its identifiers with its references resolving, and update in
//! place when replayed; outages are retried and refusals are not.
//!
//! The server's failure hook (`POST /__test/fail`) is global to it, so the tests here take
//! turns on [`SERVER`] rather than letting one test's injected failures reach another's requests.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use radstream_operators::contract::{Code, CodeSystem, Finding, InferenceResult, ModelIdentity};
use radstream_operators::contract::{OperatorMetric, Recorder};
use radstream_operators::fhir::post::{FhirPostConfig, FhirPoster};
use radstream_operators::results::fhir::PatientRef;
use radstream_operators::results::{build_fhir_bundle, FhirBundle, InstanceRef, SourceResult, StudyResults};
use radstream_operators::{ErrorClass, OperatorConfig};
use serde_json::Value;

/// One test at a time talks to the server (see the module documentation).
static SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const PATIENT: &str = "Patient/pseudo-7f3a9c";
/// 2024-01-31T10:00:00.250Z.
const EVENT_TIME_MS: i64 = 1_706_695_200_250;

/// The FHIR base URL of the stack's server, or `None` (a skip, `radstream_test_gate`) when the
/// stack is not up; under `RADSTREAM_REQUIRE_STACK=1` a missing server fails the test instead.
fn fhir_url() -> Option<String> {
    let url = std::env::var("RADSTREAM_TEST_FHIR_URL").ok().filter(|v| !v.is_empty());
    radstream_test_gate::needs(
        "the stack's FHIR server in RADSTREAM_TEST_FHIR_URL (infra/stack.sh up, then source .stack/env)",
        url.is_some(),
    );
    url
}

/// What the poster reported, for checking retries.
#[derive(Default)]
struct RecordingObserver {
    requests: Mutex<Vec<&'static str>>,
    retries: Mutex<u32>,
}

impl Recorder for RecordingObserver {
    fn record(&self, metric: OperatorMetric, labels: &[&str], _value: f64) {
        assert_eq!(labels.first(), Some(&"fhir"), "{metric:?}");
        match metric {
            OperatorMetric::DestinationRequests => {
                let class = ["2xx", "4xx", "5xx", "error"].into_iter().find(|c| Some(c) == labels.get(1));
                self.requests.lock().unwrap().push(class.unwrap_or("unexpected"));
            }
            OperatorMetric::DestinationRetries => *self.retries.lock().unwrap() += 1,
            _ => {}
        }
    }
}

/// A poster with short backoffs, so retry tests take milliseconds.
fn new_poster(url: &str, max_attempts: u32) -> (FhirPoster, Arc<RecordingObserver>) {
    let config = FhirPostConfig {
        max_attempts,
        retry_deadline_secs: 30,
        initial_backoff_ms: 10,
        max_backoff_ms: 2_000,
        ..FhirPostConfig::new(url)
    };
    let observer = Arc::new(RecordingObserver::default());
    (config.build(observer.clone()).expect("valid FHIR post config"), observer)
}

/// A study UID no other run uses, so that tests sharing the server never see each other's data.
fn unique_study_uid() -> String {
    format!("2.25.{}", radstream_tests::unique_seed())
}

fn finding(label: &str, value: &str, score: f32, critical: bool) -> Finding {
    Finding {
        label: label.into(),
        code: Code { system: CodeSystem::SnomedCt, value: value.into(), meaning: label.into() },
        frame: 0,
        score,
        threshold: 0.5,
        critical,
    }
}

/// The bundle of a study with two findings on one CT instance, built as the pipeline builds it.
fn bundle(study_uid: &str) -> FhirBundle {
    let model = ModelIdentity { name: "ct-head-bleed".into(), version: "1.0.0".into(), sha256: "ab".repeat(32) };
    let findings =
        vec![finding("intracranial hemorrhage", "1386000", 0.9, true), finding("midline shift", "396006", 0.7, false)];
    let result = InferenceResult {
        model: model.clone(),
        scores: vec![findings.iter().map(|f| f.score).collect()],
        findings,
        series: None,
        masks: None,
        mask_size: None,
    };
    let series = format!("{study_uid}.1");
    let instance = InstanceRef { sop_class_uid: CT_IMAGE_STORAGE.into(), sop_instance_uid: format!("{study_uid}.1.1") };
    let sr = format!("{study_uid}.9.1");
    let results = [SourceResult {
        series_instance_uid: &series,
        modality: Some("CT"),
        instance: Some(&instance),
        result: &result,
        sr_sop_instance_uid: Some(&sr),
    }];
    let head = Code { system: CodeSystem::SnomedCt, value: "69536005".into(), meaning: "Head".into() };
    let study = StudyResults {
        study_instance_uid: study_uid,
        patient: PatientRef::Reference(PATIENT),
        model: &model,
        results: &results,
        body_site: Some(&head),
        time_ms: EVENT_TIME_MS,
    };
    build_fhir_bundle(&study).expect("the bundle builds")
}

/// The bundle's resources of one type.
fn resources<'a>(bundle: &'a FhirBundle, resource_type: &str) -> Vec<&'a Value> {
    bundle.bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == resource_type)
        .collect()
}

/// `system|value` of a resource's first identifier, as a search token.
fn identifier_token(resource: &Value) -> String {
    let identifier = &resource["identifier"][0];
    format!("{}|{}", identifier["system"].as_str().unwrap(), identifier["value"].as_str().unwrap())
}

/// A read-only view of the server for the checks.
struct Server {
    base: String,
    http: reqwest::Client,
}

impl Server {
    fn new(base: &str) -> Self {
        Server { base: base.trim_end_matches('/').to_string(), http: reqwest::Client::new() }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<(u16, Value)> {
        let url = reqwest::Url::parse_with_params(&format!("{}/{path}", self.base), query)?;
        let response = self
            .http
            .get(url.clone())
            .header("Accept", "application/fhir+json")
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.with_context(|| format!("GET {url}: the body is not JSON"))?;
        Ok((status, body))
    }

    /// The resources of a search.
    async fn search(&self, resource_type: &str, query: &[(&str, &str)]) -> Result<Vec<Value>> {
        let (status, bundle) = self.get(resource_type, query).await?;
        ensure!(status == 200, "search {resource_type} {query:?}: HTTP {status}");
        ensure!(bundle["type"] == "searchset", "search {resource_type}: not a searchset: {bundle}");
        Ok(bundle["entry"].as_array().map(|e| e.iter().map(|e| e["resource"].clone()).collect()).unwrap_or_default())
    }

    /// How many resources of a type have the identifier (`_summary=count`).
    async fn count(&self, resource_type: &str, identifier: &str) -> Result<u64> {
        let (status, bundle) = self.get(resource_type, &[("identifier", identifier), ("_summary", "count")]).await?;
        ensure!(status == 200, "count {resource_type}: HTTP {status}");
        bundle["total"].as_u64().with_context(|| format!("count {resource_type}: no total in {bundle}"))
    }

    /// The resource a literal reference (`Type/id`) names.
    async fn read(&self, reference: &str) -> Result<Value> {
        let (status, resource) = self.get(reference, &[]).await?;
        ensure!(status == 200, "read {reference}: HTTP {status}");
        Ok(resource)
    }

    /// Arms the server's test-only failure hook: the next `count` requests answer `status`.
    async fn fail_next(&self, count: u32, status: u16, retry_after: Option<u64>) -> Result<()> {
        let origin = self.base.trim_end_matches("/fhir/R4");
        let mut query = vec![("count", count.to_string()), ("status", status.to_string())];
        if let Some(seconds) = retry_after {
            query.push(("retry_after", seconds.to_string()));
        }
        let url = reqwest::Url::parse_with_params(&format!("{origin}/__test/fail"), &query)?;
        let response = self.http.post(url).send().await?;
        ensure!(response.status().is_success(), "arming the failure hook: HTTP {}", response.status());
        Ok(())
    }
}

/// Each resource of the bundle that radstream owns is on the server exactly once.
async fn assert_one_of_each(server: &Server, bundle: &FhirBundle, study_uid: &str) -> Result<()> {
    for resource_type in ["Device", "Observation", "DiagnosticReport"] {
        for resource in resources(bundle, resource_type) {
            let token = identifier_token(resource);
            let count = server.count(resource_type, &token).await?;
            ensure!(count == 1, "{resource_type} {token}: {count} on the server, not 1");
        }
    }
    let study = format!("urn:dicom:uid|urn:oid:{study_uid}");
    let count = server.count("ImagingStudy", &study).await?;
    ensure!(count == 1, "ImagingStudy {study}: {count} on the server, not 1");
    Ok(())
}

#[tokio::test]
async fn a_posted_bundle_is_stored_whole_and_its_references_resolve() -> Result<()> {
    let Some(url) = fhir_url() else { return Ok(()) };
    let _turn = SERVER.lock().await;
    let server = Server::new(&url);
    let (poster, _) = new_poster(&url, 3);
    poster.probe().await.map_err(anyhow::Error::msg)?;

    let study_uid = unique_study_uid();
    let bundle = bundle(&study_uid);
    let sent = bundle.bundle["entry"].as_array().unwrap().len();
    let outcome = poster.post(&bundle.to_json(), &format!("study-{study_uid}")).await?;
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.entries.len(), sent);
    for entry in &outcome.entries {
        assert!(entry.status.starts_with('2'), "entry answered {}", entry.status);
        assert!(entry.location.is_some(), "entry without a location: {entry:?}");
    }

    // The report: one, preliminary, its results resolving to Observations on the server.
    let report = resources(&bundle, "DiagnosticReport")[0];
    let found = server.search("DiagnosticReport", &[("identifier", &identifier_token(report))]).await?;
    assert_eq!(found.len(), 1, "DiagnosticReports with the bundle's identifier: {found:#?}");
    let stored = &found[0];
    assert_eq!(stored["status"], "preliminary");
    assert_eq!(stored["identifier"], report["identifier"], "the server changed the report's identifier");
    let results = stored["result"].as_array().context("the stored report has no result")?;
    assert_eq!(results.len(), resources(&bundle, "Observation").len());

    // The Device: found by its identifier, and the one each Observation names.
    let device = resources(&bundle, "Device")[0];
    let devices = server.search("Device", &[("identifier", &identifier_token(device))]).await?;
    assert_eq!(devices.len(), 1, "Devices with the bundle's identifier: {devices:#?}");
    let device_reference = format!("Device/{}", devices[0]["id"].as_str().unwrap());

    // The ImagingStudy, by its DICOM identifier.
    let study_identifier = format!("urn:dicom:uid|urn:oid:{study_uid}");
    let studies = server.search("ImagingStudy", &[("identifier", &study_identifier)]).await?;
    assert_eq!(studies.len(), 1, "ImagingStudies {study_identifier}: {studies:#?}");
    let study_reference = format!("ImagingStudy/{}", studies[0]["id"].as_str().unwrap());

    for result in results {
        let reference = result["reference"].as_str().context("a result without a literal reference")?;
        assert!(reference.starts_with("Observation/"), "{reference} is not a server reference");
        let observation = server.read(reference).await?;
        assert_eq!(observation["resourceType"], "Observation");
        assert_eq!(observation["device"]["reference"], device_reference.as_str());
        assert_eq!(observation["derivedFrom"][0]["reference"], study_reference.as_str());
        assert_eq!(observation["subject"]["reference"], PATIENT);
    }
    assert_one_of_each(&server, &bundle, &study_uid).await
}

#[tokio::test]
async fn a_replayed_bundle_updates_in_place() -> Result<()> {
    let Some(url) = fhir_url() else { return Ok(()) };
    let _turn = SERVER.lock().await;
    let server = Server::new(&url);
    let (poster, _) = new_poster(&url, 3);
    let study_uid = unique_study_uid();
    let bundle = bundle(&study_uid);
    let name = format!("study-{study_uid}");

    let first = poster.post(&bundle.to_json(), &name).await?;
    let again = poster.post(&bundle.to_json(), &name).await?;
    assert_one_of_each(&server, &bundle, &study_uid).await?;
    // The same resources, updated (200) rather than created (201) the second time.
    let ids = |outcome: &radstream_operators::fhir::post::TransactionOutcome| -> Vec<String> {
        outcome
            .entries
            .iter()
            .map(|e| e.location.as_deref().unwrap().split('/').take(2).collect::<Vec<_>>().join("/"))
            .collect()
    };
    assert_eq!(ids(&first), ids(&again));
    for entry in &again.entries {
        assert!(entry.status.starts_with("200"), "a replayed entry answered {}", entry.status);
    }
    Ok(())
}

#[tokio::test]
async fn outages_are_retried_until_the_server_answers() -> Result<()> {
    let Some(url) = fhir_url() else { return Ok(()) };
    let _turn = SERVER.lock().await;
    let server = Server::new(&url);
    let study_uid = unique_study_uid();
    let bundle = bundle(&study_uid);

    let (poster, observer) = new_poster(&url, 10);
    server.fail_next(2, 503, None).await?;
    let outcome = poster.post(&bundle.to_json(), &format!("study-{study_uid}")).await?;
    assert_eq!(outcome.attempts, 3);
    assert_eq!(*observer.requests.lock().unwrap(), ["5xx", "5xx", "2xx"]);
    assert_eq!(*observer.retries.lock().unwrap(), 2);
    assert_one_of_each(&server, &bundle, &study_uid).await?;

    // A 429 with Retry-After: the poster waits at least that long before the next attempt.
    let (poster, _) = new_poster(&url, 10);
    server.fail_next(1, 429, Some(1)).await?;
    let started = Instant::now();
    let outcome = poster.post(&bundle.to_json(), &format!("study-{study_uid}")).await?;
    assert_eq!(outcome.attempts, 2);
    assert!(started.elapsed() >= Duration::from_secs(1), "retried after {:?}", started.elapsed());

    // An outage that outlasts the attempts.
    let (poster, _) = new_poster(&url, 2);
    server.fail_next(5, 502, None).await?;
    let error = poster.post(&bundle.to_json(), &format!("study-{study_uid}")).await.unwrap_err();
    server.fail_next(0, 503, None).await?;
    assert_eq!((error.class, error.attempts), (ErrorClass::FhirUnavailable, 2), "{}", error.reason);
    assert!(error.reason.contains("HTTP 502"), "{}", error.reason);
    Ok(())
}

#[tokio::test]
async fn an_invalid_bundle_is_rejected_without_retrying() -> Result<()> {
    let Some(url) = fhir_url() else { return Ok(()) };
    let _turn = SERVER.lock().await;
    let study_uid = unique_study_uid();

    // An entry of a resource type R4 does not have.
    let mut unknown_type = bundle(&study_uid).bundle;
    unknown_type["entry"][1]["resource"]["resourceType"] = "NotAResource".into();
    // An entry whose request cannot be routed.
    let mut bad_request = bundle(&study_uid).bundle;
    bad_request["entry"][1]["request"] = serde_json::json!({ "method": "PATCH", "url": "Device/$nonsense/x/y" });

    for (what, invalid) in [("unknown resource type", unknown_type), ("bad request URL", bad_request)] {
        let (poster, observer) = new_poster(&url, 5);
        let Err(error) = poster.post(&serde_json::to_vec(&invalid)?, &format!("study-{study_uid}")).await else {
            panic!("the server accepted a bundle with an {what}");
        };
        assert_eq!((error.class, error.attempts), (ErrorClass::FhirRejected, 1), "{what}: {}", error.reason);
        assert_eq!(*observer.retries.lock().unwrap(), 0, "{what}");
        assert_eq!(*observer.requests.lock().unwrap(), ["4xx"], "{what}");
        assert!(error.reason.contains(&format!("bundle study-{study_uid}")), "{}", error.reason);
    }
    Ok(())
}

/// Validates the posted bundle against the whole R4 JSON schema (its `oneOf` of every
/// resource), as the unit tests of the bundle do; where that fails, each entry's resource
/// against its own definition, for a message that says which.
const SCHEMA_SCRIPT: &str = r##"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft6Validator)
bundle = json.load(open(sys.argv[2]))
if cls(schema).is_valid(bundle):
    print("valid")
    sys.exit(0)
print("INVALID")
for entry in bundle.get("entry", []):
    resource = entry.get("resource", {})
    sub = dict(schema)
    sub.pop("oneOf", None)
    sub["$ref"] = "#/definitions/" + resource.get("resourceType", "?")
    for error in cls(sub).iter_errors(resource):
        print("  ", resource.get("resourceType"), list(error.absolute_path), error.message[:300])
sys.exit(1)
"##;

#[tokio::test]
async fn the_posted_bundle_is_valid_fhir_r4() -> Result<()> {
    let Some(schema) = std::env::var_os("RADSTREAM_TEST_FHIR_R4_SCHEMA").filter(|s| !s.is_empty()) else {
        radstream_tests::skip_without("the FHIR R4 JSON schema (RADSTREAM_TEST_FHIR_R4_SCHEMA)");
        return Ok(());
    };
    let bundle = bundle(&unique_study_uid());
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, bundle.to_json())?;
    let python = radstream_tests::python();
    let output = Command::new(&python).arg("-c").arg(SCHEMA_SCRIPT).arg(&schema).arg(&path).output()?;
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if report.contains("No module named 'jsonschema'") {
        radstream_tests::skip_without(&format!("Python's jsonschema module (for {python})"));
        return Ok(());
    }
    assert!(output.status.success(), "the FHIR R4 schema rejects the posted bundle:\n{report}");
    Ok(())
}

/// `/readyz` asks every sink's `readiness()` (the registry's dispatch, as the worker builds it
/// from the `[[operators]]` chain): the fhir sink with a `[server]` probes that server, and
/// answers for the real one, fails for a closed port, and has no probe without a server.
#[tokio::test]
async fn the_fhir_sinks_readiness_probes_its_server() -> Result<()> {
    let Some(url) = fhir_url() else { return Ok(()) };
    let _turn = SERVER.lock().await;
    let sink = |server: &str| -> Result<OperatorConfig> {
        let text = format!("type = \"fhir\"\npatient_identifier_system = \"urn:oid:1.2.3\"\n{server}");
        Ok(toml::from_str(&text)?)
    };
    let real = sink(&format!("[server]\nurl = \"{url}\"\n"))?;
    let probe = real.readiness().context("a fhir sink with a server has a readiness probe")?;
    ensure!(probe.name().starts_with("fhir"), "probe name: {}", probe.name());
    probe.probe().await.map_err(anyhow::Error::msg).context("the stack's FHIR server answers the probe")?;

    let closed = sink("[server]\nurl = \"http://127.0.0.1:9/fhir\"\n")?;
    let error = closed.readiness().context("a probe for the closed port")?.probe().await;
    ensure!(error.is_err(), "a FHIR server on a closed port passed the readiness probe");

    let without_server = sink("dir = \"/tmp/radstream-fhir-bundles\"\n")?;
    ensure!(without_server.readiness().is_none(), "a fhir sink without a server has nothing to probe");
    Ok(())
}

/// A test FHIR server of the test's own that demands `Authorization: Bearer <token>` (run by
/// `infra/fhir/run.sh --bearer-token-file`, as `RADSTREAM_TEST_FHIR_RUN` names it): the stack's
/// shared server asks for nothing, and the other tests here post to that one unauthenticated.
struct BearerFhirServer {
    child: std::process::Child,
    url: String,
    log: std::path::PathBuf,
}

impl BearerFhirServer {
    /// Starts it on a free port with the token in `token_file`, and waits until it answers.
    async fn start(dir: &std::path::Path, token_file: &std::path::Path) -> Result<BearerFhirServer> {
        let run = std::env::var("RADSTREAM_TEST_FHIR_RUN")
            .ok()
            .filter(|v| !v.is_empty())
            .context("RADSTREAM_TEST_FHIR_RUN is not set: run through infra/test.sh")?;
        let port = radstream_tests::free_port();
        let log = dir.join("fhir-server.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new("bash")
            .arg(&run)
            .args(["--port", &port.to_string(), "--bearer-token-file"])
            .arg(token_file)
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {run}"))?;
        let mut me = BearerFhirServer { child, url: format!("http://127.0.0.1:{port}/fhir/R4"), log };
        // Up once it answers at all (401: it asks for the token before anything else).
        let until = Instant::now() + Duration::from_secs(60);
        while reqwest::get(format!("{}/metadata", me.url)).await.is_err() {
            if let Some(status) = me.child.try_wait()? {
                anyhow::bail!("the FHIR server exited ({status}): {}", me.log_text());
            }
            ensure!(Instant::now() < until, "the FHIR server did not come up in 60 s: {}", me.log_text());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(me)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for BearerFhirServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Part-10 CT instance of `study_uid` with nothing but the attributes the fhir sink reads,
/// as an envelope carrying a model result with one critical finding.
fn envelope_with_result(study_uid: &str) -> Result<radstream_operators::Envelope> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let element = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let dataset = dicom_object::InMemDicomObject::from_element_iter([
        element(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE),
        element(tags::SOP_INSTANCE_UID, VR::UI, &format!("{study_uid}.1.1")),
        element(tags::STUDY_INSTANCE_UID, VR::UI, study_uid),
        element(tags::SERIES_INSTANCE_UID, VR::UI, &format!("{study_uid}.1")),
        element(tags::MODALITY, VR::CS, "CT"),
        element(tags::PATIENT_ID, VR::LO, "pseudo-7f3a9c"),
    ]);
    let meta = dicom_object::FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1");
    let mut object = Vec::new();
    dataset.with_meta(meta)?.write_all(&mut object)?;
    let location = radstream_schemas::ObjectLocation {
        bucket: "fhir-auth".into(),
        key: format!("{study_uid}.dcm"),
        size: None,
        etag: None,
    };
    let mut envelope =
        radstream_operators::Envelope::from_part10(1, location, object.into()).map_err(anyhow::Error::msg)?;
    let findings = vec![finding("intracranial hemorrhage", "1386000", 0.9, true)];
    envelope.results = Some(Arc::new(InferenceResult {
        model: ModelIdentity { name: "ct-head-bleed".into(), version: "1.0.0".into(), sha256: "ab".repeat(32) },
        scores: vec![findings.iter().map(|f| f.score).collect()],
        findings,
        series: None,
        masks: None,
        mask_size: None,
    }));
    Ok(envelope)
}

/// Bearer auth through a real peer: the fhir sink, built from the chain's TOML with
/// `[server.auth] kind = "bearer"`, posts to a FHIR server that demands the token, which stores
/// the bundle (read back with the token; without it the server answers 401 to the reads too).
/// Without a token, or with another one, the server answers 401 and the sink dead-letters the
/// instance as `fhir_rejected` after one attempt, saying to check `auth`; the readiness probe
/// fails the same way, and nothing is stored.
#[tokio::test]
async fn the_fhir_sink_posts_with_its_bearer_token_and_a_missing_or_wrong_one_is_a_401_dead_letter() -> Result<()> {
    use radstream_operators::{BuildContext, Outcome, RetryHint};
    if fhir_url().is_none() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let token = format!("radstream-test-{}", radstream_tests::unique_seed());
    let token_file = dir.path().join("fhir.token");
    std::fs::write(&token_file, format!("{token}\n"))?;
    let wrong_file = dir.path().join("wrong.token");
    std::fs::write(&wrong_file, format!("{token}-not"))?;
    let fhir = BearerFhirServer::start(dir.path(), &token_file).await?;

    // The server itself: the token or a 401 with a Bearer challenge.
    let plain = reqwest::Client::new();
    for (what, header) in [("no token", None), ("a wrong token", Some(format!("Bearer {token}-not")))] {
        let mut request = plain.get(format!("{}/metadata", fhir.url));
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        let response = request.send().await?;
        ensure!(response.status() == 401, "GET metadata with {what}: HTTP {}", response.status());
        let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("");
        ensure!(challenge.starts_with("Bearer"), "GET metadata with {what}: WWW-Authenticate {challenge:?}");
    }
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("Authorization", format!("Bearer {token}").parse()?);
    let server = Server { base: fhir.url.clone(), http: reqwest::Client::builder().default_headers(headers).build()? };
    let unauthorized = Server::new(&fhir.url);

    let sink = |auth: &str| -> Result<OperatorConfig> {
        let bundles = dir.path().join("bundles");
        let text = format!(
            "type = \"fhir\"\npatient_identifier_system = \"urn:oid:1.2.3\"\ndir = {bundles:?}\n\n[server]\nurl = \
             \"{}\"\nmax_attempts = 3\ninitial_backoff_ms = 10\n{auth}",
            fhir.url
        );
        let config: OperatorConfig = toml::from_str(&text).with_context(|| format!("the chain's TOML:\n{text}"))?;
        config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(config)
    };

    // With the token: delivered, and on the server.
    let right = sink(&format!("\n[server.auth]\nkind = \"bearer\"\ntoken_file = {token_file:?}\n"))?;
    let probe = right.readiness().context("a fhir sink with a server has a readiness probe")?;
    probe.probe().await.map_err(anyhow::Error::msg).context("readiness with the token")?;
    let study_uid = unique_study_uid();
    let mut operator = right.build(&BuildContext::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let done = operator.process_batch(vec![envelope_with_result(&study_uid)?]).await;
    ensure!(matches!(done[0].outcome, Outcome::Forward), "with the token: {:?}\n{}", done[0].outcome, fhir.log_text());
    // The bundle it posted is the one it wrote to `dir` (the second destination, after the server).
    let written = radstream_tests::files_ending(&dir.path().join("bundles").join(&study_uid), ".json");
    ensure!(written.len() == 1, "bundles written for {study_uid}: {written:?}");
    let posted = FhirBundle { bundle: serde_json::from_slice(&std::fs::read(&written[0])?)? };
    assert_one_of_each(&server, &posted, &study_uid).await?;
    let (status, _) = unauthorized.get("ImagingStudy", &[("identifier", "urn:dicom:uid|urn:oid:1.2.3")]).await?;
    ensure!(status == 401, "a search without the token: HTTP {status}");

    // Without a token, and with a wrong one: a 401, dead-lettered at once, and nothing stored.
    let wrong_auth = format!("\n[server.auth]\nkind = \"bearer\"\ntoken_file = {wrong_file:?}\n");
    for (what, auth) in [("no token", String::new()), ("a wrong token", wrong_auth)] {
        let config = sink(&auth)?;
        let probe = config.readiness().context("a readiness probe")?.probe().await;
        let Err(probe_error) = probe else { anyhow::bail!("with {what} the readiness probe passed") };
        ensure!(probe_error.contains("401"), "readiness with {what}: {probe_error}");

        let study_uid = unique_study_uid();
        let mut operator = config.build(&BuildContext::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let done = operator.process_batch(vec![envelope_with_result(&study_uid)?]).await;
        let Outcome::Fail(error) = &done[0].outcome else {
            anyhow::bail!("with {what} the sink did not fail: {:?}", done[0].outcome);
        };
        ensure!(error.class == ErrorClass::FhirRejected && error.retry == RetryHint::DeadLetter, "{what}: {error:?}");
        ensure!(error.attempts == 1, "{what}: a 401 is not retried, {} attempts", error.attempts);
        ensure!(
            error.reason.contains("HTTP 401") && error.reason.contains("check the `auth` settings"),
            "{what}: {}",
            error.reason
        );
        ensure!(!error.reason.contains(&token), "{what}: the reason shows the token");
        let study = format!("urn:dicom:uid|urn:oid:{study_uid}");
        ensure!(server.count("ImagingStudy", &study).await? == 0, "{what}: the server stored the study");
    }
    Ok(())
}

//! The sink's destinations: the `dir` folder takes only UID-named paths, and a batch's bundles
//! go to the server concurrently, within the bound.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_object::InMemDicomObject;
use radstream_schemas::ObjectLocation;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::*;
use crate::contract::{Code, CodeSystem, Finding, InferenceResult, ModelIdentity};
use crate::RetryHint;

fn envelope(ticket: u64, study: &str) -> Envelope {
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let dataset = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        text(tags::SOP_INSTANCE_UID, VR::UI, &format!("1.2.3.4.{ticket}")),
        text(tags::MODALITY, VR::CS, "CT"),
        text(tags::PATIENT_ID, VR::LO, "MRN77"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, study),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &format!("1.2.3.5.{ticket}")),
    ]);
    let file = dataset
        .with_meta(dicom_object::meta::FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1"))
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    let location = ObjectLocation { bucket: "in".into(), key: format!("{ticket}.dcm"), size: None, etag: None };
    let mut e = Envelope::from_part10(ticket, location, Bytes::from(bytes)).unwrap();
    let finding = Finding {
        label: "intracranial hemorrhage".into(),
        code: Code { system: CodeSystem::SnomedCt, value: "1386000".into(), meaning: "Intracranial hemorrhage".into() },
        frame: 0,
        score: 0.97,
        threshold: 0.5,
        critical: true,
    };
    e.results = Some(Arc::new(InferenceResult {
        model: ModelIdentity { name: "m".into(), version: "1".into(), sha256: "ab".repeat(32) },
        scores: vec![vec![finding.score]],
        findings: vec![finding],
        series: None,
        masks: None,
        mask_size: None,
    }));
    e
}

fn config(toml_text: &str) -> FhirConfig {
    toml::from_str(toml_text).unwrap()
}

/// Every file under `root`, relative to it.
fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn a_study_uid_that_is_a_path_is_refused_and_nothing_is_written() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a").join("b").join("bundles");
    let mut sink = config(&format!("dir = {:?}", dir.display().to_string())).build(&BuildContext::default()).unwrap();
    let out = sink
        .process_batch(vec![envelope(1, "../../etc"), envelope(2, "1.2.3/../../x"), envelope(3, "1.2.840.99")])
        .await;
    for p in &out[..2] {
        let Outcome::Fail(e) = &p.outcome else { panic!("{:?}", p.outcome) };
        assert_eq!((e.class, e.retry), (ErrorClass::MalformedDicom, RetryHint::DeadLetter));
        assert!(e.reason.contains("StudyInstanceUID is not a well-formed UID"), "{}", e.reason);
        assert!(!e.reason.contains(".."), "the value is not repeated: {}", e.reason);
    }
    assert!(matches!(out[2].outcome, Outcome::Forward), "{:?}", out[2].outcome);
    // Only the valid instance's bundle, inside `dir`.
    let files = files_under(root.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with("a/b/bundles/1.2.840.99/bundle-"), "{files:?}");
}

#[test]
fn concurrent_bundles_is_bounded() {
    assert_eq!(config("dir = \"/tmp/x\"").concurrent_bundles, 16);
    for bad in [0, 65] {
        let c = config(&format!("dir = \"/tmp/x\"\nconcurrent_bundles = {bad}"));
        assert_eq!(c.validate().unwrap_err().key, "concurrent_bundles");
    }
}

/// A FHIR server that holds every transaction until `hold` are in flight at once (or, so that a
/// sink that sends one at a time still ends, until a request has waited long), then answers
/// each with an all-201 transaction-response; it records the most requests in flight.
struct SlowServer {
    in_flight: AtomicUsize,
    most: AtomicUsize,
    requests: AtomicUsize,
    open: AtomicBool,
    hold: usize,
}

impl SlowServer {
    async fn start(hold: usize) -> (Arc<SlowServer>, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/fhir/R4", listener.local_addr().unwrap());
        let server = Arc::new(SlowServer {
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            open: AtomicBool::new(false),
            hold,
        });
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let s = s.clone();
                tokio::spawn(async move { s.serve(socket).await });
            }
        });
        (server, url)
    }

    async fn serve(&self, socket: tokio::net::TcpStream) {
        let mut socket = BufReader::new(socket);
        loop {
            let mut length = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0u8; length];
            socket.read_exact(&mut body).await.unwrap();
            let entries = serde_json::from_slice::<Value>(&body).unwrap()["entry"].as_array().unwrap().len();

            self.requests.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            // A liveness guard, not a measurement: what the test asserts is `most`.
            for _ in 0..400 {
                if self.open.load(Ordering::SeqCst) || self.in_flight.load(Ordering::SeqCst) >= self.hold {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            self.open.store(true, Ordering::SeqCst);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);

            let response = json!({
                "resourceType": "Bundle",
                "type": "transaction-response",
                "entry": vec![json!({ "response": { "status": "201 Created" } }); entries],
            });
            let response = serde_json::to_vec(&response).unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\n\r\n",
                response.len()
            );
            let socket = socket.get_mut();
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.write_all(&response).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_batchs_bundles_reach_a_slow_server_concurrently_within_the_bound() {
    let (server, url) = SlowServer::start(4).await;
    let text = format!("concurrent_bundles = 4\n[server]\nurl = {url:?}\nmax_attempts = 1\n");
    let mut sink = config(&text).build(&BuildContext::default()).unwrap();
    // Eight studies, eight bundles, and a ninth instance sharing the first one's bundle.
    let mut batch: Vec<Envelope> = (1..=8).map(|i| envelope(i, &format!("1.2.3.{i}"))).collect();
    let mut twin = envelope(1, "1.2.3.1");
    twin.ticket = 9;
    batch.push(twin);
    let out = sink.process_batch(batch).await;
    assert!(out.iter().all(|p| matches!(p.outcome, Outcome::Forward)), "{:?}", out[0].outcome);
    let tickets: Vec<u64> = out.iter().map(|p| p.envelope.ticket).collect();
    assert_eq!(tickets, (1..=9).collect::<Vec<_>>(), "outcomes stay with their envelopes, in order");
    // Four at once (not one after another), and never more than the bound.
    assert_eq!(server.most.load(Ordering::SeqCst), 4);
    assert_eq!(server.requests.load(Ordering::SeqCst), 8, "a shared bundle is sent once");
}

//! A stand-in PACS for the zero-setup demo only: a DICOMweb STOW-RS endpoint on 127.0.0.1 that
//! files each instance under `root/studies/<StudyInstanceUID>/series/<SeriesInstanceUID>/
//! instances/<SOPInstanceUID>.dcm` and answers like a PACS (a Store Instances response in the
//! DICOM JSON model, PS3.18 10.5.3). It lets `radstream demo` exercise the real `stow` sink
//! without Orthanc; it is not a PACS (no query, no retrieve, no authentication).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use radstream_operators::dicom::uids::is_uid;
use radstream_operators::parse_header;
use radstream_operators::stow::multipart::{related_boundary, split_parts};
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Largest request accepted: one instance per request from the sink, but a large one (an
/// uncompressed multi-frame) must still fit.
const MAX_REQUEST_BYTES: usize = 1 << 30;

/// FailureReason 0xC000: cannot understand (the part is not a readable Part-10 file).
const CANNOT_UNDERSTAND: u16 = 0xC000;
/// FailureReason 0x0110: processing failure (the file could not be written; worth a retry).
const PROCESSING_FAILURE: u16 = 0x0110;

/// The running stand-in PACS. Dropping it stops the server; [`FolderPacs::stop`] also waits
/// for it.
#[derive(Debug)]
pub struct FolderPacs {
    addr: SocketAddr,
    stored: Arc<AtomicUsize>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    base_url: String,
    stored: Arc<AtomicUsize>,
}

impl FolderPacs {
    /// Creates `root` and serves `POST /dicom-web/studies` on an ephemeral port of 127.0.0.1.
    pub async fn start(root: PathBuf) -> anyhow::Result<FolderPacs> {
        tokio::fs::create_dir_all(&root).await.with_context(|| format!("creating {}", root.display()))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the folder PACS")?;
        let addr = listener.local_addr().context("reading the folder PACS address")?;
        let stored = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared { root, base_url: base_url(addr), stored: stored.clone() });
        let app = Router::new()
            .route("/dicom-web/studies", post(store_instances))
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(shared);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let stopped = async {
                // A send or a dropped sender both mean stop.
                let _ = stopped.await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
                tracing::warn!(error = %e, "folder PACS server failed");
            }
        });
        tracing::info!(url = %base_url(addr), "folder PACS listening");
        Ok(FolderPacs { addr, stored, shutdown: Some(shutdown), server: Some(server) })
    }

    /// The DICOMweb base URL, for example `http://127.0.0.1:40123/dicom-web`.
    pub fn base_url(&self) -> String {
        base_url(self.addr)
    }

    /// Distinct instances written so far (storing the same SOP instance again replaces the file
    /// and is not counted twice).
    pub fn stored(&self) -> usize {
        self.stored.load(Ordering::Relaxed)
    }

    /// Stops the server and waits for open requests to finish (at most a few seconds).
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut server).await.is_err() {
                server.abort();
            }
        }
    }
}

impl Drop for FolderPacs {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}/dicom-web")
}

async fn store_instances(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(boundary) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(related_boundary) else {
        let problem = "expected Content-Type: multipart/related; type=\"application/dicom\"; boundary=...";
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, problem).into_response();
    };
    // Parsing headers and writing files block: keep them off the executor.
    let outcome = tokio::task::spawn_blocking(move || store_parts(&shared, &body, &boundary)).await;
    let (status, response) = match outcome {
        Ok(Ok(stored)) => stored,
        Ok(Err(problem)) => return (StatusCode::BAD_REQUEST, problem).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "folder PACS store task failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    (status, [(CONTENT_TYPE, "application/dicom+json")], response.to_string()).into_response()
}

/// One stored or failed part, as an item of ReferencedSOPSequence or FailedSOPSequence.
enum PartOutcome {
    Stored(Value),
    Failed(Value),
}

/// Stores every part; the status and Store Instances response to answer with.
fn store_parts(shared: &Shared, body: &[u8], boundary: &str) -> Result<(StatusCode, Value), String> {
    let parts = split_parts(body, boundary).map_err(|e| format!("unreadable multipart body: {e}"))?;
    if parts.is_empty() {
        return Err("the multipart body holds no part".into());
    }
    let mut referenced = Vec::new();
    let mut failed = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        match store_part(shared, index, part.body) {
            PartOutcome::Stored(item) => referenced.push(item),
            PartOutcome::Failed(item) => failed.push(item),
        }
    }
    let status = match (referenced.is_empty(), failed.is_empty()) {
        (_, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, false) => StatusCode::CONFLICT,
    };
    let mut response = Map::new();
    if !failed.is_empty() {
        response.insert(json_key(tags::FAILED_SOP_SEQUENCE), json!({"vr": "SQ", "Value": failed}));
    }
    if !referenced.is_empty() {
        response.insert(json_key(tags::REFERENCED_SOP_SEQUENCE), json!({"vr": "SQ", "Value": referenced}));
    }
    Ok((status, Value::Object(response)))
}

/// The UIDs that place an instance.
struct InstanceUids {
    study: String,
    series: String,
    sop_instance: String,
    sop_class: String,
}

fn store_part(shared: &Shared, index: usize, part: &[u8]) -> PartOutcome {
    let uids = match read_uids(part) {
        Ok(uids) => uids,
        Err(problem) => {
            tracing::warn!(part = index, %problem, "folder PACS: unreadable part");
            return PartOutcome::Failed(failed_item(None, None, CANNOT_UNDERSTAND));
        }
    };
    let dir = shared.root.join("studies").join(&uids.study).join("series").join(&uids.series).join("instances");
    let path = dir.join(format!("{}.dcm", uids.sop_instance));
    match write_atomically(&dir, &path, part) {
        Ok(replaced) => {
            if !replaced {
                shared.stored.fetch_add(1, Ordering::Relaxed);
            }
            tracing::debug!(sop_instance_uid = %uids.sop_instance, replaced, "folder PACS stored an instance");
            let url = format!(
                "{}/studies/{}/series/{}/instances/{}",
                shared.base_url, uids.study, uids.series, uids.sop_instance
            );
            let mut item = sop_reference(&uids.sop_class, &uids.sop_instance);
            item.insert(json_key(tags::RETRIEVE_URL), json!({"vr": "UR", "Value": [url]}));
            PartOutcome::Stored(Value::Object(item))
        }
        Err(e) => {
            tracing::warn!(sop_instance_uid = %uids.sop_instance, path = %path.display(), error = %e, "folder PACS: cannot write");
            PartOutcome::Failed(failed_item(Some(&uids.sop_class), Some(&uids.sop_instance), PROCESSING_FAILURE))
        }
    }
}

/// Reads the placing UIDs from a Part-10 file, stopping before Pixel Data, through radstream's
/// one header parse (its pre-scan refuses what would cost the parser without bound).
fn read_uids(part: &[u8]) -> Result<InstanceUids, String> {
    let object = parse_header(part).map_err(|e| format!("not a DICOM Part-10 instance: {e}"))?;
    let uid = |tag, name| -> Result<String, String> {
        let value = uid_value(&object, tag).ok_or_else(|| format!("no {name}"))?;
        // The UIDs become path components: only a well-formed UID may.
        if is_uid(&value) {
            Ok(value)
        } else {
            Err(format!("{name} is not a well-formed UID"))
        }
    };
    Ok(InstanceUids {
        study: uid(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        series: uid(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        sop_instance: uid(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
        sop_class: uid(tags::SOP_CLASS_UID, "SOPClassUID")?,
    })
}

fn uid_value(object: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let value = object.element(tag).ok()?.to_str().ok()?;
    Some(value.trim_end_matches(['\0', ' ']).trim().to_string())
}

/// Writes through a temporary file and a rename, so that a reader never sees half a file.
/// Returns whether an earlier copy was replaced.
fn write_atomically(dir: &Path, path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let replaced = path.exists();
    let temporary = path.with_extension(format!("dcm.{:016x}.tmp", fastrand::u64(..)));
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })?;
    Ok(replaced)
}

fn sop_reference(sop_class: &str, sop_instance: &str) -> Map<String, Value> {
    let mut item = Map::new();
    item.insert(json_key(tags::REFERENCED_SOP_CLASS_UID), json!({"vr": "UI", "Value": [sop_class]}));
    item.insert(json_key(tags::REFERENCED_SOP_INSTANCE_UID), json!({"vr": "UI", "Value": [sop_instance]}));
    item
}

fn failed_item(sop_class: Option<&str>, sop_instance: Option<&str>, reason: u16) -> Value {
    let mut item = match (sop_class, sop_instance) {
        (Some(class), Some(instance)) => sop_reference(class, instance),
        _ => Map::new(),
    };
    item.insert(json_key(tags::FAILURE_REASON), json!({"vr": "US", "Value": [reason]}));
    Value::Object(item)
}

/// The DICOM JSON key of a tag: eight upper-case hex digits.
fn json_key(tag: dicom_core::Tag) -> String {
    format!("{:04X}{:04X}", tag.group(), tag.element())
}

#[cfg(test)]
mod tests;

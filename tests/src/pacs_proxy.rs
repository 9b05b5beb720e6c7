//! A recording proxy in front of a PACS (Orthanc): it counts the instances the PACS said it
//! stored, per SOP Instance UID, at every successful STOW-RS request that passed through it.
//!
//! Orthanc keeps one copy per SOPInstanceUID, so reading the PACS back (QIDO-RS) can never show
//! a duplicate delivery: the count has to be taken where deliveries happen. The proxy reads each
//! STOW-RS answer itself (ReferencedSOPSequence (0008,1199) of the `application/dicom+json`
//! body, with `serde_json`, not radstream's parser), so a re-sent instance shows as stored twice.
//!
//! It can also break things (the chaos run): answer a share of POSTs with 503, or hold them past
//! the client's timeout and answer 504, without forwarding either. And it can demand a bearer
//! token (`Authorization: Bearer <token>`, 401 otherwise) and present the PACS's own basic
//! credentials upstream, so the STOW sink's bearer auth is tested against a server that refuses
//! a missing or wrong token.
//!
//! A request is forwarded from a task of its own, so that when the client gives up (its timeout)
//! the PACS's answer is still read and recorded: the store it made counts, marked as unanswered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes as Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};

use crate::Pacs;

/// What the proxy does besides forwarding.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Share of POST requests answered 503 (not forwarded).
    pub errors: f64,
    /// Share of POST requests held for `hold`, then answered 504 (not forwarded).
    pub timeouts: f64,
    /// How long an injected timeout holds the request.
    pub hold: Duration,
    /// Demand `Authorization: Bearer <token>` of every request (401 otherwise) and send the
    /// upstream PACS's basic credentials instead. `None`: headers pass through as they came.
    pub bearer_token: Option<String>,
    /// Keep each Part-10 object of each STOW-RS request as it came, by SOP Instance UID
    /// ([`PacsProxy::sent`]), to compare what the PACS serves with what radstream sent.
    pub keep_sent: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self { errors: 0.0, timeouts: 0.0, hold: Duration::from_secs(8), bearer_token: None, keep_sent: false }
    }
}

/// One store the PACS reported for an instance.
#[derive(Debug, Clone)]
pub struct Store {
    /// Who sent it: the tag of the URL it came in on ([`PacsProxy::pacs_for`]), if any.
    pub by: Option<String>,
    /// When the PACS's answer reached the proxy.
    pub at: Instant,
    /// Whether the client was still there for the answer (false: it had hung up, its timeout).
    pub answered: bool,
}

/// Instances the PACS stored more than once, and why each re-send was allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resends {
    /// Instances stored more than once.
    pub instances: usize,
    /// Stores beyond the first, over all of them.
    pub extra_stores: usize,
    /// Re-sends after a store whose answer no client heard (a timeout or a dead process).
    pub after_unanswered: usize,
    /// Re-sends after a change of owner: another worker, or a rebalance or crash between.
    pub after_rebalance: usize,
}

/// What the proxy saw and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyCounts {
    /// POSTs answered 503 by the proxy.
    pub injected_errors: u64,
    /// POSTs held and answered 504 by the proxy.
    pub injected_timeouts: u64,
    /// Requests refused 401 (no or wrong bearer token).
    pub refused: u64,
    /// Requests forwarded to the PACS.
    pub forwarded: u64,
    /// Successful STOW answers whose body the proxy could not read as DICOM JSON.
    pub unreadable_answers: u64,
}

#[derive(Default)]
struct Counters {
    injected_errors: AtomicU64,
    injected_timeouts: AtomicU64,
    refused: AtomicU64,
    forwarded: AtomicU64,
    unreadable_answers: AtomicU64,
}

struct State {
    upstream: Pacs,
    opts: ProxyOptions,
    client: reqwest::Client,
    counters: Counters,
    stores: Mutex<HashMap<String, Vec<Store>>>,
    sent: Mutex<BTreeMap<String, Vec<Vec<u8>>>>,
}

/// The running proxy; stops when dropped.
pub struct PacsProxy {
    /// The PACS as seen through the proxy (same user and password as upstream).
    pub pacs: Pacs,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl PacsProxy {
    /// Starts a proxy on a free loopback port in front of `upstream`.
    pub async fn start(upstream: &Pacs, opts: ProxyOptions) -> Result<PacsProxy> {
        let state = Arc::new(State {
            upstream: upstream.clone(),
            opts,
            client: reqwest::Client::new(),
            counters: Counters::default(),
            stores: Mutex::new(HashMap::new()),
            sent: Mutex::new(BTreeMap::new()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let router = {
            let state = Arc::clone(&state);
            axum::Router::new()
                .fallback(move |method, uri, headers, body| handle(Arc::clone(&state), method, uri, headers, body))
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let pacs = Pacs { base: format!("http://127.0.0.1:{port}"), ..upstream.clone() };
        Ok(PacsProxy { pacs, state, server })
    }

    /// The PACS through the proxy under a sender's own URL prefix (`/w/<tag>`), so that each
    /// store is recorded with who sent it (one tag per worker process).
    pub fn pacs_for(&self, tag: &str) -> Pacs {
        Pacs { base: format!("{}/w/{tag}", self.pacs.base), ..self.pacs.clone() }
    }

    /// Every store the PACS reported, by SOP Instance UID.
    pub fn stores(&self) -> HashMap<String, Vec<Store>> {
        self.state.stores.lock().expect("proxy state").clone()
    }

    /// The SOP Instance UIDs of every object a STOW-RS request carried (with `keep_sent`).
    pub fn sent_sops(&self) -> BTreeSet<String> {
        self.state.sent.lock().expect("proxy state").keys().cloned().collect()
    }

    /// Every copy of the object sent under `sop`, in the order sent (with `keep_sent`).
    pub fn sent(&self, sop: &str) -> Vec<Vec<u8>> {
        self.state.sent.lock().expect("proxy state").get(sop).cloned().unwrap_or_default()
    }

    /// How many times the PACS said it stored each instance.
    pub fn store_counts(&self) -> HashMap<String, usize> {
        self.stores().into_iter().map(|(sop, s)| (sop, s.len())).collect()
    }

    /// Fails unless each of `expected` was stored exactly once and nothing else was stored.
    pub fn ensure_each_stored_once<'a>(&self, expected: impl IntoIterator<Item = &'a String>) -> Result<()> {
        let counts = self.store_counts();
        let expected: std::collections::HashSet<&String> = expected.into_iter().collect();
        let missing: Vec<_> = expected.iter().filter(|s| !counts.contains_key(**s)).collect();
        let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        let unexpected: Vec<_> = counts.keys().filter(|s| !expected.contains(s)).collect();
        anyhow::ensure!(
            missing.is_empty() && repeated.is_empty() && unexpected.is_empty(),
            "STOW-RS stores seen at the proxy: {} of {} expected instances never stored (e.g. {:?}), {} stored more \
             than once ({:?}), {} not expected (e.g. {:?}); {:?}",
            missing.len(),
            expected.len(),
            missing.first(),
            repeated.len(),
            repeated.iter().take(5).collect::<Vec<_>>(),
            unexpected.len(),
            unexpected.first(),
            self.counts(),
        );
        Ok(())
    }

    /// Checks every instance stored more than once against what at-least-once delivery allows,
    /// and counts them. Stores whose answer nobody heard (the client had hung up: its timeout,
    /// or its process died) explain the store after them. Of the answered stores, each one after
    /// the first must follow a change of owner: it came from another sender than the store
    /// before it (tags of [`Self::pacs_for`]: another worker re-read an event whose offset was
    /// not committed), or one of `disruptions` (a worker started, killed, a broker restart: a
    /// rebalance) lies between the two. Anything else (one sender storing an instance twice
    /// with no disruption between) is a duplicate at-least-once does not allow, and fails.
    pub fn ensure_resends_explained(&self, disruptions: &[Instant]) -> Result<Resends> {
        let mut out = Resends::default();
        for (sop, mut stores) in self.stores() {
            if stores.len() < 2 {
                continue;
            }
            stores.sort_by_key(|s| s.at);
            let answered: Vec<&Store> = stores.iter().filter(|s| s.answered).collect();
            for pair in answered.windows(2) {
                let (first, next) = (pair[0], pair[1]);
                let other_sender = first.by.is_some() && next.by.is_some() && first.by != next.by;
                let disrupted = disruptions.iter().any(|d| first.at < *d && *d < next.at);
                anyhow::ensure!(
                    other_sender || disrupted,
                    "{sop} was stored twice by {:?} with answers the client heard, {:.1} s apart, and no rebalance \
                     or crash between: {stores:?}",
                    first.by,
                    (next.at - first.at).as_secs_f64(),
                );
                out.after_rebalance += 1;
            }
            out.instances += 1;
            out.extra_stores += stores.len() - 1;
            out.after_unanswered += stores.iter().filter(|s| !s.answered).count().min(stores.len() - 1);
        }
        Ok(out)
    }

    /// What the proxy injected, refused and forwarded.
    pub fn counts(&self) -> ProxyCounts {
        let c = &self.state.counters;
        ProxyCounts {
            injected_errors: c.injected_errors.load(Ordering::Relaxed),
            injected_timeouts: c.injected_timeouts.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            unreadable_answers: c.unreadable_answers.load(Ordering::Relaxed),
        }
    }
}

impl Drop for PacsProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Answer = (StatusCode, HeaderMap, Body);

async fn handle(state: Arc<State>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Answer {
    if let Some(token) = &state.opts.bearer_token {
        let presented = headers.get("authorization").and_then(|v| v.to_str().ok());
        if presented != Some(format!("Bearer {token}").as_str()) {
            state.counters.refused.fetch_add(1, Ordering::Relaxed);
            let mut h = HeaderMap::new();
            h.insert("www-authenticate", HeaderValue::from_static("Bearer realm=\"radstream-test-pacs\""));
            return (StatusCode::UNAUTHORIZED, h, Body::from_static(b"a bearer token is required"));
        }
    }
    let draw = fastrand::f64();
    if method == Method::POST && draw < state.opts.errors {
        state.counters.injected_errors.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new(), Body::from_static(b"injected"));
    }
    if method == Method::POST && draw < state.opts.errors + state.opts.timeouts {
        state.counters.injected_timeouts.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(state.opts.hold).await;
        return (StatusCode::GATEWAY_TIMEOUT, HeaderMap::new(), Body::from_static(b"injected"));
    }
    state.counters.forwarded.fetch_add(1, Ordering::Relaxed);
    if state.opts.keep_sent && method == Method::POST && uri.path().contains("/studies") {
        keep_sent(&state, &headers, &body);
    }
    // Forwarded from a task of its own: if the client hangs up, this handler is dropped but the
    // PACS's answer is still read and its stores recorded.
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(forward(state, method, uri, headers, body, tx));
    rx.await.unwrap_or((StatusCode::BAD_GATEWAY, HeaderMap::new(), Body::from_static(b"proxy task failed")))
}

async fn forward(
    state: Arc<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    tx: tokio::sync::oneshot::Sender<Answer>,
) {
    let is_stow = method == Method::POST && uri.path().contains("/studies");
    let mut path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut by = None;
    if let Some(rest) = path.strip_prefix("/w/") {
        let (tag, upstream_path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        by = Some(tag.to_string());
        path = upstream_path;
    }
    let url = format!("{}{path}", state.upstream.base);
    let mut request = state.client.request(method, url).body(body.to_vec());
    for (name, value) in &headers {
        let replaced = name == "authorization" && state.opts.bearer_token.is_some();
        if name != "host" && name != "content-length" && !replaced {
            request = request.header(name, value);
        }
    }
    if state.opts.bearer_token.is_some() {
        request = request.basic_auth(&state.upstream.user, Some(&state.upstream.password));
    }
    let answer = match request.send().await {
        Ok(response) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut out = HeaderMap::new();
            if let Some(ct) = response.headers().get("content-type") {
                out.insert("content-type", ct.clone());
            }
            match response.bytes().await {
                Ok(bytes) => (status, out, bytes),
                Err(_) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), Body::from_static(b"pacs answer cut off")),
            }
        }
        Err(_) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), Body::from_static(b"pacs down")),
    };
    let stored = if is_stow && answer.0.is_success() {
        let sops = stored_sops(&answer.2);
        if sops.is_none() {
            state.counters.unreadable_answers.fetch_add(1, Ordering::Relaxed);
        }
        sops.unwrap_or_default()
    } else {
        Vec::new()
    };
    let at = Instant::now();
    let answered = tx.send(answer).is_ok();
    let mut stores = state.stores.lock().expect("proxy state");
    for sop in stored {
        stores.entry(sop).or_default().push(Store { by: by.clone(), at, answered });
    }
}

/// Keeps each Part-10 object of a STOW-RS request by its SOP Instance UID. An unreadable
/// request is not kept: a test then finds the object missing.
fn keep_sent(state: &State, headers: &HeaderMap, body: &[u8]) {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(boundary) =
        content_type.split(';').find_map(|p| p.trim().strip_prefix("boundary=")).map(|b| b.trim_matches('"'))
    else {
        return;
    };
    let mut sent = state.sent.lock().expect("proxy state");
    for part in multipart_parts(body, boundary).unwrap_or_default() {
        let sop = dicom_object::OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Always)
            .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
            .from_reader(part)
            .ok()
            .and_then(|o| {
                let uid = o.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID).ok()?.to_str().ok()?;
                Some(uid.trim_end_matches(['\0', ' ']).to_string())
            });
        if let Some(sop) = sop {
            sent.entry(sop).or_default().push(part.to_vec());
        }
    }
}

/// The parts of a `multipart/related` body (a STOW-RS request, a WADO-RS answer) with
/// `boundary`, without their headers.
pub fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>> {
    let find = |needle: &[u8], from: usize| {
        body.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
    };
    let delimiter = format!("\r\n--{boundary}");
    // The first delimiter may open the body without the CRLF before it.
    let mut at = find(&delimiter.as_bytes()[2..], 0).context("no first boundary")? + delimiter.len() - 2;
    let mut parts = Vec::new();
    while !body[at..].starts_with(b"--") {
        let headers_end = find(b"\r\n\r\n", at).context("no part headers")? + 4;
        let end = find(delimiter.as_bytes(), headers_end).context("no closing boundary")?;
        parts.push(&body[headers_end..end]);
        at = end + delimiter.len();
    }
    Ok(parts)
}

/// The ReferencedSOPInstanceUIDs (0008,1155) in ReferencedSOPSequence (0008,1199) of a STOW-RS
/// answer in DICOM JSON; `None` when the body is not DICOM JSON.
fn stored_sops(body: &[u8]) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let items = match value.get("00081199") {
        None => return Some(Vec::new()),
        Some(seq) => seq.get("Value").and_then(|v| v.as_array()).cloned().unwrap_or_default(),
    };
    Some(items.iter().filter_map(|i| i["00081155"]["Value"][0].as_str().map(str::to_string)).collect())
}

#[cfg(test)]
mod tests {
    use super::stored_sops;

    #[test]
    fn reads_the_stored_instances_of_a_stow_answer() {
        let body = br#"{"00081190":{"vr":"UR","Value":["http://x/studies/1"]},
            "00081199":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.2"]},
            "00081155":{"vr":"UI","Value":["1.2.3"]}},{"00081155":{"vr":"UI","Value":["1.2.4"]}}]},
            "00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["9.9"]}}]}}"#;
        assert_eq!(stored_sops(body), Some(vec!["1.2.3".to_string(), "1.2.4".to_string()]));
        assert_eq!(stored_sops(b"{}"), Some(vec![]));
        assert_eq!(stored_sops(b"<xml/>"), None);
    }
}

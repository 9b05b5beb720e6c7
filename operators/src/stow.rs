//! `stow`: the PACS sink. Each instance is POSTed on its own as a STOW-RS request (PS3.18 10.5)
//! to `{url}/studies`, up to `concurrency` at once, retried with exponential backoff and full
//! jitter while the PACS is unreachable or failing, until `max_attempts` or the retry deadline.
//!
//! An instance is delivered when the PACS lists it in ReferencedSOPSequence, or says it already
//! holds it. Retrying a POST whose answer was lost is safe for the same reason: the PACS answers
//! the second one with "duplicate SOP instance".
//!
//! After a `results` step the sink stores the instance's result objects (SR, SEG, overlays)
//! instead of the instance, one request each, and the instance is delivered only once the PACS
//! has accepted all of them; a series' objects, carried by each of its instances, are sent once.
//!
//! Logs and errors name an instance by object key and SOPInstanceUID only; response bodies are
//! never logged, because a PACS may echo attributes of the instance in them.

pub mod multipart;
mod response;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use radstream_schemas::ErrorClass;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde::Deserialize;

use crate::config::OperatorObserver;
use crate::http_retry::{describe_transport_error, exchange, in_range, RetryPolicy, RetrySettings, SecretSource};
use crate::recent::RecentSet;
use crate::{BuildContext, ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

use self::multipart::RelatedBody;
use self::response::{classify_response, Verdict};

/// The `destination` label of the sink's observations.
const DESTINATION: &str = "pacs";

/// What the sink asks the PACS to answer in (PS3.18 10.5.3).
const ACCEPT_DICOM_JSON: &str = "application/dicom+json";

/// A Store Instances response for one instance is a few kilobytes; more than this is not one.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Result objects whose acceptance the sink remembers (a few hundred bytes each).
const ACCEPTED_KEPT: usize = 4096;

/// Longest a readiness probe may take (less when the configured request timeout is shorter).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Configuration of the `stow` operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StowConfig {
    /// DICOMweb base URL of the PACS, for example `http://127.0.0.1:8042/dicom-web`; instances
    /// are POSTed to `{url}/studies`. No credentials in the URL: use `auth`.
    pub url: String,
    /// How to authenticate: `kind = "none"` (default), `"basic"` or `"bearer"`.
    #[serde(default)]
    pub auth: StowAuth,
    /// Limit on one request, from connecting to the end of the response, in seconds.
    #[serde(default = "crate::http_retry::default_timeout_secs")]
    pub timeout_secs: u64,
    /// Limit on establishing a connection, in seconds.
    #[serde(default = "crate::http_retry::default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Requests in flight at once within a batch.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts per instance before it is dead-lettered; 0 means no limit other than
    /// `retry_deadline_secs`.
    #[serde(default)]
    pub max_attempts: u32,
    /// How long to keep retrying one instance, from its first attempt, in seconds.
    #[serde(default = "crate::http_retry::default_retry_deadline_secs")]
    pub retry_deadline_secs: u64,
    /// Backoff ceiling before the first retry, in milliseconds; it doubles per retry.
    #[serde(default = "crate::http_retry::default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Largest backoff between two attempts, in milliseconds (also caps a `Retry-After`).
    #[serde(default = "crate::http_retry::default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// PEM file with extra root certificates to trust for HTTPS, in addition to the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Only for a test PACS with a self-signed certificate.
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

fn default_concurrency() -> usize {
    8
}

/// How the sink authenticates to the PACS. Secrets come from an environment variable or a file,
/// never from the configuration itself; exactly one source per secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StowAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP Basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Environment variable that holds the password.
        #[serde(default)]
        password_env: Option<String>,
        /// File that holds the password (surrounding whitespace is ignored).
        #[serde(default)]
        password_file: Option<PathBuf>,
    },
    /// A bearer token (`Authorization: Bearer ...`).
    Bearer {
        /// Environment variable that holds the token.
        #[serde(default)]
        token_env: Option<String>,
        /// File that holds the token (surrounding whitespace is ignored).
        #[serde(default)]
        token_file: Option<PathBuf>,
    },
}

impl StowAuth {
    /// `none`, `basic` or `bearer`.
    pub fn kind(&self) -> &'static str {
        match self {
            StowAuth::None => "none",
            StowAuth::Basic { .. } => "basic",
            StowAuth::Bearer { .. } => "bearer",
        }
    }
}

impl StowConfig {
    /// A configuration for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            auth: StowAuth::None,
            timeout_secs: crate::http_retry::default_timeout_secs(),
            connect_timeout_secs: crate::http_retry::default_connect_timeout_secs(),
            concurrency: default_concurrency(),
            max_attempts: 0,
            retry_deadline_secs: crate::http_retry::default_retry_deadline_secs(),
            initial_backoff_ms: crate::http_retry::default_initial_backoff_ms(),
            max_backoff_ms: crate::http_retry::default_max_backoff_ms(),
            ca_file: None,
            accept_invalid_certs: false,
        }
    }

    /// Its request and retry settings.
    fn retry_settings(&self) -> RetrySettings {
        RetrySettings {
            timeout_secs: self.timeout_secs,
            connect_timeout_secs: self.connect_timeout_secs,
            max_attempts: self.max_attempts,
            retry_deadline_secs: self.retry_deadline_secs,
            initial_backoff_ms: self.initial_backoff_ms,
            max_backoff_ms: self.max_backoff_ms,
        }
    }

    /// Checks the configuration without touching the network, the filesystem or the secrets.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.studies_url()?;
        self.retry_settings().validate()?;
        in_range("concurrency", self.concurrency as u64, 1, 256)?;
        if let Some(path) = &self.ca_file {
            if path.as_os_str().is_empty() {
                return Err(ConfigError::new("ca_file", "must not be empty"));
            }
        }
        match &self.auth {
            StowAuth::None => Ok(()),
            StowAuth::Basic { username, .. } => {
                if username.is_empty() {
                    return Err(ConfigError::new("auth.username", "must not be empty"));
                }
                if username.contains(':') || username.chars().any(char::is_control) {
                    return Err(ConfigError::new("auth.username", "must not contain ':' or control characters"));
                }
                self.secret_source().map_or(Ok(()), |s| s.validate())
            }
            StowAuth::Bearer { .. } => self.secret_source().map_or(Ok(()), |s| s.validate()),
        }
        .map_err(|e| e.within_auth())
    }

    /// Reads the secrets and builds the sink.
    pub fn build(&self, ctx: &BuildContext) -> Result<StowSink, ConfigError> {
        self.validate()?;
        let studies_url = self.studies_url()?;
        let timeout = Duration::from_secs(self.timeout_secs);

        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(self.connect_timeout_secs))
            .pool_max_idle_per_host(self.concurrency)
            .pool_idle_timeout(Duration::from_secs(90))
            // A redirected POST may turn into a GET (301/302/303) whose 200 would read as
            // "stored"; a redirect is a configuration problem to report instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("radstream/", env!("CARGO_PKG_VERSION")))
            .tls_danger_accept_invalid_certs(self.accept_invalid_certs);
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| ConfigError::new("ca_file", format!("cannot read {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ConfigError::new("ca_file", format!("{} is not a PEM certificate bundle: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(ConfigError::new("ca_file", format!("{} holds no PEM certificate", path.display())));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| {
            let key = if self.ca_file.is_some() { "ca_file" } else { "url" };
            ConfigError::new(key, format!("cannot set up the HTTP client: {e}"))
        })?;

        let authorization = match &self.auth {
            StowAuth::None => None,
            StowAuth::Basic { username, .. } => {
                let password = self.read_secret()?;
                // Let reqwest do the Base64 encoding once, here, rather than per request.
                let request = client
                    .post(studies_url.clone())
                    .basic_auth(username, Some(password))
                    .build()
                    .map_err(|e| ConfigError::new("auth", format!("cannot encode Basic credentials: {e}")))?;
                request.headers().get(AUTHORIZATION).cloned()
            }
            StowAuth::Bearer { .. } => {
                let token = self.read_secret()?;
                let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    let key =
                        self.secret_source().map_or("auth", |s| if s.env.is_some() { s.env_key } else { s.file_key });
                    ConfigError::new(key, "the token holds characters that are not allowed in an HTTP header")
                        .within_auth()
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };

        let mut probe_url = studies_url.clone();
        probe_url.query_pairs_mut().append_pair("limit", "1");

        Ok(StowSink {
            client,
            studies_url,
            probe_url,
            probe_timeout: timeout.min(PROBE_TIMEOUT),
            authorization,
            auth_kind: self.auth.kind(),
            concurrency: self.concurrency,
            retry: self.retry_settings().policy(),
            observer: Arc::clone(&ctx.observer),
            accepted: RecentSet::new(ACCEPTED_KEPT),
        })
    }

    /// `{url}/studies`, checked.
    fn studies_url(&self) -> Result<Url, ConfigError> {
        let base = Url::parse(self.url.trim())
            .map_err(|e| ConfigError::new("url", format!("{:?} is not a URL: {e}", self.url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ConfigError::new("url", format!("scheme must be http or https, not {:?}", base.scheme())));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::new("url", "has no host"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(ConfigError::new(
                "url",
                "must not hold credentials; use `auth` with a secret from the environment or a file",
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(ConfigError::new("url", "must be the DICOMweb base URL, without a query or fragment"));
        }
        let studies = format!("{}/studies", base.as_str().trim_end_matches('/'));
        Url::parse(&studies).map_err(|e| ConfigError::new("url", format!("cannot append /studies: {e}")))
    }

    fn secret_source(&self) -> Option<SecretSource<'_>> {
        match &self.auth {
            StowAuth::None => None,
            StowAuth::Basic { password_env, password_file, .. } => Some(SecretSource {
                env_key: "password_env",
                env: password_env.as_deref(),
                file_key: "password_file",
                file: password_file.as_ref(),
            }),
            StowAuth::Bearer { token_env, token_file } => Some(SecretSource {
                env_key: "token_env",
                env: token_env.as_deref(),
                file_key: "token_file",
                file: token_file.as_ref(),
            }),
        }
    }

    fn read_secret(&self) -> Result<String, ConfigError> {
        let source = self.secret_source().ok_or_else(|| ConfigError::new("auth", "no secret configured"))?;
        source.read().map_err(|e| e.within_auth())
    }
}

trait WithinAuth {
    fn within_auth(self) -> Self;
}

impl WithinAuth for ConfigError {
    /// Keys of the auth section are reported as `auth.<key>`.
    fn within_auth(self) -> Self {
        if self.key.starts_with("auth") {
            self
        } else {
            self.within("auth")
        }
    }
}

/// The PACS sink: STOW-RS, one instance per request.
pub struct StowSink {
    client: reqwest::Client,
    studies_url: Url,
    /// `{url}/studies?limit=1`: the QIDO-RS query of [`StowSink::probe`].
    probe_url: Url,
    probe_timeout: Duration,
    /// Precomputed, marked sensitive so that it never shows in debug output.
    authorization: Option<HeaderValue>,
    auth_kind: &'static str,
    concurrency: usize,
    retry: RetryPolicy,
    observer: Arc<dyn OperatorObserver>,
    /// Result objects the PACS accepted lately, by SOPInstanceUID: a result UID names one
    /// content (a new revision gets a new UID), so one the PACS holds is not sent again.
    accepted: RecentSet,
}

impl std::fmt::Debug for StowSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StowSink")
            .field("studies_url", &self.studies_url.as_str())
            .field("auth", &self.auth_kind)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// How an instance is named in logs and errors.
struct InstanceName<'a> {
    object_key: String,
    sop_instance_uid: &'a str,
}

impl std::fmt::Display for InstanceName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SOPInstanceUID {})", self.object_key, self.sop_instance_uid)
    }
}

impl StowSink {
    /// Asks the PACS whether it answers, with the sink's own URL, TLS settings and credentials:
    /// a QIDO-RS query for one study (PS3.18 10.6). Meant for readiness probes: nothing is
    /// retried or counted, and the error says what failed (never the response body).
    pub async fn probe(&self) -> Result<(), String> {
        let mut request =
            self.client.get(self.probe_url.clone()).header(ACCEPT, ACCEPT_DICOM_JSON).timeout(self.probe_timeout);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                let status = response.status();
                let hint = match status.as_u16() {
                    401 | 403 => "; check the stow operator's `auth` settings",
                    404 | 405 => "; check the stow operator's `url` (the DICOMweb base URL)",
                    _ => "",
                };
                Err(format!("GET {}: HTTP {status}{hint}", self.probe_url))
            }
            Err(e) => Err(format!("GET {}: {}", self.probe_url, describe_transport_error(&e))),
        }
    }

    /// Delivers what the envelope carries: the result objects the `results` step made of it,
    /// when it ran, else the instance itself. Result objects the PACS already accepted (a
    /// series' report, carried by every instance of the series) are not sent again; the
    /// envelope is delivered once the PACS holds every one of its objects.
    async fn deliver(&self, envelope: &Envelope) -> Result<(), OperatorError> {
        let Some(outputs) = &envelope.outputs else {
            let name =
                InstanceName { object_key: envelope.object_key(), sop_instance_uid: &envelope.event.sop_instance_uid };
            return self.store(&name, &envelope.object).await;
        };
        // The objects of one instance go at once (the PACS files each on its own); the first
        // failure, after its retries, is the instance's.
        let stores =
            outputs.objects.iter().filter(|o| !self.accepted.contains(&o.sop_instance_uid)).map(|object| async {
                let key = format!(
                    "{} ({} of {})",
                    envelope.object_key(),
                    object.kind.as_str(),
                    envelope.event.sop_instance_uid
                );
                let name = InstanceName { object_key: key, sop_instance_uid: &object.sop_instance_uid };
                self.store(&name, &object.bytes).await?;
                self.accepted.insert(&object.sop_instance_uid);
                Ok::<(), OperatorError>(())
            });
        futures::future::try_join_all(stores).await.map(|_| ())
    }

    /// Stores one object, retrying transient failures.
    async fn store(&self, name: &InstanceName<'_>, object: &Bytes) -> Result<(), OperatorError> {
        let body = RelatedBody::single_dicom(object);
        let content_type = HeaderValue::from_str(&body.content_type()).expect("the boundary is a header-safe token");
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (verdict, retry_after) = self.attempt(&body.body, &content_type, name.sop_instance_uid).await;
            let last = match verdict {
                Verdict::Stored => return Ok(()),
                Verdict::StoredWithNote(note) => {
                    tracing::info!(object_key = %name.object_key, sop_instance_uid = name.sop_instance_uid, attempt, %note, "PACS holds the instance");
                    return Ok(());
                }
                Verdict::AssumedStored(note) => {
                    tracing::debug!(object_key = %name.object_key, sop_instance_uid = name.sop_instance_uid, attempt, %note, "PACS answered success; taken as stored");
                    return Ok(());
                }
                Verdict::Rejected(reason) => {
                    let reason = format!("{name}: the PACS rejected the instance: {reason}");
                    return Err(OperatorError::dead_letter(ErrorClass::PacsRejected, reason).with_attempts(attempt));
                }
                Verdict::Transient(last) => last,
            };

            let elapsed = started.elapsed();
            let Some(delay) = self.retry.next_delay(attempt, elapsed, retry_after) else {
                let reason = format!(
                    "{name}: PACS unreachable or failing after {attempt} attempt{} over {:.1} s (last: {last}); \
                     the instance can be replayed once the PACS is back",
                    if attempt == 1 { "" } else { "s" },
                    elapsed.as_secs_f64(),
                );
                return Err(OperatorError::dead_letter(ErrorClass::PacsUnavailable, reason).with_attempts(attempt));
            };
            tracing::warn!(
                object_key = %name.object_key,
                sop_instance_uid = name.sop_instance_uid,
                attempt,
                %last,
                next_delay_ms = delay.as_millis() as u64,
                "STOW-RS attempt failed; will retry"
            );
            self.observer.destination_retry(DESTINATION);
            tokio::time::sleep(delay).await;
        }
    }

    /// One request: what it achieved and the PACS's `Retry-After`, if any.
    async fn attempt(
        &self,
        body: &Bytes,
        content_type: &HeaderValue,
        sop_instance_uid: &str,
    ) -> (Verdict, Option<Duration>) {
        let mut request = self
            .client
            .post(self.studies_url.clone())
            .header(CONTENT_TYPE, content_type.clone())
            .header(ACCEPT, ACCEPT_DICOM_JSON)
            .body(body.clone());
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let sent = Instant::now();
        let exchange = exchange(request, MAX_RESPONSE_BYTES).await;
        self.observe(sent, exchange.status_class);
        match exchange.answer {
            Ok((status, body)) => (classify_response(status, &body, sop_instance_uid), exchange.retry_after),
            Err(last) => (Verdict::Transient(last), exchange.retry_after),
        }
    }

    fn observe(&self, sent: Instant, status_class: &'static str) {
        self.observer.destination_request(DESTINATION, status_class, sent.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl Operator for StowSink {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        let sink = &*self;
        futures::stream::iter(batch)
            .map(|envelope| async move {
                let outcome = match sink.deliver(&envelope).await {
                    Ok(()) => Outcome::Forward,
                    Err(error) => Outcome::Fail(error),
                };
                Processed { envelope, outcome }
            })
            .buffer_unordered(sink.concurrency)
            .collect()
            .await
    }

    fn is_sink(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use axum::http::HeaderMap as AxumHeaders;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::{tags, uids};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    use radstream_schemas::ObjectLocation;
    use tokio::sync::oneshot;

    use reqwest::StatusCode;

    use super::*;
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
        let location =
            ObjectLocation { bucket: "dicom".into(), key: format!("incoming/{ticket}.dcm"), size, etag: None };
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
        async fn start(
            delay: Duration,
            reply: impl Fn(usize) -> (u16, String) + Clone + Send + Sync + 'static,
        ) -> Self {
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
                axum::routing::post(handler)
                    .get(|| async { (StatusCode::OK, [(CONTENT_TYPE, ACCEPT_DICOM_JSON)], "[]") }),
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

    impl OperatorObserver for RecordingObserver {
        fn destination_request(&self, destination: &str, status_class: &'static str, seconds: f64) {
            assert_eq!(destination, "pacs");
            assert!(seconds >= 0.0);
            self.requests.lock().unwrap().push(status_class);
        }
        fn destination_retry(&self, destination: &str) {
            assert_eq!(destination, "pacs");
            self.retries.fetch_add(1, Ordering::SeqCst);
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
        assert_eq!(parts[0].body, &processed.envelope.object[..]);
        assert_eq!(*observer.requests.lock().unwrap(), ["2xx"]);
        assert_eq!(observer.retries.load(Ordering::SeqCst), 0);
    }

    fn with_outputs(mut envelope: Envelope, objects: &[(crate::results::ResultKind, &str)]) -> Envelope {
        let objects = objects
            .iter()
            .map(|&(kind, uid)| crate::results::ResultObject {
                kind,
                sop_instance_uid: uid.into(),
                series_instance_uid: "2.25.1".into(),
                bytes: Bytes::from(format!("object {uid}")),
            })
            .collect();
        envelope.outputs = Some(Arc::new(crate::results::ResultSet { objects, series: None }));
        envelope
    }

    #[tokio::test]
    async fn stow_stores_the_result_objects_instead_of_the_instance_and_each_shared_one_once() {
        use crate::results::ResultKind::{Overlay, Seg, Sr};
        let pacs = FakePacs::start(Duration::ZERO, |_| (200, String::new())).await;
        let mut sink = StowConfig::new(&pacs.base_url).build(&BuildContext::default()).unwrap();
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
        use crate::results::ResultKind::{Seg, Sr};
        let pacs = FakePacs::start(Duration::ZERO, |_| (400, String::new())).await;
        let mut sink = StowConfig::new(&pacs.base_url).build(&BuildContext::default()).unwrap();
        let done =
            sink.process_batch(vec![with_outputs(envelope(1, SOP_UID), &[(Sr, "2.25.10"), (Seg, "2.25.11")])]).await;
        let Outcome::Fail(error) = &done[0].outcome else { panic!("{:?}", done[0].outcome) };
        assert_eq!(error.class, ErrorClass::PacsRejected);
        assert!(error.reason.contains("(sr of ") || error.reason.contains("(seg of "), "{}", error.reason);
        assert!(error.reason.contains("2.25.1"), "{}", error.reason);
    }

    #[tokio::test]
    async fn stow_retries_503_then_forwards() {
        let pacs =
            FakePacs::start(
                Duration::ZERO,
                |n| if n < 2 { (503, String::new()) } else { (200, stored_response(SOP_UID)) },
            )
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
        let started = Instant::now();
        let error = failure(deliver_one(&config, Default::default()).await);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert_eq!(error.class, ErrorClass::PacsUnavailable);
        assert_eq!(error.retry, RetryHint::DeadLetter);
        let requests = pacs.requests().len() as u32;
        assert!(requests >= 3, "{requests} requests");
        assert_eq!(error.attempts, requests);
        assert!(error.reason.contains(&format!("after {requests} attempts over 1.")), "{}", error.reason);
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
        let pacs = FakePacs::start(Duration::ZERO, |_| (200, String::new())).await;
        let path = std::env::temp_dir().join(format!("radstream-stow-token-{}", std::process::id()));
        std::fs::write(&path, "  tok.en-123 \n").unwrap();
        let config = StowConfig {
            auth: StowAuth::Bearer { token_env: None, token_file: Some(path.clone()) },
            ..StowConfig::new(&pacs.base_url)
        };
        let processed = deliver_one(&config, Default::default()).await;
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(processed.outcome, Outcome::Forward), "an empty 200 counts as stored");
        assert_eq!(pacs.requests()[0].authorization.as_deref(), Some("Bearer tok.en-123"));
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
        assert!(
            error.reason.contains("0xA900") && error.reason.contains("does not match SOP class"),
            "{}",
            error.reason
        );
        assert_eq!(pacs.requests().len(), 1);
    }

    #[tokio::test]
    async fn stow_delivers_a_batch_with_bounded_concurrency() {
        let pacs = FakePacs::start(Duration::from_millis(30), |_| (200, String::new())).await;
        let config = StowConfig { concurrency: 3, ..StowConfig::new(&pacs.base_url) };
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
        let inline =
            serde_json::json!({"url": "http://x", "auth": {"kind": "basic", "username": "u", "password": "p"}});
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
        assert_eq!(
            basic(serde_json::json!({"kind": "basic", "username": "a:b", "password_env": "A"})),
            "auth.username"
        );
        assert_eq!(
            basic(serde_json::json!({"kind": "basic", "username": "u", "password_env": ""})),
            "auth.password_env"
        );
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
}

//! `stow`: the PACS sink. Each instance is POSTed on its own as a STOW-RS request (PS3.18 10.5)
//! to `{url}/studies`, up to `concurrency` at once, retried with exponential backoff and full
//! jitter while the PACS is unreachable or failing, until `max_attempts` or the retry deadline.
//!
//! An instance is delivered when the PACS lists it in ReferencedSOPSequence, or says it already
//! holds it. A success status that does not name it (an empty body, an HTML page from a proxy
//! or login page, JSON about something else) is retried and then dead-lettered, unless the PACS
//! is configured with `assume_stored_without_body` and the body is empty. Retrying a POST whose answer was lost is safe for the same reason: the PACS answers
//! the second one with "duplicate SOP instance".
//!
//! After a `results` step the sink stores the instance's result objects (SR, SEG, overlays)
//! instead of the instance, one request each, and the instance is delivered only once the PACS
//! has accepted all of them; a series' objects, carried by each of its instances, are sent once.
//!
//! Logs and errors name an instance by object key and SOPInstanceUID only; response bodies are
//! never logged, because a PACS may echo attributes of the instance in them.

pub mod multipart;
pub(crate) mod response;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use radstream_schemas::ErrorClass;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::contract::Recorder;
use crate::http_retry::{append_segment, base_url, build_client, in_range, Attempt, Destination, RetrySettings};
use crate::http_retry::{SecretSource, Sender};
use crate::recent::RecentSet;
use crate::{BuildContext, ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

use self::multipart::RelatedBody;
use self::response::{classify_response, Verdict};

/// The PACS as the sink's metrics (`destination="pacs"`) and messages name it.
static DESTINATION: Destination = Destination {
    label: "pacs",
    server: "PACS",
    server_again: "PACS",
    item: "instance",
    unavailable: ErrorClass::PacsUnavailable,
    // A Store Instances response for one instance is a few kilobytes; more than this is not one.
    max_response_bytes: 1 << 20,
};

/// What the sink asks the PACS to answer in (PS3.18 10.5.3).
const ACCEPT_DICOM_JSON: &str = "application/dicom+json";

/// Result objects whose acceptance the sink remembers (a few hundred bytes each).
const ACCEPTED_KEPT: usize = 4096;

/// Configuration of the `stow` operator.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    /// Count a success status (200, 202, 204) with an empty body as stored. Only for a PACS
    /// known to answer STOW-RS without a Store Instances response: by default a success must
    /// list the instance in ReferencedSOPSequence, because a proxy, web application firewall or
    /// login page in front of the PACS also answers 200, and such an answer is retried and then
    /// dead-lettered as `pacs_unavailable`. An HTML or other non-empty body never counts.
    #[serde(default)]
    pub assume_stored_without_body: bool,
}

fn default_concurrency() -> usize {
    8
}

/// How the sink authenticates to the PACS. Secrets come from an environment variable or a file,
/// never from the configuration itself; exactly one source per secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
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
            assume_stored_without_body: false,
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
        let settings = self.retry_settings();

        let mut builder = settings
            .client_builder()
            .pool_max_idle_per_host(self.concurrency)
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
        let client = build_client(builder, if self.ca_file.is_some() { "ca_file" } else { "url" })?;

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
            StowAuth::Bearer { token_env, token_file } => Some(SecretSource::token(token_env, token_file).bearer()?),
        };

        let mut probe_url = studies_url.clone();
        probe_url.query_pairs_mut().append_pair("limit", "1");

        Ok(StowSink {
            client,
            studies_url,
            probe_url,
            probe_timeout: settings.probe_timeout(),
            authorization,
            auth_kind: self.auth.kind(),
            assume_stored_without_body: self.assume_stored_without_body,
            concurrency: self.concurrency,
            retry: settings.policy(),
            observer: Arc::clone(&ctx.observer),
            accepted: RecentSet::new(ACCEPTED_KEPT),
        })
    }

    /// `{url}/studies`, checked.
    fn studies_url(&self) -> Result<Url, ConfigError> {
        append_segment(&base_url(&self.url, "DICOMweb base URL", "secret")?, "studies")
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
            StowAuth::Bearer { token_env, token_file } => Some(SecretSource::token(token_env, token_file)),
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
    /// [`StowConfig::assume_stored_without_body`].
    assume_stored_without_body: bool,
    concurrency: usize,
    retry: crate::contract::backoff::Backoff,
    observer: Arc<dyn Recorder>,
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
        self.sender().probe(&self.probe_url, ACCEPT_DICOM_JSON, self.probe_timeout, probe_hint).await
    }

    /// How the shared HTTP code sends for this sink.
    fn sender(&self) -> Sender<'_> {
        Sender {
            client: &self.client,
            authorization: self.authorization.as_ref(),
            retry: &self.retry,
            observer: &*self.observer,
            destination: &DESTINATION,
        }
    }

    /// Delivers what the envelope carries: the result objects the `results` step made of it,
    /// when it ran, else the instance itself. Result objects the PACS already accepted (a
    /// series' report, carried by every instance of the series) are not sent again; the
    /// envelope is delivered once the PACS holds every one of its objects.
    async fn deliver(&self, envelope: &Envelope) -> Result<(), OperatorError> {
        let Some(outputs) = &envelope.outputs else {
            // The UID of the object as it is sent: after `pseudonymize` or `relink` it is not
            // the event's, and the PACS's answer names the one it stored.
            let sent_uid =
                crate::dicom::elements::element_text(envelope.header(), dicom_dictionary_std::tags::SOP_INSTANCE_UID)
                    .unwrap_or_else(|| envelope.event.sop_instance_uid.clone());
            let name = InstanceName { object_key: envelope.object_key(), sop_instance_uid: &sent_uid };
            return self.store(&name, envelope.object()).await;
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
        let request = || {
            self.client
                .post(self.studies_url.clone())
                .header(CONTENT_TYPE, content_type.clone())
                .header(ACCEPT, ACCEPT_DICOM_JSON)
                .body(body.body.clone())
        };
        let judge = |attempt, answer: Result<(StatusCode, Vec<u8>), String>| {
            let verdict = match answer {
                Ok((status, body)) => {
                    classify_response(status, &body, name.sop_instance_uid, self.assume_stored_without_body)
                }
                Err(last) => Verdict::Transient(last),
            };
            match verdict {
                Verdict::Stored => Attempt::Done(Ok(())),
                Verdict::StoredWithNote(note) => {
                    tracing::info!(object_key = %name.object_key, sop_instance_uid = name.sop_instance_uid, attempt, %note, "PACS holds the instance");
                    Attempt::Done(Ok(()))
                }
                Verdict::AssumedStored(note) => {
                    tracing::info!(object_key = %name.object_key, sop_instance_uid = name.sop_instance_uid, attempt, %note, "PACS answered success without a body; taken as stored");
                    Attempt::Done(Ok(()))
                }
                Verdict::Rejected(reason) => {
                    let reason = format!("{name}: the PACS rejected the instance: {reason}");
                    Attempt::Done(Err(
                        OperatorError::dead_letter(ErrorClass::PacsRejected, reason).with_attempts(attempt)
                    ))
                }
                Verdict::Transient(last) => Attempt::Retry(last),
            }
        };
        let on_retry = |attempt, last: &str, delay: Duration| {
            tracing::warn!(
                object_key = %name.object_key,
                sop_instance_uid = name.sop_instance_uid,
                attempt,
                %last,
                next_delay_ms = delay.as_millis() as u64,
                "STOW-RS attempt failed; will retry"
            );
        };
        self.sender().deliver(name, request, judge, on_retry).await
    }
}

/// What to check when the PACS answers the probe with no success.
fn probe_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 => "; check the stow operator's `auth` settings",
        404 | 405 => "; check the stow operator's `url` (the DICOMweb base URL)",
        _ => "",
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

impl crate::contract::OperatorSpec for StowConfig {
    const KIND: &'static str = "stow";
    const IS_SINK: bool = true;

    fn validate(&self) -> Result<(), crate::contract::ConfigError> {
        StowConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::contract::BuildContext,
    ) -> Result<Box<dyn crate::contract::Operator>, crate::contract::ConfigError> {
        Ok(Box::new(StowConfig::build(self, ctx)?))
    }

    fn readiness(&self) -> Option<Arc<dyn crate::contract::ReadinessProbe>> {
        let sink = StowConfig::build(self, &crate::contract::BuildContext::default()).ok()?;
        Some(Arc::new(StowReadiness(sink)))
    }

    fn example() -> &'static str {
        r#"
url = "http://127.0.0.1:9/dicomweb"
max_attempts = 1

[auth]
kind = "bearer"
token_env = "RADSTREAM_TEST_SECRET"
"#
    }
}

/// The STOW sink's readiness probe: a QIDO-RS query with the sink's own settings
/// ([`StowSink::probe`]).
struct StowReadiness(StowSink);

#[async_trait]
impl crate::contract::ReadinessProbe for StowReadiness {
    fn name(&self) -> &str {
        "stow (DICOMweb PACS)"
    }

    async fn probe(&self) -> Result<(), String> {
        self.0.probe().await
    }
}

#[cfg(test)]
mod tests;

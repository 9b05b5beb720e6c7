//! Delivery of FHIR transaction Bundles: one POST of the Bundle to the server's base URL (FHIR
//! R4 http.html#transaction), retried with exponential backoff and full jitter while the server
//! is unreachable or failing, until `max_attempts` or the retry deadline, as the `stow` sink
//! does for the PACS.
//!
//! A bundle is delivered when the server answers a `transaction-response` Bundle in which every
//! entry has a 2xx status. The bundles of [`crate::results::fhir`] are conditional (updates on
//! identifiers, a create with `ifNoneExist`), so re-sending one whose answer was lost updates in
//! place instead of duplicating.
//!
//! | answer | error class | retried |
//! |---|---|---|
//! | 2xx, a transaction-response whose entries are all 2xx | (delivered) | |
//! | 2xx, an entry with another status | `fhir_rejected` | no |
//! | 2xx that is no transaction-response Bundle | `fhir_unavailable` | yes |
//! | 408, 429, 5xx, no answer, a timeout | `fhir_unavailable` | yes |
//! | any other status (4xx, a redirect) | `fhir_rejected` | no |
//!
//! Logs and errors name a bundle by the caller's name (UID-based) and say of the server's
//! OperationOutcome only each issue's `severity` and `code`, never its text: a server may echo
//! what it was sent, and a bundle is about a patient.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use radstream_schemas::ErrorClass;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::Recorder;
use crate::http_retry::Sender;
use crate::http_retry::{append_segment, base_url, build_client, Attempt, Destination, RetrySettings, SecretSource};
use crate::{ConfigError, OperatorError};

/// The FHIR server as the poster's metrics (`destination="fhir"`) and messages name it.
static DESTINATION: Destination = Destination {
    label: "fhir",
    server: "FHIR server",
    server_again: "server",
    item: "bundle",
    unavailable: ErrorClass::FhirUnavailable,
    // A transaction-response is a few kilobytes per entry; past this it is not one we sent for.
    max_response_bytes: 16 << 20,
};

/// The FHIR JSON media type, sent and asked for.
const FHIR_JSON: &str = "application/fhir+json";

/// How many OperationOutcome issues an error names.
const MAX_ISSUES: usize = 4;

/// Configuration of FHIR bundle delivery.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FhirPostConfig {
    /// FHIR base URL of the server, for example `http://127.0.0.1:18103/fhir/R4`; bundles are
    /// POSTed to it. No credentials in the URL: use `auth`.
    pub url: String,
    /// How to authenticate: `kind = "none"` (default) or `"bearer"`.
    #[serde(default)]
    pub auth: FhirAuth,
    /// Limit on one request, from connecting to the end of the response, in seconds.
    #[serde(default = "crate::http_retry::default_timeout_secs")]
    pub timeout_secs: u64,
    /// Limit on establishing a connection, in seconds.
    #[serde(default = "crate::http_retry::default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Attempts per bundle before it is given up; 0 means no limit other than
    /// `retry_deadline_secs`.
    #[serde(default)]
    pub max_attempts: u32,
    /// How long to keep retrying one bundle, from its first attempt, in seconds.
    #[serde(default = "crate::http_retry::default_retry_deadline_secs")]
    pub retry_deadline_secs: u64,
    /// Backoff ceiling before the first retry, in milliseconds; it doubles per retry.
    #[serde(default = "crate::http_retry::default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Largest backoff between two attempts, in milliseconds (also caps a `Retry-After`).
    #[serde(default = "crate::http_retry::default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

/// How to authenticate to the FHIR server. The token comes from an environment variable or a
/// file, never from the configuration itself; exactly one of the two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FhirAuth {
    /// No `Authorization` header.
    #[default]
    None,
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

impl FhirAuth {
    /// `none` or `bearer`.
    pub fn kind(&self) -> &'static str {
        match self {
            FhirAuth::None => "none",
            FhirAuth::Bearer { .. } => "bearer",
        }
    }
}

impl FhirPostConfig {
    /// A configuration for the base URL `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            auth: FhirAuth::None,
            timeout_secs: crate::http_retry::default_timeout_secs(),
            connect_timeout_secs: crate::http_retry::default_connect_timeout_secs(),
            max_attempts: 0,
            retry_deadline_secs: crate::http_retry::default_retry_deadline_secs(),
            initial_backoff_ms: crate::http_retry::default_initial_backoff_ms(),
            max_backoff_ms: crate::http_retry::default_max_backoff_ms(),
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

    /// Checks the configuration without touching the network, the filesystem or the secret.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.base_url()?;
        self.retry_settings().validate()?;
        match self.token_source() {
            None => Ok(()),
            Some(source) => source.validate().map_err(|e| e.within("auth")),
        }
    }

    /// Reads the token and builds the poster.
    pub fn build(&self, observer: Arc<dyn Recorder>) -> Result<FhirPoster, ConfigError> {
        self.validate()?;
        let base_url = self.base_url()?;
        let settings = self.retry_settings();
        let client = build_client(settings.client_builder(), "url")?;
        let authorization = self.token_source().map(|source| source.bearer()).transpose()?;
        let metadata_url = append_segment(&base_url, "metadata")?;

        Ok(FhirPoster {
            client,
            base_url,
            metadata_url,
            probe_timeout: settings.probe_timeout(),
            authorization,
            auth_kind: self.auth.kind(),
            retry: settings.policy(),
            observer,
        })
    }

    /// The base URL, checked.
    fn base_url(&self) -> Result<Url, ConfigError> {
        base_url(&self.url, "FHIR base URL", "token")
    }

    fn token_source(&self) -> Option<SecretSource<'_>> {
        match &self.auth {
            FhirAuth::None => None,
            FhirAuth::Bearer { token_env, token_file } => Some(SecretSource::token(token_env, token_file)),
        }
    }
}

/// What the server did with one entry of a delivered bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryOutcome {
    /// `response.status` as the server wrote it (`201`, `200 OK`, ...): a 2xx.
    pub status: String,
    /// `response.location`: the resource's reference on the server (`Type/id/_history/v`),
    /// when the server says.
    pub location: Option<String>,
}

/// A delivered bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionOutcome {
    /// Requests it took (1 when the first succeeded).
    pub attempts: u32,
    /// Per entry of the bundle, in its order.
    pub entries: Vec<EntryOutcome>,
}

/// Delivers FHIR transaction Bundles to one server.
pub struct FhirPoster {
    client: reqwest::Client,
    base_url: Url,
    /// `{url}/metadata`: what [`FhirPoster::probe`] asks for.
    metadata_url: Url,
    probe_timeout: Duration,
    /// Precomputed, marked sensitive so that it never shows in debug output.
    authorization: Option<HeaderValue>,
    auth_kind: &'static str,
    retry: crate::contract::backoff::Backoff,
    observer: Arc<dyn Recorder>,
}

impl std::fmt::Debug for FhirPoster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirPoster")
            .field("base_url", &self.base_url.as_str())
            .field("auth", &self.auth_kind)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What one answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Delivered(Vec<EntryOutcome>),
    /// Retrying will not help; the reason says why.
    Rejected(String),
    /// Worth another try; the reason says what happened.
    Transient(String),
}

impl FhirPoster {
    /// Asks the server whether it answers, with the poster's own URL and credentials: `GET
    /// {url}/metadata` (the CapabilityStatement). Meant for readiness probes: nothing is retried
    /// or counted, and the error says what failed (never the response body).
    pub async fn probe(&self) -> Result<(), String> {
        self.sender().probe(&self.metadata_url, FHIR_JSON, self.probe_timeout, status_hint).await
    }

    /// How the shared HTTP code sends for this poster.
    fn sender(&self) -> Sender<'_> {
        Sender {
            client: &self.client,
            authorization: self.authorization.as_ref(),
            retry: &self.retry,
            observer: &*self.observer,
            destination: &DESTINATION,
        }
    }

    /// POSTs the transaction Bundle `bundle_json` to the base URL, retrying transient failures
    /// with exponential backoff and full jitter (never sooner than a `Retry-After`), until
    /// `max_attempts` or the retry deadline. `name` names the bundle in logs and errors (a
    /// UID-based name: nothing about the patient).
    ///
    /// Errors are dead letters: [`ErrorClass::FhirRejected`] when the server refuses the
    /// bundle or one of its entries, [`ErrorClass::FhirUnavailable`] when it stayed unreachable
    /// or failing; either carries the number of attempts.
    pub async fn post(&self, bundle_json: &[u8], name: &str) -> Result<TransactionOutcome, OperatorError> {
        let resource_types = entry_resource_types(bundle_json);
        let body = bytes::Bytes::copy_from_slice(bundle_json);
        let request = || {
            self.client
                .post(self.base_url.clone())
                .header(CONTENT_TYPE, FHIR_JSON)
                .header(ACCEPT, FHIR_JSON)
                // The resources need not come back: the statuses and locations are what we read.
                .header("Prefer", "return=minimal")
                .body(body.clone())
        };
        let judge = |attempt, answer: Result<(StatusCode, Vec<u8>), String>| {
            let verdict = match answer {
                Ok((status, body)) => classify_response(status, &body, &resource_types),
                Err(last) => Verdict::Transient(last),
            };
            match verdict {
                Verdict::Delivered(entries) => {
                    tracing::debug!(
                        bundle = name,
                        attempt,
                        entries = entries.len(),
                        "FHIR server took the transaction"
                    );
                    Attempt::Done(Ok(TransactionOutcome { attempts: attempt, entries }))
                }
                Verdict::Rejected(reason) => {
                    let reason = format!("bundle {name}: the FHIR server rejected the transaction: {reason}");
                    Attempt::Done(Err(
                        OperatorError::dead_letter(ErrorClass::FhirRejected, reason).with_attempts(attempt)
                    ))
                }
                Verdict::Transient(last) => Attempt::Retry(last),
            }
        };
        let on_retry = |attempt, last: &str, delay: Duration| {
            tracing::warn!(
                bundle = name,
                attempt,
                %last,
                next_delay_ms = delay.as_millis() as u64,
                "FHIR transaction attempt failed; will retry"
            );
        };
        let subject = format!("bundle {name}");
        self.sender().deliver(&subject, request, judge, on_retry).await
    }
}

/// The resource type of each entry of the request bundle, for naming a failed entry: the
/// resource's own, else the first segment of `request.url`. Empty when the bundle is not JSON
/// (the server will say so).
fn entry_resource_types(bundle_json: &[u8]) -> Vec<Option<String>> {
    let Ok(bundle) = serde_json::from_slice::<Value>(bundle_json) else {
        return Vec::new();
    };
    let Some(entries) = bundle.get("entry").and_then(Value::as_array) else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|entry| {
            let declared = entry.pointer("/resource/resourceType").and_then(Value::as_str);
            let from_url = || {
                let url = entry.pointer("/request/url").and_then(Value::as_str)?;
                url.split(['/', '?']).next().filter(|s| !s.is_empty())
            };
            declared.or_else(from_url).filter(|t| is_token(t)).map(str::to_string)
        })
        .collect()
}

/// What the answer to one POST means. 408, 429 and 5xx are transient; any other status but a
/// 2xx is a rejection. A 2xx must carry a `transaction-response` Bundle with an entry per
/// entry sent; one that does not (a truncated or garbled body) is treated as transient, since
/// whether the server committed is unknown and a conditional bundle can safely go again.
pub(crate) fn classify_response(status: StatusCode, body: &[u8], resource_types: &[Option<String>]) -> Verdict {
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        return Verdict::Transient(format!("HTTP {status}{}", outcome_summary(body)));
    }
    if !status.is_success() {
        return Verdict::Rejected(format!("HTTP {status}{}{}", status_hint(status), outcome_summary(body)));
    }
    let Ok(response) = serde_json::from_slice::<Value>(body) else {
        return Verdict::Transient(format!("HTTP {status} with a body that is not JSON"));
    };
    if response.get("resourceType").and_then(Value::as_str) != Some("Bundle")
        || response.get("type").and_then(Value::as_str) != Some("transaction-response")
    {
        return Verdict::Transient(format!("HTTP {status} with a body that is not a transaction-response Bundle"));
    }
    let entries = response.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if !resource_types.is_empty() && entries.len() != resource_types.len() {
        return Verdict::Transient(format!(
            "HTTP {status} with a transaction-response of {} entries for a bundle of {}",
            entries.len(),
            resource_types.len()
        ));
    }
    let mut outcomes = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let resource_type = resource_types.get(index).cloned().flatten().unwrap_or_else(|| "?".to_string());
        let Some(entry_status) = entry.pointer("/response/status").and_then(Value::as_str) else {
            return Verdict::Transient(format!(
                "HTTP {status} with a transaction-response whose entry {index} ({resource_type}) has no status"
            ));
        };
        let entry_code = entry_status.trim().split_ascii_whitespace().next().unwrap_or_default();
        let is_code = entry_code.len() == 3 && entry_code.bytes().all(|b| b.is_ascii_digit());
        if !is_code {
            return Verdict::Transient(format!(
                "HTTP {status} with a transaction-response whose entry {index} ({resource_type}) has an unreadable status"
            ));
        }
        if !entry_code.starts_with('2') {
            let outcome = entry.pointer("/response/outcome").map(issue_summary).unwrap_or_default();
            return Verdict::Rejected(format!("entry {index} ({resource_type}) answered {entry_code}{outcome}"));
        }
        outcomes.push(EntryOutcome {
            status: entry_status.trim().to_string(),
            location: entry.pointer("/response/location").and_then(Value::as_str).map(str::to_string),
        });
    }
    Verdict::Delivered(outcomes)
}

/// `; issues: error/invalid, ...` of an OperationOutcome body, or nothing.
fn outcome_summary(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(outcome) if outcome.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") => {
            issue_summary(&outcome)
        }
        _ => String::new(),
    }
}

/// The `severity/code` of the first issues of an OperationOutcome: coded values only, never
/// `diagnostics`, `details` or `expression`, which may quote the resource.
fn issue_summary(outcome: &Value) -> String {
    let Some(issues) = outcome.get("issue").and_then(Value::as_array).filter(|i| !i.is_empty()) else {
        return String::new();
    };
    let coded = |issue: &Value, key: &str| {
        issue.get(key).and_then(Value::as_str).filter(|v| is_token(v)).unwrap_or("?").to_string()
    };
    let mut named: Vec<String> = issues
        .iter()
        .take(MAX_ISSUES)
        .map(|issue| format!("{}/{}", coded(issue, "severity"), coded(issue, "code")))
        .collect();
    if issues.len() > MAX_ISSUES {
        named.push(format!("{} more", issues.len() - MAX_ISSUES));
    }
    format!("; OperationOutcome issues (severity/code): {}", named.join(", "))
}

/// A FHIR code or a resource type: short, letters, digits and `-`. Anything else from the
/// server is not repeated.
fn is_token(value: &str) -> bool {
    !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What an operator should check for a rejecting status.
fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        300..=399 => "; the server redirects: set `url` to the final FHIR base URL",
        400 | 422 => "; the server could not process the bundle",
        401 | 403 => "; check the `auth` settings and the client's permissions on the FHIR server",
        404 | 405 => "; check `url` (the FHIR base URL, for example https://host/fhir/R4)",
        412 => "; a conditional request matched more than one resource",
        413 => "; the bundle is larger than the server accepts",
        415 => "; the server does not accept application/fhir+json",
        _ => "",
    }
}

#[cfg(test)]
mod tests;

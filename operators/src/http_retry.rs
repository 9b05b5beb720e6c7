//! What the HTTP sinks share (the `stow` PACS sink and the FHIR poster): the base-URL checks,
//! secrets from the environment or a file and the bearer header made of one, retry settings
//! (timed by [`Backoff`]) and the client they set up, the readiness probe, the send-and-retry
//! loop with its request metrics, a capped response read, the `status_class` metric label and
//! readable transport errors. What differs between the sinks (how messages name the URL, the
//! server and what it is sent; the probe's path, `Accept` and hints) comes in as parameters.

use std::fmt::Display;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use radstream_schemas::ErrorClass;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::contract::backoff::Backoff;
use crate::contract::error::{ConfigError, OperatorError};
use crate::contract::observer::{OperatorMetric, Recorder};

/// Longest a readiness probe may take (less when the configured request timeout is shorter).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The `url` key checked as a sink's base URL: it parses, is http or https, has a host, has no
/// query or fragment, and holds no credentials, which come through `auth` (from the environment
/// or a file) so that they never sit in a config. `kind` names the URL in messages (`DICOMweb
/// base URL`), `secret` what `auth` reads (`secret`, `token`).
pub(crate) fn base_url(raw: &str, kind: &str, secret: &str) -> Result<Url, ConfigError> {
    let base = Url::parse(raw.trim()).map_err(|e| ConfigError::new("url", format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(ConfigError::new("url", format!("scheme must be http or https, not {:?}", base.scheme())));
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new("url", "has no host"));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(ConfigError::new(
            "url",
            format!("must not hold credentials; use `auth` with a {secret} from the environment or a file"),
        ));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(ConfigError::new("url", format!("must be the {kind}, without a query or fragment")));
    }
    Ok(base)
}

/// `{base}/{segment}`, with one slash whether or not `base` ends in one.
pub(crate) fn append_segment(base: &Url, segment: &str) -> Result<Url, ConfigError> {
    Url::parse(&format!("{}/{segment}", base.as_str().trim_end_matches('/')))
        .map_err(|e| ConfigError::new("url", format!("cannot append /{segment}: {e}")))
}

/// Where one secret comes from, with the config keys that name each source.
pub(crate) struct SecretSource<'a> {
    pub(crate) env_key: &'static str,
    pub(crate) env: Option<&'a str>,
    pub(crate) file_key: &'static str,
    pub(crate) file: Option<&'a PathBuf>,
}

impl<'a> SecretSource<'a> {
    /// A bearer token's source: the `token_env` and `token_file` keys of an `auth` section.
    pub(crate) fn token(env: &'a Option<String>, file: &'a Option<PathBuf>) -> Self {
        SecretSource { env_key: "token_env", env: env.as_deref(), file_key: "token_file", file: file.as_ref() }
    }

    /// Checks that exactly one source is set and that it can name one; the error names the key.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match (self.env, self.file) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                self.env_key,
                format!("set either `{}` or `{}`, not both", self.env_key, self.file_key),
            )),
            (None, None) => Err(ConfigError::new(
                self.env_key,
                format!(
                    "missing: set `{}` (an environment variable name) or `{}` (a file path)",
                    self.env_key, self.file_key
                ),
            )),
            (Some(name), None) if name.is_empty() || name.contains(['=', '\0']) => {
                Err(ConfigError::new(self.env_key, format!("{name:?} is not a valid environment variable name")))
            }
            (None, Some(path)) if path.as_os_str().is_empty() => {
                Err(ConfigError::new(self.file_key, "must not be empty"))
            }
            _ => Ok(()),
        }
    }

    /// Reads the secret, trimmed. Errors name the variable or the file, never the value.
    pub(crate) fn read(&self) -> Result<String, ConfigError> {
        let (key, origin, value) = match (self.env, self.file) {
            (Some(name), _) => {
                let value = std::env::var(name).map_err(|e| {
                    let problem = match e {
                        std::env::VarError::NotPresent => "is not set",
                        std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
                    };
                    ConfigError::new(self.env_key, format!("environment variable {name} {problem}"))
                })?;
                (self.env_key, format!("environment variable {name}"), value)
            }
            (None, Some(path)) => {
                let value = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::new(self.file_key, format!("cannot read {}: {e}", path.display())))?;
                (self.file_key, path.display().to_string(), value)
            }
            (None, None) => return Err(ConfigError::new(self.env_key, "missing")),
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(ConfigError::new(key, format!("{origin} is empty")));
        }
        Ok(value.to_string())
    }

    /// `Bearer {token}` with the token read from this source, marked sensitive so that it never
    /// shows in debug output. Errors name the key within `auth`, never the token.
    pub(crate) fn bearer(&self) -> Result<HeaderValue, ConfigError> {
        let key = if self.env.is_some() { self.env_key } else { self.file_key };
        let token = self.read().map_err(|e| e.within("auth"))?;
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ConfigError::new(key, "the token holds characters that are not allowed in an HTTP header").within("auth")
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

pub(crate) fn in_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(key, format!("{value} is out of range: must be between {min} and {max}")))
    }
}

pub(crate) fn default_timeout_secs() -> u64 {
    30
}
pub(crate) fn default_connect_timeout_secs() -> u64 {
    5
}
pub(crate) fn default_retry_deadline_secs() -> u64 {
    300
}
pub(crate) fn default_initial_backoff_ms() -> u64 {
    200
}
pub(crate) fn default_max_backoff_ms() -> u64 {
    10_000
}

/// The request and retry settings of an HTTP sink's config (the same keys and limits in each).
pub(crate) struct RetrySettings {
    pub(crate) timeout_secs: u64,
    pub(crate) connect_timeout_secs: u64,
    /// 0: no limit other than the deadline.
    pub(crate) max_attempts: u32,
    pub(crate) retry_deadline_secs: u64,
    pub(crate) initial_backoff_ms: u64,
    pub(crate) max_backoff_ms: u64,
}

impl RetrySettings {
    /// Checks each against its range; the error names the key.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        in_range("timeout_secs", self.timeout_secs, 1, 3_600)?;
        in_range("connect_timeout_secs", self.connect_timeout_secs, 1, 600)?;
        in_range("retry_deadline_secs", self.retry_deadline_secs, 1, 7 * 24 * 3_600)?;
        in_range("initial_backoff_ms", self.initial_backoff_ms, 1, 600_000)?;
        in_range("max_backoff_ms", self.max_backoff_ms, self.initial_backoff_ms, 3_600_000)
            .map_err(|e| ConfigError::new(e.key, format!("{} (and at least initial_backoff_ms)", e.problem)))
    }

    /// The retry policy they make.
    pub(crate) fn policy(&self) -> Backoff {
        Backoff::new(Duration::from_millis(self.initial_backoff_ms), Duration::from_millis(self.max_backoff_ms))
            .with_max_attempts(self.max_attempts)
            .with_deadline(Duration::from_secs(self.retry_deadline_secs))
    }

    /// The client builder these settings start: the request and connect timeouts, idle
    /// connections kept 90 s, radstream's user agent, and no redirects followed: a redirected
    /// POST may turn into a GET (301/302/303) whose 200 would pass for the answer to the POST,
    /// so a redirect is a configuration problem to report instead.
    pub(crate) fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(self.timeout_secs))
            .connect_timeout(Duration::from_secs(self.connect_timeout_secs))
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("radstream/", env!("CARGO_PKG_VERSION")))
    }

    /// Longest a readiness probe may take: the request timeout, at most [`PROBE_TIMEOUT`].
    pub(crate) fn probe_timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs).min(PROBE_TIMEOUT)
    }
}

/// Builds the client; a failure is reported under `key`.
pub(crate) fn build_client(builder: reqwest::ClientBuilder, key: &str) -> Result<reqwest::Client, ConfigError> {
    builder.build().map_err(|e| ConfigError::new(key, format!("cannot set up the HTTP client: {e}")))
}

/// The response body, up to `max`; the rest is not read (a body that large is
/// not a Store Instances response, and a truncated one reads as unparseable).
pub(crate) async fn read_capped(response: &mut reqwest::Response, max: usize) -> reqwest::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == max {
            break;
        }
    }
    Ok(body)
}

/// The `status_class` label: `2xx`, `4xx`, `5xx`, or `error` for anything else (no response,
/// or a status the sink does not expect, such as a redirect).
pub(crate) fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "error",
    }
}

/// `Retry-After` in its delay-seconds form (the HTTP-date form is ignored).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds))
}

/// What went wrong without a response, from the innermost cause ("Connection refused (os error
/// 111)" says more than "error sending request"). The URL carries no credentials (validated).
pub(crate) fn describe_transport_error(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{what}: {cause}")
}

/// What one request got: the status and the body (at most `max` bytes), or what went wrong
/// without one; the server's `Retry-After`; the `status_class` label of the exchange.
pub(crate) struct Exchange {
    pub(crate) answer: Result<(StatusCode, Vec<u8>), String>,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) status_class: &'static str,
}

/// Sends `request` and reads its answer, capped at `max` bytes.
pub(crate) async fn exchange(request: reqwest::RequestBuilder, max: usize) -> Exchange {
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            return Exchange { answer: Err(describe_transport_error(&e)), retry_after: None, status_class: "error" }
        }
    };
    let status = response.status();
    let retry_after = retry_after(response.headers());
    match read_capped(&mut response, max).await {
        Ok(body) => Exchange { answer: Ok((status, body)), retry_after, status_class: status_class(status) },
        Err(e) => Exchange {
            answer: Err(format!("HTTP {status}, then reading the response failed: {}", describe_transport_error(&e))),
            retry_after,
            status_class: "error",
        },
    }
}

/// What differs between the HTTP sinks in their metrics and their give-up message.
pub(crate) struct Destination {
    /// The `destination` label of the sink's metrics (`pacs`, `fhir`).
    pub(crate) label: &'static str,
    /// The server as the give-up message first names it (`PACS`, `FHIR server`)...
    pub(crate) server: &'static str,
    /// ...and names it again (`PACS`, `server`).
    pub(crate) server_again: &'static str,
    /// What one request delivers (`instance`, `bundle`).
    pub(crate) item: &'static str,
    /// The error class when the server stayed unreachable or failing.
    pub(crate) unavailable: ErrorClass,
    /// Longest answer read; past it the sink did not get an answer to what it sent.
    pub(crate) max_response_bytes: usize,
}

/// What one answer (or the lack of one) came to, as the sink judges it.
pub(crate) enum Attempt<T> {
    /// Delivered (`Ok`) or refused for good (`Err`): not retried.
    Done(Result<T, OperatorError>),
    /// Worth another try; what happened, for the log and the final error.
    Retry(String),
}

/// A sink's way of sending, borrowed from the sink: its client (with its TLS settings), its
/// precomputed `Authorization`, its retry policy and where its metrics go.
pub(crate) struct Sender<'a> {
    /// Set up from the sink's [`RetrySettings::client_builder`] and its TLS settings.
    pub(crate) client: &'a reqwest::Client,
    /// Sent with every request, the probe's too; marked sensitive.
    pub(crate) authorization: Option<&'a HeaderValue>,
    /// From [`RetrySettings::policy`].
    pub(crate) retry: &'a Backoff,
    /// Where the request and retry metrics go.
    pub(crate) observer: &'a dyn Recorder,
    /// How the metrics and the give-up message name the server.
    pub(crate) destination: &'static Destination,
}

impl Sender<'_> {
    /// `request` with the sink's `Authorization`, if it has one.
    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.authorization {
            Some(authorization) => request.header(AUTHORIZATION, authorization.clone()),
            None => request,
        }
    }

    /// Asks the server whether it answers: a GET of `url` asking for `accept`, with the sink's
    /// own client and credentials, within `timeout`. Meant for readiness probes: nothing is
    /// retried or counted, and the error says what failed: the HTTP status with `hint(status)`
    /// (what to check), or the transport error; never the response body.
    pub(crate) async fn probe(
        &self,
        url: &Url,
        accept: &'static str,
        timeout: Duration,
        hint: fn(StatusCode) -> &'static str,
    ) -> Result<(), String> {
        let request = self.authorized(self.client.get(url.clone()).header(ACCEPT, accept).timeout(timeout));
        match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                let status = response.status();
                Err(format!("GET {url}: HTTP {status}{}", hint(status)))
            }
            Err(e) => Err(format!("GET {url}: {}", describe_transport_error(&e))),
        }
    }

    /// Sends what `request` builds, with the sink's `Authorization`, and lets `judge` (given the
    /// attempt number and the answer) say what it came to; retries while it says
    /// [`Attempt::Retry`], after the policy's delay (never sooner than a `Retry-After`), until
    /// `max_attempts` or the retry deadline. Every request is counted and timed, every retry
    /// counted; `on_retry` logs one (the sinks log different fields). Giving up is a dead letter
    /// of the destination's `unavailable` class that names `subject` and carries the attempts.
    pub(crate) async fn deliver<T>(
        &self,
        subject: &(dyn Display + Sync),
        request: impl Fn() -> reqwest::RequestBuilder,
        judge: impl Fn(u32, Result<(StatusCode, Vec<u8>), String>) -> Attempt<T>,
        on_retry: impl Fn(u32, &str, Duration),
    ) -> Result<T, OperatorError> {
        let destination = self.destination;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let sent = Instant::now();
            let exchange = exchange(self.authorized(request()), destination.max_response_bytes).await;
            self.record_request(sent, exchange.status_class);
            let last = match judge(attempt, exchange.answer) {
                Attempt::Done(result) => return result,
                Attempt::Retry(last) => last,
            };

            let elapsed = started.elapsed();
            let Some(delay) = self.retry.next_delay(attempt, elapsed, exchange.retry_after) else {
                let reason = format!(
                    "{subject}: {} unreachable or failing after {attempt} attempt{} over {:.1} s (last: {last}); \
                     the {} can be replayed once the {} is back",
                    destination.server,
                    if attempt == 1 { "" } else { "s" },
                    elapsed.as_secs_f64(),
                    destination.item,
                    destination.server_again,
                );
                return Err(OperatorError::dead_letter(destination.unavailable, reason).with_attempts(attempt));
            };
            on_retry(attempt, &last, delay);
            self.observer.record(OperatorMetric::DestinationRetries, &[destination.label], 1.0);
            tokio::time::sleep(delay).await;
        }
    }

    /// Counts and times one request (sent at `sent`) under the destination's label.
    fn record_request(&self, sent: Instant, status_class: &'static str) {
        let label = self.destination.label;
        self.observer.record(OperatorMetric::DestinationRequests, &[label, status_class], 1.0);
        self.observer.record(OperatorMetric::DestinationRequestDuration, &[label], sent.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests;

//! What the HTTP sinks share (the `stow` PACS sink and the FHIR poster): secrets from the
//! environment or a file, retry settings (timed by [`Backoff`]), a capped response read, the
//! `status_class` metric label and readable transport errors.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::contract::backoff::Backoff;
use crate::contract::error::ConfigError;

/// Where one secret comes from, with the config keys that name each source.
pub(crate) struct SecretSource<'a> {
    pub(crate) env_key: &'static str,
    pub(crate) env: Option<&'a str>,
    pub(crate) file_key: &'static str,
    pub(crate) file: Option<&'a PathBuf>,
}

impl SecretSource<'_> {
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

#[cfg(test)]
mod tests;

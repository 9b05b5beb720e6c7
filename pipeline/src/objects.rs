//! Object fetch: S3 (or an S3-compatible server) and the local filesystem behind one type.
//!
//! Built on `object_store`: one trait over S3, GCS, Azure and local files, with timeouts and
//! retries with backoff built in. Stores are created per bucket on first use and cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use radstream_operators::contract::Backoff;
use radstream_schemas::{ErrorClass, ObjectLocation};

use crate::config::{ObjectStoreKind, ObjectsConfig};

/// Why an object could not be fetched. Messages carry the object key, never its content.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct FetchError {
    /// Error class for dead letters and metrics.
    pub class: ErrorClass,
    /// What went wrong and what to do.
    pub reason: String,
}

/// The retry policy of one object-store request: `max_retries` retries after the first try,
/// within one request timeout per try, waits from 100 ms doubling to 15 s (`object_store`'s own
/// defaults, kept).
fn request_retry(max_retries: usize, timeout: Duration) -> Backoff {
    let attempts = u32::try_from(max_retries).unwrap_or(u32::MAX).saturating_add(1);
    Backoff::new(Duration::from_millis(100), Duration::from_secs(15))
        .with_max_attempts(attempts)
        .with_deadline(timeout.saturating_mul(attempts))
}

/// `object_store` runs the retry loop of its requests itself (it knows which answers to retry);
/// it takes the numbers from our policy. Its waits are jittered its own way, between the
/// initial backoff and the doubled previous wait.
fn store_retry(policy: Backoff) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig { init_backoff: policy.initial_backoff, max_backoff: policy.max_backoff, base: 2.0 },
        max_retries: policy.max_attempts.saturating_sub(1) as usize,
        retry_timeout: policy.deadline,
    }
}

/// Fetches Part-10 objects named by events.
pub struct ObjectFetcher {
    config: ObjectsConfig,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl std::fmt::Debug for ObjectFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectFetcher").field("kind", &self.config.kind).finish_non_exhaustive()
    }
}

impl ObjectFetcher {
    /// A fetcher for the configured backend. Stores are built lazily, per bucket.
    pub fn new(config: ObjectsConfig) -> Self {
        Self { config, stores: Mutex::new(HashMap::new()) }
    }

    fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, FetchError> {
        let mut stores = self.stores.lock().expect("store cache lock poisoned");
        if let Some(store) = stores.get(bucket) {
            return Ok(store.clone());
        }
        let store = self.build_store(bucket)?;
        stores.insert(bucket.to_string(), store.clone());
        Ok(store)
    }

    fn build_store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, FetchError> {
        let c = &self.config;
        let config_error = |e: object_store::Error| FetchError {
            class: ErrorClass::Config,
            reason: format!("cannot set up the object store for bucket {bucket}: {e}"),
        };
        match c.kind {
            ObjectStoreKind::Local => {
                let root = c.root.as_ref().expect("validated: local store has a root").join(bucket);
                Ok(Arc::new(LocalFileSystem::new_with_prefix(&root).map_err(|e| FetchError {
                    class: ErrorClass::MissingObject,
                    reason: format!("bucket folder {} is not readable: {e}", root.display()),
                })?))
            }
            ObjectStoreKind::S3 => {
                let region = c
                    .region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                    .unwrap_or_else(|| "us-east-1".into());
                let timeout = Duration::from_secs(c.timeout_secs);
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_virtual_hosted_style_request(!c.path_style)
                    .with_client_options(ClientOptions::new().with_timeout(timeout).with_connect_timeout(timeout))
                    .with_retry(store_retry(request_retry(c.max_retries, timeout)));
                if let Some(endpoint) = &c.endpoint {
                    builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
                }
                Ok(Arc::new(builder.build().map_err(config_error)?))
            }
        }
    }

    /// Fetches the object whole, refusing objects over the size limit before reading them.
    pub async fn fetch(&self, location: &ObjectLocation) -> Result<(Bytes, Duration), FetchError> {
        let started = Instant::now();
        let key = location.display_key();
        let store = self.store(&location.bucket)?;
        let path = ObjectPath::from(location.key.as_str());
        let result = store.get(&path).await.map_err(|e| classify(&key, e, &location.key))?;
        let size = result.meta.size;
        if size > self.config.max_object_bytes {
            return Err(FetchError {
                class: ErrorClass::ObjectTooLarge,
                reason: format!(
                    "object {key} is {size} bytes, over objects.max_object_bytes = {}; raise the limit if the object is expected",
                    self.config.max_object_bytes
                ),
            });
        }
        if let (Some(expected), Some(actual)) = (location.etag.as_deref(), result.meta.e_tag.as_deref()) {
            if expected.trim_matches('"') != actual.trim_matches('"') {
                return Err(FetchError {
                    class: ErrorClass::EventMismatch,
                    reason: format!("object {key} has changed since the event (ETag differs); re-send the event for the current object"),
                });
            }
        }
        let bytes = result.bytes().await.map_err(|e| classify(&key, e, &location.key))?;
        Ok((bytes, started.elapsed()))
    }
}

impl ObjectFetcher {
    /// The object's size in bytes, from the store, without reading it.
    pub async fn size(&self, location: &ObjectLocation) -> Result<u64, FetchError> {
        let key = location.display_key();
        let store = self.store(&location.bucket)?;
        let meta =
            store.head(&ObjectPath::from(location.key.as_str())).await.map_err(|e| classify(&key, e, &location.key))?;
        Ok(meta.size)
    }

    /// Writes an object (used by `radstream publish` and the demo); returns its ETag.
    pub async fn put(&self, location: &ObjectLocation, bytes: Bytes) -> Result<Option<String>, FetchError> {
        self.put_parts(&location.bucket, &location.key, vec![bytes])
            .await
            .map_err(|e| FetchError { class: e.class, reason: e.reason })
    }

    /// Writes `parts`, concatenated, as `bucket/key` (replacing any existing object) without
    /// copying them into one buffer; returns the ETag. The store's own retries have run when
    /// this fails.
    pub async fn put_parts(&self, bucket: &str, key: &str, parts: Vec<Bytes>) -> Result<Option<String>, PutError> {
        let display_key = radstream_schemas::object_names::object_name(bucket, key);
        if let (ObjectStoreKind::Local, Some(root)) = (self.config.kind, &self.config.root) {
            let dir = root.join(bucket);
            std::fs::create_dir_all(&dir).map_err(|e| PutError {
                class: ErrorClass::ObjectStore,
                reason: format!("cannot create bucket folder {}: {e}", dir.display()),
                retryable: e.kind() != std::io::ErrorKind::PermissionDenied,
            })?;
        }
        let store = self.store(bucket).map_err(|e| PutError { class: e.class, reason: e.reason, retryable: false })?;
        let path = ObjectPath::from(key);
        let payload: PutPayload = parts.into_iter().collect();
        let result = store.put(&path, payload).await.map_err(|e| classify_put(&display_key, e, key))?;
        Ok(result.e_tag)
    }
}

/// Why an object could not be written. Messages carry the object key, never its content.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct PutError {
    /// Error class for dead letters and metrics.
    pub class: ErrorClass,
    /// What went wrong and what to do.
    pub reason: String,
    /// True when trying again later may help (the store was unreachable or failing); false when
    /// only a configuration change will (denied access, a missing bucket).
    pub retryable: bool,
}

/// The store's own error text names the path (and its URL); where object keys are shown hashed,
/// the key is taken out of it, plain and percent-encoded.
fn store_error_text(error: &object_store::Error, raw_key: &str) -> String {
    let text = error.to_string();
    if !radstream_schemas::object_names::object_keys_hashed() || raw_key.is_empty() {
        return text;
    }
    let encoded = percent_encoding::utf8_percent_encode(raw_key, percent_encoding::NON_ALPHANUMERIC).to_string();
    let path_encoded = object_store::path::Path::from(raw_key).to_string();
    [raw_key.to_string(), encoded, path_encoded].iter().fold(text, |text, form| {
        if form.is_empty() {
            text
        } else {
            text.replace(form.as_str(), "<object key>")
        }
    })
}

fn classify_put(key: &str, error: object_store::Error, raw_key: &str) -> PutError {
    let text = store_error_text(&error, raw_key);
    let (reason, retryable) = match error {
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            (format!("writing object {key} was denied; check the worker's object store credentials"), false)
        }
        object_store::Error::NotFound { .. } => {
            (format!("writing object {key} failed: the bucket does not exist; create it"), false)
        }
        object_store::Error::InvalidPath { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. }
        | object_store::Error::UnknownConfigurationKey { .. } => {
            (format!("writing object {key} failed: {text}"), false)
        }
        _ => (format!("writing object {key} failed after retries: {text}"), true),
    };
    PutError { class: ErrorClass::ObjectStore, reason, retryable }
}

fn classify(key: &str, error: object_store::Error, raw_key: &str) -> FetchError {
    let text = store_error_text(&error, raw_key);
    match error {
        object_store::Error::NotFound { .. } => FetchError {
            class: ErrorClass::MissingObject,
            reason: format!("object {key} does not exist; check that the upload finished before the event was sent"),
        },
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => FetchError {
            class: ErrorClass::ObjectStore,
            reason: format!("access to object {key} was denied; check the worker's object store credentials"),
        },
        _ => FetchError {
            class: ErrorClass::ObjectStore,
            reason: format!("fetching object {key} failed after retries: {text}"),
        },
    }
}

#[cfg(test)]
mod tests;

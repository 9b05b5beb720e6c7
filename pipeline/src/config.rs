//! Configuration: TOML, layered as embedded defaults < file < `RADSTREAM__SECTION__KEY`
//! environment variables. Validation is pure: it never touches the network or the filesystem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use radstream_operators::{ConfigError, OperatorConfig};
use radstream_schemas::EventFormat;
use serde::Deserialize;

pub use self::chain::ChainConfig;
use self::chain::{check_operator_topics, check_order, check_topic};

mod chain;

/// The prefix of environment overrides: `RADSTREAM__KAFKA__BROKERS=host:9092` sets
/// `kafka.brokers`; `RADSTREAM__OPERATORS__1__URL=...` sets `url` of the second operator.
pub const ENV_PREFIX: &str = "RADSTREAM__";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka source and outputs.
    pub kafka: KafkaConfig,
    /// Where DICOM objects are fetched from.
    #[serde(default)]
    pub objects: ObjectsConfig,
    /// Batching, channels, concurrency and draining.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// The `/metrics`, `/healthz` and `/readyz` endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The operator chain, in order. It must end with a sink (`stow`, `export`); a sink earlier
    /// in the chain delivers and forwards.
    pub operators: Vec<OperatorConfig>,
    /// What the chain's order alone cannot say (which sinks may take pseudonymized instances).
    #[serde(default)]
    pub chain: ChainConfig,
    /// The analytics lake that `radstream lake` writes; the workers ignore it.
    #[serde(default)]
    pub lake: Option<LakeConfig>,
}

/// Kafka settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Consumer group: every worker process of one pipeline uses the same group.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Topic of instance events.
    pub input_topic: String,
    /// Format of the input topic's messages: `json`, `confluent_avro` or `s3_notification`.
    #[serde(default = "default_format")]
    pub format: EventFormat,
    /// Schema Registry base URL, for `confluent_avro` (schemas are fetched by id and cached).
    #[serde(default)]
    pub schema_registry_url: Option<String>,
    /// A local Avro writer schema used for every schema id, for `confluent_avro` without a
    /// registry.
    #[serde(default)]
    pub schema_file: Option<PathBuf>,
    /// Dead-letter topic.
    #[serde(default = "default_dlq")]
    pub dead_letter_topic: String,
    /// Outcome topic: one event per instance.
    #[serde(default = "default_outcomes")]
    pub outcome_topic: String,
    /// Consumer session timeout: how fast a dead worker's partitions move to the others.
    #[serde(default = "default_session_timeout")]
    pub session_timeout_ms: u32,
    /// How often stored offsets are committed.
    #[serde(default = "default_commit_interval")]
    pub commit_interval_ms: u32,
    /// Extra librdkafka consumer properties (for example `security.protocol`).
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// Extra librdkafka producer properties.
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
}

fn default_group() -> String {
    "radstream".into()
}
fn default_format() -> EventFormat {
    EventFormat::Json
}
fn default_dlq() -> String {
    "radstream.dead-letter".into()
}
fn default_outcomes() -> String {
    "radstream.outcomes".into()
}
fn default_session_timeout() -> u32 {
    10_000
}
fn default_commit_interval() -> u32 {
    1_000
}

/// Which object store backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectStoreKind {
    /// S3 or an S3-compatible server.
    #[default]
    S3,
    /// A local folder: bucket `b`, key `k` is the file `<root>/b/k`.
    Local,
}

/// Object store settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectsConfig {
    /// `s3` (default) or `local`.
    #[serde(default)]
    pub kind: ObjectStoreKind,
    /// S3 endpoint for S3-compatible servers (MinIO, Ceph, ...); empty means AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// S3 region; when absent, `AWS_REGION` / `AWS_DEFAULT_REGION` or `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as most S3-compatible servers want.
    #[serde(default = "yes")]
    pub path_style: bool,
    /// Root folder of the `local` store.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Objects larger than this are dead-lettered unread.
    #[serde(default = "default_max_object")]
    pub max_object_bytes: u64,
    /// Timeout of one request.
    #[serde(default = "default_object_timeout")]
    pub timeout_secs: u64,
    /// Retries of a failed request (with backoff) before the instance is dead-lettered.
    #[serde(default = "default_object_retries")]
    pub max_retries: usize,
    /// Fetches in flight at once.
    #[serde(default = "default_fetch_concurrency")]
    pub concurrency: usize,
    /// Show every object in logs, error messages and dead-letter reasons as its bucket and a
    /// keyed hash of its key (`bucket/hmac-<32 hex digits>`, HMAC-SHA256) instead of the key, for
    /// upstream keys that hold an MRN or accession number: the file of the secret (at least 16
    /// bytes, e.g. `head -c 32 /dev/urandom > key-hash.secret`). The same key always gives the
    /// same name; events and dead letters keep the key itself in their location (replay needs
    /// it).
    #[serde(default)]
    pub key_hash_secret_file: Option<PathBuf>,
    /// The same secret from this environment variable instead of a file.
    #[serde(default)]
    pub key_hash_secret_env: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_max_object() -> u64 {
    2 << 30
}
fn default_object_timeout() -> u64 {
    30
}
fn default_object_retries() -> usize {
    5
}
fn default_fetch_concurrency() -> usize {
    16
}

impl Default for ObjectsConfig {
    fn default() -> Self {
        Self {
            kind: ObjectStoreKind::S3,
            endpoint: None,
            region: None,
            path_style: true,
            root: None,
            max_object_bytes: default_max_object(),
            timeout_secs: default_object_timeout(),
            max_retries: default_object_retries(),
            concurrency: default_fetch_concurrency(),
            key_hash_secret_file: None,
            key_hash_secret_env: None,
        }
    }
}

/// Runtime settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Most envelopes an operator gets at once.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// How long an operator waits to fill a batch once it has one envelope.
    #[serde(default = "default_linger")]
    pub batch_linger_ms: u64,
    /// Capacity of each channel between stages.
    #[serde(default = "default_channel")]
    pub channel_capacity: usize,
    /// Most instances in flight (read, not finished): bounds memory whatever the backlog.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Most bytes of fetched objects held at once, from their fetch to their outcome (the
    /// object's size from its event, or from the store before it is read). An object larger than
    /// this waits until nothing else is held, then goes alone. Default 4 GiB; at least 1 MiB.
    #[serde(default = "default_in_flight_bytes")]
    pub max_in_flight_bytes: u64,
    /// Attempts of an operator on an envelope that failed with a retry hint.
    #[serde(default = "default_operator_attempts")]
    pub operator_max_attempts: u32,
    /// On SIGTERM, how long in-flight work may take to finish before the process exits.
    #[serde(default = "default_drain")]
    pub drain_deadline_secs: u64,
    /// Tasks per operator kind, each with its own operator instance, taking batches from the
    /// same channel (for example `{ stow = 8 }`). Sinks default to 4, other operators to 1.
    #[serde(default)]
    pub parallelism: BTreeMap<String, usize>,
}

impl RuntimeConfig {
    /// How many tasks run the operator of `kind`.
    pub fn tasks_for(&self, kind: &str, is_sink: bool) -> usize {
        self.parallelism.get(kind).copied().unwrap_or(if is_sink { 4 } else { 1 })
    }
}

fn default_batch() -> usize {
    16
}
fn default_linger() -> u64 {
    2
}
fn default_channel() -> usize {
    64
}
fn default_in_flight() -> usize {
    256
}
fn default_in_flight_bytes() -> u64 {
    4 << 30
}
fn default_operator_attempts() -> u32 {
    3
}
fn default_drain() -> u64 {
    30
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            batch_size: default_batch(),
            batch_linger_ms: default_linger(),
            channel_capacity: default_channel(),
            max_in_flight: default_in_flight(),
            max_in_flight_bytes: default_in_flight_bytes(),
            operator_max_attempts: default_operator_attempts(),
            drain_deadline_secs: default_drain(),
            parallelism: BTreeMap::new(),
        }
    }
}

/// Metrics and health endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Listen address of `/metrics`, `/healthz` and `/readyz`; empty disables the endpoint.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9464".into()
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: default_metrics_listen() }
    }
}

/// The analytics lake (`radstream lake`): outcome records as Parquet files in the object
/// store, partitioned by date and model, and the radiologists' feedback on findings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// Bucket of the lake, in the `[objects]` store.
    pub bucket: String,
    /// Key prefix of every lake file (`lake/` by default); ends with `/` unless empty.
    #[serde(default = "default_lake_prefix")]
    pub prefix: String,
    /// The pseudonymization key file (`radstream keygen` writes one): the same key as the
    /// `pseudonymize` operator's, so lake rows carry the pseudonyms the PACS holds. One of
    /// `key_file` and `key_env`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the key file's text, instead of `key_file`.
    #[serde(default)]
    pub key_env: Option<String>,
    /// Rows buffered before the files are written.
    #[serde(default = "default_lake_flush_rows")]
    pub flush_rows: usize,
    /// Most seconds a row waits in the buffer before the files are written.
    #[serde(default = "default_lake_flush_secs")]
    pub flush_secs: u64,
    /// Topic of radiologists' verdicts on findings (`Feedback` JSON records); none: no feedback.
    #[serde(default)]
    pub feedback_topic: Option<String>,
    /// Listen address of the lake process's `/metrics` and `/healthz`; empty disables them.
    /// Not `metrics.listen`, so a lake and a worker can share a host.
    #[serde(default = "default_lake_metrics_listen")]
    pub metrics_listen: String,
}

fn default_lake_prefix() -> String {
    "lake/".into()
}
fn default_lake_flush_rows() -> usize {
    10_000
}
fn default_lake_flush_secs() -> u64 {
    60
}
fn default_lake_metrics_listen() -> String {
    "127.0.0.1:9465".into()
}

impl LakeConfig {
    /// Checks the section against the Kafka settings it shares, without touching anything.
    pub fn validate(&self, kafka: &KafkaConfig) -> Result<(), ConfigError> {
        let b = &self.bucket;
        if b.len() < 3
            || b.len() > 63
            || !b.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c))
        {
            return Err(ConfigError::new("lake.bucket", "a bucket name is 3-63 characters of a-z, 0-9, '.', '-'"));
        }
        if self.prefix.starts_with('/') || !(self.prefix.is_empty() || self.prefix.ends_with('/')) {
            return Err(ConfigError::new("lake.prefix", "must not start with '/' and must end with '/' (or be empty)"));
        }
        match (&self.key_file, &self.key_env) {
            (None, None) => {
                return Err(ConfigError::new(
                    "lake.key_file",
                    "set key_file or key_env: the pseudonymization key of the `pseudonymize` operator",
                ))
            }
            (Some(_), Some(_)) => return Err(ConfigError::new("lake.key_env", "set key_file or key_env, not both")),
            _ => {}
        }
        if self.flush_rows == 0 {
            return Err(ConfigError::new("lake.flush_rows", "must be at least 1"));
        }
        if self.flush_secs == 0 {
            return Err(ConfigError::new("lake.flush_secs", "must be at least 1"));
        }
        if let Some(topic) = &self.feedback_topic {
            check_topic("lake.feedback_topic", topic)?;
            if [&kafka.input_topic, &kafka.outcome_topic, &kafka.dead_letter_topic].contains(&topic) {
                return Err(ConfigError::new(
                    "lake.feedback_topic",
                    "must differ from the input, outcome and dead-letter topics",
                ));
            }
        }
        if !self.metrics_listen.is_empty() && self.metrics_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::new("lake.metrics_listen", "must be ip:port, for example 0.0.0.0:9465"));
        }
        Ok(())
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is not well-formed.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// The path.
        path: PathBuf,
        /// Parser message (with line and column).
        message: String,
    },
    /// An environment override could not be applied.
    #[error("environment variable {var}: {problem}")]
    Env {
        /// The variable name.
        var: String,
        /// What is wrong.
        problem: String,
    },
    /// The merged document does not fit the schema or fails validation.
    /// Not a `source`: the message already holds it, and a chain printed with `{:#}` would
    /// repeat it.
    #[error("invalid configuration: {0}")]
    Invalid(ConfigError),
}

impl From<ConfigError> for LoadError {
    fn from(e: ConfigError) -> Self {
        Self::Invalid(e)
    }
}

impl Config {
    /// Loads `path` and applies `RADSTREAM__…` overrides from `env`, then validates.
    pub fn load(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.into(), source })?;
        Self::from_toml_str(&text, path, env)
    }

    /// Parses a TOML document (named `origin` in errors), applies overrides, validates.
    pub fn from_toml_str(
        text: &str,
        origin: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, LoadError> {
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| LoadError::Syntax { path: origin.into(), message: e.to_string() })?;
        apply_env_overrides(&mut doc, env)?;
        // Re-read the merged document as text so errors quote the offending line and key.
        let merged = toml::to_string(&doc).map_err(|e| LoadError::Invalid(ConfigError::new("", e.to_string())))?;
        let config: Config = toml::from_str(&merged).map_err(|e: toml::de::Error| {
            LoadError::Invalid(ConfigError::new(origin.display().to_string(), e.to_string()))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every section without touching the network or the filesystem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.objects.key_hash_secret_file.is_some() && self.objects.key_hash_secret_env.is_some() {
            return Err(ConfigError::new(
                "objects.key_hash_secret_env",
                "set key_hash_secret_file or key_hash_secret_env, not both",
            ));
        }
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            return Err(ConfigError::new("kafka.brokers", "must list at least one host:port"));
        }
        for (key, topic) in [
            ("kafka.input_topic", &k.input_topic),
            ("kafka.dead_letter_topic", &k.dead_letter_topic),
            ("kafka.outcome_topic", &k.outcome_topic),
        ] {
            check_topic(key, topic)?;
        }
        if k.dead_letter_topic == k.input_topic || k.outcome_topic == k.input_topic {
            return Err(ConfigError::new("kafka.dead_letter_topic", "output topics must differ from the input topic"));
        }
        if k.format == EventFormat::ConfluentAvro && k.schema_registry_url.is_none() && k.schema_file.is_none() {
            return Err(ConfigError::new(
                "kafka.schema_registry_url",
                "format \"confluent_avro\" needs schema_registry_url or schema_file",
            ));
        }
        if let Some(url) = &k.schema_registry_url {
            url::Url::parse(url)
                .map_err(|e| ConfigError::new("kafka.schema_registry_url", format!("not a URL: {e}")))?;
        }
        if k.session_timeout_ms < 1_000 {
            return Err(ConfigError::new("kafka.session_timeout_ms", "must be at least 1000"));
        }
        if k.commit_interval_ms == 0 {
            return Err(ConfigError::new(
                "kafka.commit_interval_ms",
                "must be at least 1: 0 turns committing off, and every event would be read again after a restart",
            ));
        }
        crate::kafka::settings::check_extras(&k.consumer, &k.producer)?;
        let o = &self.objects;
        match o.kind {
            ObjectStoreKind::Local if o.root.is_none() => {
                return Err(ConfigError::new("objects.root", "kind = \"local\" needs a root folder"))
            }
            ObjectStoreKind::S3 => {
                if let Some(endpoint) = &o.endpoint {
                    let url = url::Url::parse(endpoint)
                        .map_err(|e| ConfigError::new("objects.endpoint", format!("not a URL: {e}")))?;
                    if !matches!(url.scheme(), "http" | "https") {
                        return Err(ConfigError::new("objects.endpoint", "must be an http:// or https:// URL"));
                    }
                }
            }
            _ => {}
        }
        if o.concurrency == 0 {
            return Err(ConfigError::new("objects.concurrency", "must be at least 1"));
        }
        if !(1..=3_600).contains(&o.timeout_secs) {
            return Err(ConfigError::new(
                "objects.timeout_secs",
                format!("{} is out of range: must be between 1 and 3600 (0 would fail every request)", o.timeout_secs),
            ));
        }
        let r = &self.runtime;
        for (key, value) in [
            ("runtime.batch_size", r.batch_size),
            ("runtime.channel_capacity", r.channel_capacity),
            ("runtime.max_in_flight", r.max_in_flight),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be at least 1"));
            }
        }
        if r.max_in_flight_bytes < 1 << 20 {
            return Err(ConfigError::new(
                "runtime.max_in_flight_bytes",
                "must be at least 1048576 (1 MiB); it bounds the bytes of objects held between fetch and outcome",
            ));
        }
        for (kind, tasks) in &r.parallelism {
            if *tasks == 0 || *tasks > 256 {
                return Err(ConfigError::new(format!("runtime.parallelism.{kind}"), "must be between 1 and 256"));
            }
            if !self.operators.iter().any(|o| o.kind() == kind) {
                return Err(ConfigError::new(
                    format!("runtime.parallelism.{kind}"),
                    "no operator of this type in the chain",
                ));
            }
        }
        if r.operator_max_attempts == 0 {
            return Err(ConfigError::new("runtime.operator_max_attempts", "must be at least 1"));
        }
        if r.drain_deadline_secs == 0 {
            return Err(ConfigError::new(
                "runtime.drain_deadline_secs",
                "must be at least 1: 0 abandons all in-flight work at every stop, to be done again by the next worker",
            ));
        }
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::new("metrics.listen", "must be ip:port, for example 0.0.0.0:9464"));
        }
        if self.operators.is_empty() {
            return Err(ConfigError::new("operators", "the chain is empty: it must end with a sink such as `stow`"));
        }
        for (i, op) in self.operators.iter().enumerate() {
            op.validate().map_err(|e| e.within(&format!("operators[{i}]")))?;
            if let OperatorConfig::Export(export) = op {
                if export.announce_topic.as_deref() == Some(k.input_topic.as_str()) {
                    return Err(ConfigError::new(
                        format!("operators[{i}].announce_topic"),
                        "must differ from kafka.input_topic: every exported instance would come back in",
                    ));
                }
            }
        }
        check_operator_topics(&self.operators)?;
        check_order(&self.operators, &self.chain)?;
        if let Some(lake) = &self.lake {
            lake.validate(k)?;
        }
        // A sink before the end delivers and forwards (for example `export`, then `stow`); only
        // the last operator's acknowledgement makes an instance delivered.
        let (last_index, last) = (self.operators.len() - 1, &self.operators[self.operators.len() - 1]);
        if !last.is_sink() {
            return Err(ConfigError::new(
                format!("operators[{last_index}].type"),
                format!("the chain must end with a sink (for example `stow` or `export`), not `{}`", last.kind()),
            ));
        }
        Ok(())
    }
}

/// Applies `RADSTREAM__A__B=value` overrides to the TOML document. Values are read as TOML
/// (numbers, booleans, arrays) when they parse as such, else as strings. Numeric path segments
/// index arrays (`RADSTREAM__OPERATORS__0__URL`).
pub fn apply_env_overrides(
    doc: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), LoadError> {
    let mut vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    vars.sort();
    for (var, raw) in vars {
        let path: Vec<String> = var[ENV_PREFIX.len()..].split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(String::is_empty) {
            return Err(LoadError::Env { var, problem: "empty path segment (use __ between keys)".into() });
        }
        let value = parse_env_value(&raw);
        set_path(doc, &path, value).map_err(|problem| LoadError::Env { var: var.clone(), problem })?;
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match probe.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (head, rest) = path.split_first().expect("non-empty path");
    if rest.is_empty() {
        table.insert(head.clone(), value);
        return Ok(());
    }
    let child = table.entry(head.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    set_value_path(child, rest, value, head)
}

fn set_value_path(node: &mut toml::Value, path: &[String], value: toml::Value, at: &str) -> Result<(), String> {
    match node {
        toml::Value::Table(t) => set_path(t, path, value),
        toml::Value::Array(items) => {
            let (head, rest) = path.split_first().expect("non-empty path");
            let index: usize =
                head.parse().map_err(|_| format!("`{at}` is a list: the next segment must be an index"))?;
            let len = items.len();
            let item = items.get_mut(index).ok_or_else(|| format!("`{at}` has {len} entries, no index {index}"))?;
            if rest.is_empty() {
                *item = value;
                Ok(())
            } else {
                set_value_path(item, rest, value, head)
            }
        }
        _ => Err(format!("`{at}` is a plain value, it has no keys below it")),
    }
}

#[cfg(test)]
mod tests;

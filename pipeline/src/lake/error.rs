//! Why the lake could not start or stopped.

use radstream_operators::pseudonymize::KeyError;

use crate::objects::PutError;

/// Why the lake could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The config has no `[lake]` section.
    #[error("the config has no [lake] section: `radstream lake` needs lake.bucket and lake.key_file")]
    NotConfigured,
    /// The pseudonymization key could not be loaded.
    #[error("lake.key_file / lake.key_env: {0}")]
    Key(#[from] KeyError),
    /// A Kafka client could not be created, subscribed or committed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A Parquet file could not be encoded (a bug).
    #[error("encoding {key}: {reason}")]
    Encode {
        /// The lake file's key.
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// Writing a lake file failed and retrying will not help (access denied, no bucket).
    #[error("{0}")]
    Upload(PutError),
    /// The metrics endpoint could not listen.
    #[error("lake.metrics_listen = {listen}: {source}")]
    Listen {
        /// The address.
        listen: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl LakeError {
    /// Whether a configuration change fixes it (the command exits 2 then, like `validate`).
    pub fn is_config(&self) -> bool {
        matches!(self, LakeError::NotConfigured | LakeError::Key(_) | LakeError::Listen { .. })
    }
}

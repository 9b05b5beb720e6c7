//! Why synthetic studies cannot be made as asked.

/// Why the `SynthOptions` cannot be generated.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid UID root {root:?}: {reason}")]
    InvalidUidRoot { root: String, reason: &'static str },
    #[error("{studies} studies is more than the {max} that fit in a UID")]
    TooManyStudies { studies: usize, max: usize },
    #[error("instances_per_series must be between 1 and {max}, not {value}")]
    InstancesPerSeries { value: usize, max: usize },
    #[error("target_instance_bytes {value} is outside {min}..={max}")]
    TargetInstanceBytes { value: usize, min: usize, max: usize },
}

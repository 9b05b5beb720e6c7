//! Why the pipeline could not start or run.

/// Why the pipeline could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A Kafka client could not be created or subscribed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// An operator could not be built from its config (for example a missing secret).
    #[error("operator {index} ({kind}): {source}")]
    Operator {
        /// Position in the chain.
        index: usize,
        /// Operator kind.
        kind: &'static str,
        /// The problem.
        source: radstream_operators::ConfigError,
    },
    /// The local Avro schema file could not be read or parsed.
    #[error("kafka.schema_file: {0}")]
    Schema(String),
    /// A routing rule sends instances to a model that no operator of the chain runs.
    #[error(
        "routing rule names model {model:?} but no infer operator runs it (infer operators run: {})",
        if served.is_empty() { "none".to_string() } else { served.join(", ") }
    )]
    UnservedModel {
        /// The model the rule names.
        model: String,
        /// The models the chain's operators run.
        served: Vec<String>,
    },
    /// The worker stopped because it cannot go on: a stage's task died, or an output topic
    /// refuses every record. The text says what is wrong and what to do.
    #[error("the worker stopped: {0}")]
    Failed(String),
}

/// Checks that every model a `route` operator names is run by an operator of the chain
/// (`served`: what the built operators' [`Operator::models`] return).
pub(crate) fn check_routed_models(
    operators: &[radstream_operators::OperatorConfig],
    served: &[String],
) -> Result<(), RuntimeError> {
    for c in operators {
        if let radstream_operators::OperatorConfig::Route(route) = c {
            if let Some(model) = route.models().into_iter().find(|m| !served.contains(m)) {
                return Err(RuntimeError::UnservedModel { model, served: served.to_vec() });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! What `validate` knows of the chain as a whole, beyond each operator's own checks: where
//! pseudonymized and identified data may go, and the names of every topic the chain writes or
//! reads. Pure, like the rest of the config's validation.

use radstream_operators::{ConfigError, OperatorConfig};
use serde::Deserialize;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_LEN: usize = 249;

/// The `[chain]` section: what the order of `[[operators]]` alone cannot say.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Operator types of sinks that are meant to receive pseudonymized instances (a research
    /// PACS, for example `["stow"]`). Without it, a sink other than `export` after
    /// `pseudonymize` with no `relink` between them is refused: it would deliver results under
    /// pseudonyms the clinical PACS or EHR cannot match to a patient.
    #[serde(default)]
    pub pseudonymized_destinations: Vec<String>,
}

/// Checks a topic name against Kafka's rules: 1 to 249 characters of `a-z A-Z 0-9 . _ -`,
/// and neither `.` nor `..`.
pub fn check_topic(key: &str, topic: &str) -> Result<(), ConfigError> {
    let legal = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN || !topic.chars().all(legal) || topic == "." || topic == ".." {
        let what = if topic.len() > MAX_TOPIC_LEN {
            format!("is {} characters long", topic.len())
        } else if topic.is_empty() {
            "is empty".to_string()
        } else {
            "is not a name Kafka accepts".to_string()
        };
        return Err(ConfigError::new(
            key,
            format!(
                "the topic name {what}: a topic name is 1-{MAX_TOPIC_LEN} characters of a-z, A-Z, 0-9, '.', '_', \
                 '-' (and not \".\" or \"..\"); rename it"
            ),
        ));
    }
    Ok(())
}

/// Every topic an operator of the chain names, with its key below `operators[i]`.
fn operator_topics(op: &OperatorConfig) -> Vec<(&'static str, &str)> {
    match op {
        OperatorConfig::Alert(c) => vec![("topic", c.topic.as_str())],
        OperatorConfig::Export(c) => c.announce_topic.iter().map(|t| ("announce_topic", t.as_str())).collect(),
        OperatorConfig::Fhir(c) => c.topic.iter().map(|t| ("topic", t.as_str())).collect(),
        OperatorConfig::Pseudonymize(c) => [("link_topic", &c.link_topic), ("audit_topic", &c.audit_topic)]
            .into_iter()
            .filter_map(|(key, topic)| topic.as_deref().map(|t| (key, t)))
            .collect(),
        OperatorConfig::Relink(c) => vec![("link_topic", c.link_topic.as_str())],
        _ => Vec::new(),
    }
}

/// Checks the topic names of every operator, naming `operators[i].<key>`.
pub fn check_operator_topics(operators: &[OperatorConfig]) -> Result<(), ConfigError> {
    for (i, op) in operators.iter().enumerate() {
        for (key, topic) in operator_topics(op) {
            check_topic(&format!("operators[{i}].{key}"), topic)?;
        }
    }
    Ok(())
}

/// The only sink that may take pseudonymized instances without being listed: it writes to a
/// bucket of the pipeline's own store, where research data sets are made.
const EXPORT: &str = "export";

/// Checks where the chain sends identified and pseudonymized data:
///
/// * no sink before the last `pseudonymize`: it would deliver instances that are not
///   pseudonymized yet, out of a chain whose purpose is to pseudonymize them;
/// * no sink but `export` after a `pseudonymize` unless a `relink` comes between them, or its
///   type is listed in `chain.pseudonymized_destinations`: results would land in the clinical
///   PACS (or the EHR) under pseudonyms.
pub fn check_order(operators: &[OperatorConfig], chain: &ChainConfig) -> Result<(), ConfigError> {
    let kind_at = |i: usize| operators[i].kind();
    if let Some(last_pseudonymize) = operators.iter().rposition(|o| o.kind() == "pseudonymize") {
        if let Some(i) = operators[..last_pseudonymize].iter().position(OperatorConfig::is_sink) {
            return Err(ConfigError::new(
                format!("operators[{i}].type"),
                format!(
                    "`{}` comes before `pseudonymize` (operators[{last_pseudonymize}]) and would deliver instances \
                     that are not pseudonymized yet: move it after pseudonymize, or deliver the originals from a \
                     pipeline of their own (another group_id on the same input topic)",
                    kind_at(i)
                ),
            ));
        }
    }
    for (k, listed) in chain.pseudonymized_destinations.iter().enumerate() {
        if listed == EXPORT || !operators.iter().any(|o| o.is_sink() && o.kind() == listed) {
            return Err(ConfigError::new(
                format!("chain.pseudonymized_destinations[{k}]"),
                format!(
                    "`{listed}` is not a sink of this chain other than `export` (which may always take pseudonymized \
                     instances): remove it"
                ),
            ));
        }
    }
    let mut used = vec![false; chain.pseudonymized_destinations.len()];
    let mut pseudonymized_at = None;
    for (i, op) in operators.iter().enumerate() {
        match op.kind() {
            "pseudonymize" => pseudonymized_at = Some(i),
            "relink" => pseudonymized_at = None,
            kind if op.is_sink() && kind != EXPORT => {
                let Some(p) = pseudonymized_at else { continue };
                if let Some(k) = chain.pseudonymized_destinations.iter().position(|d| d == kind) {
                    used[k] = true;
                    continue;
                }
                return Err(ConfigError::new(
                    format!("operators[{i}].type"),
                    format!(
                        "`{kind}` comes after `pseudonymize` (operators[{p}]) with no `relink` between them, so it \
                         would deliver results under pseudonyms, which the clinical systems cannot match to the \
                         patient: add a `relink` before it; if this destination is meant to receive pseudonymized \
                         instances (a research system), add `pseudonymized_destinations = [\"{kind}\"]` to a \
                         `[chain]` section"
                    ),
                ));
            }
            _ => {}
        }
    }
    if let Some(k) = used.iter().position(|u| !u) {
        return Err(ConfigError::new(
            format!("chain.pseudonymized_destinations[{k}]"),
            format!(
                "no `{}` of this chain receives pseudonymized instances (none follows a pseudonymize without a \
                 relink): remove it",
                chain.pseudonymized_destinations[k]
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

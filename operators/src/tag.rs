//! `tag`: the smallest operator, registered only in tests. It shows what adding an operator
//! takes (this file and one line in the registry) and the compliance test runs over it like
//! every other: it records its label as the envelope's branch where routing chose none, and
//! forwards everything.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::contract::{BuildContext, ConfigError, Envelope, Operator, OperatorSpec, Processed};

/// The `[[operators]]` table of a `tag` operator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TagConfig {
    /// The branch given to envelopes that have none.
    pub label: String,
}

impl OperatorSpec for TagConfig {
    const KIND: &'static str = "tag";

    fn validate(&self) -> Result<(), ConfigError> {
        if self.label.trim().is_empty() {
            return Err(ConfigError::new("label", "must not be empty"));
        }
        Ok(())
    }

    fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Operator>, ConfigError> {
        self.validate()?;
        Ok(Box::new(Tag { label: self.label.clone() }))
    }

    fn example() -> &'static str {
        "label = \"example\"\n"
    }
}

/// The running operator.
#[derive(Debug)]
pub struct Tag {
    label: String,
}

#[async_trait]
impl Operator for Tag {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        batch
            .into_iter()
            .map(|mut envelope| {
                envelope.branch.get_or_insert_with(|| self.label.clone());
                Processed::forward(envelope)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

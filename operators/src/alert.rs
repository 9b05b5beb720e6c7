//! `alert`: a critical finding goes out at once, on a topic a worklist reads, with the study's
//! priority raised.
//!
//! After `infer`, every envelope whose result has a finding the manifest marks `critical` gets
//! one [`CriticalAlert`] on `topic` (keyed by StudyInstanceUID, JSON: the model's identity, the
//! critical findings, the instance's UIDs, priority `STAT`), sent before the envelope moves on,
//! so the alert leaves within the instance's own latency budget. The envelope's priority is
//! raised to STAT for the rest of the chain. Envelopes without a critical finding pass on
//! untouched.
//!
//! ```toml
//! [[operators]]
//! type = "alert"
//! topic = "radstream.critical"
//! ```
//!
//! Outcomes: forwarded; retried, then dead-lettered as `output_topic` when the topic cannot
//! be written (the reason names the object, never the patient).

use std::sync::Arc;

use async_trait::async_trait;
use radstream_schemas::{CriticalAlert, ErrorClass, Priority};
use serde::{Deserialize, Serialize};

use crate::contract::services::{ServiceError, TopicWriter};
use crate::{BuildContext, ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

/// Configuration of the `alert` operator.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// The topic critical findings go to (it must exist).
    pub topic: String,
}

impl AlertConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.topic.trim().is_empty() {
            return Err(ConfigError::new("topic", "name the topic critical findings go to"));
        }
        Ok(())
    }

    /// Builds the operator on the runtime's Kafka producer.
    pub fn build(&self, ctx: &BuildContext) -> Result<Alert, ConfigError> {
        self.validate()?;
        let topics = ctx
            .topics
            .clone()
            .ok_or_else(|| ConfigError::new("topic", "alerting needs a Kafka producer, and none is available here"))?;
        Ok(Alert { topic: self.topic.clone(), topics })
    }
}

/// Sends critical findings to a topic.
pub struct Alert {
    topic: String,
    topics: Arc<dyn TopicWriter>,
}

impl std::fmt::Debug for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alert").field("topic", &self.topic).finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The alert for an envelope, when its result has a critical finding.
pub fn critical_alert(envelope: &Envelope, time_ms: i64) -> Option<CriticalAlert> {
    let result = envelope.results.as_ref()?;
    let mut record = result.record();
    record.findings.retain(|f| f.critical);
    if record.findings.is_empty() {
        return None;
    }
    let event = &envelope.event;
    Some(CriticalAlert {
        study_instance_uid: event.study_instance_uid.clone(),
        series_instance_uid: event.series_instance_uid.clone(),
        sop_instance_uid: event.sop_instance_uid.clone(),
        object_key: envelope.object_key(),
        priority: "STAT".into(),
        event_priority: match event.priority {
            Priority::Routine => "ROUTINE".into(),
            Priority::Stat => "STAT".into(),
        },
        results: record,
        event_time_ms: event.event_time_ms,
        time_ms,
    })
}

impl Alert {
    async fn alert(&self, envelope: &mut Envelope) -> Result<(), OperatorError> {
        let Some(alert) = critical_alert(envelope, now_ms()) else { return Ok(()) };
        let value = serde_json::to_vec(&alert).expect("alerts serialize");
        self.topics.send(&self.topic, &alert.study_instance_uid, value).await.map_err(|e: ServiceError| {
            let reason = format!("alert: sending the critical finding of {} failed: {e}", envelope.object_key());
            if e.retryable {
                OperatorError::retry(ErrorClass::OutputTopic, reason, None)
            } else {
                OperatorError::dead_letter(ErrorClass::OutputTopic, reason)
            }
        })?;
        tracing::info!(
            object = %envelope.object_key(),
            sop_instance_uid = %alert.sop_instance_uid,
            model = %alert.results.model,
            findings = alert.results.findings.len(),
            "alert: critical finding sent"
        );
        envelope.event.priority = Priority::Stat;
        Ok(())
    }
}

#[async_trait]
impl Operator for Alert {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        let this = &*self;
        futures::future::join_all(batch.into_iter().map(|mut envelope| async move {
            let outcome = match this.alert(&mut envelope).await {
                Ok(()) => Outcome::Forward,
                Err(e) => Outcome::Fail(e),
            };
            Processed { envelope, outcome }
        }))
        .await
    }
}

impl crate::contract::OperatorSpec for AlertConfig {
    const KIND: &'static str = "alert";

    fn validate(&self) -> Result<(), crate::contract::ConfigError> {
        AlertConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::contract::BuildContext,
    ) -> Result<Box<dyn crate::contract::Operator>, crate::contract::ConfigError> {
        Ok(Box::new(AlertConfig::build(self, ctx)?))
    }

    fn example() -> &'static str {
        r#"
topic = "alerts"
"#
    }
}

#[cfg(test)]
mod tests;

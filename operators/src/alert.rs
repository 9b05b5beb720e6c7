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
use serde::Deserialize;

use crate::services::{ServiceError, TopicWriter};
use crate::{BuildContext, ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

/// Configuration of the `alert` operator.
#[derive(Debug, Clone, Deserialize)]
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;
    use radstream_schemas::ObjectLocation;

    use super::*;
    use crate::infer::{Code, CodeSystem, Finding, InferenceResult, ModelIdentity};
    use crate::RetryHint;

    #[derive(Default)]
    struct Topics {
        records: Mutex<Vec<(String, String, Vec<u8>)>>,
        failure: Mutex<Option<ServiceError>>,
    }

    #[async_trait]
    impl TopicWriter for Topics {
        async fn send(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), ServiceError> {
            if let Some(failure) = self.failure.lock().unwrap().clone() {
                return Err(failure);
            }
            self.records.lock().unwrap().push((topic.into(), key.into(), value));
            Ok(())
        }
    }

    fn finding(critical: bool) -> Finding {
        Finding {
            label: if critical { "intracranial hemorrhage" } else { "calcification" }.into(),
            code: Code {
                system: CodeSystem::SnomedCt,
                value: "1386000".into(),
                meaning: "Intracranial hemorrhage".into(),
            },
            frame: 0,
            score: 0.97,
            threshold: 0.5,
            critical,
        }
    }

    fn envelope(ticket: u64, findings: Vec<Finding>) -> Envelope {
        let location = ObjectLocation { bucket: "in".into(), key: format!("{ticket}.dcm"), size: None, etag: None };
        let part10: Bytes = crate::test_support::header_only_part10(&format!("1.2.3.4.{ticket}"), "CT");
        let mut e = Envelope::from_part10(ticket, location, part10).unwrap();
        e.results = Some(Arc::new(InferenceResult {
            model: ModelIdentity { name: "m".into(), version: "1".into(), sha256: "ab".repeat(32) },
            scores: vec![findings.iter().map(|f| f.score).collect()],
            findings,
            series: None,
            masks: None,
            mask_size: None,
        }));
        e
    }

    fn alert(topics: &Arc<Topics>) -> Alert {
        let ctx = BuildContext { topics: Some(topics.clone() as Arc<dyn TopicWriter>), ..BuildContext::default() };
        AlertConfig { topic: "critical".into() }.build(&ctx).unwrap()
    }

    #[tokio::test]
    async fn a_critical_finding_is_sent_with_stat_priority_and_others_pass_untouched() {
        let topics = Arc::new(Topics::default());
        let mut op = alert(&topics);
        let mut none = envelope(3, vec![]);
        none.results = None;
        let out = op
            .process_batch(vec![
                envelope(1, vec![finding(true), finding(false)]),
                envelope(2, vec![finding(false)]),
                none,
            ])
            .await;
        assert!(out.iter().all(|p| matches!(p.outcome, Outcome::Forward)));
        let priorities: Vec<Priority> = out.iter().map(|p| p.envelope.event.priority).collect();
        assert_eq!(priorities, [Priority::Stat, Priority::Routine, Priority::Routine]);
        let records = topics.records.lock().unwrap();
        assert_eq!(records.len(), 1, "only the critical finding is an alert");
        let (topic, key, value) = &records[0];
        assert_eq!((topic.as_str(), key.as_str()), ("critical", "1.2.3.1"));
        let alert: CriticalAlert = serde_json::from_slice(value).unwrap();
        assert_eq!((alert.sop_instance_uid.as_str(), alert.priority.as_str()), ("1.2.3.4.1", "STAT"));
        assert_eq!(alert.event_priority, "ROUTINE");
        assert_eq!(alert.results.findings.len(), 1);
        assert!(alert.results.findings[0].critical);
        assert_eq!((alert.results.model.as_str(), alert.results.version.as_str()), ("m", "1"));
    }

    #[tokio::test]
    async fn a_topic_that_cannot_be_written_is_retried_then_dead_lettered() {
        let topics = Arc::new(Topics::default());
        *topics.failure.lock().unwrap() =
            Some(ServiceError { destination: "critical".into(), message: "broker down".into(), retryable: true });
        let mut op = alert(&topics);
        let out = op.process_batch(vec![envelope(1, vec![finding(true)])]).await;
        let Outcome::Fail(e) = &out[0].outcome else { panic!("{:?}", out[0].outcome) };
        assert_eq!(e.class, ErrorClass::OutputTopic);
        assert!(matches!(e.retry, RetryHint::Retry { .. }));
        assert!(e.reason.contains("in/1.dcm") && e.reason.contains("broker down"), "{}", e.reason);
        assert_eq!(out[0].envelope.event.priority, Priority::Routine, "not raised until the alert is out");
        assert!(AlertConfig { topic: " ".into() }.validate().is_err());
        let e = AlertConfig { topic: "t".into() }.build(&BuildContext::default()).unwrap_err();
        assert_eq!(e.key, "topic");
    }
}

use std::sync::Mutex;

use bytes::Bytes;
use radstream_schemas::ObjectLocation;

use super::*;
use crate::contract::{Code, CodeSystem, Finding, InferenceResult, ModelIdentity};
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
        code: Code { system: CodeSystem::SnomedCt, value: "1386000".into(), meaning: "Intracranial hemorrhage".into() },
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
        .process_batch(vec![envelope(1, vec![finding(true), finding(false)]), envelope(2, vec![finding(false)]), none])
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

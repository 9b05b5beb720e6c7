//! `pseudonymize`: DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile with
//! options, keyed and re-linkable, as a header-only rewrite.
//!
//! Per instance: the profile is applied ([`Deidentifier`]); an instance whose pixels are or
//! may be burned in with text goes to quarantine or the dead-letter topic, never on; the
//! re-identification link is written to the trusted side's compacted link topic and an audit
//! event to the audit topic, both acknowledged before the pseudonymized instance moves on.

pub mod dates;
pub mod engine;
pub mod keys;
pub mod profile;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use radstream_schemas::{AuditEvent, AuditOutcome, ErrorClass};
use serde::{Deserialize, Serialize};

pub use crate::contract::links::{LinkRecord, LinkedAttribute};
/// Why an object could not be de-identified (the Part-10 editor's error).
pub use crate::dicom::editor::EditError as DeidError;
pub use engine::{BurnedIn, BurnedInRules, Deidentified, Deidentifier};
pub use keys::{DeidKey, KeyError};
pub use profile::{ProfileOption, ProfileOptions, SafePrivateRule, EDITION};

use crate::contract::services::{ObjectWriter, ServiceError, TopicWriter};
use crate::contract::{BuildContext, ConfigError};
use crate::{Envelope, Operator, OperatorError, Outcome, Processed};

/// The profile as named in audit events.
pub fn profile_name() -> String {
    format!("DICOM PS3.15 {EDITION} Basic Application Level Confidentiality Profile")
}

/// What happens to instances whose pixels are or may be burned in with text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BurnedInAction {
    /// Dead-letter them with a reason (the default: nothing to configure, nothing lost).
    #[default]
    DeadLetter,
    /// Write the pseudonymized instance to the quarantine location for review and count it as
    /// an intentional drop (`burned_in_quarantine`).
    Quarantine,
}

/// The burned-in text policy.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BurnedInPolicy {
    /// `dead_letter` (default) or `quarantine`.
    #[serde(default)]
    pub action: BurnedInAction,
    /// Bucket for quarantined instances (required with `quarantine`). Keep it on the trusted
    /// side: the pixels may show patient names.
    #[serde(default)]
    pub quarantine_bucket: Option<String>,
    /// Key prefix for quarantined instances.
    #[serde(default = "default_quarantine_prefix")]
    pub quarantine_prefix: String,
    /// Which instances without BurnedInAnnotation are suspected (modalities, SOP classes).
    #[serde(default, flatten)]
    pub rules: BurnedInRules,
}

fn default_quarantine_prefix() -> String {
    "quarantine/".into()
}

/// Configuration of the `pseudonymize` operator.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymizeConfig {
    /// Path of the key file (`radstream keygen` writes one). One of `key_file` and `key_env`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Environment variable that holds the key file's text.
    #[serde(default)]
    pub key_env: Option<String>,
    /// Profile options (all off: the Basic Profile alone).
    #[serde(default)]
    pub profile: ProfileOptions,
    /// Burned-in text policy.
    #[serde(default)]
    pub burned_in: BurnedInPolicy,
    /// Compacted topic on the trusted side that receives one re-identification link per
    /// instance (key: pseudonymized SOPInstanceUID). Without it results cannot be re-linked.
    #[serde(default)]
    pub link_topic: Option<String>,
    /// Topic that receives one audit event per instance.
    #[serde(default)]
    pub audit_topic: Option<String>,
}

impl PseudonymizeConfig {
    /// Checks the configuration without reading the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.key_file, &self.key_env) {
            (None, None) => {
                return Err(ConfigError::new("key_file", "set key_file or key_env (see `radstream keygen`)"))
            }
            (Some(_), Some(_)) => return Err(ConfigError::new("key_env", "set key_file or key_env, not both")),
            _ => {}
        }
        self.profile.validate().map_err(|p| {
            let (key, problem) = p.split_once(": ").unwrap_or(("", &p));
            ConfigError::new(key, problem).within("profile")
        })?;
        if self.burned_in.action == BurnedInAction::Quarantine
            && self.burned_in.quarantine_bucket.as_deref().is_none_or(str::is_empty)
        {
            return Err(ConfigError::new("burned_in.quarantine_bucket", "action = \"quarantine\" needs a bucket"));
        }
        for (key, topic) in [("link_topic", &self.link_topic), ("audit_topic", &self.audit_topic)] {
            if topic.as_deref().is_some_and(str::is_empty) {
                return Err(ConfigError::new(key, "must not be empty (leave it out instead)"));
            }
        }
        Ok(())
    }

    /// Reads the key and builds the operator.
    pub fn build(&self, ctx: &BuildContext) -> Result<Pseudonymize, ConfigError> {
        self.validate()?;
        let key = match (&self.key_file, &self.key_env) {
            (Some(path), _) => DeidKey::from_file(path).map_err(|e| ConfigError::new("key_file", e.to_string()))?,
            (_, Some(var)) => DeidKey::from_env(var).map_err(|e| ConfigError::new("key_env", e.to_string()))?,
            _ => unreachable!("validated"),
        };
        let needs_topics = self.link_topic.is_some() || self.audit_topic.is_some();
        let topics = ctx.topics.clone();
        if needs_topics && topics.is_none() {
            return Err(ConfigError::new("link_topic", "link and audit topics need the pipeline's Kafka producer"));
        }
        let objects = ctx.objects.clone();
        if self.burned_in.action == BurnedInAction::Quarantine && objects.is_none() {
            return Err(ConfigError::new("burned_in.action", "quarantine needs the pipeline's object store"));
        }
        Ok(Pseudonymize {
            deid: Arc::new(Deidentifier::new(key, self.profile.clone())),
            policy: self.burned_in.clone(),
            link_topic: self.link_topic.clone(),
            audit_topic: self.audit_topic.clone(),
            topics,
            objects,
        })
    }
}

/// The running operator.
pub struct Pseudonymize {
    deid: Arc<Deidentifier>,
    policy: BurnedInPolicy,
    link_topic: Option<String>,
    audit_topic: Option<String>,
    topics: Option<Arc<dyn TopicWriter>>,
    objects: Option<Arc<dyn ObjectWriter>>,
}

/// What the CPU step decided for one envelope.
enum Step {
    Forward(Box<Deidentified>),
    Burned(Box<Deidentified>, BurnedIn),
    Unreadable(DeidError),
}

fn service_error(class: ErrorClass, e: ServiceError) -> OperatorError {
    let reason = format!("pseudonymize: writing to {} failed: {}", e.destination, e.message);
    if e.retryable {
        OperatorError::retry(class, reason, None)
    } else {
        OperatorError::dead_letter(class, reason)
    }
}

impl Pseudonymize {
    fn audit(
        &self,
        envelope: &Envelope,
        outcome: AuditOutcome,
        class: Option<ErrorClass>,
        out: Option<&Deidentified>,
    ) -> AuditEvent {
        AuditEvent {
            v: 1,
            time_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0),
            operator: "pseudonymize".into(),
            operator_version: env!("CARGO_PKG_VERSION").into(),
            profile: profile_name(),
            options: self.deid.options().enabled().iter().map(|o| o.name().to_string()).collect(),
            key_id: self.deid.key_id().to_string(),
            outcome,
            error_class: class,
            object_key: envelope.object_key(),
            pseudonymized_study_instance_uid: out.map(|o| o.study_instance_uid.clone()),
            pseudonymized_sop_instance_uid: out.map(|o| o.sop_instance_uid.clone()),
        }
    }

    async fn send_audit(&self, event: &AuditEvent) -> Result<(), OperatorError> {
        let (Some(topic), Some(topics)) = (&self.audit_topic, &self.topics) else { return Ok(()) };
        let key = event.pseudonymized_study_instance_uid.clone().unwrap_or_else(|| event.object_key.clone());
        let value = serde_json::to_vec(event).expect("audit events serialize");
        topics.send(topic, &key, value).await.map_err(|e| service_error(ErrorClass::OutputTopic, e))
    }

    async fn finish(&self, mut envelope: Envelope, step: Step) -> Processed {
        let result = match step {
            Step::Unreadable(e) => {
                let error = OperatorError::dead_letter(
                    ErrorClass::MalformedDicom,
                    format!("pseudonymize: {} is {e}; fix or re-export the object and replay", envelope.object_key()),
                );
                let audit = self.audit(&envelope, AuditOutcome::Rejected, Some(ErrorClass::MalformedDicom), None);
                self.send_audit(&audit).await.map(|_| Outcome::Fail(error))
            }
            Step::Burned(out, burned) => self.burned(&envelope, &out, burned).await,
            Step::Forward(out) => self.forward(&mut envelope, &out).await,
        };
        Processed { outcome: result.unwrap_or_else(Outcome::Fail), envelope }
    }

    async fn burned(
        &self,
        envelope: &Envelope,
        out: &Deidentified,
        burned: BurnedIn,
    ) -> Result<Outcome, OperatorError> {
        let why = match burned {
            BurnedIn::Yes => "BurnedInAnnotation is YES".to_string(),
            _ => format!(
                "BurnedInAnnotation is absent on {} (SOP class {}), which commonly carries burned-in text",
                out.modality.as_deref().map(|m| format!("modality {m}")).unwrap_or_else(|| "an instance".into()),
                out.sop_class_uid
            ),
        };
        match self.policy.action {
            BurnedInAction::DeadLetter => {
                let audit = self.audit(envelope, AuditOutcome::Rejected, Some(ErrorClass::BurnedInText), Some(out));
                self.send_audit(&audit).await?;
                Ok(Outcome::Fail(OperatorError::dead_letter(
                    ErrorClass::BurnedInText,
                    format!(
                        "pseudonymize: {}: {why}, so its pixels may show patient data that header \
                         de-identification cannot remove; review it, or set burned_in.action = \"quarantine\"",
                        envelope.object_key()
                    ),
                )))
            }
            BurnedInAction::Quarantine => {
                let bucket = self.policy.quarantine_bucket.as_deref().expect("validated");
                let key = format!(
                    "{}{}/{}/{}.dcm",
                    self.policy.quarantine_prefix,
                    out.study_instance_uid,
                    out.series_instance_uid,
                    out.sop_instance_uid
                );
                let objects = self.objects.as_ref().expect("checked at build");
                objects
                    .put(bucket, &key, out.parts.clone())
                    .await
                    .map_err(|e| service_error(ErrorClass::ObjectStore, e))?;
                let audit = self.audit(envelope, AuditOutcome::Quarantined, Some(ErrorClass::BurnedInText), Some(out));
                self.send_audit(&audit).await?;
                tracing::info!(object = %envelope.object_key(), quarantined = %format!("{bucket}/{key}"), reason = %why, "instance quarantined");
                Ok(Outcome::Drop { rule: "burned_in_quarantine".into() })
            }
        }
    }

    async fn forward(&self, envelope: &mut Envelope, out: &Deidentified) -> Result<Outcome, OperatorError> {
        if let (Some(topic), Some(topics)) = (&self.link_topic, &self.topics) {
            let value = serde_json::to_vec(&out.links).expect("links serialize");
            topics
                .send(topic, &out.sop_instance_uid, value)
                .await
                .map_err(|e| service_error(ErrorClass::OutputTopic, e))?;
        }
        let audit = self.audit(envelope, AuditOutcome::Pseudonymized, None, Some(out));
        self.send_audit(&audit).await?;
        let object = out.to_bytes();
        envelope.replace_with_rewrite("pseudonymize", object)?;
        Ok(Outcome::Forward)
    }
}

/// De-identifies one object and classifies it: what `radstream deid` and the operator share.
pub fn pseudonymize_object(
    deid: &Deidentifier,
    rules: &BurnedInRules,
    object: &Bytes,
) -> Result<(Deidentified, BurnedIn), DeidError> {
    let out = deid.deidentify(object)?;
    let burned = rules.assess(out.burned_in_annotation, out.modality.as_deref(), &out.sop_class_uid);
    Ok((out, burned))
}

#[async_trait]
impl Operator for Pseudonymize {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        let deid = self.deid.clone();
        let rules = self.policy.rules.clone();
        let objects: Vec<Bytes> = batch.iter().map(|e| e.object().clone()).collect();
        // The rewrite is CPU work: off the async executor.
        let steps = tokio::task::spawn_blocking(move || {
            objects
                .iter()
                .map(|o| match pseudonymize_object(&deid, &rules, o) {
                    Ok((out, BurnedIn::No)) => Step::Forward(Box::new(out)),
                    Ok((out, burned)) => Step::Burned(Box::new(out), burned),
                    Err(e) => Step::Unreadable(e),
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(steps) = steps else {
            // The panic's message is not read: it may quote the header being rewritten.
            let reason = "the de-identification task panicked on this batch; this is a bug in radstream: report it \
                          with the worker's log, then replay the dead letter once it is fixed";
            let fail = || Outcome::Fail(OperatorError::dead_letter(ErrorClass::Internal, reason));
            return batch.into_iter().map(|envelope| Processed { envelope, outcome: fail() }).collect();
        };
        let this = &*self;
        futures::future::join_all(batch.into_iter().zip(steps).map(|(envelope, step)| this.finish(envelope, step)))
            .await
    }
}

impl crate::contract::OperatorSpec for PseudonymizeConfig {
    const KIND: &'static str = "pseudonymize";

    fn validate(&self) -> Result<(), crate::contract::ConfigError> {
        PseudonymizeConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::contract::BuildContext,
    ) -> Result<Box<dyn crate::contract::Operator>, crate::contract::ConfigError> {
        Ok(Box::new(PseudonymizeConfig::build(self, ctx)?))
    }

    fn example() -> &'static str {
        r#"
key_env = "RADSTREAM_TEST_DEID_KEY"
link_topic = "links"
audit_topic = "audit"
"#
    }
}

#[cfg(test)]
mod tests;

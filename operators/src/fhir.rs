//! `fhir`: the EHR sink. For each instance's model result it builds a FHIR R4 transaction
//! Bundle (ImagingStudy, Device, an Observation per finding, a DiagnosticReport that names the
//! structured report the `results` step made) and delivers it to each configured destination,
//! in this order:
//!
//! * `topic`: a Kafka topic, keyed by StudyInstanceUID, for the integration engine that feeds
//!   the EHR;
//! * `server`: a FHIR server's base URL, POSTed as a transaction with retries (a refusal is
//!   dead-lettered as `fhir_rejected`, an outage past the retry deadline as
//!   `fhir_unavailable`);
//! * `dir`: a folder, one `<StudyInstanceUID>/bundle-<hash>.json` per bundle (the demo; a
//!   debugging aid).
//!
//! The instance is delivered once every destination has the bundle. Bundles are built from
//! the instance's header as it reaches the sink: after `relink` that is the original study and
//! patient, so the EHR sees the patient it knows. The patient is referenced by identifier
//! (PatientID under `patient_identifier_system`): the bundle never creates a Patient.
//!
//! A bundle is conditional throughout (PUT on identifiers, `ifNoneExist`), so sending it again
//! updates in place. The instances of a series share one bundle, sent once while the sink
//! remembers it ([`RecentSet`]). The distinct bundles of a batch are delivered concurrently, at
//! most `concurrent_bundles` at a time, so a slow server costs a batch about one request's
//! time, not one per bundle.
//!
//! The StudyInstanceUID keys the topic and names the `dir` folder: an instance whose header
//! holds no well-formed UID there (PS3.5 9.1) is dead-lettered, so no header can name a path
//! outside `dir`.

pub mod post;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use dicom_dictionary_std::tags;
use futures::StreamExt as _;
use radstream_schemas::ErrorClass;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use self::post::{FhirPostConfig, FhirPoster};
use crate::contract::services::TopicWriter;
use crate::contract::Code;
use crate::dicom::uids::is_uid;
use crate::recent::RecentSet;
use crate::results::{build_fhir_bundle, InstanceRef, PatientRef, SourceResult, StudyResults};
use crate::{element_text, BuildContext, ConfigError, Envelope, Operator, OperatorError, Outcome, Processed};

/// The identifier system of PatientID when the config names none.
pub const DEFAULT_PATIENT_IDENTIFIER_SYSTEM: &str = "urn:radstream:dicom:patient-id";

/// Bundles whose delivery the sink remembers.
const DELIVERED_KEPT: usize = 4096;

/// Most bundles of a batch in delivery at once, by default: the runtime's default batch of 16
/// envelopes costs one request's time against a slow server, not 16.
const DEFAULT_CONCURRENT_BUNDLES: usize = 16;

/// Upper limit of `concurrent_bundles`: past it a batch only loads the server.
const MAX_CONCURRENT_BUNDLES: usize = 64;

/// Configuration of the `fhir` operator.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FhirConfig {
    /// Kafka topic for the bundles (it must exist), keyed by StudyInstanceUID.
    #[serde(default)]
    pub topic: Option<String>,
    /// FHIR server to POST each bundle to as a transaction.
    #[serde(default)]
    pub server: Option<FhirPostConfig>,
    /// Folder to write each bundle to as JSON.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The identifier system (a URI) of the DICOM PatientID, as the EHR knows it (for example
    /// the hospital's MRN system).
    #[serde(default = "default_patient_system")]
    pub patient_identifier_system: String,
    /// The body site the model looks at, put on every Observation.
    #[serde(default)]
    pub body_site: Option<Code>,
    /// Most distinct bundles of one batch delivered at once (1 to 64): each waits for every
    /// destination, so with a slow server a batch takes about one request's time per this
    /// many bundles.
    #[serde(default = "default_concurrent_bundles")]
    pub concurrent_bundles: usize,
}

fn default_patient_system() -> String {
    DEFAULT_PATIENT_IDENTIFIER_SYSTEM.to_string()
}

fn default_concurrent_bundles() -> usize {
    DEFAULT_CONCURRENT_BUNDLES
}

impl FhirConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.topic.is_none() && self.server.is_none() && self.dir.is_none() {
            return Err(ConfigError::new("topic", "name at least one destination: `topic`, `server` or `dir`"));
        }
        if self.topic.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ConfigError::new("topic", "must not be empty"));
        }
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(ConfigError::new("dir", "must not be empty"));
        }
        let system = &self.patient_identifier_system;
        if system.is_empty() || system.contains(char::is_whitespace) || !system.contains(':') {
            return Err(ConfigError::new("patient_identifier_system", "must be a URI, for example urn:oid:1.2.3"));
        }
        if !(1..=MAX_CONCURRENT_BUNDLES).contains(&self.concurrent_bundles) {
            return Err(ConfigError::new(
                "concurrent_bundles",
                format!("must be between 1 and {MAX_CONCURRENT_BUNDLES} (bundles of a batch delivered at once)"),
            ));
        }
        if let Some(server) = &self.server {
            server.validate().map_err(|e| e.within("server"))?;
        }
        Ok(())
    }

    /// Builds the sink.
    pub fn build(&self, ctx: &BuildContext) -> Result<FhirSink, ConfigError> {
        self.validate()?;
        let topics = match &self.topic {
            None => None,
            Some(_) => Some(ctx.topics.clone().ok_or_else(|| {
                ConfigError::new("topic", "a bundle topic needs a Kafka producer, and none is available here")
            })?),
        };
        let server = match &self.server {
            None => None,
            Some(server) => Some(server.build(Arc::clone(&ctx.observer)).map_err(|e| e.within("server"))?),
        };
        Ok(FhirSink { config: self.clone(), topics, server, delivered: RecentSet::new(DELIVERED_KEPT) })
    }
}

/// The EHR sink.
pub struct FhirSink {
    config: FhirConfig,
    topics: Option<Arc<dyn TopicWriter>>,
    server: Option<FhirPoster>,
    delivered: RecentSet,
}

impl std::fmt::Debug for FhirSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirSink")
            .field("topic", &self.config.topic)
            .field("server", &self.server.is_some())
            .field("dir", &self.config.dir)
            .finish_non_exhaustive()
    }
}

/// A built bundle and what names it.
struct Built {
    study: String,
    json: Vec<u8>,
    /// SHA-256 of the JSON, hex: names the bundle in logs, files and the delivered set.
    digest: String,
}

impl FhirSink {
    /// The bundle of the envelope's result, from its header as it is now.
    fn bundle(&self, envelope: &Envelope) -> Result<Built, OperatorError> {
        let key = envelope.object_key();
        let fail = |class, what: String| OperatorError::dead_letter(class, format!("fhir: {key}: {what}"));
        let result = envelope.results.as_deref().ok_or_else(|| {
            fail(
                ErrorClass::Config,
                "no model result reached the fhir sink; the chain needs an infer operator for the instance's model \
                 before it"
                    .into(),
            )
        })?;
        let header = envelope.header();
        let study = element_text(header, tags::STUDY_INSTANCE_UID)
            .ok_or_else(|| fail(ErrorClass::MalformedDicom, "the header has no StudyInstanceUID".into()))?;
        if !is_uid(&study) {
            // It keys the topic and names the `dir` folder: `../` must not get that far. The
            // value is not repeated; it is not a UID and may be anything.
            return Err(fail(
                ErrorClass::MalformedDicom,
                "the header's StudyInstanceUID is not a well-formed UID (PS3.5 9.1: at most 64 characters, digits \
                 in dot-separated components), so no bundle is made; fix the sender or the operator that rewrote \
                 the object"
                    .into(),
            ));
        }
        let series = element_text(header, tags::SERIES_INSTANCE_UID)
            .ok_or_else(|| fail(ErrorClass::MalformedDicom, "the header has no SeriesInstanceUID".into()))?;
        let patient_id = element_text(header, tags::PATIENT_ID)
            .ok_or_else(|| fail(ErrorClass::MalformedDicom, "the header has no PatientID to reference".into()))?;
        let modality = element_text(header, tags::MODALITY);
        let instance = InstanceRef {
            sop_class_uid: element_text(header, tags::SOP_CLASS_UID)
                .unwrap_or_else(|| envelope.event.sop_class_uid.clone()),
            sop_instance_uid: element_text(header, tags::SOP_INSTANCE_UID)
                .unwrap_or_else(|| envelope.event.sop_instance_uid.clone()),
        };
        let sr = envelope.outputs.as_deref().and_then(|o| o.sr_sop_instance_uid());
        let source = SourceResult {
            series_instance_uid: &series,
            modality: modality.as_deref(),
            instance: result.series.is_none().then_some(&instance),
            result,
            sr_sop_instance_uid: sr,
        };
        let sources = [source];
        let study_results = StudyResults {
            study_instance_uid: &study,
            patient: PatientRef::Identifier { system: &self.config.patient_identifier_system, value: &patient_id },
            model: &result.model,
            results: &sources,
            body_site: self.config.body_site.as_ref(),
            time_ms: crate::contract::envelope::content_time_ms(envelope, result),
        };
        let bundle = build_fhir_bundle(&study_results).map_err(|e| fail(ErrorClass::Internal, e.to_string()))?;
        let json = bundle.to_json();
        let digest = hex(&Sha256::digest(&json));
        Ok(Built { study, json, digest })
    }

    /// Sends one bundle to every destination, named after the envelope it was made for; the
    /// bundle's digest with the result.
    async fn send_named(&self, built: &Built, envelope: &Envelope) -> (String, Result<(), OperatorError>) {
        let name = format!("bundle {} of {}", &built.digest[..16], envelope.object_key());
        (built.digest.clone(), self.send(built, &name, envelope).await)
    }

    /// Sends one bundle to every destination; `name` names it in logs and errors.
    async fn send(&self, built: &Built, name: &str, envelope: &Envelope) -> Result<(), OperatorError> {
        if let (Some(topic), Some(topics)) = (&self.config.topic, &self.topics) {
            topics.send(topic, &built.study, built.json.clone()).await.map_err(|e| {
                let reason = format!("fhir: sending {name} to {topic} failed: {e}");
                if e.retryable {
                    OperatorError::retry(ErrorClass::OutputTopic, reason, None)
                } else {
                    OperatorError::dead_letter(ErrorClass::OutputTopic, reason)
                }
            })?;
        }
        if let Some(server) = &self.server {
            let outcome = server.post(&built.json, name).await?;
            tracing::info!(
                object = %envelope.object_key(),
                sop_instance_uid = %envelope.event.sop_instance_uid,
                bundle = &built.digest[..16],
                entries = outcome.entries.len(),
                attempts = outcome.attempts,
                "fhir: the server took the bundle"
            );
        }
        if let Some(dir) = &self.config.dir {
            // `bundle` checked the study to be a UID: one path segment of digits and dots.
            let folder = dir.join(&built.study);
            let path = folder.join(format!("bundle-{}.json", &built.digest[..16]));
            let write = async {
                tokio::fs::create_dir_all(&folder).await?;
                tokio::fs::write(&path, &built.json).await
            };
            write.await.map_err(|e| {
                OperatorError::retry(
                    ErrorClass::OutputTopic,
                    format!("fhir: writing {} failed: {e}", path.display()),
                    None,
                )
            })?;
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl Operator for FhirSink {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        let this = &*self;
        let built: Vec<Result<Built, OperatorError>> = batch.iter().map(|e| this.bundle(e)).collect();
        // Each distinct bundle not yet delivered is sent once, for the first envelope that
        // carries it; the instances of a series share the outcome.
        let mut pending: Vec<(&Built, &Envelope)> = Vec::new();
        for (b, envelope) in built.iter().zip(&batch) {
            if let Ok(b) = b {
                if !this.delivered.contains(&b.digest) && !pending.iter().any(|(p, _)| p.digest == b.digest) {
                    pending.push((b, envelope));
                }
            }
        }
        let mut sends = Vec::with_capacity(pending.len());
        for (b, envelope) in pending {
            sends.push(this.send_named(b, envelope));
        }
        let sent: HashMap<String, Result<(), OperatorError>> =
            futures::stream::iter(sends).buffer_unordered(this.config.concurrent_bundles.max(1)).collect().await;
        for (digest, result) in &sent {
            if result.is_ok() {
                this.delivered.insert(digest);
            }
        }
        batch
            .into_iter()
            .zip(built)
            .map(|(envelope, b)| {
                let result = b.and_then(|b| sent.get(b.digest.as_str()).cloned().unwrap_or(Ok(())));
                let outcome = match result {
                    Ok(()) => Outcome::Forward,
                    Err(e) => Outcome::Fail(e),
                };
                Processed { envelope, outcome }
            })
            .collect()
    }

    fn is_sink(&self) -> bool {
        true
    }
}

impl crate::contract::OperatorSpec for FhirConfig {
    const KIND: &'static str = "fhir";
    const IS_SINK: bool = true;

    fn validate(&self) -> Result<(), crate::contract::ConfigError> {
        FhirConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::contract::BuildContext,
    ) -> Result<Box<dyn crate::contract::Operator>, crate::contract::ConfigError> {
        Ok(Box::new(FhirConfig::build(self, ctx)?))
    }

    fn readiness(&self) -> Option<Arc<dyn crate::contract::ReadinessProbe>> {
        let poster = self.server.as_ref()?.build(Arc::new(crate::contract::NoopRecorder)).ok()?;
        Some(Arc::new(FhirReadiness(poster)))
    }

    fn example() -> &'static str {
        r#"
[server]
url = "http://127.0.0.1:9/fhir"
max_attempts = 1

[server.auth]
kind = "bearer"
token_env = "RADSTREAM_TEST_SECRET"
"#
    }
}

/// The FHIR sink's readiness probe, when it posts to a server: `GET {url}/metadata`
/// ([`FhirPoster::probe`]).
struct FhirReadiness(FhirPoster);

#[async_trait]
impl crate::contract::ReadinessProbe for FhirReadiness {
    fn name(&self) -> &str {
        "fhir (FHIR server)"
    }

    async fn probe(&self) -> Result<(), String> {
        self.0.probe().await
    }
}

#[cfg(test)]
mod tests;

//! `relink`: the trusted side's half of pseudonymization. Results computed on pseudonymized
//! instances (anywhere, for example on a GPU pipeline in another network) come back carrying
//! pseudonymized UIDs and patient; this operator restores the original StudyInstanceUID,
//! every referenced UID, the patient and the study attributes from the links that
//! `pseudonymize` wrote to the compacted link topic, so the PACS files the result under the
//! original study.
//!
//! The links are read from the topic into memory at start and followed as they are written;
//! a result whose study is not known yet waits for the reader to catch up before it is
//! dead-lettered as `unknown_link`. Memory: about 250 bytes per pseudonymized UID.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dicom_core::VR;
use radstream_schemas::{DecodeError, ErrorClass};
use serde::{Deserialize, Serialize};

use crate::contract::links::{LinkRecord, LinkedAttribute};
use crate::contract::services::{TableFollower, TableSubscriber};
use crate::contract::{BuildContext, ConfigError};
use crate::dicom::editor::{find, put, trim, Element, Part10, Value};
use crate::{Envelope, Operator, OperatorError, Outcome, Processed};

const STUDY_INSTANCE_UID: u32 = 0x0020_000D;
/// Attributes that say the object is de-identified; false once re-linked.
const DEIDENTIFICATION_MARKS: [u32; 4] = [0x0012_0062, 0x0012_0063, 0x0012_0064, 0x0028_0303];

/// Configuration of the `relink` operator.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelinkConfig {
    /// The compacted link topic that `pseudonymize` writes (the same cluster, trusted side).
    pub link_topic: String,
    /// How long a result for an unknown study waits for the link reader to catch up before
    /// it is retried.
    #[serde(default = "default_catch_up")]
    pub catch_up_timeout_secs: u64,
}

fn default_catch_up() -> u64 {
    30
}

impl RelinkConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.link_topic.is_empty() {
            return Err(ConfigError::new("link_topic", "must name the link topic that pseudonymize writes"));
        }
        if self.catch_up_timeout_secs == 0 || self.catch_up_timeout_secs > 600 {
            return Err(ConfigError::new("catch_up_timeout_secs", "must be between 1 and 600"));
        }
        Ok(())
    }

    /// Starts following the link topic.
    pub fn build(&self, ctx: &BuildContext) -> Result<Relink, ConfigError> {
        self.validate()?;
        let tables = ctx
            .tables
            .as_ref()
            .ok_or_else(|| ConfigError::new("link_topic", "relink needs the pipeline's Kafka connection"))?;
        let index = Arc::new(LinkIndex::default());
        let follower = tables
            .follow(&self.link_topic, index.clone())
            .map_err(|e| ConfigError::new("link_topic", e.to_string()))?;
        Ok(Relink {
            index,
            follower,
            timeout: Duration::from_secs(self.catch_up_timeout_secs),
            topic: self.link_topic.clone(),
        })
    }
}

/// The links in memory: every pseudonymized UID with its original and the pseudonymized
/// studies whose links carry it, and the study attributes by pseudonymized study.
///
/// A UID is restored only on an object of a study whose link carries it: a result of study A
/// that carries a pseudonym of study B would otherwise get B's original UIDs and be filed in the
/// clinical PACS under A.
#[derive(Debug, Default)]
pub struct LinkIndex {
    inner: Mutex<Links>,
}

#[derive(Debug, Default)]
struct Links {
    uids: HashMap<String, UidLink>,
    studies: HashMap<String, Arc<Vec<LinkedAttribute>>>,
    unreadable: u64,
}

/// One pseudonymized UID: its original and the pseudonymized studies it was linked under
/// (nearly always one; the same original UID in two studies has the same pseudonym).
#[derive(Debug)]
struct UidLink {
    original: String,
    studies: Vec<Arc<str>>,
}

/// What restoring one UID value found.
enum Mapped<'a> {
    /// A UID of the object's own study: its original.
    Original(&'a str),
    /// A UID no link carries (a SOP Class, a result's own new UID): kept.
    Unlinked,
    /// A pseudonym of another study's link: the object is refused.
    OtherStudy,
}

impl Links {
    fn map(&self, study: &str, uid: &str) -> Mapped<'_> {
        match self.uids.get(uid) {
            Some(link) if link.studies.iter().any(|s| &**s == study) => Mapped::Original(&link.original),
            Some(_) => Mapped::OtherStudy,
            None => Mapped::Unlinked,
        }
    }
}

impl LinkIndex {
    /// Adds one record.
    pub fn insert(&self, record: LinkRecord) {
        let mut links = self.inner.lock().expect("link index lock");
        let study: Arc<str> = Arc::from(record.study.as_str());
        for (pseudo, original) in record.uids {
            let link = links
                .uids
                .entry(pseudo)
                .or_insert_with(|| UidLink { original: String::new(), studies: Vec::with_capacity(1) });
            link.original = original;
            if !link.studies.contains(&study) {
                link.studies.push(study.clone());
            }
        }
        links.studies.insert(record.study, Arc::new(record.attributes));
    }

    fn study(&self, pseudo: &str) -> Option<Arc<Vec<LinkedAttribute>>> {
        self.inner.lock().expect("link index lock").studies.get(pseudo).cloned()
    }
}

/// Why a link record could not be read, without serde_json's message: it quotes the value it
/// choked on, and a link record holds the patient's name, ID and birth date.
fn unreadable_record(error: &serde_json::Error) -> DecodeError {
    radstream_schemas::wire::json_error("link record", error)
}

impl TableSubscriber for LinkIndex {
    fn apply(&self, _key: &[u8], value: Option<&[u8]>) {
        // Tombstones are ignored: a link is immutable once written (pseudonyms are
        // deterministic), and results may still arrive for it.
        let Some(value) = value else { return };
        match serde_json::from_slice::<LinkRecord>(value) {
            Ok(record) => self.insert(record),
            Err(e) => {
                let error = unreadable_record(&e);
                let mut links = self.inner.lock().expect("link index lock");
                links.unreadable += 1;
                tracing::warn!(
                    %error,
                    unreadable = links.unreadable,
                    "skipping an unreadable link record: results of its instance cannot be re-linked; \
                     check what writes the link topic besides `pseudonymize`"
                );
            }
        }
    }
}

/// The running operator.
pub struct Relink {
    index: Arc<LinkIndex>,
    follower: Arc<dyn TableFollower>,
    timeout: Duration,
    topic: String,
}

impl Relink {
    /// An operator over an index that the caller fills (tests, tools).
    pub fn with_index(index: Arc<LinkIndex>, follower: Arc<dyn TableFollower>, topic: &str) -> Self {
        Self { index, follower, timeout: Duration::from_secs(5), topic: topic.to_string() }
    }

    /// Re-links the instance and, when the `results` step ran before, each of its result
    /// objects.
    async fn relink_one(&self, envelope: &mut Envelope) -> Result<(), OperatorError> {
        let key = envelope.object_key();
        let bytes = self.relink_object(envelope.object(), &key).await?;
        envelope.replace_with_rewrite("relink", bytes)?;
        if let Some(outputs) = &envelope.outputs {
            let mut relinked = (**outputs).clone();
            for object in &mut relinked.objects {
                let name = format!("{key} ({} {})", object.kind.as_str(), object.sop_instance_uid);
                object.bytes = self.relink_object(&object.bytes, &name).await?;
            }
            envelope.outputs = Some(Arc::new(relinked));
        }
        Ok(())
    }

    /// One Part-10 object with its pseudonymized UIDs and study replaced by the originals.
    async fn relink_object(&self, bytes: &Bytes, key: &str) -> Result<Bytes, OperatorError> {
        let malformed = |e: String| {
            OperatorError::dead_letter(
                ErrorClass::MalformedDicom,
                format!("relink: {key} is not a readable DICOM object: {e}"),
            )
        };
        let mut object = Part10::parse(bytes).map_err(|e| malformed(e.to_string()))?;
        let study = find(&object.dataset, STUDY_INSTANCE_UID)
            .map(|e| String::from_utf8_lossy(trim(e.bytes(&object.source))).into_owned())
            .ok_or_else(|| malformed("it has no StudyInstanceUID".into()))?;
        let attributes = match self.index.study(&study) {
            Some(a) => a,
            None => {
                self.follower.catch_up(self.timeout).await.map_err(|e| {
                    OperatorError::retry(
                        ErrorClass::UnknownLink,
                        format!("relink: reading {} failed: {e}", self.topic),
                        None,
                    )
                })?;
                self.index.study(&study).ok_or_else(|| {
                    OperatorError::dead_letter(
                        ErrorClass::UnknownLink,
                        format!(
                            "relink: no link for pseudonymized study {study} in {}: the result was not computed on \
                             data this edge pseudonymized (or under another link topic); check the results' origin",
                            self.topic
                        ),
                    )
                })?
            }
        };
        {
            let links = self.index.inner.lock().expect("link index lock");
            let source = object.source.clone();
            map_uids(&mut object.meta, &source, &links, &study)
                .and_then(|()| map_uids(&mut object.dataset, &source, &links, &study))
                .map_err(|foreign| {
                    OperatorError::dead_letter(
                        ErrorClass::UnknownLink,
                        format!(
                            "relink: {key} of pseudonymized study {study} carries {uid} in ({group:04X},{element:04X}), \
                             a pseudonym linked to another study: relink restores only the UIDs of the object's own \
                             study, and refuses the object rather than file another study's identifiers under this \
                             one; check the producer of the result (it mixed studies)",
                            uid = foreign.uid,
                            group = foreign.tag >> 16,
                            element = foreign.tag & 0xFFFF,
                        ),
                    )
                })?;
        }
        for tag in DEIDENTIFICATION_MARKS {
            object.dataset.retain(|e| e.tag != tag);
        }
        for a in attributes.iter() {
            if let (Some(tag), Some(vr), Some(value)) = (a.tag_number(), a.vr(), a.bytes()) {
                put(&mut object.dataset, Element::new(tag, vr, value));
            }
        }
        let parts = object.write();
        let mut bytes = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
        for p in &parts {
            bytes.extend_from_slice(p);
        }
        Ok(Bytes::from(bytes))
    }
}

/// A UID value of another study's link, found where the object's own study was expected.
struct ForeignUid {
    tag: u32,
    uid: String,
}

/// Replaces every UID value (in any sequence) that the links of `study` carry by its original.
/// A UID that only another study's links carry is an error; one no link carries is kept.
fn map_uids(elements: &mut [Element], source: &[u8], links: &Links, study: &str) -> Result<(), ForeignUid> {
    for e in elements.iter_mut() {
        if let Some(items) = e.items_mut() {
            for item in items.iter_mut() {
                map_uids(item, source, links, study)?;
            }
            continue;
        }
        if e.vr != VR::UI || matches!(e.value, Value::Encapsulated(_)) {
            continue;
        }
        let value = trim(e.bytes(source));
        let mut changed = false;
        let mut out = Vec::with_capacity(value.len() + 16);
        for (i, uid) in value.split(|b| *b == b'\\').enumerate() {
            if i > 0 {
                out.push(b'\\');
            }
            let uid = trim(uid);
            let mapped = std::str::from_utf8(uid).map_or(Mapped::Unlinked, |u| links.map(study, u));
            match mapped {
                Mapped::Original(original) => {
                    out.extend_from_slice(original.as_bytes());
                    changed = true;
                }
                Mapped::Unlinked => out.extend_from_slice(uid),
                Mapped::OtherStudy => {
                    return Err(ForeignUid { tag: e.tag, uid: String::from_utf8_lossy(uid).into_owned() });
                }
            }
        }
        if changed {
            if out.len() % 2 == 1 {
                out.push(0);
            }
            e.set(out);
        }
    }
    Ok(())
}

#[async_trait]
impl Operator for Relink {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        let mut done = Vec::with_capacity(batch.len());
        for mut envelope in batch {
            let outcome = match self.relink_one(&mut envelope).await {
                Ok(()) => Outcome::Forward,
                Err(e) => Outcome::Fail(e),
            };
            done.push(Processed { envelope, outcome });
        }
        done
    }
}

impl crate::contract::OperatorSpec for RelinkConfig {
    const KIND: &'static str = "relink";

    fn validate(&self) -> Result<(), crate::contract::ConfigError> {
        RelinkConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::contract::BuildContext,
    ) -> Result<Box<dyn crate::contract::Operator>, crate::contract::ConfigError> {
        Ok(Box::new(RelinkConfig::build(self, ctx)?))
    }

    fn example() -> &'static str {
        r#"
link_topic = "links"
"#
    }
}

#[cfg(test)]
mod tests;

//! Re-identification links: what the trusted side keeps so results computed on pseudonymized
//! data can be re-linked to the original study, series, instances and patient. The record of the
//! link topic, written by `pseudonymize` and read by `relink`: in the contract, so that neither
//! operator imports the other.

use base64::Engine as _;
use dicom_core::VR;
use serde::{Deserialize, Serialize};

/// One original attribute value, as the source encoded it (in its character set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedAttribute {
    /// The tag as eight hex digits, `ggggeeee`.
    pub tag: String,
    /// The VR.
    pub vr: String,
    /// The value bytes, base64.
    pub value: String,
}

impl LinkedAttribute {
    /// Captures an attribute.
    pub fn new(tag: u32, vr: VR, value: &[u8]) -> Self {
        Self {
            tag: format!("{tag:08X}"),
            vr: vr.to_string().to_string(),
            value: base64::engine::general_purpose::STANDARD.encode(value),
        }
    }

    /// The tag as a number.
    pub fn tag_number(&self) -> Option<u32> {
        u32::from_str_radix(&self.tag, 16).ok()
    }

    /// The VR, when valid.
    pub fn vr(&self) -> Option<VR> {
        self.vr.parse().ok()
    }

    /// The value bytes.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD.decode(&self.value).ok()
    }
}

/// The links of one de-identified instance. Contains PHI: it must only ever be written where
/// the original data may be (the trusted side's link topic).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// Record format version.
    pub v: u32,
    /// The id of the key that made the pseudonyms.
    pub key_id: String,
    /// Pseudonymized StudyInstanceUID.
    pub study: String,
    /// The patient pseudonym (PatientID and PatientName of the pseudonymized object).
    pub patient: String,
    /// Pseudonymized and original UID, for every UID the instance carried.
    pub uids: Vec<(String, String)>,
    /// The original patient and study attributes, restored on results.
    pub attributes: Vec<LinkedAttribute>,
}

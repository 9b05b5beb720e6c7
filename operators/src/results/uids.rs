//! Deterministic UIDs of result objects.
//!
//! Every UID a result object carries is `2.25.` followed by the decimal value of the first 128
//! bits of a SHA-256 over what identifies it: the role of the UID, the kind of object, the
//! source UID it belongs to and the model's identity (name, version, SHA-256 of the file).
//! The same event replayed through the same model therefore yields the same UIDs, and the PACS
//! replaces the earlier object instead of keeping a duplicate; another model, or another
//! version of it, yields other UIDs.
//!
//! The fields are hashed length-prefixed, so no choice of names can make two different inputs
//! hash the same bytes.

use crate::contract::results::ModelIdentity;
use crate::dicom::uids::uid_of_fields as uid_of;

/// Changes every derived UID when bumped: only for a change of what a UID identifies.
const DOMAIN: &str = "radstream results uid v1";

/// What a result object is, as far as its UIDs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A structured report (TID 1500 Measurement Report).
    Sr,
    /// A segmentation.
    Seg,
    /// A secondary capture of the source image with the result burned in.
    Overlay,
}

impl ObjectKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sr => "sr",
            Self::Seg => "seg",
            Self::Overlay => "overlay",
        }
    }
}

/// Which UID of a result object is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidRole {
    /// SeriesInstanceUID of the result series, from the source's SeriesInstanceUID.
    Series,
    /// SOPInstanceUID of a result of one source instance, from its SOPInstanceUID.
    Instance,
    /// SOPInstanceUID of the result of a whole series, from the source's SeriesInstanceUID.
    SeriesResult,
    /// Tracking Unique Identifier of a measurement group, from the result object's
    /// SOPInstanceUID and the group's place in it.
    Tracking,
}

impl UidRole {
    fn as_str(self) -> &'static str {
        match self {
            Self::Series => "series",
            Self::Instance => "instance",
            Self::SeriesResult => "series-result",
            Self::Tracking => "tracking",
        }
    }
}

/// The UID of `role` for the result object of `kind` that `model` made from `source_uid`.
pub fn result_uid(role: UidRole, kind: ObjectKind, source_uid: &str, model: &ModelIdentity) -> String {
    uid_of(&[DOMAIN, role.as_str(), kind.as_str(), source_uid, &model.name, &model.version, &model.sha256])
}

/// Device Observer UID (DCM 121012) of a model: the same for every result it makes, another
/// for each version or file.
pub fn device_observer_uid(model: &ModelIdentity) -> String {
    uid_of(&[DOMAIN, "device", &model.name, &model.version, &model.sha256])
}

/// Tracking Unique Identifier (DCM 112040) of the `index`th measurement group of the result
/// object `sop_instance_uid`.
pub fn tracking_uid(sop_instance_uid: &str, index: usize, model: &ModelIdentity) -> String {
    result_uid(UidRole::Tracking, ObjectKind::Sr, &format!("{sop_instance_uid}/{index}"), model)
}

#[cfg(test)]
mod tests;

//! Reading a STOW-RS response (PS3.18 10.5.3, DICOM JSON model PS3.18 F.2) and deciding what
//! one attempt achieved. Pure functions: no I/O, no logging.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use reqwest::StatusCode;
use serde_json::Value;

/// The parts of a Store Instances response the sink acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StowResponse {
    /// ReferencedSOPSequence (0008,1199): instances the PACS stored.
    pub referenced: Vec<ReferencedSop>,
    /// FailedSOPSequence (0008,1198): instances the PACS did not store.
    pub failed: Vec<FailedSop>,
}

/// One item of ReferencedSOPSequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReferencedSop {
    /// ReferencedSOPInstanceUID (0008,1155).
    pub sop_instance_uid: Option<String>,
    /// WarningReason (0008,1196).
    pub warning_reason: Option<u16>,
}

/// One item of FailedSOPSequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailedSop {
    /// ReferencedSOPInstanceUID (0008,1155).
    pub sop_instance_uid: Option<String>,
    /// FailureReason (0008,1197).
    pub failure_reason: Option<u16>,
}

/// What a response says about one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstanceResult {
    /// Listed in ReferencedSOPSequence.
    Stored { warning_reason: Option<u16> },
    /// Listed in FailedSOPSequence.
    Failed { failure_reason: Option<u16> },
    /// Not listed.
    NotMentioned,
}

/// Parses a response body. `None` when it is empty or not a DICOM JSON data set (a top-level
/// object, or an array whose first element is one, as some servers send).
pub(crate) fn parse_stow_response(body: &[u8]) -> Option<StowResponse> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let dataset = match &value {
        Value::Object(_) => &value,
        Value::Array(items) => items.first().filter(|v| v.is_object())?,
        _ => return None,
    };
    let referenced = sequence_items(dataset, tags::REFERENCED_SOP_SEQUENCE)
        .map(|item| ReferencedSop {
            sop_instance_uid: string_value(item, tags::REFERENCED_SOP_INSTANCE_UID),
            warning_reason: us_value(item, tags::WARNING_REASON),
        })
        .collect();
    let failed = sequence_items(dataset, tags::FAILED_SOP_SEQUENCE)
        .map(|item| FailedSop {
            sop_instance_uid: string_value(item, tags::REFERENCED_SOP_INSTANCE_UID),
            failure_reason: us_value(item, tags::FAILURE_REASON),
        })
        .collect();
    Some(StowResponse { referenced, failed })
}

impl StowResponse {
    /// What the response says about `sop_instance_uid`. Each request carries exactly one
    /// instance, so an item without a UID is taken to be about it (failures first: a server
    /// that lists an anonymous failure did not store the instance).
    pub(crate) fn result_for(&self, sop_instance_uid: &str) -> InstanceResult {
        let is = |uid: &Option<String>| uid.as_deref() == Some(sop_instance_uid);
        let stored = |r: &ReferencedSop| InstanceResult::Stored { warning_reason: r.warning_reason };
        let failed = |f: &FailedSop| InstanceResult::Failed { failure_reason: f.failure_reason };
        if let Some(f) = self.failed.iter().find(|f| is(&f.sop_instance_uid)) {
            return failed(f);
        }
        if let Some(r) = self.referenced.iter().find(|r| is(&r.sop_instance_uid)) {
            return stored(r);
        }
        if let Some(f) = self.failed.iter().find(|f| f.sop_instance_uid.is_none()) {
            return failed(f);
        }
        if let Some(r) = self.referenced.iter().find(|r| r.sop_instance_uid.is_none()) {
            return stored(r);
        }
        InstanceResult::NotMentioned
    }
}

/// The DICOM JSON key of a tag: eight upper-case hex digits.
fn json_key(tag: Tag) -> String {
    format!("{:04X}{:04X}", tag.group(), tag.element())
}

fn attribute_values(dataset: &Value, tag: Tag) -> Option<&Vec<Value>> {
    dataset.get(json_key(tag))?.get("Value")?.as_array()
}

fn sequence_items(dataset: &Value, tag: Tag) -> impl Iterator<Item = &Value> {
    attribute_values(dataset, tag).into_iter().flatten().filter(|item| item.is_object())
}

fn string_value(dataset: &Value, tag: Tag) -> Option<String> {
    let value = attribute_values(dataset, tag)?.first()?.as_str()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// A US value; tolerates servers that send it as a decimal string.
fn us_value(dataset: &Value, tag: Tag) -> Option<u16> {
    match attribute_values(dataset, tag)?.first()? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// What to do about a FailureReason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureAction {
    /// The PACS already holds the instance: it is delivered.
    AlreadyStored,
    /// A transient condition on the PACS side.
    Retry,
    /// Sending the same bytes again will fail again.
    Reject,
}

/// The meaning of a FailureReason (PS3.18 Table 10.5.3-3, PS3.4 Annex B.2.3) and what to do.
pub(crate) fn failure_reason(code: u16) -> (FailureAction, &'static str) {
    use FailureAction::*;
    match code {
        0x0111 => (AlreadyStored, "duplicate SOP instance: the PACS already holds it"),
        0x0110 => (Retry, "processing failure"),
        0xA700..=0xA7FF => (Retry, "refused: out of resources"),
        0x0122 => (Reject, "refused: SOP class not supported"),
        0x0124 => (Reject, "refused: not authorized"),
        0x0117 => (Reject, "invalid SOP instance"),
        0x0119 => (Reject, "SOP class and instance conflict"),
        0xA900..=0xA9FF => (Reject, "error: data set does not match SOP class"),
        0xC122 => (Reject, "referenced transfer syntax not supported"),
        0xC000..=0xCFFF => (Reject, "error: cannot understand"),
        _ => (Reject, "failure reason not defined by the standard"),
    }
}

/// The meaning of a WarningReason (PS3.18 Table 10.5.3-4, PS3.4 Annex B.2.3).
pub(crate) fn warning_reason(code: u16) -> &'static str {
    match code {
        0xB000 => "coercion of data elements",
        0xB006 => "elements discarded",
        0xB007 => "data set does not match SOP class",
        0x0111 => "duplicate SOP instance: the PACS already holds it",
        _ => "warning reason not defined by the standard",
    }
}

/// What one STOW request achieved for its instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The PACS confirmed it stored the instance.
    Stored,
    /// The PACS holds the instance, with something worth an operator's attention: a warning
    /// reason, or "already stored".
    StoredWithNote(String),
    /// A success status with an empty body, from a PACS configured with
    /// `assume_stored_without_body`: taken as stored.
    AssumedStored(String),
    /// The PACS refused it; retrying will not help.
    Rejected(String),
    /// A transient failure: try again.
    Transient(String),
}

/// Decides what a response means for the one instance the request carried.
///
/// 408, 429 and 5xx are transient. 200, 202 and 409 carry a Store Instances response whose
/// entry for the instance decides. A success status whose body does not name the instance (an
/// empty body, an HTML page, JSON without it) is not the PACS saying yes: a proxy, firewall or
/// login page in front of it answers that way too, so it is transient, and after the retries
/// the instance is dead-lettered with what came back. Only with `assume_stored_without_body`
/// (set per PACS, for servers that answer without a body) does a success with an empty body
/// count as stored. Anything else is a rejection.
pub(crate) fn classify_response(
    status: StatusCode,
    body: &[u8],
    sop_instance_uid: &str,
    assume_stored_without_body: bool,
) -> Verdict {
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        return Verdict::Transient(format!("HTTP {status}"));
    }
    if !(status.is_success() || status == StatusCode::CONFLICT) {
        return Verdict::Rejected(format!("HTTP {status}{}", status_hint(status)));
    }
    let Some(response) = parse_stow_response(body) else {
        let what = unreadable_body(body);
        return if !status.is_success() {
            Verdict::Rejected(format!("HTTP {status} {what}"))
        } else if assume_stored_without_body && is_empty(body) {
            Verdict::AssumedStored(format!("HTTP {status} {what}, counted as stored (`assume_stored_without_body`)"))
        } else {
            Verdict::Transient(format!("HTTP {status} {what}"))
        };
    };
    match response.result_for(sop_instance_uid) {
        InstanceResult::Stored { warning_reason: None } => Verdict::Stored,
        InstanceResult::Stored { warning_reason: Some(w) } => {
            Verdict::StoredWithNote(format!("HTTP {status}, warning reason 0x{w:04X} ({})", warning_reason(w)))
        }
        InstanceResult::Failed { failure_reason: Some(f) } => {
            let (action, meaning) = failure_reason(f);
            let detail = format!("HTTP {status}, failure reason 0x{f:04X} ({meaning})");
            match action {
                FailureAction::AlreadyStored => Verdict::StoredWithNote(detail),
                FailureAction::Retry => Verdict::Transient(detail),
                FailureAction::Reject => Verdict::Rejected(detail),
            }
        }
        InstanceResult::Failed { failure_reason: None } => {
            Verdict::Rejected(format!("HTTP {status}, listed in FailedSOPSequence without a failure reason"))
        }
        InstanceResult::NotMentioned if status.is_success() => Verdict::Transient(format!(
            "HTTP {status} with a JSON response that does not list this instance in ReferencedSOPSequence"
        )),
        InstanceResult::NotMentioned => {
            Verdict::Rejected(format!("HTTP {status} without an entry for this instance in the response"))
        }
    }
}

/// Nothing but whitespace.
fn is_empty(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// What a body that is not a Store Instances response looks like, without quoting it: a page in
/// front of the PACS may hold anything, a PACS's own error text attributes of the instance.
fn unreadable_body(body: &[u8]) -> &'static str {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| body[i]) {
        None => "with an empty body",
        Some(b'<') => "with an HTML or XML body (not a STOW-RS response)",
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() => {
            "with a JSON body that is not a DICOM JSON data set (not a STOW-RS response)"
        }
        Some(_) => "with a body that is not JSON (not a STOW-RS response)",
    }
}

/// What an operator should check for a rejecting status.
fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        300..=399 => "; the PACS redirects: set `url` to the final DICOMweb base URL",
        400 => "; the PACS could not read the request or the instance",
        401 | 403 => "; check the stow operator's `auth` settings and the PACS user's permissions",
        404 | 405 => "; check the stow operator's `url` (the DICOMweb base URL, without /studies)",
        413 => "; the instance is larger than the PACS accepts",
        415 => "; the PACS does not accept multipart/related application/dicom",
        _ => "",
    }
}

#[cfg(test)]
mod tests;

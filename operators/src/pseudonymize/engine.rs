//! The header-only rewrite: applies the profile to one Part-10 object.
//!
//! The object is parsed at the element level ([`super::raw`]); every attribute that Table
//! E.1-1 lists is treated by its action, at every nesting level; private attributes go unless
//! the allow-list keeps them; Pixel Data and other bulk values are passed through as shared
//! byte ranges. Conditional actions are resolved without the IOD tables, towards conformance:
//! a combination that contains D gets a dummy value, X/Z an empty value, X/Z/U* keeps the
//! sequence with its UIDs replaced. That never breaks a Type 1 or Type 2 attribute.

use bytes::Bytes;
use dicom_core::VR;

use super::dates;
use super::keys::DeidKey;
use super::profile::{column, BasicAction, OptionAction, ProfileOption, ProfileOptions, ProfileTable, Row, EDITION};
use crate::contract::links::{LinkRecord, LinkedAttribute};
use crate::dicom::editor::{find, put, trim, EditError as DeidError, Element, Part10, Value};

/// Whether pixel data may hold burned-in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurnedIn {
    /// BurnedInAnnotation is NO, or the instance is of a kind that does not burn text.
    No,
    /// BurnedInAnnotation is YES.
    Yes,
    /// BurnedInAnnotation is absent on a modality or SOP class that commonly burns text.
    Suspected,
}

/// Which instances are suspected of burned-in text when BurnedInAnnotation is absent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BurnedInRules {
    /// Modalities (0008,0060) that commonly burn text into pixels.
    pub modalities: Vec<String>,
    /// SOP Class UIDs that commonly carry burned-in text (secondary capture and the like).
    pub sop_classes: Vec<String>,
}

impl Default for BurnedInRules {
    fn default() -> Self {
        Self {
            // Ultrasound, endoscopy, photography, document scans and secondary capture.
            modalities: ["US", "ES", "XC", "GM", "SM", "OT", "DOC"].map(String::from).to_vec(),
            sop_classes: [
                "1.2.840.10008.5.1.4.1.1.7",     // Secondary Capture
                "1.2.840.10008.5.1.4.1.1.7.1",   // Multi-frame Single Bit SC
                "1.2.840.10008.5.1.4.1.1.7.2",   // Multi-frame Grayscale Byte SC
                "1.2.840.10008.5.1.4.1.1.7.3",   // Multi-frame Grayscale Word SC
                "1.2.840.10008.5.1.4.1.1.7.4",   // Multi-frame True Color SC
                "1.2.840.10008.5.1.4.1.1.6.1",   // Ultrasound Image
                "1.2.840.10008.5.1.4.1.1.3.1",   // Ultrasound Multi-frame Image
                "1.2.840.10008.5.1.4.1.1.104.1", // Encapsulated PDF
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl BurnedInRules {
    /// Classifies an instance from its BurnedInAnnotation, modality and SOP class.
    pub fn assess(&self, annotation: Option<bool>, modality: Option<&str>, sop_class_uid: &str) -> BurnedIn {
        match annotation {
            Some(true) => BurnedIn::Yes,
            Some(false) => BurnedIn::No,
            None if modality.is_some_and(|m| self.modalities.iter().any(|x| x.eq_ignore_ascii_case(m)))
                || self.sop_classes.iter().any(|c| c == sop_class_uid) =>
            {
                BurnedIn::Suspected
            }
            None => BurnedIn::No,
        }
    }
}

/// The result of de-identifying one object.
#[derive(Debug, Clone)]
pub struct Deidentified {
    /// The output object as consecutive byte ranges: the rewritten header, then the input's own
    /// Pixel Data bytes (shared, not copied), then anything after it.
    pub parts: Vec<Bytes>,
    /// BurnedInAnnotation: `Some(true)` for YES, `Some(false)` for NO, `None` when absent.
    pub burned_in_annotation: Option<bool>,
    /// Pseudonymized StudyInstanceUID.
    pub study_instance_uid: String,
    /// Pseudonymized SeriesInstanceUID.
    pub series_instance_uid: String,
    /// Pseudonymized SOPInstanceUID.
    pub sop_instance_uid: String,
    /// SOPClassUID (unchanged).
    pub sop_class_uid: String,
    /// Modality (unchanged), if present.
    pub modality: Option<String>,
    /// What the trusted side needs to re-link results to the original identifiers.
    pub links: LinkRecord,
}

impl Deidentified {
    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }

    /// Never true: a Part-10 object has a preamble.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The object as one buffer (copies the parts).
    pub fn to_bytes(&self) -> Bytes {
        if self.parts.len() == 1 {
            return self.parts[0].clone();
        }
        let mut v = Vec::with_capacity(self.len());
        for p in &self.parts {
            v.extend_from_slice(p);
        }
        v.into()
    }
}

/// What happens to one attribute, after the options are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Keep,
    Remove,
    Empty,
    Dummy,
    Uid,
    Clean,
    Shift,
}

fn resolve(row: &Row, options: &ProfileOptions) -> Action {
    let mut keep = false;
    let mut clean = None;
    for option in options.enabled() {
        match row.options[column(option)] {
            OptionAction::K => keep = true,
            OptionAction::C => clean = Some(option),
            OptionAction::None => {}
        }
    }
    if keep {
        return Action::Keep;
    }
    match clean {
        Some(ProfileOption::RetainLongitudinalModifiedDates) => return Action::Shift,
        Some(_) => return Action::Clean,
        None => {}
    }
    match row.basic {
        BasicAction::D | BasicAction::ZD | BasicAction::XD | BasicAction::XZD => Action::Dummy,
        BasicAction::Z | BasicAction::XZ => Action::Empty,
        BasicAction::X => Action::Remove,
        BasicAction::K => Action::Keep,
        BasicAction::C => Action::Clean,
        BasicAction::U | BasicAction::XZUStar => Action::Uid,
    }
}

const PATIENT_NAME: u32 = 0x0010_0010;
const PATIENT_ID: u32 = 0x0010_0020;
const ISSUER_OF_PATIENT_ID: u32 = 0x0010_0021;
const STUDY_INSTANCE_UID: u32 = 0x0020_000D;
const SERIES_INSTANCE_UID: u32 = 0x0020_000E;
const SOP_INSTANCE_UID: u32 = 0x0008_0018;
const SOP_CLASS_UID: u32 = 0x0008_0016;
const MODALITY: u32 = 0x0008_0060;
const BURNED_IN_ANNOTATION: u32 = 0x0028_0301;
const SPECIFIC_CHARACTER_SET: u32 = 0x0008_0005;

/// Attributes the trusted side restores on results: the patient and the study as the PACS
/// knows them.
const RELINKED: &[u32] = &[
    SPECIFIC_CHARACTER_SET,
    0x0008_0020, // StudyDate
    0x0008_0030, // StudyTime
    0x0008_0050, // AccessionNumber
    0x0008_0090, // ReferringPhysicianName
    0x0008_1030, // StudyDescription
    PATIENT_NAME,
    PATIENT_ID,
    ISSUER_OF_PATIENT_ID,
    0x0010_0030, // PatientBirthDate
    0x0010_0040, // PatientSex
    0x0020_0010, // StudyID
];

/// Attributes whose words must not survive in cleaned descriptors.
const IDENTIFYING: &[u32] = &[
    PATIENT_NAME,
    PATIENT_ID,
    0x0010_1000, // OtherPatientIDs
    0x0010_1001, // OtherPatientNames
    0x0010_1060, // PatientMotherBirthName
    0x0010_0030, // PatientBirthDate
    0x0010_1040, // PatientAddress
    0x0008_0050, // AccessionNumber
    0x0008_0090, // ReferringPhysicianName
    0x0008_1050, // PerformingPhysicianName
    0x0008_1070, // OperatorsName
    0x0008_0080, // InstitutionName
    0x0020_0010, // StudyID
];

/// Applies the Basic Profile with options under one key.
#[derive(Debug, Clone)]
pub struct Deidentifier {
    key: DeidKey,
    options: ProfileOptions,
    /// Resolved actions of the exact-tag rows, sorted by tag.
    actions: Vec<(u32, Action)>,
    /// Resolved actions of the masked rows (curves, overlays).
    masked: Vec<(u32, u32, Action)>,
    method: Vec<u8>,
    method_codes: Vec<(&'static str, &'static str)>,
    /// True when some attribute resolves to Clean (so identifying words are collected).
    cleans: bool,
}

impl Deidentifier {
    /// A de-identifier; `options` must have passed [`ProfileOptions::validate`].
    pub fn new(key: DeidKey, options: ProfileOptions) -> Self {
        let table = ProfileTable::standard();
        let actions: Vec<(u32, Action)> = table.exact_rows().iter().map(|r| (r.tag, resolve(r, &options))).collect();
        let masked = table.masked_rows().iter().map(|r| (r.tag, r.mask, resolve(r, &options))).collect();
        let mut method = format!("DICOM PS3.15 {EDITION} E.1-1 Basic Profile\\radstream key {}", key.id());
        for o in options.enabled() {
            method.push('\\');
            method.push_str(o.code().1);
        }
        let mut method = method.into_bytes();
        pad(&mut method, b' ');
        let mut method_codes = vec![("113100", "Basic Application Confidentiality Profile")];
        method_codes.extend(options.enabled().into_iter().map(|o| o.code()));
        let cleans = actions.iter().any(|(_, a)| *a == Action::Clean);
        Self { key, options, actions, masked, method, method_codes, cleans }
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        self.key.id()
    }

    /// The options in use.
    pub fn options(&self) -> &ProfileOptions {
        &self.options
    }

    fn action(&self, tag: u32) -> Option<Action> {
        if let Ok(i) = self.actions.binary_search_by_key(&tag, |a| a.0) {
            return Some(self.actions[i].1);
        }
        if (0x5000..=0x601E).contains(&(tag >> 16)) {
            return self.masked.iter().find(|(t, m, _)| tag & m == *t).map(|a| a.2);
        }
        None
    }

    /// The keyed pseudonym of a UID: `2.25.` and the decimal value of 128 bits of
    /// HMAC-SHA256(key, uid).
    pub fn pseudonymize_uid(&self, uid: &[u8]) -> String {
        crate::dicom::uids::uid_from_digest(&self.key.mac(&[b"uid", uid]))
    }

    /// The keyed pseudonym of a patient (issuer and ID): `RS` and 16 hex digits.
    pub fn pseudonymize_patient(&self, issuer: &[u8], id: &[u8]) -> String {
        let mac = self.key.mac(&[b"patient", issuer, id]);
        let mut s = String::with_capacity(18);
        s.push_str("RS");
        for b in &mac[..8] {
            s.push_str(&format!("{b:02X}"));
        }
        s
    }

    /// The per-patient date shift in days: between 1 and 3650 days back, from the key.
    pub fn date_shift_days(&self, issuer: &[u8], id: &[u8]) -> i64 {
        let mac = self.key.mac(&[b"date-shift", issuer, id]);
        -(1 + (u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]]) % 3650) as i64)
    }

    /// De-identifies one Part-10 object.
    pub fn deidentify(&self, input: &Bytes) -> Result<Deidentified, DeidError> {
        let mut object = Part10::parse(input)?;
        let source = object.source.clone();
        let top = &object.dataset;
        let text = |tag: u32| find(top, tag).map(|e| trim(e.bytes(&source)).to_vec()).unwrap_or_default();
        // Nothing that is not an instance is written as one: a file meta group and the SOP
        // Class and Instance UIDs must be there (a bare preamble and "DICM" has none of them).
        for (present, what) in [
            (!object.meta.is_empty(), "no file meta group"),
            (!text(SOP_CLASS_UID).is_empty(), "no SOP Class UID (0008,0016)"),
            (!text(SOP_INSTANCE_UID).is_empty(), "no SOP Instance UID (0008,0018)"),
        ] {
            if !present {
                return Err(DeidError { offset: None, problem: format!("not a DICOM instance: {what}") });
            }
        }
        let (issuer, patient_id) = (text(ISSUER_OF_PATIENT_ID), text(PATIENT_ID));
        let burned_in_annotation = match &text(BURNED_IN_ANNOTATION)[..] {
            b"YES" => Some(true),
            b"NO" => Some(false),
            _ => None,
        };
        let mut run = Run {
            d: self,
            source: &source,
            patient: self.pseudonymize_patient(&issuer, &patient_id),
            shift_days: self.date_shift_days(&issuer, &patient_id),
            tokens: if self.cleans { identifying_tokens(top, &source) } else { Vec::new() },
            uids: Vec::with_capacity(8),
        };
        let attributes = RELINKED
            .iter()
            .filter_map(|tag| find(top, *tag))
            .map(|e| LinkedAttribute::new(e.tag, e.vr, e.bytes(&source)))
            .collect();

        run.level(&mut object.meta);
        run.level(&mut object.dataset);
        self.mark(&mut object.dataset);

        let top = &object.dataset;
        let out_text = |tag: u32| {
            find(top, tag).map(|e| String::from_utf8_lossy(trim(e.bytes(&source))).into_owned()).unwrap_or_default()
        };
        let study_instance_uid = out_text(STUDY_INSTANCE_UID);
        let links = LinkRecord {
            v: 1,
            key_id: self.key.id().to_string(),
            study: study_instance_uid.clone(),
            patient: run.patient.clone(),
            uids: std::mem::take(&mut run.uids),
            attributes,
        };
        Ok(Deidentified {
            parts: object.write(),
            burned_in_annotation,
            study_instance_uid,
            series_instance_uid: out_text(SERIES_INSTANCE_UID),
            sop_instance_uid: out_text(SOP_INSTANCE_UID),
            sop_class_uid: out_text(SOP_CLASS_UID),
            modality: Some(out_text(MODALITY)).filter(|m| !m.is_empty()),
            links,
        })
    }

    /// Records that the object was de-identified, and how (PS3.15 E.1.1).
    fn mark(&self, top: &mut Vec<Element>) {
        put(top, Element::new(0x0012_0062, VR::CS, b"YES ".to_vec()));
        put(top, Element::new(0x0012_0063, VR::LO, self.method.clone()));
        let items = self
            .method_codes
            .iter()
            .map(|(code, meaning)| {
                let mut meaning = meaning.as_bytes().to_vec();
                pad(&mut meaning, b' ');
                vec![
                    Element::new(0x0008_0100, VR::SH, text_value(code)),
                    Element::new(0x0008_0102, VR::SH, b"DCM ".to_vec()),
                    Element::new(0x0008_0104, VR::LO, meaning),
                ]
            })
            .collect();
        put(
            top,
            Element {
                tag: 0x0012_0064,
                vr: VR::SQ,
                value: Value::Seq { items, undefined: false, implicit: false },
                whole: None,
            },
        );
        let temporal: &[u8] = if self.options.retain_longitudinal_modified_dates { b"MODIFIED" } else { b"REMOVED " };
        put(top, Element::new(0x0028_0303, VR::CS, temporal.to_vec()));
    }
}

fn pad(v: &mut Vec<u8>, with: u8) {
    if v.len() % 2 == 1 {
        v.push(with);
    }
}

fn text_value(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    pad(&mut v, b' ');
    v
}

/// Words of the instance's identifying attributes (3 characters or more), upper-cased.
fn identifying_tokens(top: &[Element], source: &[u8]) -> Vec<Vec<u8>> {
    let mut tokens: Vec<Vec<u8>> = Vec::new();
    for tag in IDENTIFYING {
        if let Some(e) = find(top, *tag) {
            for word in e.bytes(source).split(|b| matches!(b, b'^' | b'=' | b' ' | b'\\' | b',' | 0)) {
                if word.len() >= 3 && !tokens.iter().any(|t| t.eq_ignore_ascii_case(word)) {
                    tokens.push(word.to_ascii_uppercase());
                }
            }
        }
    }
    tokens
}

fn contains_token(value: &[u8], tokens: &[Vec<u8>]) -> bool {
    tokens.iter().any(|t| value.windows(t.len()).any(|w| w.eq_ignore_ascii_case(t)))
}

/// A dummy value of the right VR (PS3.15 E.1.1 action D).
fn dummy(vr: VR) -> Vec<u8> {
    let v: &[u8] = match vr {
        VR::AE => b"ANONYMOUS ",
        VR::AS => b"000Y",
        VR::CS => b"ANONYMIZED",
        VR::DA => b"19000101",
        VR::DT => b"19000101000000",
        VR::TM => b"000000",
        VR::DS | VR::IS => b"0 ",
        VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC | VR::PN => b"ANONYMIZED",
        VR::UR => b"urn:anonymized",
        VR::AT | VR::FL | VR::SL | VR::UL => &[0; 4],
        VR::SS | VR::US => &[0; 2],
        VR::FD | VR::SV | VR::UV => &[0; 8],
        _ => &[0; 2],
    };
    v.to_vec()
}

/// The state of one de-identification.
struct Run<'a> {
    d: &'a Deidentifier,
    source: &'a [u8],
    patient: String,
    shift_days: i64,
    tokens: Vec<Vec<u8>>,
    uids: Vec<(String, String)>,
}

impl Run<'_> {
    fn uid(&mut self, original: &[u8]) -> String {
        let original = String::from_utf8_lossy(original);
        if let Some((p, _)) = self.uids.iter().find(|(_, o)| *o == original) {
            return p.clone();
        }
        let p = self.d.pseudonymize_uid(original.as_bytes());
        self.uids.push((p.clone(), original.into_owned()));
        p
    }

    fn map_uids(&mut self, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        for (i, uid) in trim(value).split(|b| *b == b'\\').enumerate() {
            if i > 0 {
                out.push(b'\\');
            }
            let uid = trim(uid);
            if !uid.is_empty() {
                out.extend_from_slice(self.uid(uid).as_bytes());
            }
        }
        pad(&mut out, 0);
        out
    }

    /// Applies the profile to one data set level and everything nested in it.
    fn level(&mut self, elements: &mut Vec<Element>) {
        self.private(elements);
        let mut i = 0;
        while i < elements.len() {
            let tag = elements[i].tag;
            if tag >> 16 & 1 == 1 {
                // Kept by the allow-list; nested content stays as the vendor wrote it.
                i += 1;
                continue;
            }
            let action = if tag & 0xFFFF == 0 && tag >> 16 != 0x0002 {
                // Group lengths are retired and would be wrong after the rewrite.
                Action::Remove
            } else {
                self.d.action(tag).unwrap_or(Action::Keep)
            };
            if action == Action::Remove {
                elements.remove(i);
                continue;
            }
            let e = &mut elements[i];
            if e.vr == VR::SQ {
                if action == Action::Empty {
                    if let Some(items) = e.items_mut() {
                        items.clear();
                    }
                } else if let Some(items) = e.items_mut() {
                    for item in items.iter_mut() {
                        self.level(item);
                    }
                }
                i += 1;
                continue;
            }
            match action {
                Action::Keep | Action::Remove => {}
                // Z allows "a non-zero length value that may be a dummy value" (E.1.1): the
                // patient gets the keyed pseudonym so one patient's studies stay together.
                Action::Empty | Action::Dummy if tag == PATIENT_NAME || tag == PATIENT_ID => {
                    let mut v = self.patient.as_bytes().to_vec();
                    pad(&mut v, b' ');
                    e.set(v);
                }
                Action::Empty => e.set(Vec::new()),
                Action::Dummy | Action::Uid if e.vr == VR::UI => {
                    let v = self.map_uids(e.bytes(self.source));
                    e.set(v);
                }
                Action::Dummy | Action::Uid => e.set(dummy(e.vr)),
                Action::Clean => {
                    // Descriptive text survives unless it repeats an identifier of this
                    // instance (a name, an ID, the accession number, a birth date).
                    if contains_token(e.bytes(self.source), &self.tokens) {
                        e.set(Vec::new());
                    }
                }
                Action::Shift => match e.vr {
                    VR::DA => {
                        let v = dates::shift_da(e.bytes(self.source), self.shift_days);
                        e.set(v);
                    }
                    VR::DT => {
                        let v = dates::shift_dt(e.bytes(self.source), self.shift_days);
                        e.set(v);
                    }
                    _ => {}
                },
            }
            i += 1;
        }
    }

    /// Removes private attributes, except those on the allow-list (with their creators).
    fn private(&mut self, elements: &mut Vec<Element>) {
        if !elements.iter().any(|e| e.tag >> 16 & 1 == 1) {
            return;
        }
        let rules = if self.d.options.retain_safe_private { &self.d.options.safe_private[..] } else { &[] };
        let mut kept_creators: Vec<u32> = Vec::new();
        let mut keep = vec![false; elements.len()];
        for (i, e) in elements.iter().enumerate() {
            let (group, element) = ((e.tag >> 16) as u16, (e.tag & 0xFFFF) as u16);
            if group % 2 == 0 || element < 0x1000 || rules.is_empty() {
                continue;
            }
            let creator_tag = (e.tag & 0xFFFF_0000) | (element >> 8) as u32;
            let Some(creator) = find(elements, creator_tag) else { continue };
            let creator = trim(creator.bytes(self.source));
            let offset = element & 0xFF;
            let allowed = rules.iter().any(|r| {
                r.creator.as_bytes() == creator
                    && u8::from_str_radix(&r.element, 16).is_ok_and(|x| x as u16 == offset)
                    && r.group.as_deref().is_none_or(|g| u16::from_str_radix(g, 16).is_ok_and(|g| g == group))
            });
            if allowed {
                keep[i] = true;
                kept_creators.push(creator_tag);
            }
        }
        let mut i = 0;
        elements.retain(|e| {
            let k = keep[i] || kept_creators.contains(&e.tag) || (e.tag >> 16) % 2 == 0;
            i += 1;
            k
        });
    }
}

#[cfg(test)]
mod tests;

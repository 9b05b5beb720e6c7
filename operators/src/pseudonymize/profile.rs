//! The Basic Application Level Confidentiality Profile and its options (PS3.15 Annex E), as
//! data: [`table_e1_1.tsv`](table_e1_1.tsv) is generated from the standard by
//! `generate_table.py`; this module parses it once and answers "what happens to this tag".

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The edition of PS3.15 the table was generated from.
pub const EDITION: &str = "2024b";

const TABLE: &str = include_str!("table_e1_1.tsv");

/// A profile option (PS3.15 E.3), each a config switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileOption {
    /// Retain Longitudinal Temporal Information with Modified Dates (E.3.6): dates shifted by a
    /// per-patient offset derived from the key.
    RetainLongitudinalModifiedDates,
    /// Retain Patient Characteristics (E.3.7).
    RetainPatientCharacteristics,
    /// Retain Device Identity (E.3.8).
    RetainDeviceIdentity,
    /// Retain Institution Identity (E.3.11).
    RetainInstitutionIdentity,
    /// Clean Descriptors (E.3.5): keep descriptive text unless it holds an identifier of the
    /// instance.
    CleanDescriptors,
    /// Retain Safe Private (E.3.10): keep private attributes on the allow-list.
    RetainSafePrivate,
    /// Retain UIDs (E.3.9).
    RetainUids,
}

impl ProfileOption {
    /// Every option, in the order of the standard's table columns.
    pub const ALL: [ProfileOption; 7] = [
        ProfileOption::RetainSafePrivate,
        ProfileOption::RetainUids,
        ProfileOption::RetainDeviceIdentity,
        ProfileOption::RetainInstitutionIdentity,
        ProfileOption::RetainPatientCharacteristics,
        ProfileOption::RetainLongitudinalModifiedDates,
        ProfileOption::CleanDescriptors,
    ];

    /// The name used on the command line and in audit events.
    pub fn name(self) -> &'static str {
        match self {
            ProfileOption::RetainLongitudinalModifiedDates => "retain-longitudinal-modified-dates",
            ProfileOption::RetainPatientCharacteristics => "retain-patient-characteristics",
            ProfileOption::RetainDeviceIdentity => "retain-device-identity",
            ProfileOption::RetainInstitutionIdentity => "retain-institution-identity",
            ProfileOption::CleanDescriptors => "clean-descriptors",
            ProfileOption::RetainSafePrivate => "retain-safe-private",
            ProfileOption::RetainUids => "retain-uids",
        }
    }

    /// Parses [`ProfileOption::name`] (underscores accepted for dashes).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.replace('_', "-");
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// The DCM code of the option (PS3.16 CID 7050), for DeidentificationMethodCodeSequence.
    pub fn code(self) -> (&'static str, &'static str) {
        match self {
            ProfileOption::CleanDescriptors => ("113105", "Clean Descriptors Option"),
            ProfileOption::RetainLongitudinalModifiedDates => {
                ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
            }
            ProfileOption::RetainPatientCharacteristics => ("113108", "Retain Patient Characteristics Option"),
            ProfileOption::RetainDeviceIdentity => ("113109", "Retain Device Identity Option"),
            ProfileOption::RetainUids => ("113110", "Retain UIDs Option"),
            ProfileOption::RetainSafePrivate => ("113111", "Retain Safe Private Option"),
            ProfileOption::RetainInstitutionIdentity => ("113112", "Retain Institution Identity Option"),
        }
    }
}

/// A private attribute that is safe to keep under Retain Safe Private: its private creator and
/// element offset (the low byte of the element number), optionally in one group only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafePrivateRule {
    /// The Private Creator value that reserves the block, for example `"SIEMENS CT VA0  COAD"`.
    pub creator: String,
    /// The odd group, as four hex digits; any group when absent.
    #[serde(default)]
    pub group: Option<String>,
    /// The element offset within the block, as two hex digits (`"10"` for gggg,xx10).
    pub element: String,
}

/// Which profile options are on. Everything off is the Basic Profile alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileOptions {
    /// Retain Longitudinal Temporal Information with Modified Dates.
    pub retain_longitudinal_modified_dates: bool,
    /// Retain Patient Characteristics.
    pub retain_patient_characteristics: bool,
    /// Retain Device Identity.
    pub retain_device_identity: bool,
    /// Retain Institution Identity.
    pub retain_institution_identity: bool,
    /// Clean Descriptors (without it, descriptors are removed).
    pub clean_descriptors: bool,
    /// Retain Safe Private: keep the private attributes in `safe_private`.
    pub retain_safe_private: bool,
    /// Retain UIDs (off: every instance UID is replaced by a keyed pseudonym).
    pub retain_uids: bool,
    /// The allow-list for Retain Safe Private.
    pub safe_private: Vec<SafePrivateRule>,
}

impl ProfileOptions {
    /// Turns an option on.
    pub fn enable(&mut self, option: ProfileOption) {
        *self.flag(option) = true;
    }

    /// True when `option` is on.
    pub fn is_enabled(&self, option: ProfileOption) -> bool {
        match option {
            ProfileOption::RetainLongitudinalModifiedDates => self.retain_longitudinal_modified_dates,
            ProfileOption::RetainPatientCharacteristics => self.retain_patient_characteristics,
            ProfileOption::RetainDeviceIdentity => self.retain_device_identity,
            ProfileOption::RetainInstitutionIdentity => self.retain_institution_identity,
            ProfileOption::CleanDescriptors => self.clean_descriptors,
            ProfileOption::RetainSafePrivate => self.retain_safe_private,
            ProfileOption::RetainUids => self.retain_uids,
        }
    }

    fn flag(&mut self, option: ProfileOption) -> &mut bool {
        match option {
            ProfileOption::RetainLongitudinalModifiedDates => &mut self.retain_longitudinal_modified_dates,
            ProfileOption::RetainPatientCharacteristics => &mut self.retain_patient_characteristics,
            ProfileOption::RetainDeviceIdentity => &mut self.retain_device_identity,
            ProfileOption::RetainInstitutionIdentity => &mut self.retain_institution_identity,
            ProfileOption::CleanDescriptors => &mut self.clean_descriptors,
            ProfileOption::RetainSafePrivate => &mut self.retain_safe_private,
            ProfileOption::RetainUids => &mut self.retain_uids,
        }
    }

    /// The options that are on, in the standard's column order.
    pub fn enabled(&self) -> Vec<ProfileOption> {
        ProfileOption::ALL.into_iter().filter(|o| self.is_enabled(*o)).collect()
    }

    /// Checks the allow-list's shape.
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.safe_private.iter().enumerate() {
            if r.creator.trim().is_empty() {
                return Err(format!("safe_private[{i}].creator: must not be empty"));
            }
            if let Some(g) = &r.group {
                match u16::from_str_radix(g, 16) {
                    Ok(g) if g % 2 == 1 && g > 0x0008 => {}
                    _ => return Err(format!("safe_private[{i}].group: `{g}` is not an odd (private) group in hex")),
                }
            }
            if u8::from_str_radix(&r.element, 16).is_err() || r.element.len() != 2 {
                return Err(format!("safe_private[{i}].element: `{}` is not two hex digits", r.element));
            }
        }
        if self.retain_safe_private && self.safe_private.is_empty() {
            return Err("retain_safe_private is on but the safe_private allow-list is empty".into());
        }
        Ok(())
    }
}

/// The basic-profile action of a table row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicAction {
    /// Replace with a non-zero-length dummy value.
    D,
    /// Replace with a zero-length value.
    Z,
    /// Remove.
    X,
    /// Keep.
    K,
    /// Clean.
    C,
    /// Replace with a consistent pseudonymous UID.
    U,
    /// Z unless D is needed for IOD conformance.
    ZD,
    /// X unless Z is needed.
    XZ,
    /// X unless D is needed.
    XD,
    /// X unless Z or D is needed.
    XZD,
    /// X unless Z or replacing contained UIDs is needed (sequences of references).
    XZUStar,
}

/// An option column's action for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionAction {
    /// The option does not change the basic action.
    None,
    /// Keep.
    K,
    /// Clean.
    C,
}

/// One row of Table E.1-1.
#[derive(Debug, Clone)]
pub struct Row {
    /// The tag, with the bits under `mask` significant.
    pub tag: u32,
    /// Significant bits of `tag` (`XX` digits in the standard are zero here).
    pub mask: u32,
    /// The attribute name, from the standard.
    pub name: String,
    /// The basic profile action.
    pub basic: BasicAction,
    /// Option actions: safe private, UIDs, device, institution, patient characteristics, full
    /// dates, modified dates, clean descriptors, clean structured content, clean graphics.
    pub options: [OptionAction; 10],
}

/// The whole table, parsed once.
#[derive(Debug)]
pub struct ProfileTable {
    /// Rows with exact tags, sorted by tag.
    exact: Vec<Row>,
    /// Rows with `XX` digits (curves, overlays).
    masked: Vec<Row>,
    /// The private attributes row.
    private: Row,
}

impl ProfileTable {
    /// The table generated from the standard.
    pub fn standard() -> &'static ProfileTable {
        static TABLE_ONCE: OnceLock<ProfileTable> = OnceLock::new();
        TABLE_ONCE.get_or_init(|| ProfileTable::parse(TABLE).expect("the generated table parses (unit-tested)"))
    }

    fn parse(text: &str) -> Result<ProfileTable, String> {
        let mut exact = Vec::new();
        let mut masked = Vec::new();
        let mut private = None;
        let mut lines = text.lines().filter(|l| !l.starts_with('#'));
        let header = lines.next().ok_or("empty table")?;
        if !header.starts_with("tag\tbasic\t") {
            return Err(format!("unexpected header {header:?}"));
        }
        for line in lines {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != 13 {
                return Err(format!("row {line:?} has {} fields", f.len()));
            }
            let basic = match f[1] {
                "D" => BasicAction::D,
                "Z" => BasicAction::Z,
                "X" => BasicAction::X,
                "K" => BasicAction::K,
                "C" => BasicAction::C,
                "U" => BasicAction::U,
                "Z/D" => BasicAction::ZD,
                "X/Z" => BasicAction::XZ,
                "X/D" => BasicAction::XD,
                "X/Z/D" => BasicAction::XZD,
                "X/Z/U*" => BasicAction::XZUStar,
                other => return Err(format!("unknown action {other:?}")),
            };
            let mut options = [OptionAction::None; 10];
            for (i, o) in f[2..12].iter().enumerate() {
                options[i] = match *o {
                    "" => OptionAction::None,
                    "K" => OptionAction::K,
                    "C" => OptionAction::C,
                    other => return Err(format!("unknown option action {other:?}")),
                };
            }
            let name = f[12].to_string();
            if f[0] == "private" {
                private = Some(Row { tag: 0, mask: 0, name, basic, options });
                continue;
            }
            let (mut tag, mut mask) = (0u32, 0u32);
            for c in f[0].chars() {
                tag <<= 4;
                mask <<= 4;
                if c != 'X' {
                    tag |= c.to_digit(16).ok_or_else(|| format!("bad tag {}", f[0]))?;
                    mask |= 0xF;
                }
            }
            let row = Row { tag, mask, name, basic, options };
            if mask == u32::MAX {
                exact.push(row);
            } else {
                masked.push(row);
            }
        }
        exact.sort_by_key(|r| r.tag);
        Ok(ProfileTable { exact, masked, private: private.ok_or("no private attributes row")? })
    }

    /// The row for a (non-private) tag, if the table lists it.
    pub fn row(&self, tag: u32) -> Option<&Row> {
        if let Ok(i) = self.exact.binary_search_by_key(&tag, |r| r.tag) {
            return Some(&self.exact[i]);
        }
        // Repeating groups are even groups 0x5000-0x501E and 0x6000-0x601E only.
        let group = tag >> 16;
        if (0x5000..=0x601E).contains(&group) {
            return self.masked.iter().find(|r| tag & r.mask == r.tag);
        }
        None
    }

    /// Rows with exact tags, sorted by tag.
    pub fn exact_rows(&self) -> &[Row] {
        &self.exact
    }

    /// Rows with `XX` digits (curve and overlay groups).
    pub fn masked_rows(&self) -> &[Row] {
        &self.masked
    }

    /// The private attributes row.
    pub fn private_row(&self) -> &Row {
        &self.private
    }

    /// Number of rows, the private row included.
    pub fn len(&self) -> usize {
        self.exact.len() + self.masked.len() + 1
    }

    /// Never true for the standard table.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Column index of each option in [`Row::options`].
pub(crate) fn column(option: ProfileOption) -> usize {
    match option {
        ProfileOption::RetainSafePrivate => 0,
        ProfileOption::RetainUids => 1,
        ProfileOption::RetainDeviceIdentity => 2,
        ProfileOption::RetainInstitutionIdentity => 3,
        ProfileOption::RetainPatientCharacteristics => 4,
        ProfileOption::RetainLongitudinalModifiedDates => 6,
        ProfileOption::CleanDescriptors => 7,
    }
}

#[cfg(test)]
mod tests;

//! What each synthetic study contains: patient, modality, series and their
//! counts. Plans are cheap (no pixels, a few small strings) so that the instance
//! count of a run can be known before any file is built.

use dicom_dictionary_std::uids;

use super::lesion::{self, LesionPlan};
use super::options::SynthOptions;
use super::rng::{stream_rng, Stream};
pub(super) use super::scan::{BodyPart, Contrast, Plane};
use super::uid::{synth_uid, UidKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Modality {
    Ct,
    Cr,
    Mr,
}

impl Modality {
    /// Modalities rotate per study so that any run of three studies has one of each.
    fn for_study(study: usize) -> Self {
        match study % 3 {
            0 => Modality::Ct,
            1 => Modality::Cr,
            _ => Modality::Mr,
        }
    }

    pub(super) fn code(self) -> &'static str {
        match self {
            Modality::Ct => "CT",
            Modality::Cr => "CR",
            Modality::Mr => "MR",
        }
    }

    pub(super) fn sop_class_uid(self) -> &'static str {
        match self {
            Modality::Ct => uids::CT_IMAGE_STORAGE,
            Modality::Cr => uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
            Modality::Mr => uids::MR_IMAGE_STORAGE,
        }
    }

    pub(super) fn equipment(self) -> &'static Equipment {
        match self {
            Modality::Ct => &CT_EQUIPMENT,
            Modality::Cr => &CR_EQUIPMENT,
            Modality::Mr => &MR_EQUIPMENT,
        }
    }
}

/// MR acquisition parameters of one series.
#[derive(Clone, Copy, Debug)]
pub(super) struct MrParams {
    pub scanning_sequence: &'static str,
    pub sequence_variant: &'static [&'static str],
    pub scan_options: &'static str,
    pub sequence_name: &'static str,
    pub repetition_time_ms: f64,
    pub echo_time_ms: f64,
    pub inversion_time_ms: Option<f64>,
    pub echo_train_length: u32,
    pub flip_angle_deg: f64,
}

#[derive(Debug)]
pub(super) struct Equipment {
    pub manufacturer: &'static str,
    pub model: &'static str,
    pub station: &'static str,
    pub serial: &'static str,
    pub software: &'static str,
}

const CT_EQUIPMENT: Equipment = Equipment {
    manufacturer: "SYNTHETIC MEDICAL SYSTEMS",
    model: "SynthCT 64",
    station: "SYNCT01",
    serial: "SYNCT-0000451",
    software: "SYNTH-CT 3.2.1",
};
const CR_EQUIPMENT: Equipment = Equipment {
    manufacturer: "SYNTHETIC MEDICAL SYSTEMS",
    model: "SynthCR Reader 2",
    station: "SYNCR01",
    serial: "SYNCR-0000187",
    software: "SYNTH-CR 1.9.0",
};
const MR_EQUIPMENT: Equipment = Equipment {
    manufacturer: "SYNTHETIC MEDICAL SYSTEMS",
    model: "SynthMR 1.5T",
    station: "SYNMR01",
    serial: "SYNMR-0000023",
    software: "SYNTH-MR 11.0",
};

#[derive(Debug)]
pub(super) struct Institution {
    pub name: &'static str,
    pub address: &'static str,
    pub department: &'static str,
}

const INSTITUTIONS: [Institution; 2] = [
    Institution {
        name: "SYNTH GENERAL HOSPITAL",
        address: "1 Synthetic Way, Nowhere City, ZZ 00000, Fictitia",
        department: "SYNTH RADIOLOGY",
    },
    Institution {
        name: "FAKE VALLEY MEDICAL CENTER",
        address: "99 Imaginary Road, Fake Valley, ZZ 99999, Fictitia",
        department: "SYNTH IMAGING",
    },
];

/// A calendar date, enough for study dates and ages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Date {
    pub year: i64,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// The date `days` after 1970-01-01.
    fn from_days(days: i64) -> Self {
        let (year, month, day) = radstream_operators::dicom::calendar::civil_from_days(days);
        Date { year, month, day }
    }

    /// Days since 1970-01-01.
    fn to_days(self) -> i64 {
        radstream_operators::dicom::calendar::days_from_civil(self.year, self.month, self.day)
    }

    /// The DA value, `YYYYMMDD`.
    pub(super) fn to_da(self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// Whole years from `birth` to `self`.
    pub(super) fn years_since(self, birth: Date) -> i64 {
        let before_birthday = (self.month, self.day) < (birth.month, birth.day);
        self.year - birth.year - i64::from(before_birthday)
    }
}

/// One synthetic patient. Patients are keyed by their own index so that a
/// patient seen in two studies has the same demographics in both.
#[derive(Debug)]
pub(super) struct Patient {
    pub name: String,
    pub id: String,
    pub other_id: String,
    pub birth_date: Date,
    pub sex: &'static str,
    pub weight_kg: u32,
    pub size_m: f64,
}

impl Patient {
    fn new(seed: u64, index: usize) -> Self {
        let mut rng = stream_rng(seed, Stream::Patient, &[index as u64]);
        let age_at_2024 = rng.i64(18..=90);
        let birth_date =
            Date::from_days(Date { year: 2024, month: 1, day: 1 }.to_days() - age_at_2024 * 365 - rng.i64(0..365));
        let sex = if rng.bool() { "F" } else { "M" };
        Patient {
            name: format!("SYNTH^PATIENT^{index:04}"),
            id: format!("SYN{index:04}"),
            other_id: format!("SYNALT{index:04}"),
            birth_date,
            sex,
            weight_kg: rng.u32(48..=115),
            size_m: f64::from(rng.u32(150..=195)) / 100.0,
        }
    }

    /// Studies 3k+1 (CR) and 3k+2 (MR) belong to the same patient, so a run has
    /// patients with one study and patients with two, which pseudonymization
    /// tests need to check that a patient maps to one pseudonym everywhere.
    fn index_for_study(study: usize) -> usize {
        (study / 3) * 2 + (study % 3).min(1)
    }
}

/// The people named in a study, all fictitious.
#[derive(Debug)]
pub(super) struct Staff {
    pub referring: String,
    pub referring_id: String,
    pub requesting: String,
    pub performing: String,
    pub operator: String,
}

#[derive(Debug)]
pub(super) struct SeriesPlan {
    /// Index within the study, part of the UIDs.
    pub index: usize,
    pub number: i32,
    pub instance_uid: String,
    pub description: String,
    pub plane: Plane,
    pub contrast: Contrast,
    pub count: usize,
    pub image_type: &'static [&'static str],
    /// CR ViewPosition.
    pub view_position: Option<&'static str>,
    /// CR PatientOrientation (images without ImageOrientationPatient).
    pub patient_orientation: Option<[&'static str; 2]>,
    /// Seconds after the study start at which the series was acquired.
    pub start_offset_s: u32,
    pub field_of_view_mm: f64,
    pub slice_thickness_mm: f64,
    pub slice_spacing_mm: f64,
    pub mr: Option<MrParams>,
}

#[derive(Debug)]
pub(super) struct StudyPlan {
    pub index: usize,
    pub modality: Modality,
    pub body_part: BodyPart,
    /// `R` or `L` for paired body parts.
    pub laterality: Option<&'static str>,
    pub patient: Patient,
    pub staff: Staff,
    pub institution: &'static Institution,
    pub date: Date,
    /// Seconds since midnight.
    pub start_s: u32,
    pub description: String,
    pub procedure_code: String,
    pub accession_number: String,
    pub study_id: String,
    pub instance_uid: String,
    /// CT and MR only; CR images have no frame of reference.
    pub frame_of_reference_uid: Option<String>,
    /// CR only: some readers store MONOCHROME1 (bright = low attenuation).
    pub monochrome1: bool,
    pub series: Vec<SeriesPlan>,
    /// The bleed planted in a head CT's axial series, if any.
    pub lesion: Option<LesionPlan>,
}

impl StudyPlan {
    pub(super) fn new(opts: &SynthOptions, index: usize) -> Self {
        let mut rng = stream_rng(opts.seed, Stream::Study, &[index as u64]);
        let modality = Modality::for_study(index);
        let count = |rng: &mut fastrand::Rng, low: usize, high: usize| {
            let drawn = rng.usize(low..=high);
            opts.instances_per_series.unwrap_or(drawn)
        };

        let (body_part, series) = match modality {
            Modality::Ct => {
                let drawn = [BodyPart::Head, BodyPart::Chest, BodyPart::Abdomen][rng.usize(0..3)];
                // Drawn all the same, so that the draws after it stay where they were.
                let body_part = if lesion::forced_head_ct(index) { BodyPart::Head } else { drawn };
                let slices = count(&mut rng, 4, 12);
                let (fov, kernel_name) = match body_part {
                    BodyPart::Head => (240.0, "BRAIN"),
                    _ => (380.0, "STANDARD"),
                };
                let series = vec![
                    SeriesDraft {
                        description: "TOPOGRAM".into(),
                        plane: Plane::Frontal,
                        contrast: Contrast::Ct,
                        count: opts.instances_per_series.unwrap_or(1),
                        image_type: &["ORIGINAL", "PRIMARY", "LOCALIZER"],
                        field_of_view_mm: 500.0,
                        slice_thickness_mm: 1.0,
                        slice_spacing_mm: 1.0,
                        ..SeriesDraft::default()
                    },
                    SeriesDraft {
                        description: format!("AX 5.0 {kernel_name}"),
                        plane: Plane::Axial,
                        contrast: Contrast::Ct,
                        count: slices,
                        image_type: &["ORIGINAL", "PRIMARY", "AXIAL"],
                        field_of_view_mm: fov,
                        slice_thickness_mm: 5.0,
                        slice_spacing_mm: 5.0,
                        ..SeriesDraft::default()
                    },
                ];
                (body_part, series)
            }
            Modality::Cr => {
                let body_part = if rng.usize(0..3) == 2 { BodyPart::Knee } else { BodyPart::Chest };
                let views: &[(&str, Plane, &str, [&str; 2])] = match body_part {
                    BodyPart::Knee => {
                        &[("AP", Plane::Frontal, "AP", ["L", "F"]), ("LAT", Plane::Lateral, "LL", ["A", "F"])]
                    }
                    _ => &[("PA", Plane::Frontal, "PA", ["L", "F"]), ("LAT", Plane::Lateral, "LL", ["A", "F"])],
                };
                let view_count = if rng.bool() { 2 } else { 1 };
                let fov = if body_part == BodyPart::Knee { 240.0 } else { 430.0 };
                let series = views[..view_count]
                    .iter()
                    .map(|&(description, plane, view, orientation)| SeriesDraft {
                        description: description.into(),
                        plane,
                        contrast: Contrast::Xray,
                        count: opts.instances_per_series.unwrap_or(1),
                        image_type: &["ORIGINAL", "PRIMARY"],
                        view_position: Some(view),
                        patient_orientation: Some(orientation),
                        field_of_view_mm: fov,
                        ..SeriesDraft::default()
                    })
                    .collect();
                (body_part, series)
            }
            Modality::Mr => {
                let body_part = if rng.bool() { BodyPart::Head } else { BodyPart::Knee };
                let protocols: &[(&str, Plane, Contrast)] = match body_part {
                    BodyPart::Head => &[
                        ("T1 SAG", Plane::Sagittal, Contrast::MrT1),
                        ("T2 TSE AX", Plane::Axial, Contrast::MrT2),
                        ("FLAIR AX", Plane::Axial, Contrast::MrFlair),
                    ],
                    _ => &[
                        ("PD SAG", Plane::Sagittal, Contrast::MrPd),
                        ("PD FS COR", Plane::Coronal, Contrast::MrPd),
                        ("T1 COR", Plane::Coronal, Contrast::MrT1),
                    ],
                };
                let series_count = rng.usize(2..=3);
                let (fov, thickness, spacing) = match body_part {
                    BodyPart::Head => (240.0, 5.0, 6.0),
                    _ => (160.0, 3.0, 3.5),
                };
                let series = protocols[..series_count]
                    .iter()
                    .map(|&(description, plane, contrast)| SeriesDraft {
                        description: description.into(),
                        plane,
                        contrast,
                        count: count(&mut rng, 3, 6),
                        image_type: &["ORIGINAL", "PRIMARY", "OTHER"],
                        field_of_view_mm: fov,
                        slice_thickness_mm: thickness,
                        slice_spacing_mm: spacing,
                        mr: Some(MrParams {
                            scan_options: if description.contains(" FS ") { "FS" } else { "" },
                            ..mr_params(contrast)
                        }),
                        ..SeriesDraft::default()
                    })
                    .collect();
                (body_part, series)
            }
        };

        let laterality = (body_part == BodyPart::Knee).then(|| if rng.bool() { "R" } else { "L" });
        let side = match laterality {
            Some("R") => " RIGHT",
            Some(_) => " LEFT",
            None => "",
        };
        let description = match (modality, body_part) {
            (Modality::Ct, BodyPart::Head) => "CT HEAD W/O CONTRAST".to_owned(),
            (Modality::Ct, BodyPart::Chest) => "CT CHEST W/O CONTRAST".to_owned(),
            (Modality::Ct, _) => "CT ABDOMEN PELVIS W CONTRAST".to_owned(),
            (Modality::Cr, body_part) => format!(
                "XR {}{side} {} VIEW{}",
                body_part.code(),
                series.len(),
                if series.len() > 1 { "S" } else { "" }
            ),
            (Modality::Mr, BodyPart::Head) => "MR BRAIN W/O CONTRAST".to_owned(),
            (Modality::Mr, body_part) => format!("MR {}{side} W/O CONTRAST", body_part.code()),
        };
        let procedure_code = format!("SYN-{}{}-{}", modality.code(), &body_part.code()[..2], series.len());

        let staff = Staff {
            referring: format!("SYNTH^REFERRER^{:02}", rng.u32(1..=40)),
            referring_id: format!("SYNDR{:05}", rng.u32(1..=99_999)),
            requesting: format!("SYNTH^REQUESTER^{:02}", rng.u32(1..=40)),
            performing: format!("SYNTH^RADIOLOGIST^{:02}", rng.u32(1..=12)),
            operator: format!("SYNTH^TECHNOLOGIST^{:02}", rng.u32(1..=25)),
        };
        let institution = &INSTITUTIONS[rng.usize(0..INSTITUTIONS.len())];
        let date = Date::from_days(Date { year: 2021, month: 1, day: 1 }.to_days() + rng.i64(0..4 * 365));
        let start_s = rng.u32(7 * 3600..18 * 3600);
        let monochrome1 = modality == Modality::Cr && rng.usize(0..3) == 0;

        let study_uid = |kind, series, instance| synth_uid(&opts.uid_root, opts.seed, kind, index, series, instance);
        let series = series
            .into_iter()
            .enumerate()
            .map(|(series_index, draft)| SeriesPlan {
                index: series_index,
                number: series_index as i32 + 1,
                instance_uid: study_uid(UidKind::Series, series_index, 0),
                description: draft.description,
                plane: draft.plane,
                contrast: draft.contrast,
                count: draft.count,
                image_type: draft.image_type,
                view_position: draft.view_position,
                patient_orientation: draft.patient_orientation,
                start_offset_s: 60 + 300 * series_index as u32,
                field_of_view_mm: draft.field_of_view_mm,
                slice_thickness_mm: draft.slice_thickness_mm,
                slice_spacing_mm: draft.slice_spacing_mm,
                mr: draft.mr,
            })
            .collect::<Vec<SeriesPlan>>();
        let lesion = match modality {
            Modality::Ct => series
                .iter()
                .find(|s| s.plane == Plane::Axial)
                .and_then(|axial| LesionPlan::for_study(opts.seed, index, body_part, axial.index, axial.count)),
            _ => None,
        };

        StudyPlan {
            index,
            modality,
            body_part,
            laterality,
            patient: Patient::new(opts.seed, Patient::index_for_study(index)),
            staff,
            institution,
            date,
            start_s,
            description,
            procedure_code,
            accession_number: format!("SYNA{index:08}"),
            study_id: format!("{}", 1000 + index),
            instance_uid: study_uid(UidKind::Study, 0, 0),
            frame_of_reference_uid: (modality != Modality::Cr).then(|| study_uid(UidKind::FrameOfReference, 0, 0)),
            monochrome1,
            series,
            lesion,
        }
    }

    pub(super) fn instance_count(&self) -> usize {
        self.series.iter().map(|s| s.count).sum()
    }
}

/// The parts of a series that depend on the protocol, before UIDs and numbers.
struct SeriesDraft {
    description: String,
    plane: Plane,
    contrast: Contrast,
    count: usize,
    image_type: &'static [&'static str],
    view_position: Option<&'static str>,
    patient_orientation: Option<[&'static str; 2]>,
    field_of_view_mm: f64,
    slice_thickness_mm: f64,
    slice_spacing_mm: f64,
    mr: Option<MrParams>,
}

impl Default for SeriesDraft {
    fn default() -> Self {
        SeriesDraft {
            description: String::new(),
            plane: Plane::Axial,
            contrast: Contrast::Ct,
            count: 1,
            image_type: &["ORIGINAL", "PRIMARY"],
            view_position: None,
            patient_orientation: None,
            field_of_view_mm: 250.0,
            slice_thickness_mm: 0.0,
            slice_spacing_mm: 0.0,
            mr: None,
        }
    }
}

fn mr_params(contrast: Contrast) -> MrParams {
    match contrast {
        Contrast::MrT1 => MrParams {
            scanning_sequence: "SE",
            sequence_variant: &["SP"],
            scan_options: "",
            sequence_name: "*se2d1",
            repetition_time_ms: 550.0,
            echo_time_ms: 12.0,
            inversion_time_ms: None,
            echo_train_length: 1,
            flip_angle_deg: 90.0,
        },
        Contrast::MrT2 => MrParams {
            scanning_sequence: "SE",
            sequence_variant: &["SK", "SP"],
            scan_options: "",
            sequence_name: "*tse2d1_15",
            repetition_time_ms: 4200.0,
            echo_time_ms: 98.0,
            inversion_time_ms: None,
            echo_train_length: 15,
            flip_angle_deg: 150.0,
        },
        Contrast::MrFlair => MrParams {
            scanning_sequence: "IR",
            sequence_variant: &["SK", "SP", "MP"],
            scan_options: "",
            sequence_name: "*tir2d1_16",
            repetition_time_ms: 9000.0,
            echo_time_ms: 120.0,
            inversion_time_ms: Some(2500.0),
            echo_train_length: 16,
            flip_angle_deg: 150.0,
        },
        _ => MrParams {
            scanning_sequence: "SE",
            sequence_variant: &["SK", "SP"],
            scan_options: "",
            sequence_name: "*tse2d1_7",
            repetition_time_ms: 3000.0,
            echo_time_ms: 30.0,
            inversion_time_ms: None,
            echo_train_length: 7,
            flip_angle_deg: 150.0,
        },
    }
}

#[cfg(test)]
mod tests;

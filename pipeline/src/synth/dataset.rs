//! Builds the data set of one synthetic instance and encodes it as a Part-10 file.

use dicom_core::dictionary::{DataDictionary, VirtualVr};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids, StandardDataDictionary};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

use super::options::{SynthInstance, SynthOptions};
use super::pixels::{self, ImageSpec};
use super::plan::{Modality, SeriesPlan, StudyPlan};
use super::rng::{stream_rng, Stream};
use super::scan::{BodyPart, Contrast, Plane};
use super::uid::{synth_uid, UidKind, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};

/// Odd group holding the vendor-style private block.
pub const PRIVATE_GROUP: u16 = 0x0009;
/// Private creator of the block in [`PRIVATE_GROUP`].
pub const PRIVATE_CREATOR: &str = "SYNTH SCANNER 1.0";
/// The private block reserved for [`PRIVATE_CREATOR`]: its elements are (0009,10xx).
const PRIVATE_BLOCK: u16 = 0x10;
/// Element offset, within the private block, of a copy of the patient's name (PN).
pub const PRIVATE_PATIENT_NAME: u8 = 0x10;
/// Element offset, within the private block, of a copy of the patient's ID (LO).
pub const PRIVATE_PATIENT_ID: u8 = 0x11;
/// Element offset, within the private block, of a scan-log comment naming the patient (LT).
pub const PRIVATE_COMMENT: u8 = 0x12;

pub(super) fn build_instance(
    opts: &SynthOptions,
    study: &StudyPlan,
    series: &SeriesPlan,
    instance: usize,
    side: u16,
) -> SynthInstance {
    let sop_instance_uid = sop_instance_uid(opts, study, series, instance);
    let mut ds = DataSet(InMemDicomObject::new_empty());
    put_common(&mut ds, study, series, instance, &sop_instance_uid);
    put_phi(&mut ds, study);
    put_geometry(&mut ds, study, series, instance, side);
    put_acquisition(&mut ds, study, series);
    put_pixels(&mut ds, opts, study, series, instance, side);

    let file =
        ds.0.with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
                .source_application_entity_title(study.modality.equipment().station),
        )
        .expect("the data set has SOP class and instance UIDs for the file meta");
    let pixel_bytes = usize::from(side) * usize::from(side) * 2;
    let mut bytes = Vec::with_capacity(pixel_bytes + 8 * 1024);
    file.write_all(&mut bytes).expect("encoding a well-formed data set into memory cannot fail");

    SynthInstance {
        study_instance_uid: study.instance_uid.clone(),
        series_instance_uid: series.instance_uid.clone(),
        sop_instance_uid: sop_instance_uid.clone(),
        sop_class_uid: study.modality.sop_class_uid().to_owned(),
        modality: study.modality.code().to_owned(),
        body_part_examined: Some(study.body_part.code().to_owned()),
        instance_number: instance as i32 + 1,
        series_instance_count: series.count as i32,
        relative_path: format!("{}/{}/{sop_instance_uid}.dcm", study.instance_uid, series.instance_uid),
        lesion: study.lesion.as_ref().and_then(|lesion| lesion.disc_in_pixels(series.index, instance, side)),
        bytes,
    }
}

pub(super) fn sop_instance_uid(opts: &SynthOptions, study: &StudyPlan, series: &SeriesPlan, instance: usize) -> String {
    synth_uid(&opts.uid_root, opts.seed, UidKind::Instance, study.index, series.index, instance)
}

/// Thin setters so that each attribute is one readable line. The VR of a
/// standard attribute comes from the dictionary, so it cannot be mistyped.
struct DataSet(InMemDicomObject);

/// The VR the standard dictionary gives `tag`.
fn dictionary_vr(tag: Tag) -> VR {
    match StandardDataDictionary.by_tag(tag).map(|entry| entry.vr) {
        Some(VirtualVr::Exact(vr)) => vr,
        other => panic!("{tag} has no single VR in the dictionary: {other:?}"),
    }
}

impl DataSet {
    fn put(&mut self, tag: Tag, value: PrimitiveValue) {
        self.0.put(DataElement::new(tag, dictionary_vr(tag), value));
    }

    fn str(&mut self, tag: Tag, value: impl Into<String>) {
        self.put(tag, PrimitiveValue::Str(value.into()));
    }

    fn strs(&mut self, tag: Tag, values: &[&str]) {
        let values = values.iter().map(|v| (*v).to_owned()).collect();
        self.put(tag, PrimitiveValue::Strs(values));
    }

    fn decimals(&mut self, tag: Tag, values: &[f64]) {
        debug_assert_eq!(dictionary_vr(tag), VR::DS, "{tag}");
        let values = values.iter().map(|&v| decimal_string(v)).collect();
        self.put(tag, PrimitiveValue::Strs(values));
    }

    fn decimal(&mut self, tag: Tag, value: f64) {
        self.decimals(tag, &[value]);
    }

    /// An IS value, or a DS one that happens to be whole.
    fn integer(&mut self, tag: Tag, value: impl std::fmt::Display) {
        debug_assert!(matches!(dictionary_vr(tag), VR::IS | VR::DS), "{tag}");
        self.str(tag, value.to_string());
    }

    fn us(&mut self, tag: Tag, value: u16) {
        self.put(tag, PrimitiveValue::from(value));
    }

    fn empty(&mut self, tag: Tag) {
        self.put(tag, PrimitiveValue::Empty);
    }

    fn sequence(&mut self, tag: Tag, items: Vec<DataSet>) {
        let items: Vec<InMemDicomObject> = items.into_iter().map(|item| item.0).collect();
        self.0.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
    }

    /// Puts `value` at `element` of the [`PRIVATE_CREATOR`] block. The block is
    /// reserved by hand at (0009,0010), the first slot PS3.5 §7.8.1 allows:
    /// `put_private_element` in dicom-object 0.10 starts at (0009,0001).
    fn private(&mut self, element: u8, vr: VR, value: impl Into<String>) {
        let creator = Tag(PRIVATE_GROUP, PRIVATE_BLOCK);
        self.0.put(DataElement::new(creator, VR::LO, PRIVATE_CREATOR));
        let tag = Tag(PRIVATE_GROUP, (PRIVATE_BLOCK << 8) | u16::from(element));
        self.0.put(DataElement::new(tag, vr, PrimitiveValue::Str(value.into())));
    }
}

fn item() -> DataSet {
    DataSet(InMemDicomObject::new_empty())
}

/// A DS value: at most four decimals, no trailing zeros, within 16 characters.
fn decimal_string(value: f64) -> String {
    let mut text = format!("{value:.4}");
    if text.contains('.') {
        let trimmed = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(trimmed);
    }
    if text == "-0" {
        text = "0".to_owned();
    }
    debug_assert!(text.len() <= 16, "DS value {text} too long");
    text
}

/// A TM value, `HHMMSS`.
fn time_string(seconds_of_day: u32) -> String {
    let s = seconds_of_day.min(86_399);
    format!("{:02}{:02}{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Identification, dates, equipment, study and series: the modules every image has.
fn put_common(ds: &mut DataSet, study: &StudyPlan, series: &SeriesPlan, instance: usize, sop_instance_uid: &str) {
    let equipment = study.modality.equipment();
    let date = study.date.to_da();
    let series_time = study.start_s + series.start_offset_s;
    let content_time = series_time + 2 * instance as u32;

    ds.str(tags::SPECIFIC_CHARACTER_SET, "ISO_IR 100");
    ds.strs(tags::IMAGE_TYPE, series.image_type);
    ds.str(tags::INSTANCE_CREATION_DATE, date.clone());
    ds.str(tags::INSTANCE_CREATION_TIME, time_string(content_time));
    ds.str(tags::SOP_CLASS_UID, study.modality.sop_class_uid());
    ds.str(tags::SOP_INSTANCE_UID, sop_instance_uid);
    ds.str(tags::STUDY_DATE, date.clone());
    ds.str(tags::SERIES_DATE, date.clone());
    ds.str(tags::ACQUISITION_DATE, date.clone());
    ds.str(tags::CONTENT_DATE, date);
    ds.str(tags::STUDY_TIME, time_string(study.start_s));
    ds.str(tags::SERIES_TIME, time_string(series_time));
    ds.str(tags::ACQUISITION_TIME, time_string(content_time));
    ds.str(tags::CONTENT_TIME, time_string(content_time));
    ds.str(tags::ACCESSION_NUMBER, study.accession_number.clone());
    ds.str(tags::MODALITY, study.modality.code());
    ds.str(tags::MANUFACTURER, equipment.manufacturer);
    ds.str(tags::INSTITUTION_NAME, study.institution.name);
    ds.str(tags::INSTITUTION_ADDRESS, study.institution.address);
    ds.str(tags::STATION_NAME, equipment.station);
    ds.str(tags::STUDY_DESCRIPTION, study.description.clone());
    ds.str(tags::SERIES_DESCRIPTION, series.description.clone());
    ds.str(tags::INSTITUTIONAL_DEPARTMENT_NAME, study.institution.department);
    ds.str(tags::MANUFACTURER_MODEL_NAME, equipment.model);
    ds.str(tags::BODY_PART_EXAMINED, study.body_part.code());
    ds.str(tags::DEVICE_SERIAL_NUMBER, equipment.serial);
    ds.str(tags::SOFTWARE_VERSIONS, equipment.software);
    ds.str(tags::PROTOCOL_NAME, format!("{} {}", study.body_part.code(), series.description));
    ds.str(tags::STUDY_INSTANCE_UID, study.instance_uid.clone());
    ds.str(tags::SERIES_INSTANCE_UID, series.instance_uid.clone());
    ds.str(tags::STUDY_ID, study.study_id.clone());
    ds.integer(tags::SERIES_NUMBER, series.number);
    ds.integer(tags::ACQUISITION_NUMBER, 1);
    ds.integer(tags::INSTANCE_NUMBER, instance + 1);
    ds.integer(tags::IMAGES_IN_ACQUISITION, series.count);
    if let Some(laterality) = study.laterality {
        ds.str(tags::LATERALITY, laterality);
    }
    ds.str(tags::BURNED_IN_ANNOTATION, "NO");
    ds.str(tags::LOSSY_IMAGE_COMPRESSION, "00");
}

/// Identifying information where scanners put it, including the nested and
/// private places a de-identifier must not miss. All of it is fictitious.
fn put_phi(ds: &mut DataSet, study: &StudyPlan) {
    let patient = &study.patient;
    let staff = &study.staff;
    let age = study.date.years_since(patient.birth_date);

    ds.str(tags::REFERRING_PHYSICIAN_NAME, staff.referring.clone());
    ds.sequence(tags::REFERRING_PHYSICIAN_IDENTIFICATION_SEQUENCE, {
        let mut code = item();
        code.str(tags::CODE_VALUE, staff.referring_id.clone());
        code.str(tags::CODING_SCHEME_DESIGNATOR, "99SYNTH");
        code.str(tags::CODE_MEANING, "Synthetic physician number");
        let mut person = item();
        person.sequence(tags::PERSON_IDENTIFICATION_CODE_SEQUENCE, vec![code]);
        person.str(tags::INSTITUTION_NAME, study.institution.name);
        vec![person]
    });
    ds.sequence(tags::PROCEDURE_CODE_SEQUENCE, vec![procedure_code(study)]);
    ds.str(tags::PERFORMING_PHYSICIAN_NAME, staff.performing.clone());
    ds.str(tags::OPERATORS_NAME, staff.operator.clone());

    ds.str(tags::PATIENT_NAME, patient.name.clone());
    ds.str(tags::PATIENT_ID, patient.id.clone());
    ds.str(tags::ISSUER_OF_PATIENT_ID, "SYNTH");
    ds.str(tags::PATIENT_BIRTH_DATE, patient.birth_date.to_da());
    ds.str(tags::PATIENT_SEX, patient.sex);
    ds.sequence(tags::OTHER_PATIENT_I_DS_SEQUENCE, {
        let mut other = item();
        other.str(tags::PATIENT_ID, patient.other_id.clone());
        other.str(tags::ISSUER_OF_PATIENT_ID, "SYNTH OTHER HOSPITAL");
        other.str(tags::TYPE_OF_PATIENT_ID, "TEXT");
        vec![other]
    });
    ds.str(tags::PATIENT_AGE, format!("{age:03}Y"));
    ds.decimal(tags::PATIENT_SIZE, patient.size_m);
    ds.integer(tags::PATIENT_WEIGHT, patient.weight_kg);
    ds.str(
        tags::PATIENT_COMMENTS,
        format!(
            "Synthetic patient {} ({}), born {}; fictitious person, not for clinical use.",
            patient.name,
            patient.id,
            patient.birth_date.to_da()
        ),
    );
    ds.str(tags::REQUESTING_PHYSICIAN, staff.requesting.clone());
    ds.sequence(tags::REQUEST_ATTRIBUTES_SEQUENCE, {
        let mut request = item();
        request.str(tags::ACCESSION_NUMBER, study.accession_number.clone());
        request.str(tags::STUDY_INSTANCE_UID, study.instance_uid.clone());
        request.str(tags::REQUESTED_PROCEDURE_DESCRIPTION, study.description.clone());
        request.sequence(tags::REQUESTED_PROCEDURE_CODE_SEQUENCE, vec![procedure_code(study)]);
        request.str(tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION, study.description.clone());
        request.str(tags::SCHEDULED_PROCEDURE_STEP_ID, format!("SPS{:08}", study.index));
        request.str(tags::REQUESTED_PROCEDURE_ID, format!("RP{:08}", study.index));
        vec![request]
    });
    ds.str(
        tags::IMAGE_COMMENTS,
        format!(
            "Synthetic {} image of {} ({}), referred by {}.",
            study.modality.code(),
            patient.name,
            patient.id,
            staff.referring
        ),
    );

    ds.private(PRIVATE_PATIENT_NAME, VR::PN, patient.name.clone());
    ds.private(PRIVATE_PATIENT_ID, VR::LO, patient.id.clone());
    ds.private(
        PRIVATE_COMMENT,
        VR::LT,
        format!(
            "Scan log: {} ({}) scanned at {} by {}.",
            patient.name, patient.id, study.institution.name, staff.operator
        ),
    );
}

fn procedure_code(study: &StudyPlan) -> DataSet {
    let mut code = item();
    code.str(tags::CODE_VALUE, study.procedure_code.clone());
    code.str(tags::CODING_SCHEME_DESIGNATOR, "99SYNTH");
    code.str(tags::CODE_MEANING, study.description.clone());
    code
}

/// Patient-space geometry for CT and MR; projection geometry for CR.
fn put_geometry(ds: &mut DataSet, study: &StudyPlan, series: &SeriesPlan, instance: usize, side: u16) {
    let fov = series.field_of_view_mm;
    let spacing = fov / f64::from(side);
    let Some(frame_of_reference_uid) = &study.frame_of_reference_uid else {
        ds.decimals(tags::IMAGER_PIXEL_SPACING, &[spacing, spacing]);
        if let Some(view) = series.view_position {
            ds.str(tags::VIEW_POSITION, view);
        }
        if let Some(orientation) = &series.patient_orientation {
            ds.strs(tags::PATIENT_ORIENTATION, orientation);
        }
        return;
    };

    let patient_position = if study.body_part == BodyPart::Knee { "FFS" } else { "HFS" };
    ds.str(tags::PATIENT_POSITION, patient_position);
    ds.str(tags::FRAME_OF_REFERENCE_UID, frame_of_reference_uid.clone());
    ds.empty(tags::POSITION_REFERENCE_INDICATOR);
    ds.decimals(tags::PIXEL_SPACING, &[spacing, spacing]);
    ds.decimal(tags::SLICE_THICKNESS, series.slice_thickness_mm);

    // Slices are centred on the body part; offsets run across the stack.
    let centre_z = match study.body_part {
        BodyPart::Head => 60.0,
        BodyPart::Chest => -150.0,
        BodyPart::Abdomen => -350.0,
        BodyPart::Knee => -900.0,
    };
    let offset = (instance as f64 - (series.count as f64 - 1.0) / 2.0) * series.slice_spacing_mm;
    let half = fov / 2.0;
    let (position, orientation, location) = match series.plane {
        Plane::Axial => ([-half, -half, centre_z - offset], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], Some(centre_z - offset)),
        Plane::Sagittal => ([offset, -half, centre_z + half], [0.0, 1.0, 0.0, 0.0, 0.0, -1.0], Some(offset)),
        Plane::Coronal => ([-half, offset, centre_z + half], [1.0, 0.0, 0.0, 0.0, 0.0, -1.0], Some(offset)),
        Plane::Frontal | Plane::Lateral => ([-half, 0.0, centre_z + half], [1.0, 0.0, 0.0, 0.0, 0.0, -1.0], None),
    };
    if series.plane != Plane::Frontal && series.plane != Plane::Lateral {
        ds.decimal(tags::SPACING_BETWEEN_SLICES, series.slice_spacing_mm);
    }
    ds.decimals(tags::IMAGE_POSITION_PATIENT, &position);
    ds.decimals(tags::IMAGE_ORIENTATION_PATIENT, &orientation);
    if let Some(location) = location {
        ds.decimal(tags::SLICE_LOCATION, location);
    }
}

/// Modality-specific acquisition parameters.
fn put_acquisition(ds: &mut DataSet, study: &StudyPlan, series: &SeriesPlan) {
    match study.modality {
        Modality::Ct => {
            let localizer = series.plane == Plane::Frontal;
            let (current_ma, kernel) = match (localizer, study.body_part) {
                (true, _) => (30, "T20s"),
                (false, BodyPart::Head) => (300, "H30s"),
                (false, _) => (220, "B30f"),
            };
            ds.str(tags::KVP, "120");
            ds.integer(tags::DATA_COLLECTION_DIAMETER, 500);
            ds.decimal(tags::RECONSTRUCTION_DIAMETER, series.field_of_view_mm);
            ds.decimal(tags::GANTRY_DETECTOR_TILT, 0.0);
            ds.decimal(tags::TABLE_HEIGHT, 160.0);
            ds.str(tags::ROTATION_DIRECTION, "CW");
            ds.integer(tags::EXPOSURE_TIME, 1000);
            ds.integer(tags::X_RAY_TUBE_CURRENT, current_ma);
            ds.str(tags::CONVOLUTION_KERNEL, kernel);
        }
        Modality::Cr => {
            let (kvp, current_ma, time_ms): (u32, u32, u32) = match study.body_part {
                BodyPart::Knee => (60, 200, 20),
                _ => (120, 250, 8),
            };
            ds.integer(tags::KVP, kvp);
            ds.integer(tags::EXPOSURE_TIME, time_ms);
            ds.integer(tags::X_RAY_TUBE_CURRENT, current_ma);
            ds.integer(tags::EXPOSURE, (current_ma * time_ms).div_ceil(1000));
        }
        Modality::Mr => {
            let Some(mr) = series.mr else { return };
            ds.str(tags::SCANNING_SEQUENCE, mr.scanning_sequence);
            ds.strs(tags::SEQUENCE_VARIANT, mr.sequence_variant);
            if mr.scan_options.is_empty() {
                ds.empty(tags::SCAN_OPTIONS);
            } else {
                ds.str(tags::SCAN_OPTIONS, mr.scan_options);
            }
            ds.str(tags::MR_ACQUISITION_TYPE, "2D");
            ds.str(tags::SEQUENCE_NAME, mr.sequence_name);
            ds.decimal(tags::REPETITION_TIME, mr.repetition_time_ms);
            ds.decimal(tags::ECHO_TIME, mr.echo_time_ms);
            if let Some(ti) = mr.inversion_time_ms {
                ds.decimal(tags::INVERSION_TIME, ti);
            }
            ds.integer(tags::ECHO_TRAIN_LENGTH, mr.echo_train_length);
            ds.decimal(tags::IMAGING_FREQUENCY, 63.8766);
            ds.str(tags::IMAGED_NUCLEUS, "1H");
            ds.decimal(tags::MAGNETIC_FIELD_STRENGTH, 1.5);
            ds.decimal(tags::FLIP_ANGLE, mr.flip_angle_deg);
        }
    }
}

/// Image pixel module, value transforms and the pixel data itself.
fn put_pixels(
    ds: &mut DataSet,
    opts: &SynthOptions,
    study: &StudyPlan,
    series: &SeriesPlan,
    instance: usize,
    side: u16,
) {
    let signed = series.contrast == Contrast::Ct;
    let photometric = if study.monochrome1 { "MONOCHROME1" } else { "MONOCHROME2" };
    ds.us(tags::SAMPLES_PER_PIXEL, 1);
    ds.str(tags::PHOTOMETRIC_INTERPRETATION, photometric);
    ds.us(tags::ROWS, side);
    ds.us(tags::COLUMNS, side);
    ds.us(tags::BITS_ALLOCATED, 16);
    ds.us(tags::BITS_STORED, 12);
    ds.us(tags::HIGH_BIT, 11);
    ds.us(tags::PIXEL_REPRESENTATION, u16::from(signed));

    let (centers, widths, explanations): (&[f64], &[f64], &[&str]) = match (series.contrast, study.body_part) {
        (Contrast::Ct, _) if series.plane == Plane::Frontal => (&[0.0], &[1000.0], &["TOPOGRAM"]),
        (Contrast::Ct, BodyPart::Head) => (&[40.0], &[80.0], &["BRAIN"]),
        (Contrast::Ct, BodyPart::Chest) => (&[40.0, -600.0], &[400.0, 1500.0], &["MEDIASTINUM", "LUNG"]),
        (Contrast::Ct, _) => (&[50.0], &[350.0], &["ABDOMEN"]),
        (Contrast::Xray, _) => (&[2048.0], &[4096.0], &["FULL"]),
        (Contrast::MrT1, _) => (&[900.0], &[1800.0], &["T1"]),
        (Contrast::MrT2, _) => (&[1000.0], &[2200.0], &["T2"]),
        (Contrast::MrPd, _) => (&[1000.0], &[2000.0], &["PD"]),
        (Contrast::MrFlair, _) => (&[700.0], &[1400.0], &["FLAIR"]),
    };
    ds.decimals(tags::WINDOW_CENTER, centers);
    ds.decimals(tags::WINDOW_WIDTH, widths);
    ds.strs(tags::WINDOW_CENTER_WIDTH_EXPLANATION, explanations);
    if signed {
        ds.decimal(tags::RESCALE_INTERCEPT, -1024.0);
        ds.decimal(tags::RESCALE_SLOPE, 1.0);
        // PS3.3 C.8.2.1.1.4: a localizer's values are not calibrated Hounsfield units.
        if series.plane != Plane::Frontal {
            ds.str(tags::RESCALE_TYPE, "HU");
        }
    }

    let mut rng = stream_rng(opts.seed, Stream::Pixels, &[study.index as u64, series.index as u64, instance as u64]);
    let slice_position = pixels::slice_position(instance, series.count);
    let pixels = pixels::render(
        &ImageSpec {
            body_part: study.body_part,
            plane: series.plane,
            contrast: series.contrast,
            slice_position,
            inverted: study.monochrome1,
            rows: side,
            columns: side,
            lesion: study.lesion.as_ref().and_then(|lesion| lesion.disc(series.index, instance)),
        },
        &mut rng,
    );
    ds.0.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into())));
}

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};

use dicom_core::header::Header as _;
use dicom_dictionary_std::{tags, uids};
use dicom_object::DefaultDicomObject;

use super::uid::is_valid_uid;
use super::*;

/// Small images keep the tests fast; sizes are tested separately.
fn small(studies: usize, seed: u64) -> SynthOptions {
    SynthOptions { studies, seed, target_instance_bytes: Some(12 * 1024), ..SynthOptions::default() }
}

/// Parses a Part-10 file held in memory (`from_reader` starts after the preamble).
fn parse(instance: &SynthInstance) -> DefaultDicomObject {
    assert_eq!(&instance.bytes[128..132], b"DICM");
    dicom_object::from_reader(&instance.bytes[128..]).expect("synthetic file parses")
}

fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap_or_else(|_| panic!("{tag} missing"))
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_owned()
}

#[test]
fn files_parse_back_with_consistent_attributes() {
    let opts = SynthOptions { studies: 3, seed: 11, ..SynthOptions::default() };
    for instance in generate(&opts) {
        let obj = parse(&instance);
        let meta = obj.meta();
        assert_eq!(meta.transfer_syntax(), uids::EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(meta.media_storage_sop_class_uid(), instance.sop_class_uid);
        assert_eq!(meta.media_storage_sop_instance_uid(), instance.sop_instance_uid);
        assert_eq!(meta.implementation_class_uid(), IMPLEMENTATION_CLASS_UID);

        assert_eq!(text(&obj, tags::SOP_INSTANCE_UID), instance.sop_instance_uid);
        assert_eq!(text(&obj, tags::STUDY_INSTANCE_UID), instance.study_instance_uid);
        assert_eq!(text(&obj, tags::SERIES_INSTANCE_UID), instance.series_instance_uid);
        assert_eq!(text(&obj, tags::MODALITY), instance.modality);
        assert_eq!(Some(text(&obj, tags::BODY_PART_EXAMINED)), instance.body_part_examined);
        let number: i32 = obj.element(tags::INSTANCE_NUMBER).unwrap().to_int().unwrap();
        assert_eq!(number, instance.instance_number);
        assert_eq!(
            instance.relative_path,
            format!(
                "{}/{}/{}.dcm",
                instance.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid
            )
        );

        let rows: u16 = obj.element(tags::ROWS).unwrap().to_int().unwrap();
        let columns: u16 = obj.element(tags::COLUMNS).unwrap().to_int().unwrap();
        assert_eq!((rows, columns), (DEFAULT_IMAGE_SIDE, DEFAULT_IMAGE_SIDE));
        let pixel_data = obj.element(tags::PIXEL_DATA).unwrap();
        assert_eq!(pixel_data.vr(), dicom_core::VR::OW);
        assert_eq!(pixel_data.to_bytes().unwrap().len(), 256 * 256 * 2);
        let signed: u16 = obj.element(tags::PIXEL_REPRESENTATION).unwrap().to_int().unwrap();
        assert_eq!(signed == 1, instance.modality == "CT");
        if instance.modality == "CT" {
            assert_eq!(text(&obj, tags::RESCALE_INTERCEPT), "-1024");
            assert!(obj.element(tags::KVP).is_ok());
        }
        if instance.modality != "CR" {
            for tag in [
                tags::FRAME_OF_REFERENCE_UID,
                tags::IMAGE_POSITION_PATIENT,
                tags::IMAGE_ORIENTATION_PATIENT,
                tags::PIXEL_SPACING,
                tags::SLICE_THICKNESS,
            ] {
                assert!(obj.element(tag).is_ok(), "{tag} missing in {}", instance.modality);
            }
        }
    }
}

#[test]
fn uids_are_valid_and_unique_across_twenty_studies() {
    let instances: Vec<SynthInstance> = generate(&small(20, 3)).collect();
    let mut seen = HashSet::new();
    let mut studies = HashSet::new();
    let mut series = HashSet::new();
    for instance in &instances {
        for uid in [&instance.study_instance_uid, &instance.series_instance_uid, &instance.sop_instance_uid] {
            assert!(is_valid_uid(uid), "invalid UID {uid}");
            assert!(uid.starts_with("2.25."), "{uid}");
        }
        assert!(seen.insert(instance.sop_instance_uid.clone()));
        studies.insert(instance.study_instance_uid.clone());
        series.insert(instance.series_instance_uid.clone());
    }
    assert_eq!(studies.len(), 20);
    assert!(studies.is_disjoint(&series) && !series.contains(&instances[0].sop_instance_uid));
    let series_count: usize = (0..20).map(|s| plan::StudyPlan::new(&small(20, 3), s).series.len()).sum();
    assert_eq!(series.len(), series_count);

    let custom = SynthOptions { uid_root: "1.2.826.0.1.3680043.10".to_owned(), ..small(1, 3) };
    let instance = generate(&custom).next().unwrap();
    assert!(instance.sop_instance_uid.starts_with("1.2.826.0.1.3680043.10."));
    assert!(is_valid_uid(&instance.sop_instance_uid));
}

#[test]
fn same_options_give_same_bytes_and_seeds_differ() {
    let first: Vec<SynthInstance> = generate(&small(4, 42)).collect();
    let again: Vec<SynthInstance> = generate(&small(4, 42)).collect();
    assert_eq!(first, again);

    let other: Vec<SynthInstance> = generate(&small(4, 43)).collect();
    let uids: HashSet<&str> = first.iter().map(|i| i.sop_instance_uid.as_str()).collect();
    assert!(other.iter().all(|i| !uids.contains(i.sop_instance_uid.as_str())));
    assert_ne!(first[0].study_instance_uid, other[0].study_instance_uid);
}

#[test]
fn modalities_rotate_with_realistic_series() {
    let opts = small(20, 5);
    // Study -> series -> (modality, body part, count, distinct SOP classes).
    let mut studies: BTreeMap<String, BTreeMap<String, Vec<SynthInstance>>> = BTreeMap::new();
    let mut order = Vec::new();
    for instance in generate(&opts) {
        if !studies.contains_key(&instance.study_instance_uid) {
            order.push(instance.study_instance_uid.clone());
        }
        studies
            .entry(instance.study_instance_uid.clone())
            .or_default()
            .entry(instance.series_instance_uid.clone())
            .or_default()
            .push(instance);
    }
    let mut per_modality = BTreeMap::new();
    for (index, study_uid) in order.iter().enumerate() {
        let series = &studies[study_uid];
        let first = &series.values().next().unwrap()[0];
        let expected = ["CT", "CR", "MR"][index % 3];
        assert_eq!(first.modality, expected, "study {index}");
        *per_modality.entry(expected).or_insert(0) += 1;
        let counts: Vec<usize> = series.values().map(Vec::len).collect();
        for instances in series.values() {
            assert!(instances.iter().all(|i| i.series_instance_count as usize == instances.len()));
            let numbers: Vec<i32> = instances.iter().map(|i| i.instance_number).collect();
            assert_eq!(numbers, (1..=instances.len() as i32).collect::<Vec<_>>());
            let sop_class = match expected {
                "CT" => uids::CT_IMAGE_STORAGE,
                "CR" => uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
                _ => uids::MR_IMAGE_STORAGE,
            };
            assert!(instances.iter().all(|i| i.sop_class_uid == sop_class && i.modality == expected));
        }
        match expected {
            "CT" => {
                assert_eq!(counts.len(), 2);
                assert!(counts.contains(&1));
                assert!(counts.iter().any(|&c| (4..=12).contains(&c)));
            }
            "CR" => {
                assert!((1..=2).contains(&counts.len()));
                assert!(counts.iter().all(|&c| c == 1));
            }
            _ => {
                assert!((2..=3).contains(&counts.len()));
                assert!(counts.iter().all(|&c| (3..=6).contains(&c)));
            }
        }
    }
    assert_eq!(per_modality, BTreeMap::from([("CT", 7), ("CR", 7), ("MR", 6)]));

    let fixed = SynthOptions { instances_per_series: Some(2), ..small(3, 5) };
    assert!(generate(&fixed).all(|i| i.series_instance_count == 2));
}

#[test]
fn study_ranges_concatenate_to_the_whole_run() {
    let opts = small(5, 13);
    let whole: Vec<SynthInstance> = generate(&opts).collect();
    let mut parts: Vec<SynthInstance> = generate_studies(&opts, 0..2).collect();
    parts.extend(generate_studies(&opts, 2..4));
    parts.extend(generate_studies(&opts, 4..99));
    assert_eq!(parts, whole);
    assert_eq!(generate_studies(&opts, 7..9).len(), 0);
}

#[test]
fn length_is_known_up_front() {
    let opts = small(5, 9);
    let iter = generate(&opts);
    assert_eq!(iter.len(), count_instances(&opts));
    assert_eq!(iter.count(), count_instances(&opts));
}

#[test]
fn target_size_is_met_within_ten_percent() {
    for target in [48 * 1024, 512 * 1024] {
        let opts = SynthOptions {
            studies: 3,
            seed: 1,
            target_instance_bytes: Some(target),
            instances_per_series: Some(1),
            ..SynthOptions::default()
        };
        for instance in generate(&opts) {
            let size = instance.bytes.len() as f64;
            let ratio = size / target as f64;
            assert!((0.9..=1.1).contains(&ratio), "{} file of {size} bytes for target {target}", instance.modality);
        }
    }
}

#[test]
fn phi_is_present_in_the_usual_places() {
    for instance in generate(&small(3, 8)) {
        let obj = parse(&instance);
        let name = text(&obj, tags::PATIENT_NAME);
        let id = text(&obj, tags::PATIENT_ID);
        assert!(name.starts_with("SYNTH^PATIENT^"), "{name}");
        assert!(id.starts_with("SYN"), "{id}");
        for tag in [
            tags::PATIENT_BIRTH_DATE,
            tags::PATIENT_SEX,
            tags::PATIENT_AGE,
            tags::ACCESSION_NUMBER,
            tags::STUDY_DATE,
            tags::REFERRING_PHYSICIAN_NAME,
            tags::PERFORMING_PHYSICIAN_NAME,
            tags::OPERATORS_NAME,
            tags::REQUESTING_PHYSICIAN,
            tags::INSTITUTION_NAME,
            tags::INSTITUTION_ADDRESS,
            tags::STATION_NAME,
            tags::DEVICE_SERIAL_NUMBER,
        ] {
            assert!(!text(&obj, tag).is_empty(), "{tag} empty");
        }
        assert!(text(&obj, tags::IMAGE_COMMENTS).contains(&name));
        assert!(text(&obj, tags::PATIENT_COMMENTS).contains(&id));

        let private_name =
            obj.private_element(PRIVATE_GROUP, PRIVATE_CREATOR, PRIVATE_PATIENT_NAME).expect("private patient name");
        assert_eq!(private_name.to_str().unwrap().trim_end(), name);
        // The block sits at the first slot PS3.5 allows, not in (0009,0001-000F).
        assert_eq!(private_name.tag(), dicom_core::Tag(PRIVATE_GROUP, 0x1010));
        let private_comment = obj.private_element(PRIVATE_GROUP, PRIVATE_CREATOR, PRIVATE_COMMENT).unwrap();
        assert!(private_comment.to_str().unwrap().contains(&id));

        let other_ids = obj.element(tags::OTHER_PATIENT_I_DS_SEQUENCE).unwrap();
        let other = &other_ids.items().unwrap()[0];
        assert!(text_in(other, tags::PATIENT_ID).starts_with("SYNALT"));

        let request = &obj.element(tags::REQUEST_ATTRIBUTES_SEQUENCE).unwrap().items().unwrap()[0];
        assert_eq!(text_in(request, tags::ACCESSION_NUMBER), text(&obj, tags::ACCESSION_NUMBER));
        assert_eq!(text_in(request, tags::STUDY_INSTANCE_UID), instance.study_instance_uid);
        assert!(!text_in(request, tags::REQUESTED_PROCEDURE_ID).is_empty());
        assert!(!text_in(request, tags::SCHEDULED_PROCEDURE_STEP_ID).is_empty());
        for tag in [tags::PROCEDURE_CODE_SEQUENCE, tags::REFERRING_PHYSICIAN_IDENTIFICATION_SEQUENCE] {
            assert_eq!(obj.element(tag).unwrap().items().unwrap().len(), 1);
        }
    }
}

fn text_in(item: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> String {
    item.element(tag).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_owned()
}

#[test]
fn a_patient_keeps_demographics_across_studies() {
    let instances: Vec<SynthInstance> = generate(&small(3, 21)).collect();
    let cr = instances.iter().find(|i| i.modality == "CR").map(parse).unwrap();
    let mr = instances.iter().find(|i| i.modality == "MR").map(parse).unwrap();
    for tag in [tags::PATIENT_NAME, tags::PATIENT_ID, tags::PATIENT_BIRTH_DATE, tags::PATIENT_SEX] {
        assert_eq!(text(&cr, tag), text(&mr, tag));
    }
    assert_ne!(text(&cr, tags::ACCESSION_NUMBER), text(&mr, tags::ACCESSION_NUMBER));
}

#[test]
fn written_files_open_and_metadata_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(2, 4);
    let written = write_to_dir(&opts, dir.path()).unwrap();
    assert_eq!(written.len(), count_instances(&opts));
    for instance in &written {
        assert!(instance.bytes.is_empty());
        let obj = dicom_object::open_file(dir.path().join(&instance.relative_path)).unwrap();
        assert_eq!(text(&obj, tags::SOP_INSTANCE_UID), instance.sop_instance_uid);
    }
    let manifest = serde_json::to_value(&written[0]).unwrap();
    assert!(manifest.get("bytes").is_none());
    assert!(format!("{:?}", generate(&opts).next().unwrap()).contains(" bytes>"));
}

#[test]
fn invalid_options_are_rejected() {
    let bad = [
        SynthOptions { uid_root: "2.25.x".to_owned(), ..SynthOptions::default() },
        SynthOptions { instances_per_series: Some(0), ..SynthOptions::default() },
        SynthOptions { target_instance_bytes: Some(100), ..SynthOptions::default() },
    ];
    for opts in bad {
        assert!(opts.validate().is_err(), "{opts:?}");
        assert!(write_to_dir(&opts, Path::new("/nonexistent")).is_err());
    }
    assert!(SynthOptions::default().validate().is_ok());
}

/// Hounsfield units of a synthetic CT file (stored values are signed, intercept -1024).
fn hounsfield(instance: &SynthInstance) -> Vec<i32> {
    let bytes = parse(instance).element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap().into_owned();
    bytes.chunks_exact(2).map(|b| i32::from(i16::from_le_bytes([b[0], b[1]])) - 1024).collect()
}

#[test]
fn bleeds_are_planted_by_the_documented_rule() {
    let (mut later_head_cts, mut later_planted) = (0, 0);
    for seed in 0..40 {
        let truth = ground_truth(&small(12, seed)).unwrap();
        assert_eq!(truth.studies.len(), 12);
        for (index, study) in truth.studies.iter().enumerate() {
            let head_ct = study.modality == "CT" && study.body_part_examined == "HEAD";
            match index {
                0 => assert!(head_ct && study.lesion.is_some(), "seed {seed}: study 0 {study:?}"),
                3 => assert!(head_ct && study.lesion.is_none(), "seed {seed}: study 3 {study:?}"),
                _ if !head_ct => assert!(study.lesion.is_none(), "seed {seed}: study {index} {study:?}"),
                _ => {
                    later_head_cts += 1;
                    later_planted += usize::from(study.lesion.is_some());
                }
            }
            let Some(lesion) = &study.lesion else { continue };
            assert_eq!(lesion.kind, LesionKind::AcuteBleed);
            assert!((1..=4).contains(&lesion.instances.len()), "{lesion:?}");
            let first = lesion.instances[0].instance_number;
            for (k, instance) in lesion.instances.iter().enumerate() {
                assert_eq!(instance.instance_number, first + k as i32, "consecutive slices");
                assert!((66.0..=74.0).contains(&instance.disc.hounsfield));
            }
        }
    }
    assert!(later_head_cts >= 20, "{later_head_cts} later head CTs");
    let share = later_planted as f64 / later_head_cts as f64;
    assert!((0.3..=0.7).contains(&share), "{later_planted} of {later_head_cts} later head CTs planted");
}

#[test]
fn instances_carry_the_ground_truth() {
    let opts = SynthOptions { studies: 7, seed: 17, instances_per_series: Some(3), ..small(7, 17) };
    let truth = ground_truth(&opts).unwrap();
    let planted: BTreeMap<String, LesionDisc> = truth
        .studies
        .iter()
        .filter_map(|s| s.lesion.as_ref())
        .flat_map(|l| l.instances.iter().map(|i| (i.sop_instance_uid.clone(), i.disc.clone())))
        .collect();
    assert!(!planted.is_empty());
    let mut seen = 0;
    for instance in generate(&opts) {
        assert_eq!(instance.lesion.as_ref(), planted.get(&instance.sop_instance_uid), "{instance:?}");
        seen += usize::from(instance.lesion.is_some());
        let manifest = serde_json::to_value(&instance).unwrap();
        assert_eq!(manifest.get("lesion").is_some(), instance.lesion.is_some());
    }
    assert_eq!(seen, planted.len());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truth/lesions.json");
    assert_eq!(write_ground_truth(&opts, &path).unwrap(), truth);
    let read: GroundTruth = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(read, truth);
    assert!(ground_truth(&SynthOptions { uid_root: "x".into(), ..opts }).is_err());
}

#[test]
fn planted_pixels_show_the_bleed_and_clean_ones_do_not() {
    // Full-size images, as the demo model sees them; several seeds for several placements.
    let (mut lesion_slices, mut clean_slices) = (0, 0);
    for seed in [1, 2, 3] {
        let opts = SynthOptions { studies: 7, seed, ..SynthOptions::default() };
        for instance in generate(&opts).filter(|i| i.modality == "CT") {
            let hu = hounsfield(&instance);
            let side = usize::from(DEFAULT_IMAGE_SIDE);
            let head = instance.body_part_examined.as_deref() == Some("HEAD");
            let Some(disc) = &instance.lesion else {
                // Nothing between the brightest soft tissue (45 HU + noise) and bone in a clean
                // head slice; other body parts may have organs at 60 HU.
                if head {
                    assert!(!hu.iter().any(|h| (58..=500).contains(h)), "{instance:?} has a blob");
                    clean_slices += 1;
                }
                continue;
            };
            assert!(head, "{instance:?}");
            let (mut inside, mut in_range) = (Vec::new(), 0);
            for (index, &h) in hu.iter().enumerate() {
                let (row, column) = ((index / side) as f32, (index % side) as f32);
                let distance = ((column - disc.centre_column).powi(2) + (row - disc.centre_row).powi(2)).sqrt();
                if distance < disc.radius {
                    inside.push(h);
                    in_range += usize::from((60..=80).contains(&h));
                } else if distance < disc.radius + 3.0 {
                    // Brain parenchyma (35 HU) all around: no skull, no ventricle.
                    assert!((23..=47).contains(&h), "{instance:?}: {h} HU next to the bleed");
                } else {
                    assert!(!(58..=500).contains(&h), "{instance:?}: {h} HU away from the bleed");
                }
            }
            let expected = (std::f32::consts::PI * disc.radius * disc.radius) as usize;
            assert!(inside.len().abs_diff(expected) < expected / 10 + 8, "{} of {expected} pixels", inside.len());
            let mean = inside.iter().sum::<i32>() as f32 / inside.len() as f32;
            assert!((mean - disc.hounsfield).abs() < 2.0, "mean {mean} HU for {}", disc.hounsfield);
            assert!(in_range * 10 >= inside.len() * 8, "{in_range} of {} pixels in 60-80 HU", inside.len());
            let width = 2.0 * 0.78 * side as f32 / 2.0;
            assert!(disc.radius >= 0.8 * 0.06 * 0.78 * width && disc.radius <= 0.10 * width, "{disc:?}");
            lesion_slices += 1;
        }
    }
    assert!(lesion_slices >= 6 && clean_slices >= 20, "{lesion_slices} lesion and {clean_slices} clean slices");
}

//! Deterministic synthetic DICOM studies for tests, the demo and benchmarks.
//!
//! [`generate`] yields one Part-10 file per instance, lazily, so a run of 100k
//! instances never holds more than one file in memory. The same
//! [`SynthOptions`] always give the same bytes; a different seed gives
//! different UIDs, dates, people and pixels.
//!
//! # What a run looks like
//!
//! Modalities rotate per study: study `i` is CT when `i % 3 == 0`, CR when 1,
//! MR when 2.
//! - CT (HEAD, CHEST or ABDOMEN): a one-image localizer series (`TOPOGRAM`) and
//!   an axial series of 4 to 12 slices, 5 mm apart, signed 12-bit values with a
//!   rescale intercept of -1024 (Hounsfield units).
//! - CR (CHEST, or KNEE one time in three): one or two single-image series, PA
//!   or AP then lateral; one study in three is MONOCHROME1.
//! - MR (HEAD or KNEE): two or three series (T1/T2/FLAIR or PD/PD FS/T1) of 3
//!   to 6 slices each.
//!
//! [`SynthOptions::instances_per_series`] replaces every series' count, the
//! single-image ones included. CR and MR studies `3k+1` and `3k+2` belong to
//! the same patient, so some patients have two studies.
//!
//! # Planted lesions
//!
//! Some head CT studies carry an acute bleed, a hyperdense blob in the brain, on a
//! few consecutive axial slices: always study 0, never study 3 (both head CTs
//! whatever their draw), and about half of the later head CTs, by seed. The
//! module `lesion` has the rule and the shape. Nothing but the pixels tells a
//! planted study apart; [`SynthInstance::lesion`] and [`ground_truth`] say
//! where each bleed is.
//!
//! # Identifying information
//!
//! Everything is fictitious (`SYNTH^PATIENT^0007`, `SYN0007`, `SYNTH GENERAL
//! HOSPITAL`), but placed where real scanners put it so that de-identification
//! has something to find: patient and physician names, IDs, dates, age, size
//! and weight; OtherPatientIDsSequence; ReferringPhysicianIdentificationSequence;
//! ProcedureCodeSequence; RequestAttributesSequence (with AccessionNumber,
//! StudyInstanceUID, RequestedProcedureID, ScheduledProcedureStepID);
//! RequestingPhysician, PerformingPhysicianName, OperatorsName; free text in
//! ImageComments and PatientComments; and a private block in group
//! [`PRIVATE_GROUP`] under creator [`PRIVATE_CREATOR`] holding the patient's
//! name ([`PRIVATE_PATIENT_NAME`], PN), ID ([`PRIVATE_PATIENT_ID`], LO) and a
//! scan-log comment naming both ([`PRIVATE_COMMENT`], LT).
//!
//! RequestingPhysician sits at the top level, where scanners copy it from the
//! worklist, rather than in RequestAttributesSequence, whose macro does not
//! allow it.

mod dataset;
mod error;
mod lesion;
mod options;
mod pixels;
mod plan;
mod rng;
mod scan;
mod uid;

use std::ops::Range;
use std::path::Path;

use anyhow::Context as _;

pub use dataset::{PRIVATE_COMMENT, PRIVATE_CREATOR, PRIVATE_GROUP, PRIVATE_PATIENT_ID, PRIVATE_PATIENT_NAME};
pub use error::SynthError;
pub use lesion::{GroundTruth, LesionDisc, LesionInstance, LesionKind, LesionTruth, StudyTruth};
pub use options::{SynthInstance, SynthOptions, DEFAULT_IMAGE_SIDE, DEFAULT_UID_ROOT};
pub use uid::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};

use plan::StudyPlan;

/// Generates the instances of `opts`, study by study, series by series, one
/// file at a time. The iterator owns a copy of the options.
///
/// # Panics
///
/// If `opts` fails [`SynthOptions::validate`].
pub fn generate(opts: &SynthOptions) -> impl ExactSizeIterator<Item = SynthInstance> {
    generate_studies(opts, 0..opts.studies)
}

/// Generates only the studies in `studies`, exactly as [`generate`] would:
/// each study depends on the seed and its own index alone, so disjoint ranges
/// can be generated on separate threads. The range is cut to `0..opts.studies`.
///
/// # Panics
///
/// If `opts` fails [`SynthOptions::validate`].
pub fn generate_studies(opts: &SynthOptions, studies: Range<usize>) -> impl ExactSizeIterator<Item = SynthInstance> {
    if let Err(error) = opts.validate() {
        panic!("invalid synthetic study options: {error}");
    }
    let end = studies.end.min(opts.studies);
    let start = studies.start.min(end);
    SynthInstances {
        remaining: (start..end).map(|study| StudyPlan::new(opts, study).instance_count()).sum(),
        opts: opts.clone(),
        side: opts.image_side(),
        next_study: start,
        end_study: end,
        study: None,
        series: 0,
        instance: 0,
    }
}

/// Number of instances [`generate`] yields for `opts`, without building any.
pub fn count_instances(opts: &SynthOptions) -> usize {
    (0..opts.studies).map(|study| StudyPlan::new(opts, study).instance_count()).sum()
}

/// Writes every instance of `opts` under `dir` at its `relative_path` and
/// returns the instances with `bytes` emptied.
///
/// Only DICOM files go under `dir`, since `publish`, `deid` and `preprocess`
/// take every file of a folder; [`write_ground_truth`] writes where the planted
/// lesions are.
pub fn write_to_dir(opts: &SynthOptions, dir: &Path) -> anyhow::Result<Vec<SynthInstance>> {
    opts.validate()?;
    let mut written = Vec::with_capacity(count_instances(opts));
    for mut instance in generate(opts) {
        let path = instance.relative_path.split('/').fold(dir.to_path_buf(), |path, part| path.join(part));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &instance.bytes).with_context(|| format!("writing {}", path.display()))?;
        instance.bytes = Vec::new();
        written.push(instance);
    }
    Ok(written)
}

/// Which studies of `opts` are which, and where their planted lesions are,
/// without building any file.
pub fn ground_truth(opts: &SynthOptions) -> Result<GroundTruth, SynthError> {
    opts.validate()?;
    let side = opts.image_side();
    let studies = (0..opts.studies)
        .map(|index| {
            let study = StudyPlan::new(opts, index);
            let lesion = study.lesion.as_ref().map(|lesion| {
                let series = &study.series[lesion.series];
                LesionTruth {
                    kind: LesionKind::AcuteBleed,
                    series_instance_uid: series.instance_uid.clone(),
                    instances: (lesion.first..lesion.first + lesion.slices)
                        .filter_map(|instance| {
                            let disc = lesion.disc_in_pixels(series.index, instance, side)?;
                            Some(LesionInstance {
                                sop_instance_uid: dataset::sop_instance_uid(opts, &study, series, instance),
                                instance_number: instance as i32 + 1,
                                disc,
                            })
                        })
                        .collect(),
                }
            });
            StudyTruth {
                study_instance_uid: study.instance_uid.clone(),
                modality: study.modality.code().to_owned(),
                body_part_examined: study.body_part.code().to_owned(),
                lesion,
            }
        })
        .collect();
    Ok(GroundTruth { seed: opts.seed, image_side: side, studies })
}

/// Writes [`ground_truth`] of `opts` to `path` as pretty-printed JSON (a
/// `lesions.json` beside the folder of [`write_to_dir`], not in it).
pub fn write_ground_truth(opts: &SynthOptions, path: &Path) -> anyhow::Result<GroundTruth> {
    let truth = ground_truth(opts)?;
    let mut json = serde_json::to_vec_pretty(&truth)?;
    json.push(b'\n');
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    Ok(truth)
}

struct SynthInstances {
    opts: SynthOptions,
    side: u16,
    next_study: usize,
    end_study: usize,
    study: Option<StudyPlan>,
    series: usize,
    instance: usize,
    remaining: usize,
}

impl Iterator for SynthInstances {
    type Item = SynthInstance;

    fn next(&mut self) -> Option<SynthInstance> {
        loop {
            let Some(study) = &self.study else {
                if self.next_study >= self.end_study {
                    return None;
                }
                self.study = Some(StudyPlan::new(&self.opts, self.next_study));
                self.next_study += 1;
                self.series = 0;
                self.instance = 0;
                continue;
            };
            let Some(series) = study.series.get(self.series) else {
                self.study = None;
                continue;
            };
            if self.instance >= series.count {
                self.series += 1;
                self.instance = 0;
                continue;
            }
            let built = dataset::build_instance(&self.opts, study, series, self.instance, self.side);
            self.instance += 1;
            self.remaining -= 1;
            return Some(built);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for SynthInstances {}

#[cfg(test)]
mod tests;

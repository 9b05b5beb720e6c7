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
mod lesion;
mod pixels;
mod plan;
mod uid;

use std::fmt;
use std::ops::Range;
use std::path::Path;

use anyhow::Context as _;

pub use dataset::{PRIVATE_COMMENT, PRIVATE_CREATOR, PRIVATE_GROUP, PRIVATE_PATIENT_ID, PRIVATE_PATIENT_NAME};
pub use lesion::{GroundTruth, LesionDisc, LesionInstance, LesionKind, LesionTruth, StudyTruth};
pub use uid::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};

use plan::StudyPlan;

/// UID root used when none is given: UUID-derived UIDs (ITU-T X.667).
pub const DEFAULT_UID_ROOT: &str = "2.25";

/// Rows and columns of every image when no target size is given.
pub const DEFAULT_IMAGE_SIDE: u16 = 256;

/// Bytes of a file other than pixel data (measured: 2.7 to 3.1 KiB across
/// modalities); used to size images for [`SynthOptions::target_instance_bytes`].
const NON_PIXEL_BYTES: usize = 3 * 1024;
const MIN_IMAGE_SIDE: usize = 32;
const MAX_IMAGE_SIDE: usize = 8192;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOptions {
    /// Number of studies.
    pub studies: usize,
    /// Seed for everything random: UIDs, dates, people, series counts, pixel noise.
    pub seed: u64,
    /// Root of every generated UID, at most 24 characters so that
    /// `<root>.<128-bit number>` fits in 64. Defaults to [`DEFAULT_UID_ROOT`].
    pub uid_root: String,
    /// When set, rows and columns are chosen so that each file is about this
    /// many bytes (all images of a run share one size).
    pub target_instance_bytes: Option<usize>,
    /// When set, every series has exactly this many instances.
    pub instances_per_series: Option<usize>,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            studies: 3,
            seed: 0,
            uid_root: DEFAULT_UID_ROOT.to_owned(),
            target_instance_bytes: None,
            instances_per_series: None,
        }
    }
}

/// Why [`SynthOptions`] cannot be generated.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid UID root {root:?}: {reason}")]
    InvalidUidRoot { root: String, reason: &'static str },
    #[error("{studies} studies is more than the {max} that fit in a UID")]
    TooManyStudies { studies: usize, max: usize },
    #[error("instances_per_series must be between 1 and {max}, not {value}")]
    InstancesPerSeries { value: usize, max: usize },
    #[error("target_instance_bytes {value} is outside {min}..={max}")]
    TargetInstanceBytes { value: usize, min: usize, max: usize },
}

impl SynthOptions {
    /// Checks the options without generating anything.
    pub fn validate(&self) -> Result<(), SynthError> {
        uid::validate_root(&self.uid_root)?;
        if self.studies > uid::MAX_STUDIES {
            return Err(SynthError::TooManyStudies { studies: self.studies, max: uid::MAX_STUDIES });
        }
        if let Some(value) = self.instances_per_series {
            let max = uid::MAX_INSTANCES - 1;
            if value == 0 || value > max {
                return Err(SynthError::InstancesPerSeries { value, max });
            }
        }
        if let Some(value) = self.target_instance_bytes {
            let min = target_for_side(MIN_IMAGE_SIDE);
            let max = target_for_side(MAX_IMAGE_SIDE);
            if !(min..=max).contains(&value) {
                return Err(SynthError::TargetInstanceBytes { value, min, max });
            }
        }
        Ok(())
    }

    /// Rows (and columns) of every image in the run.
    pub fn image_side(&self) -> u16 {
        match self.target_instance_bytes {
            None => DEFAULT_IMAGE_SIDE,
            Some(target) => {
                let side = (target.saturating_sub(NON_PIXEL_BYTES) / 2).isqrt();
                side.clamp(MIN_IMAGE_SIDE, MAX_IMAGE_SIDE) as u16
            }
        }
    }
}

fn target_for_side(side: usize) -> usize {
    side * side * 2 + NON_PIXEL_BYTES
}

/// One synthetic instance: its identifiers and its Part-10 file.
///
/// [`write_to_dir`] returns these with `bytes` empty, the file being on disk
/// at `relative_path`. Serializing skips `bytes`, so a list of instances makes
/// a manifest.
#[derive(Clone, PartialEq, serde::Serialize)]
pub struct SynthInstance {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub modality: String,
    pub body_part_examined: Option<String>,
    /// 1-based position in the series.
    pub instance_number: i32,
    /// Number of instances in the series.
    pub series_instance_count: i32,
    /// `<study uid>/<series uid>/<sop uid>.dcm`, always with `/`.
    pub relative_path: String,
    /// The planted lesion this image shows, if any (left out of the manifest when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lesion: Option<LesionDisc>,
    /// The Part-10 file (Explicit VR Little Endian, native pixel data).
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl fmt::Debug for SynthInstance {
    // The file itself would drown the identifiers; show only its length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SynthInstance")
            .field("study_instance_uid", &self.study_instance_uid)
            .field("series_instance_uid", &self.series_instance_uid)
            .field("sop_instance_uid", &self.sop_instance_uid)
            .field("sop_class_uid", &self.sop_class_uid)
            .field("modality", &self.modality)
            .field("body_part_examined", &self.body_part_examined)
            .field("instance_number", &self.instance_number)
            .field("series_instance_count", &self.series_instance_count)
            .field("relative_path", &self.relative_path)
            .field("lesion", &self.lesion)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .finish()
    }
}

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

/// Independent random streams, so that adding a draw to one (say, a new
/// patient attribute) does not shift the values of the others.
#[derive(Clone, Copy)]
enum Stream {
    Study = 1,
    Patient = 2,
    Pixels = 3,
    Lesion = 4,
}

/// A generator keyed by the seed, the stream and the indices of what it is for.
fn stream_rng(seed: u64, stream: Stream, indices: &[u64]) -> fastrand::Rng {
    let mut key = splitmix64(seed ^ (stream as u64).rotate_left(32));
    for &index in indices {
        key = splitmix64(key ^ index);
    }
    fastrand::Rng::with_seed(key)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;

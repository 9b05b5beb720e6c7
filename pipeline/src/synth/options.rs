//! What to synthesize, and what comes out: [`SynthOptions`] and [`SynthInstance`].

use std::fmt;

use super::error::SynthError;
use super::lesion::LesionDisc;
use super::uid;

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

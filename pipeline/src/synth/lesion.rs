//! Planted lesions and their ground truth, so that a model's findings on synthetic studies can
//! be scored against what was put there.
//!
//! # Which studies carry one
//!
//! Only head CT studies do, and only in their axial series:
//! - study 0 is always a head CT with a bleed, so every run has a planted lesion;
//! - study 3 is always a head CT without one, so every run of 4 or more studies also has a
//!   clean head CT (a run of 3 holds a single CT study);
//! - later CT studies (6, 9, ...) keep the body part drawn for them, and a head CT among them
//!   carries a bleed when a coin drawn from the seed and the study's index says so: about half.
//!
//! CR and MR studies, chest and abdomen CT, localizers and the axial slices a bleed does not
//! reach are clean. The ground truth is not written into any DICOM attribute: a planted study
//! differs from its clean twin only in the pixels of the bleed.
//!
//! # The bleed
//!
//! An acute intraparenchymal haemorrhage: a ball of 66 to 74 HU (the pixels get the usual
//! noise of about 5 HU standard deviation on top) cut by 2 to 4 consecutive axial slices
//! (fewer when the series has fewer), of radius 6 to 10 % of the head's width on the narrowest
//! slice it spans. Its centre lies where the disc, and a margin around it, is brain parenchyma
//! on every slice it spans: clear of the skull and the ventricles. On the k-th of n slices the
//! disc's radius is `R * sqrt(1 - d^2)` with `d = (k - (n - 1) / 2) / ((n + 1) / 2)`, so every
//! slice the bleed spans shows at least 80 % of its radius.

use super::pixels::{self, Disc};
use super::rng::{stream_rng, Stream};
use super::scan::{BodyPart, Plane};

/// What kind of lesion was planted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LesionKind {
    /// A hyperdense blob in the brain parenchyma of a head CT.
    AcuteBleed,
}

/// A planted lesion as it appears on one image: a disc, in pixels of that image.
///
/// A pixel at (`column`, `row`), counted from 0 at the top left, is part of the lesion when
/// `(column - centre_column)^2 + (row - centre_row)^2 < radius^2`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LesionDisc {
    pub kind: LesionKind,
    /// The lesion's value before noise, in Hounsfield units.
    pub hounsfield: f32,
    /// Column of the centre, in pixels from the left edge's first pixel.
    pub centre_column: f32,
    /// Row of the centre, in pixels from the top edge's first pixel.
    pub centre_row: f32,
    /// Radius on this image, in pixels.
    pub radius: f32,
}

/// Where the lesions of a run are, and which studies are clean, without reading a file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroundTruth {
    /// The run's `SynthOptions::seed`.
    pub seed: u64,
    /// Rows and columns of every image of the run.
    pub image_side: u16,
    /// Every study of the run, in generation order.
    pub studies: Vec<StudyTruth>,
}

/// One study of a run and the lesion planted in it, if any.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StudyTruth {
    pub study_instance_uid: String,
    /// `CT`, `CR` or `MR`.
    pub modality: String,
    /// `HEAD`, `CHEST`, `ABDOMEN` or `KNEE`.
    pub body_part_examined: String,
    /// `None` for a clean study.
    pub lesion: Option<LesionTruth>,
}

/// A planted lesion: the series it is in and its disc on each instance it spans.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LesionTruth {
    pub kind: LesionKind,
    pub series_instance_uid: String,
    /// The instances that show the lesion, consecutive, in instance-number order. The other
    /// instances of the series are clean.
    pub instances: Vec<LesionInstance>,
}

/// A planted lesion on one instance.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LesionInstance {
    pub sop_instance_uid: String,
    pub instance_number: i32,
    #[serde(flatten)]
    pub disc: LesionDisc,
}

/// Bleed radius as a fraction of the head's width.
const RADIUS_FRACTION: (f32, f32) = (0.06, 0.10);
/// Brain parenchyma kept around the bleed, in normalized units (about 4 pixels at 256).
const MARGIN: f32 = 0.03;
/// Points on the circle checked against the anatomy.
const CIRCLE_POINTS: usize = 48;
/// Centres tried before the radius shrinks by a tenth.
const TRIES_PER_RADIUS: usize = 64;

/// Whether study `index` is a head CT whatever body part was drawn for it.
pub(super) fn forced_head_ct(index: usize) -> bool {
    index == 0 || index == 3
}

/// A bleed planted in one series of a study.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LesionPlan {
    /// Index of the series within the study.
    pub series: usize,
    /// The first instance the bleed spans.
    pub first: usize,
    /// How many consecutive instances it spans.
    pub slices: usize,
    pub centre_u: f32,
    pub centre_v: f32,
    /// Radius of the ball, in normalized units.
    pub radius: f32,
    pub hounsfield: f32,
}

impl LesionPlan {
    /// The bleed of CT study `index` (series `series` being its axial one, of `slice_count`
    /// slices), or `None` when the rule in the module's documentation leaves the study clean.
    pub(super) fn for_study(
        seed: u64,
        index: usize,
        body_part: BodyPart,
        series: usize,
        slice_count: usize,
    ) -> Option<Self> {
        if body_part != BodyPart::Head || slice_count == 0 {
            return None;
        }
        let mut rng = stream_rng(seed, Stream::Lesion, &[index as u64]);
        // Drawn for every head CT so that the draws after it do not depend on the rule.
        let coin = rng.bool();
        let planted = match index {
            0 => true,
            3 => false,
            _ => coin,
        };
        if !planted {
            return None;
        }
        let slices = rng.usize(2..=4).min(slice_count);
        let first = rng.usize(0..=slice_count - slices);
        let hounsfield = rng.i32(66..=74) as f32;
        let fraction = RADIUS_FRACTION.0 + (RADIUS_FRACTION.1 - RADIUS_FRACTION.0) * rng.f32();
        let scales: Vec<f32> = (first..first + slices)
            .map(|k| pixels::section_scale(BodyPart::Head, Plane::Axial, pixels::slice_position(k, slice_count)))
            .collect();
        let narrowest = scales.iter().copied().fold(f32::INFINITY, f32::min);
        let mut plan = LesionPlan {
            series,
            first,
            slices,
            centre_u: 0.0,
            centre_v: 0.0,
            radius: fraction * 2.0 * pixels::HEAD_HALF_WIDTH * narrowest,
            hounsfield,
        };
        // Rejection sampling over the head's bounding box; the radius shrinks only if no centre
        // fits, which the tests check does not happen for the sizes drawn.
        for attempt in 0.. {
            if attempt > 0 && attempt % TRIES_PER_RADIUS == 0 {
                plan.radius *= 0.9;
            }
            plan.centre_u = (2.0 * rng.f32() - 1.0) * pixels::HEAD_HALF_WIDTH * narrowest;
            plan.centre_v = -0.05 + (2.0 * rng.f32() - 1.0) * 0.9 * narrowest;
            if scales.iter().enumerate().all(|(k, &scale)| plan.fits(plan.slice_radius(k), scale)) {
                break;
            }
        }
        Some(plan)
    }

    /// Radius of the disc on the `k`-th slice the bleed spans.
    fn slice_radius(&self, k: usize) -> f32 {
        let half = (self.slices as f32 + 1.0) / 2.0;
        let d = (k as f32 - (self.slices as f32 - 1.0) / 2.0) / half;
        self.radius * (1.0 - d * d).sqrt()
    }

    /// Whether a disc of `radius` at the centre, with the margin, is all brain parenchyma on a
    /// slice of section scale `scale`.
    fn fits(&self, radius: f32, scale: f32) -> bool {
        let brain = |u, v| pixels::is_brain_parenchyma(u, v, scale);
        if !brain(self.centre_u, self.centre_v) {
            return false;
        }
        // Two circles: the ventricles are narrow enough to slip between the points of one.
        [radius + MARGIN, (radius + MARGIN) / 2.0].iter().all(|&r| {
            (0..CIRCLE_POINTS).all(|i| {
                let angle = std::f32::consts::TAU * i as f32 / CIRCLE_POINTS as f32;
                brain(self.centre_u + r * angle.cos(), self.centre_v + r * angle.sin())
            })
        })
    }

    /// The disc on instance `instance` of series `series`, if the bleed reaches it.
    pub(super) fn disc(&self, series: usize, instance: usize) -> Option<Disc> {
        if series != self.series || !(self.first..self.first + self.slices).contains(&instance) {
            return None;
        }
        Some(Disc {
            centre_u: self.centre_u,
            centre_v: self.centre_v,
            radius: self.slice_radius(instance - self.first),
            value: self.hounsfield,
        })
    }

    /// [`LesionPlan::disc`] in pixels of a `side` x `side` image.
    pub(super) fn disc_in_pixels(&self, series: usize, instance: usize, side: u16) -> Option<LesionDisc> {
        let disc = self.disc(series, instance)?;
        // Pixel (column, row) has its centre at u = 2 (column + 0.5) / side - 1.
        let half = f32::from(side) / 2.0;
        Some(LesionDisc {
            kind: LesionKind::AcuteBleed,
            hounsfield: disc.value,
            centre_column: (disc.centre_u + 1.0) * half - 0.5,
            centre_row: (disc.centre_v + 1.0) * half - 0.5,
            radius: disc.radius * half,
        })
    }
}

#[cfg(test)]
mod tests;

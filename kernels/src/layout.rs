//! Tensor layout: CHW images, NCHW batches, and slices stacked into a volume.
//!
//! Everything is row-major `f32` with the last index fastest: a CHW image holds plane after
//! plane, an NCHW tensor image after image, a DHW volume slice after slice.

use crate::error::{check_len, finite, PreprocessError};
use crate::resample::ImageSize;

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

fn checked_len(what: &'static str, shape: &[usize], actual: usize) -> Result<(), PreprocessError> {
    let expected =
        element_count(shape).ok_or(PreprocessError::LengthMismatch { what, expected: usize::MAX, actual })?;
    check_len(what, expected, actual)
}

/// One image of `[C, H, W]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChwImage {
    shape: [usize; 3],
    data: Vec<f32>,
}

impl ChwImage {
    /// An image of `shape` `[C, H, W]`; `data` must hold `C * H * W` values.
    pub fn new(shape: [usize; 3], data: Vec<f32>) -> Result<Self, PreprocessError> {
        checked_len("CHW image", &shape, data.len())?;
        Ok(Self { shape, data })
    }

    /// `[C, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The values, plane after plane.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, giving up the shape.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
}

/// A batch of images of `[N, C, H, W]`, what an image model takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: [usize; 4],
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor of `shape` `[N, C, H, W]`; `data` must hold `N * C * H * W` values.
    pub fn new(shape: [usize; 4], data: Vec<f32>) -> Result<Self, PreprocessError> {
        checked_len("NCHW tensor", &shape, data.len())?;
        Ok(Self { shape, data })
    }

    /// A batch of one.
    pub fn from_image(image: ChwImage) -> Self {
        let [c, h, w] = image.shape;
        Self { shape: [1, c, h, w], data: image.data }
    }

    /// The images one after the other; all must have the first one's `[C, H, W]`.
    pub fn batch(images: &[ChwImage]) -> Result<Self, PreprocessError> {
        let first = images.first().ok_or(PreprocessError::Empty { what: "batch" })?;
        let expected = first.shape;
        if let Some((index, image)) = images.iter().enumerate().find(|(_, image)| image.shape != expected) {
            return Err(PreprocessError::BatchShapeMismatch { index, expected, actual: image.shape });
        }
        let mut data = Vec::with_capacity(first.data.len() * images.len());
        for image in images {
            data.extend_from_slice(&image.data);
        }
        let [c, h, w] = expected;
        Ok(Self { shape: [images.len(), c, h, w], data })
    }

    /// `[N, C, H, W]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// The values, image after image.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Shape and values.
    pub fn into_parts(self) -> ([usize; 4], Vec<f32>) {
        (self.shape, self.data)
    }
}

/// Where one slice lies: Image Position (Patient) (0020,0032) and Image Orientation (Patient)
/// (0020,0037), PS3.3 C.7.6.2.1.1, in the patient coordinate system (mm).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SliceGeometry {
    /// x, y, z of the center of the first transmitted pixel.
    pub position: [f64; 3],
    /// Direction cosines of the first row, then of the first column.
    pub orientation: [f64; 6],
}

/// Slices sorted along their normal, and how regular the spacing is.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceOrder {
    /// Unit normal `row × column` of the first slice; distances are measured along it.
    pub normal: [f64; 3],
    /// Indices into the caller's list, by ascending distance (ties keep the caller's order).
    pub order: Vec<usize>,
    /// `position · normal` of each slice, in the sorted order.
    pub distances: Vec<f64>,
    /// Median of the differences between consecutive distances; `None` for a single slice.
    pub spacing: Option<f64>,
    /// Largest `|difference - spacing|` over consecutive slices; 0 for a single slice.
    pub max_spacing_deviation: f64,
    /// The deviation exceeds 10% of the spacing, or the spacing is 0 (coincident slices): the
    /// stack is not an evenly sampled volume and a 3D model may reject it.
    pub irregular_spacing: bool,
}

/// Parallel within about 0.8 degrees.
const PARALLEL_COSINE: f64 = 1.0 - 1e-4;

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn unit_normal(index: usize, geometry: &SliceGeometry) -> Result<[f64; 3], PreprocessError> {
    for &v in geometry.orientation.iter().chain(&geometry.position) {
        finite("slice position or orientation", v)?;
    }
    let [rx, ry, rz, cx, cy, cz] = geometry.orientation;
    let n = cross([rx, ry, rz], [cx, cy, cz]);
    let len = dot(n, n).sqrt();
    // Direction cosines are unit vectors; DS strings round them, so normalize, but refuse a
    // normal that is mostly rounding.
    if len < 1e-6 {
        return Err(PreprocessError::DegenerateOrientation { index });
    }
    Ok([n[0] / len, n[1] / len, n[2] / len])
}

/// The median; the mean of the middle two for an even count; `None` when empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[mid]),
        _ => Some((sorted[mid - 1] + sorted[mid]) / 2.0),
    }
}

/// Sorts slices by their distance along the slice normal (PS3.3 C.7.6.2.1.1: the normal is the
/// cross product of the row and column direction cosines) and measures the spacing.
///
/// All slices must share the first slice's orientation; irregular spacing is reported in
/// [`SliceOrder::irregular_spacing`], not refused.
pub fn order_slices(geometry: &[SliceGeometry]) -> Result<SliceOrder, PreprocessError> {
    let first = geometry.first().ok_or(PreprocessError::Empty { what: "slice stack" })?;
    let normal = unit_normal(0, first)?;
    let mut keyed = Vec::with_capacity(geometry.len());
    for (index, slice) in geometry.iter().enumerate() {
        if dot(unit_normal(index, slice)?, normal) < PARALLEL_COSINE {
            return Err(PreprocessError::InconsistentOrientation { index });
        }
        keyed.push((dot(slice.position, normal), index));
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (distances, order): (Vec<f64>, Vec<usize>) = keyed.into_iter().unzip();

    let gaps: Vec<f64> = distances.windows(2).map(|pair| pair[1] - pair[0]).collect();
    let (spacing, max_spacing_deviation, irregular_spacing) = match median(&gaps) {
        None => (None, 0.0, false),
        Some(spacing) => {
            let deviation = gaps.iter().fold(0.0f64, |m, &g| m.max((g - spacing).abs()));
            (Some(spacing), deviation, spacing <= 1e-6 || deviation > 0.1 * spacing)
        }
    };
    Ok(SliceOrder { normal, order, distances, spacing, max_spacing_deviation, irregular_spacing })
}

/// Slices stacked into one `[D, H, W]` volume, sorted along their normal.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    shape: [usize; 3],
    data: Vec<f32>,
    order: SliceOrder,
}

impl Volume {
    /// `[D, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The values, slice after slice in sorted order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// How the slices were sorted and spaced.
    pub fn order(&self) -> &SliceOrder {
        &self.order
    }

    /// Shape, values and slice order.
    pub fn into_parts(self) -> ([usize; 3], Vec<f32>, SliceOrder) {
        (self.shape, self.data, self.order)
    }
}

/// Stacks `slices` (each `size`, row-major) into a volume sorted by [`order_slices`];
/// `geometry[i]` describes `slices[i]`.
pub fn stack_slices(slices: &[&[f32]], geometry: &[SliceGeometry], size: ImageSize) -> Result<Volume, PreprocessError> {
    check_len("slice geometry", slices.len(), geometry.len())?;
    let pixels = size.pixels()?;
    for slice in slices {
        check_len("slice", pixels, slice.len())?;
    }
    let order = order_slices(geometry)?;
    let mut data = Vec::with_capacity(pixels * slices.len());
    for &index in &order.order {
        data.extend_from_slice(slices[index]);
    }
    Ok(Volume { shape: [slices.len(), size.height, size.width], data, order })
}

#[cfg(test)]
mod tests;

//! A 3D model's input: every slice of a series preprocessed like a 2D image, then stacked in
//! patient-position order (PS3.3 C.7.6.2.1.1: along the normal of the image orientation),
//! with the spacing the stack has.
//!
//! The slices may come as single-frame instances or as the frames of (enhanced) multi-frame
//! ones: each frame carries its own position, orientation, rescale and window (from the
//! functional groups where present). Every slice must have a position and an orientation, and
//! all must share the orientation and the rows × columns: anything else is not one volume and
//! is refused with the reason. Irregular spacing (a missing slice, a gantry-tilted or localizer
//! slice that slipped in) is reported in [`SeriesTensor::order`], not refused: whether a model
//! may take it is the caller's decision.

use radstream_kernels::{order_slices, SliceGeometry, SliceOrder};

use super::device::ComputeDevice;
use super::spec::{frame_layout, plan_for, PlanError, PreprocessSpec};
use crate::contract::Recorder;
use crate::dicom::decode::{DecodedImage, Samples};

/// The preprocessed volume of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesTensor {
    /// `[1, C, D, H, W]`: one volume of `C` channels, `D` slices of the spec's size.
    pub shape: [usize; 5],
    /// The values in that order (channel after channel, slice after slice in sorted order).
    pub data: Vec<f32>,
    /// How the slices were sorted and how evenly they are spaced (distances in mm).
    pub order: SliceOrder,
    /// Which input each sorted slice came from: `(image index, frame)`.
    pub slices: Vec<(usize, usize)>,
    /// `[slice, row, column]` spacing of the output voxels in mm: the stack's median slice
    /// spacing (`None` for a single slice) and PixelSpacing scaled by the resampling (`None`
    /// where the images have none).
    pub spacing_mm: [Option<f64>; 3],
}

/// Preprocesses every frame of `images` (one series) with the spec's 2D plan and stacks them.
pub fn preprocess_series(
    device: &ComputeDevice,
    observer: &dyn Recorder,
    spec: &PreprocessSpec,
    images: &[DecodedImage],
) -> Result<SeriesTensor, PlanError> {
    let first = images.first().ok_or_else(|| PlanError::Geometry("the series has no images".into()))?;
    let [c, h, w] = spec.image_shape();
    let plane = h * w;
    let mut geometry = Vec::new();
    let mut sources = Vec::new();
    let mut slices: Vec<Vec<f32>> = Vec::new();
    for (index, image) in images.iter().enumerate() {
        if (image.rows, image.columns) != (first.rows, first.columns) {
            return Err(PlanError::Geometry(format!(
                "image {index} is {} x {}, the first is {} x {}: not one volume",
                image.rows, image.columns, first.rows, first.columns
            )));
        }
        let (pixels, frames) = frame_layout(image)?;
        for frame in 0..frames {
            let params = &image.frame_params[frame];
            let (Some(position), Some(orientation)) = (params.position, params.orientation) else {
                return Err(PlanError::Geometry(format!(
                    "image {index} frame {frame} has no ImagePositionPatient or ImageOrientationPatient: \
                     it cannot be placed in the volume"
                )));
            };
            geometry.push(SliceGeometry { position, orientation });
            sources.push((index, frame));
            let plan = plan_for(spec, image, frame)?;
            let mut out = vec![0.0f32; c * plane];
            let stored = frame * pixels..(frame + 1) * pixels;
            let (rows, columns) = (image.rows as usize, image.columns as usize);
            match &image.samples {
                Samples::U8(v) => device.run_into(&plan, &v[stored], rows, columns, &mut out, observer),
                Samples::I8(v) => device.run_into(&plan, &v[stored], rows, columns, &mut out, observer),
                Samples::U16(v) => device.run_into(&plan, &v[stored], rows, columns, &mut out, observer),
                Samples::I16(v) => device.run_into(&plan, &v[stored], rows, columns, &mut out, observer),
                Samples::U32(v) => device.run_into(&plan, &v[stored], rows, columns, &mut out, observer),
                Samples::I32(v) => device.run_into(&plan, &v[stored], rows, columns, &mut out, observer),
            }?;
            slices.push(out);
        }
    }
    let order = order_slices(&geometry)?;
    let depth = slices.len();
    let mut data = Vec::with_capacity(c * depth * plane);
    for channel in 0..c {
        for &slice in &order.order {
            data.extend_from_slice(&slices[slice][channel * plane..(channel + 1) * plane]);
        }
    }
    let pixel_spacing = first.frame_params.first().and_then(|p| p.pixel_spacing);
    let spacing_mm = [
        order.spacing,
        pixel_spacing.map(|[row, _]| row * f64::from(first.rows) / h as f64),
        pixel_spacing.map(|[_, column]| column * f64::from(first.columns) / w as f64),
    ];
    let slices = order.order.iter().map(|&i| sources[i]).collect();
    Ok(SeriesTensor { shape: [1, c, depth, h, w], data, order, slices, spacing_mm })
}

#[cfg(test)]
mod tests;

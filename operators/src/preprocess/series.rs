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

use super::decode::{DecodedImage, Samples};
use super::device::ComputeDevice;
use super::spec::{frame_layout, plan_for, PlanError, PreprocessSpec};
use crate::config::OperatorObserver;

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
    observer: &dyn OperatorObserver,
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
mod tests {
    use super::super::decode::FrameParams;
    use super::super::spec::{FixedWindow, InputKind, NormalizationSpec, WindowFunction, WindowSpec};
    use super::*;
    use crate::config::NoopObserver;

    fn spec() -> PreprocessSpec {
        PreprocessSpec {
            name: "ct-volume".into(),
            modalities: vec!["CT".into()],
            input: InputKind::Series,
            size: [2, 2],
            window: WindowSpec::Fixed(FixedWindow {
                center: 50.0,
                width: 100.0,
                function: WindowFunction::LinearExact,
            }),
            normalization: NormalizationSpec::default(),
            channels: 1,
            output_range: [0.0, 1.0],
        }
    }

    /// A 4 x 4 axial slice at height `z` whose every value is `value` HU (intercept -1024).
    fn slice(z: f64, value: i16) -> DecodedImage {
        DecodedImage {
            rows: 4,
            columns: 4,
            frames: 1,
            samples_per_pixel: 1,
            photometric: "MONOCHROME2".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            samples: Samples::I16(vec![value + 1024; 16]),
            frame_params: vec![FrameParams {
                rescale_slope: 1.0,
                rescale_intercept: -1024.0,
                position: Some([-10.0, -10.0, z]),
                orientation: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
                pixel_spacing: Some([0.5, 0.75]),
                ..FrameParams::default()
            }],
        }
    }

    #[test]
    fn slices_are_stacked_by_position_not_by_input_order() {
        // Given out of order: z = 5, -5, 0 with values 100, 0, 50 HU -> window [0, 100] -> 1, 0, 0.5.
        let images = [slice(5.0, 100), slice(-5.0, 0), slice(0.0, 50)];
        let volume = preprocess_series(&ComputeDevice::cpu(), &NoopObserver, &spec(), &images).unwrap();
        assert_eq!(volume.shape, [1, 1, 3, 2, 2]);
        let firsts: Vec<f32> = volume.data.chunks(4).map(|plane| plane[0]).collect();
        assert_eq!(firsts, [0.0, 0.5, 1.0]);
        assert_eq!(volume.slices, [(1, 0), (2, 0), (0, 0)]);
        // 5 mm between slices; 4 pixels of 0.5 x 0.75 mm resampled to 2: 1.0 x 1.5 mm.
        assert_eq!(volume.spacing_mm, [Some(5.0), Some(1.0), Some(1.5)]);
        assert!(!volume.order.irregular_spacing);
    }

    #[test]
    fn a_gap_is_reported_and_three_channels_are_planes_of_the_volume() {
        let images = [slice(0.0, 0), slice(5.0, 50), slice(20.0, 100)];
        let three = PreprocessSpec { channels: 3, ..spec() };
        let volume = preprocess_series(&ComputeDevice::cpu(), &NoopObserver, &three, &images).unwrap();
        assert!(volume.order.irregular_spacing);
        assert_eq!(volume.shape, [1, 3, 3, 2, 2]);
        let per_channel = 3 * 4;
        for channel in volume.data.chunks(per_channel) {
            assert_eq!(channel, &volume.data[..per_channel]);
        }
    }

    #[test]
    fn what_is_not_one_volume_is_refused_with_the_reason() {
        let mut no_position = slice(0.0, 0);
        no_position.frame_params[0].position = None;
        let err = preprocess_series(&ComputeDevice::cpu(), &NoopObserver, &spec(), &[slice(1.0, 0), no_position])
            .unwrap_err();
        assert!(err.to_string().contains("ImagePositionPatient"), "{err}");

        let mut tilted = slice(2.0, 0);
        tilted.frame_params[0].orientation = Some([1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let err = preprocess_series(&ComputeDevice::cpu(), &NoopObserver, &spec(), &[slice(1.0, 0), tilted]);
        assert!(err.is_err());

        let mut small = slice(2.0, 0);
        small.rows = 2;
        let err =
            preprocess_series(&ComputeDevice::cpu(), &NoopObserver, &spec(), &[slice(1.0, 0), small]).unwrap_err();
        assert!(err.to_string().contains("not one volume"), "{err}");
        assert!(preprocess_series(&ComputeDevice::cpu(), &NoopObserver, &spec(), &[]).is_err());
    }
}

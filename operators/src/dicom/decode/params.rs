//! Per-frame parameters: from the functional groups of enhanced multi-frame objects (per-frame
//! first, then shared), from the top-level attributes otherwise.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::image::{text, FrameParams};

fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.get(tag).and_then(|e| e.to_multi_float64().ok()).filter(|v| !v.is_empty() && v.iter().all(|x| x.is_finite()))
}

fn items(obj: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    obj.get(tag).and_then(|e| e.items()).unwrap_or(&[])
}

/// The item of a functional group macro (e.g. PixelMeasuresSequence) that applies to one frame:
/// the per-frame group's first, the shared group's otherwise.
fn macro_item<'a>(
    per_frame: Option<&'a InMemDicomObject>,
    shared: Option<&'a InMemDicomObject>,
    sequence: Tag,
) -> Option<&'a InMemDicomObject> {
    per_frame.and_then(|g| items(g, sequence).first()).or_else(|| shared.and_then(|g| items(g, sequence).first()))
}

/// The parameters of each of `frames` frames.
pub(super) fn frame_params(obj: &InMemDicomObject, frames: u32) -> Vec<FrameParams> {
    let top = read_params(obj, obj, obj, obj, obj);
    let per_frame = items(obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let shared = items(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).first();
    if per_frame.is_empty() && shared.is_none() {
        return vec![top; frames as usize];
    }
    (0..frames as usize)
        .map(|f| {
            let group = per_frame.get(f);
            let pick = |seq| macro_item(group, shared, seq).unwrap_or(obj);
            read_params(
                pick(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE),
                pick(tags::FRAME_VOILUT_SEQUENCE),
                pick(tags::PLANE_POSITION_SEQUENCE),
                pick(tags::PLANE_ORIENTATION_SEQUENCE),
                pick(tags::PIXEL_MEASURES_SEQUENCE),
            )
        })
        .collect()
}

fn read_params(
    rescale: &InMemDicomObject,
    voi: &InMemDicomObject,
    position: &InMemDicomObject,
    orientation: &InMemDicomObject,
    measures: &InMemDicomObject,
) -> FrameParams {
    let first = |obj, tag| floats(obj, tag).map(|v| v[0]);
    FrameParams {
        rescale_slope: first(rescale, tags::RESCALE_SLOPE).unwrap_or(1.0),
        rescale_intercept: first(rescale, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        window: first(voi, tags::WINDOW_CENTER).zip(first(voi, tags::WINDOW_WIDTH)),
        voi_function: text(voi, tags::VOILUT_FUNCTION),
        position: floats(position, tags::IMAGE_POSITION_PATIENT).and_then(|v| v.try_into().ok()),
        orientation: floats(orientation, tags::IMAGE_ORIENTATION_PATIENT).and_then(|v| v.try_into().ok()),
        pixel_spacing: floats(measures, tags::PIXEL_SPACING).and_then(|v| v.try_into().ok()),
    }
}

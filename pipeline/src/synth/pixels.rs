//! Synthetic pixel data: a few tissue classes laid out as ellipses and bands in
//! normalized image coordinates, mapped to modality values, plus noise.
//!
//! The anatomy is crude on purpose. It only has to give downstream operators
//! (windowing, resampling, a toy segmentation model) something body-shaped with
//! realistic value ranges, and cost little enough that benchmarks measure the
//! pipeline rather than the generator.

use super::scan::{BodyPart, Contrast, Plane};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tissue {
    Air,
    Fat,
    Soft,
    Organ,
    Lung,
    Bone,
    Marrow,
    Fluid,
    Brain,
}

/// Value of each tissue, indexed by `Tissue as usize`.
fn tissue_values(contrast: Contrast) -> [f32; 9] {
    match contrast {
        // Hounsfield units.
        Contrast::Ct => [-1000.0, -100.0, 45.0, 60.0, -820.0, 900.0, 250.0, 8.0, 35.0],
        Contrast::Xray => [250.0, 1300.0, 1600.0, 1650.0, 700.0, 3000.0, 2300.0, 1550.0, 1600.0],
        Contrast::MrT1 => [15.0, 1800.0, 650.0, 750.0, 30.0, 40.0, 1600.0, 250.0, 900.0],
        Contrast::MrT2 => [15.0, 1200.0, 450.0, 550.0, 30.0, 30.0, 1000.0, 2200.0, 1050.0],
        Contrast::MrPd => [15.0, 1700.0, 800.0, 900.0, 30.0, 40.0, 1500.0, 1600.0, 1150.0],
        Contrast::MrFlair => [15.0, 1150.0, 600.0, 650.0, 30.0, 30.0, 1000.0, 150.0, 1050.0],
    }
}

/// Half-range of the triangular noise added to every pixel.
fn noise_amplitude(contrast: Contrast) -> f32 {
    match contrast {
        // About 5 HU standard deviation, like a routine head CT.
        Contrast::Ct => 12.0,
        Contrast::Xray => 40.0,
        _ => 35.0,
    }
}

/// Where an image sits and what its values mean.
#[derive(Clone, Copy, Debug)]
pub(super) struct ImageSpec {
    pub body_part: BodyPart,
    pub plane: Plane,
    pub contrast: Contrast,
    /// Position of the slice within its series, 0 to 1.
    pub slice_position: f32,
    /// Store `4095 - value` (MONOCHROME1).
    pub inverted: bool,
    pub rows: u16,
    pub columns: u16,
    /// A planted lesion drawn over the anatomy.
    pub lesion: Option<Disc>,
}

/// A disc of one value, in the normalized image coordinates of [`render`]: `u` left to right and
/// `v` top to bottom, both from -1 to 1 across the image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Disc {
    pub centre_u: f32,
    pub centre_v: f32,
    pub radius: f32,
    /// The value inside, before noise.
    pub value: f32,
}

impl Disc {
    pub(super) fn contains(&self, u: f32, v: f32) -> bool {
        let (du, dv) = (u - self.centre_u, v - self.centre_v);
        du * du + dv * dv < self.radius * self.radius
    }
}

/// Half the width of the head, in normalized units, on the slice where its section is largest
/// (a [`section_scale`] of 1).
pub(super) const HEAD_HALF_WIDTH: f32 = 0.78;

/// Position of slice `instance` of `count` within its series, 0 to 1 (0.5 for a lone slice).
pub(super) fn slice_position(instance: usize, count: usize) -> f32 {
    if count > 1 {
        instance as f32 / (count - 1) as f32
    } else {
        0.5
    }
}

/// Whether (u, v) is brain parenchyma (not skull, scalp or ventricle) on an axial head CT slice
/// of [`section_scale`] `scale`.
pub(super) fn is_brain_parenchyma(u: f32, v: f32, scale: f32) -> bool {
    head_slice(Plane::Axial, u, v, scale) == Tissue::Brain
}

/// Renders one image as 16-bit stored values (12 bits used). CT values are
/// signed (two's complement in the `u16`) with a rescale intercept of -1024;
/// the others are unsigned.
pub(super) fn render(spec: &ImageSpec, rng: &mut fastrand::Rng) -> Vec<u16> {
    let values = tissue_values(spec.contrast);
    let amplitude = noise_amplitude(spec.contrast);
    let rows = usize::from(spec.rows);
    let columns = usize::from(spec.columns);
    let classify = classifier(spec.body_part, spec.plane);
    let scale = section_scale(spec.body_part, spec.plane, spec.slice_position);
    let mut pixels = Vec::with_capacity(rows * columns);
    for row in 0..rows {
        let v = 2.0 * (row as f32 + 0.5) / rows as f32 - 1.0;
        for column in 0..columns {
            let u = 2.0 * (column as f32 + 0.5) / columns as f32 - 1.0;
            let tissue = classify(spec.plane, u, v, scale);
            let bits = rng.u32(..);
            // Two uniform bytes sum to a triangular distribution on [-1, 1].
            let noise = ((bits & 0xff) + ((bits >> 8) & 0xff)) as f32 / 255.0 - 1.0;
            // The noise is drawn for lesion pixels too, so the rest of the image stays the same.
            let base = match spec.lesion {
                Some(disc) if disc.contains(u, v) => disc.value,
                _ => values[tissue as usize],
            };
            let value = base + noise * amplitude;
            pixels.push(store(spec, value));
        }
    }
    pixels
}

fn store(spec: &ImageSpec, value: f32) -> u16 {
    match spec.contrast {
        // 12-bit signed after removing the -1024 intercept.
        Contrast::Ct => (round(value + 1024.0).clamp(-2048, 2047) as i16) as u16,
        _ => {
            let stored = round(value.abs()).clamp(0, 4095) as u16;
            if spec.inverted {
                4095 - stored
            } else {
                stored
            }
        }
    }
}

/// Rounds half up for values above -8192: a truncating cast after an offset,
/// because `f32::round` is a libm call that cost a tenth of the render time.
fn round(value: f32) -> i32 {
    (value + 8192.5) as i32 - 8192
}

/// Squared normalized radius of (u, v) in the ellipse centred at (cu, cv) with
/// half-axes a and b: below 1 inside.
fn ellipse(u: f32, v: f32, cu: f32, cv: f32, a: f32, b: f32) -> f32 {
    let du = (u - cu) / a;
    let dv = (v - cv) / b;
    du * du + dv * dv
}

/// A vertebra: cortical ring around marrow.
fn vertebra(u: f32, v: f32, cu: f32, cv: f32, radius: f32) -> Option<Tissue> {
    let r = ellipse(u, v, cu, cv, radius, radius);
    if r < 0.55 {
        Some(Tissue::Marrow)
    } else if r < 1.0 {
        Some(Tissue::Bone)
    } else {
        None
    }
}

/// How the body part's section shrinks towards the ends of a stack: 1 at the
/// centre slice.
pub(super) fn section_scale(body_part: BodyPart, plane: Plane, t: f32) -> f32 {
    let arc = (std::f32::consts::PI * t).sin();
    match (body_part, plane) {
        (_, Plane::Frontal | Plane::Lateral) => 1.0,
        (BodyPart::Head, _) => 0.6 + 0.4 * (std::f32::consts::PI * (0.15 + 0.7 * t)).sin(),
        (BodyPart::Chest, _) => 0.9 + 0.1 * arc,
        (BodyPart::Abdomen, _) => 0.95 + 0.05 * arc,
        (BodyPart::Knee, Plane::Axial) => 1.0,
        (BodyPart::Knee, _) => 0.75 + 0.25 * arc,
    }
}

/// The layout of `body_part` cut along `plane`, chosen once per image rather
/// than per pixel. The function takes the plane, the pixel's coordinates in
/// [-1, 1] and the [`section_scale`] of the slice.
fn classifier(body_part: BodyPart, plane: Plane) -> fn(Plane, f32, f32, f32) -> Tissue {
    match (body_part, plane) {
        (BodyPart::Head, Plane::Frontal | Plane::Lateral) => |_, u, v, _| head_projection(u, v),
        (BodyPart::Head, _) => head_slice,
        (BodyPart::Chest, Plane::Frontal) => |_, u, v, _| chest_frontal(u, v),
        (BodyPart::Chest, Plane::Lateral) => |_, u, v, _| chest_lateral(u, v),
        (BodyPart::Chest, _) => |_, u, v, scale| chest_axial(u, v, scale),
        (BodyPart::Abdomen, Plane::Axial) => |_, u, v, scale| abdomen_axial(u, v, scale),
        (BodyPart::Abdomen, _) => |_, u, v, _| abdomen_frontal(u, v),
        (BodyPart::Knee, Plane::Axial) => |_, u, v, _| knee_axial(u, v),
        (BodyPart::Knee, _) => knee_long,
    }
}

fn head_slice(plane: Plane, u: f32, v: f32, scale: f32) -> Tissue {
    if plane != Plane::Axial && v > 0.55 && u.abs() < 0.3 {
        return Tissue::Soft; // neck
    }
    let r = ellipse(u, v, 0.0, -0.05, HEAD_HALF_WIDTH * scale, 0.9 * scale);
    if r > 1.0 {
        Tissue::Air
    } else if r > 0.86 {
        Tissue::Fat
    } else if r > 0.72 {
        Tissue::Bone
    } else if ellipse(u, v, 0.13, -0.05, 0.07, 0.25) < 1.0 || ellipse(u, v, -0.13, -0.05, 0.07, 0.25) < 1.0 {
        Tissue::Fluid // lateral ventricles
    } else {
        Tissue::Brain
    }
}

fn head_projection(u: f32, v: f32) -> Tissue {
    if v > 0.5 && u.abs() < 0.3 {
        return Tissue::Soft;
    }
    let r = ellipse(u, v, 0.0, -0.1, 0.7, 0.75);
    if r > 1.0 {
        Tissue::Air
    } else if r > 0.8 {
        Tissue::Bone
    } else {
        Tissue::Brain
    }
}

fn chest_axial(u: f32, v: f32, scale: f32) -> Tissue {
    let r = ellipse(u, v, 0.0, 0.05, 0.88 * scale, 0.62 * scale);
    if r > 1.0 {
        return Tissue::Air;
    }
    if r > 0.86 {
        return Tissue::Fat;
    }
    if let Some(bone) = vertebra(u, v, 0.0, 0.45, 0.12) {
        return bone;
    }
    // Ribs: short arcs just inside the body wall.
    if r > 0.68 && r < 0.76 && (v.atan2(u) * 11.0).sin() > 0.55 {
        return Tissue::Bone;
    }
    if scale > 0.95 && ellipse(u, v, 0.1, 0.05, 0.22, 0.2) < 1.0 {
        return Tissue::Soft; // heart
    }
    if ellipse(u, v, 0.4, 0.0, 0.3 * scale, 0.42 * scale) < 1.0
        || ellipse(u, v, -0.4, 0.0, 0.3 * scale, 0.42 * scale) < 1.0
    {
        return Tissue::Lung;
    }
    Tissue::Soft
}

fn chest_frontal(u: f32, v: f32) -> Tissue {
    if ellipse(u, v, 0.0, 0.25, 0.85, 1.3) > 1.0 {
        return Tissue::Air;
    }
    if u.abs() < 0.07 {
        return Tissue::Bone; // spine
    }
    if u.abs() < 0.6 && (v + 0.62 - 0.15 * u.abs()).abs() < 0.025 {
        return Tissue::Bone; // clavicles
    }
    if ellipse(u, v, 0.12, 0.25, 0.25, 0.22) < 1.0 {
        return Tissue::Soft; // heart
    }
    if ellipse(u, v, 0.38, -0.1, 0.26, 0.55) < 1.0 || ellipse(u, v, -0.38, -0.1, 0.26, 0.55) < 1.0 {
        let rib = (v * 7.0 + u * u * 2.0).rem_euclid(1.0) < 0.15;
        return if rib { Tissue::Bone } else { Tissue::Lung };
    }
    Tissue::Soft
}

fn chest_lateral(u: f32, v: f32) -> Tissue {
    if ellipse(u, v, 0.0, 0.25, 0.6, 1.3) > 1.0 {
        return Tissue::Air;
    }
    if u > 0.38 && u < 0.5 {
        return Tissue::Bone; // spine
    }
    if ellipse(u, v, -0.2, 0.25, 0.25, 0.25) < 1.0 {
        return Tissue::Soft; // heart
    }
    if ellipse(u, v, -0.05, -0.05, 0.42, 0.6) < 1.0 {
        return Tissue::Lung;
    }
    Tissue::Soft
}

fn abdomen_axial(u: f32, v: f32, scale: f32) -> Tissue {
    let r = ellipse(u, v, 0.0, 0.05, 0.9 * scale, 0.68 * scale);
    if r > 1.0 {
        return Tissue::Air;
    }
    if r > 0.8 {
        return Tissue::Fat;
    }
    if let Some(bone) = vertebra(u, v, 0.0, 0.42, 0.12) {
        return bone;
    }
    if ellipse(u, v, -0.38, -0.05, 0.36, 0.32) < 1.0
        || ellipse(u, v, 0.32, 0.3, 0.1, 0.14) < 1.0
        || ellipse(u, v, -0.32, 0.3, 0.1, 0.14) < 1.0
    {
        return Tissue::Organ; // liver, kidneys
    }
    if ellipse(u, v, 0.25, -0.2, 0.08, 0.06) < 1.0 {
        return Tissue::Air; // bowel gas
    }
    Tissue::Soft
}

fn abdomen_frontal(u: f32, v: f32) -> Tissue {
    if u.abs() > 0.8 {
        return Tissue::Air;
    }
    if u.abs() < 0.07 {
        return Tissue::Bone;
    }
    let pelvis = ellipse(u, v, 0.0, 0.85, 0.6, 0.35);
    if pelvis > 0.75 && pelvis < 1.0 {
        return Tissue::Bone;
    }
    if ellipse(u, v, 0.3, -0.2, 0.1, 0.08) < 1.0 {
        return Tissue::Air;
    }
    Tissue::Soft
}

fn knee_axial(u: f32, v: f32) -> Tissue {
    let r = ellipse(u, v, 0.0, 0.0, 0.62, 0.55);
    if r > 1.0 {
        return Tissue::Air;
    }
    if r > 0.8 {
        return Tissue::Fat;
    }
    let femur = ellipse(u, v, 0.0, 0.05, 0.42, 0.3);
    if femur < 1.0 {
        return if femur > 0.75 { Tissue::Bone } else { Tissue::Marrow };
    }
    if ellipse(u, v, 0.0, -0.42, 0.16, 0.07) < 1.0 {
        return Tissue::Bone; // patella
    }
    Tissue::Soft
}

/// Knee in a plane along the leg: sagittal and coronal slices, CR projections.
fn knee_long(plane: Plane, u: f32, v: f32, scale: f32) -> Tissue {
    if u.abs() > 0.55 {
        return Tissue::Air;
    }
    if u.abs() > 0.48 {
        return Tissue::Fat;
    }
    if matches!(plane, Plane::Sagittal | Plane::Lateral) && ellipse(u, v, -0.4, -0.1, 0.06, 0.16) < 1.0 {
        return Tissue::Bone; // patella
    }
    let femur_width = 0.3 * scale;
    let tibia_width = 0.27 * scale;
    let condyles = ellipse(u, v, 0.0, -0.06, femur_width, 0.2);
    if v < -0.06 && (u.abs() < femur_width * 0.75 || condyles < 1.0) {
        let edge = u.abs() > femur_width * 0.75 - 0.04 && condyles > 0.8;
        return if edge { Tissue::Bone } else { Tissue::Marrow };
    }
    if v > 0.04 && u.abs() < tibia_width {
        let edge = u.abs() > tibia_width - 0.04 || v < 0.08;
        return if edge { Tissue::Bone } else { Tissue::Marrow };
    }
    if (-0.06..=0.04).contains(&v) && u.abs() < femur_width {
        return Tissue::Fluid; // joint space
    }
    Tissue::Soft
}

#[cfg(test)]
mod tests;

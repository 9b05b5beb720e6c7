//! A model's result burned into a copy of the source image, as a DICOM Secondary Capture (SC
//! Image Storage, PS3.3 A.8.1), for PACS viewers that render neither SR nor SEG: what the IHE AI
//! Results profile calls a "burned-in" presentation, and what most AI products send alongside
//! their SR and SEG.
//!
//! What goes in:
//!
//! * **Pixels.** The source frame, decoded by [`crate::dicom::decode`], through the
//!   modality rescale (slope, intercept) and a display window: the source's first
//!   WindowCenter/WindowWidth (with its VOILUTFunction) where it has one, else the frame's
//!   minimum to maximum; MONOCHROME1 is inverted so that the result looks as the source does.
//!   The result is 8-bit RGB with the source's Rows and Columns, so the overlay lies on the
//!   source's pixel grid and keeps its PixelSpacing.
//! * **The finding.** The model's mask (its own size, e.g. 256×256) is resampled with nearest
//!   neighbour onto the source grid and thresholded at the first finding's threshold, as the
//!   SEG does; its outline is drawn in red and a yellow box drawn around it. The inside is left
//!   as it was: the anatomy under the finding stays visible.
//! * **Text.** "AI RESULT - NOT FOR DIAGNOSTIC USE ALONE", the model's name and version and
//!   each finding's label with its probability, in white with a black shadow at the top left,
//!   in an embedded 5×7 bitmap font scaled up with the image (×2 at 512×512), wrapped to the
//!   image's width. Upper case only; a character the font lacks becomes a space. No patient
//!   data is ever burned in.
//! * **Attributes.** The patient and study are copied from the source (the PACS files the
//!   overlay by them; they never appear in errors); a new series (Modality OT); SC Equipment
//!   (ConversionType WSD, the model as the capture software); BurnedInAnnotation YES; ImageType
//!   DERIVED\SECONDARY; the source image (and frame) in SourceImageSequence,
//!   ReferencedImageSequence and ReferencedSeriesSequence.
//!
//! UIDs are derived from the source's UIDs and the model's identity, as for the SR and SEG: the
//! series from the source series, the instance from the source instance and frame. The content
//! date and time come from the argument, so the same inputs give the same bytes and a replay
//! replaces the object in the PACS.

use dicom_core::header::HasLength;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};

use super::seg::MaskShape;
use super::uids::{result_uid, ObjectKind, UidRole};
use crate::contract::ModelIdentity;
use crate::dicom::datetime::utc_date_time;
use crate::dicom::decode::{self, DecodeError, DecodedImage, FrameParams, Samples};
use crate::dicom::elements::{
    code_item, copy_if_present, copy_or_empty, copy_patient_and_study, long_string, sequence, text, Concept,
};
use crate::element_text;

/// Manufacturer (0008,0070) and Secondary Capture Device Manufacturer of the overlays.
const MANUFACTURER: &str = super::sr::MANUFACTURER;
/// Added to the source's SeriesNumber: after the images, apart from the SR (7000), SEG (8000)
/// and key object (9000) series.
const SERIES_NUMBER_OFFSET: i64 = 9300;
/// The first text line: what the image is, on the image itself.
pub const DISCLAIMER: &str = "AI RESULT - NOT FOR DIAGNOSTIC USE ALONE";
/// The mask threshold where no finding gives one.
const DEFAULT_THRESHOLD: f32 = 0.5;

/// The mask's outline.
pub const OUTLINE_COLOUR: [u8; 3] = [255, 0, 0];
/// The box around the mask.
pub const BOX_COLOUR: [u8; 3] = [255, 255, 0];
/// The text.
pub const TEXT_COLOUR: [u8; 3] = [255, 255, 255];
/// The text's shadow, so it reads on bright anatomy too.
const SHADOW_COLOUR: [u8; 3] = [0, 0, 0];

const SOURCE_IMAGE_FOR_PROCESSING: Concept<'static> = ("121322", "DCM", "Source image for image processing operation");

/// The source image the overlay is drawn on.
#[derive(Debug, Clone, Copy)]
pub struct OverlaySource<'a> {
    /// The source instance's parsed header: the UIDs, patient and study to copy.
    pub header: &'a InMemDicomObject,
    /// The whole Part-10 bytes of the source instance, for its pixel data.
    pub object: &'a [u8],
    /// The frame to draw on, 0-based (0 for single-frame images).
    pub frame: usize,
}

/// A finding to write on the image.
#[derive(Debug, Clone, Copy)]
pub struct OverlayFinding<'a> {
    /// What was found, as the model's configuration names it.
    pub label: &'a str,
    /// The model's probability.
    pub score: f32,
    /// The threshold the score was compared with; the first finding's also thresholds the mask.
    pub threshold: f32,
}

/// Why an overlay could not be built. Never carries patient data: only attribute names,
/// indices, sizes and the source's SOPInstanceUID.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// The source header lacks an attribute the overlay must reference or copy.
    #[error("the source has no {attribute}, so an overlay cannot reference it")]
    MissingAttribute {
        /// The attribute's keyword.
        attribute: &'static str,
    },
    /// The source's pixel data could not be decoded.
    #[error("cannot decode the pixel data of source instance {sop_instance_uid}: {reason}")]
    Decode {
        /// SOPInstanceUID of the source.
        sop_instance_uid: String,
        /// What the decoder said (it never quotes the data set).
        reason: DecodeError,
    },
    /// The frame asked for is not in the source.
    #[error("source instance {sop_instance_uid} has {frames} frames; frame {frame} (0-based) was asked for")]
    FrameOutOfRange {
        /// SOPInstanceUID of the source.
        sop_instance_uid: String,
        /// The frame asked for.
        frame: usize,
        /// How many frames the pixel data holds.
        frames: usize,
    },
    /// The mask has another length than `rows * columns`, or the shape is empty.
    #[error("the mask has {actual} values, the mask shape {rows}x{columns} needs {expected}")]
    MaskSize {
        /// Mask rows.
        rows: usize,
        /// Mask columns.
        columns: usize,
        /// `rows * columns`.
        expected: usize,
        /// The mask's length.
        actual: usize,
    },
    /// The mask threshold is NaN or infinite.
    #[error("the mask threshold is not a finite number")]
    NonFiniteThreshold,
    /// dicom-object refused the file meta or the encoding.
    #[error("{what} the overlay failed: {reason}")]
    Encoding {
        /// What was being done.
        what: &'static str,
        /// dicom-object's error.
        reason: String,
    },
}

/// A built overlay: the Part-10 object and the UIDs a sink matches the PACS's answer on.
#[derive(Debug, Clone)]
pub struct OverlayDocument {
    /// The object, with its file meta (explicit VR little endian).
    pub file: FileDicomObject<InMemDicomObject>,
    /// SeriesInstanceUID of the overlay series.
    pub series_instance_uid: String,
    /// SOPInstanceUID of the overlay.
    pub sop_instance_uid: String,
}

impl OverlayDocument {
    /// The Part-10 bytes (preamble, file meta, data set in explicit VR little endian).
    pub fn to_bytes(&self) -> Result<Vec<u8>, OverlayError> {
        let mut bytes =
            Vec::with_capacity(self.file.element(tags::PIXEL_DATA).map_or(0, |e| e.length().0 as usize) + 4096);
        self.file
            .write_all(&mut bytes)
            .map_err(|e| OverlayError::Encoding { what: "encoding", reason: e.to_string() })?;
        Ok(bytes)
    }
}

/// Builds the overlay of `model`'s result on `source`'s frame.
///
/// `mask` is the model's per-pixel probability at its own size (row-major); it is resampled
/// with nearest neighbour onto the source's Rows×Columns and thresholded at the first
/// finding's threshold (0.5 without findings). Without a mask, or with one that reaches the
/// threshold nowhere, only the text is drawn. `findings` are written one a line, label and
/// probability.
///
/// `content_time_ms` (Unix time in milliseconds, written as UTC) becomes ContentDate and
/// ContentTime: pass the event's time, not the clock, so a replay gives the same bytes.
pub fn build_overlay(
    source: &OverlaySource<'_>,
    mask: Option<(&[f32], MaskShape)>,
    findings: &[OverlayFinding<'_>],
    model: &ModelIdentity,
    content_time_ms: i64,
) -> Result<OverlayDocument, OverlayError> {
    let header = source.header;
    let required = |tag: Tag, attribute: &'static str| {
        element_text(header, tag).ok_or(OverlayError::MissingAttribute { attribute })
    };
    let study = required(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?;
    let source_series = required(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?;
    let source_class = required(tags::SOP_CLASS_UID, "SOPClassUID")?;
    let source_instance = required(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?;
    let threshold = findings.first().map_or(DEFAULT_THRESHOLD, |f| f.threshold);
    if let Some((values, shape)) = mask {
        if !threshold.is_finite() {
            return Err(OverlayError::NonFiniteThreshold);
        }
        let expected = shape.rows.saturating_mul(shape.columns);
        if expected == 0 || values.len() != expected {
            let (rows, columns, actual) = (shape.rows, shape.columns, values.len());
            return Err(OverlayError::MaskSize { rows, columns, expected, actual });
        }
    }

    let decode_failed = |reason| OverlayError::Decode { sop_instance_uid: source_instance.clone(), reason };
    let image = decode::decode(source.object).map_err(decode_failed)?;
    let frames = image.frames as usize;
    if source.frame >= frames {
        return Err(OverlayError::FrameOutOfRange {
            sop_instance_uid: source_instance.clone(),
            frame: source.frame,
            frames,
        });
    }
    let mut canvas = Canvas::from_frame(&image, source.frame).ok_or_else(|| {
        decode_failed(DecodeError("the decoded pixel data is shorter than Rows x Columns x frames".into()))
    })?;

    // Drawing scales with the image: 1 pixel per font pixel up to 511, 2 at 512, ...
    let scale = (canvas.rows.min(canvas.columns) / 256).max(1);
    if let Some((values, shape)) = mask {
        let region = resample(values, shape, threshold, canvas.rows, canvas.columns);
        if let Some(bounds) = region_bounds(&region, canvas.columns) {
            canvas.outline(&region, scale, OUTLINE_COLOUR);
            canvas.rectangle(bounds, 3 * scale, scale, BOX_COLOUR);
        }
    }
    let mut lines = vec![DISCLAIMER.to_string(), format!("MODEL {} {}", model.name, model.version)];
    lines.extend(findings.iter().map(|f| format!("{} {:.2}", f.label, f.score)));
    canvas.text(&lines, scale);

    let series_uid = result_uid(UidRole::Series, ObjectKind::Overlay, &source_series, model);
    let sop_uid =
        result_uid(UidRole::Instance, ObjectKind::Overlay, &format!("{source_instance}/{}", source.frame), model);
    let series_number = element_text(header, tags::SERIES_NUMBER)
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0)
        .saturating_add(SERIES_NUMBER_OFFSET)
        .clamp(0, i32::MAX as i64);
    let (content_date, content_time) = utc_date_time(content_time_ms);
    let frame_number = (frames > 1).then_some(source.frame + 1);
    let source_image = |with_frame: bool| {
        let mut item = InMemDicomObject::from_element_iter([
            text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &source_class),
            text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &source_instance),
        ]);
        if let Some(frame) = frame_number.filter(|_| with_frame) {
            item.put(text(tags::REFERENCED_FRAME_NUMBER, VR::IS, &frame.to_string()));
        }
        item
    };

    let mut sc = InMemDicomObject::new_empty();
    // SOP Common.
    sc.put(text(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE));
    sc.put(text(tags::SOP_INSTANCE_UID, VR::UI, &sop_uid));
    // Patient and General Study, with the character set of the names and IDs they copy.
    copy_patient_and_study(&mut sc, header, &study);
    // General Series.
    sc.put(text(tags::MODALITY, VR::CS, "OT"));
    sc.put(text(tags::SERIES_INSTANCE_UID, VR::UI, &series_uid));
    sc.put(text(tags::SERIES_NUMBER, VR::IS, &series_number.to_string()));
    // Laterality is Type 2C (paired body parts) unless ImageLaterality says it: the source's,
    // else empty, for unknown.
    if !copy_if_present(&mut sc, header, tags::LATERALITY) && !copy_if_present(&mut sc, header, tags::IMAGE_LATERALITY)
    {
        sc.put(DataElement::empty(tags::LATERALITY, VR::CS));
    }
    let description = long_string(&format!("AI overlay: {} {}", model.name, model.version));
    sc.put(text(tags::SERIES_DESCRIPTION, VR::LO, &description));
    // General Equipment, SC Equipment: the model is the capture software.
    sc.put(text(tags::MANUFACTURER, VR::LO, MANUFACTURER));
    sc.put(text(tags::CONVERSION_TYPE, VR::CS, "WSD"));
    sc.put(text(tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER, VR::LO, MANUFACTURER));
    sc.put(text(tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER_MODEL_NAME, VR::LO, &long_string(&model.name)));
    sc.put(text(tags::SECONDARY_CAPTURE_DEVICE_SOFTWARE_VERSIONS, VR::LO, &long_string(&model.version)));
    // General Image. The instance number is the source's, so overlays sort as the images do.
    copy_or_empty(&mut sc, header, tags::INSTANCE_NUMBER, VR::IS);
    copy_or_empty(&mut sc, header, tags::PATIENT_ORIENTATION, VR::CS);
    sc.put(text(tags::CONTENT_DATE, VR::DA, &content_date));
    sc.put(text(tags::CONTENT_TIME, VR::TM, &content_time));
    sc.put(text(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY"));
    let derivation = format!(
        "Source image with the result of the AI model {} {} burned in (mask outline, box, text)",
        long_string(&model.name),
        long_string(&model.version)
    );
    sc.put(text(tags::DERIVATION_DESCRIPTION, VR::ST, &derivation));
    let mut source_item = source_image(true);
    source_item.put(sequence(tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE, vec![code_item(SOURCE_IMAGE_FOR_PROCESSING)]));
    sc.put(sequence(tags::SOURCE_IMAGE_SEQUENCE, vec![source_item]));
    sc.put(sequence(tags::REFERENCED_IMAGE_SEQUENCE, vec![source_image(true)]));
    sc.put(text(tags::BURNED_IN_ANNOTATION, VR::CS, "YES"));
    // A lossy source makes a lossy overlay.
    copy_if_present(&mut sc, header, tags::LOSSY_IMAGE_COMPRESSION);
    copy_if_present(&mut sc, header, tags::LOSSY_IMAGE_COMPRESSION_RATIO);
    copy_if_present(&mut sc, header, tags::LOSSY_IMAGE_COMPRESSION_METHOD);
    // SC Image: the overlay shares the source's pixel grid, hence its spacing.
    sc.put(text(tags::DATE_OF_SECONDARY_CAPTURE, VR::DA, &content_date));
    sc.put(text(tags::TIME_OF_SECONDARY_CAPTURE, VR::TM, &content_time));
    if let Some(spacing) = pixel_spacing(header, image.frame_params.get(source.frame)) {
        sc.put(text(tags::PIXEL_SPACING, VR::DS, &spacing));
    }
    // Common Instance Reference.
    let referenced_series = InMemDicomObject::from_element_iter([
        sequence(tags::REFERENCED_INSTANCE_SEQUENCE, vec![source_image(false)]),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &source_series),
    ]);
    sc.put(sequence(tags::REFERENCED_SERIES_SEQUENCE, vec![referenced_series]));
    // Image Pixel.
    let us = |tag: Tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));
    sc.put(us(tags::SAMPLES_PER_PIXEL, 3));
    sc.put(text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"));
    sc.put(us(tags::PLANAR_CONFIGURATION, 0));
    sc.put(us(tags::ROWS, image.rows as u16));
    sc.put(us(tags::COLUMNS, image.columns as u16));
    sc.put(us(tags::BITS_ALLOCATED, 8));
    sc.put(us(tags::BITS_STORED, 8));
    sc.put(us(tags::HIGH_BIT, 7));
    sc.put(us(tags::PIXEL_REPRESENTATION, 0));
    sc.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(canvas.into_even_bytes())));

    let file = sc
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| OverlayError::Encoding { what: "preparing the file meta of", reason: e.to_string() })?;
    Ok(OverlayDocument { file, series_instance_uid: series_uid, sop_instance_uid: sop_uid })
}

/// PixelSpacing: the source's top-level value as written, else the frame's from the functional
/// groups (as long as each value fits a DS).
fn pixel_spacing(header: &InMemDicomObject, params: Option<&FrameParams>) -> Option<String> {
    element_text(header, tags::PIXEL_SPACING).or_else(|| {
        let [row, column] = params?.pixel_spacing?;
        let (row, column) = (row.to_string(), column.to_string());
        (row.len() <= 16 && column.len() <= 16).then(|| format!("{row}\\{column}"))
    })
}

/// The mask thresholded and resampled onto `rows`×`columns` as the SEG does, row-major.
fn resample(mask: &[f32], shape: MaskShape, threshold: f32, rows: usize, columns: usize) -> Vec<bool> {
    super::seg::resampled(mask, shape, threshold, rows, columns).collect()
}

/// The smallest rectangle holding every set pixel: `(top, left, bottom, right)`, inclusive.
fn region_bounds(region: &[bool], columns: usize) -> Option<(usize, usize, usize, usize)> {
    let mut bounds: Option<(usize, usize, usize, usize)> = None;
    for (i, _) in region.iter().enumerate().filter(|(_, set)| **set) {
        let (r, c) = (i / columns, i % columns);
        bounds = Some(match bounds {
            None => (r, c, r, c),
            Some((top, left, bottom, right)) => (top.min(r), left.min(c), bottom.max(r), right.max(c)),
        });
    }
    bounds
}

/// How stored values become display values (PS3.3 C.11.2.1.2).
#[derive(Debug, Clone, Copy)]
enum Voi {
    /// VOILUTFunction LINEAR (the default), width at least 1.
    Linear { center: f64, width: f64 },
    /// LINEAR_EXACT, width above 0.
    LinearExact { center: f64, width: f64 },
    /// SIGMOID, width above 0.
    Sigmoid { center: f64, width: f64 },
    /// No usable window: the range given (the frame's minimum and maximum) spans the output.
    Range { low: f64, high: f64 },
}

impl Voi {
    fn choose(params: &FrameParams, values: &[f64]) -> Self {
        let function = params.voi_function.as_deref().map(str::trim).unwrap_or("LINEAR");
        match params.window {
            Some((center, width)) if center.is_finite() && width.is_finite() => match function {
                "LINEAR_EXACT" if width > 0.0 => return Self::LinearExact { center, width },
                "SIGMOID" if width > 0.0 => return Self::Sigmoid { center, width },
                "LINEAR" if width >= 1.0 => return Self::Linear { center, width },
                _ => {}
            },
            _ => {}
        }
        Self::min_max(values)
    }

    fn min_max(values: &[f64]) -> Self {
        let (low, high) = values
            .iter()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if low <= high {
            Self::Range { low, high }
        } else {
            Self::Range { low: 0.0, high: 0.0 }
        }
    }

    /// The display value of `x`, 0 to 255.
    fn apply(self, x: f64) -> u8 {
        let y = match self {
            Self::Linear { center, width } => {
                let (c, w) = (center - 0.5, width - 1.0);
                if x <= c - w / 2.0 {
                    0.0
                } else if x > c + w / 2.0 {
                    // Width 1 (w = 0) is a step between the two.
                    1.0
                } else {
                    (x - c) / w + 0.5
                }
            }
            Self::LinearExact { center, width } => (x - center) / width + 0.5,
            Self::Sigmoid { center, width } => 1.0 / (1.0 + (-4.0 * (x - center) / width).exp()),
            Self::Range { low, high } if high > low => (x - low) / (high - low),
            Self::Range { .. } => 0.0,
        };
        (y.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// The stored samples `range` of `samples`, through `slope` and `intercept`.
fn rescaled(samples: &Samples, range: std::ops::Range<usize>, slope: f64, intercept: f64) -> Option<Vec<f64>> {
    fn map<T: Copy + Into<f64>>(values: Option<&[T]>, slope: f64, intercept: f64) -> Option<Vec<f64>> {
        Some(values?.iter().map(|&v| v.into() * slope + intercept).collect())
    }
    match samples {
        Samples::U8(v) => map(v.get(range), slope, intercept),
        Samples::I8(v) => map(v.get(range), slope, intercept),
        Samples::U16(v) => map(v.get(range), slope, intercept),
        Samples::I16(v) => map(v.get(range), slope, intercept),
        Samples::U32(v) => map(v.get(range), slope, intercept),
        Samples::I32(v) => map(v.get(range), slope, intercept),
    }
}

/// An 8-bit RGB image, row-major, samples interleaved.
struct Canvas {
    rows: usize,
    columns: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    /// Frame `frame` of `image` for display: rescaled and windowed (greyscale) or as it is
    /// (colour, windowed only where the source has a window). `None` where the samples are
    /// fewer than the frame needs.
    fn from_frame(image: &DecodedImage, frame: usize) -> Option<Self> {
        let (rows, columns) = (image.rows as usize, image.columns as usize);
        let channels = usize::from(image.samples_per_pixel);
        let length = rows * columns * channels;
        let start = frame.checked_mul(length)?;
        let identity = FrameParams { rescale_slope: 1.0, ..FrameParams::default() };
        let params = image.frame_params.get(frame).unwrap_or(&identity);
        let mut rgb = Vec::with_capacity(rows * columns * 3);
        if channels == 1 {
            let values =
                rescaled(&image.samples, start..start + length, params.rescale_slope, params.rescale_intercept)?;
            let voi = Voi::choose(params, &values);
            let invert = image.photometric == "MONOCHROME1";
            for &value in &values {
                let grey = voi.apply(value);
                let grey = if invert { 255 - grey } else { grey };
                rgb.extend_from_slice(&[grey; 3]);
            }
        } else {
            // The Modality LUT does not apply to colour; 8-bit colour is shown as it is.
            let values = rescaled(&image.samples, start..start + length, 1.0, 0.0)?;
            let voi = match (&image.samples, params.window) {
                (Samples::U8(_), None) => Voi::Range { low: 0.0, high: 255.0 },
                _ => Voi::choose(params, &values),
            };
            for pixel in values.chunks_exact(channels) {
                rgb.extend(pixel.iter().take(3).map(|&v| voi.apply(v)));
            }
        }
        Some(Self { rows, columns, rgb })
    }

    fn set(&mut self, row: usize, column: usize, colour: [u8; 3]) {
        if row < self.rows && column < self.columns {
            let i = (row * self.columns + column) * 3;
            self.rgb[i..i + 3].copy_from_slice(&colour);
        }
    }

    /// Paints the pixels of `region` that lie within `thickness` (4-connected steps) of its
    /// edge or of the image's edge.
    fn outline(&mut self, region: &[bool], thickness: usize, colour: [u8; 3]) {
        let (rows, columns) = (self.rows, self.columns);
        let mut inner = region.to_vec();
        for _ in 0..thickness {
            let previous = inner.clone();
            for r in 0..rows {
                for c in 0..columns {
                    let i = r * columns + c;
                    if previous[i] {
                        let at_edge = r == 0 || c == 0 || r + 1 == rows || c + 1 == columns;
                        inner[i] = !at_edge
                            && previous[i - 1]
                            && previous[i + 1]
                            && previous[i - columns]
                            && previous[i + columns];
                    }
                }
            }
        }
        for (i, _) in region.iter().zip(&inner).enumerate().filter(|(_, (set, kept))| **set && !**kept) {
            self.set(i / columns, i % columns, colour);
        }
    }

    /// Draws the rectangle `margin` pixels outside `(top, left, bottom, right)`, `thickness`
    /// pixels wide, clipped to the image.
    fn rectangle(
        &mut self,
        (top, left, bottom, right): (usize, usize, usize, usize),
        margin: usize,
        thickness: usize,
        colour: [u8; 3],
    ) {
        let top = top.saturating_sub(margin);
        let left = left.saturating_sub(margin);
        let bottom = (bottom + margin).min(self.rows - 1);
        let right = (right + margin).min(self.columns - 1);
        for t in 0..thickness {
            for c in left..=right {
                self.set(top + t, c, colour);
                self.set(bottom.saturating_sub(t), c, colour);
            }
            for r in top..=bottom {
                self.set(r, left + t, colour);
                self.set(r, right.saturating_sub(t), colour);
            }
        }
    }

    /// Writes `lines` at the top left, each glyph pixel `scale`×`scale`, wrapped to the width.
    fn text(&mut self, lines: &[String], scale: usize) {
        let margin = 4 * scale;
        let advance = (GLYPH_WIDTH + 1) * scale;
        let line_height = (GLYPH_HEIGHT + 3) * scale;
        // The last glyph needs no gap after it, only its shadow.
        let fits = (self.columns.saturating_sub(2 * margin) + scale) / advance;
        let wrapped: Vec<String> = lines.iter().flat_map(|line| wrap(&glyph_text(line), fits.max(1))).collect();
        // Shadows first, so that no shadow covers a neighbouring glyph.
        for (offset, colour) in [(scale, SHADOW_COLOUR), (0, TEXT_COLOUR)] {
            for (l, line) in wrapped.iter().enumerate() {
                let top = margin + l * line_height + offset;
                for (k, ch) in line.chars().enumerate() {
                    let left = margin + k * advance + offset;
                    let rows = glyph(ch);
                    for (gr, bits) in rows.iter().enumerate() {
                        for gc in (0..GLYPH_WIDTH).filter(|gc| bits >> (GLYPH_WIDTH - 1 - gc) & 1 == 1) {
                            for dr in 0..scale {
                                for dc in 0..scale {
                                    self.set(top + gr * scale + dr, left + gc * scale + dc, colour);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The pixels (an even number of bytes, as a value's length must be).
    fn into_even_bytes(mut self) -> Vec<u8> {
        if self.rgb.len() % 2 == 1 {
            self.rgb.push(0);
        }
        self.rgb
    }
}

/// `line` in the font's characters: upper case, anything it lacks a space.
fn glyph_text(line: &str) -> String {
    line.chars()
        .map(|c| c.to_ascii_uppercase())
        .map(|c| if c != ' ' && glyph(c) == [0; GLYPH_HEIGHT] { ' ' } else { c })
        .collect()
}

/// `line` broken into lines of at most `width` characters, at spaces where it can be.
fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let mut word: Vec<char> = word.chars().collect();
        let used = current.chars().count();
        if used > 0 && used + 1 + word.len() <= width {
            current.push(' ');
            current.extend(&word);
            continue;
        }
        if used > 0 {
            out.push(std::mem::take(&mut current));
        }
        while word.len() > width {
            out.push(word.drain(..width).collect());
        }
        current.extend(word);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    out
}

const GLYPH_WIDTH: usize = 5;
const GLYPH_HEIGHT: usize = 7;

/// The 5×7 glyph of `c`, a row a byte, the leftmost pixel in bit 4; all zero for a space and
/// for what the font lacks.
fn glyph(c: char) -> [u8; GLYPH_HEIGHT] {
    match c {
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        _ => [0; GLYPH_HEIGHT],
    }
}

#[cfg(test)]
mod tests;

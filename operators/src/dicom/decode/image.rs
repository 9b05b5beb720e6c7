//! What decoding produces and what the codecs share: the decoded image and its frame
//! parameters, the pixel module a codec is given, and the helpers more than one codec uses.
//! Apart from `decode.rs` so that the codecs, its children, never import their parent.

use std::borrow::Cow;

use dicom_core::Tag;
use dicom_object::InMemDicomObject;

/// Stored sample values of all frames, frame after frame, samples interleaved (planar
/// configuration normalized to 0), in the type the stored bits need.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// Unsigned 8-bit.
    U8(Vec<u8>),
    /// Signed 8-bit.
    I8(Vec<i8>),
    /// Unsigned 16-bit.
    U16(Vec<u16>),
    /// Signed 16-bit.
    I16(Vec<i16>),
    /// Unsigned 32-bit.
    U32(Vec<u32>),
    /// Signed 32-bit.
    I32(Vec<i32>),
}

impl Samples {
    /// The number of samples (all frames, all channels).
    pub fn len(&self) -> usize {
        match self {
            Samples::U8(v) => v.len(),
            Samples::I8(v) => v.len(),
            Samples::U16(v) => v.len(),
            Samples::I16(v) => v.len(),
            Samples::U32(v) => v.len(),
            Samples::I32(v) => v.len(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `i` widened to i64 (for comparisons and tests; not for hot paths).
    pub fn get_i64(&self, i: usize) -> Option<i64> {
        match self {
            Samples::U8(v) => v.get(i).map(|&x| i64::from(x)),
            Samples::I8(v) => v.get(i).map(|&x| i64::from(x)),
            Samples::U16(v) => v.get(i).map(|&x| i64::from(x)),
            Samples::I16(v) => v.get(i).map(|&x| i64::from(x)),
            Samples::U32(v) => v.get(i).map(|&x| i64::from(x)),
            Samples::I32(v) => v.get(i).map(|&x| i64::from(x)),
        }
    }
}

/// Per-frame parameters (from the shared or per-frame functional groups for enhanced
/// multi-frame objects, from the top-level attributes otherwise).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameParams {
    /// RescaleSlope (1 when absent).
    pub rescale_slope: f64,
    /// RescaleIntercept (0 when absent).
    pub rescale_intercept: f64,
    /// The first WindowCenter/WindowWidth pair, if any.
    pub window: Option<(f64, f64)>,
    /// VOILUTFunction (LINEAR when absent).
    pub voi_function: Option<String>,
    /// ImagePositionPatient.
    pub position: Option<[f64; 3]>,
    /// ImageOrientationPatient.
    pub orientation: Option<[f64; 6]>,
    /// PixelSpacing (row, column).
    pub pixel_spacing: Option<[f64; 2]>,
}

/// A decoded image (all frames).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedImage {
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub columns: u32,
    /// Number of frames.
    pub frames: u32,
    /// Samples per pixel after decoding (1 for grayscale, 3 for color: RGB after any YBR or
    /// palette conversion).
    pub samples_per_pixel: u16,
    /// The photometric interpretation after decoding (`MONOCHROME1`, `MONOCHROME2` or `RGB`).
    pub photometric: String,
    /// The transfer syntax UID the object was encoded with.
    pub transfer_syntax: String,
    /// The stored values.
    pub samples: Samples,
    /// One entry per frame.
    pub frame_params: Vec<FrameParams>,
}

/// Why pixel data could not be decoded. Names the transfer syntax or photometric
/// interpretation and what is missing; never a value from the data set other than sizes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub DecodeReason);

impl DecodeError {
    /// Pixel data this build cannot decode (a codec failed, a feature is missing).
    pub fn new(text: impl Into<String>) -> Self {
        Self(DecodeReason { text: text.into(), malformed: false })
    }

    /// An object that contradicts itself: its codec stream declares another image than its
    /// attributes (or more data than it holds). Refused before the codec runs.
    pub fn malformed(text: impl Into<String>) -> Self {
        Self(DecodeReason { text: text.into(), malformed: true })
    }

    /// Whether the object is malformed (see [`DecodeError::malformed`]), not merely undecodable.
    pub fn is_malformed(&self) -> bool {
        self.0.malformed
    }

    /// The text of the reason.
    pub fn reason(&self) -> &str {
        &self.0.text
    }
}

/// The reason of a [`DecodeError`]: its text, and whether the object is malformed. Made from a
/// text (`"...".into()`), it is an undecodable object's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeReason {
    text: String,
    malformed: bool,
}

impl From<String> for DecodeReason {
    fn from(text: String) -> Self {
        Self { text, malformed: false }
    }
}

impl From<&str> for DecodeReason {
    fn from(text: &str) -> Self {
        text.to_string().into()
    }
}

impl std::fmt::Display for DecodeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The image pixel module attributes decoding depends on, checked for sanity.
pub(crate) struct PixelModule {
    pub(crate) rows: u32,
    pub(crate) columns: u32,
    pub(crate) samples_per_pixel: u16,
    pub(crate) bits_allocated: u16,
    pub(crate) bits_stored: u16,
    pub(crate) signed: bool,
    pub(crate) photometric: String,
    pub(crate) planar: bool,
    pub(crate) frames: u32,
}

impl PixelModule {
    pub(crate) fn pixels_per_frame(&self) -> usize {
        self.rows as usize * self.columns as usize
    }

    /// Stored samples of all frames as they come out of the codec (before any color change).
    pub(crate) fn sample_count(&self) -> usize {
        self.pixels_per_frame() * usize::from(self.samples_per_pixel) * self.frames as usize
    }

    /// The bytes one decoded frame takes as the attributes declare it: Rows x Columns x
    /// SamplesPerPixel samples of BitsAllocated / 8 bytes (1-bit data unpacks to a byte each).
    pub(crate) fn frame_bytes(&self) -> u64 {
        let samples = self.pixels_per_frame() as u64 * u64::from(self.samples_per_pixel);
        samples * u64::from(self.bits_allocated).div_ceil(8)
    }

    /// The decoded bytes of all frames as the attributes declare them.
    pub(crate) fn decoded_bytes(&self) -> u64 {
        self.frame_bytes() * u64::from(self.frames)
    }
}

/// The codestream of each frame of encapsulated Pixel Data (PS3.5 A.4): all fragments joined
/// when there is one frame; else grouped by the Basic Offset Table when it has an entry per
/// frame; else one fragment per frame; else, for the JPEG family, whose codestreams end with an
/// EOI marker, a frame ends with each fragment that ends with EOI (as pydicom does). None when
/// the frames cannot be told apart.
pub(crate) fn frame_streams<'a>(
    fragments: &'a [Vec<u8>],
    offset_table: &[u32],
    frames: usize,
) -> Option<Vec<Cow<'a, [u8]>>> {
    let join = |group: &'a [Vec<u8>]| match group {
        [one] => Cow::Borrowed(one.as_slice()),
        _ => Cow::Owned(group.concat()),
    };
    if frames == 1 {
        return Some(vec![join(fragments)]);
    }
    if offset_table.len() == frames {
        // Offsets count from the first fragment's item tag; each item has an 8-byte header.
        let (mut starts, mut position) = (Vec::with_capacity(frames), 0u64);
        for (i, fragment) in fragments.iter().enumerate() {
            if offset_table.get(starts.len()).is_some_and(|&offset| u64::from(offset) == position) {
                starts.push(i);
            }
            position += 8 + fragment.len() as u64;
        }
        if starts.len() == frames {
            let ends = starts.iter().skip(1).copied().chain([fragments.len()]);
            return Some(starts.iter().zip(ends).map(|(&start, end)| join(&fragments[start..end])).collect());
        }
    }
    if fragments.len() == frames {
        return Some(fragments.iter().map(|f| Cow::Borrowed(f.as_slice())).collect());
    }
    let (mut streams, mut start) = (Vec::with_capacity(frames), 0);
    for (i, fragment) in fragments.iter().enumerate() {
        // An odd-length codestream is padded with one zero byte after its EOI.
        if fragment.strip_suffix(&[0]).unwrap_or(fragment).ends_with(&[0xFF, 0xD9]) {
            streams.push(join(&fragments[start..=i]));
            start = i + 1;
        }
    }
    (streams.len() == frames && start == fragments.len()).then_some(streams)
}

/// The text of an attribute with its padding (NUL and space, either end) removed; `None` when
/// absent or empty. Unlike [`crate::dicom::element_text`], other whitespace is kept.
pub(crate) fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(['\0', ' ']).to_string())
        .filter(|s| !s.is_empty())
}

//! JPEG streams that carry RGB without saying so, or say it wrongly.
//!
//! PhotometricInterpretation RGB with JPEG baseline/extended means the components were not
//! color transformed. A stream with neither a JFIF (APP0) nor an Adobe (APP14) marker gives the
//! decoder nothing to go on, and jpeg-decoder then assumes YCbCr and "converts" RGB data
//! (pydicom and libjpeg do not). For such streams we call jpeg-decoder ourselves with the color
//! transform off. All JPEG streams jpeg-decoder reads go through [`decode_frames`], which checks
//! each stream's frame header against the attributes before decoding and sets jpeg-decoder's
//! buffer limit (dicom-pixeldata's JPEG adapter sets none).
//!
//! An Adobe segment too short to hold its transform flag (pydicom's `SC_rgb_jpeg.dcm` has one)
//! is not a usable marker: libjpeg (pydicom's decoder) then leaves the components as they are,
//! while jpeg-decoder converts them from YCbCr. Such streams are treated as unmarked.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};

use dicom_dictionary_std::uids;
use jpeg_decoder::{ColorTransform, Decoder, PixelFormat};

use super::declared::{check_stream, Codec};
use super::image::PixelModule;

/// The color marker of a JPEG stream before its first scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColorMarker {
    /// Neither JFIF nor Adobe.
    None,
    /// A JFIF marker or a complete Adobe marker: the decoder knows what to do.
    Present,
    /// An Adobe segment shorter than its 12 bytes (no transform flag).
    TruncatedAdobe,
}

fn color_marker(stream: &[u8]) -> ColorMarker {
    let mut i = 2; // after SOI
    while i + 4 <= stream.len() {
        if stream[i] != 0xFF {
            return ColorMarker::None;
        }
        let marker = stream[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return ColorMarker::None;
        }
        let len = usize::from(u16::from_be_bytes([stream[i + 2], stream[i + 3]]));
        let body = stream.get(i + 4..(i + 2 + len).min(stream.len())).unwrap_or(&[]);
        if marker == 0xE0 && body.starts_with(b"JFIF") {
            return ColorMarker::Present;
        }
        if marker == 0xEE && body.starts_with(b"Adobe") {
            // "Adobe", version (2), flags0 (2), flags1 (2), transform (1).
            return if body.len() >= 12 { ColorMarker::Present } else { ColorMarker::TruncatedAdobe };
        }
        i += 2 + len;
    }
    ColorMarker::None
}

/// The frames' streams when this module should decode them: RGB, JPEG baseline or extended,
/// 8 bits, one fragment per frame (or one frame), no JFIF marker and no complete Adobe marker.
pub(super) fn unmarked_rgb_frames<'a>(
    uid: &str,
    photometric: &str,
    bits_allocated: u16,
    fragments: &'a [Vec<u8>],
    frames: usize,
) -> Option<Vec<Cow<'a, [u8]>>> {
    let jpeg_lossy = uid == uids::JPEG_BASELINE8_BIT || uid == uids::JPEG_EXTENDED12_BIT;
    if !jpeg_lossy || photometric != "RGB" || bits_allocated != 8 {
        return None;
    }
    let streams: Vec<Cow<'a, [u8]>> = if fragments.len() == frames {
        fragments.iter().map(|f| Cow::Borrowed(f.as_slice())).collect()
    } else if frames == 1 {
        vec![Cow::Owned(fragments.concat())]
    } else {
        return None;
    };
    streams.iter().all(|s| s.starts_with(&[0xFF, 0xD8]) && color_marker(s) != ColorMarker::Present).then_some(streams)
}

/// Why [`decode_frames`] gave up.
#[derive(Debug)]
pub(super) enum Failure {
    /// A stream declares another image than the attributes: refused before decoding.
    Malformed(String),
    /// jpeg-decoder could not decode a stream, or the attributes ask for what it does not do.
    Codec(String),
}

/// A frame of this many bytes or more must come from a stream of at least 1/[`MAX_EXPANSION`]
/// of its size: the threshold and ratio dicom-pixeldata's JPEG adapter used before.
const EXPANSION_CHECKED_FROM: usize = 16 << 20;
const MAX_EXPANSION: usize = 64;

/// Decodes one JPEG stream per frame with jpeg-decoder into little-endian samples,
/// BitsAllocated wide, interleaved. `transform` overrides the color transform the stream's
/// markers imply (`None`: jpeg-decoder decides, converting YCbCr to RGB).
///
/// Every stream's frame header is checked against the attributes before any frame is decoded
/// ([`check_stream`]); jpeg-decoder then reads the header itself (`read_info`, which allocates
/// nothing for the image) and is checked again, and its buffer limit is set to the frame's size.
/// The limit alone would not do: jpeg-decoder checks it only once the planes are decoded.
pub(super) fn decode_frames(
    streams: &[Cow<'_, [u8]>],
    module: &PixelModule,
    transform: Option<ColorTransform>,
) -> Result<Vec<u8>, Failure> {
    if module.bits_allocated != 8 && module.bits_allocated != 16 {
        return Err(Failure::Codec("JPEG needs BitsAllocated 8 or 16".into()));
    }
    if streams.len() != module.frames as usize {
        return Err(Failure::Codec(format!(
            "there are {} JPEG streams for NumberOfFrames {}",
            streams.len(),
            module.frames
        )));
    }
    let frame_len = module.frame_bytes() as usize;
    for (index, stream) in streams.iter().enumerate() {
        check_stream(Codec::Jpeg, stream, module, index).map_err(Failure::Malformed)?;
        if frame_len >= EXPANSION_CHECKED_FROM && stream.len() < frame_len / MAX_EXPANSION {
            return Err(Failure::Malformed(format!(
                "a JPEG stream of {} bytes for a frame of {frame_len} bytes (Rows \u{d7} Columns \u{d7} \
                 SamplesPerPixel \u{d7} BitsAllocated) would expand more than {MAX_EXPANSION} times: the object is \
                 truncated or inconsistent",
                stream.len()
            )));
        }
    }
    let samples = module.pixels_per_frame() * usize::from(module.samples_per_pixel);
    let mut out = Vec::with_capacity(if streams.len() > 1 { frame_len * streams.len() } else { 0 });
    for (index, stream) in streams.iter().enumerate() {
        let in_frame = |what: String| if streams.len() > 1 { format!("frame {}: {what}", index + 1) } else { what };
        let decoded = catch_unwind(AssertUnwindSafe(|| decode_one(stream, module, transform, samples)))
            .map_err(|_| Failure::Codec(in_frame("the JPEG decoder panicked on malformed data".into())))?
            .map_err(|failure| match failure {
                Failure::Malformed(what) => Failure::Malformed(in_frame(what)),
                Failure::Codec(what) => Failure::Codec(in_frame(what)),
            })?;
        let start = out.len();
        if decoded.len() == frame_len && streams.len() == 1 {
            // One frame: the decoder's buffer is the output, not copied.
            out = decoded;
            if cfg!(target_endian = "big") && module.bits_allocated == 16 {
                out.chunks_exact_mut(2).for_each(|word| word.swap(0, 1));
            }
        } else if decoded.len() == frame_len {
            out.extend_from_slice(&decoded);
            if cfg!(target_endian = "big") && module.bits_allocated == 16 {
                out[start..].chunks_exact_mut(2).for_each(|word| word.swap(0, 1));
            }
        } else if decoded.len() == samples && module.bits_allocated == 16 {
            // 8-bit samples in 16 bits allocated.
            out.extend(decoded.iter().flat_map(|&b| u16::from(b).to_le_bytes()));
        } else {
            return Err(Failure::Codec(in_frame(format!(
                "the JPEG stream decoded to {} bytes, the frame is {frame_len} bytes",
                decoded.len()
            ))));
        }
    }
    Ok(out)
}

/// One stream, read by jpeg-decoder with its limit set to the frame's `samples`.
fn decode_one(
    stream: &[u8],
    module: &PixelModule,
    transform: Option<ColorTransform>,
    samples: usize,
) -> Result<Vec<u8>, Failure> {
    let mut decoder = Decoder::new(stream);
    if let Some(transform) = transform {
        decoder.set_color_transform(transform);
    }
    decoder.set_max_decoding_buffer_size(samples);
    let failed =
        |e: jpeg_decoder::Error| Failure::Codec(format!("the JPEG decoder failed ({})", bounded(&e.to_string())));
    decoder.read_info().map_err(failed)?;
    let info = decoder.info().ok_or_else(|| Failure::Codec("the JPEG decoder read no frame header".into()))?;
    let components = match info.pixel_format {
        PixelFormat::L8 | PixelFormat::L16 => 1,
        PixelFormat::RGB24 => 3,
        PixelFormat::CMYK32 => 4,
    };
    if (u32::from(info.width), u32::from(info.height), components)
        != (module.columns, module.rows, module.samples_per_pixel)
    {
        return Err(Failure::Malformed(format!(
            "jpeg-decoder reads a frame header of {}\u{d7}{} with {components} components, the DICOM attributes \
             say {}\u{d7}{} with SamplesPerPixel {}: the object is inconsistent, re-export it from its source",
            info.width, info.height, module.columns, module.rows, module.samples_per_pixel
        )));
    }
    if transform == Some(ColorTransform::None) && info.pixel_format != PixelFormat::RGB24 {
        return Err(Failure::Codec("the JPEG decoder did not produce 3 components".into()));
    }
    decoder.decode().map_err(failed)
}

/// jpeg-decoder's message on one line and bounded; its messages are static texts and numbers
/// from the stream's markers, never sample data.
fn bounded(message: &str) -> String {
    message.chars().filter(|c| !c.is_control()).take(200).collect()
}

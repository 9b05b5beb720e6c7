//! Pixel data decoding: every common transfer syntax into stored sample values, with the
//! per-frame parameters the transforms need. The heavy lifting is the codecs'; this module
//! adds what they lack and names what cannot be decoded.
//!
//! What dicom-pixeldata does here: JPEG 2000 and HTJ2K through the pure-Rust openjp2. What this
//! module does itself: native (uncompressed, deflated, big endian) pixel data, RLE
//! (dicom-pixeldata's stops at 16 bits), 8-bit and lossless JPEG through jpeg-decoder with its
//! buffer limit set (jpeg.rs; dicom-pixeldata's adapter sets none), 12-bit JPEG (jpeg12.rs),
//! RGB JPEG streams without color markers, 1-bit unpacking, sign extension, planar
//! configuration, YBR_FULL / YBR_FULL_422 to RGB, palette color, and the functional groups.
//! JPEG-LS goes through CharLS 2, opened at run time (see jpegls.rs): without it installed, such
//! objects get an error that says what to install.
//!
//! Decoder bombs: a codec sizes its buffers from its own stream, so every stream's header is
//! checked against the attributes before its codec runs (declared.rs), and the decoded size the
//! attributes declare is bounded per decode ([`DecodeLimits`]) and, across concurrent decodes,
//! by a shared [`DecodeBudget`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use dicom_core::value::{PrimitiveValue, Value as DicomValue};
use dicom_core::Tag;
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

mod budget;
mod color;
mod declared;
mod image;
mod jpeg;
mod jpeg12;
mod jpegls;
mod params;
mod rle;
#[cfg(test)]
mod tests;

pub use self::budget::{DecodeBudget, Reservation};
use self::declared::{check_rle_fragment, check_stream, pixeldata_frame, Codec};
use self::image::{frame_streams, text, PixelModule};
pub use self::image::{DecodeError, DecodeReason, DecodedImage, FrameParams, Samples};

pub use crate::dicom::part10::MAX_DECODED_BYTES;
use crate::dicom::part10::{open_part10, syntax_of, Syntax};
use crate::dicom::prescan::EXPLICIT_VR_BIG_ENDIAN;

const RLE_LOSSLESS: &str = uids::RLE_LOSSLESS;
const JPEG_EXTENDED: &str = uids::JPEG_EXTENDED12_BIT;

/// The bounds of one decode.
#[derive(Debug, Clone)]
pub struct DecodeLimits {
    /// The most decoded bytes (all frames, as Rows x Columns x SamplesPerPixel x BitsAllocated
    /// x NumberOfFrames declare them) accepted; at most [`MAX_DECODED_BYTES`].
    pub max_decoded_bytes: u64,
    /// A budget shared with other decodes: the decoded bytes are reserved from it, after the
    /// checks and before the codec runs, and held until the decode returns (with
    /// [`decode_reserved`], until the caller drops the [`Reservation`]).
    pub budget: Option<Arc<DecodeBudget>>,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_decoded_bytes: MAX_DECODED_BYTES, budget: None }
    }
}

/// Decodes the pixel data of a whole Part-10 object, up to [`MAX_DECODED_BYTES`].
///
/// Every codec stream's own header (JPEG and JPEG-LS frame headers, the JPEG 2000 SIZ marker)
/// is checked against the attributes before its codec runs, and an RLE fragment must be able
/// to hold its frame: a stream that declares another image is refused with a
/// [malformed](DecodeError::is_malformed) error naming both, before anything is allocated.
pub fn decode(object: &[u8]) -> Result<DecodedImage, DecodeError> {
    decode_with(object, &DecodeLimits::default())
}

/// [`decode`] within `limits`.
pub fn decode_with(object: &[u8], limits: &DecodeLimits) -> Result<DecodedImage, DecodeError> {
    decode_reserved(object, limits).map(|(image, _)| image)
}

/// [`decode_with`], and the bytes it reserved from the limits' budget, for a caller that keeps
/// the samples a while (to make a tensor from them) to give back when it is done.
pub fn decode_reserved(
    object: &[u8],
    limits: &DecodeLimits,
) -> Result<(DecodedImage, Option<Reservation>), DecodeError> {
    let body = if object.len() >= 132 && &object[128..132] == b"DICM" { &object[128..] } else { object };
    if body.len() < 4 || &body[..4] != b"DICM" {
        return Err(DecodeError::new("no DICM magic code at byte 128 (or 0): not a Part-10 object"));
    }
    // The parser's own message is withheld: some of its errors quote the token they choked on.
    let parsed = open_part10(body, false).map_err(DecodeError::new)?;
    let mut obj = match parsed {
        Some(obj) => obj,
        None => {
            let what = "the data set could not be parsed (its encoding may not match the transfer syntax)";
            return Err(DecodeError::new(match crate::dicom::part10::read_meta(body) {
                Ok(Ok(meta)) => format!("{}: {what}", syntax_of(meta.transfer_syntax())),
                _ => "the object could not be parsed: its file meta group is unreadable".into(),
            }));
        }
    };

    let syntax = syntax_of(obj.meta().transfer_syntax());
    let uid = syntax.uid.clone();
    let ts = TransferSyntaxRegistry.get(&uid);
    let Some(ts) = ts else {
        return Err(DecodeError::new(format!("{syntax}: not known to this build, no decoder for it")));
    };

    let pixel_data = obj.get(tags::PIXEL_DATA).ok_or_else(|| {
        let what = if obj.get(tags::FLOAT_PIXEL_DATA).is_some() || obj.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some() {
            "has float pixel data, which is not supported"
        } else {
            "has no Pixel Data (7FE0,0010)"
        };
        DecodeError::new(format!("{syntax}: the object {what}"))
    })?;

    let module = pixel_module(&obj, &syntax, limits.max_decoded_bytes.min(MAX_DECODED_BYTES))?;
    let photometric = module.photometric.as_str();
    let malformed =
        |what: String| DecodeError::malformed(format!("{syntax}, photometric interpretation {photometric}: {what}"));

    // The decoded bytes, reserved from the budget once the checks are done.
    let reserved;
    // What comes out of the codec: samples, their layout and whether the codec already made RGB.
    let (samples, planar, codec_made_rgb) = match pixel_data.value() {
        DicomValue::Primitive(_) => {
            if ts.is_encapsulated_pixel_data() {
                return Err(DecodeError::new(format!(
                    "{syntax}: Pixel Data is native although the transfer syntax encapsulates it"
                )));
            }
            reserved = limits.budget.as_ref().map(|budget| budget.reserve(module.decoded_bytes()));
            // Taken out of the object: the parser's buffer becomes the samples, uncopied where
            // its layout allows. Nothing after this reads Pixel Data from the object.
            let value = obj.take(tags::PIXEL_DATA).and_then(|element| element.into_value().into_primitive());
            let value = value.ok_or_else(|| DecodeError::new(format!("{syntax}: Pixel Data is not native")))?;
            (native_samples(value, &uid, &module, &syntax)?, module.planar, false)
        }
        DicomValue::PixelSequence(sequence) => {
            let (fragments, offset_table) = (sequence.fragments(), sequence.offset_table());
            let frames = module.frames as usize;
            let failed = |what| DecodeError::new(format!("{syntax}, photometric interpretation {photometric}: {what}"));
            let unsplittable = || failed("the fragments cannot be told apart into NumberOfFrames frames".into());
            if uid == RLE_LOSSLESS {
                if module.bits_allocated == 1 {
                    return Err(DecodeError::new(format!("{syntax}: RLE with BitsAllocated 1 is not supported")));
                }
                for (frame, fragment) in fragments.iter().take(frames).enumerate() {
                    check_rle_fragment(fragment, &module, frame).map_err(malformed)?;
                }
                reserved = limits.budget.as_ref().map(|budget| budget.reserve(module.decoded_bytes()));
                let (pixels, samples_per_pixel) = (module.pixels_per_frame(), module.samples_per_pixel.into());
                let failed = |what: &str| failed(what.into());
                let samples = if module.bits_allocated == 16 {
                    let words = rle::decode_words(fragments, frames, pixels, samples_per_pixel).map_err(failed)?;
                    samples_from_words(words, &module, &syntax)?
                } else {
                    let width = usize::from(module.bits_allocated / 8);
                    let bytes = rle::decode(fragments, frames, pixels, samples_per_pixel, width).map_err(failed)?;
                    samples_from_le(&bytes, &module, &syntax)?
                };
                return Ok((finish(&obj, &module, &syntax, samples, false, false)?, reserved));
            }
            if uid == jpegls::LOSSLESS || uid == jpegls::NEAR_LOSSLESS {
                let streams = frame_streams(fragments, offset_table, frames).ok_or_else(unsplittable)?;
                check_streams(Codec::JpegLs, &streams, &module).map_err(malformed)?;
                reserved = limits.budget.as_ref().map(|budget| budget.reserve(module.decoded_bytes()));
                let bytes = jpegls::decode_frames(&streams, &module, &uid).map_err(failed)?;
                let samples = samples_from_le(&bytes, &module, &syntax)?;
                return Ok((finish(&obj, &module, &syntax, samples, false, false)?, reserved));
            }
            if uid == JPEG_EXTENDED && module.bits_stored > 8 {
                // jpeg-decoder decodes 8-bit lossy JPEG only.
                let streams = frame_streams(fragments, offset_table, frames).ok_or_else(unsplittable)?;
                check_streams(Codec::Jpeg, &streams, &module).map_err(malformed)?;
                drop(streams);
                reserved = limits.budget.as_ref().map(|budget| budget.reserve(module.decoded_bytes()));
                let decoded = jpeg12::decode(fragments, offset_table, &module).map_err(failed)?;
                let mut samples = samples_from_le(&decoded.bytes, &module, &syntax)?;
                if decoded.ycbcr && photometric == "RGB" {
                    // A JFIF or Adobe marker overrides the photometric interpretation.
                    samples = color::ybr_full_to_rgb(samples, module.bits_stored).map_err(|what| {
                        DecodeError::new(format!("{syntax}, photometric interpretation RGB: {what}"))
                    })?;
                }
                return Ok((finish(&obj, &module, &syntax, samples, false, false)?, reserved));
            }
            if !ts.can_decode_all() {
                return Err(DecodeError::new(format!("{syntax}: {}", missing_codec(&uid))));
            }
            if is_jpeg_process(&uid) {
                let unmarked = jpeg::unmarked_rgb_frames(&uid, photometric, module.bits_allocated, fragments, frames);
                // RGB without color markers: jpeg-decoder would take it for YCbCr.
                let (streams, transform) = match unmarked {
                    Some(streams) => (streams, Some(jpeg_decoder::ColorTransform::None)),
                    None => (frame_streams(fragments, offset_table, frames).ok_or_else(unsplittable)?, None),
                };
                reserved = limits.budget.as_ref().map(|budget| budget.reserve(module.decoded_bytes()));
                let bytes = jpeg::decode_frames(&streams, &module, transform).map_err(|failure| match failure {
                    jpeg::Failure::Malformed(what) => malformed(what),
                    jpeg::Failure::Codec(what) => failed(what),
                })?;
                drop(streams);
                let samples = samples_from_le(&bytes, &module, &syntax)?;
                // The codec undid the color transform (YCbCr to RGB) unless told not to.
                let converts = transform.is_none() && module.samples_per_pixel == 3;
                return Ok((finish(&obj, &module, &syntax, samples, false, converts)?, reserved));
            }
            if is_jpeg_2000(&uid) {
                // Each frame as dicom-pixeldata will hand it to openjp2.
                for frame in 0..frames {
                    if let Some(stream) = pixeldata_frame(fragments, offset_table, frames, frame) {
                        check_stream(Codec::Jpeg2000, &stream, &module, frame).map_err(malformed)?;
                    }
                }
            }
            reserved = limits.budget.as_ref().map(|budget| budget.reserve(module.decoded_bytes()));
            let bytes = run_codec(&obj, &module, &syntax)?;
            let samples = samples_from_le(&bytes, &module, &syntax)?;
            // The JPEG family codecs undo the color transform (YCbCr, RCT, ICT) themselves; RLE
            // and encapsulated uncompressed leave the samples as stored. All return interleaved.
            let converts = is_jpeg_family(&uid) && module.samples_per_pixel == 3;
            (samples, false, converts)
        }
        DicomValue::Sequence(_) => {
            return Err(DecodeError::new(format!("{syntax}: Pixel Data is a sequence, not pixel data")));
        }
    };
    Ok((finish(&obj, &module, &syntax, samples, planar, codec_made_rgb)?, reserved))
}

/// Color normalization and the frame parameters, after the codec.
fn finish(
    obj: &dicom_object::FileDicomObject<InMemDicomObject>,
    module: &PixelModule,
    syntax: &Syntax,
    samples: Samples,
    planar: bool,
    codec_made_rgb: bool,
) -> Result<DecodedImage, DecodeError> {
    let photometric = module.photometric.as_str();
    let mut samples = samples;
    if module.samples_per_pixel == 3 && planar {
        samples = color::interleave_planes(samples, module.pixels_per_frame());
    }
    let (samples, samples_per_pixel, photometric_out) = match photometric {
        "MONOCHROME1" | "MONOCHROME2" => (samples, 1, photometric.to_string()),
        "RGB" => (samples, 3, "RGB".to_string()),
        "YBR_FULL" | "YBR_FULL_422" | "YBR_ICT" | "YBR_RCT" if codec_made_rgb => (samples, 3, "RGB".to_string()),
        "YBR_FULL" | "YBR_FULL_422" => {
            let rgb = color::ybr_full_to_rgb(samples, module.bits_stored).map_err(|what| {
                DecodeError::new(format!("{syntax}, photometric interpretation {photometric}: {what}"))
            })?;
            (rgb, 3, "RGB".to_string())
        }
        "PALETTE COLOR" => {
            let rgb = color::apply_palette(obj, &samples).map_err(|what| {
                DecodeError::new(format!("{syntax}, photometric interpretation PALETTE COLOR: {what}"))
            })?;
            (rgb, 3, "RGB".to_string())
        }
        other => {
            return Err(DecodeError::new(format!(
                "{syntax}, photometric interpretation {other}: not supported with this transfer syntax"
            )));
        }
    };

    Ok(DecodedImage {
        rows: module.rows,
        columns: module.columns,
        frames: module.frames,
        samples_per_pixel,
        photometric: photometric_out,
        transfer_syntax: syntax.uid.clone(),
        samples,
        frame_params: params::frame_params(obj, module.frames),
    })
}

/// Checks every frame's stream of `codec` against the attributes (see [`check_stream`]).
fn check_streams(codec: Codec, streams: &[std::borrow::Cow<'_, [u8]>], module: &PixelModule) -> Result<(), String> {
    streams.iter().enumerate().try_for_each(|(frame, stream)| check_stream(codec, stream, module, frame).map(drop))
}

/// The JPEG processes of T.81 (1.2.840.10008.1.2.4.50 to .70: baseline, extended, lossless and
/// the retired ones), which jpeg-decoder reads; not JPEG-LS (.80, .81) nor JPEG 2000.
fn is_jpeg_process(uid: &str) -> bool {
    uid.strip_prefix("1.2.840.10008.1.2.4.").and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| (50..=70).contains(&n))
}

/// JPEG 2000 (.90 to .93) and HTJ2K (.201 to .203), which openjp2 reads.
fn is_jpeg_2000(uid: &str) -> bool {
    uid.strip_prefix("1.2.840.10008.1.2.4.")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (90..=93).contains(&n) || (201..=203).contains(&n))
}

fn is_jpeg_family(uid: &str) -> bool {
    // JPEG (1.2.840.10008.1.2.4.50-70) and JPEG 2000 (.90-.93, .201-.203 HTJ2K) and JPEG-LS.
    uid.starts_with("1.2.840.10008.1.2.4.")
}

/// What is missing for a transfer syntax this build cannot decode.
fn missing_codec(uid: &str) -> &'static str {
    match uid {
        uids::JPEGXL_LOSSLESS | uids::JPEGXLJPEG_RECOMPRESSION | uids::JPEGXL => "JPEG XL decoding is not built in",
        uids::MPEG2MPML
        | uids::MPEG2MPHL
        | uids::MPEG4HP41
        | uids::MPEG4HP41BD
        | uids::MPEG4HP422D
        | uids::MPEG4HP423D
        | uids::MPEG4HP42STEREO
        | uids::HEVCMP51
        | uids::HEVCM10P51 => "MPEG video decoding is not built in",
        _ => "no decoder for it is built in",
    }
}

/// Reads and checks the image pixel module. Messages name the attribute, never its value
/// (except enumerated values such as the photometric interpretation, sanitized).
fn pixel_module(obj: &InMemDicomObject, syntax: &Syntax, max_bytes: u64) -> Result<PixelModule, DecodeError> {
    let photometric: String = text(obj, tags::PHOTOMETRIC_INTERPRETATION)
        .map(|s| s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ' ').take(16).collect())
        .unwrap_or_default();
    let pi = if photometric.is_empty() { "(absent)".to_string() } else { photometric.clone() };
    let bad = |what: &str| DecodeError::new(format!("{syntax}, photometric interpretation {pi}: {what}"));
    let uint = |tag: Tag| -> Result<Option<u32>, DecodeError> {
        match obj.get(tag) {
            None => Ok(None),
            Some(e) => {
                e.to_int::<u32>().map(Some).map_err(|_| bad("an image pixel attribute is not a valid unsigned integer"))
            }
        }
    };
    if photometric.is_empty() {
        return Err(bad("PhotometricInterpretation is missing"));
    }
    let rows = uint(tags::ROWS)?.ok_or_else(|| bad("Rows is missing"))?;
    let columns = uint(tags::COLUMNS)?.ok_or_else(|| bad("Columns is missing"))?;
    let samples_per_pixel = uint(tags::SAMPLES_PER_PIXEL)?.unwrap_or(1);
    let bits_allocated = uint(tags::BITS_ALLOCATED)?.ok_or_else(|| bad("BitsAllocated is missing"))?;
    let bits_stored = uint(tags::BITS_STORED)?.unwrap_or(bits_allocated);
    let pixel_representation = uint(tags::PIXEL_REPRESENTATION)?.unwrap_or(0);
    let planar = uint(tags::PLANAR_CONFIGURATION)?.unwrap_or(0);
    // NumberOfFrames is IS: to_int parses the text.
    let frames = match obj.get(tags::NUMBER_OF_FRAMES) {
        None => 1,
        Some(e) if e.to_str().is_ok_and(|s| s.trim_matches(['\0', ' ']).is_empty()) => 1,
        Some(e) => e.to_int::<i64>().map_err(|_| bad("NumberOfFrames is not an integer"))?,
    };

    if rows == 0 || columns == 0 {
        return Err(bad("Rows or Columns is zero"));
    }
    if !(1..=u32::MAX as i64).contains(&frames) {
        return Err(bad("NumberOfFrames is not a positive number"));
    }
    if ![1, 8, 16, 32].contains(&bits_allocated) {
        return Err(bad("BitsAllocated is not 1, 8, 16 or 32"));
    }
    if bits_stored == 0 || bits_stored > bits_allocated {
        return Err(bad("BitsStored is zero or larger than BitsAllocated"));
    }
    if pixel_representation > 1 || planar > 1 {
        return Err(bad("PixelRepresentation or PlanarConfiguration is not 0 or 1"));
    }
    let expected_samples = match photometric.as_str() {
        "MONOCHROME1" | "MONOCHROME2" | "PALETTE COLOR" => 1,
        "RGB" | "YBR_FULL" | "YBR_FULL_422" | "YBR_ICT" | "YBR_RCT" => 3,
        _ => return Err(bad("this photometric interpretation is not supported")),
    };
    if samples_per_pixel != expected_samples {
        return Err(bad("SamplesPerPixel does not match the photometric interpretation"));
    }
    let bytes = u64::from(rows)
        * u64::from(columns)
        * u64::from(samples_per_pixel)
        * (u64::from(bits_allocated).div_ceil(8))
        * frames as u64;
    if bytes > max_bytes {
        return Err(bad(&format!(
            "the decoded pixel data would be {bytes} bytes (Rows x Columns x SamplesPerPixel x BitsAllocated x \
             NumberOfFrames), more than the size limit of {max_bytes} bytes"
        )));
    }
    Ok(PixelModule {
        rows,
        columns,
        samples_per_pixel: samples_per_pixel as u16,
        bits_allocated: bits_allocated as u16,
        bits_stored: bits_stored as u16,
        signed: pixel_representation == 1,
        photometric,
        planar: planar == 1,
        frames: frames as u32,
    })
}

/// Native Pixel Data as little-endian bytes, whatever the parser made of it. In big endian the
/// parser swaps OW by 16-bit words: right for 8-bit samples (PS3.5 8.1.1 packs them by word
/// value) and 16-bit ones, wrong for 32-bit samples; those are turned back into the bytes of
/// the file and swapped by the sample width instead.
fn native_le_bytes(value: &PrimitiveValue, uid: &str, bits_allocated: u16) -> Vec<u8> {
    if uid != EXPLICIT_VR_BIG_ENDIAN || bits_allocated <= 8 {
        return match value {
            PrimitiveValue::U8(bytes) => bytes.to_vec(),
            PrimitiveValue::U16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            PrimitiveValue::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            PrimitiveValue::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            PrimitiveValue::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            PrimitiveValue::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            other => other.to_bytes().into_owned(),
        };
    }
    let mut bytes: Vec<u8> = match value {
        PrimitiveValue::U8(bytes) => bytes.to_vec(),
        PrimitiveValue::U16(v) => v.iter().flat_map(|x| x.to_be_bytes()).collect(),
        PrimitiveValue::I16(v) => v.iter().flat_map(|x| x.to_be_bytes()).collect(),
        PrimitiveValue::U32(v) => v.iter().flat_map(|x| x.to_be_bytes()).collect(),
        PrimitiveValue::I32(v) => v.iter().flat_map(|x| x.to_be_bytes()).collect(),
        PrimitiveValue::F32(v) => v.iter().flat_map(|x| x.to_be_bytes()).collect(),
        other => other.to_bytes().into_owned(),
    };
    for sample in bytes.chunks_exact_mut(usize::from(bits_allocated / 8)) {
        sample.reverse();
    }
    bytes
}

/// Native samples from the parsed Pixel Data value. Where the parser already holds the samples
/// (16-bit samples it read as OW words, in either byte order, since the word's byte order is
/// the sample's; 8-bit samples it read as OB bytes) they are kept, in their buffer; everything
/// else goes through its little-endian bytes ([`native_samples_from_le`]).
fn native_samples(
    value: PrimitiveValue,
    uid: &str,
    module: &PixelModule,
    syntax: &Syntax,
) -> Result<Samples, DecodeError> {
    let plain = module.photometric != "YBR_FULL_422";
    match value {
        PrimitiveValue::U16(words) if plain && module.bits_allocated == 16 => {
            samples_from_words(words.into_vec(), module, syntax)
        }
        PrimitiveValue::U8(bytes) if plain && module.bits_allocated == 8 => {
            let bytes = first_samples(bytes.into_vec(), module, syntax)?;
            let shift = 8 - module.bits_stored;
            Ok(if module.signed {
                Samples::I8(bytes.into_iter().map(|b| (b.cast_signed() << shift) >> shift).collect())
            } else {
                Samples::U8(bytes)
            })
        }
        value => native_samples_from_le(&native_le_bytes(&value, uid, module.bits_allocated), module, syntax),
    }
}

/// 16-bit sample values to samples, sign-extended from BitsStored for signed data; the buffer
/// is kept (same size and alignment) and the sign extension vectorizes.
fn samples_from_words(words: Vec<u16>, module: &PixelModule, syntax: &Syntax) -> Result<Samples, DecodeError> {
    let words = first_samples(words, module, syntax)?;
    let shift = 16 - module.bits_stored;
    Ok(if module.signed && shift == 0 {
        // The same bits: no pass over them at all.
        Samples::I16(words.into_iter().map(u16::cast_signed).collect())
    } else if module.signed {
        Samples::I16(words.into_iter().map(|w| (w.cast_signed() << shift) >> shift).collect())
    } else {
        Samples::U16(words)
    })
}

/// The first [`PixelModule::sample_count`] samples of `values`; an error when there are fewer.
fn first_samples<T>(mut values: Vec<T>, module: &PixelModule, syntax: &Syntax) -> Result<Vec<T>, DecodeError> {
    let count = module.sample_count();
    if values.len() < count {
        return Err(shorter_than_declared(module, syntax));
    }
    values.truncate(count);
    Ok(values)
}

fn shorter_than_declared(module: &PixelModule, syntax: &Syntax) -> DecodeError {
    DecodeError::new(format!(
        "{syntax}, photometric interpretation {}: Pixel Data is shorter than Rows x Columns x \
         SamplesPerPixel x NumberOfFrames x BitsAllocated",
        module.photometric
    ))
}

/// Native samples as little-endian bytes: 1-bit unpacking and YBR_FULL_422 upsampling happen
/// here, the rest is [`samples_from_le`].
fn native_samples_from_le(bytes: &[u8], module: &PixelModule, syntax: &Syntax) -> Result<Samples, DecodeError> {
    let short = |what: &str| {
        DecodeError::new(format!(
            "{syntax}, photometric interpretation {}: Pixel Data is shorter than {what}",
            module.photometric
        ))
    };
    if module.bits_allocated == 1 {
        let count = module.sample_count();
        if bytes.len() < count.div_ceil(8) {
            return Err(short("Rows x Columns x SamplesPerPixel x NumberOfFrames bits"));
        }
        let out = (0..count).map(|i| (bytes[i / 8] >> (i % 8)) & 1).collect();
        return Ok(Samples::U8(out));
    }
    if module.photometric == "YBR_FULL_422" {
        // Stored as Y1 Y2 Cb Cr for each pair of pixels (PS3.3 C.7.6.3.1.2), interleaved only.
        if !module.columns.is_multiple_of(2) || module.planar || module.bits_allocated != 8 {
            return Err(DecodeError::new(format!(
                "{syntax}, photometric interpretation YBR_FULL_422: native data needs even Columns, \
                 PlanarConfiguration 0 and BitsAllocated 8"
            )));
        }
        let stored = module.pixels_per_frame() * 2 * module.frames as usize;
        let stored = bytes.get(..stored).ok_or_else(|| short("the subsampled frames"))?;
        return Ok(Samples::U8(color::upsample_422(stored)));
    }
    samples_from_le(bytes, module, syntax)
}

/// Little-endian bytes to typed samples, sign-extended from BitsStored for signed data.
fn samples_from_le(bytes: &[u8], module: &PixelModule, syntax: &Syntax) -> Result<Samples, DecodeError> {
    let count = module.sample_count();
    let width = usize::from(module.bits_allocated / 8);
    let bytes = bytes.get(..count * width).ok_or_else(|| shorter_than_declared(module, syntax))?;
    let shift = module.bits_allocated - module.bits_stored;
    // Fixed-size chunks, so that each loop is a plain load, shift and store that vectorizes.
    Ok(match (module.bits_allocated, module.signed) {
        (8, false) => Samples::U8(bytes.to_vec()),
        (8, true) => Samples::I8(bytes.iter().map(|&b| (b.cast_signed() << shift) >> shift).collect()),
        (16, false) => Samples::U16(bytes.as_chunks().0.iter().map(|&b| u16::from_le_bytes(b)).collect()),
        (16, true) => {
            Samples::I16(bytes.as_chunks().0.iter().map(|&b| (i16::from_le_bytes(b) << shift) >> shift).collect())
        }
        (32, false) => Samples::U32(bytes.as_chunks().0.iter().map(|&b| u32::from_le_bytes(b)).collect()),
        (32, true) => {
            Samples::I32(bytes.as_chunks().0.iter().map(|&b| (i32::from_le_bytes(b) << shift) >> shift).collect())
        }
        _ => {
            return Err(DecodeError::new(format!(
                "{syntax}, photometric interpretation {}: BitsAllocated is not supported by the codec",
                module.photometric
            )));
        }
    })
}

/// Runs dicom-pixeldata's codec for encapsulated pixel data.
///
/// The codecs index and unwrap on malformed streams (the RLE reader unwraps a read, the JPEG 2000
/// adapter indexes by a component count it does not check), so a forged object could panic the
/// worker. The sizes are checked before ([`pixel_module`]); `catch_unwind` is the last resort
/// that turns such a panic into a [`DecodeError`]. Nothing shared is mutated inside the closure,
/// so unwinding cannot leave broken state behind.
fn run_codec(
    obj: &dicom_object::FileDicomObject<InMemDicomObject>,
    module: &PixelModule,
    syntax: &Syntax,
) -> Result<Vec<u8>, DecodeError> {
    let pi = &module.photometric;
    let outcome = catch_unwind(AssertUnwindSafe(|| obj.decode_pixel_data().map(|d| d.into_data())));
    match outcome {
        Ok(Ok(data)) => Ok(data),
        Ok(Err(e)) => Err(DecodeError::new(format!(
            "{syntax}, photometric interpretation {pi}: the codec failed ({})",
            codec_error_kind(&e.to_string())
        ))),
        Err(_) => Err(DecodeError::new(format!(
            "{syntax}, photometric interpretation {pi}: the codec panicked on malformed data"
        ))),
    }
}

/// The codec's message, bounded and on one line; dicom-pixeldata's messages are static texts
/// ("Could not decode pixel data", "jpeg2k decoder failure") that quote no data.
fn codec_error_kind(message: &str) -> String {
    message.chars().filter(|c| !c.is_control()).take(200).collect()
}

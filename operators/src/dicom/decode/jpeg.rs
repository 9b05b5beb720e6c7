//! JPEG streams that carry RGB without saying so, or say it wrongly.
//!
//! PhotometricInterpretation RGB with JPEG baseline/extended means the components were not
//! color transformed. A stream with neither a JFIF (APP0) nor an Adobe (APP14) marker gives the
//! decoder nothing to go on, and jpeg-decoder then assumes YCbCr and "converts" RGB data
//! (pydicom and libjpeg do not). For such streams we call jpeg-decoder ourselves with the color
//! transform off; everything else goes through dicom-pixeldata.
//!
//! An Adobe segment too short to hold its transform flag (pydicom's `SC_rgb_jpeg.dcm` has one)
//! is not a usable marker: libjpeg (pydicom's decoder) then leaves the components as they are,
//! while jpeg-decoder converts them from YCbCr. Such streams are treated as unmarked.

use std::panic::{catch_unwind, AssertUnwindSafe};

use dicom_dictionary_std::uids;
use jpeg_decoder::{ColorTransform, Decoder, PixelFormat};

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
) -> Option<Vec<std::borrow::Cow<'a, [u8]>>> {
    let jpeg_lossy = uid == uids::JPEG_BASELINE8_BIT || uid == uids::JPEG_EXTENDED12_BIT;
    if !jpeg_lossy || photometric != "RGB" || bits_allocated != 8 {
        return None;
    }
    let streams: Vec<std::borrow::Cow<'a, [u8]>> = if fragments.len() == frames {
        fragments.iter().map(|f| std::borrow::Cow::Borrowed(f.as_slice())).collect()
    } else if frames == 1 {
        vec![std::borrow::Cow::Owned(fragments.concat())]
    } else {
        return None;
    };
    streams.iter().all(|s| s.starts_with(&[0xFF, 0xD8]) && color_marker(s) != ColorMarker::Present).then_some(streams)
}

/// Decodes the streams as RGB without color transform, each into `frame_len` bytes.
///
/// jpeg-decoder can panic on malformed streams; as with the other codecs, `catch_unwind` turns
/// that into an error (nothing shared is touched inside).
pub(super) fn decode_without_color_transform(
    streams: &[std::borrow::Cow<'_, [u8]>],
    frame_len: usize,
) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(frame_len * streams.len());
    for stream in streams {
        let decoded = catch_unwind(AssertUnwindSafe(|| {
            let mut decoder = Decoder::new(stream.as_ref());
            decoder.set_color_transform(ColorTransform::None);
            let pixels = decoder.decode().ok()?;
            let info = decoder.info()?;
            (info.pixel_format == PixelFormat::RGB24).then_some(pixels)
        }))
        .map_err(|_| "the JPEG decoder panicked on malformed data")?
        .ok_or("the JPEG decoder failed or did not produce 3 components")?;
        if decoded.len() < frame_len {
            return Err("a JPEG frame decoded to fewer samples than Rows x Columns x 3");
        }
        out.extend_from_slice(&decoded[..frame_len]);
    }
    Ok(out)
}

//! What each codec stream declares about its own image, read before any codec runs and checked
//! against the DICOM attributes (Rows, Columns, SamplesPerPixel, BitsAllocated).
//!
//! A codec sizes its buffers from its stream, not from the attributes: jpeg-decoder allocates
//! the planes its frame header declares and fills what the scan lacks with zeros, openjp2 sizes
//! its image and tiles from the SIZ marker. A 1.4 KB object of 16 x 16 whose JPEG frame header
//! declares 65500 x 65500 would so cost gigabytes. Here such a stream is refused first, as a
//! malformed object, with what it declares and what the attributes say; nothing is allocated.
//! RLE streams declare no size: their fragment is checked to be able to hold the frame at all.

use std::borrow::Cow;

use super::image::PixelModule;

/// The image a codec stream declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Declared {
    pub(crate) columns: u32,
    pub(crate) rows: u32,
    pub(crate) components: u32,
    /// Bits per sample (the largest of the components for JPEG 2000).
    pub(crate) precision: u32,
    /// The tiles of a JPEG 2000 frame; 1 for JPEG.
    pub(crate) tiles: u64,
}

/// The codecs whose streams are read here, as named in reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// JPEG baseline, extended, progressive and lossless: the SOFn frame header.
    Jpeg,
    /// JPEG-LS: the SOF55 frame header.
    JpegLs,
    /// JPEG 2000 and HTJ2K: the SIZ marker segment.
    Jpeg2000,
}

impl Codec {
    fn header(self) -> &'static str {
        match self {
            Codec::Jpeg => "JPEG frame header",
            Codec::JpegLs => "JPEG-LS frame header",
            Codec::Jpeg2000 => "JPEG 2000 SIZ marker",
        }
    }
}

/// The most tiles a JPEG 2000 frame may have: openjp2 keeps a tile coding structure of some
/// kilobytes per tile from the SIZ marker on, so a frame of 1 x 1 tiles would cost gigabytes.
/// DICOM's JPEG 2000 frames are one tile or a few hundred.
pub(crate) const MAX_J2K_TILES: u64 = 4096;

/// The most an RLE segment expands: a two-byte repeat run gives 128 bytes (PS3.5 G.3.1).
const RLE_MAX_EXPANSION: u64 = 64;

/// Checks one frame's stream of `codec` against the attributes. The reason names the frame
/// (1-based) when there are several.
pub(crate) fn check_stream(
    codec: Codec,
    stream: &[u8],
    module: &PixelModule,
    frame: usize,
) -> Result<Declared, String> {
    let of_frame = |what: String| if module.frames > 1 { format!("frame {}: {what}", frame + 1) } else { what };
    let declared = match codec {
        Codec::Jpeg | Codec::JpegLs => jpeg_frame_header(stream, codec),
        Codec::Jpeg2000 => j2k_siz(stream),
    }
    .map_err(of_frame)?;
    compare(codec, &declared, module).map_err(of_frame)?;
    Ok(declared)
}

/// Refuses a declared image that is not the attributes' one.
fn compare(codec: Codec, declared: &Declared, module: &PixelModule) -> Result<(), String> {
    let header = codec.header();
    if (declared.columns, declared.rows) != (module.columns, module.rows) {
        return Err(format!(
            "the {header} declares {}\u{d7}{}, the DICOM attributes say {}\u{d7}{} (Columns \u{d7} Rows): \
             the object is inconsistent, re-export it from its source",
            declared.columns, declared.rows, module.columns, module.rows
        ));
    }
    if declared.components != u32::from(module.samples_per_pixel) {
        return Err(format!(
            "the {header} declares {} components, the DICOM attributes say SamplesPerPixel {}: the \
             object is inconsistent, re-export it from its source",
            declared.components, module.samples_per_pixel
        ));
    }
    if declared.precision == 0 || declared.precision > u32::from(module.bits_allocated) {
        return Err(format!(
            "the {header} declares {} bits per sample, the DICOM attributes say BitsAllocated {}: the \
             object is inconsistent, re-export it from its source",
            declared.precision, module.bits_allocated
        ));
    }
    if declared.tiles > MAX_J2K_TILES {
        return Err(format!(
            "the {header} declares {} tiles, more than the {MAX_J2K_TILES} accepted: re-encode the image \
             with larger tiles",
            declared.tiles
        ));
    }
    Ok(())
}

/// The first frame header (SOFn, or SOF55 for JPEG-LS) of a JPEG stream, found the way
/// jpeg-decoder finds it: bytes between segments skipped, fill bytes skipped, the tables,
/// application and comment segments before it skipped by their lengths.
pub(crate) fn jpeg_frame_header(stream: &[u8], codec: Codec) -> Result<Declared, String> {
    let name = if codec == Codec::JpegLs { "JPEG-LS" } else { "JPEG" };
    if !stream.starts_with(&[0xFF, 0xD8]) {
        return Err(format!("the {name} stream does not start with an SOI marker"));
    }
    let ends = || format!("the {name} stream ends before its frame header");
    let mut pos = 2;
    loop {
        // Up to the next 0xFF, past fill bytes, to a byte that is neither 0x00 nor 0xFF.
        let marker = loop {
            pos += stream.get(pos..).ok_or_else(ends)?.iter().position(|&b| b == 0xFF).ok_or_else(ends)?;
            pos += stream[pos..].iter().position(|&b| b != 0xFF).ok_or_else(ends)?;
            let byte = stream[pos];
            pos += 1;
            if byte != 0x00 {
                break byte;
            }
        };
        let is_sof = matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xF7);
        match marker {
            0xD8 | 0xD0..=0xD7 | 0xDA | 0xD9 | 0x01 => {
                return Err(format!("the {name} stream has no frame header before its first scan"));
            }
            _ => {}
        }
        let length =
            stream.get(pos..pos + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))).ok_or_else(ends)?;
        if length < 2 {
            return Err(format!("the {name} stream has a marker segment of length {length}"));
        }
        let body = stream.get(pos + 2..pos + length).ok_or_else(ends)?;
        if is_sof {
            if (marker == 0xF7) != (codec == Codec::JpegLs) {
                return Err(if codec == Codec::JpegLs {
                    "the stream is a JPEG stream, not JPEG-LS (its frame header is SOFn, not SOF55)".to_string()
                } else {
                    "the stream is JPEG-LS (its frame header is SOF55), not the JPEG the transfer syntax says"
                        .to_string()
                });
            }
            let [precision, h1, h0, w1, w0, components, ..] = *body else {
                return Err(format!("the {name} frame header is shorter than 6 bytes"));
            };
            return Ok(Declared {
                columns: u32::from(u16::from_be_bytes([w1, w0])),
                rows: u32::from(u16::from_be_bytes([h1, h0])),
                components: u32::from(components),
                precision: u32::from(precision),
                tiles: 1,
            });
        }
        pos += length;
    }
}

/// The SIZ marker segment of a JPEG 2000 codestream (ISO 15444-1 A.5.1), right after SOC, or
/// of the codestream in a JP2 file's `jp2c` box. Refuses an empty image and components
/// subsampled by 0.
pub(crate) fn j2k_siz(stream: &[u8]) -> Result<Declared, String> {
    let codestream = jp2_codestream(stream)?;
    if !codestream.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        return Err("the JPEG 2000 codestream does not start with SOC and SIZ markers".into());
    }
    let short = || "the JPEG 2000 SIZ marker segment is truncated".to_string();
    let body = codestream.get(4..).ok_or_else(short)?;
    let u16_at = |i: usize| body.get(i..i + 2).map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])));
    let u32_at = |i: usize| body.get(i..i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let length = u16_at(0).ok_or_else(short)? as usize;
    // Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz, then 3 bytes a component.
    let field = |i: usize| u32_at(4 + 4 * i).ok_or_else(short);
    let (x, y, x0, y0) = (field(0)?, field(1)?, field(2)?, field(3)?);
    let (tile_x, tile_y, tile_x0, tile_y0) = (field(4)?, field(5)?, field(6)?, field(7)?);
    let components = u16_at(36).ok_or_else(short)?;
    if length < 38 + 3 * components as usize || body.len() < 38 + 3 * components as usize {
        return Err(short());
    }
    if x <= x0 || y <= y0 || tile_x == 0 || tile_y == 0 || tile_x0 > x0 || tile_y0 > y0 {
        return Err("the JPEG 2000 SIZ marker declares an empty image or impossible tile offsets".into());
    }
    let tiles = u64::from(x - tile_x0).div_ceil(u64::from(tile_x)) * u64::from(y - tile_y0).div_ceil(u64::from(tile_y));
    let mut precision = 0;
    for c in 0..components as usize {
        let at = 38 + 3 * c;
        let (ssiz, dx, dy) = (body[at], body[at + 1], body[at + 2]);
        if dx == 0 || dy == 0 {
            return Err("the JPEG 2000 SIZ marker declares a component subsampling of 0".into());
        }
        precision = precision.max(u32::from(ssiz & 0x7F) + 1);
    }
    Ok(Declared { columns: x - x0, rows: y - y0, components, precision, tiles })
}

/// The codestream of a JP2 file (the contents of its `jp2c` box); a bare codestream as it is.
fn jp2_codestream(stream: &[u8]) -> Result<&[u8], String> {
    const SIGNATURE: [u8; 12] = [0, 0, 0, 12, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A];
    if !stream.starts_with(&SIGNATURE) {
        return Ok(stream);
    }
    let mut pos = 0;
    while let Some(header) = stream.get(pos..pos + 8) {
        let length = u64::from(u32::from_be_bytes([header[0], header[1], header[2], header[3]]));
        let (start, end) = match length {
            0 => (pos + 8, stream.len()),
            1 => {
                let wide = stream.get(pos + 8..pos + 16).ok_or("the JP2 file has a truncated box")?;
                let wide = u64::from_be_bytes(wide.try_into().expect("8 bytes"));
                (pos + 16, usize::try_from(wide).unwrap_or(usize::MAX).saturating_add(pos))
            }
            _ => (pos + 8, usize::try_from(length).unwrap_or(usize::MAX).saturating_add(pos)),
        };
        if end < start {
            return Err("the JP2 file has a box shorter than its header".into());
        }
        if &header[4..8] == b"jp2c" {
            return Ok(&stream[start..end.min(stream.len())]);
        }
        pos = end;
    }
    Err("the JP2 file has no codestream (jp2c) box".into())
}

/// Refuses an RLE fragment that cannot hold its frame: RLE declares no size, but a segment
/// expands at most 64 times, so a fragment of `n` bytes after its 64-byte header holds at most
/// 64 n bytes. Anything shorter would be decoded as mostly zeros the object never held.
pub(crate) fn check_rle_fragment(fragment: &[u8], module: &PixelModule, frame: usize) -> Result<(), String> {
    let data = fragment.len().saturating_sub(64) as u64;
    let needs = module.frame_bytes();
    if data.saturating_mul(RLE_MAX_EXPANSION) < needs {
        let which = if module.frames > 1 { format!(" of frame {}", frame + 1) } else { String::new() };
        return Err(format!(
            "the RLE fragment{which} holds {data} bytes of segments, which cannot expand to the {needs} bytes \
             the DICOM attributes declare (Rows \u{d7} Columns \u{d7} SamplesPerPixel \u{d7} BitsAllocated; RLE \
             expands at most {RLE_MAX_EXPANSION} times): the object is truncated or inconsistent"
        ));
    }
    Ok(())
}

/// Frame `frame`'s encapsulated data as dicom-pixeldata's codecs get it
/// (`PixelDataObject::frame_pixel_data` of dicom-encoding 0.10): fragment `frame` when there
/// are as many fragments as frames; else the fragments from the frame's Basic Offset Table
/// entry up to the next entry's; `None` where it has no entry. The JPEG 2000 check reads what
/// the codec will read, so it mirrors this exactly.
pub(crate) fn pixeldata_frame<'a>(
    fragments: &'a [Vec<u8>],
    offset_table: &[u32],
    frames: usize,
    frame: usize,
) -> Option<Cow<'a, [u8]>> {
    if fragments.len() == frames {
        return fragments.get(frame).map(|f| Cow::Borrowed(f.as_slice()));
    }
    let base = match offset_table.get(frame) {
        Some(&offset) => offset as usize,
        None if frame == 0 => 0,
        None => return None,
    };
    let next = offset_table.get(frame + 1).map(|&o| o as usize);
    let (mut offset, mut data) = (0usize, Vec::new());
    for fragment in fragments {
        if offset >= base {
            data.extend_from_slice(fragment);
        }
        offset += fragment.len() + 8;
        if next.is_some_and(|next| offset >= next) {
            break;
        }
    }
    Some(Cow::Owned(data))
}

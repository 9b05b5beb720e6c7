//! Color: planar to interleaved, YBR_FULL_422 upsampling, YBR_FULL to RGB, palette color.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::image::Samples;

macro_rules! map_samples {
    ($samples:expr, $v:ident => $body:expr) => {
        match $samples {
            Samples::U8($v) => Samples::U8($body),
            Samples::I8($v) => Samples::I8($body),
            Samples::U16($v) => Samples::U16($body),
            Samples::I16($v) => Samples::I16($body),
            Samples::U32($v) => Samples::U32($body),
            Samples::I32($v) => Samples::I32($body),
        }
    };
}

/// Planar configuration 1 (RRR..GGG..BBB per frame) to 0 (RGBRGB...).
pub(super) fn interleave_planes(samples: Samples, pixels_per_frame: usize) -> Samples {
    fn interleave<T: Copy>(v: Vec<T>, n: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(v.len());
        for frame in v.chunks_exact(3 * n) {
            let (r, rest) = frame.split_at(n);
            let (g, b) = rest.split_at(n);
            for i in 0..n {
                out.extend_from_slice(&[r[i], g[i], b[i]]);
            }
        }
        out
    }
    map_samples!(samples, v => interleave(v, pixels_per_frame))
}

/// YBR_FULL_422 native layout (Y1 Y2 Cb Cr per pixel pair) to full YBR (Y Cb Cr per pixel).
pub(super) fn upsample_422(stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored.len() / 2 * 3);
    for q in stored.chunks_exact(4) {
        out.extend_from_slice(&[q[0], q[2], q[3], q[1], q[2], q[3]]);
    }
    out
}

/// YBR_FULL to RGB, with the coefficients of PS3.3 C.7.6.3.1.2 and the rounding pydicom uses
/// (`floor(x + 0.5)`, clipped), so that both agree exactly on native and RLE data.
pub(super) fn ybr_full_to_rgb(samples: Samples, bits_stored: u16) -> Result<Samples, String> {
    fn convert(pixel: [f32; 3], offset: f32, max: f32) -> [f32; 3] {
        let [y, cb, cr] = pixel;
        let (cb, cr) = (cb - offset, cr - offset);
        let r = y + 1.402 * cr;
        let g = y + (-0.114 * 1.772 / 0.587) * cb + (-0.299 * 1.402 / 0.587) * cr;
        let b = y + 1.772 * cb;
        [r, g, b].map(|x| (x + 0.5).floor().clamp(0.0, max))
    }
    match samples {
        Samples::U8(mut v) => {
            for p in v.chunks_exact_mut(3) {
                let rgb = convert([p[0], p[1], p[2]].map(f32::from), 128.0, 255.0);
                for (dst, src) in p.iter_mut().zip(rgb) {
                    *dst = src as u8;
                }
            }
            Ok(Samples::U8(v))
        }
        Samples::U16(mut v) => {
            let bits = bits_stored.clamp(9, 16);
            let offset = f32::from(1u16 << (bits - 1));
            let max = ((1u32 << bits) - 1) as f32;
            for p in v.chunks_exact_mut(3) {
                let rgb = convert([p[0], p[1], p[2]].map(f32::from), offset, max);
                for (dst, src) in p.iter_mut().zip(rgb) {
                    *dst = src as u16;
                }
            }
            Ok(Samples::U16(v))
        }
        _ => Err("YBR to RGB conversion needs unsigned 8 or 16-bit samples".into()),
    }
}

/// One channel of a palette: the descriptor and its entries.
struct Lut {
    first_mapped: i64,
    entries: Lut16OrLut8,
}

enum Lut16OrLut8 {
    Bits8(Vec<u8>),
    Bits16(Vec<u16>),
}

impl Lut {
    fn read(obj: &InMemDicomObject, descriptor: dicom_core::Tag, data: dicom_core::Tag) -> Result<Lut, String> {
        let desc = obj
            .get(descriptor)
            .and_then(|e| e.to_multi_int::<i64>().ok())
            .filter(|d| d.len() == 3)
            .ok_or("a Palette Color Lookup Table Descriptor is missing or malformed")?;
        let element = obj.get(data).ok_or_else(|| {
            "a Palette Color Lookup Table Data is missing (segmented palettes are not supported)".to_string()
        })?;
        // Entries are counted from the descriptor (0 means 65536); US descriptors written as SS
        // come back negative, so take the 16-bit pattern.
        let count = match desc[0] & 0xFFFF {
            0 => 65536,
            n => n as usize,
        };
        let bytes = element.value().to_bytes().map_err(|_| "a Palette Color Lookup Table Data is not binary")?;
        // As pydicom does: the data length decides the entry width, the nominal depth does not.
        let entries = if bytes.len() == count {
            Lut16OrLut8::Bits8(bytes.to_vec())
        } else if bytes.len() >= count * 2 {
            let words = match element.value().primitive() {
                Some(dicom_core::PrimitiveValue::U16(v)) => v.iter().take(count).copied().collect(),
                _ => bytes.chunks_exact(2).take(count).map(|c| u16::from_ne_bytes([c[0], c[1]])).collect(),
            };
            Lut16OrLut8::Bits16(words)
        } else {
            return Err("a Palette Color Lookup Table Data is shorter than its descriptor says".into());
        };
        Ok(Lut { first_mapped: desc[1], entries })
    }

    fn len(&self) -> usize {
        match &self.entries {
            Lut16OrLut8::Bits8(v) => v.len(),
            Lut16OrLut8::Bits16(v) => v.len(),
        }
    }

    fn index(&self, value: i64) -> usize {
        (value - self.first_mapped).clamp(0, self.len() as i64 - 1) as usize
    }
}

/// PALETTE COLOR to RGB through the Red/Green/Blue palette lookup tables. The output has the
/// tables' entry width (8 or 16 bits), like pydicom's `apply_color_lut`.
pub(super) fn apply_palette(obj: &InMemDicomObject, samples: &Samples) -> Result<Samples, String> {
    let luts = [
        Lut::read(obj, tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA)?,
        Lut::read(obj, tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA)?,
        Lut::read(obj, tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA)?,
    ];
    let n = samples.len();
    let value = |i: usize| samples.get_i64(i).unwrap_or(0);
    match (&luts[0].entries, &luts[1].entries, &luts[2].entries) {
        (Lut16OrLut8::Bits8(r), Lut16OrLut8::Bits8(g), Lut16OrLut8::Bits8(b)) => {
            let mut out = Vec::with_capacity(n * 3);
            for i in 0..n {
                let v = value(i);
                out.extend_from_slice(&[r[luts[0].index(v)], g[luts[1].index(v)], b[luts[2].index(v)]]);
            }
            Ok(Samples::U8(out))
        }
        (Lut16OrLut8::Bits16(r), Lut16OrLut8::Bits16(g), Lut16OrLut8::Bits16(b)) => {
            let mut out = Vec::with_capacity(n * 3);
            for i in 0..n {
                let v = value(i);
                out.extend_from_slice(&[r[luts[0].index(v)], g[luts[1].index(v)], b[luts[2].index(v)]]);
            }
            Ok(Samples::U16(out))
        }
        _ => Err("the red, green and blue palettes have different entry widths".into()),
    }
}

//! 8-bit grayscale PNG previews of preprocessed images, so that a person can see what the model
//! sees. Written by hand (PNG, ISO/IEC 15948: signature, IHDR, one zlib IDAT, IEND, each chunk
//! with its CRC-32), which is all a grayscale preview needs.

use std::io::Write as _;

use flate2::write::ZlibEncoder;
use flate2::{Compression, Crc};
use radstream_kernels::Tensor;

/// The eight bytes every PNG file starts with.
pub const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Encodes `width × height` 8-bit gray pixels, row-major, as a PNG file. `None` when the
/// buffer does not hold `width * height` pixels or a side is zero or above PNG's 2³¹ − 1.
pub fn encode_gray8(width: usize, height: usize, pixels: &[u8]) -> Option<Vec<u8>> {
    let side = |n: usize| u32::try_from(n).ok().filter(|&n| n > 0 && n <= i32::MAX as u32);
    let (w, h) = (side(width)?, side(height)?);
    if width.checked_mul(height)? != pixels.len() {
        return None;
    }
    // Filter type 0 (None) before each row: previews are small, and this keeps it simple.
    let mut zlib = ZlibEncoder::new(Vec::with_capacity(pixels.len() / 2), Compression::default());
    for row in pixels.chunks(width) {
        zlib.write_all(&[0]).ok()?;
        zlib.write_all(row).ok()?;
    }
    let idat = zlib.finish().ok()?;

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    // Bit depth 8, color type 0 (grayscale), compression 0, filter method 0, no interlace.
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);

    let mut png = Vec::with_capacity(SIGNATURE.len() + idat.len() + 3 * 12 + ihdr.len());
    png.extend_from_slice(&SIGNATURE);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    Some(png)
}

/// Appends one chunk: length, type, data, CRC-32 of type and data.
fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A PNG of channel `channel` of image `index` of `tensor`, `lo` mapped to black and `hi` to
/// white (values outside clamped; `hi < lo` inverts). `None` for an image or channel the tensor
/// does not have.
pub fn preview(tensor: &Tensor, index: usize, channel: usize, lo: f64, hi: f64) -> Option<Vec<u8>> {
    let [n, c, h, w] = tensor.shape();
    if index >= n || channel >= c {
        return None;
    }
    let start = (index * c + channel) * h * w;
    let plane = tensor.data().get(start..start + h * w)?;
    let span = if hi != lo { hi - lo } else { 1.0 };
    let gray: Vec<u8> =
        plane.iter().map(|&v| ((f64::from(v) - lo) / span * 255.0).round().clamp(0.0, 255.0) as u8).collect();
    encode_gray8(w, h, &gray)
}

#[cfg(test)]
mod tests;

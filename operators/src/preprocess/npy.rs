//! NumPy `.npy` files (format version 1.0) of `f32` tensors: what `radstream preprocess`
//! writes so that a model's own Python code can check our preprocessing against its own.
//!
//! The format is tiny (numpy's `lib/format.py` documents it): the magic `\x93NUMPY`, version
//! `1 0`, a little-endian `u16` header length, a Python dict literal padded with spaces and
//! ended by `\n` so that the data starts at a multiple of 64 bytes, then the values.

use std::io::{self, Write};

use radstream_kernels::Tensor;

/// The magic string every `.npy` file starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Data starts at a multiple of this.
const ALIGN: usize = 64;

/// The header of a little-endian `f32` array of `shape` in C order: magic, version 1.0, length
/// and the padded dict. `len()` is a multiple of 64.
pub fn npy_header(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    // A one-element tuple needs its trailing comma: `(3,)`.
    let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.extend(std::iter::repeat_n(' ', unpadded.next_multiple_of(ALIGN) - unpadded));
    dict.push('\n');
    let mut header = Vec::with_capacity(MAGIC.len() + 4 + dict.len());
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&[1, 0]);
    // Shapes are a few small numbers: the dict is far below the format's 65535 bytes.
    header.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header
}

/// Writes `tensor` as an `.npy` array of shape `[N, C, H, W]`, `<f4`, C order.
pub fn write_npy(out: impl Write, tensor: &Tensor) -> io::Result<()> {
    write_npy_shaped(out, &tensor.shape(), tensor.data())
}

/// Writes `data` as an `.npy` array of `shape` (e.g. a `[1, C, D, H, W]` volume), `<f4`, C
/// order; `data` must hold the product of `shape` values.
pub fn write_npy_shaped(mut out: impl Write, shape: &[usize], data: &[f32]) -> io::Result<()> {
    if shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) != Some(data.len()) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the data does not fill the shape"));
    }
    out.write_all(&npy_header(shape))?;
    let mut buf = Vec::with_capacity(data.len().min(1 << 16) * 4);
    for chunk in data.chunks(1 << 16) {
        buf.clear();
        buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
        out.write_all(&buf)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests;

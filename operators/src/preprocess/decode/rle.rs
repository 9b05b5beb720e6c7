//! RLE Lossless (PS3.5 Annex G), done here rather than by dicom-pixeldata: its decoder stops at
//! 16 bits allocated (RT dose grids are 32) and unwraps on short segments.

/// Decodes `frames` frames, one fragment each, into little-endian interleaved samples.
pub(super) fn decode(
    fragments: &[Vec<u8>],
    frames: usize,
    pixels_per_frame: usize,
    samples_per_pixel: usize,
    bytes_per_sample: usize,
) -> Result<Vec<u8>, &'static str> {
    if fragments.len() < frames {
        return Err("there are fewer fragments than frames (RLE needs one fragment per frame)");
    }
    let segments_per_frame = samples_per_pixel * bytes_per_sample;
    if segments_per_frame > 15 {
        return Err("RLE holds at most 15 segments per frame");
    }
    let frame_len = pixels_per_frame * segments_per_frame;
    let mut out = vec![0u8; frame_len * frames];
    let mut segment = Vec::with_capacity(pixels_per_frame);
    for (fragment, frame_out) in fragments.iter().zip(out.chunks_exact_mut(frame_len)) {
        let header = fragment.get(..64).ok_or("an RLE fragment is shorter than its header")?;
        let word =
            |i: usize| u32::from_le_bytes([header[4 * i], header[4 * i + 1], header[4 * i + 2], header[4 * i + 3]]);
        if word(0) as usize != segments_per_frame {
            return Err("the RLE segment count does not match SamplesPerPixel x BitsAllocated / 8");
        }
        for seg in 0..segments_per_frame {
            let start = word(seg + 1) as usize;
            let end = if seg + 1 < segments_per_frame { word(seg + 2) as usize } else { fragment.len() };
            let data = fragment.get(start..end).ok_or("an RLE segment offset is out of range")?;
            unpack_bits(data, pixels_per_frame, &mut segment);
            // Segments run sample by sample, most significant byte first.
            let (sample, byte_from_msb) = (seg / bytes_per_sample, seg % bytes_per_sample);
            let byte = bytes_per_sample - 1 - byte_from_msb;
            for (pixel, &value) in segment.iter().enumerate() {
                frame_out[(pixel * samples_per_pixel + sample) * bytes_per_sample + byte] = value;
            }
        }
    }
    Ok(out)
}

/// PackBits, stopping at `len` bytes and zero-filling a short segment (as pydicom's decoder
/// does not fail on a short one either).
fn unpack_bits(data: &[u8], len: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < data.len() && out.len() < len {
        let n = data[i] as i8;
        i += 1;
        if n >= 0 {
            let run = data.get(i..(i + n as usize + 1).min(data.len())).unwrap_or(&[]);
            out.extend_from_slice(run);
            i += n as usize + 1;
        } else if n != -128 {
            if let Some(&b) = data.get(i) {
                out.extend(std::iter::repeat_n(b, (1 - isize::from(n)) as usize));
            }
            i += 1;
        }
    }
    out.resize(len, 0);
}

#[cfg(test)]
mod tests {
    #[test]
    fn packbits_literal_and_repeat_runs() {
        let mut out = Vec::new();
        super::unpack_bits(&[2, 1, 2, 3, 0xFE, 9, 0x80], 8, &mut out);
        assert_eq!(out, [1, 2, 3, 9, 9, 9, 0, 0]);
    }
}

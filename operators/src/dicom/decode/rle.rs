//! RLE Lossless (PS3.5 Annex G), done here rather than by dicom-pixeldata: its decoder stops at
//! 16 bits allocated (RT dose grids are 32) and unwraps on short segments.
//!
//! The segments of a frame are unpacked side by side, a block of pixels at a time, into small
//! buffers that stay in cache, and combined from there into samples: 16-bit samples straight
//! into words ([`decode_words`]), everything else into little-endian bytes ([`decode`]).

/// The most segments a frame may have (the header has room for 15 offsets).
const MAX_SEGMENTS: usize = 15;

/// Pixels unpacked per segment before they are combined.
const BLOCK: usize = 4096;

/// Decodes `frames` frames, one fragment each, into little-endian interleaved samples.
pub(super) fn decode(
    fragments: &[Vec<u8>],
    frames: usize,
    pixels_per_frame: usize,
    samples_per_pixel: usize,
    bytes_per_sample: usize,
) -> Result<Vec<u8>, &'static str> {
    let segments_per_frame = samples_per_pixel * bytes_per_sample;
    check_counts(fragments, frames, segments_per_frame)?;
    let frame_len = pixels_per_frame * segments_per_frame;
    let mut out = vec![0u8; frame_len * frames];
    let mut block = [0u8; BLOCK];
    for (fragment, frame_out) in fragments.iter().zip(out.chunks_exact_mut(frame_len)) {
        let mut segments = segments(fragment, segments_per_frame)?;
        if segments_per_frame == 1 {
            segments[0].read(frame_out);
            continue;
        }
        for (seg, segment) in segments[..segments_per_frame].iter_mut().enumerate() {
            // Segments run sample by sample, most significant byte first.
            let (sample, byte_from_msb) = (seg / bytes_per_sample, seg % bytes_per_sample);
            let at = sample * bytes_per_sample + bytes_per_sample - 1 - byte_from_msb;
            for pixels in frame_out.chunks_mut(BLOCK * segments_per_frame) {
                let block = &mut block[..pixels.len() / segments_per_frame];
                segment.read(block);
                for (pixel, &value) in pixels.chunks_exact_mut(segments_per_frame).zip(&*block) {
                    pixel[at] = value;
                }
            }
        }
    }
    Ok(out)
}

/// [`decode`] of 16-bit samples, into the sample values themselves: each sample's two segments
/// (high byte, then low byte) unpacked side by side and combined in a loop that vectorizes.
pub(super) fn decode_words(
    fragments: &[Vec<u8>],
    frames: usize,
    pixels_per_frame: usize,
    samples_per_pixel: usize,
) -> Result<Vec<u16>, &'static str> {
    let segments_per_frame = samples_per_pixel * 2;
    check_counts(fragments, frames, segments_per_frame)?;
    let frame_len = pixels_per_frame * samples_per_pixel;
    let mut out = vec![0u16; frame_len * frames];
    let (mut high, mut low) = ([0u8; BLOCK], [0u8; BLOCK]);
    for (fragment, frame_out) in fragments.iter().zip(out.chunks_exact_mut(frame_len)) {
        let mut segments = segments(fragment, segments_per_frame)?;
        for (sample, pair) in segments[..segments_per_frame].chunks_exact_mut(2).enumerate() {
            for pixels in frame_out.chunks_mut(BLOCK * samples_per_pixel) {
                let n = pixels.len() / samples_per_pixel;
                let (high, low) = (&mut high[..n], &mut low[..n]);
                pair[0].read(high);
                pair[1].read(low);
                let words = high.iter().zip(&*low).map(|(&high, &low)| u16::from_be_bytes([high, low]));
                if samples_per_pixel == 1 {
                    for (pixel, word) in pixels.iter_mut().zip(words) {
                        *pixel = word;
                    }
                } else {
                    for (pixel, word) in pixels.chunks_exact_mut(samples_per_pixel).zip(words) {
                        pixel[sample] = word;
                    }
                }
            }
        }
    }
    Ok(out)
}

fn check_counts(fragments: &[Vec<u8>], frames: usize, segments_per_frame: usize) -> Result<(), &'static str> {
    if fragments.len() < frames {
        return Err("there are fewer fragments than frames (RLE needs one fragment per frame)");
    }
    if segments_per_frame > MAX_SEGMENTS {
        return Err("RLE holds at most 15 segments per frame");
    }
    Ok(())
}

/// The segments of one frame's fragment, by its header (the first `count` are filled).
fn segments(fragment: &[u8], count: usize) -> Result<[PackBits<'_>; MAX_SEGMENTS], &'static str> {
    let header = fragment.get(..64).ok_or("an RLE fragment is shorter than its header")?;
    let word = |i: usize| u32::from_le_bytes([header[4 * i], header[4 * i + 1], header[4 * i + 2], header[4 * i + 3]]);
    if word(0) as usize != count {
        return Err("the RLE segment count does not match SamplesPerPixel x BitsAllocated / 8");
    }
    let mut segments = [const { PackBits::new(&[]) }; MAX_SEGMENTS];
    for (seg, segment) in segments[..count].iter_mut().enumerate() {
        let start = word(seg + 1) as usize;
        let end = if seg + 1 < count { word(seg + 2) as usize } else { fragment.len() };
        *segment = PackBits::new(fragment.get(start..end).ok_or("an RLE segment offset is out of range")?);
    }
    Ok(segments)
}

/// Bytes moved at once for a whole run. Runs are mostly a few bytes long (a CT slice's high
/// bytes repeat in short runs, its low bytes are short literals) and alternate unpredictably
/// between literal and repeat: one fixed-size move per run, chosen without a branch, costs less
/// than a `memcpy` or `memset` call of the exact length, or a mispredicted branch. The bytes
/// moved past the run are overwritten by the runs after it.
const CHUNK: usize = 64;

/// One PackBits segment, unpacked piece by piece: [`PackBits::read`] carries on where the last
/// read stopped, in the middle of a run if need be.
struct PackBits<'a> {
    data: &'a [u8],
    /// The next run's header byte.
    next: usize,
    /// Bytes left in the current run.
    left: usize,
    /// The byte a repeat run repeats; `None` in a literal run, whose next byte is `data[from]`.
    repeat: Option<u8>,
    from: usize,
}

impl<'a> PackBits<'a> {
    const fn new(data: &'a [u8]) -> Self {
        Self { data, next: 0, left: 0, repeat: None, from: 0 }
    }

    /// Fills `out` with the next `out.len()` bytes; past the end of the segment, with zeros (a
    /// short segment is not an error, as pydicom's decoder does not fail on one either). A
    /// literal run cut short by the end keeps the bytes there are; a repeat run without its
    /// byte, and the no-op header 0x80, give nothing.
    fn read(&mut self, out: &mut [u8]) {
        // The state in locals, stored back once: kept in registers across the loop.
        let data = self.data;
        let (mut next, mut left, mut repeat, mut from) = (self.next, self.left, self.repeat, self.from);
        let mut filled = 0;
        while filled < out.len() {
            if left > 0 {
                // The rest of a run that the last read, or a long run, left.
                let len = left.min(out.len() - filled);
                match repeat {
                    Some(byte) => out[filled..filled + len].fill(byte),
                    None => {
                        out[filled..filled + len].copy_from_slice(&data[from..from + len]);
                        from += len;
                    }
                }
                filled += len;
                left -= len;
                continue;
            }
            // Whole runs of up to CHUNK bytes while there is room and input to spare for one move.
            while out.len() - filled >= CHUNK && data.len().saturating_sub(next) > CHUNK {
                let n = data[next] as i8;
                let run = if n >= 0 { n as usize + 1 } else { (1 - isize::from(n)) as usize };
                if run > CHUNK {
                    break;
                }
                let bytes: &[u8; CHUNK] = data[next + 1..next + 1 + CHUNK].try_into().expect("CHUNK bytes");
                let chunk = if n >= 0 { *bytes } else { [bytes[0]; CHUNK] };
                out[filled..filled + CHUNK].copy_from_slice(&chunk);
                filled += run;
                next += if n >= 0 { run + 1 } else { 2 };
            }
            if filled == out.len() {
                break;
            }
            // One run's header, the slow way: near the ends, a long run or the no-op.
            let Some(&header) = data.get(next) else {
                out[filled..].fill(0);
                break;
            };
            next += 1;
            let n = header as i8;
            if n >= 0 {
                let len = n as usize + 1;
                (repeat, from, left) = (None, next, len.min(data.len() - next));
                next += len;
            } else if n != -128 {
                if let Some(&byte) = data.get(next) {
                    (repeat, left) = (Some(byte), (1 - isize::from(n)) as usize);
                }
                next += 1;
            }
        }
        (self.next, self.left, self.repeat, self.from) = (next, left, repeat, from);
    }
}

#[cfg(test)]
mod tests;

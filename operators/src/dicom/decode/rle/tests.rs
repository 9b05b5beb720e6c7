use super::*;

/// The straightforward PackBits of before, byte by byte: what [`PackBits`] must equal.
fn unpack_reference(data: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() && out.len() < len {
        let n = data[i] as i8;
        i += 1;
        if n >= 0 {
            out.extend_from_slice(data.get(i..(i + n as usize + 1).min(data.len())).unwrap_or(&[]));
            i += n as usize + 1;
        } else if n != -128 {
            if let Some(&b) = data.get(i) {
                out.extend(std::iter::repeat_n(b, (1 - isize::from(n)) as usize));
            }
            i += 1;
        }
    }
    out.resize(len, 0);
    out
}

/// A segment of runs of every kind and length, with no-op headers between, from a seed.
fn segment(seed: u32, runs: usize) -> Vec<u8> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 8) as u8
    };
    let mut data = Vec::new();
    for _ in 0..runs {
        match next() % 5 {
            0 => data.push(0x80),
            1 | 2 => {
                let n = next() % (if next() % 4 == 0 { 128 } else { 40 });
                data.push(n);
                data.extend((0..=n).map(|_| next()));
            }
            _ => {
                let n = next() % (if next() % 4 == 0 { 127 } else { 40 });
                data.extend([(1i8 - n as i8 - 1).cast_unsigned(), next()]);
            }
        }
    }
    data
}

#[test]
fn packbits_literal_and_repeat_runs() {
    let mut out = [0xAA; 8];
    PackBits::new(&[2, 1, 2, 3, 0xFE, 9, 0x80]).read(&mut out);
    assert_eq!(out, [1, 2, 3, 9, 9, 9, 0, 0]);
}

#[test]
fn packbits_read_in_pieces_equals_the_byte_by_byte_reference() {
    for seed in 0..40 {
        let mut data = segment(seed, 300);
        // Truncated: a literal or repeat run cut short by the end of the segment.
        data.truncate(data.len() - (seed as usize % 7));
        let full = unpack_reference(&data, 1 << 16).iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        for len in [0, 1, 31, 33, full.saturating_sub(5), full, full + 100] {
            let expected = unpack_reference(&data, len);
            for piece in [1, 7, 32, 33, 4096] {
                let mut out = vec![0x55; len];
                let mut packbits = PackBits::new(&data);
                for chunk in out.chunks_mut(piece) {
                    packbits.read(chunk);
                }
                assert_eq!(out, expected, "seed {seed}, {len} bytes in pieces of {piece}");
            }
        }
    }
}

/// A fragment of `segments` encoded segments.
fn fragment(segments: &[Vec<u8>]) -> Vec<u8> {
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
    let mut at = 64u32;
    for (i, segment) in segments.iter().enumerate() {
        header[4 * (i + 1)..4 * (i + 2)].copy_from_slice(&at.to_le_bytes());
        at += segment.len() as u32;
    }
    header.extend(segments.iter().flatten());
    header
}

#[test]
fn words_equal_the_interleaved_bytes_for_one_and_three_samples() {
    let pixels = 3 * BLOCK + 17;
    for samples_per_pixel in [1, 3] {
        let frames: Vec<Vec<u8>> = (0..2)
            .map(|frame| {
                fragment(&(0..2 * samples_per_pixel).map(|s| segment(frame * 31 + s as u32, 900)).collect::<Vec<_>>())
            })
            .collect();
        let words = decode_words(&frames, 2, pixels, samples_per_pixel).unwrap();
        let bytes = decode(&frames, 2, pixels, samples_per_pixel, 2).unwrap();
        let expected: Vec<u16> = bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
        assert_eq!(words, expected);
        // Sample s of pixel p is (segment 2s, segment 2s + 1) at p: check one by hand.
        let high = unpack_reference(&segment(31 + 2 * (samples_per_pixel as u32 - 1), 900), pixels);
        let low = unpack_reference(&segment(31 + 2 * (samples_per_pixel as u32 - 1) + 1, 900), pixels);
        let last = samples_per_pixel - 1;
        for p in [0, 1, BLOCK, pixels - 1] {
            let want = u16::from_be_bytes([high[p], low[p]]);
            assert_eq!(words[pixels * samples_per_pixel + p * samples_per_pixel + last], want);
        }
    }
}

#[test]
fn bytes_of_one_segment_and_of_32_bit_samples() {
    let pixels = BLOCK + 5;
    let one = [fragment(&[segment(7, 400)])];
    assert_eq!(decode(&one, 1, pixels, 1, 1).unwrap(), unpack_reference(&segment(7, 400), pixels));
    let four = [fragment(&(0..4).map(|s| segment(s, 400)).collect::<Vec<_>>())];
    let planes: Vec<Vec<u8>> = (0..4).map(|s| unpack_reference(&segment(s, 400), pixels)).collect();
    let out = decode(&four, 1, pixels, 1, 4).unwrap();
    for (p, sample) in out.chunks_exact(4).enumerate() {
        // Little endian: byte 0 is the last (least significant) segment.
        assert_eq!(sample, [planes[3][p], planes[2][p], planes[1][p], planes[0][p]]);
    }
}

#[test]
fn malformed_fragments_are_errors() {
    let good = fragment(&[segment(1, 10), segment(2, 10)]);
    assert!(decode_words(std::slice::from_ref(&good), 2, 100, 1).is_err());
    assert!(decode_words(&[good[..40].to_vec()], 1, 100, 1).is_err());
    assert!(decode(std::slice::from_ref(&good), 1, 100, 1, 1).is_err());
    let mut bad_offset = good.clone();
    bad_offset[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode_words(&[bad_offset], 1, 100, 1).is_err());
    assert!(decode(std::slice::from_ref(&good), 1, 100, 8, 2).is_err());
}

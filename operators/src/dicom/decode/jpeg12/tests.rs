//! The fixtures and the script that made them are in testdata/ (synthetic images only).

use super::super::decode as decode_object;
use super::super::image::{PixelModule, Samples};
use super::*;

const DCMTK_2_FRAMES: &[u8] = include_bytes!("../testdata/jpeg12_dcmtk_2frames.dcm");
const DCMTK_2_FRAMES_LIBJPEG: &[u8] = include_bytes!("../testdata/jpeg12_dcmtk_2frames.libjpeg.raw");
const RESTART: &[u8] = include_bytes!("../testdata/jpeg12_restart.jpg");
const RESTART_LIBJPEG: &[u8] = include_bytes!("../testdata/jpeg12_restart.libjpeg.raw");
const COLOR: &[u8] = include_bytes!("../testdata/jpeg12_color.jpg");
const COLOR_LIBJPEG: &[u8] = include_bytes!("../testdata/jpeg12_color.libjpeg.raw");

/// `synthetic` of make_jpeg12_fixtures.py: a 12-bit gradient with a bright rectangle and
/// LCG noise, row by row.
fn synthetic(width: usize, height: usize, seed: u64) -> Vec<i64> {
    let mut state = seed;
    let mut image = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            state = (state * 1103515245 + 12345) & 0x7FFF_FFFF;
            let noise = ((state >> 16) & 127) as i64 - 64;
            let mut value = 400 + (x * 2800 / (width - 1)) as i64 + (y * 600 / (height - 1)) as i64 + noise;
            if (width / 4..width / 2).contains(&x) && (height / 3..2 * height / 3).contains(&y) {
                value += 500;
            }
            image.push(value.clamp(0, 4095));
        }
    }
    image
}

fn module(rows: u32, columns: u32, samples_per_pixel: u16, photometric: &str) -> PixelModule {
    PixelModule {
        rows,
        columns,
        samples_per_pixel,
        bits_allocated: 16,
        bits_stored: 12,
        signed: false,
        photometric: photometric.into(),
        planar: false,
        frames: 1,
    }
}

fn le_u16(bytes: &[u8]) -> Vec<i64> {
    bytes.chunks_exact(2).map(|c| i64::from(u16::from_le_bytes([c[0], c[1]]))).collect()
}

fn max_diff(ours: &[i64], theirs: &[i64]) -> i64 {
    assert_eq!(ours.len(), theirs.len());
    ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).max().unwrap_or(0)
}

fn decode_one(stream: &[u8], module: &PixelModule) -> Result<Decoded, String> {
    decode(&[stream.to_vec()], &[], module)
}

#[test]
fn dcmtk_12_bit_frames_are_close_to_the_original_and_to_libjpeg() {
    let image = decode_object(DCMTK_2_FRAMES).unwrap();
    assert_eq!((image.rows, image.columns, image.frames, image.samples_per_pixel), (64, 64, 2, 1));
    assert_eq!(image.photometric, "MONOCHROME2");
    let Samples::U16(samples) = &image.samples else { panic!("not u16: {:?}", image.samples) };
    let ours: Vec<i64> = samples.iter().map(|&v| i64::from(v)).collect();
    assert!(max_diff(&ours, &le_u16(DCMTK_2_FRAMES_LIBJPEG)) <= 1);
    let mut original = synthetic(64, 64, 1);
    original[0] = 0;
    let second = synthetic(64, 64, 2);
    let mirrored = second.chunks_exact(64).flat_map(|row| row.iter().rev().copied());
    original.extend(mirrored);
    original[2 * 64 * 64 - 1] = 4095;
    assert!(max_diff(&ours, &original) <= 20, "{}", max_diff(&ours, &original));
}

#[test]
fn restart_intervals_odd_sizes_and_16_bit_quantization_tables() {
    let decoded = decode_one(RESTART, &module(47, 61, 1, "MONOCHROME2")).unwrap();
    assert!(!decoded.ycbcr);
    let ours = le_u16(&decoded.bytes);
    assert!(max_diff(&ours, &le_u16(RESTART_LIBJPEG)) <= 1, "{}", max_diff(&ours, &le_u16(RESTART_LIBJPEG)));
    assert!(max_diff(&ours, &synthetic(61, 47, 7)) <= 48);
}

#[test]
fn subsampled_color_in_a_non_interleaved_and_an_interleaved_scan() {
    let decoded = decode_one(COLOR, &module(36, 40, 3, "YBR_FULL")).unwrap();
    assert!(!decoded.ycbcr, "the stream has no JFIF or Adobe marker");
    let (ours, theirs) = (le_u16(&decoded.bytes), le_u16(COLOR_LIBJPEG));
    let component =
        |samples: &[i64], index: usize| -> Vec<i64> { samples[index..].iter().step_by(3).copied().collect() };
    let luma = component(&ours, 0);
    assert!(max_diff(&luma, &component(&theirs, 0)) <= 1);
    assert!(max_diff(&luma, &synthetic(40, 36, 11)) <= 48);
    // libjpeg interpolates subsampled chroma where this decoder replicates it: they differ
    // by up to half a chroma sample's step of the gradient, 74 here.
    for index in [1, 2] {
        let (ours, theirs) = (component(&ours, index), component(&theirs, index));
        let mean = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).sum::<i64>() / ours.len() as i64;
        assert!(max_diff(&ours, &theirs) <= 74 && mean <= 24, "{} {mean}", max_diff(&ours, &theirs));
    }
}

#[test]
fn other_processes_are_refused_by_name() {
    let sof = RESTART.windows(2).position(|w| w == [0xFF, 0xC1]).unwrap();
    for (marker, name) in [(0xC2, "progressive"), (0xC3, "lossless"), (0xC9, "arithmetic"), (0xC5, "hierarchical")] {
        let mut stream = RESTART.to_vec();
        stream[sof + 1] = marker;
        let err = decode_one(&stream, &module(47, 61, 1, "MONOCHROME2")).err().unwrap();
        assert!(err.contains(name), "{err}");
    }
    // Baseline is 8-bit only.
    let mut stream = RESTART.to_vec();
    stream[sof + 1] = 0xC0;
    let err = decode_one(&stream, &module(47, 61, 1, "MONOCHROME2")).err().unwrap();
    assert!(err.contains("precision"), "{err}");
}

#[test]
fn a_frame_header_that_disagrees_with_the_pixel_module_is_refused() {
    for (module, what) in [
        (module(48, 61, 1, "MONOCHROME2"), "Rows and Columns"),
        (module(47, 60, 1, "MONOCHROME2"), "Rows and Columns"),
        (module(47, 61, 3, "RGB"), "SamplesPerPixel"),
    ] {
        let err = decode_one(RESTART, &module).err().unwrap();
        assert!(err.contains(what), "{err}");
    }
    let mut narrow = module(47, 61, 1, "MONOCHROME2");
    narrow.bits_allocated = 8;
    assert!(decode_one(RESTART, &narrow).err().unwrap().contains("BitsAllocated"));
}

#[test]
fn truncated_garbage_and_incomplete_streams_are_refused() {
    let mono = module(47, 61, 1, "MONOCHROME2");
    let err = decode_one(&RESTART[..RESTART.len() / 2], &mono).err().unwrap();
    assert!(err.contains("ends before"), "{err}");
    let garbage: Vec<u8> = (0..2000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    assert!(decode_one(&garbage, &mono).is_err());
    let mut after_soi = vec![0xFF, 0xD8];
    after_soi.extend_from_slice(&garbage);
    assert!(decode_one(&after_soi, &mono).is_err());
    // Without its Huffman tables (DHT turned into a comment).
    let dht = RESTART.windows(2).position(|w| w == [0xFF, 0xC4]).unwrap();
    let mut stream = RESTART.to_vec();
    stream[dht + 1] = 0xFE;
    assert!(decode_one(&stream, &mono).err().unwrap().contains("not defined"));
    // Without its restart markers.
    let mut stream = Vec::with_capacity(RESTART.len());
    let mut i = 0;
    while i < RESTART.len() {
        if RESTART[i] == 0xFF && RESTART.get(i + 1).is_some_and(|b| (0xD0..=0xD7).contains(b)) {
            i += 2;
        } else {
            stream.push(RESTART[i]);
            i += 1;
        }
    }
    assert!(decode_one(&stream, &mono).err().unwrap().contains("restart marker"));
    // More frames than fragments, and no fragment at all.
    let mut two = module(47, 61, 1, "MONOCHROME2");
    two.frames = 2;
    assert!(decode(&[RESTART.to_vec()], &[], &two).is_err());
    assert!(decode(&[], &[], &mono).is_err());
}

#[test]
fn no_prefix_and_no_flipped_byte_makes_it_panic() {
    let module = module(47, 61, 1, "MONOCHROME2");
    for end in 0..RESTART.len() {
        let _ = decode_one(&RESTART[..end], &module);
    }
    for i in 0..RESTART.len() {
        let mut stream = RESTART.to_vec();
        stream[i] ^= [0x01, 0x80, 0xFF][i % 3];
        let _ = decode_one(&stream, &module);
    }
}

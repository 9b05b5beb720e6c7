//! HTJ2K (High-Throughput JPEG 2000, PS3.5 A.4.4: transfer syntaxes .201, .202 and .203) goes
//! through dicom-pixeldata's JPEG 2000 adapter, whose openjp2 decodes HT code-blocks. The
//! fixtures are synthetic images encoded by OpenJPH; testdata/make_htj2k_fixtures.py made them
//! and checked each against pylibjpeg-openjpeg (OpenJPEG 2.5), whose decodes of the lossy ones
//! are the `.openjpeg.raw` files.

use super::super::*;

const HTJ2K_LOSSLESS: &str = "1.2.840.10008.1.2.4.201";
const HTJ2K_LOSSLESS_RPCL: &str = "1.2.840.10008.1.2.4.202";
const HTJ2K: &str = "1.2.840.10008.1.2.4.203";

/// One fixture and what decoding it must report: the object, (rows, columns), samples per
/// pixel (3 decodes to RGB, 1 stays MONOCHROME2) and the transfer syntax.
struct Fixture(&'static [u8], (u32, u32), u16, &'static str);

impl Fixture {
    /// Decodes the object and checks everything but the samples.
    fn decode(&self) -> DecodedImage {
        let Fixture(object, (rows, columns), samples_per_pixel, transfer_syntax) = *self;
        let decoded = decode(object).unwrap_or_else(|e| panic!("{transfer_syntax}: {e}"));
        let photometric = if samples_per_pixel == 3 { "RGB" } else { "MONOCHROME2" };
        assert_eq!(
            (decoded.rows, decoded.columns, decoded.frames, decoded.samples_per_pixel),
            (rows, columns, 1, samples_per_pixel)
        );
        assert_eq!(decoded.photometric, photometric);
        assert_eq!(decoded.transfer_syntax, transfer_syntax);
        assert_eq!(decoded.frame_params.len(), 1);
        decoded
    }
}

const CT_S16: Fixture = Fixture(include_bytes!("../testdata/htj2k_ct_s16.dcm"), (128, 128), 1, HTJ2K_LOSSLESS);
const CT_S16_LOSSY: Fixture = Fixture(include_bytes!("../testdata/htj2k_ct_s16_lossy.dcm"), (128, 128), 1, HTJ2K);
const U8: Fixture = Fixture(include_bytes!("../testdata/htj2k_u8.dcm"), (48, 64), 1, HTJ2K_LOSSLESS);
const U12_RPCL: Fixture = Fixture(include_bytes!("../testdata/htj2k_u12_rpcl.dcm"), (47, 61), 1, HTJ2K_LOSSLESS_RPCL);
const RGB8_RCT: Fixture = Fixture(include_bytes!("../testdata/htj2k_rgb8_rct.dcm"), (32, 40), 3, HTJ2K_LOSSLESS);
const RGB8_ICT: Fixture = Fixture(include_bytes!("../testdata/htj2k_rgb8_ict.dcm"), (32, 40), 3, HTJ2K);
/// The original samples (the lossy fixtures hold the images of the lossless ones).
const CT_S16_RAW: &[u8] = include_bytes!("../testdata/htj2k_ct_s16.raw");
const RGB8_RAW: &[u8] = include_bytes!("../testdata/htj2k_rgb8_rct.raw");

fn le_i16(raw: &[u8]) -> Vec<i16> {
    raw.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()
}

/// The largest absolute difference between the decoded samples and `reference`.
fn max_difference(decoded: &Samples, reference: &Samples) -> i64 {
    assert_eq!(decoded.len(), reference.len());
    (0..decoded.len()).map(|i| (decoded.get_i64(i).unwrap() - reference.get_i64(i).unwrap()).abs()).max().unwrap()
}

#[test]
fn lossless_signed_16_bit_ct_decodes_exactly() {
    assert_eq!(CT_S16.decode().samples, Samples::I16(le_i16(CT_S16_RAW)));
}

#[test]
fn lossless_unsigned_8_bit_decodes_exactly() {
    assert_eq!(U8.decode().samples, Samples::U8(include_bytes!("../testdata/htj2k_u8.raw").to_vec()));
}

#[test]
fn lossless_12_bit_rpcl_with_odd_size_decodes_exactly() {
    let raw = include_bytes!("../testdata/htj2k_u12_rpcl.raw");
    let expected = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(U12_RPCL.decode().samples, Samples::U16(expected));
}

#[test]
fn lossless_rgb_with_reversible_color_transform_decodes_exactly() {
    assert_eq!(RGB8_RCT.decode().samples, Samples::U8(RGB8_RAW.to_vec()));
}

/// openjp2 is a port of the OpenJPEG that pylibjpeg-openjpeg wraps, and decodes these exactly as
/// it does; the irreversible path runs in floating point, so one level of rounding difference to
/// it is allowed. The bound against the original is OpenJPEG's error (printed by the fixture
/// script: 45 for the CT, 13 for RGB) plus that level.
#[test]
fn lossy_signed_16_bit_ct_is_within_openjpeg_rounding() {
    let decoded = CT_S16_LOSSY.decode();
    let openjpeg = Samples::I16(le_i16(include_bytes!("../testdata/htj2k_ct_s16_lossy.openjpeg.raw")));
    assert!(max_difference(&decoded.samples, &openjpeg) <= 1);
    assert!(max_difference(&decoded.samples, &Samples::I16(le_i16(CT_S16_RAW))) <= 45 + 1);
}

#[test]
fn lossy_rgb_with_irreversible_color_transform_is_within_openjpeg_rounding() {
    let decoded = RGB8_ICT.decode();
    let openjpeg = Samples::U8(include_bytes!("../testdata/htj2k_rgb8_ict.openjpeg.raw").to_vec());
    assert!(max_difference(&decoded.samples, &openjpeg) <= 1);
    assert!(max_difference(&decoded.samples, &Samples::U8(RGB8_RAW.to_vec())) <= 13 + 1);
}

/// Median decode time of a 512x512 16-bit CT-like slice, HTJ2K lossless against JPEG 2000
/// lossless of the same image. The objects are too large to commit: make them with
/// `make_htj2k_fixtures.py --bench DIR`, then run with `RADSTREAM_HTJ2K_BENCH_DIR=DIR`:
/// `cargo test --release -p radstream-operators htj2k_decode_time -- --ignored --nocapture`.
#[test]
#[ignore = "timing; needs RADSTREAM_HTJ2K_BENCH_DIR"]
fn htj2k_decode_time_against_jpeg_2000() {
    let folder = std::env::var("RADSTREAM_HTJ2K_BENCH_DIR").expect("RADSTREAM_HTJ2K_BENCH_DIR");
    let median_ms = |name: &str| {
        let object = std::fs::read(std::path::Path::new(&folder).join(name)).unwrap();
        let reference = decode(&object).unwrap();
        let mut times: Vec<f64> = (0..30)
            .map(|_| {
                let start = std::time::Instant::now();
                let decoded = decode(&object).unwrap();
                let elapsed = start.elapsed().as_secs_f64() * 1e3;
                assert_eq!(decoded.samples, reference.samples);
                elapsed
            })
            .collect();
        times.sort_by(f64::total_cmp);
        (reference, object.len(), times[times.len() / 2])
    };
    let (htj2k, htj2k_bytes, htj2k_ms) = median_ms("bench_512_htj2k.dcm");
    let (j2k, j2k_bytes, j2k_ms) = median_ms("bench_512_j2k.dcm");
    assert_eq!(htj2k.samples, j2k.samples, "the two objects hold the same image");
    println!(
        "512x512 16-bit lossless decode, median of 30: HTJ2K {htj2k_ms:.2} ms ({htj2k_bytes} bytes), \
         JPEG 2000 {j2k_ms:.2} ms ({j2k_bytes} bytes)"
    );
}

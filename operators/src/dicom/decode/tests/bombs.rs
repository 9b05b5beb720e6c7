//! Decoder bombs: small objects whose codec stream declares a much larger image than their
//! attributes (or holds far less than they declare). Each is refused as malformed before its
//! codec runs, with what the stream declares and what the attributes say.
//!
//! The streams are real 16 x 16 images from third-party encoders (testdata/
//! make_bomb_fixtures.py: Pillow's libjpeg, dcmtk's dcmcjpeg and dcmcjpls, and OpenJPH's HTJ2K
//! fixtures of htj2k.rs) with their own header patched. Before these checks, the JPEG ones made
//! jpeg-decoder allocate the 65500 x 65500 planes their frame header declares (4 GiB; the
//! issue measured 1.5 GB and an abort for the baseline one), and the RLE one made the decoder
//! allocate and zero-fill 2 GiB; run under `ulimit -v 3000000` such a test aborts there.

use std::sync::Arc;

use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::OpenFileOptions;

use super::super::*;
use super::{image, part10};

const BASELINE_U8: &[u8] = include_bytes!("../testdata/bomb_baseline_u8.jpg");
const LOSSLESS_U16: &[u8] = include_bytes!("../testdata/bomb_lossless_u16.jpg");
const JPEGLS_U16: &[u8] = include_bytes!("../testdata/bomb_jpegls_u16.jls");
const HTJ2K_U8: &[u8] = include_bytes!("../testdata/htj2k_u8.dcm");
const HTJ2K_CT_S16: &[u8] = include_bytes!("../testdata/htj2k_ct_s16.dcm");

/// `stream` with the first frame header of `marker` (0xC0 SOF0, 0xC3 SOF3, 0xF7 SOF55)
/// declaring `columns` x `rows`.
fn patch_sof(stream: &[u8], marker: u8, columns: u16, rows: u16) -> Vec<u8> {
    let at = stream.windows(2).position(|w| w == [0xFF, marker]).expect("the stream has its frame header");
    let mut patched = stream.to_vec();
    patched[at + 5..at + 7].copy_from_slice(&rows.to_be_bytes());
    patched[at + 7..at + 9].copy_from_slice(&columns.to_be_bytes());
    patched
}

/// A 16 x 16 MONOCHROME2 object of `bits` (allocated, stored) whose one fragment is `stream`.
fn encapsulated(stream: Vec<u8>, transfer_syntax: &str, bits: (u16, u16)) -> Vec<u8> {
    let mut obj = image(16, 16, "MONOCHROME2", 1, bits, false);
    let mut stream = stream;
    if stream.len() % 2 == 1 {
        stream.push(0);
    }
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        Value::from(PixelFragmentSequence::new(Vec::<u32>::new(), vec![stream])),
    ));
    part10(obj, transfer_syntax)
}

/// The refusal of `object`: malformed, naming what the stream declares and the attributes.
fn refusal(object: &[u8]) -> DecodeError {
    let err = decode(object).expect_err("the bomb must be refused");
    assert!(err.is_malformed(), "a bomb is a malformed object, not merely undecodable: {err}");
    err
}

#[test]
fn a_jpeg_baseline_stream_declaring_65500_by_65500_in_a_16_by_16_object_is_refused() {
    // The fixture itself decodes, through the same path.
    let good = decode(&encapsulated(BASELINE_U8.to_vec(), uids::JPEG_BASELINE8_BIT, (8, 8))).unwrap();
    assert_eq!((good.rows, good.columns, good.samples.len()), (16, 16, 256));
    assert!(matches!(good.samples, Samples::U8(_)));

    let bomb = encapsulated(patch_sof(BASELINE_U8, 0xC0, 65500, 65500), uids::JPEG_BASELINE8_BIT, (8, 8));
    assert!(bomb.len() < 1500, "a bomb of {} bytes", bomb.len());
    let err = refusal(&bomb).to_string();
    assert!(
        err.contains("JPEG frame header declares 65500\u{d7}65500")
            && err.contains("the DICOM attributes say 16\u{d7}16"),
        "{err}"
    );
    assert!(err.contains(uids::JPEG_BASELINE8_BIT), "the reason names the transfer syntax: {err}");
}

#[test]
fn a_jpeg_stream_with_fewer_rows_or_other_components_than_the_attributes_is_refused() {
    // Smaller than declared is as inconsistent as larger: jpeg-decoder would decode 16 x 8.
    let err = refusal(&encapsulated(patch_sof(BASELINE_U8, 0xC0, 16, 8), uids::JPEG_EXTENDED12_BIT, (8, 8)));
    assert!(err.to_string().contains("declares 16\u{d7}8"), "{err}");

    // An RGB object whose stream has one component.
    let mut obj = image(16, 16, "RGB", 3, (8, 8), false);
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        Value::from(PixelFragmentSequence::new(Vec::<u32>::new(), vec![BASELINE_U8.to_vec()])),
    ));
    let err = refusal(&part10(obj, uids::JPEG_BASELINE8_BIT)).to_string();
    assert!(err.contains("declares 1 components") && err.contains("SamplesPerPixel 3"), "{err}");
}

#[test]
fn a_jpeg_stream_far_too_small_for_its_consistent_size_is_refused() {
    // 4096 x 4096 in the frame header and in the attributes, from 375 bytes: 16 MiB of
    // samples that the stream does not hold (jpeg-decoder would fill them with zeros).
    let mut obj = image(4096, 4096, "MONOCHROME2", 1, (8, 8), false);
    let mut stream = patch_sof(BASELINE_U8, 0xC0, 4096, 4096);
    stream.push(0);
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        Value::from(PixelFragmentSequence::new(Vec::<u32>::new(), vec![stream])),
    ));
    let err = refusal(&part10(obj, uids::JPEG_BASELINE8_BIT)).to_string();
    assert!(
        err.contains("a JPEG stream of 376 bytes for a frame of 16777216 bytes") && err.contains("64 times"),
        "{err}"
    );
}

#[test]
fn a_jpeg_lossless_stream_declaring_65500_by_65500_is_refused() {
    let good = decode(&encapsulated(LOSSLESS_U16.to_vec(), uids::JPEG_LOSSLESS_SV1, (16, 12))).unwrap();
    assert_eq!((good.rows, good.columns), (16, 16));
    assert!(matches!(&good.samples, Samples::U16(v) if v[0] == 0 && v[17] == 260), "{:?}", good.samples.get_i64(17));

    for transfer_syntax in [uids::JPEG_LOSSLESS_SV1, uids::JPEG_LOSSLESS] {
        let bomb = encapsulated(patch_sof(LOSSLESS_U16, 0xC3, 65500, 65500), transfer_syntax, (16, 12));
        let err = refusal(&bomb).to_string();
        assert!(err.contains("JPEG frame header declares 65500\u{d7}65500") && err.contains("say 16\u{d7}16"), "{err}");
    }
}

#[test]
fn a_jpeg_ls_stream_declaring_65500_by_65500_is_refused_before_charls_reads_it() {
    // Refused by our own read of its frame header: the same with or without CharLS installed.
    let bomb = encapsulated(patch_sof(JPEGLS_U16, 0xF7, 65500, 65500), uids::JPEGLS_LOSSLESS, (16, 12));
    let err = refusal(&bomb).to_string();
    assert!(err.contains("JPEG-LS frame header declares 65500\u{d7}65500") && err.contains("say 16\u{d7}16"), "{err}");

    // A JPEG-LS stream of more bits per sample than BitsAllocated.
    let err = refusal(&encapsulated(JPEGLS_U16.to_vec(), uids::JPEGLS_LOSSLESS, (8, 8))).to_string();
    assert!(err.contains("declares 16 bits per sample") && err.contains("BitsAllocated 8"), "{err}");
}

/// An HTJ2K fixture of one fragment, its codestream patched by `patch`, labelled
/// `transfer_syntax`.
fn patched_j2k(fixture: &[u8], transfer_syntax: &str, patch: impl Fn(&mut [u8])) -> Vec<u8> {
    let mut file = OpenFileOptions::new().from_reader(&fixture[128..]).expect("the fixture opens");
    let element = file.take(tags::PIXEL_DATA).expect("the fixture has pixel data");
    let Value::PixelSequence(sequence) = element.into_value() else { panic!("encapsulated") };
    let mut stream = sequence.fragments()[0].clone();
    patch(&mut stream);
    file.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        Value::from(PixelFragmentSequence::new(Vec::<u32>::new(), vec![stream])),
    ));
    let uid = if transfer_syntax.len() % 2 == 1 { format!("{transfer_syntax}\0") } else { transfer_syntax.into() };
    file.update_meta(|meta| meta.transfer_syntax = uid);
    let mut out = Vec::new();
    file.write_all(&mut out).unwrap();
    out
}

/// Sets the SIZ marker's Xsiz and Ysiz (the codestream starts SOC SIZ Lsiz Rsiz Xsiz Ysiz).
fn siz_size(stream: &mut [u8], columns: u32, rows: u32) {
    assert_eq!(&stream[..4], &[0xFF, 0x4F, 0xFF, 0x51], "a bare codestream");
    stream[8..12].copy_from_slice(&columns.to_be_bytes());
    stream[12..16].copy_from_slice(&rows.to_be_bytes());
}

#[test]
fn a_jpeg_2000_codestream_declaring_65500_by_65500_is_refused() {
    let unpatched = decode(&patched_j2k(HTJ2K_U8, "1.2.840.10008.1.2.4.201", |_| {})).unwrap();
    assert_eq!((unpatched.rows, unpatched.columns), (48, 64));

    for transfer_syntax in
        ["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.203", uids::JPEG2000_LOSSLESS, uids::JPEG2000]
    {
        let bomb = patched_j2k(HTJ2K_U8, transfer_syntax, |s| siz_size(s, 65500, 65500));
        let err = refusal(&bomb).to_string();
        assert!(
            err.contains("JPEG 2000 SIZ marker declares 65500\u{d7}65500") && err.contains("say 64\u{d7}48"),
            "{transfer_syntax}: {err}"
        );
    }
}

#[test]
fn a_jpeg_2000_codestream_of_one_pixel_tiles_is_refused() {
    // 128 x 128 tiles of 1 x 1: openjp2 would keep a tile coding structure for each of 16384.
    let bomb = patched_j2k(HTJ2K_CT_S16, uids::JPEG2000_LOSSLESS, |s| {
        s[24..28].copy_from_slice(&1u32.to_be_bytes()); // XTsiz
        s[28..32].copy_from_slice(&1u32.to_be_bytes()); // YTsiz
    });
    let err = refusal(&bomb).to_string();
    assert!(err.contains("declares 16384 tiles") && err.contains("more than the 4096"), "{err}");
}

#[test]
fn an_rle_fragment_that_cannot_hold_its_frame_is_refused_without_allocating_it() {
    // A header of one segment and two bytes of data, for 32768 x 65535 8-bit pixels (2 GiB,
    // within the size limit): before, 2 GiB were allocated and zero-filled.
    let mut obj = image(32768, 65535, "MONOCHROME2", 1, (8, 8), false);
    let mut fragment = vec![0u8; 64];
    fragment[0] = 1;
    fragment[4] = 64;
    fragment.extend([0x81, 7]); // one repeat run of 128 sevens
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        Value::from(PixelFragmentSequence::new(Vec::<u32>::new(), vec![fragment])),
    ));
    let err = refusal(&part10(obj, uids::RLE_LOSSLESS)).to_string();
    assert!(
        err.contains("holds 2 bytes of segments") && err.contains("2147450880 bytes") && err.contains("64 times"),
        "{err}"
    );
}

#[test]
fn a_decode_larger_than_its_limit_is_refused_naming_the_sizes() {
    let object = encapsulated(BASELINE_U8.to_vec(), uids::JPEG_BASELINE8_BIT, (8, 8));
    let limits = DecodeLimits { max_decoded_bytes: 255, budget: None };
    let err = decode_with(&object, &limits).unwrap_err();
    assert!(!err.is_malformed(), "too large for this operator is not malformed: {err}");
    assert!(err.to_string().contains("would be 256 bytes") && err.to_string().contains("limit of 255 bytes"), "{err}");
    assert!(decode_with(&object, &DecodeLimits { max_decoded_bytes: 256, budget: None }).is_ok());
}

#[test]
fn a_decode_reserves_its_decoded_bytes_from_the_budget_until_the_caller_is_done() {
    let budget = Arc::new(DecodeBudget::new(1000));
    let limits = DecodeLimits { max_decoded_bytes: MAX_DECODED_BYTES, budget: Some(Arc::clone(&budget)) };
    let object = encapsulated(LOSSLESS_U16.to_vec(), uids::JPEG_LOSSLESS_SV1, (16, 12));
    let (image, reserved) = decode_reserved(&object, &limits).unwrap();
    assert_eq!(reserved.as_ref().map(Reservation::bytes), Some(512), "16 x 16 samples of 2 bytes");
    assert_eq!(budget.available(), 488);
    drop((image, reserved));
    assert_eq!(budget.available(), 1000);
    // A refused bomb reserves nothing.
    let bomb = encapsulated(patch_sof(LOSSLESS_U16, 0xC3, 65500, 65500), uids::JPEG_LOSSLESS_SV1, (16, 12));
    assert!(decode_with(&bomb, &limits).unwrap_err().is_malformed());
    assert_eq!((budget.available(), budget.peak()), (1000, 512));
}

#[test]
fn a_reservation_waits_until_the_budget_has_room_and_one_larger_than_it_runs_alone() {
    let budget = Arc::new(DecodeBudget::new(100));
    let whole = budget.reserve(u64::MAX);
    assert_eq!((whole.bytes(), budget.available()), (100, 0), "larger than the budget: all of it");
    let (sent, received) = std::sync::mpsc::channel();
    let waiter = {
        let budget = Arc::clone(&budget);
        std::thread::spawn(move || {
            let reservation = budget.reserve(30);
            sent.send(reservation.bytes()).unwrap();
        })
    };
    // The waiter is blocked in `reserve` until the whole budget is given back.
    while budget.waiting() == 0 {
        std::thread::yield_now();
    }
    assert!(received.try_recv().is_err(), "reserved while the budget was all taken");
    drop(whole);
    assert_eq!(received.recv().unwrap(), 30);
    waiter.join().unwrap();
    assert_eq!((budget.available(), budget.waiting()), (100, 0));
}

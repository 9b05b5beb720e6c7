use std::borrow::Cow;
use std::ffi::{c_int, c_void, OsStr};

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use super::super::decode;
use super::super::image::{PixelModule, Samples};
use super::*;

/// CharLS, or None after the test gate said why the test is skipped (a failure under
/// RADSTREAM_REQUIRE_STACK=1).
fn charls_or_skip() -> Option<&'static CharLs> {
    match charls() {
        Ok(charls) => Some(charls),
        Err(why) => {
            radstream_test_gate::missing(&format!("CharLS 2, Debian's libcharls2 (the decoder says: {why})"));
            None
        }
    }
}

/// `charls_jpegls_encoder`, opaque.
#[repr(C)]
struct RawEncoder {
    _opaque: [u8; 0],
}

/// Encodes `source` (native-endian samples: planes for interleave mode 0, pixels otherwise)
/// with CharLS's own encoder (charls_jpegls_encoder.h).
fn encode(charls: &CharLs, info: FrameInfo, interleave: c_int, near_lossless: i32, source: &[u8]) -> Vec<u8> {
    type E = *mut RawEncoder;
    let lib = &charls.library;
    let (mut size, mut used) = (0usize, 0usize);
    let mut out = Vec::new();
    // SAFETY: each function type is its declaration in charls_jpegls_encoder.h of CharLS 2.4,
    // and the library lives in a static. The encoder is live from create to destroy; every
    // pointer passed is a valid local or a buffer valid for the length passed with it.
    unsafe {
        let create: unsafe extern "C" fn() -> E = function(lib, b"charls_jpegls_encoder_create\0").unwrap();
        let destroy: unsafe extern "C" fn(E) = function(lib, b"charls_jpegls_encoder_destroy\0").unwrap();
        let set_frame_info: unsafe extern "C" fn(E, *const FrameInfo) -> Errc =
            function(lib, b"charls_jpegls_encoder_set_frame_info\0").unwrap();
        let set_near_lossless: unsafe extern "C" fn(E, i32) -> Errc =
            function(lib, b"charls_jpegls_encoder_set_near_lossless\0").unwrap();
        let set_interleave_mode: unsafe extern "C" fn(E, c_int) -> Errc =
            function(lib, b"charls_jpegls_encoder_set_interleave_mode\0").unwrap();
        let estimate_size: unsafe extern "C" fn(E, *mut usize) -> Errc =
            function(lib, b"charls_jpegls_encoder_get_estimated_destination_size\0").unwrap();
        let set_destination: unsafe extern "C" fn(E, *mut c_void, usize) -> Errc =
            function(lib, b"charls_jpegls_encoder_set_destination_buffer\0").unwrap();
        let encode_from: unsafe extern "C" fn(E, *const c_void, usize, u32) -> Errc =
            function(lib, b"charls_jpegls_encoder_encode_from_buffer\0").unwrap();
        let bytes_written: unsafe extern "C" fn(E, *mut usize) -> Errc =
            function(lib, b"charls_jpegls_encoder_get_bytes_written\0").unwrap();

        let encoder = create();
        assert!(!encoder.is_null());
        assert_eq!(set_frame_info(encoder, &info), 0);
        assert_eq!(set_near_lossless(encoder, near_lossless), 0);
        assert_eq!(set_interleave_mode(encoder, interleave), 0);
        assert_eq!(estimate_size(encoder, &mut size), 0);
        out.resize(size, 0);
        assert_eq!(set_destination(encoder, out.as_mut_ptr().cast(), out.len()), 0);
        assert_eq!(encode_from(encoder, source.as_ptr().cast(), source.len(), 0), 0);
        assert_eq!(bytes_written(encoder, &mut used), 0);
        destroy(encoder);
    }
    out.truncate(used);
    out
}

fn module(rows: u32, columns: u32, samples_per_pixel: u16, bits: (u16, u16), signed: bool) -> PixelModule {
    PixelModule {
        rows,
        columns,
        samples_per_pixel,
        bits_allocated: bits.0,
        bits_stored: bits.1,
        signed,
        photometric: if samples_per_pixel == 3 { "RGB" } else { "MONOCHROME2" }.into(),
        planar: false,
        frames: 1,
    }
}

fn frame_info(module: &PixelModule, bits_per_sample: i32) -> FrameInfo {
    FrameInfo {
        width: module.columns,
        height: module.rows,
        bits_per_sample,
        component_count: i32::from(module.samples_per_pixel),
    }
}

fn native_words(values: impl IntoIterator<Item = u16>) -> Vec<u8> {
    values.into_iter().flat_map(u16::to_ne_bytes).collect()
}

/// A CT-like slice: air around an elliptic body of soft tissue with a bony rim, with noise.
fn ct_slice(size: u32, seed: u64) -> Vec<i16> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let centre = f64::from(size) / 2.0;
    let mut noise = |sigma: f64| (0..4).map(|_| rng.f64() - 0.5).sum::<f64>() * sigma * 1.7;
    (0..size * size)
        .map(|i| {
            let (x, y) = (f64::from(i % size) - centre, f64::from(i / size) - centre);
            let r = (x / (0.42 * centre * 2.0)).hypot(y / (0.32 * centre * 2.0));
            let hu = match r {
                r if r < 0.93 => 40.0 + noise(15.0),
                r if r < 1.0 => 900.0 + noise(60.0),
                _ => -1000.0 + noise(8.0),
            };
            hu.round() as i16
        })
        .collect()
}

/// A Part-10 object holding JPEG-LS `fragments` with the basic offset table `offsets`.
fn part10(module: &PixelModule, uid: &str, offsets: Vec<u32>, fragments: Vec<Vec<u8>>) -> Vec<u8> {
    let us = [
        (tags::ROWS, module.rows as u16),
        (tags::COLUMNS, module.columns as u16),
        (tags::SAMPLES_PER_PIXEL, module.samples_per_pixel),
        (tags::BITS_ALLOCATED, module.bits_allocated),
        (tags::BITS_STORED, module.bits_stored),
        (tags::HIGH_BIT, module.bits_stored - 1),
        (tags::PIXEL_REPRESENTATION, u16::from(module.signed)),
    ];
    let text = [
        (tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        (tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5"),
        (tags::PHOTOMETRIC_INTERPRETATION, VR::CS, module.photometric.as_str()),
        (tags::NUMBER_OF_FRAMES, VR::IS, &module.frames.to_string()),
    ];
    let obj = InMemDicomObject::from_element_iter(
        us.into_iter()
            .map(|(tag, value)| DataElement::new(tag, VR::US, PrimitiveValue::from(value)))
            .chain(text.into_iter().map(|(tag, vr, value)| DataElement::new(tag, vr, PrimitiveValue::from(value))))
            .chain([DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                Value::from(PixelFragmentSequence::new(offsets, fragments)),
            )]),
    );
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uid)
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
        .media_storage_sop_instance_uid("1.2.3.4.5");
    let mut bytes = Vec::new();
    obj.with_meta(meta).unwrap().write_all(&mut bytes).unwrap();
    bytes
}

#[test]
fn a_missing_library_is_named_with_its_package() {
    let err = open(OsStr::new("/nonexistent/libcharls.so.2")).err().unwrap().describe();
    assert!(err.contains("CharLS 2") && err.contains("libcharls2") && err.contains("not found"), "{err}");
    let err = open_first(&["/nonexistent/libcharls.so.2", "/nonexistent/libcharls.so"]).err().unwrap();
    assert!(err.contains("libcharls2"), "{err}");
}

#[test]
fn a_library_that_is_not_charls_2_is_refused() {
    // libc is loadable everywhere this runs and has none of CharLS's functions.
    let err = open(OsStr::new("libc.so.6")).err().unwrap().describe();
    assert!(err.contains("CharLS 2") && err.contains("charls_get_version_number"), "{err}");
}

#[test]
fn signed_16_bit_round_trips_exactly() {
    let Some(charls) = charls_or_skip() else { return };
    let (rows, columns) = (37, 53);
    let mut values: Vec<i16> = ct_slice(64, 7)[..(rows * columns) as usize].to_vec();
    values[..4].copy_from_slice(&[i16::MIN, i16::MAX, -1, 0]);
    let module = module(rows, columns, 1, (16, 16), true);
    let stream = encode(charls, frame_info(&module, 16), 0, 0, &native_words(values.iter().map(|&v| v as u16)));

    let bytes = decode_frames(&[Cow::Borrowed(&stream[..])], &module, LOSSLESS).unwrap();
    let decoded: Vec<i16> = bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(decoded, values);

    // The same through the whole decoder, with an odd-length stream padded as PS3.5 A.4 asks.
    let mut padded = stream.clone();
    if padded.len() % 2 == 1 {
        padded.push(0);
    }
    let image = decode(&part10(&module, LOSSLESS, vec![], vec![padded])).unwrap();
    assert_eq!(image.samples, Samples::I16(values));
}

#[test]
fn frames_are_found_through_the_basic_offset_table() {
    let Some(charls) = charls_or_skip() else { return };
    let mut module = module(16, 24, 1, (16, 12), false);
    module.frames = 3;
    let frames: Vec<Vec<u16>> = (0..3u16).map(|f| (0..16 * 24).map(|i| (i * 7 + f * 1000) % 4096).collect()).collect();
    let streams: Vec<Vec<u8>> =
        frames.iter().map(|f| encode(charls, frame_info(&module, 12), 0, 0, &native_words(f.clone()))).collect();
    // Frame 2 split over two fragments: 4 fragments for 3 frames, told apart by the table.
    let (head, tail) = streams[1].split_at(streams[1].len() / 2);
    let fragments = vec![streams[0].clone(), head.to_vec(), tail.to_vec(), streams[2].clone()];
    let item = |f: &Vec<u8>| 8 + f.len() as u32;
    let offsets = vec![0, item(&fragments[0]), item(&fragments[0]) + item(&fragments[1]) + item(&fragments[2])];
    let image = decode(&part10(&module, LOSSLESS, offsets, fragments)).unwrap();
    assert_eq!(image.samples, Samples::U16(frames.concat()));
}

#[test]
fn every_interleave_mode_comes_out_pixel_interleaved() {
    let Some(charls) = charls_or_skip() else { return };
    let module = module(5, 7, 3, (8, 8), false);
    let pixels: Vec<u8> = (0..5 * 7 * 3).map(|i| (i * 37 % 251) as u8).collect();
    let planes: Vec<u8> = (0..3).flat_map(|c| pixels.iter().skip(c).step_by(3).copied()).collect();
    for (mode, source) in [(0, &planes), (1, &pixels), (2, &pixels)] {
        let stream = encode(charls, frame_info(&module, 8), mode, 0, source);
        let bytes = decode_frames(&[Cow::Borrowed(&stream[..])], &module, LOSSLESS).unwrap();
        assert_eq!(bytes, pixels, "interleave mode {mode}");
    }
}

#[test]
fn narrow_codestreams_are_widened_and_sign_extended_from_their_precision() {
    let Some(charls) = charls_or_skip() else { return };
    // 12-bit two's complement in a codestream of precision 12, BitsStored 16: pydicom
    // sign-extends from the codestream's precision.
    let module_16 = module(2, 3, 1, (16, 16), true);
    let values: [i16; 6] = [-2048, -1, 0, 1, 2047, -300];
    let stream = encode(charls, frame_info(&module_16, 12), 0, 0, &native_words(values.map(|v| v as u16 & 0x0FFF)));
    let bytes = decode_frames(&[Cow::Borrowed(&stream[..])], &module_16, LOSSLESS).unwrap();
    assert_eq!(bytes, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());

    // An 8-bit codestream for BitsAllocated 16 comes out as 16-bit words.
    let module_8_in_16 = module(2, 3, 1, (16, 8), false);
    let stream = encode(charls, frame_info(&module_8_in_16, 8), 0, 0, &[0, 1, 127, 128, 254, 255]);
    let bytes = decode_frames(&[Cow::Borrowed(&stream[..])], &module_8_in_16, LOSSLESS).unwrap();
    assert_eq!(bytes, [0, 0, 1, 0, 127, 0, 128, 0, 254, 0, 255, 0]);
}

#[test]
fn near_lossless_stays_within_near() {
    let Some(charls) = charls_or_skip() else { return };
    let module = module(32, 32, 1, (16, 16), true);
    let values = ct_slice(32, 3);
    let stream = encode(charls, frame_info(&module, 16), 0, 3, &native_words(values.iter().map(|&v| v as u16)));
    let image = decode(&part10(&module, NEAR_LOSSLESS, vec![], vec![stream])).unwrap();
    let Samples::I16(decoded) = image.samples else { panic!("not I16") };
    assert!(decoded.iter().zip(&values).all(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() <= 3));
}

#[test]
fn broken_codestreams_are_errors() {
    let Some(charls) = charls_or_skip() else { return };
    let module = module(16, 16, 1, (16, 16), false);
    let stream = encode(charls, frame_info(&module, 16), 0, 0, &native_words((0..256).map(|i| i * 211)));
    let mut garbage = vec![0u8; 300];
    fastrand::Rng::with_seed(1).fill(&mut garbage);
    let cases: [(&str, &[u8]); 6] = [
        ("empty", &[]),
        ("SOI and EOI only", &[0xFF, 0xD8, 0xFF, 0xD9]),
        ("garbage", &garbage),
        ("cut in the header", &stream[..12]),
        ("cut in the scan", &stream[..stream.len() / 2]),
        ("without EOI", &stream[..stream.len() - 2]),
    ];
    for (what, bytes) in cases {
        let err = decode_frames(&[Cow::Borrowed(bytes)], &module, LOSSLESS).unwrap_err();
        assert!(err.contains("CharLS"), "{what}: {err}");
    }
}

#[test]
fn a_header_that_disagrees_with_the_pixel_module_is_refused() {
    let Some(charls) = charls_or_skip() else { return };
    let module_16 = module(8, 8, 1, (16, 16), false);
    let stream = encode(charls, frame_info(&module_16, 12), 0, 0, &native_words(0..64));
    let decode_as = |module: &PixelModule| decode_frames(&[Cow::Borrowed(&stream[..])], module, LOSSLESS);
    for (module, expected) in [
        (module(8, 9, 1, (16, 16), false), "Columns x Rows"),
        (module(9, 8, 1, (16, 16), false), "Columns x Rows"),
        (module(8, 8, 3, (16, 16), false), "SamplesPerPixel"),
        (module(8, 8, 1, (8, 8), false), "BitsAllocated"),
    ] {
        let err = decode_as(&module).unwrap_err();
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert!(decode_as(&module_16).is_ok());
}

/// Decode time of a 512 x 512 signed 16-bit CT-like slice, whole `decode` (parse, CharLS,
/// sample conversion, frame parameters). Run in release:
/// `cargo test --release -p radstream-operators --lib jpegls -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run by hand in release"]
fn decode_time_of_a_ct_slice() {
    let Some(charls) = charls_or_skip() else { return };
    let module = module(512, 512, 1, (16, 16), true);
    let values = ct_slice(512, 11);
    let stream = encode(charls, frame_info(&module, 16), 0, 0, &native_words(values.iter().map(|&v| v as u16)));
    let object = part10(&module, LOSSLESS, vec![], vec![stream.clone()]);
    let time = |f: &dyn Fn()| {
        let mut runs: Vec<f64> = (0..55)
            .map(|_| {
                let started = std::time::Instant::now();
                f();
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        runs.drain(..5);
        runs.sort_by(f64::total_cmp);
        (runs[runs.len() / 2], runs[0], runs[runs.len() - 1])
    };
    let whole = time(&|| assert_eq!(decode(&object).unwrap().samples.len(), 512 * 512));
    let codec = time(&|| {
        decode_frames(&[Cow::Borrowed(&stream[..])], &module, LOSSLESS).unwrap();
    });
    eprintln!("512x512 signed 16-bit lossless JPEG-LS, {} bytes compressed, 50 runs:", stream.len());
    eprintln!("  decode():        median {:.3} ms (min {:.3}, max {:.3})", whole.0, whole.1, whole.2);
    eprintln!("  decode_frames(): median {:.3} ms (min {:.3}, max {:.3})", codec.0, codec.1, codec.2);
}

/// A decode that does not end in its time is refused and left to finish on its own thread;
/// while two such still run, the next is refused without starting (CharLS before 2.4.3 spins
/// for seconds on a crafted codestream of 155 bytes: tests/fuzz/regressions/decode_jpeg_ls).
#[test]
fn a_decode_that_stalls_is_refused_and_too_many_stalls_refuse_the_next_unread() {
    use std::time::Duration;
    // Its own count, so that the other tests' JPEG-LS decodes are not refused meanwhile.
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let fast = run_guarded(&COUNT, Duration::from_secs(5), || Ok(vec![7u8; 4]));
    assert_eq!(fast, Ok(vec![7u8; 4]));
    assert_eq!(run_guarded(&COUNT, Duration::from_secs(5), || Err("bad".into())), Err(Stalled::Failed("bad".into())));
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
    let stall = |wait: std::sync::Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>| {
        move || {
            let _ = wait.lock().unwrap().recv();
            Ok(Vec::new())
        }
    };
    assert_eq!(run_guarded(&COUNT, Duration::from_millis(50), stall(wait.clone())), Err(Stalled::TimedOut));
    assert_eq!(run_guarded(&COUNT, Duration::from_millis(50), stall(wait.clone())), Err(Stalled::TimedOut));
    assert_eq!(COUNT.load(Ordering::Acquire), MAX_STALLED);
    let mut started = false;
    assert_eq!(
        run_guarded(&COUNT, Duration::from_secs(5), move || {
            started = true;
            Ok(vec![started as u8])
        }),
        Err(Stalled::Refused)
    );
    // Once the stalled decodes end, decoding goes on.
    release.send(()).unwrap();
    release.send(()).unwrap();
    while COUNT.load(Ordering::Acquire) > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(run_guarded(&COUNT, Duration::from_secs(5), || Ok(vec![1])), Ok(vec![1]));
}

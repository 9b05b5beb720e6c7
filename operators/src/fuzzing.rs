//! The entry points of the fuzz targets (`tests/fuzz`) and of their corpus replay in the test
//! suite (`tests/tests/fuzz_corpus.rs`): each hands outside bytes to one parser the way the
//! runtime does and ignores the answer. A target's only failures are a panic, an abort, a stall
//! or memory past the fuzzer's limit; a refusal is a correct answer.
//!
//! Not part of radstream's interface (hidden from its docs); kept here so that the targets call
//! the parsers as they are, not copies.

use dicom_dictionary_std::uids;
use reqwest::StatusCode;

use crate::dicom::decode::{decode_with, DecodeLimits};
use crate::dicom::header::parse_header;

/// The decode bound under fuzzing: well under the fuzzer's memory limit, so that an allocation
/// past it means a stream made a codec allocate more than the attributes declare.
pub const FUZZ_MAX_DECODED_BYTES: u64 = 64 << 20;

fn limits() -> DecodeLimits {
    DecodeLimits { max_decoded_bytes: FUZZ_MAX_DECODED_BYTES, ..DecodeLimits::default() }
}

/// The fuzz targets, by name: `tests/fuzz/fuzz_targets/<name>.rs` calls [`run`] with it.
pub const TARGETS: &[&str] = &[
    "header",
    "decode_part10",
    "decode_rle",
    "decode_jpeg_baseline",
    "decode_jpeg_extended",
    "decode_jpeg_lossless",
    "decode_jpeg_ls",
    "decode_jpeg_2000",
    "decode_htj2k",
    "event_json",
    "event_avro",
    "event_s3_notification",
    "stow_response",
    "fhir_response",
];

/// Runs target `name` on `data`; true when the parser accepted it (a corpus that is all
/// refusals never reaches the codec). Panics on an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    if name.starts_with("decode") {
        let_caught_decoder_panics_unwind();
    }
    match name {
        "header" => parse_header(data).is_ok(),
        "decode_part10" => decode_with(data, &limits()).is_ok(),
        "decode_rle" => codec(uids::RLE_LOSSLESS, data),
        "decode_jpeg_baseline" => codec(uids::JPEG_BASELINE8_BIT, data),
        "decode_jpeg_extended" => codec(uids::JPEG_EXTENDED12_BIT, data),
        "decode_jpeg_lossless" => codec(uids::JPEG_LOSSLESS_SV1, data),
        "decode_jpeg_ls" => codec(uids::JPEGLS_LOSSLESS, data),
        "decode_jpeg_2000" => codec(uids::JPEG2000_LOSSLESS, data),
        "decode_htj2k" => codec(uids::HTJ2K_LOSSLESS, data),
        "event_json" => event(radstream_schemas::EventFormat::Json, data),
        "event_avro" => event(radstream_schemas::EventFormat::ConfluentAvro, data),
        "event_s3_notification" => event(radstream_schemas::EventFormat::S3Notification, data),
        "stow_response" => {
            let _ = crate::stow::response::classify_response(StatusCode::OK, data, "1.2.3.4", false);
            crate::stow::response::parse_stow_response(data).is_some()
        }
        "fhir_response" => {
            use crate::fhir::post::{classify_response, Verdict};
            let _ = classify_response(StatusCode::BAD_REQUEST, data, &[]);
            let types = [Some("DiagnosticReport".to_string()), Some("Observation".to_string()), None];
            let _ = classify_response(StatusCode::OK, data, &types);
            matches!(classify_response(StatusCode::OK, data, &[]), Verdict::Delivered(_))
        }
        other => panic!("no fuzz target {other}"),
    }
}

/// Third-party decoders panic on some crafted streams: jpeg-decoder 0.3.2 (an index past its
/// output in `color_no_convert`, found by `decode_jpeg_baseline`) and openjp2 0.6.1 (an index
/// out of range in `t2.rs`, found by `decode_jpeg_2000`). radstream's decode runs each of them
/// under `catch_unwind` (`decode/jpeg.rs`, and `decode.rs` around dicom-pixeldata) and refuses
/// the object, which is the behaviour under test. libFuzzer's panic hook aborts on every panic,
/// caught or not, so the decode targets let a panic raised inside those crates' own source
/// unwind to that catch; any other panic still aborts and counts as a crash.
fn let_caught_decoder_panics_unwind() {
    const CAUGHT: &[&str] = &["/jpeg-decoder-", "/openjp2-", "/dicom-pixeldata-"];
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let caught = info.location().is_some_and(|l| CAUGHT.iter().any(|c| l.file().contains(c)));
            if !caught {
                abort(info);
            }
        }));
    });
}

fn event(format: radstream_schemas::EventFormat, data: &[u8]) -> bool {
    let schemas = radstream_schemas::wire::SchemaSet::with_default(radstream_schemas::wire::SchemaSet::v1());
    radstream_schemas::wire::decode(format, data, &schemas).is_ok()
}

/// The first five bytes choose the image the attributes declare (Rows and Columns up to 1024,
/// 8 or 16 bits, 1 or 3 samples); the rest is the codec stream, one fragment of one frame.
fn codec(transfer_syntax: &str, data: &[u8]) -> bool {
    if data.len() < 5 {
        return false;
    }
    let rows = u16::from_le_bytes([data[0], data[1]]) % 1024 + 1;
    let columns = u16::from_le_bytes([data[2], data[3]]) % 1024 + 1;
    let (bits, stored) = match transfer_syntax {
        uids::JPEG_BASELINE8_BIT => (8, 8),
        uids::JPEG_EXTENDED12_BIT => (16, 12),
        _ if data[4] & 1 == 1 => (16, 16),
        _ => (8, 8),
    };
    let samples = if bits == 8 && data[4] & 2 == 2 { 3 } else { 1 };
    let object = encapsulated_part10(transfer_syntax, rows, columns, bits, stored, samples, &data[5..]);
    decode_with(&object, &limits()).is_ok()
}

/// A Part-10 object in explicit VR little endian framing with one encapsulated frame.
pub fn encapsulated_part10(
    transfer_syntax: &str,
    rows: u16,
    columns: u16,
    bits: u16,
    stored: u16,
    samples: u16,
    fragment: &[u8],
) -> Vec<u8> {
    fn element(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) {
        let mut value = value.to_vec();
        if value.len() % 2 == 1 {
            value.push(if vr == b"UI" { 0 } else { b' ' });
        }
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&elem.to_le_bytes());
        out.extend_from_slice(vr);
        if matches!(vr, b"OB" | b"OW" | b"UN" | b"SQ" | b"UT") {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(&value);
    }
    let mut meta = Vec::new();
    element(&mut meta, 0x0002, 0x0001, b"OB", &[0, 1]);
    element(&mut meta, 0x0002, 0x0002, b"UI", uids::SECONDARY_CAPTURE_IMAGE_STORAGE.as_bytes());
    element(&mut meta, 0x0002, 0x0003, b"UI", b"1.2.3.4");
    element(&mut meta, 0x0002, 0x0010, b"UI", transfer_syntax.as_bytes());
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    element(&mut out, 0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    element(&mut out, 0x0008, 0x0016, b"UI", uids::SECONDARY_CAPTURE_IMAGE_STORAGE.as_bytes());
    element(&mut out, 0x0008, 0x0018, b"UI", b"1.2.3.4");
    element(&mut out, 0x0028, 0x0002, b"US", &samples.to_le_bytes());
    let photometric: &[u8] = if samples == 3 { b"RGB" } else { b"MONOCHROME2" };
    element(&mut out, 0x0028, 0x0004, b"CS", photometric);
    if samples == 3 {
        element(&mut out, 0x0028, 0x0006, b"US", &0u16.to_le_bytes());
    }
    element(&mut out, 0x0028, 0x0008, b"IS", b"1");
    element(&mut out, 0x0028, 0x0010, b"US", &rows.to_le_bytes());
    element(&mut out, 0x0028, 0x0011, b"US", &columns.to_le_bytes());
    element(&mut out, 0x0028, 0x0100, b"US", &bits.to_le_bytes());
    element(&mut out, 0x0028, 0x0101, b"US", &stored.to_le_bytes());
    element(&mut out, 0x0028, 0x0102, b"US", &(stored - 1).to_le_bytes());
    element(&mut out, 0x0028, 0x0103, b"US", &0u16.to_le_bytes());
    out.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    let item = |out: &mut Vec<u8>, body: &[u8]| {
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        let padded = body.len() + body.len() % 2;
        out.extend_from_slice(&(padded as u32).to_le_bytes());
        out.extend_from_slice(body);
        if body.len() % 2 == 1 {
            out.push(0);
        }
    };
    item(&mut out, &[]);
    item(&mut out, fragment);
    out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    out
}

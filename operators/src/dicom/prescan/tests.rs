#[test]
fn a_length_past_the_end_is_refused_and_a_good_header_passes() {
    let mut body = b"DICM".to_vec();
    // (0002,0010) UI, 2 bytes; then (0008,0016) UI with a length of 0x4000.
    body.extend_from_slice(&[0x02, 0, 0x10, 0, b'U', b'I', 2, 0, b'1', 0]);
    assert_eq!(super::check(&body, "1.2.840.10008.1.2.1"), Ok(()));
    body.extend_from_slice(&[0x08, 0, 0x16, 0, b'U', b'I', 0, 0x40, b'1', 0]);
    assert!(super::check(&body, "1.2.840.10008.1.2.1").is_err());
    // Big endian is walked too: the same element in big endian, 0x4000 bytes declared.
    let mut big = b"DICM".to_vec();
    big.extend_from_slice(&[0x02, 0, 0x10, 0, b'U', b'I', 2, 0, b'1', 0]);
    big.extend_from_slice(&[0, 0x08, 0, 0x16, b'U', b'I', 0, 2, b'1', 0]);
    assert_eq!(super::check(&big, "1.2.840.10008.1.2.2"), Ok(()));
    big.extend_from_slice(&[0, 0x08, 0, 0x18, b'U', b'I', 0x40, 0, b'1', 0]);
    assert!(super::check(&big, "1.2.840.10008.1.2.2").unwrap_err().contains("past the end"));
}

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// "DICM" and a meta group of one element, then `data_set`.
fn object(data_set: &[u8]) -> Vec<u8> {
    let mut body = b"DICM".to_vec();
    body.extend_from_slice(&[0x02, 0, 0x10, 0, b'U', b'I', 2, 0, b'1', 0]);
    body.extend_from_slice(data_set);
    body
}

/// `depth` sequences nested in each other, (0008,1115) each holding one item, undefined
/// lengths throughout, in explicit or implicit VR little endian or explicit VR big endian.
fn nested(depth: usize, implicit: bool, big_endian: bool) -> Vec<u8> {
    let tag = |g: u16, e: u16| -> Vec<u8> {
        if big_endian {
            [g.to_be_bytes(), e.to_be_bytes()].concat()
        } else {
            [g.to_le_bytes(), e.to_le_bytes()].concat()
        }
    };
    let undefined = [0xFF; 4];
    let mut open = tag(0x0008, 0x1115);
    if !implicit {
        open.extend_from_slice(b"SQ\0\0");
    }
    open.extend_from_slice(&undefined);
    open.extend(tag(0xFFFE, 0xE000));
    open.extend_from_slice(&undefined);
    let mut close = tag(0xFFFE, 0xE00D);
    close.extend_from_slice(&[0; 4]);
    close.extend(tag(0xFFFE, 0xE0DD));
    close.extend_from_slice(&[0; 4]);
    let mut out = Vec::new();
    for _ in 0..depth {
        out.extend_from_slice(&open);
    }
    for _ in 0..depth {
        out.extend_from_slice(&close);
    }
    out
}

/// The same nesting with defined lengths (implicit VR little endian): sequence `k` from the
/// inside holds one item, which holds sequence `k - 1`; written from the outside in.
fn nested_defined(depth: usize) -> Vec<u8> {
    // The value length of the item and of the sequence at each level, innermost first.
    let (mut item, mut seq) = (vec![0u32; depth], vec![0u32; depth]);
    for k in 0..depth {
        item[k] = if k == 0 { 0 } else { 8 + seq[k - 1] };
        seq[k] = 8 + item[k];
    }
    let mut out = Vec::with_capacity(16 * depth);
    for k in (0..depth).rev() {
        out.extend_from_slice(&[0x08, 0x00, 0x15, 0x11]);
        out.extend_from_slice(&seq[k].to_le_bytes());
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        out.extend_from_slice(&item[k].to_le_bytes());
    }
    out
}

fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

#[test]
fn sequences_nested_deeper_than_32_are_refused_in_every_encoding() {
    for (what, ts, data) in [
        ("explicit VR little endian", EXPLICIT_LE, nested(32, false, false)),
        ("implicit VR little endian", IMPLICIT_LE, nested(32, true, false)),
        ("explicit VR big endian", BIG_ENDIAN, nested(32, false, true)),
        ("implicit VR, defined lengths", IMPLICIT_LE, nested_defined(32)),
    ] {
        assert_eq!(super::check(&object(&data), ts), Ok(()), "{what}: 32 levels are accepted");
    }
    for (what, ts, data) in [
        ("explicit VR little endian", EXPLICIT_LE, nested(100_000, false, false)),
        ("implicit VR little endian", IMPLICIT_LE, nested(33, true, false)),
        ("explicit VR big endian", BIG_ENDIAN, nested(33, false, true)),
        ("implicit VR, defined lengths", IMPLICIT_LE, nested_defined(100_000)),
        ("deflated", DEFLATED, deflate(&nested(100_000, false, false))),
    ] {
        let body = object(&data);
        assert_eq!(
            super::check(&body, ts),
            Err("sequences are nested deeper than 32 levels"),
            "{what}: {} bytes",
            body.len()
        );
    }
}

#[test]
fn a_deflated_data_set_is_walked_as_it_inflates() {
    // A private attribute declaring 1 MiB with 1,000 bytes there: found as the data inflates.
    let mut data_set = vec![0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0];
    data_set.extend_from_slice(&(1u32 << 20).to_le_bytes());
    data_set.extend_from_slice(&[0; 1000]);
    let body = object(&deflate(&data_set));
    assert!(body.len() < 200, "{} bytes", body.len());
    assert_eq!(super::check(&body, DEFLATED), Err("an element's length runs past the end of the object"));
    // A 1 GiB private attribute declared in a few deflated bytes: longer than 64 MiB, refused
    // before any of it is read.
    let mut header = vec![0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0];
    header.extend_from_slice(&(1u32 << 30).to_le_bytes());
    assert_eq!(
        super::check(&object(&deflate(&header)), DEFLATED),
        Err("an attribute other than pixel data is longer than 64 MiB")
    );
    // A good deflated data set passes.
    let good = [0x08, 0x00, 0x60, 0x00, b'C', b'S', 2, 0, b'C', b'T'];
    assert_eq!(super::check(&object(&deflate(&good)), DEFLATED), Ok(()));
}

#[test]
fn pixel_data_that_opens_with_item_bytes_is_not_walked_as_a_sequence() {
    // Implicit VR native Pixel Data whose first bytes happen to read as an item tag.
    let mut data_set = vec![0xE0, 0x7F, 0x10, 0x00, 16, 0, 0, 0];
    data_set.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(super::check(&object(&data_set), IMPLICIT_LE), Ok(()));
}

#[test]
fn sequences_are_walked_and_an_undefined_length_un_is_refused() {
    let mut body = b"DICM".to_vec();
    // An undefined-length SQ with one undefined-length item holding a short element.
    body.extend_from_slice(&[0x08, 0, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    body.extend_from_slice(&[0xFE, 0xFF, 0, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    body.extend_from_slice(&[0x08, 0, 0x50, 0x11, b'U', b'I', 2, 0, b'1', 0]);
    body.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    assert_eq!(super::check(&body, "1.2.840.10008.1.2.1"), Ok(()));
    body.extend_from_slice(&[0x53, 0x44, 0x0C, 0x10, b'U', b'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert!(super::check(&body, "1.2.840.10008.1.2.1").unwrap_err().contains("UN"));
}

/// dicom-parser reads a tag of group FFFE that is not an item or delimiter (here (FFFE,200D), a
/// damaged item delimiter) as an element of VR UN with its 4-byte length: the walk stopped there
/// and let a 2.6 GB length through, which dicom-object zero-filled for 30 s (found by the header
/// fuzz target). Such a tag, or an item outside a sequence, must fit like any element.
#[test]
fn a_group_fffe_tag_that_is_no_item_is_measured_as_an_element() {
    let mut seq = vec![
        0x08, 0, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    seq.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0x20, 0x40, 0x00, 0x40, 0xA0]);
    seq.extend_from_slice(&[0; 32]);
    assert_eq!(super::check(&object(&seq), EXPLICIT_LE), Err("an element's length runs past the end of the object"));
    let stray_item = [0xFE, 0xFF, 0x00, 0xE0, 0x00, 0x00, 0x00, 0x40];
    assert_eq!(
        super::check(&object(&stray_item), EXPLICIT_LE),
        Err("an element's length runs past the end of the object")
    );
    // A zero-length delimiter where none is open is harmless, as before.
    assert_eq!(super::check(&object(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]), EXPLICIT_LE), Ok(()));
}

/// dicom-parser reads an element of undefined length other than Pixel Data as a sequence of
/// data sets whatever its VR (here an OB), and Pixel Data of undefined length as fragments at
/// any depth: the walk stopped at the first and let an element inside it declare 1.6 GB
/// (found by the decode_part10 fuzz target).
#[test]
fn an_undefined_length_element_is_walked_as_the_parser_reads_it() {
    let mut ob = vec![
        0x09, 0, 0x10, 0x24, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    ob.extend_from_slice(&[0x09, 0, 0x11, 0x24, b'O', b'B', 0, 0, 0, 0, 0, 0x64]);
    ob.extend_from_slice(&[0; 32]);
    assert_eq!(super::check(&object(&ob), EXPLICIT_LE), Err("an element's length runs past the end of the object"));
}

/// A sequence delimiter inside an item delimits nothing there: dicom-parser reads it as an
/// element with its length (1.2 GB here, implicit VR, from the header fuzz target), so the walk
/// measures it so instead of closing the item.
#[test]
fn a_delimiter_where_it_delimits_nothing_is_measured_as_an_element() {
    let mut set = vec![0x01, 0, 0x01, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF];
    set.extend_from_slice(&[0x01, 0, 0x01, 0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0x55, 0x49]);
    set.extend_from_slice(&[0; 16]);
    assert_eq!(super::check(&object(&set), IMPLICIT_LE), Err("an element's length runs past the end of the object"));
    // Closed properly, the same sequence passes.
    let mut good = set[..16].to_vec();
    good.extend_from_slice(&[
        0x01, 0, 0x01, 0, 0, 0, 0, 0, 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0,
    ]);
    assert_eq!(super::check(&object(&good), IMPLICIT_LE), Ok(()));
}

/// An element inside a defined-length item that runs past the item's end is refused: the parser
/// reads on from where the length said the item ends, not from where the element ends.
#[test]
fn an_element_overrunning_its_defined_length_item_is_refused() {
    // Implicit VR: (0008,1115) of 24 bytes holding one item of 16 whose element declares 12.
    let mut set = vec![0x08, 0, 0x15, 0x11, 24, 0, 0, 0, 0xFE, 0xFF, 0, 0xE0, 16, 0, 0, 0];
    set.extend_from_slice(&[0x08, 0, 0x50, 0x11, 12, 0, 0, 0]);
    set.extend_from_slice(&[0; 16]);
    assert_eq!(
        super::check(&object(&set), IMPLICIT_LE),
        Err("an element runs past the end of the item or sequence that holds it")
    );
}

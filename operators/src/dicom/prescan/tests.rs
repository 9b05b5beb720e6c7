#[test]
fn a_length_past_the_end_is_refused_and_a_good_header_passes() {
    let mut body = b"DICM".to_vec();
    // (0002,0010) UI, 2 bytes; then (0008,0016) UI with a length of 0x4000.
    body.extend_from_slice(&[0x02, 0, 0x10, 0, b'U', b'I', 2, 0, b'1', 0]);
    assert_eq!(super::check(&body, "1.2.840.10008.1.2.1"), Ok(()));
    body.extend_from_slice(&[0x08, 0, 0x16, 0, b'U', b'I', 0, 0x40, b'1', 0]);
    assert!(super::check(&body, "1.2.840.10008.1.2.1").is_err());
    // Big endian is left to the parser.
    assert_eq!(super::check(&body, "1.2.840.10008.1.2.2"), Ok(()));
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

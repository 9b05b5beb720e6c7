use super::*;

#[test]
fn single_part_round_trips() {
    let payload = b"\0\x01DICM\r\n--not-a-boundary\r\n\xff";
    let encoded = RelatedBody::single_dicom(payload);
    let boundary = related_boundary(&encoded.content_type()).unwrap();
    assert_eq!(boundary, encoded.boundary);
    let parts = split_parts(&encoded.body, &boundary).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].body, payload);
    assert_eq!(parts[0].content_type(), Some("application/dicom"));
    assert!(encoded.body.starts_with(format!("--{boundary}\r\n").as_bytes()));
    assert!(encoded.body.ends_with(format!("\r\n--{boundary}--\r\n").as_bytes()));
}

#[test]
fn boundary_avoids_a_payload_that_contains_the_prefix() {
    // A payload holding a whole STOW body of its own: the prefix is present, so candidates
    // are checked one by one; none may collide.
    let inner = RelatedBody::single_dicom(b"inner");
    for _ in 0..20 {
        let outer = RelatedBody::single_dicom(&inner.body);
        assert_ne!(outer.boundary, inner.boundary);
        let parts = split_parts(&outer.body, &outer.boundary).unwrap();
        assert_eq!(parts[0].body, &inner.body[..]);
    }
}

#[test]
fn boundary_parameter_variants() {
    assert_eq!(related_boundary(r#"multipart/related; type="application/dicom"; boundary=abc"#), Some("abc".into()));
    assert_eq!(
        related_boundary(r#"Multipart/Related;boundary="a;b c";type="application/dicom""#),
        Some("a;b c".into())
    );
    assert_eq!(related_boundary(r#"multipart/related; type="x; boundary=no""#), None);
    assert_eq!(related_boundary("multipart/mixed; boundary=abc"), None);
    assert_eq!(related_boundary("multipart/related"), None);
    assert_eq!(related_boundary("multipart/related; boundary="), None);
}

#[test]
fn parses_preamble_padding_several_parts_and_epilogue() {
    let body =
        b"preamble\r\n--b  \r\nContent-Type: application/dicom\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepilogue";
    let parts = split_parts(body, "b").unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].body, b"one");
    assert_eq!(parts[0].content_type(), Some("application/dicom"));
    assert_eq!(parts[1].body, b"two");
    assert_eq!(parts[1].headers, b"");
    assert_eq!(parts[1].content_type(), None);
}

#[test]
fn rejects_malformed_bodies() {
    assert_eq!(split_parts(b"no delimiter", "b"), Err(MultipartError::NoOpeningDelimiter));
    assert_eq!(split_parts(b"--b\r\n\r\nabc", "b"), Err(MultipartError::Unterminated));
    assert_eq!(split_parts(b"--b", "b"), Err(MultipartError::Unterminated));
    assert_eq!(split_parts(b"--bx\r\n\r\n\r\n--b--", "b"), Err(MultipartError::MalformedDelimiter));
    assert_eq!(split_parts(b"--b\r\nContent-Type: x\r\nabc\r\n--b--", "b"), Err(MultipartError::UnterminatedHeaders));
}

#[test]
fn find_handles_edges() {
    assert_eq!(find(b"abcabd", b"abd"), Some(3));
    assert_eq!(find(b"ab", b"abc"), None);
    assert_eq!(find(b"", b"a"), None);
    assert_eq!(find(b"aaab", b"aab"), Some(1));
}

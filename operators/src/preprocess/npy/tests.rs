use super::*;

#[test]
fn header_bytes_are_numpys() {
    let header = npy_header(&[1, 3, 224, 224]);
    assert_eq!(header.len(), 128, "{}", String::from_utf8_lossy(&header));
    assert_eq!(&header[..8], b"\x93NUMPY\x01\x00");
    assert_eq!(u16::from_le_bytes([header[8], header[9]]) as usize, header.len() - 10);
    let dict = std::str::from_utf8(&header[10..]).unwrap();
    assert!(dict.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 224, 224), }"), "{dict}");
    assert!(dict.ends_with(" \n"));
    assert_eq!(npy_header(&[7]).len() % 64, 0);
    assert!(String::from_utf8_lossy(&npy_header(&[7])).contains("'shape': (7,)"));
}

#[test]
fn values_follow_the_header_little_endian() {
    let tensor = Tensor::new([1, 1, 1, 2], vec![1.0, -2.5]).unwrap();
    let mut bytes = Vec::new();
    write_npy(&mut bytes, &tensor).unwrap();
    let header = npy_header(&[1, 1, 1, 2]);
    assert_eq!(bytes[..header.len()], header);
    assert_eq!(&bytes[header.len()..], [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat());
}

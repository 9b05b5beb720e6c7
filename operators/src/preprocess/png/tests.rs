use std::io::Read as _;

use super::*;

#[test]
fn a_two_by_two_png_has_its_chunks_and_pixels() {
    let png = encode_gray8(2, 2, &[0, 64, 128, 255]).unwrap();
    assert_eq!(png[..8], SIGNATURE);
    assert_eq!(&png[12..16], b"IHDR");
    assert_eq!(&png[16..24], [0, 0, 0, 2, 0, 0, 0, 2]);
    // CRC of the IHDR chunk, as every decoder checks it.
    let mut crc = Crc::new();
    crc.update(&png[12..29]);
    assert_eq!(png[29..33], crc.sum().to_be_bytes());
    assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
    let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
    assert_eq!(&png[37..41], b"IDAT");
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&png[41..41 + idat_len]).read_to_end(&mut raw).unwrap();
    assert_eq!(raw, [0, 0, 64, 0, 128, 255]);
    assert!(encode_gray8(3, 2, &[0; 4]).is_none());
    assert!(encode_gray8(0, 0, &[]).is_none());
}

#[test]
fn preview_maps_the_range_onto_gray() {
    let tensor = Tensor::new([1, 2, 1, 3], vec![0.0, 0.5, 2.0, 9.0, 9.0, 9.0]).unwrap();
    let png = preview(&tensor, 0, 0, 0.0, 1.0).unwrap();
    let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&png[41..41 + idat_len]).read_to_end(&mut raw).unwrap();
    assert_eq!(raw, [0, 0, 128, 255]);
    assert!(preview(&tensor, 1, 0, 0.0, 1.0).is_none());
    assert!(preview(&tensor, 0, 2, 0.0, 1.0).is_none());
}

use super::*;

#[test]
fn conversion_is_exact_at_the_extremes() {
    assert_eq!(u8::MAX.to_f64(), 255.0);
    assert_eq!(i8::MIN.to_f64(), -128.0);
    assert_eq!(u16::MAX.to_f64(), 65535.0);
    assert_eq!(i16::MIN.to_f64(), -32768.0);
    assert_eq!(u32::MAX.to_f64(), 4_294_967_295.0);
    assert_eq!(i32::MIN.to_f64(), -2_147_483_648.0);
    assert_eq!(<i16 as StoredSample>::KIND, SampleKind::I16);
}

#[test]
fn min_max_of_stored_values() {
    assert_eq!(stored_min_max::<i16>(&[]), None);
    assert_eq!(stored_min_max(&[7u16]), Some((7, 7)));
    assert_eq!(stored_min_max(&[3i16, -1024, 900, 12]), Some((-1024, 900)));
}

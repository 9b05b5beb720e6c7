use super::*;

fn spec(body_part: BodyPart, plane: Plane, contrast: Contrast) -> ImageSpec {
    ImageSpec { body_part, plane, contrast, slice_position: 0.5, inverted: false, rows: 64, columns: 64, lesion: None }
}

#[test]
fn ct_values_fit_twelve_signed_bits_and_show_air_and_bone() {
    let mut rng = fastrand::Rng::with_seed(1);
    let pixels = render(&spec(BodyPart::Chest, Plane::Axial, Contrast::Ct), &mut rng);
    let hu: Vec<i32> = pixels.iter().map(|&p| i32::from(p as i16) - 1024).collect();
    assert!(hu.iter().all(|&h| (-3072..=1023).contains(&h)));
    assert!(hu.iter().any(|&h| h < -900), "no air");
    assert!(hu.iter().any(|&h| h > 700), "no bone");
}

#[test]
fn rounding_matches_round_half_up() {
    for value in [-3000.4, -2.5, -0.6, -0.4, 0.0, 0.5, 1.49, 1024.5, 4095.2] {
        assert_eq!(round(value), (value + 0.5f32).floor() as i32, "{value}");
    }
}

#[test]
fn unsigned_values_fit_twelve_bits_and_invert() {
    let mut rng = fastrand::Rng::with_seed(2);
    let mut xray = spec(BodyPart::Knee, Plane::Frontal, Contrast::Xray);
    let plain = render(&xray, &mut rng.clone());
    xray.inverted = true;
    let inverted = render(&xray, &mut rng);
    assert!(plain.iter().all(|&p| p <= 4095));
    assert!(plain.iter().zip(&inverted).all(|(&a, &b)| a + b == 4095));
}

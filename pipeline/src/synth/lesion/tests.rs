use super::*;

#[test]
fn a_bleed_fits_the_brain_without_shrinking_for_every_series_length() {
    let mut planted = 0;
    for seed in 0..300 {
        for slice_count in 1..=12 {
            let Some(plan) = LesionPlan::for_study(seed, 0, BodyPart::Head, 1, slice_count) else {
                panic!("study 0 always has a bleed");
            };
            planted += 1;
            assert!(plan.slices >= 1 && plan.first + plan.slices <= slice_count, "{plan:?}");
            let narrowest = (plan.first..plan.first + plan.slices)
                .map(|k| pixels::section_scale(BodyPart::Head, Plane::Axial, pixels::slice_position(k, slice_count)))
                .fold(f32::INFINITY, f32::min);
            let fraction = plan.radius / (2.0 * pixels::HEAD_HALF_WIDTH * narrowest);
            assert!((RADIUS_FRACTION.0..=RADIUS_FRACTION.1).contains(&fraction), "shrunk: {plan:?}");
            for instance in 0..slice_count {
                let disc = plan.disc(1, instance);
                assert_eq!(disc.is_some(), (plan.first..plan.first + plan.slices).contains(&instance));
                if let Some(disc) = disc {
                    assert!(disc.radius >= 0.8 * plan.radius - 1e-6, "{disc:?} of {plan:?}");
                }
            }
            assert_eq!(plan.disc(0, plan.first), None, "only the axial series");
        }
    }
    assert_eq!(planted, 300 * 12);
    assert_eq!(LesionPlan::for_study(1, 3, BodyPart::Head, 1, 8), None);
    assert_eq!(LesionPlan::for_study(1, 6, BodyPart::Chest, 1, 8), None);
}

#[test]
fn discs_in_pixels_match_the_normalized_ones() {
    let plan = LesionPlan::for_study(5, 0, BodyPart::Head, 1, 8).unwrap();
    let disc = plan.disc(1, plan.first).unwrap();
    let pixels = plan.disc_in_pixels(1, plan.first, 256).unwrap();
    assert!((pixels.radius - disc.radius * 128.0).abs() < 1e-3);
    // The pixel nearest the centre is inside in both descriptions.
    let (column, row) = (pixels.centre_column.round(), pixels.centre_row.round());
    let (u, v) = (2.0 * (column + 0.5) / 256.0 - 1.0, 2.0 * (row + 0.5) / 256.0 - 1.0);
    assert!(disc.contains(u, v));
}

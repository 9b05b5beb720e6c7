use super::*;

const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

fn axial(z: f64) -> SliceGeometry {
    SliceGeometry { position: [-100.0, -120.0, z], orientation: AXIAL }
}

#[test]
fn tensor_from_one_image_and_from_a_batch() {
    let a = ChwImage::new([1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let b = ChwImage::new([1, 2, 2], vec![5.0, 6.0, 7.0, 8.0]).unwrap();
    let t = Tensor::batch(&[a.clone(), b]).unwrap();
    assert_eq!(t.shape(), [2, 1, 2, 2]);
    assert_eq!(t.data(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    assert_eq!(Tensor::from_image(a).shape(), [1, 1, 2, 2]);
    assert!(Tensor::new([1, 1, 2, 3], vec![0.0; 6]).is_ok());
    assert!(Tensor::new([1, 1, 2, 3], vec![0.0; 5]).is_err());
    assert!(ChwImage::new([usize::MAX, 2, 1], vec![]).is_err());
}

#[test]
fn batch_members_must_share_a_shape() {
    let a = ChwImage::new([1, 2, 2], vec![0.0; 4]).unwrap();
    let b = ChwImage::new([1, 1, 4], vec![0.0; 4]).unwrap();
    assert_eq!(
        Tensor::batch(&[a.clone(), a, b]),
        Err(PreprocessError::BatchShapeMismatch { index: 2, expected: [1, 2, 2], actual: [1, 1, 4] })
    );
    assert_eq!(Tensor::batch(&[]), Err(PreprocessError::Empty { what: "batch" }));
}

#[test]
fn axial_slices_sort_by_z_with_regular_spacing() {
    let geometry: Vec<_> = [10.0, 0.0, 5.0, 2.5, 7.5].into_iter().map(axial).collect();
    let order = order_slices(&geometry).unwrap();
    assert_eq!(order.normal, [0.0, 0.0, 1.0]);
    assert_eq!(order.order, [1, 3, 2, 4, 0]);
    assert_eq!(order.distances, [0.0, 2.5, 5.0, 7.5, 10.0]);
    assert_eq!(order.spacing, Some(2.5));
    assert_eq!(order.max_spacing_deviation, 0.0);
    assert!(!order.irregular_spacing);
}

#[test]
fn sagittal_slices_sort_along_the_normal_not_along_x() {
    // Row (0, 1, 0) × column (0, 0, -1) = (-1, 0, 0): larger x is a smaller distance.
    let sagittal = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
    let geometry: Vec<_> =
        [0.0, 1.0, 2.0].into_iter().map(|x| SliceGeometry { position: [x, 5.0, 7.0], orientation: sagittal }).collect();
    let order = order_slices(&geometry).unwrap();
    assert_eq!(order.normal, [-1.0, 0.0, 0.0]);
    assert_eq!(order.order, [2, 1, 0]);
    assert_eq!(order.distances, [-2.0, -1.0, 0.0]);
    assert_eq!(order.spacing, Some(1.0));
}

#[test]
fn irregular_spacing_is_flagged_not_refused() {
    // Gaps 2.5, 2.5, 5: median 2.5, deviation 2.5 > 0.25.
    let order = order_slices(&[0.0, 2.5, 5.0, 10.0].map(axial)).unwrap();
    assert_eq!(order.spacing, Some(2.5));
    assert_eq!(order.max_spacing_deviation, 2.5);
    assert!(order.irregular_spacing);

    // Gaps 1, 2, 1, 2: the median of an even count is the mean of the middle two.
    let order = order_slices(&[0.0, 1.0, 3.0, 4.0, 6.0].map(axial)).unwrap();
    assert_eq!(order.spacing, Some(1.5));
    assert!(order.irregular_spacing);

    // A deviation within 10% passes; coincident slices do not.
    assert!(!order_slices(&[0.0, 1.0, 2.05, 3.0].map(axial)).unwrap().irregular_spacing);
    assert!(order_slices(&[4.0, 4.0, 4.0].map(axial)).unwrap().irregular_spacing);

    let single = order_slices(&[axial(3.0)]).unwrap();
    assert_eq!((single.spacing, single.irregular_spacing), (None, false));
}

#[test]
fn orientations_that_do_not_form_a_stack_are_errors() {
    let degenerate = SliceGeometry { position: [0.0; 3], orientation: [1.0, 0.0, 0.0, 1.0, 0.0, 0.0] };
    assert_eq!(order_slices(&[axial(0.0), degenerate]), Err(PreprocessError::DegenerateOrientation { index: 1 }));
    let coronal = SliceGeometry { position: [0.0; 3], orientation: [1.0, 0.0, 0.0, 0.0, 0.0, -1.0] };
    assert_eq!(order_slices(&[axial(0.0), coronal]), Err(PreprocessError::InconsistentOrientation { index: 1 }));
    let nan = SliceGeometry { position: [0.0, f64::NAN, 0.0], orientation: AXIAL };
    assert!(matches!(order_slices(&[nan]), Err(PreprocessError::NonFinite { .. })));
    assert_eq!(order_slices(&[]), Err(PreprocessError::Empty { what: "slice stack" }));
}

#[test]
fn stacking_puts_pixels_in_sorted_order() {
    let (top, bottom) = ([2.0f32; 4], [1.0f32; 4]);
    let volume = stack_slices(&[&top, &bottom], &[axial(5.0), axial(-5.0)], ImageSize::new(2, 2)).unwrap();
    assert_eq!(volume.shape(), [2, 2, 2]);
    assert_eq!(volume.data(), [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]);
    assert_eq!(volume.order().spacing, Some(10.0));
    assert!(stack_slices(&[&top, &[0.0; 3]], &[axial(0.0), axial(1.0)], ImageSize::new(2, 2)).is_err());
    assert!(stack_slices(&[&top], &[axial(0.0), axial(1.0)], ImageSize::new(2, 2)).is_err());
}

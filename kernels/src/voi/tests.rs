use super::*;

fn window(c: f64, w: f64, function: VoiFunction) -> Window {
    Window::new(c, w, function, OutputRange::UNIT).unwrap()
}

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() < 1e-6
}

#[test]
fn linear_soft_tissue_window_by_hand() {
    // c = 40, w = 400: y_min at or below 40 - 0.5 - 199.5 = -160, y_max above 39.5 + 199.5 = 239.
    let win = window(40.0, 400.0, VoiFunction::Linear);
    assert_eq!(win.apply(-1000.0), 0.0);
    assert_eq!(win.apply(-160.0), 0.0);
    assert!(close(win.apply(-159.5), 0.5 / 399.0)); // (-199 / 399 + 0.5)
    assert!(close(win.apply(39.5), 0.5));
    assert!(close(win.apply(40.0), 0.5 + 0.5 / 399.0));
    assert!(close(win.apply(239.0), 1.0)); // still the ramp: (199.5 / 399 + 0.5) = 1
    assert_eq!(win.apply(239.01), 1.0);
    assert_eq!(win.apply(3000.0), 1.0);
}

#[test]
fn linear_identity_window_of_the_standard() {
    // PS3.3 C.11.2.1.2.1 Note: center 2^(n-1), width 2^n is the identity on n-bit values.
    let win = Window::new(128.0, 256.0, VoiFunction::Linear, OutputRange { min: 0.0, max: 255.0 }).unwrap();
    for x in 0..=255u8 {
        assert!(close(win.apply(f32::from(x)), f64::from(x)), "{x}");
    }
}

#[test]
fn linear_width_one_is_a_threshold_at_center_minus_half() {
    let win = window(100.0, 1.0, VoiFunction::Linear);
    assert_eq!(win.apply(99.0), 0.0);
    assert_eq!(win.apply(99.5), 0.0);
    assert_eq!(win.apply(99.75), 1.0);
    assert_eq!(win.apply(100.0), 1.0);
}

#[test]
fn linear_exact_by_hand() {
    let win = window(0.0, 10.0, VoiFunction::LinearExact);
    assert_eq!(win.apply(-5.0), 0.0);
    assert!(close(win.apply(-2.5), 0.25));
    assert!(close(win.apply(0.0), 0.5));
    assert!(close(win.apply(2.5), 0.75));
    assert!(close(win.apply(5.0), 1.0)); // x > c + w/2 is strict: the ramp gives 1 at 5
    assert_eq!(win.apply(5.5), 1.0);
    // A width below 1 is fine for LINEAR_EXACT.
    let narrow = window(0.0, 0.5, VoiFunction::LinearExact);
    assert!(close(narrow.apply(0.125), 0.75));
}

#[test]
fn sigmoid_by_hand() {
    // -4 (x - c) / w = -x for c = 0, w = 4.
    let win = window(0.0, 4.0, VoiFunction::Sigmoid);
    assert!(close(win.apply(0.0), 0.5));
    assert!(close(win.apply(1.0), 1.0 / (1.0 + (-1.0f64).exp()))); // 0.7310585786
    assert!(close(win.apply(-1.0), 0.268_941_421_4));
    assert_eq!(win.apply(-1.0e6), 0.0);
    assert_eq!(win.apply(1.0e6), 1.0);
    let wide = Window::new(0.0, 4.0, VoiFunction::Sigmoid, OutputRange { min: -1.0, max: 1.0 }).unwrap();
    assert!(close(wide.apply(0.0), 0.0));
}

#[test]
fn inverted_range_flips_the_ramp() {
    let win = Window::new(0.0, 10.0, VoiFunction::LinearExact, OutputRange { min: 1.0, max: 0.0 }).unwrap();
    assert_eq!(win.apply(-100.0), 1.0);
    assert!(close(win.apply(2.5), 0.25));
    assert_eq!(win.apply(100.0), 0.0);
}

#[test]
fn widths_the_standard_forbids_are_errors() {
    let r = OutputRange::UNIT;
    assert_eq!(
        Window::new(0.0, 0.5, VoiFunction::Linear, r),
        Err(PreprocessError::WindowWidth { function: VoiFunction::Linear, width: 0.5 })
    );
    assert!(Window::new(0.0, 1.0, VoiFunction::Linear, r).is_ok());
    assert!(Window::new(0.0, 0.0, VoiFunction::LinearExact, r).is_err());
    assert!(Window::new(0.0, -1.0, VoiFunction::Sigmoid, r).is_err());
    assert!(matches!(
        Window::new(f64::NAN, 10.0, VoiFunction::Linear, r),
        Err(PreprocessError::NonFinite { parameter: "window center", .. })
    ));
    assert!(Window::new(0.0, f64::INFINITY, VoiFunction::Sigmoid, r).is_err());
    assert!(Window::new(0.0, 10.0, VoiFunction::Linear, OutputRange { min: 0.0, max: f64::NAN }).is_err());
}

#[test]
fn slice_form_matches_the_scalar_form() {
    let input = [-300.0f32, -160.0, 0.0, 40.0, 239.0, 500.0];
    for function in [VoiFunction::Linear, VoiFunction::LinearExact, VoiFunction::Sigmoid] {
        let win = window(40.0, 400.0, function);
        let mut out = [0.0f32; 6];
        voi_window(&input, &win, &mut out).unwrap();
        for (&o, &x) in out.iter().zip(&input) {
            assert_eq!(o, win.apply(x));
        }
    }
    assert!(voi_window(&input, &window(0.0, 2.0, VoiFunction::Linear), &mut [0.0; 5]).is_err());
}

use super::*;

/// NVRTC runs without a GPU: where its library is present (CI installs PyPI's
/// `nvidia-cuda-nvrtc-cu12` and puts it on `LD_LIBRARY_PATH`), the kernels' source is
/// compiled for real and every kernel the backend loads must be in the PTX. With
/// `RADSTREAM_REQUIRE_NVRTC=1` (infra/test.sh, kernels/gpu-check.sh) or
/// `RADSTREAM_REQUIRE_STACK=1` a missing library fails the test; elsewhere it is a skip.
#[test]
fn kernels_compile_with_nvrtc() {
    // SAFETY: only tries to dlopen the library.
    let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
    if !radstream_test_gate::needs_under(
        &["RADSTREAM_REQUIRE_NVRTC", radstream_test_gate::REQUIRE_STACK],
        "libnvrtc.so.12 on the library path (PyPI's nvidia-cuda-nvrtc-cu12)",
        present,
    ) {
        return;
    }
    let ptx = ptx().unwrap();
    for kind in ["u8", "i8", "u16", "i16", "u32", "i32"] {
        for kernel in ["elementwise", "minmax"] {
            assert!(ptx.contains(&format!(".entry {kernel}_{kind}(")), "{kernel}_{kind} missing from the PTX");
        }
    }
    for kernel in ["resample_rows", "resample_cols"] {
        assert!(ptx.contains(&format!(".entry {kernel}(")), "{kernel} missing from the PTX");
    }
    // The parameter block is passed by value: 96 bytes, as `ElementwiseParams` is.
    assert_eq!(std::mem::size_of::<ElementwiseParams>(), 96);
    assert!(ptx.contains(".param .align 8 .b8 elementwise_i16_param_3[96]"), "Elementwise is not 96 bytes in the PTX");
}

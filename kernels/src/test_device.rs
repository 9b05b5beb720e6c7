//! [`test_device!`]: one test body, run on every backend compiled in. Apart from the backends
//! it names, so that neither backend module depends on the other through it.

/// Runs one test body on every backend compiled in: `test_device!(body, body_cpu, body_cuda)`
/// with `fn body<B: PreprocessBackend>(device: &B) -> Result<(), PreprocessError>` makes the
/// tests `body_cpu` and, with the `cuda` feature, `body_cuda`.
///
/// On a machine without a usable GPU the CUDA test is skipped through
/// `radstream_test_gate::needs_device`: it says so on stderr, is logged to `RADSTREAM_SKIP_LOG`
/// (so `infra/test.sh` counts it as skipped, not passed, and names it) and returns without
/// running the body, so that CI (no GPU) can build and run the CUDA test binary; with
/// `RADSTREAM_REQUIRE_GPU=1` it fails instead, which is how the GPU check script runs it.
/// (libtest cannot mark a test ignored once it runs.)
///
/// The expansion is evaluated in the crate that invokes the macro: that crate needs
/// `radstream-test-gate` as a dev-dependency (the macro names `::radstream_test_gate`, which
/// keeps the gate out of this crate's normal dependencies), and a `cuda` feature of its own
/// that enables this one's.
#[macro_export]
macro_rules! test_device {
    ($body:ident, $cpu:ident, $cuda:ident) => {
        #[test]
        fn $cpu() -> ::std::result::Result<(), $crate::PreprocessError> {
            $body(&$crate::CpuBackend)
        }

        #[cfg(feature = "cuda")]
        #[test]
        fn $cuda() -> ::std::result::Result<(), $crate::PreprocessError> {
            match $crate::CudaBackend::new(0) {
                Ok(device) => $body(&device),
                Err(e) => {
                    // Fails under RADSTREAM_REQUIRE_GPU=1; otherwise a skip, logged as one.
                    ::radstream_test_gate::needs_device(&format!("a GPU, which did not start: {e}"), false);
                    Ok(())
                }
            }
        }
    };
}

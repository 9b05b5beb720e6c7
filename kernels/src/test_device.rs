//! [`test_device!`]: one test body, run on every backend compiled in. Apart from the backends
//! it names, so that neither backend module depends on the other through it.

/// Runs one test body on every backend compiled in: `test_device!(body, body_cpu, body_cuda)`
/// with `fn body<B: PreprocessBackend>(device: &B) -> Result<(), PreprocessError>` makes the
/// tests `body_cpu` and, with the `cuda` feature, `body_cuda`.
///
/// On a machine without a usable GPU the CUDA test says why on stderr and passes without
/// running the body, so that CI (no GPU) can build and run the CUDA test binary; with
/// `RADSTREAM_REQUIRE_GPU=1` it fails instead, which is how the GPU check script runs it.
/// The `cfg` is evaluated in the crate that invokes the macro, so another crate using it needs
/// a `cuda` feature of its own that enables this one's.
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
                Err(e) if ::std::env::var_os("RADSTREAM_REQUIRE_GPU").is_some_and(|v| v == "1") => Err(e),
                Err(e) => {
                    eprintln!("{}: not run on a GPU: {e}", stringify!($cuda));
                    Ok(())
                }
            }
        }
    };
}

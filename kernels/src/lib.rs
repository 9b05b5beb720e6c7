//! CUDA kernels and the CPU reference of each, for the `preprocess` operator.
//!
//! Empty until the preprocessing issue: decode, modality/VOI LUT, resampling and normalization
//! land here, each kernel with a CPU twin that one test body runs on both (the `cuda` feature
//! turns the GPU side on). Nothing here knows about DICOM files.

// The preprocessing kernels: the GPU twins of the CPU references in kernels/src/*.rs.
//
// Compiled at run time by NVRTC (kernels/src/cuda.rs), once per process, with --fmad=false so
// that `a * b + c` rounds like the CPU's separate multiply and add. The arithmetic mirrors the
// CPU's step by step: each step in double, each step's result rounded to float at the same
// point as kernels/src/plan.rs does, so the two agree to the last bit or two (the tests demand
// 1e-4).
//
// Memory passes per frame:
// * `elementwise_*`: stored values in, modality -> VOI -> normalization -> (per-channel
//   statistics) out, every channel plane written in the same pass;
// * with resampling, `resample_rows` (horizontal taps) then `resample_cols` (vertical taps and
//   the channel planes in the same pass);
// * `minmax_*` before them only for min/max-of-image normalization.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef short i16;
typedef unsigned int u32;
typedef int i32;

// Mirrors `ElementwiseParams` in cuda.rs (repr(C)): doubles first, then ints, padded to 8.
struct Elementwise {
    double slope;
    double intercept;
    // Window ramp (voi.rs `Ramp`) and output range.
    double lower;
    double upper;
    double origin;
    double gain;
    double base;
    double range_min;
    double range_max;
    // Normalization constants: standardize (mean, 1/std) or unit range (min, scale).
    double norm_a;
    double norm_b;
    // 0 none, 1 LINEAR / LINEAR_EXACT ramp, 2 SIGMOID.
    int window;
    // 0 identity, 1 standardize, 2 unit range (clamped to [0, 1]), 3 zero.
    int norm;
};

__device__ __forceinline__ float modality_voi(double stored, const Elementwise& p) {
    float x = (float)(stored * p.slope + p.intercept);
    if (p.window == 1) {
        double xd = (double)x;
        double y;
        if (xd <= p.lower) {
            y = p.range_min;
        } else if (xd > p.upper) {
            y = p.range_max;
        } else {
            double lo = fmin(p.range_min, p.range_max), hi = fmax(p.range_min, p.range_max);
            y = fmin(fmax((xd - p.origin) * p.gain + p.base, lo), hi);
        }
        x = (float)y;
    } else if (p.window == 2) {
        x = (float)((p.range_max - p.range_min) / (1.0 + exp(((double)x - p.origin) * p.gain)) + p.range_min);
    }
    return x;
}

__device__ __forceinline__ float normalized(float x, const Elementwise& p) {
    switch (p.norm) {
        case 1: return (float)(((double)x - p.norm_a) * p.norm_b);
        case 2: return (float)fmin(fmax(((double)x - p.norm_a) * p.norm_b, 0.0), 1.0);
        case 3: return 0.0f;
        default: return x;
    }
}

// One channel plane's value: the image value, or it standardized by that channel's statistics
// (normalize.rs `replicate_channels_into`).
__device__ __forceinline__ float channel_value(float x, int c, int channel_stats, const double* mean,
                                               const double* inv_std) {
    return channel_stats ? (float)(((double)x - mean[c]) * inv_std[c]) : x;
}

template <typename T>
__device__ void elementwise(const T* __restrict__ stored, float* __restrict__ out, unsigned long long n,
                            Elementwise p, int channels, int channel_stats, const double* __restrict__ mean,
                            const double* __restrict__ inv_std) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        float v = normalized(modality_voi((double)stored[i], p), p);
        for (int c = 0; c < channels; ++c) {
            out[c * n + i] = channel_value(v, c, channel_stats, mean, inv_std);
        }
    }
}

// Smallest and largest stored value, into out[0] (min) and out[1] (max), which the caller set to
// LLONG_MAX and LLONG_MIN. A grid-stride loop, a warp reduction, one atomic per warp.
template <typename T>
__device__ void minmax(const T* __restrict__ stored, unsigned long long n, long long* out) {
    long long lo = 0x7fffffffffffffffLL, hi = -0x7fffffffffffffffLL - 1;
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        long long v = (long long)stored[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    for (int offset = 16; offset > 0; offset /= 2) {
        long long l = __shfl_down_sync(0xffffffffu, lo, offset);
        long long h = __shfl_down_sync(0xffffffffu, hi, offset);
        lo = l < lo ? l : lo;
        hi = h > hi ? h : hi;
    }
    if ((threadIdx.x & 31) == 0) {
        atomicMin(&out[0], lo);
        atomicMax(&out[1], hi);
    }
}

#define INSTANTIATE(T)                                                                                    \
    extern "C" __global__ void elementwise_##T(const T* stored, float* out, unsigned long long n,          \
                                               Elementwise p, int channels, int channel_stats,             \
                                               const double* mean, const double* inv_std) {                \
        elementwise<T>(stored, out, n, p, channels, channel_stats, mean, inv_std);                         \
    }                                                                                                      \
    extern "C" __global__ void minmax_##T(const T* stored, unsigned long long n, long long* out) {         \
        minmax<T>(stored, n, out);                                                                         \
    }

INSTANTIATE(u8)
INSTANTIATE(i8)
INSTANTIATE(u16)
INSTANTIATE(i16)
INSTANTIATE(u32)
INSTANTIATE(i32)

// Horizontal pass (resample.rs `resample_into`): `rows[y, x]` = the taps of output column x
// over input row y, summed in double in tap order, rounded to float.
extern "C" __global__ void resample_rows(const float* __restrict__ image, float* __restrict__ rows, int height,
                                         int in_width, int out_width, const unsigned int* __restrict__ starts,
                                         const unsigned int* __restrict__ offsets,
                                         const double* __restrict__ weights) {
    unsigned long long total = (unsigned long long)height * out_width;
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < total;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        int y = (int)(i / out_width), x = (int)(i % out_width);
        const float* src = image + (unsigned long long)y * in_width + starts[x];
        double acc = 0.0;
        for (unsigned int k = offsets[x]; k < offsets[x + 1]; ++k) {
            acc = acc + weights[k] * (double)src[k - offsets[x]];
        }
        rows[i] = (float)acc;
    }
}

// Vertical pass, then every channel plane: `out[c, y, x]` from the taps of output row y over
// `rows` (`in_height x width`).
extern "C" __global__ void resample_cols(const float* __restrict__ rows, float* __restrict__ out, int out_height,
                                         int width, const unsigned int* __restrict__ starts,
                                         const unsigned int* __restrict__ offsets,
                                         const double* __restrict__ weights, int channels, int channel_stats,
                                         const double* __restrict__ mean, const double* __restrict__ inv_std) {
    unsigned long long plane = (unsigned long long)out_height * width;
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < plane;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        int y = (int)(i / width), x = (int)(i % width);
        double acc = 0.0;
        for (unsigned int k = offsets[y]; k < offsets[y + 1]; ++k) {
            unsigned long long row = starts[y] + (k - offsets[y]);
            acc = acc + weights[k] * (double)rows[row * width + x];
        }
        float v = (float)acc;
        for (int c = 0; c < channels; ++c) {
            out[c * plane + i] = channel_value(v, c, channel_stats, mean, inv_std);
        }
    }
}

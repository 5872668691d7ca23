// Helpers shared by the CPU kernels: (N, C, S) views of tensors in any dense layout, output
// allocation that matches the fake kernels, and size-only work splits for deterministic sums.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>

namespace pygan {

// A tensor seen as (N, C, S): dims 2.. collapsed into one spatial dim with a single stride.
// NCHW gives (sc, ss) = (S, 1); channels_last gives (1, C).
struct NCS {
  int64_t n = 1, c = 1, s = 1;
  int64_t sn = 0, sc = 0, ss = 0;
  // Channels are the innermost (smallest-stride) dim: loop over c innermost.
  bool channels_inner() const { return c > 1 && sc < ss && s > 1; }
};

// True (and fills v) if dims 2.. of t collapse into a single stride.
bool as_ncs(const at::Tensor& t, NCS& v);

// t itself if it collapses to (N, C, S), else a contiguous copy of it; v describes the result.
at::Tensor ncs_input(const at::Tensor& t, NCS& v);

// An output laid out as `out` (allocated by the caller exactly as the fake kernel allocates);
// kernels write into `work`, which is `out` itself unless out's dims don't collapse.
struct NCSOutput {
  at::Tensor out, work;
  NCS v;
  explicit NCSOutput(at::Tensor o);
  at::Tensor finish();
};

// A new tensor of `sizes` in channels_last when `like` is channels_last (and not also plainly
// contiguous), else contiguous: the rule the Python fake kernels follow
// (pygan.ops.minibatch_std.output_memory_format).
at::Tensor empty_in_layout_of(at::IntArrayRef sizes, const at::Tensor& like);

// Pixels per work unit in the per-pixel reductions (pixel norm): a block of this many pixels
// times all channels stays in cache between the reduction pass and the write pass.
constexpr int64_t kPixelBlock = 64;
// Most partial sums a reduction keeps; the split depends only on sizes, never on the thread
// count, so reductions give the same bits on any machine.
constexpr int64_t kMaxChunks = 256;

// Kernels capture their scalar parameters by value in at::parallel_for lambdas: captured by
// reference, a float parameter may alias the float output as far as the compiler knows, which
// forces a reload per element and blocks vectorisation (measured: 3x slower).

// at::parallel_for grain (in units) so that each task handles about 32k elements.
inline int64_t grain_for(int64_t elements_per_unit) {
  return std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, elements_per_unit));
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// x must be (N, C, *spatial) floating point; bias, when given, (C,) with x's dtype and device.
inline void check_x_bias(const at::Tensor& x, const std::optional<at::Tensor>& bias, const char* op) {
  TORCH_CHECK(x.dim() >= 2 && x.is_floating_point(), "pygan::", op,
              ": x must be a floating-point (N, C, *spatial) tensor, got ", x.sizes());
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == x.size(1), "pygan::", op,
                ": bias must be (C,) with C = ", x.size(1), ", got ", bias->sizes());
    TORCH_CHECK(bias->scalar_type() == x.scalar_type() && bias->device() == x.device(), "pygan::",
                op, ": bias must have x's dtype and device");
  }
}

// gain * leaky_relu(z, slope) with pos = gain and neg = gain * slope precomputed: a select
// between two registers, which the loops over it vectorise (a branch on the sign of random data
// mispredicts half the time: measured 20x slower).
template <typename acc_t>
inline acc_t lrelu_gain(acc_t z, acc_t pos, acc_t neg) {
  return z * (z > acc_t(0) ? pos : neg);
}

}  // namespace pygan

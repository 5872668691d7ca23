// Helpers of the CPU kernels: work splits for deterministic sums, activation, argument checks.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>

#include "ncs.h"

namespace pygan {

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

// gain * leaky_relu(z, slope) with pos = gain and neg = gain * slope precomputed: a select
// between two registers, which the loops over it vectorise (a branch on the sign of random data
// mispredicts half the time: measured 20x slower).
template <typename acc_t>
inline acc_t lrelu_gain(acc_t z, acc_t pos, acc_t neg) {
  return z * (z > acc_t(0) ? pos : neg);
}

}  // namespace pygan

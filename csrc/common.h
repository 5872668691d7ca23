// Helpers of the CPU kernels: work splits for deterministic sums, activation, argument checks.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>

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

// The value of environment variable `name`, read by the caller once: "" when unset, else one of
// `allowed` (anything else is an error naming the variable and the values it takes).
std::string env_choice(const char* name, std::initializer_list<const char*> allowed);

// Fresh output pages. Every op output is a new tensor, and glibc maps each block over 32 MiB
// afresh (smaller ones too where its heap had shrunk), so a kernel's first write to each 4 KiB
// page traps into the OS, which zeroes and maps that page. On the 2-core VM of the README's CPU
// figures that cost 8 ms per 32 MiB, more than the kernels' own work. A kernel that writes its
// output in pieces can instead map each piece with one madvise(MADV_POPULATE_WRITE) just before
// writing it: the same zeroing, a system call per piece instead of a trap per page, and the
// zeroed lines are still in cache when the kernel overwrites them (populating the whole output
// up front was measured slower: its zeros leave the cache before the kernel writes).
//
// output_pages_are_fresh(t): t is a CPU tensor of at least kPopulateMinBytes whose first or last
// page is not mapped yet (mincore), on Linux, and PYGAN_POPULATE is not 0 (read once; A/B runs).
// populate_pages(p, bytes): maps the pages overlapping [p, p + bytes); where the kernel lacks
// MADV_POPULATE_WRITE (before Linux 5.14) the call fails and the pages fault in as before.
constexpr int64_t kPopulateMinBytes = int64_t{1} << 20;
// Bytes mapped per call: large enough that the system call costs little against 64 page faults,
// small enough that the zeroed lines stay in L2 until the kernel overwrites them.
constexpr int64_t kPopulateChunkBytes = int64_t{256} << 10;
bool output_pages_are_fresh(const at::Tensor& t);
void populate_pages(const void* p, int64_t bytes);

}  // namespace pygan
